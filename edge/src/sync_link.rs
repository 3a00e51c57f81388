//! The unit's side of the sync protocol: the tokio glue around `sync_core::EdgeSync`.
//!
//! It tells central what the store holds (a catalog of durable spans, refreshed every few
//! seconds), answers central's fetches by reading the store by sequence number off the
//! executor, sends each chunk on a stream of its own at a priority below live video, records
//! central's acknowledgements as a cursor in each camera's log, and forwards the unit's events.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use media_store::MediaKey;
use media_store::by_seq::{self, Limit, SeqRead};
use protocol::interconnect::{AudioParameters, EdgeMessage, MediaFrame, VideoParameters};
use protocol::sync::{
    CameraHoldings, CatalogSummary, EventKind as WireEvent, EvidenceLockRequest, FetchFailure, RemoteEvent,
    RetrievedMedia, Span, SyncFrame, SyncFromCentral, SyncFromEdge,
};
use sync_core::{EdgeAction, EdgeConfig, EdgeSync};
use tokio::sync::mpsc;

use crate::events::{EdgeEvent, EventKind};
use crate::recorder::{DurableLogs, RecorderTx};

/// How often the catalog is rebuilt while connected.
pub const CATALOG_REFRESH: Duration = Duration::from_secs(3);
/// Longest span in a catalog: central maps times to sequence numbers within spans.
const MAX_SPAN_US: i64 = 30_000_000;
/// Priority of chunk streams: below live video (0) and the control stream.
pub const CHUNK_PRIORITY: i32 = -10;
/// The cursor recording what central acknowledged, in each camera's log.
pub const CENTRAL_CURSOR: &str = "central";

/// What the sync link needs from the rest of the unit.
#[derive(Clone)]
pub struct SyncSetup {
    /// The store directory.
    pub store: PathBuf,
    /// The store's encryption key, if media is encrypted at rest.
    pub key: Option<MediaKey>,
    /// The logs as durable after each group commit.
    pub durable: DurableLogs,
    /// To record acknowledgements.
    pub recorder: RecorderTx,
    /// The cameras shared with central.
    pub cameras: Vec<String>,
    /// Where the technician's page learns what central acknowledged.
    pub central: Arc<crate::central_link::CentralLink>,
    /// Central's camera settings and the technician's changes for central.
    pub settings: Option<Arc<crate::central_settings::CentralSettings>>,
}

/// Inputs that come back from work done off the executor.
pub enum Completion {
    /// A catalog was built.
    Catalog(CatalogSummary),
    /// A read for a fetch finished.
    Read(u64, Result<(Vec<SyncFrame>, Option<u64>), FetchFailure>),
    /// Central's evidence lock is durable in the store (`None`) or could not be made.
    Locked(u64, Option<String>),
    /// Central's settings of this revision are kept and applied, with these conflicts
    /// (`Err`: they could not be kept).
    SettingsApplied(u64, Result<Vec<protocol::sync::SettingsConflict>, String>),
}

/// The unit's sync state; lives across connections.
pub struct SyncLink {
    setup: Arc<SyncSetup>,
    core: EdgeSync,
    epoch: Instant,
    done_tx: mpsc::Sender<Completion>,
    done_rx: mpsc::Receiver<Completion>,
    /// Added to the unit's event ids on the wire (see [`event_id_base`]).
    event_id_base: u64,
    /// The highest technician's change handed to the core.
    local_handed: u64,
}

/// The unit's event ids start at 1 with every start of the process; central keeps the highest
/// id it holds and takes only higher ones, and names alarms by id. On the wire each id is this
/// base plus the local id: the start time in milliseconds times 1024, so the ids of a later run
/// are above every id of an earlier one unless that run raised more than 1024 events per
/// millisecond it ran (or the unit's clock went back between runs). The ids stay below 2^53
/// until the year 2245, so JavaScript reads them exactly.
pub fn event_id_base(started_ms: u64) -> u64 {
    started_ms << 10
}

/// What the glue must send after an input.
pub enum Outgoing {
    /// On the control stream.
    Control(EdgeMessage),
    /// A chunk, on a stream of its own.
    Chunk(EdgeMessage),
}

