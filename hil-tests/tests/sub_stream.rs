//! A camera's main and sub stream against GStreamer's RTSP server serving both (main 640×360,
//! sub 320×180): the sub stream recorded always into its own log, the main stream only around
//! an event (a generic TCP message firing a rule), with its pre-buffer from a key frame;
//! `/api/status` shows both, and the unit's API gives the sub stream with `stream=sub`. At
//! central the sub stream is one more camera (`cab.sub`) paired with its camera: its recording
//! is retrieved, and the operator's page plays it live in a real headless Chromium where the
//! camera's own H.265 stream cannot play.

use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use hil_tests::browser::Browser;
use hil_tests::central_page::{log_in, tile_video, wait_js};
use hil_tests::recording_media::{FrameInfo, now_us, stored_frames};
use hil_tests::{CentralProc, EdgeProc, edge_config, get_json, gst_camera, sim_camera, wait_until};
use media_store::Record;
use serde_json::Value;

const T: Duration = Duration::from_secs(40);
/// The fixture's GOP: two seconds at 25 frames per second.
const GOP_US: i64 = 2_000_000;
const PRE_BUFFER_US: i64 = 2_000_000;
const RECORD_FOR_US: i64 = 2_000_000;
const POST_BUFFER_US: i64 = 500_000;

fn wait_status<R>(edge: &EdgeProc, what: &str, mut check: impl FnMut(&Value) -> Option<R>) -> R {
    wait_until(what, T, || check(&edge.status().ok()?))
        .unwrap_or_else(|e| panic!("{e}\nlast status: {:?}\n{}", edge.status().ok(), edge.proc.log_tail()))
}

fn longest_gap(frames: &[FrameInfo]) -> i64 {
    frames.windows(2).map(|w| w[1].wall_us - w[0].wall_us).max().unwrap_or(0)
}

/// The picture sizes of the parameters in a log.
fn stored_sizes(store: &Path, log: &str) -> Vec<(u32, u32)> {
    let reader = media_store::read::read_range(store, log, 0, i64::MAX, None).unwrap();
    reader
        .flatten()
        .filter_map(|r| match r {
            Record::Parameters(p) => Some((p.width, p.height)),
            _ => None,
        })
        .collect()
}

