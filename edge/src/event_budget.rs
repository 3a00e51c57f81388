//! How many of one camera's ONVIF notifications become events. A camera that sends
//! notifications without pause (a chattering cell-motion detector, a broken firmware repeating
//! `Initialized` for every property) must not push the other cameras' events out of the unit's
//! event ring before the link to central has sent them, nor fill the log.
//!
//! A token bucket: a burst of [`BURST`] notifications, then [`PER_SECOND`] a second. A change of
//! a lasting state (a topic and source whose `true`/`false` differs from the last one raised)
//! passes even with the bucket empty, so that a rule never misses the end of a motion, but it
//! may only borrow up to another [`BURST`]: a camera flipping a state a thousand times a second
//! is held too. Pure logic, fed with the arrival time of each message.

use std::collections::HashMap;

use crate::onvif_metadata::Notification;

/// Notifications raised at once before the steady rate applies.
pub const BURST: f64 = 20.0;
/// Notifications raised a second once the burst is spent.
pub const PER_SECOND: f64 = 10.0;
/// Lasting states remembered per camera (a camera inventing new topics cannot grow it
/// beyond this; a state past it is treated as a repeat).
const MAX_STATES: usize = 256;

/// One camera's budget of notifications (see the module docs).
#[derive(Debug)]
pub struct EventBudget {
    tokens: f64,
    last_us: Option<i64>,
    /// The last state raised per topic and source.
    states: HashMap<String, bool>,
}

impl Default for EventBudget {
    fn default() -> Self {
        EventBudget { tokens: BURST, last_us: None, states: HashMap::new() }
    }
}

impl EventBudget {
    /// Whether `n`, arrived at `now_us` (microseconds on any clock that does not run
    /// backwards by much; a step back refills nothing), becomes an event.
    pub fn admit(&mut self, now_us: i64, n: &Notification) -> bool {
        self.refill(now_us);
        // A lasting state this budget remembers (or has room to), with what it was.
        let state = n.state().and_then(|state| {
            let key = state_key(n);
            let known = self.states.get(&key).copied();
            (known.is_some() || self.states.len() < MAX_STATES).then_some((known, key, state))
        });
        let changes = state.as_ref().is_some_and(|(known, _, state)| *known != Some(*state));
        // A change passes while the debt stays within one more burst; anything else needs a token.
        let admitted = if changes { self.tokens > -BURST } else { self.tokens >= 1.0 };
        if admitted {
            self.tokens -= 1.0;
            if let Some((_, key, state)) = state {
                self.states.insert(key, state);
            }
        }
        admitted
    }

    fn refill(&mut self, now_us: i64) {
        if let Some(last) = self.last_us {
            let elapsed_s = (now_us - last).max(0) as f64 / 1e6;
            self.tokens = (self.tokens + elapsed_s * PER_SECOND).min(BURST);
        }
        self.last_us = Some(self.last_us.map_or(now_us, |last| last.max(now_us)));
    }
}

/// A lasting state is one topic from one source (e.g. motion of one video source, one input).
fn state_key(n: &Notification) -> String {
    let mut key = n.topic.clone();
    for (name, value) in &n.source {
        key.push('\u{1f}');
        key.push_str(name);
        key.push('=');
        key.push_str(value);
    }
    key
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn note(topic: &str, input: &str, data: Option<&str>) -> Notification {
        Notification {
            topic: topic.into(),
            operation: Some("Changed".into()),
            source: BTreeMap::from([("InputToken".to_string(), input.to_string())]),
            data: data.map(|d| BTreeMap::from([("State".to_string(), d.to_string())])).unwrap_or_default(),
        }
    }

    fn count(budget: &mut EventBudget, times_us: impl Iterator<Item = i64>, n: &Notification) -> usize {
        times_us.filter(|&t| budget.admit(t, n)).count()
    }

    #[test]
    fn a_flood_of_instant_events_is_held_to_the_burst_then_the_rate() {
        let mut budget = EventBudget::default();
        let n = note("Tampering", "1", None);
        // 1,000 a second for 10 s.
        let raised = count(&mut budget, (0..10_000).map(|i| i * 1_000), &n);
        let expected = BURST + 10.0 * PER_SECOND;
        assert!((raised as f64 - expected).abs() <= 2.0, "raised {raised}, expected about {expected}");
    }

    #[test]
    fn a_camera_within_the_rate_loses_nothing() {
        let mut budget = EventBudget::default();
        let n = note("Tampering", "1", None);
        let every_us = (1e6 / PER_SECOND) as i64;
        assert_eq!(count(&mut budget, (0..1_000).map(|i| i * every_us), &n), 1_000);
    }

    #[test]
    fn the_end_of_a_motion_passes_with_the_bucket_empty() {
        let mut budget = EventBudget::default();
        let noise = note("Tampering", "1", None);
        count(&mut budget, (0..100).map(|i| i * 10), &noise);
        assert!(!budget.admit(1_000, &noise), "the bucket is empty");
        assert!(budget.admit(1_001, &note("Motion", "1", Some("true"))), "a new state passes");
        assert!(!budget.admit(1_002, &note("Motion", "1", Some("true"))), "its repeat does not");
        assert!(budget.admit(1_003, &note("Motion", "1", Some("false"))), "its end passes");
        assert!(budget.admit(1_004, &note("Motion", "2", Some("true"))), "another source is its own state");
    }

    #[test]
    fn a_flapping_state_is_held_after_a_second_burst() {
        let mut budget = EventBudget::default();
        let (on, off) = (note("Motion", "1", Some("true")), note("Motion", "1", Some("false")));
        let raised = (0..10_000).filter(|&i| budget.admit(i * 10, if i % 2 == 0 { &on } else { &off })).count();
        // A burst from the bucket, one borrowed, and what 0.1 s refills.
        let most = 2.0 * BURST + 0.1 * PER_SECOND + 1.0;
        assert!(raised as f64 >= 2.0 * BURST && raised as f64 <= most, "raised {raised}");
    }

    #[test]
    fn invented_topics_cannot_grow_the_state_table() {
        let mut budget = EventBudget::default();
        for i in 0..10_000 {
            budget.admit(i * 1_000_000, &note(&format!("Topic{i}"), "1", Some("true")));
        }
        assert!(budget.states.len() <= MAX_STATES);
    }

    #[test]
    fn a_clock_step_back_refills_nothing() {
        let mut budget = EventBudget::default();
        let n = note("Tampering", "1", None);
        count(&mut budget, (0..100).map(|_| 5_000_000), &n);
        assert!(!budget.admit(1_000_000, &n), "earlier time: no refill");
        assert!(!budget.admit(5_000_000, &n), "back where it was: still none");
        assert!(budget.admit(5_200_000, &n), "time moved on past the last: refilled");
    }
}
