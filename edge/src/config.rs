//! The edge unit's configuration file (TOML). The keys are a stable contract: later versions
//! only add keys. Unknown keys are refused so that a typo does not silently do nothing.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::event_config::{GenericEventsConfig, RuleConfig, TimeProfileConfig, TriggerKind};
use crate::recording::gate::RecordingMode;

/// The whole configuration of an edge unit.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EdgeConfig {
    /// The unit's id, unique within the fleet (e.g. `bus-42`).
    pub unit_id: String,
    /// Where and how the unit records.
    pub store: StoreConfig,
    /// The unit's local web page and API.
    pub web: WebConfig,
    /// The central site; without it the unit records on its own.
    pub central: Option<CentralConfig>,
    /// The cameras to record.
    #[serde(default, rename = "camera")]
    pub cameras: Vec<CameraConfig>,
    /// `[board]`: the box the unit runs on; without it the unit runs as on a developer's machine
    /// (no device checks, and the I/O companion only if `[io]` names it).
    pub board: Option<BoardConfig>,
    /// `[io]`: the I/O companion link's addresses, overriding the board file's.
    pub io: Option<IoConfig>,
    /// `[power]`: what ignition off and a low supply do.
    #[serde(default)]
    pub power: PowerConfig,
    /// The unit's time zone (IANA name, e.g. `Europe/Berlin`) for time profiles. Default UTC.
    pub time_zone: Option<String>,
    /// `[[time_profile]]`: named weekly schedules for cameras in `mode = "schedule"`.
    #[serde(default, rename = "time_profile")]
    pub time_profiles: Vec<TimeProfileConfig>,
    /// `[generic_events]`: text messages from other systems, matched against patterns.
    pub generic_events: Option<GenericEventsConfig>,
    /// `[[rule]]`: event → actions.
    #[serde(default, rename = "rule")]
    pub rules: Vec<RuleConfig>,
}

/// `[board]`: the board description.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BoardConfig {
    /// The board description (e.g. `/etc/convoy/board.toml`, from `boards/<board>/board.toml`).
    /// Read and checked at start: a missing storage device stops the unit, other missing devices
    /// are warnings.
    pub file: PathBuf,
}

/// `[io]`: the UDP link to the I/O companion board. Each key overrides the board file's
/// `[companion]` value; without a board file both are needed.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IoConfig {
    /// Where the unit listens for the board's messages (e.g. `192.168.77.1:47801`; port 0
    /// picks one, for tests).
    pub listen: Option<SocketAddr>,
    /// The board's address and port (e.g. `192.168.77.2:47800`).
    pub board: Option<SocketAddr>,
}

/// `[power]`: ignition and supply handling (needs the I/O companion).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PowerConfig {
    /// After the ignition goes off, keep recording this many seconds, then seal the store and
    /// exit (status 0). The ignition coming on again cancels it. Default 300.
    #[serde(default = "default_run_on_s")]
    pub run_on_s: u64,
    /// Seal every open segment as soon as the companion warns of a low supply, so a power cut
    /// loses nothing already recorded. Default true.
    #[serde(default = "default_true")]
    pub seal_on_power_warning: bool,
}

impl Default for PowerConfig {
    fn default() -> Self {
        PowerConfig { run_on_s: default_run_on_s(), seal_on_power_warning: true }
    }
}

fn default_run_on_s() -> u64 {
    300
}

fn default_true() -> bool {
    true
}

/// `[store]`: the local media store.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// The store's directory (created if missing).
    pub path: PathBuf,
    /// The durability window in milliseconds: a frame older than this when power is cut is on
    /// flash. Default 1000.
    #[serde(default = "default_fsync_interval_ms")]
    pub fsync_interval_ms: u64,
    /// Size of each segment file in bytes (pre-allocated). Default 64 MiB.
    pub segment_bytes: Option<u64>,
    /// The most bytes the store may take; the oldest unlocked recordings go first.
    pub max_bytes: Option<u64>,
    /// Keep at least this much free space on the store's file system (low-disk guard).
    /// Default: four segments per camera.
    pub min_free_bytes: Option<u64>,
    /// A file holding the 32-byte key (64 hex digits) that encrypts recorded media at rest;
    /// without it media is stored in the clear.
    pub encryption_key_file: Option<PathBuf>,
    /// Seconds between retention passes. Default 30.
    #[serde(default = "default_retention_interval_s")]
    pub retention_interval_s: u64,
    /// `[store.archive]`: move old recordings to a second volume.
    pub archive: Option<ArchiveConfig>,
    /// Group commit with one `syncfs` of the store's file system (one journal commit per
    /// window) instead of an `fdatasync` per camera. Only for a data partition the store has
    /// to itself: `syncfs` also waits for other programs' writes there. Default false.
    #[serde(default)]
    pub sync_whole_filesystem: bool,
    /// Keep what central has not retrieved: under size or disk pressure, retention first
    /// deletes recordings central has acknowledged holding, and the unit warns (`/api/status`
    /// `store_warning`, a `StorageWarning` event that reaches central as an alarm) before it
    /// has to delete anything else. Default false (oldest first).
    #[serde(default)]
    pub keep_unretrieved: bool,
    /// With `keep_unretrieved`: warn when, at the current bitrates, retention would reach
    /// recordings central has not retrieved within this many hours. Default 24.
    #[serde(default = "default_unretrieved_warning_hours")]
    pub unretrieved_warning_hours: f64,
}

fn default_unretrieved_warning_hours() -> f64 {
    24.0
}

/// `[store.archive]`: multistage archiving.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArchiveConfig {
    /// The archive volume's directory.
    pub path: PathBuf,
    /// Recordings older than this many days move there. Default 7.
    #[serde(default = "default_archive_after_days")]
    pub after_days: f64,
    /// Keep only key frames in the archive (about a tenth of the size). Default false.
    #[serde(default)]
    pub keyframes_only: bool,
    /// The most bytes the archive may take; its oldest unlocked recordings go first.
    pub max_bytes: Option<u64>,
}

