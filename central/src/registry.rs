//! The fleet registry: every unit that ever connected and its cameras, in a SQLite file.

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use protocol::interconnect::Hello;
use rusqlite::{Connection, params};

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
";

impl Registry {
    /// Opens (creating if needed) the registry at `path`, in WAL mode.
    pub fn open(path: &Path) -> Result<Registry, RegistryError> {
        let conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
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
