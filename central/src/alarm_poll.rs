//! Open pages at every node hear of alarms raised or changed through the other nodes that
//! share the catalog: each node looks for alarm writes newer than the last it saw every
//! [`INTERVAL`] ([`Alarms::changed_since`]) and publishes those another node made to its own
//! pages ([`LiveEvents::publish_from_peer`]: not to its webhooks, which the node that made the
//! change serves). Its own changes it published when it made them.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::alarms::Alarms;
use crate::live_events::{LiveEvent, LiveEvents};

/// How often the catalog is asked.
pub const INTERVAL: Duration = Duration::from_millis(500);

/// Publishes the other nodes' alarm changes to `live` until `shutdown`.
pub async fn run(alarms: Arc<Alarms>, live: LiveEvents, shutdown: CancellationToken) {
    let mut seen = loop {
        match alarms.last_seq().await {
            Ok(n) => break n,
            Err(e) => tracing::warn!("cannot read the alarms' write number (trying again): {e}"),
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(INTERVAL) => {}
        }
    };
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(INTERVAL) => {}
        }
        match alarms.changed_since(seen).await {
            Ok(changes) => {
                for c in changes {
                    seen = seen.max(c.seq);
                    if c.node != alarms.node() {
                        live.publish_from_peer(LiveEvent::Alarm(c.alarm));
                    }
                }
            }
            Err(e) => tracing::warn!("cannot read the alarms other nodes changed: {e}"),
        }
    }
}
