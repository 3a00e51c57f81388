//! The webhooks' durable outbox: `STORE/webhooks.db` (SQLite), one row per delivery still to
//! make, and each webhook's last outcome. A delivery is written here before any attempt and
//! removed only when its receiver answered 2xx (or it was given up), so it survives a restart
//! of central. All of its SQL is in this file.

use std::path::Path;
use std::sync::Mutex;

use rusqlite::{Connection, OptionalExtension, params};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS delivery (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    url TEXT NOT NULL,
    event TEXT NOT NULL,
    body TEXT NOT NULL,
    created_us INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    due_us INTEGER NOT NULL
) STRICT;
CREATE INDEX IF NOT EXISTS delivery_due ON delivery (url, due_us, seq);
CREATE TABLE IF NOT EXISTS webhook_status (
    url TEXT PRIMARY KEY NOT NULL,
    last_status INTEGER,
    last_error TEXT,
    last_attempt_us INTEGER,
    last_delivered_us INTEGER,
    delivered INTEGER NOT NULL DEFAULT 0,
    dropped INTEGER NOT NULL DEFAULT 0
) STRICT;
";

const ENQUEUE: &str = "INSERT INTO delivery (id, url, event, body, created_us, due_us) VALUES (?1, ?2, ?3, ?4, ?5, ?5)";
const NEXT_DUE: &str = "SELECT seq, id, url, event, body, created_us, attempts FROM delivery
     WHERE url = ?1 AND due_us <= ?2 ORDER BY due_us, seq LIMIT 1";
const EARLIEST_DUE: &str = "SELECT MIN(due_us) FROM delivery WHERE url = ?1";
const REMOVE: &str = "DELETE FROM delivery WHERE seq = ?1";
const RESCHEDULE: &str = "UPDATE delivery SET attempts = attempts + 1, due_us = ?2 WHERE seq = ?1";
const STATUS_ROW: &str = "INSERT OR IGNORE INTO webhook_status (url) VALUES (?1)";
const DELIVERED: &str = "UPDATE webhook_status SET last_status = ?2, last_error = NULL, last_attempt_us = ?3,
     last_delivered_us = ?3, delivered = delivered + 1 WHERE url = ?1";
const FAILED: &str = "UPDATE webhook_status SET last_status = ?2, last_error = ?3, last_attempt_us = ?4 WHERE url = ?1";
const DROPPED: &str = "UPDATE webhook_status SET dropped = dropped + 1 WHERE url = ?1";
const STATUS: &str = "SELECT last_status, last_error, last_attempt_us, last_delivered_us, delivered, dropped
     FROM webhook_status WHERE url = ?1";
const QUEUED: &str = "SELECT COUNT(*) FROM delivery WHERE url = ?1";
const OLDEST: &str = "SELECT id, event, attempts, due_us FROM delivery WHERE url = ?1 ORDER BY seq LIMIT 1";
const URLS: &str = "SELECT DISTINCT url FROM delivery";
const FORGET: &str = "DELETE FROM delivery WHERE url = ?1";

/// Why the outbox failed.
#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    /// SQLite failed.
    #[error("webhook outbox (webhooks.db): {0}")]
    Db(#[from] rusqlite::Error),
    /// The blocking task that used it did not finish.
    #[error("webhook outbox: {0}")]
    Task(String),
}

/// A delivery to make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The row (order of enqueueing).
    pub seq: i64,
    /// The idempotency id sent as `X-Convoy-Delivery`, the same at every attempt.
    pub id: String,
    /// The webhook's URL.
    pub url: String,
    /// The event's name (`alarm`, `unit`, `retrieval`).
    pub event: String,
    /// The body, exactly as signed and sent.
    pub body: String,
    /// When it was enqueued, µs since the Unix epoch.
    pub created_us: i64,
    /// Attempts that failed so far.
    pub attempts: u32,
}

