//! Cameras from the technician's page: `GET /api/cameras` (as configured), `POST /api/cameras`
//! (add), `PATCH /api/cameras/{id}` (edit) and `DELETE /api/cameras/{id}` (remove). A change is
//! checked as a whole new configuration first (including each camera's recording mode and
//! schedule), then written to the configuration file atomically with its comments and layout
//! kept (`toml_edit`), then applied to the running unit at once ([`CameraSupervisor`]): only
//! the cameras that changed start, restart or stop; the others keep recording untouched.
//! Without a supervisor (offline use) a change applies at the next start (`restart_required`).

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

use crate::camera_supervisor::{Applied, CameraSupervisor};
use crate::central_settings::CentralSettings;
use crate::config::EdgeConfig;

/// What can go wrong when changing the cameras.
#[derive(Debug, thiserror::Error)]
pub enum CameraEditError {
    /// The configuration file cannot be read or written.
    #[error("configuration file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file does not parse as TOML any more (edited by hand meanwhile?).
    #[error("configuration file {path} does not parse: {message}; fix it on the unit first")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The change would make the configuration invalid.
    #[error("{0}")]
    Invalid(String),
    /// No camera has this id.
    #[error("no camera {0:?} is configured")]
    NoSuchCamera(String),
}

/// The configuration file the unit runs with, and whether it changed since the start.
pub struct CameraEditor {
    /// The configuration file.
    pub path: PathBuf,
    changed: AtomicBool,
    lock: Mutex<()>,
    supervisor: Option<Arc<CameraSupervisor>>,
    settings: Option<Arc<CentralSettings>>,
}

/// A camera to add (the body of `POST /api/cameras`).
#[derive(Debug, Clone, Deserialize)]
pub struct NewCamera {
    /// Its id (letters, digits, `-`, `_`).
    pub id: String,
    /// Its display name.
    pub name: Option<String>,
    /// Its RTSP URL.
    pub url: String,
    /// RTSP user name.
    pub username: Option<String>,
    /// RTSP password.
    pub password: Option<String>,
    /// Recording mode (`continuous` by default).
    pub mode: Option<String>,
    /// The camera's sub stream, recorded as camera `<id>.sub` (none by default).
    #[serde(default)]
    pub sub_url: Option<String>,
    /// The sub stream's recording mode (`continuous` by default).
    #[serde(default)]
    pub sub_mode: Option<String>,
    /// The sub stream's RTSP user name (the camera's by default).
    #[serde(default)]
    pub sub_username: Option<String>,
    /// The sub stream's RTSP password (the camera's by default).
    #[serde(default)]
    pub sub_password: Option<String>,
}

/// One camera in `GET /api/cameras`.
#[derive(Debug, Serialize)]
pub struct ConfiguredCamera {
    /// Its id.
    pub id: String,
    /// Its display name.
    pub name: String,
    /// Its URL, a password in it replaced by `redacted`.
    pub url: String,
    /// Its recording mode in the configuration file.
    pub mode: String,
    /// The mode it runs with (central's settings may set another, or keep it from recording).
    pub effective_mode: String,
    /// What central's settings set of it: `{"profile", "fields", "label": "set by central
    /// (profile NAME)", "recording_off"}`, or null.
    pub central: Option<serde_json::Value>,
    /// Its sub stream's URL (a password in it redacted), or null without one.
    pub sub_url: Option<String>,
    /// Its sub stream's recording mode in the configuration file, or null without a sub stream.
    pub sub_mode: Option<String>,
}

fn check_id(id: &str) -> Result<(), CameraEditError> {
    let ok =
        !id.is_empty() && id.len() <= 64 && id.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'));
    if ok {
        Ok(())
    } else {
        Err(CameraEditError::Invalid(format!("camera id {id:?}: use 1–64 letters, digits, '-' or '_'")))
    }
}

