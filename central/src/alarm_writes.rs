//! Group commit of the units' events as alarms: a busy fleet sends hundreds of events a
//! second, and one transaction each would wait for one fsync each (3.3 ms on SQLite) and hold
//! the catalog's connection all along. The events that arrive while one batch commits go
//! together into the next: one transaction, one write number, one fsync.
//!
//! Nothing is made lazy: each caller is answered only after the transaction holding its
//! events committed, so a unit's events are acknowledged only once their alarms are durable.
//! If a batch fails, each caller's events are tried again in a transaction of their own, so
//! one bad write fails alone.

use std::sync::{Arc, mpsc};

use protocol::sync::RemoteEvent;
use tokio::sync::oneshot;

use crate::alarms::{Alarm, insert_events, tick};
use crate::catalog::{CatalogDb, CatalogError};

/// The most callers in one transaction.
const MAX_BATCH: usize = 512;

/// One caller's events and where its answer goes.
struct Pending {
    unit: String,
    events: Vec<RemoteEvent>,
    reply: oneshot::Sender<Result<Vec<Alarm>, CatalogError>>,
}

/// The queue of events to store as alarms (cheap to clone).
#[derive(Clone)]
pub(crate) struct AlarmWrites {
    tx: mpsc::Sender<Pending>,
}

impl AlarmWrites {
    /// Starts the thread that writes batches to `db` as node `node`; it ends when every handle
    /// is dropped.
    pub(crate) fn start(db: Arc<CatalogDb>, node: String) -> std::io::Result<AlarmWrites> {
        let (tx, rx) = mpsc::channel::<Pending>();
        std::thread::Builder::new().name("alarm-writes".into()).spawn(move || {
            while let Some(batch) = crate::batches::next_batch(&rx, MAX_BATCH) {
                write_batch(&db, &node, batch);
            }
        })?;
        Ok(AlarmWrites { tx })
    }

    /// Stores `unit`'s `events` in the next batch; the alarms that are new, once committed.
    pub(crate) async fn add(&self, unit: String, events: Vec<RemoteEvent>) -> Result<Vec<Alarm>, CatalogError> {
        let (reply, answer) = oneshot::channel();
        let stopped = || CatalogError::Stopped { part: crate::alarms::SCHEMA.part };
        self.tx.send(Pending { unit, events, reply }).map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

/// Writes `batch` in one transaction (each caller alone if that fails) and answers each caller.
fn write_batch(db: &CatalogDb, node: &str, batch: Vec<Pending>) {
    let (writes, replies): (Vec<_>, Vec<_>) = batch.into_iter().map(|p| ((p.unit, p.events), p.reply)).unzip();
    let together = db.transaction(|tx| {
        let seq = tick(tx)?;
        writes.iter().map(|(unit, events)| insert_events(tx, unit, events, seq, node)).collect::<Result<Vec<_>, _>>()
    });
    match together {
        Ok(added) => {
            for (reply, alarms) in replies.into_iter().zip(added) {
                let _ = reply.send(Ok(alarms));
            }
        }
        Err(e) => {
            if writes.len() > 1 {
                tracing::warn!("a batch of {} alarm writes failed ({e}); writing each alone", writes.len());
            }
            for ((unit, events), reply) in writes.iter().zip(replies) {
                let alone = db.transaction(|tx| {
                    let seq = tick(tx)?;
                    insert_events(tx, unit, events, seq, node)
                });
                let _ = reply.send(alone);
            }
        }
    }
}
