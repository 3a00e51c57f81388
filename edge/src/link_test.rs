//! `POST /api/link-test`: the technician's link test to central, over the unit's own QUIC
//! connection: latency (QUIC's smoothed round-trip time, and round trips of empty test
//! messages through central), upload throughput (a test message of filler that central
//! confirms once it has read it all, sized to take about two seconds) and download throughput
//! (filler central sends back when asked, sized the same way). An older central that does not
//! know the download half leaves the download fields null and says why in `download_error`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use link::messages;
use protocol::interconnect::{CentralMessage, EdgeMessage, LINK_TEST_MAX_DOWNLOAD, LinkTest};
use serde::Serialize;

use crate::central_link::CentralLink;

/// Round trips measured (the quickest counts).
const PINGS: usize = 3;
/// The first throughput probe; the measured probe is sized from it.
const FIRST_PROBE_BYTES: usize = 128 * 1024;
/// What the measured probe aims to take.
const PROBE_TARGET: Duration = Duration::from_secs(2);
/// The largest probe (a cellular link is metered).
const MAX_PROBE_BYTES: usize = 8 * 1024 * 1024;
/// The longest one exchange may take before the test gives up.
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(20);

/// The answer of `POST /api/link-test` (a stable contract; fields are only ever added).
#[derive(Debug, Serialize)]
pub struct LinkTestJson {
    /// QUIC's smoothed round-trip time to central, ms.
    pub quic_rtt_ms: f64,
    /// The quickest round trip of an empty test message through central, ms.
    pub ping_ms: f64,
    /// Bytes of the measured upload.
    pub upload_bytes: u64,
    /// How long central took to confirm them, s.
    pub upload_seconds: f64,
    /// Upload throughput, bits per second.
    pub upload_bps: u64,
    /// Packets QUIC counted as lost on this connection so far.
    pub lost_packets: u64,
    /// Bytes of the measured download (null when the download could not be measured).
    pub download_bytes: Option<u64>,
    /// How long they took to arrive after the request, s.
    pub download_seconds: Option<f64>,
    /// Download throughput, bits per second.
    pub download_bps: Option<u64>,
    /// Why the download was not measured (e.g. an older central), else null.
    pub download_error: Option<String>,
}

/// Why the test could not run.
#[derive(Debug, thiserror::Error)]
pub enum LinkTestError {
    /// No connection to central now.
    #[error("central is not connected; see the Central panel for why, and test again once it is connected")]
    NotConnected,
    /// An exchange failed or took too long.
    #[error("the link test failed: {0} (an older central does not know the test; update it)")]
    Failed(String),
}

/// The link test's routes.
pub fn routes(link: Arc<CentralLink>) -> Router {
    Router::new().route("/api/link-test", post(link_test)).with_state(link)
}

/// Sends `msg` on a stream of its own and reads central's one answer there, which `check`
/// judges; the time from the request to the whole answer. `what` names the answer and
/// `closed` says what it means when central closes the stream without one.
async fn exchange(
    conn: &quinn::Connection,
    msg: EdgeMessage,
    what: &str,
    closed: &str,
    check: impl FnOnce(CentralMessage) -> Result<(), LinkTestError>,
) -> Result<Duration, LinkTestError> {
    let failed = |e: &dyn std::fmt::Display| LinkTestError::Failed(e.to_string());
    let started = Instant::now();
    let work = async {
        let (mut send, mut recv) = conn.open_bi().await.map_err(|e| failed(&e))?;
        messages::write(&mut send, &msg).await.map_err(|e| failed(&e))?;
        send.finish().map_err(|e| failed(&e))?;
        match messages::read::<CentralMessage>(&mut recv).await.map_err(|e| failed(&e))? {
            Some(answer) => check(answer),
            None => Err(LinkTestError::Failed(closed.to_owned())),
        }
    };
    tokio::time::timeout(EXCHANGE_TIMEOUT, work)
        .await
        .map_err(|_| LinkTestError::Failed(format!("no {what} within {EXCHANGE_TIMEOUT:?}")))??;
    Ok(started.elapsed())
}

/// Sends one test message of `payload_bytes` and waits for central's confirmation; the time
/// it took.
async fn exchange_upload(conn: &quinn::Connection, payload_bytes: usize) -> Result<Duration, LinkTestError> {
    let msg = EdgeMessage::LinkTest(LinkTest { payload: vec![0; payload_bytes] });
    exchange(conn, msg, "answer", "central closed the test stream without an answer", |answer| match answer {
        CentralMessage::LinkTestReceived { bytes } if bytes == payload_bytes as u64 => Ok(()),
        other => Err(LinkTestError::Failed(format!("central answered {other:?}"))),
    })
    .await
}

