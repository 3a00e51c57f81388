//! Each camera's share of the recorder's queue: with more than one camera, none may hold more
//! than half of it, so a camera that floods the unit (a broken encoder, a hostile stream)
//! loses its own frames and never the others'.

use std::sync::atomic::{AtomicUsize, Ordering};

/// Records each camera has queued, against a cap per camera.
#[derive(Debug)]
pub struct QueueShares {
    queued: Box<[AtomicUsize]>,
    cap: usize,
}

impl QueueShares {
    /// Shares of a queue of `capacity` records among `cameras` cameras.
    pub fn new(cameras: usize, capacity: usize) -> QueueShares {
        let cap = if cameras > 1 { (capacity / 2).max(1) } else { capacity };
        QueueShares { queued: (0..cameras).map(|_| AtomicUsize::new(0)).collect(), cap }
    }

    /// Takes a place for camera `index`; false when it already holds its share (the record
    /// must then be dropped). An index out of range is never limited.
    pub fn take(&self, index: usize) -> bool {
        let Some(queued) = self.queued.get(index) else { return true };
        if queued.fetch_add(1, Ordering::AcqRel) >= self.cap {
            queued.fetch_sub(1, Ordering::AcqRel);
            return false;
        }
        true
    }

    /// Records queued by all cameras now.
    pub fn queued(&self) -> usize {
        self.queued.iter().map(|q| q.load(Ordering::Acquire)).sum()
    }

    /// Gives back a place of camera `index` (its record left the queue, or was never queued).
    pub fn give_back(&self, index: usize) {
        if let Some(queued) = self.queued.get(index) {
            // Never below zero, whatever a caller does.
            let _ = queued.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flooding_camera_is_held_to_half_and_the_others_still_get_places() {
        let shares = QueueShares::new(3, 100);
        let taken = (0..1000).filter(|_| shares.take(0)).count();
        assert_eq!(taken, 50);
        assert!((0..50).all(|_| shares.take(1) || shares.take(2)), "the rest is left for the others");
        assert_eq!(shares.queued(), 100);
        shares.give_back(0);
        assert_eq!(shares.queued(), 99);
        assert!(shares.take(0), "a place given back can be taken again");
        assert!(!shares.take(0));
    }

    #[test]
    fn a_lone_camera_may_use_the_whole_queue() {
        let shares = QueueShares::new(1, 100);
        assert_eq!((0..1000).filter(|_| shares.take(0)).count(), 100);
    }

    #[test]
    fn giving_back_more_than_was_taken_does_not_wrap() {
        let shares = QueueShares::new(2, 10);
        shares.give_back(1);
        assert_eq!((0..100).filter(|_| shares.take(1)).count(), 5);
        assert!(shares.take(7), "an unknown camera is not limited");
    }
}
