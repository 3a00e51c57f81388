//! The catalog: central's fleet state (units and their cameras, enrollments, certificates and
//! revocations, users and tokens, the audit log, recording options set through the API, fleet
//! profiles, alarms, evidence locks) behind one small backend-neutral interface, on SQLite (the default: one file per
//! part under the store directory, as always) or on PostgreSQL (`[catalog] url =
//! "postgres://…"`: one database that several central nodes share).
//!
//! SQL is written once, in the dialect both understand: `$1` placeholders (rewritten to `?1`
//! for SQLite), `ON CONFLICT … DO NOTHING/UPDATE`, `RETURNING`; only the schema (DDL) is written
//! per backend, as numbered [`Migration`]s applied at open. Alarms (`crate::alarms`) and
//! evidence locks (`crate::lock_catalog`) are parts too, so nodes sharing a catalog share them.
//! What is not here stays with each node: `sync.db` (retrievals, holdings, and the node's record
//! of each lock in its media store) is transactional with that node's own media store. See
//! central/DESIGN.md, "The catalog".

mod db;
mod error;
mod location;
mod migrate;
mod pg;
mod sqlite;
pub mod test_cluster;
#[cfg(test)]
mod tests;
mod value;

pub use db::{Backend, CatalogDb, Tx};
pub use error::CatalogError;
pub use location::{CatalogLocation, redact_url};
pub use migrate::{Migration, Schema};
pub use value::{FromValue, Row, Value};

/// Runs `$body` (a function taking a [`CatalogLocation`]) as two tests, `NAME_sqlite` and
/// `NAME_postgres`; the second on a fresh database of the test binary's PostgreSQL cluster.
#[cfg(test)]
#[macro_export]
macro_rules! on_both_backends {
    ($name:ident, $body:path) => {
        mod $name {
            #[test]
            fn sqlite() {
                let dir = tempfile::tempdir().unwrap();
                $body(&$crate::catalog::CatalogLocation::Sqlite { dir: dir.path().to_owned() });
            }

            #[test]
            fn postgres() {
                $body(&$crate::catalog::test_cluster::fresh_database());
            }
        }
    };
}
