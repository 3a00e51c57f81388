//! `GET /metrics` on central and on the edge, with the real processes: a simulated camera,
//! an enrolled edge unit recording it and linked to central over QUIC, and a live viewer at
//! central. The scrapes must parse as Prometheus' text format, and their figures must move.
//! As root, a peer that is not on loopback (in a network namespace of the test's own) must
//! be refused by both.

use std::time::Duration;

use hil_tests::netns::{Netns, unsupported_reason};
use hil_tests::prometheus::{Samples, scrape};
use hil_tests::services::{edge_config, last_word};
use hil_tests::{CentralProc, EdgeProc, LiveViewer, Proc, bin_path, sim_camera, wait_until};

const T: Duration = Duration::from_secs(60);

/// Scrapes `base/metrics` until `check` passes on the samples; its result.
fn scrape_until<X>(what: &str, base: &str, proc: &Proc, mut check: impl FnMut(&Samples) -> Option<X>) -> X {
    let url = format!("{base}/metrics");
    wait_until(what, T, || check(&scrape(&url).expect("/metrics parses as Prometheus text")))
        .unwrap_or_else(|e| panic!("{e}\n{}", proc.log_tail()))
}

#[test]
fn central_and_edge_metrics_parse_and_move() {
    let dir = tempfile::tempdir().unwrap();
    let (_camera, url) = sim_camera(dir.path(), &["front"], 0).unwrap();
    let central = CentralProc::start(dir.path(), 0).unwrap();
    let config = edge_config(
        "bus-1",
        &dir.path().join("store"),
        Some((&central.quic, &central.fingerprint)),
        &[("front", &format!("{url}/front"))],
    );
    let edge = EdgeProc::start_enrolled(dir.path(), "edge", &config, "bus-1", &central).unwrap();

    // The edge records, and says so.
    let front = [("camera", "front")];
    let first = scrape_until("edge records frames", &edge.web, &edge.proc, |s| {
        let n = s.get("convoy_edge_camera_frames_recorded_total", &front)?;
        (n > 0.0 && s.get("convoy_edge_central_connected", &[]) == Some(1.0)).then_some(n)
    });
    let s = scrape_until("the edge's counters grow", &edge.web, &edge.proc, |s| {
        (s.get("convoy_edge_camera_frames_recorded_total", &front)? > first).then(|| s.clone())
    });
    assert_eq!(s.kind("convoy_edge_camera_frames_recorded_total"), Some("counter"));
    assert!(s.get("convoy_edge_camera_recorded_bytes_total", &front).unwrap() > 0.0);
    assert_eq!(s.get("convoy_edge_camera_state", &[("camera", "front"), ("state", "streaming")]), Some(1.0));
    assert_eq!(s.get("convoy_edge_camera_state", &[("camera", "front"), ("state", "down")]), Some(0.0));
    // At least once each (a busy machine may make the camera or the link reconnect).
    assert!(s.get("convoy_edge_camera_streams_started_total", &front).unwrap() >= 1.0);
    assert!(s.get("convoy_edge_camera_frames_lost_total", &front).is_some());
    assert!(s.get("convoy_edge_central_connects_total", &[]).unwrap() >= 1.0);
    assert!(s.get("convoy_edge_central_sent_bytes_total", &[]).unwrap() > 0.0);
    assert!(s.get("convoy_edge_store_fs_free_bytes", &[]).unwrap() > 0.0);
    assert!(s.get("convoy_edge_store_used_bytes", &[]).is_some());
    assert_eq!(s.kind("convoy_edge_store_group_commits_total"), Some("counter"));
    assert_eq!(s.get("convoy_edge_store_failing", &[]), Some(0.0));
    assert!(s.get("process_resident_memory_bytes", &[]).unwrap() > 0.0);

    // Central sees the unit, and relays its camera to a viewer.
    let unit = [("unit", "bus-1")];
    scrape_until("central counts the unit connected", &central.web, &central.proc, |s| {
        (s.get("convoy_central_units_connected", &[]) == Some(1.0)
            && s.get("convoy_central_unit_connected", &unit) == Some(1.0)
            && s.get("convoy_central_unit_received_bytes_total", &unit)? > 0.0)
            .then_some(())
    });
    let viewer = LiveViewer::open(&central.api, "bus-1", "front").unwrap();
    let cam = [("unit", "bus-1"), ("camera", "front")];
    let relayed = scrape_until("central relays frames to the viewer", &central.web, &central.proc, |s| {
        let relayed = s.get("convoy_central_live_frames_relayed_total", &cam)?;
        (s.get("convoy_central_live_viewers", &cam) == Some(1.0)
            && s.get("convoy_central_live_upstreams", &cam) == Some(1.0)
            && relayed > 10.0)
            .then_some(relayed)
    });
    wait_until("the viewer receives frames", T, || (viewer.frames() > 0).then_some(())).unwrap();
    let s = scrape(&format!("{}/metrics", central.web)).unwrap();
    assert!(s.get("convoy_central_live_frames_received_total", &cam).unwrap() >= relayed);
    assert!(s.get("convoy_central_live_frames_skipped_total", &cam).is_some());
    assert!(s.get("convoy_central_http_requests_total", &[("class", "live")]).unwrap() >= 1.0);
    assert!(s.get("convoy_central_http_requests_total", &[("class", "metrics")]).unwrap() >= 2.0);
    for state in ["queued", "running", "done", "failed"] {
        assert!(s.get("convoy_central_retrievals", &[("state", state)]).is_some(), "{state}");
    }
    assert!(s.get("process_cpu_seconds_total", &[]).unwrap() > 0.0);
    assert_eq!(s.kind("convoy_central_unit_received_bytes_total"), Some("counter"));

    // The viewer leaves: its count goes back to 0.
    drop(viewer);
    scrape_until("central counts the viewer gone", &central.web, &central.proc, |s| {
        (s.get("convoy_central_live_viewers", &cam) == Some(0.0)).then_some(())
    });
}

