//! A token bucket that paces fetches to a bandwidth cap.
//!
//! Issuing a fetch spends its byte budget up front (the bucket may go into debt); the answer
//! refunds what was not used. A fetch may be issued while the bucket holds any tokens, so the
//! long-run rate is the cap and bursts are bounded by the bucket size plus one fetch.

/// Pacing state.
#[derive(Debug, Clone)]
pub(crate) struct Pacer {
    rate_bps: Option<u64>,
    tokens: i64,
    burst: i64,
    last_us: Option<u64>,
}

impl Pacer {
    pub(crate) fn new() -> Pacer {
        Pacer { rate_bps: None, tokens: 0, burst: 0, last_us: None }
    }

    /// Sets the cap (`None`: unlimited). `min_burst` is at least one fetch's budget.
    pub(crate) fn set_rate(&mut self, rate_bps: Option<u64>, min_burst: u64, now: u64) {
        if self.rate_bps == rate_bps {
            return;
        }
        self.refill(now);
        let was_unlimited = self.rate_bps.is_none();
        self.rate_bps = rate_bps;
        if let Some(rate) = rate_bps {
            // A quarter of a second of the rate, at least one fetch.
            self.burst = (rate / 8 / 4).max(min_burst).min(i64::MAX as u64 / 2) as i64;
            self.tokens = if was_unlimited { self.burst } else { self.tokens.clamp(i64::MIN / 2, self.burst) };
            self.last_us = Some(now);
        }
    }

    pub(crate) fn refill(&mut self, now: u64) {
        let Some(rate) = self.rate_bps else { return };
        let last = *self.last_us.get_or_insert(now);
        if now <= last || rate == 0 {
            return;
        }
        let add = u128::from(rate) * u128::from(now - last) / 8 / 1_000_000;
        let tokens = i128::from(self.tokens) + add as i128;
        if tokens >= i128::from(self.burst) {
            self.tokens = self.burst;
            self.last_us = Some(now);
        } else {
            // Advance only by the time the whole bytes took, keeping the fraction for next time
            // (frequent calls must not round the rate down to nothing).
            self.tokens = tokens as i64;
            let used = (add * 8 * 1_000_000 / u128::from(rate)) as u64;
            self.last_us = Some(last + used);
        }
    }

    pub(crate) fn ready(&self) -> bool {
        self.rate_bps.is_none() || self.tokens > 0
    }

    /// Spends (positive) or refunds (negative) bytes.
    pub(crate) fn spend(&mut self, bytes: i64) {
        if self.rate_bps.is_some() {
            self.tokens = self.tokens.saturating_sub(bytes).clamp(i64::MIN / 2, self.burst);
        }
    }

    /// When the bucket will hold a token again, if it is empty.
    pub(crate) fn next_ready(&self) -> Option<u64> {
        let rate = self.rate_bps?;
        if self.tokens > 0 || rate == 0 {
            return None;
        }
        let deficit = (1 - i128::from(self.tokens)) as u128;
        let us = (deficit * 8 * 1_000_000).div_ceil(u128::from(rate));
        Some(self.last_us.unwrap_or(0).saturating_add(us.min(u128::from(u64::MAX)) as u64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paces_to_the_rate() {
        let mut p = Pacer::new();
        assert!(p.ready());
        // 8 Mbit/s = 1 MB/s; fetches of 100 kB.
        p.set_rate(Some(8_000_000), 100_000, 0);
        let mut now = 0;
        let mut sent = 0u64;
        while now < 10_000_000 {
            p.refill(now);
            if p.ready() {
                p.spend(100_000);
                sent += 100_000;
            } else {
                now = p.next_ready().unwrap().max(now + 1);
            }
        }
        // Ten seconds at 1 MB/s, plus the initial burst and one fetch of debt.
        assert!((10_000_000..=10_600_000).contains(&sent), "sent {sent}");
    }

    #[test]
    fn frequent_refills_keep_the_rate() {
        let mut p = Pacer::new();
        p.set_rate(Some(1_000_000), 1, 0); // 125 bytes per millisecond
        p.spend(p.tokens + 125_000); // one second of debt
        for now in 1..=1_000_000u64 {
            p.refill(now);
        }
        assert!((-10..=0).contains(&p.tokens), "{}", p.tokens);
    }

    #[test]
    fn refunds_and_unlimited() {
        let mut p = Pacer::new();
        p.spend(1_000_000);
        assert!(p.ready() && p.next_ready().is_none());
        p.set_rate(Some(8_000), 10, 0);
        p.spend(1000);
        assert!(!p.ready());
        p.spend(-1000);
        assert!(p.ready());
        p.set_rate(None, 10, 5);
        assert!(p.ready());
    }
}
