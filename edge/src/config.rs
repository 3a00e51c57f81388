//! The edge unit's configuration file (TOML). The keys are a stable contract: later versions
//! only add keys. Unknown keys are refused so that a typo does not silently do nothing.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// The whole configuration of an edge unit.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EdgeConfig {
    /// The unit's id, unique within the fleet (e.g. `bus-42`).
    pub unit_id: String,
    /// Where and how the unit records.
    pub store: StoreConfig,
    /// The unit's local web page and API.
    pub web: WebConfig,
    /// The central site; without it the unit records on its own.
    pub central: Option<CentralConfig>,
    /// The cameras to record.
    #[serde(default, rename = "camera")]
    pub cameras: Vec<CameraConfig>,
    /// `[board]`: the box the unit runs on; without it the unit runs as on a developer's machine
    /// (no device checks, and the I/O companion only if `[io]` names it).
    pub board: Option<BoardConfig>,
    /// `[io]`: the I/O companion link's addresses, overriding the board file's.
    pub io: Option<IoConfig>,
    /// `[power]`: what ignition off and a low supply do.
    #[serde(default)]
    pub power: PowerConfig,
}

/// `[board]`: the board description.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BoardConfig {
    /// The board description (e.g. `/etc/convoy/board.toml`, from `boards/<board>/board.toml`).
    /// Read and checked at start: a missing storage device stops the unit, other missing devices
    /// are warnings.
    pub file: PathBuf,
}

/// `[io]`: the UDP link to the I/O companion board. Each key overrides the board file's
/// `[companion]` value; without a board file both are needed.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IoConfig {
    /// Where the unit listens for the board's messages (e.g. `192.168.77.1:47801`; port 0
    /// picks one, for tests).
    pub listen: Option<SocketAddr>,
    /// The board's address and port (e.g. `192.168.77.2:47800`).
    pub board: Option<SocketAddr>,
}

/// `[power]`: ignition and supply handling (needs the I/O companion).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PowerConfig {
    /// After the ignition goes off, keep recording this many seconds, then seal the store and
    /// exit (status 0). The ignition coming on again cancels it. Default 300.
    #[serde(default = "default_run_on_s")]
    pub run_on_s: u64,
    /// Seal every open segment as soon as the companion warns of a low supply, so a power cut
    /// loses nothing already recorded. Default true.
    #[serde(default = "default_true")]
    pub seal_on_power_warning: bool,
}

impl Default for PowerConfig {
    fn default() -> Self {
        PowerConfig { run_on_s: default_run_on_s(), seal_on_power_warning: true }
    }
}

fn default_run_on_s() -> u64 {
    300
}

fn default_true() -> bool {
    true
}

/// `[store]`: the local media store.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// The store's directory (created if missing).
    pub path: PathBuf,
    /// The durability window in milliseconds: a frame older than this when power is cut is on
    /// flash. Default 1000.
    #[serde(default = "default_fsync_interval_ms")]
    pub fsync_interval_ms: u64,
    /// Size of each segment file in bytes (pre-allocated). Default 64 MiB.
    pub segment_bytes: Option<u64>,
    /// The most bytes the store may take; the oldest unlocked recordings go first.
    pub max_bytes: Option<u64>,
    /// Keep at least this much free space on the store's file system (low-disk guard).
    /// Default: four segments per camera.
    pub min_free_bytes: Option<u64>,
    /// A file holding the 32-byte key (64 hex digits) that encrypts recorded media at rest;
    /// without it media is stored in the clear.
    pub encryption_key_file: Option<PathBuf>,
    /// Seconds between retention passes. Default 30.
    #[serde(default = "default_retention_interval_s")]
    pub retention_interval_s: u64,
    /// `[store.archive]`: move old recordings to a second volume.
    pub archive: Option<ArchiveConfig>,
    /// Group commit with one `syncfs` of the store's file system (one journal commit per
    /// window) instead of an `fdatasync` per camera. Only for a data partition the store has
    /// to itself: `syncfs` also waits for other programs' writes there. Default false.
    #[serde(default)]
    pub sync_whole_filesystem: bool,
}

