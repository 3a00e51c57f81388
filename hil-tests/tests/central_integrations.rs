//! Central's integrations with a real central, a real unit and a real HTTP receiver on
//! loopback: an event sent to `POST /api/events` becomes an alarm (listed, pushed to open
//! pages, audit-logged, its camera's event window retrieved) and reaches the `[[webhook]]`
//! signed; a receiver that is down at first gets each delivery once it is up, exactly once
//! and with the id it had before; a delivery queued when central stops arrives after its
//! restart; users without permission for the unit are refused, and bad input is answered
//! 400/404/422.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::HeaderMap;
use hil_tests::sse::SseClient;
use hil_tests::{CentralProc, EdgeProc, edge_config, sim_camera, timeline_us, wait_until};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};

const T: Duration = Duration::from_secs(45);
const SECRET: &str = "a webhook secret";

/// One request the receiver got.
#[derive(Debug, Clone)]
struct Received {
    delivery: String,
    event: String,
    signature: String,
    body: Vec<u8>,
}

impl Received {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

/// A webhook receiver on `addr`, answering 204 to every POST and keeping what it got.
struct Receiver {
    got: Arc<Mutex<Vec<Received>>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Receiver {
    fn start(addr: SocketAddr, got: Arc<Mutex<Vec<Received>>>) -> Receiver {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (ready_tx, ready) = std::sync::mpsc::channel();
        let sink = got.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
                ready_tx.send(()).unwrap();
                let app = axum::Router::new().route(
                    "/hook",
                    axum::routing::post(move |headers: HeaderMap, body: Bytes| {
                        let sink = sink.clone();
                        async move {
                            let h = |n: &str| headers.get(n).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
                            sink.lock().unwrap().push(Received {
                                delivery: h("x-convoy-delivery"),
                                event: h("x-convoy-event"),
                                signature: h("x-convoy-signature"),
                                body: body.to_vec(),
                            });
                            axum::http::StatusCode::NO_CONTENT
                        }
                    }),
                );
                axum::serve(listener, app)
                    .with_graceful_shutdown(async move {
                        let _ = stopped.await;
                    })
                    .await
                    .unwrap();
            });
        });
        ready.recv_timeout(T).expect("the receiver listens");
        Receiver { got, stop: Some(stop), thread: Some(thread) }
    }

    fn stop(mut self) {
        self.halt();
    }

    fn halt(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }

    /// The alarm deliveries about event `id`.
    fn alarms(&self, id: i64) -> Vec<Received> {
        self.got
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.event == "alarm" && r.json()["data"]["event_id"] == id)
            .cloned()
            .collect()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.halt();
    }
}

/// Status and JSON body (or null) of a request, whatever the status.
fn call(central: &CentralProc, token: &str, method: &str, path: &str, body: Option<&str>) -> (u16, Value) {
    let api = central.api.with_token(token);
    let url = format!("{}{path}", central.web);
    let mut r = match body {
        Some(b) => api
            .post(&url)
            .config()
            .http_status_as_error(false)
            .build()
            .header("content-type", "application/json")
            .send(b)
            .unwrap(),
        None => {
            assert_eq!(method, "GET");
            api.get(&url).config().http_status_as_error(false).build().call().unwrap()
        }
    };
    (r.status().as_u16(), r.body_mut().read_json().unwrap_or(Value::Null))
}

fn ingest(central: &CentralProc, token: &str, event: Value) -> (u16, Value) {
    call(central, token, "POST", "/api/events", Some(&event.to_string()))
}

fn webhook(central: &CentralProc) -> Value {
    let (status, hooks) = call(central, &central.api.token, "GET", "/api/webhooks", None);
    assert_eq!(status, 200, "{hooks}");
    hooks[0].clone()
}

