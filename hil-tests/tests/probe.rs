//! `edge probe URL`: what a technician sees before adding a camera, against GStreamer's RTSP
//! server (H.264 and H.265; with AAC, G.711 or audio the unit cannot record).

use std::process::Command;

use hil_tests::{bin_path, gst_camera};
use serde_json::Value;

fn probe(url: &str) -> (bool, String, String) {
    let out = Command::new(bin_path("edge").unwrap()).args(["probe", url, "--seconds", "3"]).output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn probe_reports_what_the_camera_sends() {
    let dir = tempfile::tempdir().unwrap();
    for (codec, prefixes) in [("h264", &["avc1"][..]), ("h265", &["hvc1", "hev1"][..])] {
        let (_cam, rtsp) = gst_camera(dir.path(), &["cam"], &["--codec", codec]).unwrap();
        let (ok, stdout, stderr) = probe(&format!("{rtsp}/cam"));
        assert!(ok, "{stdout}{stderr}");
        let r: Value = serde_json::from_str(&stdout).unwrap();
        assert_eq!(r["streams"], serde_json::json!([format!("video/{codec}")]));
        let v = &r["video"];
        let got = v["codec"].as_str().unwrap().to_lowercase();
        assert!(prefixes.iter().any(|p| got.starts_with(p)), "{codec}: {got}");
        assert_eq!((v["width"].as_u64(), v["height"].as_u64()), (Some(640), Some(360)));
        let fps = v["fps"].as_f64().unwrap();
        assert!((20.0..=30.0).contains(&fps), "{codec}: {fps} fps (the server sends 25)");
        assert!(v["bitrate_bps"].as_u64().unwrap() > 10_000);
        // The fixture asks the encoder for a key frame at least every 50 frames; 3 s hold two
        // of them. (x265's second key frame is a CRA picture, a key frame too.)
        let gop = v["keyframe_interval_frames"].as_u64();
        assert!(gop.is_some_and(|g| (1..=50).contains(&g)), "{codec}: GOP {gop:?}: {v}");
        assert!(r["audio"].is_null() && r["audio_reason"].is_null(), "no audio: {r}");
    }
}

#[test]
fn probe_reports_the_audio_that_would_be_recorded_or_why_not() {
    let dir = tempfile::tempdir().unwrap();
    for (audio, streams, expected) in [
        ("aac", "audio/mpeg4-generic", Some(serde_json::json!({"codec": "aac", "sample_rate": 48000, "channels": 1}))),
        ("pcma", "audio/pcma", Some(serde_json::json!({"codec": "pcma", "sample_rate": 8000, "channels": 1}))),
        ("l24", "audio/l24", None),
    ] {
        let cam_dir = dir.path().join(audio);
        std::fs::create_dir_all(&cam_dir).unwrap();
        let (_cam, rtsp) = gst_camera(&cam_dir, &["cam"], &["--audio", audio]).unwrap();
        let (ok, stdout, stderr) = probe(&format!("{rtsp}/cam"));
        assert!(ok, "{stdout}{stderr}");
        let r: Value = serde_json::from_str(&stdout).unwrap();
        assert_eq!(r["streams"], serde_json::json!(["video/h264", streams]), "{r}");
        assert_eq!(r["video"]["width"], 640, "{r}");
        match expected {
            Some(a) => assert_eq!((&r["audio"], &r["audio_reason"]), (&a, &Value::Null), "{r}"),
            None => {
                assert!(r["audio"].is_null(), "{r}");
                assert!(r["audio_reason"].as_str().unwrap().contains("audio/l24"), "{r}");
            }
        }
    }
}

#[test]
fn probing_an_unreachable_camera_fails_with_the_reason() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let (ok, _, stderr) = probe(&format!("rtsp://{closed}/x"));
    assert!(!ok);
    assert!(stderr.contains("cannot probe") && stderr.contains("refused"), "{stderr}");
    let (ok, _, stderr) = probe("http://127.0.0.1/x");
    assert!(!ok && stderr.contains("not an rtsp://"), "{stderr}");
}
