//! `POST /api/events`: the generic-events ingest, where other systems (an access control
//! system, a passenger counter, a dispatcher's tool) tell central that something happened on
//! a unit. Each event becomes an alarm like a unit's own (see [`crate::alarms`] for its
//! negative id), is pushed to open pages and webhooks, recorded in the audit log, and when it
//! names a camera with the `event_window` recording option, central retrieves the window
//! around it as for a unit's event.
//!
//! It needs the role operator (a session, or for a system a bearer token of a user of its own,
//! made with `central user add NAME --role operator --unit …` and `central token create`); a
//! user limited to some units may send events only about those. The body:
//!
//! ```json
//! {"unit": "bus-1", "camera": "cam1", "name": "door-forced", "message": "free text",
//!  "time": "2026-11-26T10:00:00Z"}
//! ```
//!
//! `camera`, `message` and `time` (default: now) are optional. Answers: 201 `{"id": -7,
//! "alarm": {…}}`; 400 when the body is not that JSON; 403 without permission for the unit;
//! 404 when no such unit is registered; 422 when a value is wrong (empty or long name, long
//! message, bad or future time, a camera the unit does not share).

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::json;

use crate::accounts::Account;
use crate::alarms::Ingested;
use crate::api_retrieval::bad;
use crate::audit::Event;
use crate::auth::unit_refusal;
use crate::enrollment::now_us;
use crate::live_events::LiveEvent;
use crate::time::parse_rfc3339;
use crate::web::WebState;

/// The longest event name, in characters.
pub const MAX_NAME: usize = 64;
/// The longest message, in bytes.
pub const MAX_MESSAGE: usize = 1000;
/// How far in the future (by central's clock) an event's time may be.
const FUTURE_SLACK_US: i64 = 300_000_000;

/// The body of `POST /api/events`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventBody {
    unit: String,
    #[serde(default)]
    camera: Option<String>,
    name: String,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    time: Option<String>,
}

/// Checks the values of an event (the unit and camera aside); the event's time, µs.
pub fn check(body: &EventBody, now_us: i64) -> Result<i64, String> {
    let name = body.name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME || name.chars().any(char::is_control) {
        return Err(format!("name must be 1 to {MAX_NAME} characters without control characters, not {:?}", body.name));
    }
    if body.message.as_ref().is_some_and(|m| m.len() > MAX_MESSAGE) {
        return Err(format!("message is longer than {MAX_MESSAGE} bytes"));
    }
    let time = match &body.time {
        None => now_us,
        Some(t) => parse_rfc3339(t).map_err(|e| format!("time: {e}, e.g. \"2026-11-26T10:00:00Z\""))?,
    };
    if time > now_us + FUTURE_SLACK_US {
        return Err(format!(
            "time {:?} is in the future; send the time it happened",
            body.time.as_deref().unwrap_or("")
        ));
    }
    Ok(time)
}

/// `POST /api/events`.
pub async fn ingest(State(state): State<WebState>, Extension(who): Extension<Account>, body: Bytes) -> Response {
    let body: EventBody = match serde_json::from_slice(&body) {
        Ok(b) => b,
        Err(e) => {
            return bad(
                StatusCode::BAD_REQUEST,
                format!("the body must be JSON like {{\"unit\", \"name\", \"camera\"?, \"message\"?, \"time\"?}}: {e}"),
            );
        }
    };
    if let Some(refusal) = unit_refusal(&who, &body.unit) {
        return refusal;
    }
    let time_us = match check(&body, now_us()) {
        Ok(t) => t,
        Err(e) => return bad(StatusCode::UNPROCESSABLE_ENTITY, e),
    };
    let registry = state.registry.clone();
    let rows = tokio::task::spawn_blocking(move || registry.lock().unwrap_or_else(|p| p.into_inner()).units()).await;
    let row = match rows {
        Ok(Ok(rows)) => rows.into_iter().find(|r| r.id == body.unit),
        Ok(Err(e)) => return bad(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        Err(e) => return bad(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    let Some(row) = row else {
        return bad(
            StatusCode::NOT_FOUND,
            format!("no unit {:?} is registered here; GET /api/units lists the units", body.unit),
        );
    };
    if let Some(camera) = &body.camera
        && !row.cameras.iter().any(|(id, _)| id == camera)
    {
        let shared: Vec<&str> = row.cameras.iter().map(|(id, _)| id.as_str()).collect();
        return bad(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("unit {:?} shares no camera {camera:?}; its cameras are {shared:?}", body.unit),
        );
    }
    let event = Ingested {
        unit: body.unit.clone(),
        camera: body.camera.clone(),
        time_us,
        name: body.name.trim().to_owned(),
        message: body.message.unwrap_or_default(),
    };
    let store = state.hub.store();
    let alarm = match state.hub.alarms().add_ingested(event.clone()).await {
        Ok(a) => a,
        Err(e) => return bad(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    store.live().publish(LiveEvent::Alarm(alarm.clone()));
    state
        .auth
        .record(Event {
            user: who.name.clone(),
            action: "event_ingested",
            unit: Some(event.unit.clone()),
            camera: event.camera.clone(),
            detail: format!("alarm {}: {}: {}", alarm.event_id, event.name, event.message),
            client: None,
        })
        .await;
    if let Some(camera) = &event.camera
        && let Err(e) = state.hub.ingested_event(&event.unit, camera, time_us).await
    {
        tracing::error!(unit = event.unit, camera, "cannot queue the event's retrieval: {e}");
    }
    (StatusCode::CREATED, Json(json!({ "id": alarm.event_id, "alarm": alarm }))).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(json: serde_json::Value) -> Result<EventBody, String> {
        serde_json::from_value(json).map_err(|e| e.to_string())
    }

    const NOW: i64 = 1_764_151_200_000_000; // 2025-11-26T10:00:00Z

    #[test]
    fn the_body_is_a_contract() {
        let b = body(json!({"unit": "bus-1", "camera": "cam1", "name": "door-forced", "message": "rear",
                            "time": "2025-11-26T09:59:00Z"}))
        .unwrap();
        assert_eq!(check(&b, NOW), Ok(NOW - 60_000_000));
        let minimal = body(json!({"unit": "bus-1", "name": "door-forced"})).unwrap();
        assert_eq!(check(&minimal, NOW), Ok(NOW), "time defaults to now");
        assert!(body(json!({"unit": "bus-1"})).unwrap_err().contains("name"));
        assert!(body(json!({"unit": "bus-1", "name": "x", "camra": "c"})).unwrap_err().contains("camra"));
    }

    #[test]
    fn wrong_values_say_what_is_wrong() {
        for (json, says) in [
            (json!({"unit": "u", "name": " "}), "name must be"),
            (json!({"unit": "u", "name": "x".repeat(65)}), "name must be"),
            (json!({"unit": "u", "name": "a\nb"}), "control"),
            (json!({"unit": "u", "name": "x", "message": "m".repeat(1001)}), "longer than 1000"),
            (json!({"unit": "u", "name": "x", "time": "yesterday"}), "RFC 3339"),
            (json!({"unit": "u", "name": "x", "time": "2025-11-26T11:00:00Z"}), "in the future"),
        ] {
            let e = check(&body(json.clone()).unwrap(), NOW).unwrap_err();
            assert!(e.contains(says), "{json}: {e}");
        }
    }
}
