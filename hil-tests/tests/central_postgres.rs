//! Two central processes sharing one PostgreSQL catalog (`[catalog] url`), on a throw-away
//! cluster of Debian's PostgreSQL server: a user added through node A logs in on node B; a
//! unit added through A enrolls with B and connects to it (the nodes share the CA key, which
//! is per node: see central/DESIGN.md, "The catalog"); revoked through A, B cuts it off; the
//! audit log is one for both.

use std::time::Duration;

use central::catalog::test_cluster::Cluster;
use hil_tests::{CentralProc, EdgeProc, edge_config, edge_enroll, sim_camera, wait_until};
use serde_json::{Value, json};

const T: Duration = Duration::from_secs(45);

#[test]
fn two_central_nodes_share_users_units_and_revocations_through_postgres() {
    let cluster = Cluster::start().unwrap_or_else(|e| panic!("{e}"));
    let url = cluster.create_database().unwrap();
    let settings = format!("[catalog]\nurl = {url:?}\n");
    let dir = tempfile::tempdir().unwrap();
    let (a_dir, b_dir) = (dir.path().join("a"), dir.path().join("b"));
    std::fs::create_dir_all(&a_dir).unwrap();
    let a = CentralProc::start_with(&a_dir, &settings).unwrap();
    // Node B gets node A's CA (certificate and key), as an installer would copy it.
    std::fs::create_dir_all(b_dir.join("central")).unwrap();
    for file in ["ca-cert.der", "ca-key.der"] {
        std::fs::copy(a_dir.join("central").join(file), b_dir.join("central").join(file)).unwrap();
    }
    let b = CentralProc::start_with(&b_dir, &settings).unwrap();
    assert_eq!(a.fingerprint, b.fingerprint, "one CA");
    assert!(!b.store.join("users.db").exists(), "no SQLite catalog beside PostgreSQL");

    // A user added through node A's command line logs in on node B.
    a.add_user("olga", "operator", "olga's long password", &[]).unwrap();
    let mut login = ureq::post(&format!("{}/api/login", b.web))
        .config()
        .http_status_as_error(false)
        .build()
        .send_json(json!({ "name": "olga", "password": "olga's long password" }))
        .unwrap();
    assert_eq!(login.status().as_u16(), 200);
    let me: Value = login.body_mut().read_json().unwrap();
    assert_eq!((&me["name"], &me["role"]), (&json!("olga"), &json!("operator")), "{me}");
    let wrong = ureq::post(&format!("{}/api/login", b.web))
        .config()
        .http_status_as_error(false)
        .build()
        .send_json(json!({ "name": "olga", "password": "not her password" }))
        .unwrap();
    assert_eq!(wrong.status().as_u16(), 401);
    // A token made through node B works on node A.
    let token = b.create_token("olga").unwrap();
    assert_eq!(a.api.with_token(&token).get_json(&format!("{}/api/me", a.web)).unwrap()["name"], "olga");

    // A unit added through node A enrolls with node B and connects to it.
    let (_cam, rtsp) = sim_camera(dir.path(), &["front"], 0).unwrap();
    let enrollment = a.add_unit("bus-5").unwrap();
    let config = edge_config(
        "bus-5",
        &dir.path().join("store"),
        Some((&b.quic, &b.fingerprint)),
        &[("front", &format!("{rtsp}/front"))],
    );
    let config_path = dir.path().join("edge.toml");
    std::fs::write(&config_path, &config).unwrap();
    edge_enroll(&config_path, &b.quic, &enrollment).unwrap();
    let e = edge_enroll(&config_path, &a.quic, &enrollment).unwrap_err().to_string();
    assert!(e.contains("already used"), "the token is used up for node A too: {e}");
    let edge = EdgeProc::start(dir.path(), "edge", &config).unwrap();
    wait_until("bus-5 is connected to node B", T, || (edge.status().ok()?["central_connected"] == true).then_some(()))
        .unwrap();
    wait_until("node A lists bus-5 from the shared registry", T, || {
        a.units().ok()?.as_array()?.iter().any(|u| u["id"] == "bus-5" || u["unit"] == "bus-5").then_some(())
    })
    .unwrap();

    // Revoked through node A: node B cuts it off and refuses it.
    a.revoke_unit("bus-5").unwrap();
    let error = wait_until("node B cuts bus-5 off", T, || {
        let s = edge.status().ok()?;
        (s["central_connected"] == false).then(|| s["central_error"].as_str().unwrap_or_default().to_owned())
    })
    .unwrap();
    assert!(error.contains("revoked"), "{error}");
    wait_until("node B refuses bus-5 on reconnecting", T, || {
        edge.status().ok()?["central_error"].as_str()?.contains("refused").then_some(())
    })
    .unwrap();

    // One audit log: node B shows what was done through node A's command line.
    let audit = b.get_json(&format!("{}/api/audit?limit=1000", b.web)).unwrap();
    let entries = audit.as_array().unwrap();
    assert!(
        entries.iter().any(|e| e["action"] == "user_added" && e["detail"].as_str().unwrap_or("").starts_with("olga")),
        "{audit}"
    );
    assert!(entries.iter().any(|e| e["action"] == "login" && e["user"] == "olga"), "{audit}");
    drop(edge);
    drop((a, b));
    drop(cluster);
}
