//! Retrievals: what central was asked to get, how a time range becomes sequence numbers using
//! the unit's catalog, progress, and when a retrieval is finished.

use std::ops::Range;

use protocol::sync::{CameraHoldings, Span};
use serde::{Deserialize, Serialize};

use crate::ranges::RangeSet;

/// Central's id for a retrieval, unique for the life of a unit's durable state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct RetrievalId(pub u64);

/// Why a retrieval is wanted; decides the order (declaration order: `Event` first).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Priority {
    /// Video around a remote event.
    Event,
    /// An operator asked for it.
    Manual,
    /// A recording rule (time profile) wants it.
    Rule,
    /// Filling gaps (after link loss), lowest priority.
    Backfill,
}

/// A request for one camera's video of a wall-clock range.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Retrieval {
    /// The camera's id on the unit.
    pub camera: String,
    /// Start of the range, microseconds since the Unix epoch (inclusive).
    pub start_us: i64,
    /// End of the range, microseconds since the Unix epoch (exclusive).
    pub end_us: i64,
    /// Its priority class.
    pub priority: Priority,
}

/// Where a retrieval stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RetrievalState {
    /// Waiting: for the catalog, the link policy, or its turn.
    Queued,
    /// Fetches were issued for it.
    Running,
    /// Everything the unit had of the range is stored at central.
    Done,
    /// Finished, but part of the range could not be had (see [`Failure`]); what could be had is
    /// stored.
    Failed,
}

impl RetrievalState {
    /// The state's name in Convoy's HTTP APIs.
    pub fn as_str(self) -> &'static str {
        match self {
            RetrievalState::Queued => "queued",
            RetrievalState::Running => "running",
            RetrievalState::Done => "done",
            RetrievalState::Failed => "failed",
        }
    }

    /// True for `Done` and `Failed`.
    pub fn is_finished(self) -> bool {
        matches!(self, RetrievalState::Done | RetrievalState::Failed)
    }
}

/// Why a retrieval ended [`RetrievalState::Failed`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Failure {
    /// Retention on the unit removed part of the range before central got it.
    Groomed,
    /// The unit could not read part of the range, several times.
    Unreadable {
        /// The unit's last error.
        detail: String,
    },
    /// The unit has no such camera.
    UnknownCamera,
    /// Cancelled by [`crate::CentralSync::cancel`].
    Cancelled,
}

/// Progress of a retrieval, for the operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetrievalStatus {
    /// The state.
    pub state: RetrievalState,
    /// Bytes of the range central holds (estimated from the catalog, never decreasing).
    pub bytes_done: u64,
    /// Bytes of the range on the unit, from the catalog's span sizes; it may grow while the range
    /// is still being recorded. Equal to `bytes_done` when `Done`.
    pub bytes_total: u64,
    /// Why it failed, when it did.
    pub failure: Option<Failure>,
}

/// Part of a retrieval: a sequence-number range inside one catalog span, with its estimated bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Part {
    seqs: Range<u64>,
    bytes: u64,
}

/// How time ranges are turned into sequence numbers.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Resolve {
    /// Widening of the time range on both sides before interpolating.
    pub margin_us: u64,
    /// How long after `end_us` a catalog must be before the range counts as fully known.
    pub settle_us: u64,
}

/// A retrieval with everything central keeps about it (part of [`crate::CentralDurable`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetrievalRecord {
    id: RetrievalId,
    request: Retrieval,
    state: RetrievalState,
    parts: Vec<Part>,
    /// Union of the parts' sequence numbers.
    needed: RangeSet<u64>,
    /// Needed sequence numbers the unit can no longer give.
    lost: RangeSet<u64>,
    /// A catalog from after `end_us + settle` was seen: `needed` is complete.
    complete: bool,
    bytes_total: u64,
    bytes_done: u64,
    failure: Option<Failure>,
}

impl RetrievalRecord {
    pub(crate) fn new(id: RetrievalId, request: Retrieval) -> RetrievalRecord {
        RetrievalRecord {
            id,
            request,
            state: RetrievalState::Queued,
            parts: Vec::new(),
            needed: RangeSet::new(),
            lost: RangeSet::new(),
            complete: false,
            bytes_total: 0,
            bytes_done: 0,
            failure: None,
        }
    }

    /// The retrieval's id.
    pub fn id(&self) -> RetrievalId {
        self.id
    }

    /// What was asked.
    pub fn request(&self) -> &Retrieval {
        &self.request
    }

    /// Its progress.
    pub fn status(&self) -> RetrievalStatus {
        RetrievalStatus {
            state: self.state,
            bytes_done: self.bytes_done,
            bytes_total: self.bytes_total,
            failure: self.failure.clone(),
        }
    }

    pub(crate) fn state(&self) -> RetrievalState {
        self.state
    }

    pub(crate) fn set_running(&mut self) -> bool {
        if self.state == RetrievalState::Queued {
            self.state = RetrievalState::Running;
            return true;
        }
        false
    }

