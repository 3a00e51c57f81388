//! The store: one log per camera under `logs/`, the catalog, the signing key, group commit
//! across logs, evidence locks and retention.
//!
//! Layout of a store directory:
//! - `logs/<camera>/{first_seq:020}.seg` — the segments (see `segment.rs`), the truth.
//! - `catalog.db` — the SQLite index, rebuildable from the segments (`Store::reindex`).
//! - `keys/signing.pk8`, `keys/signing.pub` — the unit's key that signs sealed segments.
//! - `.lock` — held (flock) by the one process writing the store.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::StoreError;
use crate::archive::{ArchiveOptions, ArchiveReport};
use crate::catalog::Catalog;
use crate::crypto::MediaKey;
use crate::index::{SegmentIndex, scan_segment};
use crate::log::{LogWriter, dir_name, sync_dir};
use crate::record::{EvidenceLock, Record};
use crate::retention::{GroomReport, Retention};
use crate::segment;
use crate::signing::Signer;

/// How a store writes.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// A segment is sealed and a new one started when the next record would not fit.
    pub segment_bytes: u64,
    /// The durability window: a record is on stable storage at most this long after
    /// [`Store::append`] returned, provided the caller drives [`Store::sync_if_due`].
    pub fsync_interval: Duration,
    /// What to delete when.
    pub retention: Retention,
    /// Encrypt media payloads of new segments with this key (None: plain).
    pub encryption_key: Option<MediaKey>,
    /// Move old sealed segments to a second volume.
    pub archive: Option<ArchiveOptions>,
    /// Group commit with one `syncfs` of the store's file system instead of an `fdatasync`
    /// per camera: one journal commit per window instead of one per camera. Only for a file
    /// system the store has to itself: `syncfs` also waits for every other writer's data
    /// there, which can stretch a sync past the durability window. Default off.
    pub sync_whole_filesystem: bool,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            segment_bytes: 64 * 1024 * 1024,
            fsync_interval: Duration::from_secs(1),
            retention: Retention::default(),
            encryption_key: None,
            archive: None,
            sync_whole_filesystem: false,
        }
    }
}

/// What opening the store found and repaired.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recovery {
    /// Logs (cameras) in the store.
    pub logs: usize,
    /// Records found in the logs' unsealed tail segments.
    pub tail_records: u64,
    /// Non-zero bytes cut from tails because they did not form valid records.
    pub dropped_tail_bytes: u64,
    /// Tail segments removed (torn creation) or set aside as `*.corrupt`.
    pub dropped_segments: Vec<PathBuf>,
    /// Sealed segments the catalog lacked and that were indexed now.
    pub indexed_segments: usize,
    /// Catalog entries whose segment file was gone, removed now.
    pub stale_catalog_entries: usize,
    /// Moves to the archive that a crash cut short, finished now.
    pub finished_archive_moves: usize,
}

/// An open store: the single writer.
pub struct Store {
    dir: PathBuf,
    opts: StoreOptions,
    pub(crate) catalog: Catalog,
    signer: Signer,
    pub(crate) logs: BTreeMap<String, LogWriter>,
    dirty_since: Option<Instant>,
    logs_dir_dirty: bool,
    /// The store directory, open for `syncfs`.
    dir_handle: File,
    _lock: File,
}

/// The directory holding the logs.
pub fn logs_dir(store: &Path) -> PathBuf {
    store.join("logs")
}

/// A log's directory.
pub fn log_dir(store: &Path, log: &str) -> PathBuf {
    logs_dir(store).join(dir_name(log))
}

/// The catalog's path.
pub fn catalog_path(store: &Path) -> PathBuf {
    store.join("catalog.db")
}

/// The logs in a store directory (both volumes), by name.
pub fn list_logs(store: &Path) -> Result<Vec<String>, StoreError> {
    crate::volumes::list_logs(store)
}

impl Store {
    /// Opens (creating if needed) the store in `dir` for writing: takes the store's lock,
    /// brings the catalog in line with the segments, and recovers each log's tail.
    pub fn open(dir: &Path, opts: StoreOptions) -> Result<(Store, Recovery), StoreError> {
        std::fs::create_dir_all(logs_dir(dir)).map_err(StoreError::io("create", dir))?;
        let lock = take_lock(dir)?;
        if let Some(archive) = &opts.archive {
            let logs = archive.path.join("logs");
            std::fs::create_dir_all(&logs).map_err(StoreError::io("create", &logs))?;
            crate::volumes::set_archive_dir(dir, Some(&archive.path))?;
        }
        let mut catalog = Catalog::open(&catalog_path(dir))?;
        let signer = Signer::load_or_create(&dir.join("keys"))?;
        let mut recovery = Recovery::default();
        let mut logs = BTreeMap::new();
        for name in list_logs(dir)? {
            let writer = open_log(dir, &name, &opts, &mut catalog, &mut recovery)?;
            logs.insert(name, writer);
        }
        recovery.logs = logs.len();
        let store = Store {
            dir: dir.to_owned(),
            opts,
            catalog,
            signer,
            logs,
            dirty_since: None,
            logs_dir_dirty: true,
            dir_handle: File::open(dir).map_err(StoreError::io("open", dir))?,
            _lock: lock,
        };
        Ok((store, recovery))
    }

