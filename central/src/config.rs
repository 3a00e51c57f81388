//! Central's configuration file (TOML). The keys are a stable contract: later versions only
//! add keys. Unknown keys are refused so that a typo does not silently do nothing.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// The whole configuration of a central site.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CentralConfig {
    /// The operator web UI and REST API.
    pub web: WebConfig,
    /// The QUIC endpoint edge units connect to.
    pub quic: QuicConfig,
    /// Central's own data: registry, TLS identity, retrieved video.
    pub store: StoreConfig,
    /// Per-unit settings (`[[unit]]` tables); units not listed get the defaults.
    #[serde(default, rename = "unit")]
    pub units: Vec<UnitConfig>,
}

/// `[[unit]]`: one unit's link policy and its cameras' recording options.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnitConfig {
    /// The unit's name (its `unit_id`).
    pub name: String,
    /// Most kilobits per second of retrieved video from this unit (live video is not capped).
    #[serde(default)]
    pub bandwidth_cap_kbit: Option<u64>,
    /// The unit's link costs per byte (cellular): only event and operator retrievals run.
    #[serde(default)]
    pub metered: bool,
    /// `[[unit.camera]]`: recording options per camera; cameras not listed get the defaults.
    #[serde(default, rename = "camera")]
    pub cameras: Vec<CameraConfig>,
}

/// `[[unit.camera]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CameraConfig {
    /// The camera's id on its unit.
    pub id: String,
    /// Recording options (the Interconnect list): any of `"none"`, `"remote"` (the unit
    /// records), `"on_request"` (an operator may retrieve a range), `"link_gap"` (retrieve what
    /// was recorded while the link was down), `"event_window"` (retrieve a window around each
    /// event of the unit), `"time_profile"` and `"central"` (not yet supported; refused).
    #[serde(default = "default_recording")]
    pub recording: Vec<RecordingOption>,
    /// Seconds before and after an event that `"event_window"` retrieves.
    #[serde(default = "default_event_window")]
    pub event_window_s: [u32; 2],
}

/// One recording option of a camera.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordingOption {
    /// Nothing is recorded or retrieved.
    None,
    /// The unit records.
    Remote,
    /// An operator may retrieve a range.
    OnRequest,
    /// What the unit recorded while the link was down is retrieved when it comes back.
    LinkGap,
    /// A window around each event of the unit is retrieved.
    EventWindow,
}

/// The recording options of cameras not configured otherwise.
pub fn default_recording() -> Vec<RecordingOption> {
    vec![RecordingOption::Remote, RecordingOption::OnRequest, RecordingOption::LinkGap, RecordingOption::EventWindow]
}

fn default_event_window() -> [u32; 2] {
    [10, 10]
}

impl CentralConfig {
    /// The settings of unit `name`, if configured.
    pub fn unit(&self, name: &str) -> Option<&UnitConfig> {
        self.units.iter().find(|u| u.name == name)
    }

    /// The recording options and event window of `unit`'s `camera`.
    pub fn camera_options(&self, unit: &str, camera: &str) -> (Vec<RecordingOption>, [u32; 2]) {
        match self.unit(unit).and_then(|u| u.cameras.iter().find(|c| c.id == camera)) {
            Some(c) => (c.recording.clone(), c.event_window_s),
            None => (default_recording(), default_event_window()),
        }
    }
}

/// `[web]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebConfig {
    /// Address and port for HTTP (port 0 picks a free one).
    pub listen: SocketAddr,
}

/// `[quic]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuicConfig {
    /// UDP address and port for edge units (port 0 picks a free one).
    pub listen: SocketAddr,
}

/// `[store]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// Central's data directory (created if missing).
    pub path: PathBuf,
}

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The file is not valid TOML or has wrong keys or values; the message names the line.
    #[error("config file {path} is invalid: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message, with line and column.
        message: String,
    },
}

impl CentralConfig {
    /// Reads and parses a configuration file.
    pub fn load(path: &Path) -> Result<CentralConfig, ConfigError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
        toml::from_str(&text)
            .map_err(|e| ConfigError::Parse { path: path.to_owned(), message: e.to_string().trim_end().to_owned() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONTRACT_EXAMPLE: &str = r#"
[web]
listen = "127.0.0.1:8080"
[quic]
listen = "127.0.0.1:4433"
[store]
path = "/var/lib/convoy/central"
"#;

    #[test]
    fn contract_example_parses() {
        let c: CentralConfig = toml::from_str(CONTRACT_EXAMPLE).unwrap();
        assert_eq!(c.web.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.quic.listen.to_string(), "127.0.0.1:4433");
        assert_eq!(c.store.path, Path::new("/var/lib/convoy/central"));
    }

    #[test]
    fn units_and_recording_options_parse_with_defaults() {
        let text = format!(
            "{CONTRACT_EXAMPLE}[[unit]]\nname = \"bus-1\"\nmetered = true\nbandwidth_cap_kbit = 2000\n\
             [[unit.camera]]\nid = \"front\"\nrecording = [\"remote\", \"on_request\"]\nevent_window_s = [5, 30]\n"
        );
        let c: CentralConfig = toml::from_str(&text).unwrap();
        assert!(c.unit("bus-1").unwrap().metered);
        assert_eq!(
            c.camera_options("bus-1", "front"),
            (vec![RecordingOption::Remote, RecordingOption::OnRequest], [5, 30])
        );
        assert_eq!(c.camera_options("bus-1", "rear").0, default_recording());
        assert_eq!(c.camera_options("bus-2", "front").0, default_recording());
        let bad = text.replace("\"on_request\"]", "\"central\"]");
        assert!(toml::from_str::<CentralConfig>(&bad).unwrap_err().to_string().contains("central"));
    }

    #[test]
    fn errors_name_the_line_and_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("central.toml");
        std::fs::write(&path, CONTRACT_EXAMPLE.replace("[quic]", "[quic]\nlisen = 1")).unwrap();
        let e = CentralConfig::load(&path).unwrap_err().to_string();
        assert!(e.contains("line 5") && e.contains("lisen"), "{e}");
    }
}
