//! A raw server-sent-events client for central's `GET /api/stream`: plain HTTP/1.0 over a TCP
//! socket (so the body is the bare event stream, not chunked), read with deadlines.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::Value;

/// One event: its name and its data, parsed as JSON.
#[derive(Debug, Clone, PartialEq)]
pub struct SseEvent {
    /// `event:` (`message` when absent).
    pub name: String,
    /// `data:`, as JSON (`Null` when it is not JSON).
    pub data: Value,
}

/// An open event stream.
pub struct SseClient {
    socket: TcpStream,
    buffer: String,
}

impl SseClient {
    /// Opens `path` of `web` (`http://HOST:PORT`) with a bearer token; fails unless the answer
    /// is 200 `text/event-stream`.
    pub fn open(web: &str, path: &str, token: &str) -> anyhow::Result<SseClient> {
        let host = web.strip_prefix("http://").context("an http:// address")?;
        let mut socket = TcpStream::connect(host)?;
        write!(
            socket,
            "GET {path} HTTP/1.0\r\nHost: {host}\r\nAccept: text/event-stream\r\nAuthorization: Bearer {token}\r\n\r\n"
        )?;
        let mut client = SseClient { socket, buffer: String::new() };
        let deadline = Instant::now() + Duration::from_secs(10);
        let head = loop {
            if let Some(end) = client.buffer.find("\r\n\r\n") {
                let head = client.buffer[..end].to_owned();
                client.buffer.drain(..end + 4);
                break head;
            }
            if !client.fill(deadline)? {
                bail!("no answer head from {web}{path}: {:?}", client.buffer);
            }
        };
        let status = head.lines().next().unwrap_or_default();
        if !status.contains(" 200 ") || !head.to_ascii_lowercase().contains("content-type: text/event-stream") {
            bail!("{path} answered {head:?}");
        }
        Ok(client)
    }

    /// Reads more bytes, waiting until `deadline`; false when the deadline passed or the
    /// stream ended.
    fn fill(&mut self, deadline: Instant) -> anyhow::Result<bool> {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(false);
        }
        self.socket.set_read_timeout(Some(left))?;
        let mut chunk = [0u8; 8192];
        match self.socket.read(&mut chunk) {
            Ok(0) => Ok(false),
            Ok(n) => {
                self.buffer.push_str(&String::from_utf8_lossy(&chunk[..n]));
                Ok(true)
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// The next event (comments and keep-alives skipped), if one comes before `deadline`.
    pub fn next_before(&mut self, deadline: Instant) -> anyhow::Result<Option<SseEvent>> {
        loop {
            self.buffer = self.buffer.replace("\r\n", "\n");
            while let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let (mut name, mut data) = (String::from("message"), Vec::new());
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("event:") {
                        name = v.trim().to_owned();
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push(v.strip_prefix(' ').unwrap_or(v).to_owned());
                    }
                }
                if !data.is_empty() {
                    let data = serde_json::from_str(&data.join("\n")).unwrap_or(Value::Null);
                    return Ok(Some(SseEvent { name, data }));
                }
            }
            if !self.fill(deadline)? {
                return Ok(None);
            }
        }
    }

    /// Waits up to `timeout` for an event named `name` that `pick` accepts; the events skipped
    /// on the way are returned too, for the test to check.
    pub fn wait_for(
        &mut self,
        name: &str,
        timeout: Duration,
        pick: impl Fn(&Value) -> bool,
    ) -> anyhow::Result<(SseEvent, Vec<SseEvent>)> {
        let deadline = Instant::now() + timeout;
        let mut skipped = Vec::new();
        while let Some(e) = self.next_before(deadline)? {
            if e.name == name && pick(&e.data) {
                return Ok((e, skipped));
            }
            skipped.push(e);
        }
        bail!("no {name} event in {timeout:?}; got {skipped:?}")
    }

    /// Every event that comes within `window`.
    pub fn drain_for(&mut self, window: Duration) -> anyhow::Result<Vec<SseEvent>> {
        let deadline = Instant::now() + window;
        let mut got = Vec::new();
        while let Some(e) = self.next_before(deadline)? {
            got.push(e);
        }
        Ok(got)
    }
}
