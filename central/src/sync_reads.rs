//! Reads of `sync.db` on connections of their own, beside the retrieved-video store's thread
//! (its one writer). `sync.db` is in WAL mode, so a reader sees every transaction committed
//! before it began and never waits for the writer: the API's lists (retrievals,
//! timelines, locks' central side) no longer queue behind the stores, events and sync state of a busy fleet.
//!
//! Connections are opened read-only when first needed and kept for reuse (a few; more are
//! opened while many reads run at once and closed after). Each read runs off the async
//! executor.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use crate::retrieved::RetrievedError;

/// How many idle read connections are kept.
const KEPT: usize = 4;

/// Read-only connections to one `sync.db` (cheap to clone).
#[derive(Clone)]
pub struct SyncReads {
    inner: Arc<Pool>,
}

struct Pool {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
}

impl SyncReads {
    /// Reads of the `sync.db` at `path` (which the store has already made, in WAL mode).
    pub fn new(path: PathBuf) -> SyncReads {
        SyncReads { inner: Arc::new(Pool { path, idle: Mutex::default() }) }
    }

    /// Runs `f` on a read connection, off the async executor. `f` sees one consistent
    /// snapshot when it runs its statements in one transaction; a single statement always does.
    pub async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, RetrievedError> + Send + 'static,
    ) -> Result<T, RetrievedError> {
        let pool = self.inner.clone();
        tokio::task::spawn_blocking(move || pool.read(f)).await.map_err(|_| RetrievedError::Stopped)?
    }
}

impl Pool {
    fn read<T>(&self, f: impl FnOnce(&mut Connection) -> Result<T, RetrievedError>) -> Result<T, RetrievedError> {
        let taken = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let mut conn = match taken {
            Some(c) => c,
            None => self.open()?,
        };
        let out = f(&mut conn);
        // A connection left inside a transaction by a failed read is not kept.
        if conn.is_autocommit() {
            let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
            if idle.len() < KEPT {
                idle.push(conn);
            }
        }
        out
    }

    fn open(&self) -> Result<Connection, RetrievedError> {
        let conn = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI,
        )?;
        // A checkpoint or recovery by the writer can hold the database briefly.
        conn.busy_timeout(Duration::from_secs(10))?;
        Ok(conn)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_read_sees_what_the_writer_committed_while_the_writer_holds_a_transaction() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sync.db");
        let mut writer = Connection::open(&path).unwrap();
        writer.pragma_update(None, "journal_mode", "WAL").unwrap();
        writer.execute_batch("CREATE TABLE t (v INTEGER NOT NULL); INSERT INTO t VALUES (1);").unwrap();
        let reads = SyncReads::new(path);
        let count = |reads: SyncReads| async move {
            reads.read(|c| Ok(c.query_row("SELECT count(*) FROM t", [], |r| r.get::<_, i64>(0))?)).await.unwrap()
        };
        assert_eq!(count(reads.clone()).await, 1);
        // The writer's open transaction neither blocks the reader nor shows it uncommitted rows.
        let tx = writer.transaction().unwrap();
        tx.execute("INSERT INTO t VALUES (2)", []).unwrap();
        assert_eq!(count(reads.clone()).await, 1, "uncommitted rows are not read");
        tx.commit().unwrap();
        assert_eq!(count(reads.clone()).await, 2, "a reused connection sees the new commit");
        let refused = reads.read(|c| Ok(c.execute("INSERT INTO t VALUES (3)", [])?)).await;
        assert!(refused.is_err(), "read connections cannot write");
    }
}
