//! Central's side of the QUIC link: enroll units, accept enrolled ones (mutual TLS), register
//! them, ask for live video and count what arrives. One task per connection, one per live
//! stream, and one that cuts off units as soon as they are revoked.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use link::endpoint::peer_fingerprint;
use link::messages;
use link::pki::CertificateAuthority;
use protocol::interconnect::{
    CentralMessage, EdgeMessage, EnrollRequest, Hello, LINK_TEST_MAX_DOWNLOAD, LinkTest, LiveHeader, LiveMessage,
    LiveSlot,
};
use tokio_util::sync::CancellationToken;

use crate::fleet::{Fleet, UnitLive};
use crate::live_datagrams::DatagramLive;
use crate::registry::Registry;
use crate::relay::Relay;
use crate::sync_hub::SyncHub;
use protocol::sync::SyncFromEdge;
use tokio::sync::mpsc;

/// How often the registry is checked for revoked units.
pub const REVOCATION_POLL: Duration = Duration::from_millis(300);

/// QUIC application error code with which a revoked unit's connection is closed.
pub const CLOSE_REVOKED: u32 = 2;
/// QUIC application error code with which a unit's older connection is closed when a newer one
/// arrives.
pub const CLOSE_REPLACED: u32 = 3;

/// Shared state the connection tasks need.
#[derive(Clone)]
pub struct Interconnect {
    /// Live fleet state.
    pub fleet: Arc<Fleet>,
    /// The registry database.
    pub registry: Arc<Mutex<Registry>>,
    /// Central's certificate authority (issues enrolling units' certificates).
    pub ca: Arc<CertificateAuthority>,
    /// Open unit connections by client certificate fingerprint.
    pub connections: Arc<Mutex<HashMap<String, quinn::Connection>>>,
    /// Live relay to viewers.
    pub relay: Arc<Relay>,
    /// Retrieval of recordings.
    pub hub: Arc<SyncHub>,
    /// Records hellos in the registry, group-committed on a connection of their own.
    pub hellos: crate::hellos::Hellos,
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

    /// Closes the connection of every unit whose certificate was revoked, as soon as the
    /// registry says so (`central unit revoke` runs in another process), until `shutdown`.
    pub async fn cut_off_revoked(self, shutdown: CancellationToken) {
        loop {
            tokio::select! {
                () = tokio::time::sleep(REVOCATION_POLL) => {}
                () = shutdown.cancelled() => return,
            }
            let registry = self.registry.clone();
            let revoked = tokio::task::spawn_blocking(move || lock(&registry).revoked()).await;
            let Ok(Ok(revoked)) = revoked else {
                tracing::warn!("cannot read revocations from the registry");
                continue;
            };
            let connections = self.connections.lock().unwrap_or_else(|p| p.into_inner());
            for fp in &revoked {
                if let Some(conn) = connections.get(fp) {
                    tracing::warn!(remote = %conn.remote_address(), "unit revoked: closing its connection");
                    conn.close(CLOSE_REVOKED.into(), b"unit revoked");
                }
            }
        }
    }