/// A webhook's outcomes as the outbox records them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Status {
    /// The HTTP status of the last attempt, if the receiver answered.
    pub last_status: Option<u16>,
    /// Why the last attempt failed (`None` once one succeeded).
    pub last_error: Option<String>,
    /// When the last attempt was made, µs since the Unix epoch.
    pub last_attempt_us: Option<i64>,
    /// When the last delivery succeeded.
    pub last_delivered_us: Option<i64>,
    /// Deliveries made.
    pub delivered: u64,
    /// Deliveries given up.
    pub dropped: u64,
    /// Deliveries waiting.
    pub queued: u64,
    /// The oldest waiting delivery: its id, event, failed attempts and when it is due.
    pub oldest: Option<(String, String, u32, i64)>,
}

/// The outbox (one SQLite connection; calls block briefly, so async code runs them on a
/// blocking thread).
pub struct Outbox {
    db: Mutex<Connection>,
}

impl Outbox {
    /// Opens (creating) `dir/webhooks.db`.
    pub fn open(dir: &Path) -> Result<Outbox, OutboxError> {
        let db = Connection::open(dir.join("webhooks.db"))?;
        db.pragma_update(None, "journal_mode", "WAL")?;
        db.pragma_update(None, "synchronous", "FULL")?;
        db.busy_timeout(std::time::Duration::from_secs(10))?;
        db.execute_batch(SCHEMA)?;
        Ok(Outbox { db: Mutex::new(db) })
    }

