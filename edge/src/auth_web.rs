//! The technician's login on the local web server: `POST /api/login`, `POST /api/logout`,
//! `GET /api/session`, `POST /api/password`, and the guard in front of every other route.
//!
//! Who may do what:
//! - the page itself (`/`, `/app.js`, `/app.css`: no data in them) and the login routes: anyone (the page shows a login form);
//! - `GET /api/status`: anyone from loopback (supervision, health checks), else a session;
//! - `GET /metrics`: anyone from loopback, and nobody else (its handler refuses other peers);
//! - everything else: a session, and while the account still has its provisioning password only
//!   `POST /api/password`;
//! - a unit without a technician account yet: loopback only, as before logins existed (tools
//!   on the unit itself), and nothing from the network.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::Router;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;

use crate::auth::{AuthError, Credential, credential_path};
use crate::auth_session::{MAX_AGE, Session, Sessions, new_token};

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "convoy_session";

/// The login state of the unit's web server.
pub struct Auth {
    path: PathBuf,
    must_change: Mutex<bool>,
    sessions: Mutex<Sessions>,
    secure_cookies: bool,
}

/// The session a request was made in, for handlers behind the guard.
#[derive(Debug, Clone)]
pub struct CurrentSession {
    /// The session token (the cookie's value).
    pub token: String,
    /// The session.
    pub session: Session,
}

impl Auth {
    /// The login state for the unit whose store directory is `store`. `secure_cookies` marks the
    /// session cookie `Secure` always; it is anyway on requests carrying
    /// [`crate::web_tls::OverTls`].
    pub fn new(store: &std::path::Path, secure_cookies: bool) -> Auth {
        let path = credential_path(store);
        let must_change = matches!(Credential::load(&path), Ok(Some(c)) if c.must_change);
        Auth { path, must_change: Mutex::new(must_change), sessions: Mutex::new(Sessions::default()), secure_cookies }
    }

    fn has_account(&self) -> bool {
        self.path.exists()
    }

    fn cookie(&self, token: &str, max_age: u64, over_tls: bool) -> HeaderValue {
        let secure = if self.secure_cookies || over_tls { "; Secure" } else { "" };
        let value = format!("{SESSION_COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}");
        HeaderValue::from_str(&value).unwrap_or_else(|_| HeaderValue::from_static("convoy_session=; Max-Age=0"))
    }

    fn session_of(&self, headers: &HeaderMap) -> Option<CurrentSession> {
        let token = session_token(headers)?;
        let session = lock(&self.sessions).touch(&token, Instant::now())?;
        Some(CurrentSession { token, session })
    }

    /// A new session for `user`: its cookie, or why there is none.
    fn start_session(&self, user: &str, over_tls: bool) -> Result<HeaderValue, String> {
        let token = new_token().map_err(|e| format!("no random source: {e}"))?;
        lock(&self.sessions).create(token.clone(), user, Instant::now());
        Ok(self.cookie(&token, MAX_AGE.as_secs(), over_tls))
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The value of the session cookie in `headers`, if any.
pub fn session_token(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value.to_owned())
        .filter(|v| v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit()))
}

fn error(code: StatusCode, message: impl Into<String>) -> Response {
    (code, axum::Json(serde_json::json!({ "error": message.into() }))).into_response()
}

/// The peer's address (`None` when the server was not given connection info).
pub fn peer(request_extensions: &axum::http::Extensions) -> Option<IpAddr> {
    request_extensions.get::<ConnectInfo<SocketAddr>>().map(|ConnectInfo(a)| a.ip().to_canonical())
}

const NO_ACCOUNT: &str = "this unit has no technician account yet: set one on the unit with \
                          `edge technician set --config FILE` (the password is read from stdin)";

/// Puts the login routes and the guard around `routes` (serve the result with
/// `into_make_service_with_connect_info::<SocketAddr>()`, or every client counts as remote).
pub fn protect(routes: Router, auth: Arc<Auth>) -> Router {
    let login = Router::new()
        .route("/api/login", post(login))
        .route("/api/logout", post(logout))
        .route("/api/session", get(session))
        .route("/api/password", post(change_password))
        .with_state(auth.clone());
    routes.merge(login).layer(axum::middleware::from_fn_with_state(auth, guard))
}

