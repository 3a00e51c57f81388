//! The fleet registry: every unit that ever connected and its cameras, its enrollments and
//! the certificates issued to it (and their revocation), in the catalog (`central.db` when
//! SQLite; shared by every node when PostgreSQL, so a unit revoked through one node is refused
//! by all).

use std::time::{SystemTime, UNIX_EPOCH};

use protocol::interconnect::Hello;

use crate::catalog::{CatalogDb, CatalogError, CatalogLocation, Migration, Schema};

/// Why the registry failed.
#[derive(Debug, thiserror::Error)]
#[error("registry: {0}")]
pub struct RegistryError(CatalogError);

impl From<CatalogError> for RegistryError {
    fn from(e: CatalogError) -> Self {
        RegistryError(e)
    }
}

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
    db: CatalogDb,
}

/// The registry's part of the catalog. Version 1 is the schema central.db always had.
pub const SCHEMA: Schema = Schema {
    part: "registry",
    sqlite_file: "central.db",
    migrations: &[
        Migration {
            sqlite: "
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
",
            postgres: "
CREATE TABLE unit (
    id TEXT PRIMARY KEY NOT NULL,
    first_hello BIGINT NOT NULL,
    last_hello BIGINT NOT NULL
);
CREATE TABLE camera (
    unit_id TEXT NOT NULL REFERENCES unit(id),
    id TEXT NOT NULL,
    name TEXT NOT NULL,
    position BIGINT NOT NULL,
    PRIMARY KEY (unit_id, id)
);
CREATE TABLE enrollment (
    name TEXT PRIMARY KEY NOT NULL,
    token_hash BYTEA NOT NULL UNIQUE,
    created_us BIGINT NOT NULL,
    expires_us BIGINT NOT NULL
);
CREATE TABLE credential (
    fingerprint TEXT PRIMARY KEY NOT NULL,
    unit TEXT NOT NULL,
    issued_us BIGINT NOT NULL,
    revoked_us BIGINT
);
CREATE INDEX credential_unit ON credential (unit);
",
        },
        Migration {
            // Version 2: the name operators give a unit (`PATCH /api/units/{unit}`); its id stays.
            sqlite: "
CREATE TABLE IF NOT EXISTS unit_label (
    id TEXT PRIMARY KEY NOT NULL,
    label TEXT NOT NULL
) STRICT;
",
            postgres: "
CREATE TABLE unit_label (
    id TEXT PRIMARY KEY NOT NULL,
    label TEXT NOT NULL
);
",
        },
    ],
};

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

/// A transaction's own outcome: the caller's error, or a refused token.
enum Outcome<E> {
    Caller(E),
    Catalog(CatalogError),
}

impl<E> From<CatalogError> for Outcome<E> {
    fn from(e: CatalogError) -> Self {
        Outcome::Catalog(e)
    }
}

impl Registry {
    /// Opens (creating if needed) the registry's part of the catalog at `at`.
    pub fn open(at: &CatalogLocation) -> Result<Registry, RegistryError> {
        Ok(Registry { db: CatalogDb::open(at, &SCHEMA)? })
    }

    /// Records a unit's hello: the unit and exactly the cameras it shares now.
    pub fn record_hello(&mut self, hello: &Hello) -> Result<(), RegistryError> {
        self.record_hellos(std::slice::from_ref(hello))
    }