    fn db(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.db.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues a delivery of `body` (event `event`, idempotency id `id`) to `url`, due now.
    pub fn enqueue(&self, id: &str, url: &str, event: &str, body: &str, now_us: i64) -> Result<(), OutboxError> {
        self.db().execute(ENQUEUE, params![id, url, event, body, now_us])?;
        Ok(())
    }

    /// The delivery to `url` due first, if one is due at `now_us`.
    pub fn next_due(&self, url: &str, now_us: i64) -> Result<Option<Delivery>, OutboxError> {
        Ok(self
            .db()
            .query_row(NEXT_DUE, params![url, now_us], |r| {
                Ok(Delivery {
                    seq: r.get(0)?,
                    id: r.get(1)?,
                    url: r.get(2)?,
                    event: r.get(3)?,
                    body: r.get(4)?,
                    created_us: r.get(5)?,
                    attempts: r.get::<_, i64>(6)?.try_into().unwrap_or(u32::MAX),
                })
            })
            .optional()?)
    }

    /// When the next delivery to `url` is due, if any waits.
    pub fn earliest_due(&self, url: &str) -> Result<Option<i64>, OutboxError> {
        Ok(self.db().query_row(EARLIEST_DUE, params![url], |r| r.get(0))?)
    }

    /// `d` arrived (the receiver answered `status`, a 2xx): it leaves the outbox.
    pub fn delivered(&self, d: &Delivery, status: u16, now_us: i64) -> Result<(), OutboxError> {
        let mut db = self.db();
        let tx = db.transaction()?;
        tx.execute(REMOVE, params![d.seq])?;
        tx.execute(STATUS_ROW, params![d.url])?;
        tx.execute(DELIVERED, params![d.url, status, now_us])?;
        tx.commit()?;
        Ok(())
    }

    /// An attempt at `d` failed (`status` if the receiver answered, and why): it is tried
    /// again at `retry_us`, or given up when `retry_us` is `None`.
    pub fn failed(
        &self,
        d: &Delivery,
        status: Option<u16>,
        error: &str,
        now_us: i64,
        retry_us: Option<i64>,
    ) -> Result<(), OutboxError> {
        let mut db = self.db();
        let tx = db.transaction()?;
        tx.execute(STATUS_ROW, params![d.url])?;
        tx.execute(FAILED, params![d.url, status, error, now_us])?;
        match retry_us {
            Some(at) => tx.execute(RESCHEDULE, params![d.seq, at])?,
            None => {
                tx.execute(REMOVE, params![d.seq])?;
                tx.execute(DROPPED, params![d.url])?
            }
        };
        tx.commit()?;
        Ok(())
    }

    /// What the outbox knows of `url`.
    pub fn status(&self, url: &str) -> Result<Status, OutboxError> {
        let db = self.db();
        let mut status = db
            .query_row(STATUS, params![url], |r| {
                Ok(Status {
                    last_status: r.get::<_, Option<i64>>(0)?.and_then(|s| u16::try_from(s).ok()),
                    last_error: r.get(1)?,
                    last_attempt_us: r.get(2)?,
                    last_delivered_us: r.get(3)?,
                    delivered: r.get::<_, i64>(4)?.max(0) as u64,
                    dropped: r.get::<_, i64>(5)?.max(0) as u64,
                    ..Status::default()
                })
            })
            .optional()?
            .unwrap_or_default();
        status.queued = db.query_row(QUEUED, params![url], |r| r.get::<_, i64>(0))?.max(0) as u64;
        status.oldest = db
            .query_row(OLDEST, params![url], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get::<_, i64>(2)?.try_into().unwrap_or(u32::MAX), r.get(3)?))
            })
            .optional()?;
        Ok(status)
    }

    /// Removes the deliveries to URLs no longer configured; how many, by URL.
    pub fn forget_except(&self, urls: &[&str]) -> Result<Vec<(String, usize)>, OutboxError> {
        let db = self.db();
        let queued: Vec<String> = db.prepare(URLS)?.query_map([], |r| r.get(0))?.collect::<Result<_, _>>()?;
        let mut forgotten = Vec::new();
        for url in queued.into_iter().filter(|u| !urls.contains(&u.as_str())) {
            let n = db.execute(FORGET, params![url])?;
            forgotten.push((url, n));
        }
        Ok(forgotten)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deliveries_wait_until_due_survive_a_reopen_and_leave_when_delivered() {
        let dir = tempfile::tempdir().unwrap();
        let url = "http://127.0.0.1:9/hook";
        {
            let outbox = Outbox::open(dir.path()).unwrap();
            outbox.enqueue("d1", url, "alarm", "{\"a\":1}", 100).unwrap();
            outbox.enqueue("d2", url, "unit", "{\"a\":2}", 200).unwrap();
            let d1 = outbox.next_due(url, 150).unwrap().unwrap();
            assert_eq!((d1.id.as_str(), d1.body.as_str(), d1.attempts), ("d1", "{\"a\":1}", 0));
            outbox.failed(&d1, Some(503), "answered 503", 150, Some(1_000)).unwrap();
            assert_eq!(outbox.next_due(url, 150).unwrap(), None, "d1 waits, d2 is not due yet");
            assert_eq!(outbox.next_due(url, 300).unwrap().unwrap().id, "d2");
            assert_eq!(outbox.earliest_due(url).unwrap(), Some(200));
        }
        let outbox = Outbox::open(dir.path()).unwrap();
        let s = outbox.status(url).unwrap();
        assert_eq!((s.last_status, s.last_error.as_deref(), s.queued), (Some(503), Some("answered 503"), 2));
        assert_eq!(s.oldest, Some(("d1".into(), "alarm".into(), 1, 1_000)));
        let d2 = outbox.next_due(url, 300).unwrap().unwrap();
        outbox.delivered(&d2, 204, 300).unwrap();
        let d1 = outbox.next_due(url, 1_000).unwrap().unwrap();
        assert_eq!((d1.id.as_str(), d1.attempts), ("d1", 1), "the same id at every attempt");
        outbox.failed(&d1, None, "connection refused", 1_000, None).unwrap();
        let s = outbox.status(url).unwrap();
        assert_eq!((s.queued, s.delivered, s.dropped, s.last_delivered_us), (0, 1, 1, Some(300)));
        assert_eq!(s.last_error.as_deref(), Some("connection refused"));
    }

    #[test]
    fn deliveries_to_webhooks_no_longer_configured_are_forgotten() {
        let dir = tempfile::tempdir().unwrap();
        let outbox = Outbox::open(dir.path()).unwrap();
        outbox.enqueue("a", "http://a/", "alarm", "{}", 1).unwrap();
        outbox.enqueue("b", "http://b/", "alarm", "{}", 1).unwrap();
        assert_eq!(outbox.forget_except(&["http://a/"]).unwrap(), [("http://b/".to_owned(), 1)]);
        assert_eq!((outbox.status("http://a/").unwrap().queued, outbox.status("http://b/").unwrap().queued), (1, 0));
    }
}
