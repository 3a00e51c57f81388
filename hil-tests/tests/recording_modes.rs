//! Recording modes, edge events and rules with real processes: a weekly schedule's boundary,
//! motion found in the compressed stream recorded with its pre-buffer, an I/O companion input
//! (`io-sim`) recording a camera, locking its video and switching an output, and generic TCP
//! and UDP messages raising events that fire a rule. The stores are read back afterwards.

use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use hil_tests::recording_media::{FrameInfo, motion_burst_clip, now_us, sim_camera_with_clip, stored_frames};
use hil_tests::{CentralProc, EdgeProc, Proc, bin_path, edge_config, get_json, sim_camera, wait_until};
use serde_json::Value;

const T: Duration = Duration::from_secs(40);
const GOP_US: i64 = 1_000_000;

fn status(edge: &EdgeProc) -> Option<Value> {
    edge.status().ok()
}

fn wait_status<R>(edge: &EdgeProc, what: &str, mut check: impl FnMut(&Value) -> Option<R>) -> R {
    wait_until(what, T, || check(&status(edge)?))
        .unwrap_or_else(|e| panic!("{e}\nlast status: {:?}\n{}", status(edge), edge.proc.log_tail()))
}

fn events(edge: &EdgeProc) -> Vec<Value> {
    get_json(&format!("{}/api/events?since=0", edge.web)).ok().and_then(|v| v.as_array().cloned()).unwrap_or_default()
}

/// Waits for the first event `pick` accepts.
fn wait_event(edge: &EdgeProc, what: &str, timeout: Duration, pick: impl Fn(&Value) -> bool) -> Value {
    wait_until(what, timeout, || events(edge).into_iter().find(|e| pick(e)))
        .unwrap_or_else(|e| panic!("{e}\nevents: {:#?}\n{}", events(edge), edge.proc.log_tail()))
}

/// Waits until the camera has streamed for `seconds` (its pre-buffer filled), measured from
/// when the test first saw it streaming; returns that moment.
fn streaming_for(edge: &EdgeProc, seconds: f64) -> i64 {
    let since = wait_status(edge, "the camera streams", |s| (s["cameras"][0]["state"] == "streaming").then(now_us));
    wait_status(edge, "the camera has streamed long enough", |_| {
        (now_us() - since >= (seconds * 1e6) as i64).then_some(())
    });
    since
}

fn stop(edge: &mut EdgeProc) {
    let exit = edge.proc.stop(Duration::from_secs(20)).unwrap();
    assert!(exit.success(), "the edge stops cleanly: {exit}\n{}", edge.proc.log_tail());
}

/// The longest gap between consecutive frames, µs.
fn longest_gap(frames: &[FrameInfo]) -> i64 {
    frames.windows(2).map(|w| w[1].wall_us - w[0].wall_us).max().unwrap_or(0)
}

fn mean_predicted_bytes(frames: &[FrameInfo], from_us: i64, to_us: i64) -> f64 {
    let sizes: Vec<usize> =
        frames.iter().filter(|f| !f.keyframe && f.wall_us >= from_us && f.wall_us < to_us).map(|f| f.bytes).collect();
    assert!(!sizes.is_empty(), "frames between {from_us} and {to_us}");
    sizes.iter().sum::<usize>() as f64 / sizes.len() as f64
}

fn event_time(e: &Value) -> i64 {
    e["time_us"].as_i64().unwrap()
}

