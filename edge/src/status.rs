//! The unit's live status, shared by the camera tasks, the recorder thread, the central
//! uplink and the web API.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use protocol::interconnect::{CameraState, CameraStateKind};
use serde::Serialize;
use std::sync::{Arc, Mutex, RwLock};

use tokio::sync::{broadcast, watch};

use crate::events::{EventKind, EventLog};
use crate::io_link::IoJson;
use crate::link_type::{LinkJson, UnitLink};
use crate::power::PowerJson;
use crate::vehicle::BoardJson;

/// The status of the whole unit.
pub struct UnitStatus {
    /// The unit's id.
    pub unit_id: String,
    /// The cameras by index (their slot, for as long as the unit runs), in configuration order
    /// and then in the order they were added at run time; a removed camera's slot stays, marked
    /// removed, and is reused if a camera of that id comes back.
    cameras: RwLock<Vec<Arc<CameraStatus>>>,
    central_connected: AtomicBool,
    central_error: Mutex<Option<String>>,
    central_last_connected_us: Mutex<Option<i64>>,
    store_error: Mutex<Option<String>>,
    /// Group commits (syncs of the store) since the unit started.
    group_commits: AtomicU64,
    store_warning: Mutex<Option<StoreWarning>>,
    changes: broadcast::Sender<CameraState>,
    /// The unit's events (camera lost and restored, store faults, the I/O companion's …).
    pub events: EventLog,
    board: Mutex<Option<BoardJson>>,
    io: Mutex<Option<IoJson>>,
    power: Mutex<PowerJson>,
    /// The link to central's connections and bytes.
    pub uplink: crate::uplink_traffic::UplinkTraffic,
    /// The unit's link type (`[central] link_file` or `link`), `None` while unknown.
    link: watch::Sender<Option<UnitLink>>,
}

/// The status of one camera.
pub struct CameraStatus {
    /// The camera's id.
    pub id: String,
    /// The camera's display name.
    pub name: String,
    /// For a camera's sub stream, the camera's id (the stream shows under it in `/api/status`).
    pub sub_of: Option<String>,
    health: Mutex<(CameraStateKind, Option<String>)>,
    frames_recorded: AtomicU64,
    bytes_recorded: AtomicU64,
    frames_lost: AtomicU64,
    packets_lost: AtomicU64,
    stream: Mutex<StreamStats>,
    /// Down since it last streamed (a `CameraLost` event was raised).
    lost: AtomicBool,
    mode: Mutex<&'static str>,
    /// Why the camera does not record whatever its mode (central's settings).
    recording_reason: Mutex<Option<String>>,
    recording: AtomicBool,
    /// Removed from the configuration while the unit runs: not shown, not reported.
    removed: AtomicBool,
    streams_started: AtomicU64,
}

impl CameraStatus {
    fn new(id: String, name: String) -> CameraStatus {
        CameraStatus {
            id,
            name,
            sub_of: None,
            health: Mutex::new((CameraStateKind::Connecting, None)),
            frames_recorded: AtomicU64::new(0),
            bytes_recorded: AtomicU64::new(0),
            frames_lost: AtomicU64::new(0),
            packets_lost: AtomicU64::new(0),
            stream: Mutex::new(StreamStats::default()),
            lost: AtomicBool::new(false),
            mode: Mutex::new("continuous"),
            recording_reason: Mutex::new(None),
            recording: AtomicBool::new(false),
            removed: AtomicBool::new(false),
            streams_started: AtomicU64::new(0),
        }
    }

    /// Bits per second of video, measured over the last two seconds while streaming.
    pub fn bitrate_bps(&self) -> Option<u64> {
        let streaming = lock(&self.health).0 == CameraStateKind::Streaming;
        lock(&self.stream).bitrate_bps.filter(|_| streaming)
    }

    /// How often the camera started streaming since the unit started (its reconnects are
    /// this less one).
    pub fn streams_started(&self) -> u64 {
        self.streams_started.load(Ordering::Relaxed)
    }
}

