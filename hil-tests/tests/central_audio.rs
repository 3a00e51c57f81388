//! Audio reaches central (issues 4 and 5): a unit records a GStreamer camera with AAC audio,
//! central (protocol version 4, like the unit) retrieves a range, and holds every audio frame of
//! it byte for byte as the unit recorded it, each once (also after the same range is retrieved
//! again), with no gap; central's MP4 export of the range has an AAC track beside the H.264 one
//! (checked by ffprobe, a reader we did not write).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use hil_tests::media::{ffprobe, ffprobe_number};
use hil_tests::{CentralProc, EdgeProc, edge_config, gst_camera, wait_until};
use media_store::read::read_range_with_audio;
use media_store::{MediaKind, Record};
use sha2::Digest;

const T: Duration = Duration::from_secs(90);

fn now_us() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_micros() as i64
}

fn rfc3339(us: i64) -> String {
    jiff::Timestamp::from_microsecond(us).unwrap().to_string()
}

/// Audio frames by wall clock → (pts, SHA-256 of the data), and how many shared a wall clock
/// with another (duplicates).
type AudioHashes = BTreeMap<i64, (i64, [u8; 32])>;

fn hashes<'a>(frames: impl IntoIterator<Item = (i64, i64, &'a [u8])>) -> (AudioHashes, usize) {
    let mut out = BTreeMap::new();
    let mut duplicates = 0;
    for (wall, pts, data) in frames {
        if out.insert(wall, (pts, sha2::Sha256::digest(data).into())).is_some() {
            duplicates += 1;
        }
    }
    (out, duplicates)
}

/// How far past a range's end the unit's log is read for the range's audio frames.
const READ_PAST_US: i64 = 2_000_000;

/// The unit's audio frames of `camera` between two times.
fn unit_audio(store: &Path, camera: &str, start_us: i64, end_us: i64) -> (AudioHashes, usize) {
    // Read past the end: the reader stops at the first video frame after `end_us`, and an
    // audio frame of the range can be logged after it (audio and video arrive apart);
    // the filter below keeps exactly the range.
    let frames: Vec<_> = read_range_with_audio(store, camera, start_us, end_us.saturating_add(READ_PAST_US), None)
        .unwrap()
        .map(Result::unwrap)
        .filter_map(|r| match r {
            Record::Frame(f) if f.kind == MediaKind::Audio && (start_us..=end_us).contains(&f.wall_clock_us) => Some(f),
            _ => None,
        })
        .collect();
    hashes(frames.iter().map(|f| (f.wall_clock_us, f.pts, f.data.as_slice())))
}

/// The wall clock of the unit's last video frame of `camera` between two times.
fn unit_last_video(store: &Path, camera: &str, start_us: i64, end_us: i64) -> i64 {
    read_range_with_audio(store, camera, start_us, end_us, None)
        .unwrap()
        .map(Result::unwrap)
        .filter_map(|r| match r {
            Record::Frame(f) if f.kind == MediaKind::Video && (start_us..=end_us).contains(&f.wall_clock_us) => {
                Some(f.wall_clock_us)
            }
            _ => None,
        })
        .max()
        .expect("video in the range")
}

/// Central's audio frames of `unit`'s `camera` between two times, checking each carries the
/// camera's AAC parameters.
fn central_audio(central: &Path, unit: &str, camera: &str, start_us: i64, end_us: i64) -> (AudioHashes, usize) {
    let frames = central::retrieved::read_held_audio(central, unit, camera, start_us, end_us).unwrap();
    for f in &frames {
        let p = f.audio_parameters.as_ref().unwrap_or_else(|| panic!("audio frame at {} lacks parameters", f.seq));
        assert_eq!((p.codec.as_str(), p.sample_rate, p.channels), ("mp4a.40.2", 48_000, 1));
        assert!(!p.extra_data.is_empty(), "AudioSpecificConfig kept");
    }
    hashes(frames.iter().map(|f| (f.frame.wall_clock_us, f.frame.pts, f.frame.data.as_slice())))
}

