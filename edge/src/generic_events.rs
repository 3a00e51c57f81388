//! Generic events: other systems on the vehicle (a ticket machine, a door controller, a
//! driver's console) send text messages over TCP (one per line) or UDP (one per datagram,
//! or per line in it); each one matching a configured pattern becomes a `GenericMatched`
//! event. Lines are bounded; a bad connection or datagram is logged and dropped, never fatal.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio_util::sync::CancellationToken;

use crate::event_config::{GenericEventsConfig, PatternConfig};
use crate::events::EventKind;
use crate::status::UnitStatus;

/// The longest message kept; longer lines are cut here (and the rest of the line dropped).
pub const MAX_LINE: usize = 1024;

/// Open TCP connections at most; more are refused until one closes.
const MAX_CONNECTIONS: usize = 32;

/// Why the patterns are refused.
#[derive(Debug, thiserror::Error)]
pub enum PatternError {
    /// Two patterns share a name.
    #[error("[[generic_events.pattern]] name {0:?} is used twice")]
    Duplicate(String),
    /// A pattern has neither `contains` nor `regex`.
    #[error("[[generic_events.pattern]] {0:?} needs contains or regex (or both)")]
    Empty(String),
    /// A regular expression does not compile.
    #[error("[[generic_events.pattern]] {name:?}: regex does not compile: {message}")]
    Regex {
        /// The pattern.
        name: String,
        /// The compiler's message.
        message: String,
    },
}

struct Pattern {
    name: String,
    contains: Option<String>,
    regex: Option<regex::Regex>,
}

/// The compiled patterns.
pub struct Patterns(Vec<Pattern>);

impl Patterns {
    /// Compiles the configured patterns.
    pub fn compile(config: &[PatternConfig]) -> Result<Patterns, PatternError> {
        let mut out: Vec<Pattern> = Vec::new();
        for p in config {
            if out.iter().any(|o| o.name == p.name) {
                return Err(PatternError::Duplicate(p.name.clone()));
            }
            if p.contains.is_none() && p.regex.is_none() {
                return Err(PatternError::Empty(p.name.clone()));
            }
            let regex = match &p.regex {
                None => None,
                Some(r) => Some(
                    regex::RegexBuilder::new(r)
                        .size_limit(1 << 20)
                        .build()
                        .map_err(|e| PatternError::Regex { name: p.name.clone(), message: e.to_string() })?,
                ),
            };
            out.push(Pattern { name: p.name.clone(), contains: p.contains.clone(), regex });
        }
        Ok(Patterns(out))
    }

    /// Whether a pattern has this name.
    pub fn has(&self, name: &str) -> bool {
        self.0.iter().any(|p| p.name == name)
    }

    /// The names of the patterns `text` matches, in configuration order.
    pub fn matches<'a>(&'a self, text: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |p| {
                p.contains.as_deref().is_none_or(|c| text.contains(c))
                    && p.regex.as_ref().is_none_or(|r| r.is_match(text))
            })
            .map(|p| p.name.as_str())
    }
}

/// Raises a `GenericMatched` event for each pattern `text` matches.
fn message(patterns: &Patterns, status: &UnitStatus, source: &str, text: &str) {
    let text = text.trim();
    if text.is_empty() {
        return;
    }
    let mut matched = false;
    for pattern in patterns.matches(text) {
        matched = true;
        status.events.emit(EventKind::GenericMatched {
            pattern: pattern.to_owned(),
            source: source.to_owned(),
            text: text.to_owned(),
        });
    }
    if !matched {
        tracing::debug!(source, "generic message matched no pattern: {text:?}");
    }
}

/// The bound listeners, before they run.
pub struct GenericListeners {
    tcp: Option<TcpListener>,
    udp: Option<UdpSocket>,
    patterns: Arc<Patterns>,
}

impl GenericListeners {
    /// Binds the configured listeners.
    pub async fn bind(config: &GenericEventsConfig) -> anyhow::Result<GenericListeners> {
        use anyhow::Context;
        let patterns = Arc::new(Patterns::compile(&config.patterns)?);
        let tcp = match config.tcp {
            None => None,
            Some(a) => {
                Some(TcpListener::bind(a).await.with_context(|| format!("cannot listen on generic_events.tcp = {a}"))?)
            }
        };
        let udp = match config.udp {
            None => None,
            Some(a) => {
                Some(UdpSocket::bind(a).await.with_context(|| format!("cannot listen on generic_events.udp = {a}"))?)
            }
        };
        Ok(GenericListeners { tcp, udp, patterns })
    }

    /// The TCP listener's address.
    pub fn tcp_addr(&self) -> Option<SocketAddr> {
        self.tcp.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// The UDP socket's address.
    pub fn udp_addr(&self) -> Option<SocketAddr> {
        self.udp.as_ref().and_then(|s| s.local_addr().ok())
    }

    /// Serves both until `shutdown`.
    pub fn spawn(self, status: Arc<UnitStatus>, shutdown: CancellationToken) {
        if let Some(tcp) = self.tcp {
            tokio::spawn(serve_tcp(tcp, self.patterns.clone(), status.clone(), shutdown.clone()));
        }
        if let Some(udp) = self.udp {
            tokio::spawn(serve_udp(udp, self.patterns, status, shutdown));
        }
    }
}

async fn serve_tcp(
    listener: TcpListener,
    patterns: Arc<Patterns>,
    status: Arc<UnitStatus>,
    shutdown: CancellationToken,
) {
    let open = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            () = shutdown.cancelled() => return,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!("generic events: accept: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(permit) = open.clone().try_acquire_owned() else {
            tracing::warn!(%peer, "generic events: too many connections; refused");
            continue;
        };
        let (patterns, status, shutdown) = (patterns.clone(), status.clone(), shutdown.clone());
        tokio::spawn(async move {
            let source = format!("tcp:{peer}");
            tokio::select! {
                r = read_lines(stream, &patterns, &status, &source) => {
                    if let Err(e) = r {
                        tracing::debug!(%peer, "generic events connection: {e}");
                    }
                }
                () = shutdown.cancelled() => {}
            }
            drop(permit);
        });
    }
}

