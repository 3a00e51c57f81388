//! Users, roles, tokens and the audit log at a real central, with two real units: users are
//! added through the CLI (password on standard input), tokens work as bearer tokens, a browser
//! session comes from `POST /api/login`, nothing works without credentials, failed logins are
//! rate-limited, a viewer limited to one unit never sees the other and cannot retrieve or
//! configure, and the audit log records and finds it all.

use std::time::Duration;

use hil_tests::{CentralApi, CentralProc, EdgeProc, LiveViewer, edge_config, sim_camera, wait_until};
use serde_json::{Value, json};
use ureq::RequestBuilder;
use ureq::typestate::{WithBody, WithoutBody};

const T: Duration = Duration::from_secs(45);

/// Status, JSON body (or null) and `Retry-After` of a GET, whatever the status.
fn call(request: RequestBuilder<WithoutBody>) -> (u16, Value, Option<String>) {
    let mut r = request.config().http_status_as_error(false).build().call().unwrap();
    let retry = r.headers().get("retry-after").and_then(|v| v.to_str().ok()).map(str::to_owned);
    (r.status().as_u16(), r.body_mut().read_json().unwrap_or(Value::Null), retry)
}

/// Status, JSON body (or null), `Retry-After` and `Set-Cookie` of a request with a JSON body.
fn send(request: RequestBuilder<WithBody>, body: Value) -> (u16, Value, Option<String>, Option<String>) {
    let mut r = request.config().http_status_as_error(false).build().send_json(body).unwrap();
    let header = |name: &str| r.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let (retry, cookie) = (header("retry-after"), header("set-cookie"));
    (r.status().as_u16(), r.body_mut().read_json().unwrap_or(Value::Null), retry, cookie)
}

fn login(central: &CentralProc, name: &str, password: &str) -> (u16, Value, Option<String>, Option<String>) {
    send(ureq::post(&format!("{}/api/login", central.web)), json!({ "name": name, "password": password }))
}

fn rfc3339(us: i64) -> String {
    jiff::Timestamp::from_microsecond(us).unwrap().to_string()
}

fn now_us() -> i64 {
    jiff::Timestamp::now().as_microsecond()
}

