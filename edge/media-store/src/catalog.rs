//! The catalog: a SQLite index (WAL mode) of what the segments hold, so that reads, retention
//! and status need not scan media. Everything in it can be rebuilt from the segments alone
//! (`Catalog::rebuild` via `edge store reindex`): sealed segments with their runs and key
//! frames, and the evidence locks and cursors recorded in the logs. Unsealed tail segments are
//! not in the catalog; their writer (or a reader) indexes them in memory.

use std::path::Path;

use rusqlite::{Connection, OpenFlags, OptionalExtension, params};

use crate::StoreError;
use crate::index::{KeyFrame, SegmentIndex};
use crate::record::{EvidenceLock, Removed};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS segment (
    log TEXT NOT NULL,
    first_seq INTEGER NOT NULL,
    records INTEGER NOT NULL,
    len INTEGER NOT NULL,
    frames INTEGER NOT NULL,
    media_bytes INTEGER NOT NULL,
    start_us INTEGER,
    end_us INTEGER,
    digest BLOB NOT NULL,
    prev_digest BLOB NOT NULL,
    PRIMARY KEY (log, first_seq)
) STRICT;
CREATE TABLE IF NOT EXISTS run (
    log TEXT NOT NULL,
    first_seq INTEGER NOT NULL,
    start_us INTEGER NOT NULL,
    end_us INTEGER NOT NULL
) STRICT;
CREATE INDEX IF NOT EXISTS run_by_segment ON run (log, first_seq);
CREATE TABLE IF NOT EXISTS keyframe (
    log TEXT NOT NULL,
    first_seq INTEGER NOT NULL,
    wall_us INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    offset INTEGER NOT NULL,
    parameters_offset INTEGER NOT NULL
) STRICT;
CREATE INDEX IF NOT EXISTS keyframe_by_time ON keyframe (log, wall_us);
CREATE INDEX IF NOT EXISTS keyframe_by_segment ON keyframe (log, first_seq);
CREATE TABLE IF NOT EXISTS evidence_lock (
    id INTEGER PRIMARY KEY,
    log TEXT NOT NULL,
    start_us INTEGER NOT NULL,
    end_us INTEGER NOT NULL,
    expires_us INTEGER NOT NULL,
    reason TEXT NOT NULL,
    seq INTEGER NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS removed (
    log TEXT NOT NULL,
    first_seq INTEGER NOT NULL,
    end_seq INTEGER NOT NULL,
    prev_digest BLOB NOT NULL,
    digest BLOB NOT NULL,
    seq INTEGER NOT NULL,
    PRIMARY KEY (log, first_seq)
) STRICT;
CREATE TABLE IF NOT EXISTS cursor (
    log TEXT NOT NULL,
    name TEXT NOT NULL,
    value INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    PRIMARY KEY (log, name)
) STRICT;
";

/// A sealed segment as the catalog lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentRow {
    /// The log (camera) it belongs to.
    pub log: String,
    /// Its first sequence number (its file name).
    pub first_seq: u64,
    /// Sequence numbers it spans, seal included (its records, unless thinned).
    pub records: u64,
    /// Its length in bytes.
    pub len: u64,
    /// Frame records.
    pub frames: u64,
    /// Bytes of frame payload.
    pub media_bytes: u64,
    /// First and last frame time (µs), if it holds frames.
    pub time_range: Option<(i64, i64)>,
    /// Its chain digest.
    pub digest: [u8; 32],
    /// The chain digest of the segment before it.
    pub prev_digest: [u8; 32],
}

/// An evidence lock row: the lock and the sequence number of the record that holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockRow {
    /// The log holding its record.
    pub log: String,
    /// The record's sequence number.
    pub seq: u64,
    /// The lock.
    pub lock: EvidenceLock,
}

/// The catalog database.
pub struct Catalog {
    conn: Connection,
}

impl Catalog {
    /// Opens (creating if needed) the catalog for writing.
    pub fn open(path: &Path) -> Result<Catalog, StoreError> {
        let conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        // Commits are rare (a segment seal, a lock), so each may as well be durable.
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.execute_batch(SCHEMA)?;
        Ok(Catalog { conn })
    }

