//! Units' hellos into the registry, group-committed on a catalog connection of their own.
//!
//! Each hello must be in the registry before its unit is served (the unit and the cameras it
//! shares), and used to be one transaction with its own fsync, behind the registry's one mutex
//! that `GET /api/units` needs too: a fleet reconnecting at once (after a central restart)
//! queued seconds of them. Here hellos that arrive while a batch commits go together into the
//! next one ([`Registry::record_hellos`]), on a connection the API does not share; each caller
//! is answered once its hello is durable, as before.

use std::sync::mpsc;

use protocol::interconnect::Hello;

use crate::registry::{Registry, RegistryError};

/// The most hellos in one transaction.
const MAX_BATCH: usize = 256;

type Reply = tokio::sync::oneshot::Sender<Result<(), String>>;

/// The queue of hellos to record (cheap to clone).
#[derive(Clone)]
pub struct Hellos {
    tx: mpsc::Sender<(Hello, Reply)>,
}

impl Hellos {
    /// Starts the thread that records hellos in `registry` (opened for it alone). It ends when
    /// every handle is dropped.
    pub fn start(registry: Registry) -> std::io::Result<Hellos> {
        let (tx, rx) = mpsc::channel::<(Hello, Reply)>();
        std::thread::Builder::new().name("hellos".into()).spawn(move || {
            while let Some(batch) = crate::batches::next_batch(&rx, MAX_BATCH) {
                record(&registry, batch);
            }
        })?;
        Ok(Hellos { tx })
    }

    /// Records `hello`; returns once it is durable.
    pub async fn record(&self, hello: Hello) -> Result<(), String> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.tx.send((hello, reply)).map_err(|_| "the registry's hello writer has stopped".to_owned())?;
        answer.await.map_err(|_| "the registry's hello writer has stopped".to_owned())?
    }
}

/// Records a batch in one transaction; when that fails, each hello alone, so that one
/// hello's failure is its own.
fn record(registry: &Registry, batch: Vec<(Hello, Reply)>) {
    let hellos: Vec<Hello> = batch.iter().map(|(h, _)| h.clone()).collect();
    match registry.record_hellos(&hellos) {
        Ok(()) => batch.into_iter().for_each(|(_, reply)| {
            let _ = reply.send(Ok(()));
        }),
        Err(e) if batch.len() == 1 => batch.into_iter().for_each(|(_, reply)| {
            let _ = reply.send(Err(e.to_string()));
        }),
        Err(e) => {
            tracing::warn!("cannot record {} hellos together ({e}); recording each alone", batch.len());
            for (hello, reply) in batch {
                let _ = reply.send(
                    registry.record_hellos(std::slice::from_ref(&hello)).map_err(|e: RegistryError| e.to_string()),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::CatalogLocation;
    use crate::registry::tests::hello;

    fn many_hellos_at_once_are_all_recorded_with_their_latest_cameras(at: &CatalogLocation) {
        let hellos = Hellos::start(Registry::open(at).unwrap()).unwrap();
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).build().unwrap();
        runtime.block_on(async {
            let mut tasks = Vec::new();
            for i in 0..200 {
                let h = hellos.clone();
                tasks.push(tokio::spawn(
                    async move { h.record(hello(&format!("bus-{i:03}"), &["front", "rear"])).await },
                ));
            }
            for t in tasks {
                t.await.unwrap().unwrap();
            }
            // Unchanged cameras stay; changed ones are replaced.
            hellos.record(hello("bus-007", &["front", "rear"])).await.unwrap();
            hellos.record(hello("bus-008", &["door"])).await.unwrap();
        });
        let units = Registry::open(at).unwrap().units().unwrap();
        assert_eq!(units.len(), 200);
        assert_eq!(units[7].cameras, vec![("front".into(), "FRONT".into()), ("rear".into(), "REAR".into())]);
        assert_eq!(units[8].cameras, vec![("door".into(), "DOOR".into())]);
        assert!(units.iter().all(|u| u.last_hello > 0));
    }

    crate::on_both_backends!(
        many_hellos_at_once_are_all_recorded_with_their_latest_cameras,
        super::many_hellos_at_once_are_all_recorded_with_their_latest_cameras
    );
}