/// `[store.archive]`: multistage archiving.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArchiveConfig {
    /// The archive volume's directory.
    pub path: PathBuf,
    /// Recordings older than this many days move there. Default 7.
    #[serde(default = "default_archive_after_days")]
    pub after_days: f64,
    /// Keep only key frames in the archive (about a tenth of the size). Default false.
    #[serde(default)]
    pub keyframes_only: bool,
    /// The most bytes the archive may take; its oldest unlocked recordings go first.
    pub max_bytes: Option<u64>,
}

fn default_archive_after_days() -> f64 {
    7.0
}

fn default_retention_interval_s() -> u64 {
    30
}

fn default_fsync_interval_ms() -> u64 {
    1000
}

/// `[web]`: the local HTTP server.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebConfig {
    /// Address and port to listen on (port 0 picks a free one).
    pub listen: SocketAddr,
}

/// `[central]`: the central site to sync with.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CentralConfig {
    /// Central's QUIC address, `HOST:PORT` or `IP:PORT`.
    pub address: String,
    /// Central's certificate fingerprint (`sha256:<hex>`, printed by `central run`). Without
    /// it the unit trusts the first certificate it sees and pins that from then on.
    pub fingerprint: Option<String>,
}

/// `[[camera]]`: one camera.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CameraConfig {
    /// The camera's id, unique within the unit.
    pub id: String,
    /// A human-readable name; defaults to the id.
    pub name: Option<String>,
    /// The camera's RTSP URL. Credentials may be given here or in `username`/`password`.
    pub url: url::Url,
    /// RTSP user name.
    pub username: Option<String>,
    /// RTSP password.
    pub password: Option<String>,
    /// Delete this camera's recordings older than this many days (default: keep until space
    /// is needed).
    pub max_age_days: Option<f64>,
}

impl CameraConfig {
    /// The name to show: `name`, or the id.
    pub fn display_name(&self) -> &str {
        self.name.as_deref().unwrap_or(&self.id)
    }
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
    /// The values parse but do not make sense together.
    #[error("config file {path}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong and what to do.
        message: String,
    },
}

impl EdgeConfig {
    /// The media store's options from `[store]` and the cameras' retention (reads the
    /// encryption key file if one is configured).
    pub fn store_options(&self) -> Result<media_store::StoreOptions, media_store::StoreError> {
        let defaults = media_store::StoreOptions::default();
        let encryption_key = match &self.store.encryption_key_file {
            Some(path) => Some(media_store::MediaKey::from_file(path)?),
            None => None,
        };
        let archive = self.store.archive.as_ref().map(|a| media_store::archive::ArchiveOptions {
            path: a.path.clone(),
            after: std::time::Duration::from_secs_f64(a.after_days * 86_400.0),
            keyframes_only: a.keyframes_only,
            max_bytes: a.max_bytes,
        });
        Ok(media_store::StoreOptions {
            encryption_key,
            archive,
            sync_whole_filesystem: self.store.sync_whole_filesystem,
            segment_bytes: self.store.segment_bytes.unwrap_or(defaults.segment_bytes),
            fsync_interval: std::time::Duration::from_millis(self.store.fsync_interval_ms),
            retention: media_store::Retention {
                max_bytes: self.store.max_bytes,
                min_free_bytes: self.store.min_free_bytes,
                max_age: self
                    .cameras
                    .iter()
                    .filter_map(|c| {
                        Some((c.id.clone(), std::time::Duration::from_secs_f64(c.max_age_days? * 86_400.0)))
                    })
                    .collect(),
            },
        })
    }

