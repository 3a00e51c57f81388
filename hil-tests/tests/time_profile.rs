//! Retrieval by rule: a camera whose recording options at central include `"time_profile"`
//! has what its unit recorded inside the profile's windows brought to central without an
//! operator, byte for byte, and nothing outside them.

use std::time::Duration;

use hil_tests::media::{central_frame_hashes, compare, frame_hashes};
use hil_tests::{CentralProc, EdgeProc, edge_config, sim_camera, timeline_us, wait_until};
use serde_json::Value;

const T: Duration = Duration::from_secs(90);
/// What a retrieval may take beyond its range: `resolve_margin_us` (3 s) and a second for the
/// interpolation of spans.
const MARGIN_US: i64 = 4_000_000;

fn now_us() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_micros() as i64
}

fn rfc3339(us: i64) -> String {
    jiff::Timestamp::from_microsecond(us).unwrap().to_string()
}

/// `HH:MM:SS` (UTC) of a time, whole seconds.
fn clock(us: i64) -> String {
    let s = us / 1_000_000 % 86_400;
    format!("{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

#[test]
fn a_time_profile_window_is_retrieved_without_an_operator() {
    let dir = tempfile::tempdir().unwrap();
    let (_cam, rtsp) = sim_camera(dir.path(), &["front"], 0).unwrap();
    // A window of 6 s that opens 10 s from now (whole seconds, UTC).
    let open = (now_us() / 1_000_000 + 10) * 1_000_000;
    let close = open + 6_000_000;
    let settings = format!(
        "time_zone = \"UTC\"\n[[time_profile]]\nname = \"soon\"\nwindows = [\"daily {}-{}\"]\n[[unit]]\nname = \
         \"bus-9\"\n[[unit.camera]]\nid = \"front\"\nrecording = [\"remote\", \"time_profile\"]\ntime_profile = \
         \"soon\"\n",
        clock(open),
        clock(close)
    );
    let central = CentralProc::start_with(dir.path(), &settings).unwrap();
    let store = dir.path().join("store");
    let config = edge_config(
        "bus-9",
        &store,
        Some((&central.quic, &central.fingerprint)),
        &[("front", &format!("{rtsp}/front"))],
    );
    let edge = EdgeProc::start_enrolled(dir.path(), "edge", &config, "bus-9", &central).unwrap();
    let t0 = now_us();
    let timeline = |start: i64, end: i64| -> Option<Value> {
        central
            .get_json(&format!(
                "{}/api/units/bus-9/cameras/front/timeline?start={}&end={}",
                central.web,
                rfc3339(start),
                rfc3339(end)
            ))
            .ok()
    };
    // Central holds the window once it has closed (the unit keeps recording after it).
    wait_until("central holds the window", T, || {
        let t = timeline(open, close)?;
        (now_us() > close && timeline_us(&t["central"]) >= 5_500_000).then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}\n{}\n{}", central.proc.log_tail(), edge.proc.log_tail()));
    // Nothing outside the window but the margin a retrieval takes at each side (3 s, so that
    // the first frame's key frame comes along; the catalog's spans are interpolated): the
    // camera recorded for seconds before the window and goes on after it.
    let after = wait_until("central's catalog shows recording well past the window", T, || {
        let t = timeline(close + MARGIN_US, now_us())?;
        (timeline_us(&t["remote_only"]) > 3_000_000).then_some(t)
    })
    .unwrap();
    let before = timeline(t0 - 60_000_000, open - MARGIN_US).unwrap();
    assert_eq!(timeline_us(&before["central"]), 0, "nothing before the window: {before}");
    assert_eq!(timeline_us(&after["central"]), 0, "nothing after the window: {after}");
    assert!(timeline_us(&before["remote_only"]) > 2_000_000, "the unit recorded before the window: {before}");
    let (unit, unit_dups) = frame_hashes(&store, "front", open, close);
    let (held, held_dups) = central_frame_hashes(&dir.path().join("central"), "bus-9", "front", open, close);
    assert_eq!((unit_dups, held_dups), (0, 0), "no duplicates");
    assert!(unit.len() > 100, "{} frames at the unit", unit.len());
    let (missing, extra, differ) = compare(&unit, &held);
    assert!(
        missing.is_empty() && extra.is_empty() && differ.is_empty(),
        "central holds exactly the unit's {} frames of the window: {} missing, {} extra, {} differ",
        unit.len(),
        missing.len(),
        extra.len(),
        differ.len()
    );
}

#[test]
fn bulk_retrieval_waits_for_the_units_bulk_window_and_operators_do_not() {
    let dir = tempfile::tempdir().unwrap();
    let (_cam, rtsp) = sim_camera(dir.path(), &["front"], 0).unwrap();
    let t0 = (now_us() / 1_000_000 + 1) * 1_000_000;
    // The rule's window: 4 s, from t0 + 10 s. Bulk retrieval is allowed from t0 + 24 s on.
    let (rule_open, rule_close, bulk_open) = (t0 + 10_000_000, t0 + 14_000_000, t0 + 24_000_000);
    let settings = format!(
        "[[time_profile]]\nname = \"rule\"\nwindows = [\"daily {}-{}\"]\n[[time_profile]]\nname = \"bulk\"\nwindows = \
         [\"daily {}-{}\"]\n[[unit]]\nname = \"bus-b\"\nbulk_time_profile = \"bulk\"\n[[unit.camera]]\nid = \
         \"front\"\nrecording = [\"remote\", \"on_request\", \"time_profile\"]\ntime_profile = \"rule\"\n",
        clock(rule_open),
        clock(rule_close),
        clock(bulk_open),
        clock(bulk_open + 3_600_000_000)
    );
    let central = CentralProc::start_with(dir.path(), &settings).unwrap();
    let store = dir.path().join("store");
    let config = edge_config(
        "bus-b",
        &store,
        Some((&central.quic, &central.fingerprint)),
        &[("front", &format!("{rtsp}/front"))],
    );
    let edge = EdgeProc::start_enrolled(dir.path(), "edge", &config, "bus-b", &central).unwrap();
    let held = |start: i64, end: i64| -> Option<i64> {
        let t = central
            .get_json(&format!(
                "{}/api/units/bus-b/cameras/front/timeline?start={}&end={}",
                central.web,
                rfc3339(start),
                rfc3339(end)
            ))
            .ok()?;
        Some(timeline_us(&t["central"]))
    };
    // An operator's retrieval runs outside the bulk window.
    wait_until("the unit recorded a few seconds", T, || {
        (held(t0, now_us()).is_some() && now_us() > t0 + 5_000_000).then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}\n{}\n{}", central.proc.log_tail(), edge.proc.log_tail()));
    let response: Value = central
        .post(&format!("{}/api/units/bus-b/cameras/front/retrieve", central.web))
        .send_json(serde_json::json!({ "start": rfc3339(t0 + 1_000_000), "end": rfc3339(t0 + 4_000_000) }))
        .unwrap()
        .body_mut()
        .read_json()
        .unwrap();
    let id = response["id"].as_i64().unwrap();
    wait_until("the operator's retrieval is done", T, || {
        let s = central.get_json(&format!("{}/api/retrievals/{id}", central.web)).ok()?;
        (s["state"] == "done").then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", central.proc.log_tail()));
    assert!(now_us() < bulk_open, "the operator's retrieval finished before the bulk window opened");
    assert!(held(t0 + 1_000_000, t0 + 4_000_000).unwrap() >= 2_500_000);
    // The rule's window has closed and the unit's catalog shows it, but until the bulk window
    // opens central holds none of it.
    let mut checks = 0;
    while now_us() < bulk_open - 1_000_000 {
        if now_us() > rule_close + 5_000_000 {
            assert_eq!(held(rule_open, rule_close), Some(0), "bulk retrieval waits for its window");
            checks += 1;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(checks > 5, "the check ran while the window was closed");
    wait_until("central holds the rule's window once bulk retrieval may run", T, || {
        (held(rule_open, rule_close)? >= 3_500_000).then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", central.proc.log_tail()));
}

#[test]
fn recording_options_set_through_the_api_apply_at_once_and_persist() {
    let dir = tempfile::tempdir().unwrap();
    let (_cam, rtsp) = sim_camera(dir.path(), &["front"], 0).unwrap();
    let open = (now_us() / 1_000_000 + 12) * 1_000_000;
    let close = open + 5_000_000;
    // The profile is in central.toml; the camera's options are not (it gets the defaults).
    let settings =
        format!("[[time_profile]]\nname = \"soon\"\nwindows = [\"daily {}-{}\"]\n", clock(open), clock(close));
    let central = CentralProc::start_with(dir.path(), &settings).unwrap();
    let store = dir.path().join("store");
    let config = edge_config(
        "bus-o",
        &store,
        Some((&central.quic, &central.fingerprint)),
        &[("front", &format!("{rtsp}/front"))],
    );
    let edge = EdgeProc::start_enrolled(dir.path(), "edge", &config, "bus-o", &central).unwrap();
    let url = format!("{}/api/units/bus-o/cameras/front/recording", central.web);
    let shown = wait_until("central knows the camera", T, || central.get_json(&url).ok())
        .unwrap_or_else(|e| panic!("{e}\n{}", edge.proc.log_tail()));
    assert_eq!(shown["source"], "default", "{shown}");
    assert_eq!(shown["recording"], serde_json::json!(["remote", "on_request", "link_gap", "event_window"]));
    // Refused with what is wrong: an unknown profile, an unknown option, an unknown camera.
    let put = |url: &str, body: Value| central.put(url).send_json(body);
    let e = put(&url, serde_json::json!({"recording": ["time_profile"], "time_profile": "later"})).unwrap_err();
    assert!(e.to_string().contains("422"), "{e}");
    let e = put(&url, serde_json::json!({"recording": ["everywhere"]})).unwrap_err();
    assert!(e.to_string().contains("400"), "{e}");
    let other = format!("{}/api/units/bus-o/cameras/rear/recording", central.web);
    assert!(put(&other, serde_json::json!({"recording": ["remote"]})).unwrap_err().to_string().contains("404"));
    // Set: only the time profile, no more retrieval on request.
    let set: Value = put(&url, serde_json::json!({"recording": ["remote", "time_profile"], "time_profile": "soon"}))
        .unwrap()
        .body_mut()
        .read_json()
        .unwrap();
    assert_eq!(set["source"], "api", "{set}");
    assert_eq!(set["event_window_s"], serde_json::json!([10, 10]), "the default event window");
    let retrieve = central
        .post(&format!("{}/api/units/bus-o/cameras/front/retrieve", central.web))
        .send_json(serde_json::json!({ "start": rfc3339(now_us() - 5_000_000), "end": rfc3339(now_us()) }));
    assert!(retrieve.unwrap_err().to_string().contains("403"), "on_request was taken away");
    // The rule retrieves the window.
    wait_until("central holds the window", T, || {
        let t = central
            .get_json(&format!(
                "{}/api/units/bus-o/cameras/front/timeline?start={}&end={}",
                central.web,
                rfc3339(open),
                rfc3339(close)
            ))
            .ok()?;
        (now_us() > close && timeline_us(&t["central"]) >= 4_500_000).then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", central.proc.log_tail()));
    // Kept across a restart of central; DELETE brings the defaults back.
    drop(central);
    let central = CentralProc::start_with(dir.path(), &settings).unwrap();
    let url = format!("{}/api/units/bus-o/cameras/front/recording", central.web);
    assert_eq!(central.get_json(&url).unwrap()["source"], "api");
    assert_eq!(central.delete(&url).call().unwrap().status(), 204);
    assert_eq!(central.get_json(&url).unwrap()["source"], "default");
}