impl SyncLink {
    /// A disconnected link.
    pub fn new(setup: SyncSetup) -> SyncLink {
        let (done_tx, done_rx) = mpsc::channel(64);
        let config = EdgeConfig { catalog_min_interval_us: 1_000_000, ..EdgeConfig::default() };
        let mut core = EdgeSync::new(config, Vec::new());
        if let Some(state) = setup.settings.as_ref().map(|s| s.snapshot())
            && let Some(push) = &state.push
        {
            core.restore_settings(push.revision, state.conflicts.clone());
        }
        SyncLink {
            local_handed: 0,
            setup: Arc::new(setup),
            core,
            epoch: Instant::now(),
            done_tx,
            done_rx,
            event_id_base: event_id_base(crate::camera::now_us().max(0) as u64 / 1000),
        }
    }

    fn now(&self) -> u64 {
        self.epoch.elapsed().as_micros() as u64
    }

    /// The connection to central is up; `central_version` is the protocol version of its
    /// welcome (audio goes only to a central that takes it).
    pub fn connected(&mut self, central_version: u16) {
        self.core.set_peer_version(central_version);
        self.core.connected();
        self.refresh_catalog();
    }

    /// The connection is gone.
    pub fn disconnected(&mut self) {
        self.core.disconnected();
    }

    /// Rebuilds the catalog off the executor; it arrives as a [`Completion`].
    pub fn refresh_catalog(&self) {
        let setup = self.setup.clone();
        let tx = self.done_tx.clone();
        tokio::task::spawn_blocking(move || match build_catalog(&setup) {
            Ok(catalog) => {
                let _ = tx.blocking_send(Completion::Catalog(catalog));
            }
            Err(e) => tracing::warn!("sync: cannot build the catalog: {e}"),
        });
    }

    /// A sync message from central.
    pub fn handle(&mut self, msg: SyncFromCentral) {
        self.core.handle(msg);
    }

    /// Records an event of the unit for central.
    pub fn event(&mut self, event: &EdgeEvent) {
        let Some(mut remote) = to_remote(event).and_then(|r| only_shared(r, &self.setup.cameras)) else { return };
        remote.id += self.event_id_base;
        if let Err(e) = self.core.event(remote) {
            tracing::debug!("sync: event not queued: {e}");
        }
    }

    /// When the core next wants [`SyncLink::tick`] (at most a second away).
    pub fn timeout(&self) -> Duration {
        let now = self.now();
        self.core
            .poll_timeout()
            .map_or(Duration::from_secs(1), |t| Duration::from_micros(t.saturating_sub(now)))
            .min(Duration::from_secs(1))
    }

    /// The next completion of work done off the executor (cancel-safe).
    pub async fn completion(&mut self) -> Option<Completion> {
        self.done_rx.recv().await
    }

    /// Feeds a completion into the core.
    pub fn complete(&mut self, done: Completion) {
        match done {
            Completion::Catalog(c) => self.core.catalog_changed(c),
            Completion::Read(fetch_id, Ok((frames, next_seq))) => self.core.frames_read(fetch_id, frames, next_seq),
            Completion::Read(fetch_id, Err(reason)) => self.core.read_failed(fetch_id, reason),
            Completion::Locked(lock_id, error) => self.core.lock_done(lock_id, error),
            Completion::SettingsApplied(revision, Ok(conflicts)) => self.core.settings_applied(revision, conflicts),
            Completion::SettingsApplied(revision, Err(e)) => {
                tracing::error!(revision, "cannot keep central's settings: {e}; central sends them again");
                self.core.settings_failed(revision);
            }
        }
    }

    /// Keeps and applies central's settings off this task; the answer arrives as a
    /// [`Completion::SettingsApplied`].
    fn apply_settings(&self, push: protocol::sync::SettingsPush) {
        let tx = self.done_tx.clone();
        let revision = push.revision;
        let Some(settings) = self.setup.settings.clone() else {
            tracing::warn!(revision, "settings from central, but this unit keeps none");
            return;
        };
        tokio::spawn(async move {
            let result = settings.apply_central(push).await.map_err(|e| e.to_string());
            let _ = tx.send(Completion::SettingsApplied(revision, result)).await;
        });
    }

