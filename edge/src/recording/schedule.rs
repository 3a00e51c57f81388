//! Weekly time profiles (`[[time_profile]]`): windows such as `"mon-fri 06:00-22:00"` or
//! `"daily 22:00:30-06:00"` in the unit's time zone, and whether a moment falls inside one.

use jiff::Timestamp;
use jiff::tz::TimeZone;

/// Why a window does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "window {window:?}: {message} (write e.g. \"mon-fri 06:00-22:00\", \"sat,sun 08:00:30-12:00\" or \"daily 22:00-06:00\")"
)]
pub struct WindowError {
    /// The window as written.
    pub window: String,
    /// What is wrong.
    pub message: String,
}

/// One weekly window: on these days, from `start` to `end` (seconds of the local day; an end
/// before the start runs over midnight into the next day).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    /// Bit `d` set: the window starts on weekday `d` (0 Monday … 6 Sunday).
    days: u8,
    start_s: u32,
    end_s: u32,
}

const DAY_NAMES: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
const DAY_S: u32 = 86_400;

impl Window {
    /// Parses `DAYS HH:MM[:SS]-HH:MM[:SS]`; `DAYS` is `daily`, a day (`mon`), a range
    /// (`mon-fri`) or a list of those (`mon,wed,fri-sun`). `24:00` ends a day.
    pub fn parse(text: &str) -> Result<Window, WindowError> {
        let fail = |message: &str| WindowError { window: text.to_owned(), message: message.to_owned() };
        let mut words = text.split_whitespace();
        let (Some(days), Some(times), None) = (words.next(), words.next(), words.next()) else {
            return Err(fail("needs days and a time range separated by a space"));
        };
        let days = parse_days(days).ok_or_else(|| fail("unknown days"))?;
        let (start, end) = times.split_once('-').ok_or_else(|| fail("the time range needs a '-'"))?;
        let start_s = parse_time(start).ok_or_else(|| fail("bad start time"))?;
        let end_s = parse_time(end).ok_or_else(|| fail("bad end time"))?;
        if start_s == end_s {
            return Err(fail("the window is empty (start equals end)"));
        }
        if start_s >= DAY_S {
            return Err(fail("the start must be before 24:00"));
        }
        Ok(Window { days, start_s, end_s })
    }

    /// Whether the local `weekday` (0 Monday) and `second` of the day fall inside.
    fn contains(&self, weekday: u8, second: u32) -> bool {
        let on = |d: u8| self.days & (1 << d) != 0;
        if self.start_s < self.end_s {
            on(weekday) && (self.start_s..self.end_s).contains(&second)
        } else {
            (on(weekday) && second >= self.start_s) || (on((weekday + 6) % 7) && second < self.end_s)
        }
    }
}

fn parse_days(text: &str) -> Option<u8> {
    if text.eq_ignore_ascii_case("daily") {
        return Some(0x7f);
    }
    let day = |s: &str| DAY_NAMES.iter().position(|d| d.eq_ignore_ascii_case(s)).map(|p| p as u8);
    let mut bits = 0u8;
    for part in text.split(',') {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (day(a)?, day(b)?);
                let mut d = a;
                loop {
                    bits |= 1 << d;
                    if d == b {
                        break;
                    }
                    d = (d + 1) % 7;
                }
            }
            None => bits |= 1 << day(part)?,
        }
    }
    Some(bits)
}

fn parse_time(text: &str) -> Option<u32> {
    let mut parts = text.split(':');
    let mut field = |max: u32| -> Option<Option<u32>> {
        match parts.next() {
            None => Some(None),
            Some(p) if (1..=2).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit()) => {
                let v: u32 = p.parse().ok()?;
                (v <= max).then_some(Some(v))
            }
            Some(_) => None,
        }
    };
    let h = field(24)??;
    let m = field(59)??;
    let s = field(59)?.unwrap_or(0);
    if parts.next().is_some() {
        return None;
    }
    let total = h * 3600 + m * 60 + s;
    (total <= DAY_S).then_some(total)
}

