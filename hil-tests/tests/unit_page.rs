//! The unit's local page for technicians (issue #7, first slice): the account set with
//! `edge technician set`, logins with sessions and a rate limit, `GET /api/status` open on
//! loopback only, `GET /api/dashboard`, and the page itself in real headless Chromium against
//! a recording unit with real RTSP cameras.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use hil_tests::browser::Browser;
use hil_tests::technician::{TechClient, set_technician};
use hil_tests::{EdgeProc, edge_config, gst_camera, sim_camera, wait_until};
use serde_json::Value;

const T: Duration = Duration::from_secs(60);
const PROVISIONING: &str = "provisioning-2026";
const OWN: &str = "depot technician's own";
/// Camera passwords in the configuration, which no support bundle may hold.
const URL_SECRET: &str = "url-secret-4711";
const FIELD_SECRET: &str = "field-secret-0815";

/// A unit recording two simulated cameras, each from its own `sim-camera` process.
struct Rig {
    edge: EdgeProc,
    front: hil_tests::Proc,
    rear: hil_tests::Proc,
    config: std::path::PathBuf,
    /// The front camera's URL as configured, credentials included.
    front_url: String,
}

fn rig(dir: &Path) -> Rig {
    let (front, front_url) = sim_camera(dir, &["front"], 0).unwrap();
    let rear_dir = dir.join("rear");
    std::fs::create_dir_all(&rear_dir).unwrap();
    let (rear, rear_url) = sim_camera(&rear_dir, &["rear"], 0).unwrap();
    let front_url = format!("{}/front", front_url.replacen("rtsp://", &format!("rtsp://viewer:{URL_SECRET}@"), 1));
    let store = dir.join("store");
    let config_text = format!(
        "unit_id = \"bus-0042\"\n[store]\npath = {store:?}\nsegment_bytes = 262144\n[web]\nlisten = \"127.0.0.1:0\"\n\
         [[camera]]\nid = \"front\"\nname = \"Front\"\nurl = \"{front_url}\"\n\
         [[camera]]\nid = \"rear\"\nurl = \"{rear_url}/rear\"\nusername = \"viewer\"\npassword = \"{FIELD_SECRET}\"\n",
    );
    let edge = EdgeProc::start(dir, "edge", &config_text).unwrap();
    Rig { edge, front, rear, config: dir.join("edge.toml"), front_url }
}

fn camera<'a>(cameras: &'a Value, id: &str) -> &'a Value {
    cameras.as_array().and_then(|a| a.iter().find(|c| c["id"] == id)).unwrap_or(&Value::Null)
}

