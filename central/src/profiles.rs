//! Fleet profiles: named sets of camera settings and recording options assigned to many units
//! at once, with per-unit overrides, and each unit's settings revisions (what central last
//! made, what the unit last applied, the conflicts and the technician's changes it reported).
//! Kept in the catalog ([`crate::catalog`]: `profiles.db` in the store directory when SQLite,
//! shared by every node when PostgreSQL; profiles and assignments made through another node
//! apply here at most [`RELOAD`] later); every SQL statement of it is in this file.
//!
//! A unit's effective settings of a camera are layered field by field: the profile's `"*"`
//! entry, the profile's entry for the camera, the unit's `"*"` override, the unit's override for
//! the camera (a later layer wins). Recording options follow the same layers and feed the
//! retrieval rules too ([`crate::recording_options::RecordingOptions::camera`]: options set
//! per camera through the API still win over a profile).

use std::collections::{BTreeMap, HashMap};
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

use protocol::sync::{CameraSettings, LocalChange, SettingsConflict, SettingsPush};
use serde::{Deserialize, Serialize};

use crate::catalog::{Backend, CatalogDb, CatalogError, CatalogLocation, Migration, Row, Schema};
use crate::config::RecordingOption;

/// Why profiles could not be read, stored or accepted.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    /// The profiles' part of the catalog failed.
    #[error("fleet profiles: {0}")]
    Db(CatalogError),
    /// A stored row is not what this central writes (written by a newer central?).
    #[error("stored {what} is unreadable: {message}")]
    Corrupt {
        /// Which row.
        what: String,
        /// The decoder's message.
        message: String,
    },
    /// The request does not make sense (a bad value, an unknown profile).
    #[error("{0}")]
    Invalid(String),
    /// The profile is still assigned to units.
    #[error("profile {name:?} is assigned to {units:?}; assign them another profile (or none) first")]
    InUse {
        /// The profile.
        name: String,
        /// The units it is assigned to.
        units: Vec<String>,
    },
}

// Not `#[from]`: the message already holds the catalog's, so it is no `source` to print twice.
impl From<CatalogError> for ProfileError {
    fn from(e: CatalogError) -> Self {
        ProfileError::Db(e)
    }
}

/// One camera's settings as central's API takes them: every field optional (left out: the
/// next layer's value, finally the unit's own configuration).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CameraSettingsBody {
    /// Recording options (the Interconnect list); without `"remote"` the unit does not record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recording: Option<Vec<RecordingOption>>,
    /// `continuous`, `schedule`, `event` or `off`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// The unit's `[[time_profile]]` that schedule mode records in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
    /// Seconds kept before a trigger.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pre_buffer_s: Option<f64>,
    /// Seconds recorded after a trigger.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub post_buffer_s: Option<f64>,
    /// Motion detection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub motion: Option<bool>,
    /// Motion sensitivity, 1–10.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub motion_sensitivity: Option<u8>,
    /// Recordings older than this many days are deleted on the unit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_age_days: Option<f64>,
    /// Retrieval rule, at central only: seconds before and after an event that
    /// `"event_window"` retrieves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_window_s: Option<[u32; 2]>,
    /// Retrieval rule, at central only: the `[[time_profile]]` of central.toml that
    /// `"time_profile"` retrieves by.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_profile: Option<String>,
}

/// The recording modes a unit knows.
pub const MODES: [&str; 4] = ["continuous", "schedule", "event", "off"];

impl CameraSettingsBody {
    /// Checks each value given; the error names the camera and the field.
    pub fn check(&self, camera: &str) -> Result<(), String> {
        let bad = |field: &str, what: &str| Err(format!("camera {camera:?}: {field} {what}"));
        if let Some(m) = &self.mode
            && !MODES.contains(&m.as_str())
        {
            return bad("mode", "must be continuous, schedule, event or off");
        }
        if self.schedule.as_deref().is_some_and(|s| s.trim().is_empty()) {
            return bad("schedule", "must name one of the unit's [[time_profile]]s");
        }
        for (field, v) in [("pre_buffer_s", self.pre_buffer_s), ("post_buffer_s", self.post_buffer_s)] {
            if v.is_some_and(|v| !(0.0..=3600.0).contains(&v)) {
                return bad(field, "must be between 0 and 3600 seconds");
            }
        }
        if self.motion_sensitivity.is_some_and(|s| !(1..=10).contains(&s)) {
            return bad("motion_sensitivity", "must be 1 to 10");
        }
        if self.max_age_days.is_some_and(|d| !(d > 0.0 && d <= 36_500.0)) {
            return bad("max_age_days", "must be more than 0 and at most 36500");
        }
        if let Some(r) = &self.recording
            && r.is_empty()
        {
            return bad("recording", "must name at least one option (\"none\" for nothing)");
        }
        Ok(())
    }

