//! The unit's live status, shared by the camera tasks, the recorder thread, the central
//! uplink and the web API.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use protocol::interconnect::{CameraState, CameraStateKind};
use serde::Serialize;
use tokio::sync::broadcast;

/// The status of the whole unit.
pub struct UnitStatus {
    /// The unit's id.
    pub unit_id: String,
    /// The cameras, in configuration order.
    pub cameras: Vec<CameraStatus>,
    central_connected: AtomicBool,
    central_error: Mutex<Option<String>>,
    store_error: Mutex<Option<String>>,
    changes: broadcast::Sender<CameraState>,
}

/// The status of one camera.
pub struct CameraStatus {
    /// The camera's id.
    pub id: String,
    /// The camera's display name.
    pub name: String,
    health: Mutex<(CameraStateKind, Option<String>)>,
    frames_recorded: AtomicU64,
    bytes_recorded: AtomicU64,
    frames_lost: AtomicU64,
}

impl UnitStatus {
    /// A unit whose cameras are all connecting.
    pub fn new(unit_id: String, cameras: impl IntoIterator<Item = (String, String)>) -> UnitStatus {
        let (changes, _) = broadcast::channel(64);
        UnitStatus {
            unit_id,
            cameras: cameras
                .into_iter()
                .map(|(id, name)| CameraStatus {
                    id,
                    name,
                    health: Mutex::new((CameraStateKind::Connecting, None)),
                    frames_recorded: AtomicU64::new(0),
                    bytes_recorded: AtomicU64::new(0),
                    frames_lost: AtomicU64::new(0),
                })
                .collect(),
            central_connected: AtomicBool::new(false),
            central_error: Mutex::new(None),
            store_error: Mutex::new(None),
            changes,
        }
    }

    /// Sets camera `index`'s state and tells subscribers when it changed.
    pub fn set_camera_state(&self, index: usize, state: CameraStateKind, reason: Option<String>) {
        let cam = &self.cameras[index];
        let mut health = lock(&cam.health);
        if health.0 == state && health.1 == reason {
            return;
        }
        *health = (state, reason.clone());
        drop(health);
        let _ = self.changes.send(CameraState { camera: cam.id.clone(), state, reason });
    }

    /// The current state of every camera, as messages for central.
    pub fn camera_states(&self) -> Vec<CameraState> {
        self.cameras
            .iter()
            .map(|c| {
                let (state, reason) = lock(&c.health).clone();
                CameraState { camera: c.id.clone(), state, reason }
            })
            .collect()
    }

    /// Camera state changes from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<CameraState> {
        self.changes.subscribe()
    }

    /// Counts a frame of `bytes` written to the store for camera `index`.
    pub fn count_recorded(&self, index: usize, bytes: usize) {
        let cam = &self.cameras[index];
        cam.frames_recorded.fetch_add(1, Ordering::Relaxed);
        cam.bytes_recorded.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    /// Counts a frame of camera `index` that could not be recorded.
    pub fn count_lost(&self, index: usize) {
        self.cameras[index].frames_lost.fetch_add(1, Ordering::Relaxed);
    }

    /// Records whether the link to central is up, and the last error if it is not.
    pub fn set_central(&self, connected: bool, error: Option<String>) {
        self.central_connected.store(connected, Ordering::Relaxed);
        *lock(&self.central_error) = error;
    }

    /// Records a store failure (or its end, with `None`).
    pub fn set_store_error(&self, error: Option<String>) {
        *lock(&self.store_error) = error;
    }

    /// The JSON document served at `GET /api/status`.
    pub fn snapshot(&self) -> StatusJson {
        StatusJson {
            unit_id: self.unit_id.clone(),
            central_connected: self.central_connected.load(Ordering::Relaxed),
            central_error: lock(&self.central_error).clone(),
            store_error: lock(&self.store_error).clone(),
            cameras: self
                .cameras
                .iter()
                .map(|c| {
                    let (state, reason) = lock(&c.health).clone();
                    CameraJson {
                        id: c.id.clone(),
                        name: c.name.clone(),
                        state: state.as_str(),
                        reason,
                        frames_recorded: c.frames_recorded.load(Ordering::Relaxed),
                        bytes_recorded: c.bytes_recorded.load(Ordering::Relaxed),
                        frames_lost: c.frames_lost.load(Ordering::Relaxed),
                    }
                })
                .collect(),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// `GET /api/status`: a stable contract; fields are only ever added.
#[derive(Debug, Serialize)]
pub struct StatusJson {
    /// The unit's id.
    pub unit_id: String,
    /// Whether the QUIC link to central is up.
    pub central_connected: bool,
    /// Why the link to central is down, when it is and central is configured.
    pub central_error: Option<String>,
    /// The last store failure, if the store is failing.
    pub store_error: Option<String>,
    /// Every configured camera.
    pub cameras: Vec<CameraJson>,
}

/// One camera in [`StatusJson`].
#[derive(Debug, Serialize)]
pub struct CameraJson {
    /// The camera's id.
    pub id: String,
    /// Its display name.
    pub name: String,
    /// `connecting`, `streaming` or `down`.
    pub state: &'static str,
    /// Why the camera is down (or why it last went down while connecting again).
    pub reason: Option<String>,
    /// Frames written to the store since the unit started.
    pub frames_recorded: u64,
    /// Bytes of media written to the store since the unit started.
    pub bytes_recorded: u64,
    /// Frames received but not recorded (the store could not keep up or failed).
    pub frames_lost: u64,
}
