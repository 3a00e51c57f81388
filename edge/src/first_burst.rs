//! A session's first burst, held until it has been read whole. Cameras often send their first
//! second or so at once when PLAY starts (GStreamer's RTSP server sends what it encoded since
//! DESCRIBE: 0.7-0.8 s in the tests), and a frame stamped as it is read would be stamped that
//! much after its capture; the frames after it could then only catch up by squeezing the
//! timeline (`frame_clock.rs`). So a session's first items wait here, their read times noted
//! by the clocks (`FrameClock::seen`), until a video frame comes at the camera's pace; then the
//! frames of the burst are stamped by when its last frame arrived, at the camera's pace. A
//! camera that sends at its pace from the start waits for its second frame only. Pure logic.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Items held at most: the burst then ends here, whatever comes next.
pub const MOST_ITEMS: usize = 512;

/// How long the first held item waits at most.
pub const LONGEST: Duration = Duration::from_secs(3);

/// The items of a session's first burst, in the order they were read.
#[derive(Debug)]
pub struct FirstBurst<T> {
    held: VecDeque<T>,
    first_at: Option<Instant>,
    over: bool,
}

impl<T> Default for FirstBurst<T> {
    fn default() -> Self {
        FirstBurst { held: VecDeque::new(), first_at: None, over: false }
    }
}

impl<T> FirstBurst<T> {
    /// A new session's: holding.
    pub fn new() -> FirstBurst<T> {
        FirstBurst::default()
    }

    /// Whether the burst is over: items read now go through at once (after the held ones).
    pub fn is_over(&self) -> bool {
        self.over
    }

    /// Holds `item`, read at `now`. `in_burst`: whether it may be part of the burst (for a
    /// video frame, what `FrameClock::seen` says; anything else cannot end it). The burst is over
    /// at the first item that is not, or when [`MOST_ITEMS`] are held.
    pub fn hold(&mut self, item: T, in_burst: bool, now: Instant) {
        self.first_at.get_or_insert(now);
        self.held.push_back(item);
        self.over |= !in_burst || self.held.len() >= MOST_ITEMS;
    }

    /// When the first held item will have waited [`LONGEST`] (`None`: nothing held, or over).
    pub fn deadline(&self) -> Option<Instant> {
        self.first_at.filter(|_| !self.over).map(|at| at + LONGEST)
    }

    /// Ends the burst now: its deadline passed, or the stream ended.
    pub fn end(&mut self) {
        self.over = true;
    }

    /// The next held item, once the burst is over.
    pub fn release(&mut self) -> Option<T> {
        if self.over { self.held.pop_front() } else { None }
    }

    /// Whether no item is held.
    pub fn is_empty(&self) -> bool {
        self.held.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_are_held_until_one_comes_at_the_pace_then_released_in_order() {
        let now = Instant::now();
        let mut burst = FirstBurst::new();
        for i in 0..5 {
            burst.hold(i, true, now);
            assert_eq!(burst.release(), None, "held while the burst goes on");
        }
        assert_eq!(burst.deadline(), Some(now + LONGEST));
        burst.hold(5, false, now);
        assert!(burst.is_over() && burst.deadline().is_none());
        let released: Vec<i32> = std::iter::from_fn(|| burst.release()).collect();
        assert_eq!(released, [0, 1, 2, 3, 4, 5]);
        assert!(burst.is_empty());
    }

    #[test]
    fn a_burst_ends_at_its_item_bound_or_when_ended() {
        let now = Instant::now();
        let mut burst = FirstBurst::new();
        for i in 0..MOST_ITEMS {
            assert!(!burst.is_over(), "over after {i} items");
            burst.hold(i, true, now);
        }
        assert!(burst.is_over());
        assert_eq!(std::iter::from_fn(|| burst.release()).count(), MOST_ITEMS);

        let mut burst = FirstBurst::new();
        assert_eq!(burst.deadline(), None, "no deadline before the first item");
        burst.hold("a", true, now);
        burst.end();
        assert_eq!(burst.release(), Some("a"));
        assert_eq!(burst.release(), None);
    }
}
