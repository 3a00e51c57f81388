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
        .route("/api/status", get(api_status))
        .route("/api/events", get(api_events))
        .with_state(status)
}

async fn index() -> impl IntoResponse {
    ([(header::CACHE_CONTROL, "no-cache")], Html(include_str!("web/index.html")))
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