    /// Records several units' hellos in one transaction (one commit, one fsync), in order: each
    /// unit's `last_hello`, and its cameras where they differ from those recorded (a hello
    /// that shares the same cameras as before rewrites none).
    pub fn record_hellos(&self, hellos: &[Hello]) -> Result<(), RegistryError> {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0);
        // Units in one order, so two nodes' batches lock their rows in the same order; the
        // last hello of a unit counts.
        let mut latest: std::collections::BTreeMap<&str, &Hello> = std::collections::BTreeMap::new();
        for h in hellos {
            latest.insert(&h.unit_id, h);
        }
        self.db.transaction(|tx| {
            for hello in latest.values() {
                // The upsert locks the unit's row first, so two nodes' hellos of one unit take turns.
                tx.execute(
                    "INSERT INTO unit (id, first_hello, last_hello) VALUES ($1, $2, $2)
                     ON CONFLICT (id) DO UPDATE SET last_hello = excluded.last_hello",
                    &[(&hello.unit_id).into(), now.into()],
                )?;
                let recorded = tx.query(
                    "SELECT id, name FROM camera WHERE unit_id = $1 ORDER BY position",
                    &[(&hello.unit_id).into()],
                )?;
                let same = recorded.len() == hello.cameras.len()
                    && recorded.iter().zip(&hello.cameras).all(|(r, c)| {
                        r.get::<String>(0).is_ok_and(|id| id == c.id) && r.get::<String>(1).is_ok_and(|n| n == c.name)
                    });
                if same {
                    continue;
                }
                tx.execute("DELETE FROM camera WHERE unit_id = $1", &[(&hello.unit_id).into()])?;
                for (position, cam) in hello.cameras.iter().enumerate() {
                    tx.execute(
                        "INSERT INTO camera (unit_id, id, name, position) VALUES ($1, $2, $3, $4)",
                        &[(&hello.unit_id).into(), (&cam.id).into(), (&cam.name).into(), (position as i64).into()],
                    )?;
                }
            }
            Ok::<_, CatalogError>(())
        })?;
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
        self.db.execute(
            "INSERT INTO enrollment (name, token_hash, created_us, expires_us) VALUES ($1, $2, $3, $4)
             ON CONFLICT (name) DO UPDATE SET token_hash = excluded.token_hash, created_us = excluded.created_us,
             expires_us = excluded.expires_us",
            &[name.into(), (&token_hash[..]).into(), now_us.into(), expires_us.into()],
        )?;
        Ok(())
    }

    /// Uses up the enrollment with `token_hash` for unit `unit` and records the certificate
    /// issued for it (`fingerprint`), in one transaction. `issue` makes the certificate; the
    /// token is only used up if it succeeds. The token's row is deleted first (`RETURNING`),
    /// so of two nodes enrolling with one token at once, only one gets it.
    pub fn enroll<T: Send, E: From<RegistryError> + From<TokenRefused> + Send>(
        &mut self,
        token_hash: &[u8; 32],
        unit: &str,
        now_us: i64,
        issue: impl FnOnce() -> Result<(T, String), E> + Send,
    ) -> Result<T, E> {
        let outcome = self.db.transaction(|tx| {
            let row = tx.query_opt(
                "DELETE FROM enrollment WHERE token_hash = $1 RETURNING name, expires_us",
                &[(&token_hash[..]).into()],
            )?;
            let Some(row) = row else { return Err(Outcome::Caller(TokenRefused::Unknown.into())) };
            let (name, expires_us): (String, i64) = (row.get(0)?, row.get(1)?);
            if expires_us < now_us {
                return Err(Outcome::Caller(TokenRefused::Expired.into()));
            }
            if name != unit {
                return Err(Outcome::Caller(TokenRefused::WrongUnit { expected: name, got: unit.to_owned() }.into()));
            }
            let (out, fingerprint) = issue().map_err(Outcome::Caller)?;
            tx.execute(
                "INSERT INTO credential (fingerprint, unit, issued_us) VALUES ($1, $2, $3)",
                &[fingerprint.into(), unit.into(), now_us.into()],
            )?;
            Ok(out)
        });
        match outcome {
            Ok(out) => Ok(out),
            Err(Outcome::Caller(e)) => Err(e),
            Err(Outcome::Catalog(e)) => Err(RegistryError(e).into()),
        }
    }

    /// The unit a client certificate belongs to, if central issued it and it is not revoked.
    pub fn unit_of(&self, fingerprint: &str) -> Result<Option<String>, RegistryError> {
        let row = self.db.query_opt(
            "SELECT unit FROM credential WHERE fingerprint = $1 AND revoked_us IS NULL",
            &[fingerprint.into()],
        )?;
        Ok(row.map(|r| r.get(0)).transpose()?)
    }

    /// Revokes every certificate of `unit` and drops its pending enrollment. Returns whether
    /// the unit had anything to revoke.
    pub fn revoke(&mut self, unit: &str, now_us: i64) -> Result<bool, RegistryError> {
        let changed = self.db.transaction(|tx| {
            let creds = tx.execute(
                "UPDATE credential SET revoked_us = $2 WHERE unit = $1 AND revoked_us IS NULL",
                &[unit.into(), now_us.into()],
            )?;
            let pending = tx.execute("DELETE FROM enrollment WHERE name = $1", &[unit.into()])?;
            Ok::<_, CatalogError>(creds + pending)
        })?;
        Ok(changed > 0)
    }

    /// The fingerprints of every revoked certificate.
    pub fn revoked(&self) -> Result<Vec<String>, RegistryError> {
        let rows = self.db.query("SELECT fingerprint FROM credential WHERE revoked_us IS NOT NULL", &[])?;
        Ok(rows.iter().map(|r| r.get(0)).collect::<Result<_, _>>()?)
    }

    /// Whether `unit` was ever enrolled or has a pending enrollment.
    pub fn is_known(&self, unit: &str) -> Result<bool, RegistryError> {
        let row = self.db.query_one(
            "SELECT (SELECT count(*) FROM credential WHERE unit = $1) + (SELECT count(*) FROM enrollment WHERE name = $1)",
            &[unit.into()],
        )?;
        Ok(row.get::<i64>(0)? > 0)
    }

    /// Sets (or, with `None`, clears) the name operators see for `unit`.
    pub fn set_label(&self, unit: &str, label: Option<&str>) -> Result<(), RegistryError> {
        match label {
            Some(label) => self.db.execute(
                "INSERT INTO unit_label (id, label) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET label = $2",
                &[unit.into(), label.into()],
            )?,
            None => self.db.execute("DELETE FROM unit_label WHERE id = $1", &[unit.into()])?,
        };
        Ok(())
    }

    /// The names operators gave units, by unit id.
    pub fn labels(&self) -> Result<std::collections::HashMap<String, String>, RegistryError> {
        let rows = self.db.query("SELECT id, label FROM unit_label", &[])?;
        Ok(rows.iter().map(|r| Ok((r.get(0)?, r.get(1)?))).collect::<Result<_, CatalogError>>()?)
    }

    /// Every unit, by id, with its cameras.
    pub fn units(&self) -> Result<Vec<UnitRow>, RegistryError> {
        let (units, cameras) = self.db.read_transaction(|tx| {
            let units = tx.query("SELECT id, last_hello FROM unit", &[])?;
            let cameras = tx.query("SELECT unit_id, id, name FROM camera ORDER BY unit_id, position", &[])?;
            Ok::<_, CatalogError>((units, cameras))
        })?;
        let mut out: Vec<UnitRow> = units
            .iter()
            .map(|r| Ok(UnitRow { id: r.get(0)?, last_hello: r.get(1)?, cameras: Vec::new() }))
            .collect::<Result<_, CatalogError>>()?;
        // Sorted here, not by the database, whose text order depends on its locale.
        out.sort_by(|a, b| a.id.cmp(&b.id));
        for c in &cameras {
            let unit: String = c.get(0)?;
            if let Ok(i) = out.binary_search_by(|u| u.id.as_str().cmp(&unit)) {
                out[i].cameras.push((c.get(1)?, c.get(2)?));
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use protocol::interconnect::CameraInfo;

    /// A hello of `unit` with cameras `cams` (names: the ids in capitals).
    pub(crate) fn hello(unit: &str, cams: &[&str]) -> Hello {
        Hello {
            protocol_version: 1,
            unit_id: unit.into(),
            cameras: cams.iter().map(|c| CameraInfo { id: (*c).into(), name: c.to_uppercase() }).collect(),
        }
    }

    fn hello_replaces_cameras_and_survives_reopen(at: &CatalogLocation) {
        {
            let mut r = Registry::open(at).unwrap();
            r.record_hello(&hello("bus-2", &["front", "rear"])).unwrap();
            r.record_hello(&hello("bus-1", &["cab"])).unwrap();
            r.record_hello(&hello("bus-2", &["rear", "door"])).unwrap();
        }
        let r = Registry::open(at).unwrap();
        let units = r.units().unwrap();
        assert_eq!(units.len(), 2);
        assert_eq!(units[0].id, "bus-1");
        assert_eq!(units[0].cameras, vec![("cab".into(), "CAB".into())]);
        assert_eq!(units[1].cameras, vec![("rear".into(), "REAR".into()), ("door".into(), "DOOR".into())]);
    }

    fn a_unit_keeps_the_name_operators_give_it(at: &CatalogLocation) {
        {
            let r = Registry::open(at).unwrap();
            r.set_label("bus-1", Some("Route 7, coach 3")).unwrap();
            r.set_label("bus-2", Some("first")).unwrap();
            r.set_label("bus-2", Some("second")).unwrap();
        }
        let r = Registry::open(at).unwrap();
        let labels = r.labels().unwrap();
        assert_eq!(labels.get("bus-1").map(String::as_str), Some("Route 7, coach 3"));
        assert_eq!(labels.get("bus-2").map(String::as_str), Some("second"), "renamed again");
        r.set_label("bus-1", None).unwrap();
        assert!(!r.labels().unwrap().contains_key("bus-1"), "cleared");
    }
    #[test]
    fn a_central_db_made_before_the_catalog_keeps_its_units_and_credentials() {
        let dir = tempfile::tempdir().unwrap();
        let old = rusqlite::Connection::open(dir.path().join("central.db")).unwrap();
        old.execute_batch(SCHEMA.migrations[0].sqlite).unwrap();
        old.execute_batch(
            "INSERT INTO unit VALUES ('bus-1', 1, 2);
             INSERT INTO camera VALUES ('bus-1', 'cab', 'Cab', 0);
             INSERT INTO credential VALUES ('ab12', 'bus-1', 5, NULL);",
        )
        .unwrap();
        drop(old);
        let r = Registry::open(&CatalogLocation::Sqlite { dir: dir.path().to_owned() }).unwrap();
        assert_eq!(
            r.units().unwrap(),
            vec![UnitRow { id: "bus-1".into(), last_hello: 2, cameras: vec![("cab".into(), "Cab".into())] }]
        );
        assert_eq!(r.unit_of("ab12").unwrap().as_deref(), Some("bus-1"));
    }

    crate::on_both_backends!(
        hello_replaces_cameras_and_survives_reopen,
        super::hello_replaces_cameras_and_survives_reopen
    );
    crate::on_both_backends!(a_unit_keeps_the_name_operators_give_it, super::a_unit_keeps_the_name_operators_give_it);
}
