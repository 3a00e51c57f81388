//! Ingest robustness against real RTSP servers: a camera that changes resolution mid-stream,
//! one that sends a corrupt stream, RTSP over UDP (GStreamer's server and rtsp-server-perl fed
//! by ffmpeg), cameras that want a login (digest and basic), a camera clock jump and an RTP
//! timestamp wrap; and central retrieving and exporting across a resolution change.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use hil_tests::media::ffprobe;
use hil_tests::{
    CentralProc, EdgeProc, Proc, bin_path, edge_config, gst_camera, sim_camera, sim_camera_with, wait_until,
};
use media_store::{Record, SegmentReader, list_segments, log_dir};
use serde_json::Value;

const T: Duration = Duration::from_secs(60);

fn camera(status: &Value, id: &str) -> Value {
    status["cameras"].as_array().unwrap().iter().find(|c| c["id"] == id).unwrap().clone()
}

/// Waits until camera `id` streams and has recorded more than `frames`.
fn wait_recording(edge: &EdgeProc, id: &str, frames: u64) -> Value {
    wait_until(&format!("camera {id} records more than {frames} frames"), T, || {
        let c = camera(&edge.status().ok()?, id);
        (c["state"] == "streaming" && c["frames_recorded"].as_u64()? > frames).then_some(c)
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", edge.proc.log_tail()))
}

/// Makes an H.264 Annex-B clip with ffmpeg as `sim-camera` wants it: an access unit delimiter
/// before each picture, SPS and PPS before each key frame (one a second), no B-frames.
fn make_clip(dir: &Path, size: &str, seconds: u32) -> PathBuf {
    let out = dir.join(format!("{size}.h264"));
    let status = Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-f", "lavfi", "-i", &format!("testsrc2=size={size}:rate=25")])
        .args(["-t", &seconds.to_string(), "-c:v", "libx264", "-pix_fmt", "yuv420p", "-profile:v", "baseline"])
        .args(["-g", "25", "-bf", "0", "-x264-params", "repeat-headers=1:aud=1", "-f", "h264"])
        .arg(&out)
        .status()
        .expect("ffmpeg is installed by ./dev setup");
    assert!(status.success(), "ffmpeg could not make the {size} clip");
    out
}

/// Starts `sim-camera` looping `clip` on `/cam`; returns it with the camera's URL.
fn sim_camera_with_clip(dir: &Path, clip: &Path) -> (Proc, String) {
    let mut cmd = Command::new(bin_path("sim-camera").unwrap());
    cmd.args(["--listen", "127.0.0.1:0", "--mount", "/cam", "--clip"]).arg(clip);
    let mut proc = Proc::spawn("sim-camera", cmd, &dir.join("sim-camera-clip.log")).unwrap();
    let line = proc.wait_line("listening on rtsp://", T).unwrap();
    let url = format!("{}/cam", line.rsplit(' ').next().unwrap().trim_end_matches('/'));
    (proc, url)
}

/// A `sim-camera` that changes resolution every 3 s: 3 s at 640x360, then 3 s at 320x240,
/// looped, each change announced by a new SPS/PPS in the stream (not in the SDP).
fn switching_camera(dir: &Path) -> (Proc, String) {
    let wide = make_clip(dir, "640x360", 3);
    let small = make_clip(dir, "320x240", 3);
    let clip = dir.join("switching.h264");
    std::fs::write(&clip, [std::fs::read(wide).unwrap(), std::fs::read(small).unwrap()].concat()).unwrap();
    sim_camera_with_clip(dir, &clip)
}

/// `edge store export STORE --camera CAMERA --start … --end … -o OUT`: success and output.
fn export(store: &Path, cam: &str, start_us: i64, end_us: i64, out: &Path) -> (bool, String) {
    let time = |us: i64| jiff::Timestamp::from_microsecond(us).unwrap().to_string();
    let out = Command::new(bin_path("edge").unwrap())
        .arg("store")
        .arg("export")
        .arg(store)
        .args(["--camera", cam, "--start", &time(start_us), "--end", &time(end_us), "-o"])
        .arg(out)
        .output()
        .unwrap();
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

/// One stretch of a camera's log under the same codec parameters.
#[derive(Debug)]
struct Run {
    width: u32,
    height: u32,
    /// Wall clocks of its frames, in log order.
    frames: Vec<i64>,
}

/// Reads camera `cam`'s whole log: its runs of frames under the same parameters. Checks on the
/// way that each frame names the parameters it follows and that each run starts at a key frame.
fn runs(store: &Path, cam: &str) -> Vec<Run> {
    let mut by_seq = std::collections::HashMap::new();
    let mut current: Option<(u64, Vec<u8>)> = None;
    let mut runs: Vec<Run> = Vec::new();
    for (_, path) in list_segments(&log_dir(store, cam)).unwrap() {
        let mut reader = SegmentReader::open(&path).unwrap();
        while let Some((seq, record)) = reader.next_record().unwrap() {
            match record {
                Record::Parameters(p) => {
                    // Parameters are written again at the start of each segment: a new run
                    // only when they differ.
                    if current.as_ref().is_none_or(|(_, extra)| *extra != p.extra_data) {
                        runs.push(Run { width: p.width, height: p.height, frames: Vec::new() });
                    }
                    current = Some((seq, p.extra_data.clone()));
                    by_seq.insert(seq, p.extra_data);
                }
                Record::Frame(f) => {
                    let (_, extra) = current.as_ref().expect("a frame before any parameters");
                    assert_eq!(by_seq.get(&f.parameters_seq), Some(extra), "frame names the parameters it follows");
                    let run = runs.last_mut().unwrap();
                    assert!(!run.frames.is_empty() || f.keyframe, "a run starts at a key frame");
                    run.frames.push(f.wall_clock_us);
                }
                _ => {}
            }
        }
    }
    runs
}

#[test]
fn a_camera_that_changes_resolution_is_recorded_under_the_new_parameters_and_exports() {
    let dir = tempfile::tempdir().unwrap();
    let (_cam, url) = switching_camera(dir.path());
    let store = dir.path().join("store");
    let mut edge =
        EdgeProc::start(dir.path(), "edge", &edge_config("bus-1", &store, None, &[("front", &url)])).unwrap();

    wait_until("the status shows the small picture", T, || {
        (camera(&edge.status().ok()?, "front")["width"] == 320).then_some(())
    })
    .unwrap();
    wait_until("and the wide one again", T, || (camera(&edge.status().ok()?, "front")["width"] == 640).then_some(()))
        .unwrap();
    wait_recording(&edge, "front", 200);
    let front = camera(&edge.status().unwrap(), "front");
    assert_eq!(front["frames_lost"], 0, "{front}");
    assert!(edge.proc.stop(Duration::from_secs(20)).unwrap().success());

    let runs = runs(&store, "front");
    let sizes: Vec<_> = runs.iter().map(|r| (r.width, r.height)).collect();
    assert!(runs.len() >= 3, "at least wide, small, wide: {sizes:?}");
    for pair in sizes.windows(2) {
        assert_ne!(pair[0], pair[1], "each change starts a run: {sizes:?}");
        assert!(pair.iter().all(|s| *s == (640, 360) || *s == (320, 240)), "{sizes:?}");
    }
    // A whole run in the middle has all 3 s of the clip's part.
    for run in &runs[1..runs.len() - 1] {
        assert_eq!(run.frames.len(), 75, "a whole run is 3 s at 25 fps ({}x{})", run.width, run.height);
    }

    // Exports of a run after a change: valid MP4 with that run's picture size.
    for (i, run) in runs.iter().enumerate().skip(1).take(2) {
        let out = dir.path().join(format!("run{i}.mp4"));
        let (ok, text) = export(&store, "front", run.frames[0], *run.frames.last().unwrap(), &out);
        assert!(ok, "{text}");
        let probe = ffprobe(&out);
        let stream = &probe["streams"][0];
        assert_eq!(
            (stream["width"].as_u64(), stream["height"].as_u64()),
            (Some(run.width.into()), Some(run.height.into()))
        );
        assert_eq!(stream["nb_read_frames"], run.frames.len().to_string(), "{stream}");
    }
    // Across a change: one file, a sample entry per picture size; every frame decodes at its
    // own size.
    let across = dir.path().join("across.mp4");
    let (ok, text) = export(&store, "front", runs[1].frames[0], runs[2].frames[10], &across);
    assert!(ok, "{text}");
    let want: Vec<String> = std::iter::repeat_n(format!("{},{}", runs[1].width, runs[1].height), runs[1].frames.len())
        .chain(std::iter::repeat_n(format!("{},{}", runs[2].width, runs[2].height), 11))
        .collect();
    assert_eq!(decoded_sizes(&across), want);
}

#[test]
fn central_retrieves_and_exports_across_a_resolution_change() {
    let dir = tempfile::tempdir().unwrap();
    let (_cam, url) = switching_camera(dir.path());
    let central = CentralProc::start(dir.path(), 0).unwrap();
    let store = dir.path().join("store");
    let config = edge_config("bus-1", &store, Some((&central.quic, &central.fingerprint)), &[("front", &url)]);
    let mut edge = EdgeProc::start_enrolled(dir.path(), "edge", &config, "bus-1", &central).unwrap();
    let started = now_us();
    wait_until("the small picture", T, || (camera(&edge.status().ok()?, "front")["width"] == 320).then_some(()))
        .unwrap();
    wait_until("the wide one again", T, || (camera(&edge.status().ok()?, "front")["width"] == 640).then_some(()))
        .unwrap();
    let at_change = camera(&edge.status().unwrap(), "front")["frames_recorded"].as_u64().unwrap();
    wait_recording(&edge, "front", at_change + 50);

    // Central brings the whole stretch home, then exports across the change.
    let id = central.retrieve("bus-1", "front", started - 5_000_000, now_us() - 500_000).unwrap();
    let done = central.wait_retrieval(id, T).unwrap_or_else(|e| panic!("{e}\n{}", central.proc.log_tail()));
    assert_eq!(done["state"], "done", "{done}");
    assert!(edge.proc.stop(Duration::from_secs(20)).unwrap().success());
    let runs = runs(&store, "front");
    assert!(runs.len() >= 3, "wide, small, wide");
    let (from, to) = (runs[1].frames[0], runs[2].frames[10]);
    let time = |us: i64| jiff::Timestamp::from_microsecond(us).unwrap().to_string();
    let mut response = central
        .get(&format!("{}/api/units/bus-1/cameras/front/export.mp4?start={}&end={}", central.web, time(from), time(to)))
        .call()
        .unwrap();
    let across = dir.path().join("central-across.mp4");
    std::fs::write(&across, response.body_mut().with_config().limit(64 << 20).read_to_vec().unwrap()).unwrap();
    let want: Vec<String> = std::iter::repeat_n(format!("{},{}", runs[1].width, runs[1].height), runs[1].frames.len())
        .chain(std::iter::repeat_n(format!("{},{}", runs[2].width, runs[2].height), 11))
        .collect();
    assert_eq!(decoded_sizes(&across), want, "every frame of both runs, each at its own size");
}

fn now_us() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_micros() as i64
}

/// The picture size of every frame of a file as ffmpeg decodes it (`W,H`); decoding errors fail.
fn decoded_sizes(path: &Path) -> Vec<String> {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v", "-show_entries", "frame=width,height", "-of", "csv=p=0"])
        .arg(path)
        .output()
        .unwrap();
    let errors = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && errors.trim().is_empty(), "ffmpeg decodes {} cleanly: {errors}", path.display());
    // Side data of a frame comes out as a line of its own, empty with these entries.
    let lines = String::from_utf8_lossy(&out.stdout).into_owned();
    lines.lines().map(|l| l.trim().trim_end_matches(',')).filter(|l| !l.is_empty()).map(str::to_owned).collect()
}

/// What the [`Relay`] does to what the camera sends.
const PASS: u8 = 0;
/// Keep RTSP and RTP framing, fill every RTP payload with random bytes (garbage NAL units).
const SCRAMBLE_PAYLOADS: u8 = 1;
/// Put random bytes between the interleaved packets (the TCP stream loses its framing).
const RANDOM_BYTES: u8 = 2;
/// From the next end of a picture, shift RTP timestamps to two seconds before the 32-bit wrap
/// (a camera clock jump, then a wrap).
const JUMP_CLOCK: u8 = 3;

/// A TCP relay in front of a camera that counts connections and, when told, corrupts what
/// the camera sends (a camera going bad and good again, mid-stream).
struct Relay {
    addr: SocketAddr,
    mode: Arc<AtomicU8>,
    connections: Arc<AtomicUsize>,
}

impl Relay {
    fn start(upstream: SocketAddr) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let relay = Relay { addr: listener.local_addr().unwrap(), mode: Arc::default(), connections: Arc::default() };
        let (mode, connections) = (relay.mode.clone(), relay.connections.clone());
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                connections.fetch_add(1, Ordering::SeqCst);
                let Ok(server) = TcpStream::connect(upstream) else { continue };
                let (mut c_in, mut s_out) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut c_in, &mut s_out);
                    let _ = s_out.shutdown(std::net::Shutdown::Both);
                });
                let mode = mode.clone();
                std::thread::spawn(move || {
                    let _ = pump(server, &client, &mode);
                    let _ = client.shutdown(std::net::Shutdown::Both);
                });
            }
        });
        relay
    }

    fn url(&self, path: &str) -> String {
        format!("rtsp://{}{path}", self.addr)
    }

    fn set(&self, mode: u8) {
        self.mode.store(mode, Ordering::SeqCst);
    }
}

