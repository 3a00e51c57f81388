//! Changes that open pages want to hear of at once (a new or changed alarm, a unit coming or
//! going, a retrieval finishing), published to every subscriber; `GET /api/stream`
//! (see [`crate::api_stream`]) sends them to browsers as server-sent events.

use serde_json::{Value, json};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use crate::alarms::Alarm;

/// How many events a slow subscriber may fall behind before it skips (it then reloads).
const BACKLOG: usize = 256;

/// One change.
#[derive(Debug, Clone, PartialEq)]
pub enum LiveEvent {
    /// An alarm was raised or changed state.
    Alarm(Alarm),
    /// A unit connected (`online`) or went away.
    Unit {
        /// The unit.
        unit: String,
        /// Whether it is connected now.
        online: bool,
    },
    /// A retrieval finished (done or failed).
    Retrieval {
        /// The retrieval's API id.
        id: i64,
        /// Its unit.
        unit: String,
        /// `done` or `failed`.
        state: String,
    },
}

impl LiveEvent {
    /// The unit it is about (subscribers see only units their user may see).
    pub fn unit(&self) -> &str {
        match self {
            LiveEvent::Alarm(a) => &a.unit,
            LiveEvent::Unit { unit, .. } | LiveEvent::Retrieval { unit, .. } => unit,
        }
    }

    /// The event's name on the stream: `alarm`, `unit` or `retrieval`.
    pub fn name(&self) -> &'static str {
        match self {
            LiveEvent::Alarm(_) => "alarm",
            LiveEvent::Unit { .. } => "unit",
            LiveEvent::Retrieval { .. } => "retrieval",
        }
    }

    /// The event's data on the stream.
    pub fn data(&self) -> Value {
        match self {
            LiveEvent::Alarm(a) => json!(a),
            LiveEvent::Unit { unit, online } => json!({ "unit": unit, "online": online }),
            LiveEvent::Retrieval { id, unit, state } => json!({ "id": id, "unit": unit, "state": state }),
        }
    }
}

/// The publisher (cheap to clone; every clone publishes to the same subscribers).
#[derive(Clone)]
pub struct LiveEvents {
    /// Everything: this node's changes and those of other nodes sharing the catalog (pages).
    tx: broadcast::Sender<LiveEvent>,
    /// This node's own changes only (webhooks: each change is delivered by the node that made it).
    local: broadcast::Sender<LiveEvent>,
    closed: CancellationToken,
}

impl Default for LiveEvents {
    fn default() -> LiveEvents {
        LiveEvents {
            tx: broadcast::channel(BACKLOG).0,
            local: broadcast::channel(BACKLOG).0,
            closed: CancellationToken::new(),
        }
    }
}

impl LiveEvents {
    /// Tells every subscriber of a change made at this node (nobody listening is fine).
    pub fn publish(&self, event: LiveEvent) {
        let _ = self.local.send(event.clone());
        let _ = self.tx.send(event);
    }

    /// Tells the subscribers of [`LiveEvents::subscribe`] (pages) of a change another node
    /// sharing the catalog made (see [`crate::alarm_poll`]).
    pub fn publish_from_peer(&self, event: LiveEvent) {
        let _ = self.tx.send(event);
    }

    /// A new subscriber, hearing of what is published from now on, at this node or another.
    pub fn subscribe(&self) -> broadcast::Receiver<LiveEvent> {
        self.tx.subscribe()
    }

    /// A new subscriber to this node's own changes only.
    pub fn subscribe_local(&self) -> broadcast::Receiver<LiveEvent> {
        self.local.subscribe()
    }

    /// Ends every subscriber's stream (central is shutting down: open event streams would
    /// otherwise keep the web server's graceful shutdown waiting forever).
    pub fn close(&self) {
        self.closed.cancel();
    }

    /// Completes once [`LiveEvents::close`] was called.
    pub async fn closed(&self) {
        self.closed.cancelled().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscribers_hear_what_is_published_after_they_subscribe() {
        let live = LiveEvents::default();
        live.publish(LiveEvent::Unit { unit: "early".into(), online: true });
        let mut rx = live.subscribe();
        live.publish(LiveEvent::Unit { unit: "bus".into(), online: false });
        let got = rx.try_recv().unwrap();
        assert_eq!((got.name(), got.unit()), ("unit", "bus"));
        assert_eq!(got.data(), json!({ "unit": "bus", "online": false }));
        assert!(rx.try_recv().is_err());
    }

    #[test]
    fn another_nodes_changes_reach_pages_but_not_local_subscribers() {
        let live = LiveEvents::default();
        let (mut pages, mut local) = (live.subscribe(), live.subscribe_local());
        live.publish_from_peer(LiveEvent::Unit { unit: "far".into(), online: true });
        live.publish(LiveEvent::Unit { unit: "near".into(), online: true });
        assert_eq!(pages.try_recv().unwrap().unit(), "far");
        assert_eq!(pages.try_recv().unwrap().unit(), "near");
        assert_eq!(local.try_recv().unwrap().unit(), "near", "only this node's own change");
        assert!(local.try_recv().is_err());
    }
}
