//! The retrieval API, a stable contract the operator UI is built on:
//!
//! - `GET /api/units/{unit}/cameras/{camera}/timeline?start=RFC3339&end=RFC3339` →
//!   `{ "central": [[start, end], …], "remote_only": […], "missing": […] }`: what central holds,
//!   what only the unit holds (as far as its latest catalog says), what nobody holds.
//! - `POST /api/units/{unit}/cameras/{camera}/retrieve` with `{ "start", "end" }` → `{ "id" }`.
//! - `GET /api/retrievals/{id}` → `{ "state": "queued"|"running"|"done"|"failed", "bytes_done",
//!   "bytes_total" }`.
//!
//! The alarms are in [`crate::api_alarms`].

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::json;
use sync_core::RangeSet;

use crate::accounts::Account;
use crate::auth::unit_refusal;
use crate::sync_hub::RequestError;
use crate::time::{parse_rfc3339, rfc3339};
use crate::web::{WebState, shares_camera};

/// Frames closer than this count as one stretch of video on a timeline.
const JOIN_US: i64 = media_store::index::GAP_US;

/// `?start=…&end=…`.
#[derive(Debug, Deserialize)]
pub struct Window {
    start: String,
    end: String,
}

/// `{ "start", "end" }`.
#[derive(Debug, Deserialize)]
pub struct RangeBody {
    start: String,
    end: String,
}

/// A JSON error answer: `{ "error": message }`.
pub(crate) fn bad(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

/// An error answer: status and message.
pub(crate) type Refusal = (StatusCode, String);

fn window(start: &str, end: &str) -> Result<(i64, i64), Refusal> {
    let start = parse_rfc3339(start).map_err(|e| (StatusCode::BAD_REQUEST, e))?;
    let end = parse_rfc3339(end).map_err(|e| (StatusCode::BAD_REQUEST, e))?;
    if end <= start {
        return Err((StatusCode::BAD_REQUEST, "end must be after start".into()));
    }
    Ok((start, end))
}

/// The range asked for, once it parses and the unit shares the camera (404 otherwise).
pub(crate) async fn target(
    state: &WebState,
    unit: &str,
    camera: &str,
    start: &str,
    end: &str,
) -> Result<(i64, i64), Refusal> {
    let range = window(start, end)?;
    match shares_camera(state, unit, camera).await {
        Ok(true) => Ok(range),
        Ok(false) => Err((StatusCode::NOT_FOUND, format!("no unit {unit:?} with a shared camera {camera:?}"))),
        Err(e) => Err((StatusCode::INTERNAL_SERVER_ERROR, e)),
    }
}

fn as_pairs(set: &RangeSet<i64>) -> Vec<[String; 2]> {
    set.iter().map(|r| [rfc3339(r.start), rfc3339(r.end)]).collect()
}

/// Ranges `[start, end)` joined where less than [`JOIN_US`] apart.
fn joined(ranges: impl IntoIterator<Item = (i64, i64)>) -> RangeSet<i64> {
    let mut v: Vec<(i64, i64)> = ranges.into_iter().collect();
    v.sort_unstable();
    let mut out: Vec<(i64, i64)> = Vec::new();
    for (s, e) in v {
        match out.last_mut() {
            Some(last) if s <= last.1 + JOIN_US => last.1 = last.1.max(e),
            _ => out.push((s, e)),
        }
    }
    RangeSet::from_ranges(out.into_iter().map(|(s, e)| s..e))
}

/// `GET /api/units/{unit}/cameras/{camera}/timeline`.
pub async fn timeline(
    State(state): State<WebState>,
    Path((unit, camera)): Path<(String, String)>,
    Query(w): Query<Window>,
) -> Response {
    let (start, end) = match target(&state, &unit, &camera, &w.start, &w.end).await {
        Ok(r) => r,
        Err((status, message)) => return bad(status, message),
    };
    let held = match state.hub.store().held_times(&unit, &camera).await {
        Ok(h) => h,
        Err(e) => return bad(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    let catalog = match state.hub.catalog(&unit).await {
        Ok(c) => c,
        Err(e) => return bad(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    let all = start..end;
    let central = joined(held.iter().map(|h| (h.start_us, h.end_us + 1))).clip(all.clone());
    let remote = catalog
        .iter()
        .flat_map(|c| c.cameras.iter().filter(|h| h.camera == camera))
        .flat_map(|h| h.spans.iter().map(|s| (s.start_us, s.end_us + 1)));
    let remote_only = joined(remote).clip(all.clone()).subtract(&central);
    let missing = RangeSet::from_ranges([all]).subtract(&central).subtract(&remote_only);
    Json(json!({
        "central": as_pairs(&central),
        "remote_only": as_pairs(&remote_only),
        "missing": as_pairs(&missing),
    }))
    .into_response()
}

/// `POST /api/units/{unit}/cameras/{camera}/retrieve`.
pub async fn retrieve(
    State(state): State<WebState>,
    Extension(who): Extension<Account>,
    Path((unit, camera)): Path<(String, String)>,
    Json(body): Json<RangeBody>,
) -> Response {
    let (start, end) = match target(&state, &unit, &camera, &body.start, &body.end).await {
        Ok(r) => r,
        Err((status, message)) => return bad(status, message),
    };
    match state.hub.request(&unit, &camera, start, end).await {
        Ok(id) => {
            let detail = format!("retrieval {id}: {} to {}", body.start, body.end);
            state.auth.record_about(&who, "retrieval_requested", &unit, &camera, detail).await;
            (StatusCode::ACCEPTED, Json(json!({ "id": id }))).into_response()
        }
        Err(e @ RequestError::NotAllowed { .. }) => bad(StatusCode::FORBIDDEN, e.to_string()),
        Err(e @ RequestError::EmptyRange) => bad(StatusCode::BAD_REQUEST, e.to_string()),
        Err(e) => bad(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

/// `GET /api/retrievals/{id}` (403 when the user may not see its unit).
pub async fn retrieval(
    State(state): State<WebState>,
    Extension(who): Extension<Account>,
    Path(id): Path<i64>,
) -> Response {
    match state.hub.store().retrieval(id).await {
        Ok(Some(row)) => {
            if let Some(refusal) = unit_refusal(&who, &row.unit) {
                return refusal;
            }
        }
        Ok(None) => return bad(StatusCode::NOT_FOUND, format!("no retrieval {id}")),
        Err(e) => return bad(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
    match state.hub.status(id).await {
        Ok(Some(s)) => Json(json!({
            "state": s.state.as_str(),
            "bytes_done": s.bytes_done,
            "bytes_total": s.bytes_total,
        }))
        .into_response(),
        Ok(None) => bad(StatusCode::NOT_FOUND, format!("no retrieval {id}")),
        Err(e) => bad(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}
