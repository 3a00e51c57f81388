//! Central's HTTP server: the REST API and the operator page.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::ws::{WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::handler::Handler;
use axum::http::{Method, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{MethodFilter, MethodRouter, on};

use crate::fleet::Fleet;
use crate::registry::Registry;
use crate::relay::{Relay, Viewer};

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

/// One route: method, path (axum's syntax, which is also OpenAPI's) and handler.
pub struct Route {
    /// `GET`, `POST`, …
    pub method: Method,
    /// The path, e.g. `/api/units/{unit}/cameras/{camera}/live`.
    pub path: &'static str,
    handler: MethodRouter<WebState>,
}

fn route<H, T>(method: Method, path: &'static str, handler: H) -> Route
where
    H: Handler<T, WebState>,
    T: 'static,
{
    let filter = MethodFilter::try_from(method.clone()).unwrap_or(MethodFilter::GET);
    Route { method, path, handler: on(filter, handler) }
}

/// Every route of central's web server: the page, its assets and the REST API. The API's
/// routes are documented in `web/openapi.json` (a test keeps the two in step). Handlers take
/// only what they need from [`WebState`], so an authentication layer can wrap the router later.
pub fn routes() -> Vec<Route> {
    vec![
        route(Method::GET, "/", index),
        route(Method::GET, "/app.js", app_js),
        route(Method::GET, "/style.css", style_css),
        route(Method::GET, "/api/openapi.json", openapi),
        route(Method::GET, "/api/units", api_units),
        route(Method::GET, "/api/units/{unit}/cameras/{camera}/live", live),
        route(Method::GET, "/api/units/{unit}/cameras/{camera}/live.fmp4", live_fmp4),
        route(Method::GET, "/api/units/{unit}/cameras/{camera}/timeline", crate::api_retrieval::timeline),
        route(Method::POST, "/api/units/{unit}/cameras/{camera}/retrieve", crate::api_retrieval::retrieve),
        route(Method::GET, "/api/units/{unit}/cameras/{camera}/recording", crate::api_options::get),
        route(Method::PUT, "/api/units/{unit}/cameras/{camera}/recording", crate::api_options::put),
        route(Method::DELETE, "/api/units/{unit}/cameras/{camera}/recording", crate::api_options::delete),
        route(Method::GET, "/api/units/{unit}/cameras/{camera}/playback.fmp4", crate::api_playback::playback),
        route(Method::GET, "/api/units/{unit}/cameras/{camera}/export.mp4", crate::api_playback::export),
        route(Method::GET, "/api/retrievals", crate::api_retrieval_list::retrievals),
        route(Method::GET, "/api/retrievals/{id}", crate::api_retrieval::retrieval),
        route(Method::GET, "/api/alarms", crate::api_retrieval::alarms),
    ]
}

/// The routes of central's web server.
pub fn router(state: WebState) -> Router {
    let routes = routes().into_iter().fold(Router::new(), |r, route| r.route(route.path, route.handler));
    crate::metrics::attach(routes).with_state(state)
}

/// The OpenAPI 3 document of the REST API.
pub const OPENAPI: &str = include_str!("web/openapi.json");

async fn openapi() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI)
}

async fn app_js() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8"), (header::CACHE_CONTROL, "no-cache")],
        include_str!("web/app.js"),
    )
}

async fn style_css() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8"), (header::CACHE_CONTROL, "no-cache")],
        include_str!("web/style.css"),
    )
}

/// Upgrades to a WebSocket carrying the camera's live video as fragmented MP4 (see
/// [`crate::live_fmp4`]); 404 when no unit registered here shares that camera.
async fn live_fmp4(
    State(state): State<WebState>,
    Path((unit, camera)): Path<(String, String)>,
    upgrade: WebSocketUpgrade,
) -> Response {
    watch(&state, &unit, &camera, upgrade, crate::live_fmp4::forward).await
}

/// Upgrades to a WebSocket carrying the camera's live video (see [`crate::live_ws`]); 404 when
/// no unit registered here shares that camera.
async fn live(
    State(state): State<WebState>,
    Path((unit, camera)): Path<(String, String)>,
    upgrade: WebSocketUpgrade,
) -> Response {
    watch(&state, &unit, &camera, upgrade, crate::live_ws::forward).await
}

/// Joins the camera's live channel and hands the upgraded socket to `forward`, once the
/// registry says a unit shares that camera.
async fn watch<F, Fut>(state: &WebState, unit: &str, camera: &str, upgrade: WebSocketUpgrade, forward: F) -> Response
where
    F: FnOnce(WebSocket, Viewer) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let Ok(known) = shares_camera(state, unit, camera).await else {
        return (StatusCode::INTERNAL_SERVER_ERROR, "cannot read the registry").into_response();
    };
    if !known {
        return (StatusCode::NOT_FOUND, format!("no unit {unit:?} with a shared camera {camera:?}")).into_response();
    }
    let viewer = state.relay.watch(unit, camera);
    upgrade.on_upgrade(move |socket| forward(socket, viewer)).into_response()
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

#[cfg(test)]
mod tests {
    use super::*;

    fn document() -> serde_json::Value {
        serde_json::from_str(OPENAPI).expect("web/openapi.json is JSON")
    }

    #[test]
    fn every_api_route_is_in_the_openapi_document_and_nothing_else() {
        let doc = document();
        assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")), "an OpenAPI 3 document");
        let paths = doc["paths"].as_object().expect("paths");
        let mut routed = std::collections::BTreeSet::new();
        for r in routes().into_iter().filter(|r| r.path.starts_with("/api/")) {
            let method = r.method.as_str().to_lowercase();
            let op = &paths.get(r.path).unwrap_or_else(|| panic!("{} is not in openapi.json", r.path))[&method];
            assert!(op.is_object(), "{} {} is not in openapi.json", r.method, r.path);
            assert!(
                op["responses"].is_object() && op["summary"].is_string(),
                "{} {} needs a summary and responses",
                r.method,
                r.path
            );
            routed.insert((r.path.to_owned(), method));
        }
        for (path, item) in paths {
            for method in item.as_object().expect("path item").keys().filter(|k| *k != "parameters") {
                assert!(
                    routed.contains(&(path.clone(), method.clone())),
                    "openapi.json has {method} {path}, which is not routed"
                );
            }
        }
    }

    #[test]
    fn every_path_parameter_is_declared() {
        let doc = document();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                let declared: Vec<&str> = op["parameters"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|p| match p["$ref"].as_str().and_then(|r| r.strip_prefix("#/components/parameters/")) {
                        Some(name) => &doc["components"]["parameters"][name],
                        None => p,
                    })
                    .filter(|p| p["in"] == "path")
                    .filter_map(|p| p["name"].as_str())
                    .collect();
                for name in path.split('/').filter_map(|s| s.strip_prefix('{')?.strip_suffix('}')) {
                    assert!(declared.contains(&name), "{method} {path}: parameter {name} is not declared");
                }
            }
        }
    }
}
