//! Congestion control for vehicle links: BBR's model of the path, with a window that keeps the
//! bottleneck's queue short.
//!
//! quinn paces by the congestion window (about 1.25 windows per smoothed RTT), not by the pacing
//! rate BBR computes. BBR's window is twice the bandwidth-delay product, so over a slow link the
//! sender keeps about one more BDP queued at the bottleneck: a full extra round trip of delay for
//! live video that shares the connection with a bulk transfer, whatever the stream priorities
//! (they order what the sender sends, not what already waits in the modem). BBR's packet
//! conservation after each loss also holds the window near what is in flight, which costs
//! throughput on radio links that lose packets for reasons other than congestion.
//!
//! [`LowQueueBbr`] keeps quinn's BBR for everything it measures (bottleneck bandwidth, minimum
//! RTT, its startup, drain and probing cycle) and replaces only the window: the pacing rate BBR
//! asks for times the minimum RTT, times [`HEADROOM`]: 1.2 BDP in flight if BBR's estimate were
//! the link's rate, enough to keep the link busy across delayed acknowledgements.
//!
//! BBR's start-up paces at 2.89 × its bandwidth estimate, and quinn's BBR estimate grows far
//! beyond the link's rate (acknowledgements that arrive in bursts inflate it): with the window
//! above alone, a backfill over a 10 Mbit/s, 100 ms link overflowed a one-BDP queue thousands of
//! times. So the window is also bounded by the delivery rate this controller measures itself
//! (bytes acknowledged per minimum-RTT interval, the largest of the last [`RATE_ROUNDS`]): at most
//! [`STARTUP_GROWTH`] × that rate × the minimum RTT, and never below BBR's initial window
//! (200 packets). Over that link the bound is about 1.9 BDP: no overflow, but about one BDP still
//! queued (measurements in BENCHMARKS.md, with a tighter bound that cost goodput).
//!
//! While the sender has a live stream open, the window is also held to the measured rate × the
//! minimum RTT × a gain that keeps the standing queue near a target delay
//! ([`crate::live_window`]), so live frames do not wait behind that BDP of bulk data.
//!
//! While live is open, a delivery-rate interval counts only if the window filled during it (or
//! its rate is the highest yet): live video alone sends paced bursts that quinn does not call
//! application-limited, and their low rates would otherwise replace the link's rate within
//! [`RATE_ROUNDS`] key frames, leaving a live window too small for a transfer that starts.

use std::any::Any;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use quinn::congestion::{BbrConfig, Controller, ControllerFactory, ControllerMetrics};
use quinn_proto::RttEstimator;

use crate::live_window::{LiveStreams, LiveWindow};

/// In-flight bytes allowed above the bandwidth-delay product that BBR's pacing rate implies.
pub const HEADROOM: f64 = 1.2;
/// The smallest window, in packets, whatever the estimate (as RFC 9002's minimum window).
const MIN_WINDOW_PACKETS: u64 = 4;
/// Most the window may exceed the measured delivery rate × the minimum RTT (see the module
/// documentation): the growth per round trip while the rate is being found.
pub const STARTUP_GROWTH: f64 = 1.5;
/// How many minimum-RTT intervals of delivery-rate samples are kept.
pub const RATE_ROUNDS: usize = 10;
/// The window counts as full when the bytes in flight came this many packets near it (quinn
/// stops a packet short of it).
const WINDOW_FULL_SLACK_PACKETS: u64 = 3;

/// Builds [`LowQueueBbr`] controllers for a `quinn::TransportConfig`.
#[derive(Debug)]
pub struct LowQueueBbrConfig {
    bbr: Arc<BbrConfig>,
    gentle_startup: bool,
    /// The sender's open live streams and the queue delay to aim at while any is open.
    live: Option<(LiveStreams, Duration)>,
}

impl Default for LowQueueBbrConfig {
    fn default() -> Self {
        LowQueueBbrConfig { bbr: Arc::default(), gentle_startup: true, live: None }
    }
}