/// What the camera's stream looks like, as measured on arrival.
#[derive(Debug, Clone, Default)]
struct StreamStats {
    codec: Option<String>,
    audio: Option<AudioJson>,
    audio_reason: Option<String>,
    metadata: Option<MetadataJson>,
    metadata_reason: Option<String>,
    width: u32,
    height: u32,
    last_frame_us: Option<i64>,
    fps: Option<f64>,
    bitrate_bps: Option<u64>,
    window_start_us: i64,
    window_frames: u64,
    window_bytes: u64,
}

/// Frame rate and bit rate are measured over windows of this length.
const RATE_WINDOW_US: i64 = 2_000_000;

impl UnitStatus {
    /// A unit whose cameras are all connecting.
    pub fn new(unit_id: String, cameras: impl IntoIterator<Item = (String, String)>) -> UnitStatus {
        let (changes, _) = broadcast::channel(64);
        UnitStatus {
            unit_id,
            cameras: RwLock::new(cameras.into_iter().map(|(id, name)| Arc::new(CameraStatus::new(id, name))).collect()),
            central_connected: AtomicBool::new(false),
            central_error: Mutex::new(None),
            central_last_connected_us: Mutex::new(None),
            store_error: Mutex::new(None),
            group_commits: AtomicU64::new(0),
            store_warning: Mutex::new(None),
            changes,
            events: EventLog::default(),
            board: Mutex::new(None),
            io: Mutex::new(None),
            power: Mutex::new(PowerJson::default()),
            uplink: Default::default(),
            link: watch::Sender::new(None),
        }
    }

    /// Camera `index` (its slot, removed or not).
    fn camera(&self, index: usize) -> Arc<CameraStatus> {
        self.cameras.read().unwrap_or_else(|p| p.into_inner())[index].clone()
    }

    /// The cameras the unit runs now (removed ones left out), in slot order.
    pub fn cameras(&self) -> Vec<Arc<CameraStatus>> {
        let all = self.cameras.read().unwrap_or_else(|p| p.into_inner());
        all.iter().filter(|c| !c.removed.load(Ordering::Relaxed)).cloned().collect()
    }

    /// How many slots there are (removed cameras included).
    pub fn slots(&self) -> usize {
        self.cameras.read().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// A camera (re)started at run time: a fresh status (connecting, counters at zero) in the
    /// slot of its id, or a new slot; returns the index.
    pub fn add_camera(&self, id: &str, name: &str) -> usize {
        let fresh = Arc::new(CameraStatus::new(id.to_owned(), name.to_owned()));
        let mut all = self.cameras.write().unwrap_or_else(|p| p.into_inner());
        match all.iter().position(|c| c.id == id) {
            Some(index) => {
                all[index] = fresh;
                index
            }
            None => {
                all.push(fresh);
                all.len() - 1
            }
        }
    }

    /// A camera's sub stream (re)started: like [`Self::add_camera`], shown under camera
    /// `main` as its `sub`; returns the index.
    pub fn add_sub_stream(&self, main: &str, id: &str, name: &str) -> usize {
        let index = self.add_camera(id, name);
        let mut all = self.cameras.write().unwrap_or_else(|p| p.into_inner());
        let mut fresh = CameraStatus::new(id.to_owned(), name.to_owned());
        fresh.sub_of = Some(main.to_owned());
        all[index] = Arc::new(fresh);
        index
    }

    /// The slot of the stream with this id, if it has one.
    pub fn index_of(&self, id: &str) -> Option<usize> {
        self.cameras.read().unwrap_or_else(|p| p.into_inner()).iter().position(|c| c.id == id)
    }

    /// The id of camera `camera`'s running sub stream, if it has one.
    pub fn sub_stream_of(&self, camera: &str) -> Option<String> {
        self.cameras().into_iter().find(|c| c.sub_of.as_deref() == Some(camera)).map(|c| c.id.clone())
    }

    /// Camera `index` was removed from the configuration: it is no longer shown.
    pub fn remove_camera(&self, index: usize) {
        self.camera(index).removed.store(true, Ordering::Relaxed);
    }

    /// Sets camera `index`'s state and tells subscribers when it changed.
    pub fn set_camera_state(&self, index: usize, state: CameraStateKind, reason: Option<String>) {
        let cam = &*self.camera(index);
        let mut health = lock(&cam.health);
        if health.0 == state && health.1 == reason {
            return;
        }
        *health = (state, reason.clone());
        drop(health);
        if state == CameraStateKind::Streaming {
            cam.streams_started.fetch_add(1, Ordering::Relaxed);
        }
        match state {
            CameraStateKind::Down if !cam.lost.swap(true, Ordering::Relaxed) => {
                let reason = reason.clone().unwrap_or_default();
                self.events.emit(EventKind::CameraLost { camera: cam.id.clone(), reason });
            }
            CameraStateKind::Streaming if cam.lost.swap(false, Ordering::Relaxed) => {
                self.events.emit(EventKind::CameraRestored { camera: cam.id.clone() });
            }
            _ => {}
        }
        let _ = self.changes.send(CameraState { camera: cam.id.clone(), state, reason });
    }

    /// The current state of every camera, as messages for central.
    pub fn camera_states(&self) -> Vec<CameraState> {
        self.cameras()
            .iter()
            .map(|c| {
                let (state, reason) = lock(&c.health).clone();
                CameraState { camera: c.id.clone(), state, reason }
            })
            .collect()
    }

    /// Camera state changes from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<CameraState> {
        self.changes.subscribe()
    }

