//! The report: one line per check (PASS/FAIL, check, subject, detail), then a one-line summary
//! as the very last line.

use std::fmt::Write;

use super::file::Scenario;
use super::player::Journal;
use super::time::ScenarioTime;

/// One check's outcome.
#[derive(Debug, Clone)]
pub struct Check {
    /// Which check (`unit recording`, `central holds`, …).
    pub check: &'static str,
    /// What it was about (`bus-1/front`, `bus-1`, …).
    pub subject: String,
    /// Whether it holds.
    pub pass: bool,
    /// The numbers, or what is wrong.
    pub detail: String,
}

/// A scenario's outcome.
#[derive(Debug, Clone)]
pub struct Report {
    /// The scenario's name.
    pub name: String,
    /// Its length in scenario time and the compression.
    pub duration: ScenarioTime,
    /// Scenario seconds per real second.
    pub compression: f64,
    /// Real seconds from the first process started to the last check.
    pub real_s: f64,
    /// The checks.
    pub checks: Vec<Check>,
}

impl Report {
    /// Whether every check holds (and there was at least one).
    pub fn passed(&self) -> bool {
        !self.checks.is_empty() && self.checks.iter().all(|c| c.pass)
    }

    /// The one-line summary (the report's last line).
    pub fn summary(&self) -> String {
        let failed = self.checks.iter().filter(|c| !c.pass).count();
        format!(
            "scenario {}: {} — {} checks, {} passed, {failed} failed ({} of route at ×{} in {:.0} s real)",
            self.name,
            if self.passed() { "PASS" } else { "FAIL" },
            self.checks.len(),
            self.checks.len() - failed,
            self.duration,
            self.compression,
            self.real_s
        )
    }

    /// The whole report as text, the summary last.
    pub fn render(&self) -> String {
        let w1 = self.checks.iter().map(|c| c.check.len()).max().unwrap_or(5).max(5);
        let w2 = self.checks.iter().map(|c| c.subject.chars().count()).max().unwrap_or(7).max(7);
        let mut s = String::new();
        let _ = writeln!(s, "{:<4}  {:<w1$}  {:<w2$}  detail", "", "check", "subject");
        for c in &self.checks {
            let mark = if c.pass { "PASS" } else { "FAIL" };
            let _ = writeln!(s, "{mark}  {:<w1$}  {:<w2$}  {}", c.check, c.subject, c.detail);
        }
        let _ = writeln!(s, "{}", self.summary());
        s
    }
}

/// A wall clock time as scenario time (`HH:MM:SS`).
pub fn scenario_time(scenario: &Scenario, j: &Journal, us: i64) -> String {
    ScenarioTime(((us - j.start_us) as f64 / 1e6 * scenario.compression).max(0.0)).to_string()
}

/// A real duration in µs, as seconds.
pub fn fmt_us(us: i64) -> String {
    format!("{:.1} s", us as f64 / 1e6)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_is_the_last_line_and_says_fail_if_any_check_fails() {
        let check = |pass| Check { check: "alarms", subject: "bus-1".into(), pass, detail: "d".into() };
        let mut r = Report {
            name: "t".into(),
            duration: ScenarioTime(90.0),
            compression: 1.0,
            real_s: 150.0,
            checks: vec![check(true), check(true)],
        };
        assert!(r.passed());
        assert_eq!(r.render().lines().last().unwrap(), r.summary());
        assert!(r.summary().contains("PASS — 2 checks, 2 passed, 0 failed"), "{}", r.summary());
        r.checks.push(check(false));
        assert!(!r.passed() && r.summary().contains("FAIL — 3 checks, 2 passed, 1 failed"));
        assert!(r.render().contains("FAIL  alarms"));
        r.checks.clear();
        assert!(!r.passed(), "no checks is no pass");
    }
}
