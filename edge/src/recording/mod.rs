//! Recording modes: which frames of a camera go to the store (continuous, a weekly schedule,
//! around events with a pre-buffer in RAM, or off), and the compressed-domain motion detector.
//! The logic is pure ([`gate`], [`prebuffer`], [`schedule`], [`motion`], [`triggers`]); the
//! camera task ([`crate::camera`]) drives it per frame.

pub mod gate;
pub mod motion;
pub mod prebuffer;
pub mod schedule;
pub mod triggers;

use std::sync::Arc;

use crate::config::{CameraConfig, EdgeConfig};

/// How one camera records, from its configuration.
#[derive(Debug, Clone)]
pub struct CameraRecording {
    /// Its mode.
    pub mode: gate::RecordingMode,
    /// Its time profile (schedule mode).
    pub profile: Option<schedule::TimeProfile>,
    /// Holds set by rules and its own motion.
    pub holds: Arc<triggers::Holds>,
    /// Pre-buffer length in µs.
    pub pre_buffer_us: i64,
    /// Pre-buffer cap in bytes.
    pub pre_buffer_bytes: usize,
    /// Post-buffer length in µs.
    pub post_buffer_us: i64,
    /// Motion detection's sensitivity, when it is on.
    pub motion: Option<u8>,
}

impl CameraRecording {
    /// A camera's recording set-up (the configuration was checked when it was loaded).
    pub fn new(config: &EdgeConfig, camera: &CameraConfig) -> Result<CameraRecording, String> {
        Ok(CameraRecording {
            mode: camera.mode,
            profile: config.camera_profile(camera)?,
            holds: Arc::new(triggers::Holds::default()),
            pre_buffer_us: (camera.pre_buffer_s * 1e6) as i64,
            pre_buffer_bytes: usize::try_from(camera.pre_buffer_bytes).unwrap_or(usize::MAX),
            post_buffer_us: (camera.post_buffer_s * 1e6) as i64,
            motion: camera.motion.then_some(camera.motion_sensitivity),
        })
    }

    /// Continuous recording, as before modes existed (for callers without a configuration).
    pub fn continuous() -> CameraRecording {
        CameraRecording {
            mode: gate::RecordingMode::Continuous,
            profile: None,
            holds: Arc::new(triggers::Holds::default()),
            pre_buffer_us: 0,
            pre_buffer_bytes: 0,
            post_buffer_us: 0,
            motion: None,
        }
    }

    /// A new gate for a camera session.
    pub fn gate(&self) -> gate::Gate {
        let buffer = (self.mode.buffers() && self.pre_buffer_us > 0)
            .then(|| prebuffer::PreBuffer::new(self.pre_buffer_us, self.pre_buffer_bytes));
        gate::Gate::new(buffer)
    }

    /// What to do with a frame at `time_us`.
    pub fn want(&self, time_us: i64) -> gate::Want {
        let in_schedule = self.profile.as_ref().is_some_and(|p| p.contains(time_us));
        let triggered = self.mode.buffers() && self.holds.active(time_us, self.post_buffer_us);
        gate::want(self.mode, in_schedule, triggered)
    }
}
