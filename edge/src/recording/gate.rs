//! Which frames of a camera go to the store: the camera's recording mode, its schedule and
//! its triggers decide; the gate starts recording on a key frame (or with the pre-buffer,
//! which starts on one) and stops before a key frame, so every recording decodes alone.

use media_store::StoredFrame;
use serde::{Deserialize, Serialize};

use super::prebuffer::PreBuffer;

/// `mode` of a `[[camera]]`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordingMode {
    /// Every frame (the default).
    #[default]
    Continuous,
    /// Inside the camera's time profile, and around triggers outside it.
    Schedule,
    /// Only around triggers (its own motion, rules), with the pre- and post-buffer.
    Event,
    /// Never recorded (still streamed live and watched for motion).
    Off,
}

impl RecordingMode {
    /// The mode as written in the configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            RecordingMode::Continuous => "continuous",
            RecordingMode::Schedule => "schedule",
            RecordingMode::Event => "event",
            RecordingMode::Off => "off",
        }
    }

    /// Whether the mode uses a pre-buffer (it may record around triggers while idle).
    pub fn buffers(self) -> bool {
        matches!(self, RecordingMode::Schedule | RecordingMode::Event)
    }
}

/// What the camera should do with the current frame, before key-frame alignment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Want {
    /// Not record (keep the pre-buffer filled).
    Idle,
    /// Record from the next key frame (continuous, inside the schedule).
    Record,
    /// Record, starting with the pre-buffer (a trigger).
    Triggered,
}

/// The decision for `mode` when the schedule says `in_schedule` and a trigger is `triggered`.
pub fn want(mode: RecordingMode, in_schedule: bool, triggered: bool) -> Want {
    match mode {
        RecordingMode::Off => Want::Idle,
        RecordingMode::Continuous => Want::Record,
        RecordingMode::Schedule if in_schedule => Want::Record,
        RecordingMode::Schedule | RecordingMode::Event if triggered => Want::Triggered,
        RecordingMode::Schedule | RecordingMode::Event => Want::Idle,
    }
}

/// One camera's gate between ingest and the recorder.
#[derive(Debug)]
pub struct Gate {
    recording: bool,
    buffer: Option<PreBuffer>,
}

impl Gate {
    /// A gate, with a pre-buffer when given one.
    pub fn new(buffer: Option<PreBuffer>) -> Gate {
        Gate { recording: false, buffer }
    }

    /// Whether frames currently go to the store.
    pub fn recording(&self) -> bool {
        self.recording
    }

    /// The camera's stream restarted: what is buffered belongs to the old one.
    pub fn restart(&mut self) {
        self.recording = false;
        if let Some(b) = &mut self.buffer {
            b.clear();
        }
    }

    /// Passes `frame` on with `want`: everything to write goes to `write`, oldest first.
    pub fn frame(&mut self, frame: StoredFrame, want: Want, mut write: impl FnMut(StoredFrame)) {
        if self.recording {
            if want == Want::Idle && frame.keyframe {
                self.recording = false;
                self.buffer(frame);
            } else {
                write(frame);
            }
            return;
        }
        match want {
            Want::Idle => self.buffer(frame),
            Want::Triggered if self.buffer.as_ref().is_some_and(|b| !b.is_empty()) => {
                for f in self.buffer.as_mut().map(PreBuffer::take).unwrap_or_default() {
                    write(f);
                }
                self.recording = true;
                write(frame);
            }
            Want::Record | Want::Triggered if frame.keyframe => {
                if let Some(b) = &mut self.buffer {
                    b.clear();
                }
                self.recording = true;
                write(frame);
            }
            Want::Record | Want::Triggered => self.buffer(frame),
        }
    }

    /// Passes an audio frame or a metadata message on: written while the video records, else
    /// kept in the pre-buffer beside the video (dropped without one).
    pub fn side_frame(&mut self, frame: StoredFrame, mut write: impl FnMut(StoredFrame)) {
        if self.recording {
            write(frame);
        } else {
            self.buffer(frame);
        }
    }

