//! `[store] keep_unretrieved`: a unit whose disk is too small for what central has not
//! retrieved warns ahead (`store_warning` in `/api/status`, a `StorageWarning` event), then says
//! so when retention had to delete such recordings. Without the key, no warning.

use std::time::Duration;

use hil_tests::{EdgeProc, edge_config, get_json, sim_camera, wait_until};

const T: Duration = Duration::from_secs(60);

fn small_store(config: String, keep: bool) -> String {
    let keys = format!(
        "[store]\nsegment_bytes = 65536\nmax_bytes = 262144\nmin_free_bytes = 0\nretention_interval_s = 1\n\
         keep_unretrieved = {keep}\n"
    );
    config.replacen("[store]\n", &keys, 1)
}

fn warnings(edge: &EdgeProc) -> Vec<String> {
    let events = get_json(&format!("{}/api/events?since=0", edge.web)).unwrap();
    events
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["kind"]["StorageWarning"]["message"].as_str().map(str::to_owned))
        .collect()
}

#[test]
fn a_unit_keeping_unretrieved_recordings_warns_before_and_when_retention_deletes_them() {
    let dir = tempfile::tempdir().unwrap();
    let (_cam, rtsp) = sim_camera(dir.path(), &["front"], 0).unwrap();
    let cameras = [("front", format!("{rtsp}/front"))];
    let cameras: Vec<(&str, &str)> = cameras.iter().map(|(a, b)| (*a, b.as_str())).collect();
    let keeping = small_store(edge_config("bus-1", &dir.path().join("keep"), None, &cameras), true);
    let plain = small_store(edge_config("bus-2", &dir.path().join("plain"), None, &cameras), false);
    let keep = EdgeProc::start(dir.path(), "keep", &keeping).unwrap();
    let other = EdgeProc::start(dir.path(), "plain", &plain).unwrap();

    // A quarter megabyte lasts seconds at the camera's bitrate: the forecast comes first…
    let first = wait_until("a forecast warning", T, || {
        let s = keep.status().ok()?;
        s["store_warning"].as_str().map(str::to_owned)
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", keep.proc.log_tail()));
    assert!(
        first.contains("will start deleting recordings central has not retrieved")
            || first.contains("retention deleted"),
        "{first}"
    );
    // …then retention deletes recordings nobody retrieved, and says so.
    let deleted = wait_until("a deletion warning", T, || {
        let s = keep.status().ok()?;
        s["store_warning"].as_str().filter(|w| w.contains("retention deleted")).map(str::to_owned)
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", keep.proc.log_tail()));
    assert!(deleted.contains("MB of recordings central had not retrieved"), "{deleted}");
    let events = warnings(&keep);
    assert!(events.iter().any(|w| w.contains("retention deleted")), "{events:?}");

    // The unit without the key deletes as well, without a word.
    wait_until("the plain unit's retention deletes", T, || {
        let v = get_json(&format!("{}/api/status", other.web)).ok()?;
        let recorded = v["cameras"][0]["bytes_recorded"].as_u64()?;
        (recorded > 3 * 262_144).then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", other.proc.log_tail()));
    let s = other.status().unwrap();
    assert!(s["store_warning"].is_null(), "{s}");
    assert!(warnings(&other).is_empty());
}
