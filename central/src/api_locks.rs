//! The evidence-lock API:
//!
//! - `POST /api/units/{unit}/cameras/{camera}/lock` with `{ "start", "end", "reason"?,
//!   "keep_days"? }` → 201 and the lock: locked at once in this central's store, in the other
//!   nodes' stores when they next look at the shared catalog (within a second), and in the
//!   unit's store when the unit is next connected, to any node.
//! - `GET /api/locks?unit=U&limit=N` → `{ "locks": [lock, …] }`, newest first.
//! - `GET /api/locks/{id}` → the lock.
//!
//! A lock is `{ "id", "unit", "camera", "start", "end", "expires", "reason", "created",
//! "central": { "state", "error" }, "unit_store": { "state", "error", "at" } }` with states
//! `"pending"`, `"locked"` or `"failed"`. Every node lists every lock (the catalog's);
//! `central` is the answering node's own store.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::accounts::Account;
use crate::api_retrieval::{bad, target};
use crate::auth::unit_refusal;
use crate::enrollment::now_us;
use crate::evidence::{EvidenceLock, NewLock};
use crate::sync_hub::RequestError;
use crate::time::rfc3339;
use crate::web::WebState;

/// How long a lock keeps its range when the request does not say.
pub const DEFAULT_KEEP_DAYS: u32 = 30;
/// The longest a lock may keep its range.
pub const MAX_KEEP_DAYS: u32 = 3650;
const DAY_US: i64 = 86_400_000_000;

/// The body of `POST …/lock`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockBody {
    start: String,
    end: String,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    keep_days: Option<u32>,
}

/// `?unit=…&limit=…` of `GET /api/locks`.
#[derive(Debug, Deserialize)]
pub struct ListQuery {
    unit: Option<String>,
    limit: Option<u32>,
}

/// A lock as the API shows it.
pub fn lock_json(l: &EvidenceLock) -> Value {
    json!({
        "id": l.id,
        "unit": l.unit,
        "camera": l.camera,
        "start": rfc3339(l.start_us),
        "end": rfc3339(l.end_us),
        "expires": rfc3339(l.expires_us),
        "reason": l.reason,
        "created": rfc3339(l.created_us),
        "central": { "state": l.central, "error": l.central_error },
        "unit_store": { "state": l.unit_state, "error": l.unit_error, "at": l.unit_done_us.map(rfc3339) },
    })
}

/// `POST /api/units/{unit}/cameras/{camera}/lock`.
pub async fn create(
    State(state): State<WebState>,
    Extension(who): Extension<Account>,
    Path((unit, camera)): Path<(String, String)>,
    Json(body): Json<LockBody>,
) -> Response {
    let (start_us, end_us) = match target(&state, &unit, &camera, &body.start, &body.end).await {
        Ok(r) => r,
        Err((status, message)) => return bad(status, message),
    };
    let keep_days = body.keep_days.unwrap_or(DEFAULT_KEEP_DAYS);
    if keep_days == 0 || keep_days > MAX_KEEP_DAYS {
        return bad(StatusCode::BAD_REQUEST, format!("keep_days must be 1 to {MAX_KEEP_DAYS}, not {keep_days}"));
    }
    let reason = body.reason.map(|r| r.trim().to_owned()).filter(|r| !r.is_empty());
    let reason = reason.unwrap_or_else(|| "locked at central".to_owned());
    if reason.len() > 500 {
        return bad(StatusCode::BAD_REQUEST, "reason is longer than 500 bytes");
    }
    // Kept `keep_days` from now, or past the end of a range that lies ahead.
    let expires_us = now_us().max(end_us).saturating_add(i64::from(keep_days) * DAY_US);
    let lock = NewLock { unit: unit.clone(), camera: camera.clone(), start_us, end_us, expires_us, reason };
    match state.hub.lock(lock).await {
        Ok(made) => {
            let detail =
                format!("evidence lock {}: {} to {}, {keep_days} days: {}", made.id, body.start, body.end, made.reason);
            state.auth.record_about(&who, "evidence_locked", &unit, &camera, detail).await;
            (StatusCode::CREATED, Json(lock_json(&made))).into_response()
        }
        Err(e @ RequestError::EmptyRange) => bad(StatusCode::BAD_REQUEST, e.to_string()),
        Err(e) => bad(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

/// `GET /api/locks`: those of units the user may see.
pub async fn list(
    State(state): State<WebState>,
    Extension(who): Extension<Account>,
    Query(q): Query<ListQuery>,
) -> Response {
    let limit = q.limit.unwrap_or(200).clamp(1, 1000);
    if let Some(refusal) = q.unit.as_deref().and_then(|u| unit_refusal(&who, u)) {
        return refusal;
    }
    match state.hub.locks_listed(q.unit, limit).await {
        Ok(locks) => {
            let shown: Vec<Value> = locks.iter().filter(|l| who.sees(&l.unit)).map(lock_json).collect();
            Json(json!({ "locks": shown })).into_response()
        }
        Err(e) => bad(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

/// `GET /api/locks/{id}` (403 when the user may not see its unit).
pub async fn get(State(state): State<WebState>, Extension(who): Extension<Account>, Path(id): Path<u64>) -> Response {
    match state.hub.lock_by_id(id).await {
        Ok(Some(l)) => match unit_refusal(&who, &l.unit) {
            Some(refusal) => refusal,
            None => Json(lock_json(&l)).into_response(),
        },
        Ok(None) => bad(StatusCode::NOT_FOUND, format!("no evidence lock {id}")),
        Err(e) => bad(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}
