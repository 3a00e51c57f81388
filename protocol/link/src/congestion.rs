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
//! asks for times the minimum RTT, times [`HEADROOM`]. In steady state that is 1.2 BDP in flight:
//! enough to keep the link busy across delayed acknowledgements, and at most 0.2 BDP queued.

use std::any::Any;
use std::sync::Arc;
use std::time::{Duration, Instant};

use quinn::congestion::{BbrConfig, Controller, ControllerFactory, ControllerMetrics};
use quinn_proto::RttEstimator;

/// In-flight bytes allowed above the bandwidth-delay product that BBR's pacing rate implies.
pub const HEADROOM: f64 = 1.2;
/// The smallest window, in packets, whatever the estimate (as RFC 9002's minimum window).
const MIN_WINDOW_PACKETS: u64 = 4;

/// Builds [`LowQueueBbr`] controllers for a `quinn::TransportConfig`.
#[derive(Debug, Default)]
pub struct LowQueueBbrConfig {
    bbr: Arc<BbrConfig>,
}

impl ControllerFactory for LowQueueBbrConfig {
    fn build(self: Arc<Self>, now: Instant, current_mtu: u16) -> Box<dyn Controller> {
        Box::new(LowQueueBbr::new(self.bbr.clone().build(now, current_mtu), current_mtu))
    }
}

/// quinn's BBR with a window of [`HEADROOM`] × the bandwidth-delay product its pacing rate
/// implies (see the module documentation).
pub struct LowQueueBbr {
    inner: Box<dyn Controller>,
    min_rtt: Option<Duration>,
    mtu: u16,
}

impl LowQueueBbr {
    /// Wraps `inner`, a BBR controller (any controller that reports a pacing rate works).
    pub fn new(inner: Box<dyn Controller>, mtu: u16) -> LowQueueBbr {
        LowQueueBbr { inner, min_rtt: None, mtu }
    }
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
        self.inner.on_sent(now, bytes, last_packet_number);
    }

    fn on_ack(&mut self, now: Instant, sent: Instant, bytes: u64, app_limited: bool, rtt: &RttEstimator) {
        self.min_rtt = Some(rtt.min());
        self.inner.on_ack(now, sent, bytes, app_limited, rtt);
    }

    fn on_end_acks(&mut self, now: Instant, in_flight: u64, app_limited: bool, largest_packet_num_acked: Option<u64>) {
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
        window_for(self.inner.metrics().pacing_rate, self.min_rtt, self.mtu).unwrap_or_else(|| self.inner.window())
    }

    fn metrics(&self) -> ControllerMetrics {
        let mut metrics = self.inner.metrics();
        metrics.congestion_window = self.window();
        metrics
    }

    fn clone_box(&self) -> Box<dyn Controller> {
        Box::new(LowQueueBbr { inner: self.inner.clone_box(), min_rtt: self.min_rtt, mtu: self.mtu })
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
    fn before_any_ack_the_window_is_bbrs_initial_window() {
        let now = Instant::now();
        let c = Arc::new(LowQueueBbrConfig::default()).build(now, 1200);
        assert_eq!(c.window(), c.initial_window());
        assert!(c.window() > 0);
    }
}
