//! The writer side of the store: open with tail recovery, append, group commit, roll over.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::StoreError;
use crate::record::{self, Record};
use crate::segment::{self, SEGMENT_HEADER_LEN, SegmentReader};

/// How a store writes.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// A segment is closed and a new one started when the next record would pass this size.
    pub segment_bytes: u64,
    /// The durability window: a record is on stable storage at most this long after
    /// [`Store::append`] returned, provided the caller drives [`Store::sync_if_due`].
    pub fsync_interval: Duration,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            segment_bytes: 64 * 1024 * 1024,
            fsync_interval: Duration::from_secs(1),
        }
    }
}

/// What opening the store found and repaired.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recovery {
    /// Segments in the store after recovery.
    pub segments: usize,
    /// Records found in the tail segment that was scanned.
    pub tail_records: u64,
    /// Bytes cut from the tail because they did not form valid records.
    pub dropped_tail_bytes: u64,
    /// Segments set aside (renamed `*.corrupt`) or removed because their header was bad.
    pub dropped_segments: Vec<PathBuf>,
    /// The sequence number the next record gets.
    pub next_seq: u64,
}

/// An open store: one writer, appending to the newest segment.
pub struct Store {
    dir: PathBuf,
    opts: StoreOptions,
    file: File,
    file_path: PathBuf,
    seg_len: u64,
    next_seq: u64,
    /// When the oldest record not yet synced was written.
    dirty_since: Option<Instant>,
    /// A segment was created or removed since the directory was last synced.
    dir_dirty: bool,
}

impl Store {
    /// Opens (creating if needed) the store in `dir`, recovering the tail of the newest
    /// segment: records after the first invalid one are cut off and reported.
    pub fn open(dir: &Path, opts: StoreOptions) -> Result<(Store, Recovery), StoreError> {
        std::fs::create_dir_all(dir).map_err(StoreError::io("create", dir))?;
        let mut recovery = Recovery::default();
        let mut segments = segment::list_segments(dir)?;
        let mut dir_dirty = false;
        let mut tail = None;
        while let Some((first_seq, path)) = segments.pop() {
            match scan_tail(&path, first_seq)? {
                TailScan::Valid {
                    records,
                    valid_len,
                    file_len,
                } => {
                    if valid_len < file_len {
                        let f = OpenOptions::new()
                            .write(true)
                            .open(&path)
                            .map_err(StoreError::io("open", &path))?;
                        f.set_len(valid_len)
                            .map_err(StoreError::io("truncate", &path))?;
                        f.sync_all().map_err(StoreError::io("sync", &path))?;
                        recovery.dropped_tail_bytes += file_len - valid_len;
                    }
                    recovery.tail_records = records;
                    recovery.next_seq = first_seq + records;
                    tail = Some((path, valid_len));
                    break;
                }
                TailScan::BadHeader { file_len } => {
                    // A segment whose creation was torn holds at most a partial header: remove
                    // it. Anything larger is kept aside for inspection, never deleted.
                    if file_len <= SEGMENT_HEADER_LEN {
                        std::fs::remove_file(&path).map_err(StoreError::io("remove", &path))?;
                    } else {
                        let aside = path.with_extension("corrupt");
                        std::fs::rename(&path, &aside).map_err(StoreError::io("rename", &path))?;
                    }
                    recovery.dropped_tail_bytes += file_len;
                    recovery.dropped_segments.push(path);
                    dir_dirty = true;
                }
            }
        }
        let (file_path, seg_len) = match tail {
            Some(t) => t,
            None => {
                let path = create_segment(dir, recovery.next_seq)?;
                dir_dirty = true;
                (path, SEGMENT_HEADER_LEN)
            }
        };
        // The segments before the tail, plus the tail itself.
        recovery.segments = segments.len() + 1;
        let file = OpenOptions::new()
            .append(true)
            .open(&file_path)
            .map_err(StoreError::io("open", &file_path))?;
        let mut store = Store {
            dir: dir.to_owned(),
            opts,
            file,
            file_path,
            seg_len,
            next_seq: recovery.next_seq,
            dirty_since: None,
            dir_dirty,
        };
        store.sync()?;
        Ok((store, recovery))
    }