    /// Rebuilds the catalog from the segments alone (the store must not be open elsewhere).
    /// `key` is needed only to recover the tail of an encrypted store.
    pub fn reindex(dir: &Path, key: Option<MediaKey>) -> Result<Recovery, StoreError> {
        {
            let _lock = take_lock(dir)?;
            Catalog::open(&catalog_path(dir))?.clear()?;
        }
        let (_, recovery) = Store::open(dir, StoreOptions { encryption_key: key, ..StoreOptions::default() })?;
        Ok(recovery)
    }

    /// The store's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The sequence number the next record of `log` gets (`None`: no such log yet).
    pub fn next_seq(&self, log: &str) -> Option<u64> {
        self.logs.get(log).map(|w| w.next_seq())
    }

    /// Every log as made durable by the last sync (call right after [`Store::sync`]): where
    /// readers by sequence number stop ([`crate::by_seq`]).
    pub fn durable_logs(&self) -> Vec<crate::by_seq::DurableLog> {
        self.logs
            .iter()
            .map(|(name, w)| crate::by_seq::DurableLog {
                log: name.clone(),
                end: w.next_seq(),
                tail: w.tail_path().map(Path::to_owned).zip(w.tail_index().cloned()),
            })
            .collect()
    }

    /// The index of `log`'s unsealed tail segment, if it has one.
    pub fn tail_index(&self, log: &str) -> Option<&crate::index::SegmentIndex> {
        self.logs.get(log).and_then(|w| w.tail_index())
    }

    /// The key new segments are encrypted with, if the store encrypts.
    pub(crate) fn encryption_key(&self) -> Option<crate::crypto::MediaKey> {
        self.opts.encryption_key.clone()
    }

    /// The unit's public signing key.
    pub fn public_key(&self) -> [u8; 32] {
        self.signer.public_key()
    }

    /// Appends a parameters, frame or cursor record to its camera's log and returns its
    /// sequence number in that log. Durable once [`Store::sync`] ran (see `sync_if_due`).
    pub fn append(&mut self, record: &Record) -> Result<u64, StoreError> {
        let camera = record.camera().ok_or(StoreError::NotAppendable)?;
        self.append_to(camera, record)
    }

    /// Appends like [`Store::append`] a record whose bytes arrived at `arrived`, before now
    /// (they waited in a socket or a queue): the durability window counts from then, so the
    /// group commit comes no later for the wait.
    pub fn append_arrived(&mut self, record: &Record, arrived: Instant) -> Result<u64, StoreError> {
        let seq = self.append(record)?;
        self.dirty_since = self.dirty_since.map(|t| t.min(arrived));
        Ok(seq)
    }

    pub(crate) fn append_to(&mut self, log: &str, record: &Record) -> Result<u64, StoreError> {
        if log.is_empty() {
            return Err(StoreError::NotAppendable);
        }
        if !self.logs.contains_key(log) {
            let dir = log_dir(&self.dir, log);
            let key = self.opts.encryption_key.clone();
            let (writer, _, _) = LogWriter::open(log, &dir, self.opts.segment_bytes, ([0; 32], 0), key)?;
            self.logs.insert(log.to_owned(), writer);
            self.logs_dir_dirty = true;
        }
        let writer = self.logs.get_mut(log).expect("inserted above");
        let (seq, sealed) = writer.append(record, &self.signer)?;
        self.dirty_since.get_or_insert_with(Instant::now);
        if let Some(index) = sealed {
            self.catalog.insert_segment(log, &index)?;
        }
        Ok(seq)
    }

