//! `GET /api/retrievals` (a stable contract): the newest 100 retrievals, newest first, each
//! `{ "id", "unit", "camera", "start", "end", "created", "state", "bytes_done", "bytes_total" }`
//! (times RFC 3339; `state` as in `GET /api/retrievals/{id}`, `null` with zero bytes when the
//! unit's sync state does not know it). The page counts the unfinished ones per unit.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde_json::json;

use crate::accounts::Account;
use crate::time::rfc3339;
use crate::web::WebState;

/// How many retrievals the list shows.
const LIMIT: u32 = 100;

/// `GET /api/retrievals`: those of units the user may see.
pub async fn retrievals(State(state): State<WebState>, Extension(who): Extension<Account>) -> Response {
    let rows = match state.hub.store().recent_retrievals(LIMIT).await {
        Ok(rows) => rows,
        Err(e) => return (StatusCode::INTERNAL_SERVER_ERROR, Json(json!({ "error": e.to_string() }))).into_response(),
    };
    let mut out = Vec::with_capacity(rows.len());
    for r in rows.into_iter().filter(|r| who.sees(&r.unit)) {
        let status = state.hub.status(r.id).await.ok().flatten();
        out.push(json!({
            "id": r.id,
            "unit": r.unit,
            "camera": r.camera,
            "start": rfc3339(r.start_us),
            "end": rfc3339(r.end_us),
            "created": rfc3339(r.created_us),
            "state": status.as_ref().map(|s| s.state.as_str()),
            "bytes_done": status.as_ref().map_or(0, |s| s.bytes_done),
            "bytes_total": status.as_ref().map_or(0, |s| s.bytes_total),
        }));
    }
    Json(out).into_response()
}