/// `text` with `camera` appended as a `[[camera]]`, checked as a whole configuration.
pub fn add_camera(text: &str, camera: &NewCamera) -> Result<String, CameraEditError> {
    check_id(&camera.id)?;
    let mut doc: toml_edit::DocumentMut =
        text.parse().map_err(|e: toml_edit::TomlError| CameraEditError::Invalid(e.to_string()))?;
    let mut table = toml_edit::Table::new();
    table["id"] = toml_edit::value(camera.id.as_str());
    if let Some(name) = camera.name.as_deref().filter(|n| !n.trim().is_empty()) {
        table["name"] = toml_edit::value(name);
    }
    table["url"] = toml_edit::value(camera.url.as_str());
    if let Some(user) = camera.username.as_deref().filter(|u| !u.is_empty()) {
        table["username"] = toml_edit::value(user);
        table["password"] = toml_edit::value(camera.password.as_deref().unwrap_or_default());
    }
    if let Some(mode) = camera.mode.as_deref().filter(|m| !m.is_empty()) {
        table["mode"] = toml_edit::value(mode);
    }
    for (key, value) in [
        ("sub_url", &camera.sub_url),
        ("sub_mode", &camera.sub_mode),
        ("sub_username", &camera.sub_username),
        ("sub_password", &camera.sub_password),
    ] {
        if let Some(v) = value.as_deref().filter(|v| !v.is_empty()) {
            table[key] = toml_edit::value(v);
        }
    }
    let cameras = doc
        .entry("camera")
        .or_insert_with(|| toml_edit::Item::ArrayOfTables(toml_edit::ArrayOfTables::new()))
        .as_array_of_tables_mut()
        .ok_or_else(|| CameraEditError::Invalid("`camera` in the configuration is not a list of [[camera]]".into()))?;
    cameras.push(table);
    let out = doc.to_string();
    EdgeConfig::parse(&out).map_err(|e| CameraEditError::Invalid(e.to_string()))?;
    Ok(out)
}

/// `text` without the `[[camera]]` whose id is `id`, checked as a whole configuration (a rule
/// that names the camera makes it invalid, and says so).
pub fn remove_camera(text: &str, id: &str) -> Result<String, CameraEditError> {
    let mut doc: toml_edit::DocumentMut =
        text.parse().map_err(|e: toml_edit::TomlError| CameraEditError::Invalid(e.to_string()))?;
    let cameras = doc
        .get_mut("camera")
        .and_then(toml_edit::Item::as_array_of_tables_mut)
        .ok_or_else(|| CameraEditError::NoSuchCamera(id.to_owned()))?;
    let index = cameras
        .iter()
        .position(|t| t.get("id").and_then(|v| v.as_str()) == Some(id))
        .ok_or_else(|| CameraEditError::NoSuchCamera(id.to_owned()))?;
    cameras.remove(index);
    let out = doc.to_string();
    EdgeConfig::parse(&out).map_err(|e| CameraEditError::Invalid(e.to_string()))?;
    Ok(out)
}

/// Replaces `path` with `text` atomically (temporary file, fsync, rename, directory fsync),
/// keeping the file's mode.
pub fn write_atomically(path: &Path, text: &str) -> std::io::Result<()> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let mode = std::fs::metadata(path).map(|m| m.permissions().mode()).unwrap_or(0o600);
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp"));
    let mut file = std::fs::File::create(&tmp)?;
    file.set_permissions(std::fs::Permissions::from_mode(mode))?;
    file.write_all(text.as_bytes())?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)?;
    std::fs::File::open(dir)?.sync_all()
}

impl CameraEditor {
    /// The editor of the configuration file at `path`.
    pub fn new(path: PathBuf) -> CameraEditor {
        CameraEditor { path, changed: AtomicBool::new(false), lock: Mutex::new(()), supervisor: None, settings: None }
    }

    /// Central's settings apply over the file's (the running cameras get both), and each
    /// change is recorded for central ([`CentralSettings::technician_changed`]).
    pub fn with_central_settings(mut self, settings: Arc<CentralSettings>) -> CameraEditor {
        self.settings = Some(settings);
        self
    }

    /// Changes are applied to the running cameras through `supervisor`.
    pub fn applying_to(mut self, supervisor: Arc<CameraSupervisor>) -> CameraEditor {
        self.supervisor = Some(supervisor);
        self
    }

    /// The routes.
    pub fn routes(self: Arc<Self>) -> Router {
        Router::new()
            .route("/api/cameras", get(list).post(add))
            .route("/api/cameras/{id}", delete(remove).patch(edit))
            .with_state(self)
    }

