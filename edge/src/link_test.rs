//! `POST /api/link-test`: the technician's link test to central, over the unit's own QUIC
//! connection: latency (QUIC's smoothed round-trip time, and round trips of empty test
//! messages through central) and upload throughput (a test message of filler that central
//! confirms once it has read it all, sized to take about two seconds).

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use link::messages;
use protocol::interconnect::{CentralMessage, EdgeMessage, LinkTest};
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

/// Sends one test message of `payload_bytes` on a stream of its own and waits for central's
/// confirmation; the time it took.
async fn exchange(conn: &quinn::Connection, payload_bytes: usize) -> Result<Duration, LinkTestError> {
    let failed = |e: &dyn std::fmt::Display| LinkTestError::Failed(e.to_string());
    let started = Instant::now();
    let work = async {
        let (mut send, mut recv) = conn.open_bi().await.map_err(|e| failed(&e))?;
        let msg = EdgeMessage::LinkTest(LinkTest { payload: vec![0; payload_bytes] });
        messages::write(&mut send, &msg).await.map_err(|e| failed(&e))?;
        send.finish().map_err(|e| failed(&e))?;
        match messages::read::<CentralMessage>(&mut recv).await.map_err(|e| failed(&e))? {
            Some(CentralMessage::LinkTestReceived { bytes }) if bytes == payload_bytes as u64 => Ok(()),
            Some(other) => Err(LinkTestError::Failed(format!("central answered {other:?}"))),
            None => Err(LinkTestError::Failed("central closed the test stream without an answer".into())),
        }
    };
    tokio::time::timeout(EXCHANGE_TIMEOUT, work)
        .await
        .map_err(|_| LinkTestError::Failed(format!("no answer within {EXCHANGE_TIMEOUT:?}")))??;
    Ok(started.elapsed())
}

/// Runs the test over `conn`.
pub async fn measure(conn: &quinn::Connection) -> Result<LinkTestJson, LinkTestError> {
    let mut ping = Duration::MAX;
    for _ in 0..PINGS {
        ping = ping.min(exchange(conn, 0).await?);
    }
    // A first probe sizes the measured one (and opens the congestion window).
    let first = exchange(conn, FIRST_PROBE_BYTES).await?;
    let rate = FIRST_PROBE_BYTES as f64 / first.saturating_sub(ping).max(Duration::from_millis(1)).as_secs_f64();
    let size = ((rate * PROBE_TARGET.as_secs_f64()) as usize).clamp(FIRST_PROBE_BYTES, MAX_PROBE_BYTES);
    let took = exchange(conn, size).await?;
    // The last byte's trip to central and the answer's trip back are latency, not throughput.
    let sending = took.saturating_sub(ping).max(Duration::from_millis(1));
    let stats = conn.stats();
    Ok(LinkTestJson {
        quic_rtt_ms: ms(conn.rtt()),
        ping_ms: ms(ping),
        upload_bytes: size as u64,
        upload_seconds: (took.as_secs_f64() * 1000.0).round() / 1000.0,
        upload_bps: (size as f64 * 8.0 / sending.as_secs_f64()) as u64,
        lost_packets: stats.path.lost_packets,
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
