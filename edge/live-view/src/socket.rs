//! One viewer's WebSocket: live messages in, fragmented MP4 out.

use axum::extract::ws::{Message, WebSocket};
use futures::{SinkExt as _, StreamExt as _};
use link::live::LiveSubscription;
use protocol::interconnect::LiveMessage;
use serde_json::json;

use crate::muxer::{LiveMuxer, Out};

/// Forwards `subscription` to `socket` as fMP4 until the camera's hub goes away or the viewer
/// closes the socket (read concurrently, so a closed page ends its demand at once even while
/// frames flow). A codec browsers cannot play ends it with an `unsupported` message.
pub async fn forward(socket: WebSocket, subscription: &mut LiveSubscription) {
    let (mut tx, mut rx) = socket.split();
    let mut muxer = LiveMuxer::default();
    loop {
        let msg = tokio::select! {
            msg = subscription.next() => match msg {
                Some(msg) => msg,
                None => {
                    let _ = tx.send(Message::Close(None)).await;
                    return;
                }
            },
            incoming = rx.next() => match incoming {
                Some(Ok(Message::Close(_)) | Err(_)) | None => return,
                Some(Ok(_)) => continue,
            },
        };
        let out = match muxer.feed(&msg) {
            Ok(out) => out,
            Err(e) => {
                let codec = match &*msg {
                    LiveMessage::Parameters(p) => p.rfc6381_codec.clone(),
                    LiveMessage::Frame(_) => String::new(),
                };
                let text = json!({ "type": "unsupported", "codec": codec, "message": e.to_string() }).to_string();
                let _ = tx.send(Message::Text(text.into())).await;
                let _ = tx.send(Message::Close(None)).await;
                return;
            }
        };
        for o in out {
            let m = match o {
                Out::Text(t) => Message::Text(t.into()),
                Out::Binary(b) => Message::Binary(b.into()),
            };
            if tx.send(m).await.is_err() {
                return;
            }
        }
    }
}
