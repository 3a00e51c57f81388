//! The edge's link to central: connect over QUIC with mutual TLS (the identity `edge enroll`
//! stored), say hello, report camera states, and send live frames of the cameras central
//! asks for.
//! Reconnects with backoff for as long as the unit runs; recording never waits for it.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use link::LinkError;
use link::backoff::Backoff;
use link::endpoint;
use link::live_window::LiveStreams;
use link::messages;
use link::pki::UnitIdentity;
use protocol::interconnect::{CameraInfo, CentralMessage, EdgeMessage, Hello, LinkKind, LiveHeader, LiveMessage};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::config::CentralConfig;
use crate::live::LiveHubs;
use crate::live_datagrams::{LiveNack, send_live_datagrams};
use crate::live_start::LiveSource;
use crate::status::UnitStatus;
use crate::sync_link::{CATALOG_REFRESH, CHUNK_PRIORITY, Outgoing, SyncLink, SyncSetup};

/// A connection that lasted this long resets the reconnect backoff.
const STABLE_CONNECTION: Duration = Duration::from_secs(10);
/// How long one connection attempt may take (long enough for a handshake on a slow, busy unit:
/// overlapping attempts, not this, make the unit quick to return after a tunnel).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// The most attempts in flight at once while retrying fast.
const MAX_ATTEMPTS: usize = 6;
/// While retrying fast, a new attempt starts this often, overlapping the ones in flight: a
/// single attempt resends its first packet less and less often, so without overlap the first
/// packets after a tunnel could wait seconds for the next send.
const ATTEMPT_STAGGER: Duration = Duration::from_millis(500);
/// How long after losing central the unit retries within a second.
const FAST_RETRY_FOR: Duration = Duration::from_secs(300);
/// The retry interval after that.
const SLOW_RETRY: Duration = Duration::from_secs(15);

/// The uplink's inputs.
pub struct Uplink {
    /// `[central]` from the config.
    pub config: CentralConfig,
    /// Where `edge enroll` stored the unit's identity.
    pub identity_dir: PathBuf,
    /// The unit's status.
    pub status: Arc<UnitStatus>,
    /// Live hubs by camera id (only shared cameras are streamed to central).
    pub hubs: LiveHubs,
    /// What the sync link (retrieval of recordings by central) needs.
    pub sync: SyncSetup,
}

