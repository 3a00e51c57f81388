//! Where a new live subscription on the unit starts: at the camera's last key frame, read back
//! from what the unit has already recorded, so that a viewer sees a picture at once instead of
//! waiting up to a key-frame interval for the camera's next key frame, at no RAM cost while
//! nobody watches. Both of the unit's subscribers start here: the uplink's stream to central
//! and the technician page's live socket.
//!
//! Gap-free and duplicate-free: the camera task queues each frame to the recorder before it
//! passes it to the hub ([`LiveHub::begin_frame`]), so every frame passed before the
//! subscription began is in the recorder's queue before our request, which the recorder thread
//! answers after appending everything queued before it. The frames read must reach the last
//! frame passed before the subscription (else some were not recorded: event mode outside an
//! event, schedule off, a full queue, a store fault), and the hub's frames already read are
//! dropped at the seam ([`LiveSubscription::start_from`]). Otherwise, or when the last key frame
//! is not in the camera's open segment, or more than [`MAX_START_BYTES`] ago, the subscription
//! waits for the camera's next key frame as before. So it does when the recorder thread and the
//! read back take longer than [`MAX_START_WAIT`]: a disk busy with a long `fdatasync` (flash
//! under write load, seconds) must not hold the picture back longer than the next key frame.

use std::sync::Arc;

use media_store::{MediaKind, Record};
use protocol::interconnect::{LiveMessage, MediaFrame, VideoParameters};

use crate::live::{LiveHub, LiveHubs, LiveSubscription};
use crate::recorder::RecorderTx;

/// The most bytes of recordings (from the last key frame on, audio included) a start reads;
/// a longer group starts at the next key frame instead.
pub const MAX_START_BYTES: u64 = 4 << 20;

/// The last frame passed must be this recent for a start from the recordings: a camera that
/// has sent nothing for longer is down, and its last picture is no live view.
pub const MAX_START_AGE_US: i64 = 5_000_000;

/// The longest a start waits for the recorder thread's answer and the read back; then it
/// starts at the camera's next key frame instead (the request wakes the recorder, which answers
/// at once unless the disk holds it).
pub const MAX_START_WAIT: std::time::Duration = std::time::Duration::from_millis(500);

/// How a subscription started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LiveStart {
    /// At the last key frame, with this many frames read from the recordings.
    Recorded {
        /// Frames read (the key frame and those after it).
        frames: usize,
    },
    /// At the camera's next key frame, for this reason.
    NextKeyFrame(&'static str),
}

/// A camera's live video as one of the unit's live streams takes it: its hub, and the
/// recorder to start from the last recorded key frame.
pub struct LiveSource {
    /// The camera's id.
    pub camera: String,
    /// The camera's live hub.
    pub hub: Arc<LiveHub>,
    /// The recorder (none in tests without one: then the next key frame).
    pub recorder: Option<RecorderTx>,
}

impl LiveSource {
    /// `camera`'s live video in `hubs`; `None` when no such camera runs.
    pub fn of(hubs: &LiveHubs, camera: &str) -> Option<LiveSource> {
        Some(LiveSource { camera: camera.to_owned(), hub: hubs.get(camera)?, recorder: hubs.recorder().cloned() })
    }

    /// A subscription that starts at the last key frame when the recordings allow it.
    pub async fn subscribe(&self) -> LiveSubscription {
        subscribe(&self.hub, self.recorder.as_ref(), &self.camera).await.0
    }
}

/// A subscription to `camera`'s live messages that starts at its last key frame when the
/// recordings allow it; `None` when no such camera runs.
pub async fn subscribe_from_key_frame(hubs: &LiveHubs, camera: &str) -> Option<LiveSubscription> {
    Some(LiveSource::of(hubs, camera)?.subscribe().await)
}

/// Subscribes to `hub` (camera `camera`) and starts the subscription from `recorder`'s last key
/// frame of the camera if it can (see the module docs); says how it started.
pub async fn subscribe(hub: &LiveHub, recorder: Option<&RecorderTx>, camera: &str) -> (LiveSubscription, LiveStart) {
    let mut sub = hub.subscribe();
    let start = match recorder {
        None => LiveStart::NextKeyFrame("no recorder"),
        Some(recorder) => start_from_recordings(&mut sub, recorder, camera).await,
    };
    tracing::info!(camera, ?start, "live subscription");
    (sub, start)
}

async fn start_from_recordings(sub: &mut LiveSubscription, recorder: &RecorderTx, camera: &str) -> LiveStart {
    let Some(passed_us) = sub.passed_before_us() else {
        return LiveStart::NextKeyFrame("the camera has sent no frame yet");
    };
    if crate::camera::now_us().saturating_sub(passed_us) > MAX_START_AGE_US {
        return LiveStart::NextKeyFrame("the camera has sent nothing lately");
    }
    let records = match tokio::time::timeout(MAX_START_WAIT, recorded_key_frame_tail(recorder, camera)).await {
        Ok(Ok(records)) => records,
        Ok(Err(why)) => return LiveStart::NextKeyFrame(why),
        Err(_) => {
            tracing::warn!(camera, "live start: the recorder did not answer within {MAX_START_WAIT:?} (a slow disk?)");
            return LiveStart::NextKeyFrame("the recorder is busy");
        }
    };
    let messages = live_messages(records);
    let frames = messages.iter().filter(|m| matches!(***m, LiveMessage::Frame(_))).count();
    if sub.start_from(messages) {
        LiveStart::Recorded { frames }
    } else {
        LiveStart::NextKeyFrame("the recordings stop before the live stream")
    }
}

