//! Central's HTTP server: the REST API and the operator page.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;

use crate::fleet::Fleet;
use crate::registry::Registry;

/// What the handlers share.
#[derive(Clone)]
pub struct WebState {
    /// Live fleet state.
    pub fleet: Arc<Fleet>,
    /// The registry database.
    pub registry: Arc<Mutex<Registry>>,
}

/// The routes of central's web server.
pub fn router(state: WebState) -> Router {
    Router::new().route("/", get(index)).route("/api/units", get(api_units)).with_state(state)
}

async fn index() -> impl IntoResponse {
    ([(header::CACHE_CONTROL, "no-cache")], Html(include_str!("web/index.html")))
}

async fn api_units(State(state): State<WebState>) -> Response {
    let registry = state.registry.clone();
    let rows = tokio::task::spawn_blocking(move || registry.lock().unwrap_or_else(|p| p.into_inner()).units()).await;
    match rows {
        Ok(Ok(rows)) => axum::Json(state.fleet.units_json(&rows)).into_response(),
        Ok(Err(e)) => {
            tracing::error!("{e}");
            (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response()
        }
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}
