//! Who is asking, and may they: every request to a route that needs a role carries a bearer
//! token (`Authorization: Bearer TOKEN`, from `central token create`) or the session cookie of
//! `POST /api/login`. The layer answers 401 without either, 403 when the user's role is too
//! low or the route is about a unit (its `{unit}` path parameter) the user may not see, and
//! otherwise hands the handler the user's [`Account`] as a request extension.

use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::rejection::RawPathParamsRejection;
use axum::extract::{RawPathParams, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::accounts::{Account, Accounts, AccountsError, Role};
use crate::audit::{AuditError, AuditLog, Event};
use crate::catalog::CatalogLocation;
use crate::sessions::Sessions;
use crate::web::WebState;

/// The session cookie's name.
pub const COOKIE: &str = "convoy_session";

/// What a route asks of the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Nothing: the page, its assets, the OpenAPI document, the login.
    Public,
    /// A user with at least this role.
    Role(Role),
}

/// Why the users or the audit log could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The users database.
    #[error(transparent)]
    Accounts(#[from] AccountsError),
    /// The audit log.
    #[error(transparent)]
    Audit(#[from] AuditError),
}

/// Users, sessions, the login rate limit and the audit log.
pub struct Auth {
    /// The users and their tokens.
    pub accounts: Accounts,
    /// The audit log.
    pub audit: AuditLog,
    sessions: Mutex<Sessions>,
}

impl Auth {
    /// Opens the users and the audit log in the catalog at `at`.
    pub fn open(at: &CatalogLocation) -> Result<Auth, AuthError> {
        Ok(Auth { accounts: Accounts::open(at)?, audit: AuditLog::open(at)?, sessions: Mutex::default() })
    }

    fn sessions(&self) -> std::sync::MutexGuard<'_, Sessions> {
        self.sessions.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records `event` in the audit log (a failure is logged, not passed on).
    pub async fn record(self: &Arc<Self>, event: Event) {
        let auth = self.clone();
        match tokio::task::spawn_blocking(move || auth.audit.record(&event)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!("cannot write the audit log: {e}"),
            Err(e) => tracing::error!("cannot write the audit log: {e}"),
        }
    }

    /// Records that `who` did `action` about `unit`'s `camera`.
    pub async fn record_about(
        self: &Arc<Self>,
        who: &Account,
        action: &'static str,
        unit: &str,
        camera: &str,
        detail: String,
    ) {
        self.record(Event {
            user: who.name.clone(),
            action,
            unit: Some(unit.to_owned()),
            camera: Some(camera.to_owned()),
            detail,
            client: None,
        })
        .await;
    }

    /// How long a login as `user` from `client` must wait, if it must.
    pub fn login_blocked(&self, client: IpAddr, user: &str) -> Option<Duration> {
        self.sessions().login_blocked(client, user, Instant::now())
    }

    /// Counts a failed login.
    pub fn login_failed(&self, client: IpAddr, user: &str) {
        self.sessions().login_failed(client, user, Instant::now());
    }

    /// Starts a session for `user` (who logged in from `client`); its cookie value.
    pub fn start_session(&self, client: IpAddr, user: &str) -> Result<String, crate::password::PasswordError> {
        let token = crate::password::new_secret()?;
        let mut sessions = self.sessions();
        sessions.login_succeeded(client, user);
        sessions.create(token.clone(), user, Instant::now());
        Ok(token)
    }

    /// Ends the session in `headers`' cookie; its user, if it was valid.
    pub fn end_session(&self, headers: &HeaderMap) -> Option<String> {
        cookie(headers).and_then(|token| self.sessions().remove(&token))
    }

    /// The user a request comes from: its bearer token's or its session's, if valid.
    pub async fn identify(self: &Arc<Self>, headers: &HeaderMap) -> Result<Option<Account>, AccountsError> {
        let auth = self.clone();
        if let Some(token) = bearer(headers) {
            return tokio::task::spawn_blocking(move || auth.accounts.by_token(&token))
                .await
                .unwrap_or_else(|e| Err(AccountsError::Refused(e.to_string())));
        }
        let Some(session) = cookie(headers).and_then(|c| self.sessions().touch(&c, Instant::now())) else {
            return Ok(None);
        };
        // Read the user anew: a role or unit list changed by `central user add --replace`
        // applies at once.
        tokio::task::spawn_blocking(move || auth.accounts.account(&session.user))
            .await
            .unwrap_or_else(|e| Err(AccountsError::Refused(e.to_string())))
    }
}

/// The token of an `Authorization: Bearer TOKEN` header.
fn bearer(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim().to_owned())
}