#[test]
fn logins_sessions_rate_limit_and_the_dashboard() {
    let dir = tempfile::tempdir().unwrap();
    let rig = rig(dir.path());
    let web = rig.edge.web.clone();
    let mut anon = TechClient::new(&web);

    // No account yet: the unit answers on loopback as before logins existed, and says so.
    assert_eq!(anon.call("/api/events", None).unwrap().code, 200);
    let session = anon.call("/api/session", None).unwrap();
    assert_eq!((session.code, &session.body["account"]), (200, &Value::Bool(false)), "{:?}", session.body);
    assert_eq!(anon.call("/api/dashboard", None).unwrap().code, 200);

    // The account: a hash in a 0600 file, no password anywhere on disk.
    let printed = set_technician(&rig.config, "tech", PROVISIONING, true).unwrap();
    assert!(printed.contains("tech"), "{printed}");
    let account = dir.path().join("store/web/technician.json");
    assert_eq!(std::fs::metadata(&account).unwrap().permissions().mode() & 0o777, 0o600);
    let text = std::fs::read_to_string(&account).unwrap();
    assert!(text.contains("$argon2id$") && !text.contains(PROVISIONING), "{text}");
    let short = set_technician(&rig.config, "tech", "short", false).unwrap_err().to_string();
    assert!(short.contains("at least 10 characters"), "{short}");

    // Status stays open on loopback; everything else needs a session now.
    let status = anon.call("/api/status", None).unwrap();
    assert_eq!((status.code, &status.body["unit_id"]), (200, &Value::from("bus-0042")));
    for path in ["/api/events", "/api/dashboard"] {
        let a = anon.call(path, None).unwrap();
        assert_eq!(a.code, 401, "{path}: {:?}", a.body);
    }
    let out = anon.call("/api/io/outputs/0", Some(serde_json::json!({ "on": true }))).unwrap();
    assert_eq!(out.code, 401, "{:?}", out.body);
    let live = anon.call("/api/cameras/front/live.fmp4", None).unwrap();
    assert_eq!(live.code, 401, "live video needs a login too: {:?}", live.body);
    assert_eq!(anon.call("/live-player.js", None).unwrap().code, 200, "the page's scripts load before a login");

    // The provisioning password logs in but must be changed before anything else.
    let mut tech = TechClient::new(&web);
    let login = tech.login("tech", PROVISIONING).unwrap();
    assert_eq!((login.code, &login.body["must_change_password"]), (200, &Value::Bool(true)), "{:?}", login.body);
    let cookie = login.set_cookie.unwrap();
    for flag in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(cookie.contains(flag), "{cookie}");
    }
    assert!(!cookie.contains("Secure"), "plain HTTP: a Secure cookie would never come back: {cookie}");
    assert_eq!(tech.call("/api/dashboard", None).unwrap().code, 403);
    let change = serde_json::json!({ "current": PROVISIONING, "new": OWN });
    let changed = tech.call("/api/password", Some(change)).unwrap();
    assert_eq!(changed.code, 200, "{:?}", changed.body);

    // The dashboard: unit, software, storage with a retention estimate, central, cameras.
    let d = wait_until("both cameras stream and a segment is sealed", T, || {
        let d = tech.call("/api/dashboard", None).ok()?.body;
        let live = ["front", "rear"].iter().all(|c| camera(&d["status"]["cameras"], c)["state"] == "streaming");
        (live && d["storage"]["oldest_recording"].is_string() && d["storage"]["recording_bps"].as_u64()? > 0)
            .then_some(d)
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", rig.edge.proc.log_tail()));
    assert_eq!(d["unit_id"], "bus-0042");
    assert_eq!(d["version"], env!("CARGO_PKG_VERSION"));
    assert!(d["uptime_s"].is_u64() && d["system_uptime_s"].as_u64().unwrap() > 0, "{d}");
    let storage = &d["storage"];
    assert!(storage["used_bytes"].as_u64().unwrap() >= 2 * 262_144, "{storage}");
    assert!(storage["fs_size_bytes"].as_u64().unwrap() >= storage["fs_free_bytes"].as_u64().unwrap());
    let days = storage["estimated_retention_days"].as_f64().unwrap();
    let budget = (storage["used_bytes"].as_u64().unwrap() + storage["fs_free_bytes"].as_u64().unwrap()) as f64;
    let expected = budget * 8.0 / storage["recording_bps"].as_u64().unwrap() as f64 / 86_400.0;
    assert!((days - expected).abs() <= 0.05 + expected * 0.01, "{days} vs {expected}: {storage}");
    let oldest: jiff::Timestamp = storage["oldest_recording"].as_str().unwrap().parse().unwrap();
    assert!(jiff::Timestamp::now().duration_since(oldest).as_secs() < 120, "{oldest}");
    assert_eq!(d["central"]["state"], "not configured");
    assert_eq!(camera(&d["status"]["cameras"], "front")["name"], "Front");
    assert!(d["status"]["io"].is_null());

    // Recordings: the timeline covers what was recorded; exports check their range.
    let timeline = tech.call("/api/recordings", None).unwrap().body;
    let runs = camera(&timeline["cameras"], "front")["runs"].as_array().unwrap().clone();
    assert!(!runs.is_empty(), "{timeline}");
    let at = |v: &Value| v.as_str().unwrap().parse::<jiff::Timestamp>().unwrap();
    let (first, last) = (at(&runs[0][0]), at(&runs[runs.len() - 1][1]));
    assert!(last > first, "{timeline}");
    let earliest = timeline["cameras"].as_array().unwrap().iter().map(|c| at(&c["runs"][0][0])).min().unwrap();
    assert!(earliest <= oldest, "the oldest sealed frame ({oldest}) is in the timeline: {timeline}");
    let range = |s: jiff::Timestamp, e: jiff::Timestamp| format!("start={s}&end={e}");
    let reversed = tech.call(&format!("/api/recordings/front/export.mp4?{}", range(last, first)), None).unwrap();
    assert_eq!(reversed.code, 400, "{:?}", reversed.body);
    let unknown = tech.call(&format!("/api/recordings/side/export.mp4?{}", range(first, last)), None).unwrap();
    assert_eq!(unknown.code, 404, "{:?}", unknown.body);
    let before = first.checked_sub(jiff::SignedDuration::from_secs(3600)).unwrap();
    let nothing = tech
        .call(
            &format!(
                "/api/recordings/front/export.mp4?{}",
                range(before, first - jiff::SignedDuration::from_secs(600))
            ),
            None,
        )
        .unwrap();
    assert_eq!(nothing.code, 404, "{:?}", nothing.body);
    assert!(nothing.body["error"].as_str().unwrap().contains("no recording"), "{:?}", nothing.body);

    // An evidence lock on the front camera's recording, shown on its timeline.
    let lock = serde_json::json!({ "start": first.to_string(), "end": last.to_string(), "reason": "incident 42" });
    let locked = tech.call("/api/recordings/front/lock", Some(lock.clone())).unwrap();
    assert_eq!(locked.code, 201, "{:?}", locked.body);
    let timeline = tech.call("/api/recordings", None).unwrap().body;
    let locks = &camera(&timeline["cameras"], "front")["locks"];
    assert_eq!(locks[0]["reason"], "technician: incident 42", "{timeline}");
    assert_eq!(at(&locks[0]["start"]), first);
    let expires = at(&locks[0]["expires"]).duration_since(jiff::Timestamp::now()).as_secs();
    assert!((29 * 86_400..=30 * 86_400).contains(&expires), "{timeline}");
    assert!(camera(&timeline["cameras"], "rear")["locks"].as_array().unwrap().is_empty());
    let no_reason = serde_json::json!({ "start": first.to_string(), "end": last.to_string(), "reason": " " });
    assert_eq!(tech.call("/api/recordings/front/lock", Some(no_reason)).unwrap().code, 400);
    assert_eq!(tech.call("/api/recordings/side/lock", Some(lock)).unwrap().code, 404);

    // Diagnostics: logs with a filter, a probe of a real camera and of a missing one, outputs.
    let logs = tech.call("/api/logs?filter=technician%20logged%20in", None).unwrap().body;
    let lines = logs["lines"].as_array().unwrap();
    assert!(!lines.is_empty() && lines.iter().all(|l| l.as_str().unwrap().contains("technician logged in")), "{logs}");
    let probe =
        tech.call("/api/cameras/probe", Some(serde_json::json!({ "url": rig.front_url, "seconds": 1.0 }))).unwrap();
    assert_eq!(probe.code, 200, "{:?}", probe.body);
    assert_eq!(probe.body["video"]["width"], 640, "{:?}", probe.body);
    let gone = tech.call("/api/cameras/probe", Some(serde_json::json!({ "url": "rtsp://127.0.0.1:9/x" }))).unwrap();
    assert_eq!(gone.code, 422, "{:?}", gone.body);
    assert!(gone.body["error"].as_str().unwrap().contains("cannot probe"), "{:?}", gone.body);
    let not_rtsp = tech.call("/api/cameras/probe", Some(serde_json::json!({ "url": "http://x/" }))).unwrap();
    assert_eq!(not_rtsp.code, 400, "{:?}", not_rtsp.body);
    let output = tech.call("/api/outputs/0", Some(serde_json::json!({ "on": true }))).unwrap();
    assert_eq!(output.code, 503, "no I/O companion here: {:?}", output.body);

    // Cameras in the configuration file: checked as a whole, written, applied at once.
    let listed = tech.call("/api/cameras", None).unwrap().body;
    assert_eq!(listed["restart_required"], false, "{listed}");
    assert!(listed["cameras"][0]["url"].as_str().unwrap().contains("viewer:redacted@"), "{listed}");
    assert!(!listed.to_string().contains(URL_SECRET), "{listed}");
    let twice =
        tech.call("/api/cameras", Some(serde_json::json!({ "id": "front", "url": "rtsp://127.0.0.1:9/x" }))).unwrap();
    assert_eq!(twice.code, 400, "{:?}", twice.body);
    assert!(twice.body["error"].as_str().unwrap().contains("used twice"), "{:?}", twice.body);
    let before = std::fs::read_to_string(&rig.config).unwrap();
    assert_eq!(tech_delete(&tech, "/api/cameras/side"), 404);
    assert_eq!(std::fs::read_to_string(&rig.config).unwrap(), before, "a refused change leaves the file alone");
    assert_eq!(tech_delete(&tech, "/api/cameras/rear"), 200);
    let listed = tech.call("/api/cameras", None).unwrap().body;
    assert_eq!(
        (listed["cameras"].as_array().unwrap().len(), &listed["restart_required"]),
        (1, &Value::Bool(false)),
        "{listed}"
    );
    let after = std::fs::read_to_string(&rig.config).unwrap();
    assert!(!after.contains("rear") && after.contains(URL_SECRET), "only the rear camera went: {after}");
    let status = anon.call("/api/status", None).unwrap().body;
    assert!(camera(&status["cameras"], "rear").is_null(), "the running unit stopped it at once: {status}");
    assert_eq!(camera(&status["cameras"], "front")["state"], "streaming", "the other camera records on");

    // A session ends at logout.
    assert_eq!(tech.call("/api/events", None).unwrap().code, 200);
    let token = tech.token.clone();
    assert_eq!(tech.call("/api/logout", Some(serde_json::json!({}))).unwrap().code, 200);
    tech.token = token;
    assert_eq!(tech.call("/api/events", None).unwrap().code, 401);

    // Five wrong passwords, then the client must wait, even with the right one.
    let mut guesser = TechClient::new(&web);
    for i in 0..5 {
        let a = guesser.login("tech", &format!("guess number {i}")).unwrap();
        assert_eq!(a.code, 401, "attempt {i}: {:?}", a.body);
        assert_eq!(a.body["error"], "wrong user name or password");
    }
    let blocked = guesser.login("tech", OWN).unwrap();
    assert_eq!(blocked.code, 429, "{:?}", blocked.body);
    let wait: u64 = blocked.retry_after.unwrap().parse().unwrap();
    assert!((1..=60).contains(&wait), "{wait}");
    assert!(blocked.set_cookie.is_none());
}

#[test]
fn the_page_in_chromium_logs_in_shows_live_cameras_and_a_camera_going_down() {
    let dir = tempfile::tempdir().unwrap();
    let mut rig = rig(dir.path());
    set_technician(&rig.config, "technician", PROVISIONING, true).unwrap();
    let edge = &rig.edge;
    let mut b = Browser::launch(1280, 900).unwrap();
    let downloads = dir.path().join("downloads");

    // Script errors in the page are collected from the start.
    let collect = "window.__errors = []; addEventListener('error', e => __errors.push(String(e.message))); \
                   addEventListener('unhandledrejection', e => __errors.push(String(e.reason)));";
    b.page("Page.enable", serde_json::json!({})).unwrap();
    b.page("Page.addScriptToEvaluateOnNewDocument", serde_json::json!({ "source": collect })).unwrap();
    // A wrong password, then the provisioning one, which must be changed first.
    b.goto(&format!("{}/", edge.web)).unwrap();
    wait_js(&mut b, edge, "the login form", "!document.getElementById('login').hidden");
    fill_form(&mut b, "#login", &[("user", "technician"), ("password", &format!("{PROVISIONING}-wrong"))]);
    b.click("#login button").unwrap();
    let wrong = wait_js(
        &mut b,
        edge,
        "the wrong password's message",
        "(() => { const t = document.querySelector('#login .err').textContent; return t.includes('wrong') ? t : null; })()",
    );
    assert!(wrong.as_str().unwrap().contains("wrong user name or password"), "{wrong}");
    fill_form(&mut b, "#login", &[("password", PROVISIONING)]);
    b.click("#login button").unwrap();
    wait_js(&mut b, edge, "the password form", "!document.getElementById('password').hidden");
    fill_form(&mut b, "#password", &[("current", PROVISIONING), ("new", OWN)]);
    b.click("#password button").unwrap();
    wait_js(&mut b, edge, "the dashboard", "!document.getElementById('dash').hidden");

    // The dashboard's weight: everything transferred up to the first complete dashboard.
    for cam in ["front", "rear"] {
        let streaming = format!("!!document.querySelector('.cam[data-camera=\"{cam}\"][data-state=\"streaming\"]')");
        wait_js(&mut b, edge, &format!("{cam} streams"), &streaming);
    }
    wait_js(&mut b, edge, "the storage figures", "!!document.querySelector('#storage dd')");
    let live = b
        .eval(
            "(() => { const all = [...performance.getEntriesByType('navigation'), ...performance.getEntriesByType('resource')]; \
             return { weight: all.reduce((n, e) => n + e.transferSize, 0), urls: all.map(e => e.name) }; })()",
        )
        .unwrap();
    let weight = live["weight"].as_u64().unwrap();
    eprintln!("the dashboard transferred {weight} bytes");
    assert!(weight > 5_000 && weight <= 300_000, "the dashboard transferred {weight} bytes: {live}");
    let urls = live["urls"].as_array().unwrap();
    assert!(urls.iter().all(|u| u.as_str().unwrap().starts_with(&edge.web)), "external resources: {live}");

    // The rear camera goes away; the page shows it down with the reason.
    rig.rear.kill();
    let edge = &rig.edge;
    let reason = wait_js(
        &mut b,
        edge,
        "rear shown down with its reason",
        "(() => { const r = document.querySelector('.cam[data-camera=\"rear\"][data-state=\"down\"] .reason'); \
         return r && r.textContent ? r.textContent : null; })()",
    );
    wait_js(
        &mut b,
        edge,
        "the CameraLost event",
        "[...document.querySelectorAll('#events li')].some(l => l.textContent.includes('CameraLost'))",
    );
    let shots = dir.path();
    b.screenshot(&shots.join("demo-edge.png")).unwrap();
    let phone = serde_json::json!({ "width": 390, "height": 844, "deviceScaleFactor": 1, "mobile": true });
    b.page("Emulation.setDeviceMetricsOverride", phone).unwrap();
    let overflow = b.eval("document.documentElement.scrollWidth").unwrap();
    b.screenshot(&shots.join("demo-edge-phone.png")).unwrap();
    let desktop = serde_json::json!({ "width": 1280, "height": 900, "deviceScaleFactor": 1, "mobile": false });
    b.page("Emulation.setDeviceMetricsOverride", desktop).unwrap();

    // The support bundle and an export of the last 20 s of the front camera, as downloads.
    let bundle = download(&mut b, &downloads.join("bundle"), "#bundle", |bytes| {
        bytes.len() >= 1024 && bytes.len() % 512 == 0 && bytes[bytes.len() - 1024..].iter().all(|&x| x == 0)
    });
    std::fs::write(dir.path().join("bundle.tar"), bundle).unwrap();
    wait_js(&mut b, edge, "front's timeline", "!!document.querySelector('#timeline .tl[data-camera=\"front\"] span')");
    let export_range = b
        .eval(
            "(() => { const f = document.getElementById('export').elements, now = Date.now(); f.camera.value = 'front'; \
             f.start.value = localInput(new Date(now - 20000)); f.end.value = localInput(new Date(now)); \
             return [new Date(f.start.value).toISOString(), new Date(f.end.value).toISOString()]; })()",
        )
        .unwrap();
    let clip_path = dir.path().join("front.mp4");
    let clip = download(&mut b, &downloads.join("clip"), "#export button", |bytes| {
        std::fs::write(&clip_path, bytes).is_ok()
            && std::process::Command::new("ffprobe")
                .args(["-v", "error", "-show_entries", "format=duration"])
                .arg(&clip_path)
                .output()
                .is_ok_and(|o| o.status.success())
    });
    std::fs::write(&clip_path, clip).unwrap();
    // The same range played in the page.
    b.click("#playbtn").unwrap();
    let played = wait_js(
        &mut b,
        edge,
        "the range plays in the page",
        "(() => { const v = document.getElementById('player'); return v.readyState >= 2 && v.duration > 1 && v.videoWidth > 0 \
         ? { duration: v.duration, width: v.videoWidth, height: v.videoHeight } : null; })()",
    );
    // A camera added from a real RTSP server: probed first, then written and started.
    b.click("#addcam summary").unwrap();
    fill_form(&mut b, "#addcam form", &[("id", "side"), ("name", "Side door"), ("url", &rig.front_url)]);
    b.click("#probebtn").unwrap();
    let probe = wait_js(
        &mut b,
        edge,
        "the probe's result",
        "(() => { const t = document.getElementById('probeout').textContent; return t.includes('fps') ? t : null; })()",
    );
    b.click("#addcam button:not([type=button])").unwrap();
    let added = wait_js(
        &mut b,
        edge,
        "the camera added",
        "(() => { const t = document.getElementById('probeout').textContent; return t.includes('added') ? t : null; })()",
    );
    let cookies = b.page("Network.getCookies", serde_json::json!({})).unwrap()["cookies"].clone();
    let errors = b.eval("window.__errors").unwrap();
    assert!(errors.is_array(), "the error collector runs in the page: {errors}");
    let down = serde_json::json!({
        "reason": reason, "export_range": export_range, "probe": probe, "added": added, "played": played,
        "phone_scroll_width": overflow, "errors": errors, "cookies": cookies,
    });
    let reason = down["reason"].as_str().unwrap();
    let status = rig.edge.status().unwrap();
    let rear = camera(&status["cameras"], "rear");
    assert_eq!(rear["state"], "down", "{status}");
    let mut tech = TechClient::new(&rig.edge.web);
    assert_eq!(tech.login("technician", OWN).unwrap().code, 200, "the page changed the password");
    let events = tech.call("/api/events?since=0", None).unwrap().body;
    let lost: Vec<&str> = events
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"]["CameraLost"]["camera"] == "rear")
        .filter_map(|e| e["kind"]["CameraLost"]["reason"].as_str())
        .collect();
    assert!(
        !reason.is_empty() && (rear["reason"] == reason || lost.contains(&reason)),
        "the page shows {reason:?}; the unit said {rear} and {lost:?}"
    );
    assert_eq!(camera(&status["cameras"], "front")["state"], "streaming", "the other camera is unaffected");
    assert!(down["errors"].as_array().unwrap().is_empty(), "script errors in the page: {down}");
    assert!(down["phone_scroll_width"].as_u64().unwrap() <= 390, "the page scrolls sideways on a phone: {down}");
    let cookie = &down["cookies"][0];
    assert_eq!(
        (&cookie["name"], &cookie["httpOnly"], &cookie["sameSite"]),
        (&"convoy_session".into(), &true.into(), &"Strict".into())
    );
    // The clip exported through the page is a valid H.264 MP4 of about the 20 s asked for.
    let clip = dir.path().join("front.mp4");
    let probe = std::process::Command::new("ffprobe")
        .args(["-v", "error", "-show_entries", "stream=codec_name,width,height,nb_read_frames", "-count_frames"])
        .args(["-show_entries", "format=duration", "-of", "json"])
        .arg(&clip)
        .output()
        .unwrap();
    assert!(probe.status.success(), "{}", String::from_utf8_lossy(&probe.stderr));
    let probe: Value = serde_json::from_slice(&probe.stdout).unwrap();
    let stream = &probe["streams"][0];
    assert_eq!(
        (&stream["codec_name"], &stream["width"], &stream["height"]),
        (&"h264".into(), &640.into(), &360.into()),
        "{probe}"
    );
    let duration: f64 = probe["format"]["duration"].as_str().unwrap().parse().unwrap();
    let at = |v: &Value| v.as_str().unwrap().parse::<jiff::Timestamp>().unwrap().as_microsecond() as f64 / 1e6;
    let (start, end) = (at(&down["export_range"][0]), at(&down["export_range"][1]));
    let recordings = tech.call("/api/recordings", None).unwrap().body;
    let first = at(&camera(&recordings["cameras"], "front")["runs"][0][0]);
    // From the key frame at or before the start (the clip has one a second) to the end. The
    // MP4's duration follows the camera's timestamps, which may lag the wall clock the range is
    // chosen by when the machine is busy (the simulated camera then sends 23–24 of its 25 fps).
    let expected = end - start.max(first);
    assert!(duration >= expected * 0.85 && duration <= expected + 1.5, "{duration} s for {expected} s: {probe}");
    let played = &down["played"];
    assert_eq!((&played["width"], &played["height"]), (&640.into(), &360.into()), "{down}");
    // Played a moment after the download: frames close to the end may have been written since.
    assert!((played["duration"].as_f64().unwrap() - duration).abs() < 0.5, "played {played} vs exported {duration} s");
    let frames: u64 = stream["nb_read_frames"].as_str().unwrap().parse().unwrap();
    assert!(frames as f64 >= duration * 20.0, "{frames} frames in {duration} s");

    // The support bundle: every part, and no secret of the unit in any of them.
    let tar = std::fs::read(dir.path().join("bundle.tar")).unwrap();
    let names = tar_names(&tar);
    for part in ["config.toml", "status.json", "events.json", "logs.txt", "verify.json"] {
        assert!(names.iter().any(|n| n.ends_with(&format!("/{part}"))), "{part} missing: {names:?}");
    }
    let text = String::from_utf8_lossy(&tar);
    let hash = std::fs::read_to_string(dir.path().join("store/web/technician.json")).unwrap();
    let hash: Value = serde_json::from_str(&hash).unwrap();
    for secret in [URL_SECRET, FIELD_SECRET, PROVISIONING, OWN, hash["hash"].as_str().unwrap(), "$argon2"] {
        assert!(!text.contains(secret), "the bundle holds {secret:?}");
    }
    assert!(text.contains("<redacted>") && text.contains("bus-0042"), "the bundle is not the unit's");
    assert!(text.contains("CameraLost"), "the events are in it");
    // The camera added in the page: probed (a real RTSP server), in the configuration file, and
    // live at once in the same process.
    assert!(down["probe"].as_str().unwrap().contains("640×360"), "{down}");
    assert!(down["added"].as_str().unwrap().contains("side added, applied now"), "{down}");
    let config = std::fs::read_to_string(&rig.config).unwrap();
    assert!(config.contains("id = \"side\"") && config.contains("Side door"), "{config}");
    let pid = rig.edge.proc.pid();
    wait_until("the added camera streams", T, || {
        (camera(&rig.edge.status().ok()?["cameras"], "side")["state"] == "streaming").then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", rig.edge.proc.log_tail()));
    assert!(Path::new(&format!("/proc/{pid}")).exists(), "the same edge process runs the added camera");
    for shot in ["demo-edge.png", "demo-edge-phone.png"] {
        let png = std::fs::read(shots.join(shot)).unwrap();
        assert!(png.starts_with(b"\x89PNG") && png.len() > 10_000, "{shot}: {} bytes", png.len());
    }
    drop(rig.front);
}

/// Clicks `selector`, which starts a download, and waits until the browser has saved a file in
/// `dir` (a folder of its own) whose bytes `complete` accepts; returns them.
fn download(b: &mut Browser, dir: &Path, selector: &str, complete: impl Fn(&[u8]) -> bool) -> Vec<u8> {
    std::fs::create_dir_all(dir).unwrap();
    b.allow_downloads(dir).unwrap();
    b.click(selector).unwrap();
    wait_until(&format!("the download from {selector}"), T, || {
        std::fs::read_dir(dir).ok()?.flatten().find_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.ends_with(".crdownload") {
                return None;
            }
            std::fs::read(e.path()).ok().filter(|bytes| complete(bytes))
        })
    })
    .unwrap()
}

/// The file names in a tar archive (ustar/GNU headers, regular files).
fn tar_names(tar: &[u8]) -> Vec<String> {
    let mut names = Vec::new();
    let mut at = 0;
    while at + 512 <= tar.len() && tar[at] != 0 {
        let header = &tar[at..at + 512];
        let name = String::from_utf8_lossy(&header[..100]).trim_end_matches('\0').to_owned();
        let size = std::str::from_utf8(&header[124..136]).unwrap().trim_matches(|c: char| c == '\0' || c == ' ');
        let size = usize::from_str_radix(size, 8).unwrap();
        names.push(name);
        at += 512 + size.div_ceil(512) * 512;
    }
    names
}

/// `DELETE` with the client's session; the status code.
fn tech_delete(client: &TechClient, path: &str) -> u16 {
    let mut request = ureq::delete(&format!("{}{path}", client.web)).config().http_status_as_error(false).build();
    if let Some(token) = &client.token {
        request = request.header("Cookie", &format!("convoy_session={token}"));
    }
    request.call().unwrap().status().as_u16()
}

#[test]
fn the_dashboard_shows_the_io_board_live_and_the_technician_switches_an_output() {
    let dir = tempfile::tempdir().unwrap();
    let (_camera, rtsp) = sim_camera(dir.path(), &["front"], 0).unwrap();
    // The edge's UDP port for the board: pick a free one (bind, note it, close).
    let unit = std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let mut cmd = std::process::Command::new(hil_tests::bin_path("io-sim").unwrap());
    cmd.args(["--unit", &unit.to_string(), "--listen", "127.0.0.1:0"]);
    let mut sim = hil_tests::Proc::spawn_with_stdin("io-sim", cmd, &dir.path().join("io-sim.log")).unwrap();
    let board = sim.wait_line("ready ", T).unwrap().trim_start_matches("ready ").to_owned();
    sim.send_line("input ignition 1").unwrap();
    let config = format!(
        "{}[io]\nlisten = \"{unit}\"\nboard = \"{board}\"\n",
        hil_tests::edge_config("bus-7", &dir.path().join("store"), None, &[("front", &format!("{rtsp}/front"))])
    );
    std::fs::write(dir.path().join("edge.toml"), &config).unwrap();
    set_technician(&dir.path().join("edge.toml"), "tech", OWN, false).unwrap();
    let edge = EdgeProc::start(dir.path(), "edge", &config).unwrap();
    let mut tech = TechClient::new(&edge.web);
    let login = tech.login("tech", OWN).unwrap();
    assert_eq!((login.code, &login.body["must_change_password"]), (200, &Value::Bool(false)), "{:?}", login.body);
    let input = |d: &Value, name: &str| {
        d["status"]["io"]["inputs"].as_array().and_then(|a| a.iter().find(|i| i["name"] == name).cloned())
    };
    let mut poller = tech.clone();
    let mut dashboard = |what: &str, check: &dyn Fn(&Value) -> bool| {
        wait_until(what, T, || poller.call("/api/dashboard", None).ok().map(|a| a.body).filter(|d| check(d)))
            .unwrap_or_else(|e| panic!("{e}\n{}", edge.proc.log_tail()))
    };
    dashboard("the board is up with the ignition on", &|d| {
        d["status"]["io"]["link_up"] == true && input(d, "ignition").is_some_and(|i| i["active"] == true)
    });
    sim.send_line("input panic 1").unwrap();
    dashboard("the panic button shows pressed", &|d| input(d, "panic").is_some_and(|i| i["active"] == true));

    // With an account, the loopback-only route needs a login too; the technician's route works.
    let legacy = TechClient::new(&edge.web).call("/api/io/outputs/1", Some(serde_json::json!({ "on": true }))).unwrap();
    assert_eq!(legacy.code, 401, "{:?}", legacy.body);
    let switched = tech.call("/api/outputs/1", Some(serde_json::json!({ "on": true }))).unwrap();
    assert_eq!((switched.code, &switched.body), (200, &serde_json::json!({ "output": 1, "on": true })));
    sim.wait_line("output 1 on", T).unwrap();
    dashboard("output 1 shows on", &|d| d["status"]["io"]["outputs_on"] == serde_json::json!([1]));
    let missing = tech.call("/api/outputs/9", Some(serde_json::json!({ "on": true }))).unwrap();
    assert_eq!(missing.code, 504, "io-sim has four outputs: {:?}", missing.body);
}

/// `curl -sk` (the certificate is the unit's own): status code, headers and body.
fn curl_tls(url: &str, json: Option<&str>) -> (u16, String, String) {
    let mut cmd = std::process::Command::new("curl");
    cmd.args(["-sk", "--max-time", "20", "-D", "-", "-w", "\n%{http_code}", url]);
    if let Some(body) = json {
        cmd.args(["-X", "POST", "-H", "Content-Type: application/json", "--data", body]);
    }
    let out = cmd.output().expect("curl is needed");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (rest, code) = text.rsplit_once('\n').unwrap_or_default();
    let (headers, body) = rest.split_once("\r\n\r\n").unwrap_or((rest, ""));
    (code.trim().parse().unwrap_or(0), headers.to_owned(), body.to_owned())
}

#[test]
fn the_page_is_served_over_https_with_the_units_own_certificate() {
    use sha2::Digest;
    let dir = tempfile::tempdir().unwrap();
    let (_camera, rtsp) = sim_camera(dir.path(), &["front"], 0).unwrap();
    let store = dir.path().join("store");
    let config = hil_tests::edge_config("bus-9", &store, None, &[("front", &format!("{rtsp}/front"))])
        .replace("[web]\n", "[web]\nhttps_listen = \"127.0.0.1:0\"\n");
    std::fs::write(dir.path().join("edge.toml"), &config).unwrap();
    set_technician(&dir.path().join("edge.toml"), "tech", OWN, false).unwrap();
    let mut edge = EdgeProc::start(dir.path(), "edge", &config).unwrap();
    let line = edge.proc.wait_line("web (https) listening on", T).unwrap();
    let https = line.split_whitespace().find(|w| w.starts_with("https://")).unwrap().to_owned();
    let printed = hil_tests::services::last_word(&line);

    // The certificate the unit made and printed; its key readable by the unit only.
    let cert = std::fs::read(store.join("web/https-cert.der")).unwrap();
    let digest: Vec<String> = sha2::Sha256::digest(&cert).iter().map(|b| format!("{b:02X}")).collect();
    assert_eq!(printed, digest.join(":"));
    let key_mode = std::fs::metadata(store.join("web/https-key.der")).unwrap().permissions().mode();
    assert_eq!(key_mode & 0o777, 0o600);

    // Loopback status without a login, as over HTTP; the rest needs one, and its cookie is Secure.
    let (code, _, body) = curl_tls(&format!("{https}/api/status"), None);
    assert_eq!(code, 200, "{body}\n{}", edge.proc.log_tail());
    assert!(body.contains("bus-9"), "{body}");
    assert_eq!(curl_tls(&format!("{https}/api/dashboard"), None).0, 401);
    let login = format!("{{\"user\":\"tech\",\"password\":\"{OWN}\"}}");
    let (code, headers, body) = curl_tls(&format!("{https}/api/login"), Some(&login));
    assert_eq!(code, 200, "{body}");
    let cookie = headers.lines().find(|l| l.to_ascii_lowercase().starts_with("set-cookie:")).unwrap().to_owned();
    for flag in ["HttpOnly", "SameSite=Strict", "Secure"] {
        assert!(cookie.contains(flag), "{cookie}");
    }
    let (code, _, page) = curl_tls(&format!("{https}/"), None);
    assert!(code == 200 && page.contains("Technician login"), "{code} {page}");
    // Plain HTTP goes on beside it, and the same certificate comes back after a restart.
    let mut plain = TechClient::new(&edge.web);
    let d = plain.login("tech", OWN).unwrap();
    assert!(d.set_cookie.as_deref().is_some_and(|c| !c.contains("Secure")), "{d:?}");
    let dashboard = plain.call("/api/dashboard", None).unwrap().body;
    assert_eq!(dashboard["https_fingerprint"].as_str(), Some(printed.as_str()), "{dashboard}");
    edge.proc.stop(T).unwrap();
    let mut again = EdgeProc::start(dir.path(), "edge", &config).unwrap();
    let line = again.proc.wait_line("web (https) listening on", T).unwrap();
    assert_eq!(hil_tests::services::last_word(&line), printed);
}

/// `method` (`PATCH`, `DELETE` …) with an optional JSON body and the client's session: status
/// and JSON body.
fn tech_send(client: &TechClient, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let url = format!("{}{path}", client.web);
    let cookie = format!("convoy_session={}", client.token.as_deref().unwrap_or_default());
    let request = ureq::http::Request::builder().method(method).uri(&url).header("Cookie", &cookie);
    let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
    let mut response = match body {
        Some(json) => {
            agent.run(request.header("Content-Type", "application/json").body(json.to_string()).unwrap()).unwrap()
        }
        None => agent.run(request.body(()).unwrap()).unwrap(),
    };
    let code = response.status().as_u16();
    (code, response.body_mut().read_json().unwrap_or(Value::Null))
}

/// Polls a JavaScript expression in the page until it returns something not `null`/`false`.
fn wait_js(b: &mut Browser, edge: &EdgeProc, what: &str, expression: &str) -> Value {
    wait_until(what, T, || b.eval(expression).ok().filter(|v| !v.is_null() && *v != Value::Bool(false))).unwrap_or_else(
        |e| {
            let page = b
                .eval("document.getElementById('cameras').innerHTML + document.getElementById('probeout').textContent");
            panic!("{e}; page: {page:?}\n{}", edge.proc.log_tail())
        },
    )
}

/// The live `<video>` of a camera's card (time, size, distance to the live edge), or what the
/// card says instead of a picture.
fn card_video(camera: &str) -> String {
    format!(
        "(() => {{ const c = document.querySelector('.cam[data-camera=\"{camera}\"]'); \
         const u = c && c.querySelector('.screen.unsupported'); if (u) return {{ unsupported: u.textContent }}; \
         const v = c && c.querySelector('video'); if (!v) return null; const b = v.buffered; \
         return {{ t: v.currentTime, w: v.videoWidth, h: v.videoHeight, behind: b.length ? b.end(b.length - 1) - v.currentTime : null }}; }})()"
    )
}

/// Waits until `camera`'s live video in the page has played more than `from + 1` seconds.
fn wait_playing(b: &mut Browser, edge: &EdgeProc, camera: &str, from: f64) -> Value {
    wait_js(
        b,
        edge,
        &format!("{camera}'s live video plays past {from:.1} s"),
        &format!(
            "(() => {{ const s = {}; return s && s.t > {} && s.w > 0 ? s : null; }})()",
            card_video(camera),
            from + 1.0
        ),
    )
}

fn fill_form(b: &mut Browser, form: &str, fields: &[(&str, &str)]) {
    let sets: String = fields
        .iter()
        .map(|(k, v)| format!("f.elements[{}].value = {};", serde_json::json!(k), serde_json::json!(v)))
        .collect();
    b.eval(&format!("(() => {{ const f = document.querySelector({}); {sets} }})()", serde_json::json!(form))).unwrap();
}

fn now_us() -> i64 {
    jiff::Timestamp::now().as_microsecond()
}

/// Issue #7, second slice: a camera's live view in the page (central's player over the unit's
/// own fMP4 socket, H.265 refused plainly), a snapshot as a PNG download, and cameras added,
/// changed and removed while the unit runs: the new camera streams and records without a
/// restart of the process, and the camera that did not change records on without a gap.
#[test]
fn live_view_snapshot_and_cameras_changed_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (_front_camera, front) = sim_camera(dir.path(), &["front"], 0).unwrap();
    let (_gst, gst) = gst_camera(dir.path(), &["side"], &[]).unwrap();
    let h265_dir = dir.path().join("h265");
    std::fs::create_dir_all(&h265_dir).unwrap();
    let (_h265, h265) = gst_camera(&h265_dir, &["cab"], &["--codec", "h265"]).unwrap();
    let store = dir.path().join("store");
    let config =
        edge_config("bus-0011", &store, None, &[("front", &format!("{front}/front")), ("cab", &format!("{h265}/cab"))]);
    let config_path = dir.path().join("edge.toml");
    std::fs::write(&config_path, &config).unwrap();
    set_technician(&config_path, "tech", OWN, false).unwrap();
    let edge = EdgeProc::start(dir.path(), "edge", &config).unwrap();
    let started = std::time::Instant::now();
    let pid = edge.proc.pid();

    let mut b = Browser::launch(1280, 900).unwrap();
    let downloads = dir.path().join("downloads");
    std::fs::create_dir_all(&downloads).unwrap();
    b.allow_downloads(&downloads).unwrap();
    b.goto(&format!("{}/", edge.web)).unwrap();
    wait_js(&mut b, &edge, "the login form", "!document.getElementById('login').hidden");
    fill_form(&mut b, "#login", &[("user", "tech"), ("password", OWN)]);
    b.click("#login button").unwrap();
    wait_js(
        &mut b,
        &edge,
        "front streams",
        "!!document.querySelector('.cam[data-camera=\"front\"][data-state=\"streaming\"]')",
    );
    wait_js(&mut b, &edge, "the storage figures", "!!document.querySelector('#storage dd')");
    let weight = b
        .eval(
            "(() => { const all = [...performance.getEntriesByType('navigation'), ...performance.getEntriesByType('resource')]; \
             return { bytes: all.reduce((n, e) => n + e.transferSize, 0), urls: all.map(e => e.name) }; })()",
        )
        .unwrap();
    let bytes = weight["bytes"].as_u64().unwrap();
    assert!(bytes > 5_000 && bytes <= 300_000, "the dashboard transferred {bytes} bytes: {weight}");
    let urls = weight["urls"].as_array().unwrap();
    assert!(urls.iter().all(|u| u.as_str().unwrap().starts_with(&edge.web)), "external resources: {weight}");

    // Live: the unit's own fMP4 socket into central's player; the picture advances.
    b.click(".cam[data-camera=\"front\"] button.live").unwrap();
    let first = wait_playing(&mut b, &edge, "front", 0.0);
    assert_eq!((first["w"].as_u64(), first["h"].as_u64()), (Some(640), Some(360)), "{first}");
    let later = wait_playing(&mut b, &edge, "front", first["t"].as_f64().unwrap() + 1.0);
    assert!(later["behind"].as_f64().unwrap() < 1.5, "the view stays near the live edge: {later}");

    // H.265: said plainly where the picture would be.
    wait_js(
        &mut b,
        &edge,
        "cab streams",
        "!!document.querySelector('.cam[data-camera=\"cab\"][data-state=\"streaming\"]')",
    );
    b.click(".cam[data-camera=\"cab\"] button.live").unwrap();
    let cab = wait_js(
        &mut b,
        &edge,
        "the H.265 camera's message",
        &format!("(() => {{ const s = {}; return s && s.unsupported ? s : null; }})()", card_video("cab")),
    );
    assert!(cab["unsupported"].as_str().unwrap().contains("cannot play H.265"), "{cab}");

    // Snapshot: a PNG of the picture, made in the browser, downloaded.
    b.click(".cam[data-camera=\"front\"] button.snapshot").unwrap();
    let png = wait_until("the snapshot download", T, || {
        std::fs::read_dir(&downloads).ok()?.flatten().find_map(|e| {
            let bytes = std::fs::read(e.path()).ok()?;
            (bytes.starts_with(b"\x89PNG\r\n\x1a\n") && bytes.len() > 24 && bytes.ends_with(b"IEND\xaeB`\x82"))
                .then_some(bytes)
        })
    })
    .unwrap();
    let size = |at: usize| u32::from_be_bytes(png[at..at + 4].try_into().unwrap());
    assert_eq!((size(16), size(20)), (640, 360), "the snapshot has the camera's size");

    // A camera added in the page from GStreamer's RTSP server: live at once, same process.
    let mut tech = TechClient::new(&edge.web);
    assert_eq!(tech.login("tech", OWN).unwrap().code, 200);
    let front_frames = |tech: &mut TechClient| {
        camera(&tech.call("/api/status", None).unwrap().body["cameras"], "front")["frames_recorded"].as_u64().unwrap()
    };
    let added_at = now_us();
    b.click("#addcam summary").unwrap();
    fill_form(&mut b, "#addcam form", &[("id", "side"), ("name", "Side door"), ("url", &format!("{gst}/side"))]);
    b.click("#addcam button:not([type=button])").unwrap();
    let said = wait_js(
        &mut b,
        &edge,
        "the page says the camera started",
        "(() => { const t = document.getElementById('probeout').textContent; return t.includes('added') ? t : null; })()",
    );
    assert!(said.as_str().unwrap().contains("applied now: started side"), "{said}");
    wait_js(
        &mut b,
        &edge,
        "side streams",
        "!!document.querySelector('.cam[data-camera=\"side\"][data-state=\"streaming\"]')",
    );
    assert!(b.eval("document.getElementById('restart').hidden").unwrap() == Value::Bool(true), "no restart asked for");
    b.click(".cam[data-camera=\"side\"] button.live").unwrap();
    let side = wait_playing(&mut b, &edge, "side", 0.0);
    assert_eq!((side["w"].as_u64(), side["h"].as_u64()), (Some(640), Some(360)), "{side}");
    let d = tech.call("/api/dashboard", None).unwrap().body;
    assert!(d["uptime_s"].as_u64().unwrap() + 1 >= started.elapsed().as_secs(), "the unit did not restart: {d}");
    assert!(Path::new(&format!("/proc/{pid}")).exists() && edge.proc.pid() == pid);
    if std::env::var_os("CONVOY_UPDATE_SCREENSHOTS").is_some() {
        let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs");
        b.screenshot(&docs.join("demo-edge.png")).unwrap();
        b.page(
            "Emulation.setDeviceMetricsOverride",
            serde_json::json!({ "width": 390, "height": 844, "deviceScaleFactor": 1, "mobile": true }),
        )
        .unwrap();
        let scroll = b.eval("document.documentElement.scrollWidth").unwrap();
        assert!(scroll.as_u64().unwrap() <= 390, "the page scrolls sideways on a phone: {scroll}");
        let shot = b.page("Page.captureScreenshot", serde_json::json!({ "format": "png" })).unwrap();
        use base64::Engine as _;
        let phone = base64::prelude::BASE64_STANDARD.decode(shot["data"].as_str().unwrap()).unwrap();
        std::fs::write(docs.join("demo-edge-phone.png"), phone).unwrap();
        b.page(
            "Emulation.setDeviceMetricsOverride",
            serde_json::json!({ "width": 1280, "height": 900, "deviceScaleFactor": 1, "mobile": false }),
        )
        .unwrap();
    }

    // Changed: only that camera restarts. Invalid: refused, nothing changes.
    let before_change = b.eval(&card_video("side")).unwrap()["t"].as_f64().unwrap();
    // In the page: Edit fills the form with the camera (its id fixed), Add sends the change.
    b.click(".cam[data-camera=\"side\"] button.edit").unwrap();
    wait_js(
        &mut b,
        &edge,
        "the edit form",
        "(() => { const f = document.querySelector('#addcam form').elements; return f.id.value === 'side' && f.id.readOnly \
         && f.name.value === 'Side door'; })()",
    );
    fill_form(&mut b, "#addcam form", &[("name", "Side entrance")]);
    b.click("#addcam button:not([type=button])").unwrap();
    let said = wait_js(
        &mut b,
        &edge,
        "the page says the camera restarted",
        "(() => { const t = document.getElementById('probeout').textContent; return t.includes('changed') ? t : null; })()",
    );
    assert!(said.as_str().unwrap().contains("applied now: restarted side"), "{said}");
    let (code, body) =
        tech_send(&tech, "PATCH", "/api/cameras/side", Some(serde_json::json!({ "name": "Side entrance" })));
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["applied"], serde_json::json!({ "added": [], "changed": [], "removed": [] }), "no change: {body}");
    assert_eq!(body["restart_required"], false);
    let (code, body) = tech_send(&tech, "PATCH", "/api/cameras/side", Some(serde_json::json!({ "mode": "schedule" })));
    assert_eq!(code, 400, "schedule mode without a schedule is refused: {body}");
    assert!(std::fs::read_to_string(&config_path).unwrap().contains("Side entrance"));
    wait_until("side streams again under its new name", T, || {
        let s = tech.call("/api/status", None).ok()?.body;
        let side = camera(&s["cameras"], "side");
        (side["state"] == "streaming" && side["name"] == "Side entrance").then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", edge.proc.log_tail()));
    // The page's live view of it goes on across the restart (the same live hub, a new stream).
    let after = wait_playing(&mut b, &edge, "side", before_change + 1.0);
    assert_eq!(after["w"].as_u64(), Some(640), "{after}");

    // Removed: that camera stops (its page view ends), the others go on.
    let (code, body) = tech_send(&tech, "DELETE", "/api/cameras/side", None);
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["applied"]["removed"], serde_json::json!(["side"]), "{body}");
    let removed_at = now_us();
    let s = tech.call("/api/status", None).unwrap().body;
    assert!(camera(&s["cameras"], "side").is_null(), "{s}");
    wait_js(&mut b, &edge, "side's card goes", "!document.querySelector('.cam[data-camera=\"side\"]')");
    // Front records on for a while after the change.
    let frames = front_frames(&mut tech);
    wait_until("front records 50 more frames", T, || (front_frames(&mut tech) >= frames + 50).then_some(())).unwrap();
    let now_at = b.eval(&card_video("front")).unwrap()["t"].as_f64().unwrap();
    let later = wait_playing(&mut b, &edge, "front", now_at);
    assert!(later["w"].as_u64() == Some(640), "front's live view went on: {later}");
    let status = tech.call("/api/status", None).unwrap().body;
    assert_eq!(camera(&status["cameras"], "front")["frames_lost"], 0, "{status}");
    drop(b);
    let mut edge = edge;
    edge.proc.stop(T).unwrap();

    // In the store: front without a gap across the changes; side only while it was configured.
    let front_frames = hil_tests::recording_media::stored_frames(&store, "front");
    let around: Vec<i64> = front_frames
        .iter()
        .map(|f| f.wall_us)
        .filter(|&t| t >= added_at - 2_000_000 && t <= removed_at + 1_000_000)
        .collect();
    assert!(around.first().is_some_and(|&t| t < added_at) && around.last().is_some_and(|&t| t > removed_at));
    let gap = around.windows(2).map(|w| w[1] - w[0]).max().unwrap();
    assert!(gap < 1_000_000, "front's recording has a gap of {gap} µs across the camera changes");
    let side_frames = hil_tests::recording_media::stored_frames(&store, "side");
    assert!(side_frames.len() > 25, "side recorded {} frames", side_frames.len());
    assert!(side_frames.first().unwrap().wall_us >= added_at, "side recorded only after it was added");
    assert!(side_frames.last().unwrap().wall_us <= removed_at, "side stopped recording when it was removed");
}

