//! A session's first burst, held until it has been read whole. Cameras often send their first
//! second or so at once when PLAY starts (GStreamer's RTSP server sends what it encoded since
//! DESCRIBE: 0.7-0.8 s in the tests), and a frame stamped as it is read would be stamped that
//! much after its capture; the frames after it could then only catch up by squeezing the
//! timeline (`frame_clock.rs`). So a session's first items wait here, their read times noted
//! by the clocks ([`FrameClock::seen`]), until a video frame comes at the camera's pace; then
//! the frames of the burst are stamped by when its last frame arrived, 0.04 s apart at 25 fps.
//! A camera that sends at its pace from the start waits for its second frame only.

use std::collections::VecDeque;

use retina::codec::CodecItem;

use crate::frame_clock::FrameClock;

/// Items held at most: the burst then ends here, whatever comes next.
const MOST_ITEMS: usize = 512;

/// How long the first held item waits at most, by the read times (µs).
const LONGEST_US: i64 = 3_000_000;

/// The items of a session's first burst, with the times they were read.
#[derive(Default)]
pub struct FirstBurst {
    held: VecDeque<(CodecItem, i64)>,
    over: bool,
}

impl FirstBurst {
    /// A new session's: holding.
    pub fn new() -> FirstBurst {
        FirstBurst::default()
    }

    /// Whether items read now go through at once.
    pub fn is_over(&self) -> bool {
        self.over
    }

    /// Holds `item`, read at `received_us`, noting its read time in `video`'s clock (video
    /// stream `video_stream`) or `audio`'s (stream `audio_stream`). The burst is over at the
    /// first video frame read at the camera's pace, at a change of the video's parameters, or
    /// at the bounds above.
    pub fn hold(
        &mut self,
        item: CodecItem,
        received_us: i64,
        (video_stream, video): (usize, &mut FrameClock),
        (audio_stream, audio): (Option<usize>, &mut FrameClock),
    ) {
        match &item {
            CodecItem::VideoFrame(f) if f.stream_id() == video_stream => {
                let t = f.timestamp();
                let new_parameters = f.has_new_parameters() && self.holds_video(video_stream);
                let in_burst = video.seen(t.timestamp() as u32, t.clock_rate().get(), received_us);
                // Frames after new parameters belong to them: stamped after the old ones.
                self.over |= !in_burst || new_parameters;
            }
            CodecItem::AudioFrame(f) if Some(f.stream_id()) == audio_stream => {
                let t = f.timestamp();
                audio.seen(t.timestamp() as u32, t.clock_rate().get(), received_us);
            }
            _ => {}
        }
        let first_us = self.held.front().map_or(received_us, |(_, at)| *at);
        self.over |= self.held.len() + 1 >= MOST_ITEMS || received_us - first_us >= LONGEST_US;
        self.held.push_back((item, received_us));
    }

    /// The next held item and its read time, once the burst is over.
    pub fn release(&mut self) -> Option<(CodecItem, i64)> {
        if self.over { self.held.pop_front() } else { None }
    }

    fn holds_video(&self, video_stream: usize) -> bool {
        self.held.iter().any(|(item, _)| matches!(item, CodecItem::VideoFrame(f) if f.stream_id() == video_stream))
    }
}
