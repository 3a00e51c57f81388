//! ONVIF metadata streams (issue 4): GStreamer's RTSP server as cameras serving H.264 (one with
//! AAC) and an ONVIF metadata stream (`fixtures/gst_onvif_camera.py`: real RTSP and RTP, the
//! metadata packets built by the fixture). The unit records the messages byte for byte as the
//! camera sent them, counts them in `/api/status`, turns a motion notification into an
//! `OnvifEvent` that fires a rule recording a camera in event mode (its pre-buffer, metadata
//! included), and its MP4 exports still hold only video and audio (ffprobe, a reader we did
//! not write).

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use hil_tests::onvif_camera::{OnvifCamera, stored_records};
use hil_tests::recording_media::now_us;
use hil_tests::{EdgeProc, edge_config, get_json, wait_until};
use media_store::{MediaKind, Record, StoredFrame};
use serde_json::Value;

const T: Duration = Duration::from_secs(60);

fn cam<'a>(status: &'a Value, id: &str) -> &'a Value {
    status["cameras"].as_array().and_then(|a| a.iter().find(|c| c["id"] == id)).unwrap_or(&Value::Null)
}

fn wait_status<R>(edge: &EdgeProc, what: &str, mut check: impl FnMut(&Value) -> Option<R>) -> R {
    wait_until(what, T, || check(&edge.status().ok()?))
        .unwrap_or_else(|e| panic!("{e}\nlast status: {:?}\n{}", edge.status().ok(), edge.proc.log_tail()))
}

fn events(edge: &EdgeProc) -> Vec<Value> {
    get_json(&format!("{}/api/events?since=0", edge.web)).ok().and_then(|v| v.as_array().cloned()).unwrap_or_default()
}

/// Waits for the `OnvifEvent` of `camera` whose `IsMotion` is `state`.
fn motion_event(edge: &EdgeProc, camera: &str, state: &str) -> Value {
    let pick = |e: &Value| {
        let o = &e["kind"]["OnvifEvent"];
        o["camera"] == camera && o["topic"] == "RuleEngine/CellMotionDetector/Motion" && o["data"]["IsMotion"] == state
    };
    wait_until("the camera's motion event", T, || events(edge).into_iter().find(pick))
        .unwrap_or_else(|e| panic!("{e}\nevents: {:#?}\n{}", events(edge), edge.proc.log_tail()))
}

fn frames(records: &[Record], kind: MediaKind) -> Vec<&StoredFrame> {
    records
        .iter()
        .filter_map(|r| match r {
            Record::Frame(f) if f.kind == kind => Some(f),
            _ => None,
        })
        .collect()
}

fn ffprobe_streams(path: &Path) -> Vec<Value> {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-show_streams", "-of", "json"])
        .arg(path)
        .output()
        .expect("ffprobe is installed by ./dev setup");
    assert!(out.status.success(), "ffprobe refused the file: {}", String::from_utf8_lossy(&out.stderr));
    let probe: Value = serde_json::from_slice(&out.stdout).unwrap();
    probe["streams"].as_array().cloned().unwrap_or_default()
}

/// `GET /api/recordings/{camera}/export.mp4` over the camera's whole recording: the file's bytes.
fn export(edge: &EdgeProc, camera: &str) -> Vec<u8> {
    let timeline = get_json(&format!("{}/api/recordings", edge.web)).unwrap();
    let runs = cam(&timeline, camera)["runs"].as_array().cloned().unwrap_or_default();
    assert!(!runs.is_empty(), "{camera} recorded: {timeline:#}");
    let (first, last) = (&runs[0][0], &runs[runs.len() - 1][1]);
    let (first, last) = (first.as_str().unwrap(), last.as_str().unwrap());
    let url = format!("{}/api/recordings/{camera}/export.mp4?start={first}&end={last}", edge.web);
    let mut response = ureq::get(&url).call().unwrap();
    assert_eq!(response.status().as_u16(), 200);
    response.body_mut().with_config().limit(1 << 30).read_to_vec().unwrap()
}

