//! A camera session's ONVIF metadata stream: each message becomes a stored frame of kind
//! `Metadata` (its bytes as the camera sent them, stamped on the stream's own wall clock) that
//! follows the video's gate, and each notification in it an `OnvifEvent` raised at once,
//! whether the camera records now or not (so a rule can start its recording).

use media_store::{MediaKind, StoredFrame};

use crate::event_budget::EventBudget;
use crate::events::EventKind;
use crate::frame_clock::FrameClock;
use crate::onvif_metadata::{self, MetadataError};
use crate::status::UnitStatus;

/// One session's metadata stream.
pub struct MetadataIngest {
    camera: String,
    index: usize,
    clock: FrameClock,
    bad_messages: u64,
    budget: EventBudget,
    dropped_events: u64,
}

impl MetadataIngest {
    /// The metadata stream of camera `camera` (status slot `index`).
    pub fn new(camera: String, index: usize) -> MetadataIngest {
        MetadataIngest {
            camera,
            index,
            clock: FrameClock::new(),
            bad_messages: 0,
            budget: EventBudget::default(),
            dropped_events: 0,
        }
    }

    /// An RTCP sender report of the metadata stream: maps its RTP time to the camera's clock.
    pub fn sender_report(&mut self, rtp: u32, ntp: u64) {
        self.clock.sender_report(rtp, ntp);
    }

    /// Notes a message read at `received_us` that [`MetadataIngest::message`] takes later (a
    /// session's first burst, `first_burst.rs`).
    pub fn seen(&mut self, timestamp: retina::Timestamp, received_us: i64) {
        self.clock.seen(timestamp.timestamp() as u32, timestamp.clock_rate().get(), received_us);
    }

    /// A message that arrived at `received_us` with RTP time `timestamp`: raises its
    /// notifications as events and returns the frame to record.
    pub fn message(
        &mut self,
        data: &[u8],
        timestamp: retina::Timestamp,
        received_us: i64,
        status: &UnitStatus,
    ) -> StoredFrame {
        let clock_rate = timestamp.clock_rate().get();
        // The low 32 bits of retina's unwrapped timestamp are the packet's RTP timestamp.
        let rtp = timestamp.timestamp() as u32;
        let wall_clock_us = self.clock.frame(rtp, clock_rate, received_us).wall_clock_us;
        status.observe_metadata(self.index, wall_clock_us);
        match onvif_metadata::notifications(data) {
            Ok(found) => {
                for n in found {
                    if !self.budget.admit(received_us, &n) {
                        self.dropped(status);
                        continue;
                    }
                    status.count_metadata_event(self.index);
                    let kind = EventKind::OnvifEvent {
                        camera: self.camera.clone(),
                        topic: n.topic,
                        operation: n.operation,
                        source: n.source,
                        data: n.data,
                    };
                    status.events.emit_at(wall_clock_us, kind);
                }
            }
            Err(e) => self.bad(&e),
        }
        StoredFrame {
            camera: self.camera.clone(),
            stream: 0,
            parameters_seq: 0,
            kind: MediaKind::Metadata,
            keyframe: true,
            pts: timestamp.elapsed(),
            clock_rate,
            wall_clock_us,
            data: data.to_vec(),
        }
    }

    /// A notification over the camera's event budget: counted, logged the first time and then
    /// every thousandth.
    fn dropped(&mut self, status: &UnitStatus) {
        status.count_metadata_event_dropped(self.index);
        if self.dropped_events.is_multiple_of(1000) {
            tracing::warn!(
                camera = %self.camera,
                count = self.dropped_events + 1,
                "ONVIF metadata: the camera sends more notifications than {} a second; the excess is \
                 recorded but not raised as events (changes of a state always are)",
                crate::event_budget::PER_SECOND
            );
        }
        self.dropped_events += 1;
    }

    /// A message that cannot be read is still recorded; the first one and then every
    /// hundredth is logged.
    fn bad(&mut self, e: &MetadataError) {
        if self.bad_messages.is_multiple_of(100) {
            tracing::warn!(camera = %self.camera, count = self.bad_messages + 1, "ONVIF metadata: {e}; recorded, no events taken from it");
        }
        self.bad_messages += 1;
    }
}

/// Keeps a failing metadata stream from keeping the video down: after a session with metadata
/// failed on a stream error, the next session goes without it (saying why); the one after
/// tries it again. Video records on either way.
#[derive(Debug, Default)]
pub struct MetadataGuard {
    suspect: Option<String>,
}

impl MetadataGuard {
    /// The metadata stream a new session sets up, from what the camera `offered`
    /// ([`crate::rtsp::DescribedCamera::metadata`]), and why none when it offers some.
    pub fn session(&mut self, offered: Result<Option<usize>, String>) -> (Option<usize>, Option<String>) {
        match (self.suspect.take(), offered) {
            (Some(why), Ok(Some(_))) => (None, Some(why)),
            (_, Ok(stream)) => (stream, None),
            (_, Err(why)) => (None, Some(why)),
        }
    }