    /// Makes central's evidence lock in the store through the recorder thread (only for a camera
    /// shared with central); the answer arrives as a [`Completion::Locked`].
    fn lock(&self, request: EvidenceLockRequest) {
        let tx = self.done_tx.clone();
        if !self.setup.cameras.contains(&request.camera) {
            let error = format!("this unit shares no camera {:?} with central", request.camera);
            tokio::spawn(async move {
                let _ = tx.send(Completion::Locked(request.lock_id, Some(error))).await;
            });
            return;
        }
        let recorder = self.setup.recorder.clone();
        tokio::spawn(async move {
            let reason = format!("central lock {}: {}", request.lock_id, request.reason);
            let result =
                recorder.lock(&request.camera, request.start_us, request.end_us, request.expires_us, &reason).await;
            let error = match result {
                Ok(id) => {
                    tracing::info!(camera = %request.camera, lock = id, central_lock = request.lock_id, "evidence lock from central");
                    None
                }
                Err(e) => {
                    tracing::warn!(camera = %request.camera, central_lock = request.lock_id, "cannot lock for central: {e}");
                    Some(e.to_string())
                }
            };
            let _ = tx.send(Completion::Locked(request.lock_id, error)).await;
        });
    }

    /// Runs the core's actions and returns the messages to send.
    pub fn drain(&mut self) -> Vec<Outgoing> {
        while let Some(action) = self.core.poll_event() {
            match action {
                EdgeAction::ReadFrames { fetch_id, camera, from_seq, to_seq, max_bytes, audio } => {
                    let setup = self.setup.clone();
                    let tx = self.done_tx.clone();
                    tokio::task::spawn_blocking(move || {
                        let result = read(&setup, &camera, (from_seq, to_seq), max_bytes, audio);
                        let _ = tx.blocking_send(Completion::Read(fetch_id, result));
                    });
                }
                EdgeAction::Acknowledged { camera, up_to_seq } => {
                    tracing::debug!(camera, up_to_seq, "central holds everything up to here");
                    self.setup.recorder.set_cursor(&camera, CENTRAL_CURSOR, up_to_seq);
                    self.setup.central.acknowledged(&camera, up_to_seq);
                }
                EdgeAction::EventsAcked { up_to_id } => tracing::debug!(up_to_id, "central stored events"),
                EdgeAction::Lock(request) => self.lock(request),
                EdgeAction::ApplySettings(push) => self.apply_settings(push),
                EdgeAction::LocalChangesAcked { up_to_id } => {
                    if let Some(settings) = self.setup.settings.clone() {
                        tokio::task::spawn_blocking(move || {
                            if let Err(e) = settings.acknowledged(up_to_id) {
                                tracing::warn!("cannot forget the changes central holds: {e}");
                            }
                        });
                    }
                }
            }
        }
        if let Some(settings) = &self.setup.settings {
            for change in settings.pending_after(self.local_handed) {
                self.local_handed = change.id;
                self.core.local_change(change);
            }
        }
        let now = self.now();
        let mut out = Vec::new();
        while let Some(msg) = self.core.poll_transmit(now) {
            out.push(match msg {
                m @ SyncFromEdge::Chunk(_) => Outgoing::Chunk(EdgeMessage::Sync(m)),
                m => Outgoing::Control(EdgeMessage::Sync(m)),
            });
        }
        out
    }
}

/// Builds the catalog of the shared cameras from the last durable snapshot.
fn build_catalog(setup: &SyncSetup) -> Result<CatalogSummary, media_store::StoreError> {
    let durable = setup.durable.borrow().clone();
    let mut cameras = Vec::new();
    for camera in &setup.cameras {
        let Some(log) = durable.iter().find(|d| d.log == *camera) else { continue };
        let held = by_seq::holdings(&setup.store, camera, Limit::Durable(log), MAX_SPAN_US)?;
        cameras.push(CameraHoldings {
            camera: camera.clone(),
            spans: held
                .spans
                .iter()
                .map(|s| Span {
                    first_seq: s.first_seq,
                    last_seq: s.last_seq,
                    start_us: s.start_us,
                    end_us: s.end_us,
                    bytes: s.bytes,
                    frames: s.frames,
                })
                .collect(),
            removed: held
                .removed
                .iter()
                .map(|&(first, end)| Span {
                    first_seq: first,
                    last_seq: end.saturating_sub(1),
                    start_us: 0,
                    end_us: 0,
                    bytes: 0,
                    frames: 0,
                })
                .collect(),
        });
    }
    Ok(CatalogSummary { as_of_us: crate::camera::now_us(), cameras })
}

