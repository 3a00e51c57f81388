//! What the Chromium ([`crate::browser`]) and Firefox ([`crate::firefox`]) clients share: the
//! WebSocket address a browser prints on stderr when it starts, the connection to it, the
//! wait for a command's answer among the events, and a screenshot's PNG.

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::path::Path;
use std::process::Child;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use base64::prelude::{BASE64_STANDARD, Engine as _};
use serde_json::{Value, json};
use tungstenite::{Message, WebSocket};

/// How long a command may take.
pub(crate) const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a browser may take to print its address.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// The address `child` prints on stderr after `prefix` (e.g. `DevTools listening on `); the
/// browser is killed when it prints none within 30 s (`name` says which, in the error).
pub(crate) fn announced_url(child: &mut Child, prefix: &'static str, name: &str) -> anyhow::Result<String> {
    let stderr = child.stderr.take().context("no stderr")?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(url) = line.strip_prefix(prefix) {
                let _ = tx.send(url.trim().to_owned());
            }
        }
    });
    match rx.recv_timeout(START_TIMEOUT) {
        Ok(url) => Ok(url),
        Err(_) => {
            let _ = child.kill();
            let _ = child.wait();
            bail!("{name} did not print its address ({}…) within {START_TIMEOUT:?}", prefix.trim())
        }
    }
}

/// A WebSocket to `url` (`ws://HOST:PORT/…`), reads timing out after [`COMMAND_TIMEOUT`].
pub(crate) fn connect(url: &str) -> anyhow::Result<WebSocket<TcpStream>> {
    let host = url.strip_prefix("ws://").and_then(|r| r.split('/').next()).context("a ws:// URL")?;
    let stream = TcpStream::connect(host)?;
    stream.set_read_timeout(Some(COMMAND_TIMEOUT))?;
    let (socket, _) = tungstenite::client(url, stream)?;
    Ok(socket)
}

/// Sends `msg` (whose `id` is `id`) and waits for the answer with that id, skipping events;
/// `error` reads a failure out of an answer. The answer's `result`.
pub(crate) fn command(
    socket: &mut WebSocket<TcpStream>,
    id: u64,
    msg: Value,
    method: &str,
    error: impl Fn(&Value) -> Option<String>,
) -> anyhow::Result<Value> {
    socket.send(Message::Text(msg.to_string().into()))?;
    let deadline = Instant::now() + COMMAND_TIMEOUT;
    while Instant::now() < deadline {
        let Message::Text(text) = socket.read()? else { continue };
        let answer: Value = serde_json::from_str(&text)?;
        if answer["id"] != json!(id) {
            continue;
        }
        if let Some(e) = error(&answer) {
            bail!("{method}: {e}");
        }
        return Ok(answer["result"].clone());
    }
    bail!("{method}: no answer within {COMMAND_TIMEOUT:?}")
}

/// Writes the base64 PNG of a screenshot answer (`{"data": …}`) to `path`.
pub(crate) fn write_png(shot: &Value, path: &Path) -> anyhow::Result<()> {
    let png = BASE64_STANDARD.decode(shot["data"].as_str().context("screenshot data")?)?;
    std::fs::write(path, png)?;
    Ok(())
}