/// The camera's records from its last key frame on, as the recorder has them; why not, when
/// it cannot give them.
async fn recorded_key_frame_tail(recorder: &RecorderTx, camera: &str) -> Result<Vec<Record>, &'static str> {
    let tail = match recorder.key_frame_tail(camera).await {
        Ok(Some(tail)) => tail,
        Ok(None) => return Err("no key frame in the camera's open segment"),
        Err(_) => return Err("the recorder has stopped"),
    };
    if tail.bytes() > MAX_START_BYTES {
        return Err("the last group of pictures is too large");
    }
    match tokio::task::spawn_blocking(move || tail.read()).await {
        Ok(Ok(records)) => Ok(records),
        Ok(Err(e)) => {
            tracing::warn!(camera, "live start: cannot read the recordings: {e}");
            Err("the recordings could not be read")
        }
        Err(_) => Err("the recordings could not be read"),
    }
}

/// Recorded video parameters and frames as the live messages the camera task published for
/// them (the same values: a frame read back equals the one the hub carried).
pub fn live_messages(records: Vec<Record>) -> Vec<Arc<LiveMessage>> {
    records
        .into_iter()
        .filter_map(|r| match r {
            Record::Parameters(p) => Some(LiveMessage::Parameters(VideoParameters {
                rfc6381_codec: p.rfc6381_codec,
                width: p.width,
                height: p.height,
                extra_data: p.extra_data,
            })),
            Record::Frame(f) if f.kind == MediaKind::Video => Some(LiveMessage::Frame(MediaFrame {
                pts: f.pts,
                clock_rate: f.clock_rate,
                wall_clock_us: f.wall_clock_us,
                keyframe: f.keyframe,
                data: f.data,
            })),
            _ => None,
        })
        .map(Arc::new)
        .collect()
}

#[cfg(test)]
mod tests {
    use media_store::{StoredFrame, StoredParameters};

    use super::*;

    fn frame(kind: MediaKind, wall: i64) -> Record {
        Record::Frame(StoredFrame {
            camera: "front".into(),
            stream: 0,
            parameters_seq: 7,
            kind,
            keyframe: wall == 0,
            pts: wall * 90,
            clock_rate: 90_000,
            wall_clock_us: wall,
            data: vec![wall as u8; 3],
        })
    }

    /// A recorder the disk holds up (a long `fdatasync`) does not hold the live picture back:
    /// the start gives up on the recordings and waits for the camera's next key frame.
    #[tokio::test(start_paused = true)]
    async fn a_recorder_that_does_not_answer_in_time_leaves_the_start_to_the_next_key_frame() {
        let status = Arc::new(crate::status::UnitStatus::new("bus-1".into(), [("front".into(), "Front".into())]));
        let (recorder, _queue) = RecorderTx::unanswered(status);
        let hub = LiveHub::default();
        hub.begin_frame().passed(crate::camera::now_us());
        let began = tokio::time::Instant::now();
        let (_sub, start) = subscribe(&hub, Some(&recorder), "front").await;
        assert_eq!(start, LiveStart::NextKeyFrame("the recorder is busy"));
        assert_eq!(began.elapsed(), MAX_START_WAIT);
    }

    #[test]
    fn recorded_video_becomes_the_messages_the_hub_carried() {
        let params = StoredParameters {
            camera: "front".into(),
            rfc6381_codec: "avc1.64001f".into(),
            width: 1280,
            height: 720,
            extra_data: vec![1, 2],
        };
        let records = vec![
            Record::Parameters(params),
            frame(MediaKind::Video, 0),
            frame(MediaKind::Audio, 1),
            frame(MediaKind::Metadata, 2),
            frame(MediaKind::Video, 40),
        ];
        let got = live_messages(records);
        assert_eq!(got.len(), 3, "audio and metadata are not live video");
        let LiveMessage::Parameters(p) = &*got[0] else { panic!("parameters first") };
        assert_eq!(
            (p.rfc6381_codec.as_str(), p.width, p.height, p.extra_data.as_slice()),
            ("avc1.64001f", 1280, 720, &[1u8, 2][..])
        );
        let LiveMessage::Frame(f) = &*got[2] else { panic!("a frame") };
        assert_eq!(
            *f,
            MediaFrame { pts: 3600, clock_rate: 90_000, wall_clock_us: 40, keyframe: false, data: vec![40; 3] }
        );
    }
}
