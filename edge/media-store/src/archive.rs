//! Multistage archiving: sealed segments older than a threshold move from the primary volume
//! to an archive volume, whole or thinned to key frames (with their codec parameters, locks,
//! cursors and tombstones). A thinned copy keeps the original sequence numbers and ends with a
//! [`ThinnedSeal`]: the original seal keeps the digest chain whole, and a new signature covers
//! the thinned bytes.
//!
//! A move is crash-safe: the copy is written under a temporary name, synced, renamed and its
//! directory synced; then the catalog points at it; only then is the primary copy removed.
//! A segment found in both volumes at open is finished (primary copy removed); stray
//! temporaries are deleted.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::StoreError;
use crate::digest::{content_hash, content_hasher};
use crate::index::scan_segment;
use crate::log::sync_dir;
use crate::record::{self, MediaKind, Record, ThinnedSeal};
use crate::segment::{self, SegmentReader};
use crate::signing::Signer;
use crate::store::Store;
use crate::volumes::volume_log_dir;

/// Where and when to archive.
#[derive(Debug, Clone)]
pub struct ArchiveOptions {
    /// The archive volume's directory.
    pub path: PathBuf,
    /// Sealed segments whose newest frame is older than this move to the archive.
    pub after: Duration,
    /// Keep only key frames in the archive (about a tenth of the size at a one-second GOP).
    pub keyframes_only: bool,
    /// The most bytes the archive may take; its oldest unlocked segments go first.
    pub max_bytes: Option<u64>,
}

/// What an archiving pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ArchiveReport {
    /// Segments moved.
    pub segments: usize,
    /// Bytes they took on the primary.
    pub bytes_moved: u64,
    /// Bytes they take in the archive.
    pub bytes_archived: u64,
}

pub(crate) fn archive_pass(store: &mut Store, opts: &ArchiveOptions, now_us: i64) -> Result<ArchiveReport, StoreError> {
    let mut report = ArchiveReport::default();
    let cutoff = now_us - opts.after.as_micros() as i64;
    for seg in store.catalog.all_segments()? {
        let Some((_, end)) = seg.time_range else { continue };
        if end >= cutoff {
            continue;
        }
        let primary = volume_log_dir(store.dir(), &seg.log).join(segment::file_name(seg.first_seq));
        if !primary.exists() {
            continue; // already archived
        }
        let target_dir = volume_log_dir(&opts.path, &seg.log);
        let archived =
            move_segment(&primary, &target_dir, &seg.log, seg.first_seq, opts.keyframes_only, store.signer())?;
        let scan = scan_segment(&archived, seg.first_seq)?;
        store.catalog.insert_segment(&seg.log, &scan.index)?;
        std::fs::remove_file(&primary).map_err(StoreError::io("remove", &primary))?;
        if let Some(dir) = primary.parent() {
            sync_dir(dir)?;
        }
        report.segments += 1;
        report.bytes_moved += seg.len;
        report.bytes_archived += scan.index.len;
    }
    if report.segments > 0 {
        tracing::info!(?report, "archived");
    }
    Ok(report)
}

/// Copies (or thins) a sealed segment into `target_dir` durably; returns the new file.
fn move_segment(
    src: &Path,
    target_dir: &Path,
    log: &str,
    first_seq: u64,
    keyframes_only: bool,
    signer: &Signer,
) -> Result<PathBuf, StoreError> {
    std::fs::create_dir_all(target_dir).map_err(StoreError::io("create", target_dir))?;
    let dst = target_dir.join(segment::file_name(first_seq));
    let tmp = dst.with_extension("tmp");
    let mut out = File::create(&tmp).map_err(StoreError::io("create", &tmp))?;
    if keyframes_only {
        write_thinned(src, &mut out, &tmp, log, first_seq, signer)?;
    } else {
        let mut input = File::open(src).map_err(StoreError::io("open", src))?;
        std::io::copy(&mut input, &mut out).map_err(StoreError::io("copy to", &tmp))?;
    }
    out.sync_all().map_err(StoreError::io("sync", &tmp))?;
    drop(out);
    std::fs::rename(&tmp, &dst).map_err(StoreError::io("rename", &tmp))?;
    sync_dir(target_dir)?;
    if let Some(parent) = target_dir.parent() {
        sync_dir(parent)?;
    }
    Ok(dst)
}

/// Writes the key frames (and every record that is not a delta frame) of `src`, byte for
/// byte, then a [`ThinnedSeal`].
fn write_thinned(
    src: &Path,
    out: &mut File,
    tmp: &Path,
    log: &str,
    first_seq: u64,
    signer: &Signer,
) -> Result<(), StoreError> {
    let mut reader = SegmentReader::open(src)?;
    let header = segment::header_with(reader.salt(), true);
    let mut hasher = content_hasher();
    let mut put = |bytes: &[u8], hasher: &mut blake3::Hasher| -> Result<(), StoreError> {
        hasher.update(bytes);
        out.write_all(bytes).map_err(StoreError::io("write", tmp))
    };
    put(&header, &mut hasher)?;
    while let Some((seq, record)) = reader.next_record()? {
        match record {
            // Thinned to video key frames: audio and metadata go too.
            Record::Frame(f) if !f.keyframe || f.kind != MediaKind::Video => {}
            Record::Seal(original) => {
                let content_hash = content_hash(&hasher);
                let message = ThinnedSeal::signed_message(log, first_seq, &original.digest, &content_hash);
                let seal = ThinnedSeal { original, content_hash, signature: signer.sign(&message) };
                let bytes = record::encode(seq, &Record::ThinnedSeal(seal))?;
                return put(&bytes, &mut hasher);
            }
            _ => put(reader.last_record_bytes(), &mut hasher)?,
        }
    }
    Err(StoreError::NotSealed(src.to_owned()))
}

/// At open: finishes moves cut short (a segment in both volumes loses its primary copy) and
/// deletes temporaries. Returns the number of moves finished.
pub(crate) fn finish_interrupted(store_dir: &Path, archive: &Path, log: &str) -> Result<usize, StoreError> {
    let dir = volume_log_dir(archive, log);
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(StoreError::io("list", &dir)(e)),
    };
    let mut finished = 0;
    for entry in entries {
        let path = entry.map_err(StoreError::io("list", &dir))?.path();
        if path.extension().is_some_and(|e| e == "tmp") {
            std::fs::remove_file(&path).map_err(StoreError::io("remove", &path))?;
            continue;
        }
        let Some(name) = path.file_name() else { continue };
        let primary = volume_log_dir(store_dir, log).join(name);
        if primary.exists() {
            std::fs::remove_file(&primary).map_err(StoreError::io("remove", &primary))?;
            finished += 1;
        }
    }
    if finished > 0 {
        sync_dir(&volume_log_dir(store_dir, log))?;
    }
    Ok(finished)
}
