//! Alarms at a real central fed by a real unit: a rule's alarm reaches open pages at once over
//! `GET /api/stream` (server-sent events) but never a viewer limited to another unit; operators
//! acknowledge and close it (viewers may not), the list says who and when and filters by state,
//! the audit log records it; the stream also says when a retrieval finishes and when the unit
//! goes away, and it ends when central stops.

use std::net::SocketAddr;
use std::time::Duration;

use hil_tests::sse::SseClient;
use hil_tests::{CentralProc, EdgeProc, edge_config, sim_camera, wait_until};
use serde_json::{Value, json};

const T: Duration = Duration::from_secs(45);

/// Status and JSON body (or null) of a POST, whatever the status.
fn post(central: &CentralProc, token: &str, path: &str, body: Value) -> (u16, Value) {
    let api = central.api.with_token(token);
    let mut r = api
        .post(&format!("{}{path}", central.web))
        .config()
        .http_status_as_error(false)
        .build()
        .send_json(body)
        .unwrap();
    (r.status().as_u16(), r.body_mut().read_json().unwrap_or(Value::Null))
}

/// Status and JSON body (or null) of a GET, whatever the status.
fn get(central: &CentralProc, token: &str, path: &str) -> (u16, Value) {
    let api = central.api.with_token(token);
    let mut r = api.get(&format!("{}{path}", central.web)).config().http_status_as_error(false).build().call().unwrap();
    (r.status().as_u16(), r.body_mut().read_json().unwrap_or(Value::Null))
}

fn is_fare(alarm: &Value) -> bool {
    alarm["kind"]["Generic"]["name"] == "rule:fare"
}

