//! Logging in and out, who am I, the users and the audit log (stable contracts):
//!
//! - `POST /api/login` with `{ "name", "password" }` → `{ "name", "role", "units" }` and a
//!   session cookie (`HttpOnly`, `SameSite=Strict`, `Secure` behind HTTPS); 401 for a wrong name
//!   or password, 429 with `Retry-After` (seconds) after too many failures from the client's
//!   address or for the name.
//! - `POST /api/logout` → 204; the session ends and the cookie is cleared.
//! - `GET /api/me` → `{ "name", "role", "units" }` (`units`: `null` for every unit).
//! - `GET /api/users` (administrators) → every user as `GET /api/me` shows one.
//! - `POST /api/users` (administrators) with `{ "name", "role", "password", "units"?, "replace"? }`
//!   adds a user (or, with `"replace": true`, sets an existing one anew) → 201 and the user;
//!   409 if it exists, 422 for a bad name, role or password.
//! - `GET /api/audit?q=TEXT&limit=N` (administrators) → the newest `N` (default 100, at most
//!   1000) audit entries whose user, action, unit, camera or detail contains `TEXT`, newest
//!   first: `{ "id", "time", "user", "action", "unit", "camera", "detail", "client" }`.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use axum::extract::rejection::{ExtensionRejection, JsonRejection};
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;

use crate::accounts::{Account, AccountsError, Role};
use crate::audit::Event;
use crate::auth::{cleared_cookie, refuse, session_cookie};
use crate::password::PasswordError;
use crate::web::WebState;

/// `{ "name", "password" }`.
#[derive(Deserialize)]
pub struct Credentials {
    name: String,
    password: String,
}

