//! Each unit camera's recording options: what an operator set through the API
//! (`PUT /api/units/{unit}/cameras/{camera}/recording`, kept in `<store>/options.db`), else its
//! fleet profile and overrides ([`crate::profiles`]), else its `[[unit.camera]]` table in
//! central.toml, else the defaults. The sync hub asks here, so a
//! change applies from the unit's next catalog on, without a restart. On a shared PostgreSQL
//! catalog, what another node set is read again at most [`RELOAD`] later.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use sync_core::time_profile::TimeProfile;

use crate::catalog::{Backend, CatalogDb, CatalogError, CatalogLocation, Migration, Schema};
use crate::config::{CameraConfig, CentralConfig, RecordingOption, default_event_window, default_recording};

/// Why options could not be read, stored or accepted.
#[derive(Debug, thiserror::Error)]
pub enum OptionsError {
    /// The options database failed.
    #[error("recording options database: {0}")]
    Db(CatalogError),
    /// A stored row is not valid JSON of [`OptionsBody`] (written by a newer central?).
    #[error("stored recording options of {unit}/{camera} are unreadable: {message}")]
    Corrupt {
        /// The unit.
        unit: String,
        /// The camera.
        camera: String,
        /// The decoder's message.
        message: String,
    },
    /// The options do not fit the configuration (e.g. an unknown time profile).
    #[error("{0}")]
    Invalid(String),
}

// Not `#[from]`: the message already holds the catalog's, so it is no `source` to print twice.
impl From<CatalogError> for OptionsError {
    fn from(e: CatalogError) -> Self {
        OptionsError::Db(e)
    }
}

/// A camera's options as the API shows and takes them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OptionsBody {
    /// The recording options (the Interconnect list, as in central.toml).
    pub recording: Vec<RecordingOption>,
    /// Seconds before and after an event that `"event_window"` retrieves (default `[10, 10]`).
    #[serde(default = "default_event_window")]
    pub event_window_s: [u32; 2],
    /// The `[[time_profile]]` that `"time_profile"` retrieves by.
    #[serde(default)]
    pub time_profile: Option<String>,
}

/// Where a camera's effective options come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OptionsSource {
    /// Set through the API.
    Api,
    /// The unit's fleet profile or its overrides.
    Profile,
    /// Its `[[unit.camera]]` table.
    Config,
    /// Neither: the defaults.
    Default,
}

/// The recording options of every unit camera (see the module documentation).
pub struct RecordingOptions {
    site: Arc<CentralConfig>,
    overrides: RwLock<(Overrides, Instant)>,
    db: CatalogDb,
    profiles: Option<Arc<crate::profiles::Profiles>>,
}

/// What the API set, by unit and camera.
type Overrides = HashMap<(String, String), CameraConfig>;

/// How stale the options set through another node may be (shared PostgreSQL catalog only).
pub const RELOAD: Duration = Duration::from_secs(2);

/// The options' part of the catalog. Version 1 is the schema options.db always had.
pub const SCHEMA: Schema = Schema {
    part: "recording_options",
    sqlite_file: "options.db",
    migrations: &[Migration {
        sqlite: "CREATE TABLE IF NOT EXISTS camera_options (
                     unit TEXT NOT NULL, camera TEXT NOT NULL, options TEXT NOT NULL, PRIMARY KEY (unit, camera));",
        postgres: "CREATE TABLE camera_options (
                       unit TEXT NOT NULL, camera TEXT NOT NULL, options TEXT NOT NULL, PRIMARY KEY (unit, camera));",
    }],
};

/// Every camera's options set through the API; `warn`: say which no longer fit the
/// configuration.
fn load(db: &CatalogDb, site: &CentralConfig, warn: bool) -> Result<Overrides, OptionsError> {
    let mut overrides = HashMap::new();
    for row in db.query("SELECT unit, camera, options FROM camera_options", &[])? {
        let (unit, camera, text): (String, String, String) = (row.get(0)?, row.get(1)?, row.get(2)?);
        let body: OptionsBody = serde_json::from_str(&text).map_err(|e| OptionsError::Corrupt {
            unit: unit.clone(),
            camera: camera.clone(),
            message: e.to_string(),
        })?;
        let c = to_camera(&camera, body);
        // A profile removed from central.toml since: the camera retrieves by nothing
        // until an operator sets its options again (said once, at start).
        if warn && let Err(e) = site.check_camera(&c) {
            tracing::warn!(unit, camera, "recording options set through the API no longer fit: {e}");
        }
        overrides.insert((unit, camera), c);
    }
    Ok(overrides)
}

