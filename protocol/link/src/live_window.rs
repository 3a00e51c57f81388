//! The congestion window while live video shares the connection with bulk transfers.
//!
//! Live frames have stream priority over retrieved chunks, but priority orders only what the
//! sender has not sent yet: a frame still waits behind every packet already queued at the
//! bottleneck (the modem, the radio). [`crate::congestion`]'s window keeps about one
//! bandwidth-delay product queued there while a backfill runs, a round trip (+95 ms over a
//! 100 ms link) added to every live frame. So while the sender has a live stream open
//! ([`LiveStreams`]), its window also follows the queue it measures: each minimum-RTT interval,
//! the shortest RTT of the packets acknowledged in it, less the path's minimum RTT, is the
//! standing queue; the window is the measured delivery rate × the minimum RTT × a gain that
//! is above 1 while that queue is below [`LiveWindow::target`] (so a transfer that starts
//! while someone watches still finds the link's rate) and below 1 while it is above (so the
//! queue drains). In steady state the queue stays near the target whatever the error of the
//! rate estimate. Bulk goodput is lower while live is open (the queue that kept the link busy
//! across delayed acknowledgements is gone); it is back to normal as soon as the last live
//! stream closes.
//!
//! The minimum RTT is quinn's, the lowest of the connection's life, as in the rest of the
//! controller: a path whose delay rises for good (a handover to a slower network) reads as
//! queue, and holds the live window at its least gain until live closes or the unit reconnects.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// The queue delay the window aims at while live is open, unless configured otherwise.
pub const DEFAULT_LIVE_QUEUE_TARGET: Duration = Duration::from_millis(20);
/// The smallest gain: the window drains a queue by at most this share of the rate per round.
pub const LIVE_GAIN_MIN: f64 = 0.75;
/// The largest gain: growth per round trip while the queue is short.
pub const LIVE_GAIN_MAX: f64 = 1.25;
/// The smallest window while live is open, in packets (enough for a key frame to start).
pub const LIVE_MIN_WINDOW_PACKETS: u64 = 16;

/// How many live streams the sender has open on a connection: shared by the code that opens
/// them and the connection's congestion controller. Clones share the count.
#[derive(Debug, Clone, Default)]
pub struct LiveStreams(Arc<AtomicUsize>);

impl LiveStreams {
    /// Counts one open live stream until the guard is dropped.
    pub fn open(&self) -> LiveStreamGuard {
        self.0.fetch_add(1, Ordering::Relaxed);
        LiveStreamGuard(self.0.clone())
    }

    /// Whether any live stream is open now.
    pub fn any(&self) -> bool {
        self.0.load(Ordering::Relaxed) > 0
    }
}

/// One open live stream, counted in its [`LiveStreams`] while it lives.
#[derive(Debug)]
pub struct LiveStreamGuard(Arc<AtomicUsize>);

impl Drop for LiveStreamGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The window's state while live may be open: the standing queue measured per interval.
#[derive(Debug, Clone)]
pub struct LiveWindow {
    streams: LiveStreams,
    target: Duration,
    interval_start: Option<Instant>,
    /// The shortest RTT sample of the current interval.
    interval_min: Option<Duration>,
    /// The standing queue the last complete interval showed.
    queue: Duration,
}

impl LiveWindow {
    /// A window that follows `streams`, aiming at a queue delay of `target` while any is open.
    pub fn new(streams: LiveStreams, target: Duration) -> LiveWindow {
        LiveWindow { streams, target, interval_start: None, interval_min: None, queue: Duration::ZERO }
    }

    /// The queue delay aimed at while live is open.
    pub fn target(&self) -> Duration {
        self.target
    }

    /// Whether a live stream is open now.
    pub fn active(&self) -> bool {
        self.streams.any()
    }

    /// The standing queue the last complete interval showed.
    pub fn queue(&self) -> Duration {
        self.queue
    }

    /// Takes the RTT sample of one acknowledged packet (`now − sent`, acknowledgement delay
    /// included: the interval's minimum is what counts).
    pub fn on_ack(&mut self, now: Instant, sent: Instant, min_rtt: Duration) {
        let sample = now.saturating_duration_since(sent);
        self.interval_min = Some(self.interval_min.map_or(sample, |m| m.min(sample)));
        let start = *self.interval_start.get_or_insert(now);
        if now.saturating_duration_since(start) >= min_rtt.max(Duration::from_millis(5)) {
            if let Some(min) = self.interval_min.take() {
                self.queue = min.saturating_sub(min_rtt);
            }
            self.interval_start = Some(now);
        }
    }

