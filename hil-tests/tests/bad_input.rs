//! What the unit and central do with bad input: broken configs, unreachable cameras, a
//! central that is down or is not the one pinned.

use std::process::Command;
use std::time::Duration;

use hil_tests::{CentralProc, EdgeProc, bin_path, edge_config, sim_camera, wait_until};
use serde_json::Value;

const T: Duration = Duration::from_secs(60);

fn camera(status: &Value, id: &str) -> Value {
    status["cameras"].as_array().unwrap().iter().find(|c| c["id"] == id).unwrap().clone()
}

fn run_with_config(bin: &str, text: &str) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    std::fs::write(&path, text).unwrap();
    let out = Command::new(bin_path(bin).unwrap()).arg("run").arg("--config").arg(&path).output().unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn edge_config_that_does_not_parse_names_the_line() {
    let text = "unit_id = \"bus-1\"\n[store]\npath = \"/tmp/x\"\n[web]\nlisten = \"not an address\"\n";
    let (ok, stderr) = run_with_config("edge", text);
    assert!(!ok);
    assert!(stderr.contains("line 5"), "{stderr}");
    assert!(stderr.contains("config.toml"), "names the file: {stderr}");
}

#[test]
fn central_config_that_does_not_parse_names_the_line() {
    let text = "[web]\nlisten = \"127.0.0.1:0\"\n[quic]\nlisten = \"127.0.0.1:0\"\n[store]\npath = 5\n";
    let (ok, stderr) = run_with_config("central", text);
    assert!(!ok);
    assert!(stderr.contains("line 6"), "{stderr}");
}

#[test]
fn missing_config_file_says_so() {
    let out =
        Command::new(bin_path("edge").unwrap()).args(["run", "--config", "/nonexistent/edge.toml"]).output().unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("cannot read config file /nonexistent/edge.toml"), "{stderr}");
}

#[test]
fn unreachable_camera_is_reported_while_the_others_record() {
    let dir = tempfile::tempdir().unwrap();
    let (_cam, rtsp) = sim_camera(dir.path(), &["ok"], 0).unwrap();
    // A port nobody listens on: bind, note it, close.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let config = edge_config(
        "bus-9",
        &dir.path().join("store"),
        None,
        &[("gone", &format!("rtsp://{closed}/stream")), ("ok", &format!("{rtsp}/ok"))],
    );
    let edge = EdgeProc::start(dir.path(), "edge", &config).unwrap();
    let gone = wait_until("camera 'gone' is reported down", T, || {
        let c = camera(&edge.status().ok()?, "gone");
        (c["state"] == "down").then_some(c)
    })
    .unwrap();
    let reason = gone["reason"].as_str().unwrap();
    assert!(reason.contains("refused"), "the reason says why: {reason}");
    wait_until("camera 'ok' records", T, || {
        let c = camera(&edge.status().ok()?, "ok");
        (c["state"] == "streaming" && c["frames_recorded"].as_u64()? > 25).then_some(())
    })
    .unwrap();
    let status = edge.status().unwrap();
    assert_eq!(status["central_connected"], false);
    assert!(status["central_error"].is_null(), "no central configured, so no central error");
}

#[test]
fn edge_records_while_central_is_down_and_reconnects() {
    let dir = tempfile::tempdir().unwrap();
    // Start central once to make its identity and enroll the unit; note its port; stop it.
    let mut central = CentralProc::start(dir.path(), 0).unwrap();
    let (quic, fingerprint) = (central.quic.clone(), central.fingerprint.clone());
    let (_cam, rtsp) = sim_camera(dir.path(), &["front"], 0).unwrap();
    let config = edge_config(
        "bus-5",
        &dir.path().join("store"),
        Some((&quic, &fingerprint)),
        &[("front", &format!("{rtsp}/front"))],
    );
    std::fs::write(dir.path().join("edge.toml"), &config).unwrap();
    hil_tests::edge_enroll(&dir.path().join("edge.toml"), &quic, &central.add_unit("bus-5").unwrap()).unwrap();
    assert!(central.proc.stop(Duration::from_secs(20)).unwrap().success());
    let port: u16 = quic.rsplit(':').next().unwrap().parse().unwrap();

    let edge = EdgeProc::start(dir.path(), "edge", &config).unwrap();
    let status = wait_until("the edge records with central down", T, || {
        let s = edge.status().ok()?;
        (camera(&s, "front")["frames_recorded"].as_u64()? > 25 && !s["central_error"].is_null()).then_some(s)
    })
    .unwrap();
    assert_eq!(status["central_connected"], false);

    let central = CentralProc::start(dir.path(), port).unwrap();
    assert_eq!(central.fingerprint, fingerprint, "central keeps its identity across restarts");
    wait_until("the edge reconnects", T, || (edge.status().ok()?["central_connected"] == true).then_some(())).unwrap();
    let _viewer = hil_tests::LiveViewer::open(&central.api, "bus-5", "front").unwrap();
    wait_until("central shows the camera live", T, || {
        let units = central.units().ok()?;
        let cam = &units[0]["cameras"][0];
        (units[0]["id"] == "bus-5" && cam["live"] == true).then_some(())
    })
    .unwrap();
}

