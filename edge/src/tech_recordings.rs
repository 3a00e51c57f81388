//! What is recorded on the unit, for the technician's page: `GET /api/recordings` (each
//! camera's runs of frames and the evidence locks) and
//! `GET /api/recordings/{camera}/export.mp4?start=…&end=…` (an MP4 download of a range) and
//! `POST /api/recordings/{camera}/lock` (an evidence lock through the recorder thread).

use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::{Deserialize, Serialize};

/// The longest range one export may span.
pub const MAX_EXPORT_US: i64 = 4 * 3600 * 1_000_000;

/// The store the recordings are read from.
pub struct Recordings {
    /// The store directory.
    pub store: PathBuf,
    /// The cameras configured, in order.
    pub cameras: Vec<String>,
    /// The media key, if the store is encrypted.
    pub key: Option<media_store::MediaKey>,
    /// The recorder thread, which writes evidence locks (none: locks are refused).
    pub recorder: Option<crate::recorder::RecorderTx>,
    /// One export at a time (each writes a file to the store's disk first).
    pub exporting: tokio::sync::Semaphore,
}

/// Where exports are written before they are sent.
pub fn exports_dir(store: &std::path::Path) -> PathBuf {
    store.join("web").join("exports")
}

impl Recordings {
    /// Recordings of the store at `store` with `cameras` configured; removes exports a previous
    /// run left behind (it stopped while sending one).
    pub fn new(
        store: PathBuf,
        cameras: Vec<String>,
        key: Option<media_store::MediaKey>,
        recorder: Option<crate::recorder::RecorderTx>,
    ) -> Recordings {
        let dir = exports_dir(&store);
        if dir.exists()
            && let Err(e) = std::fs::remove_dir_all(&dir)
        {
            tracing::warn!("cannot remove old exports in {}: {e}", dir.display());
        }
        Recordings { store, cameras, key, recorder, exporting: tokio::sync::Semaphore::new(1) }
    }

    /// The routes.
    pub fn routes(self: Arc<Self>) -> Router {
        Router::new()
            .route("/api/recordings", get(timeline))
            .route("/api/recordings/{camera}/export.mp4", get(export))
            .route("/api/recordings/{camera}/lock", axum::routing::post(lock))
            .with_state(self)
    }
}

/// `GET /api/recordings`: a stable contract; fields are only ever added.
#[derive(Debug, Serialize)]
pub struct TimelineJson {
    /// Every camera with a log in the store (configured ones first).
    pub cameras: Vec<CameraTimeline>,
}

/// One camera in [`TimelineJson`].
#[derive(Debug, Serialize)]
pub struct CameraTimeline {
    /// The camera's id.
    pub id: String,
    /// Runs of frames without a gap over 2 s, `[start, end]` in RFC 3339, oldest first.
    pub runs: Vec<[String; 2]>,
    /// Evidence locks on this camera.
    pub locks: Vec<LockJson>,
}

/// An evidence lock in [`CameraTimeline`].
#[derive(Debug, Serialize)]
pub struct LockJson {
    /// Locked from, RFC 3339.
    pub start: String,
    /// Locked to, RFC 3339.
    pub end: String,
    /// When the lock ends (null: never).
    pub expires: Option<String>,
    /// Why.
    pub reason: String,
}

fn rfc3339(us: i64) -> String {
    crate::store_cli::rfc3339(us)
}

fn error(code: StatusCode, message: impl Into<String>) -> Response {
    (code, axum::Json(serde_json::json!({ "error": message.into() }))).into_response()
}

fn build_timeline(r: &Recordings) -> Result<TimelineJson, media_store::StoreError> {
    let mut ids = r.cameras.clone();
    for log in media_store::list_logs(&r.store)? {
        if !ids.contains(&log) {
            ids.push(log);
        }
    }
    let catalog_path = media_store::catalog_path(&r.store);
    let catalog =
        if catalog_path.exists() { Some(media_store::catalog::Catalog::open_read_only(&catalog_path)?) } else { None };
    let locks = match &catalog {
        Some(c) => c.locks()?,
        None => Vec::new(),
    };
    let mut cameras = Vec::new();
    for id in ids {
        let mut runs = match &catalog {
            Some(c) => c.runs(&id)?,
            None => Vec::new(),
        };
        if let Some((_, tail)) = media_store::scan_tail(&r.store, &id)? {
            runs.extend(tail.runs.iter().copied());
        }
        runs.sort_unstable();
        // Join runs that touch (a seal between two segments of one run).
        let mut merged: Vec<(i64, i64)> = Vec::new();
        for (s, e) in runs {
            match merged.last_mut() {
                Some(last) if s <= last.1 + 2_000_000 => last.1 = last.1.max(e),
                _ => merged.push((s, e)),
            }
        }
        let locks = locks
            .iter()
            .filter(|l| l.lock.camera == id)
            .map(|l| LockJson {
                start: rfc3339(l.lock.start_us),
                end: rfc3339(l.lock.end_us),
                expires: (l.lock.expires_us != i64::MAX).then(|| rfc3339(l.lock.expires_us)),
                reason: l.lock.reason.clone(),
            })
            .collect();
        cameras.push(CameraTimeline {
            runs: merged.into_iter().map(|(s, e)| [rfc3339(s), rfc3339(e)]).collect(),
            id,
            locks,
        });
    }
    Ok(TimelineJson { cameras })
}