    fn buffer(&mut self, frame: StoredFrame) {
        if let Some(b) = &mut self.buffer {
            b.push(frame);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::prebuffer::tests::frame;
    use super::*;

    /// Frames 0..n at 40 ms, a key frame every 10; `want_at(n)` per frame; returns the
    /// numbers of the frames written, in order.
    fn run(gate: &mut Gate, n: i64, want_at: impl Fn(i64) -> Want) -> Vec<i64> {
        let mut written = Vec::new();
        for i in 0..n {
            gate.frame(frame(i * 40, i % 10 == 0, 100), want_at(i), |f| written.push(f.wall_clock_us / 40_000));
        }
        written
    }

    #[test]
    fn modes() {
        assert_eq!(want(RecordingMode::Continuous, false, false), Want::Record);
        assert_eq!(want(RecordingMode::Off, true, true), Want::Idle);
        assert_eq!(want(RecordingMode::Schedule, true, true), Want::Record);
        assert_eq!(want(RecordingMode::Schedule, false, true), Want::Triggered);
        assert_eq!(want(RecordingMode::Schedule, false, false), Want::Idle);
        assert_eq!(want(RecordingMode::Event, true, false), Want::Idle);
        assert_eq!(want(RecordingMode::Event, false, true), Want::Triggered);
        assert!(RecordingMode::Event.buffers() && !RecordingMode::Continuous.buffers());
    }

    #[test]
    fn a_schedule_starts_at_the_first_key_frame_after_the_boundary_and_stops_before_one() {
        let mut gate = Gate::new(Some(PreBuffer::new(1_000_000, 1 << 20)));
        let written = run(&mut gate, 60, |i| if (13..37).contains(&i) { Want::Record } else { Want::Idle });
        assert_eq!(written, (20..40).collect::<Vec<_>>(), "no pre-buffer for a schedule; whole GOPs");
        assert!(!gate.recording());
    }

    #[test]
    fn a_trigger_writes_the_pre_buffer_first() {
        let mut gate = Gate::new(Some(PreBuffer::new(1_000_000, 1 << 20)));
        let written = run(&mut gate, 80, |i| if (45..52).contains(&i) { Want::Triggered } else { Want::Idle });
        // The pre-buffer keeps at least 1 s before its newest frame (44), from a key frame: 10;
        // then live frames until the next key frame after the trigger ends.
        assert_eq!(written, (10..60).collect::<Vec<_>>());
    }

    #[test]
    fn audio_follows_the_video_into_the_pre_buffer_and_out_with_a_trigger() {
        use super::super::prebuffer::tests::audio;
        let mut gate = Gate::new(Some(PreBuffer::new(1_000_000, 1 << 20)));
        let mut written = Vec::new();
        for i in 0..80 {
            let want = if (45..52).contains(&i) { Want::Triggered } else { Want::Idle };
            gate.frame(frame(i * 40, i % 10 == 0, 100), want, |f| written.push(f));
            gate.side_frame(audio(i * 40 + 5), |f| written.push(f));
        }
        let video: Vec<i64> = written
            .iter()
            .filter(|f| f.kind == media_store::MediaKind::Video)
            .map(|f| f.wall_clock_us / 40_000)
            .collect();
        assert_eq!(video, (10..60).collect::<Vec<_>>(), "as without audio");
        let sound: Vec<i64> = written
            .iter()
            .filter(|f| f.kind == media_store::MediaKind::Audio)
            .map(|f| f.wall_clock_us / 40_000)
            .collect();
        assert_eq!(sound, video, "each video frame's audio, from the pre-buffer on, in order");
        let mut none = Gate::new(None);
        let mut dropped = true;
        none.side_frame(audio(0), |_| dropped = false);
        assert!(dropped, "without a pre-buffer an idle gate drops audio");
    }

    #[test]
    fn without_a_pre_buffer_a_trigger_waits_for_a_key_frame() {
        let mut gate = Gate::new(None);
        let written = run(&mut gate, 40, |i| if i >= 5 { Want::Triggered } else { Want::Idle });
        assert_eq!(written, (10..40).collect::<Vec<_>>());
        gate.restart();
        assert!(!gate.recording());
    }
}