/// Copies the camera's side to the client one RTSP message or interleaved packet at a time,
/// corrupting as `mode` says.
fn pump(mut from: TcpStream, mut to: &TcpStream, mode: &AtomicU8) -> std::io::Result<()> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16384];
    // The RTP timestamp shift of JUMP_CLOCK, once a picture has ended.
    let (mut shift, mut picture_ended) = (None::<u32>, false);
    loop {
        let n = from.read(&mut chunk)?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
        while let Some(len) = unit_len(&buf) {
            let mut unit: Vec<u8> = buf.drain(..len).collect();
            let interleaved = unit[0] == b'$';
            match mode.load(Ordering::SeqCst) {
                SCRAMBLE_PAYLOADS if interleaved && unit.len() > 16 => unit[16..].fill_with(|| fastrand::u8(..)),
                RANDOM_BYTES if interleaved => {
                    let junk: Vec<u8> = std::iter::repeat_with(|| fastrand::u8(..)).take(200).collect();
                    to.write_all(&junk)?;
                }
                JUMP_CLOCK if interleaved && unit[1] == 0 && unit.len() >= 16 => {
                    let ts = u32::from_be_bytes(unit[8..12].try_into().unwrap());
                    if shift.is_none() && picture_ended {
                        shift = Some((u32::MAX - 2 * 90_000).wrapping_sub(ts));
                    }
                    if let Some(shift) = shift {
                        unit[8..12].copy_from_slice(&ts.wrapping_add(shift).to_be_bytes());
                    }
                    picture_ended = unit[5] & 0x80 != 0;
                }
                _ => {}
            }
            to.write_all(&unit)?;
        }
    }
}

