//! Central's configuration file (TOML). The keys are a stable contract: later versions only
//! add keys. Unknown keys are refused so that a typo does not silently do nothing.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use jiff::tz::TimeZone;
use serde::Deserialize;

use crate::catalog::{CatalogError, CatalogLocation, redact_url};
use sync_core::time_profile::{TimeProfile, Window};

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
    /// `[catalog]`: where the fleet state (registry, users, audit log, recording options)
    /// lives; absent: SQLite files in `[store] path`.
    #[serde(default)]
    pub catalog: CatalogConfig,
    /// Per-unit settings (`[[unit]]` tables); units not listed get the defaults.
    #[serde(default, rename = "unit")]
    pub units: Vec<UnitConfig>,
    /// The IANA time zone that time profiles are in (default `"UTC"`).
    #[serde(default)]
    pub time_zone: Option<String>,
    /// `[[time_profile]]`: named weekly windows, for cameras with `"time_profile"`.
    #[serde(default, rename = "time_profile")]
    pub time_profiles: Vec<TimeProfileConfig>,
    /// `[[webhook]]`: where central posts its events (see [`crate::webhook_config`]).
    #[serde(default, rename = "webhook")]
    pub webhooks: Vec<crate::webhook_config::WebhookConfig>,
}

/// `[[time_profile]]`: a named set of weekly windows (`"mon-fri 06:00-22:00"`,
/// `"sat,sun 08:00:30-12:00"`, `"daily 22:00-06:00"`), the same syntax as the edge's.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeProfileConfig {
    /// The name cameras refer to.
    pub name: String,
    /// The windows.
    pub windows: Vec<String>,
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
    /// Forces the unit's link policy: `true` treats its link as costing per byte (cellular:
    /// only event and operator retrievals run), `false` as free. Absent: what the unit reports
    /// (`EdgeMessage::LinkInfo`), unmetered while it reports nothing.
    #[serde(default)]
    pub metered: Option<bool>,
    /// A `[[time_profile]]`: bulk retrievals (by rule, the link gap) run only inside its
    /// windows (e.g. nights at the depot); event and operator retrievals run any time.
    #[serde(default)]
    pub bulk_time_profile: Option<String>,
    /// `[[unit.camera]]`: recording options per camera; cameras not listed get the defaults.
    #[serde(default, rename = "camera")]
    pub cameras: Vec<CameraConfig>,
}

/// `[[unit.camera]]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct CameraConfig {
    /// The camera's id on its unit.
    pub id: String,
    /// Recording options (the Interconnect list): any of `"none"`, `"remote"` (the unit
    /// records), `"on_request"` (an operator may retrieve a range), `"link_gap"` (retrieve what
    /// was recorded while the link was down), `"event_window"` (retrieve a window around each
    /// event of the unit), `"time_profile"` (retrieve what the unit recorded inside the
    /// windows of the camera's `time_profile`), `"central"` (central records the camera's live
    /// stream whenever the unit is connected, watched or not). `["remote", "central"]` records
    /// at both sites; `["central"]` alone records at central only.
    #[serde(default = "default_recording")]
    pub recording: Vec<RecordingOption>,
    /// The `[[time_profile]]` that `"time_profile"` retrieves by.
    #[serde(default)]
    pub time_profile: Option<String>,
    /// Seconds before and after an event that `"event_window"` retrieves.
    #[serde(default = "default_event_window")]
    pub event_window_s: [u32; 2],
}

/// One recording option of a camera.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
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
    /// What the unit recorded inside the windows of the camera's time profile is retrieved.
    TimeProfile,
    /// Central records the live stream while the unit is connected (`central_recording.rs`).
    Central,
}

/// The recording options of cameras not configured otherwise.
pub fn default_recording() -> Vec<RecordingOption> {
    vec![RecordingOption::Remote, RecordingOption::OnRequest, RecordingOption::LinkGap, RecordingOption::EventWindow]
}

/// Seconds before and after an event that `"event_window"` retrieves, by default.
pub fn default_event_window() -> [u32; 2] {
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

/// `[catalog]`.
#[derive(Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatalogConfig {
    /// Absent or `"sqlite"`: SQLite files in `[store] path` (as always); `"sqlite:DIR"`: the
    /// files in DIR; `"postgres://USER[:PASSWORD]@HOST:PORT/DATABASE"` (or `postgresql://`):
    /// that PostgreSQL database, which several central nodes may share. Never logged with its
    /// password.
    #[serde(default)]
    pub url: Option<String>,
}

