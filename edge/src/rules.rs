//! The rule engine: `[[rule]]`s turn events into actions (record cameras, evidence-lock a
//! window, raise an alarm at central, switch an output). [`Rule::phase`] and [`Rule::actions`]
//! are pure; [`run`] is the thin glue that follows the unit's events and carries actions out.

use std::sync::Arc;

use protocol::io::Input;
use tokio_util::sync::CancellationToken;

use crate::event_config::{RuleConfig, TriggerKind};
use crate::events::{EdgeEvent, EventKind};
use crate::io_link::IoHandle;
use crate::recorder::RecorderTx;
use crate::recording::triggers::{Holds, UNTIL_ENDED};
use crate::status::UnitStatus;

/// Parses an input's short name: `ignition`, `panic`, `doorN`, `inputN`.
pub fn parse_input(name: &str) -> Option<Input> {
    match name {
        "ignition" => Some(Input::Ignition),
        "panic" => Some(Input::Panic),
        _ => {
            if let Some(n) = name.strip_prefix("door") {
                n.parse().ok().map(Input::Door)
            } else {
                name.strip_prefix("input").and_then(|n| n.parse().ok()).map(Input::Generic)
            }
        }
    }
}

/// What an event means to a rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// A lasting trigger began (an input went active, motion started).
    Start,
    /// A lasting trigger ended.
    End,
    /// A trigger without duration happened.
    Instant,
}

/// Something to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Set the rule's hold on a camera until `until_us` ([`UNTIL_ENDED`]: until the trigger ends).
    Hold {
        /// The camera's id.
        camera: String,
        /// Until when, µs since the Unix epoch.
        until_us: i64,
    },
    /// Evidence-lock a camera's recordings between two times.
    Lock {
        /// The camera's id.
        camera: String,
        /// Start, µs since the Unix epoch.
        start_us: i64,
        /// End.
        end_us: i64,
        /// When the lock expires.
        expires_us: i64,
    },
    /// Raise an alarm at central.
    Notify {
        /// The cameras concerned.
        cameras: Vec<String>,
    },
    /// Switch an output of the I/O companion.
    Output {
        /// The output's number.
        output: u8,
        /// Its new level.
        on: bool,
    },
}

/// A checked `[[rule]]`.
#[derive(Debug, Clone)]
pub struct Rule {
    config: RuleConfig,
    input: Option<Input>,
}

fn secs(s: f64) -> i64 {
    (s * 1e6) as i64
}

impl Rule {
    /// A rule from its (checked) configuration.
    pub fn new(config: RuleConfig) -> Rule {
        let input = config.input.as_deref().and_then(parse_input);
        Rule { config, input }
    }

    /// The rule's name.
    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// What `event` means to this rule, if anything.
    pub fn phase(&self, event: &EventKind) -> Option<Phase> {
        let c = &self.config;
        let camera_ok = |camera: &String| c.camera.as_ref().is_none_or(|want| want == camera);
        match (c.trigger, event) {
            (TriggerKind::Input, EventKind::InputChanged { input, active }) if Some(*input) == self.input => {
                Some(if *active == c.active { Phase::Start } else { Phase::End })
            }
            // The ignition is reported as its own events.
            (TriggerKind::Input, EventKind::IgnitionOn) if self.input == Some(Input::Ignition) => {
                Some(if c.active { Phase::Start } else { Phase::End })
            }
            (TriggerKind::Input, EventKind::IgnitionOff) if self.input == Some(Input::Ignition) => {
                Some(if c.active { Phase::End } else { Phase::Start })
            }
            // Inputs are unknown without the board: a lasting input rule ends rather than
            // recording until the link comes back.
            (TriggerKind::Input, EventKind::IoLinkLost) => Some(Phase::End),
            (TriggerKind::Motion, EventKind::MotionStarted { camera }) if camera_ok(camera) => Some(Phase::Start),
            (TriggerKind::Motion, EventKind::MotionStopped { camera }) if camera_ok(camera) => Some(Phase::End),
            (TriggerKind::Generic, EventKind::GenericMatched { pattern, .. })
                if c.pattern.as_ref().is_none_or(|p| p == pattern) =>
            {
                Some(Phase::Instant)
            }
            (TriggerKind::CameraLost, EventKind::CameraLost { camera, .. })
            | (TriggerKind::CameraRestored, EventKind::CameraRestored { camera })
                if camera_ok(camera) =>
            {
                Some(Phase::Instant)
            }
            (TriggerKind::Onvif, EventKind::OnvifEvent { camera, topic, .. })
                if camera_ok(camera) && c.topic.as_ref().is_none_or(|want| topic.contains(want.as_str())) =>
            {
                Some(onvif_phase(event))
            }
            (TriggerKind::StorageFault, EventKind::StorageFault { .. })
            | (TriggerKind::IgnitionOff, EventKind::IgnitionOff)
            | (TriggerKind::IgnitionOn, EventKind::IgnitionOn)
            | (TriggerKind::PowerWarning, EventKind::PowerWarning { .. })
            | (TriggerKind::IoLinkLost, EventKind::IoLinkLost) => Some(Phase::Instant),
            _ => None,
        }
    }