/// Reads frames for a fetch, up to the durable end (audio frames too with `audio`).
fn read(
    setup: &SyncSetup,
    camera: &str,
    range: (u64, u64),
    max_bytes: u32,
    audio: bool,
) -> Result<(Vec<SyncFrame>, Option<u64>), FetchFailure> {
    if !setup.cameras.iter().any(|c| c == camera) {
        // Not shared with central: as if the unit had no such camera.
        return Err(FetchFailure::UnknownCamera);
    }
    let durable = setup.durable.borrow().clone();
    let Some(log) = durable.iter().find(|d| d.log == camera) else {
        return Err(FetchFailure::UnknownCamera);
    };
    let read_seqs = if audio { by_seq::read_seqs_with_audio } else { by_seq::read_seqs };
    let read = read_seqs(&setup.store, camera, range, u64::from(max_bytes), Limit::Durable(log), setup.key.clone())
        .map_err(|e| FetchFailure::Unreadable { detail: e.to_string() })?;
    match read {
        SeqRead::Gone { available_from } => Err(FetchFailure::Gone { available_from }),
        SeqRead::Frames { frames, next_seq } => Ok((chunk_frames(frames)?, next_seq)),
    }
}

/// The frames of a chunk as they travel: video parameters with the chunk's first video frame
/// and with key frames, audio parameters with its first audio frame and when they change, so
/// that central can store each chunk on its own.
fn chunk_frames(frames: Vec<by_seq::SeqFrame>) -> Result<Vec<SyncFrame>, FetchFailure> {
    let mut out = Vec::with_capacity(frames.len());
    let mut video_sent = false;
    let mut audio_sent: Option<media_store::StoredAudioParameters> = None;
    for f in frames {
        let frame = MediaFrame {
            pts: f.frame.pts,
            clock_rate: f.frame.clock_rate,
            wall_clock_us: f.frame.wall_clock_us,
            keyframe: f.frame.keyframe,
            data: f.frame.data,
        };
        let (wall_clock_us, keyframe) = (frame.wall_clock_us, frame.keyframe);
        let media = match f.frame.kind {
            media_store::MediaKind::Video => {
                let first = !std::mem::replace(&mut video_sent, true);
                match (first || keyframe).then_some(f.parameters).flatten() {
                    Some(p) => RetrievedMedia::VideoWithParameters(
                        VideoParameters {
                            rfc6381_codec: p.rfc6381_codec,
                            width: p.width,
                            height: p.height,
                            extra_data: p.extra_data,
                        },
                        frame,
                    ),
                    None => RetrievedMedia::Video(frame),
                }
            }
            media_store::MediaKind::Audio => {
                let parameters = match f.audio_parameters {
                    Some(p) if audio_sent.as_ref() != Some(&p) => {
                        audio_sent = Some(p.clone());
                        Some(AudioParameters {
                            codec: p.codec,
                            sample_rate: p.sample_rate,
                            channels: p.channels,
                            extra_data: p.extra_data,
                        })
                    }
                    _ => None,
                };
                RetrievedMedia::Audio { parameters, frame }
            }
            // ONVIF metadata stays on the unit (`by_seq` never reads it).
            media_store::MediaKind::Metadata => continue,
        };
        let payload = postcard::to_allocvec(&media).map_err(|e| FetchFailure::Unreadable { detail: e.to_string() })?;
        out.push(SyncFrame { seq: f.seq, wall_clock_us, keyframe, payload });
    }
    Ok(out)
}

/// `event` with the cameras not shared with central left out; `None` when it concerned only
/// such cameras (it is not central's business).
fn only_shared(mut event: RemoteEvent, shared: &[String]) -> Option<RemoteEvent> {
    if event.cameras.is_empty() {
        return Some(event);
    }
    event.cameras.retain(|c| shared.contains(c));
    (!event.cameras.is_empty()).then_some(event)
}