    async fn handle(&self, conn: quinn::Connection, shutdown: CancellationToken) -> Result<(), String> {
        let (send, mut recv) = conn.accept_bi().await.map_err(|e| e.to_string())?;
        let first = messages::read::<EdgeMessage>(&mut recv).await.map_err(|e| e.to_string())?;
        let fingerprint = peer_fingerprint(&conn);
        let hello = match (first, &fingerprint) {
            (Some(EdgeMessage::Enroll(req)), None) => return self.enroll(req, send).await,
            (Some(EdgeMessage::Enroll(_)), Some(_)) => {
                return refuse(send, "this unit is enrolled already; enroll again without its certificate".into())
                    .await;
            }
            (Some(EdgeMessage::Hello(_)), None) => {
                return refuse(
                    send,
                    "this unit is not enrolled: run `edge enroll --config EDGE.toml --central HOST:PORT --token \
                     TOKEN` with a token from `central unit add`"
                        .into(),
                )
                .await;
            }
            (Some(EdgeMessage::Hello(h)), Some(_)) => h,
            (other, _) => return Err(format!("expected hello, got {other:?}")),
        };
        let fingerprint = fingerprint.expect("matched above");
        let registry = self.registry.clone();
        let fp = fingerprint.clone();
        let owner = tokio::task::spawn_blocking(move || lock(&registry).unit_of(&fp))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
        let check = match owner {
            None => Err("this unit's certificate is revoked or unknown to central".to_owned()),
            Some(owner) if owner != hello.unit_id => Err(format!(
                "this unit's certificate was issued to unit {owner:?}, but it says it is {:?}",
                hello.unit_id
            )),
            Some(_) => check_hello(&hello),
        };
        if let Err(reason) = check {
            tracing::warn!(unit = %hello.unit_id, remote = %conn.remote_address(), "refused: {reason}");
            return refuse(send, reason).await;
        }
        // A newer connection of the unit replaces an older one at once (the older may be dead
        // without knowing it yet: a unit restarted, a link that failed).
        let old = self.connections.lock().unwrap_or_else(|p| p.into_inner()).insert(fingerprint.clone(), conn.clone());
        if let Some(old) = old {
            old.close(CLOSE_REPLACED.into(), b"replaced by a newer connection of the unit");
        }
        let result = self.serve_hello(&conn, hello, send, recv, shutdown).await;
        let mut connections = self.connections.lock().unwrap_or_else(|p| p.into_inner());
        if connections.get(&fingerprint).is_some_and(|c| c.stable_id() == conn.stable_id()) {
            connections.remove(&fingerprint);
        }
        result
    }

    async fn enroll(&self, req: EnrollRequest, mut send: quinn::SendStream) -> Result<(), String> {
        let (registry, ca) = (self.registry.clone(), self.ca.clone());
        let unit = req.unit_id.clone();
        let issued = tokio::task::spawn_blocking(move || crate::enrollment::enroll(&mut lock(&registry), &ca, &req))
            .await
            .map_err(|e| e.to_string())?;
        let answer = match &issued {
            Ok(cert) => CentralMessage::Enrolled { certificate: cert.clone(), ca: self.ca.cert().to_vec() },
            Err(e) => CentralMessage::Refused { reason: e.to_string() },
        };
        messages::write(&mut send, &answer).await.map_err(|e| e.to_string())?;
        let _ = send.finish();
        let _ = send.stopped().await;
        match issued {
            Ok(_) => {
                tracing::info!(unit = %unit, "unit enrolled");
                Ok(())
            }
            Err(e) => Err(format!("enrollment of {unit:?} refused: {e}")),
        }
    }