#[test]
fn a_schedule_starts_recording_at_its_boundary_on_a_key_frame() {
    let dir = tempfile::tempdir().unwrap();
    let (_camera, rtsp) = sim_camera(dir.path(), &["front"], 0).unwrap();
    // A window opening 10 s from now, written in the unit's local time (Berlin, not UTC).
    let tz = jiff::tz::TimeZone::get("Europe/Berlin").unwrap();
    let boundary_us = (now_us() / 1_000_000 + 10) * 1_000_000;
    let local =
        |us: i64| jiff::Timestamp::from_microsecond(us).unwrap().to_zoned(tz.clone()).strftime("%H:%M:%S").to_string();
    let window = format!("daily {}-{}", local(boundary_us), local(boundary_us + 3_600_000_000));
    let store = dir.path().join("store");
    let config = format!(
        "time_zone = \"Europe/Berlin\"\n{}mode = \"schedule\"\nschedule = \"service\"\n\
         [[time_profile]]\nname = \"service\"\nwindows = [\"{window}\"]\n",
        edge_config("bus-1", &store, None, &[("front", &format!("{rtsp}/front"))])
    );
    let mut edge = EdgeProc::start(dir.path(), "edge", &config).unwrap();
    streaming_for(&edge, 3.0);
    let s = status(&edge).unwrap();
    assert!(now_us() < boundary_us - 500_000, "the test got here before the boundary");
    let cam = &s["cameras"][0];
    assert_eq!(cam["mode"], "schedule", "{s}");
    assert_eq!(cam["recording"], false, "{s}");
    assert_eq!(cam["frames_recorded"], 0, "nothing recorded before the window: {s}");
    assert!(cam["fps"].as_f64().unwrap() > 20.0, "while the camera streams: {s}");

    wait_status(&edge, "recording inside the window", |s| {
        let cam = &s["cameras"][0];
        (cam["recording"] == true && cam["frames_recorded"].as_u64()? >= 50).then_some(())
    });
    stop(&mut edge);
    let frames = stored_frames(&store, "front");
    assert!(frames.len() >= 50, "{} frames", frames.len());
    let first = frames[0];
    eprintln!("schedule: first frame {} ms after the boundary", (first.wall_us - boundary_us) / 1000);
    assert!(first.keyframe, "the recording starts on a key frame: {first:?}");
    assert!(
        first.wall_us >= boundary_us,
        "nothing before the boundary: first frame {} µs early",
        boundary_us - first.wall_us
    );
    assert!(
        first.wall_us - boundary_us <= GOP_US + 300_000,
        "the first key frame after the boundary: {} µs late",
        first.wall_us - boundary_us
    );
    assert!(longest_gap(&frames) < 300_000, "then every frame: gap {} µs", longest_gap(&frames));
}

#[test]
fn a_motion_burst_is_recorded_with_its_pre_buffer() {
    let dir = tempfile::tempdir().unwrap();
    let clip = motion_burst_clip(dir.path(), 6, 4).unwrap();
    let (_camera, rtsp) = sim_camera_with_clip(dir.path(), &clip, &["front"]).unwrap();
    let store = dir.path().join("store");
    let config = format!(
        "{}mode = \"event\"\nmotion = true\npre_buffer_s = 3\npost_buffer_s = 1\n",
        edge_config("bus-1", &store, None, &[("front", &format!("{rtsp}/front"))])
    );
    let mut edge = EdgeProc::start(dir.path(), "edge", &config).unwrap();
    let streaming = streaming_for(&edge, 0.5);
    assert_eq!(status(&edge).unwrap()["cameras"][0]["mode"], "event");
    // Motion that starts once the pre-buffer has had time to fill (the clip loops every 10 s).
    let started = wait_event(&edge, "motion starts", Duration::from_secs(45), |e| {
        e["kind"]["MotionStarted"]["camera"] == "front" && event_time(e) >= streaming + 5_000_000
    });
    let t = event_time(&started);
    let stopped =
        wait_event(&edge, "motion stops", T, |e| e["kind"]["MotionStopped"]["camera"] == "front" && event_time(e) > t);
    let t_end = event_time(&stopped);
    assert!(t_end - t >= 3_000_000, "the moving part lasts 4 s: {} ms", (t_end - t) / 1000);
    wait_status(&edge, "recording ends after the post-buffer", |s| {
        (s["cameras"][0]["recording"] == false && now_us() > t_end + 1_000_000).then_some(())
    });
    let earlier_stop = events(&edge)
        .iter()
        .filter(|e| e["kind"]["MotionStopped"].is_object() && event_time(e) < t)
        .map(event_time)
        .max();
    stop(&mut edge);

    let frames = stored_frames(&store, "front");
    let around: Vec<FrameInfo> =
        frames.iter().copied().filter(|f| f.wall_us >= t - 5_000_000 && f.wall_us <= t_end + 3_000_000).collect();
    assert!(!around.is_empty(), "an event recording");
    let first = around[0];
    assert!(first.keyframe, "the pre-buffer starts on a key frame: {first:?}");
    assert!(
        t - first.wall_us >= 2_900_000,
        "3 s of pre-buffer from before the motion: {} ms",
        (t - first.wall_us) / 1000
    );
    assert!(
        t - first.wall_us <= 3_000_000 + GOP_US + 300_000,
        "not more than a GOP over: {} ms",
        (t - first.wall_us) / 1000
    );
    assert!(longest_gap(&around) < 300_000, "pre-buffer and live frames join up: gap {} µs", longest_gap(&around));
    let last = around.last().unwrap();
    assert!(last.wall_us >= t_end + 900_000, "the post-buffer is recorded");
    assert!(last.wall_us <= t_end + 1_000_000 + GOP_US + 500_000, "and then recording stops");
    // What was recorded before the motion is the still picture: small predicted frames.
    let still = mean_predicted_bytes(&around, first.wall_us, t - 200_000);
    let moving = mean_predicted_bytes(&around, t, t + 2_000_000);
    eprintln!(
        "motion: pre-buffer {} ms, motion {} ms, {} frames stored of {} ms streamed; predicted frames {still:.0} B still, {moving:.0} B moving",
        (t - first.wall_us) / 1000,
        (t_end - t) / 1000,
        frames.len(),
        (last.wall_us - streaming) / 1000
    );
    assert!(moving > 4.0 * still, "the detector fired on the moving part: {still:.0} B still, {moving:.0} B moving");
    // Outside events nothing is recorded.
    let idle_from = earlier_stop.map_or(streaming, |s| s + 1_000_000 + GOP_US + 500_000);
    let idle_to = first.wall_us - 100_000;
    assert!(
        !frames.iter().any(|f| f.wall_us >= idle_from && f.wall_us < idle_to),
        "frames recorded between events ({idle_from}..{idle_to})"
    );
}

