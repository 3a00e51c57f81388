//! Central's HTTP server: the REST API and the operator page.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::ws::{WebSocket, WebSocketUpgrade};
use axum::extract::{Extension, Path, State};
use axum::handler::Handler;
use axum::http::{Method, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{MethodFilter, MethodRouter, on};

use crate::accounts::{Account, Role};
use crate::auth::{Auth, Need};
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
    /// Users, sessions and the audit log.
    pub auth: Arc<Auth>,
    /// Central's certificate authority (for enrollment tokens).
    pub ca: Arc<link::pki::CertificateAuthority>,
    /// Outgoing webhooks (for their status).
    pub webhooks: Arc<crate::webhooks::Webhooks>,
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

/// One route: who may use it, method, path (axum's syntax, which is also OpenAPI's) and
/// handler.
pub struct Route {
    /// What the client needs: nothing, or a user with at least some role.
    pub need: Need,
    /// `GET`, `POST`, …
    pub method: Method,
    /// The path, e.g. `/api/units/{unit}/cameras/{camera}/live`.
    pub path: &'static str,
    handler: MethodRouter<WebState>,
}

fn route<H, T>(need: Need, method: Method, path: &'static str, handler: H) -> Route
where
    H: Handler<T, WebState>,
    T: 'static,
{
    let filter = MethodFilter::try_from(method.clone()).unwrap_or(MethodFilter::GET);
    Route { need, method, path, handler: on(filter, handler) }
}

/// Every route of central's web server: the page, its assets and the REST API, with what each
/// needs (see [`crate::auth`]): viewers watch live video, timelines and playback; operators
/// also retrieve and export; administrators also change the configuration and read the audit
/// log. The API's routes are documented in `web/openapi.json` (a test keeps the two in step).
pub fn routes() -> Vec<Route> {
    const PUBLIC: Need = Need::Public;
    const VIEWER: Need = Need::Role(Role::Viewer);
    const OPERATOR: Need = Need::Role(Role::Operator);
    const ADMIN: Need = Need::Role(Role::Administrator);
    vec![
        route(PUBLIC, Method::GET, "/", index),
        route(PUBLIC, Method::GET, "/app.js", app_js),
        route(PUBLIC, Method::GET, "/live-player.js", live_player_js),
        route(PUBLIC, Method::GET, "/style.css", style_css),
        route(PUBLIC, Method::GET, "/api/openapi.json", openapi),
        route(PUBLIC, Method::POST, "/api/login", crate::api_auth::login),
        route(VIEWER, Method::POST, "/api/logout", crate::api_auth::logout),
        route(VIEWER, Method::GET, "/api/me", crate::api_auth::me),
        route(ADMIN, Method::GET, "/api/users", crate::api_auth::users),
        route(ADMIN, Method::POST, "/api/users", crate::api_auth::add_user),
        route(ADMIN, Method::DELETE, "/api/users/{name}", crate::api_user_admin::remove),
        route(ADMIN, Method::POST, "/api/users/{name}/tokens", crate::api_user_admin::create_token),
        route(ADMIN, Method::DELETE, "/api/users/{name}/tokens", crate::api_user_admin::revoke_tokens),
        route(ADMIN, Method::GET, "/api/audit", crate::api_auth::audit),
        route(VIEWER, Method::GET, "/api/units", api_units),
        route(ADMIN, Method::POST, "/api/units", crate::api_unit_admin::add),
        route(ADMIN, Method::POST, "/api/units/{unit}/revoke", crate::api_unit_admin::revoke),
        route(ADMIN, Method::PATCH, "/api/units/{unit}", crate::api_unit_admin::rename),
        route(VIEWER, Method::GET, "/api/units/{unit}/cameras/{camera}/live", live),
        route(VIEWER, Method::GET, "/api/units/{unit}/cameras/{camera}/live.fmp4", live_fmp4),
        route(VIEWER, Method::GET, "/api/units/{unit}/cameras/{camera}/timeline", crate::api_retrieval::timeline),
        route(OPERATOR, Method::POST, "/api/units/{unit}/cameras/{camera}/retrieve", crate::api_retrieval::retrieve),
        route(VIEWER, Method::GET, "/api/units/{unit}/cameras/{camera}/recording", crate::api_options::get),
        route(ADMIN, Method::PUT, "/api/units/{unit}/cameras/{camera}/recording", crate::api_options::put),
        route(ADMIN, Method::DELETE, "/api/units/{unit}/cameras/{camera}/recording", crate::api_options::delete),
        route(VIEWER, Method::GET, "/api/units/{unit}/cameras/{camera}/playback.fmp4", crate::api_playback::playback),
        route(OPERATOR, Method::GET, "/api/units/{unit}/cameras/{camera}/export.mp4", crate::api_playback::export),
        route(VIEWER, Method::GET, "/api/retrievals", crate::api_retrieval_list::retrievals),
        route(VIEWER, Method::GET, "/api/retrievals/{id}", crate::api_retrieval::retrieval),
        route(VIEWER, Method::GET, "/api/alarms", crate::api_alarms::list),
        route(VIEWER, Method::GET, "/api/stream", crate::api_stream::stream),
        route(OPERATOR, Method::POST, "/api/units/{unit}/alarms/{event_id}", crate::api_alarms::change),
        route(OPERATOR, Method::POST, "/api/events", crate::api_events::ingest),
        route(ADMIN, Method::GET, "/api/webhooks", crate::api_webhooks::list),
        route(OPERATOR, Method::POST, "/api/units/{unit}/cameras/{camera}/lock", crate::api_locks::create),
        route(VIEWER, Method::GET, "/api/locks", crate::api_locks::list),
        route(VIEWER, Method::GET, "/api/locks/{id}", crate::api_locks::get),
        route(VIEWER, Method::GET, "/api/profiles", crate::api_profiles::list),
        route(ADMIN, Method::PUT, "/api/profiles/{name}", crate::api_profiles::put),
        route(ADMIN, Method::DELETE, "/api/profiles/{name}", crate::api_profiles::delete),
        route(ADMIN, Method::PUT, "/api/units/{unit}/profile", crate::api_profiles::assign),
        route(ADMIN, Method::POST, "/api/units/{unit}/settings/copy", crate::api_profiles::copy_settings),
        route(VIEWER, Method::GET, "/api/units/{unit}/settings", crate::api_profiles::settings),
    ]
}

/// The routes of central's web server, each behind [`crate::auth::authorize`].
pub fn router(state: WebState) -> Router {
    let routes = routes().into_iter().fold(Router::new(), |r, route| {
        let layer = axum::middleware::from_fn_with_state((state.clone(), route.need), crate::auth::authorize);
        r.route(route.path, route.handler.route_layer(layer))
    });
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

/// The live player, shared with the unit's page (crate `live-view`).
async fn live_player_js() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8"), (header::CACHE_CONTROL, "no-cache")],
        live_view::PLAYER_JS,
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
    Extension(who): Extension<Account>,
    Path((unit, camera)): Path<(String, String)>,
    upgrade: WebSocketUpgrade,
) -> Response {
    watch(&state, &who, &unit, &camera, upgrade, crate::live_fmp4::forward).await
}

/// Upgrades to a WebSocket carrying the camera's live video (see [`crate::live_ws`]); 404 when
/// no unit registered here shares that camera.
async fn live(
    State(state): State<WebState>,
    Extension(who): Extension<Account>,
    Path((unit, camera)): Path<(String, String)>,
    upgrade: WebSocketUpgrade,
) -> Response {
    watch(&state, &who, &unit, &camera, upgrade, crate::live_ws::forward).await
}

/// Joins the camera's live channel and hands the upgraded socket to `forward`, once the
/// registry says a unit shares that camera; the audit log records who watches.
async fn watch<F, Fut>(
    state: &WebState,
    who: &Account,
    unit: &str,
    camera: &str,
    upgrade: WebSocketUpgrade,
    forward: F,
) -> Response
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
    state.auth.record_about(who, "live_view", unit, camera, String::new()).await;
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

/// `GET /api/units`: the units the user may see, with their storage health.
async fn api_units(State(state): State<WebState>, Extension(who): Extension<Account>) -> Response {
    let registry = state.registry.clone();
    let rows = tokio::task::spawn_blocking(move || {
        let registry = registry.lock().unwrap_or_else(|p| p.into_inner());
        Ok::<_, crate::registry::RegistryError>((registry.units()?, registry.labels()?))
    })
    .await;
    match rows
        .map(|r| r.map(|(rows, labels)| (rows.into_iter().filter(|r| who.sees(&r.id)).collect::<Vec<_>>(), labels)))
    {
        Ok(Ok((rows, mut labels))) => {
            let ids: Vec<String> = rows.iter().map(|r| r.id.clone()).collect();
            let mut storage = crate::storage_health::of_units(&state.hub, &ids).await;
            let mut units = state.fleet.units_json(&rows, &state.relay);
            for u in &mut units {
                u.storage = storage.remove(&u.id);
                if let Some(name) = labels.remove(&u.id) {
                    u.name = name;
                }
            }
            if let Some(profiles) = state.hub.options().profiles().cloned() {
                match tokio::task::spawn_blocking(move || profiles.states()).await {
                    Ok(Ok(states)) => {
                        for u in &mut units {
                            if let Some(s) = states.get(&u.id) {
                                u.settings_up_to_date = crate::api_profiles::up_to_date(s);
                                u.settings_note = crate::api_profiles::note(s);
                            }
                        }
                    }
                    Ok(Err(e)) => tracing::error!("cannot read the units' settings: {e}"),
                    Err(e) => tracing::error!("cannot read the units' settings: {e}"),
                }
            }
            axum::Json(units).into_response()
        }
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
    fn the_openapi_document_says_what_each_route_needs() {
        let doc = document();
        for r in routes().into_iter().filter(|r| r.path.starts_with("/api/")) {
            let op = &doc["paths"][r.path][r.method.as_str().to_lowercase()];
            match r.need {
                Need::Public => assert_eq!(op["security"], serde_json::json!([]), "{} {} is public", r.method, r.path),
                Need::Role(role) => {
                    assert_eq!(op["x-convoy-role"], role.as_str(), "{} {}", r.method, r.path);
                    assert!(op["responses"]["401"].is_object(), "{} {} says 401", r.method, r.path);
                }
            }
        }
        assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
        assert_eq!(doc["components"]["securitySchemes"]["session"]["name"], crate::auth::COOKIE);
    }

    #[test]
    fn only_the_page_its_assets_the_document_and_the_login_are_public() {
        let public: Vec<&str> = routes().into_iter().filter(|r| r.need == Need::Public).map(|r| r.path).collect();
        assert_eq!(public, ["/", "/app.js", "/live-player.js", "/style.css", "/api/openapi.json", "/api/login"]);
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
