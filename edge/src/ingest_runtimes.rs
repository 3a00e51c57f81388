//! The threads camera ingest runs on: current-thread tokio runtimes of their own, each on a
//! named thread (`camera-ingest-N`), apart from the multi-thread runtime that carries the
//! uplink's QUIC and TLS and the web pages. A camera task wakes for every RTP burst of its
//! camera; on a thread of its own that wake-up polls the task in place, where the shared
//! multi-thread runtime often hands the readable socket to another worker (a second wake-up).
//!
//! While none of its cameras is watched live, a thread naps (see [`longest_nap`]) each time it
//! has handled all that was ready, so that one wake-up reads what every camera sent meanwhile.
//!
//! Threads start lazily: a camera goes to the thread with the fewest cameras, and a new thread
//! starts when every thread already has [`CAMERAS_PER_THREAD`] cameras, up to one per core.

use std::cell::Cell;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::runtime::Handle;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Cameras a thread takes before another thread starts (while there are fewer than cores).
pub const CAMERAS_PER_THREAD: usize = 32;

/// One ingest thread: its runtime's handle and how many camera tasks it runs.
struct IngestThread {
    handle: Handle,
    cameras: Arc<AtomicUsize>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// The ingest threads of the unit; [`IngestRuntimes::shutdown`] ends them (and drops any task
/// still on them).
pub struct IngestRuntimes {
    threads: Mutex<Vec<IngestThread>>,
    max_threads: usize,
    per_thread: usize,
    nap: Nap,
}

/// How long an ingest thread naps: at most `longest` (see [`longest_nap`]), and no longer than
/// its fastest camera takes to send `budget_bytes` (see
/// [`ReceiveBuffers::nap_budget`](crate::receive_buffers::ReceiveBuffers::nap_budget)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Nap {
    /// The longest nap.
    pub longest: Duration,
    /// What the fastest camera may send meanwhile, on average.
    pub budget_bytes: u64,
}

impl Nap {
    /// No nap at all.
    pub const NONE: Nap = Nap { longest: Duration::ZERO, budget_bytes: 0 };

    /// The naps for a store whose durability window is `window`, on this system's receive
    /// buffers.
    pub fn for_window(window: Duration) -> Nap {
        let buffers = crate::receive_buffers::ReceiveBuffers::of_this_system();
        let nap = Nap { longest: longest_nap(window), budget_bytes: buffers.nap_budget() };
        tracing::debug!(?buffers, ?nap, "camera ingest naps");
        nap
    }
}

impl IngestRuntimes {
    /// Up to one thread per core, each taking [`CAMERAS_PER_THREAD`] cameras before the next
    /// starts, napping as `nap` allows.
    pub fn new(nap: Nap) -> IngestRuntimes {
        let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
        IngestRuntimes::with_limits(cores, CAMERAS_PER_THREAD, nap)
    }

    /// Up to `max_threads` threads, each taking `per_thread` cameras before the next starts
    /// (both at least 1), napping as `nap` allows.
    pub fn with_limits(max_threads: usize, per_thread: usize, nap: Nap) -> IngestRuntimes {
        IngestRuntimes {
            threads: Mutex::new(Vec::new()),
            max_threads: max_threads.max(1),
            per_thread: per_thread.max(1),
            nap,
        }
    }