async fn guard(State(auth): State<Arc<Auth>>, mut request: Request, next: Next) -> Response {
    let path = request.uri().path().to_owned();
    let loopback = peer(request.extensions()).is_some_and(|ip| ip.is_loopback());
    let current = auth.session_of(request.headers());
    let open =
        matches!(
            path.as_str(),
            "/" | "/app.js" | "/app.css" | "/live-player.js" | "/api/login" | "/api/logout" | "/api/session"
        ) || (loopback && request.method() == Method::GET && matches!(path.as_str(), "/api/status" | "/metrics"));
    if !open {
        match &current {
            None if !auth.has_account() && loopback => {}
            None if !auth.has_account() => return error(StatusCode::FORBIDDEN, NO_ACCOUNT),
            None => return error(StatusCode::UNAUTHORIZED, "log in first (POST /api/login)"),
            Some(_) if *lock(&auth.must_change) && path != "/api/password" => {
                return error(StatusCode::FORBIDDEN, "change the provisioning password first (POST /api/password)");
            }
            Some(_) => {}
        }
    }
    if let Some(current) = current {
        request.extensions_mut().insert(current);
    }
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
    headers.insert("x-frame-options", HeaderValue::from_static("DENY"));
    if path.starts_with("/api/") && !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

/// The body of `POST /api/login`.
#[derive(Debug, Deserialize)]
pub struct LoginRequest {
    /// The user name.
    pub user: String,
    /// The password.
    pub password: String,
}

/// The account and whether `user` and `password` match it (`None`: no account), or why it
/// cannot be read.
async fn load_and_verify(auth: &Auth, user: String, password: String) -> Result<Option<(Credential, bool)>, String> {
    let path = auth.path.clone();
    let result = tokio::task::spawn_blocking(move || {
        Credential::load(&path).map(|c| c.map(|c| (c.verify(&user, &password), c)))
    })
    .await
    .map_err(|e| format!("login check failed: {e}"))?;
    match result {
        Ok(Some((ok, credential))) => Ok(Some((credential, ok))),
        Ok(None) => Ok(None),
        Err(e) => {
            tracing::error!("{e}");
            Err(e.to_string())
        }
    }
}

/// `POST /api/login` `{"user", "password"}`: sets the session cookie and answers
/// `{"user", "must_change_password"}`; 401 on a wrong user or password, 429 (with
/// `Retry-After`) after too many failures.
async fn login(
    State(auth): State<Arc<Auth>>,
    extensions: axum::http::Extensions,
    axum::Json(request): axum::Json<LoginRequest>,
) -> Response {
    let client = peer(&extensions).unwrap_or(IpAddr::from([0, 0, 0, 0]));
    if let Some(wait) = lock(&auth.sessions).login_blocked(client, Instant::now()) {
        let mut response = error(
            StatusCode::TOO_MANY_REQUESTS,
            format!("too many failed logins: try again in {} s", wait.as_secs().max(1)),
        );
        response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(wait.as_secs().max(1)));
        return response;
    }
    let user = request.user.clone();
    let (credential, ok) = match load_and_verify(&auth, request.user, request.password).await {
        Ok(Some(found)) => found,
        Ok(None) => return error(StatusCode::FORBIDDEN, NO_ACCOUNT),
        Err(message) => return error(StatusCode::INTERNAL_SERVER_ERROR, message),
    };
    if !ok {
        lock(&auth.sessions).login_failed(client, Instant::now());
        tracing::warn!(%client, user, "failed technician login");
        return error(StatusCode::UNAUTHORIZED, "wrong user name or password");
    }
    lock(&auth.sessions).login_succeeded(client);
    *lock(&auth.must_change) = credential.must_change;
    let over_tls = extensions.get::<crate::web_tls::OverTls>().is_some();
    let cookie = match auth.start_session(&credential.user, over_tls) {
        Ok(c) => c,
        Err(message) => return error(StatusCode::INTERNAL_SERVER_ERROR, message),
    };
    tracing::info!(%client, user, "technician logged in");
    let body = serde_json::json!({ "user": credential.user, "must_change_password": credential.must_change });
    ([(header::SET_COOKIE, cookie)], axum::Json(body)).into_response()
}