/// The length of the first whole unit in `buf`: an interleaved packet (`$`, channel, length)
/// or an RTSP message with its body.
fn unit_len(buf: &[u8]) -> Option<usize> {
    if buf.first() == Some(&b'$') {
        let len = 4 + usize::from(u16::from_be_bytes([*buf.get(2)?, *buf.get(3)?]));
        return (buf.len() >= len).then_some(len);
    }
    let head = buf.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let text = String::from_utf8_lossy(&buf[..head]).to_ascii_lowercase();
    let body = text
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok())
        .unwrap_or(0);
    (buf.len() >= head + body).then_some(head + body)
}

/// The host and port of an `rtsp://` URL.
fn socket_of(url: &str) -> SocketAddr {
    url.trim_start_matches("rtsp://").split('/').next().unwrap().parse().unwrap()
}

/// The longest gap between consecutive frames of camera `cam` in the store, and their count.
fn longest_gap(store: &Path, cam: &str) -> (Duration, usize) {
    let (frames, _) = hil_tests::media::frame_hashes(store, cam, 0, i64::MAX);
    let walls: Vec<i64> = frames.keys().copied().collect();
    let gap = walls.windows(2).map(|w| w[1] - w[0]).max().unwrap_or(0);
    (Duration::from_micros(gap.max(0) as u64), walls.len())
}

