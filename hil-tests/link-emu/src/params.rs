//! The parameters of one direction of the emulated link and the `key=value` syntax that sets them.

use std::fmt;
use std::time::Duration;

/// A wrong parameter or command.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ParamError {
    /// A word that is not `key=value`.
    #[error("expected key=value, got {0:?}")]
    NotKeyValue(String),
    /// A key that no parameter has.
    #[error("unknown parameter {0:?} (known: delay_ms jitter_ms loss rate_kbit queue_bytes reorder down)")]
    UnknownKey(String),
    /// A direction prefix other than `u2c.` or `c2u.`.
    #[error("unknown direction {0:?} (known: u2c, c2u)")]
    UnknownDirection(String),
    /// A value that does not parse or is out of range.
    #[error("bad value for {key}: {value:?} ({why})")]
    BadValue {
        /// The parameter.
        key: String,
        /// The value given.
        value: String,
        /// What is wrong with it.
        why: &'static str,
    },
}

/// Which way packets travel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Dir {
    /// From the unit's namespace to central's.
    U2c,
    /// From central's namespace to the unit's.
    C2u,
}

impl Dir {
    /// Both directions, in the order counters and parameters are printed.
    pub const BOTH: [Dir; 2] = [Dir::U2c, Dir::C2u];

    /// The prefix used in the control protocol (`u2c`, `c2u`).
    pub fn name(self) -> &'static str {
        match self {
            Dir::U2c => "u2c",
            Dir::C2u => "c2u",
        }
    }

    /// The index of this direction in `[U2c, C2u]`.
    pub fn index(self) -> usize {
        match self {
            Dir::U2c => 0,
            Dir::C2u => 1,
        }
    }
}

/// How one direction of the link treats packets.
#[derive(Clone, Debug, PartialEq)]
pub struct DirParams {
    /// One-way propagation delay.
    pub delay: Duration,
    /// Each packet's delay is `delay` plus a uniform random offset in `[-jitter, +jitter]`
    /// (never below zero).
    pub jitter: Duration,
    /// Random loss in percent (0–100), decided independently for each packet.
    pub loss_pct: f64,
    /// Bottleneck rate in kbit/s (1000 bit/s); 0 means no rate limit.
    pub rate_kbit: u64,
    /// Drop-tail limit of the bottleneck queue in bytes; 0 means automatic (see [`DirParams::queue_limit`]).
    pub queue_bytes: u64,
    /// Whether jitter may reorder packets. Off (the default), a packet never leaves before
    /// the one ahead of it, as in a real FIFO queue.
    pub reorder: bool,
    /// Outage: every packet is dropped, including those already queued or in flight.
    pub down: bool,
}

impl Default for DirParams {
    fn default() -> Self {
        DirParams {
            delay: Duration::ZERO,
            jitter: Duration::ZERO,
            loss_pct: 0.0,
            rate_kbit: 0,
            queue_bytes: 0,
            reorder: false,
            down: false,
        }
    }
}

/// The smallest automatic queue: about 21 full-sized packets.
pub const MIN_AUTO_QUEUE_BYTES: u64 = 32 * 1024;

impl DirParams {
    /// The queue limit in bytes: `queue_bytes` if set, else one bandwidth-delay product at a
    /// round-trip time of twice this direction's delay, and at least [`MIN_AUTO_QUEUE_BYTES`].
    pub fn queue_limit(&self) -> u64 {
        if self.queue_bytes > 0 {
            return self.queue_bytes;
        }
        let rtt_ns = 2 * self.delay.as_nanos();
        let bdp = rtt_ns * u128::from(self.rate_kbit) * 1000 / 8 / 1_000_000_000;
        (bdp as u64).max(MIN_AUTO_QUEUE_BYTES)
    }

    /// Sets one parameter from its protocol name and text value.
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), ParamError> {
        let bad = |why| ParamError::BadValue { key: key.to_owned(), value: value.to_owned(), why };
        match key {
            "delay_ms" => self.delay = parse_ms(value).map_err(bad)?,
            "jitter_ms" => self.jitter = parse_ms(value).map_err(bad)?,
            "loss" => {
                let pct: f64 = value.parse().map_err(|_| bad("not a number"))?;
                if !(0.0..=100.0).contains(&pct) {
                    return Err(bad("must be a percentage from 0 to 100"));
                }
                self.loss_pct = pct;
            }
            "rate_kbit" => self.rate_kbit = value.parse().map_err(|_| bad("not a whole number"))?,
            "queue_bytes" => self.queue_bytes = value.parse().map_err(|_| bad("not a whole number"))?,
            "reorder" => self.reorder = parse_bool(value).map_err(bad)?,
            "down" => self.down = parse_bool(value).map_err(bad)?,
            _ => return Err(ParamError::UnknownKey(key.to_owned())),
        }
        Ok(())
    }
}