impl RecordingOptions {
    /// Opens (or creates) the options' part of the catalog at `at`, loading what the API set
    /// before.
    pub fn open(site: Arc<CentralConfig>, at: &CatalogLocation) -> Result<RecordingOptions, OptionsError> {
        let db = CatalogDb::open(at, &SCHEMA)?;
        let overrides = load(&db, &site, true)?;
        Ok(RecordingOptions { site, overrides: RwLock::new((overrides, Instant::now())), db, profiles: None })
    }

    /// Fleet profiles set recording options too (below those set per camera through the API).
    pub fn with_profiles(mut self, profiles: Arc<crate::profiles::Profiles>) -> RecordingOptions {
        self.profiles = Some(profiles);
        self
    }

    /// The fleet profiles, when central has them.
    pub fn profiles(&self) -> Option<&Arc<crate::profiles::Profiles>> {
        self.profiles.as_ref()
    }

    /// On a shared catalog, reads again what every node set, when the last read is older
    /// than [`RELOAD`] (a failure is logged and the last read kept).
    fn refresh(&self) {
        if self.db.backend() != Backend::Postgres
            || self.overrides.read().unwrap_or_else(|p| p.into_inner()).1.elapsed() < RELOAD
        {
            return;
        }
        let loaded = load(&self.db, &self.site, false);
        let mut overrides = self.overrides.write().unwrap_or_else(|p| p.into_inner());
        match loaded {
            Ok(map) => overrides.0 = map,
            Err(e) => tracing::warn!("cannot read the recording options again (keeping the last ones): {e}"),
        }
        overrides.1 = Instant::now();
    }

    /// Central's configuration.
    pub fn site(&self) -> &CentralConfig {
        &self.site
    }

    /// The effective options of `unit`'s `camera` and where they come from.
    pub fn camera(&self, unit: &str, camera: &str) -> (CameraConfig, OptionsSource) {
        self.refresh();
        let key = (unit.to_owned(), camera.to_owned());
        if let Some(c) = self.overrides.read().unwrap_or_else(|p| p.into_inner()).0.get(&key) {
            return (c.clone(), OptionsSource::Api);
        }
        let (mut c, source) = match self.site.camera(unit, camera) {
            Some(c) => (c.clone(), OptionsSource::Config),
            None => (
                CameraConfig {
                    id: camera.to_owned(),
                    recording: default_recording(),
                    event_window_s: default_event_window(),
                    time_profile: None,
                },
                OptionsSource::Default,
            ),
        };
        let Some(layered) = self.profiles.as_ref().map(|p| p.layered(unit, camera)) else { return (c, source) };
        let mut from_profile = false;
        if let Some(recording) = layered.recording {
            c.recording = recording;
            from_profile = true;
        }
        if let Some(window) = layered.event_window_s {
            c.event_window_s = window;
            from_profile = true;
        }
        if let Some(name) = layered.time_profile {
            c.time_profile = Some(name);
            from_profile = true;
        }
        (c, if from_profile { OptionsSource::Profile } else { source })
    }

    /// The recording options and event window of `unit`'s `camera`.
    pub fn camera_options(&self, unit: &str, camera: &str) -> (Vec<RecordingOption>, [u32; 2]) {
        let (c, _) = self.camera(unit, camera);
        (c.recording, c.event_window_s)
    }

    /// The time profile `unit`'s `camera` retrieves by, if its options include `"time_profile"`.
    pub fn camera_time_profile(&self, unit: &str, camera: &str) -> Option<TimeProfile> {
        self.site.time_profile_of(&self.camera(unit, camera).0)
    }