/// The value of the session cookie.
fn cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.to_owned())
}

/// The `Set-Cookie` value for a new session; `Secure` when the client came over HTTPS (a TLS
/// proxy in front of central says so with `X-Forwarded-Proto: https`).
pub fn session_cookie(token: &str, headers: &HeaderMap) -> String {
    let https = headers.get("x-forwarded-proto").and_then(|v| v.to_str().ok()).is_some_and(|v| v == "https");
    format!(
        "{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{}",
        crate::sessions::MAX_AGE.as_secs(),
        if https { "; Secure" } else { "" }
    )
}

/// The `Set-Cookie` value that ends the session in the browser.
pub fn cleared_cookie() -> String {
    format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0")
}

/// A JSON error answer.
pub fn refuse(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

/// The 403 answer when `who` may not see `unit`.
pub fn unit_refusal(who: &Account, unit: &str) -> Option<Response> {
    (!who.sees(unit)).then(|| {
        refuse(
            StatusCode::FORBIDDEN,
            format!("user {:?} has no permission for unit {unit:?}; an administrator can grant it", who.name),
        )
    })
}

/// The layer in front of each route (see the module documentation).
pub async fn authorize(
    State((state, need)): State<(WebState, Need)>,
    params: Result<RawPathParams, RawPathParamsRejection>,
    mut request: Request,
    next: Next,
) -> Response {
    let Need::Role(role) = need else { return next.run(request).await };
    let account = match state.auth.identify(request.headers()).await {
        Ok(Some(a)) => a,
        Ok(None) => {
            return refuse(
                StatusCode::UNAUTHORIZED,
                "log in first: POST /api/login with {\"name\", \"password\"}, or send `Authorization: Bearer TOKEN` \
                 with a token from `central token create`",
            );
        }
        Err(e) => {
            tracing::error!("{e}");
            return refuse(StatusCode::INTERNAL_SERVER_ERROR, e.to_string());
        }
    };
    if account.role < role {
        return refuse(
            StatusCode::FORBIDDEN,
            format!(
                "user {:?} is {}, and this needs the role {} or higher; ask an administrator",
                account.name,
                account.role.as_str(),
                role.as_str()
            ),
        );
    }
    match &params {
        Ok(params) => {
            if let Some((_, unit)) = params.iter().find(|(name, _)| *name == "unit")
                && let Some(refusal) = unit_refusal(&account, unit)
            {
                return refusal;
            }
        }
        // A unit name that is not UTF-8 is no unit anyone may see.
        Err(e @ RawPathParamsRejection::InvalidUtf8InPathParam(_)) => {
            return refuse(StatusCode::BAD_REQUEST, e.body_text());
        }
        // No path parameters at all.
        Err(_) => {}
    }
    request.extensions_mut().insert(account);
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_and_cookies_are_read_from_their_headers() {
        let mut h = HeaderMap::new();
        assert_eq!(bearer(&h), None);
        h.insert(header::AUTHORIZATION, "Bearer abc".parse().unwrap());
        h.append(header::COOKIE, "a=1; convoy_session=xyz; b=2".parse().unwrap());
        assert_eq!(bearer(&h).as_deref(), Some("abc"));
        assert_eq!(cookie(&h).as_deref(), Some("xyz"));
        h.insert(header::AUTHORIZATION, "Basic abc".parse().unwrap());
        assert_eq!(bearer(&h), None);
        let set = session_cookie("t", &h);
        assert!(set.contains("HttpOnly") && set.contains("SameSite=Strict") && !set.contains("Secure"), "{set}");
        h.insert("x-forwarded-proto", "https".parse().unwrap());
        assert!(session_cookie("t", &h).ends_with("; Secure"));
    }
}