#[test]
fn a_camera_sending_a_corrupt_stream_is_down_with_a_reason_recovers_and_stops_no_other() {
    let dir = tempfile::tempdir().unwrap();
    let (_cam, rtsp) = sim_camera(dir.path(), &["good", "bad"], 0).unwrap();
    let relay = Relay::start(socket_of(&rtsp));
    let store = dir.path().join("store");
    let config = edge_config("bus-2", &store, None, &[("good", &format!("{rtsp}/good")), ("bad", &relay.url("/bad"))]);
    let mut edge = EdgeProc::start(dir.path(), "edge", &config).unwrap();
    wait_recording(&edge, "good", 25);
    wait_recording(&edge, "bad", 25);

    for (mode, what) in [(SCRAMBLE_PAYLOADS, "garbage NAL units"), (RANDOM_BYTES, "random bytes between packets")] {
        let before = camera(&edge.status().unwrap(), "bad")["frames_recorded"].as_u64().unwrap();
        relay.set(mode);
        let bad = wait_until(&format!("the camera sending {what} is down"), T, || {
            let c = camera(&edge.status().ok()?, "bad");
            (c["state"] != "streaming" && c["reason"].is_string()).then_some(c)
        })
        .unwrap_or_else(|e| panic!("{e}\n{}", edge.proc.log_tail()));
        let reason = bad["reason"].as_str().unwrap();
        assert!(!reason.is_empty() && !reason.contains('\n'), "{what}: a short reason: {reason:?}");
        relay.set(PASS);
        wait_recording(&edge, "bad", before + 25);
    }
    let good = wait_recording(&edge, "good", 0);
    assert_eq!(good["frames_lost"], 0, "{good}");
    assert_eq!(good["packets_lost"], 0, "nothing lost on loopback: {good}");
    assert!(good["reason"].is_null(), "the good camera never went down: {good}");
    assert!(edge.proc.stop(Duration::from_secs(20)).unwrap().success());

    let (gap, frames) = longest_gap(&store, "good");
    assert!(frames > 50, "{frames} frames");
    assert!(gap < Duration::from_millis(500), "the good camera's recording has no gap (longest {gap:?})");
}