    /// What to do in `phase` of the trigger at `time_us`.
    pub fn actions(&self, phase: Phase, time_us: i64) -> Vec<Action> {
        let c = &self.config;
        let mut out = Vec::new();
        let hold_until = match (phase, c.record_for_s) {
            (Phase::Start | Phase::Instant, Some(s)) => Some(time_us + secs(s)),
            (Phase::Start, None) => Some(UNTIL_ENDED),
            (Phase::Instant, None) => Some(time_us),
            (Phase::End, None) => Some(time_us),
            // A fixed length is not cut short when the trigger ends.
            (Phase::End, Some(_)) => None,
        };
        if let Some(until_us) = hold_until {
            out.extend(c.record.iter().map(|camera| Action::Hold { camera: camera.clone(), until_us }));
        }
        if phase == Phase::End {
            return out;
        }
        out.extend(c.lock.iter().map(|camera| Action::Lock {
            camera: camera.clone(),
            start_us: time_us - secs(c.lock_before_s),
            end_us: time_us + secs(c.lock_after_s),
            expires_us: time_us.saturating_add(secs(c.lock_days * 86_400.0)),
        }));
        if c.notify_central {
            let mut cameras: Vec<String> = c.record.iter().chain(&c.lock).cloned().collect();
            cameras.sort();
            cameras.dedup();
            out.push(Action::Notify { cameras });
        }
        if let Some(output) = c.set_output {
            out.push(Action::Output { output, on: c.output_on });
        }
        out
    }
}

/// An ONVIF event's phase: a boolean data item makes it lasting (`true` starts, `false` or a
/// deleted property ends), otherwise it is instant.
fn onvif_phase(event: &EventKind) -> Phase {
    let EventKind::OnvifEvent { operation, data, .. } = event else { return Phase::Instant };
    let notification = crate::onvif_metadata::Notification {
        topic: String::new(),
        operation: operation.clone(),
        source: Default::default(),
        data: data.clone(),
    };
    match notification.state() {
        Some(true) => Phase::Start,
        Some(false) => Phase::End,
        None => Phase::Instant,
    }
}

/// What the rule engine acts on.
pub struct RuleEngine {
    /// The rules, in configuration order.
    pub rules: Vec<Rule>,
    /// The cameras' ids with their holds, in configuration order.
    pub holds: Vec<(String, Arc<Holds>)>,
    /// The unit's status (its events).
    pub status: Arc<UnitStatus>,
    /// Where locks go.
    pub recorder: RecorderTx,
    /// The I/O companion, if the unit has one.
    pub io: Option<IoHandle>,
}

impl RuleEngine {
    /// Follows the unit's events until `shutdown`, carrying out the rules' actions.
    pub async fn run(self, shutdown: CancellationToken) {
        if self.rules.is_empty() {
            return;
        }
        let mut events = self.status.events.subscribe();
        loop {
            let event = tokio::select! {
                e = events.recv() => e,
                () = shutdown.cancelled() => return,
            };
            match event {
                Ok(event) => self.event(&event),
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!("rules: {n} events were missed (too many at once)");
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            }
        }
    }