    /// The window while live is open, for a delivery rate in bytes per second (`None` before
    /// one was measured: the usual window applies then).
    pub fn window(&self, delivery_rate: Option<u64>, min_rtt: Duration, mtu: u16) -> Option<u64> {
        let rate = delivery_rate.filter(|&r| r > 0)?;
        Some(live_window(rate, min_rtt, self.queue, self.target, mtu))
    }
}

/// The gain on the measured bandwidth-delay product for a standing `queue` and a `target`:
/// `1 + (target − queue) / min_rtt`, within [`LIVE_GAIN_MIN`]..=[`LIVE_GAIN_MAX`]. At the
/// link's rate the queue settles where the window's excess over the true BDP equals it: half
/// the target if the rate estimate is exact, a little more if it is high.
pub fn live_gain(queue: Duration, target: Duration, min_rtt: Duration) -> f64 {
    let rtt = min_rtt.as_secs_f64().max(0.001);
    (1.0 + (target.as_secs_f64() - queue.as_secs_f64()) / rtt).clamp(LIVE_GAIN_MIN, LIVE_GAIN_MAX)
}

/// The window while live is open: `delivery_rate` (bytes per second) × `min_rtt` ×
/// [`live_gain`], never below [`LIVE_MIN_WINDOW_PACKETS`].
pub fn live_window(delivery_rate: u64, min_rtt: Duration, queue: Duration, target: Duration, mtu: u16) -> u64 {
    let bdp = delivery_rate as f64 * min_rtt.as_secs_f64();
    ((bdp * live_gain(queue, target, min_rtt)) as u64).max(LIVE_MIN_WINDOW_PACKETS * u64::from(mtu))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: fn(u64) -> Duration = Duration::from_millis;

    #[test]
    fn guards_count_open_streams() {
        let streams = LiveStreams::default();
        assert!(!streams.any());
        let a = streams.open();
        let b = streams.clone().open();
        drop(a);
        assert!(streams.any(), "one still open");
        drop(b);
        assert!(!streams.any());
    }

    #[test]
    fn gain_grows_on_an_empty_queue_and_drains_a_long_one() {
        assert!((live_gain(MS(0), MS(20), MS(100)) - 1.2).abs() < 1e-9);
        assert!((live_gain(MS(20), MS(20), MS(100)) - 1.0).abs() < 1e-9);
        assert!((live_gain(MS(30), MS(20), MS(100)) - 0.9).abs() < 1e-9);
        assert_eq!(live_gain(MS(500), MS(20), MS(100)), LIVE_GAIN_MIN);
        assert_eq!(live_gain(MS(0), MS(20), MS(10)), LIVE_GAIN_MAX);
    }

    #[test]
    fn window_is_the_measured_bdp_times_the_gain_with_a_floor() {
        // 1.25 MB/s over 100 ms: a BDP of 125 kB; a queue of 10 ms under a 20 ms target: 1.1.
        assert_eq!(live_window(1_250_000, MS(100), MS(10), MS(20), 1200), 137_500);
        assert_eq!(live_window(10_000, MS(100), MS(0), MS(20), 1200), LIVE_MIN_WINDOW_PACKETS * 1200);
    }

    #[test]
    fn the_standing_queue_is_the_shortest_rtt_of_an_interval_over_the_minimum() {
        let t0 = Instant::now();
        let min_rtt = MS(100);
        let mut w = LiveWindow::new(LiveStreams::default(), MS(20));
        assert_eq!(w.window(None, min_rtt, 1200), None, "no rate yet");
        // One interval of acknowledgements whose RTTs are 130..=180 ms: a 30 ms queue.
        for i in 0..=10u64 {
            let now = t0 + MS(200 + 10 * i);
            w.on_ack(now, now - MS(130 + 5 * (i % 11)), min_rtt);
        }
        assert_eq!(w.queue(), MS(30));
        // The next interval's queue is short: the window grows again.
        for i in 1..=10u64 {
            let now = t0 + MS(300 + 10 * i);
            w.on_ack(now, now - MS(104), min_rtt);
        }
        assert_eq!(w.queue(), MS(4));
        assert!(w.window(Some(1_250_000), min_rtt, 1200).unwrap() > 125_000);
        assert!(!w.active(), "no stream open");
    }
}
