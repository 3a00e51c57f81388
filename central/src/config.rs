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
    fn errors_name_the_line_and_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("central.toml");
        std::fs::write(&path, CONTRACT_EXAMPLE.replace("[quic]", "[quic]\nlisen = 1")).unwrap();
        let e = CentralConfig::load(&path).unwrap_err().to_string();
        assert!(e.contains("line 5") && e.contains("lisen"), "{e}");
    }
}
