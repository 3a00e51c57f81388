//! The pre-buffer of a camera that records only around events: the last seconds of video in
//! RAM, always starting at a key frame, bounded by time and by bytes. Whole GOPs leave from
//! the front.

use std::collections::VecDeque;

use media_store::StoredFrame;

/// The newest frames, from a key frame on.
#[derive(Debug)]
pub struct PreBuffer {
    frames: VecDeque<StoredFrame>,
    bytes: usize,
    keep_us: i64,
    max_bytes: usize,
}

impl PreBuffer {
    /// A buffer that keeps at least `keep_us` of video when it can (up to a GOP more), never
    /// more than `max_bytes` of frame data.
    pub fn new(keep_us: i64, max_bytes: usize) -> PreBuffer {
        PreBuffer { frames: VecDeque::new(), bytes: 0, keep_us, max_bytes }
    }

    /// Adds the newest frame (dropped unless the buffer holds a key frame to start from), then
    /// drops whole GOPs from the front while what stays still covers the time to keep, or while
    /// over the byte cap.
    pub fn push(&mut self, frame: StoredFrame) {
        if self.frames.is_empty() && !frame.keyframe {
            return;
        }
        if self.keep_us <= 0 || self.max_bytes == 0 {
            return;
        }
        self.bytes += frame.data.len();
        self.frames.push_back(frame);
        let newest = self.frames.back().map_or(0, |f| f.wall_clock_us);
        loop {
            let Some(next_gop) = self.frames.iter().skip(1).position(|f| f.keyframe).map(|p| p + 1) else {
                // One GOP only: it stays unless it alone is over the byte cap.
                if self.bytes > self.max_bytes {
                    self.clear();
                }
                return;
            };
            let over_bytes = self.bytes > self.max_bytes;
            let enough_without = newest - self.frames[next_gop].wall_clock_us >= self.keep_us;
            if !(over_bytes || enough_without) {
                return;
            }
            for f in self.frames.drain(..next_gop) {
                self.bytes -= f.data.len();
            }
        }
    }

    /// Takes every buffered frame, oldest first, leaving the buffer empty.
    pub fn take(&mut self) -> Vec<StoredFrame> {
        self.bytes = 0;
        self.frames.drain(..).collect()
    }

    /// Forgets everything (e.g. the camera's stream restarted).
    pub fn clear(&mut self) {
        self.frames.clear();
        self.bytes = 0;
    }

    /// Bytes of frame data held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A frame at `ms` of `bytes`.
    pub(crate) fn frame(ms: i64, keyframe: bool, bytes: usize) -> StoredFrame {
        StoredFrame {
            camera: "c".into(),
            stream: 0,
            parameters_seq: 0,
            kind: media_store::MediaKind::Video,
            keyframe,
            pts: ms * 90,
            clock_rate: 90_000,
            wall_clock_us: ms * 1000,
            data: vec![0; bytes],
        }
    }

    /// 25 fps, a key frame every `gop` frames, frames `n` in `range`.
    fn feed(buf: &mut PreBuffer, range: std::ops::Range<i64>, gop: i64) {
        for n in range {
            buf.push(frame(n * 40, n % gop == 0, if n % gop == 0 { 10_000 } else { 1_000 }));
        }
    }

    #[test]
    fn starts_at_a_key_frame_and_keeps_the_time_asked_for() {
        let mut buf = PreBuffer::new(2_000_000, 1 << 30);
        buf.push(frame(0, false, 100));
        assert!(buf.is_empty(), "nothing before the first key frame");
        feed(&mut buf, 1..400, 25);
        let frames = buf.take();
        assert!(frames[0].keyframe);
        let span = frames.last().unwrap().wall_clock_us - frames[0].wall_clock_us;
        assert!((2_000_000..3_000_000).contains(&span), "at least 2 s, at most a GOP more: {span}");
        assert!(frames.windows(2).all(|w| w[0].wall_clock_us < w[1].wall_clock_us), "in order");
        assert!(buf.is_empty() && buf.bytes() == 0);
    }

    #[test]
    fn the_byte_cap_drops_whole_gops() {
        let mut buf = PreBuffer::new(60_000_000, 80_000);
        feed(&mut buf, 0..500, 25);
        assert!(buf.bytes() <= 80_000, "{}", buf.bytes());
        let frames = buf.take();
        assert!(frames[0].keyframe);
        assert_eq!(frames.iter().map(|f| f.data.len()).sum::<usize>(), 2 * 34_000, "the two newest whole GOPs");
    }

    #[test]
    fn a_gop_over_the_cap_is_not_kept() {
        let mut buf = PreBuffer::new(10_000_000, 5_000);
        feed(&mut buf, 0..10, 100);
        assert!(buf.is_empty());
        let mut off = PreBuffer::new(0, 1 << 20);
        feed(&mut off, 0..10, 5);
        assert!(off.is_empty(), "a zero-second pre-buffer holds nothing");
    }
}