impl std::fmt::Debug for CatalogConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CatalogConfig").field("url", &self.url.as_deref().map(redact_url)).finish()
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
    /// The file parses but its values do not fit together.
    #[error("config file {path} is invalid: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong and what to do.
        message: String,
    },
}

impl CentralConfig {
    /// Reads and parses a configuration file.
    pub fn load(path: &Path) -> Result<CentralConfig, ConfigError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
        let mut config: CentralConfig = toml::from_str(&text)
            .map_err(|e| ConfigError::Parse { path: path.to_owned(), message: e.to_string().trim_end().to_owned() })?;
        config.check().map_err(|message| ConfigError::Invalid { path: path.to_owned(), message })?;
        // Secret files are named relative to this file; from here on they are whole paths.
        let base = path.parent().unwrap_or(Path::new(""));
        for w in &mut config.webhooks {
            w.secret_file = w.secret_file.as_ref().map(|f| base.join(f));
        }
        crate::webhook_config::load(&config.webhooks, Path::new(""))
            .map_err(|message| ConfigError::Invalid { path: path.to_owned(), message })?;
        Ok(config)
    }

    /// Where the catalog lives (`[catalog] url`, else SQLite in `[store] path`).
    pub fn catalog_location(&self) -> Result<CatalogLocation, CatalogError> {
        CatalogLocation::from_config(self.catalog.url.as_deref(), &self.store.path)
    }

    /// Checks what the parser cannot: the catalog URL, time zone, time profiles and the
    /// cameras that name them.
    pub fn check(&self) -> Result<(), String> {
        self.catalog_location().map_err(|e| e.to_string())?;
        self.tz()?;
        for (i, p) in self.time_profiles.iter().enumerate() {
            if self.time_profiles[..i].iter().any(|q| q.name == p.name) {
                return Err(format!("[[time_profile]] {:?} is defined twice", p.name));
            }
            if p.windows.is_empty() {
                return Err(format!("[[time_profile]] {:?} has no windows", p.name));
            }
            for w in &p.windows {
                Window::parse(w).map_err(|e| format!("[[time_profile]] {:?}: {e}", p.name))?;
            }
        }
        for u in &self.units {
            if let Some(name) = &u.bulk_time_profile
                && !self.time_profiles.iter().any(|p| &p.name == name)
            {
                return Err(format!("unit {:?}: bulk_time_profile names no [[time_profile]] {name:?}", u.name));
            }
            for c in &u.cameras {
                self.check_camera(c).map_err(|e| format!("unit {:?} camera {:?}: {e}", u.name, c.id))?;
            }
        }
        Ok(())
    }

    /// Checks one camera's options against the rest of the configuration (its time profile).
    pub fn check_camera(&self, c: &CameraConfig) -> Result<(), String> {
        let wants = c.recording.contains(&RecordingOption::TimeProfile);
        match (&c.time_profile, wants) {
            (None, true) => {
                Err("recording has \"time_profile\" but no time_profile names one of the [[time_profile]] tables"
                    .into())
            }
            (Some(name), false) => {
                Err(format!("time_profile = {name:?} does nothing without \"time_profile\" in recording"))
            }
            (Some(name), true) if !self.time_profiles.iter().any(|p| &p.name == name) => {
                Err(format!("there is no [[time_profile]] named {name:?}"))
            }
            _ => Ok(()),
        }
    }

    /// The configured `[[unit.camera]]` of `unit`'s `camera`, if any.
    pub fn camera(&self, unit: &str, camera: &str) -> Option<&CameraConfig> {
        self.unit(unit)?.cameras.iter().find(|c| c.id == camera)
    }

    /// The time profile a camera with these options retrieves by, if it has `"time_profile"`.
    pub fn time_profile_of(&self, c: &CameraConfig) -> Option<TimeProfile> {
        if !c.recording.contains(&RecordingOption::TimeProfile) {
            return None;
        }
        self.profile(c.time_profile.as_ref()?)
    }

    /// The time zone of time profiles.
    fn tz(&self) -> Result<TimeZone, String> {
        match &self.time_zone {
            None => Ok(TimeZone::UTC),
            Some(name) => TimeZone::get(name).map_err(|e| {
                format!("time_zone {name:?} is not a time zone this system knows (e.g. \"Europe/Berlin\"): {e}")
            }),
        }
    }

    /// The windows bulk retrievals of `unit` are limited to, if any.
    pub fn bulk_time_profile(&self, unit: &str) -> Option<TimeProfile> {
        let name = self.unit(unit)?.bulk_time_profile.as_ref()?;
        self.profile(name)
    }

    fn profile(&self, name: &str) -> Option<TimeProfile> {
        let p = self.time_profiles.iter().find(|p| p.name == name)?;
        let windows = p.windows.iter().map(|w| Window::parse(w)).collect::<Result<Vec<_>, _>>().ok()?;
        Some(TimeProfile::new(windows, self.tz().ok()?))
    }

    /// The time profile `unit`'s `camera` retrieves by, when it has the `"time_profile"` option.
    pub fn camera_time_profile(&self, unit: &str, camera: &str) -> Option<TimeProfile> {
        self.time_profile_of(self.camera(unit, camera)?)
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
    fn the_catalog_url_is_sqlite_by_default_or_postgres_and_never_shows_its_password() {
        let c: CentralConfig = toml::from_str(CONTRACT_EXAMPLE).unwrap();
        let sqlite = CatalogLocation::Sqlite { dir: "/var/lib/convoy/central".into() };
        assert_eq!(c.catalog_location().unwrap(), sqlite);
        let with = |url: &str| -> CentralConfig {
            toml::from_str(&format!("[catalog]\nurl = {url:?}\n{CONTRACT_EXAMPLE}")).unwrap()
        };
        assert_eq!(with("sqlite").catalog_location().unwrap(), sqlite);
        assert_eq!(
            with("sqlite:/srv/catalog").catalog_location().unwrap(),
            CatalogLocation::Sqlite { dir: "/srv/catalog".into() }
        );
        let pg = with("postgres://convoy:hunter22@db.depot:5432/fleet");
        assert_eq!(
            pg.catalog_location().unwrap(),
            CatalogLocation::Postgres { url: "postgres://convoy:hunter22@db.depot:5432/fleet".into() }
        );
        assert!(pg.check().is_ok());
        assert!(!format!("{pg:?}").contains("hunter22"), "Debug hides the password");
        let e = with("mysql://db/fleet").check().unwrap_err();
        assert!(e.contains("[catalog] url") && e.contains("postgres://"), "{e}");
        let unknown: Result<CentralConfig, _> = toml::from_str(&format!("[catalog]\nuri = \"x\"\n{CONTRACT_EXAMPLE}"));
        assert!(unknown.is_err(), "unknown keys are refused");
    }

    #[test]
    fn units_and_recording_options_parse_with_defaults() {
        let text = format!(
            "{CONTRACT_EXAMPLE}[[unit]]\nname = \"bus-1\"\nmetered = true\nbandwidth_cap_kbit = 2000\n\
             [[unit.camera]]\nid = \"front\"\nrecording = [\"remote\", \"on_request\"]\nevent_window_s = [5, 30]\n"
        );
        let c: CentralConfig = toml::from_str(&text).unwrap();
        assert_eq!(c.unit("bus-1").unwrap().metered, Some(true));
        assert_eq!(
            c.camera_options("bus-1", "front"),
            (vec![RecordingOption::Remote, RecordingOption::OnRequest], [5, 30])
        );
        assert_eq!(c.camera_options("bus-1", "rear").0, default_recording());
        assert_eq!(c.camera_options("bus-2", "front").0, default_recording());
        let forced_free = text.replace("metered = true", "metered = false");
        assert_eq!(toml::from_str::<CentralConfig>(&forced_free).unwrap().unit("bus-1").unwrap().metered, Some(false));
        let reported = text.replace("metered = true\n", "");
        assert_eq!(toml::from_str::<CentralConfig>(&reported).unwrap().unit("bus-1").unwrap().metered, None);
        let both = text.replace("\"on_request\"]", "\"central\"]");
        let both = toml::from_str::<CentralConfig>(&both).unwrap();
        assert_eq!(both.camera_options("bus-1", "front").0, [RecordingOption::Remote, RecordingOption::Central]);
        let bad = text.replace("\"on_request\"]", "\"everywhere\"]");
        assert!(toml::from_str::<CentralConfig>(&bad).unwrap_err().to_string().contains("everywhere"));
    }

    #[test]
    fn webhooks_are_a_contract_and_checked_at_load() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("hook.secret"), "k\n").unwrap();
        let text = format!(
            "{CONTRACT_EXAMPLE}[[webhook]]\nurl = \"http://127.0.0.1:9000/convoy\"\n\
             events = [\"alarm\", \"unit\", \"retrieval\"]\nsecret_file = \"hook.secret\"\n"
        );
        let path = dir.path().join("central.toml");
        std::fs::write(&path, &text).unwrap();
        let c = CentralConfig::load(&path).unwrap();
        assert_eq!(c.webhooks[0].secret_file.as_deref(), Some(dir.path().join("hook.secret").as_path()));
        let hooks = crate::webhook_config::load(&c.webhooks, Path::new("")).unwrap();
        assert_eq!(hooks[0].secret.as_deref(), Some(&b"k"[..]));
        std::fs::write(&path, text.replace("hook.secret", "nope.secret")).unwrap();
        let e = CentralConfig::load(&path).unwrap_err().to_string();
        assert!(e.contains("central.toml") && e.contains("cannot read secret_file"), "{e}");
        std::fs::write(&path, text.replace("\"unit\"", "\"unit_online\"")).unwrap();
        let e = CentralConfig::load(&path).unwrap_err().to_string();
        assert!(e.contains("unknown event \"unit_online\""), "{e}");
    }

    #[test]
    fn errors_name_the_line_and_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("central.toml");
        std::fs::write(&path, CONTRACT_EXAMPLE.replace("[quic]", "[quic]\nlisen = 1")).unwrap();
        let e = CentralConfig::load(&path).unwrap_err().to_string();
        assert!(e.contains("line 5") && e.contains("lisen"), "{e}");
    }

    const PROFILE_EXAMPLE: &str = r#"
