//! Live fan-out inside the unit: one [`LiveHub`] per camera (shared with central's relay; see
//! `link::live`), found by camera id in [`LiveHubs`].

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

pub use link::live::{LiveHub, LiveSubscription};

/// The running cameras' live hubs by camera id. Cameras added or removed at run time come and
/// go; a removed camera's hub is dropped with its task, which ends its subscriptions.
#[derive(Clone, Default)]
pub struct LiveHubs(Arc<RwLock<HashMap<String, Arc<LiveHub>>>>);

impl LiveHubs {
    /// The hub of `camera`, if it runs.
    pub fn get(&self, camera: &str) -> Option<Arc<LiveHub>> {
        self.0.read().unwrap_or_else(|p| p.into_inner()).get(camera).cloned()
    }

    /// A subscription to `camera`'s live messages that does not keep its hub alive.
    pub fn subscribe(&self, camera: &str) -> Option<LiveSubscription> {
        self.0.read().unwrap_or_else(|p| p.into_inner()).get(camera).map(|hub| hub.subscribe())
    }

    /// A new hub for `camera` (replacing any before it).
    pub fn create(&self, camera: &str) -> Arc<LiveHub> {
        let hub = Arc::new(LiveHub::default());
        self.0.write().unwrap_or_else(|p| p.into_inner()).insert(camera.to_owned(), hub.clone());
        hub
    }

    /// Forgets `camera`'s hub.
    pub fn remove(&self, camera: &str) {
        self.0.write().unwrap_or_else(|p| p.into_inner()).remove(camera);
    }
}