    /// Runs a camera task on an ingest thread (starting one if it is due). If no thread can be
    /// started, the task runs on the caller's runtime instead, with a warning.
    pub fn spawn<F>(&self, task: F) -> JoinHandle<()>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        match self.place() {
            Ok((handle, cameras)) => {
                let counted = CountedTask { cameras };
                handle.spawn(async move {
                    let _counted = counted;
                    task.await;
                })
            }
            Err(e) => {
                tracing::warn!("cannot start a camera ingest thread ({e}); the camera runs on the main runtime");
                tokio::spawn(task)
            }
        }
    }

    /// The runtime the next camera goes to, with that camera counted on it.
    fn place(&self) -> std::io::Result<(Handle, Arc<AtomicUsize>)> {
        let mut threads = self.threads.lock().unwrap_or_else(|e| e.into_inner());
        let least = threads.iter().min_by_key(|t| t.cameras.load(Ordering::Relaxed));
        let chosen = match least {
            Some(t) if t.cameras.load(Ordering::Relaxed) < self.per_thread || threads.len() >= self.max_threads => t,
            _ => {
                let thread = IngestThread::start(threads.len(), self.nap)?;
                threads.push(thread);
                &threads[threads.len() - 1]
            }
        };
        chosen.cameras.fetch_add(1, Ordering::Relaxed);
        Ok((chosen.handle.clone(), chosen.cameras.clone()))
    }

    /// Camera tasks on each thread, in the order the threads started.
    pub fn cameras_per_thread(&self) -> Vec<usize> {
        let threads = self.threads.lock().unwrap_or_else(|e| e.into_inner());
        threads.iter().map(|t| t.cameras.load(Ordering::Relaxed)).collect()
    }

    /// Stops every ingest thread and waits for it; tasks still running on them are dropped.
    /// Call it after the camera tasks were stopped (or when they must go: their handles on the
    /// recorder go with them). Later spawns start new threads.
    pub fn shutdown(&self) {
        let stopped: Vec<IngestThread> = {
            let mut threads = self.threads.lock().unwrap_or_else(|e| e.into_inner());
            threads.drain(..).collect()
        };
        for mut t in stopped {
            if let Some(stop) = t.stop.take() {
                let _ = stop.send(());
            }
            // Never wait for the very thread this runs on (it ends when this call returns).
            let Some(thread) = t.thread.take().filter(|th| th.thread().id() != std::thread::current().id()) else {
                continue;
            };
            if thread.join().is_err() {
                tracing::error!("a camera ingest thread panicked");
            }
        }
    }
}

impl Drop for IngestRuntimes {
    fn drop(&mut self) {
        self.shutdown();
    }
}

impl IngestThread {
    /// Starts thread `n` with its current-thread runtime, running until told to stop, napping
    /// between turns as `nap` allows.
    fn start(n: usize, nap: Nap) -> std::io::Result<IngestThread> {
        let name = format!("camera-ingest-{n}");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .thread_name(&name)
            .on_thread_park(move || nap_unless_watched(nap))
            .build()?;
        let handle = runtime.handle().clone();
        let (stop, stopped) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new().name(name).spawn(move || {
            parks(Instant::now());
            // A dropped sender (the pool gone) stops the thread too.
            let _ = runtime.block_on(stopped);
            // Dropping the runtime drops the tasks still on it.
            drop(runtime);
        })?;
        Ok(IngestThread { handle, cameras: Arc::new(AtomicUsize::new(0)), stop: Some(stop), thread: Some(thread) })
    }
}

/// After a frame someone watched live, the camera's thread does not nap for this long: live
/// frames go out as they come.
const LIVE_HOLD: Duration = Duration::from_secs(1);

/// A camera's bit rate counts for the nap this long after its task last reported it.
const RATE_HOLD: Duration = Duration::from_secs(2);

thread_local! {
    /// Until when the ingest thread this is does not nap (a camera on it is watched live).
    static AWAKE_UNTIL: Cell<Option<Instant>> = const { Cell::new(None) };
    /// The highest bit rate a camera on this thread reported lately, and when.
    static FASTEST: Cell<Option<(u64, Instant)>> = const { Cell::new(None) };
    /// When the ingest thread this is last began to wait for its sockets, and the time before.
    static PARKED: Cell<Option<(Instant, Instant)>> = const { Cell::new(None) };
}

/// Whether the calling thread is an ingest thread.
pub fn on_ingest_thread() -> bool {
    PARKED.with(Cell::get).is_some()
}

/// Runs as the ingest thread begins to wait for its sockets at `now` (and as it starts).
fn parks(now: Instant) {
    PARKED.with(|parked| parked.set(Some((now, parked.get().map_or(now, |(last, _)| last)))));
}

