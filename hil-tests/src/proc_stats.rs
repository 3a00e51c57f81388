//! CPU time and memory of running processes, from `/proc`.

use std::collections::HashMap;
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

/// CPU seconds (user + system) a process has used so far.
pub fn cpu_seconds(pid: u32) -> io::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).ok_or_else(|| io::Error::other("malformed stat"))?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after the name.
    let tick = |i: usize| fields.get(i).and_then(|v| v.parse::<u64>().ok()).ok_or_else(|| io::Error::other("stat"));
    let ticks = tick(11)? + tick(12)?;
    // SAFETY: sysconf has no preconditions.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1);
    Ok(ticks as f64 / per_second as f64)
}

/// The nanoseconds each thread of process `pid` has run so far, by thread id: the scheduler's
/// own count (`/proc/PID/task/TID/schedstat`), where `/proc/PID/stat` counts in clock ticks
/// (10 ms: ±7 % for a recorder using 130 ms of CPU in 30 s).
pub fn thread_run_ns(pid: u32) -> io::Result<Vec<(u32, u64)>> {
    let mut threads = Vec::new();
    for entry in std::fs::read_dir(format!("/proc/{pid}/task"))? {
        let entry = entry?;
        let Some(tid) = entry.file_name().to_str().and_then(|t| t.parse().ok()) else { continue };
        // A thread may end between the listing and the read.
        let Ok(schedstat) = std::fs::read_to_string(entry.path().join("schedstat")) else { continue };
        let ns = schedstat.split_whitespace().next().and_then(|v| v.parse().ok());
        threads.push((tid, ns.ok_or_else(|| io::Error::other(format!("malformed schedstat: {schedstat:?}")))?));
    }
    Ok(threads)
}

/// Measures the CPU time of some processes, in nanoseconds, from [`thread_run_ns`] sampled
/// every [`CpuMeter::INTERVAL`]: a thread that starts meanwhile counts from its start, one that
/// ends loses at most the time since the sample before.
pub struct CpuMeter {
    stop: Arc<AtomicBool>,
    sampler: JoinHandle<u64>,
}

impl CpuMeter {
    /// How often the threads are sampled.
    pub const INTERVAL: Duration = Duration::from_millis(200);

    /// Starts measuring the processes `pids` (their threads' time so far is the baseline).
    /// Fails when a process's threads cannot be read (gone, or a kernel without schedstat).
    pub fn start(pids: Vec<u32>) -> io::Result<CpuMeter> {
        for &pid in &pids {
            if thread_run_ns(pid)?.is_empty() {
                return Err(io::Error::other(format!("no thread of process {pid} has a readable schedstat")));
            }
        }
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let sample = move |seen: &mut HashMap<(u32, u32), u64>, total: &mut u64, baseline: bool| {
            for &pid in &pids {
                for (tid, ns) in thread_run_ns(pid).unwrap_or_default() {
                    let before = seen.insert((pid, tid), ns);
                    if !baseline {
                        *total += ns.saturating_sub(before.unwrap_or(0));
                    }
                }
            }
        };
        let mut seen = HashMap::new();
        let mut total = 0;
        sample(&mut seen, &mut total, true);
        let sampler = std::thread::spawn(move || {
            loop {
                let last = stopping.load(Ordering::Acquire);
                sample(&mut seen, &mut total, false);
                if last {
                    return total;
                }
                std::thread::park_timeout(Self::INTERVAL);
            }
        });
        Ok(CpuMeter { stop, sampler })
    }

    /// Takes a last sample and returns the CPU seconds used since [`CpuMeter::start`].
    pub fn stop(self) -> f64 {
        self.stop.store(true, Ordering::Release);
        self.sampler.thread().unpark();
        self.sampler.join().expect("the CPU sampler does not panic") as f64 / 1e9
    }
}

/// A process's resident memory now and at its peak, in KiB.
#[derive(Debug, Clone, Copy, Default)]
pub struct Memory {
    /// `VmRSS`.
    pub rss_kib: u64,
    /// `VmHWM`, the peak of `VmRSS`.
    pub peak_kib: u64,
}

/// The resident memory of a process.
pub fn memory(pid: u32) -> io::Result<Memory> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    };
    Ok(Memory { rss_kib: field("VmRSS:"), peak_kib: field("VmHWM:") })
}

/// CPU seconds and memory summed over several processes (those that have exited count 0).
pub fn sum(pids: &[u32]) -> (f64, Memory) {
    pids.iter().fold((0.0, Memory::default()), |(cpu, mem), &pid| {
        let m = memory(pid).unwrap_or_default();
        (
            cpu + cpu_seconds(pid).unwrap_or(0.0),
            Memory { rss_kib: mem.rss_kib + m.rss_kib, peak_kib: mem.peak_kib + m.peak_kib },
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        let pid = std::process::id();
        let spin = std::time::Instant::now();
        while spin.elapsed().as_millis() < 50 {}
        assert!(cpu_seconds(pid).unwrap() > 0.0);
        let m = memory(pid).unwrap();
        assert!(m.rss_kib > 0 && m.peak_kib >= m.rss_kib);
    }

    #[test]
    fn meters_a_thread_started_within_the_window_in_full() {
        let meter = CpuMeter::start(vec![std::process::id()]).unwrap();
        let (spun, spinning) = std::sync::mpsc::channel::<()>();
        let (done, wait) = std::sync::mpsc::channel::<()>();
        let spinner = std::thread::spawn(move || {
            // Spins until this thread has run 300 ms by its own clock, then stays alive.
            let run_ns = || {
                let mut t = libc::timespec { tv_sec: 0, tv_nsec: 0 };
                // SAFETY: `t` is a valid timespec to write to.
                unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) };
                t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
            };
            while run_ns() < 300_000_000 {}
            spun.send(()).unwrap();
            let _ = wait.recv();
        });
        spinning.recv().unwrap();
        let seconds = meter.stop();
        drop(done);
        spinner.join().unwrap();
        assert!(seconds >= 0.3, "{seconds} s for a thread that ran 0.3 s");
    }
}
