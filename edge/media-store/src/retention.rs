//! Retention and grooming: which sealed segments go, oldest first, under a size budget, a
//! maximum age per camera and a low-disk guard — never one that an unexpired evidence lock
//! covers. Locks and cursors recorded in a segment that goes are first written again at the
//! head of their log, so that the segments alone always hold them.

use std::collections::HashMap;
use std::time::Duration;

use crate::StoreError;
use crate::catalog::SegmentRow;
use crate::record::{Record, Removed};
use crate::segment::file_name;
use crate::store::Store;
use crate::store::log_dir;

/// What to delete when.
#[derive(Debug, Clone, Default)]
pub struct Retention {
    /// The most bytes the store's segments may take.
    pub max_bytes: Option<u64>,
    /// The oldest a camera's recording may get, by camera id.
    pub max_age: HashMap<String, Duration>,
    /// Keep at least this much free space on the store's file system, deleting the oldest
    /// unlocked segments when it runs low. Default: four segments per camera.
    pub min_free_bytes: Option<u64>,
    /// Under size or free-space pressure, first remove the segments whose every record is
    /// covered by this cursor of their log (e.g. `"central"`: what central acknowledged
    /// holding), then the others; [`GroomReport`] says how much of each kind remains and went.
    /// Age limits apply either way. `None`: oldest first, whatever the cursors say.
    pub prefer_covered_by: Option<String>,
}

/// What a grooming pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroomReport {
    /// Segments deleted.
    pub removed_segments: usize,
    /// Bytes freed.
    pub removed_bytes: u64,
    /// Segments that would have gone but an evidence lock kept.
    pub kept_by_lock: usize,
    /// Bytes still over the size budget or under the free-space floor after this pass:
    /// everything left is locked or open. Non-zero means storage is at risk.
    pub shortfall_bytes: u64,
    /// Locks, cursors and tombstones written again because their segment went.
    pub carried_forward: usize,
    /// What archiving moved in the same pass.
    pub archived: crate::archive::ArchiveReport,
    /// With [`Retention::prefer_covered_by`]: bytes removed under pressure that the cursor
    /// did not cover (recordings lost to everyone but a lock could have kept).
    pub uncovered_removed_bytes: u64,
    /// With [`Retention::prefer_covered_by`]: bytes of sealed, unlocked segments on the primary
    /// volume that the cursor covers, left after this pass: what pressure can still take
    /// before it reaches uncovered recordings.
    pub covered_reserve_bytes: u64,
    /// Bytes that may still be written to the primary volume before its size budget or its
    /// free-space floor makes retention remove anything.
    pub headroom_bytes: u64,
}

/// Free bytes on the file system holding `path`.
pub fn free_bytes(path: &std::path::Path) -> Result<u64, StoreError> {
    let st = rustix::fs::statvfs(path).map_err(|e| StoreError::io("statvfs", path)(e.into()))?;
    Ok(st.f_bavail.saturating_mul(st.f_frsize))
}

pub(crate) fn groom(store: &mut Store, now_us: i64) -> Result<GroomReport, StoreError> {
    let mut report = GroomReport::default();
    let retention = store.retention().clone();
    let segments = store.catalog.all_segments()?;
    let archive = store.archive_options().cloned();
    let in_archive = |seg: &SegmentRow| !log_dir(store.dir(), &seg.log).join(file_name(seg.first_seq)).exists();
    let archived: Vec<bool> = segments.iter().map(in_archive).collect();
    // Pressure on the primary volume: its size budget and its free-space floor.
    let tails: u64 = store.logs.values().filter_map(|w| w.tail_index()).map(|t| t.len).sum();
    let total = tails + segments.iter().zip(&archived).filter(|(_, a)| !**a).map(|(s, _)| s.len).sum::<u64>();
    let mut over_budget = retention.max_bytes.map_or(0, |max| total.saturating_sub(max));
    let floor = retention.min_free_bytes.unwrap_or_else(|| 4 * store.segment_bytes() * store.logs.len().max(1) as u64);
    let mut low_disk = floor.saturating_sub(free_bytes(store.dir())?);
    // Pressure on the archive volume: its own budget.
    let archive_total: u64 = segments.iter().zip(&archived).filter(|(_, a)| **a).map(|(s, _)| s.len).sum();
    let mut archive_over =
        archive.as_ref().and_then(|a| a.max_bytes).map_or(0, |max| archive_total.saturating_sub(max));
    let locks: Vec<_> = store.catalog.locks()?.into_iter().filter(|l| l.lock.expires_us > now_us).collect();
    let covered = covered_by(store, retention.prefer_covered_by.as_deref())?;
    let is_covered = |seg: &SegmentRow| {
        covered.get(&seg.log).is_some_and(|&upto| seg.first_seq.saturating_add(seg.records) <= upto.saturating_add(1))
    };
    let mut order: Vec<(&SegmentRow, bool)> = segments.iter().zip(archived).collect();
    if retention.prefer_covered_by.is_some() {
        // Stable: oldest first within each kind.
        order.sort_by_key(|(seg, _)| !is_covered(seg));
    }
    let mut kept: Vec<&SegmentRow> = Vec::new();
    let mut freed_primary = 0u64;
    for (seg, is_archived) in order {
        let too_old = match (retention.max_age.get(&seg.log), seg.time_range) {
            (Some(age), Some((_, end))) => end < now_us - age.as_micros() as i64,
            _ => false,
        };
        let pressed = if is_archived { archive_over > 0 } else { over_budget > 0 || low_disk > 0 };
        let locked = seg.time_range.is_some_and(|(start, end)| {
            locks.iter().any(|l| l.log == seg.log && l.lock.start_us <= end && l.lock.end_us >= start)
        });
        if !too_old && !pressed {
            if !is_archived && !locked {
                kept.push(seg);
            }
            continue;
        }
        if locked {
            report.kept_by_lock += 1;
            continue;
        }
        if !too_old && !is_archived && retention.prefer_covered_by.is_some() && !is_covered(seg) {
            report.uncovered_removed_bytes += seg.len;
        }
        report.carried_forward += carry_forward(store, seg, now_us)?;
        store.catalog.remove_segment(&seg.log, seg.first_seq)?;
        let freed = if is_archived {
            remove_archived(store.dir(), &seg.log, seg.first_seq)?
        } else {
            match store.logs.get_mut(&seg.log) {
                // Keep the file as the log's spare for its next segment, unless the disk is
                // short of space.
                Some(w) => w.remove_segment(seg.first_seq, seg.first_seq + seg.records, low_disk == 0)?,
                None => 0,
            }
        };
        report.removed_segments += 1;
        report.removed_bytes += freed;
        if is_archived {
            archive_over = archive_over.saturating_sub(freed);
        } else {
            over_budget = over_budget.saturating_sub(freed);
            low_disk = low_disk.saturating_sub(freed);
            freed_primary += freed;
        }
    }
    store.sync()?;
    report.shortfall_bytes = over_budget.max(low_disk).max(archive_over);
    report.covered_reserve_bytes = kept.iter().filter(|s| is_covered(s)).map(|s| s.len).sum();
    let free_after = free_bytes(store.dir())?;
    let budget_room =
        retention.max_bytes.map_or(u64::MAX, |max| max.saturating_sub(total.saturating_sub(freed_primary)));
    report.headroom_bytes = budget_room.min(free_after.saturating_sub(floor));
    if report.removed_segments > 0 || report.shortfall_bytes > 0 {
        tracing::info!(?report, "retention");
    }
    Ok(report)
}

