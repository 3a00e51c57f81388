//! Each unit camera's recording options: what an operator set through the API
//! (`PUT /api/units/{unit}/cameras/{camera}/recording`, kept in `<store>/options.db`), else its
//! fleet profile and overrides ([`crate::profiles`]), else its `[[unit.camera]]` table in
//! central.toml, else the defaults. The sync hub asks here, so a
//! change applies from the unit's next catalog on, without a restart.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};

use rusqlite::{Connection, params};
use serde::{Deserialize, Serialize};
use sync_core::time_profile::TimeProfile;

use crate::config::{CameraConfig, CentralConfig, RecordingOption, default_event_window, default_recording};

/// Why options could not be read, stored or accepted.
#[derive(Debug, thiserror::Error)]
pub enum OptionsError {
    /// The options database failed.
    #[error("recording options database: {0}")]
    Db(#[from] rusqlite::Error),
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
    overrides: RwLock<HashMap<(String, String), CameraConfig>>,
    db: Mutex<Connection>,
    profiles: Option<Arc<crate::profiles::Profiles>>,
}

impl RecordingOptions {
    /// Opens (or creates) the options database at `path`, loading what the API set before.
    pub fn open(site: Arc<CentralConfig>, path: &Path) -> Result<RecordingOptions, OptionsError> {
        let db = Connection::open(path)?;
        db.execute_batch(
            "PRAGMA journal_mode = WAL;
             CREATE TABLE IF NOT EXISTS camera_options (
                 unit TEXT NOT NULL, camera TEXT NOT NULL, options TEXT NOT NULL, PRIMARY KEY (unit, camera));",
        )?;
        let mut overrides = HashMap::new();
        {
            let mut stmt = db.prepare("SELECT unit, camera, options FROM camera_options")?;
            let rows =
                stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?)))?;
            for row in rows {
                let (unit, camera, text) = row?;
                let body: OptionsBody = serde_json::from_str(&text).map_err(|e| OptionsError::Corrupt {
                    unit: unit.clone(),
                    camera: camera.clone(),
                    message: e.to_string(),
                })?;
                let c = to_camera(&camera, body);
                // A profile removed from central.toml since: the camera retrieves by nothing
                // until an operator sets its options again (said once, at start).
                if let Err(e) = site.check_camera(&c) {
                    tracing::warn!(unit, camera, "recording options set through the API no longer fit: {e}");
                }
                overrides.insert((unit, camera), c);
            }
        }
        Ok(RecordingOptions { site, overrides: RwLock::new(overrides), db: Mutex::new(db), profiles: None })
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

    /// Central's configuration.
    pub fn site(&self) -> &CentralConfig {
        &self.site
    }

    /// The effective options of `unit`'s `camera` and where they come from.
    pub fn camera(&self, unit: &str, camera: &str) -> (CameraConfig, OptionsSource) {
        let key = (unit.to_owned(), camera.to_owned());
        if let Some(c) = self.overrides.read().unwrap_or_else(|p| p.into_inner()).get(&key) {
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
        self.db.lock().unwrap_or_else(|p| p.into_inner()).execute(
            "INSERT INTO camera_options (unit, camera, options) VALUES (?1, ?2, ?3)
             ON CONFLICT (unit, camera) DO UPDATE SET options = excluded.options",
            params![unit, camera, text],
        )?;
        self.overrides
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert((unit.to_owned(), camera.to_owned()), c.clone());
        Ok(c)
    }

    /// Forgets what the API set for `unit`'s `camera` (central.toml or the defaults apply
    /// again); false when nothing was set.
    pub fn clear(&self, unit: &str, camera: &str) -> Result<bool, OptionsError> {
        let n = self
            .db
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .execute("DELETE FROM camera_options WHERE unit = ?1 AND camera = ?2", params![unit, camera])?;
        self.overrides.write().unwrap_or_else(|p| p.into_inner()).remove(&(unit.to_owned(), camera.to_owned()));
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

    #[test]
    fn api_overrides_config_overrides_defaults_and_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("options.db");
        let o = RecordingOptions::open(site(), &path).unwrap();
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
        let o = RecordingOptions::open(site(), &path).unwrap();
        assert_eq!(o.camera_options("bus-1", "front"), (body.recording, [3, 4]), "kept across a restart");
        assert!(o.clear("bus-1", "front").unwrap());
        assert!(!o.clear("bus-1", "front").unwrap());
        assert_eq!(o.camera("bus-1", "front").1, OptionsSource::Config);
        drop(o);
        let o = RecordingOptions::open(site(), &path).unwrap();
        assert_eq!(o.camera("bus-1", "front").1, OptionsSource::Config, "the clearing is durable too");
    }

    #[test]
    fn a_fleet_profile_sets_options_below_the_api_and_above_the_config() {
        let dir = tempfile::tempdir().unwrap();
        let profiles = Arc::new(crate::profiles::Profiles::open(&dir.path().join("profiles.db")).unwrap());
        let o = RecordingOptions::open(site(), &dir.path().join("options.db")).unwrap().with_profiles(profiles.clone());
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
    fn options_that_do_not_fit_are_refused_and_change_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let o = RecordingOptions::open(site(), &dir.path().join("options.db")).unwrap();
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
        let central: Result<OptionsBody, _> = serde_json::from_str(r#"{"recording": ["central"]}"#);
        assert!(central.is_err(), "\"central\" is not supported yet");
    }

    #[test]
    fn an_unreadable_stored_row_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("options.db");
        drop(RecordingOptions::open(site(), &path).unwrap());
        Connection::open(&path)
            .unwrap()
            .execute("INSERT INTO camera_options VALUES ('bus-1', 'front', '{\"recording\": 7}')", [])
            .unwrap();
        let e = RecordingOptions::open(site(), &path).err().unwrap().to_string();
        assert!(e.contains("bus-1/front"), "{e}");
    }
}