    /// Opens an existing catalog read-only (for offline tools next to a running unit).
    pub fn open_read_only(path: &Path) -> Result<Catalog, StoreError> {
        let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
        Ok(Catalog { conn })
    }

    /// Deletes everything, to rebuild from the segments.
    pub fn clear(&mut self) -> Result<(), StoreError> {
        self.conn.execute_batch(
            "BEGIN; DELETE FROM segment; DELETE FROM run; DELETE FROM keyframe;
             DELETE FROM evidence_lock; DELETE FROM cursor; DELETE FROM removed; COMMIT;",
        )?;
        Ok(())
    }

    /// Adds a sealed segment with its runs, key frames, locks and cursors (idempotent).
    pub fn insert_segment(&mut self, log: &str, index: &SegmentIndex) -> Result<(), StoreError> {
        let seal = index.seal.as_ref().expect("only sealed segments enter the catalog");
        let tx = self.conn.transaction()?;
        delete_segment_rows(&tx, log, index.first_seq)?;
        let range = index.time_range();
        tx.execute(
            "INSERT INTO segment (log, first_seq, records, len, frames, media_bytes, start_us, end_us,
                                  digest, prev_digest)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            params![
                log,
                index.first_seq as i64,
                (index.next_seq() - index.first_seq) as i64,
                index.len as i64,
                index.frames as i64,
                index.media_bytes as i64,
                range.map(|r| r.0),
                range.map(|r| r.1),
                &seal.digest[..],
                &seal.prev_digest[..],
            ],
        )?;
        {
            let mut run =
                tx.prepare_cached("INSERT INTO run (log, first_seq, start_us, end_us) VALUES (?1, ?2, ?3, ?4)")?;
            for (start, end) in &index.runs {
                run.execute(params![log, index.first_seq as i64, start, end])?;
            }
            let mut kf = tx.prepare_cached(
                "INSERT INTO keyframe (log, first_seq, wall_us, seq, offset, parameters_offset)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?;
            for k in &index.keyframes {
                kf.execute(params![
                    log,
                    index.first_seq as i64,
                    k.wall_us,
                    k.seq as i64,
                    k.offset as i64,
                    k.parameters_offset as i64
                ])?;
            }
        }
        upsert_locks_and_cursors(&tx, log, index)?;
        tx.commit()?;
        Ok(())
    }

    /// Records the locks and cursors of an unsealed segment (idempotent).
    pub fn note_tail(&mut self, log: &str, index: &SegmentIndex) -> Result<(), StoreError> {
        let tx = self.conn.transaction()?;
        upsert_locks_and_cursors(&tx, log, index)?;
        tx.commit()?;
        Ok(())
    }

    /// Removes a segment's rows (its locks and cursors stay: they are carried forward).
    pub fn remove_segment(&mut self, log: &str, first_seq: u64) -> Result<(), StoreError> {
        let tx = self.conn.transaction()?;
        delete_segment_rows(&tx, log, first_seq)?;
        tx.commit()?;
        Ok(())
    }

    /// The sealed segments of `log`, oldest first.
    pub fn segments(&self, log: &str) -> Result<Vec<SegmentRow>, StoreError> {
        self.query_segments("WHERE log = ?1 ORDER BY first_seq", params![log])
    }

    /// Every sealed segment, oldest frames first (segments without frames first of all).
    pub fn all_segments(&self) -> Result<Vec<SegmentRow>, StoreError> {
        self.query_segments("ORDER BY coalesce(end_us, -1), log, first_seq", params![])
    }

