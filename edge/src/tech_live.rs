//! `GET /api/cameras/{id}/live.fmp4`: a camera's live video for the technician's page, over a
//! WebSocket as fragmented MP4, fed from the unit's own live hub (no central involved). The
//! messages and the page's player are central's (crate `live-view`): only H.264 plays, an
//! H.265 camera gets an `unsupported` message that the page shows instead of the picture.
//! `?stream=sub` picks the camera's sub stream (`sub_url`). The video starts at the camera's last
//! key frame, read back from the recordings when it can (`live_start.rs`).

use axum::Router;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{Path, Query, State};
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

/// The live socket's query: `stream=sub` for the camera's sub stream.
#[derive(Debug, serde::Deserialize)]
struct LiveQuery {
    stream: Option<String>,
}

/// Upgrades to the live socket; 404 when no camera of that id (or no sub stream of it) runs.
/// The socket ends when the camera is removed or the page closes it.
async fn live(
    State(hubs): State<LiveHubs>,
    Path(camera): Path<String>,
    Query(q): Query<LiveQuery>,
    upgrade: WebSocketUpgrade,
) -> Response {
    let id = match crate::sub_stream::resolve(&camera, q.stream.as_deref()) {
        Ok(id) => id,
        Err(message) => {
            return (StatusCode::BAD_REQUEST, axum::Json(serde_json::json!({ "error": message }))).into_response();
        }
    };
    // From the last key frame the unit recorded, when it can (`live_start.rs`).
    let Some(mut subscription) = crate::live_start::subscribe_from_key_frame(&hubs, &id).await else {
        let what =
            if id == camera { format!("no camera {id:?}") } else { format!("no sub stream of camera {camera:?}") };
        let body = serde_json::json!({ "error": format!("{what} is running on this unit") });
        return (StatusCode::NOT_FOUND, axum::Json(body)).into_response();
    };
    upgrade.on_upgrade(move |socket| async move { live_view::forward(socket, &mut subscription).await })
}
