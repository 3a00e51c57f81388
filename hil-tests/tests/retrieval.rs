//! Retrieval of recordings with real processes on loopback: the timeline shows what only the
//! unit holds, an operator's retrieval brings a range to central, and every frame central
//! holds is byte-identical to the unit's, with no gap and no duplicate.

use std::time::Duration;

use hil_tests::media::{central_frame_hashes, compare, frame_hashes};
use hil_tests::{CentralProc, EdgeProc, edge_config, sim_camera, timeline_us, wait_until};
use serde_json::{Value, json};

const T: Duration = Duration::from_secs(60);

fn now_us() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_micros() as i64
}

fn rfc3339(us: i64) -> String {
    jiff::Timestamp::from_microsecond(us).unwrap().to_string()
}

fn timeline(central: &CentralProc, start: i64, end: i64) -> Option<Value> {
    central
        .get_json(&format!(
            "{}/api/units/bus-7/cameras/front/timeline?start={}&end={}",
            central.web,
            rfc3339(start),
            rfc3339(end)
        ))
        .ok()
}

#[test]
fn an_operator_retrieval_brings_the_range_to_central_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let (_cam, rtsp) = sim_camera(dir.path(), &["front"], 0).unwrap();
    let central = CentralProc::start(dir.path(), 0).unwrap();
    let store = dir.path().join("store");
    let config = edge_config(
        "bus-7",
        &store,
        Some((&central.quic, &central.fingerprint)),
        &[("front", &format!("{rtsp}/front"))],
    );
    let edge = EdgeProc::start_enrolled(dir.path(), "edge", &config, "bus-7", &central).unwrap();
    let t0 = now_us();
    // Ten seconds of recording, and the unit's catalog at central says so.
    let seen = wait_until("the unit's recording shows at central as remote only", T, || {
        let t = timeline(&central, t0 - 60_000_000, now_us())?;
        (timeline_us(&t["remote_only"]) > 8_000_000).then_some(t)
    })
    .unwrap_or_else(|e| panic!("{e}\n{}\n{}", central.proc.log_tail(), edge.proc.log_tail()));
    assert_eq!(seen["central"], json!([]));
    let (start, end) = (t0 + 2_000_000, t0 + 7_000_000);
    let response = central
        .post(&format!("{}/api/units/bus-7/cameras/front/retrieve", central.web))
        .send_json(json!({ "start": rfc3339(start), "end": rfc3339(end) }))
        .unwrap()
        .body_mut()
        .read_json::<Value>()
        .unwrap();
    let id = response["id"].as_i64().unwrap();
    let mut progress = Vec::new();
    let done = wait_until("the retrieval finishes", T, || {
        let s = central.get_json(&format!("{}/api/retrievals/{id}", central.web)).ok()?;
        progress.push(s["bytes_done"].as_u64()?);
        (s["state"] == "done" || s["state"] == "failed").then_some(s)
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", central.proc.log_tail()));
    assert_eq!(done["state"], "done", "{done}");
    assert!(done["bytes_total"].as_u64().unwrap() > 10_000, "{done}");
    assert_eq!(done["bytes_done"], done["bytes_total"], "{done}");
    assert!(progress.windows(2).all(|w| w[0] <= w[1]), "progress never goes back: {progress:?}");

    let t = timeline(&central, start, end).unwrap();
    assert!(timeline_us(&t["central"]) >= 4_500_000, "central now holds the range: {t}");
    let (unit, unit_dups) = frame_hashes(&store, "front", start, end);
    let (held, held_dups) = central_frame_hashes(&dir.path().join("central"), "bus-7", "front", start, end);
    assert_eq!((unit_dups, held_dups), (0, 0), "no duplicates");
    assert!(unit.len() > 100, "{} frames at the unit", unit.len());
    let (missing, extra, differ) = compare(&unit, &held);
    assert!(
        missing.is_empty() && extra.is_empty() && differ.is_empty(),
        "central must hold exactly the unit's {} frames of the range: {} missing (first {:?}), {} extra (first \
         {:?}), {} differ (first {:?})",
        unit.len(),
        missing.len(),
        missing.first(),
        extra.len(),
        extra.first(),
        differ.len(),
        differ.first()
    );
    assert!(central.get_json(&format!("{}/api/retrievals/9999", central.web)).is_err(), "unknown ids are 404");
}
