//! Motion from the compressed stream alone: a predicted frame of a still scene is small, one
//! of a moving scene is large. The detector keeps a running baseline of predicted-frame sizes
//! while the scene is still and reports motion when frames stay well above it; no decoding, so
//! it costs next to nothing. Key frames are ignored (their size says nothing about motion).

/// A change the detector reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MotionChange {
    /// Motion began.
    Started,
    /// The scene is still again.
    Stopped,
}

/// Predicted frames used to learn the baseline before anything is reported.
const WARM_UP_FRAMES: u32 = 10;
/// Consecutive large predicted frames that start motion.
const FRAMES_TO_START: u32 = 3;
/// The baseline follows a still scene with this weight per frame.
const BASELINE_WEIGHT: f64 = 0.05;
/// Motion ends after this long without a large frame.
const QUIET_US: i64 = 2_000_000;
/// A floor for the baseline as a share of the key frames' size, so that the noise of an
/// almost empty still frame does not count as motion.
const FLOOR_OF_KEYFRAME: f64 = 0.005;

/// One camera's detector.
#[derive(Debug, Clone)]
pub struct MotionDetector {
    start_ratio: f64,
    baseline: f64,
    keyframe_avg: f64,
    warm: u32,
    above: u32,
    active: bool,
    last_large_us: i64,
}

impl MotionDetector {
    /// A detector of `sensitivity` 1 (only large changes) to 10 (small ones); 5 is the default.
    /// Motion starts when predicted frames are 4.2 (1) … 3.0 (5) … 1.5 (10) times the baseline.
    pub fn new(sensitivity: u8) -> MotionDetector {
        let s = f64::from(sensitivity.clamp(1, 10));
        MotionDetector {
            start_ratio: 1.5 + (10.0 - s) * 0.3,
            baseline: 0.0,
            keyframe_avg: 0.0,
            warm: 0,
            above: 0,
            active: false,
            last_large_us: 0,
        }
    }

    /// Whether motion is going on.
    pub fn active(&self) -> bool {
        self.active
    }

    /// Looks at one frame of `bytes` at `time_us`; returns a change when there is one.
    pub fn frame(&mut self, bytes: usize, keyframe: bool, time_us: i64) -> Option<MotionChange> {
        let size = bytes as f64;
        if keyframe {
            self.keyframe_avg = if self.keyframe_avg == 0.0 { size } else { self.keyframe_avg * 0.8 + size * 0.2 };
            return None;
        }
        if self.warm < WARM_UP_FRAMES {
            self.warm += 1;
            self.baseline += (size - self.baseline) / f64::from(self.warm);
            return None;
        }
        let reference = self.baseline.max(self.keyframe_avg * FLOOR_OF_KEYFRAME).max(16.0);
        let large = size > reference * self.start_ratio;
        if self.active {
            if large {
                self.last_large_us = time_us;
            } else if time_us - self.last_large_us >= QUIET_US {
                self.active = false;
                self.above = 0;
                return Some(MotionChange::Stopped);
            }
            return None;
        }
        if large {
            self.above += 1;
            if self.above >= FRAMES_TO_START {
                self.active = true;
                self.last_large_us = time_us;
                return Some(MotionChange::Started);
            }
        } else {
            self.above = 0;
            self.baseline += (size - self.baseline) * BASELINE_WEIGHT;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `sizes` of predicted frames (a key frame of 20 kB every 25 frames) at 25 fps from
    /// frame `first`; returns the changes with their frame numbers.
    fn feed(d: &mut MotionDetector, first: i64, sizes: &[usize]) -> Vec<(i64, MotionChange)> {
        let mut out = Vec::new();
        for (i, &size) in sizes.iter().enumerate() {
            let n = first + i as i64;
            let key = n % 25 == 0;
            if let Some(c) = d.frame(if key { 20_000 } else { size }, key, n * 40_000) {
                out.push((n, c));
            }
        }
        out
    }

    #[test]
    fn a_burst_starts_and_ends_motion_with_hysteresis() {
        let mut d = MotionDetector::new(5);
        let mut sizes = vec![300usize; 100];
        sizes.extend([2_000; 50]);
        // A still-looking frame or two inside the motion does not end it.
        sizes[120] = 300;
        sizes[121] = 300;
        sizes.extend([300; 100]);
        let changes = feed(&mut d, 0, &sizes);
        assert_eq!(changes.len(), 2, "{changes:?}");
        assert_eq!(changes[0].1, MotionChange::Started);
        assert!((102..=104).contains(&changes[0].0), "three large frames start it: {changes:?}");
        assert_eq!(changes[1].1, MotionChange::Stopped);
        assert!((199..=202).contains(&changes[1].0), "two quiet seconds end it: {changes:?}");
        assert!(!d.active());
    }

    #[test]
    fn noise_and_slow_changes_are_not_motion() {
        let mut d = MotionDetector::new(5);
        // ±40 % noise around a slowly growing size (light changing): never motion.
        let sizes: Vec<usize> = (0..1000).map(|i| (400 + i / 2) * if i % 3 == 0 { 14 } else { 8 } / 10).collect();
        assert!(feed(&mut d, 0, &sizes).is_empty());
        // Tiny still frames (a few bytes of noise) against large key frames: the floor holds.
        let mut d = MotionDetector::new(10);
        let sizes: Vec<usize> = (0..500).map(|i| if i % 7 == 0 { 60 } else { 12 }).collect();
        assert!(feed(&mut d, 0, &sizes).is_empty());
    }

    #[test]
    fn sensitivity_changes_the_threshold() {
        let mut still = vec![1_000usize; 60];
        still.extend([2_500; 20]);
        assert!(feed(&mut MotionDetector::new(1), 0, &still).is_empty(), "2.5x is not enough at sensitivity 1");
        let changes = feed(&mut MotionDetector::new(10), 0, &still);
        assert_eq!(changes.first().map(|c| c.1), Some(MotionChange::Started), "{changes:?}");
    }
}