#[test]
fn the_sub_stream_records_always_and_the_main_stream_around_an_event() {
    let dir = tempfile::tempdir().unwrap();
    let (_camera, rtsp) =
        gst_camera(dir.path(), &["main", "sub=320x180"], &["--width", "640", "--height", "360", "--kbps", "600"])
            .unwrap();
    let store = dir.path().join("store");
    let config = format!(
        "{}sub_url = \"{rtsp}/sub\"\nmode = \"event\"\npre_buffer_s = 2\npost_buffer_s = 0.5\n\
         [generic_events]\ntcp = \"127.0.0.1:0\"\n\
         [[generic_events.pattern]]\nname = \"door\"\ncontains = \"DOOR\"\n\
         [[rule]]\nname = \"door\"\ntrigger = \"generic\"\npattern = \"door\"\nrecord = [\"front\"]\nrecord_for_s = 2\n\
         lock = [\"front\"]\nlock_before_s = 1\nlock_after_s = 1\n",
        edge_config("bus-1", &store, None, &[("front", &format!("{rtsp}/main"))])
    );
    let mut edge = EdgeProc::start(dir.path(), "edge", &config).unwrap();
    let tcp: SocketAddr =
        edge.proc.wait_line("generic events tcp listening on", T).unwrap().rsplit(' ').next().unwrap().parse().unwrap();
    let both_streaming = wait_status(&edge, "both streams stream", |s| {
        let cam = &s["cameras"][0];
        (cam["state"] == "streaming" && cam["sub"]["state"] == "streaming").then(now_us)
    });

    // Before the event: the sub stream records, the main stream fills its pre-buffer only.
    let s = wait_status(&edge, "the sub stream records for a while", |s| {
        (now_us() - both_streaming >= 4_000_000 && s["cameras"][0]["sub"]["fps"].as_f64()? > 0.0).then(|| s.clone())
    });
    let cameras = s["cameras"].as_array().unwrap();
    assert_eq!(cameras.len(), 1, "the sub stream is not a camera of its own here: {s}");
    let (main, sub) = (&cameras[0], &cameras[0]["sub"]);
    assert_eq!((main["id"].as_str(), main["mode"].as_str()), (Some("front"), Some("event")), "{s}");
    assert_eq!((main["width"].as_u64(), main["height"].as_u64()), (Some(640), Some(360)), "{s}");
    assert_eq!((main["recording"].as_bool(), main["frames_recorded"].as_u64()), (Some(false), Some(0)), "{s}");
    assert_eq!((sub["id"].as_str(), sub["mode"].as_str()), (Some("front.sub"), Some("continuous")), "{s}");
    assert_eq!((sub["width"].as_u64(), sub["height"].as_u64()), (Some(320), Some(180)), "{s}");
    assert_eq!(sub["recording"], true, "{s}");
    assert!(sub["frames_recorded"].as_u64().unwrap() > 50, "{s}");
    assert!(sub["codec"].as_str().unwrap().starts_with("avc1"), "{s}");
    assert!(sub["fps"].as_f64().unwrap() > 15.0 && sub["bitrate_bps"].as_u64().unwrap() > 0, "{s}");
    assert!(sub["last_frame"].is_string() && sub["bytes_recorded"].as_u64().unwrap() > 0, "{s}");

    let mut conn = std::net::TcpStream::connect(tcp).unwrap();
    conn.write_all(b"DOOR opened\n").unwrap();
    drop(conn);
    let event = wait_until("the message's event", T, || {
        let events = get_json(&format!("{}/api/events?since=0", edge.web)).ok()?;
        events.as_array()?.iter().find(|e| e["kind"]["GenericMatched"]["pattern"] == "door").cloned()
    })
    .unwrap();
    let t = event["time_us"].as_i64().unwrap();
    wait_status(&edge, "the main stream records the event", |s| {
        (s["cameras"][0]["frames_recorded"].as_u64()? > 0).then_some(())
    });
    wait_status(&edge, "and stops after it, the sub stream going on", |s| {
        let cam = &s["cameras"][0];
        (cam["recording"] == false && cam["sub"]["recording"] == true && now_us() > t + 6_000_000).then_some(())
    });

    // /metrics has the sub stream's series beside its camera's, by its id.
    let m = hil_tests::prometheus::scrape(&format!("{}/metrics", edge.web)).unwrap();
    for camera in ["front", "front.sub"] {
        let frames = m.get("convoy_edge_camera_frames_recorded_total", &[("camera", camera)]);
        assert!(frames.is_some_and(|f| f > 0.0), "{camera}: {frames:?}");
    }
    assert_eq!(m.get("convoy_edge_camera_recording", &[("camera", "front.sub")]), Some(1.0));

    // The unit's API gives the sub stream with stream=sub; the rule locked both streams.
    let timeline = wait_until("both streams locked", T, || {
        let sub = get_json(&format!("{}/api/recordings?stream=sub", edge.web)).ok()?;
        let main = get_json(&format!("{}/api/recordings?stream=main", edge.web)).ok()?;
        let locked = |t: &Value| t["cameras"][0]["locks"].as_array().is_some_and(|l| l.len() == 1);
        (locked(&sub) && locked(&main)).then_some(sub)
    })
    .unwrap_or_else(|e| {
        let all = get_json(&format!("{}/api/recordings", edge.web));
        panic!("{e}: {all:?}\n{}", edge.proc.log_tail())
    });
    let entries = timeline["cameras"].as_array().unwrap();
    assert_eq!(entries.len(), 1, "only the sub stream, under its camera's id: {timeline}");
    assert_eq!(entries[0]["id"], "front");
    let runs = entries[0]["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 1, "one continuous run: {timeline}");
    let main_only = get_json(&format!("{}/api/recordings?stream=main", edge.web)).unwrap();
    assert_eq!(main_only["cameras"].as_array().unwrap().len(), 1, "{main_only}");
    assert_eq!(main_only["cameras"][0]["id"], "front");
    let all = get_json(&format!("{}/api/recordings", edge.web)).unwrap();
    let ids: Vec<&str> = all["cameras"].as_array().unwrap().iter().map(|c| c["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["front", "front.sub"], "without stream every log, as before: {all}");
    let bad = ureq::get(&format!("{}/api/recordings?stream=third", edge.web))
        .config()
        .http_status_as_error(false)
        .build()
        .call()
        .unwrap();
    assert_eq!(bad.status().as_u16(), 400);
    let rfc = |us: i64| jiff::Timestamp::from_microsecond(us).unwrap().to_string();
    let export = |stream: &str| {
        let url = format!(
            "{}/api/recordings/front/export.mp4?start={}&end={}{stream}",
            edge.web,
            rfc(t - 1_000_000),
            rfc(t + 1_000_000)
        );
        let mut response = ureq::get(&url).config().http_status_as_error(false).build().call().unwrap();
        let code = response.status().as_u16();
        let body = response.body_mut().with_config().limit(1 << 28).read_to_vec().unwrap();
        let path = dir.path().join(format!("export{}.mp4", stream.len()));
        std::fs::write(&path, &body).unwrap();
        (code, path)
    };
    for (stream, width) in [("&stream=sub", 320), ("", 640)] {
        let (code, path) = export(stream);
        assert_eq!(code, 200, "export {stream}");
        let out = std::process::Command::new("ffprobe")
            .args(["-v", "error", "-select_streams", "v:0", "-show_entries", "stream=width", "-of", "csv=p=0"])
            .arg(&path)
            .output()
            .expect("ffprobe is installed by ./dev setup");
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), width.to_string(), "export {stream}");
    }
    // Live: the sub stream's socket gives the small picture; a bad stream is refused.
    let ws = edge.web.replace("http://", "ws://");
    let (mut socket, _) = tungstenite::connect(format!("{ws}/api/cameras/front/live.fmp4?stream=sub")).unwrap();
    let init = wait_until("the sub stream's init message", T, || match socket.read().ok()? {
        tungstenite::Message::Text(text) => Some(serde_json::from_str::<Value>(&text).ok()?),
        _ => None,
    })
    .unwrap();
    assert_eq!(
        (init["type"].as_str(), init["width"].as_u64(), init["height"].as_u64()),
        (Some("init"), Some(320), Some(180)),
        "{init}"
    );
    drop(socket);
    for (query, code) in [("front/live.fmp4?stream=third", 400), ("rear/live.fmp4?stream=sub", 404)] {
        match tungstenite::connect(format!("{ws}/api/cameras/{query}")) {
            Err(tungstenite::Error::Http(response)) => assert_eq!(response.status().as_u16(), code, "{query}"),
            other => panic!("{query}: {:?}", other.map(|(_, r)| r.status())),
        }
    }

    // The technician's page shows the sub stream on its camera's card.
    let mut b = Browser::launch(1280, 900).unwrap();
    b.goto(&format!("{}/", edge.web)).unwrap();
    let line = wait_until("the card shows the sub stream", T, || {
        let text = b.eval("(() => { const s = document.querySelector('.cam[data-camera=\"front\"] .sub'); return s && !s.hidden ? s.textContent : null; })()").ok()?;
        text.as_str().filter(|t| t.contains("streaming") && t.contains("320×180")).map(str::to_owned)
    })
    .unwrap_or_else(|e| panic!("{e}: {:?}", b.eval("document.getElementById('cameras').innerHTML")));
    assert!(line.starts_with("Sub stream") && line.contains("continuous, recording"), "{line}");
    b.click(".cam[data-camera=\"front\"] .sub button.live-sub").unwrap();
    let video = "(() => { const v = document.querySelector('.cam[data-camera=\"front\"] .view[data-stream=\"sub\"] video'); \
                 return v && v.currentTime > 1 && v.videoWidth > 0 ? [v.videoWidth, v.videoHeight] : null; })()";
    let size = wait_until("the sub stream plays live on the card", T, || b.eval(video).ok().filter(|v| !v.is_null()))
        .unwrap_or_else(|e| panic!("{e}: {:?}", b.eval("document.getElementById('cameras').innerHTML")));
    assert_eq!(size, serde_json::json!([320, 180]));

    let exit = edge.proc.stop(Duration::from_secs(20)).unwrap();
    assert!(exit.success(), "{exit}\n{}", edge.proc.log_tail());

    // The store: the sub stream's log holds every frame from when it started, the main
    // stream's only the event with its pre-buffer, both with their own picture sizes.
    assert_eq!(stored_sizes(&store, "front.sub"), [(320, 180)]);
    assert_eq!(stored_sizes(&store, "front"), [(640, 360)]);
    let sub = stored_frames(&store, "front.sub");
    assert!(sub[0].keyframe, "{:?}", sub[0]);
    assert!(
        sub[0].wall_us <= both_streaming + 500_000,
        "from the start: {} ms late",
        (sub[0].wall_us - both_streaming) / 1000
    );
    assert!(sub.last().unwrap().wall_us >= t + 6_000_000, "until the end");
    assert!(longest_gap(&sub) < 300_000, "every frame: gap {} µs", longest_gap(&sub));
    let main = stored_frames(&store, "front");
    let first = main[0];
    let last = *main.last().unwrap();
    eprintln!(
        "sub stream: {} frames over {} ms; main stream: {} frames from {} ms before the event to {} ms after",
        sub.len(),
        (sub.last().unwrap().wall_us - sub[0].wall_us) / 1000,
        main.len(),
        (t - first.wall_us) / 1000,
        (last.wall_us - t) / 1000
    );
    assert!(first.keyframe, "the main stream's recording starts on a key frame: {first:?}");
    assert!(t - first.wall_us >= PRE_BUFFER_US - 100_000, "with its pre-buffer: {} ms", (t - first.wall_us) / 1000);
    // At most one GOP more than asked (the buffer starts at a key frame), with a second of slack
    // for a loaded machine.
    assert!(t - first.wall_us <= PRE_BUFFER_US + GOP_US + 1_000_000, "not more: {} ms", (t - first.wall_us) / 1000);
    assert!(last.wall_us >= t + RECORD_FOR_US, "the rule's record_for_s is recorded");
    assert!(
        last.wall_us <= t + RECORD_FOR_US + POST_BUFFER_US + GOP_US + 500_000,
        "then the main stream stops: {} ms after the event",
        (last.wall_us - t) / 1000
    );
    assert!(longest_gap(&main) < 300_000, "one piece around the event: gap {} µs", longest_gap(&main));
}

#[test]
fn central_gets_the_sub_stream_and_plays_it_live_for_an_h265_camera() {
    let dir = tempfile::tempdir().unwrap();
    let h265_dir = dir.path().join("h265");
    std::fs::create_dir_all(&h265_dir).unwrap();
    let (_main, h265) = gst_camera(&h265_dir, &["main"], &["--codec", "h265", "--kbps", "500"]).unwrap();
    let (_sub, h264) = gst_camera(dir.path(), &["sub=320x180"], &["--kbps", "300"]).unwrap();
    let central = CentralProc::start(dir.path(), 0).unwrap();
    let store = dir.path().join("store");
    let config = format!(
        "{}sub_url = \"{h264}/sub\"\n",
        edge_config("bus-1", &store, Some((&central.quic, &central.fingerprint)), &[("cab", &format!("{h265}/main"))])
    );
    let mut edge = EdgeProc::start_enrolled(dir.path(), "edge", &config, "bus-1", &central).unwrap();
    let since = wait_status(&edge, "both streams stream", |s| {
        let cam = &s["cameras"][0];
        (cam["state"] == "streaming" && cam["sub"]["state"] == "streaming").then(now_us)
    });
    let s = edge.status().unwrap();
    assert!(s["cameras"][0]["codec"].as_str().unwrap().starts_with("hvc1"), "{s}");

    // Central knows the sub stream as a camera of the unit, paired with its camera.
    let cameras = wait_until("central lists both streams", T, || {
        let units = central.units().ok()?;
        let cameras = units[0]["cameras"].as_array()?.clone();
        (cameras.len() == 2 && cameras.iter().all(|c| c["state"] == "streaming")).then_some(cameras)
    })
    .unwrap_or_else(|e| panic!("{e}\n{:?}", central.units()));
    let by_id = |id: &str| cameras.iter().find(|c| c["id"] == id).unwrap_or_else(|| panic!("{id}: {cameras:?}"));
    assert_eq!((by_id("cab")["sub_stream"].as_str(), by_id("cab")["sub_of"].as_str()), (Some("cab.sub"), None));
    assert_eq!((by_id("cab.sub")["sub_of"].as_str(), by_id("cab.sub")["sub_stream"].as_str()), (Some("cab"), None));
    assert_eq!(by_id("cab.sub")["name"], "cab (sub stream)");

    // Its recording reaches central like any camera's.
    wait_until("3 s recorded", T, || (now_us() - since > 3_500_000).then_some(())).unwrap();
    let id = central.retrieve("bus-1", "cab.sub", since, since + 3_000_000).unwrap();
    let done = central.wait_retrieval(id, T).unwrap();
    assert_eq!(done["state"], "done", "{done}");
    let rfc = |us: i64| jiff::Timestamp::from_microsecond(us).unwrap().to_string();
    let url = format!(
        "{}/api/units/bus-1/cameras/cab.sub/timeline?start={}&end={}",
        central.web,
        rfc(since),
        rfc(since + 3_000_000)
    );
    let held = hil_tests::timeline_us(&central.get_json(&url).unwrap()["central"]);
    assert!(held >= 2_000_000, "central holds the sub stream's recording: {held} µs");

    // The page plays the H.264 sub stream where the camera's H.265 cannot play.
    let mut b = Browser::launch(1280, 1000).unwrap();
    b.goto(&format!("{}/", central.web)).unwrap();
    log_in(&mut b, "admin", &central.admin_password().unwrap());
    wait_js(&mut b, "the camera tile", "!!document.querySelector('.tile[data-camera=\"cab\"] button.live')");
    b.click(".tile[data-camera=\"cab\"] button.live").unwrap();
    let playing = wait_js(
        &mut b,
        "the H.265 camera's tile plays its sub stream",
        &format!(
            "(() => {{ const s = {}; return s && (s.unsupported || (s.t > 1 && s.w > 0)) ? s : null; }})()",
            tile_video("cab")
        ),
    );
    assert_eq!((playing["w"].as_u64(), playing["h"].as_u64()), (Some(320), Some(180)), "{playing}");
    let said = b
        .eval("(() => { const t = document.querySelector('.tile[data-camera=\"cab\"]'); return [t.dataset.stream, t.querySelector('.stream').textContent]; })()")
        .unwrap();
    assert_eq!(said[0], "sub", "{said}");
    assert!(said[1].as_str().unwrap().contains("cannot play the main stream (hvc1"), "{said}");
    let exit = edge.proc.stop(Duration::from_secs(20)).unwrap();
    assert!(exit.success(), "{exit}");
}

/// `PATCH`/`DELETE` on the technician's camera API (no account yet: loopback may).
fn change(edge: &EdgeProc, method: &str, body: Option<Value>) -> Value {
    let url = format!("{}/api/cameras/front", edge.web);
    let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
    let mut response = match body {
        Some(json) => agent.patch(&url).send_json(json).unwrap(),
        None if method == "DELETE" => agent.delete(&url).call().unwrap(),
        None => panic!("{method}"),
    };
    assert_eq!(response.status().as_u16(), 200, "{method}");
    response.body_mut().read_json().unwrap()
}

#[test]
fn a_change_restarts_only_the_stream_it_concerns() {
    let dir = tempfile::tempdir().unwrap();
    let (_camera, rtsp) = sim_camera(dir.path(), &["main", "sub"], 0).unwrap();
    let store = dir.path().join("store");
    let config = format!(
        "{}sub_url = \"{rtsp}/sub\"\n",
        edge_config("bus-1", &store, None, &[("front", &format!("{rtsp}/main"))])
    );
    let mut edge = EdgeProc::start(dir.path(), "edge", &config).unwrap();
    let sub_frames = |s: &Value| s["cameras"][0]["sub"]["frames_recorded"].as_u64();
    let before = wait_status(&edge, "both streams record", |s| {
        let cam = &s["cameras"][0];
        (cam["frames_recorded"].as_u64()? > 25 && sub_frames(s)? > 25).then(|| sub_frames(s).unwrap())
    });

    // The main stream's mode: only the main stream restarts; the sub stream records on.
    let answer = change(&edge, "PATCH", Some(serde_json::json!({ "mode": "event" })));
    assert_eq!(answer["applied"]["changed"], serde_json::json!(["front"]), "{answer}");
    let s = wait_status(&edge, "the main stream in event mode", |s| {
        (s["cameras"][0]["mode"] == "event" && s["cameras"][0]["state"] == "streaming").then(|| s.clone())
    });
    assert_eq!(s["cameras"][0]["sub"]["mode"], "continuous", "{s}");
    assert!(sub_frames(&s).unwrap() >= before, "the sub stream was not restarted: {s}");

    // A setting both streams use restarts the sub stream too (its counters start again).
    let answer = change(&edge, "PATCH", Some(serde_json::json!({ "pre_buffer_s": 3 })));
    assert_eq!(answer["applied"]["changed"], serde_json::json!(["front"]), "{answer}");
    wait_status(&edge, "the sub stream restarted", |s| (sub_frames(s)? < before).then_some(()));
    wait_status(&edge, "and records again", |s| {
        (s["cameras"][0]["sub"]["state"] == "streaming" && sub_frames(s)? > 0).then_some(())
    });

    // The technician's API lists the sub stream; an empty sub_url removes it (only it stops:
    // the main stream records on), and a new one adds it again.
    let listed = get_json(&format!("{}/api/cameras", edge.web)).unwrap();
    assert_eq!(listed["cameras"][0]["sub_url"], format!("{rtsp}/sub"), "{listed}");
    assert_eq!(listed["cameras"][0]["sub_mode"], "continuous", "{listed}");
    let answer = change(&edge, "PATCH", Some(serde_json::json!({ "sub_url": "" })));
    let only_the_sub = serde_json::json!({ "added": [], "changed": [], "removed": ["front.sub"] });
    assert_eq!(answer["applied"], only_the_sub, "{answer}");
    wait_status(&edge, "no sub stream", |s| s["cameras"][0]["sub"].is_null().then_some(()));
    let listed = get_json(&format!("{}/api/cameras", edge.web)).unwrap();
    assert!(listed["cameras"][0]["sub_url"].is_null() && listed["cameras"][0]["sub_mode"].is_null(), "{listed}");
    let answer =
        change(&edge, "PATCH", Some(serde_json::json!({ "sub_url": format!("{rtsp}/sub"), "sub_mode": "event" })));
    // A camera whose sub stream alone changed is reported `changed` (its main stream runs on).
    assert_eq!(answer["applied"]["changed"], serde_json::json!(["front"]), "{answer}");
    wait_status(&edge, "the sub stream back, in event mode", |s| {
        let sub = &s["cameras"][0]["sub"];
        (sub["mode"] == "event" && sub["state"] == "streaming").then_some(())
    });

    // Removing the camera stops both streams; their recordings stay.
    let answer = change(&edge, "DELETE", None);
    let removed = answer["applied"]["removed"].as_array().unwrap();
    assert!(removed.contains(&Value::from("front")), "{answer}");
    wait_status(&edge, "no camera left", |s| s["cameras"].as_array()?.is_empty().then_some(()));
    let exit = edge.proc.stop(Duration::from_secs(20)).unwrap();
    assert!(exit.success(), "{exit}");
    assert!(!stored_frames(&store, "front.sub").is_empty() && !stored_frames(&store, "front").is_empty());
}