/// The earliest the bytes the calling camera task reads now can have arrived: when its ingest
/// thread began to wait the time before last. Whatever had arrived by then, that wait reported,
/// and the turn after it read (the thread waits again only when nothing is ready). The
/// recorder counts the durability window from then (`Store::append_arrived`), so a nap costs
/// no durability. Off an ingest thread: now.
pub fn arrived_since() -> Instant {
    PARKED.with(Cell::get).map_or_else(Instant::now, |(_, before)| before)
}

/// Tells the ingest thread the calling camera task runs on that a frame was just published to
/// a live viewer: the thread stops napping for [`LIVE_HOLD`]. (On any other thread, it does
/// nothing that matters.)
pub fn watched_live() {
    AWAKE_UNTIL.with(|until| until.set(Some(Instant::now() + LIVE_HOLD)));
}

/// Tells the ingest thread the calling camera task runs on how fast its camera sends (bits per
/// second), so that its naps stay short enough for the fastest camera on it. `None`: not
/// measured yet (a camera's first seconds), and the thread does not nap meanwhile: over UDP
/// a fast camera could overrun the socket's receive buffer (TCP would only hold it back).
pub fn camera_rate(bits_per_second: Option<u64>) {
    let bits_per_second = bits_per_second.unwrap_or(u64::MAX);
    let now = Instant::now();
    FASTEST.with(|fastest| {
        let keep = fastest.get().is_some_and(|(bps, at)| bps > bits_per_second && now < at + RATE_HOLD);
        if !keep {
            fastest.set(Some((bits_per_second, now)));
        }
    });
}

/// The longest an ingest thread naps, whatever the receive buffers allow. A frame may wait this
/// long to be read; `frame_clock` stamps frames by the earliest read times, which such delays
/// do not move.
pub const LONGEST_NAP: Duration = Duration::from_millis(250);

/// The longest nap is also at most this share of the durability window. The window counts from
/// the wait before last ([`arrived_since`]), so a frame can have waited two naps before it is
/// queued: half the window at most. The recorder takes it as the turn that queued it ends
/// (`recorder::turn_ended`), or, from a thread too busy to park between turns (it then does not
/// nap either), within a quarter of the window: inside the ¾ before the group commit is due.
const NAP_SHARE_OF_WINDOW: u32 = 4;

/// The longest an ingest thread naps, for a store whose durability window is `window`:
/// [`LONGEST_NAP`], at most 1/4 of the window; `CONVOY_INGEST_NAP_MS`, when set, instead (`0`:
/// never nap), for A/B benchmarks. How fast its cameras send cuts it further
/// ([`Nap::budget_bytes`]): on Linux's default receive buffers to 98 ms for a 4 Mbit/s camera.
///
/// A thread naps after it has handled everything that was ready, while no one watches one of
/// its cameras live. Bytes arriving meanwhile wait in the sockets' receive buffers, and the next
/// wake-up reads what every camera sent meanwhile, in larger reads: fewer wake-ups,
/// `epoll_wait`s and `readv`s per byte (a wake-up costs far more than reading a frame;
/// BENCHMARKS.md, "Recording CPU: naps"). Recording gains nothing from reading sooner.
pub fn longest_nap(window: Duration) -> Duration {
    let default = window_nap(window);
    match std::env::var("CONVOY_INGEST_NAP_MS") {
        Ok(v) => match v.parse::<u64>() {
            Ok(ms) => Duration::from_millis(ms),
            Err(_) => {
                tracing::warn!("CONVOY_INGEST_NAP_MS={v:?} is not a number of milliseconds; napping {default:?}");
                default
            }
        },
        Err(_) => default,
    }
}

/// The longest nap a durability window of `window` allows: [`LONGEST_NAP`], at most 1/4 of it.
pub fn window_nap(window: Duration) -> Duration {
    LONGEST_NAP.min(window / NAP_SHARE_OF_WINDOW)
}

/// Runs as the ingest thread is about to wait for its sockets: naps unless a camera on it is
/// watched live.
fn nap_unless_watched(nap: Nap) {
    crate::recorder::turn_ended();
    let now = Instant::now();
    parks(now);
    let fastest = FASTEST.with(Cell::get).filter(|(_, at)| now < *at + RATE_HOLD).map(|(bps, _)| bps);
    let nap = nap_length(nap, AWAKE_UNTIL.with(Cell::get), fastest, now);
    if !nap.is_zero() {
        std::thread::sleep(nap);
    }
}

