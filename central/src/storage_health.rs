//! Each unit's storage health for the fleet overview (`storage` in `GET /api/units`), from
//! what central knows already, with no question to the unit:
//!
//! - `oldest` and `newest`: the oldest and newest recording the unit holds over its cameras,
//!   from the last catalog it sent since central started (null before one), so `oldest` shows
//!   how far back its retention reaches;
//! - `state`: `fault` while a `storage_fault` alarm of the unit (its store failed to write) is
//!   not closed, else `warning` while a `storage_warning` alarm is not closed (retention is
//!   about to delete, or deleted, video central has not retrieved), else `ok`; `reason` is that
//!   alarm's message and `since` its time. Closing the alarm is how an operator says it was
//!   dealt with. Only the newest 500 new and 500 in-progress alarms are looked at.

use std::collections::HashMap;

use serde::Serialize;

use crate::alarms::{Alarm, AlarmState};
use crate::sync_hub::SyncHub;
use crate::time::rfc3339;

/// How many alarms of each open state are looked at.
const LOOKED_AT: u32 = 500;

/// A unit's `storage` in `GET /api/units`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StorageJson {
    /// The oldest recording the unit holds (RFC 3339), null before its first catalog.
    pub oldest: Option<String>,
    /// The newest recording it holds.
    pub newest: Option<String>,
    /// `ok`, `warning` or `fault`.
    pub state: &'static str,
    /// Why, when not `ok`: the unit's message.
    pub reason: Option<String>,
    /// When the alarm behind `state` was raised.
    pub since: Option<String>,
}

/// The state and reason from a unit's open (not closed) alarms, newest first: `(state,
/// reason, since_us)`.
pub fn state_of<'a>(open: impl IntoIterator<Item = &'a Alarm>) -> (&'static str, Option<String>, Option<i64>) {
    let mut worst: Option<(&'static str, &Alarm)> = None;
    for a in open {
        let level = match a.kind["Generic"]["name"].as_str() {
            Some("storage_fault") => "fault",
            Some("storage_warning") => "warning",
            _ => continue,
        };
        // The newest alarm of the worst level wins (the list is newest first).
        match worst {
            Some(("fault", _)) => {}
            Some(("warning", _)) if level == "warning" => {}
            _ => worst = Some((level, a)),
        }
    }
    match worst {
        None => ("ok", None, None),
        Some((level, a)) => {
            let detail = a.kind["Generic"]["detail"].as_str().unwrap_or_default();
            let since = crate::time::parse_rfc3339(&a.time).ok();
            (level, Some(message_of(detail)), since)
        }
    }
}

/// The message inside an event's detail as the unit writes it (`StorageWarning { message:
/// "…" }`), or the detail itself.
fn message_of(detail: &str) -> String {
    let inner = detail
        .split_once("message: \"")
        .and_then(|(_, rest)| rest.rsplit_once('"'))
        .map(|(m, _)| m.replace("\\\"", "\"").replace("\\\\", "\\"));
    inner.unwrap_or_else(|| detail.to_owned())
}

/// The storage health of each of `units` (a store failure is logged and leaves the state
/// `ok`, the times null).
pub async fn of_units(hub: &SyncHub, units: &[String]) -> HashMap<String, StorageJson> {
    let mut open: Vec<Alarm> = Vec::new();
    for state in [AlarmState::New, AlarmState::InProgress] {
        match hub.alarms().list(Some(state), LOOKED_AT).await {
            Ok(a) => open.extend(a),
            Err(e) => tracing::error!("cannot read the alarms for storage health: {e}"),
        }
    }
    open.sort_by_key(|a| std::cmp::Reverse(crate::time::parse_rfc3339(&a.time).unwrap_or(i64::MIN)));
    let mut out = HashMap::new();
    for unit in units {
        let (oldest, newest) = match hub.catalog(unit).await {
            Ok(Some(c)) => {
                let spans = c.cameras.iter().flat_map(|h| h.spans.iter());
                (spans.clone().map(|s| s.start_us).min(), spans.map(|s| s.end_us).max())
            }
            Ok(None) => (None, None),
            Err(e) => {
                tracing::error!(unit, "cannot read the unit's catalog: {e}");
                (None, None)
            }
        };
        let (state, reason, since) = state_of(open.iter().filter(|a| &a.unit == unit));
        out.insert(
            unit.clone(),
            StorageJson {
                oldest: oldest.map(rfc3339),
                newest: newest.map(rfc3339),
                state,
                reason,
                since: since.map(rfc3339),
            },
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn alarm(name: &str, detail: &str, time: &str) -> Alarm {
        Alarm {
            unit: "bus".into(),
            event_id: 1,
            time: time.into(),
            cameras: vec![],
            kind: json!({ "Generic": { "name": name, "detail": detail } }),
            state: AlarmState::New,
            changed_by: None,
            changed_at: None,
            comment: None,
        }
    }

    #[test]
    fn the_worst_open_storage_alarm_sets_the_state() {
        assert_eq!(state_of(&[]), ("ok", None, None));
        let other = alarm("rule:panic", "", "2026-11-26T10:00:00Z");
        assert_eq!(state_of([&other]).0, "ok");
        let warn = alarm(
            "storage_warning",
            "StorageWarning { message: \"disk \\\"a\\\" nearly full\" }",
            "2026-11-26T09:00:00Z",
        );
        let (state, reason, since) = state_of([&other, &warn]);
        assert_eq!((state, reason.as_deref()), ("warning", Some("disk \"a\" nearly full")));
        assert_eq!(since.map(rfc3339).as_deref(), Some("2026-11-26T09:00:00Z"));
        let fault = alarm("storage_fault", "StorageFault { message: \"EIO\" }", "2026-11-26T08:00:00Z");
        let newer_warn = alarm("storage_warning", "plain", "2026-11-26T11:00:00Z");
        assert_eq!(state_of([&newer_warn, &warn, &fault]).0, "fault", "a fault outweighs newer warnings");
        assert_eq!(state_of([&newer_warn, &warn]).1.as_deref(), Some("plain"), "the newest warning");
    }
}