/// `io-sim` linked to an edge whose camera records only on events.
struct BoardRig {
    _camera: Proc,
    sim: Proc,
    edge: EdgeProc,
    store: std::path::PathBuf,
}

fn board_rig(dir: &Path, extra: &str, central: Option<&CentralProc>) -> BoardRig {
    let (camera, rtsp) = sim_camera(dir, &["front"], 0).unwrap();
    let unit: SocketAddr = std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let mut cmd = Command::new(bin_path("io-sim").unwrap());
    cmd.args(["--unit", &unit.to_string(), "--listen", "127.0.0.1:0"]);
    let mut sim = Proc::spawn_with_stdin("io-sim", cmd, &dir.join("io-sim.log")).unwrap();
    let board = sim.wait_line("ready ", T).unwrap().trim_start_matches("ready ").to_owned();
    sim.send_line("input ignition 1").unwrap();
    let store = dir.join("store");
    let config = format!(
        "{}mode = \"event\"\npre_buffer_s = 3\npost_buffer_s = 1\n[io]\nlisten = \"{unit}\"\nboard = \"{board}\"\n{extra}",
        edge_config(
            "bus-1",
            &store,
            central.map(|c| (c.quic.as_str(), c.fingerprint.as_str())),
            &[("front", &format!("{rtsp}/front"))]
        )
    );
    let edge = match central {
        Some(central) => EdgeProc::start_enrolled(dir, "edge", &config, "bus-1", central).unwrap(),
        None => EdgeProc::start(dir, "edge", &config).unwrap(),
    };
    wait_status(&edge, "the I/O link is up", |s| (s["io"]["link_up"] == true).then_some(()));
    BoardRig { _camera: camera, sim, edge, store }
}

