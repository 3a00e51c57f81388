//! The threads camera ingest runs on: current-thread tokio runtimes of their own, each on a
//! named thread (`camera-ingest-N`), apart from the multi-thread runtime that carries the
//! uplink's QUIC and TLS and the web pages. A camera task wakes for every RTP burst of its
//! camera; on a thread of its own that wake-up polls the task in place, where the shared
//! multi-thread runtime often hands the readable socket to another worker (a second wake-up).
//!
//! Threads start lazily: a camera goes to the thread with the fewest cameras, and a new thread
//! starts when every thread already has [`CAMERAS_PER_THREAD`] cameras, up to one per core.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

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
}

impl IngestRuntimes {
    /// Up to one thread per core, each taking [`CAMERAS_PER_THREAD`] cameras before the next
    /// starts.
    pub fn new() -> IngestRuntimes {
        let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
        IngestRuntimes::with_limits(cores, CAMERAS_PER_THREAD)
    }

    /// Up to `max_threads` threads, each taking `per_thread` cameras before the next starts
    /// (both at least 1).
    pub fn with_limits(max_threads: usize, per_thread: usize) -> IngestRuntimes {
        IngestRuntimes {
            threads: Mutex::new(Vec::new()),
            max_threads: max_threads.max(1),
            per_thread: per_thread.max(1),
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
                let thread = IngestThread::start(threads.len())?;
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

impl Default for IngestRuntimes {
    fn default() -> Self {
        IngestRuntimes::new()
    }
}

impl Drop for IngestRuntimes {
    fn drop(&mut self) {
        self.shutdown();
    }
}

impl IngestThread {
    /// Starts thread `n` with its current-thread runtime, running until told to stop.
    fn start(n: usize) -> std::io::Result<IngestThread> {
        let name = format!("camera-ingest-{n}");
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().thread_name(&name).build()?;
        let handle = runtime.handle().clone();
        let (stop, stopped) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new().name(name).spawn(move || {
            // A dropped sender (the pool gone) stops the thread too.
            let _ = runtime.block_on(stopped);
            // Dropping the runtime drops the tasks still on it.
            drop(runtime);
        })?;
        Ok(IngestThread { handle, cameras: Arc::new(AtomicUsize::new(0)), stop: Some(stop), thread: Some(thread) })
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
    use std::time::Duration;

    fn thread_name() -> String {
        std::thread::current().name().unwrap_or("").to_owned()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn tasks_run_on_named_ingest_threads_spread_by_load() {
        let pool = IngestRuntimes::with_limits(2, 2);
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
        let pool = IngestRuntimes::with_limits(1, 8);
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
        let pool = IngestRuntimes::with_limits(2, 1);
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