impl LowQueueBbrConfig {
    /// Without the window's bound by the measured delivery rate (the controller as it was
    /// before; for side-by-side benchmarks).
    pub fn without_gentle_startup() -> Self {
        LowQueueBbrConfig { bbr: Arc::default(), gentle_startup: false, live: None }
    }

    /// Keeps the bottleneck's queue near `target` (a delay) while any of `streams` is open
    /// ([`crate::live_window`]). Needs the bound by the measured delivery rate (the default).
    pub fn with_live(mut self, streams: LiveStreams, target: Duration) -> Self {
        self.live = Some((streams, target));
        self
    }
}

impl ControllerFactory for LowQueueBbrConfig {
    fn build(self: Arc<Self>, now: Instant, current_mtu: u16) -> Box<dyn Controller> {
        let mut c = LowQueueBbr::new(self.bbr.clone().build(now, current_mtu), current_mtu);
        c.rate = self.gentle_startup.then(DeliveryRate::default);
        c.live = self.live.clone().filter(|_| self.gentle_startup).map(|(s, target)| LiveWindow::new(s, target));
        Box::new(c)
    }
}

/// The delivery rate measured from acknowledgements: bytes acknowledged per minimum-RTT
/// interval, the largest of the last [`RATE_ROUNDS`] intervals.
#[derive(Debug, Clone, Default)]
struct DeliveryRate {
    interval_start: Option<Instant>,
    bytes: u64,
    app_limited: bool,
    /// Bytes per second of recent intervals, newest last.
    samples: VecDeque<u64>,
}

impl DeliveryRate {
    /// Counts acknowledged bytes; returns the interval's rate when one ended.
    fn on_ack(&mut self, now: Instant, bytes: u64, app_limited: bool, min_rtt: Duration) -> Option<u64> {
        let start = *self.interval_start.get_or_insert(now);
        self.bytes += bytes;
        self.app_limited |= app_limited;
        let elapsed = now.saturating_duration_since(start);
        if elapsed < min_rtt.max(Duration::from_millis(5)) {
            return None;
        }
        let rate = (self.bytes as f64 / elapsed.as_secs_f64()) as u64;
        // An application-limited interval says little about the link, unless it saw more.
        if !self.app_limited || rate > self.max() {
            self.samples.push_back(rate);
            if self.samples.len() > RATE_ROUNDS {
                self.samples.pop_front();
            }
        }
        tracing::trace!(rate, app_limited = self.app_limited, "delivery rate interval");
        self.interval_start = Some(now);
        self.bytes = 0;
        self.app_limited = false;
        Some(rate)
    }

    /// The most the window may be for `min_rtt` ([`growth_bound`]); `None` before the first
    /// interval.
    fn bound(&self, min_rtt: Duration, floor: u64) -> Option<u64> {
        (!self.samples.is_empty()).then(|| growth_bound(self.max(), min_rtt, floor))
    }

    /// Bytes per second; 0 before the first interval.
    fn max(&self) -> u64 {
        self.samples.iter().copied().max().unwrap_or(0)
    }
}

/// quinn's BBR with a window of [`HEADROOM`] × the bandwidth-delay product its pacing rate
/// implies (see the module documentation).
pub struct LowQueueBbr {
    inner: Box<dyn Controller>,
    min_rtt: Option<Duration>,
    mtu: u16,
    /// The measured delivery rate, when the window is bounded by it.
    rate: Option<DeliveryRate>,
    /// The window while live streams are open, when the sender has any.
    live: Option<LiveWindow>,
    /// Bytes in flight as last reported, plus those sent since.
    in_flight: u64,
    /// The most bytes in flight since the current delivery-rate interval began.
    peak_in_flight: u64,
}

impl LowQueueBbr {
    /// Wraps `inner`, a BBR controller (any controller that reports a pacing rate works).
    pub fn new(inner: Box<dyn Controller>, mtu: u16) -> LowQueueBbr {
        LowQueueBbr { inner, min_rtt: None, mtu, rate: None, live: None, in_flight: 0, peak_in_flight: 0 }
    }

