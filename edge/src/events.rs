//! The unit's events: things that happened to the vehicle or the unit (an input changed, the
//! ignition went off, the supply dropped, a camera was lost …), numbered in order, kept in a
//! bounded ring in memory and broadcast to subscribers. `GET /api/events?since=ID` serves the
//! ring; forwarding to central and the rule engine subscribe.
//!
//! Ids start at 1 with every start of the process and only grow; a reader that sees ids lower
//! than the last it had knows the unit restarted.

use std::collections::VecDeque;
use std::sync::Mutex;

use protocol::io::Input;
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

/// How many events the ring keeps by default; older ones are forgotten.
pub const DEFAULT_CAPACITY: usize = 1000;

/// One event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EdgeEvent {
    /// Its number: 1 for the first event since the process started, then one more each.
    pub id: u64,
    /// When it happened, µs since the Unix epoch (the unit's wall clock).
    pub time_us: i64,
    /// What happened.
    pub kind: EventKind,
}

/// What happened. Serialized externally tagged (`"IgnitionOff"`,
/// `{"InputChanged": {"input": "Panic", "active": true}}`), which postcard can carry too.
/// Variants are only ever added at the end.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventKind {
    /// An input of the I/O companion other than the ignition changed.
    InputChanged {
        /// Which input.
        input: Input,
        /// Its new state.
        active: bool,
    },
    /// The ignition went off: the run-on starts.
    IgnitionOff,
    /// The ignition came on.
    IgnitionOn,
    /// The supply voltage dropped below the companion's warning threshold.
    PowerWarning {
        /// The supply voltage the board measured.
        millivolts: u16,
    },
    /// The supply voltage is back.
    PowerRestored {
        /// The supply voltage the board measured.
        millivolts: u16,
    },
    /// No heartbeat or status from the I/O companion for the link timeout.
    IoLinkLost,
    /// The I/O companion is heard again after it was lost.
    IoLinkRestored,
    /// A camera stopped delivering (or never started).
    CameraLost {
        /// The camera's id.
        camera: String,
        /// Why.
        reason: String,
    },
    /// A camera that was lost streams again.
    CameraRestored {
        /// The camera's id.
        camera: String,
    },
    /// The store failed to write.
    StorageFault {
        /// The store's error.
        message: String,
    },
    /// Anything else (rules, operators, future sources).
    Generic {
        /// Who raised it.
        source: String,
        /// What it says.
        text: String,
    },
    /// A camera's motion detector saw motion begin.
    MotionStarted {
        /// The camera's id.
        camera: String,
    },
    /// A camera's scene is still again.
    MotionStopped {
        /// The camera's id.
        camera: String,
    },
    /// A generic message (`[generic_events]`) matched a pattern.
    GenericMatched {
        /// The pattern's name.
        pattern: String,
        /// Where it came from (`tcp:ADDR` or `udp:ADDR`).
        source: String,
        /// The message.
        text: String,
    },
    /// A `[[rule]]` with `notify_central` fired: an alarm for central.
    RuleAlarm {
        /// The rule's name.
        rule: String,
        /// The cameras it records or locks.
        cameras: Vec<String>,
        /// The id of the event that fired it.
        cause: u64,
    },
    /// With `[store] keep_unretrieved`: retention will soon have to delete, or has deleted,
    /// recordings central has not retrieved.
    StorageWarning {
        /// What is at risk and what to do.
        message: String,
    },
    /// A notification in a camera's ONVIF metadata stream (`tt:Event`), e.g. its own motion
    /// detector (`RuleEngine/CellMotionDetector/Motion`, `IsMotion`) or a digital input
    /// (`Device/Trigger/DigitalInput`, `LogicalState`).
    OnvifEvent {
        /// The camera's id.
        camera: String,
        /// The topic, namespace prefixes removed.
        topic: String,
        /// The property operation (`Initialized`, `Changed`, `Deleted`), if the camera gave one.
        operation: Option<String>,
        /// The notification's source items (name → value).
        source: std::collections::BTreeMap<String, String>,
        /// Its data items (name → value).
        data: std::collections::BTreeMap<String, String>,
    },
}