impl Uplink {
    /// Runs until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut sync = SyncLink::new(self.sync.clone());
        let mut backoff = Backoff::new(Duration::from_millis(250), Duration::from_secs(1));
        let mut down_since: Option<Instant> = None;
        loop {
            let started = Instant::now();
            let fast_until = match down_since {
                Some(since) => since + FAST_RETRY_FOR,
                None => started + FAST_RETRY_FOR,
            };
            let result = self.connect_and_serve(&mut sync, fast_until, &shutdown).await;
            sync.disconnected();
            if shutdown.is_cancelled() {
                self.status.set_central(false, None);
                return;
            }
            let error = match result {
                Ok(()) => "central closed the connection".to_owned(),
                Err(e) => e,
            };
            if started.elapsed() >= STABLE_CONNECTION {
                backoff.reset();
                down_since = None;
            }
            // Retry within a second for a while, so that video flows again soon after a
            // tunnel; after minutes without central, every 15 s.
            let down_for = down_since.get_or_insert_with(Instant::now).elapsed();
            let delay = if down_for < FAST_RETRY_FOR { backoff.next_delay() } else { SLOW_RETRY };
            tracing::warn!(central = %self.config.address, "central link down: {error}; retrying in {delay:.1?}");
            self.status.set_central(false, Some(error));
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                () = shutdown.cancelled() => return,
            }
        }
    }

    /// The live video central asks for, with a stop token that replaces the camera's running
    /// stream's (cancelled); `None` (logged) for a camera not shared or not running.
    fn start_live(
        &self,
        camera: &str,
        live: &mut HashMap<String, CancellationToken>,
        parent: &CancellationToken,
    ) -> Option<(LiveSource, CancellationToken)> {
        tracing::info!(camera, "central asks for live video");
        let Some(source) = LiveSource::of(&self.hubs, camera).filter(|_| self.shared(camera)) else {
            tracing::warn!("central asked for unknown camera {camera:?}");
            return None;
        };
        let stop = parent.child_token();
        if let Some(old) = live.insert(camera.to_owned(), stop.clone()) {
            old.cancel();
        }
        Some((source, stop))
    }

    /// Whether `camera` is shared with central (`share` in its `[[camera]]`).
    fn shared(&self, camera: &str) -> bool {
        self.sync.cameras.iter().any(|c| c == camera)
    }

    /// The enrolled identity; an error that says what to do when there is none, or when it
    /// belongs to another central than `[central] fingerprint` names.
    fn identity(&self) -> Result<UnitIdentity, String> {
        let unit = UnitIdentity::load(&self.identity_dir)
            .map_err(|e| format!("cannot read the unit's identity: {e}"))?
            .ok_or_else(|| {
                format!(
                    "not enrolled: run `edge enroll --config EDGE.toml --central {} --token TOKEN` with a token from \
                     `central unit add`",
                    self.config.address
                )
            })?;
        if let Some(want) = &self.config.fingerprint {
            let want = link::identity::parse_fingerprint(want).map_err(|e| e.to_string())?;
            let got = link::identity::fingerprint(&unit.ca);
            if got != want {
                return Err(format!(
                    "the unit is enrolled with central CA {got}, but [central] fingerprint is {want}; enroll again \
                     or fix the configuration"
                ));
            }
        }
        Ok(unit)
    }

    async fn connect_and_serve(
        &self,
        sync: &mut SyncLink,
        fast_until: Instant,
        shutdown: &CancellationToken,
    ) -> Result<(), String> {
        let addr = resolve(&self.config.address).await?;
        let identity = self.identity()?;
        // Live streams open on this endpoint's connection: while any is, its congestion window
        // keeps the bottleneck's queue short, so live frames do not wait behind retrieved video.
        let live_streams = LiveStreams::default();
        let endpoint =
            endpoint::client_sending_live(addr, &identity, Some(&live_streams)).map_err(|e| e.to_string())?;
        let conn = tokio::select! {
            c = self.connect(&endpoint, addr, fast_until) => c?,
            () = shutdown.cancelled() => return Ok(()),
        };
        self.status.uplink.opened(&conn);
        // When central closed the connection, say why it did (e.g. "unit revoked") rather than
        // what the first stream to notice saw ("connection lost").
        let result = self
            .serve(&conn, &live_streams, sync, shutdown)
            .await
            .map_err(|e| conn.close_reason().map_or(e, |r| r.to_string()));
        self.sync.central.set_connection(None);
        conn.close(0u32.into(), b"bye");
        self.status.uplink.closed();
        endpoint.wait_idle().await;
        result
    }

    /// Connects to central at `addr`. Until `fast_until`, attempts that get no answer are
    /// followed by overlapping ones every [`ATTEMPT_STAGGER`] (at most [`MAX_ATTEMPTS`] in
    /// flight, whose handshake resends interleave) until one succeeds; an attempt
    /// that fails with an answer (refused, bad certificate) ends it at once. After
    /// `fast_until`, one attempt.
    async fn connect(
        &self,
        endpoint: &quinn::Endpoint,
        addr: SocketAddr,
        fast_until: Instant,
    ) -> Result<quinn::Connection, String> {
        use futures::StreamExt as _;
        let start = || -> Result<_, String> {
            let connecting = endpoint
                .connect(addr, link::identity::SERVER_NAME)
                .map_err(|e| format!("cannot connect to {addr}: {e}"))?;
            Ok(tokio::time::timeout(CONNECT_TIMEOUT, connecting))
        };
        let mut attempts = futures::stream::FuturesUnordered::new();
        attempts.push(start()?);
        let mut stagger = tokio::time::interval_at((Instant::now() + ATTEMPT_STAGGER).into(), ATTEMPT_STAGGER);
        stagger.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let no_answer = format!("cannot connect to {addr}: no answer in {CONNECT_TIMEOUT:?}");
        loop {
            let fast = Instant::now() < fast_until;
            if !fast && attempts.is_empty() {
                return Err(no_answer);
            }
            tokio::select! {
                Some(result) = attempts.next() => match result {
                    Ok(Ok(conn)) => return Ok(conn),
                    Ok(Err(e)) => return Err(format!("cannot connect to {addr}: {e}")),
                    Err(_) => self.status.set_central(false, Some(no_answer.clone())),
                },
                _ = stagger.tick(), if fast && attempts.len() < MAX_ATTEMPTS => attempts.push(start()?),
            }
        }
    }

    async fn serve(
        &self,
        conn: &quinn::Connection,
        live_streams: &LiveStreams,
        sync: &mut SyncLink,
        shutdown: &CancellationToken,
    ) -> Result<(), String> {
        let (mut send, recv) = tokio::select! {
            s = conn.open_bi() => s.map_err(|e| e.to_string())?,
            () = shutdown.cancelled() => return Ok(()),
        };
        let hello = EdgeMessage::Hello(Hello {
            protocol_version: protocol::PROTOCOL_VERSION,
            unit_id: self.status.unit_id.clone(),
            cameras: self
                .status
                .cameras()
                .iter()
                .filter(|c| self.shared(&c.id))
                .map(|c| CameraInfo { id: c.id.clone(), name: c.name.clone() })
                .collect(),
        });
        messages::write(&mut send, &hello).await.map_err(|e| e.to_string())?;
        // Reads are not cancel-safe: a task of their own feeds a channel.
        let (msg_tx, mut msg_rx) = mpsc::channel(16);
        let reader = tokio::spawn(read_loop(recv, msg_tx));
        let _reader_guard = AbortOnDrop(reader);
        let welcome = tokio::select! {
            m = msg_rx.recv() => m,
            () = shutdown.cancelled() => return Ok(()),
        };
        let central_version = match welcome {
            Some(Ok(CentralMessage::Welcome { protocol_version })) => {
                tracing::info!(central = %self.config.address, protocol_version, "connected to central");
                protocol_version
            }
            Some(Ok(CentralMessage::Refused { reason })) => {
                return Err(format!("central refused this unit: {reason}"));
            }
            Some(Ok(other)) => return Err(format!("central sent {other:?} before welcome")),
            Some(Err(e)) => return Err(e),
            None => return Err("central closed the connection during the handshake".into()),
        };
        self.status.set_central(true, None);
        self.sync.central.set_connection(Some(conn.clone()));
        // The link type before any catalog, so that central's policy follows it from the start.
        let mut link = self.status.subscribe_link();
        if link.borrow_and_update().is_some() {
            let info = link_info(*link.borrow());
            write_control(&mut send, &info, shutdown).await?;
        }
        let mut changes = self.status.subscribe();
        for state in self.status.camera_states().into_iter().filter(|s| self.shared(&s.camera)) {
            write_control(&mut send, &EdgeMessage::CameraState(state), shutdown).await?;
        }
        let mut live: HashMap<String, CancellationToken> = HashMap::new();
        // Where central's requests to resend live datagrams go, by slot.
        let mut live_nacks: HashMap<u32, mpsc::Sender<LiveNack>> = HashMap::new();
        let live_stop = shutdown.child_token();
        let _live_guard = live_stop.clone().drop_guard();
        let mut events = self.status.events.subscribe();
        for event in self.status.events.since(0) {
            sync.event(&event);
        }
        sync.connected(central_version);
        let mut catalog_timer = tokio::time::interval(CATALOG_REFRESH);
        loop {
            for out in sync.drain() {
                match out {
                    Outgoing::Control(msg) => write_control(&mut send, &msg, shutdown).await?,
                    Outgoing::Chunk(msg) => {
                        tokio::spawn(send_chunk(conn.clone(), msg));
                    }
                }
            }
            let timeout = sync.timeout();
            tokio::select! {
                done = sync.completion() => {
                    if let Some(done) = done {
                        sync.complete(done);
                    }
                }
                _ = catalog_timer.tick() => sync.refresh_catalog(),
                event = events.recv() => match event {
                    Ok(event) => sync.event(&event),
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                        tracing::warn!("sync: {n} events missed for central");
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => {}
                },
                // Time passing: the next round's drain sends what became due.
                () = tokio::time::sleep(timeout) => {}
                msg = msg_rx.recv() => match msg {
                    Some(Ok(CentralMessage::Sync(m))) => sync.handle(m),
                    Some(Ok(CentralMessage::StartLive { camera })) => {
                        let Some((source, stop)) = self.start_live(&camera, &mut live, &live_stop) else { continue };
                        tokio::spawn(send_live(conn.clone(), source, live_streams.clone(), stop));
                    }
                    Some(Ok(CentralMessage::StartLiveDatagrams { camera, slot })) => {
                        let Some((source, stop)) = self.start_live(&camera, &mut live, &live_stop) else { continue };
                        let (nack_tx, nack_rx) = mpsc::channel(64);
                        live_nacks.retain(|_, tx| !tx.is_closed());
                        live_nacks.insert(slot, nack_tx);
                        let (conn, open) = (conn.clone(), live_streams.clone());
                        tokio::spawn(send_live_datagrams(conn, source, slot, open, stop, nack_rx));
                    }
                    Some(Ok(CentralMessage::LiveNack { slot, frame, fragments })) => {
                        if let Some(tx) = live_nacks.get(&slot) {
                            let _ = tx.try_send(LiveNack { frame, fragments });
                        }
                    }
                    Some(Ok(CentralMessage::StopLive { camera })) => {
                        if let Some(stop) = live.remove(&camera) {
                            stop.cancel();
                        }
                    }
                    Some(Ok(other)) => tracing::warn!("unexpected message from central: {other:?}"),
                    Some(Err(e)) => return Err(e),
                    None => return Err("central closed the control stream".into()),
                },
                change = changes.recv() => match change {
                    Ok(state) if !self.shared(&state.camera) => {}
                    Ok(state) => write_control(&mut send, &EdgeMessage::CameraState(state), shutdown).await?,
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                        for state in self.status.camera_states().into_iter().filter(|s| self.shared(&s.camera)) {
                            write_control(&mut send, &EdgeMessage::CameraState(state), shutdown).await?;
                        }
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return Ok(()),
                },
                Ok(()) = link.changed() => {
                    let info = link_info(*link.borrow_and_update());
                    write_control(&mut send, &info, shutdown).await?;
                }
                e = conn.closed() => return Err(e.to_string()),
                () = shutdown.cancelled() => return Ok(()),
            }
        }
    }
}