fn default_archive_after_days() -> f64 {
    7.0
}

fn default_retention_interval_s() -> u64 {
    30
}

fn default_fsync_interval_ms() -> u64 {
    1000
}

/// `[web]`: the local HTTP server.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebConfig {
    /// Address and port to listen on (port 0 picks a free one).
    pub listen: SocketAddr,
    /// Also serve the page over HTTPS here, with a certificate the unit makes on first use
    /// (`<store>/web/https-cert.der`); off when absent.
    #[serde(default)]
    pub https_listen: Option<SocketAddr>,
}

/// `[central]`: the central site to sync with.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CentralConfig {
    /// Central's QUIC address, `HOST:PORT` or `IP:PORT`.
    pub address: String,
    /// Central's certificate fingerprint (`sha256:<hex>`, printed by `central run`). Without
    /// it the unit trusts the first certificate it sees and pins that from then on.
    pub fingerprint: Option<String>,
    /// A file the OS's connection manager keeps with the unit's link type: one line, a kind
    /// (`wifi`, `cellular`, `ethernet`, `satellite`, `unknown`) and optionally `metered` or
    /// `unmetered` (see [`crate::link_type`]). Read every second; reported to central.
    #[serde(default)]
    pub link_file: Option<PathBuf>,
    /// The link type when there is no link file (or it is missing): the same syntax.
    #[serde(default)]
    pub link: Option<String>,
}

impl CentralConfig {
    /// Where the unit learns its link type.
    pub fn link_source(&self) -> Result<crate::link_type::LinkSource, String> {
        let fixed = match &self.link {
            Some(l) => Some(crate::link_type::UnitLink::parse(l).map_err(|e| format!("central.link: {e}"))?),
            None => None,
        };
        Ok(crate::link_type::LinkSource { file: self.link_file.clone(), fixed })
    }
}

/// `[[camera]]`: one camera.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CameraConfig {
    /// The camera's id, unique within the unit.
    pub id: String,
    /// A human-readable name; defaults to the id.
    pub name: Option<String>,
    /// The camera's RTSP URL. Credentials may be given here or in `username`/`password`.
    pub url: url::Url,
    /// RTSP user name.
    pub username: Option<String>,
    /// RTSP password.
    pub password: Option<String>,
    /// How RTP arrives: `tcp` (default; interleaved in the RTSP connection) or `udp`.
    #[serde(default)]
    pub transport: RtspTransport,
    /// Delete this camera's recordings older than this many days (default: keep until space
    /// is needed).
    pub max_age_days: Option<f64>,
    /// What is recorded: `continuous` (default), `schedule` (inside `schedule`'s windows),
    /// `event` (only around triggers) or `off`.
    #[serde(default)]
    pub mode: RecordingMode,
    /// The `[[time_profile]]` a camera in `mode = "schedule"` records in.
    pub schedule: Option<String>,
    /// Seconds of video kept in RAM before a trigger, written when one comes (event and
    /// schedule modes). Default 5; 0 turns it off.
    #[serde(default = "default_pre_buffer_s")]
    pub pre_buffer_s: f64,
    /// The most bytes the pre-buffer may hold (whole GOPs are dropped first). Default 8 MiB.
    #[serde(default = "default_pre_buffer_bytes")]
    pub pre_buffer_bytes: u64,
    /// Seconds recorded after a trigger ends. Default 5.
    #[serde(default = "default_post_buffer_s")]
    pub post_buffer_s: f64,
    /// Detect motion from the compressed stream (frame sizes, no decoding): `MotionStarted` and
    /// `MotionStopped` events, and in event or schedule mode recording around it. Default false.
    #[serde(default)]
    pub motion: bool,
    /// Motion sensitivity, 1 (only large changes) to 10 (small ones). Default 5.
    #[serde(default = "default_motion_sensitivity")]
    pub motion_sensitivity: u8,
    /// Share the camera with central (default true). When false, central never learns of it:
    /// not in the hello, the catalog or camera states, no live video, no retrieval, and events
    /// about it only (rule alarms) with its name left out.
    #[serde(default = "default_true")]
    pub share: bool,
    /// Record the camera's ONVIF metadata stream when it offers one (beside the video, while
    /// the video records) and raise its ONVIF events (`OnvifEvent`, rules' `trigger =
    /// "onvif"`). Default true.
    #[serde(default = "default_true")]
    pub metadata: bool,
    /// The camera's sub stream (a second RTSP URL, usually smaller and H.264), recorded into
    /// a log of its own ([`crate::sub_stream::sub_stream_id`]). Without it the camera has one
    /// stream, as before.
    pub sub_url: Option<url::Url>,
    /// RTSP user name for the sub stream (default: `username`).
    pub sub_username: Option<String>,
    /// RTSP password for the sub stream (default: `password`).
    pub sub_password: Option<String>,
    /// How the sub stream's RTP arrives (default: `transport`).
    pub sub_transport: Option<RtspTransport>,
    /// What of the sub stream is recorded: `continuous` (default), `schedule`, `event` or
    /// `off`, with the camera's `schedule`, pre-/post-buffer and triggers; `mode` stays the
    /// main stream's. `mode = "event"` with `sub_mode = "continuous"`: sub stream always, main
    /// stream around events.
    pub sub_mode: Option<RecordingMode>,
}

/// A camera's `transport`: how its RTP packets arrive.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RtspTransport {
    /// Interleaved in the RTSP TCP connection (works through NAT and firewalls; no loss).
    #[default]
    Tcp,
    /// RTP and RTCP on UDP ports of their own (what some cameras and relays only offer). Lost
    /// packets are not sent again: for the vehicle's own camera network only.
    Udp,
}

fn default_pre_buffer_s() -> f64 {
    5.0
}

fn default_pre_buffer_bytes() -> u64 {
    8 << 20
}

fn default_post_buffer_s() -> f64 {
    5.0
}

