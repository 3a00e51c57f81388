//! Plays a scenario's timeline on a running [`Rig`]: each step at its scenario time (divided
//! by the compression) on the real clock, writing down in a [`Journal`] when each thing really
//! happened, for the checks.

use std::time::{Duration, Instant};

use anyhow::Context;
use nix::sys::signal::Signal;
use serde_json::json;

use super::file::{LinkKind, OperatorKind, PowerKind, RemoteKind, Scenario};
use super::rig::{Rig, T, link_params};
use super::time::ScenarioTime;
use crate::process::wait_until;
use crate::viewer::LiveViewer;

/// A time on the wall clock, µs since the Unix epoch (the clock the units stamp frames with).
pub fn now_us() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_micros() as i64)
}

/// Why and when a unit was down.
#[derive(Debug, Clone)]
pub struct Offline {
    /// `power cut` or `ignition off`.
    pub why: &'static str,
    /// From when the unit may have stopped recording (wall clock µs): the cut, or the end of
    /// the run-on.
    pub from_us: i64,
    /// When the edge was started again.
    pub back_us: i64,
}

/// What happened to one unit.
#[derive(Debug, Clone, Default)]
pub struct UnitJournal {
    /// Its power-offs, closed by a restart.
    pub offline: Vec<Offline>,
    /// Its link outages `(down, up)`, closed by a link phase that is not a tunnel.
    pub tunnels: Vec<(i64, i64)>,
    /// Its link from the start and at each phase: `(since, up, metered)` (a tunnel keeps the
    /// metered-ness of the link before it, as the unit's link file does).
    pub links: Vec<(i64, bool, bool)>,
    /// When its panic button was pressed.
    pub panics: Vec<i64>,
    /// When a generic event was sent to it, and its name.
    pub generics: Vec<(i64, String)>,
    /// Edge exits that were not clean (status other than 0 where 0 was due).
    pub bad_exits: Vec<String>,
}

/// An operator's retrieval and what central answered.
#[derive(Debug, Clone)]
pub struct RetrievalRecord {
    /// Unit and camera.
    pub unit: String,
    /// Camera.
    pub camera: String,
    /// The range, wall clock µs.
    pub from_us: i64,
    /// End of the range.
    pub to_us: i64,
    /// Central's id for it, or why there is none.
    pub id: Result<i64, String>,
}

/// The start of every generic message the runner sends (`GENERIC_PREFIX NAME`).
pub const GENERIC_PREFIX: &str = "SCENARIO";

/// An operator's evidence lock and what central answered.
#[derive(Debug, Clone)]
pub struct LockRecord {
    /// Unit.
    pub unit: String,
    /// Camera.
    pub camera: String,
    /// The range, wall clock µs.
    pub from_us: i64,
    /// End of the range.
    pub to_us: i64,
    /// Central's id for it, or why there is none.
    pub id: Result<u64, String>,
}

/// A live watch and what arrived.
#[derive(Debug, Clone)]
pub struct WatchRecord {
    /// Unit.
    pub unit: String,
    /// Camera.
    pub camera: String,
    /// How long it lasted, real seconds.
    pub seconds: f64,
    /// Frames and key frames received, or why the viewer failed.
    pub received: Result<(usize, usize), String>,
}

/// Everything the checks need to know about how the play went.
#[derive(Debug, Clone, Default)]
pub struct Journal {
    /// When the scenario's time 0 was (wall clock µs).
    pub start_us: i64,
    /// When its end was.
    pub end_us: i64,
    /// Per unit, in the file's order.
    pub units: Vec<UnitJournal>,
    /// Operator retrievals.
    pub retrievals: Vec<RetrievalRecord>,
    /// Live watches.
    pub watches: Vec<WatchRecord>,
    /// Evidence locks.
    pub locks: Vec<LockRecord>,
    /// Steps that could not be carried out.
    pub errors: Vec<String>,
}

impl Journal {
    /// The wall clock µs of scenario time `t`.
    pub fn at(&self, scenario: &Scenario, t: ScenarioTime) -> i64 {
        self.start_us + (scenario.real_s(t) * 1e6) as i64
    }
}

/// One thing to do at a scenario time.
#[derive(Debug, Clone, Copy)]
enum Step {
    Link(usize, usize),
    Power(usize, usize),
    Restart(usize),
    Remote(usize, usize),
    Operator(usize),
    WatchEnd(usize),
}