    /// The fields `over` gives replace these.
    pub fn overlay(&mut self, over: &CameraSettingsBody) {
        macro_rules! take {
            ($($f:ident),*) => { $( if over.$f.is_some() { self.$f = over.$f.clone(); } )* };
        }
        take!(
            recording,
            mode,
            schedule,
            pre_buffer_s,
            post_buffer_s,
            motion,
            motion_sensitivity,
            max_age_days,
            event_window_s,
            time_profile
        );
    }

    /// On the wire, for `camera` (`"*"` for every camera); the retrieval rules stay at central.
    pub fn to_wire(&self, camera: &str) -> CameraSettings {
        CameraSettings {
            camera: camera.to_owned(),
            recording: self.recording.as_ref().map(|r| r.iter().map(|o| option_name(*o)).collect()),
            mode: self.mode.clone(),
            schedule: self.schedule.clone(),
            pre_buffer_ms: self.pre_buffer_s.map(|s| (s * 1000.0).round() as u32),
            post_buffer_ms: self.post_buffer_s.map(|s| (s * 1000.0).round() as u32),
            motion: self.motion,
            motion_sensitivity: self.motion_sensitivity,
            max_age_s: self.max_age_days.map(|d| (d * 86_400.0).round() as u64),
        }
    }
}

/// A recording option's name, as central.toml and the API spell it.
pub fn option_name(o: RecordingOption) -> String {
    serde_json::to_value(o).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
}

/// A fleet profile: settings for every camera (`"*"`) and for cameras by id.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileBody {
    /// By camera id, or `"*"` for every camera.
    pub cameras: BTreeMap<String, CameraSettingsBody>,
}

impl ProfileBody {
    /// Checks every entry.
    pub fn check(&self) -> Result<(), String> {
        self.cameras.iter().try_for_each(|(camera, s)| s.check(camera))
    }
}

/// A unit's profile and its own overrides (the body of `PUT /api/units/{unit}/profile`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Assignment {
    /// The profile's name (`null`: none).
    #[serde(default)]
    pub profile: Option<String>,
    /// Settings of this unit only, by camera id or `"*"`; they win over the profile.
    #[serde(default)]
    pub overrides: BTreeMap<String, CameraSettingsBody>,
}

/// What central knows of a unit's settings revisions.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct UnitSettingsState {
    /// The latest revision central made (0: none yet).
    pub revision: u64,
    /// When it was made, microseconds since the Unix epoch.
    pub set_at_us: i64,
    /// The revision the unit last said it applied.
    pub applied_revision: Option<u64>,
    /// When central heard so.
    pub applied_at_us: Option<i64>,
    /// The conflicts the unit reported with that answer.
    pub conflicts: Vec<SettingsConflict>,
    /// The unit's protocol version at its last connection (settings need 3).
    pub unit_protocol: Option<u16>,
}

/// A technician's change a unit reported, with when central received it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReportedChange {
    /// The change as the unit sent it.
    #[serde(flatten)]
    pub change: LocalChange,
    /// When central stored it, microseconds since the Unix epoch.
    pub received_us: i64,
}

/// The fleet profiles and per-unit settings state (see the module documentation).
pub struct Profiles {
    db: CatalogDb,
    cache: RwLock<Cache>,
}

/// The profiles and assignments as last read, and when.
struct Cache {
    profiles: BTreeMap<String, ProfileBody>,
    assignments: HashMap<String, Assignment>,
    read: Instant,
}

/// How stale profiles and assignments made through another node may be (shared PostgreSQL
/// catalog only).
pub const RELOAD: Duration = Duration::from_secs(2);

