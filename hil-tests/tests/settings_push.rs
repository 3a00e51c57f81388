//! Camera settings set at central and pushed to a unit (protocol version 3), with real
//! processes on loopback and GStreamer's RTSP server as the cameras: a fleet profile assigned
//! while the unit is away reaches it when it connects (central then shows it up to date); a
//! profile whose recording options lack "remote" stops the unit recording that camera; the
//! technician's changes on the unit are reported to central; where central's settings set the
//! same field, central wins and both sides say so; the settings survive a SIGKILL of the unit.

use std::time::Duration;

use hil_tests::browser::Browser;
use hil_tests::central_page::log_in;
use hil_tests::{CentralProc, EdgeProc, edge_config, gst_camera, wait_until};
use serde_json::{Value, json};

const T: Duration = Duration::from_secs(60);

/// `method` `url` with a JSON body as central's administrator (or `token`'s user): status and
/// JSON answer.
fn send(central: &CentralProc, method: &str, url: &str, body: Value, token: Option<&str>) -> (u16, Value) {
    let url = format!("{}{url}", central.web);
    let request = match token {
        None => match method {
            "PUT" => central.put(&url),
            _ => central.post(&url),
        },
        Some(t) => ureq::put(&url).header("Authorization", &format!("Bearer {t}")),
    };
    let mut response = request.config().http_status_as_error(false).build().send_json(body).unwrap();
    let code = response.status().as_u16();
    (code, response.body_mut().read_json().unwrap_or(Value::Null))
}

/// `PATCH` on the unit's local API (no technician account: open on loopback).
fn patch(edge: &EdgeProc, path: &str, body: Value) -> (u16, Value) {
    let request = ureq::http::Request::builder()
        .method("PATCH")
        .uri(format!("{}{path}", edge.web))
        .header("Content-Type", "application/json")
        .body(body.to_string())
        .unwrap();
    let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
    let mut response = agent.run(request).unwrap();
    let code = response.status().as_u16();
    (code, response.body_mut().read_json().unwrap_or(Value::Null))
}

/// The unit's settings at central (null until the unit's first hello registers it).
fn settings(central: &CentralProc) -> Value {
    central.get_json(&format!("{}/api/units/bus-1/settings", central.web)).unwrap_or(Value::Null)
}

fn camera<'a>(status: &'a Value, id: &str) -> &'a Value {
    status["cameras"].as_array().and_then(|a| a.iter().find(|c| c["id"] == id)).unwrap_or(&Value::Null)
}

fn fleet_says_up_to_date(central: &CentralProc) -> Value {
    let units = central.get_json(&format!("{}/api/units", central.web)).unwrap();
    units.as_array().unwrap().iter().find(|u| u["id"] == "bus-1").unwrap()["settings_up_to_date"].clone()
}

fn wait_up_to_date(central: &CentralProc, edge: &EdgeProc, revision_above: u64) -> Value {
    wait_until("central shows the unit's settings up to date", T, || {
        let s = settings(central);
        (s["up_to_date"] == true && s["revision"].as_u64() > Some(revision_above)).then_some(s)
    })
    .unwrap_or_else(|e| panic!("{e}\n{}\n{}", central.proc.log_tail(), edge.proc.log_tail()))
}

/// Polls a JavaScript expression in a page (central's or the unit's) until it is neither null nor false.
fn wait_js(b: &mut Browser, what: &str, expression: &str) -> Value {
    wait_until(what, T, || b.eval(expression).ok().filter(|v| !v.is_null() && *v != json!(false)))
        .unwrap_or_else(|e| panic!("{e}; page: {:?}", b.eval("document.body.innerText")))
}

