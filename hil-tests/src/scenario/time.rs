//! Scenario times: seconds from the start of the scenario, written as a number of seconds
//! (`90`, `2.5`), with units (`"1h30m"`, `"45s"`, `"2h"`) or as a clock (`"06:30"`,
//! `"06:30:15"`: hours, minutes, seconds).

use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};

/// A time or duration in scenario seconds.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Default)]
pub struct ScenarioTime(pub f64);

impl ScenarioTime {
    /// Seconds.
    pub fn secs(self) -> f64 {
        self.0
    }
}

impl fmt::Display for ScenarioTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Rounded to the tenth shown first, so 1199.96 s is 00:20:00, not 00:19:60.0.
        let total = (self.0.max(0.0) * 10.0).round() / 10.0;
        let (h, m, s) = ((total / 3600.0).floor(), ((total % 3600.0) / 60.0).floor(), total % 60.0);
        if s.fract() == 0.0 { write!(f, "{h:02}:{m:02}:{s:02}") } else { write!(f, "{h:02}:{m:02}:{s:04.1}") }
    }
}

/// Parses `"1h30m"`, `"45s"`, `"06:30"`, `"06:30:15"` or a plain number of seconds.
pub fn parse(text: &str) -> Result<f64, String> {
    let t = text.trim();
    let bad = || format!("{text:?} is not a time: write seconds (90), units (\"1h30m\", \"45s\") or \"HH:MM[:SS]\"");
    if t.contains(':') {
        let parts: Vec<&str> = t.split(':').collect();
        if parts.len() > 3 || parts.len() < 2 {
            return Err(bad());
        }
        let mut secs = 0.0;
        for (i, p) in parts.iter().enumerate() {
            let v: f64 = p.parse().map_err(|_| bad())?;
            if v < 0.0 || (i > 0 && v >= 60.0) {
                return Err(bad());
            }
            secs += v * [3600.0, 60.0, 1.0][i];
        }
        return Ok(secs);
    }
    if let Ok(v) = t.parse::<f64>() {
        return if v.is_finite() && v >= 0.0 { Ok(v) } else { Err(bad()) };
    }
    let (mut secs, mut number, mut any) = (0.0, String::new(), false);
    for c in t.chars() {
        match c {
            '0'..='9' | '.' => number.push(c),
            'h' | 'm' | 's' => {
                let v: f64 = number.parse().map_err(|_| bad())?;
                secs += v * match c {
                    'h' => 3600.0,
                    'm' => 60.0,
                    _ => 1.0,
                };
                number.clear();
                any = true;
            }
            _ => return Err(bad()),
        }
    }
    if !any || !number.is_empty() {
        return Err(bad());
    }
    Ok(secs)
}

impl<'de> Deserialize<'de> for ScenarioTime {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = ScenarioTime;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("seconds (90), a duration (\"1h30m\") or a clock time (\"06:30\")")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<ScenarioTime, E> {
                if v < 0 {
                    return Err(E::custom(format!("a time cannot be negative ({v})")));
                }
                Ok(ScenarioTime(v as f64))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<ScenarioTime, E> {
                Ok(ScenarioTime(v as f64))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<ScenarioTime, E> {
                if !v.is_finite() || v < 0.0 {
                    return Err(E::custom(format!("a time must be a non-negative number ({v})")));
                }
                Ok(ScenarioTime(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<ScenarioTime, E> {
                parse(v).map(ScenarioTime).map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_parse_in_every_notation() {
        assert_eq!(parse("90"), Ok(90.0));
        assert_eq!(parse("1h30m"), Ok(5400.0));
        assert_eq!(parse("45s"), Ok(45.0));
        assert_eq!(parse("2.5m"), Ok(150.0));
        assert_eq!(parse("06:30"), Ok(23_400.0));
        assert_eq!(parse("06:30:15"), Ok(23_415.0));
        for bad in ["", "h", "1x", "10:61", "1:2:3:4", "-5", "5m3"] {
            assert!(parse(bad).is_err(), "{bad:?} parsed");
        }
        assert_eq!(ScenarioTime(23_415.0).to_string(), "06:30:15");
        assert_eq!(ScenarioTime(1199.96).to_string(), "00:20:00");
        assert_eq!(ScenarioTime(65.3).to_string(), "00:01:05.3");
    }
}