fn default_motion_sensitivity() -> u8 {
    5
}

impl CameraConfig {
    /// The name to show: `name`, or the id.
    pub fn display_name(&self) -> &str {
        self.name.as_deref().unwrap_or(&self.id)
    }
}

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The file is not valid TOML or has wrong keys or values; the message names the line.
    #[error("config file {path} is invalid: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message, with line and column.
        message: String,
    },
    /// The values parse but do not make sense together.
    #[error("config file {path}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong and what to do.
        message: String,
    },
}

impl EdgeConfig {
    /// The media store's options from `[store]` and the cameras' retention (reads the
    /// encryption key file if one is configured).
    pub fn store_options(&self) -> Result<media_store::StoreOptions, media_store::StoreError> {
        let defaults = media_store::StoreOptions::default();
        let encryption_key = match &self.store.encryption_key_file {
            Some(path) => Some(media_store::MediaKey::from_file(path)?),
            None => None,
        };
        let archive = self.store.archive.as_ref().map(|a| media_store::archive::ArchiveOptions {
            path: a.path.clone(),
            after: std::time::Duration::from_secs_f64(a.after_days * 86_400.0),
            keyframes_only: a.keyframes_only,
            max_bytes: a.max_bytes,
        });
        Ok(media_store::StoreOptions {
            encryption_key,
            archive,
            sync_whole_filesystem: self.store.sync_whole_filesystem,
            segment_bytes: self.store.segment_bytes.unwrap_or(defaults.segment_bytes),
            fsync_interval: std::time::Duration::from_millis(self.store.fsync_interval_ms),
            retention: media_store::Retention {
                max_bytes: self.store.max_bytes,
                min_free_bytes: self.store.min_free_bytes,
                max_age: self
                    .cameras
                    .iter()
                    .filter_map(|c| {
                        let max_age = std::time::Duration::from_secs_f64(c.max_age_days? * 86_400.0);
                        Some(
                            crate::sub_stream::streams(std::slice::from_ref(c))
                                .into_iter()
                                .map(move |s| (s.config.id, max_age)),
                        )
                    })
                    .flatten()
                    .collect(),
                prefer_covered_by: self.store.keep_unretrieved.then(|| crate::sync_link::CENTRAL_CURSOR.to_owned()),
            },
        })
    }

    /// Reads, parses and checks a configuration file.
    pub fn load(path: &Path) -> Result<EdgeConfig, ConfigError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
        Self::parse(&text).map_err(|e| e.at(path))
    }

    /// Parses and checks configuration text.
    pub fn parse(text: &str) -> Result<EdgeConfig, ConfigError> {
        let config: EdgeConfig = toml::from_str(text)
            .map_err(|e| ConfigError::Parse { path: PathBuf::new(), message: e.to_string().trim_end().to_owned() })?;
        config.check()?;
        Ok(config)
    }

    fn check(&self) -> Result<(), ConfigError> {
        let invalid = |message: String| ConfigError::Invalid { path: PathBuf::new(), message };
        if self.unit_id.trim().is_empty() {
            return Err(invalid("unit_id must not be empty".into()));
        }
        let mut seen = std::collections::HashSet::new();
        for cam in &self.cameras {
            if cam.id.trim().is_empty() {
                return Err(invalid("a [[camera]] has an empty id".into()));
            }
            if !seen.insert(cam.id.as_str()) {
                return Err(invalid(format!("camera id {:?} is used twice; each [[camera]] needs its own id", cam.id)));
            }
            if !matches!(cam.url.scheme(), "rtsp" | "rtsps") {
                return Err(invalid(format!(
                    "camera {:?}: url {} must start with rtsp:// or rtsps://",
                    cam.id, cam.url
                )));
            }
        }
        crate::sub_stream::check(&self.cameras).map_err(invalid)?;
        for cam in &self.cameras {
            if cam.max_age_days.is_some_and(|d| !(d > 0.0 && d.is_finite())) {
                return Err(invalid(format!("camera {:?}: max_age_days must be a positive number", cam.id)));
            }
        }
        self.check_recording().map_err(invalid)?;
        self.check_rules().map_err(invalid)?;
        if self.store.segment_bytes.is_some_and(|b| !(1 << 16..=1 << 34).contains(&b)) {
            return Err(invalid("store.segment_bytes must be between 64 KiB and 16 GiB".into()));
        }
        if let Some(a) = &self.store.archive {
            if !(a.after_days >= 0.0 && a.after_days.is_finite()) {
                return Err(invalid("store.archive.after_days must be a number of days, 0 or more".into()));
            }
            if a.path == self.store.path || a.path.starts_with(&self.store.path) {
                return Err(invalid("store.archive.path must be outside store.path (a second volume)".into()));
            }
        }
        if self.store.unretrieved_warning_hours.is_nan() || self.store.unretrieved_warning_hours <= 0.0 {
            return Err(invalid("store.unretrieved_warning_hours must be more than 0".into()));
        }
        if self.store.retention_interval_s == 0 {
            return Err(invalid("store.retention_interval_s must be at least 1".into()));
        }
        if self.store.fsync_interval_ms == 0 {
            return Err(invalid("store.fsync_interval_ms must be at least 1".into()));
        }
        if let Some(c) = &self.central
            && let Some(fp) = &c.fingerprint
        {
            link::identity::parse_fingerprint(fp).map_err(|e| invalid(format!("central: {e}")))?;
        }
        if let Some(c) = &self.central {
            c.link_source().map_err(invalid)?;
        }
        if let Some(io) = &self.io
            && self.board.is_none()
            && (io.listen.is_none() || io.board.is_none())
        {
            return Err(invalid(
                "[io] needs both listen and board when there is no [board] file to take them from".into(),
            ));
        }
        Ok(())
    }
}

