//! `GET /metrics`: central's figures in Prometheus' text format, for loopback peers only and
//! without login (a Prometheus on central's own machine scrapes it; nothing leaves it
//! otherwise). Everything is read when scraped from counters central keeps anyway; the one
//! counter added on a request's path is an atomic per route class.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use link::prometheus::{CONTENT_TYPE, Exposition, Kind};

use crate::web::WebState;

/// Adds `GET /metrics` and the request counter to central's routes (serve the result with
/// `into_make_service_with_connect_info::<SocketAddr>()`, or every peer counts as remote).
pub fn attach(routes: Router<WebState>) -> Router<WebState> {
    routes.route("/metrics", get(metrics)).layer(axum::middleware::from_fn(count_request))
}

/// The classes HTTP requests are counted by.
const CLASSES: [&str; 6] = ["page", "api", "live", "playback", "metrics", "other"];

static REQUESTS: [AtomicU64; CLASSES.len()] = [const { AtomicU64::new(0) }; CLASSES.len()];

/// The class of a request path: the page and its assets, the live WebSockets, playback and
/// export, the rest of the API, `/metrics`, anything else.
pub fn route_class(path: &str) -> &'static str {
    match path {
        "/" | "/app.js" | "/live-player.js" | "/style.css" => "page",
        "/metrics" => "metrics",
        p if p.starts_with("/api/") && (p.ends_with("/live") || p.ends_with("/live.fmp4")) => "live",
        p if p.starts_with("/api/") && (p.ends_with("/playback.fmp4") || p.ends_with("/export.mp4")) => "playback",
        p if p.starts_with("/api/") => "api",
        _ => "other",
    }
}

/// An API answer slower than this is logged (at debug: `RUST_LOG=central=debug`), to find
/// where a slow request waited.
const SLOW: std::time::Duration = std::time::Duration::from_millis(100);

async fn count_request(request: Request, next: Next) -> Response {
    let class = route_class(request.uri().path());
    if let Some(i) = CLASSES.iter().position(|c| *c == class) {
        REQUESTS[i].fetch_add(1, Ordering::Relaxed);
    }
    if class != "api" {
        return next.run(request).await;
    }
    let (started, path) = (std::time::Instant::now(), request.uri().path().to_owned());
    let response = next.run(request).await;
    let took = started.elapsed();
    if took >= SLOW {
        tracing::debug!(path, ms = took.as_millis() as u64, "slow API answer");
    }
    response
}

/// Whether the request came from this machine.
fn from_loopback(extensions: &axum::http::Extensions) -> bool {
    extensions.get::<ConnectInfo<SocketAddr>>().is_some_and(|ConnectInfo(a)| a.ip().to_canonical().is_loopback())
}

async fn metrics(State(state): State<WebState>, extensions: axum::http::Extensions) -> Response {
    if !from_loopback(&extensions) {
        return (StatusCode::FORBIDDEN, "/metrics is served to this machine (loopback) only").into_response();
    }
    let registry = state.registry.clone();
    let registered = tokio::task::spawn_blocking(move || registry.lock().unwrap_or_else(|p| p.into_inner()).units())
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or_default();
    let connected = state.fleet.connected();
    let figures = state.hub.figures().await;
    let mut e = Exposition::new();
    e.single(
        "convoy_central_units_registered",
        Kind::Gauge,
        "Units enrolled or added at central.",
        registered.len() as f64,
    );
    e.single("convoy_central_units_connected", Kind::Gauge, "Units connected now.", connected.len() as f64);
    let mut f = e.family("convoy_central_unit_connected", Kind::Gauge, "1 while the unit is connected, else 0.");
    for row in &registered {
        f.sample(&[("unit", &row.id)], f64::from(u8::from(connected.contains(&row.id))));
    }
    let traffic = state.fleet.traffic.received();
    let mut f = e.family(
        "convoy_central_unit_received_bytes_total",
        Kind::Counter,
        "UDP bytes received from the unit over QUIC since central started (live, retrieval, control).",
    );
    for (unit, bytes, _) in &traffic {
        f.sample(&[("unit", unit)], *bytes as f64);
    }
    let mut f = e.family(
        "convoy_central_unit_retrieved_bytes_total",
        Kind::Counter,
        "Bytes of retrieved video stored from the unit since central started.",
    );
    for (unit, bytes) in &figures.stored_bytes {
        f.sample(&[("unit", unit)], *bytes as f64);
    }
    let mut f = e.family("convoy_central_retrievals", Kind::Gauge, "Retrievals central keeps, by state.");
    for state in ["queued", "running", "done", "failed"] {
        f.sample(&[("state", state)], figures.retrievals.get(state).copied().unwrap_or(0) as f64);
    }
    live(&mut e, &state);
    let mut f = e.family("convoy_central_http_requests_total", Kind::Counter, "HTTP requests, by route class.");
    for (class, n) in CLASSES.iter().zip(&REQUESTS) {
        f.sample(&[("class", class)], n.load(Ordering::Relaxed) as f64);
    }
    e.process();
    ([(header::CONTENT_TYPE, CONTENT_TYPE), (header::CACHE_CONTROL, "no-store")], e.finish()).into_response()
}