/// How long central may leave a control message untaken before the unit says so.
const SLOW_CONTROL_WRITE: Duration = Duration::from_secs(5);

/// Writes `msg` on the control stream. While central does not take it (its flow control holds
/// the stream), the session's loop waits here and reads nothing from central (a live request
/// waits too): after [`SLOW_CONTROL_WRITE`] that is logged. Gives up at `shutdown` (the
/// connection closes then, so a message cut short does not matter).
async fn write_control(
    send: &mut quinn::SendStream,
    msg: &EdgeMessage,
    shutdown: &CancellationToken,
) -> Result<(), String> {
    let started = Instant::now();
    let write = messages::write(send, msg);
    tokio::pin!(write);
    loop {
        tokio::select! {
            r = &mut write => {
                if started.elapsed() >= SLOW_CONTROL_WRITE {
                    tracing::info!("central took a control message after {:.1?}", started.elapsed());
                }
                return r.map_err(|e| e.to_string());
            }
            () = tokio::time::sleep(SLOW_CONTROL_WRITE) => {
                tracing::warn!("central has not taken a control message for {:.0?}", started.elapsed());
            }
            () = shutdown.cancelled() => return Err("the unit is shutting down".into()),
        }
    }
}

/// The [`EdgeMessage::LinkInfo`] for the unit's link (unknown and unmetered when not known).
fn link_info(link: Option<crate::link_type::UnitLink>) -> EdgeMessage {
    let (kind, metered) = link.map_or((LinkKind::Unknown, false), |l| (l.kind, l.metered));
    EdgeMessage::LinkInfo { kind, metered }
}

