//! Central's HTTP server: the REST API and the operator page.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};

use crate::fleet::Fleet;
use crate::registry::Registry;
use crate::relay::Relay;

/// What the handlers share.
#[derive(Clone)]
pub struct WebState {
    /// Live fleet state.
    pub fleet: Arc<Fleet>,
    /// The registry database.
    pub registry: Arc<Mutex<Registry>>,
    /// Live relay to viewers.
    pub relay: Arc<Relay>,
    /// Retrieval of recordings.
    pub hub: Arc<crate::sync_hub::SyncHub>,
}

/// Unsent bytes a connection may hold in its kernel send buffer. Live video to a slow viewer
/// must wait in the relay, where it can skip to the next key frame, not in the kernel, where
/// it would only grow the viewer's delay.
pub const NOTSENT_LOWAT: u32 = 64 * 1024;

/// Binds the web server's listening socket; connections accepted from it inherit
/// [`NOTSENT_LOWAT`].
pub fn listen(addr: std::net::SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = socket2::Socket::new(socket2::Domain::for_address(addr), socket2::Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.set_tcp_notsent_lowat(NOTSENT_LOWAT)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    tokio::net::TcpListener::from_std(socket.into())
}

/// The routes of central's web server.
pub fn router(state: WebState) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/api/units", get(api_units))
        .route("/api/units/{unit}/cameras/{camera}/live", get(live))
        .route("/api/units/{unit}/cameras/{camera}/timeline", get(crate::api_retrieval::timeline))
        .route("/api/units/{unit}/cameras/{camera}/retrieve", post(crate::api_retrieval::retrieve))
        .route("/api/retrievals/{id}", get(crate::api_retrieval::retrieval))
        .route("/api/alarms", get(crate::api_retrieval::alarms))
        .with_state(state)
}

/// Upgrades to a WebSocket carrying the camera's live video (see [`crate::live_ws`]); 404 when
/// no unit registered here shares that camera.
async fn live(
    State(state): State<WebState>,
    Path((unit, camera)): Path<(String, String)>,
    upgrade: WebSocketUpgrade,
) -> Response {
    let Ok(known) = shares_camera(&state, &unit, &camera).await else {
        return (StatusCode::INTERNAL_SERVER_ERROR, "cannot read the registry").into_response();
    };
    if !known {
        return (StatusCode::NOT_FOUND, format!("no unit {unit:?} with a shared camera {camera:?}")).into_response();
    }
    let viewer = state.relay.watch(&unit, &camera);
    upgrade.on_upgrade(move |socket| crate::live_ws::forward(socket, viewer)).into_response()
}

/// Whether a unit registered here shares this camera (an error says why the registry could
/// not be read).
pub async fn shares_camera(state: &WebState, unit: &str, camera: &str) -> Result<bool, String> {
    let registry = state.registry.clone();
    let rows = tokio::task::spawn_blocking(move || registry.lock().unwrap_or_else(|p| p.into_inner()).units())
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    Ok(rows.iter().any(|r| r.id == unit && r.cameras.iter().any(|(id, _)| id == camera)))
}

async fn index() -> impl IntoResponse {
    ([(header::CACHE_CONTROL, "no-cache")], Html(include_str!("web/index.html")))
}

async fn api_units(State(state): State<WebState>) -> Response {
    let registry = state.registry.clone();
    let rows = tokio::task::spawn_blocking(move || registry.lock().unwrap_or_else(|p| p.into_inner()).units()).await;
    match rows {
        Ok(Ok(rows)) => axum::Json(state.fleet.units_json(&rows, &state.relay)).into_response(),
        Ok(Err(e)) => {
            tracing::error!("{e}");
            (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response()
        }
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}
