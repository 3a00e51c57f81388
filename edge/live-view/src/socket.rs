//! One viewer's WebSocket: live messages in, fragmented MP4 out.

use std::time::Duration;

use axum::extract::ws::{Message, WebSocket};
use futures::stream::{SplitSink, SplitStream};
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
                None => return close(tx, rx).await,
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
                return close(tx, rx).await;
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

/// How long [`close`] waits for the browser to answer our Close.
const CLOSE_WAIT: Duration = Duration::from_secs(5);

/// Ends the socket with WebSocket's closing handshake: our Close, then the browser's (or its
/// going away, or [`CLOSE_WAIT`]). Dropping the connection right after our Close made Firefox
/// see an unclean close, often without the messages sent just before it (an H.265 camera's
/// `unsupported`), and the page said the stream had ended instead of why it cannot play.
async fn close(mut tx: SplitSink<WebSocket, Message>, mut rx: SplitStream<WebSocket>) {
    if tx.send(Message::Close(None)).await.is_err() {
        return;
    }
    let answered = async {
        while let Some(Ok(msg)) = rx.next().await {
            if matches!(msg, Message::Close(_)) {
                return;
            }
        }
    };
    let _ = tokio::time::timeout(CLOSE_WAIT, answered).await;
}