/// Reads `\n`-terminated lines (a `\r` before it is dropped), each cut at [`MAX_LINE`].
async fn read_lines(
    mut stream: TcpStream,
    patterns: &Patterns,
    status: &UnitStatus,
    source: &str,
) -> std::io::Result<()> {
    let mut lines = LineSplitter::default();
    let mut buf = [0u8; 4096];
    loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            if let Some(last) = lines.finish() {
                message(patterns, status, source, &last);
            }
            return Ok(());
        }
        for line in lines.push(&buf[..n]) {
            message(patterns, status, source, &line);
        }
    }
}

async fn serve_udp(socket: UdpSocket, patterns: Arc<Patterns>, status: Arc<UnitStatus>, shutdown: CancellationToken) {
    let mut buf = vec![0u8; 65_536];
    loop {
        let received = tokio::select! {
            r = socket.recv_from(&mut buf) => r,
            () = shutdown.cancelled() => return,
        };
        match received {
            Ok((n, peer)) => {
                let source = format!("udp:{peer}");
                let mut lines = LineSplitter::default();
                let mut all = lines.push(&buf[..n]);
                all.extend(lines.finish());
                for line in all {
                    message(&patterns, &status, &source, &line);
                }
            }
            Err(e) => {
                tracing::debug!("generic events: udp: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
        }
    }
}

/// Splits a byte stream into lines of at most [`MAX_LINE`] bytes (lossy UTF-8).
#[derive(Default)]
struct LineSplitter {
    line: Vec<u8>,
    /// The current line went over the limit: drop the rest of it.
    overlong: bool,
}

impl LineSplitter {
    fn push(&mut self, bytes: &[u8]) -> Vec<String> {
        let mut out = Vec::new();
        for &b in bytes {
            if b == b'\n' {
                if let Some(l) = self.take() {
                    out.push(l);
                }
                self.overlong = false;
            } else if self.line.len() < MAX_LINE {
                self.line.push(b);
            } else if !self.overlong {
                self.overlong = true;
                tracing::debug!("generic events: a line longer than {MAX_LINE} bytes was cut");
            }
        }
        out
    }

    fn finish(&mut self) -> Option<String> {
        self.take()
    }

    fn take(&mut self) -> Option<String> {
        let line = std::mem::take(&mut self.line);
        let text = String::from_utf8_lossy(&line);
        let text = text.trim_end_matches('\r');
        (!text.is_empty()).then(|| text.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(name: &str, contains: Option<&str>, regex: Option<&str>) -> PatternConfig {
        PatternConfig { name: name.into(), contains: contains.map(Into::into), regex: regex.map(Into::into) }
    }

    #[test]
    fn substring_and_regex_both_have_to_match() {
        let p = Patterns::compile(&[
            pattern("door", Some("DOOR"), None),
            pattern("forced", Some("DOOR"), Some(r"forced\s+#\d+")),
            pattern("fare", None, Some("^FARE (EVASION|DISPUTE)$")),
        ])
        .unwrap();
        let names = |t: &str| p.matches(t).map(str::to_owned).collect::<Vec<_>>();
        assert_eq!(names("DOOR 2 opened"), ["door"]);
        assert_eq!(names("DOOR forced  #3"), ["door", "forced"]);
        assert_eq!(names("forced #3"), Vec::<&str>::new());
        assert_eq!(names("FARE EVASION"), ["fare"]);
        assert!(p.has("fare") && !p.has("other"));
    }

    #[test]
    fn bad_patterns_are_refused() {
        assert!(matches!(Patterns::compile(&[pattern("x", None, None)]), Err(PatternError::Empty(_))));
        assert!(matches!(Patterns::compile(&[pattern("x", None, Some("("))]), Err(PatternError::Regex { .. })));
        let twice = [pattern("x", Some("a"), None), pattern("x", Some("b"), None)];
        assert!(matches!(Patterns::compile(&twice), Err(PatternError::Duplicate(_))));
    }

    #[test]
    fn lines_are_split_bounded_and_never_fail() {
        let mut s = LineSplitter::default();
        assert_eq!(s.push(b"one\r\ntw"), ["one"]);
        assert_eq!(s.push(b"o\n\n"), ["two"]);
        let long = vec![b'a'; 3 * MAX_LINE];
        let mut bytes = long.clone();
        bytes.extend(b"\nnext\n");
        let out = s.push(&bytes);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].len(), MAX_LINE);
        assert_eq!(out[1], "next");
        assert_eq!(s.push(&[0xff, 0xfe, b'x']), Vec::<String>::new());
        assert_eq!(s.finish().unwrap(), "\u{fffd}\u{fffd}x");
        assert!(s.finish().is_none());
    }
}
