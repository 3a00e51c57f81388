//! The link model of one direction: decides at a packet's arrival whether it is dropped and,
//! if not, the instant it leaves the link. Pure computation on the arrival time, so the
//! schedule has no drift however late the emulator's threads run.
//!
//! A packet goes through, in order: the outage check, random loss, the bottleneck (a FIFO
//! drained at `rate_kbit`, drop-tail at the queue limit), then propagation delay with jitter.

use std::time::{Duration, Instant};

use crate::params::DirParams;

/// What becomes of a packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// It leaves the link at this instant.
    Deliver(Instant),
    /// Dropped by random loss.
    DropLoss,
    /// Dropped because the bottleneck queue was full.
    DropQueue,
    /// Dropped because the link is down.
    DropOutage,
}

/// One direction's link model.
pub struct Shaper {
    params: DirParams,
    rng: fastrand::Rng,
    /// When the bottleneck finishes sending the last accepted packet.
    busy_until: Option<Instant>,
    /// The latest release instant handed out (no packet may leave before it unless reordering).
    last_release: Option<Instant>,
}

impl Shaper {
    /// A model with these parameters whose random choices follow `seed`.
    pub fn new(params: DirParams, seed: u64) -> Shaper {
        Shaper { params, rng: fastrand::Rng::with_seed(seed), busy_until: None, last_release: None }
    }

    /// The parameters in force.
    pub fn params(&self) -> &DirParams {
        &self.params
    }

    /// Changes the parameters for packets arriving from now on. Taking the link down forgets
    /// the bottleneck's backlog (the caller drops what is queued).
    pub fn set_params(&mut self, params: DirParams) {
        if params.down {
            self.busy_until = None;
            self.last_release = None;
        }
        self.params = params;
    }

    /// The bytes waiting in the bottleneck at `now` (including the rest of the packet being sent).
    pub fn backlog_bytes(&self, now: Instant) -> u64 {
        match self.busy_until {
            Some(busy) if busy > now && self.params.rate_kbit > 0 => {
                let ns = (busy - now).as_nanos();
                (ns * u128::from(self.params.rate_kbit) * 1000 / 8 / 1_000_000_000) as u64
            }
            _ => 0,
        }
    }

