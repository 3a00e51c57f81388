//! Audio beside video (issue 4): GStreamer's RTSP server as cameras with AAC, G.711 µ-law and
//! A-law, and audio the unit cannot record (24-bit linear PCM); the unit records what it can,
//! says why not otherwise, keeps recording video either way (over TCP and UDP), and its MP4
//! exports carry the audio (checked by ffprobe, a reader we did not write).

use std::path::Path;
use std::time::Duration;

use hil_tests::media::{ffprobe, ffprobe_number};
use hil_tests::{EdgeProc, Proc, edge_config, gst_camera, wait_until};
use media_store::read::read_range_with_audio;
use media_store::{MediaKind, Record};
use serde_json::{Value, json};

const T: Duration = Duration::from_secs(60);

/// A GStreamer camera serving `mount` with `--audio audio`, small and slow to spare the CPU.
fn camera(dir: &Path, mount: &str, audio: &str) -> (Proc, String) {
    let dir = dir.join(mount);
    std::fs::create_dir_all(&dir).unwrap();
    let args = ["--audio", audio, "--width", "320", "--height", "240", "--fps", "15", "--kbps", "300"];
    let (proc, url) = gst_camera(&dir, &[mount], &args).unwrap();
    (proc, format!("{url}/{mount}"))
}

fn cam<'a>(status: &'a Value, id: &str) -> &'a Value {
    status["cameras"].as_array().and_then(|a| a.iter().find(|c| c["id"] == id)).unwrap_or(&Value::Null)
}

/// While the camera records, the last this long of its recording is left out of an export:
/// its audio may still be on the way (a GStreamer camera under load sends its audio up to a
/// second behind its video), and the check is that the audio the unit has lies beside the video.
const IN_FLIGHT: jiff::SignedDuration = jiff::SignedDuration::from_secs(2);

/// `GET /api/recordings/{camera}/export.mp4` over the camera's recording but its last
/// [`IN_FLIGHT`], into `out`.
fn export(edge: &EdgeProc, camera: &str, out: &Path) -> (f64, u16) {
    let timeline = hil_tests::get_json(&format!("{}/api/recordings", edge.web)).unwrap();
    let runs = &cam(&timeline, camera)["runs"];
    let at = |v: &Value| v.as_str().unwrap().parse::<jiff::Timestamp>().unwrap();
    let first = at(&runs[0][0]);
    let last = at(&runs[runs.as_array().unwrap().len() - 1][1]).checked_sub(IN_FLIGHT).unwrap();
    let url = format!("{}/api/recordings/{camera}/export.mp4?start={first}&end={last}", edge.web);
    let mut response = ureq::get(&url).call().unwrap();
    let status = response.status().as_u16();
    let bytes = response.body_mut().with_config().limit(1 << 30).read_to_vec().unwrap();
    std::fs::write(out, bytes).unwrap();
    (last.duration_since(first).as_secs_f64(), status)
}

