//! The unit in its vehicle, with real processes: `io-sim` (the I/O companion's logic on UDP,
//! driven on stdin), `sim-camera` and the edge. Ignition run-on and shutdown, the seal on a power
//! warning, input events, relay outputs, the board file check, and systemd's notifications and
//! watchdog (a Unix datagram socket standing in for systemd).

use std::net::SocketAddr;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use hil_tests::{CentralProc, EdgeProc, Proc, bin_path, edge_config, get_json, sim_camera, wait_until};
use nix::sys::signal::Signal;
use serde_json::Value;

const T: Duration = Duration::from_secs(60);

/// A camera, the simulated I/O companion and an edge linked to both.
struct Rig {
    _camera: Proc,
    sim: Proc,
    edge: EdgeProc,
    store: std::path::PathBuf,
}

impl Rig {
    /// Starts everything in `dir` with the ignition on; `extra` is appended to the edge's
    /// config, `env` set for the edge.
    fn start(dir: &Path, extra: &str, env: &[(&str, &str)]) -> Rig {
        Self::start_with(dir, extra, env, None)
    }

    /// [`Rig::start`], the unit enrolled with `central` and connected to it.
    fn start_with(dir: &Path, extra: &str, env: &[(&str, &str)], central: Option<&CentralProc>) -> Rig {
        let (camera, rtsp) = sim_camera(dir, &["front"], 0).unwrap();
        // The edge's UDP port for the board: pick a free one (bind, note it, close).
        let unit: SocketAddr = std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
        let mut cmd = Command::new(bin_path("io-sim").unwrap());
        cmd.args(["--unit", &unit.to_string(), "--listen", "127.0.0.1:0"]);
        let mut sim = Proc::spawn_with_stdin("io-sim", cmd, &dir.join("io-sim.log")).unwrap();
        let board = sim.wait_line("ready ", T).unwrap().trim_start_matches("ready ").to_owned();
        sim.send_line("input ignition 1").unwrap();
        let store = dir.join("store");
        let link = central.map(|c| (c.quic.as_str(), c.fingerprint.as_str()));
        let config = format!(
            "{}[io]\nlisten = \"{unit}\"\nboard = \"{board}\"\n{extra}",
            edge_config("bus-1", &store, link, &[("front", &format!("{rtsp}/front"))])
        );
        if let Some(c) = central {
            std::fs::write(dir.join("edge.toml"), &config).unwrap();
            hil_tests::edge_enroll(&dir.join("edge.toml"), &c.quic, &c.add_unit("bus-1").unwrap()).unwrap();
        }
        let edge = start_edge(dir, "edge", &config, env);
        let rig = Rig { _camera: camera, sim, edge, store };
        rig.wait_status("the edge records with the I/O link up and the ignition on", |s| {
            let recording = s["cameras"][0]["frames_recorded"].as_u64()? > 25;
            let io = &s["io"];
            let ignition = io["inputs"].as_array()?.iter().any(|i| i["name"] == "ignition" && i["active"] == true);
            (recording && io["link_up"] == true && ignition).then_some(())
        });
        rig
    }

    fn status(&self) -> Option<Value> {
        self.edge.status().ok()
    }

    fn wait_status<R>(&self, what: &str, mut check: impl FnMut(&Value) -> Option<R>) -> R {
        wait_until(what, T, || check(&self.status()?))
            .unwrap_or_else(|e| panic!("{e}\nlast status: {:?}\n{}", self.status(), self.edge.proc.log_tail()))
    }

    fn events(&self) -> Vec<Value> {
        get_json(&format!("{}/api/events?since=0", self.edge.web)).unwrap().as_array().unwrap().clone()
    }
}

