//! Evidence locks set at central: a range of a unit camera's video kept from retention, both
//! in central's store of retrieved video (locked at once, whether or not central holds the
//! video yet) and in the unit's own store (sent over the sync protocol, again at each
//! connection until the unit answers). Rows live in `sync.db` (`evidence_lock`), written on the
//! store thread together with the media store's lock record.

use protocol::sync::EvidenceLockRequest;
use rusqlite::{OptionalExtension, Row, params};
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
    fn as_str(self) -> &'static str {
        match self {
            LockState::Pending => "pending",
            LockState::Locked => "locked",
            LockState::Failed => "failed",
        }
    }

    fn parse(s: &str) -> LockState {
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

/// Records the lock and locks central's own store (durable when this returns). A failure of
/// central's store is recorded in the row, not returned: the unit's lock still goes ahead.
pub async fn create(store: &RetrievedStore, lock: NewLock, now_us: i64) -> Result<EvidenceLock, RetrievedError> {
    store
        .with_store(move |media, db| {
            db.execute(
                "INSERT INTO evidence_lock (unit, camera, start_us, end_us, expires_us, reason, created_us,
                     central_state, unit_state) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'pending', 'pending')",
                params![lock.unit, lock.camera, lock.start_us, lock.end_us, lock.expires_us, lock.reason, now_us],
            )?;
            let id = db.last_insert_rowid();
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
            Ok(db.query_row(&format!("SELECT {COLUMNS} FROM evidence_lock WHERE id = ?1"), [id], from_row)?)
        })
        .await
}

/// Records the unit's answer to lock `id` (`error` is `None`: locked).
pub async fn unit_answered(
    store: &RetrievedStore,
    id: u64,
    error: Option<String>,
    now_us: i64,
) -> Result<(), RetrievedError> {
    let state = if error.is_none() { LockState::Locked } else { LockState::Failed };
    store
        .query(move |db| {
            db.execute(
                "UPDATE evidence_lock SET unit_state = ?2, unit_error = ?3, unit_done_us = ?4 WHERE id = ?1",
                params![id as i64, state.as_str(), error, now_us],
            )?;
            Ok(())
        })
        .await
}

/// `unit`'s locks it has not answered yet, oldest first (handed to its sync core at start).
pub async fn pending(store: &RetrievedStore, unit: &str) -> Result<Vec<EvidenceLockRequest>, RetrievedError> {
    let unit = unit.to_owned();
    store
        .query(move |db| {
            let mut stmt = db.prepare(&format!(
                "SELECT {COLUMNS} FROM evidence_lock WHERE unit = ?1 AND unit_state = 'pending' ORDER BY id"
            ))?;
            let rows = stmt.query_map([unit], from_row)?.collect::<Result<Vec<_>, _>>()?;
            Ok(rows.iter().map(EvidenceLock::request).collect())
        })
        .await
}

/// Lock `id`, if it exists.
pub async fn get(store: &RetrievedStore, id: u64) -> Result<Option<EvidenceLock>, RetrievedError> {
    store
        .query(move |db| {
            Ok(db
                .query_row(&format!("SELECT {COLUMNS} FROM evidence_lock WHERE id = ?1"), [id as i64], from_row)
                .optional()?)
        })
        .await
}

/// The newest `limit` locks, of one unit or of all.
pub async fn list(
    store: &RetrievedStore,
    unit: Option<String>,
    limit: u32,
) -> Result<Vec<EvidenceLock>, RetrievedError> {
    store
        .query(move |db| {
            let mut stmt = db.prepare(&format!(
                "SELECT {COLUMNS} FROM evidence_lock WHERE ?1 IS NULL OR unit = ?1 ORDER BY id DESC LIMIT ?2"
            ))?;
            let rows = stmt.query_map(params![unit, limit], from_row)?.collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_lock_is_kept_at_central_and_waits_for_the_unit() {
        let dir = tempfile::tempdir().unwrap();
        let store = RetrievedStore::open(dir.path()).unwrap();
        let new = NewLock {
            unit: "bus".into(),
            camera: "front".into(),
            start_us: 1_000_000,
            end_us: 9_000_000,
            expires_us: i64::MAX,
            reason: "incident 7".into(),
        };
        let lock = create(&store, new, 42).await.unwrap();
        assert_eq!((lock.central, lock.unit_state, lock.created_us), (LockState::Locked, LockState::Pending, 42));
        assert_eq!(pending(&store, "bus").await.unwrap(), vec![lock.request()]);
        assert!(pending(&store, "tram").await.unwrap().is_empty());
        unit_answered(&store, lock.id, None, 50).await.unwrap();
        assert!(pending(&store, "bus").await.unwrap().is_empty());
        let after = get(&store, lock.id).await.unwrap().unwrap();
        assert_eq!((after.unit_state, after.unit_done_us), (LockState::Locked, Some(50)));
        assert_eq!(list(&store, None, 10).await.unwrap(), vec![after.clone()]);
        assert!(list(&store, Some("tram".into()), 10).await.unwrap().is_empty());
        drop(store);

        // The lock is in central's media store, where retention will honour it.
        let catalog =
            media_store::catalog::Catalog::open_read_only(&media_store::catalog_path(&dir.path().join("media")))
                .unwrap();
        let locks = catalog.locks().unwrap();
        assert_eq!(locks.len(), 1, "{locks:?}");
        assert_eq!(
            (locks[0].log.as_str(), locks[0].lock.start_us, locks[0].lock.end_us),
            ("bus/front", 1_000_000, 9_000_000)
        );
    }
}
