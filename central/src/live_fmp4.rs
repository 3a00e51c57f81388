//! `GET /api/units/{unit}/cameras/{camera}/live.fmp4`: a camera's live video over a WebSocket
//! as fragmented MP4, ready for a browser's Media Source Extensions. The messages, the muxer
//! and the page's player are shared with the unit's own page (crate `live-view`).
//! Like the AVCC endpoint ([`crate::live_ws`]), central asks the unit for the camera only while
//! someone watches, and a viewer that falls behind skips to the next key frame.

use axum::extract::ws::WebSocket;

use crate::relay::Viewer;

/// Forwards the viewer's frames as fMP4 until the camera goes away or the viewer closes the
/// socket; dropping the viewer afterwards ends its demand.
pub async fn forward(socket: WebSocket, mut viewer: Viewer) {
    live_view::forward(socket, &mut viewer.subscription).await;
}