/// By log: the value of cursor `name` (nothing when `name` is `None`).
fn covered_by(store: &Store, name: Option<&str>) -> Result<HashMap<String, u64>, StoreError> {
    let Some(name) = name else { return Ok(HashMap::new()) };
    Ok(store.catalog.cursors()?.into_iter().filter(|c| c.1 == name).map(|c| (c.0, c.2)).collect())
}

/// Deletes an archived segment's file and makes that durable; returns the bytes freed.
fn remove_archived(store: &std::path::Path, log: &str, first_seq: u64) -> Result<u64, StoreError> {
    let path = crate::volumes::segment_path(store, log, first_seq);
    let len = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    match std::fs::remove_file(&path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(StoreError::io("remove", &path)(e)),
    }
    if let Some(dir) = path.parent() {
        crate::log::sync_dir(dir)?;
    }
    Ok(len)
}

/// Before `seg` is deleted: writes again, at the head of its log, the unexpired locks, the
/// cursors and the still-needed tombstones whose records sit in it, and — when an older
/// segment of the log remains (kept by a lock) — a tombstone for `seg` itself, so the digest
/// chain can be followed across the hole. Makes that durable before returning.
fn carry_forward(store: &mut Store, seg: &SegmentRow, now_us: i64) -> Result<usize, StoreError> {
    let log = seg.log.as_str();
    let (first_seq, records) = (seg.first_seq, seg.records);
    let inside = |seq: u64| seq >= first_seq && seq < first_seq.saturating_add(records);
    let oldest_remaining = store.catalog.segments(log)?.iter().map(|s| s.first_seq).filter(|s| *s != first_seq).min();
    // A tombstone matters only while a segment older than its hole remains.
    let needed = |r: &Removed| oldest_remaining.is_some_and(|o| o < r.first_seq);
    let locks: Vec<_> = store
        .catalog
        .locks()?
        .into_iter()
        .filter(|l| l.log == log && inside(l.seq) && l.lock.expires_us > now_us)
        .collect();
    let cursors: Vec<_> = store.catalog.cursors()?.into_iter().filter(|c| c.0 == log && inside(c.3)).collect();
    let mut tombstones = Vec::new();
    for (l, seq, r) in store.catalog.removed()? {
        if l != log {
            continue;
        }
        if !needed(&r) {
            store.catalog.forget_removed(log, r.first_seq)?;
        } else if inside(seq) {
            tombstones.push(r);
        }
    }
    let own = Removed {
        first_seq,
        end_seq: first_seq.saturating_add(records),
        prev_digest: seg.prev_digest,
        digest: seg.digest,
    };
    if needed(&own) {
        tombstones.push(own);
    }
    let mut n = 0;
    for l in locks {
        let seq = store.append_to(log, &Record::EvidenceLock(l.lock.clone()))?;
        store.catalog.move_lock(l.lock.id, seq)?;
        n += 1;
    }
    for (_, name, value, _) in cursors {
        let seq = store.append_to(log, &Record::Cursor { name: name.clone(), value })?;
        store.catalog.put_cursor(log, &name, value, seq)?;
        n += 1;
    }
    for r in tombstones {
        let seq = store.append_to(log, &Record::Removed(r))?;
        store.catalog.put_removed(log, seq, &r)?;
        n += 1;
    }
    if n > 0 {
        store.sync()?;
    }
    Ok(n)
}