    /// A session that had the metadata stream set up failed with `error`.
    pub fn failed(&mut self, error: &str) {
        self.suspect = Some(format!(
            "metadata not recorded: the camera's stream failed while its metadata was on ({error}); \
             this session records video without it, the next tries it again"
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failing_metadata_stream_is_left_out_of_the_next_session_only() {
        let mut guard = MetadataGuard::default();
        assert_eq!(guard.session(Ok(Some(2))), (Some(2), None));
        assert_eq!(guard.session(Ok(None)), (None, None));
        assert_eq!(guard.session(Err("gzip".into())), (None, Some("gzip".into())));
        guard.failed("Timestamp changed");
        let (stream, why) = guard.session(Ok(Some(2)));
        assert!(stream.is_none() && why.as_deref().is_some_and(|w| w.contains("Timestamp changed")), "{why:?}");
        assert_eq!(guard.session(Ok(Some(2))), (Some(2), None), "then tried again");
    }

    #[test]
    fn messages_become_stored_frames_and_events() {
        let status = UnitStatus::new("u".into(), [("front".to_owned(), "Front".to_owned())]);
        status.set_metadata(0, Some(onvif_metadata::ENCODING), None);
        let mut events = status.events.subscribe();
        let mut ingest = MetadataIngest::new("front".into(), 0);
        let message = br#"<tt:MetadataStream xmlns:tt="x"><tt:Event><wsnt:NotificationMessage xmlns:wsnt="y"><wsnt:Topic>tns1:RuleEngine/CellMotionDetector/Motion</wsnt:Topic><wsnt:Message><tt:Message PropertyOperation="Changed"><tt:Data><tt:SimpleItem Name="IsMotion" Value="true"/></tt:Data></tt:Message></wsnt:Message></wsnt:NotificationMessage></tt:Event></tt:MetadataStream>"#;
        let at = |rtp: i64| retina::Timestamp::new(rtp, std::num::NonZeroU32::new(90_000).unwrap(), 0).unwrap();
        let frame = ingest.message(message, at(90_000), 1_700_000_000_000_000, &status);
        assert_eq!((frame.kind, frame.data.as_slice(), frame.keyframe), (MediaKind::Metadata, &message[..], true));
        let event = events.try_recv().unwrap();
        assert_eq!(event.time_us, frame.wall_clock_us);
        let EventKind::OnvifEvent { camera, topic, data, .. } = event.kind else { panic!("{event:?}") };
        assert_eq!((camera.as_str(), topic.as_str()), ("front", "RuleEngine/CellMotionDetector/Motion"));
        assert_eq!(data["IsMotion"], "true");
        let bad = ingest.message(b"<not xml", at(93_600), 1_700_000_000_040_000, &status);
        assert_eq!(bad.data, b"<not xml", "recorded all the same");
        assert!(events.try_recv().is_err(), "no event from it");
        let json = serde_json::to_value(status.snapshot()).unwrap();
        let m = &json["cameras"][0]["metadata"];
        assert_eq!((m["messages_received"].as_u64(), m["events"].as_u64()), (Some(2), Some(1)), "{m}");
    }

    #[test]
    fn a_chattering_camera_is_held_to_its_event_budget_and_every_message_is_still_recorded() {
        let status = UnitStatus::new("u".into(), [("front".to_owned(), "Front".to_owned())]);
        status.set_metadata(0, Some(onvif_metadata::ENCODING), None);
        let mut ingest = MetadataIngest::new("front".into(), 0);
        let tamper = br#"<tt:MetadataStream xmlns:tt="x"><tt:Event><wsnt:NotificationMessage xmlns:wsnt="y"><wsnt:Topic>tns1:VideoSource/GlobalSceneChange/ImagingService</wsnt:Topic><wsnt:Message><tt:Message><tt:Data><tt:SimpleItem Name="Level" Value="7"/></tt:Data></tt:Message></wsnt:Message></wsnt:NotificationMessage></tt:Event></tt:MetadataStream>"#;
        let at = |rtp: i64| retina::Timestamp::new(rtp, std::num::NonZeroU32::new(90_000).unwrap(), 0).unwrap();
        // 500 notifications in half a second.
        let recorded = (0..500)
            .map(|i| ingest.message(tamper, at(90_000 + i * 90), 1_700_000_000_000_000 + i * 1_000, &status))
            .filter(|f| f.data.as_slice() == &tamper[..])
            .count();
        assert_eq!(recorded, 500);
        let json = serde_json::to_value(status.snapshot()).unwrap();
        let m = &json["cameras"][0]["metadata"];
        let (raised, dropped) = (m["events"].as_u64().unwrap(), m["events_dropped"].as_u64().unwrap());
        assert_eq!(raised + dropped, 500, "{m}");
        assert!((20..=30).contains(&raised), "a burst of 20 and 10 a second for 0.5 s: {m}");
    }
}