#[test]
fn users_roles_unit_permissions_tokens_sessions_and_the_audit_log() {
    let dir = tempfile::tempdir().unwrap();
    let (_cam, rtsp) = sim_camera(dir.path(), &["front"], 0).unwrap();
    let central = CentralProc::start(dir.path(), 0).unwrap();
    let web = central.web.clone();
    let mut edges = Vec::new();
    for unit in ["bus-a", "bus-b"] {
        let config = edge_config(
            unit,
            &dir.path().join(unit),
            Some((&central.quic, &central.fingerprint)),
            &[("front", &format!("{rtsp}/front"))],
        );
        edges.push(EdgeProc::start_enrolled(dir.path(), unit, &config, unit, &central).unwrap());
    }
    let started = now_us();
    wait_until("both units and their cameras are known", T, || {
        let units = central.units().ok()?;
        (units.as_array()?.iter().filter(|u| u["cameras"].as_array().is_some_and(|c| !c.is_empty())).count() == 2)
            .then_some(())
    })
    .unwrap();

    // The first start made an administrator and said its password once; the file is private.
    let password_file = central.store.join("initial-admin-password");
    let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&password_file).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);
    let log = std::fs::read_to_string(dir.path().join("central.log")).unwrap();
    let said = log.lines().filter(|l| l.contains(&central.admin_password().unwrap())).count();
    assert_eq!(said, 1, "said once, on one line: {log}");

    // Nothing but the page, the document and the login works without credentials.
    for path in ["/api/units", "/api/me", "/api/alarms", "/api/retrievals", "/api/audit"] {
        assert_eq!(call(ureq::get(&format!("{web}{path}"))).0, 401, "{path}");
    }
    let timeline = |unit: &str| {
        format!(
            "{web}/api/units/{unit}/cameras/front/timeline?start={}&end={}",
            rfc3339(started - 60_000_000),
            rfc3339(now_us())
        )
    };
    let (status, refused, _) = call(ureq::get(&timeline("bus-a")));
    assert_eq!(status, 401);
    assert!(refused["error"].as_str().unwrap().contains("central token create"), "says what to do: {refused}");
    let stranger = CentralApi { web: web.clone(), token: "not-a-token".into() };
    assert_eq!(call(stranger.get(&format!("{web}/api/units"))).0, 401, "an unknown token");
    let e = LiveViewer::open(&stranger, "bus-a", "front").err().unwrap().to_string();
    assert!(e.contains("401"), "live video needs a login too: {e}");
    assert_eq!(call(ureq::get(&format!("{web}/api/openapi.json"))).0, 200);
    assert_eq!(call(ureq::get(&format!("{web}/"))).0, 200);

    // Users come from the CLI with the password on standard input; weak ones are refused.
    let e = central.add_user("olga", "operator", "", &[]).unwrap_err().to_string();
    assert!(e.contains("empty"), "{e}");
    let e = central.add_user("olga", "operator", "short", &[]).unwrap_err().to_string();
    assert!(e.contains("at least 10"), "{e}");
    let e = central.add_user("olga", "king", "olga's long password", &[]).unwrap_err().to_string();
    assert!(e.contains("administrator, operator or viewer"), "{e}");
    central.add_user("olga", "operator", "olga's long password", &[]).unwrap();
    central.add_user("vera", "viewer", "vera's long password", &["bus-a"]).unwrap();
    let e = central.create_token("nobody").unwrap_err().to_string();
    assert!(e.contains("central user add"), "{e}");
    let vera = central.api.with_token(&central.create_token("vera").unwrap());
    let olga = central.api.with_token(&central.create_token("olga").unwrap());

    // The viewer limited to bus-a: sees only it, and may watch but not retrieve or configure.
    let (status, me, _) = call(vera.get(&format!("{web}/api/me")));
    assert_eq!((status, me), (200, json!({ "name": "vera", "role": "viewer", "units": ["bus-a"] })));
    let units = vera.get_json(&format!("{web}/api/units")).unwrap();
    let ids: Vec<&str> = units.as_array().unwrap().iter().filter_map(|u| u["id"].as_str()).collect();
    assert_eq!(ids, ["bus-a"], "bus-b is not even listed");
    assert_eq!(call(vera.get(&timeline("bus-a"))).0, 200);
    let (status, refused, _) = call(vera.get(&timeline("bus-b")));
    assert_eq!(status, 403);
    assert!(refused["error"].as_str().unwrap().contains("bus-b"), "{refused}");
    let encoded = timeline("bus%2Db");
    assert_eq!(call(vera.get(&encoded)).0, 403, "the unit is compared decoded: {encoded}");
    assert_eq!(call(vera.get(&timeline("bus%FF"))).0, 400, "not UTF-8");
    let e = LiveViewer::open(&vera, "bus-b", "front").err().unwrap().to_string();
    assert!(e.contains("403"), "{e}");
    let range = json!({ "start": rfc3339(started), "end": rfc3339(started + 2_000_000) });
    for unit in ["bus-a", "bus-b"] {
        let url = format!("{web}/api/units/{unit}/cameras/front/retrieve");
        assert_eq!(send(vera.post(&url), range.clone()).0, 403, "a viewer cannot retrieve from {unit}");
    }
    let options = format!("{web}/api/units/bus-a/cameras/front/recording");
    assert_eq!(call(vera.get(&options)).0, 200);
    assert_eq!(send(vera.put(&options), json!({ "recording": ["remote"] })).0, 403);
    assert_eq!(send(olga.put(&options), json!({ "recording": ["remote"] })).0, 403, "nor can an operator");
    assert_eq!(call(vera.delete(&options)).0, 403);
    assert_eq!(call(vera.get(&format!("{web}/api/audit"))).0, 403);
    assert_eq!(call(vera.get(&format!("{web}/api/users"))).0, 403);
    let viewer = LiveViewer::open(&vera, "bus-a", "front").unwrap();
    wait_until("the viewer gets live video of bus-a", T, || (viewer.frames() > 0).then_some(())).unwrap();
    drop(viewer);

    // A retrieval of bus-b (by the operator) is not shown to the viewer.
    wait_until("bus-b has recorded something", T, || {
        let t = central.get_json(&timeline("bus-b")).ok()?;
        (hil_tests::timeline_us(&t["remote_only"]) > 1_000_000).then_some(())
    })
    .unwrap();
    let (status, made, _, _) = send(
        olga.post(&format!("{web}/api/units/bus-b/cameras/front/retrieve")),
        json!({
            "start": rfc3339(now_us() - 30_000_000), "end": rfc3339(now_us())
        }),
    );
    assert_eq!(status, 202, "an operator may retrieve: {made}");
    let id = made["id"].as_i64().unwrap();
    assert_eq!(call(vera.get(&format!("{web}/api/retrievals/{id}"))).0, 403);
    assert_eq!(call(olga.get(&format!("{web}/api/retrievals/{id}"))).0, 200);
    let listed = vera.get_json(&format!("{web}/api/retrievals")).unwrap();
    assert!(listed.as_array().unwrap().iter().all(|r| r["unit"] == "bus-a"), "{listed}");
    assert!(olga.get_json(&format!("{web}/api/retrievals")).unwrap().as_array().unwrap().iter().any(|r| r["id"] == id));

    // Administrators add users through the API too; nobody else may.
    let users = format!("{web}/api/users");
    let paul = json!({ "name": "paul", "role": "viewer", "password": "paul's long password", "units": ["bus-b"] });
    assert_eq!(send(vera.post(&users), paul.clone()).0, 403);
    assert_eq!(send(olga.post(&users), paul.clone()).0, 403);
    let (status, added, _, _) = send(central.post(&users), paul.clone());
    assert_eq!((status, added), (201, json!({ "name": "paul", "role": "viewer", "units": ["bus-b"] })));
    let (status, refused, _, _) = send(central.post(&users), paul);
    assert_eq!(status, 409, "{refused}");
    assert!(refused["error"].as_str().unwrap().contains("replace"), "{refused}");
    let weak = json!({ "name": "rita", "role": "viewer", "password": "short" });
    assert_eq!(send(central.post(&users), weak).0, 422);
    let listed = central.get_json(&users).unwrap();
    let names: Vec<&str> = listed.as_array().unwrap().iter().filter_map(|u| u["name"].as_str()).collect();
    assert_eq!(names, ["admin", "olga", "paul", "vera"]);
    assert_eq!(login(&central, "paul", "paul's long password").1["units"], json!(["bus-b"]));

    // A browser session: the cookie is HttpOnly and SameSite=Strict, and logging out ends it.
    let (status, me, _, cookie) = login(&central, "vera", "vera's long password");
    assert_eq!((status, &me["name"], &me["role"]), (200, &json!("vera"), &json!("viewer")), "{me}");
    let cookie = cookie.unwrap();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"), "{cookie}");
    assert!(!cookie.contains("Secure"), "plain HTTP on loopback: {cookie}");
    let session = cookie.split(';').next().unwrap().to_owned();
    let with_cookie = |r: RequestBuilder<WithoutBody>| r.header("cookie", &session);
    assert_eq!(call(with_cookie(ureq::get(&format!("{web}/api/me")))).1["name"], "vera");
    assert_eq!(call(with_cookie(ureq::get(&timeline("bus-b")))).0, 403);
    let logout = ureq::post(&format!("{web}/api/logout"))
        .header("cookie", &session)
        .config()
        .http_status_as_error(false)
        .build();
    assert_eq!(logout.send_empty().unwrap().status().as_u16(), 204);
    assert_eq!(call(with_cookie(ureq::get(&format!("{web}/api/me")))).0, 401, "the session ended");

    // Wrong passwords: 401, then 429 with Retry-After, even for the right password.
    for i in 0..5 {
        let (status, refused, _, _) = login(&central, "olga", "not olga's password");
        assert_eq!(status, 401, "attempt {i}: {refused}");
        assert_eq!(refused["error"], "wrong name or password");
    }
    let (status, refused, retry, _) = login(&central, "olga", "olga's long password");
    assert_eq!(status, 429, "{refused}");
    let retry: u64 = retry.expect("Retry-After").parse().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    assert_eq!(login(&central, "vera", "vera's long password").0, 200, "other users may still log in");

    // The audit log, newest first, found by user, action, unit or camera.
    let audit = |q: &str| central.get_json(&format!("{web}/api/audit?q={q}&limit=500")).unwrap();
    let vera_did = audit("vera");
    let actions: Vec<&str> = vera_did.as_array().unwrap().iter().filter_map(|e| e["action"].as_str()).collect();
    for action in ["login", "logout", "live_view"] {
        assert!(actions.contains(&action), "{action} in {actions:?}");
    }
    assert_eq!(actions[0], "login", "newest first: {actions:?}");
    let live = audit("live_view");
    let live = live.as_array().unwrap();
    assert!(live.iter().all(|e| e["action"] == "live_view"), "{live:?}");
    assert!(live.iter().any(|e| e["user"] == "vera" && e["unit"] == "bus-a" && e["camera"] == "front"), "{live:?}");
    let failed = audit("login_failed");
    assert_eq!(failed.as_array().unwrap().len(), 5, "five wrong passwords (refusals are not checks): {failed}");
    assert!(failed[0]["client"].as_str().is_some_and(|c| c.contains("127.0.0.1")), "{failed}");
    let b = audit("bus-b");
    assert!(b.as_array().unwrap().iter().any(|e| e["action"] == "retrieval_requested" && e["user"] == "olga"), "{b}");
    let added = audit("user_added");
    assert_eq!(added.as_array().unwrap().len(), 4, "admin, olga, vera, paul: {added}");
    assert_eq!(added[0]["user"], "admin", "paul was added by the administrator through the API: {added}");
    assert_eq!(audit("no-such-thing-anywhere"), json!([]));
    drop(edges);
}
