//! A real headless Firefox driven over WebDriver BiDi, for tests of web pages: start it, open a
//! page, evaluate JavaScript, click and type with real input events, take screenshots.
//!
//! Needs Debian's `firefox-esr` (`/usr/bin/firefox-esr`, or the path in `CONVOY_FIREFOX`); no
//! geckodriver: Firefox speaks WebDriver BiDi itself on the WebSocket that
//! `--remote-debugging-port` opens (`ws://host:port/session`).

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use serde_json::{Map, Value, json};
use tungstenite::WebSocket;

use crate::browser_socket;

/// Preferences for a test profile: no first-run pages or update checks, video may play
/// without a click (the page still gets `userActivation` with every script).
const USER_JS: &str = r#"user_pref("browser.shell.checkDefaultBrowser", false);
user_pref("browser.startup.page", 0);
user_pref("browser.startup.homepage_override.mstone", "ignore");
user_pref("browser.aboutwelcome.enabled", false);
user_pref("datareporting.policy.dataSubmissionEnabled", false);
user_pref("toolkit.telemetry.reportingpolicy.firstRun", false);
user_pref("app.update.disabledForTesting", true);
user_pref("messaging-system.rsexperimentloader.enabled", false);
user_pref("media.autoplay.default", 0);
"#;

/// Preferences that make Firefox save every download into `dir` without asking (a file is
/// `NAME.part` until it is complete).
pub fn download_prefs(dir: &Path) -> Vec<(&'static str, Value)> {
    vec![
        ("browser.download.folderList", json!(2)),
        ("browser.download.dir", json!(dir)),
        ("browser.download.useDownloadDir", json!(true)),
        ("browser.download.always_ask_before_handling_new_types", json!(false)),
    ]
}

/// The Firefox binary: `CONVOY_FIREFOX` or `/usr/bin/firefox-esr`.
pub fn firefox_path() -> PathBuf {
    std::env::var_os("CONVOY_FIREFOX").map_or_else(|| PathBuf::from("/usr/bin/firefox-esr"), PathBuf::from)
}

/// A headless Firefox with one tab, in a WebDriver BiDi session.
pub struct Firefox {
    child: Child,
    socket: WebSocket<TcpStream>,
    context: String,
    version: String,
    next_id: u64,
    _profile: tempfile::TempDir,
}

impl Firefox {
    /// Starts Firefox headless with a fresh profile, opens a BiDi session and sets its tab's
    /// viewport to `width`×`height`.
    pub fn launch(width: u32, height: u32) -> anyhow::Result<Firefox> {
        Firefox::launch_with_prefs(width, height, &[])
    }

    /// [`Firefox::launch`] with more preferences in the profile (name, JSON value), e.g.
    /// `("media.ffmpeg.enabled", false)` for a Firefox without the system's video decoders.
    pub fn launch_with_prefs(width: u32, height: u32, prefs: &[(&str, Value)]) -> anyhow::Result<Firefox> {
        let profile = tempfile::tempdir()?;
        let mut user_js = USER_JS.to_owned();
        for (name, value) in prefs {
            user_js.push_str(&format!("user_pref({}, {value});\n", json!(name)));
        }
        std::fs::write(profile.path().join("user.js"), user_js)?;
        let mut child = Command::new(firefox_path())
            .args(["--headless", "--no-remote", "--remote-debugging-port", "0", "--profile"])
            .arg(profile.path())
            .arg("about:blank")
            .env("MOZ_CRASHREPORTER_DISABLE", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("cannot start {} (Debian package firefox-esr)", firefox_path().display()))?;
        let url = browser_socket::announced_url(&mut child, "WebDriver BiDi listening on ", "Firefox")?;
        let socket = browser_socket::connect(&format!("{}/session", url.trim_end_matches('/')))?;
        let mut firefox =
            Firefox { child, socket, context: String::new(), version: String::new(), next_id: 0, _profile: profile };
        let session = firefox.call("session.new", json!({ "capabilities": {} }))?;
        firefox.version = session["capabilities"]["browserVersion"].as_str().unwrap_or("?").to_owned();
        let tree = firefox.call("browsingContext.getTree", json!({ "maxDepth": 0 }))?;
        firefox.context = tree["contexts"][0]["context"].as_str().context("no top-level browsing context")?.to_owned();
        let context = firefox.context.clone();
        firefox.call(
            "browsingContext.setViewport",
            json!({ "context": context, "viewport": { "width": width, "height": height } }),
        )?;
        Ok(firefox)
    }