struct Ring {
    next_id: u64,
    events: VecDeque<EdgeEvent>,
}

/// The ring of recent events and the broadcast of new ones.
pub struct EventLog {
    ring: Mutex<Ring>,
    capacity: usize,
    tx: broadcast::Sender<EdgeEvent>,
}

impl Default for EventLog {
    fn default() -> Self {
        EventLog::new(DEFAULT_CAPACITY)
    }
}

impl EventLog {
    /// An empty log that keeps the last `capacity` events (at least one).
    pub fn new(capacity: usize) -> EventLog {
        let capacity = capacity.max(1);
        let (tx, _) = broadcast::channel(256);
        EventLog { ring: Mutex::new(Ring { next_id: 1, events: VecDeque::with_capacity(capacity) }), capacity, tx }
    }

    /// Records that `kind` happened now; returns the event.
    pub fn emit(&self, kind: EventKind) -> EdgeEvent {
        self.emit_at(crate::camera::now_us(), kind)
    }

    /// Records that `kind` happened at `time_us`; returns the event.
    pub fn emit_at(&self, time_us: i64, kind: EventKind) -> EdgeEvent {
        let mut ring = self.ring.lock().unwrap_or_else(|p| p.into_inner());
        let event = EdgeEvent { id: ring.next_id, time_us, kind };
        ring.next_id += 1;
        if ring.events.len() == self.capacity {
            ring.events.pop_front();
        }
        ring.events.push_back(event.clone());
        // Sent under the lock so subscribers see events in id order.
        let _ = self.tx.send(event.clone());
        drop(ring);
        tracing::info!(id = event.id, "event: {:?}", event.kind);
        event
    }

    /// The events still in the ring whose id is greater than `since`, oldest first.
    pub fn since(&self, since: u64) -> Vec<EdgeEvent> {
        let ring = self.ring.lock().unwrap_or_else(|p| p.into_inner());
        ring.events.iter().filter(|e| e.id > since).cloned().collect()
    }

    /// The id of the last event, 0 if none yet.
    pub fn last_id(&self) -> u64 {
        self.ring.lock().unwrap_or_else(|p| p.into_inner()).next_id - 1
    }

    /// New events from now on. A subscriber that falls behind by more than 256 events gets
    /// `Lagged` and can catch up with [`EventLog::since`].
    pub fn subscribe(&self) -> broadcast::Receiver<EdgeEvent> {
        self.tx.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_grow_and_the_ring_forgets_the_oldest() {
        let log = EventLog::new(3);
        assert_eq!(log.last_id(), 0);
        let mut rx = log.subscribe();
        for n in 0..5 {
            log.emit_at(n, EventKind::Generic { source: "test".into(), text: n.to_string() });
        }
        let all = log.since(0);
        assert_eq!(all.iter().map(|e| e.id).collect::<Vec<_>>(), [3, 4, 5]);
        assert_eq!(log.since(4).len(), 1);
        assert!(log.since(5).is_empty());
        assert_eq!(log.last_id(), 5);
        assert_eq!(rx.try_recv().unwrap().id, 1, "subscribers get every event in order");
    }

    #[test]
    fn json_shape() {
        let event =
            EdgeEvent { id: 7, time_us: 1, kind: EventKind::InputChanged { input: Input::Panic, active: true } };
        let json = serde_json::to_value(&event).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"id": 7, "time_us": 1, "kind": {"InputChanged": {"input": "Panic", "active": true}}})
        );
        let door = serde_json::to_value(EventKind::InputChanged { input: Input::Door(2), active: false }).unwrap();
        assert_eq!(door, serde_json::json!({"InputChanged": {"input": {"Door": 2}, "active": false}}));
        assert_eq!(serde_json::to_value(EventKind::IgnitionOff).unwrap(), "IgnitionOff");
        let back: EdgeEvent = serde_json::from_value(json).unwrap();
        assert_eq!(back, event);
    }
}