/// The steps in time order (stable: a file's order breaks ties).
fn steps(s: &Scenario) -> Vec<(f64, Step)> {
    let mut v = Vec::new();
    for (u, unit) in s.units.iter().enumerate() {
        for (i, l) in unit.links.iter().enumerate().filter(|(_, l)| l.at.secs() > 0.0) {
            v.push((l.at.secs(), Step::Link(u, i)));
        }
        for (i, p) in unit.power.iter().enumerate() {
            v.push((p.at.secs(), Step::Power(u, i)));
            if let Some(d) = p.restart_after {
                v.push((p.at.secs() + d.secs(), Step::Restart(u)));
            }
        }
        for (i, r) in unit.remote.iter().enumerate() {
            v.push((r.at.secs(), Step::Remote(u, i)));
        }
    }
    for (i, o) in s.operator.iter().enumerate() {
        v.push((o.at.secs(), Step::Operator(i)));
        if let Some(d) = o.for_ {
            v.push((o.at.secs() + d.secs(), Step::WatchEnd(i)));
        }
    }
    v.sort_by(|a, b| a.0.total_cmp(&b.0));
    v
}

/// Plays `scenario` on `rig`, printing each step on stderr; returns the journal.
pub fn play(scenario: &Scenario, rig: &mut Rig) -> Journal {
    let started = now_us();
    let t0 = Instant::now();
    let mut j =
        Journal { start_us: started, units: vec![UnitJournal::default(); rig.units.len()], ..Default::default() };
    for (u, unit) in scenario.units.iter().enumerate() {
        let first = unit.links.first().filter(|l| l.at.secs() == 0.0);
        if first.is_some_and(|l| l.kind == LinkKind::Tunnel) {
            j.units[u].tunnels.push((started, i64::MAX));
        }
        // Without a phase at 0 the unit starts on Wi-Fi; starting in a tunnel it reports nothing
        // (central counts that as unmetered).
        let up = first.is_none_or(|l| l.kind != LinkKind::Tunnel);
        j.units[u].links.push((started, up, first.and_then(|l| l.metered()).unwrap_or(false)));
    }
    let mut viewers: Vec<Option<(LiveViewer, Instant)>> = (0..scenario.operator.len()).map(|_| None).collect();
    let mut ignition_off_at: Vec<Option<i64>> = vec![None; rig.units.len()];
    for (at, step) in steps(scenario) {
        let due = t0 + Duration::from_secs_f64(scenario.real_s(ScenarioTime(at)));
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
        let when = ScenarioTime(at);
        let result = match step {
            Step::Link(u, i) => link_step(scenario, rig, &mut j, u, i),
            Step::Power(u, i) => power_step(scenario, rig, &mut j, &mut ignition_off_at, u, i),
            Step::Restart(u) => restart(rig, &mut j, u, "power cut"),
            Step::Remote(u, i) => remote_step(scenario, rig, &mut j, u, i),
            Step::Operator(i) => operator_step(scenario, rig, &mut j, &mut viewers, i),
            Step::WatchEnd(i) => {
                let o = &scenario.operator[i];
                if let Some((viewer, since)) = viewers[i].take() {
                    let frames = viewer.seen().frames;
                    let keys = frames.iter().filter(|f| f.1).count();
                    j.watches.push(WatchRecord {
                        unit: o.unit.clone(),
                        camera: o.camera.clone(),
                        seconds: since.elapsed().as_secs_f64(),
                        received: Ok((frames.len(), keys)),
                    });
                }
                Ok(format!("{}/{}: live watch ends", o.unit, o.camera))
            }
        };
        match result {
            Ok(what) => eprintln!("[{when}] {what}"),
            Err(e) => {
                eprintln!("[{when}] FAILED: {e:#}");
                j.errors.push(format!("at {when}: {e:#}"));
            }
        }
    }
    let end = t0 + Duration::from_secs_f64(scenario.real_s(scenario.duration));
    std::thread::sleep(end.saturating_duration_since(Instant::now()));
    j.end_us = now_us();
    eprintln!("[{}] end of the route", scenario.duration);
    j
}

