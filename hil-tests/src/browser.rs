//! A real headless Chromium driven over the Chrome DevTools Protocol (CDP), for tests of web
//! pages: start it, open a page, evaluate JavaScript, click, take screenshots, take downloads.
//!
//! Needs Debian's `chromium` (`/usr/bin/chromium`, or the path in `CONVOY_CHROMIUM`); no
//! driver binary and no npm package: CDP is JSON over the WebSocket the browser opens itself.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use serde_json::{Value, json};
use tungstenite::WebSocket;

use crate::browser_socket::{self, COMMAND_TIMEOUT};

/// The Chromium binary: `CONVOY_CHROMIUM` or `/usr/bin/chromium`.
pub fn chromium_path() -> PathBuf {
    std::env::var_os("CONVOY_CHROMIUM").map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from)
}

/// A headless Chromium with one page open.
pub struct Browser {
    child: Child,
    socket: WebSocket<TcpStream>,
    session: String,
    next_id: u64,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Starts Chromium headless with a fresh profile and opens a blank page of `width`×`height`.
    pub fn launch(width: u32, height: u32) -> anyhow::Result<Browser> {
        let profile = tempfile::tempdir()?;
        let mut child = Command::new(chromium_path())
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--mute-audio",
                "--autoplay-policy=no-user-gesture-required",
                "--remote-debugging-port=0",
                "--remote-allow-origins=*",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg(format!("--window-size={width},{height}"))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("cannot start {} (Debian package chromium)", chromium_path().display()))?;
        let url = browser_socket::announced_url(&mut child, "DevTools listening on ", "Chromium")?;
        let socket = browser_socket::connect(&url)?;
        let mut browser = Browser { child, socket, session: String::new(), next_id: 0, _profile: profile };
        let target = browser.call("", "Target.createTarget", json!({ "url": "about:blank" }))?;
        let target = target["targetId"].as_str().context("targetId")?.to_owned();
        let attached = browser.call("", "Target.attachToTarget", json!({ "targetId": target, "flatten": true }))?;
        browser.session = attached["sessionId"].as_str().context("sessionId")?.to_owned();
        browser.page(
            "Emulation.setDeviceMetricsOverride",
            json!({
                "width": width, "height": height, "deviceScaleFactor": 1, "mobile": false
            }),
        )?;
        Ok(browser)
    }

    /// Sends a CDP command (to the browser when `session` is empty) and waits for its answer;
    /// events in between are skipped.
    fn call(&mut self, session: &str, method: &str, params: Value) -> anyhow::Result<Value> {
        self.next_id += 1;
        let id = self.next_id;
        let mut msg = json!({ "id": id, "method": method, "params": params });
        if !session.is_empty() {
            msg["sessionId"] = json!(session);
        }
        browser_socket::command(&mut self.socket, id, msg, method, |answer| answer.get("error").map(Value::to_string))
    }

    /// A CDP command to the page.
    pub fn page(&mut self, method: &str, params: Value) -> anyhow::Result<Value> {
        let session = self.session.clone();
        self.call(&session, method, params)
    }

    /// Opens `url` and waits until the document has loaded.
    pub fn goto(&mut self, url: &str) -> anyhow::Result<()> {
        self.page("Page.navigate", json!({ "url": url }))?;
        let deadline = Instant::now() + COMMAND_TIMEOUT;
        while Instant::now() < deadline {
            if self.eval("document.readyState")? == "complete" && self.eval("location.href")? == json!(url) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        bail!("{url} did not load within {COMMAND_TIMEOUT:?}")
    }

    /// Evaluates a JavaScript expression in the page (promises are awaited) and returns its
    /// value as JSON; a thrown exception is an error.
    pub fn eval(&mut self, expression: &str) -> anyhow::Result<Value> {
        let r = self.page(
            "Runtime.evaluate",
            json!({ "expression": expression, "awaitPromise": true, "returnByValue": true, "userGesture": true }),
        )?;
        if let Some(e) = r.get("exceptionDetails") {
            return Err(anyhow!("{expression}: {}", e["exception"]["description"].as_str().unwrap_or(&e.to_string())));
        }
        Ok(r["result"]["value"].clone())
    }

    /// Clicks the element `selector` finds, with real mouse events at its centre, once it
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
        let (x, y) = (at[0].as_f64(), at[1].as_f64());
        let (Some(x), Some(y)) = (x, y) else { bail!("nothing on the page matches {selector}") };
        self.click_at(x, y)
    }

    /// A left click at viewport coordinates.
    pub fn click_at(&mut self, x: f64, y: f64) -> anyhow::Result<()> {
        for kind in ["mouseMoved", "mousePressed", "mouseReleased"] {
            self.page(
                "Input.dispatchMouseEvent",
                json!({ "type": kind, "x": x, "y": y, "button": "left", "clickCount": 1 }),
            )?;
        }
        Ok(())
    }

    /// Lets the page save downloads into `dir` (named by the browser's download id).
    pub fn allow_downloads(&mut self, dir: &Path) -> anyhow::Result<()> {
        self.call(
            "",
            "Browser.setDownloadBehavior",
            json!({ "behavior": "allowAndName", "downloadPath": dir, "eventsEnabled": false }),
        )?;
        Ok(())
    }

    /// A PNG of the whole page.
    pub fn screenshot(&mut self, path: &Path) -> anyhow::Result<()> {
        let shot = self.page("Page.captureScreenshot", json!({ "format": "png", "captureBeyondViewport": true }))?;
        browser_socket::write_png(&shot, path)
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
