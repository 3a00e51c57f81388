//! The configuration of recording modes, events and rules: `time_zone`, `[[time_profile]]`,
//! `[generic_events]` and `[[rule]]` (camera keys are in [`crate::config::CameraConfig`]).
//! Like every key of the unit's configuration these are a contract: only ever added to.

use std::net::SocketAddr;

use serde::Deserialize;

/// `[[time_profile]]`: a named weekly schedule in the unit's `time_zone`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeProfileConfig {
    /// The name cameras use in `schedule`.
    pub name: String,
    /// Windows such as `"mon-fri 06:00-22:00"`, `"sat,sun 08:00:30-12:00"`, `"daily 22:00-06:00"`
    /// (seconds optional; an end before the start runs over midnight).
    pub windows: Vec<String>,
}

/// `[generic_events]`: text messages from other systems (a ticket machine, a door controller)
/// matched against patterns; each match is an event.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenericEventsConfig {
    /// Listen for TCP connections sending lines of text (e.g. `0.0.0.0:47900`).
    pub tcp: Option<SocketAddr>,
    /// Listen for UDP datagrams, each one message (or several lines).
    pub udp: Option<SocketAddr>,
    /// The patterns messages are matched against.
    #[serde(default, rename = "pattern")]
    pub patterns: Vec<PatternConfig>,
}

/// `[[generic_events.pattern]]`: a message matches when it contains `contains` and matches
/// `regex` (whichever are given; at least one must be).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PatternConfig {
    /// The pattern's name, which rules name in `pattern`.
    pub name: String,
    /// A substring the message must contain (case-sensitive).
    pub contains: Option<String>,
    /// A regular expression (Rust `regex` syntax) the message must match.
    pub regex: Option<String>,
}

/// What starts a rule (`trigger` of a `[[rule]]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TriggerKind {
    /// An input of the I/O companion (`input`, `active`); lasts while the input is so.
    Input,
    /// Motion on a camera (`camera`, or any); lasts while the motion does.
    Motion,
    /// A generic message matching a pattern (`pattern`, or any).
    Generic,
    /// A camera was lost (`camera`, or any).
    CameraLost,
    /// A camera streams again (`camera`, or any).
    CameraRestored,
    /// The store failed to write.
    StorageFault,
    /// The ignition went off.
    IgnitionOff,
    /// The ignition came on.
    IgnitionOn,
    /// The supply dropped below the companion's warning threshold.
    PowerWarning,
    /// The I/O companion went silent.
    IoLinkLost,
    /// An ONVIF event in a camera's metadata stream (`camera`, or any; `topic`, or any).
    /// Lasting when it carries a boolean data item (motion's `IsMotion`, an input's
    /// `LogicalState`): `true` starts it, `false` ends it; otherwise instant.
    Onvif,
}

/// `[[rule]]`: when `trigger` happens, do the actions.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// The rule's name (in logs, locks and alarms).
    pub name: String,
    /// What starts it.
    pub trigger: TriggerKind,
    /// For `trigger = "input"`: `ignition`, `panic`, `doorN` or `inputN` (as in `/api/status`).
    pub input: Option<String>,
    /// For `trigger = "input"`: the level that starts the rule (default true); the other level,
    /// or a lost I/O companion link, ends it.
    #[serde(default = "default_true")]
    pub active: bool,
    /// For `motion`, `camera_lost`, `camera_restored`, `onvif`: only this camera (default any).
    pub camera: Option<String>,
    /// For `generic`: only this pattern (default any).
    pub pattern: Option<String>,
    /// For `onvif`: only events whose topic (namespace prefixes removed, e.g.
    /// `RuleEngine/CellMotionDetector/Motion`) contains this text, case-sensitive (default any).
    pub topic: Option<String>,
    /// Record these cameras (in `event` or `schedule` mode; `continuous` ones record anyway),
    /// from their pre-buffer on, while the trigger lasts (or `record_for_s`), plus their
    /// `post_buffer_s`.
    #[serde(default)]
    pub record: Vec<String>,
    /// Record for this many seconds from the trigger instead of while it lasts.
    pub record_for_s: Option<f64>,
    /// Evidence-lock these cameras' recordings around the trigger.
    #[serde(default)]
    pub lock: Vec<String>,
    /// Seconds before the trigger the lock covers (default 30).
    #[serde(default = "default_lock_s")]
    pub lock_before_s: f64,
    /// Seconds after the trigger the lock covers (default 30).
    #[serde(default = "default_lock_s")]
    pub lock_after_s: f64,
    /// Days the lock lasts (default 30).
    #[serde(default = "default_lock_days")]
    pub lock_days: f64,
    /// Raise an alarm at central (a `RuleAlarm` event, forwarded with the cameras of `record`
    /// and `lock`).
    #[serde(default)]
    pub notify_central: bool,
    /// Switch this output of the I/O companion (0–31) when the rule starts.
    pub set_output: Option<u8>,
    /// The level `set_output` is switched to (default true: on).
    #[serde(default = "default_true")]
    pub output_on: bool,
}

fn default_true() -> bool {
    true
}

fn default_lock_s() -> f64 {
    30.0
}

fn default_lock_days() -> f64 {
    30.0
}