async fn read_loop(mut recv: quinn::RecvStream, tx: mpsc::Sender<Result<CentralMessage, String>>) {
    loop {
        let msg = match messages::read_tolerant::<CentralMessage>(&mut recv).await {
            Ok(Some(messages::Tolerant::Message(m))) => Ok(m),
            Ok(Some(messages::Tolerant::Unknown(why))) => {
                // A newer central's message: skipped, the session goes on.
                tracing::debug!("skipped a message from central this unit does not know: {why}");
                continue;
            }
            Ok(None) => return,
            Err(e) => Err(e.to_string()),
        };
        let failed = msg.is_err();
        if tx.send(msg).await.is_err() || failed {
            return;
        }
    }
}

/// Sends one chunk of retrieved video on a stream of its own, below live video's priority.
async fn send_chunk(conn: quinn::Connection, msg: EdgeMessage) {
    let result = async {
        let (mut send, _recv) = conn.open_bi().await.map_err(|e| e.to_string())?;
        let _ = send.set_priority(CHUNK_PRIORITY);
        messages::write(&mut send, &msg).await.map_err(|e| e.to_string())?;
        send.finish().map_err(|e| e.to_string())?;
        send.stopped().await.map_err(|e| e.to_string())?;
        Ok::<_, String>(())
    }
    .await;
    if let Err(e) = result {
        tracing::debug!("sync: chunk not delivered: {e}");
    }
}

