//! The running cameras: one task per camera, and a new list of cameras applied while the unit
//! runs (from the technician's page). A camera whose configuration did not change keeps its
//! task, its RTSP session and its recording untouched; a removed camera stops; a changed one
//! restarts; an added one starts. Everything new is checked before anything stops. A camera's
//! sub stream (`sub_url`) runs as a camera of its own ([`crate::sub_stream`]) sharing its
//! camera's holds. Camera tasks run on the ingest threads ([`IngestRuntimes`]) when the
//! supervisor has them, else on the caller's runtime.

use std::collections::HashMap;
use std::sync::Arc;

use serde::Serialize;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::camera::CameraTask;
use crate::config::{CameraConfig, EdgeConfig};
use crate::ingest_runtimes::IngestRuntimes;
use crate::live::{LiveHub, LiveHubs};
use crate::recorder::RecorderTx;
use crate::recording::CameraRecording;
use crate::recording::triggers::Holds;
use crate::status::UnitStatus;
use crate::sub_stream::{self, Stream};

/// What applying a configuration did, by camera id (a camera whose sub stream alone changed is
/// `changed`; a removed camera's sub stream is `removed` by its own id, `front.sub`).
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
    ingest: Option<Arc<IngestRuntimes>>,
}

impl CameraSupervisor {
    /// A supervisor whose tasks stop at `shutdown`.
    pub fn new(
        status: Arc<UnitStatus>,
        recorder: RecorderTx,
        hubs: LiveHubs,
        shutdown: CancellationToken,
    ) -> CameraSupervisor {
        CameraSupervisor {
            status,
            recorder,
            hubs,
            shutdown,
            running: tokio::sync::Mutex::new(HashMap::new()),
            ingest: None,
        }
    }

    /// Runs the camera tasks on `ingest`'s threads instead of the caller's runtime.
    pub fn on_ingest_threads(mut self, ingest: Arc<IngestRuntimes>) -> CameraSupervisor {
        self.ingest = Some(ingest);
        self
    }

    /// Starts the configured cameras at start-up, camera `i` in status slot `i`, with the
    /// recordings (and so the holds) the rule engine was given; then their sub streams.
    pub async fn start(&self, config: &EdgeConfig, recordings: Vec<CameraRecording>) {
        let mut running = self.running.lock().await;
        for ((index, cam), recording) in config.cameras.iter().enumerate().zip(recordings) {
            let hub = self.hubs.create(&cam.id);
            let r = self.spawn(sub_stream::main_stream(cam), index, recording, hub);
            running.insert(cam.id.clone(), r);
        }
        for stream in sub_stream::streams(&config.cameras) {
            let Some(main) = &stream.sub_of else { continue };
            let Some(holds) = running.get(main).map(|r| r.holds.clone()) else { continue };
            match CameraRecording::new(config, &stream.config) {
                Ok(recording) => self.start_sub(&mut running, stream, recording, holds, false),
                Err(e) => tracing::error!(camera = main, "sub stream not started: {e}"),
            }
        }
    }

    /// Starts a sub stream with its camera's holds: in the status slot made at start-up, or
    /// (`fresh`, or there is none) in a fresh one.
    fn start_sub(
        &self,
        running: &mut HashMap<String, Running>,
        stream: Stream,
        mut recording: CameraRecording,
        holds: Arc<Holds>,
        fresh: bool,
    ) {
        let Stream { config: cam, sub_of: Some(main) } = stream else { return };
        recording.holds = holds;
        let hub = self.hubs.get(&cam.id).unwrap_or_else(|| self.hubs.create(&cam.id));
        let index = match self.status.index_of(&cam.id).filter(|_| !fresh) {
            Some(index) => index,
            None => self.status.add_sub_stream(&main, &cam.id, cam.display_name()),
        };
        let id = cam.id.clone();
        let r = self.spawn(cam, index, recording, hub);
        running.insert(id, r);
    }

    /// Checks the cameras of `config` that would start or restart (their recording mode and
    /// schedule), without changing anything.
    pub fn check(config: &EdgeConfig) -> Result<(), String> {
        for stream in sub_stream::streams(&config.cameras) {
            let cam = &stream.config;
            CameraRecording::new(config, cam).map_err(|e| format!("camera {:?}: {e}", cam.id))?;
        }
        Ok(())
    }

    /// Makes the running cameras those of `config`. Nothing stops unless every camera to start
    /// is valid; unchanged cameras are not touched.
    pub async fn apply(&self, config: &EdgeConfig) -> Result<Applied, String> {
        let mut running = self.running.lock().await;
        let mut plan = Vec::new();
        let mut sub_plan = Vec::new();
        let streams = sub_stream::streams(&config.cameras);
        for stream in &streams {
            let cam = &stream.config;
            if running.get(&cam.id).is_some_and(|r| r.config == *cam) {
                continue;
            }
            let recording = CameraRecording::new(config, cam).map_err(|e| format!("camera {:?}: {e}", cam.id))?;
            match stream.sub_of {
                None => plan.push((cam.clone(), recording)),
                Some(_) => sub_plan.push((stream.clone(), recording)),
            }
        }
        let mut applied = Applied::default();
        let gone: Vec<String> =
            running.keys().filter(|id| !streams.iter().any(|s| &s.config.id == *id)).cloned().collect();
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
        for (stream, recording) in sub_plan {
            let Some(main) = stream.sub_of.clone() else { continue };
            if let Some(old) = running.remove(&stream.config.id) {
                stop(old.stop, old.task).await;
            }
            let Some(holds) = running.get(&main).map(|r| r.holds.clone()) else { continue };
            tracing::info!(camera = main, "sub stream (re)started with its new configuration");
            if !applied.changed.contains(&main) && !applied.added.contains(&main) {
                applied.changed.push(main);
            }
            self.start_sub(&mut running, stream, recording, holds, true);
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
        let task = match &self.ingest {
            Some(ingest) => ingest.spawn(task.run(stop.clone())),
            None => tokio::spawn(task.run(stop.clone())),
        };
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