    /// The store's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The sequence number the next record will get.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Appends a record and returns its sequence number. The record is durable once
    /// [`Store::sync`] has run, which [`Store::sync_if_due`] does within the window.
    pub fn append(&mut self, record: &Record) -> Result<u64, StoreError> {
        let seq = self.next_seq;
        let bytes = record::encode(seq, record)?;
        if self.seg_len > SEGMENT_HEADER_LEN
            && self.seg_len + bytes.len() as u64 > self.opts.segment_bytes
        {
            self.roll_over()?;
        }
        self.file
            .write_all(&bytes)
            .map_err(StoreError::io("write", &self.file_path))?;
        self.seg_len += bytes.len() as u64;
        self.next_seq += 1;
        self.dirty_since.get_or_insert_with(Instant::now);
        Ok(seq)
    }

    /// When the next group commit is due, if anything is waiting for one. Syncing starts when
    /// the oldest unsynced record is three quarters of the window old, leaving a quarter of
    /// the window for the sync itself.
    pub fn sync_due(&self) -> Option<Instant> {
        self.dirty_since
            .map(|t| t + self.opts.fsync_interval * 3 / 4)
    }

    /// Syncs if the oldest unsynced record has waited long enough; returns whether it synced.
    pub fn sync_if_due(&mut self, now: Instant) -> Result<bool, StoreError> {
        match self.sync_due() {
            Some(due) if due <= now => self.sync().map(|()| true),
            _ => Ok(false),
        }
    }

    /// Makes every appended record durable: `fdatasync` of the segment (its data and size),
    /// then `fsync` of the directory if a segment was created or removed since the last time.
    pub fn sync(&mut self) -> Result<(), StoreError> {
        if self.dirty_since.is_some() {
            self.file
                .sync_data()
                .map_err(StoreError::io("sync", &self.file_path))?;
            self.dirty_since = None;
        }
        if self.dir_dirty {
            sync_dir(&self.dir)?;
            self.dir_dirty = false;
        }
        Ok(())
    }

    fn roll_over(&mut self) -> Result<(), StoreError> {
        // The old segment must be complete on disk before the new one can be found by
        // recovery, which scans only the newest segment.
        self.file
            .sync_data()
            .map_err(StoreError::io("sync", &self.file_path))?;
        let path = create_segment(&self.dir, self.next_seq)?;
        self.file = OpenOptions::new()
            .append(true)
            .open(&path)
            .map_err(StoreError::io("open", &path))?;
        self.file_path = path;
        self.seg_len = SEGMENT_HEADER_LEN;
        self.dir_dirty = true;
        // The new segment's header is unsynced data too.
        self.dirty_since.get_or_insert_with(Instant::now);
        Ok(())
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        if let Err(e) = self.sync() {
            tracing::error!("store: final sync failed: {e}");
        }
    }
}

enum TailScan {
    Valid {
        records: u64,
        valid_len: u64,
        file_len: u64,
    },
    BadHeader {
        file_len: u64,
    },
}

/// Reads a segment to its last valid record whose sequence number follows on.
fn scan_tail(path: &Path, first_seq: u64) -> Result<TailScan, StoreError> {
    let mut reader = match SegmentReader::open(path) {
        Ok(r) => r,
        Err(StoreError::BadHeader { .. }) => {
            let file_len = std::fs::metadata(path)
                .map_err(StoreError::io("stat", path))?
                .len();
            return Ok(TailScan::BadHeader { file_len });
        }
        Err(e) => return Err(e),
    };
    let mut records = 0u64;
    let mut valid_len = reader.valid_len();
    while let Some((seq, _)) = reader.next_record()? {
        if seq != first_seq + records {
            break;
        }
        records += 1;
        valid_len = reader.valid_len();
    }
    Ok(TailScan::Valid {
        records,
        valid_len,
        file_len: reader.file_len(),
    })
}

fn create_segment(dir: &Path, first_seq: u64) -> Result<PathBuf, StoreError> {
    let path = dir.join(segment::file_name(first_seq));
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
        .map_err(StoreError::io("create", &path))?;
    f.write_all(&segment::header())
        .map_err(StoreError::io("write", &path))?;
    Ok(path)
}

fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(StoreError::io("sync directory", dir))
}
