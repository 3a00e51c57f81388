//! What the technician's page knows of the link to central beyond up or down: the connection
//! itself (for the link test) and how far central has acknowledged each camera's log (for the
//! bytes the unit holds that central does not yet).

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;

use media_store::by_seq::{self, Limit};

use crate::recorder::DurableLogs;
use crate::sync_link::CENTRAL_CURSOR;

/// Shared by the uplink (which fills it) and the page (which reads it).
#[derive(Default)]
pub struct CentralLink {
    connection: Mutex<Option<quinn::Connection>>,
    /// Per camera: central holds every record up to this sequence number (this run).
    acknowledged: Mutex<HashMap<String, u64>>,
    /// One link test at a time.
    pub(crate) testing: tokio::sync::Mutex<()>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl CentralLink {
    /// The uplink is connected (welcomed) over `connection`, or no longer (`None`).
    pub fn set_connection(&self, connection: Option<quinn::Connection>) {
        *lock(&self.connection) = connection;
    }

    /// The connection to central, while there is one.
    pub fn connection(&self) -> Option<quinn::Connection> {
        lock(&self.connection).clone()
    }

    /// Central acknowledged `camera`'s log up to `up_to_seq`.
    pub fn acknowledged(&self, camera: &str, up_to_seq: u64) {
        let mut acked = lock(&self.acknowledged);
        let entry = acked.entry(camera.to_owned()).or_insert(up_to_seq);
        *entry = (*entry).max(up_to_seq);
    }

    /// Bytes of media of the `shared` cameras that are durable on the unit but that central has
    /// not acknowledged, as far as the unit knows (acknowledgements of this run, and of earlier
    /// runs as far as the catalog recorded them). Reads the store: call off the executor.
    pub fn pending_bytes(
        &self,
        store: &Path,
        durable: &DurableLogs,
        shared: &[String],
    ) -> Result<u64, media_store::StoreError> {
        let mut acked = lock(&self.acknowledged).clone();
        let catalog = media_store::catalog_path(store);
        if catalog.exists() {
            for (log, name, value, _) in media_store::catalog::Catalog::open_read_only(&catalog)?.cursors()? {
                if name == CENTRAL_CURSOR {
                    let entry = acked.entry(log).or_insert(value);
                    *entry = (*entry).max(value);
                }
            }
        }
        let durable = durable.borrow().clone();
        let mut pending = 0;
        for camera in shared {
            let Some(log) = durable.iter().find(|d| d.log == *camera) else { continue };
            let held = by_seq::holdings(store, camera, Limit::Durable(log), i64::MAX)?;
            let spans = held.spans.iter().map(|s| (s.first_seq, s.last_seq, s.bytes));
            pending += unacknowledged(spans, acked.get(camera).copied());
        }
        Ok(pending)
    }
}

/// Bytes of the spans `(first_seq, last_seq, bytes)` above `acked` (everything when nothing is
/// acknowledged); a span that straddles it counts in proportion.
pub fn unacknowledged(spans: impl Iterator<Item = (u64, u64, u64)>, acked: Option<u64>) -> u64 {
    spans
        .map(|(first, last, bytes)| match acked {
            None => bytes,
            Some(a) if a < first => bytes,
            Some(a) if a >= last => 0,
            Some(a) => {
                let records = u128::from(last - first + 1);
                (u128::from(bytes) * u128::from(last - a) / records) as u64
            }
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_what_central_has_not_acknowledged_counts() {
        let spans = || [(0, 9, 1000), (10, 19, 2000)].into_iter();
        assert_eq!(unacknowledged(spans(), None), 3000);
        assert_eq!(unacknowledged(spans(), Some(9)), 2000);
        assert_eq!(unacknowledged(spans(), Some(14)), 1000, "half of the straddled span");
        assert_eq!(unacknowledged(spans(), Some(19)), 0);
        assert_eq!(unacknowledged(spans(), Some(500)), 0);
    }

    #[test]
    fn acknowledgements_only_rise() {
        let link = CentralLink::default();
        link.acknowledged("front", 10);
        link.acknowledged("front", 5);
        assert_eq!(lock(&link.acknowledged).get("front"), Some(&10));
    }
}
