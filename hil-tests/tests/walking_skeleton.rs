//! The walking skeleton end to end: a real RTSP camera → `edge` (records, uplinks over QUIC)
//! → `central` (registry, live frames) — all real processes on loopback.

use std::path::Path;
use std::time::Duration;

use hil_tests::{CentralProc, EdgeProc, LiveViewer, edge_config, gst_camera, sim_camera, wait_until};
use media_store::{Record, SegmentReader, list_logs, list_segments, log_dir};
use serde_json::Value;

const T: Duration = Duration::from_secs(60);

fn camera<'a>(status: &'a Value, id: &str) -> Option<&'a Value> {
    status["cameras"].as_array()?.iter().find(|c| c["id"] == id)
}

fn central_camera(units: &Value, unit: &str, cam: &str) -> Option<Value> {
    let u = units.as_array()?.iter().find(|u| u["id"] == unit)?;
    if u["connected"] != true {
        return None;
    }
    u["cameras"].as_array()?.iter().find(|c| c["id"] == cam).cloned()
}

/// Waits until `counter` of the edge's camera passes `above`, returning it.
fn edge_counter_above(edge: &EdgeProc, cam: &str, counter: &str, above: u64) -> u64 {
    wait_until(&format!("edge {cam}.{counter} > {above}"), T, || {
        let s = edge.status().ok()?;
        let v = camera(&s, cam)?[counter].as_u64()?;
        (v > above).then_some(v)
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", edge.proc.log_tail()))
}

/// Waits until central shows the camera live with `frames_received` above `above`.
fn central_frames_above(central: &CentralProc, unit: &str, cam: &str, above: u64) -> u64 {
    wait_until(&format!("central shows {unit}/{cam} live with > {above} frames"), T, || {
        let c = central_camera(&central.units().ok()?, unit, cam)?;
        let n = c["frames_received"].as_u64()?;
        (c["live"] == true && n > above).then_some(n)
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", central.proc.log_tail()))
}

/// Reads every record in the store and checks each frame is well-formed H.264 (AVCC) that
/// follows codec parameters; returns the frame count per camera.
fn check_store(store: &Path) -> std::collections::HashMap<String, u64> {
    let mut frames = std::collections::HashMap::new();
    for log in list_logs(store).unwrap() {
        let mut have_params = false;
        let mut expected_seq = 0;
        for (_, path) in list_segments(&log_dir(store, &log)).unwrap() {
            let mut reader = SegmentReader::open(&path).unwrap();
            while let Some((seq, record)) = reader.next_record().unwrap() {
                assert_eq!(seq, expected_seq, "sequence numbers are gapless");
                expected_seq += 1;
                match record {
                    Record::Parameters(p) => {
                        assert!(p.rfc6381_codec.starts_with("avc1."), "{}", p.rfc6381_codec);
                        assert_eq!(p.extra_data[0], 1, "an AVCDecoderConfigurationRecord");
                        have_params = true;
                    }
                    Record::Frame(f) => {
                        assert!(have_params, "frame before its parameters");
                        assert_eq!(f.camera, log, "frames are in their camera's log");
                        check_avcc(&f.data, f.keyframe);
                        *frames.entry(f.camera).or_insert(0) += 1;
                    }
                    _ => {}
                }
            }
            let garbage = media_store::segment::trailing_garbage(&path, reader.valid_len()).unwrap();
            assert_eq!(garbage, 0, "clean shutdown leaves no torn record");
        }
    }
    frames
}

/// Checks a frame is AVCC (length-prefixed NAL units) and that key frames are IDR.
fn check_avcc(data: &[u8], keyframe: bool) {
    let mut rest = data;
    let mut nal_types = Vec::new();
    while !rest.is_empty() {
        let len = u32::from_be_bytes(rest[..4].try_into().unwrap()) as usize;
        nal_types.push(rest[4] & 0x1f);
        rest = &rest[4 + len..];
    }
    assert_eq!(keyframe, nal_types.contains(&5), "key frames are IDR: {nal_types:?}");
}

#[test]
fn gstreamer_camera_is_recorded_and_live_at_central() {
    let dir = tempfile::tempdir().unwrap();
    let (_camera, rtsp) = gst_camera(dir.path(), &["front"], &[]).unwrap();
    let central = CentralProc::start(dir.path(), 0).unwrap();
    let store = dir.path().join("store");
    let config = edge_config(
        "bus-42",
        &store,
        Some((&central.quic, &central.fingerprint)),
        &[("front", &format!("{rtsp}/front"))],
    );
    let mut edge = EdgeProc::start_enrolled(dir.path(), "edge", &config, "bus-42", &central).unwrap();

    let recorded = edge_counter_above(&edge, "front", "frames_recorded", 10);
    edge_counter_above(&edge, "front", "frames_recorded", recorded + 25);
    let bytes = edge_counter_above(&edge, "front", "bytes_recorded", 0);
    assert!(bytes > 10_000, "{bytes} bytes for {recorded}+ frames");
    let status = edge.status().unwrap();
    assert_eq!(status["unit_id"], "bus-42");
    assert_eq!(status["central_connected"], true);
    let front = camera(&status, "front").unwrap();
    assert_eq!(front["state"], "streaming");
    assert!(front["codec"].as_str().unwrap().starts_with("avc1."), "{front}");
    assert_eq!((front["width"].as_u64(), front["height"].as_u64()), (Some(640), Some(360)));
    let fps =
        wait_until("the frame rate is measured", T, || camera(&edge.status().ok()?, "front")?["fps"].as_f64()).unwrap();
    assert!((20.0..=30.0).contains(&fps), "GStreamer sends 25 fps; measured {fps}");
    let bitrate = camera(&edge.status().unwrap(), "front").unwrap()["bitrate_bps"].as_u64().unwrap();
    assert!(bitrate > 10_000, "{bitrate} b/s");
    let last = camera(&edge.status().unwrap(), "front").unwrap()["last_frame"].as_str().unwrap().to_owned();
    assert!(last.ends_with('Z') && last.contains('T'), "RFC 3339: {last}");

    // Live is on demand: nothing streams to central until someone watches.
    let c = central_camera(&central.units().unwrap(), "bus-42", "front").unwrap();
    assert_eq!((c["live"].as_bool(), c["upstreams"].as_u64()), (Some(false), Some(0)), "{c}");
    let viewer = LiveViewer::open(&central.api, "bus-42", "front").unwrap();
    let received = central_frames_above(&central, "bus-42", "front", 0);
    central_frames_above(&central, "bus-42", "front", received + 25);
    wait_until("the viewer gets frames", T, || (viewer.frames() > 25).then_some(())).unwrap();
    let seen = viewer.seen();
    assert_eq!(seen.parameters, 1, "codec parameters first");
    assert!(seen.frames[0].1, "the first frame a viewer gets is a key frame");
    drop(viewer);

    let last_seen = camera(&edge.status().unwrap(), "front").unwrap()["frames_recorded"].as_u64().unwrap();
    let exit = edge.proc.stop(Duration::from_secs(20)).unwrap();
    assert!(exit.success(), "edge exits cleanly on SIGTERM: {exit}");
    let stored = check_store(&store);
    assert!(stored["front"] >= last_seen, "store holds {} frames, API had reported {last_seen}", stored["front"]);

    // Central notices the unit is gone.
    wait_until("central shows bus-42 offline", T, || {
        let units = central.units().ok()?;
        (units[0]["connected"] == false && units[0]["cameras"][0]["live"] == false).then_some(())
    })
    .unwrap();
}

#[test]
fn two_simulated_cameras_are_recorded_and_live_at_central() {
    let dir = tempfile::tempdir().unwrap();
    let (_camera, rtsp) = sim_camera(dir.path(), &["front", "rear"], 0).unwrap();
    let central = CentralProc::start(dir.path(), 0).unwrap();
    let store = dir.path().join("store");
    let front = format!("{rtsp}/front");
    let rear = format!("{rtsp}/rear");
    let config = edge_config(
        "tram-7",
        &store,
        Some((&central.quic, &central.fingerprint)),
        &[("front", &front), ("rear", &rear)],
    );
    let mut edge = EdgeProc::start_enrolled(dir.path(), "edge", &config, "tram-7", &central).unwrap();
    for cam in ["front", "rear"] {
        let n = edge_counter_above(&edge, cam, "frames_recorded", 0);
        edge_counter_above(&edge, cam, "frames_recorded", n + 25);
        let _viewer = LiveViewer::open(&central.api, "tram-7", cam).unwrap();
        let r = central_frames_above(&central, "tram-7", cam, 0);
        central_frames_above(&central, "tram-7", cam, r + 25);
    }
    assert!(edge.proc.stop(Duration::from_secs(20)).unwrap().success());
    let stored = check_store(&store);
    assert!(stored["front"] > 25 && stored["rear"] > 25, "{stored:?}");
}

#[test]
fn an_h265_camera_is_recorded_with_its_codec() {
    let dir = tempfile::tempdir().unwrap();
    let (_camera, rtsp) = gst_camera(dir.path(), &["cab"], &["--codec", "h265"]).unwrap();
    let store = dir.path().join("store");
    let config = edge_config("bus-8", &store, None, &[("cab", &format!("{rtsp}/cab"))]);
    let mut edge = EdgeProc::start(dir.path(), "edge", &config).unwrap();
    // 5 s: the camera's first key frame (an IDR picture) and two more (CRA pictures, x265's
    // open groups of pictures), 2 s apart.
    let n = edge_counter_above(&edge, "cab", "frames_recorded", 125);
    let cab = camera(&edge.status().unwrap(), "cab").unwrap().clone();
    let codec = cab["codec"].as_str().unwrap();
    assert!(codec.starts_with("hvc1") || codec.starts_with("hev1"), "{codec}");
    assert_eq!((cab["width"].as_u64(), cab["height"].as_u64()), (Some(640), Some(360)));
    assert!(edge.proc.stop(Duration::from_secs(20)).unwrap().success());
    let (ok, stdout, _) = {
        let out = std::process::Command::new(hil_tests::bin_path("edge").unwrap())
            .args(["store", "verify", "--json"])
            .arg(&store)
            .output()
            .unwrap();
        (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned(), ())
    };
    assert!(ok, "{stdout}");
    let v: Value = serde_json::from_str(&stdout).unwrap();
    assert!(v["cameras"]["cab"]["frames"].as_u64().unwrap() >= n);
    // Every key frame counts, not only the first: live views and playback start at them.
    let frames: Vec<_> = media_store::read::read_range_with_audio(&store, "cab", 0, i64::MAX, None)
        .unwrap()
        .map(Result::unwrap)
        .filter_map(|r| match r {
            Record::Frame(f) if f.kind == media_store::MediaKind::Video => Some(f.keyframe),
            _ => None,
        })
        .collect();
    let keys: Vec<usize> = frames.iter().enumerate().filter(|(_, k)| **k).map(|(i, _)| i).collect();
    assert!(keys.len() >= 3 && keys[0] == 0, "key frames at {keys:?} of {} frames", frames.len());
    assert!(keys.windows(2).all(|w| w[1] - w[0] <= 50), "a key frame at least every 50 frames: {keys:?}");
}
