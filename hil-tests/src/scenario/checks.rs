//! The checks at the end of a scenario. [`settle`] gives central time to fetch what its rules
//! require (polling its API); then, with every process stopped, each check reads the stores
//! themselves and returns pass or fail with the numbers.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::file::Scenario;
use super::player::{Journal, LockRecord, UnitJournal};
use super::report::{Check, fmt_us, scenario_time};
use super::rig::{GENERIC_RULE, Rig, T};
use super::rules::{EDGE_US, Requirement, alarm_fields, covered, gaps, kind_name, requirements};
use crate::media::{FrameHashes, compare, frame_hashes, try_central_frame_hashes};

/// A stop in recording longer than this is a gap (the clips run at 25 fps).
pub const GAP_US: i64 = 1_500_000;
/// Frames lost at a power cut: the store's durability window (1 s) and some slack.
pub const CUT_LOSS_US: i64 = 2_000_000;
/// From an edge's start to its cameras recording (process start, RTSP session, first key frame).
pub const STARTUP_US: i64 = 10_000_000;
/// How far a panic alarm's time may be from when the button was pressed.
const ALARM_SLACK_US: i64 = 5_000_000;

/// What central said at the end, before it was stopped.
#[derive(Debug, Default)]
pub struct CentralState {
    /// `/api/alarms`.
    pub alarms: Vec<Value>,
    /// Operator retrievals' final states, by id.
    pub retrieval_states: BTreeMap<i64, String>,
    /// Evidence locks as central's API showed them last, by id.
    pub locks: BTreeMap<u64, Value>,
    /// Real seconds central took after the end to hold everything required (None: it never did
    /// within `settle_s`).
    pub settled_after_s: Option<f64>,
    /// What central's timeline still showed as held only by the unit in required ranges, when
    /// it did not settle.
    pub lacking: Vec<String>,
}

fn rfc(us: i64) -> String {
    jiff::Timestamp::from_microsecond(us).map(|t| t.to_string()).unwrap_or_default()
}

