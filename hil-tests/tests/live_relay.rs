//! Live relay with real processes: central asks the unit for a camera only while someone
//! watches, takes one upstream whatever the number of viewers, and a stalled viewer skips to
//! the next key frame without holding up the others.

use std::time::Duration;

use hil_tests::prometheus::{Samples, scrape};
use hil_tests::{CentralProc, EdgeProc, LiveViewer, edge_config, sim_camera, wait_until};
use serde_json::Value;

const T: Duration = Duration::from_secs(60);
/// 90 kHz ticks per frame at 25 fps.
const FRAME_TICKS: i64 = 3600;

fn camera(central: &CentralProc) -> Option<Value> {
    let units = central.units().ok()?;
    let u = units.as_array()?.iter().find(|u| u["id"] == "bus-50")?;
    (u["connected"] == true).then(|| u["cameras"][0].clone())
}

fn percentile(sorted: &[i64], p: f64) -> i64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// A camera, central, and unit `bus-50` recording it, enrolled and connected.
fn connected_unit(dir: &std::path::Path) -> (hil_tests::Proc, CentralProc, EdgeProc) {
    connected_unit_with(dir, &[])
}

/// [`connected_unit`] with `env` in central's environment.
fn connected_unit_with(dir: &std::path::Path, env: &[(&str, &str)]) -> (hil_tests::Proc, CentralProc, EdgeProc) {
    let (cam, rtsp) = sim_camera(dir, &["front"], 0).unwrap();
    let central = CentralProc::start_with_env(dir, env).unwrap();
    let config = edge_config(
        "bus-50",
        &dir.join("store"),
        Some((&central.quic, &central.fingerprint)),
        &[("front", &format!("{rtsp}/front"))],
    );
    let edge = EdgeProc::start_enrolled(dir, "edge", &config, "bus-50", &central).unwrap();
    wait_until("the unit is connected", T, || (edge.status().ok()?["central_connected"] == true).then_some(()))
        .unwrap();
    (cam, central, edge)
}

#[test]
fn fifty_viewers_share_one_upstream_that_exists_only_while_watched() {
    let dir = tempfile::tempdir().unwrap();
    let (_cam, central, edge) = connected_unit(dir.path());
    let idle = camera(&central).unwrap();
    assert_eq!((idle["upstreams"].as_u64(), idle["frames_received"].as_u64()), (Some(0), Some(0)), "{idle}");

    let mut viewers = Vec::new();
    let mut most_upstreams = 0;
    for _ in 0..50 {
        viewers.push(LiveViewer::open(&central.api, "bus-50", "front").unwrap());
        most_upstreams = most_upstreams.max(camera(&central).unwrap()["upstreams"].as_u64().unwrap());
    }
    wait_until("every viewer gets frames", T, || viewers.iter().all(|v| v.frames() > 30).then_some(()))
        .unwrap_or_else(|e| panic!("{e}\n{}", central.proc.log_tail()));
    let busy = camera(&central).unwrap();
    assert_eq!((busy["viewers"].as_u64(), busy["upstreams"].as_u64()), (Some(50), Some(1)), "{busy}");
    assert!(most_upstreams <= 1, "{most_upstreams} upstreams while viewers joined");
    let mut latencies: Vec<i64> = viewers.iter().flat_map(|v| v.seen().frames).map(|f| f.2).collect();
    latencies.sort_unstable();
    println!(
        "live relay on loopback, camera → unit → central → 50 viewers: {} frames, latency p50 {:.1} ms, p99 {:.1} \
         ms, max {:.1} ms",
        latencies.len(),
        percentile(&latencies, 0.5) as f64 / 1000.0,
        percentile(&latencies, 0.99) as f64 / 1000.0,
        *latencies.last().unwrap() as f64 / 1000.0
    );
    for v in &viewers {
        let seen = v.seen();
        assert_eq!(seen.parameters, 1);
        assert!(seen.frames[0].1, "each viewer starts on a key frame");
    }

    drop(viewers);
    wait_until("the upstream stops when nobody watches", T, || {
        let c = camera(&central)?;
        (c["viewers"] == 0 && c["upstreams"] == 0).then_some(())
    })
    .unwrap();
    let stopped = camera(&central).unwrap()["frames_received"].as_u64().unwrap();
    let edge_frames = |e: &EdgeProc| e.status().unwrap()["cameras"][0]["frames_recorded"].as_u64().unwrap();
    let recorded = edge_frames(&edge);
    wait_until("the unit records on", T, || (edge_frames(&edge) > recorded + 25).then_some(())).unwrap();
    let after = camera(&central).unwrap()["frames_received"].as_u64().unwrap();
    assert!(after <= stopped + 2, "frames kept coming with nobody watching: {stopped} → {after}");
}

