//! Two central processes sharing one PostgreSQL catalog (`[catalog] url`), on a throw-away
//! cluster of Debian's PostgreSQL server: a user added through node A logs in on node B; a
//! unit added through A enrolls with B and connects to it (the nodes share the CA key, which
//! is per node: see central/DESIGN.md, "The catalog"); revoked through A, B cuts it off; the
//! audit log is one for both. Alarms and evidence locks are shared too: the unit's event
//! (through B) is listed and pushed at A, acknowledged at A and seen so at B (pushed to B's
//! page), a second acknowledgement at B is refused with 409; a lock made at A for the unit
//! reaches the unit through B, and both nodes list it with the unit's answer.

use std::time::Duration;

use central::catalog::test_cluster::Cluster;
use hil_tests::sse::SseClient;
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
    let config = format!(
        "{}[generic_events]\nudp = \"127.0.0.1:0\"\n\
         [[generic_events.pattern]]\nname = \"fare\"\nregex = \"^FARE EVASION$\"\n\
         [[rule]]\nname = \"fare\"\ntrigger = \"generic\"\nnotify_central = true\n",
        edge_config(
            "bus-5",
            &dir.path().join("store"),
            Some((&b.quic, &b.fingerprint)),
            &[("front", &format!("{rtsp}/front"))],
        )
    );
    let config_path = dir.path().join("edge.toml");
    std::fs::write(&config_path, &config).unwrap();
    edge_enroll(&config_path, &b.quic, &enrollment).unwrap();
    let e = edge_enroll(&config_path, &a.quic, &enrollment).unwrap_err().to_string();
    assert!(e.contains("already used"), "the token is used up for node A too: {e}");
    let mut edge = EdgeProc::start(dir.path(), "edge", &config).unwrap();
    let udp: std::net::SocketAddr =
        edge.proc.wait_line("generic events udp listening on", T).unwrap().rsplit(' ').next().unwrap().parse().unwrap();
    wait_until("bus-5 is connected to node B", T, || (edge.status().ok()?["central_connected"] == true).then_some(()))
        .unwrap();
    wait_until("node A lists bus-5 from the shared registry", T, || {
        a.units().ok()?.as_array()?.iter().any(|u| u["id"] == "bus-5" || u["unit"] == "bus-5").then_some(())
    })
    .unwrap();

    // The unit's event, raised through node B, reaches node A's open page and list.
    let mut page_a = SseClient::open(&a.web, "/api/stream", &token).unwrap();
    let mut page_b = SseClient::open(&b.web, "/api/stream", &token).unwrap();
    page_a.wait_for("ready", T, |_| true).unwrap();
    page_b.wait_for("ready", T, |_| true).unwrap();
    std::net::UdpSocket::bind("127.0.0.1:0").unwrap().send_to(b"FARE EVASION", udp).unwrap();
    let is_fare = |x: &Value| x["unit"] == "bus-5" && x["kind"]["Generic"]["name"] == "rule:fare";
    let (pushed, _) = page_a
        .wait_for("alarm", T, is_fare)
        .unwrap_or_else(|e| panic!("{e}\n{}\n{}", a.proc.log_tail(), b.proc.log_tail()));
    assert_eq!(pushed.data["state"], "new", "{:?}", pushed.data);
    let id = pushed.data["event_id"].as_i64().unwrap();
    let listed = a.api.with_token(&token).get_json(&format!("{}/api/alarms?state=new", a.web)).unwrap();
    assert!(listed.as_array().unwrap().iter().any(|x| x["event_id"] == id && is_fare(x)), "{listed}");

    // Acknowledged at node A: node B lists it so and its page hears of it; a second
    // acknowledgement through node B is refused, saying who was first.
    let path = format!("/api/units/bus-5/alarms/{id}");
    let mut acked = a
        .api
        .with_token(&token)
        .post(&format!("{}{path}", a.web))
        .send_json(json!({ "state": "in_progress", "comment": "on it" }))
        .unwrap();
    let acked: Value = acked.body_mut().read_json().unwrap();
    assert_eq!((acked["state"].as_str(), acked["changed_by"].as_str()), (Some("in_progress"), Some("olga")));
    let (seen, _) = page_b.wait_for("alarm", T, |x| x["event_id"] == id && x["state"] == "in_progress").unwrap();
    assert_eq!(seen.data, acked, "node B's page shows node A's acknowledgement");
    let at_b = b.get_json(&format!("{}/api/alarms?state=in_progress", b.web)).unwrap();
    assert!(at_b.as_array().unwrap().iter().any(|x| x == &acked), "{at_b}");
    let mut late = b
        .post(&format!("{}{path}", b.web))
        .config()
        .http_status_as_error(false)
        .build()
        .send_json(json!({ "state": "in_progress" }))
        .unwrap();
    assert_eq!(late.status().as_u16(), 409);
    let late: Value = late.body_mut().read_json().unwrap();
    assert!(late["error"].as_str().unwrap().contains("already in_progress (set by olga"), "{late}");

    // An evidence lock made through node A reaches the unit through node B, and both list it.
    let now = jiff::Timestamp::now();
    let range = json!({ "start": (now - jiff::SignedDuration::from_secs(20)).to_string(),
                        "end": (now - jiff::SignedDuration::from_secs(10)).to_string(), "reason": "fare evasion" });
    let mut made = a.post(&format!("{}/api/units/bus-5/cameras/front/lock", a.web)).send_json(range).unwrap();
    assert_eq!(made.status().as_u16(), 201);
    let made: Value = made.body_mut().read_json().unwrap();
    assert_eq!(made["central"]["state"], "locked", "{made}");
    let lock_id = made["id"].as_u64().unwrap();
    let answered = wait_until("the unit, connected to node B, holds node A's lock", T, || {
        let l = a.get_json(&format!("{}/api/locks/{lock_id}", a.web)).ok()?;
        (l["unit_store"]["state"] != "pending").then_some(l)
    })
    .unwrap_or_else(|e| panic!("{e}\n{}\n{}", b.proc.log_tail(), edge.proc.log_tail()));
    assert_eq!(answered["unit_store"]["state"], "locked", "{answered}");
    let at_b = wait_until("node B applied the lock to its own store", T, || {
        let l = b.get_json(&format!("{}/api/locks/{lock_id}", b.web)).ok()?;
        (l["central"]["state"] == "locked").then_some(l)
    })
    .unwrap();
    assert_eq!((&at_b["unit_store"], &at_b["reason"]), (&answered["unit_store"], &json!("fare evasion")));
    let listed = b.get_json(&format!("{}/api/locks?unit=bus-5", b.web)).unwrap();
    assert_eq!(listed["locks"].as_array().unwrap().len(), 1, "{listed}");

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
    // The lock is in the unit's own store, under node A's id for it.
    let store = media_store::catalog_path(&dir.path().join("store"));
    let unit_locks = media_store::catalog::Catalog::open_read_only(&store).unwrap().locks().unwrap();
    let want = format!("central lock {lock_id}: fare evasion");
    assert!(unit_locks.iter().any(|l| l.log == "front" && l.lock.reason == want), "{want}: {unit_locks:?}");
    drop((page_a, page_b));
    drop((a, b));
    drop(cluster);
}
