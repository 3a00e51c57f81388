//! The fleet registry: every unit that ever connected and its cameras, in a SQLite file.

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use protocol::interconnect::Hello;
use rusqlite::{Connection, OptionalExtension, params};

/// Why the registry failed.
#[derive(Debug, thiserror::Error)]
#[error("registry: {0}")]
pub struct RegistryError(#[from] rusqlite::Error);

/// A unit as the registry knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitRow {
    /// The unit's id.
    pub id: String,
    /// When it last said hello, seconds since the Unix epoch.
    pub last_hello: i64,
    /// Its cameras as `(id, name)`, in the unit's order.
    pub cameras: Vec<(String, String)>,
}

/// The registry database.
pub struct Registry {
    conn: Connection,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS unit (
    id TEXT PRIMARY KEY NOT NULL,
    first_hello INTEGER NOT NULL,
    last_hello INTEGER NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS camera (
    unit_id TEXT NOT NULL REFERENCES unit(id),
    id TEXT NOT NULL,
    name TEXT NOT NULL,
    position INTEGER NOT NULL,
    PRIMARY KEY (unit_id, id)
) STRICT;
-- One-time enrollment tokens (SHA-256 of the secret), by unit name.
CREATE TABLE IF NOT EXISTS enrollment (
    name TEXT PRIMARY KEY NOT NULL,
    token_hash BLOB NOT NULL UNIQUE,
    created_us INTEGER NOT NULL,
    expires_us INTEGER NOT NULL
) STRICT;
-- Every certificate central's CA issued to a unit, by fingerprint.
CREATE TABLE IF NOT EXISTS credential (
    fingerprint TEXT PRIMARY KEY NOT NULL,
    unit TEXT NOT NULL,
    issued_us INTEGER NOT NULL,
    revoked_us INTEGER
) STRICT;
CREATE INDEX IF NOT EXISTS credential_unit ON credential (unit);
";

/// Why an enrollment token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenRefused {
    /// No pending enrollment has this token (never issued, already used, or replaced).
    #[error("the enrollment token is unknown or was already used; make a new one with `central unit add`")]
    Unknown,
    /// The token's time ran out.
    #[error("the enrollment token expired; make a new one with `central unit add`")]
    Expired,
    /// The token was made for another unit name.
    #[error("the enrollment token is for unit {expected:?}, but this unit's unit_id is {got:?}")]
    WrongUnit {
        /// The name the token was made for.
        expected: String,
        /// The unit id the unit sent.
        got: String,
    },
}

impl Registry {
    /// Opens (creating if needed) the registry at `path`, in WAL mode.
    pub fn open(path: &Path) -> Result<Registry, RegistryError> {
        let conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        // `central unit add/revoke` write while `central run` has the database open.
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        conn.execute_batch(SCHEMA)?;
        Ok(Registry { conn })
    }