/// Issue #7, second slice: the Central panel with a real central over QUIC: its state, last
/// connection and the bytes central has not acknowledged, and the link test (latency and
/// upload throughput through central) from the page, refused plainly once central is gone.
#[test]
fn the_dashboard_shows_the_link_to_central_and_tests_it() {
    let dir = tempfile::tempdir().unwrap();
    let (_camera, rtsp) = sim_camera(dir.path(), &["front"], 0).unwrap();
    let mut central = hil_tests::CentralProc::start(dir.path(), 0).unwrap();
    let config = edge_config(
        "bus-0012",
        &dir.path().join("store"),
        Some((&central.quic, &central.fingerprint)),
        &[("front", &format!("{rtsp}/front"))],
    );
    let edge = EdgeProc::start_enrolled(dir.path(), "edge", &config, "bus-0012", &central).unwrap();
    set_technician(&dir.path().join("edge.toml"), "tech", OWN, false).unwrap();
    let mut tech = TechClient::new(&edge.web);
    assert_eq!(tech.login("tech", OWN).unwrap().code, 200);
    let d = wait_until("central connected and recordings not yet at central", T, || {
        let d = tech.call("/api/dashboard", None).ok()?.body;
        (d["central"]["state"] == "connected" && d["central"]["pending_bytes"].as_u64()? > 0).then_some(d)
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", edge.proc.log_tail()));
    assert!(d["central"]["last_connected"].is_string(), "{d}");
    assert_eq!(d["central"]["address"], central.quic.as_str());

    // The link test through the API: latency and throughput over loopback.
    let test = tech.call("/api/link-test", Some(serde_json::json!({}))).unwrap();
    assert_eq!(test.code, 200, "{:?}\n{}", test.body, edge.proc.log_tail());
    let r = &test.body;
    let ping = r["ping_ms"].as_f64().unwrap();
    assert!(ping > 0.0 && ping < 1000.0, "{r}");
    assert!(r["quic_rtt_ms"].as_f64().unwrap() >= 0.0, "{r}");
    assert!(r["upload_bytes"].as_u64().unwrap() >= 128 * 1024, "{r}");
    assert!(r["upload_bps"].as_u64().unwrap() > 1_000_000, "loopback carries more than 1 Mb/s: {r}");
    assert!(r["upload_seconds"].as_f64().unwrap() > 0.0, "{r}");
    assert!(r["download_bps"].as_u64().unwrap_or(0) > 1_000_000, "loopback carries more than 1 Mb/s down: {r}");

    // The same from the page.
    let mut b = Browser::launch(1280, 900).unwrap();
    b.goto(&format!("{}/", edge.web)).unwrap();
    wait_js(&mut b, &edge, "the login form", "!document.getElementById('login').hidden");
    fill_form(&mut b, "#login", &[("user", "tech"), ("password", OWN)]);
    b.click("#login button").unwrap();
    wait_js(
        &mut b,
        &edge,
        "the Central panel",
        "document.getElementById('central').textContent.includes('Not yet at central')",
    );
    b.click("#linktest").unwrap();
    let shown = wait_js(
        &mut b,
        &edge,
        "the link test's result",
        "(() => { const o = document.getElementById('linkresult'); return o.dataset.done ? [o.dataset.done, o.textContent] : null; })()",
    );
    assert_eq!(shown[0], "ok", "{shown}");
    let text = shown[1].as_str().unwrap();
    assert!(text.contains("Latency") && text.contains(" ms") && text.contains("Mb/s"), "{text}");
    assert!(text.contains("download") && !text.contains("not measured"), "{text}");

    // Without central: said plainly.
    central.proc.kill();
    wait_until("the unit notices central is gone", T, || {
        (tech.call("/api/dashboard", None).ok()?.body["central"]["state"] == "disconnected").then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", edge.proc.log_tail()));
    let refused = tech.call("/api/link-test", Some(serde_json::json!({}))).unwrap();
    assert_eq!(refused.code, 409, "{:?}", refused.body);
    assert!(refused.body["error"].as_str().unwrap().contains("not connected"), "{:?}", refused.body);
}
