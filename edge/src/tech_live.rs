//! `GET /api/cameras/{id}/live.fmp4`: a camera's live video for the technician's page, over a
//! WebSocket as fragmented MP4, fed from the unit's own live hub (no central involved). The
//! messages and the page's player are central's (crate `live-view`): only H.264 plays, an
//! H.265 camera gets an `unsupported` message that the page shows instead of the picture.

use axum::Router;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::live::LiveHubs;

/// The live routes: the socket and the player script (`/live-player.js`).
pub fn routes(hubs: LiveHubs) -> Router {
    Router::new()
        .route("/api/cameras/{id}/live.fmp4", get(live))
        .route("/live-player.js", get(player_js))
        .with_state(hubs)
}

async fn player_js() -> impl IntoResponse {
    (
        [(header::CACHE_CONTROL, "no-cache"), (header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        live_view::PLAYER_JS,
    )
}

/// Upgrades to the live socket; 404 when no camera of that id runs. The socket ends when the
/// camera is removed or the page closes it.
async fn live(State(hubs): State<LiveHubs>, Path(id): Path<String>, upgrade: WebSocketUpgrade) -> Response {
    let Some(mut subscription) = hubs.subscribe(&id) else {
        let body = serde_json::json!({ "error": format!("no camera {id:?} is running on this unit") });
        return (StatusCode::NOT_FOUND, axum::Json(body)).into_response();
    };
    upgrade.on_upgrade(move |socket| async move { live_view::forward(socket, &mut subscription).await })
}
