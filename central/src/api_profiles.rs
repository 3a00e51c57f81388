//! Fleet profiles and each unit's settings over the API (see [`crate::profiles`]):
//!
//! - `GET /api/profiles` → `{"profiles": [{"name", "cameras": {"*"|ID: SETTINGS}, "units": [..]}]}`
//! - `PUT /api/profiles/{name}` with `{"cameras": {"*"|ID: SETTINGS}}` creates or replaces it
//!   (answers as one entry of the list); the units that have it get a new revision at once.
//! - `DELETE /api/profiles/{name}` → 204; 404 when there is none, 409 while units have it.
//! - `PUT /api/units/{unit}/profile` with `{"profile": NAME|null, "overrides": {"*"|ID: SETTINGS}}`
//!   → as `GET …/settings`.
//! - `POST /api/units/{unit}/settings/copy` with `{"to": UNIT}` moves the unit's settings
//!   (profile, overrides, recording options set through the API) to another unit → as
//!   `GET /api/units/{to}/settings`.
//! - `GET /api/units/{unit}/settings` → `{"unit", "profile", "overrides", "revision",
//!   "set_at_us", "applied_revision", "applied_at_us", "up_to_date", "unit_protocol", "note",
//!   "cameras": {"*"|ID: SETTINGS}, "conflicts": [..], "local_changes": [..]}` (working out the
//!   effective settings makes a new revision when they changed).
//!
//! SETTINGS is `{"recording", "mode", "schedule", "pre_buffer_s", "post_buffer_s", "motion",
//! "motion_sensitivity", "max_age_days", "event_window_s", "time_profile"}`, each optional (the
//! last two are retrieval rules at central, not sent to the unit). Errors are `{"error": "…"}`.

use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde_json::json;

use crate::accounts::Account;
use crate::audit::Event;
use crate::profiles::{Assignment, ProfileBody, ProfileError, Profiles};
use crate::web::WebState;

/// What `"note"` says of a unit whose protocol predates settings.
pub const TOO_OLD: &str = "unit too old for settings push";

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

