//! Checking a store offline: every record's checksum and sequence, every sealed segment's
//! digest chain and signature, the catalog against the segments; and a summary of what each
//! camera holds, with its gaps. Read-only; safe on a store in use and on a copy.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use crate::StoreError;
use crate::catalog::Catalog;
use crate::digest::chain_digest;
use crate::index::{GAP_US, scan_segment};
use crate::record::{Removed, Seal, ThinnedSeal};
use crate::segment::{torn_bytes, trailing_garbage};
use crate::signing;
use crate::store::{catalog_path, list_logs};

/// The outcome of [`verify`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VerifyReport {
    /// Segment files checked.
    pub segments: u64,
    /// Frames found.
    pub frames: u64,
    /// Bytes of valid records in all segments.
    pub bytes: u64,
    /// Bytes of frame payload.
    pub media_bytes: u64,
    /// Per camera.
    pub cameras: BTreeMap<String, CameraSummary>,
    /// Non-zero bytes after the last valid record of unsealed tails (a torn tail that the
    /// next open cuts off; expected after a power cut, not an error).
    pub dropped_tail_bytes: u64,
    /// Inconsistencies: the store is not as it must be.
    pub errors: Vec<String>,
    /// Things worth knowing that are not errors (e.g. the catalog lags the segments).
    pub warnings: Vec<String>,
}

impl VerifyReport {
    /// True when no error was found.
    pub fn ok(&self) -> bool {
        self.errors.is_empty()
    }
}

/// What one camera's log holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CameraSummary {
    /// Frames.
    pub frames: u64,
    /// First frame time, µs since the Unix epoch.
    pub first_us: Option<i64>,
    /// Last frame time.
    pub last_us: Option<i64>,
    /// Gaps longer than [`GAP_US`] between first and last, as `(from, to)`.
    pub gaps: Vec<(i64, i64)>,
}

/// Verifies the store in `dir`. Signatures are checked with `public_key`, or with the key in
/// `keys/signing.pub` when `None`.
pub fn verify(dir: &Path, public_key: Option<[u8; 32]>) -> Result<VerifyReport, StoreError> {
    let mut report = VerifyReport::default();
    let key = match public_key {
        Some(k) => Some(k),
        None => match signing::read_public_key(&dir.join("keys/signing.pub")) {
            Ok(k) => Some(k),
            Err(e) => {
                report.errors.push(format!("cannot check signatures: {e}"));
                None
            }
        },
    };
    let catalog = match Catalog::open_read_only(&catalog_path(dir)) {
        Ok(c) => Some(c),
        Err(e) => {
            report.warnings.push(format!("no readable catalog ({e}); run `edge store reindex`"));
            None
        }
    };
    if !dir.join("logs").is_dir() {
        report.errors.push(format!("{} has no logs/ directory: not a Convoy store", dir.display()));
        return Ok(report);
    }
    for log in list_logs(dir)? {
        verify_log(dir, &log, key.as_ref(), catalog.as_ref(), &mut report)?;
    }
    Ok(report)
}

