//! The pre-buffer of a camera that records only around events: the last seconds of video in
//! RAM, with the audio and metadata that came with it, always starting at a video key frame,
//! bounded by time and by bytes. Whole GOPs (with what arrived beside them) leave from the
//! front.

use std::collections::VecDeque;

use media_store::{MediaKind, StoredFrame};

/// Whether a GOP starts at `frame`: a video key frame (every audio frame is a "key frame").
fn starts_gop(frame: &StoredFrame) -> bool {
    frame.kind == MediaKind::Video && frame.keyframe
}

/// The newest frames, from a video key frame on.
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

    /// Adds the newest frame (video, audio or metadata; dropped unless the buffer holds a
    /// video key frame to start from), then drops whole GOPs from the front while what stays
    /// still covers the time to keep, or while over the byte cap.
    pub fn push(&mut self, frame: StoredFrame) {
        if self.frames.is_empty() && !starts_gop(&frame) {
            return;
        }
        if self.keep_us <= 0 || self.max_bytes == 0 {
            return;
        }
        self.bytes += frame.data.len();
        self.frames.push_back(frame);
        let newest = self.frames.back().map_or(0, |f| f.wall_clock_us);
        loop {
            let Some(next_gop) = self.frames.iter().skip(1).position(starts_gop).map(|p| p + 1) else {
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

    /// Takes every buffered frame in arrival order, leaving the buffer empty. Audio and
    /// metadata stamped before the first video key frame (they arrived after it, their own
    /// clocks put them before) are left out: nothing in a recording precedes its first frame.
    pub fn take(&mut self) -> Vec<StoredFrame> {
        self.bytes = 0;
        let start_us = self.frames.front().map_or(i64::MIN, |f| f.wall_clock_us);
        self.frames.drain(..).filter(|f| f.kind == MediaKind::Video || f.wall_clock_us >= start_us).collect()
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

    /// An audio frame at `ms`.
    pub(crate) fn audio(ms: i64) -> StoredFrame {
        StoredFrame { kind: MediaKind::Audio, clock_rate: 48_000, pts: ms * 48, ..frame(ms, true, 200) }
    }

    #[test]
    fn audio_and_metadata_stay_with_their_video_from_its_first_key_frame() {
        let mut buf = PreBuffer::new(1_000_000, 1 << 30);
        buf.push(audio(0));
        assert!(buf.is_empty(), "no audio before the first video key frame");
        // 25 fps video, a key frame every 10 frames; audio every ~21 ms arriving a little late
        // (stamped 30 ms before it arrives); a metadata message every 200 ms.
        let mut next_audio = 0;
        for n in 0..100 {
            let ms = n * 40;
            buf.push(frame(ms, n % 10 == 0, 1_000));
            while next_audio + 30 <= ms {
                buf.push(audio(next_audio));
                next_audio += 21;
            }
            if n % 5 == 2 {
                let message = StoredFrame { kind: MediaKind::Metadata, ..frame(ms, true, 300) };
                buf.push(message);
            }
        }
        let frames = buf.take();
        assert!(frames[0].kind == MediaKind::Video && frames[0].keyframe);
        let start = frames[0].wall_clock_us;
        assert!(frames.iter().all(|f| f.wall_clock_us >= start), "nothing before the first key frame");
        let of = |k: MediaKind| frames.iter().filter(|f| f.kind == k).map(|f| f.wall_clock_us).collect::<Vec<_>>();
        let (video, sound, metadata) = (of(MediaKind::Video), of(MediaKind::Audio), of(MediaKind::Metadata));
        assert_eq!(video.len(), 30, "the GOPs at 2.8 s, 3.2 s and 3.6 s: at least 1 s before the newest");
        // Every audio frame from the key frame on, none lost: consecutive, 21 ms apart.
        assert!(sound.windows(2).all(|w| w[1] - w[0] == 21_000), "{sound:?}");
        assert!(sound[0] - start < 21_000 && sound.len() > 50, "{} audio frames from {}", sound.len(), sound[0]);
        assert_eq!(metadata.len(), 6, "{metadata:?}");
        assert!(buf.is_empty() && buf.bytes() == 0);
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