/// How many UDP sockets process `pid` holds bound to a port (from `/proc`).
fn bound_udp_sockets(pid: u32) -> usize {
    let inodes: std::collections::HashSet<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read_link(e.path()).ok())
        .filter_map(|l| l.to_str()?.strip_prefix("socket:[")?.strip_suffix(']').map(str::to_owned))
        .collect();
    let table = std::fs::read_to_string(format!("/proc/{pid}/net/udp")).unwrap()
        + &std::fs::read_to_string(format!("/proc/{pid}/net/udp6")).unwrap_or_default();
    table
        .lines()
        .skip(1)
        .filter(|l| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            cols.len() > 9 && inodes.contains(cols[9]) && !cols[1].ends_with(":0000")
        })
        .count()
}

/// `[[camera]]` settings after `url = …` for camera `id`.
fn with_camera_keys(config: &str, id: &str, keys: &str) -> String {
    let marker = format!("id = {id:?}\n");
    let at = config.find(&marker).unwrap() + marker.len();
    let line_end = at + config[at..].find('\n').unwrap() + 1;
    format!("{}{keys}\n{}", &config[..line_end], &config[line_end..])
}

#[test]
fn rtsp_over_udp_records_from_gstreamer() {
    let dir = tempfile::tempdir().unwrap();
    let (_cam, rtsp) = gst_camera(dir.path(), &["front"], &[]).unwrap();
    let store = dir.path().join("store");
    let config = edge_config("bus-3", &store, None, &[("front", &format!("{rtsp}/front"))]);
    let config = with_camera_keys(&config, "front", "transport = \"udp\"");
    let mut edge = EdgeProc::start(dir.path(), "edge", &config).unwrap();
    let front = wait_recording(&edge, "front", 50);
    assert_eq!((front["width"].as_u64(), front["height"].as_u64()), (Some(640), Some(360)));
    assert!(bound_udp_sockets(edge.proc.pid()) >= 2, "RTP and RTCP arrive on UDP ports of the edge");
    assert!(edge.proc.stop(Duration::from_secs(20)).unwrap().success());
    let (gap, frames) = longest_gap(&store, "front");
    assert!(frames > 50 && gap < Duration::from_millis(500), "{frames} frames, longest gap {gap:?}");
}