/// Waits up to `settle_s` until central holds everything required (as far as its timeline
/// API says) and every operator retrieval has finished; returns what central said.
pub fn settle(scenario: &Scenario, rig: &Rig, j: &Journal) -> CentralState {
    let began = Instant::now();
    let deadline = began + Duration::from_secs_f64(scenario.settle_s);
    let mut state = CentralState::default();
    loop {
        state.alarms = rig.central_get("/api/alarms").and_then(|v| v.as_array().cloned()).unwrap_or_default();
        for r in &j.retrievals {
            if let Ok(id) = r.id
                && let Some(s) = rig.central_get(&format!("/api/retrievals/{id}"))
            {
                state.retrieval_states.insert(id, s["state"].as_str().unwrap_or("?").to_owned());
            }
        }
        for l in &j.locks {
            if let Ok(id) = l.id
                && let Some(v) = rig.central_get(&format!("/api/locks/{id}"))
            {
                state.locks.insert(id, v);
            }
        }
        let locks_answered = j
            .locks
            .iter()
            .filter_map(|l| l.id.as_ref().ok())
            .all(|id| state.locks.get(id).is_some_and(|v| v["unit_store"]["state"] != "pending"));
        let retrievals_done = j
            .retrievals
            .iter()
            .filter_map(|r| r.id.as_ref().ok())
            .all(|id| state.retrieval_states.get(id).is_some_and(|s| s == "done" || s == "failed"));
        let reqs = requirements(scenario, j, &state.alarms);
        let mut waiting = 0;
        state.lacking.clear();
        for (u, unit) in rig.units.iter().enumerate() {
            for camera in &unit.cameras {
                let mine: Vec<&Requirement> = reqs.iter().filter(|r| r.unit == u && r.camera == *camera).collect();
                if mine.is_empty() {
                    continue;
                }
                let path = format!(
                    "/api/units/{}/cameras/{camera}/timeline?start={}&end={}",
                    unit.name,
                    rfc(j.start_us - 60_000_000),
                    rfc(super::player::now_us())
                );
                let Some(t) = rig.central_get(&path) else {
                    waiting += mine.len();
                    continue;
                };
                let remote_only: Vec<(i64, i64)> = t["remote_only"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|p| {
                        let at = |v: &Value| v.as_str()?.parse::<jiff::Timestamp>().ok().map(|t| t.as_microsecond());
                        Some((at(&p[0])?, at(&p[1])?))
                    })
                    .collect();
                // The unit's catalog spans bridge pauses of up to 12 s (they split only where
                // key frames are further apart), so a short power-off can show as video only
                // the unit holds: such stretches are not waited for (the checks count frames).
                let off = offline_windows(&j.units[u]);
                for r in mine {
                    let overlap: Vec<&(i64, i64)> = remote_only
                        .iter()
                        .filter(|&&(s, e)| s < r.to_us - EDGE_US && e > r.from_us + EDGE_US)
                        .filter(|&&(s, e)| !covered(s.max(r.from_us), e.min(r.to_us), &off))
                        .collect();
                    if !overlap.is_empty() {
                        waiting += 1;
                        let show = |us: i64| scenario_time(scenario, j, us);
                        let ranges: Vec<String> =
                            overlap.iter().map(|&&(s, e)| format!("{}–{}", show(s), show(e))).collect();
                        state.lacking.push(format!(
                            "{}/{camera} {} {}–{}: only at the unit {}",
                            unit.name,
                            r.why,
                            show(r.from_us),
                            show(r.to_us),
                            ranges.join(", ")
                        ));
                    }
                }
            }
        }
        if waiting == 0 && retrievals_done && locks_answered {
            state.settled_after_s = Some(began.elapsed().as_secs_f64());
            eprintln!("central holds everything required, {:.1} s after the end", began.elapsed().as_secs_f64());
            return state;
        }
        if Instant::now() >= deadline {
            eprintln!("central still lacks {waiting} required ranges after {} s", scenario.settle_s);
            return state;
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// When a unit may have recorded nothing: each power-off, from a little before it (frames not
/// yet durable at a cut) to a while after the restart (boot, RTSP session, first key frame).
fn offline_windows(uj: &UnitJournal) -> Vec<(i64, i64)> {
    uj.offline.iter().map(|o| (o.from_us - CUT_LOSS_US, o.back_us + STARTUP_US)).collect()
}

/// Stops every edge (SIGTERM: it seals and exits 0) and central; checks the exits.
pub fn stop_all(rig: &mut Rig, j: &Journal) -> Vec<Check> {
    let mut out = Vec::new();
    for (u, unit) in rig.units.iter_mut().enumerate() {
        let mut problems = j.units[u].bad_exits.clone();
        match unit.edge.take() {
            Some(mut edge) => match edge.proc.stop(T) {
                Ok(s) if s.success() => {}
                Ok(s) => problems.push(format!("at the end the edge exited with {s}")),
                Err(e) => problems.push(format!("at the end: {e:#}")),
            },
            None => problems.push("the edge was not running at the end".into()),
        }
        let pass = problems.is_empty();
        let detail = if pass { "every shutdown exited 0".into() } else { problems.join("; ") };
        out.push(Check { check: "clean exits", subject: unit.name.clone(), pass, detail });
    }
    let _ = rig.central.proc.stop(T);
    out
}

/// Every check on the stores and on what central said.
pub fn run_checks(scenario: &Scenario, rig: &Rig, j: &Journal, central: &CentralState) -> Vec<Check> {
    let mut out = Vec::new();
    let far = j.end_us + 3_600_000_000;
    let reqs = requirements(scenario, j, &central.alarms);
    let t = |us: i64| scenario_time(scenario, j, us);
    for (u, unit) in rig.units.iter().enumerate() {
        let uj = &j.units[u];
        let windows = offline_windows(uj);
        for camera in &unit.cameras {
            let subject = format!("{}/{camera}", unit.name);
            let (mine, unit_dups) = frame_hashes(&unit.store, camera, j.start_us - 600_000_000, far);
            // 1. The unit recorded everything but while power was off.
            // Every camera was recording when the route started (the rig waits for it).
            let (from, to) = (j.start_us, j.end_us);
            let found = gaps(mine.keys().copied(), from, to, GAP_US);
            let bad: Vec<String> = found
                .iter()
                .filter(|g| !covered(g.0, g.1, &windows))
                .map(|&(a, b)| format!("{}–{} ({})", t(a), t(b), fmt_us(b - a)))
                .collect();
            let recorded: i64 = (to - from) - found.iter().map(|g| g.1 - g.0).sum::<i64>();
            out.push(Check {
                check: "unit recording",
                subject: subject.clone(),
                pass: bad.is_empty() && unit_dups == 0,
                detail: if bad.is_empty() {
                    format!(
                        "{} frames, {} of {} (real) recorded; {} gap(s), each while power was off{}",
                        mine.range(from..=to).count(),
                        fmt_us(recorded),
                        fmt_us(to - from),
                        found.len(),
                        if unit_dups > 0 { format!("; {unit_dups} frames twice") } else { String::new() }
                    )
                } else {
                    format!("gaps while powered: {}", bad.join(", "))
                },
            });
            // 2. Central: byte-identical where both hold a frame, nothing twice, nothing foreign.
            let theirs =
                try_central_frame_hashes(&rig.central_store, &unit.name, camera, j.start_us - 600_000_000, far);
            let (theirs, dups) = match theirs {
                Ok(v) => v,
                Err(e) => {
                    out.push(Check {
                        check: "central store",
                        subject,
                        pass: false,
                        detail: format!("central's store does not read: {e}"),
                    });
                    continue;
                }
            };
            let (_, extra, differ) = compare(&mine, &theirs);
            out.push(Check {
                check: "byte-identical",
                subject: subject.clone(),
                pass: differ.is_empty() && extra.is_empty(),
                detail: format!(
                    "{} frames at central: {} differ from the unit's, {} the unit does not have",
                    theirs.len(),
                    differ.len(),
                    extra.len()
                ),
            });
            out.push(Check {
                check: "no duplicates",
                subject: subject.clone(),
                pass: dups == 0,
                detail: format!("{dups} frames stored twice at central"),
            });
            // 3. Central holds what its rules required.
            let mine_reqs: Vec<&Requirement> = reqs.iter().filter(|r| r.unit == u && r.camera == *camera).collect();
            out.push(holdings_check(&subject, &mine, &theirs, &mine_reqs, &t));
        }
        // 4. An alarm for every panic.
        let panic_alarms: Vec<i64> = central
            .alarms
            .iter()
            .filter_map(alarm_fields)
            .filter(|(name, _, kind)| *name == unit.name && kind_name(kind) == "input 1 true")
            .map(|(_, time, _)| time)
            .collect();
        let missing: Vec<String> = uj
            .panics
            .iter()
            .filter(|&&p| !panic_alarms.iter().any(|&a| (a - p).abs() <= ALARM_SLACK_US))
            .map(|&p| t(p))
            .collect();
        let rule_alarms: Vec<i64> = central
            .alarms
            .iter()
            .filter_map(alarm_fields)
            .filter(|(name, _, kind)| *name == unit.name && kind_name(kind) == format!("rule:{GENERIC_RULE}"))
            .map(|(_, time, _)| time)
            .collect();
        let missing_generic: Vec<String> = uj
            .generics
            .iter()
            .filter(|(sent, _)| !rule_alarms.iter().any(|&a| (a - sent).abs() <= ALARM_SLACK_US))
            .map(|(sent, name)| format!("{name} at {}", t(*sent)))
            .collect();
        out.push(Check {
            check: "alarms",
            subject: unit.name.clone(),
            pass: missing.is_empty() && missing_generic.is_empty(),
            detail: if missing.is_empty() && missing_generic.is_empty() {
                format!(
                    "{} panic press(es) and {} generic event(s), each an alarm at central",
                    uj.panics.len(),
                    uj.generics.len()
                )
            } else {
                let mut why = Vec::new();
                if !missing.is_empty() {
                    why.push(format!("no alarm at central for the panic at {}", missing.join(", ")));
                }
                if !missing_generic.is_empty() {
                    why.push(format!("no alarm at central for the generic event {}", missing_generic.join(", ")));
                }
                why.join("; ")
            },
        });
        // 5. The store verifies.
        let (pass, detail) = match unit.verify() {
            Ok(v) if v["ok"] == true => (true, format!("edge store verify: ok, {} cameras", unit.cameras.len())),
            Ok(v) => (false, format!("edge store verify failed: {v}")),
            Err(e) => (false, format!("{e:#}")),
        };
        out.push(Check { check: "store verify", subject: unit.name.clone(), pass, detail });
    }
    for r in &j.retrievals {
        let subject = format!("{}/{} {}–{}", r.unit, r.camera, t(r.from_us), t(r.to_us));
        let (pass, detail) = match &r.id {
            Ok(id) => match central.retrieval_states.get(id) {
                Some(s) if s == "done" => (true, format!("retrieval {id}: done")),
                Some(s) => (false, format!("retrieval {id}: {s}")),
                None => (false, format!("retrieval {id}: central never answered its state")),
            },
            Err(e) => (false, e.clone()),
        };
        out.push(Check { check: "operator retrieval", subject, pass, detail });
    }
    for l in &j.locks {
        out.push(lock_check(rig, central, l, &t));
    }
    for w in &j.watches {
        let subject = format!("{}/{}", w.unit, w.camera);
        let (pass, detail) = match w.received {
            Ok((frames, keys)) => (
                frames as f64 >= w.seconds * 5.0 && keys > 0,
                format!("{frames} frames ({keys} key frames) in {:.1} s of watching", w.seconds),
            ),
            Err(ref e) => (false, e.clone()),
        };
        out.push(Check { check: "live watch", subject, pass, detail });
    }
    out.push(Check {
        check: "central caught up",
        subject: "central".into(),
        pass: central.settled_after_s.is_some(),
        detail: match central.settled_after_s {
            Some(s) => format!("held everything required {s:.1} s after the end ({} ranges)", reqs.len()),
            None => format!("still fetching after {} s: {}", scenario.settle_s, central.lacking.join("; ")),
        },
    });
    out.push(Check {
        check: "timeline played",
        subject: "runner".into(),
        pass: j.errors.is_empty(),
        detail: if j.errors.is_empty() { "every step carried out".into() } else { j.errors.join("; ") },
    });
    out
}

/// An evidence lock: locked at central and on the unit (as central's API says), the lock
/// record in the unit's store with the exact range, and the unit still holding the range.
fn lock_check(rig: &Rig, central: &CentralState, l: &LockRecord, t: &dyn Fn(i64) -> String) -> Check {
    let subject = format!("{}/{} {}–{}", l.unit, l.camera, t(l.from_us), t(l.to_us));
    let fail = |detail: String| Check { check: "evidence lock", subject: subject.clone(), pass: false, detail };
    let id = match &l.id {
        Ok(id) => *id,
        Err(e) => return fail(e.clone()),
    };
    let Some(v) = central.locks.get(&id) else { return fail(format!("lock {id}: central never showed it")) };
    if v["central"]["state"] != "locked" || v["unit_store"]["state"] != "locked" {
        return fail(format!("lock {id}: central {}, unit {}", v["central"], v["unit_store"]));
    }
    let Some(unit) = rig.units.iter().find(|u| u.name == l.unit) else { return fail("no such unit".into()) };
    let reason = format!("central lock {id}:");
    let held = media_store::catalog::Catalog::open_read_only(&media_store::catalog_path(&unit.store))
        .and_then(|c| c.locks())
        .map(|locks| {
            locks.iter().any(|r| {
                r.log == l.camera
                    && r.lock.start_us == l.from_us
                    && r.lock.end_us == l.to_us
                    && r.lock.reason.starts_with(&reason)
            })
        });
    match held {
        Ok(true) => {}
        Ok(false) => return fail(format!("lock {id}: not in the unit's store")),
        Err(e) => return fail(format!("the unit's catalog does not read: {e}")),
    }
    let (frames, _) = frame_hashes(&unit.store, &l.camera, l.from_us, l.to_us);
    if frames.is_empty() {
        return fail(format!("lock {id}: the unit no longer holds any frame of the range"));
    }
    Check {
        check: "evidence lock",
        subject,
        pass: true,
        detail: format!(
            "lock {id}: locked at central and in the unit's store, which still holds its {} frames",
            frames.len()
        ),
    }
}

/// Central holds every frame the unit recorded in every required range.
fn holdings_check(
    subject: &str,
    mine: &FrameHashes,
    theirs: &FrameHashes,
    reqs: &[&Requirement],
    t: &dyn Fn(i64) -> String,
) -> Check {
    let (mut want, mut lacking) = (0usize, Vec::new());
    for r in reqs {
        let needed: Vec<i64> = mine.range(r.from_us + EDGE_US..r.to_us - EDGE_US).map(|(k, _)| *k).collect();
        want += needed.len();
        let missing = needed.iter().filter(|k| !theirs.contains_key(k)).count();
        if missing > 0 {
            lacking.push(format!(
                "{} {}–{}: {missing} of {} frames missing",
                r.why,
                t(r.from_us),
                t(r.to_us),
                needed.len()
            ));
        }
    }
    let kinds = |p: &str| reqs.iter().filter(|r| r.why.starts_with(p)).count();
    Check {
        check: "central holds",
        subject: subject.to_owned(),
        pass: lacking.is_empty(),
        detail: if lacking.is_empty() {
            format!(
                "{want} frames in {} required ranges ({} link gaps, {} event windows, {} retrievals), all there",
                reqs.len(),
                kinds("link gap"),
                kinds("event window"),
                kinds("operator")
            )
        } else {
            lacking.join("; ")
        },
    }
}