/// Starts `edge run` with `env` added (the harness's `EdgeProc::start` without it).
fn start_edge(dir: &Path, name: &str, config_text: &str, env: &[(&str, &str)]) -> EdgeProc {
    let config = dir.join(format!("{name}.toml"));
    std::fs::write(&config, config_text).unwrap();
    let mut cmd = Command::new(bin_path("edge").unwrap());
    cmd.arg("run").arg("--config").arg(&config).envs(env.iter().copied());
    let mut proc = Proc::spawn(name, cmd, &dir.join(format!("{name}.log"))).unwrap();
    let web = proc.wait_line("web listening on", T).unwrap().rsplit(' ').next().unwrap().to_owned();
    EdgeProc { proc, web }
}

fn verify_json(store: &Path) -> Value {
    let out = Command::new(bin_path("edge").unwrap()).args(["store", "verify", "--json"]).arg(store).output().unwrap();
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("verify printed no JSON ({e}): {}", String::from_utf8_lossy(&out.stderr)))
}

/// `(sealed, unsealed)` segments of every camera's log.
fn segments(store: &Path) -> (usize, usize) {
    let (mut sealed, mut open) = (0, 0);
    for log in media_store::list_logs(store).unwrap() {
        for (first_seq, path) in media_store::volumes::log_segments(store, &log).unwrap() {
            let scan = media_store::index::scan_segment(&path, first_seq).unwrap();
            if scan.index.seal.is_some() { sealed += 1 } else { open += 1 }
        }
    }
    (sealed, open)
}

fn now_us() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_micros() as i64
}

#[test]
fn ignition_off_runs_on_then_seals_and_exits_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let mut rig = Rig::start(dir.path(), "[power]\nrun_on_s = 2\n", &[]);
    assert_eq!(rig.status().unwrap()["power"]["state"], "running");
    let off = Instant::now();
    rig.sim.send_line("input ignition 0").unwrap();
    let power = rig.wait_status("the run-on starts", |s| (s["power"]["state"] == "run_on").then(|| s["power"].clone()));
    assert!(power["run_on_remaining_s"].as_u64().unwrap() <= 2, "{power}");
    let exit = rig.edge.proc.wait(Duration::from_secs(30)).unwrap();
    assert!(exit.success(), "the edge exits 0 after the run-on: {exit}\n{}", rig.edge.proc.log_tail());
    assert!(off.elapsed() >= Duration::from_secs(2), "not before the run-on is over");

    let report = verify_json(&rig.store);
    assert_eq!(report["ok"], true, "{report:#}");
    assert!(report["cameras"]["front"]["frames"].as_u64().unwrap() > 25, "{report:#}");
    assert_eq!(report["dropped_tail_bytes"], 0);
    let (sealed, open) = segments(&rig.store);
    assert!(sealed >= 1 && open == 0, "every segment is sealed: {sealed} sealed, {open} not");
}

#[test]
fn ignition_on_during_the_run_on_cancels_the_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let mut rig = Rig::start(dir.path(), "[power]\nrun_on_s = 3\n", &[]);
    rig.sim.send_line("input ignition 0").unwrap();
    rig.wait_status("the run-on starts", |s| (s["power"]["state"] == "run_on").then_some(()));
    rig.sim.send_line("input ignition 1").unwrap();
    rig.wait_status("the run-on is cancelled", |s| (s["power"]["state"] == "running").then_some(()));
    // Longer than the run-on: the edge must still be there, recording.
    let frames = rig.status().unwrap()["cameras"][0]["frames_recorded"].as_u64().unwrap();
    std::thread::sleep(Duration::from_secs(4));
    let s = rig.status().expect("the edge still answers after the run-on would have ended");
    assert_eq!(s["power"]["state"], "running");
    assert!(s["cameras"][0]["frames_recorded"].as_u64().unwrap() > frames, "still recording");
    let kinds: Vec<Value> = rig.events().into_iter().map(|e| e["kind"].clone()).collect();
    let off = kinds.iter().position(|k| k == "IgnitionOff").expect("an IgnitionOff event");
    assert!(kinds[off..].iter().any(|k| k == "IgnitionOn"), "then IgnitionOn: {kinds:?}");
    assert!(rig.edge.proc.stop(Duration::from_secs(20)).unwrap().success());
}