/// A free port on loopback (bound, noted, closed).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[test]
fn rtsp_server_perl_fed_by_ffmpeg_is_recorded_over_udp_and_exports() {
    let dir = tempfile::tempdir().unwrap();
    let (client_port, source_port) = (free_port(), free_port());
    let rtp_base = 20_000 + fastrand::u16(..20_000) / 2 * 2;
    let mut relay = Command::new("rtsp-server-perl");
    relay
        .args(["--clientport", &client_port.to_string(), "--serverport", &source_port.to_string()])
        .args(["--client_listen_address", "127.0.0.1", "--source_listen_address", "127.0.0.1"])
        .args(["--rtp_start_port", &rtp_base.to_string(), "--loglevel", "3"]);
    let _relay = Proc::spawn("rtsp-server-perl", relay, &dir.path().join("rtsp-server-perl.log"))
        .expect("rtsp-server-perl is installed by ./dev setup");
    wait_until("rtsp-server-perl listens", T, || TcpStream::connect(("127.0.0.1", source_port)).ok()).unwrap();
    // In MP4 so that ffmpeg can loop it (a raw H.264 file cannot be seeked).
    let clip = dir.path().join("clip.mp4");
    let status = Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-r", "25", "-i"])
        .arg(make_clip(dir.path(), "640x360", 4))
        .args(["-c", "copy"])
        .arg(&clip)
        .status()
        .unwrap();
    assert!(status.success());
    let mut push = Command::new("ffmpeg");
    push.args(["-v", "warning", "-re", "-stream_loop", "-1", "-i"])
        .arg(&clip)
        .args(["-c", "copy", "-f", "rtsp", "-rtsp_transport", "udp"])
        .arg(format!("rtsp://127.0.0.1:{source_port}/cam"));
    let _push = Proc::spawn("ffmpeg", push, &dir.path().join("ffmpeg-push.log")).unwrap();

    let store = dir.path().join("store");
    let config = edge_config("bus-4", &store, None, &[("odd", &format!("rtsp://127.0.0.1:{client_port}/cam"))]);
    let config = with_camera_keys(&config, "odd", "transport = \"udp\"");
    let mut edge = EdgeProc::start(dir.path(), "edge", &config).unwrap();
    let odd = wait_recording(&edge, "odd", 100);
    assert_eq!((odd["width"].as_u64(), odd["height"].as_u64()), (Some(640), Some(360)));
    assert!(edge.proc.stop(Duration::from_secs(20)).unwrap().success());

    let out = dir.path().join("odd.mp4");
    let now_us = jiff::Timestamp::now().as_microsecond();
    let (ok, text) = export(&store, "odd", now_us - 3_600_000_000, now_us, &out);
    assert!(ok, "{text}");
    let probe = ffprobe(&out);
    let stream = &probe["streams"][0];
    assert_eq!((stream["width"].as_u64(), stream["height"].as_u64()), (Some(640), Some(360)), "{stream}");
    let frames: u64 = stream["nb_read_frames"].as_str().unwrap().parse().unwrap();
    assert!(frames > 100, "{stream}");
}

