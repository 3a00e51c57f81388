//! `GET /api/stream`: server-sent events telling an open page what changed, so it refreshes
//! that part at once instead of at its next poll. Each event's data is JSON:
//!
//! - `ready` `{}`: the stream is live (sent first; what happens from then on is sent).
//! - `alarm` (an alarm as `GET /api/alarms` shows it): raised, acknowledged or closed.
//! - `unit` `{ "unit", "online" }`: a unit connected or went away (noticed within a second).
//! - `retrieval` `{ "id", "unit", "state" }`: a retrieval finished, `done` or `failed`.
//! - `resync` `{}`: the client fell behind and missed events; it should reload everything.
//!
//! Only events about units the user may see are sent.

use std::collections::{BTreeSet, VecDeque};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Extension;
use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use tokio::sync::broadcast::{Receiver, error::RecvError};

use crate::accounts::Account;
use crate::fleet::Fleet;
use crate::live_events::{LiveEvent, LiveEvents};
use crate::web::WebState;

/// How often the fleet is looked at for units coming and going.
const FLEET_CHECK: Duration = Duration::from_secs(1);

/// One client's feed.
struct Feed {
    live: LiveEvents,
    rx: Receiver<LiveEvent>,
    who: Account,
    fleet: Arc<Fleet>,
    online: BTreeSet<String>,
    tick: tokio::time::Interval,
    queued: VecDeque<Event>,
}

fn sse(event: &LiveEvent) -> Event {
    Event::default().event(event.name()).data(event.data().to_string())
}

impl Feed {
    /// The units the user may see that are connected now.
    fn connected(&self) -> BTreeSet<String> {
        self.fleet.connected().into_iter().filter(|u| self.who.sees(u)).collect()
    }

    /// The next event to send; `None` when central shuts down.
    async fn next(&mut self) -> Option<Event> {
        loop {
            if let Some(e) = self.queued.pop_front() {
                return Some(e);
            }
            tokio::select! {
                () = self.live.closed() => return None,
                got = self.rx.recv() => match got {
                    Ok(e) if self.who.sees(e.unit()) => return Some(sse(&e)),
                    Ok(_) => {}
                    Err(RecvError::Lagged(_)) => return Some(Event::default().event("resync").data("{}")),
                    Err(RecvError::Closed) => return None,
                },
                _ = self.tick.tick() => {
                    let now = self.connected();
                    for unit in now.difference(&self.online) {
                        self.queued.push_back(sse(&LiveEvent::Unit { unit: unit.clone(), online: true }));
                    }
                    for unit in self.online.difference(&now) {
                        self.queued.push_back(sse(&LiveEvent::Unit { unit: unit.clone(), online: false }));
                    }
                    self.online = now;
                }
            }
        }
    }
}

/// `GET /api/stream` (ends when central shuts down).
pub async fn stream(State(state): State<WebState>, Extension(who): Extension<Account>) -> Response {
    let mut tick = tokio::time::interval(FLEET_CHECK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let live = state.hub.store().live().clone();
    let mut feed = Feed {
        rx: live.subscribe(),
        live,
        who,
        fleet: state.fleet.clone(),
        online: BTreeSet::new(),
        tick,
        queued: VecDeque::from([Event::default().event("ready").data("{}")]),
    };
    feed.online = feed.connected();
    let events = futures::stream::unfold(feed, |mut feed| async move {
        let event = feed.next().await?;
        Some((Ok::<_, Infallible>(event), feed))
    });
    Sse::new(events).keep_alive(KeepAlive::default()).into_response()
}
