//! Evidence locks set at central: a range of a unit camera's video kept from retention, both
//! in each central node's store of retrieved video (locked at once, whether or not the node
//! holds the video yet) and in the unit's own store (sent over the sync protocol, again at each
//! connection until the unit answers). The lock itself and the unit's answer are in the
//! catalog ([`crate::lock_catalog`], shared by the nodes); here is each node's own record of
//! it in `sync.db` (`evidence_lock`, same id), written on the store thread together with the
//! media store's lock record, so the two never disagree after a crash.

use std::collections::HashMap;
use std::path::Path;

use protocol::sync::EvidenceLockRequest;
use rusqlite::{Connection, OpenFlags, OptionalExtension, Row, params};
use serde::Serialize;

use crate::retrieved::{RetrievedError, RetrievedStore, log_name};

/// Where a lock stands on one side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LockState {
    /// Asked for, not yet answered (the unit is away, or older than protocol version 2).
    Pending,
    /// Durable in that side's store.
    Locked,
    /// Refused; the error says why.
    Failed,
}

impl LockState {
    /// As stored: `pending`, `locked`, `failed`.
    pub fn as_str(self) -> &'static str {
        match self {
            LockState::Pending => "pending",
            LockState::Locked => "locked",
            LockState::Failed => "failed",
        }
    }

    /// The state stored as `s` (anything unknown reads as pending).
    pub fn parse(s: &str) -> LockState {
        match s {
            "locked" => LockState::Locked,
            "failed" => LockState::Failed,
            _ => LockState::Pending,
        }
    }
}

/// One evidence lock as the API shows it (times in µs since the Unix epoch).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvidenceLock {
    /// Central's id, also the id the unit answers with.
    pub id: u64,
    /// The unit.
    pub unit: String,
    /// The unit's camera.
    pub camera: String,
    /// Start of the range.
    pub start_us: i64,
    /// End of the range (exclusive).
    pub end_us: i64,
    /// Until when both stores keep it.
    pub expires_us: i64,
    /// Why, as the operator gave it.
    pub reason: String,
    /// When it was asked for.
    pub created_us: i64,
    /// In central's store.
    pub central: LockState,
    /// Why central's store refused it.
    pub central_error: Option<String>,
    /// In the unit's store.
    pub unit_state: LockState,
    /// Why the unit refused it.
    pub unit_error: Option<String>,
    /// When the unit answered.
    pub unit_done_us: Option<i64>,
}

impl EvidenceLock {
    /// What the unit is sent.
    pub fn request(&self) -> EvidenceLockRequest {
        EvidenceLockRequest {
            lock_id: self.id,
            camera: self.camera.clone(),
            start_us: self.start_us,
            end_us: self.end_us,
            expires_us: self.expires_us,
            reason: self.reason.clone(),
        }
    }
}

/// A lock to make.
#[derive(Debug, Clone)]
pub struct NewLock {
    /// The unit.
    pub unit: String,
    /// The unit's camera.
    pub camera: String,
    /// Start of the range, µs since the Unix epoch.
    pub start_us: i64,
    /// End of the range (exclusive).
    pub end_us: i64,
    /// Until when it is kept.
    pub expires_us: i64,
    /// Why.
    pub reason: String,
}

const COLUMNS: &str = "id, unit, camera, start_us, end_us, expires_us, reason, created_us, central_state, \
                       central_error, unit_state, unit_error, unit_done_us";

fn from_row(r: &Row<'_>) -> rusqlite::Result<EvidenceLock> {
    Ok(EvidenceLock {
        id: r.get::<_, i64>(0)? as u64,
        unit: r.get(1)?,
        camera: r.get(2)?,
        start_us: r.get(3)?,
        end_us: r.get(4)?,
        expires_us: r.get(5)?,
        reason: r.get(6)?,
        created_us: r.get(7)?,
        central: LockState::parse(&r.get::<_, String>(8)?),
        central_error: r.get(9)?,
        unit_state: LockState::parse(&r.get::<_, String>(10)?),
        unit_error: r.get(11)?,
        unit_done_us: r.get(12)?,
    })
}

/// Applies catalog lock `lock` to this node's store, once: the node's record (same id) and
/// the media store's lock in one step on the store thread; a lock already recorded is left as
/// it is. Central's side as it stands. A failure of the media store is recorded, not returned.
pub async fn apply(store: &RetrievedStore, lock: &EvidenceLock) -> Result<(LockState, Option<String>), RetrievedError> {
    let lock = lock.clone();
    store
        .with_store(move |media, db| {
            let id = lock.id as i64;
            let known = db
                .query_row("SELECT central_state, central_error FROM evidence_lock WHERE id = ?1", [id], |r| {
                    Ok((LockState::parse(&r.get::<_, String>(0)?), r.get::<_, Option<String>>(1)?))
                })
                .optional()?;
            if let Some(known) = known {
                return Ok(known);
            }
            db.execute(
                "INSERT INTO evidence_lock (id, unit, camera, start_us, end_us, expires_us, reason, created_us,
                     central_state, unit_state) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 'pending', 'pending')",
                params![
                    id,
                    lock.unit,
                    lock.camera,
                    lock.start_us,
                    lock.end_us,
                    lock.expires_us,
                    lock.reason,
                    lock.created_us
                ],
            )?;
            let reason = format!("central lock {id}: {}", lock.reason);
            let log = log_name(&lock.unit, &lock.camera);
            let (state, error) = match media.lock(&log, lock.start_us, lock.end_us, lock.expires_us, &reason) {
                Ok(_) => (LockState::Locked, None),
                Err(e) => {
                    tracing::error!(unit = %lock.unit, camera = %lock.camera, "cannot lock central's store: {e}");
                    (LockState::Failed, Some(e.to_string()))
                }
            };
            db.execute(
                "UPDATE evidence_lock SET central_state = ?2, central_error = ?3 WHERE id = ?1",
                params![id, state.as_str(), error],
            )?;
            Ok((state, error))
        })
        .await
}

