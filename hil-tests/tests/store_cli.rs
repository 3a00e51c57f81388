//! `edge store verify | export | reindex` on a store recorded from real cameras, checked with
//! ffprobe (a reader we did not write).

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use hil_tests::media::ffprobe;
use hil_tests::{EdgeProc, bin_path, edge_config, gst_camera, sim_camera, wait_until};

fn edge_store(args: &[&str], store: &Path) -> (bool, String, String) {
    let mut cmd = Command::new(bin_path("edge").unwrap());
    cmd.arg("store").arg(args[0]).arg(store).args(&args[1..]);
    let out = cmd.output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Records at least `frames` from each camera in segments of `segment_bytes`, then stops the
/// unit cleanly.
fn record(dir: &Path, store: &Path, cams: &[(&str, &str)], frames: u64, segment_bytes: u64) {
    let config = edge_config("bus-1", store, None, cams)
        .replace(&format!("path = {store:?}\n"), &format!("path = {store:?}\nsegment_bytes = {segment_bytes}\n"));
    let mut edge = EdgeProc::start(dir, "edge", &config).unwrap();
    wait_until("enough frames are recorded", Duration::from_secs(60), || {
        let s = edge.status().ok()?;
        s["cameras"].as_array()?.iter().all(|c| c["frames_recorded"].as_u64().unwrap_or(0) >= frames).then_some(())
    })
    .unwrap();
    assert!(edge.proc.stop(Duration::from_secs(20)).unwrap().success());
}

#[test]
fn verify_json_is_the_documented_contract() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let (_cam, rtsp) = gst_camera(dir.path(), &["front"], &[]).unwrap();
    record(dir.path(), &store, &[("front", &format!("{rtsp}/front"))], 200, 65536);
    let (ok, stdout, stderr) = edge_store(&["verify", "--json"], &store);
    assert!(ok, "{stdout}{stderr}");
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v["ok"], true);
    for key in ["segments", "frames", "bytes", "dropped_tail_bytes"] {
        assert!(v[key].is_u64(), "{key} is an integer: {v:#}");
    }
    assert!(v["errors"].as_array().unwrap().is_empty());
    let front = &v["cameras"]["front"];
    assert!(front["frames"].as_u64().unwrap() >= 60);
    let first = front["first"].as_str().unwrap();
    let last = front["last"].as_str().unwrap();
    assert!(first.ends_with('Z') && first.contains('T'), "RFC 3339: {first}");
    assert!(last > first);
    assert!(front["gaps"].as_array().unwrap().is_empty(), "{front:#}");
    assert_eq!(v["frames"], front["frames"]);

    assert!(v["segments"].as_u64().unwrap() >= 2, "small segments were sealed: {v:#}");
    // Tamper with a byte of the oldest (sealed) segment: verify must fail, exit non-zero.
    let seg = media_store::list_segments(&media_store::log_dir(&store, "front")).unwrap().remove(0).1;
    let mut bytes = std::fs::read(&seg).unwrap();
    bytes[400] ^= 0x40;
    std::fs::write(&seg, &bytes).unwrap();
    let (ok, stdout, _) = edge_store(&["verify", "--json"], &store);
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert!(!ok);
    assert_eq!(v["ok"], false);
    assert!(!v["errors"].as_array().unwrap().is_empty());
}

#[test]
fn export_writes_an_mp4_that_ffprobe_plays_at_the_right_duration() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let (_cam, rtsp) = sim_camera(dir.path(), &["front"], 0).unwrap();
    record(dir.path(), &store, &[("front", &format!("{rtsp}/front"))], 150, 1 << 26);
    let (_, stdout, _) = edge_store(&["verify", "--json"], &store);
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let first: jiff::Timestamp = v["cameras"]["front"]["first"].as_str().unwrap().parse().unwrap();
    // 1.5 s .. 4.5 s after the first frame; the sim camera has a key frame every second, so
    // the export starts at the key frame at or before 1.5 s: between 3.0 and 4.0 s long.
    let start = first + jiff::SignedDuration::from_millis(1500);
    let end = first + jiff::SignedDuration::from_millis(4500);
    let out = dir.path().join("clip.mp4");
    let (ok, stdout, stderr) = edge_store(
        &[
            "export",
            "--camera",
            "front",
            "--start",
            &start.to_string(),
            "--end",
            &end.to_string(),
            "-o",
            out.to_str().unwrap(),
        ],
        &store,
    );
    assert!(ok, "{stdout}{stderr}");
    let probe = ffprobe(&out);
    let stream = &probe["streams"][0];
    assert_eq!(stream["codec_name"], "h264");
    assert_eq!(stream["width"], 640);
    assert_eq!(stream["height"], 360);
    let duration: f64 = probe["format"]["duration"].as_str().unwrap().parse().unwrap();
    assert!((2.95..=4.1).contains(&duration), "duration {duration}");
    let frames: u64 = stream["nb_read_frames"].as_str().unwrap().parse().unwrap();
    assert!((74..=101).contains(&frames), "{frames} frames at 25 fps");
    let decode =
        Command::new("ffmpeg").args(["-v", "error", "-i"]).arg(&out).args(["-f", "null", "-"]).output().unwrap();
    assert!(decode.status.success() && decode.stderr.is_empty(), "{}", String::from_utf8_lossy(&decode.stderr));

    // Helpful errors.
    let (ok, _, stderr) = edge_store(
        &["export", "--camera", "nope", "--start", &start.to_string(), "--end", &end.to_string(), "-o", "/tmp/x.mp4"],
        &store,
    );
    assert!(!ok && stderr.contains("no recordings of camera \"nope\""), "{stderr}");
    let (ok, _, stderr) = edge_store(
        &["export", "--camera", "front", "--start", "yesterday", "--end", "now", "-o", "/tmp/x.mp4"],
        &store,
    );
    assert!(!ok && stderr.contains("RFC 3339"), "{stderr}");
}

