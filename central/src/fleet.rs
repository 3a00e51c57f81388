//! What central knows right now about connected units: which are connected, their cameras'
//! states, and the live frames arriving. The registry holds what outlives a restart.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use protocol::interconnect::{CameraState, CameraStateKind, Hello, LinkKind};
use serde::Serialize;

use crate::registry::UnitRow;
use crate::relay::Relay;

/// A camera counts as live while its last frame is at most this old.
pub const LIVE_WINDOW: Duration = Duration::from_secs(3);

/// Live state of the whole fleet.
#[derive(Default)]
pub struct Fleet {
    units: RwLock<HashMap<String, Arc<UnitLive>>>,
    next_session: AtomicU64,
    /// Each unit's link as it last reported it (since central started; kept while it is away).
    links: RwLock<HashMap<String, LinkJson>>,
    /// Bytes each unit has sent, for `/metrics`.
    pub traffic: Arc<crate::unit_traffic::UnitTraffic>,
}

/// Live state of one unit's current connection.
pub struct UnitLive {
    /// Identifies this connection; a newer connection of the same unit replaces it.
    pub session: u64,
    cameras: HashMap<String, CameraLive>,
}

/// Live state of one camera.
#[derive(Default)]
pub struct CameraLive {
    frames_received: AtomicU64,
    last_frame: Mutex<Option<Instant>>,
    state: Mutex<Option<(CameraStateKind, Option<String>)>>,
}

impl CameraLive {
    /// Counts a live frame that just arrived.
    pub fn count_frame(&self) {
        self.frames_received.fetch_add(1, Ordering::Relaxed);
        *self.last_frame.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
    }

    fn is_live(&self, now: Instant) -> bool {
        self.last_frame.lock().unwrap_or_else(|p| p.into_inner()).is_some_and(|t| now.duration_since(t) <= LIVE_WINDOW)
    }
}

impl UnitLive {
    /// The camera with this id, if the unit shares it.
    pub fn camera(&self, id: &str) -> Option<&CameraLive> {
        self.cameras.get(id)
    }

    /// Records a camera state the unit reported.
    pub fn set_camera_state(&self, state: CameraState) {
        if let Some(cam) = self.cameras.get(&state.camera) {
            *cam.state.lock().unwrap_or_else(|p| p.into_inner()) = Some((state.state, state.reason));
        }
    }
}

impl Fleet {
    /// Marks a unit connected after its hello, replacing any older connection of it.
    pub fn connect(&self, hello: &Hello) -> Arc<UnitLive> {
        let unit = Arc::new(UnitLive {
            session: self.next_session.fetch_add(1, Ordering::Relaxed),
            cameras: hello.cameras.iter().map(|c| (c.id.clone(), CameraLive::default())).collect(),
        });
        self.write().insert(hello.unit_id.clone(), unit.clone());
        unit
    }

    /// Marks a unit disconnected, unless a newer connection of it has taken over.
    pub fn disconnect(&self, unit_id: &str, session: u64) {
        let mut units = self.write();
        if units.get(unit_id).is_some_and(|u| u.session == session) {
            units.remove(unit_id);
        }
    }

    /// Records the link `unit_id` reports (`EdgeMessage::LinkInfo`).
    pub fn set_link(&self, unit_id: &str, kind: LinkKind, metered: bool) {
        let link = LinkJson { kind: kind.as_str(), metered };
        self.links.write().unwrap_or_else(|p| p.into_inner()).insert(unit_id.to_owned(), link);
    }

    /// The link `unit_id` last reported, if it did since central started.
    pub fn link(&self, unit_id: &str) -> Option<LinkJson> {
        self.links.read().unwrap_or_else(|p| p.into_inner()).get(unit_id).cloned()
    }

    /// The units connected now, each with the cameras it shares.
    pub fn connected_cameras(&self) -> Vec<(String, Vec<String>)> {
        let units = self.units.read().unwrap_or_else(|p| p.into_inner());
        units.iter().map(|(id, u)| (id.clone(), u.cameras.keys().cloned().collect())).collect()
    }

    /// The ids of the units connected now, sorted.
    pub fn connected(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.units.read().unwrap_or_else(|p| p.into_inner()).keys().cloned().collect();
        ids.sort();
        ids
    }