fn parse_ms(value: &str) -> Result<Duration, &'static str> {
    let ms: f64 = value.parse().map_err(|_| "not a number")?;
    if !ms.is_finite() || !(0.0..=3_600_000.0).contains(&ms) {
        return Err("must be between 0 and 3600000 ms");
    }
    Ok(Duration::from_nanos((ms * 1e6).round() as u64))
}

fn parse_bool(value: &str) -> Result<bool, &'static str> {
    match value {
        "1" | "true" | "on" | "yes" => Ok(true),
        "0" | "false" | "off" | "no" => Ok(false),
        _ => Err("must be 0 or 1"),
    }
}

fn ms(d: Duration) -> f64 {
    d.as_nanos() as f64 / 1e6
}

impl fmt::Display for DirParams {
    /// `delay_ms=50 jitter_ms=0 loss=0 rate_kbit=0 queue_bytes=0 reorder=0 down=0`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "delay_ms={} jitter_ms={} loss={} rate_kbit={} queue_bytes={} reorder={} down={}",
            ms(self.delay),
            ms(self.jitter),
            self.loss_pct,
            self.rate_kbit,
            self.queue_bytes,
            u8::from(self.reorder),
            u8::from(self.down)
        )
    }
}

/// Applies `key=value` words (e.g. `delay_ms=50 u2c.loss=1 down=1`) to the parameters of both
/// directions (`[u2c, c2u]`). A key without a `u2c.`/`c2u.` prefix sets both directions. Either all
/// words apply or, on the first error, none.
pub fn apply_words<'a>(
    params: &mut [DirParams; 2],
    words: impl IntoIterator<Item = &'a str>,
) -> Result<(), ParamError> {
    let mut next = params.clone();
    for word in words {
        let (key, value) = word.split_once('=').ok_or_else(|| ParamError::NotKeyValue(word.to_owned()))?;
        match key.split_once('.') {
            Some((dir, key)) => {
                let dir = match dir {
                    "u2c" => Dir::U2c,
                    "c2u" => Dir::C2u,
                    _ => return Err(ParamError::UnknownDirection(dir.to_owned())),
                };
                next[dir.index()].set(key, value)?;
            }
            None => {
                for p in &mut next {
                    p.set(key, value)?;
                }
            }
        }
    }
    *params = next;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_set_both_or_one_direction() {
        let mut p = [DirParams::default(), DirParams::default()];
        apply_words(&mut p, "delay_ms=50 jitter_ms=2.5 loss=1 rate_kbit=10000 c2u.loss=0 u2c.down=1".split(' '))
            .unwrap();
        assert_eq!(p[0].delay, Duration::from_millis(50));
        assert_eq!(p[1].jitter, Duration::from_micros(2500));
        assert_eq!((p[0].loss_pct, p[1].loss_pct), (1.0, 0.0));
        assert!(p[0].down && !p[1].down);
        assert_eq!(p[0].to_string(), "delay_ms=50 jitter_ms=2.5 loss=1 rate_kbit=10000 queue_bytes=0 reorder=0 down=1");
    }

    #[test]
    fn an_error_changes_nothing() {
        let mut p = [DirParams::default(), DirParams::default()];
        let before = p.clone();
        assert!(matches!(apply_words(&mut p, ["delay_ms=5", "loss=101"]), Err(ParamError::BadValue { .. })));
        assert!(matches!(apply_words(&mut p, ["delay_ms=5", "speed=1"]), Err(ParamError::UnknownKey(_))));
        assert!(matches!(apply_words(&mut p, ["x2y.loss=1"]), Err(ParamError::UnknownDirection(_))));
        assert!(matches!(apply_words(&mut p, ["down"]), Err(ParamError::NotKeyValue(_))));
        assert_eq!(p, before);
    }

    #[test]
    fn automatic_queue_is_one_bdp() {
        let p = DirParams { delay: Duration::from_millis(50), rate_kbit: 10_000, ..DirParams::default() };
        // 10 Mbit/s × 100 ms = 125 000 bytes.
        assert_eq!(p.queue_limit(), 125_000);
        assert_eq!(DirParams { rate_kbit: 1000, ..p.clone() }.queue_limit(), MIN_AUTO_QUEUE_BYTES);
        assert_eq!(DirParams { queue_bytes: 9000, ..p }.queue_limit(), 9000);
    }
}