/// `POST /api/logout`: ends the session and clears the cookie.
async fn logout(State(auth): State<Arc<Auth>>, extensions: axum::http::Extensions, headers: HeaderMap) -> Response {
    if let Some(token) = session_token(&headers) {
        lock(&auth.sessions).remove(&token);
    }
    let over_tls = extensions.get::<crate::web_tls::OverTls>().is_some();
    ([(header::SET_COOKIE, auth.cookie("", 0, over_tls))], axum::Json(serde_json::json!({}))).into_response()
}

/// `GET /api/session`: `{"user", "must_change_password"}`, or 401 with `{"error", "account"}`
/// (`account` false when the unit has no technician account yet). On loopback without an
/// account: `{"user": null, "must_change_password": false, "account": false}`.
async fn session(State(auth): State<Arc<Auth>>, extensions: axum::http::Extensions) -> Response {
    match extensions.get::<CurrentSession>() {
        Some(current) => axum::Json(serde_json::json!({
            "user": current.session.user,
            "must_change_password": *lock(&auth.must_change),
        }))
        .into_response(),
        None if !auth.has_account() && peer(&extensions).is_some_and(|ip| ip.is_loopback()) => {
            // On the unit itself without an account, the API is open as before logins existed.
            axum::Json(serde_json::json!({ "user": null, "must_change_password": false, "account": false }))
                .into_response()
        }
        None => {
            let account = auth.has_account();
            let message = if account { "not logged in" } else { NO_ACCOUNT };
            (StatusCode::UNAUTHORIZED, axum::Json(serde_json::json!({ "error": message, "account": account })))
                .into_response()
        }
    }
}

/// The body of `POST /api/password`.
#[derive(Debug, Deserialize)]
pub struct PasswordRequest {
    /// The password in use.
    pub current: String,
    /// The new password.
    pub new: String,
}