/// GET `url` from inside `ns`: the status code (ureq would call 4xx an error).
fn status_from(ns: &Netns, url: String) -> u16 {
    ns.call(move || {
        let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
        agent.get(&url).call().map(|r| r.status().as_u16()).unwrap_or(0)
    })
    .unwrap()
}

#[test]
fn metrics_refuse_peers_that_are_not_on_loopback() {
    if let Some(why) = unsupported_reason() {
        eprintln!("SKIPPED metrics_refuse_peers_that_are_not_on_loopback: {why}");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let ns = Netns::create("metrics").unwrap();
    // An address of the namespace that is not a loopback address: a request to it comes from it.
    ns.run("ip", &["addr", "add", "192.0.2.1/32", "dev", "lo"]).unwrap();
    let config = dir.path().join("central.toml");
    std::fs::write(
        &config,
        format!(
            "[web]\nlisten = \"0.0.0.0:0\"\n[quic]\nlisten = \"127.0.0.1:0\"\n[store]\npath = {:?}\n",
            dir.path().join("central")
        ),
    )
    .unwrap();
    let mut cmd = ns.command(bin_path("central").unwrap());
    cmd.arg("run").arg("--config").arg(&config);
    let mut central = Proc::spawn("central", cmd, &dir.path().join("central.log")).unwrap();
    let central_port =
        last_word(&central.wait_line("web listening on", T).unwrap()).rsplit(':').next().unwrap().to_owned();
    let edge_config = edge_config("bus-1", &dir.path().join("store"), None, &[])
        .replace("listen = \"127.0.0.1:0\"", "listen = \"0.0.0.0:0\"");
    let edge = EdgeProc::start_in(dir.path(), "edge", &edge_config, Some(&ns)).unwrap();
    let edge_port = edge.web.rsplit(':').next().unwrap().to_owned();
    for (what, port) in [("central", central_port), ("edge", edge_port)] {
        assert_eq!(status_from(&ns, format!("http://127.0.0.1:{port}/metrics")), 200, "{what} from loopback");
        assert_eq!(status_from(&ns, format!("http://192.0.2.1:{port}/metrics")), 403, "{what} from 192.0.2.1");
    }
}
