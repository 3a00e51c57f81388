//! The scenario file (TOML): units with their cameras, link schedule, power and remote events,
//! operator actions at central, and a time compression. Unknown keys are refused, and
//! [`Scenario::validate`] names every problem it finds (which unit, which event, what is
//! wrong) before anything starts.

use std::path::Path;

use serde::Deserialize;

use super::time::ScenarioTime;

/// A whole scenario.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// A short name for the report.
    pub name: String,
    /// How long the route lasts, in scenario time.
    pub duration: ScenarioTime,
    /// Scenario seconds per real second (1: real time; 90: 18 hours in 12 minutes). Processes,
    /// cameras, links and central's rules run in real time; only the schedule is compressed.
    #[serde(default = "one")]
    pub compression: f64,
    /// Real seconds central may take after the end to fetch what its rules require.
    #[serde(default = "default_settle_s")]
    pub settle_s: f64,
    /// Seconds before and after each event that central retrieves (its `event_window_s`, real
    /// seconds).
    #[serde(default = "default_event_window")]
    pub event_window_s: [u32; 2],
    /// The edge units (`[[unit]]`).
    #[serde(rename = "unit")]
    pub units: Vec<Unit>,
    /// Operator actions at central (`[[operator]]`).
    #[serde(default, rename = "operator")]
    pub operator: Vec<OperatorAction>,
}

fn one() -> f64 {
    1.0
}

fn default_settle_s() -> f64 {
    120.0
}

fn default_event_window() -> [u32; 2] {
    [10, 10]
}

/// One edge unit in its vehicle.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Unit {
    /// Its unit id.
    pub name: String,
    /// Its cameras' ids (each a mount of its camera server).
    pub cameras: Vec<String>,
    /// Which RTSP server plays its cameras.
    #[serde(default)]
    pub camera_server: CameraServer,
    /// Forces central's setting for the unit (`[[unit]] metered`): `true` treats its link as
    /// metered all along (only event and operator retrievals; no link-gap backfill), `false`
    /// as unmetered. Without it central follows the link type the unit reports, which the
    /// link phases write to the unit's link file.
    #[serde(default)]
    pub metered: Option<bool>,
    /// How long the unit records after the ignition goes off (scenario time; the edge's
    /// `run_on_s` is this divided by the compression, at least 1 s).
    #[serde(default = "default_run_on")]
    pub run_on: ScenarioTime,
    /// The link schedule (`[[unit.link]]`), in time order; without a phase at 0 the unit
    /// starts on depot Wi-Fi.
    #[serde(default, rename = "link")]
    pub links: Vec<LinkPhase>,
    /// Power events (`[[unit.power]]`), in time order.
    #[serde(default, rename = "power")]
    pub power: Vec<PowerEvent>,
    /// Remote events (`[[unit.remote]]`).
    #[serde(default, rename = "remote")]
    pub remote: Vec<RemoteEvent>,
}

fn default_run_on() -> ScenarioTime {
    ScenarioTime(300.0)
}

/// The RTSP server of a unit's cameras.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CameraServer {
    /// Our `sim-camera`, looping the committed H.264 clip (cheap).
    #[default]
    Sim,
    /// GStreamer's RTSP server encoding live test video (Debian's; costs CPU).
    Gst,
}

/// From `at` on, the unit's link is this.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkPhase {
    /// When the phase starts.
    pub at: ScenarioTime,
    /// What kind of link.
    pub kind: LinkKind,
    /// One-way delay in ms (overrides the kind's).
    pub delay_ms: Option<f64>,
    /// Jitter in ms (overrides the kind's).
    pub jitter_ms: Option<f64>,
    /// Random loss in percent each way (overrides the kind's).
    pub loss_pct: Option<f64>,
    /// Rate in kbit/s each way (overrides the kind's).
    pub rate_kbit: Option<u64>,
    /// For `custom`: whether the link is metered (default false).
    pub metered: Option<bool>,
}

impl LinkPhase {
    /// Whether the unit's link is metered in this phase (its link file says so); `None` for a
    /// tunnel, which leaves the file as it was.
    pub fn metered(&self) -> Option<bool> {
        match self.kind {
            LinkKind::Wifi => Some(false),
            LinkKind::Cellular => Some(true),
            LinkKind::Tunnel => None,
            LinkKind::Custom => Some(self.metered.unwrap_or(false)),
        }
    }