    /// Checks the configuration `change` makes of the file, writes it, records it for central
    /// and applies it (with central's settings over it) to the running cameras; `None` when it
    /// applies at the next start only. The second value names the fields central's settings
    /// override (`camera.field`).
    async fn change(
        &self,
        change: impl FnOnce(&str) -> Result<String, CameraEditError>,
    ) -> Result<(Option<Applied>, Vec<String>), CameraEditError> {
        let _one_at_a_time = self.lock.lock().await;
        let _no_settings_meanwhile = match &self.settings {
            Some(s) => Some(s.exclusive().await),
            None => None,
        };
        let io = |source| CameraEditError::Io { path: self.path.clone(), source };
        let text = tokio::fs::read_to_string(&self.path).await.map_err(io)?;
        let new = change(&text)?;
        let config = EdgeConfig::parse(&new).map_err(|e| CameraEditError::Invalid(e.to_string()))?;
        CameraSupervisor::check(&config).map_err(CameraEditError::Invalid)?;
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || write_atomically(&path, &new))
            .await
            .map_err(|e| io(std::io::Error::other(e)))?
            .map_err(io)?;
        let mut overridden = Vec::new();
        let running = match (&self.settings, EdgeConfig::parse(&text)) {
            (Some(settings), Ok(old)) => {
                let (s, c) = (settings.clone(), config.clone());
                overridden = tokio::task::spawn_blocking(move || s.technician_changed(&old, &c))
                    .await
                    .map_err(|e| io(std::io::Error::other(e)))?
                    .map_err(|e| {
                        CameraEditError::Invalid(format!("the change is written but not recorded for central: {e}"))
                    })?;
                settings.effective(&config)
            }
            (Some(settings), Err(_)) => settings.effective(&config),
            (None, _) => config,
        };
        match &self.supervisor {
            Some(supervisor) => {
                let applied = supervisor.apply(&running).await.map_err(CameraEditError::Invalid)?;
                if let Some(settings) = &self.settings {
                    settings.show_reasons(&running);
                }
                Ok((Some(applied), overridden))
            }
            None => {
                self.changed.store(true, Ordering::Relaxed);
                Ok((None, overridden))
            }
        }
    }
}

fn error(code: StatusCode, message: impl Into<String>) -> Response {
    (code, axum::Json(serde_json::json!({ "error": message.into() }))).into_response()
}