    /// Locks `camera`'s frames between `start_us` and `end_us` against retention until
    /// `expires_us`. Durable when this returns. Returns the lock's id.
    pub fn lock(
        &mut self,
        camera: &str,
        start_us: i64,
        end_us: i64,
        expires_us: i64,
        reason: &str,
    ) -> Result<u64, StoreError> {
        let id = self.catalog.next_lock_id()?;
        let lock =
            EvidenceLock { id, camera: camera.to_owned(), start_us, end_us, expires_us, reason: reason.to_owned() };
        let seq = self.append_to(camera, &Record::EvidenceLock(lock.clone()))?;
        self.sync()?;
        self.catalog.put_lock(camera, seq, &lock)?;
        Ok(id)
    }

    /// Sets a named cursor in `camera`'s log (e.g. what central acknowledged). Durable with
    /// the next group commit.
    pub fn set_cursor(&mut self, camera: &str, name: &str, value: u64) -> Result<(), StoreError> {
        let seq = self.append_to(camera, &Record::Cursor { name: name.to_owned(), value })?;
        self.catalog.put_cursor(camera, name, value, seq)?;
        Ok(())
    }

    /// The durability window the store was opened with (`StoreOptions::fsync_interval`).
    pub fn fsync_interval(&self) -> Duration {
        self.opts.fsync_interval
    }

    /// When the next group commit is due, if anything is waiting for one. Syncing starts when
    /// the oldest unsynced record is three quarters of the window old, leaving a quarter of
    /// the window for the sync itself.
    pub fn sync_due(&self) -> Option<Instant> {
        self.dirty_since.map(|t| t + self.opts.fsync_interval * 3 / 4)
    }

    /// Syncs if the oldest unsynced record has waited long enough; returns whether it synced.
    pub fn sync_if_due(&mut self, now: Instant) -> Result<bool, StoreError> {
        match self.sync_due() {
            Some(due) if due <= now => self.sync().map(|()| true),
            _ => Ok(false),
        }
    }

    /// Makes every appended record durable: `fdatasync` of each log's open segment, then
    /// `fsync` of directories in which segments were created or removed.
    pub fn sync(&mut self) -> Result<(), StoreError> {
        let dirty = self.logs.values().filter(|w| w.is_dirty()).count();
        if self.opts.sync_whole_filesystem && dirty > 1 {
            // One `syncfs` makes every log's data, their inodes and directories durable in a
            // single journal commit, where an `fdatasync` per log would commit once each.
            rustix::fs::syncfs(&self.dir_handle).map_err(|e| StoreError::io("syncfs", &self.dir)(e.into()))?;
            self.logs.values_mut().for_each(LogWriter::synced);
        } else {
            if dirty > 1 {
                // One journal commit for every log's extent changes (see `writeback`).
                self.logs.values().for_each(LogWriter::start_writeback);
                self.logs.values().for_each(LogWriter::wait_writeback);
            }
            for writer in self.logs.values_mut() {
                writer.sync()?;
            }
            if self.logs_dir_dirty {
                sync_dir(&logs_dir(&self.dir))?;
            }
        }
        self.logs_dir_dirty = false;
        self.dirty_since = None;
        Ok(())
    }

    /// Seals every open segment (e.g. on a power-loss warning, or before copying the store).
    pub fn seal_all(&mut self) -> Result<(), StoreError> {
        let names: Vec<String> = self.logs.keys().cloned().collect();
        for name in names {
            let writer = self.logs.get_mut(&name).expect("listed");
            if writer.tail_index().is_some_and(|t| t.records > 0) {
                let index = writer.seal(&self.signer)?;
                self.catalog.insert_segment(&name, &index)?;
            }
        }
        self.sync()
    }

    /// Archives what is old enough, then applies the retention rules (`now_us`: µs since
    /// the Unix epoch).
    pub fn groom(&mut self, now_us: i64) -> Result<GroomReport, StoreError> {
        let mut archived = ArchiveReport::default();
        if let Some(archive) = self.opts.archive.clone() {
            archived = crate::archive::archive_pass(self, &archive, now_us)?;
        }
        let mut report = crate::retention::groom(self, now_us)?;
        report.archived = archived;
        Ok(report)
    }

    pub(crate) fn signer(&self) -> &Signer {
        &self.signer
    }

    pub(crate) fn archive_options(&self) -> Option<&ArchiveOptions> {
        self.opts.archive.as_ref()
    }

    /// The retention rules the store was opened with.
    pub fn retention(&self) -> &Retention {
        &self.opts.retention
    }

    pub(crate) fn segment_bytes(&self) -> u64 {
        self.opts.segment_bytes
    }

