//! Group commit of small writes to `sync.db`: each unit's sync state, when it was last seen and
//! its answers to evidence locks (its events as alarms go to the catalog in groups of their own,
//! `alarm_writes.rs`). A busy fleet makes hundreds of these a second, and as separate
//! transactions each waited for its own fsync on the store's one thread, in front of everything
//! else there. Here the writes that arrive while one batch is being committed go together into
//! the next: one transaction, one fsync.
//!
//! Nothing is made lazy: each caller's answer comes only after the transaction holding its
//! write committed (durable, as before). Each write runs in a savepoint of its own, so one that
//! fails is undone alone and the others still commit.

use std::sync::mpsc;

use rusqlite::Connection;

use crate::retrieved::RetrievedError;

/// The most writes in one transaction.
const MAX_BATCH: usize = 512;

/// Tells one caller how its write ended, once the batch's commit is known (`Some` error when
/// the batch failed to begin or to commit).
type Finish = Box<dyn FnOnce(Option<&rusqlite::Error>) + Send>;
/// One write: runs on the store's connection inside its savepoint (`None`: not run, the batch
/// could not begin); whether it succeeded (else its savepoint is rolled back) and how to
/// answer its caller.
type Write = Box<dyn FnOnce(Option<&Connection>) -> (bool, Finish) + Send>;
/// Runs a batch on the store's thread, with its connection; false if the store is gone.
pub(crate) type Submit = Box<dyn Fn(Box<dyn FnOnce(&mut Connection) + Send>) -> bool + Send>;

/// The queue of writes to group (cheap to clone).
#[derive(Clone)]
pub struct SyncWrites {
    tx: mpsc::Sender<Write>,
}

impl SyncWrites {
    /// Starts the thread that gathers writes and hands each batch to `submit` (the store's
    /// thread), waiting for one batch to commit before it sends the next. It ends when every
    /// handle is dropped.
    pub(crate) fn start(submit: Submit) -> std::io::Result<SyncWrites> {
        let (tx, rx) = mpsc::channel::<Write>();
        std::thread::Builder::new().name("sync-writes".into()).spawn(move || {
            while let Some(batch) = crate::batches::next_batch(&rx, MAX_BATCH) {
                let (done_tx, done_rx) = mpsc::channel::<()>();
                let sent = submit(Box::new(move |db: &mut Connection| {
                    run_batch(db, batch);
                    let _ = done_tx.send(());
                }));
                // Dropped unanswered, each caller hears that the store stopped.
                if !sent || done_rx.recv().is_err() {
                    return;
                }
            }
        })?;
        Ok(SyncWrites { tx })
    }

    /// Runs `f` on the store's connection in the next batch; its result once that committed.
    pub async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, RetrievedError> + Send + 'static,
    ) -> Result<T, RetrievedError> {
        let (reply, answer) = tokio::sync::oneshot::channel::<Result<T, RetrievedError>>();
        let write: Write = Box::new(move |db: Option<&Connection>| {
            let result = db.map(f);
            let ok = matches!(result, Some(Ok(_)));
            let finish: Finish = Box::new(move |failed: Option<&rusqlite::Error>| {
                let _ = reply.send(match (result, failed) {
                    (Some(Err(e)), _) => Err(e),
                    (_, Some(e)) => Err(RetrievedError::Db(copy_error(e))),
                    (Some(Ok(v)), None) => Ok(v),
                    (None, None) => Err(RetrievedError::Stopped),
                });
            });
            (ok, finish)
        });
        self.tx.send(write).map_err(|_| RetrievedError::Stopped)?;
        answer.await.map_err(|_| RetrievedError::Stopped)?
    }
}

