//! Central's operator page as the browser tests drive it, in either browser ([`WebPage`]):
//! logging in through its form, polling it, reading a camera tile's video, and the
//! administration panels with what viewers see.

use std::time::Duration;

use serde_json::{Value, json};

use crate::web_page::WebPage;
use crate::{CentralProc, wait_until};

/// How long [`wait_js`] polls.
pub const PAGE_WAIT: Duration = Duration::from_secs(45);

/// Polls a JavaScript expression in central's page until it returns something that is not
/// `null`/`false`; on timeout, panics with the page's status line and camera grid.
pub fn wait_js(b: &mut impl WebPage, what: &str, expression: &str) -> Value {
    wait_js_logs(b, what, expression, &[])
}

/// [`wait_js`], and on timeout also the last lines of `procs`' logs (the unit's and central's),
/// for waits that cross them (a live tile).
pub fn wait_js_logs(b: &mut impl WebPage, what: &str, expression: &str, procs: &[&crate::Proc]) -> Value {
    wait_until(what, PAGE_WAIT, || b.eval(expression).ok().filter(|v| !v.is_null() && *v != json!(false)))
        .unwrap_or_else(|e| {
            let page =
                b.eval("[document.getElementById('status').textContent, document.getElementById('grid').innerHTML]");
            let logs: String = procs.iter().map(|p| format!("\n{}", p.log_tail())).collect();
            panic!("{e} in {}; page: {page:?}{logs}", b.browser_name())
        })
}

/// Logs in through the page's form, clicking and typing as a user would, and waits for the
/// page to show who is logged in.
pub fn log_in(b: &mut impl WebPage, name: &str, password: &str) {
    wait_js(b, "the login form", "!document.getElementById('login').hidden");
    for (field, text) in [("#login-name", name), ("#login-password", password)] {
        b.click(field).unwrap();
        b.type_text(text).unwrap();
    }
    b.click("#login-submit").unwrap();
    let who = wait_js(
        b,
        "the page shows who is logged in",
        "document.getElementById('login').hidden && document.getElementById('whoami').textContent",
    );
    assert!(who.as_str().unwrap().contains(name), "{who}");
}

/// JavaScript for the `<video>` of a camera tile (time, size, its error, distance to the live
/// edge), or what the tile says instead of video.
pub fn tile_video(camera: &str) -> String {
    format!(
        "(() => {{ const t = document.querySelector('.tile[data-camera=\"{camera}\"]'); \
         const u = t && t.querySelector('.screen.unsupported'); if (u) return {{ unsupported: u.textContent }}; \
         const v = t && t.querySelector('video'); if (!v) return null; const b = v.buffered; \
         return {{ t: v.currentTime, w: v.videoWidth, h: v.videoHeight, error: v.error && v.error.message, \
         behind: b.length ? b.end(b.length - 1) - v.currentTime : null }}; }})()"
    )
}

/// Types `text` into the field `selector` after clicking it, as a user would.
fn fill(b: &mut impl WebPage, selector: &str, text: &str) {
    b.click(selector).unwrap();
    b.type_text(text).unwrap();
}

