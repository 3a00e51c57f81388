//! One camera's live video as QUIC datagrams with parity (protocol version 5, when central asks
//! with `StartLiveDatagrams`): the live stream carries the header and the parameters, which
//! must not be lost; each frame goes out as data and parity datagrams
//! ([`link::live_sender::LiveSender`]), and the fragments central asks for again
//! ([`LiveNack`]) are sent again while the unit still keeps them.

use link::LinkError;
use link::live_sender::{DEFAULT_GROUP, DEFAULT_RESEND_BYTES, LiveSender};
use link::live_window::LiveStreams;
use link::messages;
use protocol::interconnect::{LiveHeader, LiveMessage, LiveSlot};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::live_start::LiveSource;

/// Central's request to send fragments of a frame again (`CentralMessage::LiveNack`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveNack {
    /// The frame's number in its slot.
    pub frame: u32,
    /// The data fragments to send again (all when empty).
    pub fragments: Vec<u16>,
}

/// Sends `source`'s live video on `slot` until `stop` or the link fails, counted in `open`
/// meanwhile; answers the requests that arrive on `nacks`.
pub async fn send_live_datagrams(
    conn: quinn::Connection,
    source: LiveSource,
    slot: u32,
    open: LiveStreams,
    stop: CancellationToken,
    mut nacks: mpsc::Receiver<LiveNack>,
) {
    let camera = source.camera.clone();
    let _open = open.open();
    let result: Result<(), LinkError> = async {
        let mut sub = source.subscribe().await;
        let mut stream = conn.open_uni().await.map_err(|e| LinkError::Endpoint(e.to_string()))?;
        messages::write(&mut stream, &LiveHeader { camera: camera.clone() }).await?;
        // Which request this stream answers (central may have asked again meanwhile).
        messages::write(&mut stream, &LiveSlot { slot }).await?;
        let mut sender = LiveSender::new(slot, DEFAULT_GROUP, DEFAULT_RESEND_BYTES);
        loop {
            tokio::select! {
                msg = sub.next() => {
                    let Some(msg) = msg else { break };
                    match &*msg {
                        LiveMessage::Parameters(_) => {
                            messages::write::<LiveMessage>(&mut stream, &msg).await?;
                            sender.parameters_sent();
                        }
                        LiveMessage::Frame(frame) => {
                            let max = conn.max_datagram_size().ok_or_else(|| {
                                LinkError::Endpoint("central no longer accepts datagrams".into())
                            })?;
                            let datagrams = sender.frame(frame, max).map_err(|e| LinkError::Endpoint(e.to_string()))?;
                            for datagram in datagrams {
                                send(&conn, datagram)?;
                            }
                        }
                    }
                }
                Some(nack) = nacks.recv() => {
                    for datagram in sender.resend(nack.frame, &nack.fragments) {
                        send(&conn, datagram)?;
                    }
                }
                () = stop.cancelled() => break,
            }
        }
        let _ = stream.finish();
        Ok(())
    }
    .await;
    if let Err(e) = result {
        tracing::debug!(camera = %camera, slot, "live datagrams ended: {e}");
    }
}

/// Sends one datagram; one too large for the path now is dropped (central asks again or skips).
fn send(conn: &quinn::Connection, datagram: bytes::Bytes) -> Result<(), LinkError> {
    match conn.send_datagram(datagram) {
        Ok(()) => Ok(()),
        Err(quinn::SendDatagramError::TooLarge) => {
            tracing::debug!("a live datagram no longer fits the path; dropped");
            Ok(())
        }
        Err(e) => Err(LinkError::Endpoint(e.to_string())),
    }
}