/// `POST /api/password` `{"current", "new"}` (logged in): checks the current password and the
/// policy, stores the new hash, ends every other session and answers with a new cookie.
async fn change_password(
    State(auth): State<Arc<Auth>>,
    extensions: axum::http::Extensions,
    axum::Json(request): axum::Json<PasswordRequest>,
) -> Response {
    let Some(current) = extensions.get::<CurrentSession>().cloned() else {
        return error(StatusCode::UNAUTHORIZED, "log in first (POST /api/login)");
    };
    let user = current.session.user.clone();
    let client = peer(&extensions).unwrap_or(IpAddr::from([0, 0, 0, 0]));
    if let Some(wait) = lock(&auth.sessions).login_blocked(client, Instant::now()) {
        let message = format!("too many wrong passwords: try again in {} s", wait.as_secs().max(1));
        return error(StatusCode::TOO_MANY_REQUESTS, message);
    }
    if request.new == request.current {
        return error(StatusCode::BAD_REQUEST, "the new password must differ from the current one");
    }
    match load_and_verify(&auth, user.clone(), request.current).await {
        Ok(Some((_, true))) => {}
        Ok(Some((_, false))) => {
            // Counted like a failed login: a session must not become a way to guess passwords.
            lock(&auth.sessions).login_failed(client, Instant::now());
            return error(StatusCode::FORBIDDEN, "the current password is wrong");
        }
        Ok(None) => return error(StatusCode::FORBIDDEN, NO_ACCOUNT),
        Err(message) => return error(StatusCode::INTERNAL_SERVER_ERROR, message),
    }
    let path = auth.path.clone();
    let saved = tokio::task::spawn_blocking(move || {
        let credential = Credential::new(&user, &request.new, false)?;
        credential.save(&path)
    })
    .await;
    match saved {
        Ok(Ok(())) => {}
        Ok(Err(e @ AuthError::Weak(_))) => return error(StatusCode::BAD_REQUEST, e.to_string()),
        Ok(Err(e)) => return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
    *lock(&auth.must_change) = false;
    lock(&auth.sessions).clear();
    let over_tls = extensions.get::<crate::web_tls::OverTls>().is_some();
    let cookie = match auth.start_session(&current.session.user, over_tls) {
        Ok(c) => c,
        Err(message) => return error(StatusCode::INTERNAL_SERVER_ERROR, message),
    };
    tracing::info!(user = current.session.user, "technician password changed");
    ([(header::SET_COOKIE, cookie)], axum::Json(serde_json::json!({ "user": current.session.user }))).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use tower::ServiceExt;

    fn app(store: &std::path::Path) -> Router {
        let ok = || async { axum::Json(serde_json::json!({ "ok": true })) };
        let routes = Router::new()
            .route("/api/status", get(ok))
            .route("/api/events", get(ok))
            .route("/metrics", get(ok))
            .route("/", get(ok));
        protect(routes, Arc::new(Auth::new(store, true)))
    }

    async fn call(
        app: &Router,
        from: &str,
        method: &str,
        path: &str,
        cookie: Option<&str>,
        body: Option<serde_json::Value>,
    ) -> (StatusCode, HeaderMap, serde_json::Value) {
        let mut request = Request::builder().method(method).uri(path);
        if let Some(c) = cookie {
            request = request.header(header::COOKIE, format!("other=1; {SESSION_COOKIE}={c}"));
        }
        let body = match body {
            Some(b) => {
                request = request.header(header::CONTENT_TYPE, "application/json");
                Body::from(b.to_string())
            }
            None => Body::empty(),
        };
        let mut request = request.body(body).unwrap();
        request.extensions_mut().insert(ConnectInfo(from.parse::<SocketAddr>().unwrap()));
        let response = app.clone().oneshot(request).await.unwrap();
        let (parts, body) = response.into_parts();
        let bytes = axum::body::to_bytes(body, 1 << 20).await.unwrap();
        (parts.status, parts.headers, serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null))
    }

    const REMOTE: &str = "192.168.7.20:50000";
    const LOOPBACK: &str = "127.0.0.1:50000";

    #[tokio::test]
    async fn without_an_account_only_loopback_is_served() {
        let dir = tempfile::tempdir().unwrap();
        let app = app(dir.path());
        assert_eq!(call(&app, LOOPBACK, "GET", "/api/events", None, None).await.0, StatusCode::OK);
        assert_eq!(call(&app, "[::ffff:127.0.0.1]:1", "GET", "/api/status", None, None).await.0, StatusCode::OK);
        let (code, _, body) = call(&app, REMOTE, "GET", "/api/status", None, None).await;
        assert_eq!(code, StatusCode::FORBIDDEN);
        assert!(body["error"].as_str().unwrap().contains("edge technician set"), "{body}");
        let (code, _, body) = call(&app, REMOTE, "GET", "/api/session", None, None).await;
        assert_eq!((code, &body["account"]), (StatusCode::UNAUTHORIZED, &serde_json::json!(false)));
        assert_eq!(call(&app, REMOTE, "GET", "/", None, None).await.0, StatusCode::OK, "the page shell is public");
        let (code, _, body) = call(&app, LOOPBACK, "GET", "/api/session", None, None).await;
        assert_eq!((code, &body["account"], &body["user"]), (StatusCode::OK, &false.into(), &serde_json::Value::Null));
    }

    #[tokio::test]
    async fn with_an_account_metrics_stay_open_to_loopback_only() {
        let dir = tempfile::tempdir().unwrap();
        Credential::new("tech", "provisioning-pw", false).unwrap().save(&credential_path(dir.path())).unwrap();
        let app = app(dir.path());
        assert_eq!(call(&app, LOOPBACK, "GET", "/metrics", None, None).await.0, StatusCode::OK);
        assert_eq!(call(&app, "[::1]:1", "GET", "/metrics", None, None).await.0, StatusCode::OK);
        assert_eq!(call(&app, REMOTE, "GET", "/metrics", None, None).await.0, StatusCode::UNAUTHORIZED);
        assert_eq!(call(&app, LOOPBACK, "POST", "/metrics", None, None).await.0, StatusCode::UNAUTHORIZED);
    }

    #[tokio::test]
    async fn with_an_account_everything_but_loopback_status_needs_a_session() {
        let dir = tempfile::tempdir().unwrap();
        Credential::new("tech", "provisioning-pw", true).unwrap().save(&credential_path(dir.path())).unwrap();
        let app = app(dir.path());
        assert_eq!(call(&app, LOOPBACK, "GET", "/api/status", None, None).await.0, StatusCode::OK);
        assert_eq!(call(&app, REMOTE, "GET", "/api/status", None, None).await.0, StatusCode::UNAUTHORIZED);
        assert_eq!(call(&app, LOOPBACK, "GET", "/api/events", None, None).await.0, StatusCode::UNAUTHORIZED);
        let forged = "ab".repeat(32);
        assert_eq!(call(&app, REMOTE, "GET", "/api/events", Some(&forged), None).await.0, StatusCode::UNAUTHORIZED);

        let login = serde_json::json!({ "user": "tech", "password": "provisioning-pw" });
        let (code, headers, body) = call(&app, REMOTE, "POST", "/api/login", None, Some(login)).await;
        assert_eq!(code, StatusCode::OK, "{body}");
        assert_eq!(body["must_change_password"], true);
        let cookie = headers[header::SET_COOKIE].to_str().unwrap().to_owned();
        for flag in ["HttpOnly", "SameSite=Strict", "Secure", "Path=/"] {
            assert!(cookie.contains(flag), "{cookie}");
        }
        let token = cookie.split(';').next().unwrap().split_once('=').unwrap().1.to_owned();
        let (code, _, body) = call(&app, REMOTE, "GET", "/api/events", Some(&token), None).await;
        assert_eq!(code, StatusCode::FORBIDDEN, "the provisioning password must be changed first");
        assert!(body["error"].as_str().unwrap().contains("/api/password"), "{body}");

        let wrong = serde_json::json!({ "current": "not-the-password", "new": "the technician's own" });
        let (code, _, body) = call(&app, REMOTE, "POST", "/api/password", Some(&token), Some(wrong)).await;
        assert_eq!(code, StatusCode::FORBIDDEN, "{body}");
        let weak = serde_json::json!({ "current": "provisioning-pw", "new": "short" });
        let (code, _, body) = call(&app, REMOTE, "POST", "/api/password", Some(&token), Some(weak)).await;
        assert_eq!(code, StatusCode::BAD_REQUEST, "{body}");
        let change = serde_json::json!({ "current": "provisioning-pw", "new": "the technician's own" });
        let (code, headers, body) = call(&app, REMOTE, "POST", "/api/password", Some(&token), Some(change)).await;
        assert_eq!(code, StatusCode::OK, "{body}");
        assert_eq!(
            call(&app, REMOTE, "GET", "/api/events", Some(&token), None).await.0,
            StatusCode::UNAUTHORIZED,
            "old sessions end"
        );
        let cookie = headers[header::SET_COOKIE].to_str().unwrap();
        let token = cookie.split(';').next().unwrap().split_once('=').unwrap().1.to_owned();
        assert_eq!(call(&app, REMOTE, "GET", "/api/status", Some(&token), None).await.0, StatusCode::OK);
        let (code, _, body) = call(&app, REMOTE, "GET", "/api/session", Some(&token), None).await;
        assert_eq!(
            (code, &body["user"], &body["must_change_password"]),
            (StatusCode::OK, &"tech".into(), &false.into())
        );
        let stored = Credential::load(&credential_path(dir.path())).unwrap().unwrap();
        assert!(stored.verify("tech", "the technician's own") && !stored.must_change);

        assert_eq!(
            call(&app, REMOTE, "POST", "/api/logout", Some(&token), Some(serde_json::json!({}))).await.0,
            StatusCode::OK
        );
        assert_eq!(call(&app, REMOTE, "GET", "/api/status", Some(&token), None).await.0, StatusCode::UNAUTHORIZED);
    }
}
