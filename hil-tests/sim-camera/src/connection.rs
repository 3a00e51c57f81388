//! One client connection: RTSP request handling and real-time media pacing.
//!
//! Each connection runs in its own task, so a slow client only ever blocks
//! itself. The task reads requests (and the client's interleaved RTCP, which
//! is ignored) while a per-session interval sends one access unit per tick.

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, BytesMut};
use rtsp_types::{Method, Request, Response, ResponseBuilder, StatusCode, Url, Version, headers};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::watch;
use tokio::time::{Instant, Interval, MissedTickBehavior};
use tracing::{debug, info, trace, warn};

use crate::clip::Clip;
use crate::rtsp::{Framer, Incoming, interleaved_channel, is_cseq, session_id};
use crate::sdp::{self, TRACK_CONTROL};
use crate::server::Shared;
use crate::stats::SessionPace;
use crate::streamer::ClipStreamer;

/// A client that cannot take a write for this long is disconnected.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Methods listed in the `Public` header of OPTIONS responses.
const PUBLIC_METHODS: &str = "OPTIONS, DESCRIBE, SETUP, PLAY, PAUSE, TEARDOWN, GET_PARAMETER";
/// Value of the `Server` header.
const SERVER: &str = concat!("convoy-sim-camera/", env!("CARGO_PKG_VERSION"));

/// An RTSP session; at most one per connection.
struct Session {
    id: String,
    mount: String,
    track_url: String,
    rtp_channel: u8,
    streamer: ClipStreamer,
    /// Ticks once per frame while playing; `None` while not playing.
    ticker: Option<Interval>,
    /// Frames due and written, for the server's totals.
    pace: SessionPace,
    /// RTP packets made so far (sent or, with `--drop-every`, left out).
    packets: u64,
}

/// What to do after a batch of input has been handled.
enum Flow {
    Continue,
    Close,
}

struct Connection {
    shared: Arc<Shared>,
    writer: OwnedWriteHalf,
    local_ip: IpAddr,
    peer: SocketAddr,
    framer: Framer,
    session: Option<Session>,
    /// Becomes true when the server shuts down.
    shutdown: watch::Receiver<bool>,
}

/// Serves one client until it disconnects, times out, or the server shuts down.
pub(crate) async fn run(stream: TcpStream, peer: SocketAddr, shared: Arc<Shared>, shutdown: watch::Receiver<bool>) {
    if let Err(e) = stream.set_nodelay(true) {
        debug!(%peer, "set_nodelay failed: {e}");
    }
    let local_ip = stream.local_addr().map(|a| a.ip()).unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    let (mut reader, writer) = stream.into_split();
    let timeout = shared.config.session_timeout;
    let mut conn = Connection { shared, writer, local_ip, peer, framer: Framer::default(), session: None, shutdown };
    let mut buf = BytesMut::with_capacity(4096);
    let idle = tokio::time::sleep(timeout);
    tokio::pin!(idle);
    debug!(%peer, "client connected");

    let end: io::Result<&'static str> = loop {
        tokio::select! {
            () = stopped(&mut conn.shutdown) => break Ok("server shutting down"),
            () = &mut idle => break Ok("session timed out (no request or RTCP received)"),
            read = reader.read_buf(&mut buf) => match read {
                Ok(0) => break Ok("client closed the connection"),
                Ok(_) => {
                    idle.as_mut().reset(Instant::now() + timeout);
                    match conn.process(&mut buf).await {
                        Ok(Flow::Continue) => {}
                        Ok(Flow::Close) => break Ok("unframeable input"),
                        Err(e) => break Err(e),
                    }
                }
                Err(e) => break Err(e),
            },
            () = next_tick(&mut conn.session) => {
                if let Err(e) = conn.send_frame().await {
                    break Err(e);
                }
            }
        }
    };

    if let Some(s) = conn.session.take() {
        conn.end_session(s);
    }
    match end {
        Ok(reason) => info!(%peer, "connection ended: {reason}"),
        Err(e) if matches!(e.kind(), io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe) => {
            info!(%peer, "connection ended: client disconnected ({e})");
        }
        Err(e) => warn!(%peer, "connection ended: {e}"),
    }
    // Best effort: tell the client we are done. Errors are irrelevant now.
    let _ = tokio::time::timeout(Duration::from_secs(1), conn.writer.shutdown()).await;
}

/// Completes once the server shuts down (or its shutdown sender is gone).
async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    // An error means the sender was dropped, which also means stop.
    let _ = shutdown.wait_for(|&stop| stop).await;
}