    /// Sets `unit`'s `camera`'s options (checked against the configuration first), durably.
    pub fn set(&self, unit: &str, camera: &str, body: OptionsBody) -> Result<CameraConfig, OptionsError> {
        let c = to_camera(camera, body.clone());
        self.site.check_camera(&c).map_err(OptionsError::Invalid)?;
        let text = serde_json::to_string(&body).map_err(|e| OptionsError::Invalid(e.to_string()))?;
        self.db.execute(
            "INSERT INTO camera_options (unit, camera, options) VALUES ($1, $2, $3)
             ON CONFLICT (unit, camera) DO UPDATE SET options = excluded.options",
            &[unit.into(), camera.into(), text.into()],
        )?;
        self.overrides
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .0
            .insert((unit.to_owned(), camera.to_owned()), c.clone());
        Ok(c)
    }

    /// Forgets what the API set for `unit`'s `camera` (central.toml or the defaults apply
    /// again); false when nothing was set.
    pub fn clear(&self, unit: &str, camera: &str) -> Result<bool, OptionsError> {
        let n = self
            .db
            .execute("DELETE FROM camera_options WHERE unit = $1 AND camera = $2", &[unit.into(), camera.into()])?;
        self.overrides.write().unwrap_or_else(|p| p.into_inner()).0.remove(&(unit.to_owned(), camera.to_owned()));
        Ok(n > 0)
    }
}

