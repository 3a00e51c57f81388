//! Recovery time vs store size: build a store, drop it without sealing its tail segments, then
//! time `Store::open` (which scans only each camera's unsealed tail) with a cold page cache.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use media_store::{Store, StoreOptions, list_logs, list_segments, log_dir, scan_tail};

use crate::measure::drop_caches;
use crate::workload::Generator;
use crate::writers::{Convoy, MediaWriter};

/// Opens timed per store; the median is reported.
pub const OPENS: usize = 3;

/// A tail this close to the segment size counts as full (a simulated second adds about
/// 0.5 MB per camera).
const FULL_TAIL_MARGIN: u64 = 3 << 19;

/// One row of the recovery table.
#[derive(Debug, Clone)]
pub struct RecoveryRow {
    /// What store.
    pub label: String,
    /// Media bytes in it.
    pub media: u64,
    /// Segment files in it.
    pub segments: usize,
    /// Bytes of records in the unsealed tails (what open scans), all cameras.
    pub tail_bytes: u64,
    /// Records open found in the tails.
    pub tail_records: u64,
    /// Each timed open after dropping the page cache.
    pub opens: Vec<Duration>,
    /// Each timed open right after another (warm cache: the cost without disk reads).
    pub warm_opens: Vec<Duration>,
    /// Whether every open started with a dropped page cache.
    pub cold: bool,
}

impl RecoveryRow {
    /// The median open time (cold, if the cache could be dropped).
    pub fn median(&self) -> Duration {
        median(&self.opens)
    }

    /// The median warm open time.
    pub fn warm_median(&self) -> Duration {
        median(&self.warm_opens)
    }
}

fn median(times: &[Duration]) -> Duration {
    let mut t = times.to_vec();
    t.sort();
    t[t.len() / 2]
}

/// Builds a store of `media` bytes in `dir` (synced every simulated second, like the append
/// benchmark) and drops it without sealing. Returns the media bytes written.
pub fn build(dir: &Path, generator: &mut Generator, media: u64) -> Result<u64> {
    let cameras = generator.workload().camera_ids();
    let mut writer = Box::new(Convoy::open(dir, &cameras, Default::default())?);
    let mut written = 0;
    while written < media {
        written += generator.next_second(|f| writer.frame(f))?;
        writer.sync()?;
    }
    writer.close()?;
    Ok(written)
}

/// Appends to the store in `dir` until every camera's tail segment is nearly full: the worst
/// case for recovery. Returns the media bytes added.
pub fn fill_tails(dir: &Path, generator: &mut Generator) -> Result<u64> {
    let cameras = generator.workload().camera_ids();
    let segment_bytes = StoreOptions::default().segment_bytes;
    let per_camera_second = generator.workload().bytes_per_second() / cameras.len() as u64;
    let mut writer = Box::new(Convoy::open(dir, &cameras, Default::default())?);
    let mut written = 0;
    for _ in 0..2 * segment_bytes / per_camera_second {
        if mean_tail_bytes(writer.store())? + FULL_TAIL_MARGIN >= segment_bytes {
            writer.close()?;
            return Ok(written);
        }
        written += generator.next_second(|f| writer.frame(f))?;
        writer.sync()?;
    }
    bail!("the tails never came within {FULL_TAIL_MARGIN} B of a full segment")
}

/// The mean bytes of the cameras' open tail segments: all bytes minus the sealed segments
/// (which are cut to their length, while tails are pre-allocated).
fn mean_tail_bytes(store: &Store) -> Result<u64> {
    let mut sealed = 0;
    let logs = list_logs(store.dir())?;
    for log in &logs {
        let segments = list_segments(&log_dir(store.dir(), log))?;
        for (_, path) in segments.iter().rev().skip(1) {
            sealed += std::fs::metadata(path)?.len();
        }
    }
    Ok((store.total_bytes()? - sealed) / logs.len().max(1) as u64)
}

/// Times [`OPENS`] opens of the store in `dir`, each after dropping the page cache, then as
/// many with the cache warm.
pub fn time_opens(dir: &Path, label: &str, media: u64) -> Result<RecoveryRow> {
    let (mut opens, mut warm_opens) = (Vec::new(), Vec::new());
    let mut cold = true;
    let mut tail_records = 0;
    for i in 0..2 * OPENS {
        if i < OPENS {
            cold &= drop_caches();
        }
        let start = Instant::now();
        let (store, recovery) = Store::open(dir, StoreOptions::default())?;
        let took = start.elapsed();
        if i < OPENS {
            opens.push(took)
        } else {
            warm_opens.push(took)
        }
        tail_records = recovery.tail_records;
        drop(store);
    }
    let (mut segments, mut tail_bytes) = (0, 0);
    for log in list_logs(dir)? {
        segments += list_segments(&log_dir(dir, &log))?.len();
        tail_bytes += scan_tail(dir, &log)?.map_or(0, |(_, index)| index.len);
    }
    Ok(RecoveryRow { label: label.to_owned(), media, segments, tail_bytes, tail_records, opens, warm_opens, cold })
}