    async fn serve_hello(
        &self,
        conn: &quinn::Connection,
        hello: Hello,
        send: quinn::SendStream,
        recv: quinn::RecvStream,
        shutdown: CancellationToken,
    ) -> Result<(), String> {
        self.hellos.record(hello.clone()).await?;
        let unit = self.fleet.connect(&hello);
        let _traffic = self.fleet.traffic.open(&hello.unit_id, conn);
        tracing::info!(unit = %hello.unit_id, cameras = hello.cameras.len(), remote = %conn.remote_address(), "unit connected");
        let result = self.serve_unit(conn, &hello, &unit, send, recv, shutdown).await;
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
        // The fleet's session number of this connection (a newer connection gets a higher one).
        let session = unit.session + 1;
        let io = |e: link::LinkError| e.to_string();
        messages::write(&mut send, &CentralMessage::Welcome { protocol_version: protocol::PROTOCOL_VERSION })
            .await
            .map_err(io)?;
        // One writer for the control stream; everything else queues for it.
        let (ctl_tx, mut ctl_rx) = mpsc::channel::<CentralMessage>(256);
        let writer = async move {
            while let Some(msg) = ctl_rx.recv().await {
                messages::write(&mut send, &msg).await.map_err(io)?;
            }
            Ok::<(), String>(())
        };
        // Live on demand: a camera streams only while someone at central watches it.
        let mut demand = self.relay.demand(&hello.unit_id);
        let shared: BTreeSet<String> = hello.cameras.iter().map(|c| c.id.clone()).collect();
        let live_tx = ctl_tx.clone();
        // Live frames as datagrams with parity for a unit that can (protocol version 5).
        let datagram_live = crate::live_datagrams::wanted(hello, conn).then(|| Arc::new(DatagramLive::default()));
        let live_demand = async {
            let mut streaming = BTreeSet::new();
            loop {
                let wanted: BTreeSet<String> = demand.borrow_and_update().intersection(&shared).cloned().collect();
                for camera in wanted.difference(&streaming) {
                    tracing::info!(unit = %hello.unit_id, camera = %camera, "asking the unit for live video");
                    let start = match &datagram_live {
                        Some(d) => d.start(camera),
                        None => CentralMessage::StartLive { camera: camera.clone() },
                    };
                    let _ = live_tx.send(start).await;
                }
                for camera in streaming.difference(&wanted) {
                    if let Some(d) = &datagram_live {
                        d.stop(camera);
                    }
                    let _ = live_tx.send(CentralMessage::StopLive { camera: camera.clone() }).await;
                }
                streaming = wanted;
                if demand.changed().await.is_err() {
                    return Ok::<(), String>(());
                }
            }
        };
        let (sync_tx, sync_rx) = mpsc::channel::<SyncFromEdge>(64);
        let control_sync = sync_tx.clone();
        let control = async {
            while let Some(msg) = messages::read_tolerant::<EdgeMessage>(&mut recv).await.map_err(io)? {
                let msg = match msg {
                    messages::Tolerant::Message(m) => m,
                    messages::Tolerant::Unknown(why) => {
                        // A newer unit's message: skipped, the session goes on.
                        tracing::debug!(unit = %hello.unit_id, "skipped a message this central does not know: {why}");
                        continue;
                    }
                };
                match msg {
                    EdgeMessage::CameraState(state) => unit.set_camera_state(state),
                    EdgeMessage::Sync(m) => {
                        let _ = control_sync.send(m).await;
                    }
                    EdgeMessage::Hello(_) | EdgeMessage::Enroll(_) => {
                        return Err("unit sent a second hello".to_owned());
                    }
                    EdgeMessage::LinkTest(_) | EdgeMessage::LinkTestDownload { .. } => {
                        tracing::debug!(unit = %hello.unit_id, "a link test belongs on a stream of its own")
                    }
                    EdgeMessage::LinkInfo { kind, metered } => {
                        tracing::info!(unit = %hello.unit_id, link = kind.as_str(), metered, "unit link");
                        self.fleet.set_link(&hello.unit_id, kind, metered);
                        self.hub.link_reported(&hello.unit_id, metered).await.map_err(|e| e.to_string())?;
                    }
                }
            }
            Ok(())
        };
        // Chunks of retrieved video, each on a bidirectional stream of its own; link tests too.
        let chunks = async {
            loop {
                let (mut send, mut recv) = conn.accept_bi().await.map_err(|e| e.to_string())?;
                let tx = sync_tx.clone();
                tokio::spawn(async move {
                    match messages::read::<EdgeMessage>(&mut recv).await {
                        Ok(Some(EdgeMessage::Sync(m))) => {
                            let _ = tx.send(m).await;
                        }
                        Ok(Some(EdgeMessage::LinkTest(t))) => {
                            let bytes = t.payload.len() as u64;
                            let _ = messages::write(&mut send, &CentralMessage::LinkTestReceived { bytes }).await;
                            let _ = send.finish();
                        }
                        Ok(Some(EdgeMessage::LinkTestDownload { bytes })) if bytes <= LINK_TEST_MAX_DOWNLOAD => {
                            let data = CentralMessage::LinkTestData(LinkTest { payload: vec![0; bytes as usize] });
                            let _ = messages::write(&mut send, &data).await;
                            let _ = send.finish();
                        }
                        Ok(other) => tracing::debug!("unexpected message on a chunk stream: {other:?}"),
                        Err(e) => tracing::debug!("chunk stream: {e}"),
                    }
                });
            }
        };
        let live = async {
            loop {
                let stream = conn.accept_uni().await.map_err(|e| e.to_string())?;
                let unit = unit.clone();
                let unit_id = hello.unit_id.clone();
                let relay = self.relay.clone();
                let datagrams = datagram_live.clone().map(|d| (d, ctl_tx.clone()));
                tokio::spawn(async move {
                    if let Err(e) = receive_live(stream, &unit_id, &unit, &relay, datagrams).await {
                        tracing::debug!(unit = %unit_id, "live stream ended: {e}");
                    }
                });
            }
        };
        let datagrams = async {
            match &datagram_live {
                Some(d) => d.read(conn).await,
                None => std::future::pending().await,
            }
        };
        let cameras: Vec<String> = hello.cameras.iter().map(|c| c.id.clone()).collect();
        let sync = async {
            self.hub
                .drive(&hello.unit_id, session, hello.protocol_version, &cameras, sync_rx, ctl_tx.clone())
                .await
                .map_err(|e| e.to_string())
        };
        let result = tokio::select! {
            r = control => r,
            r = live => r,
            r = live_demand => r,
            r = writer => r,
            r = chunks => r,
            r = datagrams => r,
            r = sync => r,
            () = shutdown.cancelled() => Ok(()),
        };
        if let Err(e) = self.hub.disconnected(&hello.unit_id, session).await {
            tracing::error!(unit = %hello.unit_id, "cannot save the unit's sync state: {e}");
        }
        result
    }
}