#[test]
fn a_board_input_records_its_camera_with_the_pre_buffer_locks_it_and_switches_an_output() {
    let dir = tempfile::tempdir().unwrap();
    let rule = "[[rule]]\nname = \"panic\"\ntrigger = \"input\"\ninput = \"panic\"\nrecord = [\"front\"]\n\
                lock = [\"front\"]\nlock_before_s = 5\nlock_after_s = 5\nnotify_central = true\nset_output = 2\n";
    let central = CentralProc::start(dir.path(), 0).unwrap();
    let mut rig = board_rig(dir.path(), rule, Some(&central));
    streaming_for(&rig.edge, 4.0);
    let s = status(&rig.edge).unwrap();
    assert_eq!(s["cameras"][0]["frames_recorded"], 0, "an event camera records nothing while idle: {s}");

    rig.sim.send_line("input panic 1").unwrap();
    rig.sim.wait_line("output 2 on", T).expect("the rule switches output 2 on the board");
    let pressed = wait_event(&rig.edge, "the panic event", T, |e| {
        e["kind"]["InputChanged"]["input"] == "Panic" && e["kind"]["InputChanged"]["active"] == true
    });
    let t = event_time(&pressed);
    let alarm = wait_event(&rig.edge, "the rule's alarm", T, |e| e["kind"]["RuleAlarm"].is_object());
    assert_eq!(alarm["kind"]["RuleAlarm"]["rule"], "panic");
    assert_eq!(alarm["kind"]["RuleAlarm"]["cameras"], serde_json::json!(["front"]));
    assert_eq!(alarm["kind"]["RuleAlarm"]["cause"], pressed["id"]);
    wait_status(&rig.edge, "recording while the button is pressed", |s| {
        let cam = &s["cameras"][0];
        (cam["recording"] == true && cam["frames_recorded"].as_u64()? > 100).then_some(())
    });
    assert!(
        rig.edge.status().unwrap()["io"]["outputs_on"].as_array().unwrap().contains(&serde_json::json!(2)),
        "the board reports output 2 on"
    );
    rig.sim.send_line("input panic 0").unwrap();
    let released = wait_event(&rig.edge, "the release", T, |e| {
        e["kind"]["InputChanged"]["input"] == "Panic" && e["kind"]["InputChanged"]["active"] == false
    });
    let t_end = event_time(&released);
    wait_status(&rig.edge, "recording stops after the post-buffer", |s| {
        (s["cameras"][0]["recording"] == false).then_some(())
    });
    // Central retrieves the event recording around the alarm, pre-buffer included.
    let rfc = |us: i64| jiff::Timestamp::from_microsecond(us).unwrap().to_string();
    let url =
        format!("{}/api/units/bus-1/cameras/front/timeline?start={}&end={}", central.web, rfc(t - 2_500_000), rfc(t));
    wait_until("central holds the pre-buffer", T, || {
        (hil_tests::timeline_us(&central.get_json(&url).ok()?["central"]) >= 2_400_000).then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", central.proc.log_tail()));
    stop(&mut rig.edge);

    let frames = stored_frames(&rig.store, "front");
    let first = frames[0];
    eprintln!(
        "input: pre-buffer {} ms, pressed {} ms, recorded until {} ms after the release",
        (t - first.wall_us) / 1000,
        (t_end - t) / 1000,
        (frames.last().unwrap().wall_us - t_end) / 1000
    );
    assert!(first.keyframe, "{first:?}");
    assert!(t - first.wall_us >= 2_900_000, "the pre-buffer from before the press: {} ms", (t - first.wall_us) / 1000);
    assert!(t - first.wall_us <= 3_000_000 + GOP_US + 300_000, "{} ms", (t - first.wall_us) / 1000);
    assert!(longest_gap(&frames) < 300_000, "one recording without holes: gap {} µs", longest_gap(&frames));
    let last = frames.last().unwrap();
    assert!(last.wall_us >= t_end + 900_000, "the post-buffer after the release");
    assert!(last.wall_us <= t_end + 1_000_000 + GOP_US + 500_000, "then it stops");

    let catalog = media_store::catalog::Catalog::open_read_only(&media_store::catalog_path(&rig.store)).unwrap();
    let locks = catalog.locks().unwrap();
    assert_eq!(locks.len(), 1, "{locks:?}");
    let lock = &locks[0].lock;
    assert_eq!(lock.camera, "front");
    assert_eq!((lock.start_us, lock.end_us), (t - 5_000_000, t + 5_000_000));
    assert!(lock.reason.contains("panic"), "{}", lock.reason);

    // Central raised the alarms: the panic input itself and the rule's, for its camera.
    let alarms = central.get_json(&format!("{}/api/alarms", central.web)).unwrap();
    let alarms = alarms.as_array().unwrap();
    let rule_alarm = alarms.iter().find(|a| a["kind"]["Generic"]["name"] == "rule:panic");
    assert_eq!(rule_alarm.map(|a| a["cameras"].clone()), Some(serde_json::json!(["front"])), "{alarms:?}");
    assert!(alarms.iter().any(|a| a["kind"]["DigitalInput"]["active"] == true), "the input itself: {alarms:?}");
}

#[test]
fn generic_tcp_and_udp_messages_raise_events_and_fire_a_rule() {
    let dir = tempfile::tempdir().unwrap();
    let (_camera, rtsp) = sim_camera(dir.path(), &["front"], 0).unwrap();
    let store = dir.path().join("store");
    let config = format!(
        "{}mode = \"event\"\npre_buffer_s = 2\npost_buffer_s = 0.5\n\
         [generic_events]\ntcp = \"127.0.0.1:0\"\nudp = \"127.0.0.1:0\"\n\
         [[generic_events.pattern]]\nname = \"door-forced\"\ncontains = \"DOOR\"\nregex = 'forced\\s+#\\d+'\n\
         [[rule]]\nname = \"forced\"\ntrigger = \"generic\"\npattern = \"door-forced\"\nrecord = [\"front\"]\n\
         record_for_s = 2\nnotify_central = true\n",
        edge_config("bus-1", &store, None, &[("front", &format!("{rtsp}/front"))])
    );
    let mut edge = EdgeProc::start(dir.path(), "edge", &config).unwrap();
    let addr = |proc: &mut Proc, what: &str| -> SocketAddr {
        proc.wait_line(what, T).unwrap().rsplit(' ').next().unwrap().parse().unwrap()
    };
    let tcp = addr(&mut edge.proc, "generic events tcp listening on");
    let udp = addr(&mut edge.proc, "generic events udp listening on");
    streaming_for(&edge, 3.0);

    let mut conn = std::net::TcpStream::connect(tcp).unwrap();
    let long = "x".repeat(5000);
    conn.write_all(format!("hello\r\nDOOR forced #3\r\n{long}DOOR forced #9\n").as_bytes()).unwrap();
    drop(conn);
    let sender = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    sender.send_to(b"DOOR  forced #4", udp).unwrap();
    sender.send_to(b"DOOR closed", udp).unwrap();

    let matched = |text: &'static str| {
        move |e: &Value| {
            e["kind"]["GenericMatched"]["text"] == text && e["kind"]["GenericMatched"]["pattern"] == "door-forced"
        }
    };
    let by_tcp = wait_event(&edge, "the TCP message's event", T, matched("DOOR forced #3"));
    let by_udp = wait_event(&edge, "the UDP message's event", T, matched("DOOR  forced #4"));
    assert!(by_tcp["kind"]["GenericMatched"]["source"].as_str().unwrap().starts_with("tcp:127.0.0.1:"), "{by_tcp}");
    assert!(by_udp["kind"]["GenericMatched"]["source"].as_str().unwrap().starts_with("udp:127.0.0.1:"), "{by_udp}");
    let alarms = wait_until("both alarms", T, || {
        let a: Vec<Value> = events(&edge).into_iter().filter(|e| e["kind"]["RuleAlarm"]["rule"] == "forced").collect();
        (a.len() == 2).then_some(a)
    })
    .unwrap();
    let causes: Vec<&Value> = alarms.iter().map(|a| &a["kind"]["RuleAlarm"]["cause"]).collect();
    assert!(causes.contains(&&by_tcp["id"]) && causes.contains(&&by_udp["id"]), "{alarms:?}");
    let all = events(&edge);
    let generic: Vec<&Value> = all.iter().filter(|e| e["kind"]["GenericMatched"].is_object()).collect();
    assert_eq!(generic.len(), 2, "no event for lines that do not match, nor for the cut overlong line: {generic:?}");

    wait_status(&edge, "the rule records the camera", |s| {
        (s["cameras"][0]["frames_recorded"].as_u64()? > 50).then_some(())
    });
    wait_status(&edge, "for its record_for_s", |s| (s["cameras"][0]["recording"] == false).then_some(()));
    stop(&mut edge);
    let t = event_time(&by_tcp).min(event_time(&by_udp));
    let frames = stored_frames(&store, "front");
    assert!(frames[0].keyframe);
    assert!(t - frames[0].wall_us >= 1_900_000, "the pre-buffer: {} ms", (t - frames[0].wall_us) / 1000);
}

/// A rule's `notify_central` becomes an alarm at central naming the camera, and central's event
/// window retrieves the event recording, pre-buffer included, from a camera that records only on
/// events.
#[test]
fn a_rule_alarm_reaches_central_which_retrieves_the_event_recording() {
    let dir = tempfile::tempdir().unwrap();
    let central = CentralProc::start(dir.path(), 0).unwrap();
    let (_camera, rtsp) = sim_camera(dir.path(), &["front"], 0).unwrap();
    let store = dir.path().join("store");
    let config = format!(
        "{}mode = \"event\"\npre_buffer_s = 3\npost_buffer_s = 1\n\
         [generic_events]\nudp = \"127.0.0.1:0\"\n\
         [[generic_events.pattern]]\nname = \"fare\"\nregex = \"^FARE (EVASION|DISPUTE)$\"\n\
         [[rule]]\nname = \"fare\"\ntrigger = \"generic\"\nrecord = [\"front\"]\nrecord_for_s = 2\nnotify_central = true\n",
        edge_config(
            "bus-1",
            &store,
            Some((&central.quic, &central.fingerprint)),
            &[("front", &format!("{rtsp}/front"))]
        )
    );
    std::fs::write(dir.path().join("edge.toml"), &config).unwrap();
    hil_tests::edge_enroll(&dir.path().join("edge.toml"), &central.quic, &central.add_unit("bus-1").unwrap()).unwrap();
    let mut edge = EdgeProc::start(dir.path(), "edge", &config).unwrap();
    let udp: SocketAddr =
        edge.proc.wait_line("generic events udp listening on", T).unwrap().rsplit(' ').next().unwrap().parse().unwrap();
    wait_status(&edge, "the unit is connected to central", |s| (s["central_connected"] == true).then_some(()));
    streaming_for(&edge, 4.0);
    std::net::UdpSocket::bind("127.0.0.1:0").unwrap().send_to(b"FARE EVASION", udp).unwrap();
    let matched = wait_event(&edge, "the message's event", T, |e| e["kind"]["GenericMatched"]["pattern"] == "fare");
    let t = event_time(&matched);
    let alarm = wait_until("the alarm at central", T, || {
        let alarms = central.get_json(&format!("{}/api/alarms", central.web)).ok()?;
        alarms.as_array()?.iter().find(|a| a["kind"]["Generic"]["name"] == "rule:fare").cloned()
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", central.proc.log_tail()));
    assert_eq!(alarm["unit"], "bus-1");
    assert_eq!(alarm["cameras"], serde_json::json!(["front"]), "{alarm}");
    let all = central.get_json(&format!("{}/api/alarms", central.web)).unwrap();
    assert!(
        !all.as_array().unwrap().iter().any(|a| a["kind"]["Generic"]["name"] == "generic_matched"),
        "the matched message itself stays on the unit: {all}"
    );
    let rfc = |us: i64| jiff::Timestamp::from_microsecond(us).unwrap().to_string();
    let held = |from: i64, to: i64| -> Option<i64> {
        let url = format!("{}/api/units/bus-1/cameras/front/timeline?start={}&end={}", central.web, rfc(from), rfc(to));
        Some(hil_tests::timeline_us(&central.get_json(&url).ok()?["central"]))
    };
    // The event window (central's default, 10 s either side) holds the pre-buffer and the
    // recording: about 3 s before and 2 s + the post-buffer after.
    wait_until("central holds the event recording", T, || {
        (held(t - 2_500_000, t)? >= 2_400_000 && held(t, t + 2_500_000)? >= 2_400_000).then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}\n{}\n{}", central.proc.log_tail(), edge.proc.log_tail()));
    assert!(held(t - 10_000_000, t - 4_500_000).unwrap_or(0) == 0, "nothing was recorded long before the event");
    stop(&mut edge);
}