#[test]
fn alarms_are_pushed_to_open_pages_and_acknowledged_and_closed_by_operators() {
    let dir = tempfile::tempdir().unwrap();
    let mut central = CentralProc::start(dir.path(), 0).unwrap();
    let (_camera, rtsp) = sim_camera(dir.path(), &["front"], 0).unwrap();
    let config = format!(
        "{}[generic_events]\nudp = \"127.0.0.1:0\"\n\
         [[generic_events.pattern]]\nname = \"fare\"\nregex = \"^FARE EVASION$\"\n\
         [[rule]]\nname = \"fare\"\ntrigger = \"generic\"\nnotify_central = true\n",
        edge_config(
            "bus-1",
            &dir.path().join("store"),
            Some((&central.quic, &central.fingerprint)),
            &[("front", &format!("{rtsp}/front"))]
        )
    );
    let mut edge = EdgeProc::start_enrolled(dir.path(), "edge", &config, "bus-1", &central).unwrap();
    let udp: SocketAddr =
        edge.proc.wait_line("generic events udp listening on", T).unwrap().rsplit(' ').next().unwrap().parse().unwrap();
    wait_until("bus-1 is connected", T, || (central.units().ok()?[0]["connected"] == true).then_some(())).unwrap();

    let password = "a long enough password";
    for (name, role, units) in [("olga", "operator", &[][..]), ("vic", "viewer", &[]), ("wes", "viewer", &["bus-8"])] {
        central.add_user(name, role, password, units).unwrap();
    }
    let [olga, vic, wes] = ["olga", "vic", "wes"].map(|n| central.create_token(n).unwrap());

    // Two open pages: a viewer of every unit, and one of another unit only.
    let mut all = SseClient::open(&central.web, "/api/stream", &vic).unwrap();
    let mut other = SseClient::open(&central.web, "/api/stream", &wes).unwrap();
    all.wait_for("ready", T, |_| true).unwrap();
    other.wait_for("ready", T, |_| true).unwrap();

    // The unit's alarm reaches the page at once, not at its next poll.
    std::net::UdpSocket::bind("127.0.0.1:0").unwrap().send_to(b"FARE EVASION", udp).unwrap();
    let (pushed, _) = all.wait_for("alarm", T, is_fare).unwrap();
    let alarm = pushed.data;
    assert_eq!((alarm["unit"].as_str(), alarm["state"].as_str()), (Some("bus-1"), Some("new")), "{alarm}");
    assert_eq!(
        (&alarm["changed_by"], &alarm["changed_at"], &alarm["comment"]),
        (&Value::Null, &Value::Null, &Value::Null)
    );
    let id = alarm["event_id"].as_u64().unwrap();
    let path = format!("/api/units/bus-1/alarms/{id}");
    let (status, new) = get(&central, &vic, "/api/alarms?state=new");
    assert_eq!(status, 200);
    assert!(new.as_array().unwrap().iter().any(|a| a["event_id"] == id && is_fare(a)), "{new}");

    // Viewers may not change it; a viewer of another unit may not even see it.
    assert_eq!(post(&central, &vic, &path, json!({ "state": "in_progress" })).0, 403);
    assert_eq!(post(&central, &wes, &path, json!({ "state": "in_progress" })).0, 403);
    let (status, seen) = get(&central, &wes, "/api/alarms");
    assert_eq!(status, 200);
    assert_eq!(seen, json!([]), "wes sees no alarm of bus-1");

    // The operator acknowledges it: who, when and the comment, in the answer, the list and
    // the stream.
    let (status, acked) = post(&central, &olga, &path, json!({ "state": "in_progress", "comment": "on my way" }));
    assert_eq!(status, 200, "{acked}");
    assert_eq!((acked["state"].as_str(), acked["changed_by"].as_str()), (Some("in_progress"), Some("olga")));
    assert_eq!(acked["comment"], "on my way");
    let at: jiff::Timestamp = acked["changed_at"].as_str().unwrap().parse().unwrap();
    assert!((jiff::Timestamp::now() - at).get_seconds().abs() < 60, "{acked}");
    let (pushed, _) = all.wait_for("alarm", T, |a| a["event_id"] == id && a["state"] == "in_progress").unwrap();
    assert_eq!(pushed.data, acked);
    let (_, new) = get(&central, &vic, "/api/alarms?state=new");
    assert!(!new.as_array().unwrap().iter().any(|a| a["event_id"] == id && a["unit"] == "bus-1"), "{new}");
    let (_, in_progress) = get(&central, &vic, "/api/alarms?state=in_progress");
    assert_eq!(in_progress.as_array().unwrap().iter().filter(|a| a["event_id"] == id).count(), 1, "{in_progress}");
    assert_eq!(get(&central, &vic, "/api/alarms?state=maybe").0, 400);

    // Closed, it stays closed; nonsense is refused.
    let (status, closed) = post(&central, &olga, &path, json!({ "state": "closed" }));
    assert_eq!(status, 200, "{closed}");
    assert_eq!((closed["state"].as_str(), closed["comment"].as_str()), (Some("closed"), Some("on my way")));
    all.wait_for("alarm", T, |a| a["event_id"] == id && a["state"] == "closed").unwrap();
    assert_eq!(post(&central, &olga, &path, json!({ "state": "in_progress" })).0, 409);
    assert_eq!(post(&central, &olga, &path, json!({ "state": "new" })).0, 400);
    assert_eq!(post(&central, &olga, "/api/units/bus-1/alarms/999999", json!({ "state": "closed" })).0, 404);

    // The audit log says who did it.
    let audit = central.get_json(&format!("{}/api/audit?limit=1000", central.web)).unwrap();
    for action in ["alarm_acknowledged", "alarm_closed"] {
        assert!(
            audit
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["action"] == action && e["user"] == "olga" && e["unit"] == "bus-1"),
            "{action} in {audit}"
        );
    }

    // A retrieval finishing is pushed too.
    let now_us = || jiff::Timestamp::now().as_microsecond();
    let rfc3339 = |us: i64| jiff::Timestamp::from_microsecond(us).unwrap().to_string();
    let since = now_us() - 60_000_000;
    wait_until("bus-1 has recorded 2 s", T, || {
        let path =
            format!("/api/units/bus-1/cameras/front/timeline?start={}&end={}", rfc3339(since), rfc3339(now_us()));
        (hil_tests::timeline_us(&get(&central, &vic, &path).1["remote_only"]) > 2_000_000).then_some(())
    })
    .unwrap();
    let range = json!({ "start": rfc3339(now_us() - 2_000_000), "end": rfc3339(now_us() - 500_000) });
    let (status, made) = post(&central, &olga, "/api/units/bus-1/cameras/front/retrieve", range);
    assert_eq!(status, 202, "{made}");
    let (done, _) = all.wait_for("retrieval", T, |r| r["id"] == made["id"]).unwrap();
    assert_eq!((done.data["unit"].as_str(), done.data["state"].as_str()), (Some("bus-1"), Some("done")), "{done:?}");

    // The unit goes away: the page hears of it.
    drop(edge);
    all.wait_for("unit", T, |u| u["unit"] == "bus-1" && u["online"] == false).unwrap();

    // Everything the viewer of another unit's page was sent meanwhile: nothing about bus-1.
    // (Events reach every open stream at once, so the window only has to cover delivery.)
    let leaked = other.drain_for(Duration::from_secs(2)).unwrap();
    assert!(leaked.iter().all(|e| !e.data.to_string().contains("bus-1")), "{leaked:?}");

    // Central stops promptly with pages still listening (their streams end with it).
    let status = central.proc.stop(Duration::from_secs(10)).unwrap();
    assert!(status.success(), "{status}\n{}", central.proc.log_tail());
    drop((all, other));
}