#[test]
fn aac_and_g711_are_recorded_beside_video_and_exported() {
    let dir = tempfile::tempdir().unwrap();
    let (_aac, aac_url) = camera(dir.path(), "front", "aac");
    let (_pcmu, pcmu_url) = camera(dir.path(), "cab", "pcmu");
    let (_pcma, pcma_url) = camera(dir.path(), "side", "pcma");
    let (_l24, l24_url) = camera(dir.path(), "rear", "l24");
    let store = dir.path().join("store");
    let config = edge_config(
        "bus-9",
        &store,
        None,
        &[("front", &aac_url), ("cab", &pcmu_url), ("side", &pcma_url), ("rear", &l24_url)],
    );
    // The A-law camera over UDP: its audio on RTP ports of its own.
    let side = format!("id = \"side\"\nurl = {pcma_url:?}\n");
    let config = config.replace(&side, &format!("{side}transport = \"udp\"\n"));
    assert!(config.contains("transport = \"udp\""), "{config}");
    let edge = EdgeProc::start(dir.path(), "edge", &config).unwrap();

    // /api/status: the audio each camera sends, or why it is not recorded. (Its
    // `frames_recorded` counts audio frames too, so the store is asked for the video: cameras
    // start at different times under load.)
    let mut counts = Vec::new();
    let status = wait_until("every camera records 8 s of video and knows its audio", T, || {
        let s = edge.status().ok()?;
        counts = ["front", "cab", "side", "rear"].map(|c| (c, video_frames(&store, c))).to_vec();
        let recorded = counts.iter().all(|(_, n)| n.as_ref().is_ok_and(|n| *n >= 120));
        let known = cam(&s, "front")["audio"].is_object()
            && cam(&s, "cab")["audio"].is_object()
            && cam(&s, "side")["audio"].is_object()
            && cam(&s, "rear")["audio_reason"].is_string();
        (recorded && known).then_some(s)
    })
    .unwrap_or_else(|e| panic!("{e}; video frames in the store: {:?}\n{}", counts, edge.proc.log_tail()));
    assert_eq!(
        cam(&status, "front")["audio"],
        json!({"codec": "aac", "sample_rate": 48000, "channels": 1}),
        "{status:#}"
    );
    assert!(cam(&status, "front")["audio_reason"].is_null());
    assert_eq!(cam(&status, "cab")["audio"], json!({"codec": "pcmu", "sample_rate": 8000, "channels": 1}));
    assert_eq!(cam(&status, "side")["audio"], json!({"codec": "pcma", "sample_rate": 8000, "channels": 1}));
    let rear = cam(&status, "rear");
    assert!(rear["audio"].is_null(), "{rear}");
    let why = rear["audio_reason"].as_str().unwrap();
    assert!(why.contains("audio/l24") && why.contains("AAC") && why.contains("video only"), "{why}");
    for c in ["front", "cab", "side", "rear"] {
        assert_eq!(cam(&status, c)["state"], "streaming", "{c}: {status:#}");
        assert_eq!(cam(&status, c)["codec"].as_str().map(|s| &s[..4]), Some("avc1"), "{c}");
    }

    // The store: audio parameters and audio frames beside the video, at the camera's rate.
    for (camera, codec, rate, per_frame) in
        [("front", "mp4a.40.2", 48_000, 1024.0), ("cab", "ulaw", 8_000, 0.0), ("side", "alaw", 8_000, 0.0)]
    {
        let records: Vec<Record> =
            read_range_with_audio(&store, camera, 0, i64::MAX, None).unwrap().map(Result::unwrap).collect();
        let params = records.iter().find_map(|r| match r {
            Record::AudioParameters(p) => Some(p.clone()),
            _ => None,
        });
        let params = params.unwrap_or_else(|| panic!("{camera}: no audio parameters"));
        assert_eq!((params.codec.as_str(), params.sample_rate, params.channels), (codec, rate, 1));
        let audio: Vec<_> = records
            .iter()
            .filter_map(|r| match r {
                Record::Frame(f) if f.kind == MediaKind::Audio => Some(f),
                _ => None,
            })
            .collect();
        let video = records.iter().filter(|r| matches!(r, Record::Frame(f) if f.kind == MediaKind::Video)).count();
        assert!(video >= 100, "{camera}: {video} video frames");
        // By the camera's clock (the RTP timestamps as pts): the wall clock follows when the
        // frames were received, and a burst at the session's start (audio the camera buffered
        // while its pipeline started, about 1 s under load) squeezes it.
        let span = (audio.last().unwrap().pts - audio[0].pts) as f64 / f64::from(rate);
        let samples: f64 = if per_frame > 0.0 {
            per_frame * (audio.len() - 1) as f64
        } else {
            audio[..audio.len() - 1].iter().map(|f| f.data.len() as f64).sum()
        };
        // The frames' samples fill the time they span (nothing lost, nothing doubled).
        assert!((samples / f64::from(rate) - span).abs() < 0.3, "{camera}: {samples} samples over {span} s");
        assert!(span > 5.0, "{camera}: audio over {span} s");
        let wall = (audio.last().unwrap().wall_clock_us - audio[0].wall_clock_us) as f64 / 1e6;
        assert!(
            (wall - span).abs() < 2.0,
            "{camera}: audio over {span} s by the camera's clock, {wall} s by the unit's"
        );
    }

    // Export over the unit's API: H.264 and AAC, both as long as the recording.
    let mp4 = dir.path().join("front.mp4");
    let (seconds, code) = export(&edge, "front", &mp4);
    assert_eq!(code, 200);
    let probe = ffprobe(&mp4);
    let streams = probe["streams"].as_array().unwrap();
    let kind = |k: &str| streams.iter().find(|s| s["codec_type"] == k).unwrap_or_else(|| panic!("{k}: {probe:#}"));
    let (video, audio) = (kind("video"), kind("audio"));
    assert_eq!(video["codec_name"], "h264");
    assert_eq!(
        (&audio["codec_name"], &audio["sample_rate"], &audio["channels"]),
        (&json!("aac"), &json!("48000"), &json!(1))
    );
    let (vd, ad) = (ffprobe_number(&video["duration"]), ffprobe_number(&audio["duration"]));
    assert!((vd - seconds).abs() < 1.5, "video {vd} s of a {seconds} s recording");
    let audio_end = ffprobe_number(&audio["start_time"]) + ad;
    assert!((audio_end - vd).abs() < 1.0 && ad > vd - 2.0, "audio {ad} s (ends at {audio_end}) beside video {vd} s");
    assert!(ffprobe_number(&audio["nb_read_frames"]) > 0.0);
    println!(
        "front: recording {seconds:.2} s, export video {vd:.3} s, audio {ad:.3} s from {:.3} s",
        ffprobe_number(&audio["start_time"])
    );

    // G.711 exports as it was recorded: `ulaw`/`alaw` sample entries ffprobe reads.
    for (camera, name) in [("cab", "pcm_mulaw"), ("side", "pcm_alaw")] {
        let mp4 = dir.path().join(format!("{camera}.mp4"));
        let (seconds, code) = export(&edge, camera, &mp4);
        assert_eq!(code, 200);
        let probe = ffprobe(&mp4);
        let streams = probe["streams"].as_array().unwrap();
        let kind = |k: &str| streams.iter().find(|s| s["codec_type"] == k).unwrap_or_else(|| panic!("{k}: {probe:#}"));
        let (video, audio) = (kind("video"), kind("audio"));
        assert_eq!(video["codec_name"], "h264");
        assert_eq!((&audio["codec_name"], &audio["sample_rate"]), (&json!(name), &json!("8000")), "{probe:#}");
        let (vd, ad) = (ffprobe_number(&video["duration"]), ffprobe_number(&audio["duration"]));
        assert!((vd - seconds).abs() < 1.5, "{camera}: video {vd} s of a {seconds} s recording");
        let audio_end = ffprobe_number(&audio["start_time"]) + ad;
        // G.711 from GStreamer's test camera under CI's load: the A-law camera over UDP once
        // ended 1.1 s before its video, with the ingest threads napping 250 ms while the stamps
        // followed the average read time (the frame clock now follows the earliest); 0.0-0.3 s
        // on a quiet machine.
        assert!(
            (audio_end - vd).abs() < 1.5 && ad > vd - 2.0,
            "{camera}: audio {ad} s (ends at {audio_end}) beside video {vd} s"
        );
        println!(
            "{camera}: recording {seconds:.2} s, export video {vd:.3} s, {name} {ad:.3} s, audio end {audio_end:.3}"
        );
    }
}

