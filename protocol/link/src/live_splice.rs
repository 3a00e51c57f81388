//! Where a live subscription that started with frames read from the recordings meets the
//! hub's stream: the hub's messages up to the last frame already sent are dropped, so that
//! every frame is sent once and none is missed. Pure logic; used by
//! [`crate::live::LiveSubscription::start_from`].

use std::sync::Arc;

use protocol::interconnect::LiveMessage;

/// The seam between a start read from the recordings and the hub's stream.
#[derive(Debug)]
pub(crate) struct Splice {
    /// The wall clock of the last frame already sent: the hub's frames up to it are doubles.
    through_us: i64,
    /// The codec parameters last sent.
    last_parameters: Option<Arc<LiveMessage>>,
    /// Parameters from the hub, held until the frame after them says whether they were sent.
    held: Option<Arc<LiveMessage>>,
    /// The first new frame has passed: the stream goes on unfiltered.
    done: bool,
}

impl Splice {
    /// A seam after `sent` (parameters and frames, in order, the last frame at `through_us`).
    pub(crate) fn after(sent: &[Arc<LiveMessage>], through_us: i64) -> Splice {
        let last_parameters = sent.iter().rev().find(|m| matches!(***m, LiveMessage::Parameters(_))).cloned();
        Splice { through_us, last_parameters, held: None, done: false }
    }

    /// Whether the first new frame has passed (nothing more is filtered).
    pub(crate) fn done(&self) -> bool {
        self.done
    }

    /// The messages to forward for `msg` from the hub, in order (none, it, or parameters
    /// held before it and it). A frame's wall clock grows with every frame of a camera, so
    /// the hub's frames up to the last one sent are the ones already sent, and parameters the
    /// hub sent before one of those were recorded before it and sent too.
    pub(crate) fn pass(&mut self, msg: Arc<LiveMessage>) -> Vec<Arc<LiveMessage>> {
        if self.done {
            return vec![msg];
        }
        match &*msg {
            LiveMessage::Parameters(_) => {
                self.held = Some(msg);
                Vec::new()
            }
            LiveMessage::Frame(f) if f.wall_clock_us <= self.through_us => {
                self.held = None;
                Vec::new()
            }
            LiveMessage::Frame(_) => {
                self.done = true;
                let held = self.held.take().filter(|p| self.last_parameters.as_ref().is_none_or(|last| last != p));
                held.into_iter().chain([msg]).collect()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use protocol::interconnect::{MediaFrame, VideoParameters};

    use super::*;

    fn frame(wall: i64, keyframe: bool) -> Arc<LiveMessage> {
        Arc::new(LiveMessage::Frame(MediaFrame {
            pts: wall,
            clock_rate: 90_000,
            wall_clock_us: wall,
            keyframe,
            data: vec![wall as u8],
        }))
    }

    fn params(width: u32) -> Arc<LiveMessage> {
        Arc::new(LiveMessage::Parameters(VideoParameters {
            rfc6381_codec: "avc1.4d401e".into(),
            width,
            height: 360,
            extra_data: vec![1],
        }))
    }

    fn walls(out: &[Arc<LiveMessage>]) -> Vec<i64> {
        out.iter()
            .map(|m| match &**m {
                LiveMessage::Frame(f) => f.wall_clock_us,
                LiveMessage::Parameters(p) => -i64::from(p.width),
            })
            .collect()
    }

    /// Sends the recorded start, then the hub's messages through the seam.
    fn splice(sent: &[Arc<LiveMessage>], hub: &[Arc<LiveMessage>]) -> Vec<i64> {
        let through = sent.iter().rev().find_map(|m| match &**m {
            LiveMessage::Frame(f) => Some(f.wall_clock_us),
            LiveMessage::Parameters(_) => None,
        });
        let mut s = Splice::after(sent, through.unwrap());
        let mut out = sent.to_vec();
        for m in hub {
            out.extend(s.pass(m.clone()));
        }
        walls(&out)
    }

    #[test]
    fn overlapping_frames_are_sent_once_and_in_order() {
        let recorded = [params(640), frame(10, true), frame(20, false), frame(30, false)];
        // The hub's buffer began before the recording's answer: 20 and 30 come twice.
        let hub = [frame(20, false), frame(30, false), frame(40, false), frame(50, true)];
        assert_eq!(splice(&recorded, &hub), [-640, 10, 20, 30, 40, 50]);
    }

    #[test]
    fn without_overlap_nothing_is_dropped() {
        let recorded = [params(640), frame(10, true), frame(20, false)];
        assert_eq!(splice(&recorded, &[frame(30, false), frame(40, false)]), [-640, 10, 20, 30, 40]);
    }

    #[test]
    fn parameters_already_sent_are_not_sent_again_and_new_ones_are() {
        // New parameters recorded (and sent) just before the last recorded frame.
        let recorded = [params(640), frame(10, true), params(1280), frame(20, true)];
        let hub = [params(1280), frame(20, true), frame(30, false)];
        assert_eq!(splice(&recorded, &hub), [-640, 10, -1280, 20, 30]);
        // Recorded as the last record, the hub brings them before the next frame: not twice.
        let recorded = [params(640), frame(10, true), params(1280)];
        let mut s = Splice::after(&recorded, 10);
        assert!(s.pass(params(1280)).is_empty());
        assert_eq!(walls(&s.pass(frame(20, true))), [20]);
        // Parameters newer than the start pass with their frame.
        let recorded = [params(640), frame(10, true)];
        assert_eq!(splice(&recorded, &[frame(20, false), params(1280), frame(30, true)]), [-640, 10, 20, -1280, 30]);
    }

    #[test]
    fn after_the_first_new_frame_everything_passes() {
        let mut s = Splice::after(&[params(640), frame(10, true)], 10);
        assert_eq!(walls(&s.pass(frame(20, false))), [20]);
        assert!(s.done());
        assert_eq!(walls(&s.pass(params(640))), [-640], "parameters after the seam are the camera's own");
    }
}
