//! The unit's local HTTP server: the status API and the technician's page.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::{Html, IntoResponse};
use axum::routing::get;

use crate::status::UnitStatus;

/// The routes of the unit's local web server.
pub fn router(status: Arc<UnitStatus>) -> Router {
    Router::new().route("/", get(index)).route("/api/status", get(api_status)).with_state(status)
}

async fn index() -> impl IntoResponse {
    ([(header::CACHE_CONTROL, "no-cache")], Html(include_str!("web/index.html")))
}

async fn api_status(State(status): State<Arc<UnitStatus>>) -> impl IntoResponse {
    axum::Json(status.snapshot())
}