/// How long a thread naps at `now`: not at all while kept awake (until `awake_until`), else
/// `nap.longest`, cut so that a camera sending `fastest` bits per second sends at most
/// `nap.budget_bytes` meanwhile.
fn nap_length(nap: Nap, awake_until: Option<Instant>, fastest: Option<u64>, now: Instant) -> Duration {
    if awake_until.is_some_and(|t| now < t) {
        return Duration::ZERO;
    }
    match fastest {
        Some(bps) if bps > 0 => nap.longest.min(Duration::from_secs_f64(nap.budget_bytes as f64 * 8.0 / bps as f64)),
        _ => nap.longest,
    }
}

/// Counts a camera task on its thread while it exists (run to its end or dropped).
struct CountedTask {
    cameras: Arc<AtomicUsize>,
}

impl Drop for CountedTask {
    fn drop(&mut self) {
        self.cameras.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::receive_buffers::ReceiveBuffers;

    fn thread_name() -> String {
        std::thread::current().name().unwrap_or("").to_owned()
    }

    #[test]
    fn a_thread_naps_unless_watched_live_and_no_longer_than_the_fastest_camera_allows() {
        let now = Instant::now();
        let longest = LONGEST_NAP;
        // On Linux's default receive buffers.
        let nap = Nap { longest, budget_bytes: ReceiveBuffers::LINUX_DEFAULT.nap_budget() };
        assert_eq!(nap_length(nap, None, None, now), longest);
        // Watched live within the last second: no nap.
        assert_eq!(nap_length(nap, Some(now + LIVE_HOLD), None, now), Duration::ZERO);
        assert_eq!(nap_length(nap, Some(now), None, now), longest);
        // 4 Mbit/s sends 48 KiB in 98 ms; 16 Mbit/s in 24.6 ms; a sub stream never cuts it.
        assert_eq!(nap_length(nap, None, Some(4_000_000), now), Duration::from_secs_f64(0.098304));
        assert_eq!(nap_length(nap, None, Some(16_000_000), now).as_micros(), 24_576);
        assert_eq!(nap_length(nap, None, Some(256_000), now), longest);
        assert_eq!(nap_length(nap, None, Some(0), now), longest);
        // On the image's: a 4 Mbit/s camera lets it nap the longest; 16 Mbit/s 196.6 ms.
        let nap = Nap { longest, budget_bytes: ReceiveBuffers::IMAGE.nap_budget() };
        assert_eq!(nap_length(nap, None, Some(4_000_000), now), longest);
        assert_eq!(nap_length(nap, None, Some(16_000_000), now).as_micros(), 196_608);
        assert_eq!(nap_length(Nap::NONE, None, Some(4_000_000), now), Duration::ZERO);
        // The store's window bounds it too.
        assert_eq!(window_nap(Duration::from_secs(1)), LONGEST_NAP);
        assert_eq!(window_nap(Duration::from_millis(300)), Duration::from_millis(75));
    }

    #[tokio::test]
    async fn bytes_read_now_arrived_no_earlier_than_the_wait_before_last() {
        let before = Instant::now();
        // Off an ingest thread: now.
        assert!(arrived_since() >= before);
        let nap = Nap { longest: Duration::from_millis(20), budget_bytes: u64::MAX };
        let pool = IngestRuntimes::with_limits(1, 8, nap);
        let started = Instant::now();
        let (tx, rx) = oneshot::channel();
        pool.spawn(async move {
            let read_before_wait = Instant::now();
            // The thread has nothing else to do: it parks (and naps), then wakes.
            tokio::time::sleep(Duration::from_millis(30)).await;
            let _ = tx.send((arrived_since(), read_before_wait, Instant::now()));
        });
        let (since, read_before_wait, woke) = rx.await.unwrap();
        // Not before the thread started; and at least one whole wait (with its 20 ms nap)
        // before the read: the wait after which the task ran began after `since`.
        assert!(since >= started);
        assert!(read_before_wait >= started);
        assert!(woke.duration_since(since) >= Duration::from_millis(20), "{since:?} {woke:?}");
        pool.shutdown();
    }

    #[test]
    fn watching_and_rates_are_per_thread_and_the_fastest_camera_counts() {
        watched_live();
        assert!(AWAKE_UNTIL.with(Cell::get).is_some_and(|t| Instant::now() < t));
        let other = std::thread::spawn(|| AWAKE_UNTIL.with(Cell::get)).join().unwrap();
        assert!(other.is_none());
        camera_rate(Some(4_000_000));
        camera_rate(Some(1_000_000));
        assert_eq!(FASTEST.with(Cell::get).map(|(bps, _)| bps), Some(4_000_000));
        camera_rate(Some(8_000_000));
        assert_eq!(FASTEST.with(Cell::get).map(|(bps, _)| bps), Some(8_000_000));
        // A camera whose rate is not measured yet keeps the thread from napping.
        camera_rate(None);
        let fastest = FASTEST.with(Cell::get).map(|(bps, _)| bps);
        let nap = Nap { longest: Duration::from_millis(100), budget_bytes: ReceiveBuffers::IMAGE.nap_budget() };
        assert_eq!(nap_length(nap, None, fastest, Instant::now()), Duration::ZERO);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn tasks_run_on_named_ingest_threads_spread_by_load() {
        let nap = Nap { longest: Duration::from_millis(100), budget_bytes: u64::MAX };
        let pool = IngestRuntimes::with_limits(2, 2, nap);
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let stop = tokio_util::sync::CancellationToken::new();
        let mut tasks = Vec::new();
        for _ in 0..5 {
            let tx = tx.clone();
            let stop = stop.clone();
            tasks.push(pool.spawn(async move {
                // Timers work: the runtime has its own time driver.
                tokio::time::sleep(Duration::from_millis(1)).await;
                tx.send(thread_name()).unwrap();
                stop.cancelled().await;
            }));
        }
        let mut names = Vec::new();
        for _ in 0..5 {
            names.push(rx.recv().await.unwrap());
        }
        names.sort();
        // Two on the first thread, then the second starts; the fifth goes to the least loaded.
        assert_eq!(pool.cameras_per_thread().iter().sum::<usize>(), 5);
        assert_eq!(pool.cameras_per_thread().len(), 2);
        assert!(names.iter().all(|n| n.starts_with("camera-ingest-")), "{names:?}");
        assert!(names.contains(&"camera-ingest-0".to_owned()) && names.contains(&"camera-ingest-1".to_owned()));
        stop.cancel();
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(pool.cameras_per_thread(), vec![0, 0]);
        pool.shutdown();
        assert!(pool.cameras_per_thread().is_empty());
    }

    #[tokio::test]
    async fn shutdown_drops_tasks_still_running() {
        let pool = IngestRuntimes::with_limits(1, 8, Nap::NONE);
        let held = Arc::new(());
        let in_task = held.clone();
        let (started_tx, started) = oneshot::channel();
        let task = pool.spawn(async move {
            let _held = in_task;
            let _ = started_tx.send(());
            std::future::pending::<()>().await;
        });
        started.await.unwrap();
        assert_eq!(Arc::strong_count(&held), 2);
        pool.shutdown();
        // The task's captures (a camera's recorder handle, in the unit) are gone.
        assert_eq!(Arc::strong_count(&held), 1);
        assert!(task.await.unwrap_err().is_cancelled());
    }

    #[tokio::test]
    async fn a_finished_task_leaves_its_thread_free() {
        let pool = IngestRuntimes::with_limits(2, 1, Nap::NONE);
        pool.spawn(async {}).await.unwrap();
        // The first thread is empty again, so the next camera goes there, not to a new thread.
        let (tx, rx) = oneshot::channel();
        pool.spawn(async move {
            let _ = tx.send(thread_name());
        })
        .await
        .unwrap();
        assert_eq!(rx.await.unwrap(), "camera-ingest-0");
        assert_eq!(pool.cameras_per_thread(), vec![0]);
    }
}
