//! What central's rules require it to hold by the end of a scenario, worked out from the
//! journal and central's alarms: the link gap after each outage or power-off (once the unit
//! has an unmetered link after it, or always when central forces `metered = false`; never when
//! it forces `metered = true`), each operator retrieval, and the window around each event of a
//! unit. Also the small range arithmetic the checks share.

use serde_json::Value;

use super::file::Scenario;
use super::player::Journal;

/// A tunnel shorter than this (real time) may not break the QUIC connection (idle timeout
/// 10 s), and then nothing is a link gap: no backfill is required for it.
pub const MIN_TUNNEL_US: i64 = 15_000_000;
/// A power-off shorter than this (real time) is not required to be backfilled (central skips
/// gaps under 3 s measured from the last message it had).
pub const MIN_OFFLINE_US: i64 = 5_000_000;
/// Frames this close to a required range's ends are not required (a retrieval resolves times
/// to whole key-frame groups and catalog spans, so its edges are not exact).
pub const EDGE_US: i64 = 500_000;

/// A range of one camera central must hold, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Requirement {
    /// Index of the unit in the scenario.
    pub unit: usize,
    /// The camera.
    pub camera: String,
    /// Start, wall clock µs.
    pub from_us: i64,
    /// End, wall clock µs.
    pub to_us: i64,
    /// `link gap`, `retrieval`, `event window (…)`.
    pub why: String,
}

/// An alarm's unit, time (µs) and kind, from `/api/alarms`.
pub fn alarm_fields(a: &Value) -> Option<(&str, i64, &Value)> {
    let time = a["time"].as_str()?.parse::<jiff::Timestamp>().ok()?.as_microsecond();
    Some((a["unit"].as_str()?, time, &a["kind"]))
}

/// A short name of an alarm's kind (`DigitalInput`, `ignition_off`, …).
pub fn kind_name(kind: &Value) -> String {
    match kind {
        Value::String(s) => s.clone(),
        Value::Object(m) => match m.iter().next() {
            Some((k, v)) if k == "Generic" => v["name"].as_str().unwrap_or("Generic").to_owned(),
            Some((k, v)) if k == "DigitalInput" => format!("input {} {}", v["input"], v["active"]),
            Some((k, _)) => k.clone(),
            None => "?".into(),
        },
        _ => "?".into(),
    }
}

/// Every range central must hold by the end.
pub fn requirements(scenario: &Scenario, j: &Journal, alarms: &[Value]) -> Vec<Requirement> {
    let mut out = Vec::new();
    let mut add = |unit: usize, from_us: i64, to_us: i64, why: String| {
        for camera in &scenario.units[unit].cameras {
            let (from_us, to_us) = (from_us.max(j.start_us), to_us.min(j.end_us));
            if to_us - from_us > 2 * EDGE_US {
                out.push(Requirement { unit, camera: camera.clone(), from_us, to_us, why: why.clone() });
            }
        }
    };
    for (u, unit) in scenario.units.iter().enumerate() {
        let uj = &j.units[u];
        let fetchable = |back: i64| match unit.metered {
            Some(forced) => !forced,
            None => unmetered_after(&uj.links, back),
        };
        for &(down, up) in &uj.tunnels {
            if up != i64::MAX && up - down >= MIN_TUNNEL_US && fetchable(up) {
                add(u, down, up, "link gap (tunnel)".into());
            }
        }
        for o in &uj.offline {
            if o.back_us > 0 && o.back_us - o.from_us >= MIN_OFFLINE_US && fetchable(o.back_us) {
                add(u, o.from_us, o.back_us, format!("link gap ({})", o.why));
            }
        }
        let [pre, post] = scenario.event_window_s.map(|s| i64::from(s) * 1_000_000);
        for a in alarms {
            let Some((name, time, kind)) = alarm_fields(a) else { continue };
            let camera_event = kind.get("CameraLost").is_some() || *kind == "CameraRestored";
            if name != unit.name || camera_event || time < j.start_us {
                continue;
            }
            add(u, time - pre, time + post, format!("event window ({})", kind_name(kind)));
        }
    }
    for r in &j.retrievals {
        if let Some(u) = scenario.units.iter().position(|u| u.name == r.unit) {
            out.push(Requirement {
                unit: u,
                camera: r.camera.clone(),
                from_us: r.from_us,
                to_us: r.to_us,
                why: "operator retrieval".into(),
            });
        }
    }
    out
}

/// Whether a unit whose link went `links` (`(since, up, metered)`, in time order) has an
/// unmetered link at `t` or at any later phase of the route: then central may fetch a link gap
/// that ended at `t` (the last phase lasts through the settling).
pub fn unmetered_after(links: &[(i64, bool, bool)], t: i64) -> bool {
    let current = links.iter().rposition(|l| l.0 <= t).unwrap_or(0);
    links[current..].iter().any(|&(_, up, metered)| up && !metered)
}

/// Gaps longer than `max_gap_us` in sorted frame times within `[from, to]`, including before
/// the first and after the last frame.
pub fn gaps(times: impl IntoIterator<Item = i64>, from: i64, to: i64, max_gap_us: i64) -> Vec<(i64, i64)> {
    let mut out = Vec::new();
    let mut last = from;
    for t in times.into_iter().filter(|t| (from..=to).contains(t)) {
        if t - last > max_gap_us {
            out.push((last, t));
        }
        last = last.max(t);
    }
    if to - last > max_gap_us {
        out.push((last, to));
    }
    out
}

/// Whether `[a, b]` lies inside one of `windows`.
pub fn covered(a: i64, b: i64, windows: &[(i64, i64)]) -> bool {
    windows.iter().any(|&(s, e)| s <= a && b <= e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gaps_are_found_at_the_start_the_middle_and_the_end() {
        let times = [5, 6, 7, 20, 21, 22];
        assert_eq!(gaps(times, 0, 30, 3), vec![(0, 5), (7, 20), (22, 30)]);
        assert_eq!(gaps(times, 5, 22, 3), vec![(7, 20)]);
        assert_eq!(gaps([], 0, 10, 3), vec![(0, 10)]);
        assert!(covered(8, 19, &[(0, 2), (7, 20)]) && !covered(6, 19, &[(7, 20)]));
    }

    #[test]
    fn a_link_gap_is_fetchable_once_an_unmetered_link_follows() {
        // Wi-Fi from 0, a tunnel at 10, cellular at 20, Wi-Fi at 40.
        let links = [(0, true, false), (10, false, false), (20, true, true), (40, true, false)];
        assert!(unmetered_after(&links, 20), "the depot's Wi-Fi comes later");
        assert!(unmetered_after(&links[..2], 5));
        assert!(!unmetered_after(&links[..3], 20), "cellular to the end");
        assert!(!unmetered_after(&[(0, true, true), (10, false, true), (20, true, true)], 20));
    }

    #[test]
    fn alarm_kinds_have_short_names() {
        let v: Value = serde_json::json!({"DigitalInput": {"input": 1, "active": true}});
        assert_eq!(kind_name(&v), "input 1 true");
        assert_eq!(kind_name(&serde_json::json!({"Generic": {"name": "ignition_off", "detail": ""}})), "ignition_off");
        assert_eq!(kind_name(&serde_json::json!("CameraRestored")), "CameraRestored");
    }
}