    /// Counts a frame of `bytes` written to the store for camera `index`.
    pub fn count_recorded(&self, index: usize, bytes: usize) {
        let cam = self.camera(index);
        cam.frames_recorded.fetch_add(1, Ordering::Relaxed);
        cam.bytes_recorded.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    /// Records the codec and picture size camera `index` sends.
    pub fn set_stream_format(&self, index: usize, codec: &str, width: u32, height: u32) {
        let cam = self.camera(index);
        let mut s = lock(&cam.stream);
        s.codec = Some(codec.to_owned());
        s.width = width;
        s.height = height;
    }

    /// Records the audio camera `index` sends and Convoy records (`None`: none), and why
    /// the camera's audio is not recorded, when it offers some that is not.
    pub fn set_audio(&self, index: usize, audio: Option<AudioJson>, reason: Option<String>) {
        let cam = self.camera(index);
        let mut s = lock(&cam.stream);
        s.audio = audio;
        s.audio_reason = reason;
    }

    /// Records whether camera `index` sends ONVIF metadata Convoy records (`encoding`: its
    /// SDP encoding; `None`: none, and `metadata` shows null), and why not when it offers some
    /// that is not recorded. The counts go on across the camera's sessions.
    pub fn set_metadata(&self, index: usize, encoding: Option<&str>, reason: Option<String>) {
        let cam = self.camera(index);
        let mut s = lock(&cam.stream);
        match encoding {
            Some(encoding) => {
                let m = s.metadata.get_or_insert_with(MetadataJson::default);
                m.encoding = format!("application/{encoding}");
            }
            None => s.metadata = None,
        }
        s.metadata_reason = reason;
    }

    /// Camera `index` delivered a metadata message stamped `wall_us`.
    pub fn observe_metadata(&self, index: usize, wall_us: i64) {
        let cam = self.camera(index);
        if let Some(m) = lock(&cam.stream).metadata.as_mut() {
            m.messages_received += 1;
            m.last_message = rfc3339(wall_us);
        }
    }

    /// A metadata message of camera `index` was written to the store.
    pub fn count_metadata_recorded(&self, index: usize) {
        let cam = self.camera(index);
        if let Some(m) = lock(&cam.stream).metadata.as_mut() {
            m.messages_recorded += 1;
        }
    }

    /// An ONVIF notification in camera `index`'s metadata became an event.
    pub fn count_metadata_event(&self, index: usize) {
        let cam = self.camera(index);
        if let Some(m) = lock(&cam.stream).metadata.as_mut() {
            m.events += 1;
        }
    }

    /// An ONVIF notification in camera `index`'s metadata was over the camera's event budget
    /// (`event_budget.rs`) and raised no event.
    pub fn count_metadata_event_dropped(&self, index: usize) {
        let cam = self.camera(index);
        if let Some(m) = lock(&cam.stream).metadata.as_mut() {
            m.events_dropped += 1;
        }
    }

    /// Accounts for a frame of `bytes` that camera `index` delivered at `wall_us`; returns the
    /// camera's bit rate as last measured (`None` before a whole window has passed).
    pub fn observe_frame(&self, index: usize, wall_us: i64, bytes: usize) -> Option<u64> {
        let cam = self.camera(index);
        let mut s = lock(&cam.stream);
        s.last_frame_us = Some(wall_us);
        if s.window_frames == 0 {
            s.window_start_us = wall_us;
        }
        s.window_frames += 1;
        s.window_bytes += bytes as u64;
        let elapsed = wall_us - s.window_start_us;
        if elapsed >= RATE_WINDOW_US {
            // Frames after the first over the time they span.
            s.fps = Some((s.window_frames - 1) as f64 * 1e6 / elapsed as f64);
            s.bitrate_bps = Some(s.window_bytes * 8 * 1_000_000 / elapsed as u64);
            s.window_frames = 1;
            s.window_bytes = bytes as u64;
            s.window_start_us = wall_us;
        }
        s.bitrate_bps
    }

    /// Says why the camera with id `camera` does not record (`None`: nothing keeps it from
    /// recording by its mode).
    pub fn set_recording_reason(&self, camera: &str, reason: Option<String>) {
        for c in self.cameras().iter().filter(|c| c.id == camera) {
            *lock(&c.recording_reason) = reason.clone();
        }
    }

    /// Sets camera `index`'s recording mode as shown (`continuous`, `schedule`, `event`, `off`).
    pub fn set_mode(&self, index: usize, mode: &'static str) {
        *lock(&self.camera(index).mode) = mode;
    }

    /// Sets whether camera `index`'s frames currently go to the store.
    pub fn set_recording(&self, index: usize, recording: bool) {
        self.camera(index).recording.store(recording, Ordering::Relaxed);
    }

    /// Counts a frame of camera `index` that could not be recorded.
    pub fn count_lost(&self, index: usize) {
        self.camera(index).frames_lost.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts `packets` RTP packets camera `index` sent that never arrived (gaps in their
    /// sequence numbers, as `retina` reports them with the next frame).
    pub fn count_packets_lost(&self, index: usize, packets: u16) {
        if packets > 0 {
            self.camera(index).packets_lost.fetch_add(u64::from(packets), Ordering::Relaxed);
        }
    }

    /// Records whether the link to central is up, and the last error if it is not.
    pub fn set_central(&self, connected: bool, error: Option<String>) {
        self.central_connected.store(connected, Ordering::Relaxed);
        *lock(&self.central_error) = error;
        if connected {
            *lock(&self.central_last_connected_us) = Some(jiff::Timestamp::now().as_microsecond());
        }
    }

    /// Whether the link to central is up, its last error, and when it last came up (µs).
    pub fn central(&self) -> (bool, Option<String>, Option<i64>) {
        (
            self.central_connected.load(Ordering::Relaxed),
            lock(&self.central_error).clone(),
            *lock(&self.central_last_connected_us),
        )
    }

    /// Sets the unit's link type; true when it changed.
    pub fn set_link(&self, link: Option<UnitLink>) -> bool {
        self.link.send_if_modified(|current| {
            let changed = *current != link;
            *current = link;
            changed
        })
    }

    /// Follows the unit's link type (the uplink reports each change to central).
    pub fn subscribe_link(&self) -> watch::Receiver<Option<UnitLink>> {
        self.link.subscribe()
    }

    /// Counts a group commit of the store.
    pub fn count_group_commit(&self) {
        self.group_commits.fetch_add(1, Ordering::Relaxed);
    }

    /// Group commits of the store since the unit started.
    pub fn group_commits(&self) -> u64 {
        self.group_commits.load(Ordering::Relaxed)
    }

    /// Records a store failure (or its end, with `None`).
    pub fn set_store_error(&self, error: Option<String>) {
        let mut current = lock(&self.store_error);
        if let Some(message) = &error
            && current.as_ref() != Some(message)
        {
            self.events.emit(EventKind::StorageFault { message: message.clone() });
        }
        *current = error;
    }

    /// Records a warning about recordings central has not retrieved (or its end, with `None`);
    /// raises a [`EventKind::StorageWarning`] when one starts or turns into deletion.
    pub fn set_store_warning(&self, warning: Option<StoreWarning>) {
        let mut current = lock(&self.store_warning);
        if let Some(w) = &warning
            && current.as_ref().is_none_or(|c| c.deleting != w.deleting)
        {
            self.events.emit(EventKind::StorageWarning { message: w.message.clone() });
        }
        *current = warning;
    }

    /// Sets `"board"` (the board file's name and its missing devices).
    pub fn set_board(&self, board: Option<BoardJson>) {
        *lock(&self.board) = board;
    }

    /// Sets `"io"` (the I/O companion's state).
    pub fn set_io(&self, io: Option<IoJson>) {
        *lock(&self.io) = io;
    }

    /// Changes `"power"`.
    pub fn update_power(&self, change: impl FnOnce(&mut PowerJson)) {
        change(&mut lock(&self.power));
    }

    /// The JSON document served at `GET /api/status`.
    pub fn snapshot(&self) -> StatusJson {
        StatusJson {
            unit_id: self.unit_id.clone(),
            central_connected: self.central_connected.load(Ordering::Relaxed),
            central_error: lock(&self.central_error).clone(),
            store_error: lock(&self.store_error).clone(),
            store_warning: lock(&self.store_warning).as_ref().map(|w| w.message.clone()),
            board: lock(&self.board).clone(),
            io: lock(&self.io).clone(),
            power: lock(&self.power).clone(),
            link: self.link.borrow().map(UnitLink::json),
            cameras: {
                let all = self.cameras();
                let sub = |main: &str| {
                    all.iter()
                        .find(|c| c.sub_of.as_deref() == Some(main))
                        .map(|c| SubStreamJson { id: c.id.clone(), stream: stream_json(c) })
                };
                all.iter()
                    .filter(|c| c.sub_of.is_none())
                    .map(|c| CameraJson {
                        id: c.id.clone(),
                        name: c.name.clone(),
                        stream: stream_json(c),
                        sub: sub(&c.id),
                    })
                    .collect()
            },
        }
    }
}

/// One stream's status as `/api/status` shows it.
fn stream_json(c: &CameraStatus) -> StreamJson {
    let (state, reason) = lock(&c.health).clone();
    let stream = lock(&c.stream).clone();
    let streaming = state == CameraStateKind::Streaming;
    StreamJson {
        state: state.as_str(),
        reason,
        codec: stream.codec,
        audio: stream.audio,
        audio_reason: stream.audio_reason,
        metadata: stream.metadata,
        metadata_reason: stream.metadata_reason,
        width: (stream.width > 0).then_some(stream.width),
        height: (stream.height > 0).then_some(stream.height),
        fps: stream.fps.filter(|_| streaming).map(|f| (f * 10.0).round() / 10.0),
        bitrate_bps: stream.bitrate_bps.filter(|_| streaming),
        last_frame: stream.last_frame_us.and_then(rfc3339),
        frames_recorded: c.frames_recorded.load(Ordering::Relaxed),
        bytes_recorded: c.bytes_recorded.load(Ordering::Relaxed),
        frames_lost: c.frames_lost.load(Ordering::Relaxed),
        packets_lost: c.packets_lost.load(Ordering::Relaxed),
        mode: *lock(&c.mode),
        recording: streaming && c.recording.load(Ordering::Relaxed),
        recording_reason: lock(&c.recording_reason).clone(),
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// `GET /api/status`: a stable contract; fields are only ever added.
#[derive(Debug, Serialize)]
pub struct StatusJson {
    /// The unit's id.
    pub unit_id: String,
    /// Whether the QUIC link to central is up.
    pub central_connected: bool,
    /// Why the link to central is down, when it is and central is configured.
    pub central_error: Option<String>,
    /// The last store failure, if the store is failing.
    pub store_error: Option<String>,
    /// With `[store] keep_unretrieved`: when retention will soon have to delete (or has
    /// deleted) recordings central has not retrieved, what and what to do.
    pub store_warning: Option<String>,
    /// Every configured camera.
    pub cameras: Vec<CameraJson>,
    /// The board file's name and the devices it names that are missing (null without
    /// `[board]`).
    pub board: Option<BoardJson>,
    /// The I/O companion (null without one).
    pub io: Option<IoJson>,
    /// Ignition run-on and power-warning seals.
    pub power: PowerJson,
    /// The unit's link type (`{ "kind", "metered" }`), null while unknown.
    pub link: Option<LinkJson>,
}

/// One camera in [`StatusJson`]: its main stream's figures, and its sub stream's.
#[derive(Debug, Serialize)]
pub struct CameraJson {
    /// The camera's id.
    pub id: String,
    /// Its display name.
    pub name: String,
    /// The main stream (its fields appear in the camera object itself).
    #[serde(flatten)]
    pub stream: StreamJson,
    /// The camera's sub stream (`sub_url`), null without one.
    pub sub: Option<SubStreamJson>,
}

/// A camera's sub stream in [`CameraJson`]: its id and the same per-stream fields.
#[derive(Debug, Serialize)]
pub struct SubStreamJson {
    /// The sub stream's id: its log in the store and its camera id at central (`front.sub`).
    pub id: String,
    /// Its figures.
    #[serde(flatten)]
    pub stream: StreamJson,
}

/// What `/api/status` says of one stream of a camera.
#[derive(Debug, Serialize)]
pub struct StreamJson {
    /// `connecting`, `streaming` or `down`.
    pub state: &'static str,
    /// Why the camera is down (or why it last went down while connecting again).
    pub reason: Option<String>,
    /// Frames written to the store since the unit started.
    pub frames_recorded: u64,
    /// Bytes of media written to the store since the unit started.
    pub bytes_recorded: u64,
    /// Frames received but not recorded (the store could not keep up or failed).
    pub frames_lost: u64,
    /// RTP packets the camera sent that never arrived (gaps in their sequence numbers: a
    /// lossy network, or over UDP a full receive buffer). A frame missing a packet is not
    /// recorded; the frames after it may show damage until the next key frame.
    pub packets_lost: u64,
    /// RFC 6381 codec of the recorded stream (e.g. `avc1.4d401e`), once known.
    pub codec: Option<String>,
    /// The audio recorded beside the video (`{"codec":"aac","sample_rate":48000,"channels":1}`),
    /// null when the camera sends none or none Convoy can record.
    pub audio: Option<AudioJson>,
    /// Why the camera's audio is not recorded (an unsupported codec, a refused SETUP), else null.
    pub audio_reason: Option<String>,
    /// The camera's ONVIF metadata stream, recorded beside the video (its messages while the
    /// video records) and read for events (always); null when it offers none or `metadata =
    /// false`.
    pub metadata: Option<MetadataJson>,
    /// Why the camera's metadata is not recorded (compressed, a refused SETUP, a failing
    /// stream), else null.
    pub metadata_reason: Option<String>,
    /// Picture width in pixels, once known.
    pub width: Option<u32>,
    /// Picture height in pixels, once known.
    pub height: Option<u32>,
    /// Frames per second, measured over the last two seconds while streaming.
    pub fps: Option<f64>,
    /// Bits per second of video, measured over the last two seconds while streaming.
    pub bitrate_bps: Option<u64>,
    /// When the last frame arrived, RFC 3339.
    pub last_frame: Option<String>,
    /// The recording mode: `continuous`, `schedule`, `event` or `off`.
    pub mode: &'static str,
    /// Whether its frames go to the store now (by its mode, schedule or a trigger).
    pub recording: bool,
    /// Why it does not record whatever happens (`"recording off: set at central"`), or null.
    pub recording_reason: Option<String>,
}

/// The audio of a camera in [`CameraJson`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AudioJson {
    /// `aac`, `pcmu` (G.711 µ-law) or `pcma` (G.711 A-law).
    pub codec: &'static str,
    /// Samples per second.
    pub sample_rate: u32,
    /// Channels.
    pub channels: u16,
}

/// The ONVIF metadata of a camera in [`CameraJson`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct MetadataJson {
    /// The stream's media type, `application/vnd.onvif.metadata`.
    pub encoding: String,
    /// Messages received since the unit started.
    pub messages_received: u64,
    /// Messages written to the store since the unit started.
    pub messages_recorded: u64,
    /// When the last message arrived (its wall clock), RFC 3339; null before the first.
    pub last_message: Option<String>,
    /// ONVIF notifications that became events (`OnvifEvent`).
    pub events: u64,
    /// ONVIF notifications that raised no event because the camera sent more than its budget
    /// (a burst of 20, then 10 a second; a change of a `true`/`false` state always counts as an
    /// event unless the camera flips it without pause). The messages are recorded all the same.
    pub events_dropped: u64,
}

fn rfc3339(us: i64) -> Option<String> {
    jiff::Timestamp::from_microsecond(us).ok().map(|t| t.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cameras_added_and_removed_at_run_time_keep_their_slots() {
        let status = UnitStatus::new("u".into(), [("front".to_owned(), "Front".to_owned())]);
        let ids = |s: &UnitStatus| s.snapshot().cameras.iter().map(|c| c.id.clone()).collect::<Vec<_>>();
        let side = status.add_camera("side", "Side");
        assert_eq!((side, ids(&status)), (1, vec!["front".to_owned(), "side".to_owned()]));
        status.count_recorded(side, 10);
        status.remove_camera(side);
        assert_eq!(ids(&status), ["front"], "a removed camera is not shown");
        assert_eq!(status.camera_states().len(), 1, "nor reported");
        status.count_recorded(side, 10); // a frame still queued for the recorder: no panic
        assert_eq!(status.add_camera("side", "Side door"), side, "the same id comes back to its slot");
        let again = &status.snapshot().cameras[1];
        assert_eq!((again.name.as_str(), again.stream.bytes_recorded), ("Side door", 0), "with a fresh status");
        assert_eq!(status.slots(), 2);
    }

    #[test]
    fn packets_lost_add_up_per_camera() {
        let status = UnitStatus::new("u".into(), [("front".to_owned(), "Front".to_owned())]);
        let lost = |s: &UnitStatus| serde_json::to_value(s.snapshot()).unwrap()["cameras"][0]["packets_lost"].clone();
        assert_eq!(lost(&status), 0);
        status.count_packets_lost(0, 0);
        status.count_packets_lost(0, 3);
        status.count_packets_lost(0, u16::MAX);
        assert_eq!(lost(&status), 3 + 65_535);
    }

    #[test]
    fn cameras_show_their_audio_or_why_not() {
        let status = UnitStatus::new("u".into(), [("front".to_owned(), "Front".to_owned())]);
        let camera = |s: &UnitStatus| serde_json::to_value(s.snapshot()).unwrap()["cameras"][0].clone();
        let c = camera(&status);
        assert!(c["audio"].is_null() && c["audio_reason"].is_null(), "{c}");
        status.set_audio(0, Some(AudioJson { codec: "aac", sample_rate: 48_000, channels: 1 }), None);
        assert_eq!(camera(&status)["audio"], serde_json::json!({"codec": "aac", "sample_rate": 48000, "channels": 1}));
        status.set_audio(0, None, Some("audio/opus not recorded".into()));
        let c = camera(&status);
        assert!(c["audio"].is_null());
        assert_eq!(c["audio_reason"], "audio/opus not recorded");
    }

    #[test]
    fn cameras_show_their_metadata_or_why_not() {
        let status = UnitStatus::new("u".into(), [("front".to_owned(), "Front".to_owned())]);
        let camera = |s: &UnitStatus| serde_json::to_value(s.snapshot()).unwrap()["cameras"][0].clone();
        let c = camera(&status);
        assert!(c["metadata"].is_null() && c["metadata_reason"].is_null(), "{c}");
        status.observe_metadata(0, 1_000_000);
        assert!(camera(&status)["metadata"].is_null(), "nothing counted without a stream");
        status.set_metadata(0, Some("vnd.onvif.metadata"), None);
        assert_eq!(
            camera(&status)["metadata"],
            serde_json::json!({"encoding": "application/vnd.onvif.metadata", "messages_received": 0,
                "messages_recorded": 0, "last_message": null, "events": 0, "events_dropped": 0})
        );
        status.observe_metadata(0, 1_764_151_200_000_000);
        status.observe_metadata(0, 1_764_151_201_500_000);
        status.count_metadata_recorded(0);
        status.count_metadata_event(0);
        status.set_metadata(0, Some("vnd.onvif.metadata"), None);
        let m = camera(&status)["metadata"].clone();
        assert_eq!((m["messages_received"].as_u64(), m["messages_recorded"].as_u64()), (Some(2), Some(1)), "{m}");
        assert_eq!((m["last_message"].as_str(), m["events"].as_u64()), (Some("2025-11-26T10:00:01.5Z"), Some(1)));
        status.set_metadata(0, None, Some("metadata not recorded".into()));
        let c = camera(&status);
        assert!(c["metadata"].is_null());
        assert_eq!(c["metadata_reason"], "metadata not recorded");
    }

    #[test]
    fn a_sub_stream_shows_under_its_camera() {
        let status = UnitStatus::new("u".into(), [("front".to_owned(), "Front".to_owned())]);
        let json = |s: &UnitStatus| serde_json::to_value(s.snapshot()).unwrap()["cameras"].clone();
        assert!(json(&status)[0]["sub"].is_null(), "null without a sub stream");
        let sub = status.add_sub_stream("front", "front.sub", "Front (sub stream)");
        status.set_mode(sub, "continuous");
        status.set_mode(0, "event");
        status.set_stream_format(sub, "avc1.64001e", 320, 180);
        status.set_camera_state(sub, CameraStateKind::Streaming, None);
        status.count_recorded(sub, 1000);
        let cameras = json(&status);
        assert_eq!(cameras.as_array().unwrap().len(), 1, "not a camera of its own: {cameras}");
        let (main, sub_json) = (&cameras[0], &cameras[0]["sub"]);
        assert_eq!((main["mode"].as_str(), main["state"].as_str()), (Some("event"), Some("connecting")));
        assert_eq!(main["bytes_recorded"], 0, "the camera's fields describe its main stream");
        assert_eq!(sub_json["id"], "front.sub");
        assert_eq!((sub_json["state"].as_str(), sub_json["mode"].as_str()), (Some("streaming"), Some("continuous")));
        assert_eq!((sub_json["width"].as_u64(), sub_json["height"].as_u64()), (Some(320), Some(180)));
        assert_eq!((sub_json["frames_recorded"].as_u64(), sub_json["bytes_recorded"].as_u64()), (Some(1), Some(1000)));
        for key in ["reason", "codec", "fps", "bitrate_bps", "last_frame", "frames_lost", "packets_lost", "recording"] {
            assert!(sub_json.get(key).is_some(), "{key} in {sub_json}");
        }
        let states = status.camera_states();
        assert_eq!(states.len(), 2, "central hears of the sub stream as a camera");
        assert_eq!(
            (status.sub_stream_of("front").as_deref(), status.sub_stream_of("front.sub")),
            (Some("front.sub"), None)
        );
        status.remove_camera(sub);
        assert!(json(&status)[0]["sub"].is_null());
    }

    #[test]
    fn the_link_type_shows_once_known() {
        let status = UnitStatus::new("u".into(), []);
        let link = |s: &UnitStatus| serde_json::to_value(s.snapshot()).unwrap()["link"].clone();
        assert!(link(&status).is_null());
        let cellular = UnitLink::parse("cellular").unwrap();
        assert!(status.set_link(Some(cellular)));
        assert!(!status.set_link(Some(cellular)), "no change");
        assert_eq!(link(&status), serde_json::json!({ "kind": "cellular", "metered": true }));
    }

    #[test]
    fn cameras_show_their_mode_and_whether_they_record() {
        let status = UnitStatus::new("u".into(), [("front".to_owned(), "Front".to_owned())]);
        let camera = |s: &UnitStatus| serde_json::to_value(s.snapshot()).unwrap()["cameras"][0].clone();
        let c = camera(&status);
        assert_eq!((c["mode"].as_str(), c["recording"].as_bool()), (Some("continuous"), Some(false)));
        assert!(c["frames_recorded"].is_u64(), "existing fields stay");
        status.set_mode(0, "event");
        status.set_recording(0, true);
        assert_eq!(camera(&status)["recording"], false, "only while streaming");
        status.set_camera_state(0, CameraStateKind::Streaming, None);
        let c = camera(&status);
        assert_eq!((c["mode"].as_str(), c["recording"].as_bool()), (Some("event"), Some(true)));
    }
}

/// A warning about recordings central has not retrieved (see [`UnitStatus::set_store_warning`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreWarning {
    /// Retention has deleted some already (not only a forecast).
    pub deleting: bool,
    /// What is at risk and what to do.
    pub message: String,
}
