//! The running cameras: one task per camera, and a new list of cameras applied while the unit
//! runs (from the technician's page). A camera whose configuration did not change keeps its
//! task, its RTSP session and its recording untouched; a removed camera stops; a changed one
//! restarts; an added one starts. Everything new is checked before anything stops.

use std::collections::HashMap;
use std::sync::Arc;

use serde::Serialize;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::camera::CameraTask;
use crate::config::{CameraConfig, EdgeConfig};
use crate::live::{LiveHub, LiveHubs};
use crate::recorder::RecorderTx;
use crate::recording::CameraRecording;
use crate::recording::triggers::Holds;
use crate::status::UnitStatus;

/// What applying a configuration did, by camera id.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct Applied {
    /// Cameras started.
    pub added: Vec<String>,
    /// Cameras restarted with their new configuration.
    pub changed: Vec<String>,
    /// Cameras stopped (their recordings stay in the store).
    pub removed: Vec<String>,
}

/// One running camera.
struct Running {
    config: CameraConfig,
    index: usize,
    /// Shared with the rule engine, and kept when the camera restarts with a new configuration.
    holds: Arc<Holds>,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

/// The unit's camera tasks.
pub struct CameraSupervisor {
    status: Arc<UnitStatus>,
    recorder: RecorderTx,
    hubs: LiveHubs,
    shutdown: CancellationToken,
    running: tokio::sync::Mutex<HashMap<String, Running>>,
}

impl CameraSupervisor {
    /// A supervisor whose tasks stop at `shutdown`.
    pub fn new(
        status: Arc<UnitStatus>,
        recorder: RecorderTx,
        hubs: LiveHubs,
        shutdown: CancellationToken,
    ) -> CameraSupervisor {
        CameraSupervisor { status, recorder, hubs, shutdown, running: tokio::sync::Mutex::new(HashMap::new()) }
    }

    /// Starts the configured cameras at start-up, camera `i` in status slot `i`, with the
    /// recordings (and so the holds) the rule engine was given.
    pub async fn start(&self, config: &EdgeConfig, recordings: Vec<CameraRecording>) {
        let mut running = self.running.lock().await;
        for ((index, cam), recording) in config.cameras.iter().enumerate().zip(recordings) {
            let hub = self.hubs.create(&cam.id);
            let r = self.spawn(cam.clone(), index, recording, hub);
            running.insert(cam.id.clone(), r);
        }
    }

    /// Checks the cameras of `config` that would start or restart (their recording mode and
    /// schedule), without changing anything.
    pub fn check(config: &EdgeConfig) -> Result<(), String> {
        for cam in &config.cameras {
            CameraRecording::new(config, cam).map_err(|e| format!("camera {:?}: {e}", cam.id))?;
        }
        Ok(())
    }

    /// Makes the running cameras those of `config`. Nothing stops unless every camera to start
    /// is valid; unchanged cameras are not touched.
    pub async fn apply(&self, config: &EdgeConfig) -> Result<Applied, String> {
        let mut running = self.running.lock().await;
        let mut plan = Vec::new();
        for cam in &config.cameras {
            if running.get(&cam.id).is_some_and(|r| r.config == *cam) {
                continue;
            }
            let recording = CameraRecording::new(config, cam).map_err(|e| format!("camera {:?}: {e}", cam.id))?;
            plan.push((cam.clone(), recording));
        }
        let mut applied = Applied::default();
        let gone: Vec<String> =
            running.keys().filter(|id| !config.cameras.iter().any(|c| &c.id == *id)).cloned().collect();
        for id in gone {
            if let Some(r) = running.remove(&id) {
                stop(r.stop, r.task).await;
                self.hubs.remove(&id);
                self.status.remove_camera(r.index);
                tracing::info!(camera = id, "camera removed while running");
                applied.removed.push(id);
            }
        }
        for (cam, mut recording) in plan {
            let id = cam.id.clone();
            let hub = if let Some(old) = running.remove(&id) {
                stop(old.stop, old.task).await;
                recording.holds = old.holds;
                tracing::info!(camera = id, "camera restarted with its new configuration");
                applied.changed.push(id.clone());
                // The same hub: viewers (the page, central) go on with the new stream's
                // parameters and its next key frame.
                self.hubs.get(&id).unwrap_or_else(|| self.hubs.create(&id))
            } else {
                tracing::info!(camera = id, "camera added while running");
                applied.added.push(id.clone());
                self.hubs.create(&id)
            };
            let index = self.status.add_camera(&id, cam.display_name());
            let r = self.spawn(cam, index, recording, hub);
            running.insert(id, r);
        }
        Ok(applied)
    }

    fn spawn(&self, config: CameraConfig, index: usize, recording: CameraRecording, live: Arc<LiveHub>) -> Running {
        self.status.set_mode(index, recording.mode.as_str());
        let holds = recording.holds.clone();
        let stop = self.shutdown.child_token();
        let task = CameraTask {
            config: config.clone(),
            index,
            status: self.status.clone(),
            recorder: self.recorder.clone(),
            live,
            recording,
        };
        let task = tokio::spawn(task.run(stop.clone()));
        Running { config, index, holds, stop, task }
    }

    /// Stops every camera (after `shutdown` or before) and waits for their tasks, which drops
    /// their handles on the recorder.
    pub async fn stop_all(&self) {
        let mut running = self.running.lock().await;
        for (_, r) in running.drain() {
            stop(r.stop, r.task).await;
        }
    }
}

async fn stop(token: CancellationToken, task: JoinHandle<()>) {
    token.cancel();
    if let Err(e) = task.await {
        tracing::error!("camera task ended badly: {e}");
    }
}
