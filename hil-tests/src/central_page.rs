//! Central's operator page as the browser tests drive it, in either browser ([`WebPage`]):
//! logging in through its form, polling it, and reading a camera tile's video.

use std::time::Duration;

use serde_json::{Value, json};

use crate::wait_until;
use crate::web_page::WebPage;

/// How long [`wait_js`] polls.
pub const PAGE_WAIT: Duration = Duration::from_secs(45);

/// Polls a JavaScript expression in central's page until it returns something that is not
/// `null`/`false`; on timeout, panics with the page's status line and camera grid.
pub fn wait_js(b: &mut impl WebPage, what: &str, expression: &str) -> Value {
    wait_until(what, PAGE_WAIT, || b.eval(expression).ok().filter(|v| !v.is_null() && *v != json!(false)))
        .unwrap_or_else(|e| {
            let page =
                b.eval("[document.getElementById('status').textContent, document.getElementById('grid').innerHTML]");
            panic!("{e} in {}; page: {page:?}", b.browser_name())
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