#[test]
fn a_stalled_viewer_skips_to_a_key_frame_and_never_holds_up_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let (_cam, central, _edge) = connected_unit(dir.path());
    let fast = LiveViewer::open(&central.api, "bus-50", "front").unwrap();
    let slow = LiveViewer::open_with_receive_buffer(&central.api, "bus-50", "front", Some(4096)).unwrap();
    wait_until("both viewers get frames", T, || (fast.frames() > 10 && slow.frames() > 10).then_some(())).unwrap();
    slow.pause(true);
    let before = fast.frames();
    // Long enough to overflow the socket buffers and the relay's bounded queue (64 messages).
    wait_until("the fast viewer goes on", T, || (fast.frames() > before + 250).then_some(())).unwrap();
    slow.pause(false);
    let paused_at = slow.frames();
    wait_until("the slow viewer resumes", T, || (slow.frames() > paused_at + 50).then_some(())).unwrap();
    let frames = slow.seen().frames;
    let jumps: Vec<usize> = (1..frames.len()).filter(|&i| frames[i].0 - frames[i - 1].0 > 2 * FRAME_TICKS).collect();
    assert!(!jumps.is_empty(), "the stalled viewer skipped nothing: frames were queued for it without bound");
    for i in jumps {
        assert!(frames[i].1, "after skipping, the viewer resumed at pts {} which is not a key frame", frames[i].0);
    }
}

/// Watches `bus-50`'s camera until 100 frames arrived; checks they came in order from a key
/// frame with no frame missing; central's live datagram counters afterwards.
fn watch_in_order(central: &CentralProc) -> Samples {
    let viewer = LiveViewer::open(&central.api, "bus-50", "front").unwrap();
    wait_until("the viewer gets 100 frames", T, || (viewer.frames() >= 100).then_some(()))
        .unwrap_or_else(|e| panic!("{e}\n{}", central.proc.log_tail()));
    let seen = viewer.seen();
    assert_eq!(seen.parameters, 1);
    assert!(seen.frames[0].1, "starts on a key frame");
    for pair in seen.frames.windows(2) {
        let step = pair[1].0 - pair[0].0;
        assert!(
            step > 0 && step <= FRAME_TICKS * 3 / 2,
            "frames in order, none missing: pts {} then {}",
            pair[0].0,
            pair[1].0
        );
    }
    scrape(&format!("{}/metrics", central.web)).expect("/metrics parses")
}

fn figure(samples: &Samples, name: &str) -> f64 {
    samples.get(name, &[("unit", "bus-50"), ("camera", "front")]).unwrap_or_else(|| panic!("{name} is exposed"))
}

/// A unit of protocol version 5 sends live frames as datagrams with parity: viewers get every
/// frame in order, and central's `/metrics` counts the datagrams (on loopback nothing is lost,
/// so nothing is rebuilt, asked again or given up).
#[test]
fn live_video_reaches_viewers_over_datagrams() {
    let dir = tempfile::tempdir().unwrap();
    let (_cam, central, _edge) = connected_unit(dir.path());
    let samples = watch_in_order(&central);
    let datagrams = figure(&samples, "convoy_central_live_datagrams_received_total");
    let frames = figure(&samples, "convoy_central_live_frames_received_total");
    assert!(frames >= 100.0 && datagrams >= 2.0 * frames, "at least two datagrams a frame: {datagrams} for {frames}");
    assert_eq!(figure(&samples, "convoy_central_live_datagrams_bad_total"), 0.0);
    assert_eq!(figure(&samples, "convoy_central_live_frames_given_up_total"), 0.0);
}

/// With `CONVOY_LIVE_DATAGRAMS=0` central asks for the live stream only, as an older central
/// does: frames come on it, in order, and no datagram is sent.
#[test]
fn the_live_stream_still_carries_frames_when_datagrams_are_off() {
    let dir = tempfile::tempdir().unwrap();
    let (_cam, central, _edge) = connected_unit_with(dir.path(), &[("CONVOY_LIVE_DATAGRAMS", "0")]);
    let samples = watch_in_order(&central);
    assert!(figure(&samples, "convoy_central_live_frames_received_total") >= 100.0);
    assert_eq!(figure(&samples, "convoy_central_live_datagrams_received_total"), 0.0);
}