/// The unit's events as central sees them.
fn to_remote(event: &EdgeEvent) -> Option<RemoteEvent> {
    let (cameras, kind) = match &event.kind {
        EventKind::CameraLost { camera, reason } => {
            (vec![camera.clone()], WireEvent::CameraLost { reason: reason.clone() })
        }
        EventKind::CameraRestored { camera } => (vec![camera.clone()], WireEvent::CameraRestored),
        EventKind::InputChanged { input, active } => {
            (Vec::new(), WireEvent::DigitalInput { input: input_number(input), active: *active })
        }
        EventKind::Generic { source, text } => {
            (Vec::new(), WireEvent::Generic { name: source.clone(), detail: text.clone() })
        }
        // An alarm a rule raised; the unit's own motion, generic messages and cameras' ONVIF
        // events reach central only through such rules.
        EventKind::RuleAlarm { rule, cameras, cause } => {
            (cameras.clone(), WireEvent::Generic { name: format!("rule:{rule}"), detail: format!("event {cause}") })
        }
        EventKind::MotionStarted { .. }
        | EventKind::MotionStopped { .. }
        | EventKind::GenericMatched { .. }
        | EventKind::OnvifEvent { .. } => {
            return None;
        }
        other => (Vec::new(), WireEvent::Generic { name: kind_name(other).to_owned(), detail: format!("{other:?}") }),
    };
    Some(RemoteEvent { id: event.id, cameras, time_us: event.time_us, kind })
}

/// Inputs numbered for the wire: ignition 0, panic 1, doors from 16, others from 32.
fn input_number(input: &protocol::io::Input) -> u16 {
    match input {
        protocol::io::Input::Ignition => 0,
        protocol::io::Input::Panic => 1,
        protocol::io::Input::Door(n) => 16 + u16::from(*n),
        protocol::io::Input::Generic(n) => 32 + u16::from(*n),
    }
}

