//! `GET /metrics`: the unit's figures in Prometheus' text format, for loopback peers only and
//! without login, like `GET /api/status` (a supervisor on the unit scrapes it, or a collector
//! that forwards it). Read when scraped from counters the unit keeps anyway.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use link::prometheus::{CONTENT_TYPE, Exposition, Kind};

use crate::status::StreamJson;
use crate::tech_dashboard::Dashboard;

/// `GET /metrics` (the store's figures come from the dashboard's, reused for up to 10 s).
pub fn routes(dashboard: Arc<Dashboard>) -> Router {
    Router::new().route("/metrics", get(metrics)).with_state(dashboard)
}

async fn metrics(State(d): State<Arc<Dashboard>>, extensions: axum::http::Extensions) -> Response {
    if !crate::auth_web::peer(&extensions).is_some_and(|ip| ip.is_loopback()) {
        return (StatusCode::FORBIDDEN, "/metrics is served to the unit itself (loopback) only").into_response();
    }
    match tokio::task::spawn_blocking(move || exposition(&d)).await {
        Ok(text) => ([(header::CONTENT_TYPE, CONTENT_TYPE), (header::CACHE_CONTROL, "no-store")], text).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("cannot gather the metrics: {e}")).into_response(),
    }
}

/// The text exposition (walks the store at most every 10 s: call off the async executor).
pub fn exposition(d: &Dashboard) -> String {
    let status = d.status.snapshot();
    // Every stream by its id: each camera's main stream, and its sub stream (`front.sub`).
    let streams: Vec<(&str, &StreamJson)> = status
        .cameras
        .iter()
        .flat_map(|c| {
            std::iter::once((c.id.as_str(), &c.stream)).chain(c.sub.as_ref().map(|s| (s.id.as_str(), &s.stream)))
        })
        .collect();
    let mut e = Exposition::new();
    let per_camera: [CameraFigure; 4] = [
        (
            "convoy_edge_camera_frames_recorded_total",
            Kind::Counter,
            "Frames written to the store since the unit started.",
            |s| s.frames_recorded as f64,
        ),
        (
            "convoy_edge_camera_recorded_bytes_total",
            Kind::Counter,
            "Bytes of media written to the store since the unit started.",
            |s| s.bytes_recorded as f64,
        ),
        (
            "convoy_edge_camera_frames_lost_total",
            Kind::Counter,
            "Frames received but not recorded (the store could not keep up or failed to write).",
            |s| s.frames_lost as f64,
        ),
        (
            "convoy_edge_camera_rtp_packets_lost_total",
            Kind::Counter,
            "RTP packets the camera sent that never arrived (gaps in their sequence numbers).",
            |s| s.packets_lost as f64,
        ),
    ];
    for (name, kind, help, read) in per_camera {
        let mut f = e.family(name, kind, help);
        for (id, stream) in &streams {
            f.sample(&[("camera", id)], read(stream));
        }
    }
    let mut f = e.family(
        "convoy_edge_camera_streams_started_total",
        Kind::Counter,
        "Times the camera started streaming since the unit started (reconnects are this less one).",
    );
    for c in &d.status.cameras() {
        f.sample(&[("camera", &c.id)], c.streams_started() as f64);
    }
    let mut f = e.family("convoy_edge_camera_state", Kind::Gauge, "1 for the camera's state now, 0 for the others.");
    for (id, stream) in &streams {
        for state in ["connecting", "streaming", "down"] {
            f.sample(&[("camera", id), ("state", state)], f64::from(u8::from(stream.state == state)));
        }
    }
    let mut f = e.family("convoy_edge_camera_recording", Kind::Gauge, "1 while the camera's frames go to the store.");
    for (id, stream) in &streams {
        f.sample(&[("camera", id)], f64::from(u8::from(stream.recording)));
    }
    let disk = d.disk_figures();
    let (fs, used, oldest) = (disk.fs, disk.used_bytes, disk.oldest_us);
    e.single("convoy_edge_store_used_bytes", Kind::Gauge, "Disk space the recordings take (allocated).", used as f64);
    if let Some((size, free)) = fs {
        e.single("convoy_edge_store_fs_size_bytes", Kind::Gauge, "Size of the store's file system.", size as f64);
        e.single("convoy_edge_store_fs_free_bytes", Kind::Gauge, "Free space on the store's file system.", free as f64);
    }
    if let Some(max) = d.max_bytes {
        e.single(
            "convoy_edge_store_max_bytes",
            Kind::Gauge,
            "The store's size budget ([store] max_bytes).",
            max as f64,
        );
    }
    if let Some(oldest) = oldest {
        let age = (crate::camera::now_us() - oldest).max(0) as f64 / 1e6;
        e.single(
            "convoy_edge_store_oldest_recording_age_seconds",
            Kind::Gauge,
            "Age of the oldest recorded frame in a sealed segment.",
            age,
        );
    }
    e.single(
        "convoy_edge_store_failing",
        Kind::Gauge,
        "1 while the store is failing (writes fail), else 0.",
        f64::from(u8::from(status.store_error.is_some())),
    );
    e.single(
        "convoy_edge_central_configured",
        Kind::Gauge,
        "1 when the unit has a [central] to connect to.",
        f64::from(u8::from(d.central.is_some())),
    );
    e.single(
        "convoy_edge_central_connected",
        Kind::Gauge,
        "1 while the QUIC link to central is up.",
        f64::from(u8::from(status.central_connected)),
    );
    let uplink = d.status.uplink.totals();
    e.single(
        "convoy_edge_central_connects_total",
        Kind::Counter,
        "Times the link to central came up since the unit started.",
        uplink.connects as f64,
    );
    e.single(
        "convoy_edge_central_sent_bytes_total",
        Kind::Counter,
        "UDP bytes sent to central over QUIC (live, retrieval, control).",
        uplink.sent_bytes as f64,
    );
    e.single(
        "convoy_edge_central_received_bytes_total",
        Kind::Counter,
        "UDP bytes received from central over QUIC.",
        uplink.received_bytes as f64,
    );
    e.single(
        "convoy_edge_store_group_commits_total",
        Kind::Counter,
        "Group commits (fdatasync of the open segments) since the unit started.",
        d.status.group_commits() as f64,
    );
    e.single(
        "convoy_edge_uptime_seconds",
        Kind::Gauge,
        "Seconds since `edge run` started.",
        d.started.elapsed().as_secs_f64(),
    );
    e.process();
    e.finish()
}

/// A family read from each camera's streams: name, type, help, and how to read it.
type CameraFigure = (&'static str, Kind, &'static str, fn(&StreamJson) -> f64);
