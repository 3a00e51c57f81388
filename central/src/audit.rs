//! The audit log: who logged in (or failed to), watched, played back, exported, retrieved or
//! changed what, and when. Kept in the catalog (`<store>/audit.db` when SQLite; one log for
//! every node when PostgreSQL); `GET /api/audit` searches it.

use serde::Serialize;

use crate::catalog::{CatalogDb, CatalogError, CatalogLocation, Migration, Schema};

use crate::time::rfc3339;

/// Why the audit log failed.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// The database failed.
    #[error("audit log database: {0}")]
    Db(CatalogError),
}

// Not `#[from]`: the message already holds the catalog's, so it is no `source` to print twice.
impl From<CatalogError> for AuditError {
    fn from(e: CatalogError) -> Self {
        AuditError::Db(e)
    }
}

/// What happened, to be recorded.
#[derive(Debug, Clone, Default)]
pub struct Event {
    /// Who did it (the user name, or what they tried to log in as).
    pub user: String,
    /// What: `login`, `login_failed`, `logout`, `live_view`, `playback`, `export`,
    /// `retrieval_requested`, `recording_options_set`, `recording_options_cleared`, `user_added`,
    /// `user_removed`, `token_created`, `tokens_revoked`, `unit_added`, `unit_revoked`,
    /// `evidence_locked`, `alarm_acknowledged`, `alarm_closed`, `event_ingested`, `profile_set`,
    /// `profile_deleted`, `unit_profile_set`, `unit_local_change` (a technician's change a unit
    /// reported, by `technician@UNIT`).
    pub action: &'static str,
    /// The unit it was about.
    pub unit: Option<String>,
    /// The camera it was about.
    pub camera: Option<String>,
    /// More: a time range, a role, a reason.
    pub detail: String,
    /// The client's address, when it came over HTTP.
    pub client: Option<String>,
}

/// One recorded entry, as `GET /api/audit` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Entry {
    /// Its number: later entries have larger ones.
    pub id: i64,
    /// When (RFC 3339).
    pub time: String,
    /// Who.
    pub user: String,
    /// What.
    pub action: String,
    /// The unit, if any.
    pub unit: Option<String>,
    /// The camera, if any.
    pub camera: Option<String>,
    /// More.
    pub detail: String,
    /// The client's address, if known.
    pub client: Option<String>,
}

/// The audit log (see the module documentation).
pub struct AuditLog {
    db: CatalogDb,
}

/// The audit log's part of the catalog. Version 1 is the schema audit.db always had.
pub const SCHEMA: Schema = Schema {
    part: "audit",
    sqlite_file: "audit.db",
    migrations: &[Migration {
        sqlite: "CREATE TABLE IF NOT EXISTS audit (
                     id INTEGER PRIMARY KEY AUTOINCREMENT, at_us INTEGER NOT NULL, user TEXT NOT NULL,
                     action TEXT NOT NULL, unit TEXT, camera TEXT, detail TEXT NOT NULL, client TEXT);",
        postgres: "CREATE TABLE audit (
                       id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, at_us BIGINT NOT NULL, \"user\" TEXT NOT NULL,
                       action TEXT NOT NULL, unit TEXT, camera TEXT, detail TEXT NOT NULL, client TEXT);",
    }],
};

impl AuditLog {
    /// Opens (or creates) the audit log's part of the catalog at `at`.
    pub fn open(at: &CatalogLocation) -> Result<AuditLog, AuditError> {
        Ok(AuditLog { db: CatalogDb::open(at, &SCHEMA)? })
    }

    /// Records `event` now.
    pub fn record(&self, event: &Event) -> Result<(), AuditError> {
        self.db.execute(
            "INSERT INTO audit (at_us, \"user\", action, unit, camera, detail, client) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            &[
                jiff::Timestamp::now().as_microsecond().into(),
                (&event.user).into(),
                event.action.into(),
                event.unit.as_ref().into(),
                event.camera.as_ref().into(),
                (&event.detail).into(),
                event.client.as_ref().into(),
            ],
        )?;
        Ok(())
    }

    /// The newest `limit` entries, newest first, whose user, action, unit, camera or detail
    /// contains `text` (any case; empty: every entry).
    pub fn search(&self, text: &str, limit: u32) -> Result<Vec<Entry>, AuditError> {
        let pattern = format!("%{}%", text.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_"));
        // lower() on both sides: SQLite's LIKE ignores case, PostgreSQL's does not.
        let rows = self.db.query(
            "SELECT id, at_us, \"user\", action, unit, camera, detail, client FROM audit
             WHERE lower(\"user\") LIKE lower($1) ESCAPE '\\' OR lower(action) LIKE lower($1) ESCAPE '\\'
                OR lower(unit) LIKE lower($1) ESCAPE '\\' OR lower(camera) LIKE lower($1) ESCAPE '\\'
                OR lower(detail) LIKE lower($1) ESCAPE '\\'
             ORDER BY id DESC LIMIT $2",
            &[pattern.into(), limit.into()],
        )?;
        rows.iter()
            .map(|r| {
                Ok(Entry {
                    id: r.get(0)?,
                    time: rfc3339(r.get(1)?),
                    user: r.get(2)?,
                    action: r.get(3)?,
                    unit: r.get(4)?,
                    camera: r.get(5)?,
                    detail: r.get(6)?,
                    client: r.get(7)?,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries_come_newest_first_and_are_found_by_any_field(at: &CatalogLocation) {
        let log = AuditLog::open(at).unwrap();
        log.record(&Event {
            user: "ann".into(),
            action: "login",
            client: Some("127.0.0.1".into()),
            ..Default::default()
        })
        .unwrap();
        log.record(&Event {
            user: "ann".into(),
            action: "live_view",
            unit: Some("bus-1".into()),
            camera: Some("front".into()),
            ..Default::default()
        })
        .unwrap();
        log.record(&Event {
            user: "bob".into(),
            action: "login_failed",
            detail: "100%_sure".into(),
            ..Default::default()
        })
        .unwrap();
        let all = log.search("", 10).unwrap();
        assert_eq!(all.iter().map(|e| e.action.as_str()).collect::<Vec<_>>(), ["login_failed", "live_view", "login"]);
        assert_eq!(log.search("FRONT", 10).unwrap().len(), 1, "any case");
        assert_eq!(log.search("ann", 10).unwrap().len(), 2);
        assert_eq!(log.search("bus-1", 10).unwrap()[0].camera.as_deref(), Some("front"));
        assert_eq!(log.search("0%_", 10).unwrap().len(), 1, "% and _ are plain text");
        assert_eq!(log.search("0%x", 10).unwrap().len(), 0);
        assert_eq!(log.search("", 1).unwrap().len(), 1);
    }
    crate::on_both_backends!(
        entries_come_newest_first_and_are_found_by_any_field,
        super::entries_come_newest_first_and_are_found_by_any_field
    );
}