#[test]
fn central_retrieves_a_cameras_aac_audio_byte_for_byte_and_exports_it() {
    let dir = tempfile::tempdir().unwrap();
    let cam_dir = dir.path().join("camera");
    std::fs::create_dir_all(&cam_dir).unwrap();
    let args = ["--audio", "aac", "--width", "320", "--height", "240", "--fps", "15", "--kbps", "300"];
    let (_camera, url) = gst_camera(&cam_dir, &["front"], &args).unwrap();
    let central = CentralProc::start(dir.path(), 0).unwrap();
    let store = dir.path().join("store");
    let config = edge_config(
        "bus-5",
        &store,
        Some((&central.quic, &central.fingerprint)),
        &[("front", &format!("{url}/front"))],
    );
    let edge = EdgeProc::start_enrolled(dir.path(), "edge", &config, "bus-5", &central).unwrap();
    let t0 = now_us();
    wait_until("the unit records 10 s with audio", T, || {
        let s = edge.status().ok()?;
        let front = s["cameras"].as_array()?.iter().find(|c| c["id"] == "front")?.clone();
        (front["audio"]["codec"] == "aac" && now_us() - t0 > 10_000_000).then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", edge.proc.log_tail()));

    let (start, end) = (t0 + 2_000_000, t0 + 8_000_000);
    let id = central.retrieve("bus-5", "front", start, end).unwrap();
    let done = central.wait_retrieval(id, T).unwrap_or_else(|e| panic!("{e}\n{}", central.proc.log_tail()));
    assert_eq!(done["state"], "done", "{done}");

    // Every audio frame of the range, byte for byte, once, none central made up.
    let central_dir = dir.path().join("central");
    let (unit, unit_dups) = unit_audio(&store, "front", start, end);
    let (held, held_dups) = central_audio(&central_dir, "bus-5", "front", start, end);
    // 6 s of 48 kHz AAC: 1024 samples a frame, about 281 frames.
    assert!(unit.len() > 200, "{} audio frames at the unit", unit.len());
    assert_eq!((unit_dups, held_dups), (0, 0), "duplicates: unit {unit_dups}, central {held_dups}");
    let missing: Vec<_> = unit.keys().filter(|k| !held.contains_key(k)).collect();
    let extra: Vec<_> = held.keys().filter(|k| !unit.contains_key(k)).collect();
    let differ: Vec<_> = unit.iter().filter(|(k, v)| held.get(k).is_some_and(|h| h != *v)).map(|(k, _)| k).collect();
    assert!(
        missing.is_empty() && extra.is_empty() && differ.is_empty(),
        "missing {missing:?}, extra {extra:?}, different {differ:?}"
    );
    // No gap: one AAC frame after another, 1024 samples apart.
    let steps: Vec<i64> =
        held.values().map(|(pts, _)| *pts).collect::<Vec<_>>().windows(2).map(|w| w[1] - w[0]).collect();
    assert!(steps.iter().all(|&d| d == 1024), "pts steps {steps:?}");

    // The same range again: central already holds it and stores nothing twice.
    let again = central.retrieve("bus-5", "front", start, end).unwrap();
    let done = central.wait_retrieval(again, T).unwrap_or_else(|e| panic!("{e}\n{}", central.proc.log_tail()));
    assert_eq!(done["state"], "done", "{done}");
    let (held_again, dups_again) = central_audio(&central_dir, "bus-5", "front", start, end);
    assert_eq!((held_again.len(), dups_again), (held.len(), 0), "retrieved twice, stored once");

    // Central's export of the range: H.264 and AAC, the audio as long as the video.
    let url = format!(
        "{}/api/units/bus-5/cameras/front/export.mp4?start={}&end={}",
        central.web,
        rfc3339(start),
        rfc3339(end)
    );
    let mut response = central.get(&url).call().unwrap();
    let audio_frames: u64 = response.headers()["x-convoy-audio-frames"].to_str().unwrap().parse().unwrap();
    let bytes = response.body_mut().with_config().limit(1 << 30).read_to_vec().unwrap();
    let mp4 = dir.path().join("central.mp4");
    std::fs::write(&mp4, bytes).unwrap();
    let probe = ffprobe(&mp4);
    let streams = probe["streams"].as_array().unwrap();
    let kind = |k: &str| streams.iter().find(|s| s["codec_type"] == k).unwrap_or_else(|| panic!("{k}: {probe:#}"));
    let (video, audio) = (kind("video"), kind("audio"));
    assert_eq!(video["codec_name"], "h264");
    assert_eq!(
        (&audio["codec_name"], &audio["sample_rate"], &audio["channels"]),
        (&"aac".into(), &"48000".into(), &1.into())
    );
    // The export starts at the key frame at or before the start, and its audio ends with its
    // last video frame: at least the range's audio frames up to that frame.
    let last_video = unit_last_video(&store, "front", start, end);
    let up_to_last_video = held.keys().filter(|&&wall| wall <= last_video).count();
    assert!(
        audio_frames as usize >= up_to_last_video,
        "{audio_frames} audio frames exported, {up_to_last_video} held up to the last video frame ({} in the range)",
        held.len()
    );
    assert_eq!(ffprobe_number(&audio["nb_read_frames"]) as u64, audio_frames, "{probe:#}");
    let (vd, ad) = (ffprobe_number(&video["duration"]), ffprobe_number(&audio["duration"]));
    let audio_end = ffprobe_number(&audio["start_time"]) + ad;
    assert!((audio_end - vd).abs() < 1.0 && ad > vd - 1.5, "audio {ad} s (ends at {audio_end}) beside video {vd} s");
    println!(
        "central holds {} audio frames of the range like the unit; export: video {vd:.3} s, audio {ad:.3} s, {audio_frames} AAC frames",
        held.len()
    );
}

/// Recording at central (live, video only) and a retrieval over the same range: the retrieval
/// brings the range's audio and the video central did not record live, and central's log holds
/// every video and audio frame once, each the unit's byte for byte.
#[test]
fn a_retrieval_over_live_recorded_video_brings_the_audio_and_stores_nothing_twice() {
    use hil_tests::media::{compare, frame_hashes};
    let dir = tempfile::tempdir().unwrap();
    let settings = "[[unit]]\nname = \"bus-c\"\n[[unit.camera]]\nid = \"front\"\n\
                    recording = [\"remote\", \"central\", \"on_request\"]\n";
    let central = CentralProc::start_with(dir.path(), settings).unwrap();
    let cam_dir = dir.path().join("camera");
    std::fs::create_dir_all(&cam_dir).unwrap();
    let args = ["--audio", "aac", "--width", "320", "--height", "240", "--fps", "15", "--kbps", "300"];
    let (_camera, url) = gst_camera(&cam_dir, &["front"], &args).unwrap();
    let store = dir.path().join("store");
    let config = edge_config(
        "bus-c",
        &store,
        Some((&central.quic, &central.fingerprint)),
        &[("front", &format!("{url}/front"))],
    );
    let edge = EdgeProc::start_enrolled(dir.path(), "edge", &config, "bus-c", &central).unwrap();
    let started = now_us();
    let media = dir.path().join("central/media");
    wait_until("central records 6 s of the live stream", T, || {
        let (live, _) = frame_hashes(&media, "bus-c/front", 0, i64::MAX);
        (live.len() >= 6 * 15).then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}\n{}\n{}", central.proc.log_tail(), edge.proc.log_tail()));

    let (from, to) = (started - 2_000_000, now_us() - 1_000_000);
    let id = central.retrieve("bus-c", "front", from, to).unwrap();
    let done = central.wait_retrieval(id, T).unwrap_or_else(|e| panic!("{e}\n{}", central.proc.log_tail()));
    assert_eq!(done["state"], "done", "{done}");

    // Central's whole log, in the order it was written, so that a frame stored twice shows.
    let (mut video, video_dups) = frame_hashes(&media, "bus-c/front", 0, i64::MAX);
    video.retain(|t, _| (from..=to).contains(t));
    let (mut audio, audio_dups) = unit_audio(&media, "bus-c/front", i64::MIN + 1, i64::MAX);
    audio.retain(|t, _| (from..=to).contains(t));
    assert_eq!((video_dups, audio_dups), (0, 0), "stored twice: {video_dups} video, {audio_dups} audio frames");
    let (unit_video, _) = frame_hashes(&store, "front", from, to);
    let (unit_audio_frames, _) = unit_audio(&store, "front", from, to);
    assert!(
        unit_video.len() > 5 * 15 && unit_audio_frames.len() > 5 * 40,
        "the unit recorded the range: {} video and {} audio frames in {} s",
        unit_video.len(),
        unit_audio_frames.len(),
        (to - from) as f64 / 1e6
    );
    let (missing, extra, differ) = compare(&unit_video, &video);
    assert_eq!((missing.len(), extra.len(), differ.len()), (0, 0, 0), "central's video is the unit's");
    assert_eq!(audio, unit_audio_frames, "central's audio is the unit's, every frame of the range");
}