/// A named weekly profile: inside when any of its windows is.
#[derive(Debug, Clone)]
pub struct TimeProfile {
    windows: Vec<Window>,
    tz: TimeZone,
}

impl TimeProfile {
    /// A profile of `windows` evaluated in `tz`.
    pub fn new(windows: Vec<Window>, tz: TimeZone) -> TimeProfile {
        TimeProfile { windows, tz }
    }

    /// Whether `time_us` (µs since the Unix epoch) falls inside a window, in local time.
    pub fn contains(&self, time_us: i64) -> bool {
        let Ok(ts) = Timestamp::from_microsecond(time_us) else {
            return false;
        };
        let local = ts.to_zoned(self.tz.clone());
        let weekday = local.weekday().to_monday_zero_offset() as u8;
        let second = local.hour() as u32 * 3600 + local.minute() as u32 * 60 + local.second() as u32;
        self.windows.iter().any(|w| w.contains(weekday, second))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> i64 {
        text.parse::<Timestamp>().unwrap().as_microsecond()
    }

    fn profile(windows: &[&str], tz: &str) -> TimeProfile {
        TimeProfile::new(windows.iter().map(|w| Window::parse(w).unwrap()).collect(), TimeZone::get(tz).unwrap())
    }

    #[test]
    fn weekdays_and_seconds() {
        // 2026-11-23 is a Monday.
        let p = profile(&["mon-fri 06:00:30-22:00"], "UTC");
        assert!(!p.contains(at("2026-11-23T06:00:29.999Z")));
        assert!(p.contains(at("2026-11-23T06:00:30Z")));
        assert!(p.contains(at("2026-11-27T21:59:59Z")), "friday");
        assert!(!p.contains(at("2026-11-27T22:00:00Z")), "the end is outside");
        assert!(!p.contains(at("2026-11-28T12:00:00Z")), "saturday");
    }

    #[test]
    fn over_midnight_and_lists() {
        let p = profile(&["fri,sat 22:00-06:00", "sun 10:00-24:00"], "UTC");
        assert!(p.contains(at("2026-11-27T23:00:00Z")), "friday night");
        assert!(p.contains(at("2026-11-28T05:59:59Z")), "saturday morning, from friday");
        assert!(p.contains(at("2026-11-29T05:00:00Z")), "sunday morning, from saturday");
        assert!(!p.contains(at("2026-11-30T05:00:00Z")), "monday morning: sunday's window ends at 24:00");
        assert!(p.contains(at("2026-11-29T23:59:59Z")));
        assert!(!p.contains(at("2026-11-26T23:00:00Z")), "thursday night");
        let wrap = profile(&["sat-mon 12:00-13:00"], "UTC");
        assert!(wrap.contains(at("2026-11-29T12:30:00Z")) && wrap.contains(at("2026-11-30T12:30:00Z")));
        assert!(!wrap.contains(at("2026-11-24T12:30:00Z")));
    }

    #[test]
    fn local_time_zone_with_daylight_saving() {
        // Berlin is UTC+1 in winter, UTC+2 in summer.
        let p = profile(&["daily 08:00-09:00"], "Europe/Berlin");
        assert!(p.contains(at("2026-11-23T07:30:00Z")));
        assert!(!p.contains(at("2026-11-23T08:30:00Z")));
        assert!(p.contains(at("2026-07-01T06:30:00Z")));
    }

    #[test]
    fn bad_windows_say_what_is_wrong() {
        for bad in ["mon-fri", "funday 06:00-07:00", "mon 25:00-26:00", "mon 06:00-06:00", "mon 6-7", "mon 06:60-07:00"]
        {
            let e = Window::parse(bad);
            assert!(e.is_err(), "{bad}");
        }
        assert!(Window::parse("mon 6:00-7:00:05").is_ok());
        assert!(Window::parse("mon 24:00-01:00").is_err());
    }
}