fn sign(body: &[u8]) -> String {
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(body);
    let hex: String = mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

fn now_us() -> i64 {
    jiff::Timestamp::now().as_microsecond()
}

fn rfc3339(us: i64) -> String {
    jiff::Timestamp::from_microsecond(us).unwrap().to_string()
}

#[test]
fn ingested_events_become_alarms_and_reach_webhooks_signed_once_even_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("hook.secret"), format!("{SECRET}\n")).unwrap();
    // A port for the receiver, which is down at first.
    let addr = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let settings = format!(
        "[[webhook]]\nurl = \"http://{addr}/hook\"\nevents = [\"alarm\", \"unit\"]\nsecret_file = \"hook.secret\"\n"
    );
    let central = CentralProc::start_with(dir.path(), &settings).unwrap();
    let (_camera, rtsp) = sim_camera(dir.path(), &["front"], 0).unwrap();
    let config = edge_config(
        "bus-1",
        &dir.path().join("store"),
        Some((&central.quic, &central.fingerprint)),
        &[("front", &format!("{rtsp}/front"))],
    );
    let edge = EdgeProc::start_enrolled(dir.path(), "edge", &config, "bus-1", &central).unwrap();
    wait_until("bus-1 is connected", T, || (central.units().ok()?[0]["connected"] == true).then_some(())).unwrap();

    let password = "a long enough password";
    for (name, role, units) in [("olga", "operator", &[][..]), ("wes", "operator", &["bus-8"]), ("vic", "viewer", &[])]
    {
        central.add_user(name, role, password, units).unwrap();
    }
    let [olga, wes, vic] = ["olga", "wes", "vic"].map(|n| central.create_token(n).unwrap());

    // Refusals: a viewer; an operator of another unit; no such unit; not JSON; bad values.
    let door = json!({ "unit": "bus-1", "name": "door-forced" });
    let (status, body) = ingest(&central, &vic, door.clone());
    assert_eq!(status, 403, "{body}");
    let (status, body) = ingest(&central, &wes, door.clone());
    assert_eq!(status, 403, "{body}");
    assert!(body["error"].as_str().unwrap().contains("bus-1"), "{body}");
    let (status, body) = ingest(&central, &olga, json!({ "unit": "bus-9", "name": "door-forced" }));
    assert_eq!(status, 404, "{body}");
    assert!(body["error"].as_str().unwrap().contains("no unit \"bus-9\""), "{body}");
    let (status, body) = call(&central, &olga, "POST", "/api/events", Some("door forced"));
    assert_eq!(status, 400, "{body}");
    for (bad, says) in [
        (json!({ "unit": "bus-1", "name": "" }), "name must be"),
        (json!({ "unit": "bus-1", "name": "x", "camera": "rear" }), "shares no camera \"rear\""),
        (json!({ "unit": "bus-1", "name": "x", "time": "today" }), "RFC 3339"),
    ] {
        let (status, body) = ingest(&central, &olga, bad.clone());
        assert_eq!(status, 422, "{bad}: {body}");
        assert!(body["error"].as_str().unwrap().contains(says), "{bad}: {body}");
    }

    // An event about the front camera, while the receiver is down.
    let mut page = SseClient::open(&central.web, "/api/stream", &vic).unwrap();
    page.wait_for("ready", T, |_| true).unwrap();
    let at = now_us() - 5_000_000;
    let event = json!({ "unit": "bus-1", "camera": "front", "name": "door-forced", "message": "rear door",
                        "time": rfc3339(at) });
    let (status, created) = ingest(&central, &olga, event);
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_i64().unwrap();
    assert!(id < 0, "ingested events have negative ids: {created}");
    let (pushed, _) = page.wait_for("alarm", T, |a| a["event_id"] == id).unwrap();
    assert_eq!(pushed.data["kind"]["Generic"], json!({ "name": "door-forced", "detail": "rear door" }));
    let (_, listed) = call(&central, &vic, "GET", "/api/alarms?state=new", None);
    let alarm = listed.as_array().unwrap().iter().find(|a| a["event_id"] == id).cloned().unwrap();
    assert_eq!((&alarm["unit"], &alarm["cameras"]), (&json!("bus-1"), &json!(["front"])), "{alarm}");
    let (_, audit) = call(&central, &central.api.token, "GET", "/api/audit?q=event_ingested", None);
    assert_eq!((&audit[0]["user"], &audit[0]["unit"]), (&json!("olga"), &json!("bus-1")), "{audit}");

    // Central retrieves the window around it (the camera has event_window by default).
    wait_until("the event window is retrieved", T, || {
        let t = central
            .get_json(&format!(
                "{}/api/units/bus-1/cameras/front/timeline?start={}&end={}",
                central.web,
                rfc3339(at - 20_000_000),
                rfc3339(at + 20_000_000)
            ))
            .ok()?;
        (timeline_us(&t["central"]) > 5_000_000).then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}\n{}\n{}", central.proc.log_tail(), edge.proc.log_tail()));

    // Failed attempts are shown; then the receiver comes up and gets each delivery once.
    let failing = wait_until("a failed attempt", T, || {
        let w = webhook(&central);
        (w["last_error"].is_string() && w["next"]["attempts"].as_u64()? >= 1).then_some(w)
    })
    .unwrap();
    assert!(failing["queued"].as_u64().unwrap() >= 2, "the unit coming and the alarm: {failing}");
    assert_eq!((&failing["signed"], &failing["last_status"]), (&json!(true), &Value::Null), "{failing}");
    let waiting_id = failing["next"]["id"].as_str().unwrap().to_owned();
    let got = Arc::new(Mutex::new(Vec::new()));
    let receiver = Receiver::start(addr, got.clone());
    let up = std::time::Instant::now();
    let delivered = wait_until("the alarm is delivered", T, || receiver.alarms(id).pop()).unwrap();
    eprintln!(
        "webhook: delivered {:?} after the receiver came up ({} failed attempts before)",
        up.elapsed(),
        failing["next"]["attempts"]
    );
    assert_eq!(delivered.signature, sign(&delivered.body), "a valid signature");
    let body = delivered.json();
    assert_eq!((&body["id"], &body["event"]), (&json!(delivered.delivery), &json!("alarm")), "{body}");
    assert_eq!(body["data"]["kind"]["Generic"]["name"], "door-forced");
    let done = wait_until("the queue is empty", T, || {
        let w = webhook(&central);
        (w["queued"] == 0).then_some(w)
    })
    .unwrap();
    assert_eq!((&done["last_status"], &done["last_error"], &done["next"]), (&json!(204), &Value::Null, &Value::Null));
    let all = got.lock().unwrap().clone();
    for r in &all {
        assert_eq!(all.iter().filter(|o| o.delivery == r.delivery).count(), 1, "once: {}", r.delivery);
        assert_eq!(r.signature, sign(&r.body));
    }
    assert!(all.iter().any(|r| r.delivery == waiting_id), "the delivery that waited kept its id {waiting_id}");
    assert!(all.iter().any(|r| r.event == "unit" && r.json()["data"] == json!({ "unit": "bus-1", "online": true })));
    assert_eq!(done["delivered"].as_u64(), Some(all.len() as u64));

    // A delivery queued when central stops arrives after its restart, with the same id.
    receiver.stop();
    let (status, created) = ingest(&central, &olga, json!({ "unit": "bus-1", "name": "panic" }));
    assert_eq!((status, created["id"].as_i64()), (201, Some(id - 1)), "{created}");
    let queued = wait_until("a failed attempt", T, || {
        let w = webhook(&central);
        (w["next"]["event"] == "alarm" && w["next"]["attempts"].as_u64()? >= 1).then_some(w)
    })
    .unwrap();
    let queued_id = queued["next"]["id"].as_str().unwrap().to_owned();
    let mut central = central;
    drop(edge);
    assert!(central.proc.stop(T).unwrap().success());
    let central = CentralProc::start_with(dir.path(), &settings).unwrap();
    let receiver = Receiver::start(addr, got.clone());
    let up = std::time::Instant::now();
    let after = wait_until("the queued alarm is delivered after the restart", T, || receiver.alarms(id - 1).pop())
        .unwrap_or_else(|e| panic!("{e}\n{}", central.proc.log_tail()));
    eprintln!("webhook: delivered {:?} after central restarted and the receiver came up", up.elapsed());
    assert_eq!(after.delivery, queued_id);
    assert_eq!(after.signature, sign(&after.body));
    assert_eq!(receiver.alarms(id - 1).len(), 1);
    wait_until("the queue is empty after the restart", T, || (webhook(&central)["queued"] == 0).then_some(())).unwrap();
}