fn failed(e: ProfileError) -> Response {
    match e {
        ProfileError::Invalid(_) => error(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()),
        ProfileError::InUse { .. } => error(StatusCode::CONFLICT, e.to_string()),
        e => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

/// Central's profiles, or the answer that it keeps none.
async fn profiles(state: &WebState) -> Result<Arc<Profiles>, Response> {
    state
        .hub
        .options()
        .profiles()
        .cloned()
        .ok_or_else(|| error(StatusCode::SERVICE_UNAVAILABLE, "this central keeps no fleet profiles"))
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ProfileError> + Send + 'static,
) -> Result<T, Response> {
    match tokio::task::spawn_blocking(f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(failed(e)),
        Err(e) => Err(error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())),
    }
}

/// The cameras `unit` shares, from the registry (none yet for a unit enrolled or added that
/// has not said hello); `None` when central knows no such unit.
async fn unit_cameras(state: &WebState, unit: &str) -> Result<Option<Vec<String>>, Response> {
    let registry = state.registry.clone();
    let u = unit.to_owned();
    let found = tokio::task::spawn_blocking(move || {
        let registry = registry.lock().unwrap_or_else(|p| p.into_inner());
        match registry.units()?.into_iter().find(|r| r.id == u) {
            Some(row) => Ok(Some(row.cameras.into_iter().map(|(id, _)| id).collect())),
            None => Ok(registry.is_known(&u)?.then(Vec::new)),
        }
    })
    .await
    .map_err(|e| error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    found.map_err(|e: crate::registry::RegistryError| error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
}

/// Makes a new revision for each of `units` whose settings changed (their profile, their
/// assignment or a camera's recording options changed) and hands it to their sync.
pub async fn push(state: &WebState, units: &[String]) {
    for unit in units {
        match unit_cameras(state, unit).await {
            Ok(cameras) => {
                if let Err(e) = state.hub.push_settings(unit, &cameras.unwrap_or_default()).await {
                    tracing::error!(unit, "cannot work out the unit's settings: {e}");
                }
            }
            Err(_) => tracing::error!(unit, "cannot read the registry"),
        }
    }
}

/// Every `time_profile` retrieval rule names a `[[time_profile]]` of central.toml.
fn time_profiles_exist(
    state: &WebState,
    cameras: &std::collections::BTreeMap<String, crate::profiles::CameraSettingsBody>,
) -> Result<(), String> {
    let site = state.hub.options().site();
    for (camera, s) in cameras {
        if let Some(name) = &s.time_profile
            && !site.time_profiles.iter().any(|p| &p.name == name)
        {
            return Err(format!("camera {camera:?}: central.toml has no [[time_profile]] named {name:?}"));
        }
    }
    Ok(())
}

async fn audit(state: &WebState, who: &Account, action: &'static str, detail: String) {
    state.auth.record(Event { user: who.name.clone(), action, unit: None, camera: None, detail, client: None }).await;
}

fn entry(name: &str, body: &ProfileBody, units: Vec<String>) -> serde_json::Value {
    json!({ "name": name, "cameras": body.cameras, "units": units })
}

/// `GET /api/profiles`.
pub async fn list(State(state): State<WebState>) -> Response {
    let p = match profiles(&state).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let list: Vec<_> = p.list().iter().map(|(name, body)| entry(name, body, p.units_with(name))).collect();
    Json(json!({ "profiles": list })).into_response()
}

/// `PUT /api/profiles/{name}`.
pub async fn put(
    State(state): State<WebState>,
    Extension(who): Extension<Account>,
    Path(name): Path<String>,
    body: Result<Json<ProfileBody>, JsonRejection>,
) -> Response {
    let p = match profiles(&state).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let Json(body) = match body {
        Ok(b) => b,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!(
                    "{}; send {{\"cameras\": {{\"*\": {{\"mode\": \"event\", \"recording\": [\"remote\"], …}}, \
                     \"CAMERA\": {{…}}}}}}",
                    e.body_text()
                ),
            );
        }
    };
    if let Err(e) = time_profiles_exist(&state, &body.cameras) {
        return error(StatusCode::UNPROCESSABLE_ENTITY, e);
    }
    let detail = serde_json::to_string(&body).unwrap_or_default();
    let (p2, n, b) = (p.clone(), name.clone(), body.clone());
    let units = match blocking(move || p2.put(&n, b)).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    audit(&state, &who, "profile_set", format!("{name}: {detail}")).await;
    push(&state, &units).await;
    Json(entry(&name, &body, units)).into_response()
}

/// `DELETE /api/profiles/{name}`.
pub async fn delete(
    State(state): State<WebState>,
    Extension(who): Extension<Account>,
    Path(name): Path<String>,
) -> Response {
    let p = match profiles(&state).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let n = name.clone();
    match blocking(move || p.delete(&n)).await {
        Ok(true) => {
            audit(&state, &who, "profile_deleted", name).await;
            StatusCode::NO_CONTENT.into_response()
        }
        Ok(false) => {
            error(StatusCode::NOT_FOUND, format!("there is no profile {name:?}; GET /api/profiles lists them"))
        }
        Err(r) => r,
    }
}

/// `PUT /api/units/{unit}/profile`.
pub async fn assign(
    State(state): State<WebState>,
    Extension(who): Extension<Account>,
    Path(unit): Path<String>,
    body: Result<Json<Assignment>, JsonRejection>,
) -> Response {
    let p = match profiles(&state).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    match unit_cameras(&state, &unit).await {
        Ok(Some(_)) => {}
        Ok(None) => {
            return error(StatusCode::NOT_FOUND, format!("no unit {unit:?} is known; add it with POST /api/units"));
        }
        Err(r) => return r,
    }
    let Json(body) = match body {
        Ok(b) => b,
        Err(e) => {
            let hint = "send {\"profile\": NAME or null, \"overrides\": {\"*\" or CAMERA: {\"mode\": …}}}";
            return error(StatusCode::BAD_REQUEST, format!("{}; {hint}", e.body_text()));
        }
    };
    if let Err(e) = time_profiles_exist(&state, &body.overrides) {
        return error(StatusCode::UNPROCESSABLE_ENTITY, e);
    }
    let detail = serde_json::to_string(&body).unwrap_or_default();
    let u = unit.clone();
    if let Err(r) = blocking(move || p.assign(&u, body)).await {
        return r;
    }
    let event = Event {
        user: who.name.clone(),
        action: "unit_profile_set",
        unit: Some(unit.clone()),
        camera: None,
        detail,
        client: None,
    };
    state.auth.record(event).await;
    settings(State(state), Path(unit)).await
}

/// The body of `POST /api/units/{unit}/settings/copy`.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CopyTo {
    /// The unit that takes the settings over.
    to: String,
}