/// Central's page in headless Chromium, logged in as the administrator: the unit's settings
/// indicator says `want`, and the profiles editor lists `profile` with the unit.
fn page_shows(central: &CentralProc, want: &str, profile: &str) {
    let mut b = Browser::launch(1280, 1000).unwrap();
    b.goto(&format!("{}/", central.web)).unwrap();
    log_in(&mut b, "admin", &central.admin_password().unwrap());
    let shown = wait_js(
        &mut b,
        "the unit's settings indicator",
        "(document.querySelector('tr[data-unit=\"bus-1\"] td.settings') || {}).textContent",
    );
    assert_eq!(shown, want);
    let units = wait_js(
        &mut b,
        "the profile in the editor",
        &format!("(document.querySelector('tr[data-profile=\"{profile}\"]') || {{}}).textContent"),
    );
    assert!(units.as_str().unwrap().contains("bus-1"), "{units}");
}

#[test]
fn profiles_reach_the_unit_and_the_technicians_changes_reach_central() {
    let dir = tempfile::tempdir().unwrap();
    let (_cam, rtsp) = gst_camera(dir.path(), &["front", "cabin"], &[]).unwrap();
    let mut central = CentralProc::start(dir.path(), 0).unwrap();
    let store = dir.path().join("store");
    let config = edge_config(
        "bus-1",
        &store,
        Some((&central.quic, &central.fingerprint)),
        &[("front", &format!("{rtsp}/front")), ("cabin", &format!("{rtsp}/cabin"))],
    );
    let mut edge = EdgeProc::start_enrolled(dir.path(), "edge", &config, "bus-1", &central).unwrap();

    // Without a profile the unit gets central's recording options (the defaults: it records).
    let first = wait_up_to_date(&central, &edge, 0);
    assert_eq!(first["profile"], Value::Null, "{first}");
    assert_eq!(first["unit_protocol"], protocol::PROTOCOL_VERSION, "the unit's own version: {first}");
    assert_eq!(first["note"], Value::Null, "{first}");
    assert_eq!(fleet_says_up_to_date(&central), true);
    let first_revision = first["revision"].as_u64().unwrap();

    // Administrators only.
    central.add_user("olga", "operator", "operator-password-1", &[]).unwrap();
    let token = central.create_token("olga").unwrap();
    let (code, _) = send(&central, "PUT", "/api/profiles/buses", json!({ "cameras": {} }), Some(&token));
    assert_eq!(code, 403);
    // Refusals say what is wrong.
    let (code, body) =
        send(&central, "PUT", "/api/profiles/buses", json!({ "cameras": { "*": { "url": "rtsp://x/" } } }), None);
    assert_eq!(code, 400, "{body}");
    let (code, body) =
        send(&central, "PUT", "/api/profiles/buses", json!({ "cameras": { "*": { "mode": "sometimes" } } }), None);
    assert_eq!(code, 422, "{body}");
    assert!(body["error"].as_str().unwrap().contains("mode"), "{body}");
    let (code, body) = send(&central, "PUT", "/api/units/bus-1/profile", json!({ "profile": "nope" }), None);
    assert_eq!(code, 422, "{body}");

    // The unit goes away; a profile is made and assigned meanwhile.
    edge.proc.stop(T).unwrap();
    let profile = json!({ "cameras": {
        "*": { "pre_buffer_s": 3, "motion": true, "motion_sensitivity": 7 },
        "cabin": { "recording": ["none"] },
    } });
    let (code, body) = send(&central, "PUT", "/api/profiles/buses", profile, None);
    assert_eq!(code, 200, "{body}");
    let (code, assigned) = send(
        &central,
        "PUT",
        "/api/units/bus-1/profile",
        json!({ "profile": "buses", "overrides": { "front": { "post_buffer_s": 4 } } }),
        None,
    );
    assert_eq!(code, 200, "{assigned}");
    assert_eq!(assigned["up_to_date"], false, "the unit is away: {assigned}");
    assert_eq!(assigned["cameras"]["cabin"]["recording"], json!(["none"]), "{assigned}");
    assert_eq!(assigned["cameras"]["front"]["post_buffer_s"], 4.0, "{assigned}");
    assert_eq!(assigned["cameras"]["front"]["pre_buffer_s"], 3.0, "{assigned}");
    assert_eq!(fleet_says_up_to_date(&central), false);
    page_shows(&central, "settings: pending", "buses");
    // A unit added but not yet connected gets its profile at its first connection; an unknown
    // unit is refused.
    central.add_unit("bus-9").unwrap();
    let (code, body) = send(&central, "PUT", "/api/units/bus-9/profile", json!({ "profile": "buses" }), None);
    assert_eq!((code, body["up_to_date"].as_bool()), (200, Some(false)), "{body}");
    let (code, body) = send(&central, "PUT", "/api/units/bus-404/profile", json!({ "profile": "buses" }), None);
    assert_eq!(code, 404, "{body}");
    let listed = central.get_json(&format!("{}/api/profiles", central.web)).unwrap();
    assert_eq!(listed["profiles"][0]["units"], json!(["bus-1", "bus-9"]), "{listed}");
    let audit = central.get_json(&format!("{}/api/audit?q=profile", central.web)).unwrap();
    assert!(audit.to_string().contains("unit_profile_set"), "audited: {audit}");

    // It comes back: the settings apply, the cabin stops recording, central shows it done.
    edge = EdgeProc::start(dir.path(), "edge", &config).unwrap();
    let applied = wait_up_to_date(&central, &edge, first_revision);
    assert_eq!(applied["applied_revision"], applied["revision"]);
    assert_eq!(fleet_says_up_to_date(&central), true);
    page_shows(&central, "settings: up to date", "buses");
    let status = wait_until("the cabin is off and the front records", T, || {
        let s = edge.status().ok()?;
        (camera(&s, "cabin")["mode"] == "off" && camera(&s, "front")["recording"] == true).then_some(s)
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", edge.proc.log_tail()));
    assert_eq!(camera(&status, "cabin")["recording_reason"], "recording off: set at central", "{status}");
    assert_eq!(camera(&status, "cabin")["recording"], false, "{status}");
    assert_eq!(camera(&status, "front")["recording_reason"], Value::Null, "{status}");
    // While the front records 50 more frames the cabin records none.
    let cabin_frames = camera(&status, "cabin")["frames_recorded"].as_u64().unwrap();
    let front_frames = camera(&status, "front")["frames_recorded"].as_u64().unwrap();
    let later = wait_until("the front records on", T, || {
        let s = edge.status().ok()?;
        (camera(&s, "front")["frames_recorded"].as_u64()? > front_frames + 50).then_some(s)
    })
    .unwrap();
    assert_eq!(camera(&later, "cabin")["frames_recorded"].as_u64(), Some(cabin_frames), "{later}");
    let cameras = hil_tests::get_json(&format!("{}/api/cameras", edge.web)).unwrap();
    let cabin = camera(&cameras, "cabin");
    assert_eq!((cabin["mode"].as_str(), cabin["effective_mode"].as_str()), (Some("continuous"), Some("off")));
    assert_eq!(cabin["central"]["label"], "set by central (profile buses)", "{cameras}");
    assert!(store.join("central-settings.json").exists());

    // A technician's change of a field central does not set applies and reaches central.
    let (code, body) = patch(&edge, "/api/cameras/front", json!({ "mode": "event" }));
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["overridden_by_central"], json!([]), "{body}");
    let reported = wait_until("central has the technician's change", T, || {
        let s = settings(&central);
        let changes = s["local_changes"].as_array()?.clone();
        changes.into_iter().find(|c| c["camera"] == "front" && c["field"] == "mode")
    })
    .unwrap_or_else(|e| panic!("{e}\n{}\n{}", central.proc.log_tail(), edge.proc.log_tail()));
    assert_eq!((reported["value"].as_str(), reported["overridden"].as_bool()), (Some("\"event\""), Some(false)));
    assert_eq!(camera(&edge.status().unwrap(), "front")["mode"], "event");
    wait_until("the change is in central's audit log", T, || {
        let audit = central.get_json(&format!("{}/api/audit?q=unit_local_change", central.web)).ok()?.to_string();
        (audit.contains("technician@bus-1") && audit.contains("mode")).then_some(())
    })
    .unwrap();

    // A change of a field central sets is overridden at once, and the page says so.
    let (code, body) = patch(&edge, "/api/cameras/front", json!({ "pre_buffer_s": 9.0 }));
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["overridden_by_central"], json!(["front.pre_buffer_s"]), "{body}");
    let cameras = hil_tests::get_json(&format!("{}/api/cameras", edge.web)).unwrap();
    let notice = cameras["notices"].as_array().unwrap().last().unwrap()["text"].as_str().unwrap().to_owned();
    assert!(
        notice.contains("your change to front.pre_buffer_s") && notice.contains("overridden by central"),
        "{notice}"
    );
    wait_until("central has the overridden change", T, || {
        let s = settings(&central);
        s["local_changes"]
            .as_array()?
            .iter()
            .any(|c| c["field"] == "pre_buffer_s" && c["overridden"] == true)
            .then_some(())
    })
    .unwrap();

    // Both changed: central now sets the front's mode too; central wins and both sides say so.
    let before = settings(&central)["revision"].as_u64().unwrap();
    let (code, body) = send(
        &central,
        "PUT",
        "/api/units/bus-1/profile",
        json!({ "profile": "buses", "overrides": { "front": { "post_buffer_s": 4, "mode": "continuous" } } }),
        None,
    );
    assert_eq!(code, 200, "{body}");
    let applied = wait_up_to_date(&central, &edge, before);
    let conflict = json!({ "camera": "front", "field": "mode", "local": "\"event\"", "central": "\"continuous\"" });
    assert_eq!(applied["conflicts"], json!([conflict]), "{applied}");
    assert_eq!(camera(&edge.status().unwrap(), "front")["mode"], "continuous");
    let unit_side = hil_tests::get_json(&format!("{}/api/central-settings", edge.web)).unwrap();
    assert_eq!(unit_side["conflicts"], json!([conflict]), "{unit_side}");
    assert!(
        unit_side["notices"].as_array().unwrap().iter().any(|n| n["text"]
            .as_str()
            .is_some_and(|t| t.starts_with("your change to front.mode") && t.contains("overridden by central"))),
        "{unit_side}"
    );

    // The unit's settings move to a replacement unit (added, not yet connected): the same
    // profile and overrides; not onto itself, not to an unknown unit.
    let (code, added) = send(&central, "POST", "/api/units", json!({ "name": "bus-2" }), None);
    assert_eq!(code, 201, "{added}");
    let (code, moved) = send(&central, "POST", "/api/units/bus-1/settings/copy", json!({ "to": "bus-2" }), None);
    assert_eq!(code, 200, "{moved}");
    let from = settings(&central);
    assert_eq!(moved["unit"], "bus-2", "{moved}");
    assert_eq!((&moved["profile"], &moved["overrides"]), (&from["profile"], &from["overrides"]), "{moved}");
    assert_eq!(send(&central, "POST", "/api/units/bus-1/settings/copy", json!({ "to": "bus-1" }), None).0, 422);
    assert_eq!(send(&central, "POST", "/api/units/bus-1/settings/copy", json!({ "to": "bus-77" }), None).0, 404);

    // The technician sees it on the unit's page: who sets each camera, and what was overridden.
    let mut b = Browser::launch(1280, 1000).unwrap();
    b.goto(&format!("{}/", edge.web)).unwrap();
    let shown = wait_js(
        &mut b,
        "the unit's page shows central's overrides",
        "(() => { const n = document.getElementById('central-notices'); \
         return n && !n.hidden && n.textContent.includes('overridden by central') ? n.textContent : null; })()",
    );
    assert!(shown.as_str().unwrap().contains("your change to front.mode"), "{shown}");
    drop(b);

    // Central's settings survive a SIGKILL of the unit: in force at once, central or not.
    central.proc.kill();
    edge.proc.kill();
    let edge = EdgeProc::start(dir.path(), "edge", &config).unwrap();
    let status = wait_until("the cameras start with central's settings", T, || {
        let s = edge.status().ok()?;
        (camera(&s, "front")["state"] != "connecting" || camera(&s, "cabin")["mode"] == "off").then_some(s)
    })
    .unwrap();
    assert_eq!(camera(&status, "cabin")["mode"], "off", "{status}");
    assert_eq!(camera(&status, "cabin")["recording_reason"], "recording off: set at central", "{status}");
}
