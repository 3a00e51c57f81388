//! Keeps the memory of freed frames in the process for the next frames, instead of glibc's
//! malloc giving it back to the kernel after every recorder batch, on a unit with enough
//! cameras for that to cost.
//!
//! An ingest thread allocates each frame (in its own malloc arena); the recorder thread frees
//! a batch of them a few times a second. With glibc's defaults, the free space a batch leaves
//! at the top of the ingest thread's arena passes the trim threshold (128 KiB, or twice the
//! largest mapped chunk freed so far: ~400 KB after a 200 KB key frame) after about every
//! batch at 16 cameras (~2 MB), so it is handed back (`MADV_DONTNEED`) and the next frames fault
//! fresh, zeroed pages in again: memory the thread had a moment before. Raising the thresholds
//! took a fifth off the edge's CPU at 16 cameras (BENCHMARKS.md, "Recording CPU: freed frame
//! memory kept").
//!
//! The thresholds are process-wide: every arena (the web pages', the uplink's too) then keeps
//! up to [`TRIM_THRESHOLD`] of free space at its top, and allocations up to [`MMAP_THRESHOLD`]
//! stay in the arenas when freed. What is kept is memory a thread had in use at its peak, so
//! the resident memory after a peak stays near the peak. At 4 cameras that was ~0.8 MB more
//! than the 16 MB the unit may use there (12 MB + 1 MB per camera), for a CPU saving within the
//! noise; so below [`KEEP_FROM_CAMERAS`] cameras glibc's defaults stay.

/// From this many cameras on, freed frame memory is kept.
pub const KEEP_FROM_CAMERAS: usize = 8;

/// Free memory at the top of an arena kept for reuse, up to this much: four times what a
/// recorder batch frees of an ingest thread with 32 cameras at 4 Mbit/s (250 ms of frames).
pub const TRIM_THRESHOLD: usize = 16 << 20;

/// Allocations up to this size come from the arenas (and are reused), larger ones are mapped on
/// their own: well above a camera's key frame (~200 KB at 720p and 4 Mbit/s).
pub const MMAP_THRESHOLD: usize = 4 << 20;

// `mallopt` takes an int, and glibc refuses an `mmap` threshold above 32 MiB (64-bit).
const _: () = assert!(TRIM_THRESHOLD <= i32::MAX as usize && MMAP_THRESHOLD <= 32 << 20);

/// Settings through which an operator chooses glibc's thresholds (or, with the top pad, turns
/// off its adjusting them): when any is set, the edge leaves malloc alone.
const OPERATOR_TUNABLES: [&str; 3] =
    ["glibc.malloc.trim_threshold", "glibc.malloc.mmap_threshold", "glibc.malloc.top_pad"];
const OPERATOR_VARIABLES: [&str; 3] = ["MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TOP_PAD_"];

/// What [`keep_freed_frame_memory`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tuning {
    /// Both thresholds set.
    Set,
    /// `GLIBC_TUNABLES` or a `MALLOC_*_` variable sets them: the operator's choice stands.
    LeftToOperator,
    /// Not glibc (or glibc refused a value): malloc's own behaviour stands.
    Unsupported,
}

/// Whether a unit with `cameras` cameras keeps freed frame memory.
pub fn worth_keeping(cameras: usize) -> bool {
    cameras >= KEEP_FROM_CAMERAS
}

/// At start, before any other thread runs (`mallopt` is not thread-safe): keeps freed frame
/// memory if the unit has enough `cameras` ([`worth_keeping`]), and logs what it did. For the
/// process's life: a unit that gets to 8 cameras by a settings change at run time keeps
/// glibc's defaults until it restarts, and one that goes below keeps the raised thresholds.
pub fn keep_at_start(cameras: usize) -> Option<Tuning> {
    if !worth_keeping(cameras) {
        return None;
    }
    let tuning = keep_freed_frame_memory();
    match tuning {
        Tuning::Set => tracing::info!(
            "{cameras} cameras: malloc keeps freed frame memory (trim threshold {} MiB, mmap threshold {} MiB)",
            TRIM_THRESHOLD >> 20,
            MMAP_THRESHOLD >> 20
        ),
        Tuning::LeftToOperator => tracing::info!("malloc thresholds left as the environment sets them"),
        Tuning::Unsupported => tracing::debug!("malloc thresholds not set: not glibc, or glibc refused them"),
    }
    Some(tuning)
}

/// Raises glibc malloc's trim and `mmap` thresholds (see the module doc), unless the operator
/// sets them. Call before other threads run.
pub fn keep_freed_frame_memory() -> Tuning {
    if set_by_operator(|name| std::env::var(name).ok()) {
        return Tuning::LeftToOperator;
    }
    set_thresholds()
}

/// Whether the environment (`var`) sets glibc's malloc thresholds or top pad.
fn set_by_operator(var: impl Fn(&str) -> Option<String>) -> bool {
    let tunables = var("GLIBC_TUNABLES").unwrap_or_default();
    let in_tunables = tunables.split(':').any(|setting| {
        let name = setting.split('=').next().unwrap_or_default();
        OPERATOR_TUNABLES.contains(&name)
    });
    in_tunables || OPERATOR_VARIABLES.iter().any(|name| var(name).is_some())
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn set_thresholds() -> Tuning {
    // SAFETY: `mallopt` takes plain integers. glibc marks it MT-unsafe (other threads read the
    // settings without its lock), which is why callers call it before other threads run.
    // Setting either threshold also stops glibc adjusting both on its own.
    let ok = unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD as libc::c_int) == 1
            && libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD as libc::c_int) == 1
    };
    if ok { Tuning::Set } else { Tuning::Unsupported }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn set_thresholds() -> Tuning {
    Tuning::Unsupported
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let vars: Vec<(String, String)> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |name| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
    }

    #[test]
    fn an_operators_malloc_settings_are_left_alone() {
        assert!(set_by_operator(env(&[("GLIBC_TUNABLES", "glibc.malloc.trim_threshold=1048576")])));
        assert!(set_by_operator(env(&[("GLIBC_TUNABLES", "glibc.pthread.rseq=0:glibc.malloc.mmap_threshold=65536")])));
        assert!(set_by_operator(env(&[("GLIBC_TUNABLES", "glibc.malloc.top_pad=0")])));
        assert!(set_by_operator(env(&[("MALLOC_TRIM_THRESHOLD_", "131072")])));
        assert!(set_by_operator(env(&[("MALLOC_MMAP_THRESHOLD_", "131072")])));
        assert!(set_by_operator(env(&[("MALLOC_TOP_PAD_", "0")])));
        assert!(!set_by_operator(env(&[("GLIBC_TUNABLES", "glibc.malloc.arena_max=2:glibc.pthread.rseq=0")])));
        assert!(!set_by_operator(env(&[("GLIBC_TUNABLES", ""), ("MALLOC_ARENA_MAX", "2")])));
        assert!(!set_by_operator(env(&[])));
    }

    #[test]
    fn freed_frame_memory_is_kept_from_eight_cameras_on() {
        assert!(!worth_keeping(0));
        assert!(!worth_keeping(7));
        assert!(worth_keeping(8));
        assert!(worth_keeping(128));
        assert_eq!(keep_at_start(7), None);
    }
}
