//! What a segment holds, summarised for the catalog: its sequence range, time range, the
//! continuous runs of frames, key-frame positions for seeking, locks, cursors and its seal.
//! Built incrementally while writing, or by scanning a segment (which is how the catalog is
//! rebuilt from the segments alone).

use std::path::Path;

use crate::StoreError;
use crate::crypto::MediaKey;
use crate::record::{
    EvidenceLock, MediaKind, Record, Removed, Seal, StoredAudioParameters, StoredParameters, ThinnedSeal,
};
use crate::segment::SegmentReader;

/// Consecutive frames further apart than this (wall clock) start a new run: a gap.
pub const GAP_US: i64 = 2_000_000;

/// A key frame's position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyFrame {
    /// Receive time, µs since the Unix epoch.
    pub wall_us: i64,
    /// The frame record's sequence number.
    pub seq: u64,
    /// Where its record starts in the segment.
    pub offset: u64,
    /// Where the codec parameters record that applies to it starts in the same segment
    /// (0: none in this segment).
    pub parameters_offset: u64,
}

/// The summary of one segment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SegmentIndex {
    /// Sequence number of the first record (also in the file name).
    pub first_seq: u64,
    /// The sequence number after the last record.
    pub end_seq: u64,
    /// Records in the segment.
    pub records: u64,
    /// Bytes of the segment that hold records (header included).
    pub len: u64,
    /// Frame records.
    pub frames: u64,
    /// Bytes of frame payload.
    pub media_bytes: u64,
    /// Continuous runs of frames as `(first wall_us, last wall_us)`.
    pub runs: Vec<(i64, i64)>,
    /// Key frames, in order.
    pub keyframes: Vec<KeyFrame>,
    /// Evidence locks recorded here, with their sequence numbers.
    pub locks: Vec<(u64, EvidenceLock)>,
    /// Cursors recorded here (the last value of each name), with sequence numbers.
    pub cursors: Vec<(u64, String, u64)>,
    /// Tombstones of removed segments recorded here, with their sequence numbers.
    pub removed: Vec<(u64, Removed)>,
    /// The seal, if the segment is sealed (for a thinned copy, the original's).
    pub seal: Option<Seal>,
    /// For a thinned archive copy: its own seal.
    pub thinned: Option<ThinnedSeal>,
    /// The last codec parameters recorded here (not in the catalog).
    pub last_parameters: Option<StoredParameters>,
    last_parameters_offset: u64,
    /// The last audio codec parameters recorded here (not in the catalog).
    pub last_audio_parameters: Option<StoredAudioParameters>,
}

impl SegmentIndex {
    /// An empty index of a segment starting at `first_seq` whose records begin at
    /// `data_start` (after the header and any salt).
    pub fn new(first_seq: u64, data_start: u64) -> SegmentIndex {
        SegmentIndex { first_seq, end_seq: first_seq, len: data_start, ..Default::default() }
    }

    /// The sequence number the next record gets.
    pub fn next_seq(&self) -> u64 {
        self.end_seq
    }

    /// First and last frame time, if any frame.
    pub fn time_range(&self) -> Option<(i64, i64)> {
        Some((self.runs.first()?.0, self.runs.last()?.1))
    }

    /// Accounts for `record` with `seq`, written at `offset` and `len` bytes long.
    pub fn observe(&mut self, seq: u64, offset: u64, len: u64, record: &Record) {
        debug_assert!(seq >= self.next_seq());
        self.records += 1;
        self.end_seq = seq.saturating_add(1);
        self.len = offset + len;
        match record {
            Record::Parameters(p) => {
                self.last_parameters_offset = offset;
                self.last_parameters = Some(p.clone());
            }
            Record::AudioParameters(p) => self.last_audio_parameters = Some(p.clone()),
            Record::Frame(f) => {
                self.frames += 1;
                self.media_bytes += f.data.len() as u64;
                match self.runs.last_mut() {
                    Some(run) if f.wall_clock_us >= run.1 && f.wall_clock_us.saturating_sub(run.1) <= GAP_US => {
                        run.1 = f.wall_clock_us
                    }
                    _ => self.runs.push((f.wall_clock_us, f.wall_clock_us)),
                }
                // Reads start at video key frames; every audio frame is one.
                if f.keyframe && f.kind == MediaKind::Video {
                    self.keyframes.push(KeyFrame {
                        wall_us: f.wall_clock_us,
                        seq,
                        offset,
                        parameters_offset: self.last_parameters_offset,
                    });
                }
            }
            Record::Seal(s) => self.seal = Some(s.clone()),
            Record::ThinnedSeal(t) => {
                self.seal = Some(t.original.clone());
                self.thinned = Some(t.clone());
            }
            Record::Removed(r) => self.removed.push((seq, *r)),
            Record::EvidenceLock(l) => self.locks.push((seq, l.clone())),
            Record::Cursor { name, value, .. } => {
                self.cursors.retain(|(_, n, _)| n != name);
                self.cursors.push((seq, name.clone(), *value));
            }
        }
    }
}

/// The outcome of scanning a segment file.
#[derive(Debug)]
pub struct Scan {
    /// What the valid records hold.
    pub index: SegmentIndex,
    /// The file's length on disk (pre-allocated segments are longer than `index.len`).
    pub file_len: u64,
    /// Whether reading stopped at bytes that are not a valid next record.
    pub stopped_at_invalid: bool,
    /// BLAKE3 of the segment's bytes before its seal record (or of all valid bytes, unsealed).
    pub content_hash: [u8; 32],
    /// The running hash after the valid records, to go on appending (unsealed segments).
    pub hasher: Option<crate::digest::ContentHasher>,
    /// The salt of an encrypted segment.
    pub salt: Option<[u8; 16]>,
    /// Whether the file held an older segment (stale records may follow the valid ones).
    pub recycled: bool,
}

/// Scans a segment whose first record has `first_seq`, stopping at the first record that is
/// invalid or out of sequence, or after its seal.
pub fn scan_segment(path: &Path, first_seq: u64) -> Result<Scan, StoreError> {
    scan_segment_with_key(path, first_seq, None)
}

/// [`scan_segment`], decrypting the payloads of an encrypted segment with `key`.
pub fn scan_segment_with_key(path: &Path, first_seq: u64, key: Option<MediaKey>) -> Result<Scan, StoreError> {
    let mut reader = SegmentReader::open(path)?.with_key(key).hashing();
    let mut index = SegmentIndex::new(first_seq, reader.data_start());
    let mut out_of_sequence = false;
    loop {
        let offset = reader.offset();
        let Some((seq, record)) = reader.next_record()? else {
            break;
        };
        // A thinned copy keeps the original sequence numbers of the records it kept.
        let in_sequence = if reader.thinned() { seq >= index.next_seq() } else { seq == index.next_seq() };
        if !in_sequence {
            out_of_sequence = true;
            break;
        }
        index.observe(seq, offset, reader.offset() - offset, &record);
        if index.seal.is_some() {
            break;
        }
    }
    let file_len = reader.file_len();
    let stopped_at_invalid = out_of_sequence || reader.stopped_at_invalid();
    let content_hash = reader.content_hash().unwrap_or_default();
    let salt = reader.salt();
    let recycled = reader.recycled();
    let hasher = if index.seal.is_some() || out_of_sequence { None } else { reader.into_hasher() };
    Ok(Scan { index, file_len, stopped_at_invalid, content_hash, hasher, salt, recycled })
}