    /// The window without the live bound.
    fn bulk_window(&self) -> u64 {
        let window =
            window_for(self.inner.metrics().pacing_rate, self.min_rtt, self.mtu).unwrap_or_else(|| self.inner.window());
        match (&self.rate, self.min_rtt) {
            (Some(rate), Some(min_rtt)) => {
                rate.bound(min_rtt, self.inner.initial_window()).map_or(window, |b| window.min(b))
            }
            _ => window,
        }
    }
}

/// The bound [`STARTUP_GROWTH`] puts on the window for a measured delivery rate in bytes per
/// second and a minimum RTT, never below `floor` (the initial window: the first round trip
/// may always send that much).
pub fn growth_bound(delivery_rate: u64, min_rtt: Duration, floor: u64) -> u64 {
    ((delivery_rate as f64 * min_rtt.as_secs_f64() * STARTUP_GROWTH) as u64).max(floor)
}

/// The window for a pacing rate in bits per second and a minimum RTT; `None` while either is
/// not known yet (the inner controller's window applies then).
pub fn window_for(pacing_rate_bits: Option<u64>, min_rtt: Option<Duration>, mtu: u16) -> Option<u64> {
    let rate = pacing_rate_bits.filter(|&r| r > 0)?;
    let rtt = min_rtt.filter(|r| !r.is_zero())?;
    let bdp = rate as f64 / 8.0 * rtt.as_secs_f64();
    Some(((bdp * HEADROOM) as u64).max(MIN_WINDOW_PACKETS * u64::from(mtu)))
}

impl Controller for LowQueueBbr {
    fn on_sent(&mut self, now: Instant, bytes: u64, last_packet_number: u64) {
        self.in_flight += bytes;
        self.peak_in_flight = self.peak_in_flight.max(self.in_flight);
        self.inner.on_sent(now, bytes, last_packet_number);
    }

    fn on_ack(&mut self, now: Instant, sent: Instant, bytes: u64, app_limited: bool, rtt: &RttEstimator) {
        self.min_rtt = Some(rtt.min());
        if let Some(live) = &mut self.live {
            live.on_ack(now, sent, rtt.min());
        }
        // While live is open, an interval in which the window never filled says little about
        // the link either, even when quinn did not call it application-limited (a paced burst:
        // a key frame of live video alone): its low rate must not shrink the live window below
        // what a transfer needs. (Without live, every interval counts, as before: the window's
        // floor is the initial window there, and fresher samples let an inflated one expire.)
        let live = self.live.as_ref().is_some_and(LiveWindow::active);
        let window_full =
            !live || self.peak_in_flight + WINDOW_FULL_SLACK_PACKETS * u64::from(self.mtu) >= self.window();
        if let Some(rate) = &mut self.rate
            && rate.on_ack(now, bytes, app_limited || (live && !window_full), rtt.min()).is_some()
        {
            self.peak_in_flight = self.in_flight;
            tracing::trace!(
                min_rtt_us = rtt.min().as_micros() as u64,
                bound = rate.bound(rtt.min(), self.inner.initial_window()),
                paced = window_for(self.inner.metrics().pacing_rate, Some(rtt.min()), self.mtu),
                inner = self.inner.window(),
                live_queue_us = self.live.as_ref().map(|l| l.queue().as_micros() as u64),
                window = self.window(),
                "window"
            );
        }
        self.inner.on_ack(now, sent, bytes, app_limited, rtt);
    }

    fn on_end_acks(&mut self, now: Instant, in_flight: u64, app_limited: bool, largest_packet_num_acked: Option<u64>) {
        self.in_flight = in_flight;
        self.inner.on_end_acks(now, in_flight, app_limited, largest_packet_num_acked);
    }

    fn on_congestion_event(&mut self, now: Instant, sent: Instant, is_persistent_congestion: bool, lost_bytes: u64) {
        self.inner.on_congestion_event(now, sent, is_persistent_congestion, lost_bytes);
    }