fn to_camera(camera: &str, body: OptionsBody) -> CameraConfig {
    CameraConfig {
        id: camera.to_owned(),
        recording: body.recording,
        event_window_s: body.event_window_s,
        time_profile: body.time_profile,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn site() -> Arc<CentralConfig> {
        Arc::new(
            toml::from_str(
                "[web]\nlisten = \"127.0.0.1:0\"\n[quic]\nlisten = \"127.0.0.1:0\"\n[store]\npath = \"/x\"\n\
                 [[time_profile]]\nname = \"nights\"\nwindows = [\"daily 22:00-06:00\"]\n\
                 [[unit]]\nname = \"bus-1\"\n[[unit.camera]]\nid = \"front\"\nrecording = [\"remote\"]\n",
            )
            .unwrap(),
        )
    }

    fn api_overrides_config_overrides_defaults_and_survive_a_restart(at: &CatalogLocation) {
        let path = at;
        let o = RecordingOptions::open(site(), path).unwrap();
        assert_eq!(o.camera("bus-1", "front").1, OptionsSource::Config);
        assert_eq!(o.camera_options("bus-1", "front").0, [RecordingOption::Remote]);
        assert_eq!(o.camera("bus-1", "rear").1, OptionsSource::Default);
        assert_eq!(o.camera_options("bus-1", "rear").0, default_recording());
        let body = OptionsBody {
            recording: vec![RecordingOption::Remote, RecordingOption::TimeProfile],
            event_window_s: [3, 4],
            time_profile: Some("nights".into()),
        };
        o.set("bus-1", "front", body.clone()).unwrap();
        assert_eq!(o.camera("bus-1", "front").1, OptionsSource::Api);
        assert!(o.camera_time_profile("bus-1", "front").is_some());
        drop(o);
        let o = RecordingOptions::open(site(), path).unwrap();
        assert_eq!(o.camera_options("bus-1", "front"), (body.recording, [3, 4]), "kept across a restart");
        assert!(o.clear("bus-1", "front").unwrap());
        assert!(!o.clear("bus-1", "front").unwrap());
        assert_eq!(o.camera("bus-1", "front").1, OptionsSource::Config);
        drop(o);
        let o = RecordingOptions::open(site(), path).unwrap();
        assert_eq!(o.camera("bus-1", "front").1, OptionsSource::Config, "the clearing is durable too");
    }
    crate::on_both_backends!(
        api_overrides_config_overrides_defaults_and_survive_a_restart,
        super::api_overrides_config_overrides_defaults_and_survive_a_restart
    );

    fn options_that_do_not_fit_are_refused_and_change_nothing(at: &CatalogLocation) {
        let o = RecordingOptions::open(site(), at).unwrap();
        for (recording, profile, says) in [
            (vec![RecordingOption::TimeProfile], None, "no time_profile names"),
            (vec![RecordingOption::TimeProfile], Some("days"), "no [[time_profile]] named \"days\""),
            (vec![RecordingOption::Remote], Some("nights"), "does nothing without"),
        ] {
            let body = OptionsBody { recording, event_window_s: [1, 1], time_profile: profile.map(Into::into) };
            let e = o.set("bus-1", "front", body).unwrap_err().to_string();
            assert!(e.contains(says), "{e}");
            assert_eq!(o.camera("bus-1", "front").1, OptionsSource::Config);
        }
        let unknown: Result<OptionsBody, _> = serde_json::from_str(r#"{"recording": ["remote"], "colour": 1}"#);
        assert!(unknown.is_err(), "unknown fields are refused");
        let central: OptionsBody = serde_json::from_str(r#"{"recording": ["central"]}"#).unwrap();
        assert_eq!(central.recording, [RecordingOption::Central], "recording at central only");
        let unknown: Result<OptionsBody, _> = serde_json::from_str(r#"{"recording": ["everywhere"]}"#);
        assert!(unknown.is_err(), "an unknown option is refused");
    }
    crate::on_both_backends!(
        options_that_do_not_fit_are_refused_and_change_nothing,
        super::options_that_do_not_fit_are_refused_and_change_nothing
    );

    fn an_unreadable_stored_row_is_an_error_not_a_panic(at: &CatalogLocation) {
        let o = RecordingOptions::open(site(), at).unwrap();
        o.db.execute("INSERT INTO camera_options VALUES ('bus-1', 'front', '{\"recording\": 7}')", &[]).unwrap();
        drop(o);
        let e = RecordingOptions::open(site(), at).err().unwrap().to_string();
        assert!(e.contains("bus-1/front"), "{e}");
    }
    crate::on_both_backends!(
        an_unreadable_stored_row_is_an_error_not_a_panic,
        super::an_unreadable_stored_row_is_an_error_not_a_panic
    );

    #[test]
    fn a_fleet_profile_sets_options_below_the_api_and_above_the_config() {
        let dir = tempfile::tempdir().unwrap();
        let at = CatalogLocation::Sqlite { dir: dir.path().to_owned() };
        let profiles = Arc::new(crate::profiles::Profiles::open(&at).unwrap());
        let o = RecordingOptions::open(site(), &at).unwrap().with_profiles(profiles.clone());
        let body = serde_json::from_str(
            r#"{"cameras": {"*": {"recording": ["remote", "time_profile"], "time_profile": "nights", "event_window_s": [2, 3]}}}"#,
        )
        .unwrap();
        profiles.put("buses", body).unwrap();
        assert_eq!(o.camera("bus-1", "front").1, OptionsSource::Config, "not assigned yet");
        let assignment = crate::profiles::Assignment { profile: Some("buses".into()), ..Default::default() };
        profiles.assign("bus-1", assignment).unwrap();
        let (c, source) = o.camera("bus-1", "front");
        assert_eq!((source, c.event_window_s), (OptionsSource::Profile, [2, 3]));
        assert!(o.camera_time_profile("bus-1", "front").is_some(), "retrieval follows the profile's rules");
        let body = OptionsBody { recording: vec![RecordingOption::None], event_window_s: [1, 1], time_profile: None };
        o.set("bus-1", "front", body).unwrap();
        assert_eq!(o.camera_options("bus-1", "front").0, [RecordingOption::None], "set per camera: wins");
    }

    #[test]
    fn options_set_through_another_node_apply_within_the_reload_time() {
        let at = crate::catalog::test_cluster::fresh_database();
        let (a, b) = (RecordingOptions::open(site(), &at).unwrap(), RecordingOptions::open(site(), &at).unwrap());
        let body =
            OptionsBody { recording: vec![RecordingOption::OnRequest], event_window_s: [1, 2], time_profile: None };
        a.set("bus-1", "rear", body).unwrap();
        let started = Instant::now();
        while b.camera("bus-1", "rear").1 != OptionsSource::Api {
            assert!(started.elapsed() < RELOAD * 3, "node b never saw node a's options");
            std::thread::sleep(Duration::from_millis(50));
        }
        assert_eq!(b.camera_options("bus-1", "rear"), (vec![RecordingOption::OnRequest], [1, 2]));
        assert!(a.clear("bus-1", "rear").unwrap());
        let started = Instant::now();
        while b.camera("bus-1", "rear").1 == OptionsSource::Api {
            assert!(started.elapsed() < RELOAD * 3, "node b never saw node a clear them");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}
