//! Frames allocated on one thread and freed in batches on another (the ingest and recorder
//! threads) reuse their memory once `keep_freed_frame_memory` ran, where glibc's defaults hand
//! it back to the kernel and fault it in again. Its own test binary: it changes the process's
//! malloc settings, and measures with them unchanged first. (From how many cameras `edge run`
//! calls it is pinned by `frame_memory`'s unit tests.)

use std::sync::{Barrier, Mutex};

use edge::frame_memory::{Tuning, keep_freed_frame_memory};

/// A batch's frames: 20 KB each (4 Mbit/s at 25 fps), with a 200 KB key frame every 50.
const FRAME: usize = 20_000;
const KEY_FRAME: usize = 200_000;
const FRAMES_PER_BATCH: usize = 64;
const WARM_UP_BATCHES: usize = 5;
const MEASURED_BATCHES: usize = 20;

/// Minor page faults the allocating thread took while filling `MEASURED_BATCHES` batches of
/// frames, each freed by another thread before the next batch is allocated. The two hand over
/// through a mutex and a barrier, which allocate nothing, so the heap holds the frames only.
fn faults_of_allocating_thread() -> i64 {
    let batch = Mutex::new(Vec::<Vec<u8>>::new());
    let handed_over = Barrier::new(2);
    std::thread::scope(|s| {
        s.spawn(|| {
            for _ in 0..WARM_UP_BATCHES + MEASURED_BATCHES {
                handed_over.wait();
                // Frees the frames; the list itself (the allocating thread's) stays.
                batch.lock().unwrap().clear();
                handed_over.wait();
            }
        });
        let allocating = s.spawn(|| {
            let mut frames = Vec::with_capacity(FRAMES_PER_BATCH);
            let mut frame_no = 0usize;
            let mut faults_at_start = 0;
            for batch_no in 0..WARM_UP_BATCHES + MEASURED_BATCHES {
                if batch_no == WARM_UP_BATCHES {
                    faults_at_start = thread_minor_faults();
                }
                for _ in 0..FRAMES_PER_BATCH {
                    frame_no += 1;
                    let len = if frame_no.is_multiple_of(50) { KEY_FRAME } else { FRAME };
                    frames.push(vec![0x5a_u8; len]);
                }
                std::mem::swap(&mut frames, &mut *batch.lock().unwrap());
                handed_over.wait();
                handed_over.wait();
            }
            thread_minor_faults() - faults_at_start
        });
        allocating.join().expect("the allocating thread")
    })
}

fn thread_minor_faults() -> i64 {
    // SAFETY: getrusage fills the zeroed struct it is given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    assert_eq!(unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut usage) }, 0);
    usage.ru_minflt
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[test]
fn frames_freed_on_another_thread_are_reused_without_page_faults() {
    if keep_freed_frame_memory_would_defer() {
        eprintln!("skipped: the environment sets glibc's malloc thresholds");
        return;
    }
    // About 1.3 MB a batch: with glibc's defaults most of it goes back to the kernel each time.
    let with_defaults = faults_of_allocating_thread();
    assert_eq!(keep_freed_frame_memory(), Tuning::Set);
    let kept = faults_of_allocating_thread();
    eprintln!("page faults in {MEASURED_BATCHES} batches: {with_defaults} with glibc's defaults, {kept} kept");
    // SAFETY: sysconf reads a constant of the system.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as i64;
    let pages_per_batch = (FRAMES_PER_BATCH * FRAME) as i64 / page;
    assert!(
        with_defaults > pages_per_batch * MEASURED_BATCHES as i64 / 4,
        "with glibc's defaults the allocating thread should fault much of each batch in again; it took \
         {with_defaults} faults in {MEASURED_BATCHES} batches of {pages_per_batch} pages (so this test shows nothing)"
    );
    assert!(
        kept * 20 < with_defaults,
        "with the thresholds raised the allocating thread took {kept} page faults, against {with_defaults} \
         with glibc's defaults"
    );
}

/// Whether the environment sets glibc's thresholds (`keep_freed_frame_memory` would leave them).
fn keep_freed_frame_memory_would_defer() -> bool {
    let tunables = std::env::var("GLIBC_TUNABLES").unwrap_or_default();
    ["trim_threshold", "mmap_threshold", "top_pad"].iter().any(|t| tunables.contains(&format!("glibc.malloc.{t}")))
        || ["MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TOP_PAD_"]
            .iter()
            .any(|v| std::env::var_os(v).is_some())
}