#[test]
fn a_power_warning_seals_every_open_segment_and_recording_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let mut rig = Rig::start(dir.path(), "", &[]);
    assert_eq!(segments(&rig.store), (0, 1), "one open segment, nothing sealed yet");
    let before = now_us();
    rig.sim.send_line("supply 8000").unwrap();
    let sealed_at =
        rig.wait_status("the power warning's seal", |s| s["power"]["last_seal_us"].as_i64().filter(|&t| t > before));
    assert!(sealed_at - before < 2_000_000, "sealed {} ms after the warning", (sealed_at - before) / 1000);
    let s = rig.status().unwrap();
    assert_eq!(s["io"]["power_low"], true);
    assert_eq!(s["io"]["supply_mv"], 8000);
    let (sealed, _) = segments(&rig.store);
    assert_eq!(sealed, 1, "the open segment was sealed");
    assert!(rig.events().iter().any(|e| e["kind"]["PowerWarning"]["millivolts"] == 8000));

    // Recording goes on into a new segment.
    let frames = s["cameras"][0]["frames_recorded"].as_u64().unwrap();
    rig.wait_status("recording goes on", |s| {
        (s["cameras"][0]["frames_recorded"].as_u64()? > frames + 25).then_some(())
    });
    assert_eq!(segments(&rig.store), (1, 1));
    rig.sim.send_line("supply 12000").unwrap();
    rig.wait_status("power restored", |s| (s["io"]["power_low"] == false).then_some(()));
    assert!(rig.events().iter().any(|e| e["kind"]["PowerRestored"]["millivolts"] == 12000));
    assert!(rig.edge.proc.stop(Duration::from_secs(20)).unwrap().success());
    assert_eq!(verify_json(&rig.store)["ok"], true);
}

#[test]
fn the_panic_button_is_an_event() {
    let dir = tempfile::tempdir().unwrap();
    let mut rig = Rig::start(dir.path(), "", &[]);
    let last = rig.events().last().map_or(0, |e| e["id"].as_u64().unwrap());
    rig.sim.send_line("input panic 1").unwrap();
    let event = wait_until("the panic event", T, || {
        let events = get_json(&format!("{}/api/events?since={last}", rig.edge.web)).ok()?;
        events.as_array()?.iter().find(|e| e["kind"]["InputChanged"]["input"] == "Panic").cloned()
    })
    .unwrap();
    assert_eq!(event["kind"]["InputChanged"]["active"], true, "{event}");
    assert!(event["id"].as_u64().unwrap() > last);
    assert!((now_us() - event["time_us"].as_i64().unwrap()).abs() < 10_000_000, "{event}");
    let s = rig.status().unwrap();
    assert!(s["io"]["inputs"].as_array().unwrap().iter().any(|i| i["name"] == "panic" && i["active"] == true), "{s}");
}