#[test]
fn a_unit_not_enrolled_or_enrolled_with_another_central_does_not_connect() {
    let dir = tempfile::tempdir().unwrap();
    let central = CentralProc::start(dir.path(), 0).unwrap();
    // Not enrolled: the unit records, and says what to do.
    let config = edge_config("bus-6", &dir.path().join("store"), Some((&central.quic, &central.fingerprint)), &[]);
    let mut edge = EdgeProc::start(dir.path(), "edge", &config).unwrap();
    let error = wait_until("the edge reports it is not enrolled", T, || {
        edge.status().ok()?["central_error"].as_str().map(str::to_owned)
    })
    .unwrap();
    assert!(error.contains("not enrolled") && error.contains("edge enroll"), "{error}");
    assert!(edge.proc.stop(T).unwrap().success());
    // Enrolled, but the configuration names another central's CA.
    std::fs::write(dir.path().join("edge.toml"), &config).unwrap();
    hil_tests::edge_enroll(&dir.path().join("edge.toml"), &central.quic, &central.add_unit("bus-6").unwrap()).unwrap();
    let wrong = format!("sha256:{}", "0".repeat(64));
    let config = config.replace(&central.fingerprint, &wrong);
    let edge = EdgeProc::start(dir.path(), "edge", &config).unwrap();
    let error = wait_until("the edge reports the CA mismatch", T, || {
        edge.status().ok()?["central_error"].as_str().map(str::to_owned)
    })
    .unwrap();
    assert!(error.contains("[central] fingerprint"), "{error}");
    let units = central.units().unwrap();
    assert_eq!(units, serde_json::json!([]), "central never registered the unit");
}

#[test]
fn a_camera_that_sends_garbage_is_down_with_a_reason_and_the_others_record() {
    use std::io::{Read, Write};
    let dir = tempfile::tempdir().unwrap();
    let (_cam, rtsp) = sim_camera(dir.path(), &["ok"], 0).unwrap();
    // A "camera" that answers every connection with bytes that are not RTSP.
    let junk = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let junk_addr = junk.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in junk.incoming().flatten() {
            let mut stream = stream;
            let mut buf = [0u8; 1024];
            let _ = stream.read(&mut buf);
            let _ = stream.write_all(b"\x00\xffHELLO not rtsp\r\n\r\n\x13\x37garbage garbage garbage\r\n");
        }
    });
    let config = edge_config(
        "bus-7",
        &dir.path().join("store"),
        None,
        &[("junk", &format!("rtsp://{junk_addr}/stream")), ("ok", &format!("{rtsp}/ok"))],
    );
    let edge = EdgeProc::start(dir.path(), "edge", &config).unwrap();
    let junk = wait_until("the garbage camera is reported down", T, || {
        let c = camera(&edge.status().ok()?, "junk");
        (c["state"] == "down").then_some(c)
    })
    .unwrap();
    assert!(!junk["reason"].as_str().unwrap().is_empty(), "{junk}");
    wait_until("the good camera records meanwhile", T, || {
        let c = camera(&edge.status().ok()?, "ok");
        (c["state"] == "streaming" && c["frames_recorded"].as_u64()? > 50).then_some(())
    })
    .unwrap();
    assert_eq!(camera(&edge.status().unwrap(), "junk")["frames_recorded"], 0);
}