/// Runs `batch` in one transaction, each write in its own savepoint, then answers every caller.
fn run_batch(db: &mut Connection, batch: Vec<Write>) {
    let mut tx = match db.transaction() {
        Ok(tx) => tx,
        Err(e) => {
            tracing::error!("sync database: cannot begin a batch of writes: {e}");
            for w in batch {
                let (_, finish) = w(None);
                finish(Some(&e));
            }
            return;
        }
    };
    let mut finishes = Vec::with_capacity(batch.len());
    for w in batch {
        let mut sp = match tx.savepoint() {
            Ok(sp) => sp,
            Err(e) => {
                let (_, finish) = w(None);
                finish(Some(&e));
                continue;
            }
        };
        let (ok, finish) = w(Some(&*sp));
        let ended = if ok { sp.commit() } else { sp.rollback() };
        match ended {
            Ok(()) => finishes.push(finish),
            Err(e) => finish(Some(&e)),
        }
    }
    match tx.commit() {
        Ok(()) => finishes.into_iter().for_each(|f| f(None)),
        Err(e) => {
            tracing::error!("sync database: a batch of {} writes did not commit: {e}", finishes.len());
            finishes.into_iter().for_each(|f| f(Some(&e)));
        }
    }
}

/// `e` again (rusqlite's errors are not `Clone`): one per caller of a failed batch.
fn copy_error(e: &rusqlite::Error) -> rusqlite::Error {
    match e {
        rusqlite::Error::SqliteFailure(code, message) => rusqlite::Error::SqliteFailure(*code, message.clone()),
        other => rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_ERROR),
            Some(other.to_string()),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A store thread of its own over a real SQLite file, counting the batches it runs (one
    /// transaction each); it starts running them only when `go` is sent, so that writes pile
    /// up first.
    fn store(dir: &std::path::Path) -> (SyncWrites, Arc<AtomicUsize>, mpsc::Sender<()>) {
        let mut db = Connection::open(dir.join("sync.db")).unwrap();
        db.pragma_update(None, "journal_mode", "WAL").unwrap();
        db.execute_batch("CREATE TABLE t (k INTEGER PRIMARY KEY NOT NULL, v TEXT NOT NULL) STRICT").unwrap();
        let batches = Arc::new(AtomicUsize::new(0));
        let counted = batches.clone();
        let (jobs_tx, jobs_rx) = mpsc::channel::<Box<dyn FnOnce(&mut Connection) + Send>>();
        let (go_tx, go_rx) = mpsc::channel::<()>();
        std::thread::spawn(move || {
            let _ = go_rx.recv();
            while let Ok(job) = jobs_rx.recv() {
                counted.fetch_add(1, Ordering::SeqCst);
                job(&mut db);
            }
        });
        let writes = SyncWrites::start(Box::new(move |f| jobs_tx.send(f).is_ok())).unwrap();
        (writes, batches, go_tx)
    }

    #[tokio::test]
    async fn writes_waiting_together_commit_together_and_a_failed_one_fails_alone() {
        let dir = tempfile::tempdir().unwrap();
        let (writes, batches, go) = store(dir.path());
        // Key 7 twice: whichever write of it comes second fails, and alone.
        let mut pending: Vec<_> = (0..200i64)
            .chain([7])
            .map(|k| {
                let w = writes.clone();
                Box::pin(async move {
                    w.write(move |db| Ok(db.execute("INSERT INTO t (k, v) VALUES (?1, 'x')", [k])?)).await
                })
            })
            .collect();
        // Polled once, each write is queued (its first step sends it); the store thread has not
        // run anything yet, so they wait together.
        for p in &mut pending {
            assert!(futures::poll!(p.as_mut()).is_pending());
        }
        go.send(()).unwrap();
        let results = futures::future::join_all(pending).await;
        assert_eq!(results.iter().filter(|r| r.is_err()).count(), 1, "exactly one write of key 7 fails");
        let n: i64 = Connection::open(dir.path().join("sync.db"))
            .unwrap()
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 200, "every other write is durable once answered");
        let b = batches.load(Ordering::SeqCst);
        assert!(b <= 3, "201 writes waiting together took {b} transactions");
    }
}
