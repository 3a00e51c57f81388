//! Harness for Convoy's system tests and demo: start the real binaries (`central`, `edge`,
//! `sim-camera`) and real third-party peers (GStreamer's RTSP server) as processes, read the
//! addresses they print, query their HTTP APIs, and stop them.
//!
//! The binaries must be built first (`cargo build --workspace --bins`, which `./dev test`
//! and `./dev demo` do); they are found beside the running executable.

pub mod bench_clip;
pub mod browser;
mod browser_socket;
pub mod central_api;
pub mod central_page;
pub mod firefox;
pub mod media;
pub mod netns;
pub mod onvif_camera;
pub mod proc_stats;
pub mod process;
pub mod prometheus;
pub mod recording_media;
pub mod scenario;
pub mod services;
pub mod sse;
pub mod synthetic_store;
pub mod technician;
pub mod thin_unit;
pub mod viewer;
pub mod web_page;

pub use central_api::CentralApi;
pub use process::{Proc, bin_path, wait_until};
pub use services::{CentralProc, EdgeProc, edge_config, edge_enroll, gst_camera, sim_camera, sim_camera_with};
pub use viewer::LiveViewer;

/// GETs a JSON document.
pub fn get_json(url: &str) -> anyhow::Result<serde_json::Value> {
    let mut response = ureq::get(url).call()?;
    Ok(response.body_mut().read_json()?)
}

/// The total length in µs of a timeline's `[[start, end], …]` (RFC 3339 pairs, as central's
/// timeline API answers).
pub fn timeline_us(ranges: &serde_json::Value) -> i64 {
    let at =
        |v: &serde_json::Value| v.as_str().and_then(|s| s.parse::<jiff::Timestamp>().ok()).map(|t| t.as_microsecond());
    ranges.as_array().into_iter().flatten().filter_map(|r| Some(at(&r[1])? - at(&r[0])?)).sum()
}