    /// The `GET /api/units` document: every registered unit with its live state.
    pub fn units_json(&self, registered: &[UnitRow], relay: &Relay) -> Vec<UnitJson> {
        let now = Instant::now();
        let units = self.units.read().unwrap_or_else(|p| p.into_inner());
        registered
            .iter()
            .map(|row| {
                let live = units.get(&row.id);
                UnitJson {
                    id: row.id.clone(),
                    name: row.id.clone(),
                    connected: live.is_some(),
                    last_hello: row.last_hello,
                    link: self.link(&row.id),
                    storage: None,
                    cameras: row
                        .cameras
                        .iter()
                        .map(|(id, name)| {
                            let cam = live.and_then(|u| u.cameras.get(id));
                            let state = cam.and_then(|c| c.state.lock().unwrap_or_else(|p| p.into_inner()).clone());
                            let channel = relay.existing(&row.id, id);
                            let (sub_stream, sub_of) =
                                crate::sub_streams::relations(id, row.cameras.iter().map(|(id, _)| id.as_str()));
                            CameraJson {
                                id: id.clone(),
                                name: name.clone(),
                                live: cam.is_some_and(|c| c.is_live(now)),
                                frames_received: cam.map_or(0, |c| c.frames_received.load(Ordering::Relaxed)),
                                state: state.as_ref().map(|s| s.0.as_str()),
                                reason: state.and_then(|s| s.1),
                                viewers: channel.as_ref().map_or(0, |c| c.viewers()),
                                upstreams: channel.as_ref().map_or(0, |c| c.upstreams()),
                                sub_stream,
                                sub_of,
                            }
                        })
                        .collect(),
                    settings_up_to_date: false,
                    settings_note: None,
                }
            })
            .collect()
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, Arc<UnitLive>>> {
        self.units.write().unwrap_or_else(|p| p.into_inner())
    }
}

/// One unit in `GET /api/units`: a stable contract; fields are only ever added.
#[derive(Debug, Serialize)]
pub struct UnitJson {
    /// The unit's id.
    pub id: String,
    /// The name operators gave it (`PATCH /api/units/{unit}`), else its id.
    pub name: String,
    /// Whether the unit is connected now.
    pub connected: bool,
    /// When the unit last connected, seconds since the Unix epoch.
    pub last_hello: i64,
    /// The unit's link as it last reported it since central started (null when it has not).
    pub link: Option<LinkJson>,
    /// The unit's storage health (see [`crate::storage_health`]); filled in by the API.
    pub storage: Option<crate::storage_health::StorageJson>,
    /// The cameras the unit shares.
    pub cameras: Vec<CameraJson>,
    /// Whether the unit applied central's latest camera settings (false until it did; see
    /// `GET /api/units/{unit}/settings`).
    pub settings_up_to_date: bool,
    /// `"unit too old for settings push"` when the unit's protocol predates settings.
    pub settings_note: Option<&'static str>,
}

/// A unit's link in [`UnitJson`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LinkJson {
    /// `unknown`, `ethernet`, `wifi`, `cellular` or `satellite`.
    pub kind: &'static str,
    /// Whether the unit says its link costs per byte.
    pub metered: bool,
}

/// One camera in [`UnitJson`].
#[derive(Debug, Serialize)]
pub struct CameraJson {
    /// The camera's id within its unit.
    pub id: String,
    /// Its display name.
    pub name: String,
    /// Whether live frames are arriving at central now (only while someone watches).
    pub live: bool,
    /// Live frames received from this camera since the unit connected.
    pub frames_received: u64,
    /// The camera's state as the unit last reported it, while connected.
    pub state: Option<&'static str>,
    /// Why the camera is down, as the unit reported it.
    pub reason: Option<String>,
    /// Viewers watching it live at central now.
    pub viewers: usize,
    /// The id of the camera's sub stream, when its unit shares one (`front.sub`), else null.
    pub sub_stream: Option<String>,
    /// For a sub stream, the id of its camera, else null.
    pub sub_of: Option<String>,
    /// Live streams from the unit for it now: 1 while watched (whatever the number of
    /// viewers), 0 otherwise.
    pub upstreams: usize,
}