    fn event(&self, event: &EdgeEvent) {
        for rule in &self.rules {
            let Some(phase) = rule.phase(&event.kind) else { continue };
            tracing::info!(rule = rule.name(), event = event.id, ?phase, "rule fired");
            for action in rule.actions(phase, event.time_us) {
                self.act(rule, event, action);
            }
        }
    }

    fn act(&self, rule: &Rule, event: &EdgeEvent, action: Action) {
        match action {
            Action::Hold { camera, until_us } => {
                if let Some((_, holds)) = self.holds.iter().find(|(id, _)| *id == camera) {
                    holds.hold(&format!("rule:{}", rule.name()), until_us);
                }
            }
            Action::Lock { camera, start_us, end_us, expires_us } => {
                // A camera's sub stream is its video too.
                let sub = self.status.sub_stream_of(&camera);
                for camera in std::iter::once(camera).chain(sub) {
                    let recorder = self.recorder.clone();
                    let reason = format!("rule {} (event {})", rule.name(), event.id);
                    tokio::spawn(async move {
                        if let Err(e) = recorder.lock(&camera, start_us, end_us, expires_us, &reason).await {
                            tracing::error!(camera, "rules: cannot lock recordings: {e}");
                        }
                    });
                }
            }
            Action::Notify { cameras } => {
                self.status.events.emit(EventKind::RuleAlarm {
                    rule: rule.name().to_owned(),
                    cameras,
                    cause: event.id,
                });
            }
            Action::Output { output, on } => match self.io.clone() {
                Some(io) => {
                    let name = rule.name().to_owned();
                    tokio::spawn(async move {
                        if let Err(e) = io.set_output(output, on).await {
                            tracing::warn!(rule = name, output, "rules: cannot switch the output: {e}");
                        }
                    });
                }
                None => tracing::warn!(rule = rule.name(), "rules: no I/O companion to switch output {output}"),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(toml_text: &str) -> Rule {
        let config: RuleConfig = toml::from_str(toml_text).unwrap();
        Rule::new(config)
    }

    #[test]
    fn inputs_parse() {
        assert_eq!(parse_input("panic"), Some(Input::Panic));
        assert_eq!(parse_input("door2"), Some(Input::Door(2)));
        assert_eq!(parse_input("input7"), Some(Input::Generic(7)));
        assert_eq!(parse_input("ignition"), Some(Input::Ignition));
        assert_eq!(parse_input("door"), None);
        assert_eq!(parse_input("light"), None);
    }

    #[test]
    fn an_input_rule_records_while_active_and_acts_once() {
        let r = rule(
            "name = \"panic\"\ntrigger = \"input\"\ninput = \"panic\"\nrecord = [\"front\"]\nlock = [\"front\"]\n\
             lock_before_s = 10\nlock_after_s = 20\nnotify_central = true\nset_output = 2\n",
        );
        let pressed = EventKind::InputChanged { input: Input::Panic, active: true };
        let released = EventKind::InputChanged { input: Input::Panic, active: false };
        assert_eq!(r.phase(&pressed), Some(Phase::Start));
        assert_eq!(r.phase(&released), Some(Phase::End));
        assert_eq!(r.phase(&EventKind::InputChanged { input: Input::Door(0), active: true }), None);
        assert_eq!(r.phase(&EventKind::IoLinkLost), Some(Phase::End), "a lost board ends it");
        let t = 100_000_000;
        assert_eq!(
            r.actions(Phase::Start, t),
            [
                Action::Hold { camera: "front".into(), until_us: UNTIL_ENDED },
                Action::Lock {
                    camera: "front".into(),
                    start_us: t - 10_000_000,
                    end_us: t + 20_000_000,
                    expires_us: t + 30 * 86_400_000_000
                },
                Action::Notify { cameras: vec!["front".into()] },
                Action::Output { output: 2, on: true },
            ]
        );
        assert_eq!(r.actions(Phase::End, t + 5), [Action::Hold { camera: "front".into(), until_us: t + 5 }]);
    }

    #[test]
    fn instant_triggers_and_fixed_lengths() {
        let r = rule(
            "name = \"g\"\ntrigger = \"generic\"\npattern = \"door\"\nrecord = [\"a\", \"b\"]\nrecord_for_s = 8\n",
        );
        let matched =
            |p: &str| EventKind::GenericMatched { pattern: p.into(), source: "tcp:x".into(), text: "t".into() };
        assert_eq!(r.phase(&matched("door")), Some(Phase::Instant));
        assert_eq!(r.phase(&matched("other")), None);
        assert_eq!(
            r.actions(Phase::Instant, 0),
            [
                Action::Hold { camera: "a".into(), until_us: 8_000_000 },
                Action::Hold { camera: "b".into(), until_us: 8_000_000 }
            ]
        );
        assert!(r.actions(Phase::End, 1).is_empty(), "a fixed length is not cut short");
        let m = rule("name = \"m\"\ntrigger = \"motion\"\ncamera = \"a\"\nset_output = 1\noutput_on = false\n");
        assert_eq!(m.phase(&EventKind::MotionStarted { camera: "a".into() }), Some(Phase::Start));
        assert_eq!(m.phase(&EventKind::MotionStopped { camera: "a".into() }), Some(Phase::End));
        assert_eq!(m.phase(&EventKind::MotionStarted { camera: "b".into() }), None);
        assert_eq!(m.actions(Phase::Start, 0), [Action::Output { output: 1, on: false }]);
        let lost = rule("name = \"l\"\ntrigger = \"camera_lost\"\nnotify_central = true\n");
        assert_eq!(lost.phase(&EventKind::CameraLost { camera: "x".into(), reason: "r".into() }), Some(Phase::Instant));
        assert_eq!(lost.phase(&EventKind::IgnitionOff), None);
    }

    #[test]
    fn onvif_events_match_by_camera_and_topic() {
        let r = rule(
            "name = \"o\"\ntrigger = \"onvif\"\ncamera = \"front\"\ntopic = \"CellMotionDetector/Motion\"\nrecord = [\"front\"]\n",
        );
        let event = |camera: &str, topic: &str, op: Option<&str>, data: &[(&str, &str)]| EventKind::OnvifEvent {
            camera: camera.into(),
            topic: topic.into(),
            operation: op.map(Into::into),
            source: Default::default(),
            data: data.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect(),
        };
        let motion = "RuleEngine/CellMotionDetector/Motion";
        assert_eq!(r.phase(&event("front", motion, Some("Changed"), &[("IsMotion", "true")])), Some(Phase::Start));
        assert_eq!(r.phase(&event("front", motion, Some("Changed"), &[("IsMotion", "false")])), Some(Phase::End));
        assert_eq!(r.phase(&event("front", motion, Some("Deleted"), &[("IsMotion", "true")])), Some(Phase::End));
        assert_eq!(r.phase(&event("front", motion, None, &[("Count", "3")])), Some(Phase::Instant));
        assert_eq!(r.phase(&event("rear", motion, None, &[("IsMotion", "true")])), None, "another camera");
        assert_eq!(r.phase(&event("front", "Device/Trigger/DigitalInput", None, &[])), None, "another topic");
        assert_eq!(r.phase(&EventKind::MotionStarted { camera: "front".into() }), None, "the unit's own motion");
        let any = rule("name = \"a\"\ntrigger = \"onvif\"\nnotify_central = true\n");
        let input = event("rear", "Device/Trigger/DigitalInput", Some("Initialized"), &[("LogicalState", "true")]);
        assert_eq!(any.phase(&input), Some(Phase::Start));
        assert_eq!(
            r.actions(Phase::Start, 7),
            [Action::Hold { camera: "front".into(), until_us: UNTIL_ENDED }],
            "recorded while the camera says there is motion"
        );
    }

    #[test]
    fn the_ignition_as_an_input() {
        let r = rule("name = \"i\"\ntrigger = \"input\"\ninput = \"ignition\"\nactive = false\nrecord = [\"a\"]\n");
        assert_eq!(r.phase(&EventKind::IgnitionOff), Some(Phase::Start));
        assert_eq!(r.phase(&EventKind::IgnitionOn), Some(Phase::End));
    }
}