/// Completes at the next frame time of a playing session; never while not playing.
async fn next_tick(session: &mut Option<Session>) {
    match session.as_mut().and_then(|s| s.ticker.as_mut()) {
        Some(ticker) => {
            ticker.tick().await;
        }
        None => std::future::pending().await,
    }
}

/// A response plus whether media should start flowing after it is sent.
struct Reply {
    response: Response<Vec<u8>>,
    start_playing: bool,
}

impl From<Response<Vec<u8>>> for Reply {
    fn from(response: Response<Vec<u8>>) -> Self {
        Reply { response, start_playing: false }
    }
}

fn builder(status: StatusCode, cseq: Option<&str>) -> ResponseBuilder {
    let b = Response::builder(Version::V1_0, status).header(headers::SERVER, SERVER);
    match cseq {
        Some(c) => b.header(headers::CSEQ, c),
        None => b,
    }
}

fn status(status: StatusCode, cseq: Option<&str>) -> Reply {
    builder(status, cseq).build(Vec::new()).into()
}

impl Connection {
    /// Handles every complete message in `buf`.
    async fn process(&mut self, buf: &mut BytesMut) -> io::Result<Flow> {
        loop {
            match self.framer.next(buf) {
                Ok(None) => return Ok(Flow::Continue),
                Ok(Some(Incoming::Request(request))) => {
                    let reply = self.handle(&request);
                    debug!(
                        peer = %self.peer,
                        method = ?request.method(),
                        uri = request.request_uri().map(Url::as_str).unwrap_or("*"),
                        status = u16::from(reply.response.status()),
                        "request"
                    );
                    self.write_response(&reply.response).await?;
                    if reply.start_playing {
                        self.start_playing();
                    }
                }
                Ok(Some(Incoming::Interleaved { channel, len })) => {
                    trace!(peer = %self.peer, channel, len, "ignoring interleaved data from client");
                }
                Ok(Some(Incoming::Response)) => {
                    debug!(peer = %self.peer, "ignoring a response sent by the client");
                }
                Ok(Some(Incoming::Malformed { cseq })) => {
                    warn!(peer = %self.peer, "malformed request");
                    let reply = status(StatusCode::BadRequest, cseq.as_deref());
                    self.write_response(&reply.response).await?;
                }
                Err(e) => {
                    warn!(peer = %self.peer, "closing connection: {e}");
                    let reply = status(StatusCode::BadRequest, e.cseq());
                    self.write_response(&reply.response).await?;
                    return Ok(Flow::Close);
                }
            }
        }
    }

    fn handle(&mut self, req: &Request<Vec<u8>>) -> Reply {
        let cseq = req.header(&headers::CSEQ).map(|v| v.as_str().trim()).filter(|v| is_cseq(v));
        let Some(cseq) = cseq else {
            return status(StatusCode::BadRequest, None);
        };
        if req.version() != Version::V1_0 {
            return status(StatusCode::RTSPVersionNotSupported, Some(cseq));
        }
        let session_header = req.header(&headers::SESSION).map(|v| session_id(v.as_str()));
        if let Some(id) = session_header
            && self.session.as_ref().is_none_or(|s| s.id != id)
        {
            return status(StatusCode::SessionNotFound, Some(cseq));
        }
        let has_session = session_header.is_some();
        match req.method() {
            Method::Options => {
                builder(StatusCode::Ok, Some(cseq)).header(headers::PUBLIC, PUBLIC_METHODS).build(Vec::new()).into()
            }
            Method::Describe => self.describe(req, cseq),
            Method::Setup => self.setup(req, cseq, has_session),
            Method::Play if has_session => self.play(cseq),
            Method::Pause if has_session => self.pause(cseq),
            Method::Teardown if has_session => {
                if let Some(s) = self.session.take() {
                    self.end_session(s);
                }
                status(StatusCode::Ok, Some(cseq))
            }
            Method::Play | Method::Pause | Method::Teardown => status(StatusCode::SessionNotFound, Some(cseq)),
            Method::GetParameter => self.ok_with_session(cseq, has_session),
            Method::SetParameter if req.body().is_empty() => self.ok_with_session(cseq, has_session),
            Method::SetParameter => status(StatusCode::ParameterNotUnderstood, Some(cseq)),
            _ => builder(StatusCode::NotImplemented, Some(cseq))
                .header(headers::PUBLIC, PUBLIC_METHODS)
                .build(Vec::new())
                .into(),
        }
    }

