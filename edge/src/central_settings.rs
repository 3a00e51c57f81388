//! Camera settings central sets on the unit (protocol version 3), kept durably in
//! `<store>/central-settings.json` (temporary file, fsync, rename) and applied over the cameras
//! of the configuration file: central's value wins for every field it sets, the file's stays
//! for the others. A camera whose recording options from central lack `"remote"` is not
//! recorded (mode `off`, `/api/status` says `"recording off: set at central"`).
//!
//! The technician's changes on the page are recorded here too (a durable queue of
//! [`LocalChange`]s the uplink reports to central until acknowledged). Where central's
//! settings set a field the technician changed, central wins: a change to such a field is
//! overridden at once, and settings from central that override an earlier change of the
//! technician's are reported back as conflicts; both leave a notice for the page.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use protocol::sync::{CameraSettings, LocalChange, SettingsConflict, SettingsPush};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::camera_supervisor::CameraSupervisor;
use crate::config::{CameraConfig, EdgeConfig};
use crate::recording::CameraRecording;
use crate::recording::gate::RecordingMode;
use crate::status::UnitStatus;

/// The file, in the store directory.
pub const FILE: &str = "central-settings.json";
/// What `/api/status` says of a camera central's options keep from recording.
pub const OFF_BY_CENTRAL: &str = "recording off: set at central";
/// Notices kept for the page.
const MAX_NOTICES: usize = 50;

/// The settings fields, as central's API and the configuration file name them.
pub const FIELDS: [&str; 8] =
    ["recording", "mode", "schedule", "pre_buffer_s", "post_buffer_s", "motion", "motion_sensitivity", "max_age_days"];

/// Why the settings could not be read or kept.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// The file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is not what this unit writes.
    #[error("{path} is unreadable ({message}); move it away to start without central's settings")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// The decoder's message.
        message: String,
    },
}

/// Something the page shows the technician.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Notice {
    /// When, microseconds since the Unix epoch.
    pub at_us: i64,
    /// The camera.
    pub camera: String,
    /// The field.
    pub field: String,
    /// What happened, in words.
    pub text: String,
}

/// What is kept in [`FILE`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SettingsState {
    /// Central's settings in force (the last revision applied).
    #[serde(default)]
    pub push: Option<SettingsPush>,
    /// When they were applied, microseconds since the Unix epoch.
    #[serde(default)]
    pub applied_at_us: Option<i64>,
    /// The conflicts reported with them.
    #[serde(default)]
    pub conflicts: Vec<SettingsConflict>,
    /// Newest last.
    #[serde(default)]
    pub notices: Vec<Notice>,
    /// The technician's changes central has not acknowledged, in increasing id.
    #[serde(default)]
    pub pending: Vec<LocalChange>,
    /// `(camera, field)` the technician changed and central has not overridden since.
    #[serde(default)]
    pub changed: BTreeSet<(String, String)>,
    /// The last change id used.
    #[serde(default)]
    pub last_change_id: u64,
}

/// Central's entry for `camera`: its own, else `"*"`.
pub fn entry_for<'a>(push: &'a SettingsPush, camera: &str) -> Option<&'a CameraSettings> {
    push.cameras.iter().find(|c| c.camera == camera).or_else(|| push.cameras.iter().find(|c| c.camera == "*"))
}

/// The fields `entry` sets, with central's values as JSON.
pub fn fields_set(entry: &CameraSettings) -> Vec<(&'static str, Value)> {
    let mut out = Vec::new();
    let mut put = |field, v: Option<Value>| {
        if let Some(v) = v {
            out.push((field, v));
        }
    };
    put("recording", entry.recording.as_ref().map(|r| json!(r)));
    put("mode", entry.mode.as_ref().map(|m| json!(m)));
    put("schedule", entry.schedule.as_ref().map(|s| json!(s)));
    put("pre_buffer_s", entry.pre_buffer_ms.map(|ms| json!(f64::from(ms) / 1000.0)));
    put("post_buffer_s", entry.post_buffer_ms.map(|ms| json!(f64::from(ms) / 1000.0)));
    put("motion", entry.motion.map(|m| json!(m)));
    put("motion_sensitivity", entry.motion_sensitivity.map(|s| json!(s)));
    put("max_age_days", entry.max_age_s.map(|s| json!(s as f64 / 86_400.0)));
    out
}