fn link_step(scenario: &Scenario, rig: &mut Rig, j: &mut Journal, u: usize, i: usize) -> anyhow::Result<String> {
    let phase = &scenario.units[u].links[i];
    let unit = &rig.units[u];
    let uj = &mut j.units[u];
    let in_tunnel = uj.tunnels.last().is_some_and(|t| t.1 == i64::MAX);
    if let Some(line) = phase.link_file_line() {
        unit.set_link_type(&line)?;
    }
    let now = now_us();
    if phase.kind == LinkKind::Tunnel {
        unit.link.down()?;
        if !in_tunnel {
            uj.tunnels.push((now, i64::MAX));
        }
    } else {
        unit.link.set(&link_params(phase))?;
        unit.link.up()?;
        if let Some(t) = uj.tunnels.last_mut().filter(|t| t.1 == i64::MAX) {
            t.1 = now;
        }
    }
    let metered = phase.metered().unwrap_or_else(|| uj.links.last().is_some_and(|l| l.2));
    uj.links.push((now, phase.kind != LinkKind::Tunnel, metered));
    Ok(format!("{}: link → {:?} {}", unit.name, phase.kind, link_params(phase).words("")))
}

fn power_step(
    scenario: &Scenario,
    rig: &mut Rig,
    j: &mut Journal,
    ignition_off_at: &mut [Option<i64>],
    u: usize,
    i: usize,
) -> anyhow::Result<String> {
    let event = &scenario.units[u].power[i];
    let name = rig.units[u].name.clone();
    match event.event {
        PowerKind::IgnitionOff => {
            rig.units[u].board.send_line("input ignition 0")?;
            ignition_off_at[u] = Some(now_us());
            Ok(format!("{name}: ignition off (run-on {} s)", scenario.run_on_real_s(&scenario.units[u])))
        }
        PowerKind::IgnitionOn => {
            rig.units[u].board.send_line("input ignition 1")?;
            let off = ignition_off_at[u].take().context("ignition on without an ignition off")?;
            let run_on_us = scenario.run_on_real_s(&scenario.units[u]) as i64 * 1_000_000;
            if now_us() - off < run_on_us {
                return Ok(format!("{name}: ignition on during the run-on (the shutdown is cancelled)"));
            }
            // The run-on is over: the edge sealed its store and exits (or has exited) by itself.
            let unit = &mut rig.units[u];
            if let Some(mut edge) = unit.edge.take() {
                let status = edge.proc.wait(T)?;
                if !status.success() {
                    j.units[u].bad_exits.push(format!("after the run-on the edge exited with {status}"));
                }
            }
            j.units[u].offline.push(Offline { why: "ignition off", from_us: off + run_on_us, back_us: 0 });
            restart(rig, j, u, "ignition off").map(|m| format!("{name}: ignition on; {m}"))
        }
        PowerKind::PowerCut => {
            let unit = &mut rig.units[u];
            let mut edge = unit.edge.take().context("power cut of a unit that is not running")?;
            edge.proc.signal(Signal::SIGKILL)?;
            let cut = now_us();
            edge.proc.wait(T)?;
            j.units[u].offline.push(Offline { why: "power cut", from_us: cut, back_us: 0 });
            Ok(format!("{name}: power cut (SIGKILL)"))
        }
    }
}

/// Boots the unit again and closes its open offline period.
fn restart(rig: &mut Rig, j: &mut Journal, u: usize, why: &str) -> anyhow::Result<String> {
    let unit = &mut rig.units[u];
    unit.start_edge()?;
    if let Some(o) = j.units[u].offline.last_mut().filter(|o| o.back_us == 0) {
        o.back_us = now_us();
    }
    Ok(format!("{}: power back after the {why}, edge started", unit.name))
}