/// The panic button reaches central as an alarm, and central retrieves the recording around it
/// (the default `event_window`: 10 s before, 10 s after), the part before the press included.
#[test]
fn the_panic_button_raises_an_alarm_at_central_which_retrieves_the_video_around_it() {
    let dir = tempfile::tempdir().unwrap();
    let central = CentralProc::start(dir.path(), 0).unwrap();
    let mut rig = Rig::start_with(dir.path(), "", &[], Some(&central));
    rig.wait_status("the unit is connected to central", |s| (s["central_connected"] == true).then_some(()));
    // Some recording before the press.
    std::thread::sleep(Duration::from_secs(8));
    rig.sim.send_line("input panic 1").unwrap();
    let pressed = now_us();
    let alarm = wait_until("the alarm at central", T, || {
        let alarms = central.get_json(&format!("{}/api/alarms", central.web)).ok()?;
        alarms.as_array()?.iter().find(|a| a["unit"] == "bus-1" && a["kind"]["DigitalInput"]["input"] == 1).cloned()
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", central.proc.log_tail()));
    assert_eq!(alarm["kind"]["DigitalInput"]["active"], true, "{alarm}");
    assert_eq!(alarm["state"], "new");
    let rfc = |us: i64| jiff::Timestamp::from_microsecond(us).unwrap().to_string();
    let held = |from: i64, to: i64| -> Option<i64> {
        let t = central
            .get_json(&format!(
                "{}/api/units/bus-1/cameras/front/timeline?start={}&end={}",
                central.web,
                rfc(from),
                rfc(to)
            ))
            .ok()?;
        Some(hil_tests::timeline_us(&t["central"]))
    };
    // The six seconds before the press reach central without anyone asking.
    wait_until("the video before the press is at central", T, || {
        (held(pressed - 6_000_000, pressed)? >= 5_500_000).then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", central.proc.log_tail()));
}

fn post_output(web: &str, output: u32, on: bool) -> (u16, Value) {
    let mut response = ureq::post(&format!("{web}/api/io/outputs/{output}"))
        .config()
        .http_status_as_error(false)
        .build()
        .send_json(serde_json::json!({ "on": on }))
        .unwrap();
    (response.status().as_u16(), response.body_mut().read_json().unwrap())
}

#[test]
fn an_output_is_switched_through_the_local_api() {
    let dir = tempfile::tempdir().unwrap();
    let mut rig = Rig::start(dir.path(), "", &[]);
    let (code, body) = post_output(&rig.edge.web, 0, true);
    assert_eq!((code, &body), (200, &serde_json::json!({ "output": 0, "on": true })));
    rig.sim.wait_line("output 0 on", T).unwrap();
    assert_eq!(rig.status().unwrap()["io"]["outputs_on"], serde_json::json!([0]));
    // io-sim has four outputs: the board rejects output 9 and the unit says it was not confirmed.
    let (code, body) = post_output(&rig.edge.web, 9, true);
    assert_eq!(code, 504, "{body}");
    assert!(body["error"].as_str().unwrap().contains("did not confirm output 9"), "{body}");
    rig.sim.wait_line("rejected output 9", T).unwrap();
    let (code, _) = post_output(&rig.edge.web, 0, false);
    assert_eq!(code, 200);
    rig.sim.wait_line("output 0 off", T).unwrap();
}

/// Reads notifications until one equals `want`, for at most `timeout`.
fn expect_notification(socket: &UnixDatagram, want: &str, timeout: Duration) -> Result<(), Vec<String>> {
    let deadline = Instant::now() + timeout;
    let mut seen = Vec::new();
    let mut buf = [0u8; 512];
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        socket.set_read_timeout(Some(left.max(Duration::from_millis(1)))).unwrap();
        match socket.recv(&mut buf) {
            Ok(n) => {
                let message = String::from_utf8_lossy(&buf[..n]).into_owned();
                if message.lines().any(|l| l == want) {
                    return Ok(());
                }
                seen.push(message);
            }
            Err(_) => break,
        }
    }
    Err(seen)
}

/// Discards the notifications already waiting.
fn drain(socket: &UnixDatagram) {
    socket.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 512];
    while socket.recv(&mut buf).is_ok() {}
    socket.set_nonblocking(false).unwrap();
}

#[test]
fn systemd_gets_ready_and_watchdog_pings_that_stop_when_the_unit_hangs() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&path).unwrap();
    let env = [("NOTIFY_SOCKET", path.to_str().unwrap()), ("WATCHDOG_USEC", "1000000")];
    let interval = Duration::from_millis(500);
    let mut rig = Rig::start(dir.path(), "", &env);
    expect_notification(&socket, "READY=1", T).unwrap_or_else(|seen| panic!("no READY=1; got {seen:?}"));
    drain(&socket);
    let started = Instant::now();
    for n in 0..4 {
        expect_notification(&socket, "WATCHDOG=1", interval * 3)
            .unwrap_or_else(|seen| panic!("no WATCHDOG=1 number {n}; got {seen:?}"));
    }
    assert!(started.elapsed() >= interval * 2, "pings come every half timeout, not in a burst");

    // A hung unit: the pings stop.
    rig.edge.proc.signal(Signal::SIGSTOP).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    drain(&socket);
    let mut buf = [0u8; 512];
    socket.set_read_timeout(Some(interval * 3)).unwrap();
    if let Ok(n) = socket.recv(&mut buf) {
        panic!("a stopped unit sent {:?}", String::from_utf8_lossy(&buf[..n]));
    }

    // What systemd then does: SIGKILL and start again.
    rig.edge.proc.kill();
    let config = std::fs::read_to_string(dir.path().join("edge.toml")).unwrap();
    let mut edge = start_edge(dir.path(), "edge", &config, &env);
    expect_notification(&socket, "READY=1", T)
        .unwrap_or_else(|seen| panic!("no READY=1 after the restart; got {seen:?}"));
    expect_notification(&socket, "WATCHDOG=1", interval * 3).unwrap();
    assert!(edge.proc.stop(Duration::from_secs(20)).unwrap().success());
    expect_notification(&socket, "STOPPING=1", Duration::from_secs(5)).unwrap();
    let report = verify_json(&rig.store);
    assert_eq!(report["ok"], true, "{report:#}");
    assert!(report["cameras"]["front"]["frames"].as_u64().unwrap() > 25);
}