#[test]
fn onvif_metadata_is_recorded_counted_and_its_motion_fires_a_rule() {
    let dir = tempfile::tempdir().unwrap();
    let front = OnvifCamera::start(dir.path(), "front", &["--audio", "aac"]).unwrap();
    let mut cab = OnvifCamera::start(dir.path(), "cab", &[]).unwrap();
    let store = dir.path().join("store");
    let config = edge_config("bus-5", &store, None, &[("front", &front.url), ("cab", &cab.url)]);
    let cab_entry = format!("id = \"cab\"\nurl = {:?}\n", cab.url);
    let config = config.replace(
        &cab_entry,
        &format!("{cab_entry}mode = \"event\"\npre_buffer_s = 3\npost_buffer_s = 1\nmetadata = true\n"),
    ) + "[[rule]]\nname = \"cab-motion\"\ntrigger = \"onvif\"\ncamera = \"cab\"\n\
         topic = \"CellMotionDetector/Motion\"\nrecord = [\"cab\"]\n";
    assert!(config.contains("mode = \"event\""), "{config}");
    let mut edge = EdgeProc::start(dir.path(), "edge", &config).unwrap();

    // Both cameras stream with their metadata; the event camera only reads it (for events).
    let since = wait_status(&edge, "both cameras stream their metadata", |s| {
        let ok = ["front", "cab"].iter().all(|c| cam(s, c)["metadata"]["messages_received"].as_u64() >= Some(5));
        ok.then(now_us)
    });
    wait_status(&edge, "the pre-buffer fills", |_| (now_us() - since > 5_000_000).then_some(()));
    let status = edge.status().unwrap();
    let c = cam(&status, "cab");
    assert_eq!(c["metadata"]["encoding"], "application/vnd.onvif.metadata", "{c:#}");
    assert!(c["metadata_reason"].is_null(), "{c:#}");
    assert_eq!((c["frames_recorded"].as_u64(), c["metadata"]["messages_recorded"].as_u64()), (Some(0), Some(0)));
    assert_eq!(c["metadata"]["events"], 0, "no notification yet: {c:#}");
    let f = cam(&status, "front");
    assert_eq!(f["audio"]["codec"], "aac", "{f:#}");
    assert!(f["metadata"]["last_message"].as_str().is_some_and(|t| t.parse::<jiff::Timestamp>().is_ok()), "{f:#}");

    // Motion in the event camera's metadata: its rule records it, pre-buffer first.
    cab.motion(true).unwrap();
    let on = motion_event(&edge, "cab", "true");
    assert_eq!(on["kind"]["OnvifEvent"]["source"]["Rule"], "Zelle Überwachung", "{on}");
    assert_eq!(on["kind"]["OnvifEvent"]["operation"], "Changed", "{on}");
    let t_on = on["time_us"].as_i64().unwrap();
    wait_status(&edge, "the rule records the camera", |s| (cam(s, "cab")["recording"] == true).then_some(()));
    wait_status(&edge, "3 s of motion", |_| (now_us() - t_on > 3_000_000).then_some(()));
    cab.motion(false).unwrap();
    let t_off = motion_event(&edge, "cab", "false")["time_us"].as_i64().unwrap();
    wait_status(&edge, "the recording ends after the post-buffer", |s| {
        (cam(s, "cab")["recording"] == false).then_some(())
    });
    let status = edge.status().unwrap();
    let (front_status, cab_status) = (cam(&status, "front").clone(), cam(&status, "cab").clone());
    assert_eq!(cab_status["metadata"]["events"], 2, "{cab_status:#}");
    // Exports: video and audio only, no metadata in the file.
    let mp4 = dir.path().join("front.mp4");
    let bytes = export(&edge, "front");
    assert!(!bytes.windows(17).any(|w| w == b"tt:MetadataStream"), "no metadata inside the MP4");
    std::fs::write(&mp4, bytes).unwrap();
    let streams = ffprobe_streams(&mp4);
    let kinds: Vec<(&str, &str)> =
        streams.iter().map(|s| (s["codec_type"].as_str().unwrap(), s["codec_name"].as_str().unwrap_or(""))).collect();
    assert_eq!(kinds, [("video", "h264"), ("audio", "aac")], "{streams:#?}");
    let mp4 = dir.path().join("cab.mp4");
    let bytes = export(&edge, "cab");
    assert!(!bytes.windows(17).any(|w| w == b"tt:MetadataStream"), "no metadata inside the MP4");
    std::fs::write(&mp4, bytes).unwrap();
    let streams = ffprobe_streams(&mp4);
    assert_eq!(streams.len(), 1, "{streams:#?}");
    assert_eq!(streams[0]["codec_name"], "h264");
    let exit = edge.proc.stop(Duration::from_secs(20)).unwrap();
    assert!(exit.success(), "{exit}\n{}", edge.proc.log_tail());

    // The continuous camera's messages are in its log byte for byte as sent, in order, none
    // missing between the first and the last; /api/status counted them.
    let records = stored_records(&store, "front").unwrap();
    let stored = frames(&records, MediaKind::Metadata);
    let sent = front.sent().unwrap();
    let counted = front_status["metadata"]["messages_recorded"].as_u64().unwrap() as usize;
    assert!(counted >= 50 && stored.len() >= counted, "{} stored, {counted} counted", stored.len());
    let first = sent.iter().position(|m| *m == stored[0].data).expect("the first stored message was sent");
    for (i, f) in stored.iter().enumerate() {
        assert!(sent.get(first + i) == Some(&f.data), "stored message {i} is sent message {}", first + i);
    }
    assert!(stored.iter().any(|f| f.data.len() > 3_000), "large messages, several RTP packets each, whole");
    assert!(stored.windows(2).all(|w| w[0].wall_clock_us < w[1].wall_clock_us), "stamped in order");
    let video = frames(&records, MediaKind::Video);
    assert!(video.len() > 150 && !frames(&records, MediaKind::Audio).is_empty());
    let (v0, v1) = (video[0].wall_clock_us, video[video.len() - 1].wall_clock_us);
    let (m0, m1) = (stored[0].wall_clock_us, stored[stored.len() - 1].wall_clock_us);
    assert!((m0 - v0).abs() < 1_500_000 && (m1 - v1).abs() < 1_500_000, "beside the video: {m0}..{m1} vs {v0}..{v1}");

    // The event camera: its recording starts with the pre-buffer on a key frame, metadata with
    // it (from that key frame on), and holds the motion messages byte for byte.
    let records = stored_records(&store, "cab").unwrap();
    let video = frames(&records, MediaKind::Video);
    let metadata = frames(&records, MediaKind::Metadata);
    assert!(video[0].keyframe);
    let start = video[0].wall_clock_us;
    let pre = (t_on - start) as f64 / 1e6;
    assert!((2.5..6.0).contains(&pre), "the pre-buffer: {pre} s before the motion");
    let end = video[video.len() - 1].wall_clock_us;
    let after = (end - t_off) as f64 / 1e6;
    assert!((0.5..4.0).contains(&after), "post-buffer and the rest of a GOP: {after} s after the motion ended");
    assert!(metadata.iter().all(|m| m.wall_clock_us >= start), "no metadata before the first key frame");
    assert!(metadata.iter().filter(|m| m.wall_clock_us < t_on).count() >= 10, "metadata of the pre-buffer");
    let sent = cab.sent().unwrap();
    for m in &metadata {
        assert!(sent.contains(&m.data), "a stored message the camera did not send");
    }
    let motion: Vec<&&StoredFrame> =
        metadata.iter().filter(|m| m.data.windows(9).any(|w| w == b"IsMotion\"")).collect();
    assert_eq!(motion.len(), 2, "both motion messages are recorded");
    assert_eq!(records.iter().filter(|r| matches!(r, Record::Parameters(_))).count(), 1);

    println!(
        "front: {} messages recorded ({counted} counted while running); cab: pre-buffer {pre:.2} s, {} messages",
        stored.len(),
        metadata.len()
    );
}

