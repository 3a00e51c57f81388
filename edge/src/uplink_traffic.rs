//! The link to central as `/metrics` shows it: how often it came up, and the bytes sent and
//! received over all its connections since the unit started, read from quinn's own counters.

use std::sync::Mutex;

/// The uplink's connections: those that ended, summed, and the one open now.
#[derive(Default)]
pub struct UplinkTraffic {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    connects: u64,
    closed_sent: u64,
    closed_received: u64,
    open: Option<quinn::Connection>,
}

/// What [`UplinkTraffic::totals`] reports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UplinkTotals {
    /// Connections to central that came up.
    pub connects: u64,
    /// UDP bytes sent to central.
    pub sent_bytes: u64,
    /// UDP bytes received from central.
    pub received_bytes: u64,
}

impl UplinkTraffic {
    /// A connection to central came up.
    pub fn opened(&self, connection: &quinn::Connection) {
        let mut inner = self.lock();
        inner.close_open();
        inner.connects += 1;
        inner.open = Some(connection.clone());
    }

    /// The connection to central ended.
    pub fn closed(&self) {
        self.lock().close_open();
    }

    /// Connections and bytes since the unit started.
    pub fn totals(&self) -> UplinkTotals {
        let inner = self.lock();
        let stats = inner.open.as_ref().map(|c| c.stats());
        UplinkTotals {
            connects: inner.connects,
            sent_bytes: inner.closed_sent + stats.as_ref().map_or(0, |s| s.udp_tx.bytes),
            received_bytes: inner.closed_received + stats.as_ref().map_or(0, |s| s.udp_rx.bytes),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Inner {
    fn close_open(&mut self) {
        if let Some(c) = self.open.take() {
            let stats = c.stats();
            self.closed_sent += stats.udp_tx.bytes;
            self.closed_received += stats.udp_rx.bytes;
        }
    }
}
