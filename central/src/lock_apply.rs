//! Every node applies every evidence lock in the catalog: each [`INTERVAL`] it reads the locks
//! written since the last it applied ([`LockCatalog::changed_since`](crate::lock_catalog::LockCatalog::changed_since)) and applies each
//! ([`SyncHub::apply_lock`]): once into its own store, keyed by the lock's id, and, while the
//! unit has not answered, into the sync core of a unit connected to it, which sends it to the
//! unit. So a lock made through node B for a unit connected to node A reaches the unit through
//! A. It starts from the first lock at every start, so a lock whose catalog row was written
//! just before a crash is applied after it; a lock that fails to apply is tried again at the
//! next look, and the ones after it wait (nothing is skipped).

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::sync_hub::SyncHub;

/// How often the catalog is asked.
pub const INTERVAL: Duration = Duration::from_millis(500);

/// Applies the catalog's locks to this node until `shutdown`.
pub async fn run(hub: Arc<SyncHub>, shutdown: CancellationToken) {
    let mut applied = 0;
    loop {
        match hub.locks().changed_since(applied).await {
            Ok(changes) => {
                for c in changes {
                    if let Err(e) = hub.apply_lock(&c.lock).await {
                        tracing::warn!(lock = c.lock.id, unit = %c.lock.unit, "cannot apply the evidence lock (trying again): {e}");
                        break;
                    }
                    applied = c.seq;
                }
            }
            Err(e) => tracing::warn!("cannot read the evidence locks from the catalog: {e}"),
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(INTERVAL) => {}
        }
    }
}