/// `metadata = false`: the stream is not set up, nothing recorded or shown, no events.
#[test]
fn metadata_false_leaves_the_stream_alone() {
    let dir = tempfile::tempdir().unwrap();
    let mut camera = OnvifCamera::start(dir.path(), "front", &[]).unwrap();
    let store = dir.path().join("store");
    let config = edge_config("bus-6", &store, None, &[("front", &camera.url)])
        .replace("url = ", "metadata = false\nurl = ")
        + "[[rule]]\nname = \"m\"\ntrigger = \"onvif\"\nnotify_central = true\n";
    let mut edge = EdgeProc::start(dir.path(), "edge", &config).unwrap();
    wait_status(&edge, "the camera records 3 s", |s| {
        (cam(s, "front")["frames_recorded"].as_u64()? >= 45).then_some(())
    });
    camera.motion(true).unwrap();
    wait_status(&edge, "another second", |s| (cam(s, "front")["frames_recorded"].as_u64()? >= 75).then_some(()));
    let status = edge.status().unwrap();
    let c = cam(&status, "front");
    assert!(c["metadata"].is_null() && c["metadata_reason"].is_null(), "{c:#}");
    assert!(!events(&edge).iter().any(|e| e["kind"]["OnvifEvent"].is_object()), "no ONVIF events");
    edge.proc.stop(Duration::from_secs(20)).unwrap();
    let records = stored_records(&store, "front").unwrap();
    assert!(frames(&records, MediaKind::Metadata).is_empty());
    assert!(frames(&records, MediaKind::Video).len() >= 75);
}

