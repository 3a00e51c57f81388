//! User administration over the API (administrators), beside `GET`/`POST /api/users`:
//!
//! - `DELETE /api/users/{name}` → 204: the user, its tokens and (at their next request) its
//!   sessions are gone; 404 for an unknown user, 409 for oneself.
//! - `POST /api/users/{name}/tokens` → 201 `{ "user", "token" }`: a new bearer token, as
//!   `central token create` prints it (shown once, only its digest is kept).
//! - `DELETE /api/users/{name}/tokens` → `{ "user", "revoked": N }`: every bearer token of the
//!   user stops working.
//!
//! Each is recorded in the audit log (never the token).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde_json::json;

use crate::accounts::{Account, Accounts, AccountsError};
use crate::audit::Event;
use crate::auth::refuse;
use crate::web::WebState;

/// Runs `f` on the users database, off the async executor.
async fn with_accounts<T: Send + 'static>(
    state: &WebState,
    f: impl FnOnce(&Accounts) -> Result<T, AccountsError> + Send + 'static,
) -> Result<T, Response> {
    let auth = state.auth.clone();
    match tokio::task::spawn_blocking(move || f(&auth.accounts)).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e @ AccountsError::Refused(_))) => Err(refuse(StatusCode::NOT_FOUND, e.to_string())),
        Ok(Err(e)) => Err(refuse(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())),
        Err(e) => Err(refuse(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())),
    }
}

fn audit(who: &Account, action: &'static str, detail: String) -> Event {
    Event { user: who.name.clone(), action, detail, ..Default::default() }
}

/// `DELETE /api/users/{name}`.
pub async fn remove(
    State(state): State<WebState>,
    Extension(who): Extension<Account>,
    Path(name): Path<String>,
) -> Response {
    if name == who.name {
        return refuse(StatusCode::CONFLICT, "you cannot remove yourself; another administrator can");
    }
    let user = name.clone();
    match with_accounts(&state, move |a| a.remove(&user)).await {
        Ok(true) => {
            state.auth.record(audit(&who, "user_removed", name)).await;
            StatusCode::NO_CONTENT.into_response()
        }
        Ok(false) => refuse(StatusCode::NOT_FOUND, format!("no user {name:?}")),
        Err(refusal) => refusal,
    }
}

/// `POST /api/users/{name}/tokens`.
pub async fn create_token(
    State(state): State<WebState>,
    Extension(who): Extension<Account>,
    Path(name): Path<String>,
) -> Response {
    let user = name.clone();
    match with_accounts(&state, move |a| a.create_token(&user)).await {
        Ok(token) => {
            state.auth.record(audit(&who, "token_created", format!("for {name}"))).await;
            (StatusCode::CREATED, Json(json!({ "user": name, "token": token }))).into_response()
        }
        Err(refusal) => refusal,
    }
}

/// `DELETE /api/users/{name}/tokens`.
pub async fn revoke_tokens(
    State(state): State<WebState>,
    Extension(who): Extension<Account>,
    Path(name): Path<String>,
) -> Response {
    let user = name.clone();
    let revoked = with_accounts(&state, move |a| match a.account(&user)? {
        Some(_) => a.revoke_tokens(&user),
        None => Err(AccountsError::Refused(format!("no user {user:?}"))),
    })
    .await;
    match revoked {
        Ok(n) => {
            state.auth.record(audit(&who, "tokens_revoked", format!("{n} of {name}"))).await;
            Json(json!({ "user": name, "revoked": n })).into_response()
        }
        Err(refusal) => refusal,
    }
}
