//! Why cameras record outside their mode's own times: holds set by the rule engine and by a
//! camera's own motion, each until a time (or for as long as its trigger lasts). Shared by the
//! rule engine (which sets holds) and the camera tasks (which ask once per frame).

use std::collections::HashMap;
use std::sync::Mutex;

/// A hold that lasts until its trigger ends.
pub const UNTIL_ENDED: i64 = i64::MAX;

/// The holds on one camera, by who set them.
#[derive(Debug, Default)]
pub struct Holds {
    holds: Mutex<HashMap<String, i64>>,
}

impl Holds {
    /// Sets `who`'s hold until `until_us` ([`UNTIL_ENDED`]: until it is set again).
    pub fn hold(&self, who: &str, until_us: i64) {
        self.lock().insert(who.to_owned(), until_us);
    }

    /// Whether some hold, extended by `post_us`, covers `now_us`; forgets holds that ended.
    pub fn active(&self, now_us: i64, post_us: i64) -> bool {
        let mut holds = self.lock();
        holds.retain(|_, until| until.saturating_add(post_us) > now_us);
        !holds.is_empty()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, i64>> {
        self.holds.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_end_after_their_time_plus_the_post_buffer() {
        let h = Holds::default();
        assert!(!h.active(0, 5));
        h.hold("rule", UNTIL_ENDED);
        h.hold("motion", 100);
        assert!(h.active(50, 5));
        h.hold("rule", 10);
        assert!(h.active(104, 5), "motion's hold plus the post-buffer");
        assert!(!h.active(105, 5));
        assert!(!h.active(0, 5), "ended holds are forgotten");
        h.hold("rule", UNTIL_ENDED);
        assert!(h.active(i64::MAX - 1, 5), "until its trigger ends");
    }
}