/// A metadata stream that breaks (a message cut short, then another timestamp: retina fails
/// the session) costs the video one reconnect: the next session records video without the
/// metadata and says why.
#[test]
fn a_broken_metadata_stream_never_stops_the_video() {
    let dir = tempfile::tempdir().unwrap();
    let camera = OnvifCamera::start(dir.path(), "front", &["--break-after", "20"]).unwrap();
    let store = dir.path().join("store");
    let config = edge_config("bus-8", &store, None, &[("front", &camera.url)]);
    let mut edge = EdgeProc::start(dir.path(), "edge", &config).unwrap();
    let before = wait_status(&edge, "video again without the metadata", |s| {
        let c = cam(s, "front");
        let why = c["metadata_reason"].as_str()?;
        (c["state"] == "streaming" && why.contains("failed while its metadata was on")).then(|| c.clone())
    });
    assert!(before["metadata"].is_null(), "{before:#}");
    let recorded = before["frames_recorded"].as_u64().unwrap();
    let after = wait_status(&edge, "4 s more video", |s| {
        let c = cam(s, "front");
        (c["frames_recorded"].as_u64()? >= recorded + 60).then(|| c.clone())
    });
    assert_eq!(after["state"], "streaming", "{after:#}");
    assert!(after["metadata_reason"].is_string(), "the same session: {after:#}");
    let lost: Vec<Value> = events(&edge).into_iter().filter(|e| e["kind"]["CameraLost"].is_object()).collect();
    assert_eq!(lost.len(), 1, "one reconnect: {lost:#?}");
    edge.proc.stop(Duration::from_secs(20)).unwrap();

    let records = stored_records(&store, "front").unwrap();
    let video = frames(&records, MediaKind::Video);
    let gap = video.windows(2).map(|w| w[1].wall_clock_us - w[0].wall_clock_us).max().unwrap();
    assert!(gap < 4_000_000, "video goes on after one reconnect: longest gap {} ms", gap / 1000);
    let stored = frames(&records, MediaKind::Metadata);
    let sent = camera.sent().unwrap();
    assert!(!stored.is_empty() && stored.iter().all(|m| sent.contains(&m.data)), "whole messages only");
    println!("longest video gap {} ms; {} messages before the break", gap / 1000, stored.len());
}