    fn on_mtu_update(&mut self, new_mtu: u16) {
        self.mtu = new_mtu;
        self.inner.on_mtu_update(new_mtu);
    }

    fn window(&self) -> u64 {
        let bulk = self.bulk_window();
        match (&self.live, &self.rate, self.min_rtt) {
            (Some(live), Some(rate), Some(min_rtt)) if live.active() => {
                let measured = (!rate.samples.is_empty()).then(|| rate.max());
                live.window(measured, min_rtt, self.mtu).map_or(bulk, |w| w.min(bulk))
            }
            _ => bulk,
        }
    }

    fn metrics(&self) -> ControllerMetrics {
        let mut metrics = self.inner.metrics();
        metrics.congestion_window = self.window();
        metrics
    }

    fn clone_box(&self) -> Box<dyn Controller> {
        Box::new(LowQueueBbr {
            inner: self.inner.clone_box(),
            min_rtt: self.min_rtt,
            mtu: self.mtu,
            rate: self.rate.clone(),
            live: self.live.clone(),
            in_flight: self.in_flight,
            peak_in_flight: self.peak_in_flight,
        })
    }

    fn initial_window(&self) -> u64 {
        self.inner.initial_window()
    }

    fn into_any(self: Box<Self>) -> Box<dyn Any> {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_is_headroom_times_the_paced_bdp() {
        // 10 Mbit/s and 100 ms: a BDP of 125 000 bytes.
        let w = window_for(Some(10_000_000), Some(Duration::from_millis(100)), 1200).unwrap();
        assert_eq!(w, 150_000);
    }

    #[test]
    fn tiny_paths_keep_a_minimum_window() {
        let w = window_for(Some(100_000), Some(Duration::from_millis(1)), 1200).unwrap();
        assert_eq!(w, 4 * 1200);
    }

    #[test]
    fn unknown_rate_or_rtt_defers_to_bbr() {
        assert_eq!(window_for(None, Some(Duration::from_millis(50)), 1200), None);
        assert_eq!(window_for(Some(0), Some(Duration::from_millis(50)), 1200), None);
        assert_eq!(window_for(Some(1_000_000), None, 1200), None);
    }

    #[test]
    fn growth_is_bounded_by_the_measured_rate() {
        // 1 MB/s measured over 100 ms: 100 kB a round trip, 150 kB allowed.
        assert_eq!(growth_bound(1_000_000, Duration::from_millis(100), 12_000), 150_000);
        assert_eq!(growth_bound(10_000, Duration::from_millis(100), 12_000), 12_000);
    }

    #[test]
    fn delivery_rate_keeps_the_largest_recent_interval() {
        let t0 = Instant::now();
        let rtt = Duration::from_millis(100);
        let mut r = DeliveryRate::default();
        // 10 kB acknowledged every 10 ms: 1 MB/s.
        for i in 0..=20u64 {
            r.on_ack(t0 + Duration::from_millis(10 * i), 10_000, false, rtt);
        }
        let rate = r.max();
        assert!((900_000..=1_200_000).contains(&rate), "{rate}");
        // A slow, application-limited interval does not lower it.
        r.on_ack(t0 + Duration::from_millis(400), 1_000, true, rtt);
        assert_eq!(r.max(), rate);
        // After RATE_ROUNDS slower intervals that are not application-limited, it follows them.
        for i in 1..=RATE_ROUNDS as u64 {
            r.on_ack(t0 + Duration::from_millis(400 + 100 * i), 20_000, false, rtt);
        }
        assert!((199_000..=200_000).contains(&r.max()), "{}", r.max());
    }

    #[test]
    fn before_any_ack_the_window_is_bbrs_initial_window() {
        let now = Instant::now();
        let c = Arc::new(LowQueueBbrConfig::default()).build(now, 1200);
        assert_eq!(c.window(), c.initial_window());
        assert!(c.window() > 0);
    }
}