fn verify_log(
    dir: &Path,
    log: &str,
    key: Option<&[u8; 32]>,
    catalog: Option<&Catalog>,
    report: &mut VerifyReport,
) -> Result<(), StoreError> {
    let segments = crate::volumes::log_segments(dir, log)?;
    if let Ok(entries) = std::fs::read_dir(crate::store::log_dir(dir, log)) {
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "corrupt") {
                report.errors.push(format!(
                    "{}: a segment recovery set aside (unreadable header); its records are lost",
                    path.display()
                ));
            }
        }
    }
    // First pass: scan every segment (and collect the tombstones of removed ones).
    let mut scans = Vec::with_capacity(segments.len());
    let mut tombstones: HashMap<u64, Removed> = HashMap::new();
    for (first_seq, path) in &segments {
        let scan = match scan_segment(path, *first_seq) {
            Ok(s) => Some(s),
            Err(StoreError::BadHeader { .. }) => None,
            Err(e) => return Err(e),
        };
        if let Some(s) = &scan {
            tombstones.extend(s.index.removed.iter().map(|(_, r)| (r.first_seq, *r)));
        }
        scans.push(scan);
    }
    let catalog_rows = match catalog {
        Some(c) => c.segments(log).unwrap_or_default(),
        None => Vec::new(),
    };
    let mut runs: Vec<(i64, i64)> = Vec::new();
    let mut frames = 0;
    let mut expected_seq: Option<u64> = None;
    let mut prev_digest: Option<[u8; 32]> = None;
    for (i, ((first_seq, path), scan)) in segments.iter().zip(scans).enumerate() {
        let name = path.display().to_string();
        let is_newest = i + 1 == segments.len();
        report.segments += 1;
        let Some(scan) = scan else {
            report.errors.push(format!("{name}: bad segment header"));
            prev_digest = None;
            expected_seq = None;
            continue;
        };
        // A hole in the sequence must be exactly the segments retention removed.
        if let Some(mut expected) = expected_seq {
            while expected < *first_seq {
                let Some(t) = tombstones.get(&expected) else {
                    break;
                };
                if prev_digest.is_some_and(|p| p != t.prev_digest) {
                    report.errors.push(format!("{name}: a removal record does not continue the digest chain"));
                }
                prev_digest = Some(t.digest);
                expected = t.end_seq;
            }
            if *first_seq != expected {
                report.errors.push(format!(
                    "{name}: starts at sequence {first_seq}, expected {expected} (a segment is missing)"
                ));
                prev_digest = None;
            }
        }
        expected_seq = Some(scan.index.next_seq());
        report.bytes += scan.index.len;
        report.frames += scan.index.frames;
        report.media_bytes += scan.index.media_bytes;
        frames += scan.index.frames;
        for run in &scan.index.runs {
            match runs.last_mut() {
                Some(last) if run.0 >= last.1 && run.0.saturating_sub(last.1) <= GAP_US => last.1 = last.1.max(run.1),
                _ => runs.push(*run),
            }
        }
        match &scan.index.seal {
            Some(seal) => {
                let seal_seq = scan.index.next_seq() - 1;
                match &scan.index.thinned {
                    // A thinned archive copy: the original seal still links the chain and its
                    // signature still verifies; the thinned bytes have a seal of their own.
                    Some(t) => {
                        check_seal(
                            log,
                            *first_seq,
                            seal_seq,
                            seal,
                            &seal.content_hash,
                            prev_digest,
                            key,
                            report,
                            &name,
                        );
                        if t.content_hash != scan.content_hash {
                            report.errors.push(format!("{name}: thinned copy altered after archiving"));
                        }
                        let message = ThinnedSeal::signed_message(log, *first_seq, &seal.digest, &t.content_hash);
                        if key.is_some_and(|k| !signing::verify(k, &message, &t.signature)) {
                            report.errors.push(format!("{name}: thinned copy's signature does not verify"));
                        }
                    }
                    None => {
                        check_seal(log, *first_seq, seal_seq, seal, &scan.content_hash, prev_digest, key, report, &name)
                    }
                }
                // A recycled file sealed but not yet cut holds stale records after its seal.
                if scan.file_len > scan.index.len && !scan.recycled {
                    let garbage = trailing_garbage(path, scan.index.len)?;
                    if garbage > 0 {
                        report.errors.push(format!("{name}: {garbage} bytes after the seal"));
                    }
                }
                match catalog_rows.iter().find(|r| r.first_seq == *first_seq) {
                    Some(row) if row.digest != seal.digest => {
                        report.errors.push(format!("{name}: the catalog has another digest; run `edge store reindex`"))
                    }
                    Some(_) => {}
                    None if catalog.is_some() => report.warnings.push(format!(
                        "{name}: sealed but not in the catalog yet (indexed at the next open or reindex)"
                    )),
                    None => {}
                }
                prev_digest = Some(seal.digest);
            }
            None => {
                if !is_newest {
                    report.errors.push(format!("{name}: not sealed, yet a newer segment follows it"));
                }
                if scan.stopped_at_invalid {
                    report.dropped_tail_bytes += torn_bytes(path, scan.index.len, scan.recycled.then_some(*first_seq))?;
                }
            }
        }
    }
    for row in &catalog_rows {
        if !segments.iter().any(|(s, _)| *s == row.first_seq) {
            report
                .warnings
                .push(format!("catalog lists {log}/{} whose file is gone (fixed at the next open)", row.first_seq));
        }
    }
    let gaps = runs.windows(2).map(|w| (w[0].1, w[1].0)).collect();
    report.cameras.insert(
        log.to_owned(),
        CameraSummary { frames, first_us: runs.first().map(|r| r.0), last_us: runs.last().map(|r| r.1), gaps },
    );
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn check_seal(
    log: &str,
    first_seq: u64,
    seal_seq: u64,
    seal: &Seal,
    content_hash: &[u8; 32],
    prev_digest: Option<[u8; 32]>,
    key: Option<&[u8; 32]>,
    report: &mut VerifyReport,
    name: &str,
) {
    if seal.content_hash != *content_hash {
        report.errors.push(format!("{name}: content does not match its seal (altered after sealing)"));
    }
    let digest = chain_digest(&seal.prev_digest, &seal.content_hash);
    if digest != seal.digest {
        report.errors.push(format!("{name}: seal digest is wrong"));
    }
    if let Some(prev) = prev_digest
        && prev != seal.prev_digest
    {
        report.errors.push(format!("{name}: digest chain broken (previous segment replaced or altered)"));
    }
    if let Some(key) = key {
        let message = Seal::signed_message(log, first_seq, seal_seq, &seal.digest);
        if !signing::verify(key, &message, &seal.signature) {
            report.errors.push(format!("{name}: signature does not verify with the unit's key"));
        }
    }
}