    /// Looks up the mount a URL names: `/mount` or `/mount/trackID=0`.
    fn resolve(&self, url: &Url) -> Option<(String, Arc<Clip>)> {
        let mounts = &self.shared.config.mounts;
        let path = url.path().trim_end_matches('/');
        if let Some(clip) = mounts.get(path) {
            return Some((path.to_owned(), clip.clone()));
        }
        let (parent, last) = path.rsplit_once('/')?;
        if last != TRACK_CONTROL {
            return None;
        }
        mounts.get(parent).map(|clip| (parent.to_owned(), clip.clone()))
    }

    fn session_value(&self, id: &str) -> String {
        format!("{id};timeout={}", self.shared.config.session_timeout_secs())
    }

    fn ok_with_session(&self, cseq: &str, has_session: bool) -> Reply {
        let b = builder(StatusCode::Ok, Some(cseq));
        match (&self.session, has_session) {
            (Some(s), true) => b.header(headers::SESSION, self.session_value(&s.id)),
            _ => b,
        }
        .build(Vec::new())
        .into()
    }

    fn describe(&self, req: &Request<Vec<u8>>, cseq: &str) -> Reply {
        let Some(url) = req.request_uri() else {
            return status(StatusCode::BadRequest, Some(cseq));
        };
        let Some((mount, clip)) = self.resolve(url).filter(|(m, _)| url.path().trim_end_matches('/') == m) else {
            return status(StatusCode::NotFound, Some(cseq));
        };
        let sdp =
            sdp::session_description(&clip, self.shared.config.frame_rate, self.local_ip, self.shared.sdp_session_id);
        builder(StatusCode::Ok, Some(cseq))
            .header(headers::CONTENT_BASE, content_base(url, &mount))
            .header(headers::CONTENT_TYPE, "application/sdp")
            .build(sdp.into_bytes())
            .into()
    }

    fn setup(&mut self, req: &Request<Vec<u8>>, cseq: &str, has_session: bool) -> Reply {
        let Some(url) = req.request_uri() else {
            return status(StatusCode::BadRequest, Some(cseq));
        };
        let Some((mount, clip)) = self.resolve(url) else {
            return status(StatusCode::NotFound, Some(cseq));
        };
        let Some(transport) = req.header(&headers::TRANSPORT) else {
            return status(StatusCode::BadRequest, Some(cseq));
        };
        let Some(channel) = interleaved_channel(transport.as_str()) else {
            debug!(peer = %self.peer, transport = transport.as_str(), "unsupported transport");
            return status(StatusCode::UnsupportedTransport, Some(cseq));
        };
        match (&mut self.session, has_session) {
            (Some(s), true) => {
                if s.mount != mount {
                    return status(StatusCode::AggregateOperationNotAllowed, Some(cseq));
                }
                s.rtp_channel = channel;
            }
            (Some(_), false) => {
                // One session per connection keeps things simple.
                return status(StatusCode::MethodNotValidInThisState, Some(cseq));
            }
            (None, _) => {
                let id = format!("{:016X}", rand::random::<u64>());
                let track_url = format!("{}{TRACK_CONTROL}", content_base(url, &mount));
                info!(peer = %self.peer, session = %id, %mount, channel, "session created");
                self.session = Some(Session {
                    id,
                    mount,
                    track_url,
                    rtp_channel: channel,
                    streamer: ClipStreamer::with_random_ids(clip, self.shared.config.frame_rate),
                    ticker: None,
                    pace: SessionPace::new(self.shared.frame_period),
                    packets: 0,
                });
            }
        }
        let Some(s) = self.session.as_ref() else {
            return status(StatusCode::InternalServerError, Some(cseq));
        };
        builder(StatusCode::Ok, Some(cseq))
            .header(
                headers::TRANSPORT,
                format!(
                    "RTP/AVP/TCP;unicast;interleaved={}-{};ssrc={:08X};mode=\"PLAY\"",
                    s.rtp_channel,
                    s.rtp_channel + 1,
                    s.streamer.ssrc()
                ),
            )
            .header(headers::SESSION, self.session_value(&s.id))
            .build(Vec::new())
            .into()
    }