/// The profiles' part of the catalog. Version 1 is the schema profiles.db always had.
pub const SCHEMA: Schema = Schema {
    part: "profiles",
    sqlite_file: "profiles.db",
    migrations: &[Migration {
        sqlite: "
CREATE TABLE IF NOT EXISTS profiles (name TEXT PRIMARY KEY, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS unit_profiles (unit TEXT PRIMARY KEY, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS unit_settings (
    unit TEXT PRIMARY KEY, revision INTEGER NOT NULL, set_at_us INTEGER NOT NULL,
    content TEXT NOT NULL, applied_revision INTEGER, applied_at_us INTEGER,
    conflicts TEXT NOT NULL DEFAULT '[]', unit_protocol INTEGER);
CREATE TABLE IF NOT EXISTS local_changes (
    unit TEXT NOT NULL, id INTEGER NOT NULL, body TEXT NOT NULL, received_us INTEGER NOT NULL,
    PRIMARY KEY (unit, id));
",
        postgres: "
CREATE TABLE profiles (name TEXT PRIMARY KEY, body TEXT NOT NULL);
CREATE TABLE unit_profiles (unit TEXT PRIMARY KEY, body TEXT NOT NULL);
CREATE TABLE unit_settings (
    unit TEXT PRIMARY KEY, revision BIGINT NOT NULL, set_at_us BIGINT NOT NULL,
    content TEXT NOT NULL, applied_revision BIGINT, applied_at_us BIGINT,
    conflicts TEXT NOT NULL DEFAULT '[]', unit_protocol BIGINT);
CREATE TABLE local_changes (
    unit TEXT NOT NULL, id BIGINT NOT NULL, body TEXT NOT NULL, received_us BIGINT NOT NULL,
    PRIMARY KEY (unit, id));
",
    }],
};

fn corrupt(what: String) -> impl FnOnce(serde_json::Error) -> ProfileError {
    move |e| ProfileError::Corrupt { what, message: e.to_string() }
}

/// Every profile and every unit's assignment, as stored.
fn load(db: &CatalogDb) -> Result<Cache, ProfileError> {
    let (profile_rows, assignment_rows) = db.transaction(|tx| {
        let p = tx.query("SELECT name, body FROM profiles", &[])?;
        let a = tx.query("SELECT unit, body FROM unit_profiles", &[])?;
        Ok::<_, CatalogError>((p, a))
    })?;
    let mut profiles = BTreeMap::new();
    for row in profile_rows {
        let (name, text): (String, String) = (row.get(0)?, row.get(1)?);
        let body = serde_json::from_str(&text).map_err(corrupt(format!("profile {name:?}")))?;
        profiles.insert(name, body);
    }
    let mut assignments = HashMap::new();
    for row in assignment_rows {
        let (unit, text): (String, String) = (row.get(0)?, row.get(1)?);
        let body = serde_json::from_str(&text).map_err(corrupt(format!("profile assignment of {unit:?}")))?;
        assignments.insert(unit, body);
    }
    Ok(Cache { profiles, assignments, read: Instant::now() })
}

impl Profiles {
    /// Opens (or creates) the profiles' part of the catalog at `at`, loading the profiles and
    /// assignments.
    pub fn open(at: &CatalogLocation) -> Result<Profiles, ProfileError> {
        let db = CatalogDb::open(at, &SCHEMA)?;
        let cache = load(&db)?;
        Ok(Profiles { db, cache: RwLock::new(cache) })
    }

    /// The profiles and assignments; on a shared catalog read again when older than
    /// [`RELOAD`] (or `now`), keeping the last read when that fails.
    fn cache(&self, now: bool) -> RwLockReadGuard<'_, Cache> {
        let stale = self.db.backend() == Backend::Postgres
            && (now || self.cache.read().unwrap_or_else(|p| p.into_inner()).read.elapsed() >= RELOAD);
        if stale {
            let loaded = load(&self.db);
            let mut cache = self.cache.write().unwrap_or_else(|p| p.into_inner());
            match loaded {
                Ok(c) => *cache = c,
                Err(e) => {
                    tracing::warn!("cannot read the fleet profiles again (keeping the last ones): {e}");
                    cache.read = Instant::now();
                }
            }
        }
        self.cache.read().unwrap_or_else(|p| p.into_inner())
    }

    fn cache_mut(&self) -> RwLockWriteGuard<'_, Cache> {
        self.cache.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Every profile, by name.
    pub fn list(&self) -> BTreeMap<String, ProfileBody> {
        self.cache(false).profiles.clone()
    }

    /// Creates or replaces profile `name`; returns the units it is assigned to.
    pub fn put(&self, name: &str, body: ProfileBody) -> Result<Vec<String>, ProfileError> {
        let ok = !name.is_empty()
            && name.len() <= 64
            && name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
        if !ok {
            return Err(ProfileError::Invalid(format!(
                "profile name {name:?}: use 1–64 letters, digits, '-', '_' or '.'"
            )));
        }
        body.check().map_err(ProfileError::Invalid)?;
        let text = serde_json::to_string(&body).map_err(|e| ProfileError::Invalid(e.to_string()))?;
        self.db.execute(
            "INSERT INTO profiles (name, body) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET body = excluded.body",
            &[name.into(), text.into()],
        )?;
        self.cache_mut().profiles.insert(name.to_owned(), body);
        Ok(self.units_with(name))
    }

    /// Deletes profile `name` (false: there was none); refused while units have it.
    pub fn delete(&self, name: &str) -> Result<bool, ProfileError> {
        let units = units_with(&self.cache(true), name);
        if !units.is_empty() {
            return Err(ProfileError::InUse { name: name.to_owned(), units });
        }
        let n = self.db.execute("DELETE FROM profiles WHERE name = $1", &[name.into()])?;
        self.cache_mut().profiles.remove(name);
        Ok(n > 0)
    }

    /// The units profile `name` is assigned to, sorted.
    pub fn units_with(&self, name: &str) -> Vec<String> {
        units_with(&self.cache(false), name)
    }

    /// Assigns `unit` its profile and overrides (the profile must exist).
    pub fn assign(&self, unit: &str, assignment: Assignment) -> Result<(), ProfileError> {
        if let Some(p) = &assignment.profile
            && !self.cache(true).profiles.contains_key(p)
        {
            return Err(ProfileError::Invalid(format!(
                "there is no profile {p:?}; create it with PUT /api/profiles/{p}"
            )));
        }
        assignment.overrides.iter().try_for_each(|(c, s)| s.check(c)).map_err(ProfileError::Invalid)?;
        let text = serde_json::to_string(&assignment).map_err(|e| ProfileError::Invalid(e.to_string()))?;
        self.db.execute(
            "INSERT INTO unit_profiles (unit, body) VALUES ($1, $2) ON CONFLICT (unit) DO UPDATE SET body = excluded.body",
            &[unit.into(), text.into()],
        )?;
        self.cache_mut().assignments.insert(unit.to_owned(), assignment);
        Ok(())
    }

    /// `unit`'s profile and overrides (empty when none was assigned).
    pub fn assignment(&self, unit: &str) -> Assignment {
        self.cache(false).assignments.get(unit).cloned().unwrap_or_default()
    }

    /// `unit`'s `camera`'s settings from its profile and overrides (see the module
    /// documentation); `camera` `"*"` gives what applies to cameras without entries of their own.
    pub fn layered(&self, unit: &str, camera: &str) -> CameraSettingsBody {
        let cache = self.cache(false);
        let a = cache.assignments.get(unit);
        let profile = a.and_then(|a| a.profile.as_ref()).and_then(|p| cache.profiles.get(p));
        let mut out = CameraSettingsBody::default();
        let mut layer = |entries: Option<&BTreeMap<String, CameraSettingsBody>>| {
            if let Some(e) = entries {
                if let Some(s) = e.get("*") {
                    out.overlay(s);
                }
                if camera != "*"
                    && let Some(s) = e.get(camera)
                {
                    out.overlay(s);
                }
            }
        };
        layer(profile.map(|p| &p.cameras));
        layer(a.map(|a| &a.overrides));
        out
    }

    /// `unit`'s effective settings: a `"*"` entry, then one per camera of `cameras`, each with
    /// its recording options from `recording` (which knows every source of them).
    pub fn effective(
        &self,
        unit: &str,
        cameras: &[String],
        recording: impl Fn(&str) -> Vec<RecordingOption>,
    ) -> Vec<(String, CameraSettingsBody)> {
        let mut ids: Vec<&str> = cameras.iter().map(String::as_str).filter(|c| *c != "*").collect();
        ids.sort_unstable();
        ids.dedup();
        std::iter::once("*")
            .chain(ids)
            .map(|c| {
                let mut s = self.layered(unit, c);
                s.recording = Some(recording(c));
                (c.to_owned(), s)
            })
            .collect()
    }

    /// `unit`'s `camera`'s recording options from its profile and overrides, if they set any.
    pub fn recording_for(&self, unit: &str, camera: &str) -> Option<Vec<RecordingOption>> {
        self.layered(unit, camera).recording
    }

    /// Makes `cameras` (with `profile`) the unit's settings: a new revision when they differ
    /// from the last one (above the last and at least `now_us` in milliseconds), else the last
    /// one. Durable before it returns.
    pub fn revise(
        &self,
        unit: &str,
        profile: Option<String>,
        cameras: Vec<CameraSettings>,
        now_us: i64,
    ) -> Result<SettingsPush, ProfileError> {
        let content = serde_json::to_string(&(&profile, &cameras)).map_err(|e| ProfileError::Invalid(e.to_string()))?;
        let (revision, set_at_us) = self.db.transaction(|tx| {
            let last =
                tx.query_opt("SELECT revision, set_at_us, content FROM unit_settings WHERE unit = $1", &[unit.into()])?;
            let last: Option<(i64, i64, String)> = last.map(|r| Ok((r.get(0)?, r.get(1)?, r.get(2)?))).transpose()?;
            if let Some((revision, set_at_us, old)) = &last
                && *old == content
            {
                return Ok::<_, CatalogError>((*revision, *set_at_us));
            }
            // At least the time in milliseconds: a central whose database was lost still makes
            // revisions above those its units applied before (as long as its clock is right).
            let revision = last.map_or(1, |l| l.0 + 1).max(now_us / 1000);
            tx.execute(
                "INSERT INTO unit_settings (unit, revision, set_at_us, content) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (unit) DO UPDATE SET revision = excluded.revision, set_at_us = excluded.set_at_us,
                     content = excluded.content",
                &[unit.into(), revision.into(), now_us.into(), content.as_str().into()],
            )?;
            Ok((revision, now_us))
        })?;
        Ok(SettingsPush { revision: revision as u64, profile, set_at_us, cameras })
    }

    /// The last revision made for `unit`, as it was sent (to hand to the unit's sync core
    /// after a restart); `None` before the first.
    pub fn last_push(&self, unit: &str) -> Result<Option<SettingsPush>, ProfileError> {
        let row = self
            .db
            .query_opt("SELECT revision, set_at_us, content FROM unit_settings WHERE unit = $1", &[unit.into()])?;
        let Some(row) = row else { return Ok(None) };
        let (revision, set_at_us, content): (i64, i64, String) = (row.get(0)?, row.get(1)?, row.get(2)?);
        let (profile, cameras): (Option<String>, Vec<CameraSettings>) =
            serde_json::from_str(&content).map_err(corrupt(format!("settings of {unit:?}")))?;
        Ok(Some(SettingsPush { revision: revision as u64, profile, set_at_us, cameras }))
    }

    /// The unit answered that it applied `revision` (with `conflicts`).
    pub fn applied(
        &self,
        unit: &str,
        revision: u64,
        conflicts: &[SettingsConflict],
        now_us: i64,
    ) -> Result<(), ProfileError> {
        let text = serde_json::to_string(conflicts).map_err(|e| ProfileError::Invalid(e.to_string()))?;
        self.db.execute(
            "UPDATE unit_settings SET applied_revision = $2, applied_at_us = $3, conflicts = $4
             WHERE unit = $1 AND (applied_revision IS NULL OR applied_revision < $2)",
            &[unit.into(), (revision as i64).into(), now_us.into(), text.into()],
        )?;
        Ok(())
    }

    /// Records the protocol version `unit` connected with.
    pub fn unit_connected(&self, unit: &str, protocol: u16) -> Result<(), ProfileError> {
        self.db.execute(
            "INSERT INTO unit_settings (unit, revision, set_at_us, content, unit_protocol) VALUES ($1, 0, 0, '', $2)
             ON CONFLICT (unit) DO UPDATE SET unit_protocol = excluded.unit_protocol",
            &[unit.into(), i64::from(protocol).into()],
        )?;
        Ok(())
    }

    /// What central knows of `unit`'s settings revisions (`None`: nothing yet).
    pub fn state(&self, unit: &str) -> Result<Option<UnitSettingsState>, ProfileError> {
        let row = self.db.query_opt(
            "SELECT unit, revision, set_at_us, applied_revision, applied_at_us, conflicts, unit_protocol
             FROM unit_settings WHERE unit = $1",
            &[unit.into()],
        )?;
        row.map(|r| state_row(&r).map(|(_, s)| s)).transpose()
    }

    /// Every unit's state, by unit (for the fleet overview).
    pub fn states(&self) -> Result<HashMap<String, UnitSettingsState>, ProfileError> {
        let rows = self.db.query(
            "SELECT unit, revision, set_at_us, applied_revision, applied_at_us, conflicts, unit_protocol
             FROM unit_settings",
            &[],
        )?;
        rows.iter().map(state_row).collect()
    }

    /// Stores the technician's changes `unit` reported (a change already held is kept as is);
    /// returns those not held before.
    pub fn add_local_changes(
        &self,
        unit: &str,
        changes: &[LocalChange],
        now_us: i64,
    ) -> Result<Vec<LocalChange>, ProfileError> {
        let texts = changes
            .iter()
            .map(|c| serde_json::to_string(c).map_err(|e| ProfileError::Invalid(e.to_string())))
            .collect::<Result<Vec<_>, _>>()?;
        let new = self.db.transaction(|tx| {
            let mut new = Vec::new();
            for (c, text) in changes.iter().zip(texts) {
                let n = tx.execute(
                    "INSERT INTO local_changes (unit, id, body, received_us) VALUES ($1, $2, $3, $4)
                     ON CONFLICT (unit, id) DO NOTHING",
                    &[unit.into(), (c.id as i64).into(), text.into(), now_us.into()],
                )?;
                if n > 0 {
                    new.push(c.clone());
                }
            }
            Ok::<_, CatalogError>(new)
        })?;
        Ok(new)
    }

    /// The newest `limit` changes `unit` reported, newest first.
    pub fn local_changes(&self, unit: &str, limit: u32) -> Result<Vec<ReportedChange>, ProfileError> {
        let rows = self.db.query(
            "SELECT body, received_us FROM local_changes WHERE unit = $1 ORDER BY id DESC LIMIT $2",
            &[unit.into(), limit.into()],
        )?;
        let mut out = Vec::new();
        for row in rows {
            let (text, received_us): (String, i64) = (row.get(0)?, row.get(1)?);
            let change = serde_json::from_str(&text).map_err(corrupt(format!("a change reported by {unit:?}")))?;
            out.push(ReportedChange { change, received_us });
        }
        Ok(out)
    }
}

/// The units `name` is assigned to in `cache`, sorted.
fn units_with(cache: &Cache, name: &str) -> Vec<String> {
    let mut units: Vec<String> =
        cache.assignments.iter().filter(|(_, a)| a.profile.as_deref() == Some(name)).map(|(u, _)| u.clone()).collect();
    units.sort();
    units
}

/// A `unit_settings` row (unit, revision, set_at_us, applied_revision, applied_at_us,
/// conflicts, unit_protocol) as the unit and its state.
fn state_row(r: &Row) -> Result<(String, UnitSettingsState), ProfileError> {
    let unit: String = r.get(0)?;
    let (revision, set_at_us): (i64, i64) = (r.get(1)?, r.get(2)?);
    let (applied_revision, applied_at_us): (Option<i64>, Option<i64>) = (r.get(3)?, r.get(4)?);
    let (conflicts, unit_protocol): (String, Option<i64>) = (r.get(5)?, r.get(6)?);
    let conflicts = serde_json::from_str(&conflicts).map_err(corrupt(format!("conflicts of {unit:?}")))?;
    let unit_protocol = unit_protocol
        .map(u16::try_from)
        .transpose()
        .map_err(|e| ProfileError::Corrupt { what: format!("protocol version of {unit:?}"), message: e.to_string() })?;
    let state = UnitSettingsState {
        revision: revision as u64,
        set_at_us,
        applied_revision: applied_revision.map(|r| r as u64),
        applied_at_us,
        conflicts,
        unit_protocol,
    };
    Ok((unit, state))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(json: &str) -> ProfileBody {
        serde_json::from_str(json).unwrap()
    }

    fn profiles_and_assignments_layer_and_survive_a_restart(at: &CatalogLocation) {
        let p = Profiles::open(at).unwrap();
        p.put(
            "buses",
            body(
                r#"{"cameras": {"*": {"mode": "event", "pre_buffer_s": 8, "recording": ["remote", "link_gap"]},
                                "cabin": {"recording": ["none"]}}}"#,
            ),
        )
        .unwrap();
        let overrides = serde_json::from_str(r#"{"*": {"pre_buffer_s": 2}, "front": {"motion": true}}"#).unwrap();
        p.assign("bus-1", Assignment { profile: Some("buses".into()), overrides }).unwrap();
        drop(p);
        let p = Profiles::open(at).unwrap();
        let front = p.layered("bus-1", "front");
        assert_eq!((front.mode.as_deref(), front.pre_buffer_s, front.motion), (Some("event"), Some(2.0), Some(true)));
        assert_eq!(p.recording_for("bus-1", "cabin"), Some(vec![RecordingOption::None]));
        assert_eq!(p.recording_for("bus-1", "*"), Some(vec![RecordingOption::Remote, RecordingOption::LinkGap]));
        assert_eq!(p.recording_for("bus-2", "front"), None, "no profile: nothing set");
        assert_eq!(p.layered("bus-1", "*").motion, None, "a camera's override is not everyone's");
        assert!(matches!(p.delete("buses"), Err(ProfileError::InUse { .. })));
        p.assign("bus-1", Assignment::default()).unwrap();
        assert!(p.delete("buses").unwrap());
        assert!(!p.delete("buses").unwrap());
    }
    crate::on_both_backends!(
        profiles_and_assignments_layer_and_survive_a_restart,
        super::profiles_and_assignments_layer_and_survive_a_restart
    );

    fn bad_values_and_unknown_profiles_are_refused(at: &CatalogLocation) {
        let p = Profiles::open(at).unwrap();
        for (json, says) in [
            (r#"{"cameras": {"*": {"mode": "sometimes"}}}"#, "mode"),
            (r#"{"cameras": {"a": {"motion_sensitivity": 11}}}"#, "motion_sensitivity"),
            (r#"{"cameras": {"a": {"pre_buffer_s": -1}}}"#, "pre_buffer_s"),
            (r#"{"cameras": {"a": {"max_age_days": 0}}}"#, "max_age_days"),
            (r#"{"cameras": {"a": {"recording": []}}}"#, "recording"),
        ] {
            let e = p.put("x", body(json)).unwrap_err().to_string();
            assert!(e.contains(says), "{e}");
        }
        assert!(p.put("a b", ProfileBody::default()).is_err());
        assert!(serde_json::from_str::<ProfileBody>(r#"{"cameras": {"a": {"url": "rtsp://x"}}}"#).is_err());
        let e = p.assign("u", Assignment { profile: Some("nope".into()), ..Default::default() }).unwrap_err();
        assert!(e.to_string().contains("no profile"), "{e}");
    }
    crate::on_both_backends!(
        bad_values_and_unknown_profiles_are_refused,
        super::bad_values_and_unknown_profiles_are_refused
    );

    fn a_revision_rises_only_when_the_settings_change_and_answers_are_kept(at: &CatalogLocation) {
        let p = Profiles::open(at).unwrap();
        p.unit_connected("u", 3).unwrap();
        let one = vec![CameraSettingsBody { mode: Some("event".into()), ..Default::default() }.to_wire("*")];
        let r1 = p.revise("u", None, one.clone(), 10).unwrap();
        assert_eq!(r1.revision, 1);
        assert_eq!(p.revise("u", None, one.clone(), 20).unwrap(), r1, "the same settings: the same revision");
        let r2 = p.revise("u", Some("buses".into()), one.clone(), 30).unwrap();
        assert_eq!((r2.revision, r2.set_at_us), (2, 30));
        // After a lost database, revisions start at the time in milliseconds.
        let other = tempfile::tempdir().unwrap();
        let lost = match at {
            CatalogLocation::Sqlite { .. } => CatalogLocation::Sqlite { dir: other.path().to_owned() },
            CatalogLocation::Postgres { .. } => crate::catalog::test_cluster::fresh_database(),
        };
        let fresh = Profiles::open(&lost).unwrap();
        assert_eq!(fresh.revise("u", None, one, 1_700_000_000_000_000).unwrap().revision, 1_700_000_000_000);
        assert_eq!(p.last_push("u").unwrap(), Some(r2));
        let conflict =
            SettingsConflict { camera: "a".into(), field: "mode".into(), local: "1".into(), central: "2".into() };
        p.applied("u", 2, std::slice::from_ref(&conflict), 40).unwrap();
        p.applied("u", 1, &[], 50).unwrap();
        let s = p.state("u").unwrap().unwrap();
        assert_eq!(
            (s.revision, s.applied_revision, s.conflicts, s.unit_protocol),
            (2, Some(2), vec![conflict], Some(3))
        );
        let change = LocalChange {
            id: 4,
            camera: "a".into(),
            field: "mode".into(),
            value: "\"off\"".into(),
            at_us: 1,
            overridden: false,
        };
        assert_eq!(p.add_local_changes("u", std::slice::from_ref(&change), 60).unwrap().len(), 1);
        assert!(p.add_local_changes("u", std::slice::from_ref(&change), 70).unwrap().is_empty());
        let got = p.local_changes("u", 10).unwrap();
        assert_eq!(got, vec![ReportedChange { change, received_us: 60 }], "stored once");
        assert_eq!(p.states().unwrap().len(), 1);
        assert_eq!(p.state("nobody").unwrap(), None);
    }
    crate::on_both_backends!(
        a_revision_rises_only_when_the_settings_change_and_answers_are_kept,
        super::a_revision_rises_only_when_the_settings_change_and_answers_are_kept
    );

    #[test]
    fn a_profiles_db_made_before_the_catalog_keeps_its_rows() {
        let dir = tempfile::tempdir().unwrap();
        let old = rusqlite::Connection::open(dir.path().join("profiles.db")).unwrap();
        // The DDL profiles.rs ran before it moved into the catalog, as it was.
        old.execute_batch(
            "PRAGMA journal_mode = WAL;
             CREATE TABLE IF NOT EXISTS profiles (name TEXT PRIMARY KEY, body TEXT NOT NULL);
             CREATE TABLE IF NOT EXISTS unit_profiles (unit TEXT PRIMARY KEY, body TEXT NOT NULL);
             CREATE TABLE IF NOT EXISTS unit_settings (
                 unit TEXT PRIMARY KEY, revision INTEGER NOT NULL, set_at_us INTEGER NOT NULL,
                 content TEXT NOT NULL, applied_revision INTEGER, applied_at_us INTEGER,
                 conflicts TEXT NOT NULL DEFAULT '[]', unit_protocol INTEGER);
             CREATE TABLE IF NOT EXISTS local_changes (
                 unit TEXT NOT NULL, id INTEGER NOT NULL, body TEXT NOT NULL, received_us INTEGER NOT NULL,
                 PRIMARY KEY (unit, id));
             INSERT INTO profiles VALUES ('buses', '{\"cameras\": {\"*\": {\"mode\": \"event\"}}}');
             INSERT INTO unit_profiles VALUES ('bus-1', '{\"profile\": \"buses\", \"overrides\": {}}');
             INSERT INTO unit_settings VALUES ('bus-1', 7, 70, '[null, []]', 7, 71, '[]', 3);
             INSERT INTO local_changes VALUES ('bus-1', 1, \
                 '{\"id\": 1, \"camera\": \"a\", \"field\": \"mode\", \"value\": \"1\", \"at_us\": 1, \"overridden\": false}', 72);",
        )
        .unwrap();
        // The catalog's version 1 is exactly that schema.
        let tables = |c: &rusqlite::Connection| -> Vec<(String, String)> {
            let mut stmt = c
                .prepare("SELECT name, sql FROM sqlite_master WHERE type = 'table' AND name != 'catalog_schema' ORDER BY name")
                .unwrap();
            stmt.query_map([], |r| {
                Ok((r.get(0)?, r.get::<_, String>(1)?.split_whitespace().collect::<Vec<_>>().join(" ")))
            })
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
        };
        let fresh = rusqlite::Connection::open_in_memory().unwrap();
        fresh.execute_batch(SCHEMA.migrations[0].sqlite).unwrap();
        assert_eq!(tables(&fresh), tables(&old));
        drop(old);
        let p = Profiles::open(&CatalogLocation::Sqlite { dir: dir.path().to_owned() }).unwrap();
        assert_eq!(p.units_with("buses"), ["bus-1"]);
        assert_eq!(p.layered("bus-1", "front").mode.as_deref(), Some("event"));
        assert_eq!(p.last_push("bus-1").unwrap().map(|s| (s.revision, s.set_at_us)), Some((7, 70)));
        let s = p.state("bus-1").unwrap().unwrap();
        assert_eq!((s.applied_revision, s.applied_at_us, s.unit_protocol), (Some(7), Some(71), Some(3)));
        assert_eq!(p.local_changes("bus-1", 5).unwrap().len(), 1);
    }

    #[test]
    fn wire_values_are_in_the_units_it_takes() {
        let s = CameraSettingsBody {
            recording: Some(vec![RecordingOption::Remote, RecordingOption::OnRequest]),
            pre_buffer_s: Some(2.5),
            max_age_days: Some(1.5),
            ..Default::default()
        };
        let w = s.to_wire("front");
        assert_eq!(w.recording, Some(vec!["remote".to_owned(), "on_request".to_owned()]));
        assert_eq!((w.pre_buffer_ms, w.max_age_s), (Some(2500), Some(129_600)));
    }

    #[test]
    fn profiles_made_through_another_node_apply_within_the_reload_time() {
        let at = crate::catalog::test_cluster::fresh_database();
        let (a, b) = (Profiles::open(&at).unwrap(), Profiles::open(&at).unwrap());
        a.put("buses", body(r#"{"cameras": {"*": {"mode": "off"}}}"#)).unwrap();
        b.assign("bus-1", Assignment { profile: Some("buses".into()), ..Default::default() }).unwrap();
        let started = Instant::now();
        while a.layered("bus-1", "front").mode.as_deref() != Some("off") {
            assert!(started.elapsed() < RELOAD * 3, "node a never saw node b's assignment");
            std::thread::sleep(Duration::from_millis(50));
        }
        assert!(matches!(a.delete("buses"), Err(ProfileError::InUse { .. })), "assigned through node b");
    }
}