#[test]
fn reindex_rebuilds_a_lost_catalog_and_refuses_a_running_unit() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let (_cam, rtsp) = sim_camera(dir.path(), &["a", "b"], 0).unwrap();
    let cams = [("a", format!("{rtsp}/a")), ("b", format!("{rtsp}/b"))];
    let cams: Vec<(&str, &str)> = cams.iter().map(|(a, b)| (*a, b.as_str())).collect();
    let config = edge_config("bus-1", &store, None, &cams)
        .replace(&format!("path = {store:?}\n"), &format!("path = {store:?}\nsegment_bytes = 65536\n"));
    let mut edge = EdgeProc::start(dir.path(), "edge", &config).unwrap();
    wait_until("several segments are sealed", Duration::from_secs(60), || {
        let s = edge.status().ok()?;
        s["cameras"].as_array()?.iter().all(|c| c["bytes_recorded"].as_u64().unwrap_or(0) > 200_000).then_some(())
    })
    .unwrap();
    let (ok, _, stderr) = edge_store(&["reindex"], &store);
    assert!(!ok && stderr.contains("in use by another process"), "{stderr}");
    assert!(edge.proc.stop(Duration::from_secs(20)).unwrap().success());
    let (_, before, _) = edge_store(&["verify", "--json"], &store);
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", store.join("catalog.db").display()));
    }
    let (ok, stdout, stderr) = edge_store(&["reindex"], &store);
    assert!(ok, "{stdout}{stderr}");
    assert!(stdout.contains("2 cameras"), "{stdout}");
    let (ok, after, _) = edge_store(&["verify", "--json"], &store);
    assert!(ok);
    assert_eq!(before, after, "the rebuilt catalog describes the same store");
}

#[test]
fn an_encrypted_store_verifies_without_the_key_and_exports_only_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let key_file = dir.path().join("media.key");
    std::fs::write(&key_file, "3f".repeat(32)).unwrap();
    let (_cam, rtsp) = sim_camera(dir.path(), &["front"], 0).unwrap();
    let config = edge_config("bus-1", &store, None, &[("front", &format!("{rtsp}/front"))])
        .replace(&format!("path = {store:?}\n"), &format!("path = {store:?}\nencryption_key_file = {key_file:?}\n"));
    let mut edge = EdgeProc::start(dir.path(), "edge", &config).unwrap();
    wait_until("frames are recorded", Duration::from_secs(60), || {
        (edge.status().ok()?["cameras"][0]["frames_recorded"].as_u64()? >= 60).then_some(())
    })
    .unwrap();
    assert!(edge.proc.stop(Duration::from_secs(20)).unwrap().success());
    let (ok, stdout, _) = edge_store(&["verify", "--json"], &store);
    assert!(ok, "verify needs no key: {stdout}");
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let first = v["cameras"]["front"]["first"].as_str().unwrap().to_owned();
    let last = v["cameras"]["front"]["last"].as_str().unwrap().to_owned();
    let out = dir.path().join("clip.mp4");
    let args = ["export", "--camera", "front", "--start", &first, "--end", &last, "-o", out.to_str().unwrap()];
    let (ok, _, stderr) = edge_store(&args, &store);
    assert!(!ok && stderr.contains("is encrypted"), "{stderr}");
    let key_arg = key_file.to_str().unwrap();
    let mut with_key = args.to_vec();
    with_key.extend(["--key-file", key_arg]);
    let (ok, stdout, stderr) = edge_store(&with_key, &store);
    assert!(ok, "{stdout}{stderr}");
    let probe = ffprobe(&out);
    assert_eq!(probe["streams"][0]["codec_name"], "h264");
    let frames: u64 = probe["streams"][0]["nb_read_frames"].as_str().unwrap().parse().unwrap();
    assert!(frames >= 50, "{frames}");
}