fn answer(result: Result<(Option<Applied>, Vec<String>), CameraEditError>, id: &str, code: StatusCode) -> Response {
    match result {
        Ok((applied, overridden)) => {
            let body = serde_json::json!({
                "camera": id,
                "restart_required": applied.is_none(),
                "applied": applied,
                "overridden_by_central": overridden,
            });
            (code, axum::Json(body)).into_response()
        }
        Err(e @ CameraEditError::NoSuchCamera(_)) => error(StatusCode::NOT_FOUND, e.to_string()),
        Err(e @ CameraEditError::Invalid(_)) => error(StatusCode::BAD_REQUEST, e.to_string()),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

/// A URL as the page shows it: a password in it replaced by `redacted`.
fn redacted(url: &url::Url) -> String {
    let mut url = url.clone();
    if url.password().is_some() {
        let _ = url.set_password(Some(crate::tech_support::REDACTED_IN_URL));
    }
    url.to_string()
}

/// `GET /api/cameras` → `{"cameras": [{"id", "name", "url", "mode", "effective_mode",
/// "central", "sub_url", "sub_mode"}], "restart_required", "notices": [{"at_us", "camera", "field", "text"}]}`: the
/// cameras in the configuration file now (URL passwords redacted), what central's settings
/// set of each, and the notices about changes central overrode.
async fn list(State(editor): State<Arc<CameraEditor>>) -> Response {
    let config = match EdgeConfig::load(&editor.path) {
        Ok(c) => c,
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    let running = match &editor.settings {
        Some(s) => s.effective(&config),
        None => config.clone(),
    };
    let cameras: Vec<ConfiguredCamera> = config
        .cameras
        .iter()
        .map(|c| {
            let effective = running.cameras.iter().find(|r| r.id == c.id).unwrap_or(c);
            ConfiguredCamera {
                id: c.id.clone(),
                name: c.display_name().to_owned(),
                url: redacted(&c.url),
                mode: c.mode.as_str().to_owned(),
                effective_mode: effective.mode.as_str().to_owned(),
                central: editor.settings.as_ref().and_then(|s| s.set_by_central(&c.id)),
                sub_url: c.sub_url.as_ref().map(redacted),
                sub_mode: c.sub_url.as_ref().map(|_| c.sub_mode.unwrap_or_default().as_str().to_owned()),
            }
        })
        .collect();
    let notices = editor.settings.as_ref().map(|s| s.snapshot().notices).unwrap_or_default();
    axum::Json(serde_json::json!({
        "cameras": cameras,
        "restart_required": editor.changed.load(Ordering::Relaxed),
        "notices": notices,
    }))
    .into_response()
}

/// `POST /api/cameras` with `{"id", "name", "url", "username", "password", "mode", "sub_url",
/// "sub_mode", "sub_username", "sub_password"}` (all but `id` and `url` optional) → 201
/// `{"camera", "restart_required": false, "applied": {"added", "changed", "removed"}}` (the
/// camera starts at once); 400 with the reason when the configuration would be invalid (a
/// duplicate id, a bad URL or mode …).
async fn add(State(editor): State<Arc<CameraEditor>>, axum::Json(camera): axum::Json<NewCamera>) -> Response {
    let id = camera.id.clone();
    let result = editor.change(|text| add_camera(text, &camera)).await;
    if result.is_ok() {
        tracing::info!(camera = id, "camera added to the configuration from the technician's page");
    }
    answer(result, &id, StatusCode::CREATED)
}

/// `DELETE /api/cameras/{id}` → `{"camera", "restart_required": false, "applied"}` (the camera
/// stops at once); 404 when unknown, 400 when something else in the configuration still names
/// it. Its recordings stay in the store.
async fn remove(
    State(editor): State<Arc<CameraEditor>>,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Response {
    let result = editor.change(|text| remove_camera(text, &id)).await;
    if result.is_ok() {
        tracing::info!(camera = id, "camera removed from the configuration from the technician's page");
    }
    answer(result, &id, StatusCode::OK)
}

/// `PATCH /api/cameras/{id}` with any of `{"name", "url", "username", "password", "mode",
/// "schedule", "pre_buffer_s", "post_buffer_s", "motion", "motion_sensitivity",
/// "max_age_days", "sub_url", "sub_mode", "sub_username", "sub_password"}` (an empty `sub_url`
/// removes the sub stream with its other `sub_` keys) → `{"camera", "restart_required": false, "applied",
/// "overridden_by_central": ["camera.field"]}` (the camera restarts with it at once unless
/// central's settings override what changed); a field left out stays as it is, an empty
/// string is removed (`url` cannot be). 404 when unknown, 400 with the reason when the
/// configuration would be invalid.
async fn edit(
    State(editor): State<Arc<CameraEditor>>,
    axum::extract::Path(id): axum::extract::Path<String>,
    axum::Json(fields): axum::Json<CameraEdit>,
) -> Response {
    let result = editor.change(|text| edit_camera(text, &id, &fields)).await;
    if result.is_ok() {
        tracing::info!(camera = id, "camera changed from the technician's page");
    }
    answer(result, &id, StatusCode::OK)
}

/// The body of `PATCH /api/cameras/{id}`: the fields to change.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CameraEdit {
    /// Display name.
    pub name: Option<String>,
    /// RTSP URL.
    pub url: Option<String>,
    /// RTSP user name.
    pub username: Option<String>,
    /// RTSP password.
    pub password: Option<String>,
    /// Recording mode.
    pub mode: Option<String>,
    /// The `[[time_profile]]` schedule mode records in (empty: removed).
    pub schedule: Option<String>,
    /// Seconds kept before a trigger.
    pub pre_buffer_s: Option<f64>,
    /// Seconds recorded after a trigger.
    pub post_buffer_s: Option<f64>,
    /// Motion detection.
    pub motion: Option<bool>,
    /// Motion sensitivity, 1–10.
    pub motion_sensitivity: Option<u8>,
    /// Delete recordings older than this many days.
    pub max_age_days: Option<f64>,
    /// The sub stream's RTSP URL (empty: no sub stream, its other `sub_` keys removed too).
    pub sub_url: Option<String>,
    /// The sub stream's recording mode.
    pub sub_mode: Option<String>,
    /// The sub stream's RTSP user name.
    pub sub_username: Option<String>,
    /// The sub stream's RTSP password.
    pub sub_password: Option<String>,
}

/// `text` with the `[[camera]]` whose id is `id` changed by `fields`, checked as a whole
/// configuration; its other keys (motion, schedule …) are kept.
pub fn edit_camera(text: &str, id: &str, fields: &CameraEdit) -> Result<String, CameraEditError> {
    let mut doc: toml_edit::DocumentMut =
        text.parse().map_err(|e: toml_edit::TomlError| CameraEditError::Invalid(e.to_string()))?;
    let table = doc
        .get_mut("camera")
        .and_then(toml_edit::Item::as_array_of_tables_mut)
        .and_then(|cameras| cameras.iter_mut().find(|t| t.get("id").and_then(|v| v.as_str()) == Some(id)))
        .ok_or_else(|| CameraEditError::NoSuchCamera(id.to_owned()))?;
    if fields.url.as_deref().is_some_and(|u| u.trim().is_empty()) {
        return Err(CameraEditError::Invalid(format!("camera {id:?}: the RTSP URL cannot be empty")));
    }
    for (key, value) in [
        ("name", &fields.name),
        ("url", &fields.url),
        ("username", &fields.username),
        ("password", &fields.password),
        ("mode", &fields.mode),
        ("schedule", &fields.schedule),
        ("sub_url", &fields.sub_url),
        ("sub_mode", &fields.sub_mode),
        ("sub_username", &fields.sub_username),
        ("sub_password", &fields.sub_password),
    ] {
        match value.as_deref() {
            None => {}
            Some("") => {
                table.remove(key);
            }
            Some(v) => table[key] = toml_edit::value(v),
        }
    }
    for (key, value) in [
        ("pre_buffer_s", fields.pre_buffer_s),
        ("post_buffer_s", fields.post_buffer_s),
        ("max_age_days", fields.max_age_days),
    ] {
        if let Some(v) = value {
            table[key] = toml_edit::value(v);
        }
    }
    if fields.sub_url.as_deref() == Some("") {
        // No sub stream: the keys that only go with one go too, unless given anew (then the
        // check below says they need a sub_url).
        for (key, given) in [
            ("sub_mode", &fields.sub_mode),
            ("sub_username", &fields.sub_username),
            ("sub_password", &fields.sub_password),
            ("sub_transport", &None),
        ] {
            if given.as_deref().is_none_or(str::is_empty) {
                table.remove(key);
            }
        }
    }
    if let Some(m) = fields.motion {
        table["motion"] = toml_edit::value(m);
    }
    if let Some(s) = fields.motion_sensitivity {
        table["motion_sensitivity"] = toml_edit::value(i64::from(s));
    }
    let out = doc.to_string();
    EdgeConfig::parse(&out).map_err(|e| CameraEditError::Invalid(e.to_string()))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "# the unit's config\nunit_id = \"u\" # keep me\n[store]\npath = \"/s\"\n[web]\nlisten = \"127.0.0.1:0\"\n\n# front door\n[[camera]]\nid = \"front\"\nurl = \"rtsp://10.0.0.5/s\"\n";

    fn cam(id: &str, url: &str) -> NewCamera {
        NewCamera {
            id: id.into(),
            name: Some("Rear".into()),
            url: url.into(),
            username: None,
            password: None,
            mode: None,
            sub_url: None,
            sub_mode: None,
            sub_username: None,
            sub_password: None,
        }
    }

    #[test]
    fn adding_keeps_the_file_and_checks_the_whole_config() {
        let out = add_camera(BASE, &cam("rear", "rtsp://10.0.0.6/s")).unwrap();
        assert!(out.starts_with(BASE), "comments and layout kept:\n{out}");
        let config = EdgeConfig::parse(&out).unwrap();
        assert_eq!(config.cameras.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(), ["front", "rear"]);
        assert_eq!(config.cameras[1].display_name(), "Rear");
        let twice = add_camera(BASE, &cam("front", "rtsp://10.0.0.6/s")).unwrap_err().to_string();
        assert!(twice.contains("used twice"), "{twice}");
        assert!(matches!(add_camera(BASE, &cam("x", "http://10.0.0.6/")), Err(CameraEditError::Invalid(_))));
        assert!(matches!(add_camera(BASE, &cam("a b", "rtsp://h/")), Err(CameraEditError::Invalid(_))));
        let mut bad_mode = cam("m", "rtsp://h/");
        bad_mode.mode = Some("sometimes".into());
        assert!(matches!(add_camera(BASE, &bad_mode), Err(CameraEditError::Invalid(_))));
        let first = add_camera(
            "unit_id = \"u\"\n[store]\npath = \"/s\"\n[web]\nlisten = \"127.0.0.1:0\"\n",
            &cam("a", "rtsp://h/"),
        )
        .unwrap();
        assert_eq!(EdgeConfig::parse(&first).unwrap().cameras.len(), 1);
    }

    #[test]
    fn removing_finds_the_camera_and_keeps_the_rest() {
        let two = add_camera(BASE, &cam("rear", "rtsp://10.0.0.6/s")).unwrap();
        let out = remove_camera(&two, "front").unwrap();
        assert!(out.contains("# keep me"), "{out}");
        let config = EdgeConfig::parse(&out).unwrap();
        assert_eq!(config.cameras.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(), ["rear"]);
        assert!(matches!(remove_camera(&two, "side"), Err(CameraEditError::NoSuchCamera(_))));
    }

    #[test]
    fn editing_changes_only_the_fields_given() {
        let text =
            BASE.replace("url = \"rtsp://10.0.0.5/s\"\n", "url = \"rtsp://10.0.0.5/s\"\nmotion = true\nname = \"F\"\n");
        let fields =
            CameraEdit { url: Some("rtsp://10.0.0.9/t".into()), name: Some(String::new()), ..Default::default() };
        let out = edit_camera(&text, "front", &fields).unwrap();
        assert!(out.contains("# front door") && out.contains("motion = true"), "other keys kept:\n{out}");
        let config = EdgeConfig::parse(&out).unwrap();
        assert_eq!((config.cameras[0].url.as_str(), config.cameras[0].name.as_deref()), ("rtsp://10.0.0.9/t", None));
        assert!(matches!(edit_camera(&text, "side", &fields), Err(CameraEditError::NoSuchCamera(_))));
        let bad = CameraEdit { mode: Some("sometimes".into()), ..Default::default() };
        assert!(matches!(edit_camera(&text, "front", &bad), Err(CameraEditError::Invalid(_))));
        let settings = CameraEdit {
            schedule: Some(String::new()),
            pre_buffer_s: Some(9.5),
            motion: Some(false),
            motion_sensitivity: Some(8),
            max_age_days: Some(3.0),
            ..Default::default()
        };
        let c = EdgeConfig::parse(&edit_camera(&text, "front", &settings).unwrap()).unwrap();
        let c = &c.cameras[0];
        assert_eq!((c.pre_buffer_s, c.motion, c.motion_sensitivity, c.max_age_days), (9.5, false, 8, Some(3.0)));
        let too_sensitive = CameraEdit { motion_sensitivity: Some(11), ..Default::default() };
        assert!(matches!(edit_camera(&text, "front", &too_sensitive), Err(CameraEditError::Invalid(_))));
        let empty = CameraEdit { url: Some(" ".into()), ..Default::default() };
        assert!(matches!(edit_camera(&text, "front", &empty), Err(CameraEditError::Invalid(_))));
    }

    #[test]
    fn the_file_is_replaced_whole_with_its_mode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("edge.toml");
        std::fs::write(&path, BASE).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        write_atomically(&path, "unit_id = \"v\"\n").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "unit_id = \"v\"\n");
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o640);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "no temporary file left");
    }

    #[test]
    fn a_sub_stream_is_added_edited_and_removed_with_its_keys() {
        let mut with_sub = cam("rear", "rtsp://10.0.0.6/main");
        with_sub.sub_url = Some("rtsp://10.0.0.6/sub".into());
        with_sub.sub_username = Some("viewer".into());
        with_sub.sub_password = Some("pw".into());
        let out = add_camera(BASE, &with_sub).unwrap();
        let c = EdgeConfig::parse(&out).unwrap();
        let rear = &c.cameras[1];
        assert_eq!(rear.sub_url.as_ref().map(url::Url::as_str), Some("rtsp://10.0.0.6/sub"));
        assert_eq!((rear.sub_username.as_deref(), rear.sub_mode), (Some("viewer"), None));
        let same = CameraEdit { sub_url: Some("rtsp://10.0.0.6/main".into()), ..Default::default() };
        let e = edit_camera(&out, "rear", &same).unwrap_err().to_string();
        assert!(e.contains("sub_url is the same as url"), "checked as a whole: {e}");
        let event = CameraEdit { sub_mode: Some("event".into()), ..Default::default() };
        let c = EdgeConfig::parse(&edit_camera(&out, "rear", &event).unwrap()).unwrap();
        assert_eq!(c.cameras[1].sub_mode.map(|m| m.as_str()), Some("event"));
        let none = CameraEdit { sub_url: Some(String::new()), ..Default::default() };
        let removed = edit_camera(&out, "rear", &none).unwrap();
        assert!(!removed.contains("sub_"), "every sub_ key went with the sub stream:\n{removed}");
        let c = EdgeConfig::parse(&removed).unwrap();
        assert!(c.cameras[1].sub_url.is_none() && c.cameras[1].username.is_none());
        let orphan = CameraEdit { sub_mode: Some("event".into()), ..Default::default() };
        let e = edit_camera(&removed, "rear", &orphan).unwrap_err().to_string();
        assert!(e.contains("sub_mode is only used with sub_url"), "{e}");
    }
}