    fn play(&mut self, cseq: &str) -> Reply {
        let Some(s) = self.session.as_ref() else {
            return status(StatusCode::SessionNotFound, Some(cseq));
        };
        let rtp_info =
            format!("url={};seq={};rtptime={}", s.track_url, s.streamer.next_seq(), s.streamer.next_timestamp());
        let response = builder(StatusCode::Ok, Some(cseq))
            .header(headers::SESSION, self.session_value(&s.id))
            .header(headers::RANGE, "npt=0.000-")
            .header(headers::RTP_INFO, rtp_info)
            .build(Vec::new());
        Reply { response, start_playing: s.ticker.is_none() }
    }

    fn pause(&mut self, cseq: &str) -> Reply {
        if let Some(s) = self.session.as_mut() {
            s.ticker = None;
            s.pace.pause();
        }
        self.ok_with_session(cseq, true)
    }

    fn start_playing(&mut self) {
        let period = self.shared.frame_period;
        if let Some(s) = self.session.as_mut() {
            // The first tick completes at once, so the first frame follows the PLAY response;
            // staggered, it comes at a random point of the first frame time instead.
            let first = if self.shared.config.stagger { period.mul_f64(rand::random::<f64>()) } else { Duration::ZERO };
            let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + first, period);
            // A client that fell behind gets the next frame at the next slot,
            // never a burst faster than real time.
            ticker.set_missed_tick_behavior(MissedTickBehavior::Skip);
            s.ticker = Some(ticker);
            s.pace.play();
            info!(peer = %self.peer, session = %s.id, "playing");
        }
    }

    async fn send_frame(&mut self) -> io::Result<()> {
        let Some(s) = self.session.as_mut() else {
            return Ok(());
        };
        let frame = s.streamer.next_frame();
        let total: usize = frame.packets.iter().map(|p| p.len() + 4).sum();
        let mut out = BytesMut::with_capacity(total);
        let drop_every = self.shared.config.drop_every.map(u64::from);
        for packet in &frame.packets {
            s.packets += 1;
            if drop_every.is_some_and(|n| s.packets % n == 0) {
                continue;
            }
            let len = u16::try_from(packet.len())
                .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "RTP packet too big"))?;
            out.put_u8(b'$');
            out.put_u8(s.rtp_channel);
            out.put_u16(len);
            out.put_slice(packet);
        }
        trace!(peer = %self.peer, index = frame.clip_index, ts = frame.timestamp, packets = frame.packets.len(), "frame");
        let started = Instant::now();
        self.write_all(&out).await?;
        if let Some(s) = self.session.as_mut() {
            s.pace.written(started.elapsed());
        }
        Ok(())
    }

    /// Logs an ending session and adds its counts to the server's totals.
    fn end_session(&self, s: Session) {
        let (written, skipped, slow) = (s.pace.frames_written(), s.pace.skipped(), s.pace.slow_writes());
        let dropped = self.shared.config.drop_every.map_or(0, |n| s.packets / u64::from(n));
        info!(peer = %self.peer, session = %s.id, frames_written = written, frames_skipped = skipped, slow_writes = slow, packets_dropped = dropped, "session ended");
        self.shared.served.add(&s.pace);
    }

    async fn write_response(&mut self, response: &Response<Vec<u8>>) -> io::Result<()> {
        let mut out = Vec::with_capacity(256 + response.body().len());
        response.write(&mut out).map_err(|e| io::Error::other(e.to_string()))?;
        self.write_all(&out).await
    }

    /// Writes everything, unless the client stalls too long or the server shuts down.
    async fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        let write = tokio::time::timeout(WRITE_TIMEOUT, self.writer.write_all(bytes));
        tokio::select! {
            result = write => match result {
                Ok(result) => result,
                Err(_) => Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "client stopped reading (write timed out)",
                )),
            },
            () = stopped(&mut self.shutdown) => Err(io::Error::new(
                io::ErrorKind::Interrupted,
                "server shutting down during a write",
            )),
        }
    }
}

/// The `Content-Base` of a mount: the request URL with path `mount/`, no credentials or query.
fn content_base(url: &Url, mount: &str) -> String {
    let mut base = url.clone();
    base.set_path(&format!("{mount}/"));
    base.set_query(None);
    base.set_fragment(None);
    // These fail only for URLs that cannot have credentials, which then have none.
    let _ = base.set_username("");
    let _ = base.set_password(None);
    base.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_base_is_mount_with_trailing_slash() {
        let url = Url::parse("rtsp://user:pw@127.0.0.1:8554/front/trackID=0?x=1").unwrap();
        assert_eq!(content_base(&url, "/front"), "rtsp://127.0.0.1:8554/front/");
    }
}
