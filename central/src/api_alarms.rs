//! The alarms API:
//!
//! - `GET /api/alarms?state=new|in_progress|closed` → the newest alarms (of units the user may
//!   see), newest first: `[{ "unit", "event_id", "time", "cameras", "kind", "state",
//!   "changed_by", "changed_at", "comment" }, …]`.
//! - `POST /api/units/{unit}/alarms/{event_id}` (a unit's events have positive ids, ingested
//!   ones negative: see [`crate::alarms`]) with `{ "state": "in_progress"|"closed",
//!   "comment"? }` → the alarm as it is now (operators; 409 when it would go back, a closed
//!   alarm staying closed, and when another operator set that state already: of two
//!   acknowledging at once, through one node or two, one wins and the other is told who did
//!   it; the same operator may set it again to change the comment). Recorded in the audit log
//!   and pushed to open pages, at every node sharing the catalog.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;

use crate::accounts::Account;
use crate::alarms::{AlarmState, Change, ChangeError};
use crate::api_retrieval::bad;
use crate::audit::Event;
use crate::enrollment::now_us;
use crate::live_events::LiveEvent;
use crate::web::WebState;

/// The most alarms one answer lists.
const LIMIT: u32 = 500;
/// The longest comment, in bytes.
const MAX_COMMENT: usize = 1000;

/// `?state=…` of `GET /api/alarms`.
#[derive(Debug, Deserialize)]
pub struct ListQuery {
    state: Option<String>,
}

/// The body of `POST /api/units/{unit}/alarms/{event_id}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChangeBody {
    state: String,
    #[serde(default)]
    comment: Option<String>,
}

/// `GET /api/alarms`: those of units the user may see.
pub async fn list(
    State(state): State<WebState>,
    Extension(who): Extension<Account>,
    Query(q): Query<ListQuery>,
) -> Response {
    let wanted = match q.state.as_deref().map(|s| AlarmState::parse(s).ok_or(s)) {
        None => None,
        Some(Ok(s)) => Some(s),
        Some(Err(s)) => return bad(StatusCode::BAD_REQUEST, format!("state {s:?} is not new, in_progress or closed")),
    };
    match state.hub.alarms().list(wanted, LIMIT).await {
        Ok(a) => Json(a.into_iter().filter(|a| who.sees(&a.unit)).collect::<Vec<_>>()).into_response(),
        Err(e) => bad(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

/// `POST /api/units/{unit}/alarms/{event_id}` (the unit's permission is checked by the layer).
pub async fn change(
    State(state): State<WebState>,
    Extension(who): Extension<Account>,
    Path((unit, event_id)): Path<(String, i64)>,
    Json(body): Json<ChangeBody>,
) -> Response {
    let to = match AlarmState::parse(&body.state) {
        Some(s @ (AlarmState::InProgress | AlarmState::Closed)) => s,
        _ => return bad(StatusCode::BAD_REQUEST, format!("state must be in_progress or closed, not {:?}", body.state)),
    };
    let comment = body.comment.map(|c| c.trim().to_owned()).filter(|c| !c.is_empty());
    if comment.as_ref().is_some_and(|c| c.len() > MAX_COMMENT) {
        return bad(StatusCode::BAD_REQUEST, format!("comment is longer than {MAX_COMMENT} bytes"));
    }
    let change = Change { state: to, by: who.name.clone(), comment: comment.clone(), at_us: now_us() };
    match state.hub.alarms().change(&unit, event_id, change).await {
        Ok(alarm) => {
            let action = if to == AlarmState::Closed { "alarm_closed" } else { "alarm_acknowledged" };
            let detail = match &comment {
                Some(c) => format!("alarm {event_id}: {c}"),
                None => format!("alarm {event_id}"),
            };
            let event = Event {
                user: who.name.clone(),
                action,
                unit: Some(unit),
                camera: alarm.cameras.first().cloned(),
                detail,
                client: None,
            };
            state.auth.record(event).await;
            state.hub.store().live().publish(LiveEvent::Alarm(alarm.clone()));
            Json(alarm).into_response()
        }
        Err(e @ ChangeError::NotFound { .. }) => bad(StatusCode::NOT_FOUND, e.to_string()),
        Err(e @ (ChangeError::Backwards { .. } | ChangeError::Taken { .. })) => {
            bad(StatusCode::CONFLICT, e.to_string())
        }
        Err(e) => bad(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}
