//! What the server delivered: frames written in full, frame times that passed without a frame
//! (a client too slow to take them, or a server too busy to send them), and writes that took
//! longer than a frame time (the client not reading: its socket full).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

/// Totals over every session since the server started.
#[derive(Debug, Default)]
pub struct ServedStats {
    sessions: AtomicU64,
    frames_written: AtomicU64,
    frames_skipped: AtomicU64,
    slow_writes: AtomicU64,
}

impl ServedStats {
    /// Adds one ended session's counts.
    pub(crate) fn add(&self, pace: &SessionPace) {
        self.sessions.fetch_add(1, Ordering::Relaxed);
        self.frames_written.fetch_add(pace.written, Ordering::Relaxed);
        self.frames_skipped.fetch_add(pace.skipped(), Ordering::Relaxed);
        self.slow_writes.fetch_add(pace.slow_writes, Ordering::Relaxed);
    }

    /// Frame writes that took longer than a frame time.
    pub fn slow_writes(&self) -> u64 {
        self.slow_writes.load(Ordering::Relaxed)
    }

    /// Sessions that played and ended.
    pub fn sessions(&self) -> u64 {
        self.sessions.load(Ordering::Relaxed)
    }

    /// Frames written to clients in full.
    pub fn frames_written(&self) -> u64 {
        self.frames_written.load(Ordering::Relaxed)
    }

    /// Frame times that passed without a frame written.
    pub fn frames_skipped(&self) -> u64 {
        self.frames_skipped.load(Ordering::Relaxed)
    }
}

/// One session's playing time and frames written, to tell frames due from frames sent.
#[derive(Debug)]
pub(crate) struct SessionPace {
    period: Duration,
    played: Duration,
    playing_since: Option<Instant>,
    written: u64,
    slow_writes: u64,
}

impl SessionPace {
    pub(crate) fn new(period: Duration) -> Self {
        Self { period, played: Duration::ZERO, playing_since: None, written: 0, slow_writes: 0 }
    }

    pub(crate) fn play(&mut self) {
        self.playing_since.get_or_insert_with(Instant::now);
    }

    pub(crate) fn pause(&mut self) {
        if let Some(since) = self.playing_since.take() {
            self.played += since.elapsed();
        }
    }

    /// Counts a frame written in full, which took `took` to write.
    pub(crate) fn written(&mut self, took: Duration) {
        self.written += 1;
        if took > self.period {
            self.slow_writes += 1;
        }
    }

    pub(crate) fn slow_writes(&self) -> u64 {
        self.slow_writes
    }

    pub(crate) fn frames_written(&self) -> u64 {
        self.written
    }

    /// Frame times passed without a frame (the first comes at PLAY), not counting one that
    /// may be in flight when this is asked.
    pub(crate) fn skipped(&self) -> u64 {
        if self.played.is_zero() && self.playing_since.is_none() {
            return 0;
        }
        let played = self.played + self.playing_since.map_or(Duration::ZERO, |s| s.elapsed());
        let due = (played.as_nanos() / self.period.as_nanos().max(1)) as u64 + 1;
        due.saturating_sub(self.written + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn counts_frame_times_without_a_frame() {
        let mut pace = SessionPace::new(Duration::from_millis(40));
        assert_eq!(pace.skipped(), 0);
        pace.play();
        pace.written(Duration::from_millis(50));
        tokio::time::advance(Duration::from_millis(400)).await;
        for _ in 0..5 {
            pace.written(Duration::ZERO);
        }
        // 11 frame times, 6 written, one may be in flight.
        assert_eq!(pace.skipped(), 4);
        pace.pause();
        tokio::time::advance(Duration::from_secs(5)).await;
        assert_eq!(pace.skipped(), 4);
        let stats = ServedStats::default();
        stats.add(&pace);
        assert_eq!(
            (stats.sessions(), stats.frames_written(), stats.frames_skipped(), stats.slow_writes()),
            (1, 6, 4, 1)
        );
    }
}
