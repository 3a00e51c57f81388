//! Administration over central's API, with a real unit: an administrator adds a unit (its
//! enrollment token works with `edge enroll`) and revokes it (cut off at once, then refused);
//! makes and revokes a user's bearer tokens and removes a user. Operators may do none of it,
//! and the audit log records it all.

use std::time::Duration;

use hil_tests::{CentralProc, EdgeProc, edge_config, edge_enroll, sim_camera, wait_until};
use serde_json::{Value, json};

const T: Duration = Duration::from_secs(45);

/// Status and JSON body (or null) of a request, whatever the status.
fn answer(r: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> (u16, Value) {
    let mut r = r.unwrap();
    (r.status().as_u16(), r.body_mut().read_json().unwrap_or(Value::Null))
}

fn post(central: &CentralProc, token: &str, path: &str, body: Value) -> (u16, Value) {
    let api = central.api.with_token(token);
    answer(api.post(&format!("{}{path}", central.web)).config().http_status_as_error(false).build().send_json(body))
}

fn delete(central: &CentralProc, token: &str, path: &str) -> (u16, Value) {
    let api = central.api.with_token(token);
    answer(api.delete(&format!("{}{path}", central.web)).config().http_status_as_error(false).build().call())
}

fn patch(central: &CentralProc, token: &str, path: &str, body: Value) -> (u16, Value) {
    let api = central.api.with_token(token);
    answer(api.patch(&format!("{}{path}", central.web)).config().http_status_as_error(false).build().send_json(body))
}

fn get(central: &CentralProc, token: &str, path: &str) -> (u16, Value) {
    let api = central.api.with_token(token);
    answer(api.get(&format!("{}{path}", central.web)).config().http_status_as_error(false).build().call())
}

#[test]
fn administrators_add_and_revoke_units_and_manage_users_and_tokens_over_the_api() {
    let dir = tempfile::tempdir().unwrap();
    let (_cam, rtsp) = sim_camera(dir.path(), &["front"], 0).unwrap();
    let central = CentralProc::start(dir.path(), 0).unwrap();
    let admin = central.api.token.clone();
    central.add_user("olga", "operator", "a long enough password", &[]).unwrap();
    let olga = central.create_token("olga").unwrap();

    // Only administrators add units; the token enrolls the unit, which connects.
    assert_eq!(post(&central, &olga, "/api/units", json!({ "name": "bus-9" })).0, 403);
    assert_eq!(post(&central, &admin, "/api/units", json!({ "name": "" })).0, 422);
    central.add_user("adam", "administrator", "a long enough password", &["bus-1"]).unwrap();
    let adam = central.create_token("adam").unwrap();
    assert_eq!(post(&central, &adam, "/api/units", json!({ "name": "bus-9" })).0, 403, "not one of adam's units");
    assert_eq!(post(&central, &admin, "/api/units", json!({ "name": "bus-9", "valid_hours": 0 })).0, 400);
    let (status, added) = post(&central, &admin, "/api/units", json!({ "name": "bus-9", "valid_hours": 2 }));
    assert_eq!(status, 201, "{added}");
    let token = added["token"].as_str().unwrap();
    assert!(token.starts_with("cvy1-") && added["unit"] == "bus-9" && added["expires"].is_string(), "{added}");
    let config = edge_config(
        "bus-9",
        &dir.path().join("store"),
        Some((&central.quic, &central.fingerprint)),
        &[("front", &format!("{rtsp}/front"))],
    );
    let config_path = dir.path().join("edge.toml");
    std::fs::write(&config_path, &config).unwrap();
    edge_enroll(&config_path, &central.quic, token).unwrap();
    let edge = EdgeProc::start(dir.path(), "edge", &config).unwrap();
    wait_until("bus-9 is connected", T, || (edge.status().ok()?["central_connected"] == true).then_some(())).unwrap();

    // Renamed for operators: the fleet list shows the name, the id stays; only administrators
    // of the unit may; nonsense is refused; cleared, the id shows again.
    let name_of = |token: &str| -> Value {
        let (_, units) = get(&central, token, "/api/units");
        units.as_array().unwrap().iter().find(|u| u["id"] == "bus-9").map_or(Value::Null, |u| u["name"].clone())
    };
    assert_eq!(name_of(&admin), "bus-9", "a unit is shown by its id until named");
    assert_eq!(patch(&central, &olga, "/api/units/bus-9", json!({ "name": "Coach 3" })).0, 403);
    assert_eq!(patch(&central, &adam, "/api/units/bus-9", json!({ "name": "Coach 3" })).0, 403, "not adam's unit");
    assert_eq!(patch(&central, &admin, "/api/units/bus-77", json!({ "name": "Coach 3" })).0, 404);
    assert_eq!(patch(&central, &admin, "/api/units/bus-9", json!({ "name": "x".repeat(81) })).0, 422);
    assert_eq!(patch(&central, &admin, "/api/units/bus-9", json!({ "name": "a\nb" })).0, 422);
    let (status, renamed) = patch(&central, &admin, "/api/units/bus-9", json!({ "name": " Route 7, coach 3 " }));
    assert_eq!((status, renamed), (200, json!({ "unit": "bus-9", "name": "Route 7, coach 3" })));
    assert_eq!(name_of(&olga), "Route 7, coach 3", "every operator sees the name");
    assert_eq!(patch(&central, &admin, "/api/units/bus-9", json!({ "name": null })).0, 200);
    assert_eq!(name_of(&admin), "bus-9");
    assert_eq!(patch(&central, &admin, "/api/units/bus-9", json!({ "name": "Coach 3" })).0, 200);

    // Revoked over the API while connected: cut off at once, then refused.
    assert_eq!(post(&central, &olga, "/api/units/bus-9/revoke", json!({})).0, 403);
    assert_eq!(post(&central, &admin, "/api/units/bus-77/revoke", json!({})).0, 404);
    let (status, revoked) = post(&central, &admin, "/api/units/bus-9/revoke", json!({}));
    assert_eq!((status, &revoked["revoked"]), (200, &json!(true)), "{revoked}");
    let error = wait_until("the unit is cut off", T, || {
        let s = edge.status().ok()?;
        (s["central_connected"] == false).then(|| s["central_error"].as_str().unwrap_or_default().to_owned())
    })
    .unwrap();
    assert!(error.contains("revoked"), "{error}");
    wait_until("the unit is refused on reconnecting", T, || {
        edge.status().ok()?["central_error"].as_str()?.contains("refused").then_some(())
    })
    .unwrap();

    // Tokens for a user: made, working, revoked; the user removed, its tokens with it.
    let (status, _) = post(
        &central,
        &admin,
        "/api/users",
        json!({ "name": "ann", "role": "viewer", "password": "ann's long password" }),
    );
    assert_eq!(status, 201);
    assert_eq!(post(&central, &olga, "/api/users/ann/tokens", json!({})).0, 403);
    assert_eq!(post(&central, &admin, "/api/users/nobody/tokens", json!({})).0, 404);
    let (status, made) = post(&central, &admin, "/api/users/ann/tokens", json!({}));
    assert_eq!(status, 201, "{made}");
    let ann = made["token"].as_str().unwrap().to_owned();
    assert_eq!(get(&central, &ann, "/api/me").1["name"], "ann");
    assert_eq!(delete(&central, &olga, "/api/users/ann/tokens").0, 403);
    assert_eq!(delete(&central, &admin, "/api/users/ann/tokens"), (200, json!({ "user": "ann", "revoked": 1 })));
    assert_eq!(get(&central, &ann, "/api/me").0, 401, "a revoked token no longer works");
    let ann = post(&central, &admin, "/api/users/ann/tokens", json!({})).1["token"].as_str().unwrap().to_owned();
    assert_eq!(get(&central, &ann, "/api/me").0, 200);
    assert_eq!(delete(&central, &olga, "/api/users/ann").0, 403);
    assert_eq!(delete(&central, &admin, "/api/users/admin").0, 409, "not oneself");
    assert_eq!(delete(&central, &admin, "/api/users/ann").0, 204);
    assert_eq!(get(&central, &ann, "/api/me").0, 401, "a removed user's token no longer works");
    assert_eq!(delete(&central, &admin, "/api/users/ann").0, 404);
    let users = central.get_json(&format!("{}/api/users", central.web)).unwrap();
    assert!(!users.to_string().contains("\"ann\""), "{users}");

    // The audit log has it all, and never a token.
    let audit = central.get_json(&format!("{}/api/audit?limit=1000", central.web)).unwrap();
    for action in ["unit_added", "unit_renamed", "unit_revoked", "token_created", "tokens_revoked", "user_removed"] {
        assert!(
            audit.as_array().unwrap().iter().any(|e| e["action"] == action && e["user"] == "admin"),
            "{action}: {audit}"
        );
    }
    assert!(!audit.to_string().contains(token) && !audit.to_string().contains(&ann), "no token in the audit log");
}
