//! Recording at central (`recording = ["remote", "central", …]`, "record at both sites"): with
//! nobody watching, central records the camera's live stream from a real unit over real QUIC;
//! a retrieval that overlaps what it recorded stores no frame twice; every frame central holds
//! is byte-identical to the unit's; and central's MP4 export of live-recorded video passes
//! ffprobe.

use std::process::Command;
use std::time::Duration;

use hil_tests::media::{compare, frame_hashes};
use hil_tests::{CentralProc, EdgeProc, edge_config, sim_camera, timeline_us, wait_until};
use serde_json::Value;

const T: Duration = Duration::from_secs(90);

fn now_us() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_micros() as i64
}

fn rfc3339(us: i64) -> String {
    jiff::Timestamp::from_microsecond(us).unwrap().to_string()
}

fn timeline(central: &CentralProc, from: i64, to: i64) -> Option<Value> {
    let url =
        format!("{}/api/units/bus-c/cameras/front/timeline?start={}&end={}", central.web, rfc3339(from), rfc3339(to));
    central.get_json(&url).ok()
}

#[test]
fn central_records_the_live_stream_unwatched_and_never_stores_a_frame_twice() {
    let dir = tempfile::tempdir().unwrap();
    // No link gap or event rules: what central holds comes from recording live and from the
    // one retrieval below.
    let settings = "[[unit]]\nname = \"bus-c\"\n[[unit.camera]]\nid = \"front\"\n\
                    recording = [\"remote\", \"central\", \"on_request\"]\n";
    let central = CentralProc::start_with(dir.path(), settings).unwrap();
    let (_camera, rtsp) = sim_camera(dir.path(), &["front"], 0).unwrap();
    let store = dir.path().join("store");
    let config = edge_config(
        "bus-c",
        &store,
        Some((&central.quic, &central.fingerprint)),
        &[("front", &format!("{rtsp}/front"))],
    );
    let edge = EdgeProc::start_enrolled(dir.path(), "edge", &config, "bus-c", &central).unwrap();
    let started = now_us();

    // Nobody watches, yet central holds a growing stretch of the camera.
    let held = wait_until("central records the live stream", T, || {
        let t = timeline(&central, started, now_us())?;
        (timeline_us(&t["central"]) >= 6_000_000).then_some(t)
    })
    .unwrap_or_else(|e| panic!("{e}\n{}\n{}", central.proc.log_tail(), edge.proc.log_tail()));
    eprintln!("held live: {}", held["central"]);
    let units = central.get_json(&format!("{}/api/units", central.web)).unwrap();
    let unit = units.as_array().unwrap().iter().find(|u| u["id"] == "bus-c").unwrap().clone();
    assert!(unit["connected"] == true, "{unit}");

    // An operator retrieves a range that overlaps what central recorded live and reaches back
    // before it (the unit recorded from its start; live began once the unit connected).
    let (from, to) = (started - 2_000_000, now_us() - 1_000_000);
    let id = central.retrieve("bus-c", "front", from, to).unwrap();
    let done = central.wait_retrieval(id, T).unwrap_or_else(|e| panic!("{e}\n{}", central.proc.log_tail()));
    assert_eq!(done["state"], "done", "{done}");

    // Central's log holds each frame once, and each is the unit's frame, byte for byte.
    let (unit_frames, _) = frame_hashes(&store, "front", from, to);
    // The whole log, read in the order it was written (live runs first, the older frames the
    // retrieval brought after them), so that a frame stored twice anywhere shows.
    let (mut stored, duplicates) = frame_hashes(&dir.path().join("central/media"), "bus-c/front", 0, i64::MAX);
    stored.retain(|t, _| (from..=to).contains(t));
    assert!(unit_frames.len() > 4 * 25, "the unit recorded the range: {} frames", unit_frames.len());
    assert_eq!(duplicates, 0, "central stored {duplicates} frames twice");
    let (missing, extra, differ) = compare(&unit_frames, &stored);
    assert!(
        missing.is_empty(),
        "{} of {} frames missing at central, {:.3} s to {:.3} s into the range of {:.3} s",
        missing.len(),
        unit_frames.len(),
        (missing[0] - from) as f64 / 1e6,
        (missing[missing.len() - 1] - from) as f64 / 1e6,
        (to - from) as f64 / 1e6
    );
    assert!(extra.is_empty() && differ.is_empty(), "{} extra, {} differ", extra.len(), differ.len());

    // The live-recorded stretch exports as an MP4 that ffprobe reads.
    let span = held["central"].as_array().unwrap().last().unwrap().clone();
    let (s, e) = (span[0].as_str().unwrap(), span[1].as_str().unwrap());
    let mut response = central
        .get(&format!("{}/api/units/bus-c/cameras/front/export.mp4?start={s}&end={e}", central.web))
        .call()
        .unwrap();
    let mp4 = response.body_mut().with_config().limit(256 << 20).read_to_vec().unwrap();
    let path = dir.path().join("live.mp4");
    std::fs::write(&path, &mp4).unwrap();
    let probe = Command::new("ffprobe")
        .args(["-v", "error", "-count_frames", "-select_streams", "v:0", "-show_entries"])
        .args(["stream=codec_name,nb_read_frames", "-of", "csv=p=0"])
        .arg(&path)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&probe.stdout);
    assert!(probe.status.success() && text.starts_with("h264,"), "{text}{}", String::from_utf8_lossy(&probe.stderr));
    let frames: u64 = text.trim().rsplit(',').next().unwrap().parse().unwrap();
    assert!(frames >= 5 * 25, "{frames} frames in the export of {s}..{e}");
}