/// A board file whose devices live under `root` (`data` is the storage device).
fn board_file(root: &Path) -> String {
    let text = r#"
[board]
name = "test-box"
model = "A box in a test"
soc = "none"
[storage]
device = "ROOT/dev/data"
mount = "ROOT/mnt"
filesystem = "ext4"
[watchdog]
device = "ROOT/dev/watchdog"
timeout_s = 15
[ignition]
source = "companion"
[companion]
link = "udp"
interface = "lo"
board = "127.0.0.1:9"
listen = "127.0.0.1:0"
[[partitions]]
role = "boot"
label = "boot"
device = "ROOT/dev/boot"
filesystem = "vfat"
size_mib = 128
[[partitions]]
role = "rootfs-a"
label = "rootfsA"
device = "ROOT/dev/boot"
filesystem = "ext4"
size_mib = 1024
[[partitions]]
role = "rootfs-b"
label = "rootfsB"
device = "ROOT/dev/boot"
filesystem = "ext4"
size_mib = 1024
[[partitions]]
role = "data"
label = "convoy-data"
device = "ROOT/dev/data"
filesystem = "ext4"
"#;
    text.replace("ROOT", &root.display().to_string())
}

#[test]
fn the_board_file_is_checked_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir_all(root.join("dev")).unwrap();
    std::fs::create_dir_all(root.join("mnt")).unwrap();
    std::fs::write(root.join("dev/boot"), b"").unwrap();
    std::fs::write(root.join("board.toml"), board_file(root)).unwrap();
    let config = format!(
        "{}[board]\nfile = {:?}\n",
        edge_config("bus-2", &root.join("mnt/store"), None, &[]),
        root.join("board.toml")
    );
    std::fs::write(root.join("edge.toml"), &config).unwrap();

    // The storage device is missing: a clear error, exit non-zero, no store made.
    let out =
        Command::new(bin_path("edge").unwrap()).args(["run", "--config"]).arg(root.join("edge.toml")).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("board test-box"), "{stderr}");
    assert!(stderr.contains(&format!("storage device {} is missing", root.join("dev/data").display())), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(!root.join("mnt/store").exists(), "nothing recorded without the data partition");

    // With it, the unit runs and shows the optional device it lacks (the watchdog).
    std::fs::write(root.join("dev/data"), b"").unwrap();
    let edge = EdgeProc::start(root, "edge", &config).unwrap();
    let board = edge.status().unwrap()["board"].clone();
    assert_eq!(board["name"], "test-box");
    let missing: Vec<&str> = board["missing"].as_array().unwrap().iter().map(|m| m.as_str().unwrap()).collect();
    assert_eq!(missing.len(), 1, "{missing:?}");
    assert!(
        missing[0].starts_with(&format!("watchdog {} is missing", root.join("dev/watchdog").display())),
        "{missing:?}"
    );
    assert!(edge.proc.log_tail().contains("is missing"), "the log says so too");
}
