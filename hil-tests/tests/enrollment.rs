//! Provisioning with real processes: `central unit add` makes a one-time token, `edge enroll`
//! trades it for a certificate, the unit connects with mutual TLS, and `central unit revoke`
//! cuts it off at once while central runs, and for good.

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use hil_tests::{CentralProc, EdgeProc, edge_config, edge_enroll, sim_camera, wait_until};

const T: Duration = Duration::from_secs(30);

#[test]
fn enrolled_unit_connects_with_its_certificate_and_revocation_cuts_it_off() {
    let dir = tempfile::tempdir().unwrap();
    let (_cam, rtsp) = sim_camera(dir.path(), &["front"], 0).unwrap();
    let central = CentralProc::start(dir.path(), 0).unwrap();
    let store = dir.path().join("store");
    let config = edge_config(
        "bus-9",
        &store,
        Some((&central.quic, &central.fingerprint)),
        &[("front", &format!("{rtsp}/front"))],
    );
    let config_path = dir.path().join("edge.toml");
    std::fs::write(&config_path, &config).unwrap();

    // A token is for one unit name and one use.
    let token = central.add_unit("bus-9").unwrap();
    assert!(token.starts_with("cvy1-"), "{token}");
    let other = dir.path().join("other.toml");
    std::fs::write(&other, config.replace("bus-9", "bus-10")).unwrap();
    let e = edge_enroll(&other, &central.quic, &token).unwrap_err().to_string();
    assert!(e.contains("\"bus-9\"") && e.contains("\"bus-10\""), "{e}");
    let out = edge_enroll(&config_path, &central.quic, &token).unwrap();
    assert!(out.contains("enrolled"), "{out}");
    let e = edge_enroll(&config_path, &central.quic, &token).unwrap_err().to_string();
    assert!(e.contains("already used"), "{e}");
    for file in ["unit-key.der", "unit-cert.der", "ca-cert.der"] {
        let mode = std::fs::metadata(store.join("identity").join(file)).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{file}");
    }
    assert!(!std::fs::read_to_string(&config_path).unwrap().contains(&token), "no secret in the config");
    for name in ["central/ca-key.der", "central/server-key.der"] {
        let mode = std::fs::metadata(dir.path().join(name)).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{name}");
    }

    // Connected with mutual TLS: the unit and its camera show at central.
    let edge = EdgeProc::start(dir.path(), "edge", &config).unwrap();
    wait_until("the unit is connected", T, || (edge.status().ok()?["central_connected"] == true).then_some(()))
        .unwrap();
    let _viewer = hil_tests::LiveViewer::open(&central.api, "bus-9", "front").unwrap();
    wait_until("the camera is live at central", T, || {
        let units = central.units().ok()?;
        (units[0]["id"] == "bus-9" && units[0]["cameras"][0]["live"] == true).then_some(())
    })
    .unwrap();

    // Revoked while connected: cut off at once, then refused.
    central.revoke_unit("bus-9").unwrap();
    let error = wait_until("the unit is cut off", T, || {
        let s = edge.status().ok()?;
        (s["central_connected"] == false).then(|| s["central_error"].as_str().unwrap_or_default().to_owned())
    })
    .unwrap();
    assert!(error.contains("revoked"), "{error}");
    let error = wait_until("the unit is refused on reconnecting", T, || {
        let e = edge.status().ok()?["central_error"].as_str()?.to_owned();
        e.contains("refused").then_some(e)
    })
    .unwrap();
    assert!(error.contains("revoked or unknown"), "{error}");
    let e = central.revoke_unit("bus-77").unwrap_err().to_string();
    assert!(e.contains("no unit \"bus-77\""), "{e}");
    // The command line's changes are in the audit log like the API's, by "cli".
    let audit = central.get_json(&format!("{}/api/audit?limit=1000", central.web)).unwrap();
    for action in ["unit_added", "unit_revoked"] {
        assert!(
            audit
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["action"] == action && e["user"] == "cli" && e["unit"] == "bus-9"),
            "{action} by cli in {audit}"
        );
    }
}

#[test]
fn a_token_from_another_central_is_refused_before_anything_is_sent() {
    let dir = tempfile::tempdir().unwrap();
    let (dir_a, dir_b) = (dir.path().join("a"), dir.path().join("b"));
    std::fs::create_dir_all(&dir_a).unwrap();
    std::fs::create_dir_all(&dir_b).unwrap();
    let a = CentralProc::start(&dir_a, 0).unwrap();
    let b = CentralProc::start(&dir_b, 0).unwrap();
    let config = dir.path().join("edge.toml");
    std::fs::write(&config, edge_config("bus-3", &dir.path().join("store"), None, &[])).unwrap();
    let token = a.add_unit("bus-3").unwrap();
    let e = edge_enroll(&config, &b.quic, &token).unwrap_err().to_string();
    assert!(e.contains("not the one the enrollment token names"), "{e}");
    assert!(!dir.path().join("store/identity/unit-cert.der").exists());
    let e = edge_enroll(&config, &a.quic, "cvy1-nonsense").unwrap_err().to_string();
    assert!(e.contains("is not an enrollment token"), "{e}");
    edge_enroll(&config, &a.quic, &token).unwrap();
}
