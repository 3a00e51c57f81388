//! Unit administration over the API (administrators), as `central unit add` and
//! `central unit revoke` do it:
//!
//! - `POST /api/units` with `{ "name", "valid_hours"? }` → 201 `{ "unit", "token", "expires" }`:
//!   a one-time enrollment token (default 24 h) for `edge enroll --token TOKEN` (403 for a
//!   unit outside an administrator's units).
//! - `POST /api/units/{unit}/revoke` → `{ "unit", "revoked": true }`: its certificates are
//!   revoked, a connected unit is cut off at once and refused from then on (until it is added
//!   and enrolled again); 404 for a unit never added here.
//!
//! Both are recorded in the audit log (never the token).

use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::json;

use crate::accounts::Account;
use crate::api_retrieval::bad;
use crate::audit::Event;
use crate::auth::unit_refusal;
use crate::enrollment::{self, EnrollError, now_us};
use crate::registry::Registry;
use crate::time::rfc3339;
use crate::web::WebState;

/// How long a token made through the API stays valid unless the request says.
const DEFAULT_VALID_HOURS: f64 = 24.0;
/// The longest it may stay valid.
const MAX_VALID_HOURS: f64 = 24.0 * 30.0;

/// The body of `POST /api/units`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewUnit {
    name: String,
    #[serde(default)]
    valid_hours: Option<f64>,
}

/// Runs `f` on the registry, off the async executor.
async fn with_registry<T: Send + 'static>(
    state: &WebState,
    f: impl FnOnce(&mut Registry) -> T + Send + 'static,
) -> Result<T, Response> {
    let registry = state.registry.clone();
    tokio::task::spawn_blocking(move || f(&mut registry.lock().unwrap_or_else(|p| p.into_inner())))
        .await
        .map_err(|e| bad(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
}

fn audit(who: &Account, action: &'static str, unit: &str, detail: String) -> Event {
    Event { user: who.name.clone(), action, unit: Some(unit.to_owned()), detail, ..Default::default() }
}

/// `POST /api/units`.
pub async fn add(
    State(state): State<WebState>,
    Extension(who): Extension<Account>,
    Json(body): Json<NewUnit>,
) -> Response {
    // An administrator limited to some units adds only those.
    if let Some(refusal) = unit_refusal(&who, &body.name) {
        return refusal;
    }
    let hours = body.valid_hours.unwrap_or(DEFAULT_VALID_HOURS);
    if !(hours > 0.0 && hours <= MAX_VALID_HOURS) {
        return bad(StatusCode::BAD_REQUEST, format!("valid_hours must be above 0 and at most {MAX_VALID_HOURS}"));
    }
    let validity = Duration::from_secs_f64(hours * 3600.0);
    let (ca, name) = (state.ca.clone(), body.name.clone());
    let made = match with_registry(&state, move |r| enrollment::add_unit(r, &ca, &name, validity)).await {
        Ok(m) => m,
        Err(refusal) => return refusal,
    };
    match made {
        Ok(token) => {
            let expires = rfc3339(now_us() + validity.as_micros() as i64);
            let detail = format!("enrollment token valid until {expires}");
            state.auth.record(audit(&who, "unit_added", &body.name, detail)).await;
            let answer = json!({ "unit": body.name, "token": token.to_string(), "expires": expires });
            (StatusCode::CREATED, Json(answer)).into_response()
        }
        Err(e @ EnrollError::BadName(_)) => bad(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()),
        Err(e) => bad(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

/// The body of `PATCH /api/units/{unit}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnitChange {
    /// The name operators see (null or empty: the unit's id again).
    name: Option<String>,
}

/// The longest name a unit may be given, in characters.
pub const MAX_UNIT_NAME: usize = 80;

/// `PATCH /api/units/{unit}`: renames a unit for operators (its id, in its certificate and on
/// the wire, stays).
pub async fn rename(
    State(state): State<WebState>,
    Extension(who): Extension<Account>,
    Path(unit): Path<String>,
    Json(body): Json<UnitChange>,
) -> Response {
    let name = body.name.map(|n| n.trim().to_owned()).filter(|n| !n.is_empty());
    if let Some(n) = &name {
        if n.chars().count() > MAX_UNIT_NAME || n.chars().any(char::is_control) {
            let why = format!("a unit's name is at most {MAX_UNIT_NAME} characters, without control characters");
            return bad(StatusCode::UNPROCESSABLE_ENTITY, why);
        }
    }
    let (id, label) = (unit.clone(), name.clone());
    let done = with_registry(&state, move |r| {
        if !r.is_known(&id)? {
            return Ok(false);
        }
        r.set_label(&id, label.as_deref()).map(|_| true)
    })
    .await;
    match done {
        Ok(Ok(true)) => {
            let detail = match &name {
                Some(n) => format!("renamed {n:?}"),
                None => "name cleared (shown by its id)".to_owned(),
            };
            state.auth.record(audit(&who, "unit_renamed", &unit, detail)).await;
            Json(json!({ "unit": unit, "name": name.unwrap_or_else(|| unit.clone()) })).into_response()
        }
        Ok(Ok(false)) => bad(StatusCode::NOT_FOUND, format!("no unit {unit:?} was ever added or enrolled here")),
        Ok(Err(e)) => bad(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        Err(refusal) => refusal,
    }
}

/// `POST /api/units/{unit}/revoke`.
pub async fn revoke(
    State(state): State<WebState>,
    Extension(who): Extension<Account>,
    Path(unit): Path<String>,
) -> Response {
    let name = unit.clone();
    let done = with_registry(&state, move |r| {
        if !r.is_known(&name)? {
            return Ok(false);
        }
        r.revoke(&name, now_us()).map(|_| true)
    })
    .await;
    match done {
        Ok(Ok(true)) => {
            let detail = "certificates revoked; cut off and refused from now on".to_owned();
            state.auth.record(audit(&who, "unit_revoked", &unit, detail)).await;
            Json(json!({ "unit": unit, "revoked": true })).into_response()
        }
        Ok(Ok(false)) => bad(StatusCode::NOT_FOUND, format!("no unit {unit:?} was ever added or enrolled here")),
        Ok(Err(e)) => bad(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        Err(refusal) => refusal,
    }
}