/// The camera's value of `field` in the configuration file, as JSON (`recording` is whether
/// the unit records at all by its file: `["remote"]` unless its mode is off).
pub fn file_value(cam: &CameraConfig, field: &str) -> Value {
    match field {
        "recording" => json!(if cam.mode == RecordingMode::Off { vec!["none"] } else { vec!["remote"] }),
        "mode" => json!(cam.mode.as_str()),
        "schedule" => json!(cam.schedule),
        "pre_buffer_s" => json!(cam.pre_buffer_s),
        "post_buffer_s" => json!(cam.post_buffer_s),
        "motion" => json!(cam.motion),
        "motion_sensitivity" => json!(cam.motion_sensitivity),
        "max_age_days" => json!(cam.max_age_days),
        _ => Value::Null,
    }
}

/// Whether central's recording options keep the unit from recording (they name no `remote`).
pub fn recording_off(entry: &CameraSettings) -> bool {
    entry.recording.as_ref().is_some_and(|r| !r.iter().any(|o| o == "remote"))
}

/// `cam` with `entry`'s fields; an unknown mode is an error.
pub fn apply_entry(cam: &CameraConfig, entry: &CameraSettings) -> Result<CameraConfig, String> {
    let mut c = cam.clone();
    if let Some(m) = &entry.mode {
        c.mode = serde_json::from_value(json!(m)).map_err(|_| format!("unknown recording mode {m:?}"))?;
    }
    if let Some(s) = &entry.schedule {
        c.schedule = Some(s.clone());
    }
    if let Some(ms) = entry.pre_buffer_ms {
        c.pre_buffer_s = f64::from(ms) / 1000.0;
    }
    if let Some(ms) = entry.post_buffer_ms {
        c.post_buffer_s = f64::from(ms) / 1000.0;
    }
    if let Some(m) = entry.motion {
        c.motion = m;
    }
    if let Some(s) = entry.motion_sensitivity {
        c.motion_sensitivity = s;
    }
    if let Some(s) = entry.max_age_s {
        c.max_age_days = Some(s as f64 / 86_400.0);
    }
    if recording_off(entry) {
        c.mode = RecordingMode::Off;
        // Not recorded on the unit: neither stream.
        if c.sub_url.is_some() {
            c.sub_mode = Some(RecordingMode::Off);
        }
    }
    Ok(c)
}

/// The configuration the unit runs with: `file` with central's settings over each camera.
/// A camera central's settings would make invalid (a schedule the unit has no
/// `[[time_profile]]` for …) keeps its file settings; the second value says why, by camera.
pub fn merge(file: &EdgeConfig, push: Option<&SettingsPush>) -> (EdgeConfig, Vec<(String, String)>) {
    let mut out = file.clone();
    let mut rejected = Vec::new();
    let Some(push) = push else { return (out, rejected) };
    for cam in &mut out.cameras {
        let Some(entry) = entry_for(push, &cam.id) else { continue };
        let runs = |c: CameraConfig| {
            CameraRecording::new(file, &c)?;
            // Its sub stream takes the schedule and buffers too.
            if let Some(sub) = crate::sub_stream::sub_stream(&c) {
                CameraRecording::new(file, &sub).map_err(|e| format!("its sub stream: {e}"))?;
            }
            Ok(c)
        };
        match apply_entry(cam, entry).and_then(runs) {
            Ok(c) => *cam = c,
            Err(e) => rejected.push((cam.id.clone(), e)),
        }
    }
    (out, rejected)
}

/// The settings fields of cameras in both `old` and `new` whose values differ, as `(camera,
/// field, new value)` (an added camera's defaults are not changes of the technician's).
pub fn diff(old: &EdgeConfig, new: &EdgeConfig) -> Vec<(String, &'static str, Value)> {
    let mut out = Vec::new();
    for cam in &new.cameras {
        let Some(before) = old.cameras.iter().find(|c| c.id == cam.id) else { continue };
        for field in FIELDS.into_iter().filter(|f| *f != "recording") {
            let v = file_value(cam, field);
            if file_value(before, field) != v {
                out.push((cam.id.clone(), field, v));
            }
        }
    }
    out
}