time_zone = "Europe/Berlin"
[web]
listen = "127.0.0.1:8080"
[quic]
listen = "127.0.0.1:4433"
[store]
path = "/var/lib/convoy/central"
[[time_profile]]
name = "depot-nights"
windows = ["daily 22:00-06:00", "sat,sun 10:00:30-12:00"]
[[unit]]
name = "bus-1"
[[unit.camera]]
id = "front"
recording = ["remote", "time_profile"]
time_profile = "depot-nights"
"#;

    fn check(text: &str) -> Result<CentralConfig, String> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("central.toml");
        std::fs::write(&path, text).unwrap();
        CentralConfig::load(&path).map_err(|e| e.to_string())
    }

    #[test]
    fn time_profiles_are_a_contract() {
        let c = check(PROFILE_EXAMPLE).unwrap();
        let p = c.camera_time_profile("bus-1", "front").expect("a profile");
        // 23:00 in Berlin (UTC+1 in November) is inside, 21:00 UTC + 2 h; noon on a Wednesday is not.
        let at = |t: &str| t.parse::<jiff::Timestamp>().unwrap().as_microsecond();
        assert!(p.contains(at("2026-11-25T22:00:00Z")));
        assert!(!p.contains(at("2026-11-25T11:00:00Z")));
        assert!(c.camera_time_profile("bus-1", "rear").is_none());
        assert!(c.camera_time_profile("bus-2", "front").is_none());
        let c = check(
            &PROFILE_EXAMPLE.replace("name = \"bus-1\"\n", "name = \"bus-1\"\nbulk_time_profile = \"depot-nights\"\n"),
        )
        .unwrap();
        assert!(c.bulk_time_profile("bus-1").unwrap().contains(at("2026-11-25T22:00:00Z")));
        assert!(c.bulk_time_profile("bus-2").is_none());
    }

    #[test]
    fn time_profile_mistakes_are_refused_with_what_to_do() {
        for (from, to, says) in [
            ("time_profile = \"depot-nights\"\n", "", "no time_profile names one"),
            ("\"remote\", \"time_profile\"", "\"remote\"", "does nothing without"),
            ("time_profile = \"depot-nights\"\n", "time_profile = \"days\"\n", "no [[time_profile]] named \"days\""),
            ("22:00-06:00", "22:00-22:00", "empty"),
            ("\"Europe/Berlin\"", "\"Mars/Olympus\"", "not a time zone"),
            ("windows = [\"daily 22:00-06:00\", \"sat,sun 10:00:30-12:00\"]", "windows = []", "no windows"),
            ("name = \"bus-1\"\n", "name = \"bus-1\"\nbulk_time_profile = \"nights\"\n", "bulk_time_profile names no"),
        ] {
            let text = PROFILE_EXAMPLE.replacen(from, to, 1);
            assert_ne!(text, PROFILE_EXAMPLE, "{from}");
            let e = check(&text).unwrap_err();
            assert!(e.contains(says), "{from} -> {e}");
        }
    }
}