    /// Decides the fate of a packet of `len` bytes (IP header included) arriving at `now`.
    pub fn admit(&mut self, now: Instant, len: usize) -> Verdict {
        let p = &self.params;
        if p.down {
            return Verdict::DropOutage;
        }
        if p.loss_pct > 0.0 && self.rng.f64() * 100.0 < p.loss_pct {
            return Verdict::DropLoss;
        }
        let mut leave = now;
        if p.rate_kbit > 0 {
            if self.backlog_bytes(now) + len as u64 > p.queue_limit() {
                return Verdict::DropQueue;
            }
            let start = self.busy_until.map_or(now, |b| b.max(now));
            // len × 8 bit / (rate_kbit × 1000 bit/s), in nanoseconds.
            let ns = len as u128 * 8 * 1_000_000 / u128::from(p.rate_kbit);
            leave = start + Duration::from_nanos(ns as u64);
            self.busy_until = Some(leave);
        }
        let mut delay = p.delay;
        if !p.jitter.is_zero() {
            let offset = (self.rng.f64() * 2.0 - 1.0) * p.jitter.as_secs_f64();
            delay = Duration::from_secs_f64((p.delay.as_secs_f64() + offset).max(0.0));
        }
        let mut release = leave + delay;
        if !p.reorder {
            release = self.last_release.map_or(release, |last| last.max(release));
        }
        self.last_release = Some(self.last_release.map_or(release, |last| last.max(release)));
        Verdict::Deliver(release)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(words: &str) -> DirParams {
        let mut p = [DirParams::default(), DirParams::default()];
        crate::params::apply_words(&mut p, words.split_whitespace()).unwrap();
        p[0].clone()
    }

    fn release(v: Verdict) -> Instant {
        match v {
            Verdict::Deliver(t) => t,
            other => panic!("expected delivery, got {other:?}"),
        }
    }

    #[test]
    fn delay_only() {
        let t0 = Instant::now();
        let mut s = Shaper::new(params("delay_ms=50"), 1);
        assert_eq!(release(s.admit(t0, 1500)), t0 + Duration::from_millis(50));
    }

    #[test]
    fn rate_serializes_back_to_back_packets() {
        let t0 = Instant::now();
        // 12 Mbit/s: a 1500-byte packet takes exactly 1 ms.
        let mut s = Shaper::new(params("rate_kbit=12000 delay_ms=10"), 1);
        for i in 1..=5u64 {
            assert_eq!(release(s.admit(t0, 1500)), t0 + Duration::from_millis(10 + i));
        }
        assert_eq!(s.backlog_bytes(t0), 7500);
        // After the queue drained, a packet is sent at once.
        let later = t0 + Duration::from_secs(1);
        assert_eq!(release(s.admit(later, 1500)), later + Duration::from_millis(11));
    }

    #[test]
    fn full_queue_drops_tail() {
        let t0 = Instant::now();
        let mut s = Shaper::new(params("rate_kbit=12000 queue_bytes=4500"), 1);
        let verdicts: Vec<_> = (0..5).map(|_| s.admit(t0, 1500)).collect();
        assert!(matches!(verdicts[2], Verdict::Deliver(_)));
        assert_eq!(verdicts[3], Verdict::DropQueue);
        // Half a millisecond later, 750 bytes drained: still no room for 1500.
        assert_eq!(s.admit(t0 + Duration::from_micros(500), 1500), Verdict::DropQueue);
        assert!(matches!(s.admit(t0 + Duration::from_millis(1), 1500), Verdict::Deliver(_)));
    }

    #[test]
    fn jitter_without_reordering_keeps_order() {
        let t0 = Instant::now();
        let mut s = Shaper::new(params("delay_ms=50 jitter_ms=20"), 7);
        let mut last = t0;
        let mut spread = (Duration::MAX, Duration::ZERO);
        for i in 0..1000u32 {
            let now = t0 + Duration::from_micros(100) * i;
            let r = release(s.admit(now, 100));
            assert!(r >= last, "reordered");
            last = r;
            spread = (spread.0.min(r - now), spread.1.max(r - now));
        }
        assert!(spread.0 >= Duration::from_millis(30) && spread.1 > Duration::from_millis(65), "{spread:?}");
    }

    #[test]
    fn jitter_with_reordering_stays_in_range() {
        let t0 = Instant::now();
        let mut s = Shaper::new(params("delay_ms=50 jitter_ms=20 reorder=1"), 7);
        let mut reordered = false;
        let mut last = t0;
        for i in 0..1000u32 {
            let now = t0 + Duration::from_micros(100) * i;
            let r = release(s.admit(now, 100));
            let d = r - now;
            assert!(d >= Duration::from_millis(30) && d <= Duration::from_millis(70), "{d:?}");
            reordered |= r < last;
            last = last.max(r);
        }
        assert!(reordered);
    }

    #[test]
    fn loss_is_seeded_and_near_its_rate() {
        let t0 = Instant::now();
        let run = |seed| {
            let mut s = Shaper::new(params("loss=10"), seed);
            (0..10_000).map(|_| s.admit(t0, 100) == Verdict::DropLoss).collect::<Vec<_>>()
        };
        let a = run(42);
        assert_eq!(a, run(42));
        let lost = a.iter().filter(|&&l| l).count();
        // 10 000 × 10 %: σ = 30.
        assert!((880..=1120).contains(&lost), "{lost}");
    }

    #[test]
    fn outage_drops_and_forgets_backlog() {
        let t0 = Instant::now();
        let mut s = Shaper::new(params("rate_kbit=12000"), 1);
        s.admit(t0, 1500);
        s.set_params(params("rate_kbit=12000 down=1"));
        assert_eq!(s.admit(t0, 1500), Verdict::DropOutage);
        s.set_params(params("rate_kbit=12000"));
        assert_eq!(release(s.admit(t0, 1500)), t0 + Duration::from_millis(1));
    }
}
