//! `/api/units/{unit}/cameras/{camera}/recording`: a camera's recording options.
//!
//! - `GET` → `{ "recording": [...], "event_window_s": [before, after], "time_profile": NAME|null,
//!   "source": "api"|"config"|"default" }`
//! - `PUT` with `{ "recording": [...], "event_window_s"?, "time_profile"? }` sets them (checked
//!   against central.toml: a `"time_profile"` must name one of its `[[time_profile]]`s), durably;
//!   they apply from the unit's next catalog on, and reach the unit with its settings
//!   ([`crate::api_profiles`]). Answers as `GET`.
//! - `DELETE` forgets what was set, so central.toml (or the defaults) apply again; 204.
//!
//! The unit must have shared the camera with central (404 otherwise); errors are
//! `{ "error": "…" }`.

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde_json::json;

use crate::accounts::Account;
use crate::recording_options::{OptionsBody, OptionsError};
use crate::web::{WebState, shares_camera};

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

/// 404 unless `unit` shares `camera` with central.
async fn known(state: &WebState, unit: &str, camera: &str) -> Result<(), Response> {
    match shares_camera(state, unit, camera).await {
        Ok(true) => Ok(()),
        Ok(false) => Err(error(StatusCode::NOT_FOUND, format!("no unit {unit:?} with a shared camera {camera:?}"))),
        Err(e) => Err(error(StatusCode::INTERNAL_SERVER_ERROR, e)),
    }
}

fn show(state: &WebState, unit: &str, camera: &str) -> Response {
    let (c, source) = state.hub.options().camera(unit, camera);
    Json(json!({
        "recording": c.recording,
        "event_window_s": c.event_window_s,
        "time_profile": c.time_profile,
        "source": source,
    }))
    .into_response()
}

/// `GET …/recording`.
pub async fn get(State(state): State<WebState>, Path((unit, camera)): Path<(String, String)>) -> Response {
    if let Err(r) = known(&state, &unit, &camera).await {
        return r;
    }
    show(&state, &unit, &camera)
}

/// `PUT …/recording`.
pub async fn put(
    State(state): State<WebState>,
    Extension(who): Extension<Account>,
    Path((unit, camera)): Path<(String, String)>,
    body: Result<Json<OptionsBody>, JsonRejection>,
) -> Response {
    if let Err(r) = known(&state, &unit, &camera).await {
        return r;
    }
    let Json(body) = match body {
        Ok(b) => b,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!(
                    "{}; send {{\"recording\": [\"remote\", \"on_request\", \"link_gap\", \"event_window\", \
                     \"time_profile\" or \"none\"], \"event_window_s\": [10, 10], \"time_profile\": NAME}}",
                    e.body_text()
                ),
            );
        }
    };
    let options = state.hub.clone();
    let (u, c) = (unit.clone(), camera.clone());
    let detail = serde_json::to_string(&body).unwrap_or_default();
    match tokio::task::spawn_blocking(move || options.options().set(&u, &c, body)).await {
        Ok(Ok(_)) => {
            state.auth.record_about(&who, "recording_options_set", &unit, &camera, detail).await;
            crate::api_profiles::push(&state, std::slice::from_ref(&unit)).await;
            show(&state, &unit, &camera)
        }
        Ok(Err(OptionsError::Invalid(e))) => error(StatusCode::UNPROCESSABLE_ENTITY, e),
        Ok(Err(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

/// `DELETE …/recording`.
pub async fn delete(
    State(state): State<WebState>,
    Extension(who): Extension<Account>,
    Path((unit, camera)): Path<(String, String)>,
) -> Response {
    if let Err(r) = known(&state, &unit, &camera).await {
        return r;
    }
    let options = state.hub.clone();
    let (u, c) = (unit.clone(), camera.clone());
    match tokio::task::spawn_blocking(move || options.options().clear(&u, &c)).await {
        Ok(Ok(_)) => {
            state.auth.record_about(&who, "recording_options_cleared", &unit, &camera, String::new()).await;
            crate::api_profiles::push(&state, std::slice::from_ref(&unit)).await;
            StatusCode::NO_CONTENT.into_response()
        }
        Ok(Err(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}
