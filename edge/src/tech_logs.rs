//! The unit's recent log lines, kept in memory for the technician's page and support bundle:
//! the log writer copies every line to stderr and into a ring of the last [`CAPACITY`] lines.

use std::collections::VecDeque;
use std::io::Write;
use std::sync::{Mutex, OnceLock};

/// Lines kept.
pub const CAPACITY: usize = 2000;

fn ring() -> &'static Mutex<VecDeque<String>> {
    static RING: OnceLock<Mutex<VecDeque<String>>> = OnceLock::new();
    RING.get_or_init(|| Mutex::new(VecDeque::with_capacity(CAPACITY)))
}

/// Removes ANSI colour sequences (`ESC [ … letter`).
pub fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            if chars.clone().next() == Some('[') {
                chars.next();
                for d in chars.by_ref() {
                    if d.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Appends `text` (one or more lines) to the ring.
pub fn record(text: &str) {
    let mut ring = ring().lock().unwrap_or_else(|p| p.into_inner());
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        if ring.len() == CAPACITY {
            ring.pop_front();
        }
        ring.push_back(strip_ansi(line));
    }
}

/// The kept lines containing `filter` (case-insensitive; all with an empty one), the last
/// `limit`, oldest first.
pub fn recent(filter: &str, limit: usize) -> Vec<String> {
    let filter = filter.to_lowercase();
    let ring = ring().lock().unwrap_or_else(|p| p.into_inner());
    let matching: Vec<&String> = ring.iter().filter(|l| l.to_lowercase().contains(&filter)).collect();
    matching[matching.len().saturating_sub(limit)..].iter().map(|l| (*l).clone()).collect()
}

/// A log writer for `tracing_subscriber::fmt().with_writer(|| Tee)`: stderr and the ring.
pub struct Tee;

impl Write for Tee {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        record(&String::from_utf8_lossy(buf));
        std::io::stderr().write_all(buf)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_kept_stripped_and_filtered() {
        assert_eq!(strip_ansi("\u{1b}[2m2026\u{1b}[0m \u{1b}[32m INFO\u{1b}[0m edge: x"), "2026  INFO edge: x");
        record("\u{1b}[33m WARN\u{1b}[0m tech-logs-test camera a down\n INFO tech-logs-test camera b up\n");
        assert_eq!(recent("TECH-LOGS-TEST camera a", 10), vec![" WARN tech-logs-test camera a down"]);
        assert_eq!(recent("tech-logs-test", 1), vec![" INFO tech-logs-test camera b up"]);
        for i in 0..CAPACITY {
            record(&format!("filler {i}"));
        }
        assert!(recent("tech-logs-test", 10).is_empty(), "old lines go");
        assert_eq!(recent("", 3).len(), 3);
    }
}