    /// The line the phase writes to the unit's link file (`[central] link_file`), if any.
    pub fn link_file_line(&self) -> Option<String> {
        match self.kind {
            LinkKind::Wifi => Some("wifi".into()),
            LinkKind::Cellular => Some("cellular".into()),
            LinkKind::Tunnel => None,
            LinkKind::Custom => {
                Some(format!("unknown {}", if self.metered() == Some(true) { "metered" } else { "unmetered" }))
            }
        }
    }
}

/// Kinds of link, with their default numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LinkKind {
    /// Depot Wi-Fi: 5 ms, 50 Mbit/s, no loss; unmetered.
    Wifi,
    /// Cellular: 60 ± 15 ms, 4 Mbit/s, 1 % loss; metered.
    Cellular,
    /// No link at all (the unit's link file keeps its last value).
    Tunnel,
    /// Only the numbers given (defaults: a perfect link), metered if it says `metered = true`.
    Custom,
}

/// A power event of a unit's vehicle.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PowerEvent {
    /// When.
    pub at: ScenarioTime,
    /// What.
    pub event: PowerKind,
    /// For `power_cut`: how long until power is back and the unit boots.
    pub restart_after: Option<ScenarioTime>,
}

/// Kinds of power event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PowerKind {
    /// The ignition goes off (the unit runs on, then seals and exits).
    IgnitionOff,
    /// The ignition comes on (cancels a run-on, or boots a unit that shut down).
    IgnitionOn,
    /// The supply is cut at once (SIGKILL), and comes back after `restart_after`.
    PowerCut,
}

/// A remote event raised on a unit.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoteEvent {
    /// When.
    pub at: ScenarioTime,
    /// What.
    pub kind: RemoteKind,
    /// For `generic`: its name, sent as the message `SCENARIO NAME`.
    pub name: Option<String>,
}

/// Kinds of remote event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RemoteKind {
    /// The panic button on the I/O companion board (pressed, released a moment later).
    Panic,
    /// A generic event from an external system: a text line to the unit's `[generic_events]`
    /// TCP listener, which a rule turns into an alarm at central.
    Generic,
}

/// An operator's action at central.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OperatorAction {
    /// When.
    pub at: ScenarioTime,
    /// What.
    pub action: OperatorKind,
    /// Which unit.
    pub unit: String,
    /// Which camera.
    pub camera: String,
    /// `retrieve`: the range's start (scenario time).
    pub from: Option<ScenarioTime>,
    /// `retrieve`: the range's end (scenario time, not after `at`).
    pub to: Option<ScenarioTime>,
    /// `watch_live`: for how long (scenario time, at least 2 real seconds).
    #[serde(rename = "for")]
    pub for_: Option<ScenarioTime>,
}

/// Kinds of operator action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OperatorKind {
    /// Retrieve a range of a camera's recording.
    Retrieve,
    /// Watch a camera live; frames must arrive.
    WatchLive,
    /// Lock a range as evidence through central's API (`from`, `to`); the lock must reach the
    /// unit's store and central's, and the unit must still hold the range at the end.
    Lock,
}

impl OperatorKind {
    /// The action's name in a scenario file.
    pub fn name(self) -> &'static str {
        match self {
            OperatorKind::Retrieve => "retrieve",
            OperatorKind::WatchLive => "watch_live",
            OperatorKind::Lock => "lock",
        }
    }
}

/// A scenario file that cannot be played.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    /// The file could not be read.
    #[error("cannot read scenario {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// Not valid TOML, or wrong keys or values (the message names the line).
    #[error("scenario {path} is invalid: {message}")]
    Parse {
        /// The file.
        path: String,
        /// The parser's message.
        message: String,
    },
    /// It parses, but cannot be played; one line per problem.
    #[error("scenario {path} cannot be played:\n  - {}", problems.join("\n  - "))]
    Invalid {
        /// The file.
        path: String,
        /// What is wrong, each naming where.
        problems: Vec<String>,
    },
}

/// Shortest real time of a power cut the checks rely on (the unit must be seen to be gone).
pub const MIN_CUT_REAL_S: f64 = 5.0;
/// Margin between a run-on's end and an `ignition_on` meant to come after it (or before it).
const RUN_ON_MARGIN_REAL_S: f64 = 2.0;

