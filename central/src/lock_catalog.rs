//! Evidence locks in the catalog (part `evidence_locks`: `locks.db` on SQLite, or the
//! PostgreSQL database several central nodes share), so that every node lists every lock, a
//! lock can be made through any node, and the unit's answer recorded by whichever node it is
//! connected to is seen by all.
//!
//! The lock in a node's own media store stays a node-local record ([`crate::evidence`]),
//! made in one step with the media store's lock; each node applies every catalog lock to its
//! store, keyed by the lock's id, and hands the unanswered ones to its connected units
//! ([`crate::lock_apply`]). A lock's id comes from the catalog (`evidence_lock_clock.last_id`),
//! is the API's and the one the unit answers with. Every write is stamped with a write number
//! taken from the same clock row, whose row lock makes writers take turns (numbers commit in
//! order, as for alarms: see [`crate::alarms`]).

use std::path::Path;
use std::sync::Arc;

use crate::alarms::blocking;
use crate::catalog::{CatalogDb, CatalogError, CatalogLocation, Migration, Row, Schema, Tx, Value};
use crate::evidence::{EvidenceLock, LockState, NewLock};

/// The locks' part of the catalog.
pub const SCHEMA: Schema = Schema {
    part: "evidence_locks",
    sqlite_file: "locks.db",
    migrations: &[Migration {
        sqlite: "CREATE TABLE evidence_lock (
                     id INTEGER PRIMARY KEY, unit TEXT NOT NULL, camera TEXT NOT NULL,
                     start_us INTEGER NOT NULL, end_us INTEGER NOT NULL, expires_us INTEGER NOT NULL,
                     reason TEXT NOT NULL, created_us INTEGER NOT NULL,
                     unit_state TEXT NOT NULL, unit_error TEXT, unit_done_us INTEGER, change_seq INTEGER NOT NULL);
                 CREATE INDEX evidence_lock_by_change ON evidence_lock (change_seq);
                 CREATE INDEX evidence_lock_by_unit ON evidence_lock (unit, unit_state);
                 CREATE TABLE evidence_lock_clock (id INTEGER PRIMARY KEY, n INTEGER NOT NULL, last_id INTEGER NOT NULL);
                 INSERT INTO evidence_lock_clock (id, n, last_id) VALUES (1, 0, 0);",
        postgres: "CREATE TABLE evidence_lock (
                       id BIGINT PRIMARY KEY, unit TEXT NOT NULL, camera TEXT NOT NULL,
                       start_us BIGINT NOT NULL, end_us BIGINT NOT NULL, expires_us BIGINT NOT NULL,
                       reason TEXT NOT NULL, created_us BIGINT NOT NULL,
                       unit_state TEXT NOT NULL, unit_error TEXT, unit_done_us BIGINT, change_seq BIGINT NOT NULL);
                   CREATE INDEX evidence_lock_by_change ON evidence_lock (change_seq);
                   CREATE INDEX evidence_lock_by_unit ON evidence_lock (unit, unit_state);
                   CREATE TABLE evidence_lock_clock (id BIGINT PRIMARY KEY, n BIGINT NOT NULL, last_id BIGINT NOT NULL);
                   INSERT INTO evidence_lock_clock (id, n, last_id) VALUES (1, 0, 0);",
    }],
};

const COLUMNS: &str =
    "id, unit, camera, start_us, end_us, expires_us, reason, created_us, unit_state, unit_error, unit_done_us";

/// The lock in a row of [`COLUMNS`]; central's side reads `pending` until merged with the
/// node's own record.
fn from_row(r: &Row) -> Result<EvidenceLock, CatalogError> {
    Ok(EvidenceLock {
        id: r.get::<i64>(0)? as u64,
        unit: r.get(1)?,
        camera: r.get(2)?,
        start_us: r.get(3)?,
        end_us: r.get(4)?,
        expires_us: r.get(5)?,
        reason: r.get(6)?,
        created_us: r.get(7)?,
        central: LockState::Pending,
        central_error: None,
        unit_state: LockState::parse(&r.get::<String>(8)?),
        unit_error: r.get(9)?,
        unit_done_us: r.get(10)?,
    })
}