impl EdgeConfig {
    /// The unit's time zone (`time_zone`, default UTC).
    pub fn time_zone(&self) -> Result<jiff::tz::TimeZone, String> {
        match &self.time_zone {
            None => Ok(jiff::tz::TimeZone::UTC),
            Some(name) => jiff::tz::TimeZone::get(name)
                .map_err(|e| format!("time_zone {name:?} is not a known IANA time zone (e.g. \"Europe/Berlin\"): {e}")),
        }
    }

    /// The time profile a camera records in, if it is in schedule mode.
    pub fn camera_profile(
        &self,
        camera: &CameraConfig,
    ) -> Result<Option<crate::recording::schedule::TimeProfile>, String> {
        if camera.mode != RecordingMode::Schedule {
            return Ok(None);
        }
        let Some(name) = &camera.schedule else {
            return Err(format!("camera {:?}: mode = \"schedule\" needs schedule = \"PROFILE\"", camera.id));
        };
        let profile = self.time_profiles.iter().find(|p| &p.name == name).ok_or_else(|| {
            format!("camera {:?}: schedule {name:?} is not the name of any [[time_profile]]", camera.id)
        })?;
        let windows = profile
            .windows
            .iter()
            .map(|w| crate::recording::schedule::Window::parse(w))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("time_profile {name:?}: {e}"))?;
        Ok(Some(crate::recording::schedule::TimeProfile::new(windows, self.time_zone()?)))
    }

    fn check_recording(&self) -> Result<(), String> {
        self.time_zone()?;
        let mut names = std::collections::HashSet::new();
        for p in &self.time_profiles {
            if !names.insert(p.name.as_str()) {
                return Err(format!("time_profile name {:?} is used twice", p.name));
            }
            if p.windows.is_empty() {
                return Err(format!("time_profile {:?} has no windows", p.name));
            }
            for w in &p.windows {
                crate::recording::schedule::Window::parse(w).map_err(|e| format!("time_profile {:?}: {e}", p.name))?;
            }
        }
        for cam in &self.cameras {
            let id = &cam.id;
            let schedules = [Some(cam.mode), cam.sub_mode].contains(&Some(RecordingMode::Schedule));
            if cam.schedule.is_some() && !schedules {
                return Err(format!(
                    "camera {id:?}: schedule is only used with mode = \"schedule\" (or sub_mode = \"schedule\")"
                ));
            }
            self.camera_profile(cam)?;
            if let Some(sub) = crate::sub_stream::sub_stream(cam) {
                self.camera_profile(&sub).map_err(|e| {
                    e.replace(&format!("camera {:?}", sub.id), &format!("camera {id:?}"))
                        .replace("mode = ", "sub_mode = ")
                })?;
            }
            if !(0.0..=60.0).contains(&cam.pre_buffer_s) {
                return Err(format!("camera {id:?}: pre_buffer_s must be between 0 and 60"));
            }
            if !(0.0..=3600.0).contains(&cam.post_buffer_s) {
                return Err(format!("camera {id:?}: post_buffer_s must be between 0 and 3600"));
            }
            if !(1..=10).contains(&cam.motion_sensitivity) {
                return Err(format!("camera {id:?}: motion_sensitivity must be between 1 and 10"));
            }
        }
        Ok(())
    }

    fn check_rules(&self) -> Result<(), String> {
        let patterns = crate::generic_events::Patterns::compile(
            self.generic_events.as_ref().map(|g| g.patterns.as_slice()).unwrap_or_default(),
        )
        .map_err(|e| e.to_string())?;
        let camera = |rule: &str, id: &str| {
            if self.cameras.iter().any(|c| c.id == id) {
                Ok(())
            } else {
                Err(format!("rule {rule:?}: there is no camera {id:?}"))
            }
        };
        let mut names = std::collections::HashSet::new();
        for r in &self.rules {
            let name = &r.name;
            if !names.insert(name.as_str()) {
                return Err(format!("rule name {name:?} is used twice"));
            }
            match (r.trigger, &r.input) {
                (TriggerKind::Input, None) => {
                    return Err(format!(
                        "rule {name:?}: trigger = \"input\" needs input = \"panic\" (or doorN, inputN)"
                    ));
                }
                (TriggerKind::Input, Some(i)) => {
                    crate::rules::parse_input(i)
                        .ok_or_else(|| format!("rule {name:?}: input {i:?} is not ignition, panic, doorN or inputN"))?;
                }
                (_, Some(_)) => return Err(format!("rule {name:?}: input is only used with trigger = \"input\"")),
                _ => {}
            }
            if let Some(c) = &r.camera {
                if !matches!(
                    r.trigger,
                    TriggerKind::Motion | TriggerKind::CameraLost | TriggerKind::CameraRestored | TriggerKind::Onvif
                ) {
                    return Err(format!(
                        "rule {name:?}: camera is only used with motion, camera_lost, camera_restored and onvif"
                    ));
                }
                camera(name, c)?;
            }
            if r.topic.is_some() && r.trigger != TriggerKind::Onvif {
                return Err(format!("rule {name:?}: topic is only used with trigger = \"onvif\""));
            }
            if r.topic.as_ref().is_some_and(|t| t.trim().is_empty()) {
                return Err(format!(
                    "rule {name:?}: topic must not be empty (e.g. topic = \"Motion\", a part of the camera's topic)"
                ));
            }
            if let Some(p) = &r.pattern {
                if r.trigger != TriggerKind::Generic {
                    return Err(format!("rule {name:?}: pattern is only used with trigger = \"generic\""));
                }
                if !patterns.has(p) {
                    return Err(format!("rule {name:?}: there is no [[generic_events.pattern]] named {p:?}"));
                }
            }
            for c in r.record.iter().chain(&r.lock) {
                camera(name, c)?;
            }
            if r.record.is_empty() && r.lock.is_empty() && !r.notify_central && r.set_output.is_none() {
                return Err(format!("rule {name:?} does nothing: give it record, lock, notify_central or set_output"));
            }
            if r.record_for_s.is_some_and(|s| !(s >= 0.0 && s.is_finite())) {
                return Err(format!("rule {name:?}: record_for_s must be 0 or more"));
            }
            for (key, v) in
                [("lock_before_s", r.lock_before_s), ("lock_after_s", r.lock_after_s), ("lock_days", r.lock_days)]
            {
                if !(v >= 0.0 && v.is_finite()) {
                    return Err(format!("rule {name:?}: {key} must be 0 or more"));
                }
            }
            if r.set_output.is_some_and(|o| o > 31) {
                return Err(format!("rule {name:?}: set_output must be an output from 0 to 31"));
            }
        }
        Ok(())
    }
}