fn kind_name(kind: &EventKind) -> &'static str {
    match kind {
        EventKind::InputChanged { .. } => "input_changed",
        EventKind::IgnitionOff => "ignition_off",
        EventKind::IgnitionOn => "ignition_on",
        EventKind::PowerWarning { .. } => "power_warning",
        EventKind::PowerRestored { .. } => "power_restored",
        EventKind::IoLinkLost => "io_link_lost",
        EventKind::IoLinkRestored => "io_link_restored",
        EventKind::CameraLost { .. } => "camera_lost",
        EventKind::CameraRestored { .. } => "camera_restored",
        EventKind::StorageFault { .. } => "storage_fault",
        EventKind::Generic { .. } => "generic",
        EventKind::MotionStarted { .. } => "motion_started",
        EventKind::MotionStopped { .. } => "motion_stopped",
        EventKind::GenericMatched { .. } => "generic_matched",
        EventKind::RuleAlarm { .. } => "rule_alarm",
        EventKind::StorageWarning { .. } => "storage_warning",
        EventKind::OnvifEvent { .. } => "onvif_event",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(kind: EventKind) -> EdgeEvent {
        EdgeEvent { id: 9, time_us: 5, kind }
    }

    #[test]
    fn rule_alarms_reach_central_with_their_cameras_and_motion_stays_local() {
        let alarm = EventKind::RuleAlarm { rule: "panic".into(), cameras: vec!["front".into()], cause: 7 };
        let remote = to_remote(&event(alarm)).unwrap();
        assert_eq!(remote.cameras, ["front"]);
        assert_eq!(remote.kind, WireEvent::Generic { name: "rule:panic".into(), detail: "event 7".into() });
        assert_eq!((remote.id, remote.time_us), (9, 5));
        for local in [
            EventKind::MotionStarted { camera: "front".into() },
            EventKind::MotionStopped { camera: "front".into() },
            EventKind::GenericMatched { pattern: "p".into(), source: "tcp:x".into(), text: "t".into() },
        ] {
            assert!(to_remote(&event(local)).is_none());
        }
        let lost = to_remote(&event(EventKind::CameraLost { camera: "a".into(), reason: "r".into() })).unwrap();
        assert_eq!(lost.cameras, ["a"], "other events as before");
    }

    #[test]
    fn events_leave_out_cameras_not_shared() {
        let shared = vec!["front".to_owned()];
        let alarm = |cameras: &[&str]| RemoteEvent {
            id: 1,
            cameras: cameras.iter().map(|c| c.to_string()).collect(),
            time_us: 5,
            kind: WireEvent::Generic { name: "rule:panic".into(), detail: String::new() },
        };
        assert_eq!(only_shared(alarm(&["front", "cab"]), &shared).unwrap().cameras, ["front"]);
        assert!(only_shared(alarm(&["cab"]), &shared).is_none(), "only about an unshared camera");
        assert!(only_shared(alarm(&[]), &shared).is_some(), "about the unit, not a camera");
        let lost = to_remote(&event(EventKind::CameraLost { camera: "cab".into(), reason: "eof".into() })).unwrap();
        assert!(only_shared(lost, &shared).is_none());
    }

    /// A chunk for a central of protocol version 4: video parameters with the first video frame
    /// and key frames, audio parameters with the first audio frame and where they change, each
    /// frame's kind, sequence number, time and bytes kept.
    #[test]
    fn chunk_frames_carry_each_kind_with_its_parameters_where_needed() {
        use media_store::by_seq::SeqFrame;
        use media_store::{MediaKind, StoredAudioParameters, StoredFrame, StoredParameters};
        let video_p = StoredParameters {
            camera: "front".into(),
            rfc6381_codec: "avc1.42c01e".into(),
            width: 320,
            height: 240,
            extra_data: vec![1, 2],
        };
        let audio_p = |codec: &str| StoredAudioParameters {
            camera: "front".into(),
            codec: codec.into(),
            sample_rate: 8000,
            channels: 1,
            extra_data: vec![],
        };
        let frame = |seq: u64, kind: MediaKind, keyframe: bool, audio: Option<&str>| SeqFrame {
            seq,
            frame: StoredFrame {
                camera: "front".into(),
                stream: 0,
                parameters_seq: 0,
                kind,
                keyframe,
                pts: seq as i64,
                clock_rate: 90_000,
                wall_clock_us: 1000 + seq as i64,
                data: vec![seq as u8; 3],
            },
            parameters: Some(video_p.clone()),
            audio_parameters: audio.map(audio_p),
        };
        let frames = vec![
            frame(10, MediaKind::Audio, true, Some("ulaw")),
            frame(11, MediaKind::Video, false, None),
            frame(12, MediaKind::Audio, true, Some("ulaw")),
            frame(13, MediaKind::Video, true, None),
            frame(14, MediaKind::Video, false, None),
            frame(15, MediaKind::Audio, true, Some("alaw")),
        ];
        let out = chunk_frames(frames.clone()).unwrap();
        let decoded: Vec<RetrievedMedia> = out.iter().map(|f| postcard::from_bytes(&f.payload).unwrap()).collect();
        let shape: Vec<(&str, Option<&str>)> = decoded
            .iter()
            .map(|m| match m {
                RetrievedMedia::Video(_) => ("video", None),
                RetrievedMedia::VideoWithParameters(p, _) => ("video", Some(p.rfc6381_codec.as_str())),
                RetrievedMedia::Audio { parameters, .. } => ("audio", parameters.as_ref().map(|p| p.codec.as_str())),
            })
            .collect();
        assert_eq!(
            shape,
            [
                ("audio", Some("ulaw")),
                ("video", Some("avc1.42c01e")),
                ("audio", None),
                ("video", Some("avc1.42c01e")),
                ("video", None),
                ("audio", Some("alaw")),
            ]
        );
        for ((sent, media), read) in out.iter().zip(&decoded).zip(&frames) {
            assert_eq!(
                (sent.seq, sent.wall_clock_us, sent.keyframe),
                (read.seq, read.frame.wall_clock_us, read.frame.keyframe)
            );
            assert_eq!(media.frame().data, read.frame.data);
            assert_eq!(media.is_audio(), read.frame.kind == MediaKind::Audio);
        }
    }

    #[test]
    fn a_later_run_numbers_its_events_above_every_earlier_one() {
        // A run that started at T, ran a second and raised a million events, then the next run.
        let t = 1_764_000_000_000u64;
        assert!(event_id_base(t + 1000) + 1 > event_id_base(t) + 1_000_000);
        // Exact in JavaScript (below 2^53) until 2245 (8.7e12 ms since 1970).
        assert!(event_id_base(8_700_000_000_000) + (1 << 30) < 1 << 53);
    }
}