/// Answers with [`CentralMessage::Refused`] and waits until the unit has read it.
async fn refuse(mut send: quinn::SendStream, reason: String) -> Result<(), String> {
    let _ = messages::write(&mut send, &CentralMessage::Refused { reason: reason.clone() }).await;
    let _ = send.finish();
    let _ = send.stopped().await;
    Err(reason)
}

fn lock(registry: &Mutex<Registry>) -> std::sync::MutexGuard<'_, Registry> {
    registry.lock().unwrap_or_else(|p| p.into_inner())
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

/// Receives one camera's live stream from the unit and publishes it to the camera's viewers;
/// its frames come as datagrams when central asked for them on a slot (`datagrams`: the
/// connection's slots and the control stream's writer).
async fn receive_live(
    mut stream: quinn::RecvStream,
    unit_id: &str,
    unit: &UnitLive,
    relay: &Relay,
    datagrams: Option<(Arc<DatagramLive>, mpsc::Sender<CentralMessage>)>,
) -> Result<(), link::LinkError> {
    let Some(header) = messages::read::<LiveHeader>(&mut stream).await? else {
        return Ok(());
    };
    let Some(camera) = unit.camera(&header.camera) else {
        tracing::warn!(camera = %header.camera, "live stream for a camera the unit did not share");
        return Ok(());
    };
    if let Some((slots, control)) = datagrams {
        // Central asked for datagrams: the stream names the request it answers.
        let Some(LiveSlot { slot }) = messages::read::<LiveSlot>(&mut stream).await? else {
            return Ok(());
        };
        let Some(rx) = slots.take(&header.camera, slot) else {
            tracing::debug!(camera = %header.camera, slot, "live stream of an older request; not bound");
            return Ok(());
        };
        let (channel, _upstream) = relay.upstream(unit_id, &header.camera);
        return crate::live_datagrams::receive(stream, slot, rx, &channel, camera, control).await;
    }
    let (channel, _upstream) = relay.upstream(unit_id, &header.camera);
    while let Some(msg) = messages::read::<LiveMessage>(&mut stream).await? {
        match msg {
            LiveMessage::Frame(frame) => {
                camera.count_frame();
                channel.hub().publish_frame(frame);
            }
            LiveMessage::Parameters(params) => channel.hub().publish_parameters(params),
        }
    }
    Ok(())
}