fn tick(tx: &mut Tx<'_>) -> Result<i64, CatalogError> {
    tx.query_one("UPDATE evidence_lock_clock SET n = n + 1 WHERE id = 1 RETURNING n", &[])?.get(0)
}

/// A lock with its write number, for [`LockCatalog::changed_since`].
#[derive(Debug, Clone)]
pub struct LockChange {
    /// The lock as the catalog has it.
    pub lock: EvidenceLock,
    /// The number of the write that made it so.
    pub seq: i64,
}

/// Every node's evidence locks, in the catalog (see the module documentation).
#[derive(Clone)]
pub struct LockCatalog {
    db: Arc<CatalogDb>,
}

impl LockCatalog {
    /// Opens the locks' part of the catalog at `at` and adopts the locks this node's
    /// `sync_db` holds from before (see [`LockCatalog::adopt`]).
    pub fn open(at: &CatalogLocation, sync_db: &Path) -> Result<LockCatalog, CatalogError> {
        let catalog = LockCatalog { db: Arc::new(CatalogDb::open(at, &SCHEMA)?) };
        let local = crate::evidence::read_local(sync_db).map_err(|source| CatalogError::Sqlite {
            part: SCHEMA.part,
            path: sync_db.display().to_string(),
            source,
        })?;
        catalog.adopt(&local)?;
        Ok(catalog)
    }

