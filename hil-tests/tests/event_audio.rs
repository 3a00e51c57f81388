//! Audio in the event pre-buffer (issue 4): a GStreamer camera with AAC in `mode = "event"`,
//! triggered by a generic UDP message. The recording starts with the pre-buffer's first key
//! frame, its audio from there on (none before it, none missing), time-aligned with the video,
//! and the MP4 export carries both from the start (ffprobe).

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use hil_tests::recording_media::now_us;
use hil_tests::{EdgeProc, edge_config, get_json, gst_camera, wait_until};
use media_store::read::read_range_with_audio;
use media_store::{MediaKind, Record};
use serde_json::Value;

const T: Duration = Duration::from_secs(60);

fn wait_status<R>(edge: &EdgeProc, what: &str, mut check: impl FnMut(&Value) -> Option<R>) -> R {
    wait_until(what, T, || check(&edge.status().ok()?))
        .unwrap_or_else(|e| panic!("{e}\nlast status: {:?}\n{}", edge.status().ok(), edge.proc.log_tail()))
}

fn number(v: &Value) -> f64 {
    v.as_str().and_then(|s| s.parse().ok()).or_else(|| v.as_f64()).unwrap_or(f64::NAN)
}

#[test]
fn an_event_camera_keeps_its_audio_in_the_pre_buffer() {
    let dir = tempfile::tempdir().unwrap();
    let args = ["--audio", "aac", "--width", "320", "--height", "240", "--fps", "15", "--kbps", "300"];
    let (_camera, url) = gst_camera(dir.path(), &["front"], &args).unwrap();
    let store = dir.path().join("store");
    let config = format!(
        "{}mode = \"event\"\npre_buffer_s = 3\npost_buffer_s = 1\n\
         [generic_events]\nudp = \"127.0.0.1:0\"\n\
         [[generic_events.pattern]]\nname = \"door\"\ncontains = \"DOOR\"\n\
         [[rule]]\nname = \"door\"\ntrigger = \"generic\"\nrecord = [\"front\"]\nrecord_for_s = 3\n",
        edge_config("bus-3", &store, None, &[("front", &format!("{url}/front"))])
    );
    let mut edge = EdgeProc::start(dir.path(), "edge", &config).unwrap();
    let udp: SocketAddr =
        edge.proc.wait_line("generic events udp listening on", T).unwrap().rsplit(' ').next().unwrap().parse().unwrap();
    let since = wait_status(&edge, "the camera streams with audio", |s| {
        let c = &s["cameras"][0];
        (c["state"] == "streaming" && c["audio"]["codec"] == "aac").then(now_us)
    });
    wait_status(&edge, "the pre-buffer fills", |_| (now_us() - since > 6_000_000).then_some(()));
    assert_eq!(edge.status().unwrap()["cameras"][0]["frames_recorded"], 0, "nothing recorded before the trigger");

    std::net::UdpSocket::bind("127.0.0.1:0").unwrap().send_to(b"DOOR open", udp).unwrap();
    let event = wait_until("the message's event", T, || {
        let events = get_json(&format!("{}/api/events?since=0", edge.web)).ok()?;
        events.as_array()?.iter().find(|e| e["kind"]["GenericMatched"]["pattern"] == "door").cloned()
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", edge.proc.log_tail()));
    let t = event["time_us"].as_i64().unwrap();
    wait_status(&edge, "the rule records", |s| (s["cameras"][0]["recording"] == true).then_some(()));
    wait_status(&edge, "the recording ends", |s| (s["cameras"][0]["recording"] == false).then_some(()));

    // The export: H.264 and AAC, the audio from the start of the video.
    let timeline = get_json(&format!("{}/api/recordings", edge.web)).unwrap();
    let runs = timeline["cameras"][0]["runs"].as_array().cloned().unwrap();
    let (first, last) = (runs[0][0].as_str().unwrap(), runs[runs.len() - 1][1].as_str().unwrap());
    let export = format!("{}/api/recordings/front/export.mp4?start={first}&end={last}", edge.web);
    let bytes = ureq::get(&export).call().unwrap().body_mut().with_config().limit(1 << 30).read_to_vec().unwrap();
    let mp4 = dir.path().join("front.mp4");
    std::fs::write(&mp4, bytes).unwrap();
    let exit = edge.proc.stop(Duration::from_secs(20)).unwrap();
    assert!(exit.success(), "{exit}\n{}", edge.proc.log_tail());

    // The store: the pre-buffer's video from a key frame, its audio from there, none missing.
    let records: Vec<Record> =
        read_range_with_audio(&store, "front", 0, i64::MAX, None).unwrap().map(Result::unwrap).collect();
    let of = |kind: MediaKind| -> Vec<(i64, usize)> {
        records
            .iter()
            .filter_map(|r| match r {
                Record::Frame(f) if f.kind == kind => Some((f.wall_clock_us, f.data.len())),
                _ => None,
            })
            .collect()
    };
    let (video, audio) = (of(MediaKind::Video), of(MediaKind::Audio));
    assert!(matches!(records.iter().find(|r| matches!(r, Record::Frame(_))), Some(Record::Frame(f)) if f.keyframe));
    let (v0, v1) = (video[0].0, video[video.len() - 1].0);
    let pre = (t - v0) as f64 / 1e6;
    assert!((2.5..6.0).contains(&pre), "the pre-buffer: video {pre} s before the trigger");
    let (a0, a1) = (audio[0].0, audio[audio.len() - 1].0);
    assert!(a0 >= v0, "no audio before the first key frame: audio {a0}, video {v0}");
    assert!(a0 - v0 < 150_000, "the audio starts with the video: {} ms later", (a0 - v0) / 1000);
    assert!((v1 - a1).abs() < 300_000, "and ends with it: {} ms apart", (v1 - a1) / 1000);
    let before = audio.iter().filter(|(w, _)| *w < t).count();
    assert!(before as f64 > (pre - 0.3) * 46.0, "{before} audio frames of the pre-buffer over {pre} s");
    // AAC-LC at 48 kHz: 1024 samples a frame; the frames fill the time they span.
    let samples = 1024.0 * (audio.len() - 1) as f64;
    let span = (a1 - a0) as f64 / 1e6;
    assert!((samples / 48_000.0 - span).abs() < 0.3, "{} frames over {span} s", audio.len());
    let seq: Vec<i64> = records
        .iter()
        .filter_map(|r| match r {
            Record::Frame(f) if f.kind == MediaKind::Audio => Some(f.wall_clock_us),
            _ => None,
        })
        .collect();
    assert!(seq.windows(2).all(|w| w[0] < w[1]), "audio in order");

    let out = Command::new("ffprobe")
        .args(["-v", "error", "-show_streams", "-of", "json"])
        .arg(&mp4)
        .output()
        .expect("ffprobe is installed by ./dev setup");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let probe: Value = serde_json::from_slice(&out.stdout).unwrap();
    let streams = probe["streams"].as_array().unwrap();
    let kind = |k: &str| streams.iter().find(|s| s["codec_type"] == k).unwrap_or_else(|| panic!("{k}: {probe:#}"));
    let (v, a) = (kind("video"), kind("audio"));
    assert_eq!((&v["codec_name"], &a["codec_name"]), (&Value::from("h264"), &Value::from("aac")));
    let (vs, as_) = (number(&v["start_time"]), number(&a["start_time"]));
    let (vd, ad) = (number(&v["duration"]), number(&a["duration"]));
    assert!((as_ - vs).abs() < 0.2, "audio starts at {as_} s, video at {vs} s");
    assert!((ad - vd).abs() < 0.5, "audio {ad} s beside video {vd} s");
    println!(
        "pre-buffer {pre:.2} s; audio from {:.0} ms after the first key frame; export video {vd:.2} s, audio {ad:.2} s",
        (a0 - v0) as f64 / 1e3
    );
}
