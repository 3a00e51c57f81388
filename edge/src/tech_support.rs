//! Diagnostics for the technician: `GET /api/logs`, `GET /api/support-bundle` (one tar
//! archive: configuration without secrets, status, events, logs, store verify report),
//! `POST /api/cameras/probe` and `POST /api/outputs/{n}` (switch a relay output).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;

use crate::io_link::{IoError, IoHandle};
use crate::status::UnitStatus;

/// What the diagnostics need of the running unit.
pub struct Diagnostics {
    /// The unit's live status (events included).
    pub status: Arc<UnitStatus>,
    /// The configuration file the unit runs with.
    pub config_path: PathBuf,
    /// The store directory.
    pub store: PathBuf,
    /// The I/O companion link, if any.
    pub io: Option<IoHandle>,
}

impl Diagnostics {
    /// The routes.
    pub fn routes(self: Arc<Self>) -> Router {
        Router::new()
            .route("/api/logs", get(logs))
            .route("/api/support-bundle", get(bundle))
            .route("/api/cameras/probe", post(probe))
            .route("/api/outputs/{n}", post(set_output))
            .with_state(self)
    }
}

fn error(code: StatusCode, message: impl Into<String>) -> Response {
    (code, axum::Json(serde_json::json!({ "error": message.into() }))).into_response()
}

/// The text that replaces a secret.
pub const REDACTED: &str = "<redacted>";
/// The text that replaces a password in a URL (where `<redacted>` would be percent-encoded).
pub const REDACTED_IN_URL: &str = "redacted";

fn secret_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    ["password", "secret", "token", "passphrase", "psk", "private"].iter().any(|s| k.contains(s))
}

fn redact_value(key: &str, value: &mut toml::Value) {
    match value {
        toml::Value::String(s) if secret_key(key) => *s = REDACTED.to_owned(),
        toml::Value::String(s) => {
            if let Ok(mut url) = url::Url::parse(s)
                && url.password().is_some()
                && url.set_password(Some(REDACTED_IN_URL)).is_ok()
            {
                *s = url.to_string();
            }
        }
        toml::Value::Table(t) => redact_table(t),
        toml::Value::Array(a) => a.iter_mut().for_each(|v| redact_value(key, v)),
        _ if secret_key(key) => *value = toml::Value::String(REDACTED.to_owned()),
        _ => {}
    }
}

fn redact_table(t: &mut toml::Table) {
    for (k, v) in t.iter_mut() {
        redact_value(k, v);
    }
}

/// The configuration text with every secret replaced by [`REDACTED`]: values of keys naming a
/// password, secret, token, passphrase, PSK or private key, and passwords inside URLs (by
/// [`REDACTED_IN_URL`]). Text
/// that does not parse is not included at all (it could hold anything).
pub fn redact_config(text: &str) -> String {
    match text.parse::<toml::Table>() {
        Ok(mut table) => {
            redact_table(&mut table);
            toml::to_string(&table).unwrap_or_else(|e| format!("# cannot write the redacted configuration: {e}\n"))
        }
        Err(e) => format!("# the configuration file does not parse, so it is left out: {}\n", e.message()),
    }
}

/// The query of `GET /api/logs`.
#[derive(Debug, Deserialize)]
pub struct LogsQuery {
    /// Only lines containing this (case-insensitive).
    #[serde(default)]
    pub filter: String,
    /// At most this many of the newest lines (default 500).
    pub limit: Option<usize>,
}

/// `GET /api/logs?filter=TEXT&limit=N`: `{"lines": [...]}`, oldest first.
async fn logs(Query(q): Query<LogsQuery>) -> Response {
    axum::Json(serde_json::json!({ "lines": crate::tech_logs::recent(&q.filter, q.limit.unwrap_or(500)) }))
        .into_response()
}

/// The query of `GET /api/support-bundle`.
#[derive(Debug, Deserialize)]
pub struct BundleQuery {
    /// Verify the whole store (reads every segment: slow on a large store). Default true.
    pub verify: Option<bool>,
}

fn tar_file(builder: &mut tar::Builder<Vec<u8>>, name: &str, data: &[u8], mtime: u64) -> std::io::Result<()> {
    let mut header = tar::Header::new_gnu();
    header.set_size(data.len() as u64);
    header.set_mode(0o644);
    header.set_mtime(mtime);
    header.set_cksum();
    builder.append_data(&mut header, name, data)
}

fn build_bundle(d: &Diagnostics, verify: bool) -> std::io::Result<Vec<u8>> {
    let now = jiff::Timestamp::now();
    let mtime = now.as_second().max(0) as u64;
    let dir = format!("convoy-{}-{}", d.status.unit_id, now.strftime("%Y%m%dT%H%M%SZ"));
    let mut tar = tar::Builder::new(Vec::new());
    let config = match std::fs::read_to_string(&d.config_path) {
        Ok(text) => redact_config(&text),
        Err(e) => format!("# cannot read {}: {e}\n", d.config_path.display()),
    };
    tar_file(&mut tar, &format!("{dir}/config.toml"), config.as_bytes(), mtime)?;
    tar_file(&mut tar, &format!("{dir}/status.json"), &pretty(&d.status.snapshot()), mtime)?;
    tar_file(&mut tar, &format!("{dir}/events.json"), &pretty(&d.status.events.since(0)), mtime)?;
    let logs = crate::tech_logs::recent("", crate::tech_logs::CAPACITY).join("\n");
    tar_file(&mut tar, &format!("{dir}/logs.txt"), logs.as_bytes(), mtime)?;
    if verify {
        let report = match media_store::verify::verify(&d.store, None) {
            Ok(r) => pretty(&crate::store_cli::VerifyJson::from(r)),
            Err(e) => format!("{{\"error\": {:?}}}", e.to_string()).into_bytes(),
        };
        tar_file(&mut tar, &format!("{dir}/verify.json"), &report, mtime)?;
    }
    tar.into_inner()
}

