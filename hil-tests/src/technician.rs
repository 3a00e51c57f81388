//! The technician's side of the unit's local page: set the account with `edge technician set`
//! and call the API with a session cookie (the page itself is driven with [`crate::browser`]).

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::Context;
use serde_json::Value;

use crate::process::bin_path;

/// Runs `edge technician set --config CONFIG --user USER [--must-change]` with `password` on
/// stdin; returns what it printed.
pub fn set_technician(config: &Path, user: &str, password: &str, must_change: bool) -> anyhow::Result<String> {
    let mut cmd = Command::new(bin_path("edge")?);
    cmd.args(["technician", "set", "--user", user, "--config"]).arg(config);
    if must_change {
        cmd.arg("--must-change");
    }
    let mut child = cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn()?;
    writeln!(child.stdin.take().context("no stdin")?, "{password}")?;
    let out = child.wait_with_output()?;
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    anyhow::ensure!(out.status.success(), "edge technician set failed: {text}");
    Ok(text)
}

/// An HTTP answer: status, `Set-Cookie` and other headers as text, JSON body (null if none).
#[derive(Debug)]
pub struct Answer {
    /// The status code.
    pub code: u16,
    /// The `Set-Cookie` header, if any.
    pub set_cookie: Option<String>,
    /// The `Retry-After` header, if any.
    pub retry_after: Option<String>,
    /// The body as JSON (null when it is not JSON).
    pub body: Value,
}

/// A client of the unit's local API holding the session cookie it was given.
#[derive(Debug, Default, Clone)]
pub struct TechClient {
    /// The web base URL (`http://127.0.0.1:PORT`).
    pub web: String,
    /// The session token, once logged in.
    pub token: Option<String>,
}

impl TechClient {
    /// A client without a session.
    pub fn new(web: &str) -> TechClient {
        TechClient { web: web.to_owned(), token: None }
    }

    /// GET (body `None`) or POST JSON; keeps a session cookie the unit sets.
    pub fn call(&mut self, path: &str, body: Option<Value>) -> anyhow::Result<Answer> {
        let url = format!("{}{path}", self.web);
        let cookie = self.token.as_ref().map(|t| format!("convoy_session={t}"));
        let mut response = match body {
            None => {
                let mut r = ureq::get(&url).config().http_status_as_error(false).build();
                if let Some(c) = &cookie {
                    r = r.header("Cookie", c);
                }
                r.call()?
            }
            Some(json) => {
                let mut r = ureq::post(&url).config().http_status_as_error(false).build();
                if let Some(c) = &cookie {
                    r = r.header("Cookie", c);
                }
                r.send_json(json)?
            }
        };
        let header = |name: &str| response.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let set_cookie = header("set-cookie");
        let retry_after = header("retry-after");
        if let Some(c) = &set_cookie
            && let Some(value) = c.split(';').next().and_then(|kv| kv.strip_prefix("convoy_session="))
        {
            self.token = (!value.is_empty()).then(|| value.to_owned());
        }
        let code = response.status().as_u16();
        let text = response.body_mut().read_to_string().unwrap_or_default();
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Ok(Answer { code, set_cookie, retry_after, body })
    }

    /// `POST /api/login`.
    pub fn login(&mut self, user: &str, password: &str) -> anyhow::Result<Answer> {
        self.call("/api/login", Some(serde_json::json!({ "user": user, "password": password })))
    }
}