    /// Bytes the store's segments take on the primary volume.
    pub fn total_bytes(&self) -> Result<u64, StoreError> {
        let sealed: u64 = self
            .catalog
            .all_segments()?
            .iter()
            .filter(|s| log_dir(&self.dir, &s.log).join(segment::file_name(s.first_seq)).exists())
            .map(|s| s.len)
            .sum();
        let open: u64 = self.logs.values().filter_map(|w| w.tail_index()).map(|t| t.len).sum();
        Ok(sealed + open)
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        if let Err(e) = self.sync() {
            tracing::error!("store: final sync failed: {e}");
        }
    }
}

/// Opens one log: reconciles its sealed segments with the catalog, then recovers its tail.
fn open_log(
    dir: &Path,
    name: &str,
    opts: &StoreOptions,
    catalog: &mut Catalog,
    recovery: &mut Recovery,
) -> Result<LogWriter, StoreError> {
    let log_dir = log_dir(dir, name);
    if let Some(archive) = crate::volumes::archive_dir(dir) {
        recovery.finished_archive_moves += crate::archive::finish_interrupted(dir, &archive, name)?;
    }
    let on_disk = crate::volumes::log_segments(dir, name)?;
    let known = catalog.segments(name)?;
    for row in &known {
        if !on_disk.iter().any(|(seq, _)| *seq == row.first_seq) {
            catalog.remove_segment(name, row.first_seq)?;
            recovery.stale_catalog_entries += 1;
        }
    }
    // Every segment but the newest is sealed; index those the catalog lacks (a crash between
    // a seal and its catalog commit, or a rebuild).
    for (first_seq, path) in on_disk.iter().take(on_disk.len().saturating_sub(1)) {
        if known.iter().any(|r| r.first_seq == *first_seq) {
            continue;
        }
        let scan = scan_segment(path, *first_seq)?;
        if scan.index.seal.is_some() {
            catalog.insert_segment(name, &scan.index)?;
            recovery.indexed_segments += 1;
        } else {
            tracing::error!("{}: an older segment is not sealed; `edge store verify` will report it", path.display());
        }
    }
    // The chain continues from the newest sealed segment *before* the newest file on disk: that
    // file is the tail, and may have been sealed once and damaged since. Retention may have
    // removed that segment already: then its tombstone carries the chain.
    let tail_first = match log_dir.is_dir() {
        true => segment::list_segments(&log_dir)?.last().map(|(s, _)| *s),
        false => None,
    };
    let before_tail = |first: u64| tail_first.is_none_or(|t| first < t);
    let sealed = catalog
        .segments(name)?
        .into_iter()
        .filter(|r| before_tail(r.first_seq))
        .map(|r| (r.first_seq.saturating_add(r.records), r.digest));
    let removed = catalog
        .removed()?
        .into_iter()
        .filter(|(log, _, r)| log == name && before_tail(r.first_seq))
        .map(|(_, _, r)| (r.end_seq, r.digest));
    let newest = sealed.chain(removed).max_by_key(|(end, _)| *end).map_or(([0; 32], 0), |(end, digest)| (digest, end));
    let (writer, log_recovery, sealed_tail) =
        LogWriter::open(name, &log_dir, opts.segment_bytes, newest, opts.encryption_key.clone())?;
    if let Some(index) = sealed_tail {
        catalog.insert_segment(name, &index)?;
    }
    if let Some(index) = writer.tail_index() {
        // An unsealed tail is not in the catalog (it may have been, sealed, before damage).
        catalog.remove_segment(name, index.first_seq)?;
        catalog.note_tail(name, index)?;
    }
    recovery.tail_records += log_recovery.tail_records;
    recovery.dropped_tail_bytes += log_recovery.dropped_tail_bytes;
    recovery.dropped_segments.extend(log_recovery.dropped_segments);
    Ok(writer)
}

/// The index of a log's unsealed tail as a reader sees it (scanning it).
pub fn scan_tail(dir: &Path, log: &str) -> Result<Option<(PathBuf, SegmentIndex)>, StoreError> {
    let primary = log_dir(dir, log);
    if !primary.is_dir() {
        return Ok(None);
    }
    let Some((first_seq, path)) = segment::list_segments(&primary)?.pop() else {
        return Ok(None);
    };
    match scan_segment(&path, first_seq) {
        Ok(scan) if scan.index.seal.is_none() => Ok(Some((path, scan.index))),
        Ok(_) | Err(StoreError::BadHeader { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

fn take_lock(dir: &Path) -> Result<File, StoreError> {
    let path = dir.join(".lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(StoreError::io("open", &path))?;
    match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(file),
        Err(rustix::io::Errno::WOULDBLOCK) => Err(StoreError::Locked(dir.to_owned())),
        Err(e) => Err(StoreError::io("lock", &path)(e.into())),
    }
}
