//! Keeps the memory of freed frames in the process for the next frames, instead of glibc's
//! malloc giving it back to the kernel after every recorder batch, once a unit records enough
//! cameras for that to cost.
//!
//! An ingest thread allocates each frame (in its own malloc arena); the recorder thread frees
//! a batch of them a few times a second. With glibc's defaults, the free space at the top of
//! the ingest thread's arena passes the trim threshold (128 KiB, or twice the largest freed
//! `mmap`ed chunk) after about every batch at 16 cameras, so it is handed back
//! (`MADV_DONTNEED`) and the next frames fault fresh, zeroed pages in again; and a key frame
//! above the `mmap` threshold is mapped and unmapped on its own. Both cost the ingest thread
//! page faults and page clearing for memory it had a moment before: a fifth of the edge's CPU
//! at 16 cameras (BENCHMARKS.md, "Recording CPU: freed frame memory kept").
//!
//! [`keep_for_streams`] raises both thresholds once the unit runs [`KEEP_FROM_STREAMS`] camera
//! streams. What is kept then is the free space at the top of an arena, which the thread had
//! in use at its peak anyway: the peak resident memory does not grow, the memory after a peak
//! stays. Below that many streams a batch mostly stays under glibc's own threshold, and the
//! ~1 MB kept would cost more (of the unit's 12 MB + 1 MB per camera) than the faults do.

use std::sync::OnceLock;

/// From this many camera streams (main and sub streams) on, freed frame memory is kept.
pub const KEEP_FROM_STREAMS: usize = 8;

/// Free memory at the top of an arena kept for reuse, up to this much: what a recorder batch
/// frees of an ingest thread's (at most 32 cameras at 4 Mbit/s, 250 ms of frames: 4 MB) fits
/// in it four times.
pub const TRIM_THRESHOLD: usize = 16 << 20;

/// Allocations up to this size come from the arenas (and are reused), larger ones are mapped on
/// their own: well above a camera's key frame (~200 KB at 720p and 4 Mbit/s).
pub const MMAP_THRESHOLD: usize = 4 << 20;

// `mallopt` takes an int, and glibc refuses an `mmap` threshold above 32 MiB (64-bit).
const _: () = assert!(TRIM_THRESHOLD <= i32::MAX as usize && MMAP_THRESHOLD <= 32 << 20);

/// What [`keep_freed_frame_memory`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tuning {
    /// Both thresholds set.
    Set,
    /// `GLIBC_TUNABLES` already sets a malloc threshold: the operator's choice stands.
    LeftToTunables,
    /// Not glibc (or glibc refused a value): malloc's own behaviour stands.
    Unsupported,
}

/// Keeps freed frame memory (once) if the unit runs `streams` camera streams, at least
/// [`KEEP_FROM_STREAMS`]. Returns what it did the first time it acted, `None` otherwise.
pub fn keep_for_streams(streams: usize) -> Option<Tuning> {
    static DONE: OnceLock<Tuning> = OnceLock::new();
    if streams < KEEP_FROM_STREAMS || DONE.get().is_some() {
        return None;
    }
    let mut first = false;
    let tuning = *DONE.get_or_init(|| {
        first = true;
        keep_freed_frame_memory()
    });
    if first {
        match tuning {
            Tuning::Set => tracing::info!(
                "{streams} camera streams: malloc keeps freed frame memory (trim threshold {} MiB, mmap threshold {} MiB)",
                TRIM_THRESHOLD >> 20,
                MMAP_THRESHOLD >> 20
            ),
            Tuning::LeftToTunables => tracing::info!("malloc thresholds left as GLIBC_TUNABLES sets them"),
            Tuning::Unsupported => tracing::debug!("malloc thresholds not set: not glibc, or glibc refused them"),
        }
    }
    first.then_some(tuning)
}

/// Raises glibc malloc's trim and `mmap` thresholds (see the module doc), unless
/// `GLIBC_TUNABLES` sets either.
pub fn keep_freed_frame_memory() -> Tuning {
    if tunables_set_thresholds(std::env::var("GLIBC_TUNABLES").ok().as_deref()) {
        return Tuning::LeftToTunables;
    }
    set_thresholds()
}

/// Whether a `GLIBC_TUNABLES` value sets the malloc trim or `mmap` threshold.
fn tunables_set_thresholds(tunables: Option<&str>) -> bool {
    tunables.is_some_and(|t| {
        t.split(':').any(|setting| {
            let name = setting.split('=').next().unwrap_or_default();
            matches!(name, "glibc.malloc.trim_threshold" | "glibc.malloc.mmap_threshold")
        })
    })
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn set_thresholds() -> Tuning {
    // SAFETY: `mallopt` only sets malloc's parameters; it takes plain integers.
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

    #[test]
    fn an_operators_malloc_threshold_in_glibc_tunables_is_left_alone() {
        assert!(tunables_set_thresholds(Some("glibc.malloc.trim_threshold=1048576")));
        assert!(tunables_set_thresholds(Some("glibc.pthread.rseq=0:glibc.malloc.mmap_threshold=65536")));
        assert!(!tunables_set_thresholds(Some("glibc.malloc.arena_max=2:glibc.pthread.rseq=0")));
        assert!(!tunables_set_thresholds(Some("")));
        assert!(!tunables_set_thresholds(None));
    }

    #[test]
    fn below_eight_streams_glibcs_defaults_stay() {
        assert_eq!(keep_for_streams(0), None);
        assert_eq!(keep_for_streams(KEEP_FROM_STREAMS - 1), None);
    }
}
