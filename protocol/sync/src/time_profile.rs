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
/// The longest range [`TimeProfile::intervals`] looks at, in days.
pub const MAX_INTERVAL_DAYS: i64 = 400;

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

    /// The parts of `from_us..to_us` inside the profile's windows, in order, merged, at most
    /// [`MAX_INTERVAL_DAYS`] days from `from_us` (a longer range is cut there).
    pub fn intervals(&self, from_us: i64, to_us: i64) -> Vec<(i64, i64)> {
        let to_us = to_us.min(from_us.saturating_add(MAX_INTERVAL_DAYS * 86_400_000_000));
        let (Ok(from), Ok(to)) = (Timestamp::from_microsecond(from_us), Timestamp::from_microsecond(to_us)) else {
            return Vec::new();
        };
        if from_us >= to_us {
            return Vec::new();
        }
        // Local days from the one before `from` (its window may run over midnight) to `to`'s.
        let Ok(mut day) = from.to_zoned(self.tz.clone()).date().yesterday() else {
            return Vec::new();
        };
        let last = to.to_zoned(self.tz.clone()).date();
        let mut found: Vec<(i64, i64)> = Vec::new();
        while day <= last {
            let weekday = day.weekday().to_monday_zero_offset() as u8;
            for w in self.windows.iter().filter(|w| w.days & (1 << weekday) != 0) {
                let end_day = if w.start_s < w.end_s { Some(day) } else { day.tomorrow().ok() };
                let (Some(start), Some(end)) =
                    (self.local_us(day, w.start_s), end_day.and_then(|d| self.local_us(d, w.end_s)))
                else {
                    continue;
                };
                let (start, end) = (start.max(from_us), end.min(to_us));
                if start < end {
                    found.push((start, end));
                }
            }
            let Ok(next) = day.tomorrow() else { break };
            day = next;
        }
        found.sort_unstable();
        let mut merged: Vec<(i64, i64)> = Vec::with_capacity(found.len());
        for (start, end) in found {
            match merged.last_mut() {
                Some(last) if start <= last.1 => last.1 = last.1.max(end),
                _ => merged.push((start, end)),
            }
        }
        merged
    }

    /// `second` seconds into local `date` (86 400: the next midnight) as µs since the epoch; a
    /// local time skipped by a clock change resolves as jiff's "compatible" rule does.
    fn local_us(&self, date: jiff::civil::Date, second: u32) -> Option<i64> {
        let (date, second) = if second >= DAY_S { (date.tomorrow().ok()?, second - DAY_S) } else { (date, second) };
        let time = date.at((second / 3600) as i8, (second / 60 % 60) as i8, (second % 60) as i8, 0);
        Some(time.to_zoned(self.tz.clone()).ok()?.timestamp().as_microsecond())
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

    #[test]
    fn intervals_of_a_week() {
        // 2026-11-23 is a Monday.
        let p = profile(&["mon-fri 06:00-22:00:30", "sat 23:00-01:00"], "UTC");
        let got = p.intervals(at("2026-11-23T00:00:00Z"), at("2026-11-30T00:30:00Z"));
        let mut want: Vec<(i64, i64)> =
            (23..28).map(|d| (at(&format!("2026-11-{d}T06:00:00Z")), at(&format!("2026-11-{d}T22:00:30Z")))).collect();
        want.push((at("2026-11-28T23:00:00Z"), at("2026-11-29T01:00:00Z")));
        assert_eq!(got, want);
        // Clipped at both ends; a window open at `from` starts there.
        let got = p.intervals(at("2026-11-23T12:00:00Z"), at("2026-11-23T13:00:00Z"));
        assert_eq!(got, vec![(at("2026-11-23T12:00:00Z"), at("2026-11-23T13:00:00Z"))]);
        // The Saturday window over midnight, asked for from Sunday 00:30.
        let got = p.intervals(at("2026-11-29T00:30:00Z"), at("2026-11-29T12:00:00Z"));
        assert_eq!(got, vec![(at("2026-11-29T00:30:00Z"), at("2026-11-29T01:00:00Z"))]);
        assert!(p.intervals(at("2026-11-29T12:00:00Z"), at("2026-11-29T11:00:00Z")).is_empty());
    }

    #[test]
    fn intervals_merge_and_follow_the_time_zone() {
        let p = profile(
            &["daily 08:00-12:00", "daily 11:00-13:00", "daily 22:00-24:00", "daily 00:00-02:00"],
            "Europe/Berlin",
        );
        let got = p.intervals(at("2026-11-23T00:00:00Z"), at("2026-11-24T00:00:00Z"));
        // Berlin is UTC+1 in November: 08:00-13:00 local is 07:00-12:00 UTC; 22:00-02:00 local
        // runs over midnight as one interval: 21:00-01:00 UTC.
        assert_eq!(
            got,
            vec![
                (at("2026-11-23T00:00:00Z"), at("2026-11-23T01:00:00Z")),
                (at("2026-11-23T07:00:00Z"), at("2026-11-23T12:00:00Z")),
                (at("2026-11-23T21:00:00Z"), at("2026-11-24T00:00:00Z")),
            ]
        );
    }

    #[test]
    fn intervals_agree_with_contains() {
        // Across the spring clock change in Berlin (2026-03-29), every 7 minutes of a week.
        let p = profile(&["mon-fri 01:30-03:30", "sun 02:15-02:45", "sat,sun 22:00-06:00:30"], "Europe/Berlin");
        let (from, to) = (at("2026-03-25T00:00:00Z"), at("2026-04-01T00:00:00Z"));
        let got = p.intervals(from, to);
        let mut t = from;
        while t < to {
            let inside = got.iter().any(|&(a, b)| (a..b).contains(&t));
            assert_eq!(inside, p.contains(t), "at {}", Timestamp::from_microsecond(t).unwrap());
            t += 7 * 60_000_000;
        }
    }
}