/// Video frames of `camera` in the store so far (none while it has no log yet), or why they
/// cannot be read.
fn video_frames(store: &Path, camera: &str) -> Result<usize, String> {
    let mut n = 0;
    for r in read_range_with_audio(store, camera, 0, i64::MAX, None).map_err(|e| e.to_string())? {
        match r {
            Ok(Record::Frame(f)) if f.kind == MediaKind::Video => n += 1,
            Ok(_) => {}
            Err(e) => return Err(format!("after {n} video frames: {e}")),
        }
    }
    Ok(n)
}

fn now_us() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_micros() as i64
}

fn rfc3339(us: i64) -> String {
    jiff::Timestamp::from_microsecond(us).unwrap().to_string()
}

/// Central takes the video of a camera with audio (the live stream carries video only; retrieval
/// brings audio too, see `central_audio.rs`): live video reaches a viewer, a retrieval finishes,
/// central's frames are the unit's video frames byte for byte, and central's export of them is a
/// valid H.264 MP4 with the audio beside it.
#[test]
fn central_retrieves_the_video_of_a_camera_with_audio() {
    use hil_tests::media::{central_frame_hashes, compare, frame_hashes};
    let dir = tempfile::tempdir().unwrap();
    let (_aac, aac_url) = camera(dir.path(), "front", "aac");
    let central = hil_tests::CentralProc::start(dir.path(), 0).unwrap();
    let store = dir.path().join("store");
    let config = edge_config("bus-7", &store, Some((&central.quic, &central.fingerprint)), &[("front", &aac_url)]);
    let edge = EdgeProc::start_enrolled(dir.path(), "edge", &config, "bus-7", &central).unwrap();
    let t0 = now_us();
    wait_until("the unit records 8 s with audio", T, || {
        let s = edge.status().ok()?;
        (cam(&s, "front")["audio"]["codec"] == "aac" && now_us() - t0 > 8_000_000).then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", edge.proc.log_tail()));
    // Live through central: video only, as before audio (15 fps, a key frame first).
    let viewer = hil_tests::LiveViewer::open(&central.api, "bus-7", "front").unwrap();
    wait_until("a live viewer gets 30 frames", T, || (viewer.frames() >= 30).then_some(()))
        .unwrap_or_else(|e| panic!("{e}\n{}", edge.proc.log_tail()));
    let seen = viewer.seen();
    assert!(seen.parameters >= 1 && seen.frames[0].1, "parameters, then a key frame first");
    // Video frames only: pts rise in steps of whole frames (90 kHz / 15 fps; a slow viewer may
    // skip some, never see audio).
    let steps = seen.frames.windows(2).map(|w| w[1].0 - w[0].0);
    assert!(steps.clone().all(|d| d > 0 && d % 6000 == 0), "{:?}", steps.collect::<Vec<_>>());
    drop(viewer);

    // The range from the recording itself: under load the camera can start seconds after t0.
    let first_us = wait_until("the unit's store holds 8 s of video", T, || {
        let (frames, _) = frame_hashes(&store, "front", 0, i64::MAX);
        let (first, last) = (*frames.keys().next()?, *frames.keys().next_back()?);
        (last - first >= 8_000_000).then_some(first)
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", edge.proc.log_tail()));
    let (start, end) = (first_us + 2_000_000, first_us + 7_000_000);
    let id = central.retrieve("bus-7", "front", start, end).unwrap();
    let done = central.wait_retrieval(id, T).unwrap_or_else(|e| panic!("{e}\n{}", central.proc.log_tail()));
    assert_eq!(done["state"], "done", "{done}");
    assert_eq!(done["bytes_done"], done["bytes_total"], "{done}");

    let (unit, _) = frame_hashes(&store, "front", start, end);
    let (held, held_dups) = central_frame_hashes(&dir.path().join("central"), "bus-7", "front", start, end);
    assert!(unit.len() > 50, "{} video frames at the unit", unit.len());
    let audio_frames = read_range_with_audio(&store, "front", start, end, None)
        .unwrap()
        .filter(|r| matches!(r, Ok(Record::Frame(f)) if f.kind == MediaKind::Audio))
        .count();
    assert!(audio_frames > 100, "the unit holds audio in the range: {audio_frames}");
    let (missing, extra, differ) = compare(&unit, &held);
    assert_eq!((missing.len(), extra.len(), differ.len(), held_dups), (0, 0, 0, 0), "central holds the unit's video");

    let url = format!(
        "{}/api/units/bus-7/cameras/front/export.mp4?start={}&end={}",
        central.web,
        rfc3339(start),
        rfc3339(end)
    );
    let mut response = central.get(&url).call().unwrap();
    let bytes = response.body_mut().with_config().limit(1 << 30).read_to_vec().unwrap();
    let mp4 = dir.path().join("central.mp4");
    std::fs::write(&mp4, bytes).unwrap();
    let probe = ffprobe(&mp4);
    let streams = probe["streams"].as_array().unwrap();
    assert_eq!(streams.len(), 2, "{probe:#}");
    assert_eq!(streams[0]["codec_name"], "h264");
    assert_eq!(streams[1]["codec_name"], "aac", "{probe:#}");
    // From the key frame at or before the start (one every 2 s) to the end.
    let d = ffprobe_number(&streams[0]["duration"]);
    assert!((4.5..=7.5).contains(&d), "{d} s: {probe:#}");
}