    /// Firefox's version, as its BiDi session reports it.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// Sends a BiDi command and waits for its answer; events in between are skipped.
    pub fn call(&mut self, method: &str, params: Value) -> anyhow::Result<Value> {
        self.next_id += 1;
        let id = self.next_id;
        let msg = json!({ "id": id, "method": method, "params": params });
        browser_socket::command(&mut self.socket, id, msg, method, |answer| {
            (answer["type"] == "error").then(|| format!("{}: {}", answer["error"], answer["message"]))
        })
    }

    /// Opens `url` and waits until the document has loaded.
    pub fn goto(&mut self, url: &str) -> anyhow::Result<()> {
        let context = self.context.clone();
        self.call("browsingContext.navigate", json!({ "context": context, "url": url, "wait": "complete" }))?;
        Ok(())
    }

    /// Evaluates JavaScript in the page as a user's action (promises are awaited) and returns
    /// its value as JSON (`undefined`, `NaN` and DOM objects as `null`); a thrown exception is
    /// an error.
    pub fn eval(&mut self, expression: &str) -> anyhow::Result<Value> {
        let context = self.context.clone();
        let r = self.call(
            "script.evaluate",
            json!({
                "expression": expression, "target": { "context": context }, "awaitPromise": true,
                "resultOwnership": "none", "userActivation": true
            }),
        )?;
        if r["type"] == "exception" {
            let details = &r["exceptionDetails"];
            return Err(anyhow!("{expression}: {}", details["text"].as_str().unwrap_or(&details.to_string())));
        }
        Ok(remote_value_to_json(&r["result"]))
    }

    /// Clicks the element `selector` finds, with real pointer events at its centre, once it
    /// stands still (a smooth scroll of the page may still be moving it).
    pub fn click(&mut self, selector: &str) -> anyhow::Result<()> {
        let at = self.eval(&format!(
            "(async () => {{ const e = document.querySelector({s}); if (!e) return null; \
             const frame = () => new Promise(r => requestAnimationFrame(r)); let last = null; \
             for (let i = 0; i < 120; i++) {{ e.scrollIntoView({{block: 'center'}}); await frame(); \
               const r = e.getBoundingClientRect(); const now = [r.left + r.width / 2, r.top + r.height / 2]; \
               if (last && last[0] === now[0] && last[1] === now[1]) return now; last = now; }} \
             return last; }})()",
            s = json!(selector)
        ))?;
        let (Some(x), Some(y)) = (at[0].as_f64(), at[1].as_f64()) else {
            bail!("nothing on the page matches {selector}")
        };
        self.click_at(x, y)
    }

    /// A left click at viewport coordinates (whole pixels: BiDi wants integers).
    pub fn click_at(&mut self, x: f64, y: f64) -> anyhow::Result<()> {
        let context = self.context.clone();
        self.call(
            "input.performActions",
            json!({ "context": context, "actions": [{
                "type": "pointer", "id": "mouse", "parameters": { "pointerType": "mouse" },
                "actions": [
                    { "type": "pointerMove", "x": x.round() as i64, "y": y.round() as i64, "origin": "viewport" },
                    { "type": "pointerDown", "button": 0 },
                    { "type": "pointerUp", "button": 0 }
                ]
            }] }),
        )?;
        Ok(())
    }

