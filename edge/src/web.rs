//! The unit's local HTTP server: the status API and the technician's page.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{Html, IntoResponse};
use axum::routing::get;

use crate::status::UnitStatus;

/// The routes of the unit's local web server.
pub fn router(status: Arc<UnitStatus>) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/app.js", get(app_js))
        .route("/app.css", get(app_css))
        .route("/api/status", get(api_status))
        .route("/api/events", get(api_events))
        .with_state(status)
}

/// The page's policy: nothing from elsewhere, no inline script, no framing.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; \
                   media-src 'self' blob:; connect-src 'self'; frame-ancestors 'none'; form-action 'self'";

async fn index() -> impl IntoResponse {
    (
        [(header::CACHE_CONTROL, "no-cache"), (header::CONTENT_SECURITY_POLICY, CSP)],
        Html(include_str!("web/index.html")),
    )
}

async fn app_js() -> impl IntoResponse {
    (
        [(header::CACHE_CONTROL, "no-cache"), (header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        include_str!("web/app.js"),
    )
}

async fn app_css() -> impl IntoResponse {
    (
        [(header::CACHE_CONTROL, "no-cache"), (header::CONTENT_TYPE, "text/css; charset=utf-8")],
        include_str!("web/app.css"),
    )
}

async fn api_status(State(status): State<Arc<UnitStatus>>) -> impl IntoResponse {
    axum::Json(status.snapshot())
}

/// The query of `GET /api/events`.
#[derive(Debug, serde::Deserialize)]
pub struct EventsQuery {
    /// Only events with a greater id (default 0: every event still kept).
    #[serde(default)]
    pub since: u64,
}

/// `GET /api/events?since=ID`: the events still in the ring with an id above `since`, oldest
/// first.
async fn api_events(State(status): State<Arc<UnitStatus>>, Query(query): Query<EventsQuery>) -> impl IntoResponse {
    axum::Json(status.events.since(query.since))
}