/// This node's side of locks `ids` (those it has applied), read beside the store's writer.
pub async fn central_states(
    store: &RetrievedStore,
    ids: Vec<u64>,
) -> Result<HashMap<u64, (LockState, Option<String>)>, RetrievedError> {
    store
        .read(move |db| {
            let mut stmt = db.prepare_cached("SELECT central_state, central_error FROM evidence_lock WHERE id = ?1")?;
            let mut states = HashMap::new();
            for id in ids {
                let found = stmt
                    .query_row([id as i64], |r| Ok((LockState::parse(&r.get::<_, String>(0)?), r.get(1)?)))
                    .optional()?;
                if let Some(state) = found {
                    states.insert(id, state);
                }
            }
            Ok(states)
        })
        .await
}

/// `lock` with this node's side from `states` (pending when the node has not applied it yet).
pub fn with_central(mut lock: EvidenceLock, states: &HashMap<u64, (LockState, Option<String>)>) -> EvidenceLock {
    if let Some((state, error)) = states.get(&lock.id) {
        lock.central = *state;
        lock.central_error = error.clone();
    }
    lock
}

/// Records in this node's record the unit's answer to lock `id` (`error` is `None`: locked).
pub async fn unit_answered(
    store: &RetrievedStore,
    id: u64,
    error: Option<String>,
    now_us: i64,
) -> Result<(), RetrievedError> {
    let state = if error.is_none() { LockState::Locked } else { LockState::Failed };
    store
        .write(move |db| {
            db.execute(
                "UPDATE evidence_lock SET unit_state = ?2, unit_error = ?3, unit_done_us = ?4 WHERE id = ?1",
                params![id as i64, state.as_str(), error, now_us],
            )?;
            Ok(())
        })
        .await
}

/// Every lock recorded in the `sync.db` at `path` (none if it has no such table), for the
/// catalog to adopt those made before locks were shared.
pub fn read_local(path: &Path) -> rusqlite::Result<Vec<EvidenceLock>> {
    if !path.exists() {
        return Ok(Vec::new());
    }
    let db = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    db.busy_timeout(std::time::Duration::from_secs(10))?;
    let table: Option<String> = db
        .query_row("SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'evidence_lock'", [], |r| r.get(0))
        .optional()?;
    if table.is_none() {
        return Ok(Vec::new());
    }
    let mut stmt = db.prepare(&format!("SELECT {COLUMNS} FROM evidence_lock ORDER BY id"))?;
    let rows = stmt.query_map([], from_row)?.collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_catalog_lock_is_applied_to_centrals_store_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = RetrievedStore::open(dir.path()).unwrap();
        let lock = EvidenceLock {
            id: 7,
            unit: "bus".into(),
            camera: "front".into(),
            start_us: 1_000_000,
            end_us: 9_000_000,
            expires_us: i64::MAX,
            reason: "incident 7".into(),
            created_us: 42,
            central: LockState::Pending,
            central_error: None,
            unit_state: LockState::Pending,
            unit_error: None,
            unit_done_us: None,
        };
        assert_eq!(apply(&store, &lock).await.unwrap(), (LockState::Locked, None));
        assert_eq!(apply(&store, &lock).await.unwrap(), (LockState::Locked, None), "applied again: nothing new");
        let states = central_states(&store, vec![7, 8]).await.unwrap();
        assert_eq!(states.len(), 1, "lock 8 was never applied here");
        assert_eq!(with_central(lock.clone(), &states).central, LockState::Locked);
        unit_answered(&store, 7, None, 50).await.unwrap();
        drop(store);
        let local = read_local(&dir.path().join("sync.db")).unwrap();
        assert_eq!((local.len(), local[0].id, local[0].unit_state), (1, 7, LockState::Locked));

        // The lock is in central's media store once, where retention will honour it.
        let catalog =
            media_store::catalog::Catalog::open_read_only(&media_store::catalog_path(&dir.path().join("media")))
                .unwrap();
        let locks = catalog.locks().unwrap();
        assert_eq!(locks.len(), 1, "{locks:?}");
        assert_eq!(
            (locks[0].log.as_str(), locks[0].lock.start_us, locks[0].lock.end_us, locks[0].lock.reason.as_str()),
            ("bus/front", 1_000_000, 9_000_000, "central lock 7: incident 7")
        );
    }
}