    /// Drags the mouse with the left button held from one point of the viewport to another
    /// (in a few steps, so the page sees it move).
    pub fn drag(&mut self, from: (f64, f64), to: (f64, f64)) -> anyhow::Result<()> {
        let at = |p: (f64, f64)| (p.0.round() as i64, p.1.round() as i64);
        let ((x0, y0), (x1, y1)) = (at(from), at(to));
        let context = self.context.clone();
        self.call(
            "input.performActions",
            json!({ "context": context, "actions": [{
                "type": "pointer", "id": "mouse", "parameters": { "pointerType": "mouse" },
                "actions": [
                    { "type": "pointerMove", "x": x0, "y": y0, "origin": "viewport" },
                    { "type": "pointerDown", "button": 0 },
                    { "type": "pointerMove", "x": x1, "y": y1, "origin": "viewport", "duration": 200 },
                    { "type": "pointerUp", "button": 0 }
                ]
            }] }),
        )?;
        Ok(())
    }

    /// Types `text` into whatever has the focus, one key press per character.
    pub fn type_text(&mut self, text: &str) -> anyhow::Result<()> {
        let keys: Vec<Value> = text
            .chars()
            .flat_map(|c| {
                [
                    json!({ "type": "keyDown", "value": c.to_string() }),
                    json!({ "type": "keyUp", "value": c.to_string() }),
                ]
            })
            .collect();
        let context = self.context.clone();
        self.call(
            "input.performActions",
            json!({ "context": context, "actions": [{ "type": "key", "id": "keyboard", "actions": keys }] }),
        )?;
        Ok(())
    }

    /// A PNG of the whole page.
    pub fn screenshot(&mut self, path: &Path) -> anyhow::Result<()> {
        let context = self.context.clone();
        let shot =
            self.call("browsingContext.captureScreenshot", json!({ "context": context, "origin": "document" }))?;
        browser_socket::write_png(&shot, path)
    }
}

impl Drop for Firefox {
    fn drop(&mut self) {
        // Ask first, so Firefox ends its content processes itself; then make sure.
        let _ = self.call("browser.close", json!({}));
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline && matches!(self.child.try_wait(), Ok(None)) {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A BiDi `RemoteValue` as plain JSON: primitives, arrays and objects; `undefined`, `NaN`,
/// the infinities and anything else (nodes, functions, windows…) become `null`.
pub fn remote_value_to_json(v: &Value) -> Value {
    match v["type"].as_str() {
        Some("string" | "boolean") => v["value"].clone(),
        Some("number") => match &v["value"] {
            Value::Number(n) => Value::Number(n.clone()),
            Value::String(s) if s == "-0" => json!(0),
            _ => Value::Null,
        },
        Some("bigint") => v["value"].as_str().and_then(|s| s.parse::<i64>().ok()).map_or(Value::Null, Value::from),
        Some("array" | "set") => {
            Value::Array(v["value"].as_array().into_iter().flatten().map(remote_value_to_json).collect())
        }
        Some("object" | "map") => {
            let mut map = Map::new();
            for pair in v["value"].as_array().into_iter().flatten() {
                let key = match &pair[0] {
                    Value::String(s) => s.clone(),
                    other => remote_value_to_json(other).to_string(),
                };
                map.insert(key, remote_value_to_json(&pair[1]));
            }
            Value::Object(map)
        }
        _ => Value::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_values_become_plain_json() {
        let v = json!({ "type": "object", "value": [
            ["t", { "type": "number", "value": 1.5 }],
            ["w", { "type": "number", "value": "NaN" }],
            ["list", { "type": "array", "value": [{ "type": "string", "value": "a" }, { "type": "undefined" }] }],
            ["ok", { "type": "boolean", "value": true }],
            ["el", { "type": "node", "sharedId": "x" }]
        ] });
        assert_eq!(
            remote_value_to_json(&v),
            json!({ "t": 1.5, "w": null, "list": ["a", null], "ok": true, "el": null })
        );
    }
}
