//! `GET /api/units/{unit}/cameras/{camera}/live`: a camera's live video over a WebSocket.
//!
//! Messages: first a text message with the codec parameters as JSON,
//! `{"type":"parameters","codec":"avc1.64001f","width":W,"height":H,"extra_data":"<base64>"}`
//! (again whenever they change); then one binary message per frame: `wall_clock_us` (i64,
//! big-endian: when the unit received the frame from the camera), `pts` (i64, 90 kHz),
//! `flags` (u8, bit 0: key frame), then the frame as length-prefixed NAL units (AVCC). The
//! first frame is a key frame; a viewer that falls behind skips to the next one.

use axum::extract::ws::{Message, WebSocket};
use base64::prelude::{BASE64_STANDARD, Engine as _};
use protocol::interconnect::LiveMessage;

use crate::relay::Viewer;

/// Forwards the viewer's frames until it or the camera goes away.
pub async fn forward(mut socket: WebSocket, mut viewer: Viewer) {
    while let Some(msg) = viewer.subscription.next().await {
        let out = match &*msg {
            LiveMessage::Parameters(p) => Message::Text(
                serde_json::json!({
                    "type": "parameters",
                    "codec": p.rfc6381_codec,
                    "width": p.width,
                    "height": p.height,
                    "extra_data": BASE64_STANDARD.encode(&p.extra_data),
                })
                .to_string()
                .into(),
            ),
            LiveMessage::Frame(f) => {
                let mut b = Vec::with_capacity(17 + f.data.len());
                b.extend_from_slice(&f.wall_clock_us.to_be_bytes());
                b.extend_from_slice(&f.pts.to_be_bytes());
                b.push(u8::from(f.keyframe));
                b.extend_from_slice(&f.data);
                Message::Binary(b.into())
            }
        };
        if socket.send(out).await.is_err() {
            return;
        }
    }
}