/// The unit's settings from central and the technician's changes (see the module
/// documentation), shared by the uplink, the page and the camera supervisor.
pub struct CentralSettings {
    path: PathBuf,
    state: Mutex<SettingsState>,
    /// One change at a time: central's settings or the technician's edit.
    exclusive: tokio::sync::Mutex<()>,
    /// The supervisor is held weakly: it holds the recorder's sender, which must go away at
    /// shutdown for the recorder thread to finish.
    runtime: OnceLock<(Arc<UnitStatus>, std::sync::Weak<CameraSupervisor>, PathBuf)>,
}

fn now_us() -> i64 {
    jiff::Timestamp::now().as_microsecond()
}

impl CentralSettings {
    /// Reads what is kept in `store` (nothing yet: no settings from central).
    pub fn load(store: &Path) -> Result<CentralSettings, SettingsError> {
        let path = store.join(FILE);
        let state = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| SettingsError::Corrupt { path: path.clone(), message: e.to_string() })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => SettingsState::default(),
            Err(source) => return Err(SettingsError::Io { path, source }),
        };
        Ok(CentralSettings {
            path,
            state: Mutex::new(state),
            exclusive: tokio::sync::Mutex::new(()),
            runtime: OnceLock::new(),
        })
    }

    /// [`load`](Self::load), but a file that cannot be read is moved aside (to `FILE.corrupt`)
    /// with an error in the log, and the unit starts with its own settings: recording must not
    /// wait for central, which sends its latest settings again at the next connection.
    pub fn load_or_set_aside(store: &Path) -> CentralSettings {
        match CentralSettings::load(store) {
            Ok(s) => s,
            Err(e) => {
                let path = store.join(FILE);
                let aside = store.join(format!("{FILE}.corrupt"));
                match std::fs::rename(&path, &aside) {
                    Ok(()) => tracing::error!("{e}; moved to {} and starting without them", aside.display()),
                    Err(r) => tracing::error!("{e}; cannot move it aside ({r}); starting without them"),
                }
                CentralSettings {
                    path,
                    state: Mutex::new(SettingsState::default()),
                    exclusive: tokio::sync::Mutex::new(()),
                    runtime: OnceLock::new(),
                }
            }
        }
    }

    /// Changes apply to the running cameras through `supervisor`, re-reading the configuration
    /// file at `config_path`; `status` shows why a camera does not record.
    pub fn attach(&self, status: Arc<UnitStatus>, supervisor: Arc<CameraSupervisor>, config_path: PathBuf) {
        let _ = self.runtime.set((status, Arc::downgrade(&supervisor), config_path));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, SettingsState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A copy of what is kept.
    pub fn snapshot(&self) -> SettingsState {
        self.lock().clone()
    }

    /// The configuration to run: `file` with central's settings (see [`merge`]).
    pub fn effective(&self, file: &EdgeConfig) -> EdgeConfig {
        let (config, rejected) = merge(file, self.lock().push.as_ref());
        for (camera, why) in rejected {
            tracing::warn!(camera, "central's settings do not apply to this camera: {why}");
        }
        config
    }

    /// Shows in `/api/status` which cameras central's options keep from recording.
    pub fn show_reasons(&self, config: &EdgeConfig) {
        let Some((status, _, _)) = self.runtime.get() else { return };
        let state = self.lock();
        for cam in &config.cameras {
            let off = state.push.as_ref().and_then(|p| entry_for(p, &cam.id)).is_some_and(recording_off);
            status.set_recording_reason(&cam.id, off.then(|| OFF_BY_CENTRAL.to_owned()));
            if cam.sub_url.is_some() {
                let sub = crate::sub_stream::sub_stream_id(&cam.id);
                status.set_recording_reason(&sub, off.then(|| OFF_BY_CENTRAL.to_owned()));
            }
        }
    }

    /// Writes `state` durably (temporary file, fsync, rename, directory fsync).
    fn save(&self, state: &SettingsState) -> Result<(), SettingsError> {
        let text = serde_json::to_string_pretty(state)
            .map_err(|e| SettingsError::Corrupt { path: self.path.clone(), message: e.to_string() })?;
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir).map_err(|source| SettingsError::Io { path: dir.to_owned(), source })?;
        }
        crate::tech_cameras::write_atomically(&self.path, &text)
            .map_err(|source| SettingsError::Io { path: self.path.clone(), source })
    }

    /// Holds off other changes (central's or the technician's) while the guard lives.
    pub async fn exclusive(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.exclusive.lock().await
    }

    /// Keeps central's `push` durably, applies it to the running cameras (only those whose
    /// settings change restart) and returns the conflicts with the technician's changes.
    pub async fn apply_central(self: &Arc<Self>, push: SettingsPush) -> Result<Vec<SettingsConflict>, SettingsError> {
        let _one = self.exclusive().await;
        let file =
            match self.runtime.get() {
                Some((_, _, path)) => Some(EdgeConfig::load(path).map_err(|e| SettingsError::Io {
                    path: path.clone(),
                    source: std::io::Error::other(e.to_string()),
                })?),
                None => None,
            };
        let this = self.clone();
        let push2 = push.clone();
        let file2 = file.clone();
        let conflicts = tokio::task::spawn_blocking(move || this.keep_central(push2, file2.as_ref()))
            .await
            .map_err(|e| SettingsError::Io { path: self.path.clone(), source: std::io::Error::other(e) })??;
        if let (Some(file), Some(supervisor)) = (file, self.runtime.get().and_then(|r| r.1.upgrade())) {
            let config = self.effective(&file);
            match supervisor.apply(&config).await {
                Ok(applied) => tracing::info!(revision = push.revision, ?applied, "settings from central applied"),
                Err(e) => tracing::error!(revision = push.revision, "settings from central kept but not applied: {e}"),
            }
            self.show_reasons(&config);
        }
        Ok(conflicts)
    }

    /// The durable part of [`apply_central`](Self::apply_central).
    fn keep_central(
        &self,
        push: SettingsPush,
        file: Option<&EdgeConfig>,
    ) -> Result<Vec<SettingsConflict>, SettingsError> {
        let mut state = self.lock().clone();
        if let Some(kept) = &state.push
            && kept.revision >= push.revision
        {
            // Kept already (or a newer one is): nothing changes.
            return Ok(if kept.revision == push.revision { state.conflicts } else { Vec::new() });
        }
        let now = now_us();
        let mut conflicts = Vec::new();
        if let Some(file) = file {
            for cam in &file.cameras {
                let Some(entry) = entry_for(&push, &cam.id) else { continue };
                for (field, central) in fields_set(entry) {
                    let key = (cam.id.clone(), field.to_owned());
                    let local = file_value(cam, field);
                    if state.changed.contains(&key) && local != central {
                        state.changed.remove(&key);
                        conflicts.push(SettingsConflict {
                            camera: cam.id.clone(),
                            field: field.to_owned(),
                            local: local.to_string(),
                            central: central.to_string(),
                        });
                        let when = jiff::Timestamp::from_microsecond(push.set_at_us)
                            .map(|t| t.to_string())
                            .unwrap_or_default();
                        state.notices.push(Notice {
                            at_us: now,
                            camera: cam.id.clone(),
                            field: field.to_owned(),
                            text: format!(
                                "your change to {}.{field} ({local}) was overridden by central{} at {when}: {central}",
                                cam.id,
                                profile_words(push.profile.as_deref())
                            ),
                        });
                    }
                }
            }
        }
        trim(&mut state.notices);
        state.push = Some(push);
        state.applied_at_us = Some(now);
        state.conflicts = conflicts.clone();
        self.save(&state)?;
        *self.lock() = state;
        Ok(conflicts)
    }

    /// Records the technician's change of the configuration file from `old` to `new` (durably,
    /// before it applies): each changed field becomes a [`LocalChange`] for central; one that
    /// central's settings set is overridden (returned, with a notice).
    pub fn technician_changed(&self, old: &EdgeConfig, new: &EdgeConfig) -> Result<Vec<String>, SettingsError> {
        let mut state = self.lock().clone();
        let now = now_us();
        let mut overridden = Vec::new();
        for (camera, field, value) in diff(old, new) {
            // Central sets the field, or keeps the camera from recording whatever its mode.
            let central = state.push.as_ref().and_then(|p| entry_for(p, &camera)).and_then(|e| {
                fields_set(e)
                    .into_iter()
                    .find(|(f, _)| *f == field || (*f == "recording" && field == "mode" && recording_off(e)))
            });
            state.last_change_id += 1;
            state.pending.push(LocalChange {
                id: state.last_change_id,
                camera: camera.clone(),
                field: field.to_owned(),
                value: value.to_string(),
                at_us: now,
                overridden: central.is_some(),
            });
            match central {
                Some((_, central)) => {
                    let push = state.push.as_ref();
                    let when = push
                        .and_then(|p| jiff::Timestamp::from_microsecond(p.set_at_us).ok())
                        .map(|t| t.to_string())
                        .unwrap_or_default();
                    state.notices.push(Notice {
                        at_us: now,
                        camera: camera.clone(),
                        field: field.to_owned(),
                        text: format!(
                            "your change to {camera}.{field} ({value}) was overridden by central{} at {when}: {central}",
                            profile_words(push.and_then(|p| p.profile.as_deref()))
                        ),
                    });
                    overridden.push(format!("{camera}.{field}"));
                }
                None => {
                    state.changed.insert((camera, field.to_owned()));
                }
            }
        }
        trim(&mut state.notices);
        if state != *self.lock() {
            self.save(&state)?;
            *self.lock() = state;
        }
        Ok(overridden)
    }

    /// The technician's changes not yet acknowledged with an id above `after`.
    pub fn pending_after(&self, after: u64) -> Vec<LocalChange> {
        self.lock().pending.iter().filter(|c| c.id > after).cloned().collect()
    }

    /// Central holds the technician's changes up to `up_to_id`: forgotten (durably).
    pub fn acknowledged(&self, up_to_id: u64) -> Result<(), SettingsError> {
        let mut state = self.lock().clone();
        state.pending.retain(|c| c.id > up_to_id);
        if state != *self.lock() {
            self.save(&state)?;
            *self.lock() = state;
        }
        Ok(())
    }

    /// For the page: which fields of `camera` central sets, and the profile they come from.
    pub fn set_by_central(&self, camera: &str) -> Option<Value> {
        let state = self.lock();
        let push = state.push.as_ref()?;
        let entry = entry_for(push, camera)?;
        let fields: Vec<&str> = fields_set(entry).into_iter().map(|(f, _)| f).collect();
        let label = format!("set by central{}", profile_words(push.profile.as_deref()));
        Some(json!({
            "profile": push.profile,
            "fields": fields,
            "label": label,
            "recording_off": recording_off(entry),
        }))
    }
}