/// Starts GStreamer's RTSP server wanting `user`/`password` by `method`; returns it and the
/// camera's URL.
fn auth_camera(dir: &Path, method: &str) -> (Proc, String) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/gst_rtsp_camera.py");
    let mut cmd = Command::new("/usr/bin/python3");
    cmd.arg(script).args(["--port", "0", "--width", "320", "--height", "240", "--kbps", "300"]);
    cmd.args(["--user", "viewer", "--password", "s3cret", "--auth", method]);
    let mut proc = Proc::spawn("gst-rtsp-auth", cmd, &dir.join(format!("gst-rtsp-auth-{method}.log"))).unwrap();
    let line = proc.wait_line("ready rtsp://", T).unwrap();
    (proc, format!("{}/cam", line.trim_start_matches("ready ")))
}

#[test]
fn cameras_wanting_digest_or_basic_auth_record_with_the_right_login_and_say_so_otherwise() {
    let dir = tempfile::tempdir().unwrap();
    let (_digest, digest_url) = auth_camera(dir.path(), "digest");
    let (_basic, basic_url) = auth_camera(dir.path(), "basic");
    // The wrong login goes through a relay that counts its attempts.
    let relay = Relay::start(socket_of(&digest_url));
    let store = dir.path().join("store");
    let config = edge_config(
        "bus-5",
        &store,
        None,
        &[
            ("digest", &digest_url),
            ("basic", &basic_url),
            ("wrong", &relay.url("/cam")),
            ("none", &digest_url),
            ("tls", &digest_url.replace("rtsp://", "rtsps://")),
        ],
    );
    let config = with_camera_keys(&config, "digest", "username = \"viewer\"\npassword = \"s3cret\"");
    let config = with_camera_keys(&config, "basic", "username = \"viewer\"\npassword = \"s3cret\"");
    let config = with_camera_keys(&config, "wrong", "username = \"viewer\"\npassword = \"guess\"");
    let edge = EdgeProc::start(dir.path(), "edge", &config).unwrap();
    wait_recording(&edge, "digest", 25);
    wait_recording(&edge, "basic", 25);

    for id in ["wrong", "none"] {
        let c = wait_until(&format!("camera {id} is down"), T, || {
            let c = camera(&edge.status().ok()?, id);
            (c["state"] == "down").then_some(c)
        })
        .unwrap();
        let reason = c["reason"].as_str().unwrap();
        assert!(reason.starts_with("authentication failed"), "{reason}");
        assert!(reason.contains("username and password"), "says what to check: {reason}");
        assert_eq!(c["frames_recorded"], 0);
    }
    // RTSPS: the client has no TLS, and says so.
    let tls = wait_until("camera tls is down", T, || {
        let c = camera(&edge.status().ok()?, "tls");
        (c["state"] == "down").then_some(c)
    })
    .unwrap();
    assert!(tls["reason"].as_str().unwrap().contains("RTSPS"), "{tls}");
    // Not a retry storm: over 15 s, the wrong login is tried at most twice more.
    let start = Instant::now();
    let before = relay.connections.load(Ordering::SeqCst);
    wait_until("15 s pass", Duration::from_secs(20), || (start.elapsed() >= Duration::from_secs(15)).then_some(()))
        .unwrap();
    let attempts = relay.connections.load(Ordering::SeqCst) - before;
    assert!(attempts <= 2, "{attempts} logins in 15 s");
    assert_eq!(camera(&edge.status().unwrap(), "wrong")["state"], "down");
}