/// `POST /api/units/{unit}/settings/copy` with `{"to": UNIT}`: moves a unit's camera settings
/// to another unit (a replacement box taking over a vehicle): `to` gets `unit`'s profile and
/// overrides, and the recording options set through the API on `unit`'s cameras. Answers as
/// `GET /api/units/{to}/settings`; `to` gets a new revision at once.
pub async fn copy_settings(
    State(state): State<WebState>,
    Extension(who): Extension<Account>,
    Path(unit): Path<String>,
    body: Result<Json<CopyTo>, JsonRejection>,
) -> Response {
    let p = match profiles(&state).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let to = match body {
        Ok(Json(CopyTo { to })) => to,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("{}; send {{\"to\": UNIT}}", e.body_text())),
    };
    if !who.sees(&to) {
        return error(StatusCode::FORBIDDEN, format!("you may not change unit {to:?}"));
    }
    if to == unit {
        return error(StatusCode::UNPROCESSABLE_ENTITY, "a unit's settings cannot be copied onto itself");
    }
    let cameras = match unit_cameras(&state, &unit).await {
        Ok(Some(c)) => c,
        Ok(None) => return error(StatusCode::NOT_FOUND, format!("no unit {unit:?} is known")),
        Err(r) => return r,
    };
    match unit_cameras(&state, &to).await {
        Ok(Some(_)) => {}
        Ok(None) => {
            return error(StatusCode::NOT_FOUND, format!("no unit {to:?} is known; add it with POST /api/units"));
        }
        Err(r) => return r,
    }
    let assignment = p.assignment(&unit);
    let (target, taken) = (to.clone(), assignment.clone());
    if let Err(r) = blocking(move || p.assign(&target, taken)).await {
        return r;
    }
    let options = state.hub.options();
    let mut copied = Vec::new();
    for camera in &cameras {
        let (config, source) = options.camera(&unit, camera);
        if source != crate::recording_options::OptionsSource::Api {
            continue;
        }
        let body = crate::recording_options::OptionsBody {
            recording: config.recording,
            event_window_s: config.event_window_s,
            time_profile: config.time_profile,
        };
        if let Err(e) = options.set(&to, camera, body) {
            return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string());
        }
        copied.push(camera.clone());
    }
    let profile = assignment.profile.as_deref().unwrap_or("none");
    let detail = format!("from {unit}: profile {profile}, its overrides, recording options of cameras {copied:?}");
    let event = Event {
        user: who.name.clone(),
        action: "unit_settings_copied",
        unit: Some(to.clone()),
        camera: None,
        detail,
        client: None,
    };
    state.auth.record(event).await;
    push(&state, std::slice::from_ref(&to)).await;
    settings(State(state), Path(to)).await
}

/// `GET /api/units/{unit}/settings`.
pub async fn settings(State(state): State<WebState>, Path(unit): Path<String>) -> Response {
    let p = match profiles(&state).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let cameras = match unit_cameras(&state, &unit).await {
        Ok(Some(c)) => c,
        Ok(None) => {
            return error(StatusCode::NOT_FOUND, format!("no unit {unit:?} is known; add it with POST /api/units"));
        }
        Err(r) => return r,
    };
    let push = match state.hub.push_settings(&unit, &cameras).await {
        Ok(Some(push)) => push,
        Ok(None) => return error(StatusCode::SERVICE_UNAVAILABLE, "this central keeps no fleet profiles"),
        Err(e) => return failed(e),
    };
    let effective = p.effective(&unit, &cameras, |c| state.hub.options().camera(&unit, c).0.recording);
    let (p2, u) = (p.clone(), unit.clone());
    let (s, changes) = match blocking(move || Ok((p2.state(&u)?.unwrap_or_default(), p2.local_changes(&u, 100)?))).await
    {
        Ok(v) => v,
        Err(r) => return r,
    };
    let assignment = p.assignment(&unit);
    Json(json!({
        "unit": unit,
        "profile": assignment.profile,
        "overrides": assignment.overrides,
        "revision": push.revision,
        "set_at_us": push.set_at_us,
        "applied_revision": s.applied_revision,
        "applied_at_us": s.applied_at_us,
        "up_to_date": up_to_date(&s),
        "unit_protocol": s.unit_protocol,
        "note": note(&s),
        "cameras": effective
            .into_iter()
            .map(|(k, v)| (k, serde_json::to_value(v).unwrap_or_default()))
            .collect::<serde_json::Map<_, _>>(),
        "conflicts": s.conflicts,
        "local_changes": changes,
    }))
    .into_response()
}

/// Whether the unit applied central's latest revision of its settings.
pub fn up_to_date(s: &crate::profiles::UnitSettingsState) -> bool {
    s.revision > 0 && s.applied_revision == Some(s.revision)
}

/// [`TOO_OLD`] for a unit whose last connection spoke a protocol before version 3.
pub fn note(s: &crate::profiles::UnitSettingsState) -> Option<&'static str> {
    s.unit_protocol.filter(|v| *v < 3).map(|_| TOO_OLD)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profiles::UnitSettingsState;

    #[test]
    fn up_to_date_only_when_the_unit_applied_the_latest_revision_and_old_units_are_named() {
        let mut s =
            UnitSettingsState { revision: 2, applied_revision: Some(1), unit_protocol: Some(3), ..Default::default() };
        assert!(!up_to_date(&s));
        s.applied_revision = Some(2);
        assert!(up_to_date(&s));
        assert_eq!(note(&s), None);
        s.unit_protocol = Some(2);
        assert_eq!(note(&s), Some("unit too old for settings push"));
        assert!(!up_to_date(&UnitSettingsState::default()), "no revision yet: not up to date");
    }
}