    fn query_segments(&self, tail: &str, p: &[&dyn rusqlite::ToSql]) -> Result<Vec<SegmentRow>, StoreError> {
        let sql = format!(
            "SELECT log, first_seq, records, len, frames, media_bytes, start_us, end_us, digest, prev_digest
             FROM segment {tail}"
        );
        let mut stmt = self.conn.prepare(&sql)?;
        let rows = stmt.query_map(p, |r| {
            let digest: Vec<u8> = r.get(8)?;
            let prev_digest: Vec<u8> = r.get(9)?;
            let start: Option<i64> = r.get(6)?;
            let end: Option<i64> = r.get(7)?;
            Ok(SegmentRow {
                log: r.get(0)?,
                first_seq: r.get::<_, i64>(1)? as u64,
                records: r.get::<_, i64>(2)? as u64,
                len: r.get::<_, i64>(3)? as u64,
                frames: r.get::<_, i64>(4)? as u64,
                media_bytes: r.get::<_, i64>(5)? as u64,
                time_range: start.zip(end),
                digest: digest.try_into().unwrap_or([0; 32]),
                prev_digest: prev_digest.try_into().unwrap_or([0; 32]),
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The runs of frames in `log`'s sealed segments, in time order.
    pub fn runs(&self, log: &str) -> Result<Vec<(i64, i64)>, StoreError> {
        let mut stmt = self.conn.prepare("SELECT start_us, end_us FROM run WHERE log = ?1 ORDER BY start_us")?;
        let rows = stmt.query_map(params![log], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The runs of frames of one sealed segment, in time order.
    pub fn segment_runs(&self, log: &str, first_seq: u64) -> Result<Vec<(i64, i64)>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT start_us, end_us FROM run WHERE log = ?1 AND first_seq = ?2 ORDER BY start_us")?;
        let rows = stmt.query_map(params![log, first_seq as i64], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The key frames of one sealed segment, in sequence order.
    pub fn segment_keyframes(&self, log: &str, first_seq: u64) -> Result<Vec<KeyFrame>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT wall_us, seq, offset, parameters_offset FROM keyframe WHERE log = ?1 AND first_seq = ?2 ORDER BY seq",
        )?;
        let rows = stmt.query_map(params![log, first_seq as i64], |r| {
            Ok(KeyFrame {
                wall_us: r.get(0)?,
                seq: r.get::<_, i64>(1)? as u64,
                offset: r.get::<_, i64>(2)? as u64,
                parameters_offset: r.get::<_, i64>(3)? as u64,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The last key frame of `log` at or before `wall_us` in a sealed segment, with its
    /// segment's first sequence number.
    pub fn keyframe_at_or_before(&self, log: &str, wall_us: i64) -> Result<Option<(u64, KeyFrame)>, StoreError> {
        Ok(self
            .conn
            .query_row(
                "SELECT first_seq, wall_us, seq, offset, parameters_offset FROM keyframe
                 WHERE log = ?1 AND wall_us <= ?2 ORDER BY wall_us DESC, seq DESC LIMIT 1",
                params![log, wall_us],
                |r| {
                    Ok((
                        r.get::<_, i64>(0)? as u64,
                        KeyFrame {
                            wall_us: r.get(1)?,
                            seq: r.get::<_, i64>(2)? as u64,
                            offset: r.get::<_, i64>(3)? as u64,
                            parameters_offset: r.get::<_, i64>(4)? as u64,
                        },
                    ))
                },
            )
            .optional()?)
    }

    /// Every evidence lock, including expired ones.
    pub fn locks(&self) -> Result<Vec<LockRow>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT log, seq, id, start_us, end_us, expires_us, reason FROM evidence_lock ORDER BY id")?;
        let rows = stmt.query_map([], |r| {
            let log: String = r.get(0)?;
            Ok(LockRow {
                seq: r.get::<_, i64>(1)? as u64,
                lock: EvidenceLock {
                    id: r.get::<_, i64>(2)? as u64,
                    camera: log.clone(),
                    start_us: r.get(3)?,
                    end_us: r.get(4)?,
                    expires_us: r.get(5)?,
                    reason: r.get(6)?,
                },
                log,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Moves a lock's record to a new sequence number (after it was carried forward).
    pub fn move_lock(&mut self, id: u64, seq: u64) -> Result<(), StoreError> {
        self.conn.execute("UPDATE evidence_lock SET seq = ?2 WHERE id = ?1", params![id as i64, seq as i64])?;
        Ok(())
    }

    /// Records a lock (idempotent).
    pub fn put_lock(&mut self, log: &str, seq: u64, lock: &EvidenceLock) -> Result<(), StoreError> {
        put_lock(&self.conn, log, seq, lock)
    }

    /// The next unused lock id.
    pub fn next_lock_id(&self) -> Result<u64, StoreError> {
        let max: Option<i64> = self.conn.query_row("SELECT max(id) FROM evidence_lock", [], |r| r.get(0))?;
        Ok(max.map_or(1, |m| m as u64 + 1))
    }

    /// Every tombstone of a removed segment as `(log, seq of its record, tombstone)`.
    pub fn removed(&self) -> Result<Vec<(String, u64, Removed)>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT log, seq, first_seq, end_seq, prev_digest, digest FROM removed ORDER BY log, first_seq")?;
        let rows = stmt.query_map([], |r| {
            let prev: Vec<u8> = r.get(4)?;
            let digest: Vec<u8> = r.get(5)?;
            Ok((
                r.get(0)?,
                r.get::<_, i64>(1)? as u64,
                Removed {
                    first_seq: r.get::<_, i64>(2)? as u64,
                    end_seq: r.get::<_, i64>(3)? as u64,
                    prev_digest: prev.try_into().unwrap_or([0; 32]),
                    digest: digest.try_into().unwrap_or([0; 32]),
                },
            ))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Records a tombstone (idempotent; the newest record of it wins).
    pub fn put_removed(&mut self, log: &str, seq: u64, removed: &Removed) -> Result<(), StoreError> {
        put_removed(&self.conn, log, seq, removed)
    }

    /// Forgets a tombstone that is no longer needed.
    pub fn forget_removed(&mut self, log: &str, first_seq: u64) -> Result<(), StoreError> {
        self.conn.execute("DELETE FROM removed WHERE log = ?1 AND first_seq = ?2", params![log, first_seq as i64])?;
        Ok(())
    }

    /// Every cursor as `(log, name, value, seq)`.
    pub fn cursors(&self) -> Result<Vec<(String, String, u64, u64)>, StoreError> {
        let mut stmt = self.conn.prepare("SELECT log, name, value, seq FROM cursor ORDER BY log, name")?;
        let rows =
            stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get::<_, i64>(2)? as u64, r.get::<_, i64>(3)? as u64)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Records a cursor value.
    pub fn put_cursor(&mut self, log: &str, name: &str, value: u64, seq: u64) -> Result<(), StoreError> {
        put_cursor(&self.conn, log, name, value, seq)
    }
}

fn delete_segment_rows(conn: &Connection, log: &str, first_seq: u64) -> Result<(), rusqlite::Error> {
    for table in ["segment", "run", "keyframe"] {
        conn.execute(
            &format!("DELETE FROM {table} WHERE log = ?1 AND first_seq = ?2"),
            params![log, first_seq as i64],
        )?;
    }
    Ok(())
}

fn upsert_locks_and_cursors(conn: &Connection, log: &str, index: &SegmentIndex) -> Result<(), StoreError> {
    for (seq, lock) in &index.locks {
        put_lock(conn, log, *seq, lock)?;
    }
    for (seq, name, value) in &index.cursors {
        put_cursor(conn, log, name, *value, *seq)?;
    }
    for (seq, removed) in &index.removed {
        put_removed(conn, log, *seq, removed)?;
    }
    Ok(())
}

fn put_removed(conn: &Connection, log: &str, seq: u64, r: &Removed) -> Result<(), StoreError> {
    conn.execute(
        "INSERT INTO removed (log, first_seq, end_seq, prev_digest, digest, seq) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT (log, first_seq) DO UPDATE SET seq = max(seq, excluded.seq)",
        params![log, r.first_seq as i64, r.end_seq as i64, &r.prev_digest[..], &r.digest[..], seq as i64],
    )?;
    Ok(())
}

fn put_lock(conn: &Connection, log: &str, seq: u64, lock: &EvidenceLock) -> Result<(), StoreError> {
    conn.execute(
        "INSERT INTO evidence_lock (id, log, start_us, end_us, expires_us, reason, seq)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
         ON CONFLICT (id) DO UPDATE SET seq = max(seq, excluded.seq)",
        params![lock.id as i64, log, lock.start_us, lock.end_us, lock.expires_us, lock.reason, seq as i64],
    )?;
    Ok(())
}

fn put_cursor(conn: &Connection, log: &str, name: &str, value: u64, seq: u64) -> Result<(), StoreError> {
    conn.execute(
        "INSERT INTO cursor (log, name, value, seq) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (log, name) DO UPDATE SET value = excluded.value, seq = excluded.seq
         WHERE excluded.seq >= cursor.seq",
        params![log, name, value as i64, seq as i64],
    )?;
    Ok(())
}