/// Central's administration panels as an administrator uses them, then the page as viewers see
/// it, in either browser. `central` has the unit `unit` connected with an alarm listed; the page
/// is logged in as its administrator `admin`.
///
/// - Fleet profiles: a profile saved with the editor's settings and assigned to `unit` through
///   the forms; the profile lists the unit and the fleet overview says when the unit has it.
/// - Users: a viewer of `unit` added, a bearer token made for it that the API accepts.
/// - Units: a unit added gets its one-time enrollment token.
/// - Audit: the search finds the profile changes and nothing else.
/// - The viewer sees no control it cannot use and cannot acknowledge alarms; a viewer of
///   another unit never sees `unit`, and the API refuses it `unit`'s live video.
pub fn administer_then_view(b: &mut impl WebPage, central: &CentralProc, unit: &str) {
    // A fleet profile made and assigned through the forms reaches the connected unit.
    wait_js(b, "the profiles panel", "document.getElementById('profiles-panel').offsetParent !== null");
    fill(b, "#profile-name", "buses");
    b.click("#profile-save").unwrap();
    wait_js(
        b,
        "the profile is saved",
        "document.getElementById('profile-status').textContent.startsWith('Saved buses')",
    );
    fill(b, "#assign-unit", unit);
    fill(b, "#assign-profile", "buses");
    b.click("#assign-save").unwrap();
    let said = wait_js(
        b,
        "the assignment is confirmed",
        &format!(
            "(() => {{ const t = document.getElementById('profile-status').textContent; \
             return t.startsWith('{unit}: revision') ? t : null; }})()"
        ),
    );
    eprintln!("profile assigned: {said}");
    wait_js(
        b,
        "the profile lists the unit",
        &format!(
            "(document.querySelector('tr[data-profile=\"buses\"]') || {{ textContent: '' }}).textContent.includes('{unit}')"
        ),
    );
    wait_js(
        b,
        "the fleet overview says the unit has its settings",
        &format!(
            "(document.querySelector('#units tr[data-unit=\"{unit}\"] .settings') || {{ textContent: '' }}).textContent \
             === 'settings: up to date'"
        ),
    );
    let assigned = central.get_json(&format!("{}/api/units/{unit}/settings", central.web)).unwrap();
    assert_eq!(assigned["profile"], json!("buses"), "{assigned}");

    // The audit search finds the profile changes, and only those.
    b.eval("document.getElementById('audit-q').value = ''; true").unwrap();
    fill(b, "#audit-q", "profile");
    wait_js(
        b,
        "the audit panel shows the profile changes",
        "(() => { const rows = [...document.querySelectorAll('#audit tr[data-action]')].map(r => r.dataset.action); \
         return rows.includes('profile_set') && rows.includes('unit_profile_set') \
         && rows.every(a => a.includes('profile')); })()",
    );

    // The administrator adds a viewer of the unit and makes a bearer token for it; a unit
    // added on the page gets its one-time enrollment token.
    for (field, text) in [("#user-name", "vic"), ("#user-password", "vic's long password"), ("#user-units", unit)] {
        fill(b, field, text);
    }
    b.click("#user-add").unwrap();
    wait_js(b, "the new user is listed", "!!document.querySelector('#users tr[data-user=\"vic\"]')");
    b.click("#users tr[data-user=\"vic\"] button.token").unwrap();
    let said = wait_js(
        b,
        "the page shows vic's new token",
        "(() => { const t = document.getElementById('user-status').textContent; return t.startsWith('Token for vic') ? t : null; })()",
    );
    let token = said.as_str().unwrap().rsplit(' ').next().unwrap();
    assert_eq!(central.api.with_token(token).get_json(&format!("{}/api/me", central.web)).unwrap()["name"], "vic");
    fill(b, "#unit-name", "bus-8");
    b.click("#unit-add").unwrap();
    wait_js(
        b,
        "the page shows bus-8's enrollment token",
        "(document.getElementById('unit-status').dataset.token || '').startsWith('cvy1-')",
    );

    // The viewer logs in and sees no control it cannot use, no users and no audit log.
    b.click("#logout").unwrap();
    wait_js(b, "the login form again", "!document.getElementById('login').hidden");
    log_in(b, "vic", "vic's long password");
    let hidden = b
        .eval(
            "['retrieve', 'export', 'users-panel', 'units-panel', 'profiles-panel', 'audit-panel'].map(id => \
             document.getElementById(id).offsetParent === null)",
        )
        .unwrap();
    assert_eq!(hidden, json!([true, true, true, true, true, true]), "controls a viewer cannot use are hidden");
    wait_js(b, "the viewer's alarm list", "!!document.querySelector('#alarms tr[data-event]')");
    let buttons = b.eval("document.querySelectorAll('#alarms button').length").unwrap();
    assert_eq!(buttons, json!(0), "a viewer cannot acknowledge or close alarms");
    wait_js(
        b,
        "the viewer's page shows the unit",
        &format!("!!document.querySelector('#units tr[data-unit=\"{unit}\"]')"),
    );

    // A viewer of another unit never sees this one, and the API refuses it to the browser.
    central.add_user("wes", "viewer", "wes's long password", &["bus-8"]).unwrap();
    b.click("#logout").unwrap();
    wait_js(b, "the login form again", "!document.getElementById('login').hidden");
    log_in(b, "wes", "wes's long password");
    wait_js(b, "the fleet is shown", "document.getElementById('updated').textContent.startsWith('Updated')");
    let seen = b.eval("document.querySelectorAll('#units tr[data-unit], .tile').length").unwrap();
    assert_eq!(seen, json!(0), "no unit and no camera of {unit}");
    let status = b.eval(&format!("fetch('/api/units/{unit}/cameras/front/live.fmp4').then(r => r.status)")).unwrap();
    assert_eq!(status, json!(403));
}
