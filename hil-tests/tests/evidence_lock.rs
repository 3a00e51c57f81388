//! Evidence locks set at central with real processes on loopback: locked at once in central's
//! store and, over the sync protocol, in the unit's store; a lock made while the unit is away
//! waits, survives a central SIGKILL, and reaches the unit when it comes back.

use std::path::Path;
use std::time::Duration;

use hil_tests::{CentralProc, EdgeProc, edge_config, sim_camera, timeline_us, wait_until};
use serde_json::{Value, json};

const T: Duration = Duration::from_secs(60);

fn now_us() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_micros() as i64
}

fn rfc3339(us: i64) -> String {
    jiff::Timestamp::from_microsecond(us).unwrap().to_string()
}

/// `POST …/lock`: the status and the JSON answer.
fn lock(central: &CentralProc, camera: &str, body: Value) -> (u16, Value) {
    let mut response = central
        .post(&format!("{}/api/units/bus-3/cameras/{camera}/lock", central.web))
        .config()
        .http_status_as_error(false)
        .build()
        .send_json(body)
        .unwrap();
    let status = response.status().as_u16();
    let text = response.body_mut().read_to_string().unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

fn lock_state(central: &CentralProc, id: u64) -> Value {
    central.get_json(&format!("{}/api/locks/{id}", central.web)).unwrap()
}

fn wait_unit_locked(central: &CentralProc, edge: &EdgeProc, id: u64) -> Value {
    wait_until("the unit holds the lock", T, || {
        let l = lock_state(central, id);
        (l["unit_store"]["state"] != "pending").then_some(l)
    })
    .unwrap_or_else(|e| panic!("{e}\n{}\n{}", central.proc.log_tail(), edge.proc.log_tail()))
}

/// The store's evidence locks as (log, start, end, reason).
fn store_locks(store: &Path) -> Vec<(String, i64, i64, String)> {
    let catalog = media_store::catalog::Catalog::open_read_only(&media_store::catalog_path(store)).unwrap();
    catalog.locks().unwrap().into_iter().map(|l| (l.log, l.lock.start_us, l.lock.end_us, l.lock.reason)).collect()
}

fn port(address: &str) -> u16 {
    address.rsplit(':').next().unwrap().parse().unwrap()
}

#[test]
fn a_lock_at_central_reaches_the_unit_now_or_when_it_returns() {
    let dir = tempfile::tempdir().unwrap();
    let (_cam, rtsp) = sim_camera(dir.path(), &["front"], 0).unwrap();
    let mut central = CentralProc::start(dir.path(), 0).unwrap();
    let store = dir.path().join("store");
    let config = edge_config(
        "bus-3",
        &store,
        Some((&central.quic, &central.fingerprint)),
        &[("front", &format!("{rtsp}/front"))],
    );
    let mut edge = EdgeProc::start_enrolled(dir.path(), "edge", &config, "bus-3", &central).unwrap();
    let t0 = now_us();
    wait_until("the unit's recording shows at central", T, || {
        let t = central
            .get_json(&format!(
                "{}/api/units/bus-3/cameras/front/timeline?start={}&end={}",
                central.web,
                rfc3339(t0 - 60_000_000),
                rfc3339(now_us())
            ))
            .ok()?;
        (timeline_us(&t["remote_only"]) > 4_000_000).then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}\n{}\n{}", central.proc.log_tail(), edge.proc.log_tail()));

    // Refusals say what is wrong.
    let range = json!({ "start": rfc3339(t0 + 1_000_000), "end": rfc3339(t0 + 3_000_000) });
    assert_eq!(lock(&central, "rear", range.clone()).0, 404);
    let reversed = json!({ "start": rfc3339(t0 + 3_000_000), "end": rfc3339(t0 + 1_000_000) });
    let (status, body) = lock(&central, "front", reversed);
    assert_eq!(status, 400, "{body}");
    assert!(body["error"].as_str().unwrap().contains("end must be after start"), "{body}");
    let (status, body) =
        lock(&central, "front", json!({ "start": range["start"], "end": range["end"], "keep_days": 0 }));
    assert_eq!(status, 400, "{body}");

    // A viewer may look but not lock.
    central.add_user("vera", "viewer", "viewer-password-1", &[]).unwrap();
    let token = central.create_token("vera").unwrap();
    let refused = ureq::post(&format!("{}/api/units/bus-3/cameras/front/lock", central.web))
        .header("Authorization", &format!("Bearer {token}"))
        .config()
        .http_status_as_error(false)
        .build()
        .send_json(range.clone())
        .unwrap();
    assert_eq!(refused.status().as_u16(), 403);

    // While the unit is connected: locked at central at once, then on the unit.
    let (status, first) = lock(
        &central,
        "front",
        json!({ "start": range["start"], "end": range["end"], "reason": "incident 1", "keep_days": 7 }),
    );
    assert_eq!(status, 201, "{first}");
    assert_eq!(first["central"]["state"], "locked", "{first}");
    assert_eq!((first["unit"].as_str(), first["camera"].as_str()), (Some("bus-3"), Some("front")));
    let expires = first["expires"].as_str().unwrap().parse::<jiff::Timestamp>().unwrap().as_microsecond();
    assert!(expires > now_us() + 6 * 86_400_000_000 && expires < now_us() + 8 * 86_400_000_000, "{first}");
    let first_id = first["id"].as_u64().unwrap();
    let answered = wait_unit_locked(&central, &edge, first_id);
    assert_eq!(answered["unit_store"]["state"], "locked", "{answered}");
    assert!(answered["unit_store"]["at"].is_string(), "{answered}");

    // The unit goes away; a lock made now waits for it, across a central SIGKILL.
    edge.proc.stop(T).unwrap();
    let (status, second) = lock(
        &central,
        "front",
        json!({ "start": rfc3339(t0 + 3_000_000), "end": rfc3339(t0 + 4_000_000), "reason": "incident 2" }),
    );
    assert_eq!(status, 201, "{second}");
    let second_id = second["id"].as_u64().unwrap();
    assert_eq!(second["unit_store"]["state"], "pending", "{second}");
    let (quic, web) = (port(&central.quic), port(&central.web));
    central.proc.kill();
    central = CentralProc::start_on(dir.path(), quic, web).unwrap();
    assert_eq!(lock_state(&central, second_id)["unit_store"]["state"], "pending");
    let listed = central.get_json(&format!("{}/api/locks?unit=bus-3", central.web)).unwrap();
    let ids: Vec<u64> = listed["locks"].as_array().unwrap().iter().map(|l| l["id"].as_u64().unwrap()).collect();
    assert_eq!(ids, vec![second_id, first_id], "newest first: {listed}");

    edge = EdgeProc::start(dir.path(), "edge", &config).unwrap();
    let answered = wait_unit_locked(&central, &edge, second_id);
    assert_eq!(answered["unit_store"]["state"], "locked", "{answered}");
    edge.proc.stop(T).unwrap();

    // Both locks are in the unit's store, with the operator's reasons and exact ranges.
    let unit_locks = store_locks(&store);
    for (id, reason, start, end) in [
        (first_id, "incident 1", t0 + 1_000_000, t0 + 3_000_000),
        (second_id, "incident 2", t0 + 3_000_000, t0 + 4_000_000),
    ] {
        let want = format!("central lock {id}: {reason}");
        assert!(
            unit_locks.iter().any(|l| l.0 == "front" && l.1 == start && l.2 == end && l.3 == want),
            "{want} missing on the unit: {unit_locks:?}"
        );
    }
    // And in central's own store.
    let central_locks = store_locks(&dir.path().join("central").join("media"));
    assert_eq!(central_locks.len(), 2, "{central_locks:?}");
    assert!(central_locks.iter().all(|l| l.0 == "bus-3/front"), "{central_locks:?}");
}
