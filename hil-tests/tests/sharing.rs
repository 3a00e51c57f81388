//! Sharing: a camera whose `[[camera]]` says `share = false` records on the unit, but central
//! never learns of it: not listed, no timeline, no live video, no retrieval, and its camera
//! events stay on the unit, while the shared camera works as usual.

use std::time::Duration;

use hil_tests::{CentralProc, EdgeProc, edge_config, get_json, sim_camera, timeline_us, wait_until};
use serde_json::json;

const T: Duration = Duration::from_secs(60);

fn now_us() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_micros() as i64
}

fn rfc3339(us: i64) -> String {
    jiff::Timestamp::from_microsecond(us).unwrap().to_string()
}

#[test]
fn a_camera_not_shared_stays_on_the_unit() {
    let dir = tempfile::tempdir().unwrap();
    let (_cam, rtsp) = sim_camera(dir.path(), &["front", "cab"], 0).unwrap();
    let central = CentralProc::start(dir.path(), 0).unwrap();
    let store = dir.path().join("store");
    let config = edge_config(
        "bus-s",
        &store,
        Some((&central.quic, &central.fingerprint)),
        &[("front", &format!("{rtsp}/front")), ("cab", &format!("{rtsp}/cab"))],
    ) + "share = false\n";
    assert!(config.ends_with("/cab\"\nshare = false\n"), "the key belongs to the last camera: {config}");
    let edge = EdgeProc::start_enrolled(dir.path(), "edge", &config, "bus-s", &central).unwrap();
    let t0 = now_us();
    // Both cameras record on the unit.
    wait_until("both cameras record", T, || {
        let s = edge.status().ok()?;
        let cams = s["cameras"].as_array()?;
        (cams.len() == 2 && cams.iter().all(|c| c["frames_recorded"].as_u64().unwrap_or(0) > 50)).then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", edge.proc.log_tail()));
    // Central lists the shared camera only, and its catalog shows the shared camera's video.
    let timeline = |camera: &str| {
        central.get_json(&format!(
            "{}/api/units/bus-s/cameras/{camera}/timeline?start={}&end={}",
            central.web,
            rfc3339(t0 - 10_000_000),
            rfc3339(now_us())
        ))
    };
    wait_until("central sees the shared camera's recording", T, || {
        (timeline_us(&timeline("front").ok()?["remote_only"]) > 2_000_000).then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}\n{}\n{}", central.proc.log_tail(), edge.proc.log_tail()));
    let units = central.units().unwrap();
    let ids: Vec<&str> = units[0]["cameras"].as_array().unwrap().iter().filter_map(|c| c["id"].as_str()).collect();
    assert_eq!(ids, ["front"], "{units}");
    assert!(timeline("cab").is_err(), "no timeline for a camera not shared");
    let retrieve = central
        .post(&format!("{}/api/units/bus-s/cameras/cab/retrieve", central.web))
        .send_json(json!({ "start": rfc3339(t0), "end": rfc3339(now_us()) }));
    assert!(retrieve.is_err(), "no retrieval of a camera not shared");
    assert!(hil_tests::LiveViewer::open(&central.api, "bus-s", "cab").is_err(), "no live video");
    // Events about the camera not shared stay on the unit: stop the camera server, the unit
    // sees both cameras lost; central's alarms name only the shared one.
    drop(_cam);
    wait_until("the unit sees both cameras lost", T, || {
        let events = get_json(&format!("{}/api/events", edge.web)).ok()?;
        let lost = events.as_array()?.iter().filter(|e| e["kind"].get("CameraLost").is_some()).count();
        (lost >= 2).then_some(())
    })
    .unwrap();
    let alarms = wait_until("central's alarms show the shared camera lost", T, || {
        let alarms = central.get_json(&format!("{}/api/alarms", central.web)).ok()?;
        let text = alarms.to_string();
        text.contains("front").then_some(text)
    })
    .unwrap();
    assert!(!alarms.contains("cab"), "nothing about the camera not shared: {alarms}");
}