    /// Reads, parses and checks a configuration file.
    pub fn load(path: &Path) -> Result<EdgeConfig, ConfigError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
        Self::parse(&text).map_err(|e| e.at(path))
    }

    /// Parses and checks configuration text.
    pub fn parse(text: &str) -> Result<EdgeConfig, ConfigError> {
        let config: EdgeConfig = toml::from_str(text)
            .map_err(|e| ConfigError::Parse { path: PathBuf::new(), message: e.to_string().trim_end().to_owned() })?;
        config.check()?;
        Ok(config)
    }

    fn check(&self) -> Result<(), ConfigError> {
        let invalid = |message: String| ConfigError::Invalid { path: PathBuf::new(), message };
        if self.unit_id.trim().is_empty() {
            return Err(invalid("unit_id must not be empty".into()));
        }
        let mut seen = std::collections::HashSet::new();
        for cam in &self.cameras {
            if cam.id.trim().is_empty() {
                return Err(invalid("a [[camera]] has an empty id".into()));
            }
            if !seen.insert(cam.id.as_str()) {
                return Err(invalid(format!("camera id {:?} is used twice; each [[camera]] needs its own id", cam.id)));
            }
            if !matches!(cam.url.scheme(), "rtsp" | "rtsps") {
                return Err(invalid(format!(
                    "camera {:?}: url {} must start with rtsp:// or rtsps://",
                    cam.id, cam.url
                )));
            }
        }
        for cam in &self.cameras {
            if cam.max_age_days.is_some_and(|d| !(d > 0.0 && d.is_finite())) {
                return Err(invalid(format!("camera {:?}: max_age_days must be a positive number", cam.id)));
            }
        }
        if self.store.segment_bytes.is_some_and(|b| !(1 << 16..=1 << 34).contains(&b)) {
            return Err(invalid("store.segment_bytes must be between 64 KiB and 16 GiB".into()));
        }
        if let Some(a) = &self.store.archive {
            if !(a.after_days >= 0.0 && a.after_days.is_finite()) {
                return Err(invalid("store.archive.after_days must be a number of days, 0 or more".into()));
            }
            if a.path == self.store.path || a.path.starts_with(&self.store.path) {
                return Err(invalid("store.archive.path must be outside store.path (a second volume)".into()));
            }
        }
        if self.store.retention_interval_s == 0 {
            return Err(invalid("store.retention_interval_s must be at least 1".into()));
        }
        if self.store.fsync_interval_ms == 0 {
            return Err(invalid("store.fsync_interval_ms must be at least 1".into()));
        }
        if let Some(c) = &self.central
            && let Some(fp) = &c.fingerprint
        {
            link::identity::parse_fingerprint(fp).map_err(|e| invalid(format!("central: {e}")))?;
        }
        if let Some(io) = &self.io
            && self.board.is_none()
            && (io.listen.is_none() || io.board.is_none())
        {
            return Err(invalid(
                "[io] needs both listen and board when there is no [board] file to take them from".into(),
            ));
        }
        Ok(())
    }
}

