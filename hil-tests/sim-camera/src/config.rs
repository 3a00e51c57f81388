//! Server configuration: mounts and timing.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use crate::clip::Clip;
use crate::error::Error;

/// Default frame rate, in frames per second.
pub const DEFAULT_FRAME_RATE: u32 = 25;
/// Default RTSP session timeout announced in the `Session` header.
pub const DEFAULT_SESSION_TIMEOUT: Duration = Duration::from_secs(60);
/// Highest accepted frame rate.
pub const MAX_FRAME_RATE: u32 = 1000;

/// What the server serves and how fast.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Mount paths (like `/front`) mapped to the clip looped there.
    pub mounts: BTreeMap<String, Arc<Clip>>,
    /// Frames per second sent to each playing client (default 25).
    pub frame_rate: u32,
    /// Session timeout (whole seconds, default 60): a connection that sends
    /// nothing for this long, not even a keepalive, is closed.
    pub session_timeout: Duration,
    /// Start each session's frames at a random point of the first frame time, as independent
    /// cameras would be, instead of right after its PLAY (sessions played together then send
    /// in step).
    pub stagger: bool,
    /// Leave out every Nth RTP packet of each session (its sequence number is used all the
    /// same), as a lossy network would: `None` sends every packet.
    pub drop_every: Option<u32>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            mounts: BTreeMap::new(),
            frame_rate: DEFAULT_FRAME_RATE,
            session_timeout: DEFAULT_SESSION_TIMEOUT,
            stagger: false,
            drop_every: None,
        }
    }
}

impl ServerConfig {
    /// An empty configuration with default frame rate and session timeout.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a mount; `path` gets a leading `/` if it lacks one and loses any trailing `/`.
    pub fn with_mount(mut self, path: &str, clip: Arc<Clip>) -> Self {
        self.mounts.insert(normalize_mount(path), clip);
        self
    }

    /// Sets the frame rate.
    pub fn with_frame_rate(mut self, frame_rate: u32) -> Self {
        self.frame_rate = frame_rate;
        self
    }

    /// Starts each session's frames at a random point of the first frame time (see
    /// [`ServerConfig::stagger`]).
    pub fn with_stagger(mut self, stagger: bool) -> Self {
        self.stagger = stagger;
        self
    }

    /// Leaves out every `n`th RTP packet of each session (see [`ServerConfig::drop_every`]);
    /// `None` or `Some(0)` sends every packet.
    pub fn with_drop_every(mut self, n: Option<u32>) -> Self {
        self.drop_every = n.filter(|&n| n > 0);
        self
    }

    /// Sets the session timeout.
    pub fn with_session_timeout(mut self, timeout: Duration) -> Self {
        self.session_timeout = timeout;
        self
    }

    /// Checks that the configuration can be served.
    pub fn validate(&self) -> Result<(), Error> {
        if self.mounts.is_empty() {
            return Err(Error::InvalidConfig("no mounts".into()));
        }
        for path in self.mounts.keys() {
            if !path.starts_with('/')
                || path.len() < 2
                || path.ends_with('/')
                || path.contains("//")
                || !path.bytes().all(|b| b.is_ascii_alphanumeric() || b"/-_.~".contains(&b))
            {
                return Err(Error::InvalidConfig(format!(
                    "mount path {path:?} must look like /name (letters, digits, - _ . ~ and /)"
                )));
            }
        }
        if !(1..=MAX_FRAME_RATE).contains(&self.frame_rate) {
            return Err(Error::InvalidConfig(format!(
                "frame rate {} must be between 1 and {MAX_FRAME_RATE}",
                self.frame_rate
            )));
        }
        if self.session_timeout.as_secs() < 1 {
            return Err(Error::InvalidConfig("session timeout must be at least one second".into()));
        }
        Ok(())
    }

    /// Session timeout in whole seconds, as announced in the `Session` header.
    pub fn session_timeout_secs(&self) -> u64 {
        self.session_timeout.as_secs()
    }
}

/// Normalizes a mount path: one leading `/`, no trailing `/`.
pub fn normalize_mount(path: &str) -> String {
    let trimmed = path.trim().trim_matches('/');
    format!("/{trimmed}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_mount_paths() {
        assert_eq!(normalize_mount("front"), "/front");
        assert_eq!(normalize_mount("/front/"), "/front");
        assert_eq!(normalize_mount("/cams/rear"), "/cams/rear");
    }

    #[test]
    fn dropping_every_zeroth_packet_drops_none() {
        assert_eq!(ServerConfig::new().with_drop_every(Some(0)).drop_every, None);
        assert_eq!(ServerConfig::new().with_drop_every(Some(40)).drop_every, Some(40));
        assert_eq!(ServerConfig::new().drop_every, None);
    }

    #[test]
    fn validation() {
        let clip = Arc::new(
            Clip::from_file(concat!(env!("CARGO_MANIFEST_DIR"), "/../clips/testsrc-640x360-25fps.h264")).unwrap(),
        );
        assert!(ServerConfig::new().validate().is_err());
        let ok = ServerConfig::new().with_mount("/cam", clip.clone());
        assert!(ok.validate().is_ok());
        assert_eq!(ok.frame_rate, 25);
        assert!(ok.clone().with_frame_rate(0).validate().is_err());
        assert!(ok.clone().with_session_timeout(Duration::from_millis(10)).validate().is_err());
        assert!(ServerConfig::new().with_mount("/", clip.clone()).validate().is_err());
        assert!(ServerConfig::new().with_mount("/a b", clip).validate().is_err());
    }
}