    /// Sequence numbers still to get: needed, not lost, and not in `have`.
    pub(crate) fn missing(&self, have: &RangeSet<u64>) -> RangeSet<u64> {
        self.needed.subtract(&self.lost).subtract(have)
    }

    /// True when some needed sequence number lies in `range`.
    pub(crate) fn needs(&self, range: &Range<u64>) -> bool {
        self.needed.intersects_range(range)
    }

    /// Adds what the catalog entry `holdings` (`None`: the unit has no such camera) says about
    /// the time range; sequence numbers of removed runs that central does not `held` are lost at
    /// once. Returns true when anything changed.
    pub(crate) fn resolve(
        &mut self,
        holdings: Option<&CameraHoldings>,
        held: &RangeSet<u64>,
        as_of_us: i64,
        cfg: Resolve,
    ) -> bool {
        if self.state.is_finished() || self.complete {
            return false;
        }
        let settled = as_of_us >= self.request.end_us.saturating_add_unsigned(cfg.settle_us);
        let Some(holdings) = holdings else {
            // A unit lists every camera it has; a missing one is unknown.
            if settled {
                self.complete = true;
                self.failure.get_or_insert(Failure::UnknownCamera);
                return true;
            }
            return false;
        };
        let mut changed = false;
        let margin = cfg.margin_us.min(i64::MAX as u64) as i64;
        let lo_t = self.request.start_us.saturating_sub(margin);
        let hi_t = self.request.end_us.saturating_add(margin); // exclusive
        let retained = holdings.spans.iter().map(|s| (s, false));
        let removed = holdings.removed.iter().map(|s| (s, true));
        for (span, gone) in retained.chain(removed) {
            if span.end_us < lo_t || span.start_us >= hi_t || span.last_seq < span.first_seq {
                continue;
            }
            let lo = seq_at(span, lo_t.max(span.start_us), false);
            let hi = seq_at(span, (hi_t - 1).min(span.end_us), true);
            let new = RangeSet::from(lo..hi.saturating_add(1)).subtract(&self.needed);
            for piece in new.iter() {
                let bytes = span_bytes(span, &piece);
                self.bytes_total = self.bytes_total.saturating_add(bytes);
                self.needed.insert(piece.clone());
                if gone {
                    let lost = RangeSet::from(piece.clone()).subtract(held);
                    if !lost.is_empty() {
                        self.lost = self.lost.union(&lost);
                        self.failure.get_or_insert(Failure::Groomed);
                    }
                }
                self.parts.push(Part { seqs: piece, bytes });
                changed = true;
            }
        }
        if settled {
            self.complete = true;
            changed = true;
        }
        changed
    }

    /// Marks the needed sequence numbers of `range` not in `have` as lost, for `reason`.
    pub(crate) fn mark_lost(&mut self, range: Range<u64>, have: &RangeSet<u64>, reason: &Failure) -> bool {
        if self.state.is_finished() {
            return false;
        }
        let newly = self.needed.clip(range).subtract(have).subtract(&self.lost);
        if newly.is_empty() {
            return false;
        }
        self.lost = self.lost.union(&newly);
        self.failure.get_or_insert_with(|| reason.clone());
        true
    }

    /// Updates `bytes_done` from what central holds; returns true when it rose.
    pub(crate) fn update_progress(&mut self, held: &RangeSet<u64>) -> bool {
        let mut done = 0u64;
        for part in &self.parts {
            let len = part.seqs.end - part.seqs.start;
            let have = held.clip(part.seqs.clone()).count();
            done = done.saturating_add(if have == len {
                part.bytes
            } else {
                (u128::from(part.bytes) * u128::from(have) / u128::from(len)) as u64
            });
        }
        if done > self.bytes_done {
            self.bytes_done = done;
            return true;
        }
        false
    }

    /// Finishes the retrieval when everything is known and nothing is left to get. Returns true
    /// when it finished now.
    pub(crate) fn check_finished(&mut self, held: &RangeSet<u64>) -> bool {
        if self.state.is_finished() || !self.complete || !self.missing(held).is_empty() {
            return false;
        }
        let lost_for_good = !self.lost.subtract(held).is_empty();
        self.state = if lost_for_good || self.failure == Some(Failure::UnknownCamera) {
            self.failure.get_or_insert(Failure::Groomed);
            RetrievalState::Failed
        } else {
            self.failure = None;
            RetrievalState::Done
        };
        true
    }

    pub(crate) fn cancel(&mut self) -> bool {
        if self.state.is_finished() {
            return false;
        }
        self.state = RetrievalState::Failed;
        self.failure = Some(Failure::Cancelled);
        true
    }
}