/// Sends one camera's live frames on a stream of their own until `stop` or the link fails,
/// counted in `open` meanwhile.
async fn send_live(conn: quinn::Connection, source: LiveSource, open: LiveStreams, stop: CancellationToken) {
    let camera = source.camera.clone();
    let _open = open.open();
    let result: Result<(), LinkError> = async {
        // From the last key frame the unit recorded, when it can (`live_start.rs`).
        let mut sub = source.subscribe().await;
        let mut stream = conn.open_uni().await.map_err(|e| LinkError::Endpoint(e.to_string()))?;
        messages::write(&mut stream, &LiveHeader { camera: camera.clone() }).await?;
        loop {
            let msg = tokio::select! {
                m = sub.next() => m,
                () = stop.cancelled() => None,
            };
            let Some(msg) = msg else {
                let _ = stream.finish();
                return Ok(());
            };
            messages::write::<LiveMessage>(&mut stream, &msg).await?;
        }
    }
    .await;
    if let Err(e) = result {
        tracing::debug!(camera = %camera, "live stream ended: {e}");
    }
}

async fn resolve(address: &str) -> Result<SocketAddr, String> {
    tokio::net::lookup_host(address)
        .await
        .map_err(|e| format!("cannot resolve central address {address:?}: {e}"))?
        .next()
        .ok_or_else(|| format!("central address {address:?} resolves to nothing"))
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use link::identity::Identity;
    use link::pki::{CertificateAuthority, unit_key_and_request};
    use protocol::interconnect::LinkTest;

    use super::*;

    /// A control stream central stops reading holds the session's writes (its flow control
    /// fills); the shutdown still ends them at once, where a plain write would wait for ever.
    #[tokio::test]
    async fn a_control_message_central_does_not_take_gives_way_to_the_shutdown() {
        let dir = tempfile::tempdir().unwrap();
        let (ca, _) = CertificateAuthority::load_or_create(dir.path()).unwrap();
        let server =
            endpoint::server("127.0.0.1:0".parse().unwrap(), &ca.server_identity(dir.path()).unwrap()).unwrap();
        let addr = server.local_addr().unwrap();
        let (key, csr) = unit_key_and_request("bus-1").unwrap();
        let unit = UnitIdentity {
            identity: Identity { cert: ca.issue_unit(&csr, "bus-1").unwrap(), key },
            ca: ca.cert().clone(),
        };
        let (done_tx, done) = tokio::sync::oneshot::channel::<()>();
        // Central accepts the control stream and never reads it.
        let central = tokio::spawn(async move {
            let conn = server.accept().await.unwrap().await.unwrap();
            let _stream = conn.accept_bi().await.unwrap();
            let _ = done.await;
        });
        let client = endpoint::client(addr, &unit).unwrap();
        let conn = client.connect(addr, link::identity::SERVER_NAME).unwrap().await.unwrap();
        let (mut send, _recv) = conn.open_bi().await.unwrap();
        let shutdown = CancellationToken::new();
        // 2 MiB: more than a stream's receive window (quinn's default, 1.25 MB).
        let big = EdgeMessage::LinkTest(LinkTest { payload: vec![0; 256 * 1024] });
        let stop = shutdown.clone();
        let mut writes = tokio::spawn(async move {
            for _ in 0..8 {
                write_control(&mut send, &big, &stop).await?;
            }
            Ok::<(), String>(())
        });
        assert!(
            tokio::time::timeout(Duration::from_secs(1), &mut writes).await.is_err(),
            "central read nothing, yet 2 MiB went through"
        );
        shutdown.cancel();
        let ended = tokio::time::timeout(Duration::from_secs(5), writes).await.expect("the shutdown ends the write");
        assert_eq!(ended.unwrap(), Err("the unit is shutting down".to_owned()));
        let _ = done_tx.send(());
        central.await.unwrap();
    }
}