    /// Records a unit's hello: the unit and exactly the cameras it shares now.
    pub fn record_hello(&mut self, hello: &Hello) -> Result<(), RegistryError> {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0);
        let tx = self.conn.transaction()?;
        tx.execute(
            "INSERT INTO unit (id, first_hello, last_hello) VALUES (?1, ?2, ?2)
             ON CONFLICT (id) DO UPDATE SET last_hello = excluded.last_hello",
            params![hello.unit_id, now],
        )?;
        tx.execute("DELETE FROM camera WHERE unit_id = ?1", params![hello.unit_id])?;
        for (position, cam) in hello.cameras.iter().enumerate() {
            tx.execute(
                "INSERT INTO camera (unit_id, id, name, position) VALUES (?1, ?2, ?3, ?4)",
                params![hello.unit_id, cam.id, cam.name, position as i64],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Stores a pending enrollment for `name` (replacing an earlier unused one).
    pub fn add_enrollment(
        &mut self,
        name: &str,
        token_hash: &[u8; 32],
        now_us: i64,
        expires_us: i64,
    ) -> Result<(), RegistryError> {
        self.conn.execute(
            "INSERT INTO enrollment (name, token_hash, created_us, expires_us) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (name) DO UPDATE SET token_hash = excluded.token_hash, created_us = excluded.created_us,
             expires_us = excluded.expires_us",
            params![name, &token_hash[..], now_us, expires_us],
        )?;
        Ok(())
    }

    /// Uses up the enrollment with `token_hash` for unit `unit` and records the certificate
    /// issued for it (`fingerprint`), in one transaction. `issue` makes the certificate; the
    /// token is only used up if it succeeds.
    pub fn enroll<T, E: From<RegistryError> + From<TokenRefused>>(
        &mut self,
        token_hash: &[u8; 32],
        unit: &str,
        now_us: i64,
        issue: impl FnOnce() -> Result<(T, String), E>,
    ) -> Result<T, E> {
        let tx = self.conn.transaction().map_err(RegistryError::from)?;
        let row: Option<(String, i64)> = tx
            .query_row("SELECT name, expires_us FROM enrollment WHERE token_hash = ?1", params![&token_hash[..]], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .optional()
            .map_err(RegistryError::from)?;
        let (name, expires_us) = row.ok_or(TokenRefused::Unknown)?;
        if expires_us < now_us {
            return Err(TokenRefused::Expired.into());
        }
        if name != unit {
            return Err(TokenRefused::WrongUnit { expected: name, got: unit.to_owned() }.into());
        }
        let (out, fingerprint) = issue()?;
        tx.execute("DELETE FROM enrollment WHERE name = ?1", params![name]).map_err(RegistryError::from)?;
        tx.execute(
            "INSERT INTO credential (fingerprint, unit, issued_us) VALUES (?1, ?2, ?3)",
            params![fingerprint, unit, now_us],
        )
        .map_err(RegistryError::from)?;
        tx.commit().map_err(RegistryError::from)?;
        Ok(out)
    }

    /// The unit a client certificate belongs to, if central issued it and it is not revoked.
    pub fn unit_of(&self, fingerprint: &str) -> Result<Option<String>, RegistryError> {
        Ok(self
            .conn
            .query_row(
                "SELECT unit FROM credential WHERE fingerprint = ?1 AND revoked_us IS NULL",
                params![fingerprint],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// Revokes every certificate of `unit` and drops its pending enrollment. Returns whether
    /// the unit had anything to revoke.
    pub fn revoke(&mut self, unit: &str, now_us: i64) -> Result<bool, RegistryError> {
        let tx = self.conn.transaction()?;
        let creds = tx.execute(
            "UPDATE credential SET revoked_us = ?2 WHERE unit = ?1 AND revoked_us IS NULL",
            params![unit, now_us],
        )?;
        let pending = tx.execute("DELETE FROM enrollment WHERE name = ?1", params![unit])?;
        tx.commit()?;
        Ok(creds + pending > 0)
    }

    /// The fingerprints of every revoked certificate.
    pub fn revoked(&self) -> Result<Vec<String>, RegistryError> {
        let mut stmt = self.conn.prepare("SELECT fingerprint FROM credential WHERE revoked_us IS NOT NULL")?;
        Ok(stmt.query_map([], |r| r.get(0))?.collect::<Result<_, _>>()?)
    }

    /// Whether `unit` was ever enrolled or has a pending enrollment.
    pub fn is_known(&self, unit: &str) -> Result<bool, RegistryError> {
        let n: i64 = self.conn.query_row(
            "SELECT (SELECT count(*) FROM credential WHERE unit = ?1) + (SELECT count(*) FROM enrollment WHERE name = ?1)",
            params![unit],
            |r| r.get(0),
        )?;
        Ok(n > 0)
    }

    /// Every unit, by id, with its cameras.
    pub fn units(&self) -> Result<Vec<UnitRow>, RegistryError> {
        let mut units: Vec<UnitRow> = self
            .conn
            .prepare("SELECT id, last_hello FROM unit ORDER BY id")?
            .query_map([], |r| Ok(UnitRow { id: r.get(0)?, last_hello: r.get(1)?, cameras: Vec::new() }))?
            .collect::<Result<_, _>>()?;
        let mut stmt = self.conn.prepare("SELECT id, name FROM camera WHERE unit_id = ?1 ORDER BY position")?;
        for unit in &mut units {
            unit.cameras = stmt.query_map([&unit.id], |r| Ok((r.get(0)?, r.get(1)?)))?.collect::<Result<_, _>>()?;
        }
        Ok(units)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::interconnect::CameraInfo;

    fn hello(unit: &str, cams: &[&str]) -> Hello {
        Hello {
            protocol_version: 1,
            unit_id: unit.into(),
            cameras: cams.iter().map(|c| CameraInfo { id: (*c).into(), name: c.to_uppercase() }).collect(),
        }
    }

    #[test]
    fn hello_replaces_cameras_and_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("central.db");
        {
            let mut r = Registry::open(&path).unwrap();
            r.record_hello(&hello("bus-2", &["front", "rear"])).unwrap();
            r.record_hello(&hello("bus-1", &["cab"])).unwrap();
            r.record_hello(&hello("bus-2", &["rear", "door"])).unwrap();
        }
        let r = Registry::open(&path).unwrap();
        let units = r.units().unwrap();
        assert_eq!(units.len(), 2);
        assert_eq!(units[0].id, "bus-1");
        assert_eq!(units[1].cameras, vec![("rear".into(), "REAR".into()), ("door".into(), "DOOR".into())]);
    }
}