fn remote_step(scenario: &Scenario, rig: &mut Rig, j: &mut Journal, u: usize, i: usize) -> anyhow::Result<String> {
    let event = &scenario.units[u].remote[i];
    let unit = &mut rig.units[u];
    match event.kind {
        RemoteKind::Panic => {
            let last =
                unit.edge_get("/api/events?since=0").and_then(|e| e.as_array()?.last()?["id"].as_u64()).unwrap_or(0);
            unit.board.send_line("input panic 1")?;
            let pressed = now_us();
            // Held until the unit has seen it, then released (so the next press is a change).
            let seen = wait_until("the unit sees the panic button", Duration::from_secs(10), || {
                let events = unit.edge_get(&format!("/api/events?since={last}"))?;
                events.as_array()?.iter().any(|e| e["kind"]["InputChanged"]["input"] == "Panic").then_some(())
            });
            unit.board.send_line("input panic 0")?;
            j.units[u].panics.push(pressed);
            seen?;
            Ok(format!("{}: panic button pressed and released", unit.name))
        }
        RemoteKind::Generic => {
            let name = event.name.clone().context("a generic event has a name")?;
            let last =
                unit.edge_get("/api/events?since=0").and_then(|e| e.as_array()?.last()?["id"].as_u64()).unwrap_or(0);
            let line = format!("{GENERIC_PREFIX} {name}\n");
            let sent = now_us();
            unit.ns
                .call(move || -> std::io::Result<()> {
                    use std::io::Write;
                    let mut s = std::net::TcpStream::connect(super::rig::GENERIC_EVENTS)?;
                    s.write_all(line.as_bytes())
                })
                .map_err(anyhow::Error::from)?
                .context("sending the generic event")?;
            j.units[u].generics.push((sent, name.clone()));
            wait_until("the unit matches the generic event", Duration::from_secs(10), || {
                let events = unit.edge_get(&format!("/api/events?since={last}"))?;
                events
                    .as_array()?
                    .iter()
                    .any(|e| e["kind"]["GenericMatched"]["text"].as_str().is_some_and(|t| t.ends_with(&name)))
                    .then_some(())
            })?;
            Ok(format!("{}: generic event {name:?} sent", unit.name))
        }
    }
}

fn operator_step(
    scenario: &Scenario,
    rig: &mut Rig,
    j: &mut Journal,
    viewers: &mut [Option<(LiveViewer, Instant)>],
    i: usize,
) -> anyhow::Result<String> {
    let o = &scenario.operator[i];
    match o.action {
        OperatorKind::Retrieve => {
            let (from, to) = (o.from.context("from")?, o.to.context("to")?);
            let (from_us, to_us) = (j.at(scenario, from), j.at(scenario, to));
            let rfc = |us: i64| jiff::Timestamp::from_microsecond(us).map(|t| t.to_string()).unwrap_or_default();
            let path = format!("/api/units/{}/cameras/{}/retrieve", o.unit, o.camera);
            let id = match rig.central_post(&path, json!({ "start": rfc(from_us), "end": rfc(to_us) })) {
                Ok((202, v)) => v["id"].as_i64().ok_or_else(|| format!("no id in {v}")),
                Ok((status, v)) => Err(format!("central answered {status}: {v}")),
                Err(e) => Err(format!("{e:#}")),
            };
            let shown = format!("{}/{}: operator retrieves {from}–{to}: {id:?}", o.unit, o.camera);
            j.retrievals.push(RetrievalRecord { unit: o.unit.clone(), camera: o.camera.clone(), from_us, to_us, id });
            Ok(shown)
        }
        OperatorKind::WatchLive => {
            let (api, unit, camera) = (rig.central.api.clone(), o.unit.clone(), o.camera.clone());
            let opened = rig.central_ns.call(move || LiveViewer::open(&api, &unit, &camera));
            match opened.map_err(anyhow::Error::from).and_then(|r| r) {
                Ok(viewer) => {
                    viewers[i] = Some((viewer, Instant::now()));
                    Ok(format!("{}/{}: operator watches live", o.unit, o.camera))
                }
                Err(e) => {
                    j.watches.push(WatchRecord {
                        unit: o.unit.clone(),
                        camera: o.camera.clone(),
                        seconds: 0.0,
                        received: Err(format!("{e:#}")),
                    });
                    Err(e.context("opening the live viewer"))
                }
            }
        }
        OperatorKind::Lock => {
            let (from, to) = (o.from.context("from")?, o.to.context("to")?);
            let (from_us, to_us) = (j.at(scenario, from), j.at(scenario, to));
            let rfc = |us: i64| jiff::Timestamp::from_microsecond(us).map(|t| t.to_string()).unwrap_or_default();
            let path = format!("/api/units/{}/cameras/{}/lock", o.unit, o.camera);
            let body = json!({ "start": rfc(from_us), "end": rfc(to_us), "reason": format!("scenario {from}–{to}") });
            let id = match rig.central_post(&path, body) {
                Ok((201, v)) => v["id"].as_u64().ok_or_else(|| format!("no id in {v}")),
                Ok((status, v)) => Err(format!("central answered {status}: {v}")),
                Err(e) => Err(format!("{e:#}")),
            };
            let shown = format!("{}/{}: operator locks {from}–{to}: {id:?}", o.unit, o.camera);
            j.locks.push(LockRecord { unit: o.unit.clone(), camera: o.camera.clone(), from_us, to_us, id });
            Ok(shown)
        }
    }
}