impl Scenario {
    /// Reads, parses and validates a scenario file.
    pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
        let shown = path.display().to_string();
        let text =
            std::fs::read_to_string(path).map_err(|source| ScenarioError::Read { path: shown.clone(), source })?;
        Self::parse(&text, &shown)
    }

    /// Parses and validates scenario text; `path` names it in errors.
    pub fn parse(text: &str, path: &str) -> Result<Scenario, ScenarioError> {
        let s: Scenario = toml::from_str(text).map_err(|e| ScenarioError::Parse {
            path: path.to_owned(),
            message: e.to_string().trim_end().to_owned(),
        })?;
        let problems = s.problems();
        if problems.is_empty() { Ok(s) } else { Err(ScenarioError::Invalid { path: path.to_owned(), problems }) }
    }

    /// Real seconds of `t` scenario seconds.
    pub fn real_s(&self, t: ScenarioTime) -> f64 {
        t.secs() / self.compression
    }

    /// The edge's `run_on_s` for `unit`.
    pub fn run_on_real_s(&self, unit: &Unit) -> u64 {
        (self.real_s(unit.run_on).round() as u64).max(1)
    }

    /// Everything wrong with the scenario (empty: it can be played).
    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        let end = self.duration;
        if !(self.compression.is_finite() && self.compression > 0.0) {
            p.push(format!("compression must be a positive number (got {})", self.compression));
            return p;
        }
        if end.secs() <= 0.0 {
            p.push("duration must be more than 0".into());
        }
        if self.settle_s < 0.0 {
            p.push("settle_s cannot be negative".into());
        }
        if self.units.is_empty() {
            p.push("no [[unit]]: a scenario needs at least one unit".into());
        }
        let valid_id = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        for (i, u) in self.units.iter().enumerate() {
            let at = format!("unit {:?}", u.name);
            if !valid_id(&u.name) {
                p.push(format!("{at}: a name is letters, digits, '-' and '_'"));
            }
            if self.units[..i].iter().any(|o| o.name == u.name) {
                p.push(format!("{at}: two units have this name"));
            }
            if u.cameras.is_empty() {
                p.push(format!("{at}: no cameras"));
            }
            for (j, c) in u.cameras.iter().enumerate() {
                if !valid_id(c) {
                    p.push(format!("{at}: camera {c:?}: an id is letters, digits, '-' and '_'"));
                }
                if u.cameras[..j].contains(c) {
                    p.push(format!("{at}: camera {c:?} is listed twice"));
                }
            }
            self.link_problems(u, &at, &mut p);
            if u.links.last().is_some_and(|l| l.kind == LinkKind::Tunnel) {
                p.push(format!("{at}: the route ends in a tunnel; end with a link so central can catch up"));
            }
            self.power_problems(u, &at, &mut p);
            if !self.powered_at(u, end.secs()) {
                p.push(format!("{at}: the unit is not running at the end; end with its ignition on and power back"));
            }
            for r in &u.remote {
                let w = format!("{at}: remote event at {}", r.at);
                if r.at > end {
                    p.push(format!("{w}: after the end ({end})"));
                }
                match (r.kind, &r.name) {
                    (RemoteKind::Generic, None) => p.push(format!("{w}: a generic event needs a `name`")),
                    (RemoteKind::Generic, Some(name)) if !valid_id(name) => {
                        p.push(format!("{w}: name {name:?}: use letters, digits, '-' and '_'"))
                    }
                    (RemoteKind::Panic, Some(_)) => p.push(format!("{w}: `name` is only for generic events")),
                    _ => {}
                }
                if !self.powered_at(u, r.at.secs()) {
                    p.push(format!("{w}: the unit is not running then (ignition off or power cut)"));
                }
            }
        }
        for o in &self.operator {
            let w = format!("operator action at {}", o.at);
            if o.at > end {
                p.push(format!("{w}: after the end ({end})"));
            }
            match self.units.iter().find(|u| u.name == o.unit) {
                None => p.push(format!("{w}: no unit {:?}", o.unit)),
                Some(u) if !u.cameras.contains(&o.camera) => {
                    p.push(format!("{w}: unit {:?} has no camera {:?}", o.unit, o.camera))
                }
                Some(_) => {}
            }
            match o.action {
                OperatorKind::Retrieve | OperatorKind::Lock => match (o.from, o.to) {
                    (Some(from), Some(to)) if from < to && to <= o.at => {
                        if o.for_.is_some() {
                            p.push(format!("{w}: `for` is only for watch_live"));
                        }
                    }
                    (Some(_), Some(_)) => p.push(format!("{w}: {} needs from < to <= at", o.action.name())),
                    _ => p.push(format!("{w}: {} needs `from` and `to`", o.action.name())),
                },
                OperatorKind::WatchLive => match o.for_ {
                    Some(d) if self.real_s(d) >= 2.0 && o.at.secs() + d.secs() <= end.secs() => {
                        if o.from.is_some() || o.to.is_some() {
                            p.push(format!("{w}: `from`/`to` are only for retrieve"));
                        }
                    }
                    Some(_) => {
                        p.push(format!("{w}: watch_live `for` must be at least 2 real seconds and end by the end"))
                    }
                    None => p.push(format!("{w}: watch_live needs `for`")),
                },
            }
        }
        p
    }

    fn link_problems(&self, u: &Unit, at: &str, p: &mut Vec<String>) {
        let mut last = -1.0;
        for l in &u.links {
            let w = format!("{at}: link phase at {}", l.at);
            if l.at.secs() <= last {
                p.push(format!("{w}: link phases must be in time order, one per time"));
            }
            last = l.at.secs();
            if l.at > self.duration {
                p.push(format!("{w}: after the end ({})", self.duration));
            }
            let numbers =
                l.delay_ms.is_some() || l.jitter_ms.is_some() || l.loss_pct.is_some() || l.rate_kbit.is_some();
            if l.kind == LinkKind::Tunnel && numbers {
                p.push(format!("{w}: a tunnel has no link; remove delay/jitter/loss/rate"));
            }
            if l.kind != LinkKind::Custom && l.metered.is_some() {
                p.push(format!("{w}: `metered` is only for custom phases (wifi is unmetered, cellular metered)"));
            }
            if l.loss_pct.is_some_and(|v| !(0.0..=100.0).contains(&v)) {
                p.push(format!("{w}: loss_pct must be 0..100"));
            }
            if l.delay_ms.is_some_and(|v| !(0.0..=10_000.0).contains(&v))
                || l.jitter_ms.is_some_and(|v| !(0.0..=10_000.0).contains(&v))
            {
                p.push(format!("{w}: delay_ms and jitter_ms must be 0..10000"));
            }
        }
    }

    fn power_problems(&self, u: &Unit, at: &str, p: &mut Vec<String>) {
        let run_on = self.run_on_real_s(u) as f64;
        let (mut ignition, mut cut_until, mut off_at, mut last) = (true, -1.0f64, None::<f64>, -1.0);
        for e in &u.power {
            let w = format!("{at}: power event at {}", e.at);
            let t = e.at.secs();
            if t <= last {
                p.push(format!("{w}: power events must be in time order, one per time"));
            }
            last = t;
            if t < cut_until {
                p.push(format!("{w}: during the power cut before it"));
            }
            if e.at >= self.duration {
                p.push(format!("{w}: not before the end ({})", self.duration));
            }
            if e.restart_after.is_some() && e.event != PowerKind::PowerCut {
                p.push(format!("{w}: `restart_after` is only for power_cut"));
            }
            match e.event {
                PowerKind::IgnitionOff if !ignition => p.push(format!("{w}: the ignition is already off")),
                PowerKind::IgnitionOff => {
                    ignition = false;
                    off_at = Some(t);
                }
                PowerKind::IgnitionOn if ignition => p.push(format!("{w}: the ignition is already on")),
                PowerKind::IgnitionOn => {
                    ignition = true;
                    let since = self.real_s(super::time::ScenarioTime(t - off_at.unwrap_or(t)));
                    if (since - run_on).abs() < RUN_ON_MARGIN_REAL_S {
                        p.push(format!(
                            "{w}: {since:.1} real s after the ignition went off, too close to the end of the run-on \
                             ({run_on} s) to know whether the unit is still up; move it {RUN_ON_MARGIN_REAL_S} s away"
                        ));
                    }
                }
                PowerKind::PowerCut => {
                    if !ignition {
                        p.push(format!("{w}: power_cut while the ignition is off (the unit may be down already)"));
                    }
                    match e.restart_after {
                        Some(d) if self.real_s(d) >= MIN_CUT_REAL_S && t + d.secs() < self.duration.secs() => {
                            cut_until = t + d.secs();
                        }
                        Some(_) => p.push(format!(
                            "{w}: restart_after must be at least {MIN_CUT_REAL_S} real seconds and end before the end"
                        )),
                        None => p.push(format!("{w}: power_cut needs `restart_after`")),
                    }
                }
            }
        }
    }

    /// Whether `unit` is running at scenario second `t` (not in a power cut, not shut down
    /// after an ignition off), with a real second of margin on either side.
    pub fn powered_at(&self, unit: &Unit, t: f64) -> bool {
        let margin = self.compression;
        let run_on = self.run_on_real_s(unit) as f64 * self.compression;
        let mut off_since: Option<f64> = None;
        for e in &unit.power {
            let at = e.at.secs();
            match e.event {
                PowerKind::PowerCut => {
                    let back = at + e.restart_after.map_or(0.0, |d| d.secs());
                    // Back at `back`, recording again some real seconds later.
                    if t >= at - margin && t <= back + 10.0 * self.compression {
                        return false;
                    }
                }
                PowerKind::IgnitionOff => off_since = Some(at),
                PowerKind::IgnitionOn => {
                    if let Some(off) = off_since.take()
                        && t >= off + run_on - margin
                        && t <= at + 10.0 * self.compression
                    {
                        return false;
                    }
                }
            }
        }
        !off_since.is_some_and(|off| t >= off + run_on - margin)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
name = "t"
duration = "2m"
[[unit]]
name = "bus-1"
cameras = ["front", "rear"]
run_on = 5
[[unit.link]]
at = 0
kind = "wifi"
[[unit.link]]
at = 30
kind = "tunnel"
[[unit.link]]
at = 50
kind = "cellular"
loss_pct = 2
[[unit.power]]
at = 60
event = "power_cut"
restart_after = 10
[[unit.remote]]
at = 20
kind = "panic"
[[operator]]
at = 100
action = "retrieve"
unit = "bus-1"
camera = "front"
from = 10
to = 20
[[operator]]
at = 100
action = "watch_live"
unit = "bus-1"
camera = "rear"
for = 5
"#;

    fn problems(text: &str) -> String {
        match Scenario::parse(text, "t.toml") {
            Ok(_) => String::new(),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn a_good_scenario_parses_with_its_defaults() {
        let s = Scenario::parse(GOOD, "t.toml").unwrap();
        assert_eq!((s.duration.secs(), s.compression, s.event_window_s), (120.0, 1.0, [10, 10]));
        let u = &s.units[0];
        assert_eq!((u.camera_server, u.metered, s.run_on_real_s(u)), (CameraServer::Sim, None, 5));
        assert_eq!(u.links[1].kind, LinkKind::Tunnel);
        assert_eq!(u.power[0].restart_after.unwrap().secs(), 10.0);
        assert_eq!(s.operator[1].for_.unwrap().secs(), 5.0);
        assert!(s.powered_at(u, 20.0) && !s.powered_at(u, 65.0) && s.powered_at(u, 90.0));
    }

    #[test]
    fn link_phases_say_whether_they_are_metered() {
        let phase = |kind, metered| LinkPhase {
            at: ScenarioTime(0.0),
            kind,
            delay_ms: None,
            jitter_ms: None,
            loss_pct: None,
            rate_kbit: None,
            metered,
        };
        let line = |p: LinkPhase| (p.metered(), p.link_file_line());
        assert_eq!(line(phase(LinkKind::Wifi, None)), (Some(false), Some("wifi".into())));
        assert_eq!(line(phase(LinkKind::Cellular, None)), (Some(true), Some("cellular".into())));
        assert_eq!(line(phase(LinkKind::Tunnel, None)), (None, None), "a tunnel leaves the file");
        assert_eq!(line(phase(LinkKind::Custom, None)), (Some(false), Some("unknown unmetered".into())));
        assert_eq!(line(phase(LinkKind::Custom, Some(true))), (Some(true), Some("unknown metered".into())));
        let custom = GOOD.replace("kind = \"cellular\"", "kind = \"custom\"\nmetered = true");
        assert_eq!(problems(&custom), "");
        let e = problems(&GOOD.replace("kind = \"cellular\"", "kind = \"cellular\"\nmetered = false"));
        assert!(e.contains("`metered` is only for custom phases"), "{e}");
        let forced = Scenario::parse(&GOOD.replace("run_on = 5", "run_on = 5\nmetered = true"), "t.toml").unwrap();
        assert_eq!(forced.units[0].metered, Some(true));
    }

    #[test]
    fn unknown_keys_and_kinds_are_refused_naming_the_line() {
        let e = problems(&GOOD.replace("kind = \"tunnel\"", "kind = \"tunel\""));
        assert!(e.contains("tunel") && e.contains("line"), "{e}");
        let e = problems(&GOOD.replace("run_on = 5", "run_onn = 5"));
        assert!(e.contains("run_onn"), "{e}");
    }

    #[test]
    fn generic_events_and_locks_are_checked() {
        let e = problems(&GOOD.replace("kind = \"panic\"", "kind = \"generic\""));
        assert!(e.contains("a generic event needs a `name`"), "{e}");
        assert_eq!(problems(&GOOD.replace("kind = \"panic\"", "kind = \"generic\"\nname = \"door-7\"")), "");
        let e = problems(&GOOD.replace("kind = \"panic\"", "kind = \"generic\"\nname = \"door 7\""));
        assert!(e.contains("use letters, digits"), "{e}");
        // A lock takes a range like a retrieval.
        assert_eq!(problems(&GOOD.replace("action = \"retrieve\"", "action = \"lock\"")), "");
        let e = problems(&GOOD.replace("action = \"retrieve\"", "action = \"lock\"").replace("from = 10", "from = 30"));
        assert!(e.contains("lock needs from < to <= at"), "{e}");
    }

    #[test]
    fn impossible_schedules_are_refused_naming_where() {
        let cases = [
            (GOOD.replace("at = 20\nkind = \"panic\"", "at = 62\nkind = \"panic\""), "the unit is not running then"),
            (GOOD.replace("restart_after = 10", "restart_after = 2"), "restart_after must be at least"),
            (GOOD.replace("restart_after = 10\n", ""), "power_cut needs `restart_after`"),
            (GOOD.replace("at = 50\nkind", "at = 20\nkind"), "in time order"),
            (GOOD.replace("camera = \"rear\"", "camera = \"side\""), "has no camera \"side\""),
            (GOOD.replace("from = 10", "from = 30"), "from < to <= at"),
            (GOOD.replace("cameras = [\"front\", \"rear\"]", "cameras = [\"front\", \"front\"]"), "listed twice"),
            (GOOD.replace("event = \"power_cut\"\nrestart_after = 10", "event = \"ignition_on\""), "already on"),
            (GOOD.replace("at = 50\nkind = \"cellular\"", "at = 50\nkind = \"tunnel\""), "a tunnel has no link"),
            (GOOD.replace("duration = \"2m\"", "duration = \"2m\"\ncompression = 0"), "compression must be"),
            (GOOD.replace("duration = \"2m\"", "duration = 72"), "not running at the end"),
            (format!("{GOOD}[[unit.link]]\nat = 110\nkind = \"tunnel\"\n"), "ends in a tunnel"),
        ];
        for (text, want) in cases {
            let e = problems(&text);
            assert!(e.contains(want), "wanted {want:?} in: {e}");
            assert!(e.contains("cannot be played") || e.contains("invalid"), "{e}");
        }
    }

    #[test]
    fn an_ignition_on_must_be_clearly_before_or_after_the_run_on_end() {
        let text = GOOD.replace(
            "event = \"power_cut\"\nrestart_after = 10",
            "event = \"ignition_off\"\n[[unit.power]]\nat = 66\nevent = \"ignition_on\"",
        );
        assert!(problems(&text).contains("too close to the end of the run-on"), "{}", problems(&text));
        assert_eq!(problems(&text.replace("at = 66", "at = 75")), "");
        assert_eq!(problems(&text.replace("at = 66", "at = 62")), "");
    }
}