/// The live relay's figures, by camera.
fn live(e: &mut Exposition, state: &WebState) {
    let channels = state.relay.channels();
    let families: [ChannelFigure; 10] = [
        ("convoy_central_live_viewers", Kind::Gauge, "Viewers watching the camera live now.", |c| c.viewers() as u64),
        (
            "convoy_central_live_upstreams",
            Kind::Gauge,
            "Live streams from the unit for the camera now (at most 1, whatever the viewers).",
            |c| c.upstreams() as u64,
        ),
        (
            "convoy_central_live_frames_received_total",
            Kind::Counter,
            "Live frames received from the unit for the camera.",
            |c| c.hub().stats().frames_published,
        ),
        (
            "convoy_central_live_frames_relayed_total",
            Kind::Counter,
            "Live frames handed to viewers, summed over viewers.",
            |c| c.hub().stats().frames_delivered,
        ),
        (
            "convoy_central_live_frames_skipped_total",
            Kind::Counter,
            "Live frames viewers missed because they fell behind (skipped to the next key frame), summed over viewers.",
            |c| c.hub().stats().frames_skipped,
        ),
        (
            "convoy_central_live_datagrams_received_total",
            Kind::Counter,
            "Live datagrams received from the unit for the camera (protocol version 5).",
            |c| c.datagrams().datagrams.load(Ordering::Relaxed),
        ),
        (
            "convoy_central_live_datagrams_bad_total",
            Kind::Counter,
            "Live datagrams that did not decode or did not fit their frame.",
            |c| c.datagrams().bad.load(Ordering::Relaxed),
        ),
        (
            "convoy_central_live_fragments_rebuilt_total",
            Kind::Counter,
            "Lost live datagram fragments rebuilt from parity, without waiting for the unit.",
            |c| c.datagrams().rebuilt.load(Ordering::Relaxed),
        ),
        (
            "convoy_central_live_nacks_total",
            Kind::Counter,
            "Live frames asked of the unit again because parity could not rebuild them.",
            |c| c.datagrams().nacks.load(Ordering::Relaxed),
        ),
        (
            "convoy_central_live_frames_given_up_total",
            Kind::Counter,
            "Live frames given up (not rebuilt in time, or skipped until the next key frame after one).",
            |c| c.datagrams().given_up.load(Ordering::Relaxed),
        ),
    ];
    for (name, kind, help, read) in families {
        let mut f = e.family(name, kind, help);
        for ((unit, camera), channel) in &channels {
            f.sample(&[("unit", unit), ("camera", camera)], read(channel) as f64);
        }
    }
}

/// A family read from each channel: name, type, help, and how to read it.
type ChannelFigure = (&'static str, Kind, &'static str, fn(&crate::relay::Channel) -> u64);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_peers_count_as_loopback() {
        let with = |addr: &str| {
            let mut e = axum::http::Extensions::new();
            e.insert(ConnectInfo(addr.parse::<SocketAddr>().unwrap()));
            from_loopback(&e)
        };
        assert!(with("127.0.0.1:1") && with("[::1]:1") && with("[::ffff:127.0.0.1]:1"));
        assert!(!with("192.0.2.1:1") && !with("[2001:db8::1]:1"));
        assert!(!from_loopback(&axum::http::Extensions::new()), "no connection info: refused");
    }

    #[test]
    fn routes_fall_into_classes() {
        assert_eq!(route_class("/"), "page");
        assert_eq!(route_class("/style.css"), "page");
        assert_eq!(route_class("/api/units"), "api");
        assert_eq!(route_class("/api/units/u/cameras/c/live"), "live");
        assert_eq!(route_class("/api/units/u/cameras/c/live.fmp4"), "live");
        assert_eq!(route_class("/api/units/u/cameras/c/export.mp4"), "playback");
        assert_eq!(route_class("/metrics"), "metrics");
        assert_eq!(route_class("/favicon.ico"), "other");
    }
}