/// The sequence number a span's frames reach at time `t` (within the span), by linear
/// interpolation, rounded down (`up == false`) or up.
fn seq_at(span: &Span, t: i64, up: bool) -> u64 {
    let seqs = u128::from(span.last_seq - span.first_seq);
    let dur = span.end_us.abs_diff(span.start_us);
    if dur == 0 || seqs == 0 {
        return if up { span.last_seq } else { span.first_seq };
    }
    let num = seqs * u128::from(t.abs_diff(span.start_us));
    let d = u128::from(dur);
    let off = if up { num.div_ceil(d) } else { num / d };
    span.first_seq + (off.min(seqs) as u64)
}

/// The bytes of `seqs` within `span`, assuming evenly sized frames.
fn span_bytes(span: &Span, seqs: &Range<u64>) -> u64 {
    let span_len = u128::from(span.last_seq - span.first_seq) + 1;
    (u128::from(span.bytes) * u128::from(seqs.end - seqs.start) / span_len) as u64
}

/// Sequence numbers a span covers, as a half-open range.
pub(crate) fn span_seqs(span: &Span) -> Range<u64> {
    span.first_seq..span.last_seq + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(first: u64, last: u64, start: i64, end: i64) -> Span {
        Span {
            first_seq: first,
            last_seq: last,
            start_us: start,
            end_us: end,
            bytes: (last - first + 1) * 100,
            frames: last - first + 1,
        }
    }

    const CFG: Resolve = Resolve { margin_us: 0, settle_us: 0 };

    #[test]
    fn interpolation() {
        let s = span(100, 199, 0, 99_000);
        assert_eq!(seq_at(&s, 0, false), 100);
        assert_eq!(seq_at(&s, 99_000, true), 199);
        assert_eq!(seq_at(&s, 50_000, false), 150);
        assert_eq!(seq_at(&s, 50_500, true), 151);
        let one = span(7, 7, 5, 5);
        assert_eq!((seq_at(&one, 5, false), seq_at(&one, 5, true)), (7, 7));
    }

    #[test]
    fn resolve_clips_to_spans_and_completes() {
        let holdings = CameraHoldings {
            camera: "c".into(),
            spans: vec![span(0, 99, 0, 99_000), span(200, 299, 200_000, 299_000)],
            removed: vec![],
        };
        let req = Retrieval { camera: "c".into(), start_us: 50_000, end_us: 250_000, priority: Priority::Manual };
        let mut r = RetrievalRecord::new(RetrievalId(1), req);
        assert!(r.resolve(Some(&holdings), &RangeSet::new(), 240_000, CFG));
        assert_eq!(r.needed.as_slice(), &[50..100, 200..251]);
        assert!(!r.complete);
        assert_eq!(r.bytes_total, 101 * 100);
        assert!(r.resolve(Some(&holdings), &RangeSet::new(), 260_000, CFG));
        assert!(r.complete);
        let mut held = RangeSet::from(50..100);
        assert!(r.update_progress(&held));
        assert_eq!(r.bytes_done, 5000);
        assert!(!r.check_finished(&held));
        held.insert(200..251);
        r.update_progress(&held);
        assert!(r.check_finished(&held));
        assert_eq!(r.status().state, RetrievalState::Done);
        assert_eq!(r.status().bytes_done, r.status().bytes_total);
    }

    #[test]
    fn removed_range_fails_unless_held() {
        let holdings = CameraHoldings {
            camera: "c".into(),
            spans: vec![span(500, 599, 500_000, 599_000)],
            removed: vec![span(0, 399, 0, 399_000)],
        };
        let req = Retrieval { camera: "c".into(), start_us: 100_000, end_us: 200_000, priority: Priority::Event };
        let mut r = RetrievalRecord::new(RetrievalId(1), req.clone());
        r.resolve(Some(&holdings), &RangeSet::new(), 600_000, CFG);
        assert!(r.check_finished(&RangeSet::new()));
        assert_eq!(r.status().state, RetrievalState::Failed);
        assert_eq!(r.status().failure, Some(Failure::Groomed));
        // Central got that video before retention removed it: done.
        let held = RangeSet::from(0..400);
        let mut r = RetrievalRecord::new(RetrievalId(2), req);
        r.resolve(Some(&holdings), &held, 600_000, CFG);
        r.update_progress(&held);
        assert!(r.check_finished(&held));
        assert_eq!(r.status().state, RetrievalState::Done);
        assert_eq!(r.status().bytes_done, r.status().bytes_total);
    }

    #[test]
    fn unknown_camera_fails_once_complete() {
        let req = Retrieval { camera: "x".into(), start_us: 0, end_us: 10, priority: Priority::Event };
        let mut r = RetrievalRecord::new(RetrievalId(1), req);
        assert!(!r.resolve(None, &RangeSet::new(), 5, CFG));
        assert!(r.resolve(None, &RangeSet::new(), 10, CFG));
        assert!(r.check_finished(&RangeSet::new()));
        assert_eq!(r.status().failure, Some(Failure::UnknownCamera));
    }
}