/// `POST /api/login`.
pub async fn login(
    State(state): State<WebState>,
    connect: Result<ConnectInfo<SocketAddr>, ExtensionRejection>,
    headers: HeaderMap,
    body: Result<Json<Credentials>, JsonRejection>,
) -> Response {
    let client = connect.map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip());
    let Json(Credentials { name, password }) = match body {
        Ok(b) => b,
        Err(e) => {
            return refuse(
                StatusCode::BAD_REQUEST,
                format!("{}; send {{\"name\": …, \"password\": …}}", e.body_text()),
            );
        }
    };
    let auth = state.auth.clone();
    // Anyone may send any name: the audit log keeps at most 64 characters of it.
    let event = |action, detail: String| Event {
        user: name.chars().take(64).collect(),
        action,
        detail,
        client: Some(client.to_string()),
        ..Default::default()
    };
    if let Some(wait) = auth.login_blocked(client, &name) {
        let secs = wait.as_secs().max(1);
        // Not in the audit log: refusals cost the client nothing, so they could flood it.
        tracing::warn!(%client, name = %name.escape_debug(), "login refused for {secs} s after too many failures");
        return (
            [(header::RETRY_AFTER, secs.to_string())],
            refuse(StatusCode::TOO_MANY_REQUESTS, format!("too many failed logins; try again in {secs} s")),
        )
            .into_response();
    }
    // Counted as a failure before the check, so that guesses sent in parallel cannot slip past
    // the limit while the hashes are computed; a success forgets it.
    auth.login_failed(client, &name);
    let (n, p, a) = (name.clone(), password, auth.clone());
    let checked = tokio::task::spawn_blocking(move || a.accounts.login(&n, &p)).await;
    let account = match checked {
        Ok(Ok(Some(account))) => account,
        Ok(Ok(None)) => {
            auth.record(event("login_failed", "wrong name or password".into())).await;
            return refuse(StatusCode::UNAUTHORIZED, "wrong name or password");
        }
        Ok(Err(e)) => {
            tracing::error!("login of {name:?}: {e}");
            return refuse(StatusCode::INTERNAL_SERVER_ERROR, e.to_string());
        }
        Err(e) => return refuse(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    let token = match auth.start_session(client, &name) {
        Ok(t) => t,
        Err(e) => return refuse(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    auth.record(event("login", format!("role {}", account.role.as_str()))).await;
    ([(header::SET_COOKIE, session_cookie(&token, &headers))], Json(account)).into_response()
}

/// `POST /api/logout`.
pub async fn logout(State(state): State<WebState>, Extension(who): Extension<Account>, headers: HeaderMap) -> Response {
    let ended = state.auth.end_session(&headers).is_some();
    let detail = if ended { "session ended" } else { "no session to end (bearer token?)" };
    state.auth.record(Event { user: who.name, action: "logout", detail: detail.into(), ..Default::default() }).await;
    (StatusCode::NO_CONTENT, [(header::SET_COOKIE, cleared_cookie())]).into_response()
}

/// `GET /api/me`.
pub async fn me(Extension(who): Extension<Account>) -> Response {
    Json(who).into_response()
}

/// `GET /api/users`.
pub async fn users(State(state): State<WebState>) -> Response {
    let auth = state.auth.clone();
    match tokio::task::spawn_blocking(move || auth.accounts.list()).await {
        Ok(Ok(list)) => Json(list).into_response(),
        Ok(Err(e)) => refuse(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        Err(e) => refuse(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

/// `{ "name", "role", "password", "units"?, "replace"? }`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    name: String,
    role: String,
    password: String,
    #[serde(default)]
    units: Option<Vec<String>>,
    #[serde(default)]
    replace: bool,
}

/// `POST /api/users`.
pub async fn add_user(
    State(state): State<WebState>,
    Extension(who): Extension<Account>,
    body: Result<Json<NewUser>, JsonRejection>,
) -> Response {
    let Json(new) = match body {
        Ok(b) => b,
        Err(e) => {
            return refuse(
                StatusCode::BAD_REQUEST,
                format!(
                    "{}; send {{\"name\", \"role\": \"administrator\"|\"operator\"|\"viewer\", \"password\", \
                     \"units\": [..] or null, \"replace\": false}}",
                    e.body_text()
                ),
            );
        }
    };
    let role = match new.role.parse::<Role>() {
        Ok(r) => r,
        Err(e) => return refuse(StatusCode::UNPROCESSABLE_ENTITY, e),
    };
    let auth = state.auth.clone();
    let (name, units) = (new.name.clone(), new.units.clone());
    let added =
        tokio::task::spawn_blocking(move || auth.accounts.add(&new.name, role, &new.password, new.units, new.replace))
            .await;
    match added {
        Ok(Ok(())) => {}
        Ok(Err(e @ AccountsError::Exists(_))) => return refuse(StatusCode::CONFLICT, e.to_string()),
        Ok(Err(e @ (AccountsError::Password(PasswordError::Weak(_)) | AccountsError::Refused(_)))) => {
            return refuse(StatusCode::UNPROCESSABLE_ENTITY, e.to_string());
        }
        Ok(Err(e)) => return refuse(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        Err(e) => return refuse(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
    let seen = units.as_ref().map_or_else(|| "every unit".to_owned(), |u| format!("units {}", u.join(", ")));
    let detail = format!("{name} as {} for {seen}", role.as_str());
    state.auth.record(Event { user: who.name, action: "user_added", detail, ..Default::default() }).await;
    (StatusCode::CREATED, Json(Account { name, role, units })).into_response()
}

/// `?q=TEXT&limit=N`.
#[derive(Deserialize)]
pub struct AuditQuery {
    #[serde(default)]
    q: String,
    limit: Option<u32>,
}

/// `GET /api/audit`.
pub async fn audit(
    State(state): State<WebState>,
    query: Result<Query<AuditQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Query(AuditQuery { q, limit }) = match query {
        Ok(q) => q,
        Err(e) => return refuse(StatusCode::BAD_REQUEST, format!("{}; use ?q=TEXT&limit=N", e.body_text())),
    };
    let limit = limit.unwrap_or(100).clamp(1, 1000);
    let auth = state.auth.clone();
    match tokio::task::spawn_blocking(move || auth.audit.search(&q, limit)).await {
        Ok(Ok(entries)) => Json(entries).into_response(),
        Ok(Err(e)) => refuse(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        Err(e) => refuse(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}
