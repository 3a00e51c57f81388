//! `GET /api/webhooks` (administrators): each `[[webhook]]` of central.toml with how its
//! deliveries go (see [`crate::webhooks::WebhookStatus`]): `[{ "url", "events", "signed",
//! "queued", "last_status", "last_error", "last_attempt", "last_delivered", "delivered",
//! "dropped", "next": { "id", "event", "attempts", "due" } | null }, …]`.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::api_retrieval::bad;
use crate::web::WebState;

/// `GET /api/webhooks`.
pub async fn list(State(state): State<WebState>) -> Response {
    match state.webhooks.status().await {
        Ok(s) => Json(s).into_response(),
        Err(e) => bad(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}