impl ConfigError {
    fn at(self, path: &Path) -> ConfigError {
        match self {
            ConfigError::Parse { message, .. } => ConfigError::Parse { path: path.into(), message },
            ConfigError::Invalid { message, .. } => ConfigError::Invalid { path: path.into(), message },
            e => e,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONTRACT_EXAMPLE: &str = r#"
unit_id = "bus-42"
[store]
path = "/var/lib/convoy/store"
[web]
listen = "127.0.0.1:8081"
[central]                      # optional
address = "127.0.0.1:4433"
[[camera]]
id = "front"
url = "rtsp://127.0.0.1:8554/front"
"#;

    #[test]
    fn contract_example_parses() {
        let c = EdgeConfig::parse(CONTRACT_EXAMPLE).unwrap();
        assert_eq!(c.unit_id, "bus-42");
        assert_eq!(c.store.path, Path::new("/var/lib/convoy/store"));
        assert_eq!(c.store.fsync_interval_ms, 1000);
        assert_eq!(c.web.listen.to_string(), "127.0.0.1:8081");
        assert_eq!(c.central.unwrap().address, "127.0.0.1:4433");
        assert_eq!(c.cameras.len(), 1);
        assert_eq!(c.cameras[0].id, "front");
        assert_eq!(c.cameras[0].display_name(), "front");
    }

    #[test]
    fn keep_unretrieved_prefers_what_central_holds() {
        let c = EdgeConfig::parse(CONTRACT_EXAMPLE).unwrap();
        assert!(!c.store.keep_unretrieved);
        assert_eq!(c.store_options().unwrap().retention.prefer_covered_by, None);
        let text = CONTRACT_EXAMPLE.replace("[web]", "keep_unretrieved = true\nunretrieved_warning_hours = 6\n[web]");
        let c = EdgeConfig::parse(&text).unwrap();
        assert_eq!(c.store.unretrieved_warning_hours, 6.0);
        assert_eq!(c.store_options().unwrap().retention.prefer_covered_by.as_deref(), Some("central"));
        let bad = CONTRACT_EXAMPLE.replace("[web]", "keep_unretrieved = true\nunretrieved_warning_hours = 0\n[web]");
        let e = EdgeConfig::parse(&bad).unwrap_err().to_string();
        assert!(e.contains("unretrieved_warning_hours must be more than 0"), "{e}");
    }

    #[test]
    fn the_link_type_comes_from_a_file_or_a_fixed_value() {
        use protocol::interconnect::LinkKind;
        let c = EdgeConfig::parse(CONTRACT_EXAMPLE).unwrap().central.unwrap();
        assert!((c.link_file.is_none() && c.link.is_none()), "both optional");
        let text = CONTRACT_EXAMPLE
            .replace("address = ", "link_file = \"/run/convoy/link\"\nlink = \"cellular unmetered\"\naddress = ");
        let source = EdgeConfig::parse(&text).unwrap().central.unwrap().link_source().unwrap();
        assert_eq!(source.file.as_deref(), Some(Path::new("/run/convoy/link")));
        let fixed = source.fixed.unwrap();
        assert_eq!((fixed.kind, fixed.metered), (LinkKind::Cellular, false));
        let bad = text.replace("cellular unmetered", "lte");
        let e = EdgeConfig::parse(&bad).unwrap_err().to_string();
        assert!(e.contains("central.link: unknown link kind \"lte\""), "{e}");
        let bad = text.replace("cellular unmetered", "wifi cheap");
        let e = EdgeConfig::parse(&bad).unwrap_err().to_string();
        assert!(e.contains("\"cheap\" after the link kind: expected nothing, metered or unmetered"), "{e}");
    }

    #[test]
    fn central_is_optional() {
        let text = CONTRACT_EXAMPLE.replace("[central]", "[other]").replace("address", "#");
        let text = text.replace("[other]                      # optional\n#", "#");
        let c = EdgeConfig::parse(&text).unwrap();
        assert!(c.central.is_none());
    }

    #[test]
    fn camera_transport_is_tcp_unless_udp_is_asked_for() {
        let c = EdgeConfig::parse(CONTRACT_EXAMPLE).unwrap();
        assert_eq!(c.cameras[0].transport, RtspTransport::Tcp);
        let udp = CONTRACT_EXAMPLE.replace("url = ", "transport = \"udp\"\nurl = ");
        assert_eq!(EdgeConfig::parse(&udp).unwrap().cameras[0].transport, RtspTransport::Udp);
        let tcp = CONTRACT_EXAMPLE.replace("url = ", "transport = \"tcp\"\nurl = ");
        assert_eq!(EdgeConfig::parse(&tcp).unwrap().cameras[0].transport, RtspTransport::Tcp);
        let e = EdgeConfig::parse(&CONTRACT_EXAMPLE.replace("url = ", "transport = \"http\"\nurl = ")).unwrap_err();
        assert!(e.to_string().contains("tcp") && e.to_string().contains("udp"), "{e}");
    }

    #[test]
    fn parse_error_names_the_line() {
        let text = CONTRACT_EXAMPLE.replace("listen = \"127.0.0.1:8081\"", "listen = 8081");
        let e = EdgeConfig::parse(&text).unwrap_err().to_string();
        assert!(e.contains("line 6"), "{e}");
    }

    #[test]
    fn unknown_key_is_refused_by_name() {
        let text = CONTRACT_EXAMPLE.replace("[web]", "[web]\nlisten_typo = 1");
        let e = EdgeConfig::parse(&text).unwrap_err().to_string();
        assert!(e.contains("listen_typo"), "{e}");
    }

    #[test]
    fn duplicate_camera_ids_are_refused() {
        let text = format!("{CONTRACT_EXAMPLE}[[camera]]\nid = \"front\"\nurl = \"rtsp://x/y\"\n");
        let e = EdgeConfig::parse(&text).unwrap_err().to_string();
        assert!(e.contains("used twice"), "{e}");
    }

    #[test]
    fn archive_table_parses_and_is_checked() {
        let text = CONTRACT_EXAMPLE
            .replace("[web]", "[store.archive]\npath = \"/mnt/archive\"\nafter_days = 3\nkeyframes_only = true\n[web]");
        let c = EdgeConfig::parse(&text).unwrap();
        let a = c.store_options().unwrap().archive.unwrap();
        assert_eq!(a.after, std::time::Duration::from_secs(3 * 86_400));
        assert!(a.keyframes_only);
        let inside = text.replace("/mnt/archive", "/var/lib/convoy/store/archive");
        assert!(EdgeConfig::parse(&inside).unwrap_err().to_string().contains("outside store.path"));
    }

    #[test]
    fn board_io_and_power_tables_parse() {
        let c = EdgeConfig::parse(CONTRACT_EXAMPLE).unwrap();
        assert!(c.board.is_none() && c.io.is_none());
        assert_eq!(c.power.run_on_s, 300);
        assert!(c.power.seal_on_power_warning);
        let text = format!(
            "{CONTRACT_EXAMPLE}[board]\nfile = \"/etc/convoy/board.toml\"\n[io]\nlisten = \"127.0.0.1:0\"\n\
             [power]\nrun_on_s = 2\nseal_on_power_warning = false\n"
        );
        let c = EdgeConfig::parse(&text).unwrap();
        assert_eq!(c.board.unwrap().file, Path::new("/etc/convoy/board.toml"));
        assert_eq!(c.io.unwrap().listen.unwrap().to_string(), "127.0.0.1:0");
        assert_eq!(c.power.run_on_s, 2);
        assert!(!c.power.seal_on_power_warning);
        let e = EdgeConfig::parse(&format!("{CONTRACT_EXAMPLE}[io]\nlisten = \"127.0.0.1:0\"\n")).unwrap_err();
        assert!(e.to_string().contains("[io] needs both"), "{e}");
    }

    const RECORDING_EXAMPLE: &str = r#"
[[time_profile]]
name = "service"
windows = ["mon-fri 06:00-22:00:30", "sat 08:00-12:00"]
[[camera]]
id = "door"
url = "rtsp://127.0.0.1:8554/door"
mode = "schedule"
schedule = "service"
[[camera]]
id = "cab"
url = "rtsp://127.0.0.1:8554/cab"
mode = "event"
pre_buffer_s = 3
pre_buffer_bytes = 4_000_000
post_buffer_s = 2.5
motion = true
motion_sensitivity = 7
[generic_events]
tcp = "127.0.0.1:47900"
udp = "127.0.0.1:47901"
[[generic_events.pattern]]
name = "door-forced"
contains = "DOOR"
regex = "forced"
[[rule]]
name = "panic"
trigger = "input"
input = "panic"
active = true
record = ["front", "cab"]
record_for_s = 20
lock = ["front"]
lock_before_s = 10
lock_after_s = 40
lock_days = 90
notify_central = true
set_output = 2
output_on = true
[[rule]]
name = "forced"
trigger = "generic"
pattern = "door-forced"
record = ["door"]
[[rule]]
name = "cab-motion"
trigger = "motion"
camera = "cab"
notify_central = true
"#;

    fn recording_example() -> String {
        format!("time_zone = \"Europe/Berlin\"\n{CONTRACT_EXAMPLE}{RECORDING_EXAMPLE}")
    }

    #[test]
    fn recording_modes_events_and_rules_parse() {
        let c = EdgeConfig::parse(&recording_example()).unwrap();
        assert_eq!(c.time_zone.as_deref(), Some("Europe/Berlin"));
        assert_eq!(c.time_profiles[0].windows.len(), 2);
        let front = &c.cameras[0];
        assert_eq!(front.mode, RecordingMode::Continuous, "today's behaviour is the default");
        assert_eq!((front.pre_buffer_s, front.pre_buffer_bytes, front.post_buffer_s), (5.0, 8 << 20, 5.0));
        assert!(!front.motion);
        assert_eq!(front.motion_sensitivity, 5);
        assert!(c.camera_profile(front).unwrap().is_none());
        let door = &c.cameras[1];
        assert_eq!(door.mode, RecordingMode::Schedule);
        assert!(c.camera_profile(door).unwrap().is_some());
        let cab = &c.cameras[2];
        assert_eq!(cab.mode, RecordingMode::Event);
        assert_eq!((cab.pre_buffer_s, cab.pre_buffer_bytes, cab.post_buffer_s), (3.0, 4_000_000, 2.5));
        assert!(cab.motion);
        assert_eq!(cab.motion_sensitivity, 7);
        let g = c.generic_events.as_ref().unwrap();
        assert_eq!(g.tcp.unwrap().port(), 47900);
        assert_eq!(g.udp.unwrap().port(), 47901);
        assert_eq!(g.patterns[0].regex.as_deref(), Some("forced"));
        assert_eq!(c.rules.len(), 3);
        let panic = &c.rules[0];
        assert_eq!(panic.trigger, TriggerKind::Input);
        assert_eq!(panic.record, ["front", "cab"]);
        assert_eq!(panic.record_for_s, Some(20.0));
        assert_eq!((panic.lock_before_s, panic.lock_after_s, panic.lock_days), (10.0, 40.0, 90.0));
        assert!(panic.notify_central && panic.output_on);
        assert_eq!(panic.set_output, Some(2));
        let forced = &c.rules[1];
        assert_eq!((forced.lock_before_s, forced.lock_after_s, forced.lock_days), (30.0, 30.0, 30.0));
        assert!(!forced.notify_central && forced.set_output.is_none() && forced.record_for_s.is_none());
        for mode in ["continuous", "off"] {
            let text = CONTRACT_EXAMPLE.replace("id = \"front\"", &format!("id = \"front\"\nmode = \"{mode}\""));
            assert_eq!(EdgeConfig::parse(&text).unwrap().cameras[0].mode.as_str(), mode);
        }
        let plain = EdgeConfig::parse(CONTRACT_EXAMPLE).unwrap();
        assert!(plain.time_zone.is_none() && plain.rules.is_empty() && plain.generic_events.is_none());
        assert_eq!(plain.time_zone().unwrap(), jiff::tz::TimeZone::UTC);
    }

    #[test]
    fn recording_mistakes_are_refused_with_what_to_do() {
        let base = recording_example();
        let cases = [
            ("time_zone = \"Europe/Berlin\"", "time_zone = \"Mars/Olympus\"", "IANA"),
            ("schedule = \"service\"", "schedule = \"night\"", "not the name of any [[time_profile]]"),
            ("schedule = \"service\"", "", "needs schedule"),
            ("\"sat 08:00-12:00\"", "\"sat 8-12\"", "time_profile \"service\""),
            ("mode = \"event\"", "mode = \"sometimes\"", "unknown variant"),
            ("motion_sensitivity = 7", "motion_sensitivity = 11", "between 1 and 10"),
            ("pre_buffer_s = 3", "pre_buffer_s = 120", "pre_buffer_s"),
            ("regex = \"forced\"", "regex = \"(\"", "does not compile"),
            ("input = \"panic\"", "input = \"horn\"", "not ignition, panic"),
            ("pattern = \"door-forced\"", "pattern = \"nope\"", "no [[generic_events.pattern]]"),
            ("record = [\"door\"]", "record = [\"rear\"]", "no camera \"rear\""),
            ("record = [\"door\"]", "", "does nothing"),
            ("trigger = \"motion\"", "trigger = \"sunrise\"", "unknown variant"),
            ("set_output = 2", "set_output = 40", "0 to 31"),
            ("name = \"forced\"", "name = \"panic\"", "used twice"),
            ("output_on = true", "output_on = true\nextra = 1", "extra"),
        ];
        for (from, to, want) in cases {
            assert!(base.contains(from), "{from}");
            let e = EdgeConfig::parse(&base.replacen(from, to, 1)).unwrap_err().to_string();
            assert!(e.contains(want), "{from} -> {to}: {e}");
        }
        let text = CONTRACT_EXAMPLE.replace("id = \"front\"", "id = \"front\"\nschedule = \"x\"");
        assert!(EdgeConfig::parse(&text).unwrap_err().to_string().contains("only used with mode"));
    }

    #[test]
    fn camera_metadata_is_recorded_unless_turned_off() {
        let c = EdgeConfig::parse(CONTRACT_EXAMPLE).unwrap();
        assert!(c.cameras[0].metadata, "default true: recorded when offered");
        let off = CONTRACT_EXAMPLE.replace("url = ", "metadata = false\nurl = ");
        assert!(!EdgeConfig::parse(&off).unwrap().cameras[0].metadata);
        let on = CONTRACT_EXAMPLE.replace("url = ", "metadata = true\nurl = ");
        assert!(EdgeConfig::parse(&on).unwrap().cameras[0].metadata);
        let e = EdgeConfig::parse(&CONTRACT_EXAMPLE.replace("url = ", "metadata = \"yes\"\nurl = ")).unwrap_err();
        assert!(e.to_string().contains("metadata"), "{e}");
    }

    #[test]
    fn onvif_rules_parse_and_are_checked() {
        let rule = "[[rule]]\nname = \"cam-motion\"\ntrigger = \"onvif\"\ncamera = \"front\"\n\
                    topic = \"CellMotionDetector/Motion\"\nrecord = [\"front\"]\n";
        let c = EdgeConfig::parse(&format!("{CONTRACT_EXAMPLE}{rule}")).unwrap();
        assert_eq!(c.rules[0].trigger, TriggerKind::Onvif);
        assert_eq!(c.rules[0].topic.as_deref(), Some("CellMotionDetector/Motion"));
        assert_eq!(c.rules[0].camera.as_deref(), Some("front"));
        let any = rule.replace("camera = \"front\"\n", "").replace("topic = \"CellMotionDetector/Motion\"\n", "");
        let c = EdgeConfig::parse(&format!("{CONTRACT_EXAMPLE}{any}")).unwrap();
        assert!(c.rules[0].topic.is_none() && c.rules[0].camera.is_none(), "any topic of any camera");
        let cases = [
            ("trigger = \"onvif\"", "trigger = \"motion\"", "topic is only used with trigger = \"onvif\""),
            ("topic = \"CellMotionDetector/Motion\"", "topic = \" \"", "topic must not be empty"),
            ("camera = \"front\"", "camera = \"rear\"", "no camera \"rear\""),
        ];
        for (from, to, want) in cases {
            let e =
                EdgeConfig::parse(&format!("{CONTRACT_EXAMPLE}{}", rule.replace(from, to))).unwrap_err().to_string();
            assert!(e.contains(want), "{from} -> {to}: {e}");
        }
    }

    #[test]
    fn a_sub_stream_is_one_more_stream_with_the_cameras_settings() {
        let plain = EdgeConfig::parse(CONTRACT_EXAMPLE).unwrap();
        assert!(crate::sub_stream::sub_stream(&plain.cameras[0]).is_none(), "no sub_url: one stream, as before");
        assert_eq!(crate::sub_stream::log_ids(&plain.cameras), ["front"]);
        let text = CONTRACT_EXAMPLE.replace(
            "url = ",
            "mode = \"event\"\npre_buffer_s = 2\nmotion = true\nusername = \"u\"\npassword = \"p\"\n\
             transport = \"udp\"\nmax_age_days = 3\nsub_url = \"rtsp://127.0.0.1:8554/front-sub\"\nurl = ",
        );
        let c = EdgeConfig::parse(&text).unwrap();
        let cam = &c.cameras[0];
        assert_eq!(cam.mode, RecordingMode::Event, "mode stays the main stream's");
        let sub = crate::sub_stream::sub_stream(cam).unwrap();
        assert_eq!(sub.id, "front.sub");
        assert_eq!(sub.url.as_str(), "rtsp://127.0.0.1:8554/front-sub");
        assert_eq!(sub.mode, RecordingMode::Continuous, "sub_mode defaults to continuous");
        assert_eq!((sub.username.as_deref(), sub.password.as_deref()), (Some("u"), Some("p")));
        assert_eq!(sub.transport, RtspTransport::Udp);
        assert_eq!(sub.pre_buffer_s, 2.0);
        assert!(!sub.motion, "the main stream's motion holds both");
        assert_eq!(crate::sub_stream::log_ids(&c.cameras), ["front", "front.sub"]);
        let ages = c.store_options().unwrap().retention.max_age;
        assert_eq!(ages.get("front.sub"), ages.get("front"), "the sub stream's log ages like its camera's");
        assert!(ages.contains_key("front"));
        let own = text.replace(
            "sub_url",
            "sub_username = \"viewer\"\nsub_password = \"secret\"\nsub_transport = \"tcp\"\nsub_mode = \"off\"\nsub_url",
        );
        let sub = crate::sub_stream::sub_stream(&EdgeConfig::parse(&own).unwrap().cameras[0]).unwrap();
        assert_eq!((sub.username.as_deref(), sub.password.as_deref()), (Some("viewer"), Some("secret")));
        assert_eq!((sub.transport, sub.mode), (RtspTransport::Tcp, RecordingMode::Off));
        let main = crate::sub_stream::main_stream(&EdgeConfig::parse(&own).unwrap().cameras[0]);
        assert_eq!(main, crate::sub_stream::main_stream(&c.cameras[0]), "sub keys do not change the main stream");
    }

    #[test]
    fn a_sub_stream_on_a_schedule_uses_the_cameras_time_profile() {
        let base = recording_example();
        let text = base.replacen(
            "mode = \"schedule\"",
            "mode = \"event\"\nsub_url = \"rtsp://h/door-sub\"\nsub_mode = \"schedule\"",
            1,
        );
        let c = EdgeConfig::parse(&text).unwrap();
        let door = &c.cameras[1];
        assert!(c.camera_profile(door).unwrap().is_none(), "the main stream is in event mode");
        let sub = crate::sub_stream::sub_stream(door).unwrap();
        assert!(c.camera_profile(&sub).unwrap().is_some());
        let e = EdgeConfig::parse(&text.replacen("schedule = \"service\"", "", 1)).unwrap_err().to_string();
        assert!(e.contains("camera \"door\": sub_mode = \"schedule\" needs schedule"), "{e}");
        let main_only = base.replacen("mode = \"schedule\"", "mode = \"schedule\"\nsub_url = \"rtsp://h/door-sub\"", 1);
        let c = EdgeConfig::parse(&main_only).unwrap();
        let sub = crate::sub_stream::sub_stream(&c.cameras[1]).unwrap();
        assert_eq!((sub.mode, sub.schedule.as_deref()), (RecordingMode::Continuous, None));
    }

    #[test]
    fn sub_stream_mistakes_are_refused_with_what_to_do() {
        let with_sub = CONTRACT_EXAMPLE.replace("url = ", "sub_url = \"rtsp://127.0.0.1:8554/front-sub\"\nurl = ");
        let cases = [
            (CONTRACT_EXAMPLE.replace("url = ", "sub_mode = \"event\"\nurl = "), "sub_mode is only used with sub_url"),
            (
                CONTRACT_EXAMPLE.replace("url = ", "sub_password = \"x\"\nurl = "),
                "sub_password is only used with sub_url",
            ),
            (
                with_sub.replace("rtsp://127.0.0.1:8554/front-sub", "http://h/x"),
                "sub_url http://h/x must start with rtsp://",
            ),
            (with_sub.replace("8554/front-sub", "8554/front"), "sub_url is the same as url"),
            (with_sub.replace("sub_url", "sub_mode = \"sometimes\"\nsub_url"), "unknown variant"),
            (
                with_sub.replace("sub_url", "schedule = \"x\"\nsub_url"),
                "only used with mode = \"schedule\" (or sub_mode",
            ),
            (
                format!("{with_sub}[[camera]]\nid = \"front.sub\"\nurl = \"rtsp://h/other\"\n"),
                "camera id \"front.sub\" is the id of camera \"front\"'s sub stream",
            ),
        ];
        for (text, want) in cases {
            let e = EdgeConfig::parse(&text).unwrap_err().to_string();
            assert!(e.contains(want), "{want}: {e}");
        }
        let e = EdgeConfig::parse(&format!("{with_sub}[[camera]]\nid = \"front.sub\"\nurl = \"rtsp://h/o\"\n"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("rename camera \"front.sub\"") && e.contains("or remove sub_url"), "{e}");
        let no_sub = format!("{CONTRACT_EXAMPLE}[[camera]]\nid = \"front.sub\"\nurl = \"rtsp://h/other\"\n");
        assert!(EdgeConfig::parse(&no_sub).is_ok(), "such an id is fine while front has no sub stream");
    }

    #[test]
    fn bad_fingerprint_is_refused() {
        let text = CONTRACT_EXAMPLE
            .replace("address = \"127.0.0.1:4433\"", "address = \"127.0.0.1:4433\"\nfingerprint = \"abc\"");
        assert!(EdgeConfig::parse(&text).unwrap_err().to_string().contains("fingerprint"));
    }
}