/// `GET /api/central-settings` → `{"revision", "profile", "set_at_us", "applied_at_us",
/// "cameras": [central's entries], "conflicts", "notices", "pending_changes"}` (revision and
/// profile null before central sent any).
pub fn routes(settings: Arc<CentralSettings>) -> axum::Router {
    axum::Router::new()
        .route(
            "/api/central-settings",
            axum::routing::get(|axum::extract::State(s): axum::extract::State<Arc<CentralSettings>>| async move {
                let state = s.snapshot();
                let push = state.push.as_ref();
                axum::Json(json!({
                    "revision": push.map(|p| p.revision),
                    "profile": push.and_then(|p| p.profile.clone()),
                    "set_at_us": push.map(|p| p.set_at_us),
                    "applied_at_us": state.applied_at_us,
                    "cameras": push.map(|p| p.cameras.clone()).unwrap_or_default(),
                    "conflicts": state.conflicts,
                    "notices": state.notices,
                    "pending_changes": state.pending,
                }))
            }),
        )
        .with_state(settings)
}

fn profile_words(profile: Option<&str>) -> String {
    profile.map(|p| format!(" (profile {p})")).unwrap_or_default()
}

fn trim(notices: &mut Vec<Notice>) {
    if notices.len() > MAX_NOTICES {
        notices.drain(..notices.len() - MAX_NOTICES);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "unit_id = \"u\"\n[store]\npath = \"/s\"\n[web]\nlisten = \"127.0.0.1:0\"\n\
        [[time_profile]]\nname = \"nights\"\nwindows = [\"daily 22:00-06:00\"]\n\
        [[camera]]\nid = \"front\"\nurl = \"rtsp://h/a\"\n[[camera]]\nid = \"cabin\"\nurl = \"rtsp://h/b\"\nmode = \"event\"\n";

    fn entry(camera: &str) -> CameraSettings {
        CameraSettings {
            camera: camera.into(),
            recording: None,
            mode: None,
            schedule: None,
            pre_buffer_ms: None,
            post_buffer_ms: None,
            motion: None,
            motion_sensitivity: None,
            max_age_s: None,
        }
    }

    fn push(revision: u64, cameras: Vec<CameraSettings>) -> SettingsPush {
        SettingsPush { revision, profile: Some("buses".into()), set_at_us: 1_700_000_000_000_000, cameras }
    }

    #[test]
    fn central_fields_win_and_recording_options_without_remote_turn_recording_off() {
        let file = EdgeConfig::parse(BASE).unwrap();
        let all = CameraSettings { pre_buffer_ms: Some(8000), motion: Some(true), ..entry("*") };
        let cabin = CameraSettings { recording: Some(vec!["none".into()]), ..entry("cabin") };
        let (config, rejected) = merge(&file, Some(&push(1, vec![all, cabin])));
        assert!(rejected.is_empty());
        let front = &config.cameras[0];
        assert_eq!((front.mode, front.pre_buffer_s, front.motion), (RecordingMode::Continuous, 8.0, true));
        let cabin = &config.cameras[1];
        assert_eq!(cabin.mode, RecordingMode::Off, "no \"remote\": not recorded");
        assert_eq!(cabin.pre_buffer_s, 5.0, "a camera's own entry replaces \"*\"");
        let unknown = CameraSettings { recording: Some(vec!["central".into(), "remote".into()]), ..entry("front") };
        assert!(!recording_off(&unknown), "an option the unit does not know is not acted on");
    }

    #[test]
    fn recording_off_at_central_turns_off_both_streams_and_a_schedule_reaches_the_sub_stream() {
        let text = BASE.replace("url = \"rtsp://h/b\"", "url = \"rtsp://h/b\"\nsub_url = \"rtsp://h/b-sub\"");
        let file = EdgeConfig::parse(&text).unwrap();
        let off = CameraSettings { recording: Some(vec!["none".into()]), ..entry("cabin") };
        let (config, _) = merge(&file, Some(&push(1, vec![off])));
        let sub = crate::sub_stream::sub_stream(&config.cameras[1]).unwrap();
        assert_eq!((config.cameras[1].mode, sub.mode), (RecordingMode::Off, RecordingMode::Off));
        let scheduled = text.replace("sub_url", "sub_mode = \"schedule\"\nschedule = \"nights\"\nsub_url");
        let file = EdgeConfig::parse(&scheduled).unwrap();
        let unknown = CameraSettings { schedule: Some("days".into()), ..entry("cabin") };
        let (config, rejected) = merge(&file, Some(&push(2, vec![unknown])));
        assert_eq!(config.cameras[1], file.cameras[1], "a schedule the unit lacks: its file settings stay");
        assert!(rejected[0].1.contains("its sub stream") && rejected[0].1.contains("\"days\""), "{rejected:?}");
    }

    #[test]
    fn settings_the_unit_cannot_run_leave_that_camera_as_its_file_says() {
        let file = EdgeConfig::parse(BASE).unwrap();
        let bad = CameraSettings { mode: Some("schedule".into()), schedule: Some("days".into()), ..entry("front") };
        let good = CameraSettings { mode: Some("schedule".into()), schedule: Some("nights".into()), ..entry("cabin") };
        let (config, rejected) = merge(&file, Some(&push(1, vec![bad, good])));
        assert_eq!(config.cameras[0], file.cameras[0]);
        assert_eq!(config.cameras[1].mode, RecordingMode::Schedule);
        assert_eq!(rejected.len(), 1);
        assert!(rejected[0].1.contains("days"), "{rejected:?}");
        let odd = CameraSettings { mode: Some("sometimes".into()), ..entry("front") };
        assert!(apply_entry(&file.cameras[0], &odd).is_err());
    }

    #[test]
    fn the_technicians_changes_are_kept_and_central_wins_where_both_changed() {
        let dir = tempfile::tempdir().unwrap();
        let s = CentralSettings::load(dir.path()).unwrap();
        let old = EdgeConfig::parse(BASE).unwrap();
        // The technician changes front's pre-buffer (central sets nothing yet).
        let new =
            EdgeConfig::parse(&BASE.replace("url = \"rtsp://h/a\"\n", "url = \"rtsp://h/a\"\npre_buffer_s = 9.0\n"))
                .unwrap();
        assert!(s.technician_changed(&old, &new).unwrap().is_empty());
        assert_eq!(s.pending_after(0).len(), 1, "one field changed: one change");
        assert_eq!(s.pending_after(0)[0].field, "pre_buffer_s");
        // Central then sets the pre-buffer of every camera: a conflict, central's value in force.
        let all = CameraSettings { pre_buffer_ms: Some(2000), ..entry("*") };
        let conflicts = s.keep_central(push(1, vec![all]), Some(&new)).unwrap();
        assert_eq!(
            conflicts,
            vec![SettingsConflict {
                camera: "front".into(),
                field: "pre_buffer_s".into(),
                local: "9.0".into(),
                central: "2.0".into()
            }]
        );
        assert_eq!(s.effective(&new).cameras[0].pre_buffer_s, 2.0);
        assert!(s.snapshot().notices[0].text.contains("overridden by central (profile buses)"));
        // A later change of a field central sets is overridden at once.
        let newer =
            EdgeConfig::parse(&BASE.replace("url = \"rtsp://h/a\"\n", "url = \"rtsp://h/a\"\npre_buffer_s = 3.0\n"))
                .unwrap();
        assert_eq!(s.technician_changed(&new, &newer).unwrap(), ["front.pre_buffer_s"]);
        assert!(s.pending_after(1)[0].overridden);
        // Kept across a restart (kill -9: the file is replaced whole).
        let again = CentralSettings::load(dir.path()).unwrap();
        assert_eq!(again.snapshot(), s.snapshot());
        again.acknowledged(2).unwrap();
        assert!(CentralSettings::load(dir.path()).unwrap().pending_after(0).is_empty());
    }

    #[test]
    fn only_fields_that_changed_count_and_an_added_camera_is_no_change() {
        let old = EdgeConfig::parse(BASE).unwrap();
        let added = EdgeConfig::parse(&format!("{BASE}[[camera]]\nid = \"rear\"\nurl = \"rtsp://h/c\"\n")).unwrap();
        assert!(diff(&old, &added).is_empty());
        let edited = EdgeConfig::parse(&BASE.replace("mode = \"event\"", "mode = \"event\"\nmotion = true")).unwrap();
        assert_eq!(diff(&old, &edited), vec![("cabin".to_owned(), "motion", json!(true))]);
    }

    #[test]
    fn an_unreadable_file_is_an_error_and_is_set_aside_at_start() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(FILE), "{not json").unwrap();
        let e = CentralSettings::load(dir.path()).err().unwrap().to_string();
        assert!(e.contains("move it away"), "{e}");
        let s = CentralSettings::load_or_set_aside(dir.path());
        assert_eq!(s.snapshot(), SettingsState::default());
        assert!(dir.path().join("central-settings.json.corrupt").exists());
        assert!(CentralSettings::load(dir.path()).is_ok(), "the unit starts next time too");
    }
}
