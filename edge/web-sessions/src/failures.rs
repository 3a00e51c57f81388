//! Failed logins counted over a sliding window, per key.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::{Duration, Instant};

/// At most `limit` failed logins per key within `window`; then the key waits until the oldest
/// of the last `limit` failures leaves the window (at least a second).
#[derive(Debug)]
pub struct FailureLimit<K> {
    limit: usize,
    window: Duration,
    max_keys: usize,
    by_key: HashMap<K, Vec<Instant>>,
}

impl<K: Hash + Eq + Clone> FailureLimit<K> {
    /// `limit` failures per key in `window`, tracking at most `max_keys` keys (so that guessed
    /// user names cannot fill memory: failures of further new keys are not counted by key).
    pub fn new(limit: usize, window: Duration, max_keys: usize) -> FailureLimit<K> {
        FailureLimit { limit, window, max_keys, by_key: HashMap::new() }
    }

    /// Forgets failures that have left the window.
    pub fn expire(&mut self, now: Instant) {
        let window = self.window;
        self.by_key.retain(|_, v| {
            v.retain(|t| now.duration_since(*t) < window);
            !v.is_empty()
        });
    }

    /// How long `key` must wait before its next try (`None`: it may try now). Call
    /// [`FailureLimit::expire`] first.
    pub fn blocked(&self, key: &K, now: Instant) -> Option<Duration> {
        let list = self.by_key.get(key)?;
        (self.limit > 0 && list.len() >= self.limit).then(|| {
            self.window.saturating_sub(now.duration_since(list[list.len() - self.limit])).max(Duration::from_secs(1))
        })
    }

    /// Counts a failure of `key`.
    pub fn failed(&mut self, key: &K, now: Instant) {
        if self.by_key.len() < self.max_keys || self.by_key.contains_key(key) {
            self.by_key.entry(key.clone()).or_default().push(now);
        }
    }

    /// Forgets `key`'s failures (after it logged in).
    pub fn forget(&mut self, key: &K) {
        self.by_key.remove(key);
    }

    /// Whether `key` has failures in the window.
    pub fn tracks(&self, key: &K) -> bool {
        self.by_key.contains_key(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wait_ends_when_the_oldest_counted_failure_leaves_the_window() {
        let t0 = Instant::now();
        let w = Duration::from_secs(60);
        let mut f = FailureLimit::new(2, w, 10);
        f.failed(&"a", t0);
        assert_eq!(f.blocked(&"a", t0), None);
        f.failed(&"a", t0 + Duration::from_secs(20));
        assert_eq!(f.blocked(&"a", t0 + Duration::from_secs(30)), Some(Duration::from_secs(30)));
        assert_eq!(f.blocked(&"b", t0), None);
        f.expire(t0 + w);
        assert_eq!(f.blocked(&"a", t0 + w), None, "one failure left in the window");
        assert_eq!(f.blocked(&"a", t0 + w - Duration::from_millis(1)), None);
        f.forget(&"a");
        assert!(!f.tracks(&"a"));
    }

    #[test]
    fn at_most_max_keys_are_tracked() {
        let t0 = Instant::now();
        let mut f = FailureLimit::new(1, Duration::from_secs(60), 2);
        for k in ["a", "b", "c"] {
            f.failed(&k, t0);
        }
        assert!(f.tracks(&"a") && f.tracks(&"b") && !f.tracks(&"c"));
        f.failed(&"a", t0);
        assert_eq!(f.blocked(&"a", t0), Some(Duration::from_secs(60)));
    }
}
