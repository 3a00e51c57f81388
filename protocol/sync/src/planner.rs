//! Turns recording options into retrievals: pure functions, no state.
//!
//! The glue calls [`plan`] whenever an input changes (a new catalog, a remote event, the link came
//! back, a time-profile window opened) and queues the result with
//! [`crate::CentralSync::request`]. Only what central lacks and has not already queued (at the
//! same or a more urgent priority) is planned, so calling it again is harmless.

use std::collections::BTreeMap;
use std::ops::Range;

use protocol::sync::{CatalogSummary, RemoteEvent};

use crate::ranges::RangeSet;
use crate::retrieval::{Priority, Retrieval};

/// How central retrieves one camera's recordings. A camera may have several.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordingOption {
    /// Only when an operator asks ([`Priority::Manual`] requests; the planner adds nothing).
    OnRequest,
    /// Everything recorded inside these windows (a weekly schedule already resolved by the
    /// caller to absolute `[start, end)` wall-clock ranges, microseconds). [`Priority::Rule`].
    TimeProfile {
        /// The allowed windows.
        windows: Vec<Range<i64>>,
    },
    /// What was recorded while the link was down (`[start, end)` ranges). [`Priority::Backfill`].
    GapAfterLinkDown {
        /// When the link was down.
        down: Vec<Range<i64>>,
    },
    /// A window around each remote event concerning the camera. [`Priority::Event`].
    EventWindow {
        /// Video before the event, microseconds.
        pre_us: u64,
        /// Video after the event, microseconds.
        post_us: u64,
    },
}

/// Everything [`plan`] looks at.
#[derive(Debug, Clone, Copy)]
pub struct PlanInput<'a> {
    /// The unit's latest catalog.
    pub catalog: &'a CatalogSummary,
    /// Wall-clock ranges central already holds, per camera (runs of stored frames from the first
    /// frame's time to just after the last's).
    pub held: &'a BTreeMap<String, RangeSet<i64>>,
    /// The recording options of each camera.
    pub options: &'a BTreeMap<String, Vec<RecordingOption>>,
    /// Remote events of the unit to consider.
    pub events: &'a [RemoteEvent],
    /// Retrievals queued and not finished.
    pub queued: &'a [Retrieval],
}

/// The retrievals to queue, most urgent class first.
///
/// A range is planned when the unit has (or, after the catalog's `as_of_us`, will have) video of
/// it, central does not hold it, and no queued retrieval of the same or a more urgent priority
/// covers it.
pub fn plan(input: &PlanInput<'_>) -> Vec<Retrieval> {
    let mut out = Vec::new();
    for (camera, options) in input.options {
        let available = available(input.catalog, camera);
        let empty = RangeSet::new();
        let held = input.held.get(camera).unwrap_or(&empty);
        let mut taken = held.clone();
        for class in [Priority::Event, Priority::Manual, Priority::Rule, Priority::Backfill] {
            let queued: RangeSet<i64> = input
                .queued
                .iter()
                .filter(|q| &q.camera == camera && q.priority <= class)
                .map(|q| q.start_us..q.end_us)
                .collect();
            taken = taken.union(&queued);
            let wanted = wanted(options, class, camera, input.events);
            let todo = wanted.intersect(&available).subtract(&taken);
            for r in todo.iter() {
                out.push(Retrieval { camera: camera.clone(), start_us: r.start, end_us: r.end, priority: class });
            }
            taken = taken.union(&todo);
        }
    }
    out
}

/// Time ranges the unit has video of, or may still record (from the catalog's `as_of_us` on).
fn available(catalog: &CatalogSummary, camera: &str) -> RangeSet<i64> {
    let mut set: RangeSet<i64> = catalog
        .cameras
        .iter()
        .filter(|h| h.camera == camera)
        .flat_map(|h| h.spans.iter().map(|s| s.start_us..s.end_us.saturating_add(1)))
        .collect();
    set.insert(catalog.as_of_us..i64::MAX);
    set
}

