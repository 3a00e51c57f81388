//! Central's side of the QUIC link: accept edge units, register them, ask for live video and
//! count what arrives. One task per connection, one per live stream.

use std::sync::{Arc, Mutex};

use link::messages;
use protocol::interconnect::{CentralMessage, EdgeMessage, Hello, LiveHeader, LiveMessage};
use tokio_util::sync::CancellationToken;

use crate::fleet::{Fleet, UnitLive};
use crate::registry::Registry;

/// Shared state the connection tasks need.
#[derive(Clone)]
pub struct Interconnect {
    /// Live fleet state.
    pub fleet: Arc<Fleet>,
    /// The registry database.
    pub registry: Arc<Mutex<Registry>>,
}

impl Interconnect {
    /// Accepts connections until `shutdown`.
    pub async fn serve(self, endpoint: quinn::Endpoint, shutdown: CancellationToken) {
        loop {
            let incoming = tokio::select! {
                i = endpoint.accept() => i,
                () = shutdown.cancelled() => break,
            };
            let Some(incoming) = incoming else { break };
            let this = self.clone();
            let shutdown = shutdown.clone();
            tokio::spawn(async move {
                let remote = incoming.remote_address();
                match incoming.await {
                    Ok(conn) => {
                        if let Err(e) = this.handle(conn, shutdown).await {
                            tracing::info!(%remote, "unit connection ended: {e}");
                        }
                    }
                    Err(e) => tracing::info!(%remote, "handshake failed: {e}"),
                }
            });
        }
        endpoint.close(0u32.into(), b"central shutting down");
        endpoint.wait_idle().await;
    }

    async fn handle(&self, conn: quinn::Connection, shutdown: CancellationToken) -> Result<(), String> {
        let (mut send, mut recv) = conn.accept_bi().await.map_err(|e| e.to_string())?;
        let hello = match messages::read::<EdgeMessage>(&mut recv).await.map_err(|e| e.to_string())? {
            Some(EdgeMessage::Hello(h)) => h,
            other => return Err(format!("expected hello, got {other:?}")),
        };
        if let Err(reason) = check_hello(&hello) {
            let _ = messages::write(&mut send, &CentralMessage::Refused { reason: reason.clone() }).await;
            let _ = send.finish();
            return Err(reason);
        }
        let registry = self.registry.clone();
        let h = hello.clone();
        tokio::task::spawn_blocking(move || registry.lock().unwrap_or_else(|p| p.into_inner()).record_hello(&h))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
        let unit = self.fleet.connect(&hello);
        tracing::info!(unit = %hello.unit_id, cameras = hello.cameras.len(), remote = %conn.remote_address(), "unit connected");
        let result = self.serve_unit(&conn, &hello, &unit, send, recv, shutdown).await;
        self.fleet.disconnect(&hello.unit_id, unit.session);
        tracing::info!(unit = %hello.unit_id, "unit disconnected");
        result
    }

    async fn serve_unit(
        &self,
        conn: &quinn::Connection,
        hello: &Hello,
        unit: &Arc<UnitLive>,
        mut send: quinn::SendStream,
        mut recv: quinn::RecvStream,
        shutdown: CancellationToken,
    ) -> Result<(), String> {
        let io = |e: link::LinkError| e.to_string();
        messages::write(&mut send, &CentralMessage::Welcome { protocol_version: protocol::PROTOCOL_VERSION })
            .await
            .map_err(io)?;
        // Until viewers drive it (on-demand live), central asks for every shared camera.
        for cam in &hello.cameras {
            messages::write(&mut send, &CentralMessage::StartLive { camera: cam.id.clone() }).await.map_err(io)?;
        }
        let control = async {
            while let Some(msg) = messages::read::<EdgeMessage>(&mut recv).await.map_err(io)? {
                match msg {
                    EdgeMessage::CameraState(state) => unit.set_camera_state(state),
                    EdgeMessage::Hello(_) => return Err("unit sent a second hello".to_owned()),
                }
            }
            Ok(())
        };
        let live = async {
            loop {
                let stream = conn.accept_uni().await.map_err(|e| e.to_string())?;
                let unit = unit.clone();
                let unit_id = hello.unit_id.clone();
                tokio::spawn(async move {
                    if let Err(e) = receive_live(stream, &unit).await {
                        tracing::debug!(unit = %unit_id, "live stream ended: {e}");
                    }
                });
            }
        };
        tokio::select! {
            r = control => r,
            r = live => r,
            () = shutdown.cancelled() => Ok(()),
        }
    }
}

fn check_hello(hello: &Hello) -> Result<(), String> {
    if hello.protocol_version < protocol::MIN_PROTOCOL_VERSION {
        return Err(format!(
            "protocol version {} is older than the oldest this central accepts ({}); update the unit",
            hello.protocol_version,
            protocol::MIN_PROTOCOL_VERSION
        ));
    }
    if hello.unit_id.trim().is_empty() {
        return Err("the unit has an empty unit_id".into());
    }
    Ok(())
}

async fn receive_live(mut stream: quinn::RecvStream, unit: &UnitLive) -> Result<(), link::LinkError> {
    let Some(header) = messages::read::<LiveHeader>(&mut stream).await? else {
        return Ok(());
    };
    let Some(camera) = unit.camera(&header.camera) else {
        tracing::warn!(camera = %header.camera, "live stream for a camera the unit did not share");
        return Ok(());
    };
    while let Some(msg) = messages::read::<LiveMessage>(&mut stream).await? {
        if let LiveMessage::Frame(_) = msg {
            camera.count_frame();
        }
    }
    Ok(())
}