#[test]
fn a_camera_clock_jump_and_an_rtp_timestamp_wrap_keep_one_timeline() {
    let dir = tempfile::tempdir().unwrap();
    let (_cam, rtsp) = sim_camera(dir.path(), &["cam"], 0).unwrap();
    let relay = Relay::start(socket_of(&rtsp));
    let store = dir.path().join("store");
    let mut edge =
        EdgeProc::start(dir.path(), "edge", &edge_config("bus-6", &store, None, &[("jumpy", &relay.url("/cam"))]))
            .unwrap();
    let before = wait_recording(&edge, "jumpy", 25)["frames_recorded"].as_u64().unwrap();
    relay.set(JUMP_CLOCK);
    // Four seconds more: the jump, and two seconds later the wrap.
    let after = wait_recording(&edge, "jumpy", before + 100);
    assert!(after["reason"].is_null(), "the session went on: {after}");
    assert!(edge.proc.stop(Duration::from_secs(20)).unwrap().success());
    let log = std::fs::read_to_string(dir.path().join("edge.log")).unwrap();
    assert_eq!(log.matches("the camera's clock jumped").count(), 1, "{log}");

    let mut frames = Vec::new();
    for (_, path) in list_segments(&log_dir(&store, "jumpy")).unwrap() {
        let mut reader = SegmentReader::open(&path).unwrap();
        while let Some((_, record)) = reader.next_record().unwrap() {
            if let Record::Frame(f) = record {
                frames.push((f.pts, f.wall_clock_us));
            }
        }
    }
    let odd_steps = frames.windows(2).filter(|w| w[1].0 - w[0].0 != 3600).count();
    assert_eq!(odd_steps, 1, "the timestamps jumped once; the wrap is unwrapped");
    for w in frames.windows(2) {
        let step = w[1].1 - w[0].1;
        assert!((1..500_000).contains(&step), "wall clocks go on without going back or a hole: {step} µs");
    }
    // The export plays for as long as was recorded.
    let out = dir.path().join("jumpy.mp4");
    let (first, last) = (frames[0].1, frames.last().unwrap().1);
    let (ok, text) = export(&store, "jumpy", first, last, &out);
    assert!(ok, "{text}");
    let probe = ffprobe(&out);
    let duration: f64 = probe["streams"][0]["duration"].as_str().unwrap().parse().unwrap();
    let recorded = (last - first) as f64 / 1e6;
    assert!((duration - recorded).abs() < 1.0, "{duration} s exported of {recorded} s recorded");
}

/// A camera whose RTP packets do not all arrive (`sim-camera --drop-every 40`: one in 40 left
/// out, sequence numbers used all the same): `/api/status` counts the packets lost, the camera
/// stays up and recording goes on with the frames that arrived whole.
#[test]
fn a_lossy_camera_shows_its_lost_packets_and_keeps_recording() {
    let dir = tempfile::tempdir().unwrap();
    let (_cam, rtsp) = sim_camera_with(dir.path(), &["lossy"], 0, None, &["--drop-every", "40"]).unwrap();
    let store = dir.path().join("store");
    let config = edge_config("bus-1", &store, None, &[("lossy", &format!("{rtsp}/lossy"))]);
    let edge = EdgeProc::start(dir.path(), "edge", &config).unwrap();
    let first = wait_until("the lossy camera's lost packets show", T, || {
        let c = camera(&edge.status().ok()?, "lossy");
        (c["packets_lost"].as_u64()? >= 5 && c["frames_recorded"].as_u64()? > 25).then_some(c)
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", edge.proc.log_tail()));
    let later = wait_recording(&edge, "lossy", first["frames_recorded"].as_u64().unwrap() + 50);
    assert!(later["reason"].is_null(), "loss alone does not take the camera down: {later}");
    assert_eq!(later["frames_lost"], 0, "every frame that arrived whole was recorded: {later}");
    let metrics = hil_tests::prometheus::scrape(&format!("{}/metrics", edge.web)).unwrap();
    let counted = metrics.get("convoy_edge_camera_rtp_packets_lost_total", &[("camera", "lossy")]);
    assert!(counted.is_some_and(|n| n > 0.0), "/metrics: {counted:?}");
    // Never more than the camera left out (it says at the end of its session).
    let lost = camera(&edge.status().unwrap(), "lossy")["packets_lost"].as_u64().unwrap();
    drop(edge);
    let log = dir.path().join("sim-camera.log");
    let dropped: u64 = wait_until("the camera's session ends", T, || {
        let text = std::fs::read_to_string(&log).ok()?;
        let ended = text.lines().find(|l| l.contains("session ended"))?;
        ended.split("packets_dropped=").nth(1)?.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
    })
    .unwrap();
    assert!(lost <= dropped, "the edge counted {lost} lost, the camera left out {dropped}");
    eprintln!("lossy camera: {lost} packets counted lost of {dropped} left out; {later}");
}