fn pretty<T: serde::Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec_pretty(value).unwrap_or_else(|e| format!("{{\"error\": {:?}}}", e.to_string()).into_bytes())
}

/// `GET /api/support-bundle[?verify=false]`: a tar archive `convoy-UNIT-TIME/` with
/// `config.toml` (secrets redacted), `status.json`, `events.json`, `logs.txt` and `verify.json`.
async fn bundle(State(d): State<Arc<Diagnostics>>, Query(q): Query<BundleQuery>) -> Response {
    let unit = d.status.unit_id.clone();
    let verify = q.verify.unwrap_or(true);
    match tokio::task::spawn_blocking(move || build_bundle(&d, verify)).await {
        Ok(Ok(bytes)) => (
            [
                (header::CONTENT_TYPE, "application/x-tar".to_owned()),
                (header::CONTENT_DISPOSITION, format!("attachment; filename=\"convoy-{unit}-support.tar\"")),
            ],
            bytes,
        )
            .into_response(),
        Ok(Err(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, format!("cannot build the bundle: {e}")),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

/// The body of `POST /api/cameras/probe`.
#[derive(Debug, Deserialize)]
pub struct ProbeRequest {
    /// The camera's RTSP URL.
    pub url: String,
    /// RTSP user name.
    pub username: Option<String>,
    /// RTSP password.
    pub password: Option<String>,
    /// Seconds of video to measure (default 3, 0.5–20).
    pub seconds: Option<f64>,
}

/// `POST /api/cameras/probe`: what the camera sends (as `edge probe` prints it), or 422 with
/// the reason it cannot be read.
async fn probe(axum::Json(request): axum::Json<ProbeRequest>) -> Response {
    let url = match url::Url::parse(&request.url) {
        Ok(u) if matches!(u.scheme(), "rtsp" | "rtsps") => u,
        Ok(_) => return error(StatusCode::BAD_REQUEST, format!("{} is not an rtsp:// or rtsps:// URL", request.url)),
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("{:?} is not a URL: {e}", request.url)),
    };
    let creds = request.username.map(|u| (u, request.password.unwrap_or_default()));
    let seconds = request.seconds.unwrap_or(3.0).clamp(0.5, 20.0);
    match crate::probe::probe(&url, creds, Duration::from_secs_f64(seconds)).await {
        Ok(report) => axum::Json(report).into_response(),
        Err(e) => error(StatusCode::UNPROCESSABLE_ENTITY, format!("cannot probe the camera: {e}")),
    }
}

/// The body of `POST /api/outputs/{n}`.
#[derive(Debug, Deserialize)]
pub struct OutputRequest {
    /// Switch the output on (true) or off.
    pub on: bool,
}

/// `POST /api/outputs/{n}` `{"on": bool}` (logged in): switches relay output `n`; answers
/// `{"output", "on"}` once the board confirmed it.
async fn set_output(
    State(d): State<Arc<Diagnostics>>,
    Path(output): Path<u8>,
    axum::Json(request): axum::Json<OutputRequest>,
) -> Response {
    let Some(io) = &d.io else {
        return error(StatusCode::SERVICE_UNAVAILABLE, "this unit has no I/O companion configured");
    };
    match io.set_output(output, request.on).await {
        Ok(()) => {
            tracing::info!(output, on = request.on, "output switched from the technician's page");
            axum::Json(serde_json::json!({ "output": output, "on": request.on })).into_response()
        }
        Err(e @ IoError::NoSuchOutput(_)) => error(StatusCode::BAD_REQUEST, e.to_string()),
        Err(e @ IoError::Stopped) => error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
        Err(e @ IoError::NotConfirmed { .. }) => error(StatusCode::GATEWAY_TIMEOUT, e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_redacted_and_the_rest_kept() {
        let text = r#"
unit_id = "bus-1"
[store]
path = "/data/store"
encryption_key_file = "/data/key"
[central]
address = "central.example:4433"
[[camera]]
id = "front"
url = "rtsp://admin:hunter2-url@10.0.0.5/stream"
username = "admin"
password = "hunter2-field"
[[camera]]
id = "rear"
url = "rtsp://10.0.0.6/stream"
[wifi]
psk = 12345678
"#;
        let out = redact_config(text);
        for secret in ["hunter2-url", "hunter2-field", "12345678"] {
            assert!(!out.contains(secret), "{secret} in {out}");
        }
        let back: toml::Table = out.parse().unwrap();
        assert_eq!(back["camera"][0]["password"].as_str(), Some(REDACTED));
        assert_eq!(back["camera"][0]["username"].as_str(), Some("admin"));
        assert_eq!(back["camera"][0]["url"].as_str(), Some("rtsp://admin:redacted@10.0.0.5/stream"));
        assert_eq!(back["camera"][1]["url"].as_str(), Some("rtsp://10.0.0.6/stream"));
        assert_eq!(back["store"]["encryption_key_file"].as_str(), Some("/data/key"), "a path is no secret");
        assert_eq!(back["central"]["address"].as_str(), Some("central.example:4433"));
        let broken = redact_config("password = \"x-secret\"\n[[");
        assert!(!broken.contains("x-secret") && broken.starts_with('#'), "{broken}");
    }
}
