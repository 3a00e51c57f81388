//! The line protocol that changes the link while it runs (on stdin and on the Unix socket).
//!
//! One command a line, one answer line each:
//!
//! | command | answer |
//! |---|---|
//! | `set KEY=VALUE…` (keys: `delay_ms jitter_ms loss rate_kbit queue_bytes reorder down`, optionally prefixed `u2c.`/`c2u.`) | `ok` or `error: …` |
//! | `down` / `up` (same as `set down=1` / `set down=0`) | `ok` |
//! | `get` | `params u2c.delay_ms=… … c2u.…` |
//! | `counters` | `counters uptime_ms=… u2c.received=… u2c.packets=… u2c.bytes=… u2c.drop_loss=… u2c.drop_queue=… u2c.drop_outage=… u2c.write_errors=… u2c.queued=… c2u.…` |
//! | `reset` (counters to zero) | `ok` |
//! | `quit` (the emulator exits; its devices vanish) | `ok` |
//!
//! Empty lines and lines starting with `#` get no answer.

use std::fmt::Write;
use std::time::Instant;

use crate::engine::Link;
use crate::params::Dir;

/// What the caller does after answering.
#[derive(Debug, PartialEq, Eq)]
pub enum After {
    /// Keep going.
    Continue,
    /// Exit the emulator.
    Quit,
}

/// Answers one command line; `None` for a line that wants no answer.
pub fn handle(link: &Link, started: Instant, line: &str) -> Option<(String, After)> {
    let mut words = line.split_whitespace();
    let command = words.next()?;
    if command.starts_with('#') {
        return None;
    }
    let result = match command {
        "set" => link.apply(words).map(|()| "ok".to_owned()).map_err(|e| e.to_string()),
        "down" => link.apply(["down=1"]).map(|()| "ok".to_owned()).map_err(|e| e.to_string()),
        "up" => link.apply(["down=0"]).map(|()| "ok".to_owned()).map_err(|e| e.to_string()),
        "get" => {
            let mut out = String::from("params");
            for (dir, p) in Dir::BOTH.iter().zip(link.params()) {
                for word in p.to_string().split(' ') {
                    let _ = write!(out, " {}.{word}", dir.name());
                }
            }
            Ok(out)
        }
        "counters" => Ok(counters_line(link, started)),
        "reset" => {
            for dir in Dir::BOTH {
                link.dir(dir).reset_counters();
            }
            Ok("ok".to_owned())
        }
        "quit" => return Some(("ok".to_owned(), After::Quit)),
        "help" => Ok("commands: set KEY=VALUE… | down | up | get | counters | reset | quit; keys: delay_ms \
                      jitter_ms loss rate_kbit queue_bytes reorder down (prefix u2c. or c2u. for one direction)"
            .to_owned()),
        other => Err(format!("unknown command {other:?} (try help)")),
    };
    let answer = result.unwrap_or_else(|e| format!("error: {e}"));
    Some((answer, After::Continue))
}

/// `counters uptime_ms=… u2c.… c2u.…`.
pub fn counters_line(link: &Link, started: Instant) -> String {
    let mut out = format!("counters uptime_ms={}", started.elapsed().as_millis());
    for dir in Dir::BOTH {
        out.push(' ');
        let _ = link.dir(dir).counters().write_words(dir.name(), &mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::params::DirParams;

    #[test]
    fn commands_answer_one_line() {
        let link = Link::new([DirParams::default(), DirParams::default()], 1);
        let t0 = Instant::now();
        let ask = |line| handle(&link, t0, line).map(|(answer, _)| answer);
        assert_eq!(ask("set delay_ms=50 u2c.loss=10").as_deref(), Some("ok"));
        assert_eq!(ask("down").as_deref(), Some("ok"));
        let params = ask("get").unwrap();
        assert!(params.starts_with("params u2c.delay_ms=50 u2c.jitter_ms=0 u2c.loss=10 "), "{params}");
        assert!(params.contains(" c2u.loss=0 ") && params.ends_with(" c2u.down=1"), "{params}");
        assert!(ask("set loss=200").unwrap().starts_with("error: bad value for loss"));
        assert!(ask("fly").unwrap().starts_with("error: unknown command"));
        assert!(ask("counters").unwrap().contains(" u2c.packets=0 "));
        assert_eq!(ask("  "), None);
        assert_eq!(handle(&link, t0, "quit").map(|(_, after)| after), Some(After::Quit));
    }

    #[test]
    fn going_down_drops_what_is_held() {
        let link = Link::new([DirParams::default(), DirParams::default()], 1);
        link.apply(["delay_ms=1000"]).unwrap();
        link.dir(Dir::U2c).offer(Instant::now(), &[0u8; 100]);
        assert_eq!(link.dir(Dir::U2c).counters().queued, 1);
        link.apply(["down=1"]).unwrap();
        link.dir(Dir::U2c).offer(Instant::now(), &[0u8; 100]);
        let c = link.dir(Dir::U2c).counters();
        assert_eq!((c.queued, c.drop_outage, c.received), (0, 2, 2));
    }
}
