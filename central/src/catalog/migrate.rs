//! Versioned schemas: each catalog part lists its migrations, written once per backend, and
//! [`apply`] brings a database up to the newest, recording the version in `catalog_schema`.

use super::{Backend, CatalogError, Tx};

/// One step of a part's schema, in each backend's DDL.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    /// For SQLite (`INTEGER`, `BLOB`, `AUTOINCREMENT`, `STRICT`).
    pub sqlite: &'static str,
    /// For PostgreSQL (`BIGINT`, `BYTEA`, `GENERATED ALWAYS AS IDENTITY`).
    pub postgres: &'static str,
}

/// A catalog part: its name, its SQLite file, and its migrations (version N is
/// `migrations[N - 1]`; never change a released one, add another).
#[derive(Debug, Clone, Copy)]
pub struct Schema {
    /// The part's name (`registry`, `accounts`, `audit`, `recording_options`,
    /// `profiles`, `alarms`, `evidence_locks`).
    pub part: &'static str,
    /// Its file in the store directory when the catalog is SQLite.
    pub sqlite_file: &'static str,
    /// Its migrations, oldest first.
    pub migrations: &'static [Migration],
}

/// Serialises schema changes of nodes starting together on one PostgreSQL catalog.
const PG_LOCK: i64 = 0x436f_6e76_6f79; // "Convoy"

/// Brings `schema`'s part up to date inside `tx`.
pub(super) fn apply(tx: &mut Tx<'_>, schema: &Schema) -> Result<(), CatalogError> {
    if tx.backend() == Backend::Postgres {
        // No NOTICE for each `IF NOT EXISTS` (the client logs them, and the CLI's output is read).
        tx.batch("SET LOCAL client_min_messages = warning")?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[PG_LOCK.into()])?;
    }
    tx.batch("CREATE TABLE IF NOT EXISTS catalog_schema (part TEXT PRIMARY KEY NOT NULL, version BIGINT NOT NULL)")?;
    let found: i64 = tx
        .query_opt("SELECT version FROM catalog_schema WHERE part = $1", &[schema.part.into()])?
        .map(|r| r.get(0))
        .transpose()?
        .unwrap_or(0);
    let known = schema.migrations.len() as i64;
    if found > known {
        return Err(CatalogError::TooNew { part: schema.part, found, known });
    }
    for m in &schema.migrations[found as usize..] {
        tx.batch(match tx.backend() {
            Backend::Sqlite => m.sqlite,
            Backend::Postgres => m.postgres,
        })?;
    }
    if found < known {
        tx.execute(
            "INSERT INTO catalog_schema (part, version) VALUES ($1, $2)
             ON CONFLICT (part) DO UPDATE SET version = excluded.version",
            &[schema.part.into(), known.into()],
        )?;
    }
    Ok(())
}