/// The time ranges the options of one priority class want.
fn wanted(options: &[RecordingOption], class: Priority, camera: &str, events: &[RemoteEvent]) -> RangeSet<i64> {
    let mut set = RangeSet::new();
    for option in options {
        match (option, class) {
            (RecordingOption::TimeProfile { windows }, Priority::Rule) => {
                windows.iter().for_each(|w| set.insert(w.clone()));
            }
            (RecordingOption::GapAfterLinkDown { down }, Priority::Backfill) => {
                down.iter().for_each(|w| set.insert(w.clone()));
            }
            (RecordingOption::EventWindow { pre_us, post_us }, Priority::Event) => {
                let pre = (*pre_us).min(i64::MAX as u64) as i64;
                let post = (*post_us).min(i64::MAX as u64) as i64;
                for e in events.iter().filter(|e| e.cameras.is_empty() || e.cameras.iter().any(|c| c == camera)) {
                    set.insert(e.time_us.saturating_sub(pre)..e.time_us.saturating_add(post));
                }
            }
            _ => {}
        }
    }
    set
}

#[cfg(test)]
#[allow(clippy::single_range_in_vec_init)] // lists of one range are what these tests mean
mod tests {
    use super::*;
    use protocol::sync::{CameraHoldings, EventKind, Span};

    const S: i64 = 1_000_000;

    fn catalog() -> CatalogSummary {
        let span = |first: u64, start: i64, end: i64| Span {
            first_seq: first,
            last_seq: first + 99,
            start_us: start * S,
            end_us: end * S,
            bytes: 1000,
            frames: 100,
        };
        CatalogSummary {
            as_of_us: 1000 * S,
            cameras: vec![CameraHoldings {
                camera: "front".into(),
                spans: vec![span(0, 0, 100), span(100, 200, 300)],
                removed: vec![],
            }],
        }
    }

    fn event(id: u64, t: i64, cameras: &[&str]) -> RemoteEvent {
        RemoteEvent {
            id,
            cameras: cameras.iter().map(|c| c.to_string()).collect(),
            time_us: t * S,
            kind: EventKind::Motion,
        }
    }

    #[test]
    fn plans_only_what_is_missing() {
        let catalog = catalog();
        let mut held = BTreeMap::new();
        held.insert("front".to_string(), RangeSet::from(0..50 * S));
        let mut options = BTreeMap::new();
        options.insert(
            "front".to_string(),
            vec![
                RecordingOption::OnRequest,
                RecordingOption::EventWindow { pre_us: 10 * S as u64, post_us: 20 * S as u64 },
                RecordingOption::TimeProfile { windows: vec![0..250 * S] },
                RecordingOption::GapAfterLinkDown { down: vec![280 * S..2000 * S] },
            ],
        );
        let events = [event(1, 60, &["front"]), event(2, 150, &[]), event(3, 90, &["rear"])];
        let queued =
            [Retrieval { camera: "front".into(), start_us: 210 * S, end_us: 220 * S, priority: Priority::Rule }];
        let input = PlanInput { catalog: &catalog, held: &held, options: &options, events: &events, queued: &queued };
        let got = plan(&input);
        let r = |a: i64, b: i64, priority| Retrieval { camera: "front".into(), start_us: a, end_us: b, priority };
        assert_eq!(
            got,
            vec![
                // Event at 60 s: 50..80 s, less the held 0..50 s. The event at 150 s falls where the
                // unit has no video; the one for "rear" is not this camera's.
                r(50 * S, 80 * S, Priority::Event),
                // The profile, less held, the event window and the queued rule retrieval.
                r(80 * S, 100 * S + 1, Priority::Rule),
                r(200 * S, 210 * S, Priority::Rule),
                r(220 * S, 250 * S, Priority::Rule),
                // Backfill: recorded video in the gap, and from the catalog's as_of on.
                r(280 * S, 300 * S + 1, Priority::Backfill),
                r(1000 * S, 2000 * S, Priority::Backfill),
            ]
        );
        // Planning again with the result queued adds nothing.
        let queued: Vec<Retrieval> = queued.iter().cloned().chain(got).collect();
        let input = PlanInput { queued: &queued, ..input };
        assert!(plan(&input).is_empty());
    }

    #[test]
    fn a_more_urgent_class_is_planned_over_a_queued_lower_one() {
        let catalog = catalog();
        let held = BTreeMap::new();
        let mut options = BTreeMap::new();
        options.insert("front".to_string(), vec![RecordingOption::EventWindow { pre_us: 0, post_us: 5 * S as u64 }]);
        let events = [event(1, 10, &["front"])];
        let queued = [Retrieval { camera: "front".into(), start_us: 0, end_us: 100 * S, priority: Priority::Backfill }];
        let input = PlanInput { catalog: &catalog, held: &held, options: &options, events: &events, queued: &queued };
        assert_eq!(
            plan(&input),
            vec![Retrieval { camera: "front".into(), start_us: 10 * S, end_us: 15 * S, priority: Priority::Event }]
        );
    }
}