/// Asks central for `bytes` of filler and reads them all; the time it took from the request.
async fn exchange_download(conn: &quinn::Connection, bytes: usize) -> Result<Duration, LinkTestError> {
    let msg = EdgeMessage::LinkTestDownload { bytes: bytes as u64 };
    let closed = "central closed the download stream without data (an older central does not know the download \
                  test; update it)";
    exchange(conn, msg, "download", closed, |answer| match answer {
        CentralMessage::LinkTestData(t) if t.payload.len() == bytes => Ok(()),
        CentralMessage::LinkTestData(t) => {
            Err(LinkTestError::Failed(format!("central sent {} bytes of the {bytes} asked", t.payload.len())))
        }
        other => Err(LinkTestError::Failed(format!("central answered {other:?}"))),
    })
    .await
}

/// The measured download: bytes, seconds from the request, bits per second.
async fn measure_download(conn: &quinn::Connection, ping: Duration) -> Result<(u64, f64, u64), LinkTestError> {
    let first = exchange_download(conn, FIRST_PROBE_BYTES).await?;
    let size = probe_size(FIRST_PROBE_BYTES, first, ping).min(LINK_TEST_MAX_DOWNLOAD as usize);
    let took = exchange_download(conn, size).await?;
    // The request's trip to central and the first byte's trip back are latency, not throughput.
    let receiving = took.saturating_sub(ping).max(Duration::from_millis(1));
    Ok((size as u64, round_ms(took), (size as f64 * 8.0 / receiving.as_secs_f64()) as u64))
}

/// The size of the measured probe: what the first probe's rate carries in [`PROBE_TARGET`].
fn probe_size(first_bytes: usize, first: Duration, ping: Duration) -> usize {
    let rate = first_bytes as f64 / first.saturating_sub(ping).max(Duration::from_millis(1)).as_secs_f64();
    ((rate * PROBE_TARGET.as_secs_f64()) as usize).clamp(FIRST_PROBE_BYTES, MAX_PROBE_BYTES)
}

fn round_ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1000.0).round() / 1000.0
}

/// Runs the test over `conn`.
pub async fn measure(conn: &quinn::Connection) -> Result<LinkTestJson, LinkTestError> {
    let mut ping = Duration::MAX;
    for _ in 0..PINGS {
        ping = ping.min(exchange_upload(conn, 0).await?);
    }
    // A first probe sizes the measured one (and opens the congestion window).
    let first = exchange_upload(conn, FIRST_PROBE_BYTES).await?;
    let size = probe_size(FIRST_PROBE_BYTES, first, ping);
    let took = exchange_upload(conn, size).await?;
    // The last byte's trip to central and the answer's trip back are latency, not throughput.
    let sending = took.saturating_sub(ping).max(Duration::from_millis(1));
    let download = measure_download(conn, ping).await;
    let stats = conn.stats();
    let (download_bytes, download_seconds, download_bps, download_error) = match download {
        Ok((bytes, seconds, bps)) => (Some(bytes), Some(seconds), Some(bps), None),
        Err(e) => (None, None, None, Some(e.to_string())),
    };
    Ok(LinkTestJson {
        quic_rtt_ms: ms(conn.rtt()),
        ping_ms: ms(ping),
        upload_bytes: size as u64,
        upload_seconds: round_ms(took),
        upload_bps: (size as f64 * 8.0 / sending.as_secs_f64()) as u64,
        lost_packets: stats.path.lost_packets,
        download_bytes,
        download_seconds,
        download_bps,
        download_error,
    })
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 10_000.0).round() / 10.0
}

async fn link_test(State(link): State<Arc<CentralLink>>) -> Response {
    let _one_at_a_time = link.testing.lock().await;
    let result = match link.connection() {
        None => Err(LinkTestError::NotConnected),
        Some(conn) => measure(&conn).await,
    };
    match result {
        Ok(json) => {
            tracing::info!(
                rtt_ms = json.quic_rtt_ms,
                ping_ms = json.ping_ms,
                upload_bps = json.upload_bps,
                download_bps = json.download_bps,
                "link test to central"
            );
            axum::Json(json).into_response()
        }
        Err(e) => {
            let code = match e {
                LinkTestError::NotConnected => StatusCode::CONFLICT,
                LinkTestError::Failed(_) => StatusCode::BAD_GATEWAY,
            };
            (code, axum::Json(serde_json::json!({ "error": e.to_string() }))).into_response()
        }
    }
}