/// The query of the timeline: `stream=sub` lists the sub streams' recordings under their
/// cameras' ids, `stream=main` the cameras' own; without it every log in the store.
#[derive(Debug, Default, Deserialize)]
pub struct TimelineQuery {
    /// `main` or `sub`.
    pub stream: Option<String>,
}

/// Keeps the timeline's entries of one stream (`sub`: true for sub streams, renamed from
/// `front.sub` to `front`; false for the cameras' own; `None`: every log).
fn pick_stream(json: TimelineJson, configured: &[String], sub: Option<bool>) -> TimelineJson {
    let Some(sub) = sub else { return json };
    let main_of = |id: &str| {
        let main = id.strip_suffix(crate::sub_stream::SUB_STREAM_SUFFIX)?;
        configured.iter().any(|c| c == main).then(|| main.to_owned())
    };
    let cameras = json
        .cameras
        .into_iter()
        .filter_map(|mut c| match (main_of(&c.id), sub) {
            (Some(main), true) => {
                c.id = main;
                Some(c)
            }
            (None, false) => Some(c),
            _ => None,
        })
        .collect();
    TimelineJson { cameras }
}

async fn timeline(State(r): State<Arc<Recordings>>, Query(q): Query<TimelineQuery>) -> Response {
    let sub = match q.stream.as_deref().map(|s| crate::sub_stream::wants_sub(Some(s))).transpose() {
        Ok(sub) => sub,
        Err(message) => return error(StatusCode::BAD_REQUEST, message),
    };
    let picked = tokio::task::spawn_blocking(move || build_timeline(&r).map(|json| pick_stream(json, &r.cameras, sub)));
    match picked.await {
        Ok(Ok(json)) => axum::Json(json).into_response(),
        Ok(Err(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, format!("cannot read the store: {e}")),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

/// The query of the export.
#[derive(Debug, Deserialize)]
pub struct ExportQuery {
    /// Start, RFC 3339; the export begins at the key frame at or before it.
    pub start: String,
    /// End, RFC 3339.
    pub end: String,
    /// `sub`: the camera's sub stream; `main` (the default): the camera's own.
    #[serde(default)]
    pub stream: Option<String>,
}

/// Parses `start` and `end` (RFC 3339) to µs, refusing a reversed or empty range.
pub fn parse_times(start: &str, end: &str) -> Result<(i64, i64), String> {
    let parse = |name: &str, s: &str| {
        s.parse::<jiff::Timestamp>()
            .map(|t| t.as_microsecond())
            .map_err(|e| format!("{name} {s:?} is not an RFC 3339 time (e.g. 2026-11-25T08:00:00Z): {e}"))
    };
    let (start, end) = (parse("start", start)?, parse("end", end)?);
    if end <= start {
        return Err("end must be after start".into());
    }
    Ok((start, end))
}

/// Parses an export's range, refusing a reversed, empty or too long one.
pub fn parse_range(q: &ExportQuery) -> Result<(i64, i64), String> {
    let (start, end) = parse_times(&q.start, &q.end)?;
    if end - start > MAX_EXPORT_US {
        return Err(format!("a range of at most {} hours can be exported at once", MAX_EXPORT_US / 3_600_000_000));
    }
    Ok((start, end))
}

async fn export(
    State(r): State<Arc<Recordings>>,
    Path(camera): Path<String>,
    Query(q): Query<ExportQuery>,
) -> Response {
    let (start, end) = match parse_range(&q) {
        Ok(range) => range,
        Err(message) => return error(StatusCode::BAD_REQUEST, message),
    };
    if !camera.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')) || camera.starts_with('.') {
        return error(StatusCode::BAD_REQUEST, format!("{camera:?} is not a camera id"));
    }
    let camera = match crate::sub_stream::resolve(&camera, q.stream.as_deref()) {
        Ok(id) => id,
        Err(message) => return error(StatusCode::BAD_REQUEST, message),
    };
    let Ok(_one_at_a_time) = r.exporting.try_acquire() else {
        return error(StatusCode::TOO_MANY_REQUESTS, "another export is running: try again when it is done");
    };
    let dir = exports_dir(&r.store);
    let token = crate::auth_session::new_token().unwrap_or_else(|_| format!("{}", std::process::id()));
    let out = dir.join(format!("{camera}-{}.mp4", &token[..16]));
    let (store, key, cam, path) = (r.store.clone(), r.key.clone(), camera.clone(), out.clone());
    let written = tokio::task::spawn_blocking(move || {
        std::fs::create_dir_all(path.parent().unwrap_or(&path))?;
        crate::store_cli::export_mp4(&store, &cam, start, end, key, &path)
    })
    .await;
    match written {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => {
            let _ = tokio::fs::remove_file(out.with_extension("mp4.part")).await;
            let message = format!("cannot export {camera}: {e:#}");
            let code = if message.contains("no recording") || message.contains("no such camera") {
                StatusCode::NOT_FOUND
            } else {
                StatusCode::UNPROCESSABLE_ENTITY
            };
            return error(code, message);
        }
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
    let file = match tokio::fs::File::open(&out).await {
        Ok(f) => f,
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, format!("cannot read the export: {e}")),
    };
    let len = file.metadata().await.map(|m| m.len()).unwrap_or(0);
    // The open file stays readable; the name goes now so nothing is left behind.
    let _ = tokio::fs::remove_file(&out).await;
    let name = format!("{camera}-{}.mp4", q.start.replace(':', ""));
    let body = Body::from_stream(tokio_util::io::ReaderStream::new(file));
    (
        [
            (header::CONTENT_TYPE, "video/mp4".to_owned()),
            (header::CONTENT_LENGTH, len.to_string()),
            (header::CONTENT_DISPOSITION, format!("attachment; filename=\"{name}\"")),
        ],
        body,
    )
        .into_response()
}

/// The longest range one lock may span.
pub const MAX_LOCK_US: i64 = 7 * 86_400 * 1_000_000;

/// The body of `POST /api/recordings/{camera}/lock`.
#[derive(Debug, Deserialize)]
pub struct LockRequest {
    /// Locked from, RFC 3339.
    pub start: String,
    /// Locked to, RFC 3339 (may lie ahead).
    pub end: String,
    /// Days the lock lasts (default 30, 1–3650).
    pub days: Option<f64>,
    /// Why, for people (required).
    pub reason: String,
}

/// `POST /api/recordings/{camera}/lock` `{"start", "end", "days", "reason"}` → 201 `{"id"}`
/// once the lock is durable; retention keeps the range until it expires.
async fn lock(
    State(r): State<Arc<Recordings>>,
    Path(camera): Path<String>,
    axum::Json(request): axum::Json<LockRequest>,
) -> Response {
    // Configured at start, or added since (it has a log in the store by now).
    let store = r.store.clone();
    let known = r.cameras.contains(&camera) || {
        let camera = camera.clone();
        tokio::task::spawn_blocking(move || media_store::list_logs(&store).is_ok_and(|logs| logs.contains(&camera)))
            .await
            .unwrap_or(false)
    };
    if !known {
        return error(StatusCode::NOT_FOUND, format!("no camera {camera:?} is configured"));
    }
    let reason = request.reason.trim();
    if reason.is_empty() || reason.chars().count() > 200 {
        return error(StatusCode::BAD_REQUEST, "give a reason for the lock (1–200 characters)");
    }
    let days = request.days.unwrap_or(30.0);
    if !(1.0..=3650.0).contains(&days) {
        return error(StatusCode::BAD_REQUEST, "days must be between 1 and 3650");
    }
    let (start, end) = match parse_times(&request.start, &request.end) {
        Ok((s, e)) if e - s <= MAX_LOCK_US => (s, e),
        Ok(_) => return error(StatusCode::BAD_REQUEST, "a lock may span at most 7 days"),
        Err(message) => return error(StatusCode::BAD_REQUEST, message),
    };
    let Some(recorder) = &r.recorder else {
        return error(StatusCode::SERVICE_UNAVAILABLE, "the recorder is not running");
    };
    let expires = jiff::Timestamp::now().as_microsecond().saturating_add((days * 86_400e6) as i64);
    let reason = format!("technician: {reason}");
    match recorder.lock(&camera, start, end, expires, &reason).await {
        Ok(id) => {
            tracing::info!(camera, id, reason, "evidence lock from the technician's page");
            (StatusCode::CREATED, axum::Json(serde_json::json!({ "id": id }))).into_response()
        }
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, format!("cannot lock: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_checked() {
        let q = |s: &str, e: &str| ExportQuery { start: s.into(), end: e.into(), stream: None };
        let (s, e) = parse_range(&q("2026-11-25T08:00:00Z", "2026-11-25T08:00:10Z")).unwrap();
        assert_eq!(e - s, 10_000_000);
        assert!(parse_range(&q("2026-11-25T08:00:10Z", "2026-11-25T08:00:00Z")).unwrap_err().contains("after"));
        assert!(parse_range(&q("yesterday", "2026-11-25T08:00:00Z")).unwrap_err().contains("RFC 3339"));
        assert!(parse_range(&q("2026-11-25T00:00:00Z", "2026-11-25T05:00:00Z")).unwrap_err().contains("4 hours"));
    }
}
