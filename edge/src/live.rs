//! Live fan-out inside the unit: one [`LiveHub`] per camera (shared with central's relay; see
//! `link::live`), found by camera id in [`LiveHubs`], which also knows the recorder that new
//! subscriptions start from (`live_start.rs`).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

pub use link::live::{LiveHub, LiveSubscription};

use crate::recorder::RecorderTx;

/// The running cameras' live hubs by camera id. Cameras added or removed at run time come and
/// go; a removed camera's hub is dropped with its task, which ends its subscriptions.
#[derive(Clone, Default)]
pub struct LiveHubs(Arc<RwLock<HashMap<String, Arc<LiveHub>>>>, Option<RecorderTx>);

impl LiveHubs {
    /// Hubs whose new subscriptions start from the last key frame `recorder` has written
    /// (without one, from the camera's next key frame).
    pub fn with_recorder(recorder: RecorderTx) -> LiveHubs {
        LiveHubs(Arc::default(), Some(recorder))
    }

    /// The recorder new subscriptions start from, if any.
    pub fn recorder(&self) -> Option<&RecorderTx> {
        self.1.as_ref()
    }

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