    /// Puts locks a node made before locks were in the catalog into it, with their ids and
    /// the unit's answer, and keeps new ids above them. A lock whose id the catalog already
    /// gives to another lock (two nodes that shared a catalog each made lock N) stays with
    /// this node only; it is named in the log. Idempotent: run at every open.
    pub fn adopt(&self, local: &[EvidenceLock]) -> Result<(), CatalogError> {
        if local.is_empty() {
            return Ok(());
        }
        self.db.transaction(|tx| {
            let seq = tick(tx)?;
            let sql = "INSERT INTO evidence_lock (id, unit, camera, start_us, end_us, expires_us, reason, created_us,
                           unit_state, unit_error, unit_done_us, change_seq)
                       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) ON CONFLICT (id) DO NOTHING";
            for l in local {
                let params: [Value; 12] = [
                    (l.id as i64).into(),
                    l.unit.as_str().into(),
                    l.camera.as_str().into(),
                    l.start_us.into(),
                    l.end_us.into(),
                    l.expires_us.into(),
                    l.reason.as_str().into(),
                    l.created_us.into(),
                    l.unit_state.as_str().into(),
                    l.unit_error.clone().into(),
                    l.unit_done_us.into(),
                    seq.into(),
                ];
                if tx.execute(sql, &params)? == 0 {
                    let sql = format!("SELECT {COLUMNS} FROM evidence_lock WHERE id = $1");
                    let there = tx.query_one(&sql, &[(l.id as i64).into()]).and_then(|r| from_row(&r))?;
                    let same = (&there.unit, &there.camera, there.start_us, there.end_us, there.created_us)
                        == (&l.unit, &l.camera, l.start_us, l.end_us, l.created_us);
                    if !same {
                        tracing::warn!(
                            lock = l.id,
                            unit = %l.unit,
                            "this node's evidence lock {} has an id the catalog gives to a lock of unit {}; \
                             it stays in this node's store but is not listed",
                            l.id,
                            there.unit
                        );
                    }
                }
            }
            let highest = local.iter().map(|l| l.id as i64).max().unwrap_or(0);
            tx.execute(
                "UPDATE evidence_lock_clock SET last_id = CASE WHEN last_id < $1 THEN $1 ELSE last_id END WHERE id = 1",
                &[highest.into()],
            )?;
            Ok(())
        })
    }

    /// Records a new lock (the unit's side `pending`); the lock with its id.
    pub async fn create(&self, lock: NewLock, now_us: i64) -> Result<EvidenceLock, CatalogError> {
        let db = self.db.clone();
        blocking(move || {
            db.transaction(|tx| {
                let clock = tx.query_one(
                    "UPDATE evidence_lock_clock SET n = n + 1, last_id = last_id + 1 WHERE id = 1 RETURNING n, last_id",
                    &[],
                )?;
                let (seq, id): (i64, i64) = (clock.get(0)?, clock.get(1)?);
                let sql = format!(
                    "INSERT INTO evidence_lock (id, unit, camera, start_us, end_us, expires_us, reason, created_us,
                         unit_state, change_seq) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'pending', $9) RETURNING {COLUMNS}"
                );
                let params: [Value; 9] = [
                    id.into(),
                    lock.unit.into(),
                    lock.camera.into(),
                    lock.start_us.into(),
                    lock.end_us.into(),
                    lock.expires_us.into(),
                    lock.reason.into(),
                    now_us.into(),
                    seq.into(),
                ];
                from_row(&tx.query_one(&sql, &params)?)
            })
        })
        .await?
    }

    /// Records the unit's answer to lock `id` (`error` is `None`: locked).
    pub async fn unit_answered(&self, id: u64, error: Option<String>, now_us: i64) -> Result<(), CatalogError> {
        let db = self.db.clone();
        let state = if error.is_none() { LockState::Locked } else { LockState::Failed };
        blocking(move || {
            db.transaction(|tx| {
                let seq = tick(tx)?;
                tx.execute(
                    "UPDATE evidence_lock SET unit_state = $2, unit_error = $3, unit_done_us = $4, change_seq = $5
                     WHERE id = $1",
                    &[(id as i64).into(), state.as_str().into(), error.into(), now_us.into(), seq.into()],
                )?;
                Ok(())
            })
        })
        .await?
    }

    /// Lock `id`, if it exists.
    pub async fn get(&self, id: u64) -> Result<Option<EvidenceLock>, CatalogError> {
        let db = self.db.clone();
        blocking(move || {
            let sql = format!("SELECT {COLUMNS} FROM evidence_lock WHERE id = $1");
            db.query_opt(&sql, &[(id as i64).into()])?.map(|r| from_row(&r)).transpose()
        })
        .await?
    }

    /// The newest `limit` locks, of one unit or of all.
    pub async fn list(&self, unit: Option<String>, limit: u32) -> Result<Vec<EvidenceLock>, CatalogError> {
        let db = self.db.clone();
        blocking(move || {
            let rows = match unit {
                Some(u) => db.query(
                    &format!("SELECT {COLUMNS} FROM evidence_lock WHERE unit = $1 ORDER BY id DESC LIMIT $2"),
                    &[u.into(), limit.into()],
                )?,
                None => db.query(
                    &format!("SELECT {COLUMNS} FROM evidence_lock ORDER BY id DESC LIMIT $1"),
                    &[limit.into()],
                )?,
            };
            rows.iter().map(from_row).collect()
        })
        .await?
    }

    /// `unit`'s locks it has not answered yet, oldest first.
    pub async fn pending(&self, unit: &str) -> Result<Vec<EvidenceLock>, CatalogError> {
        let (db, unit) = (self.db.clone(), unit.to_owned());
        blocking(move || {
            let sql =
                format!("SELECT {COLUMNS} FROM evidence_lock WHERE unit = $1 AND unit_state = 'pending' ORDER BY id");
            db.query(&sql, &[unit.into()])?.iter().map(from_row).collect()
        })
        .await?
    }

    /// Every lock written after write number `after`, in write order.
    pub async fn changed_since(&self, after: i64) -> Result<Vec<LockChange>, CatalogError> {
        let db = self.db.clone();
        blocking(move || {
            let sql =
                format!("SELECT {COLUMNS}, change_seq FROM evidence_lock WHERE change_seq > $1 ORDER BY change_seq");
            db.query(&sql, &[after.into()])?
                .iter()
                .map(|r| Ok(LockChange { lock: from_row(r)?, seq: r.get(11)? }))
                .collect()
        })
        .await?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
    }

    fn new_lock(unit: &str, start_us: i64) -> NewLock {
        NewLock {
            unit: unit.into(),
            camera: "front".into(),
            start_us,
            end_us: start_us + 1_000_000,
            expires_us: i64::MAX,
            reason: "incident".into(),
        }
    }

    /// A lock as an older central recorded it in its `sync.db`.
    fn old_lock(id: u64, unit: &str, created_us: i64) -> EvidenceLock {
        EvidenceLock {
            id,
            unit: unit.into(),
            camera: "front".into(),
            start_us: 0,
            end_us: 1,
            expires_us: 2,
            reason: "old".into(),
            created_us,
            central: LockState::Locked,
            central_error: None,
            unit_state: LockState::Locked,
            unit_error: None,
            unit_done_us: Some(3),
        }
    }

    fn locks_made_at_either_node_are_one_list_and_answers_reach_both(at: &CatalogLocation) {
        let dir = tempfile::tempdir().unwrap();
        let sync_db = dir.path().join("sync.db");
        runtime().block_on(async {
            let (a, b) = (LockCatalog::open(at, &sync_db).unwrap(), LockCatalog::open(at, &sync_db).unwrap());
            let (x, y) = tokio::join!(a.create(new_lock("bus", 0), 10), b.create(new_lock("bus", 5_000_000), 11));
            let (x, y) = (x.unwrap(), y.unwrap());
            assert_ne!(x.id, y.id, "two nodes at once never make one id");
            assert_eq!((x.unit_state, x.created_us), (LockState::Pending, 10));
            let listed: Vec<u64> = a.list(None, 10).await.unwrap().iter().map(|l| l.id).collect();
            assert_eq!(listed, [x.id.max(y.id), x.id.min(y.id)], "newest first, at either node");
            assert_eq!(b.pending("bus").await.unwrap().len(), 2);
            assert!(b.list(Some("tram".into()), 10).await.unwrap().is_empty());

            let seen = a.changed_since(0).await.unwrap();
            assert_eq!(seen.len(), 2);
            let after = seen.iter().map(|c| c.seq).max().unwrap();
            // The unit, connected to node B, answers lock x.
            b.unit_answered(x.id, None, 50).await.unwrap();
            let changed = a.changed_since(after).await.unwrap();
            assert_eq!(changed.len(), 1);
            assert_eq!((changed[0].lock.id, changed[0].lock.unit_state), (x.id, LockState::Locked));
            assert_eq!(a.get(x.id).await.unwrap().unwrap().unit_done_us, Some(50));
            assert_eq!(a.pending("bus").await.unwrap().iter().map(|l| l.id).collect::<Vec<_>>(), [y.id]);
            assert!(a.get(9999).await.unwrap().is_none());
        });
    }
    crate::on_both_backends!(
        locks_made_at_either_node_are_one_list_and_answers_reach_both,
        super::locks_made_at_either_node_are_one_list_and_answers_reach_both
    );

    fn a_nodes_older_locks_are_adopted_with_their_ids(at: &CatalogLocation) {
        let dir = tempfile::tempdir().unwrap();
        let sync_db = dir.path().join("sync.db");
        runtime().block_on(async {
            let catalog = LockCatalog::open(at, &sync_db).unwrap();
            let mine = [old_lock(3, "bus", 100), old_lock(40, "bus", 200)];
            catalog.adopt(&mine).unwrap();
            catalog.adopt(&mine).unwrap();
            let listed = catalog.list(None, 10).await.unwrap();
            assert_eq!(listed.iter().map(|l| l.id).collect::<Vec<_>>(), [40, 3], "adopted once, with their ids");
            assert_eq!((listed[0].unit_state, listed[0].unit_done_us), (LockState::Locked, Some(3)));
            // Another node's lock 3 is another lock: it stays that node's own.
            catalog.adopt(&[old_lock(3, "tram", 300)]).unwrap();
            assert_eq!(catalog.get(3).await.unwrap().unwrap().unit, "bus");
            let new = catalog.create(new_lock("bus", 0), 400).await.unwrap();
            assert_eq!(new.id, 41, "new ids start above the adopted ones");
        });
    }
    crate::on_both_backends!(
        a_nodes_older_locks_are_adopted_with_their_ids,
        super::a_nodes_older_locks_are_adopted_with_their_ids
    );
}
