//! Bytes each unit has sent central over QUIC since central started, over all its
//! connections: read from quinn's own counters when asked, so receiving costs nothing extra.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Every unit's received bytes: connections that ended, and those open now.
#[derive(Default)]
pub struct UnitTraffic {
    units: Mutex<HashMap<String, Links>>,
}

#[derive(Default)]
struct Links {
    /// UDP bytes received on the unit's connections that have ended.
    closed_bytes: u64,
    open: Vec<quinn::Connection>,
}

/// Counts an open connection of a unit until dropped (then its bytes join the closed ones).
pub struct OpenLink {
    traffic: Arc<UnitTraffic>,
    unit: String,
    connection: quinn::Connection,
}

impl UnitTraffic {
    /// Counts `connection` as `unit`'s until the returned guard is dropped.
    pub fn open(self: &Arc<Self>, unit: &str, connection: &quinn::Connection) -> OpenLink {
        self.lock().entry(unit.to_owned()).or_default().open.push(connection.clone());
        OpenLink { traffic: self.clone(), unit: unit.to_owned(), connection: connection.clone() }
    }

    /// By unit: UDP bytes received from it since central started, and its connections open now.
    pub fn received(&self) -> Vec<(String, u64, usize)> {
        let units = self.lock();
        let mut out: Vec<_> = units
            .iter()
            .map(|(unit, links)| {
                let open: u64 = links.open.iter().map(|c| c.stats().udp_rx.bytes).sum();
                (unit.clone(), links.closed_bytes + open, links.open.len())
            })
            .collect();
        out.sort();
        out
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Links>> {
        self.units.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for OpenLink {
    fn drop(&mut self) {
        let mut units = self.traffic.lock();
        let Some(links) = units.get_mut(&self.unit) else { return };
        let id = self.connection.stable_id();
        if let Some(i) = links.open.iter().position(|c| c.stable_id() == id) {
            // Under the same lock as the removal: a reader never sees the bytes go missing.
            links.closed_bytes += links.open.swap_remove(i).stats().udp_rx.bytes;
        }
    }
}