impl ConfigError {
    fn at(self, path: &Path) -> ConfigError {
        match self {
            ConfigError::Parse { message, .. } => ConfigError::Parse { path: path.into(), message },
            ConfigError::Invalid { message, .. } => ConfigError::Invalid { path: path.into(), message },
            e => e,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONTRACT_EXAMPLE: &str = r#"
unit_id = "bus-42"
[store]
path = "/var/lib/convoy/store"
[web]
listen = "127.0.0.1:8081"
[central]                      # optional
address = "127.0.0.1:4433"
[[camera]]
id = "front"
url = "rtsp://127.0.0.1:8554/front"
"#;

    #[test]
    fn contract_example_parses() {
        let c = EdgeConfig::parse(CONTRACT_EXAMPLE).unwrap();
        assert_eq!(c.unit_id, "bus-42");
        assert_eq!(c.store.path, Path::new("/var/lib/convoy/store"));
        assert_eq!(c.store.fsync_interval_ms, 1000);
        assert_eq!(c.web.listen.to_string(), "127.0.0.1:8081");
        assert_eq!(c.central.unwrap().address, "127.0.0.1:4433");
        assert_eq!(c.cameras.len(), 1);
        assert_eq!(c.cameras[0].id, "front");
        assert_eq!(c.cameras[0].display_name(), "front");
    }

    #[test]
    fn central_is_optional() {
        let text = CONTRACT_EXAMPLE.replace("[central]", "[other]").replace("address", "#");
        let text = text.replace("[other]                      # optional\n#", "#");
        let c = EdgeConfig::parse(&text).unwrap();
        assert!(c.central.is_none());
    }

    #[test]
    fn parse_error_names_the_line() {
        let text = CONTRACT_EXAMPLE.replace("listen = \"127.0.0.1:8081\"", "listen = 8081");
        let e = EdgeConfig::parse(&text).unwrap_err().to_string();
        assert!(e.contains("line 6"), "{e}");
    }

    #[test]
    fn unknown_key_is_refused_by_name() {
        let text = CONTRACT_EXAMPLE.replace("[web]", "[web]\nlisten_typo = 1");
        let e = EdgeConfig::parse(&text).unwrap_err().to_string();
        assert!(e.contains("listen_typo"), "{e}");
    }

    #[test]
    fn duplicate_camera_ids_are_refused() {
        let text = format!("{CONTRACT_EXAMPLE}[[camera]]\nid = \"front\"\nurl = \"rtsp://x/y\"\n");
        let e = EdgeConfig::parse(&text).unwrap_err().to_string();
        assert!(e.contains("used twice"), "{e}");
    }

    #[test]
    fn archive_table_parses_and_is_checked() {
        let text = CONTRACT_EXAMPLE
            .replace("[web]", "[store.archive]\npath = \"/mnt/archive\"\nafter_days = 3\nkeyframes_only = true\n[web]");
        let c = EdgeConfig::parse(&text).unwrap();
        let a = c.store_options().unwrap().archive.unwrap();
        assert_eq!(a.after, std::time::Duration::from_secs(3 * 86_400));
        assert!(a.keyframes_only);
        let inside = text.replace("/mnt/archive", "/var/lib/convoy/store/archive");
        assert!(EdgeConfig::parse(&inside).unwrap_err().to_string().contains("outside store.path"));
    }

    #[test]
    fn board_io_and_power_tables_parse() {
        let c = EdgeConfig::parse(CONTRACT_EXAMPLE).unwrap();
        assert!(c.board.is_none() && c.io.is_none());
        assert_eq!(c.power.run_on_s, 300);
        assert!(c.power.seal_on_power_warning);
        let text = format!(
            "{CONTRACT_EXAMPLE}[board]\nfile = \"/etc/convoy/board.toml\"\n[io]\nlisten = \"127.0.0.1:0\"\n\
             [power]\nrun_on_s = 2\nseal_on_power_warning = false\n"
        );
        let c = EdgeConfig::parse(&text).unwrap();
        assert_eq!(c.board.unwrap().file, Path::new("/etc/convoy/board.toml"));
        assert_eq!(c.io.unwrap().listen.unwrap().to_string(), "127.0.0.1:0");
        assert_eq!(c.power.run_on_s, 2);
        assert!(!c.power.seal_on_power_warning);
        let e = EdgeConfig::parse(&format!("{CONTRACT_EXAMPLE}[io]\nlisten = \"127.0.0.1:0\"\n")).unwrap_err();
        assert!(e.to_string().contains("[io] needs both"), "{e}");
    }

    #[test]
    fn bad_fingerprint_is_refused() {
        let text = CONTRACT_EXAMPLE
            .replace("address = \"127.0.0.1:4433\"", "address = \"127.0.0.1:4433\"\nfingerprint = \"abc\"");
        assert!(EdgeConfig::parse(&text).unwrap_err().to_string().contains("fingerprint"));
    }
}
