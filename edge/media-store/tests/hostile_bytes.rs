//! Hostile bytes for every decoder of the media store's on-disk format, and the recovery
//! property on corrupted tails. Seeded and deterministic: the same cases run on every
//! `cargo test`, without nightly; cargo-fuzz searches the same space further (see
//! `fuzz/README.md`).
//!
//! The project's rule: every decode of bytes from a disk or a network returns an error, never
//! panics. For the store that means `SegmentReader`, `index::scan_segment`,
//! `segment::trailing_garbage` and recovery in `Store::open`.

mod common;

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use common::*;
use media_store::index::scan_segment;
use media_store::segment::trailing_garbage;
use media_store::verify::verify;
use media_store::{MediaKind, Record, SegmentReader, Store, StoredFrame, list_segments, log_dir};

/// Bytes in a segment header and in a record header (see the crate's DESIGN.md).
const SEGMENT_HEADER: usize = 16;
const RECORD_HEADER: usize = 16;
/// The largest record body the format allows (`record::MAX_RECORD_LEN`).
const MAX_RECORD_LEN: u32 = 64 * 1024 * 1024;
/// Small segments, so that a few dozen small frames make several sealed segments.
const SEGMENT_BYTES: u64 = 4096;

/// xorshift64*: a tiny deterministic generator (the crate has no random dev-dependency).
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    fn u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// In `0..n` (`n > 0`).
    fn below(&mut self, n: usize) -> usize {
        (self.u64() % n as u64) as usize
    }

    fn byte(&mut self) -> u8 {
        self.u64() as u8
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.byte()).collect()
    }

    fn chance(&mut self, one_in: usize) -> bool {
        self.below(one_in) == 0
    }
}

/// A small frame (20–80 bytes of payload), 25 fps from [`T0`], a key frame every 10.
fn small_frame(camera: &str, i: u32) -> Record {
    Record::Frame(StoredFrame {
        camera: camera.into(),
        stream: 0,
        parameters_seq: 0,
        kind: if i % 7 == 3 { MediaKind::Audio } else { MediaKind::Video },
        keyframe: i.is_multiple_of(10),
        pts: i64::from(i) * 3600,
        clock_rate: 90_000,
        wall_clock_us: T0 + i64::from(i) * 40_000,
        data: vec![(i % 250) as u8 + 1; 20 + (i as usize * 13) % 60],
    })
}

/// One valid record of a segment file: where it is and what it holds.
#[derive(Debug, Clone)]
struct Span {
    start: usize,
    end: usize,
    seq: u64,
    record: Record,
}

/// Every valid record of the segment at `path`, with its byte range.
fn spans(path: &Path) -> Vec<Span> {
    let mut r = SegmentReader::open(path).unwrap();
    let mut out = Vec::new();
    let mut start = r.offset() as usize;
    while let Some((seq, record)) = r.next_record().unwrap() {
        let end = r.offset() as usize;
        out.push(Span { start, end, seq, record });
        start = end;
    }
    out
}

/// A real store: `front` has several sealed segments (with a cursor and an evidence lock in
/// them) and an unsealed tail; `rear` has only an unsealed tail. With `seal`, every newest
/// segment is sealed too (as after a power-loss warning).
fn make_store(dir: &Path, seal: bool) {
    let (mut s, _) = Store::open(dir, opts(SEGMENT_BYTES)).unwrap();
    s.append(&params("front")).unwrap();
    s.append(&params("rear")).unwrap();
    for i in 0..90 {
        s.append(&small_frame("front", i)).unwrap();
        if i % 15 == 0 {
            s.append(&small_frame("rear", i / 15)).unwrap();
        }
        if i == 20 {
            s.set_cursor("front", "acked", 17).unwrap();
        }
        if i == 50 {
            s.lock("front", T0, T0 + 1_000_000, i64::MAX, "incident").unwrap();
        }
    }
    if seal {
        s.seal_all().unwrap();
    }
}

/// The segment files of a log, oldest first, as `(first_seq, path)`.
fn segments(store: &Path, camera: &str) -> Vec<(u64, PathBuf)> {
    list_segments(&log_dir(store, camera)).unwrap()
}

/// A segment file's bytes with their valid records.
struct Fixture {
    name: &'static str,
    first_seq: u64,
    bytes: Vec<u8>,
    spans: Vec<Span>,
}

/// Valid segment files of every kind the store writes: sealed (cut to length, with a cursor
/// or a lock inside), unsealed and pre-allocated (a zero tail), and a newest one sealed.
fn fixtures() -> Vec<Fixture> {
    let mut out = Vec::new();
    for seal in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        make_store(dir.path(), seal);
        for camera in ["front", "rear"] {
            let segs = segments(dir.path(), camera);
            let picks: Vec<usize> = if seal { vec![segs.len() - 1] } else { (0..segs.len()).collect() };
            for i in picks {
                let (first_seq, path) = &segs[i];
                let name = match (seal, i + 1 == segs.len()) {
                    (false, true) => "unsealed tail",
                    (true, true) => "sealed newest",
                    _ => "sealed",
                };
                out.push(Fixture {
                    name,
                    first_seq: *first_seq,
                    bytes: std::fs::read(path).unwrap(),
                    spans: spans(path),
                });
            }
        }
    }
    assert!(out.len() >= 5, "several segments: {}", out.len());
    out
}

/// Applies one to three random mutations; returns the lowest offset any of them touched (the
/// bytes before it are as they were, though the file may now end earlier).
fn mutate(rng: &mut Rng, bytes: &mut Vec<u8>, spans: &[Span]) -> usize {
    let mut lowest = usize::MAX;
    for _ in 0..1 + rng.below(3) {
        let len = bytes.len();
        if len == 0 {
            break;
        }
        // Most mutations land in the records; some anywhere (the header, the zero tail).
        let valid_end = spans.last().map_or(SEGMENT_HEADER, |s| s.end).min(len);
        let at = if rng.chance(4) { rng.below(len) } else { rng.below(valid_end) };
        let touched = match rng.below(10) {
            // Flip one bit.
            0 => {
                bytes[at] ^= 1 << rng.below(8);
                at
            }
            // Truncate.
            1 => {
                bytes.truncate(at);
                at
            }
            // Insert random bytes.
            2 => {
                let n = 1 + rng.below(24);
                let new = rng.bytes(n);
                bytes.splice(at..at, new);
                at
            }
            // Delete a range.
            3 => {
                let n = 1 + rng.below((len - at).min(40));
                bytes.drain(at..at + n);
                at
            }
            // Overwrite a range with random bytes (possibly growing the file).
            4 => {
                let n = 1 + rng.below(40);
                let new = rng.bytes(n);
                if at + n > bytes.len() {
                    bytes.resize(at + n, 0);
                }
                bytes[at..at + n].copy_from_slice(&new);
                at
            }
            // Zero a range: a torn page.
            5 => {
                let n = 1 + rng.below(512);
                let end = (at + n).min(len);
                bytes[at..end].fill(0);
                at
            }
            // A hostile length field in a record header.
            6 if !spans.is_empty() => {
                let s = &spans[rng.below(spans.len())];
                let remaining = (len.saturating_sub(s.start + RECORD_HEADER)) as u32;
                let hostile = [
                    0,
                    1,
                    remaining,
                    remaining.wrapping_add(1),
                    remaining.wrapping_sub(1),
                    MAX_RECORD_LEN,
                    MAX_RECORD_LEN + 1,
                    u32::MAX,
                    rng.u64() as u32,
                ];
                let v = hostile[rng.below(hostile.len())];
                if s.start + 4 <= len {
                    bytes[s.start..s.start + 4].copy_from_slice(&v.to_le_bytes());
                }
                s.start
            }
            // A record duplicated or moved elsewhere (breaks the sequence, CRC still fine).
            7 if !spans.is_empty() => {
                let s = &spans[rng.below(spans.len())];
                if s.end > len {
                    continue;
                }
                let chunk = bytes[s.start..s.end].to_vec();
                let to = spans[rng.below(spans.len())].start.min(len);
                bytes.splice(to..to, chunk);
                to
            }
            // A random sequence number in a record header.
            8 if !spans.is_empty() => {
                let s = &spans[rng.below(spans.len())];
                if s.start + 16 <= len {
                    let v = match rng.below(3) {
                        0 => u64::MAX,
                        1 => s.seq.wrapping_add(1),
                        _ => rng.u64(),
                    };
                    bytes[s.start + 8..s.start + 16].copy_from_slice(&v.to_le_bytes());
                }
                s.start
            }
            // Garbage appended after the end.
            9 => {
                let n = 1 + rng.below(64);
                let new = rng.bytes(n);
                bytes.extend_from_slice(&new);
                len
            }
            _ => continue,
        };
        lowest = lowest.min(touched);
    }
    lowest
}

/// Recomputes the CRC of every record whose header and body fit, so that mutated record
/// bodies get past the checksum to the body decoder and the segment index.
fn fix_checksums(bytes: &mut [u8]) {
    let mut at = SEGMENT_HEADER;
    while at + RECORD_HEADER <= bytes.len() {
        let len = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        if len > MAX_RECORD_LEN as usize || at + RECORD_HEADER + len > bytes.len() {
            break;
        }
        let crc = crc32c::crc32c(&bytes[at + 8..at + RECORD_HEADER + len]);
        bytes[at + 4..at + 8].copy_from_slice(&crc.to_le_bytes());
        at += RECORD_HEADER + len;
    }
}

/// Runs `f`, turning a panic into a failure that names the case and its input file.
fn no_panic<T>(what: &str, case: usize, input: &[u8], f: impl FnOnce() -> T) -> T {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(v) => v,
        Err(_) => {
            let keep = std::env::temp_dir().join(format!("hostile-segment-{case}.seg"));
            std::fs::write(&keep, input).unwrap();
            panic!("{what} panicked on case {case}; the input is in {}", keep.display());
        }
    }
}

/// Reads the file at `path` with every segment decoder and checks what they agree on.
/// `first_seq` is what its name would say; `intact` are records whose bytes were not touched.
/// `header_as_written`: the segment header is the one the store writes (else its flags may
/// have been mutated, and the index may e.g. accept gaps in the sequence of a thinned segment).
fn read_every_way(path: &Path, first_seq: u64, intact: &[Span], header_as_written: bool, rng: &mut Rng) {
    let file_len = std::fs::metadata(path).unwrap().len();
    // Read through: stops at the end or at the first invalid record, never fails on bytes.
    let mut read = Vec::new();
    // Where the first record starts: after the header (and a salt, if the header says so).
    let mut data_start = SEGMENT_HEADER as u64;
    let reader = match SegmentReader::open(path) {
        Ok(mut r) => {
            data_start = r.offset();
            while let Some((seq, record)) = r.next_record().expect("bytes are not an I/O error") {
                read.push((seq, record, r.offset()));
            }
            // Reading again past the end stays at the end.
            assert!(r.next_record().unwrap().is_none());
            assert!(r.valid_len() >= data_start && r.valid_len() <= r.file_len());
            assert_eq!(r.file_len(), file_len);
            if !r.stopped_at_invalid() {
                assert_eq!(r.valid_len(), file_len, "stopped early without a reason");
            }
            let garbage = trailing_garbage(path, r.valid_len()).unwrap();
            assert!(garbage <= file_len - r.valid_len());
            Some(r)
        }
        Err(media_store::StoreError::BadHeader { .. }) => {
            assert!(intact.is_empty(), "a good header was refused");
            None
        }
        Err(e) => panic!("not a bad header: {e}"),
    };
    // Records whose bytes were not touched come back as they were.
    assert!(read.len() >= intact.len(), "{} < {}", read.len(), intact.len());
    for (span, (seq, record, end)) in intact.iter().zip(&read) {
        assert_eq!((span.seq, &span.record, span.end as u64), (*seq, record, *end));
    }
    // trailing_garbage at any offset, even past the end.
    let anywhere = rng.below(file_len as usize + 64) as u64;
    assert!(trailing_garbage(path, anywhere).unwrap() <= file_len.saturating_sub(anywhere));
    let Some(reader) = reader else { return };
    // The index agrees with the reader on every record up to the first out of sequence.
    let scan = scan_segment(path, first_seq).unwrap();
    let records = scan.index.records as usize;
    assert!(records <= read.len());
    assert_eq!(scan.index.first_seq, first_seq);
    assert_eq!(scan.index.len, records.checked_sub(1).map_or(data_start, |i| read[i].2));
    assert_eq!(scan.file_len, file_len);
    assert!(scan.index.frames <= scan.index.records);
    if header_as_written {
        let in_sequence =
            read.iter().enumerate().take_while(|(i, (seq, _, _))| *seq == first_seq.wrapping_add(*i as u64)).count();
        let sealed_at = read[..in_sequence].iter().position(|(_, r, _)| matches!(r, Record::Seal(_)));
        let indexed = sealed_at.map_or(in_sequence, |i| i + 1);
        assert_eq!(records, indexed);
        if indexed < read.len() || reader.stopped_at_invalid() {
            assert!(scan.stopped_at_invalid || sealed_at.is_some());
        }
    }
    // Opening at a record boundary reads on from there; at any offset, errors or records.
    if let Some(k) = (!read.is_empty()).then(|| rng.below(read.len())) {
        let from = if k == 0 { data_start } else { read[k - 1].2 };
        let mut r = SegmentReader::open_at(path, from).unwrap();
        for expected in &read[k..] {
            let (seq, record) = r.next_record().unwrap().expect("the same records");
            assert_eq!((seq, &record, r.offset()), (expected.0, &expected.1, expected.2));
        }
    }
    let offset = rng.below(file_len as usize + 8) as u64;
    match SegmentReader::open_at(path, offset) {
        Ok(mut r) => {
            while r.next_record().unwrap().is_some() {}
            assert!(r.valid_len() <= file_len);
        }
        Err(media_store::StoreError::BadOffset { .. }) => assert!(offset > file_len),
        Err(e) => panic!("open_at {offset}: {e}"),
    }
    // Hashing while reading sees the same records.
    let mut h = SegmentReader::open(path).unwrap().hashing();
    let mut n = 0;
    while h.next_record().unwrap().is_some() {
        n += 1;
    }
    assert_eq!(n, read.len());
    assert!(h.content_hash().is_some());
}

/// Proves that thousands of seeded mutations of real segment files (sealed, unsealed with a
/// pre-allocated zero tail, and a sealed newest one; bit flips, truncations, insertions,
/// deletions, torn pages, hostile length and sequence fields, moved records, appended
/// garbage) never make `SegmentReader` (`open`, `open_at`, `next_record`, `hashing`),
/// `index::scan_segment` or `segment::trailing_garbage` panic or fail with anything but
/// `BadHeader`/`BadOffset`; that every record whose bytes were not touched is still read back
/// exactly; and that the index agrees with the reader. Half the cases recompute the records'
/// checksums after mutating, so mutated bodies reach the postcard decoder and the indexer.
#[test]
fn mutated_segments_are_read_to_the_last_valid_record_never_panic() {
    let fixtures = fixtures();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hostile.seg");
    let mut rng = Rng::new(0x5e65_e9e7_0000_0001);
    let mut fixed_and_decoded = 0;
    for case in 0..3_000 {
        let f = &fixtures[case % fixtures.len()];
        let mut bytes = f.bytes.clone();
        let lowest = mutate(&mut rng, &mut bytes, &f.spans);
        let fix = case % 2 == 1;
        if fix {
            fix_checksums(&mut bytes);
        }
        // Records entirely before the first touched byte, and inside the file, are intact.
        let intact: Vec<Span> =
            f.spans.iter().take_while(|s| s.end <= lowest && s.end <= bytes.len()).cloned().collect();
        let intact = if lowest < SEGMENT_HEADER { Vec::new() } else { intact };
        std::fs::write(&path, &bytes).unwrap();
        let header_as_written = lowest >= SEGMENT_HEADER;
        no_panic(f.name, case, &bytes, || read_every_way(&path, f.first_seq, &intact, header_as_written, &mut rng));
        if fix && scan_segment(&path, f.first_seq).is_ok_and(|s| s.index.records > intact.len() as u64) {
            fixed_and_decoded += 1;
        }
    }
    // The checksum fix-ups do reach past the first mutated record.
    assert!(fixed_and_decoded > 100, "only {fixed_and_decoded}");
}

/// Encodes a record as the store does (`len | crc32c(seq ‖ body) | seq | postcard body`).
fn encode_record(seq: u64, record: &Record) -> Vec<u8> {
    let body = postcard::to_allocvec(record).unwrap();
    let mut out = Vec::with_capacity(RECORD_HEADER + body.len());
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(&body);
    let crc = crc32c::crc32c(&out[8..]);
    out[4..8].copy_from_slice(&crc.to_le_bytes());
    out
}

/// A segment header: magic and format version 1.
fn segment_header() -> Vec<u8> {
    let mut h = b"CONVOYSG".to_vec();
    h.extend_from_slice(&1u32.to_le_bytes());
    h.extend_from_slice(&[0; 4]);
    h
}

/// Proves that random record bodies of random lengths, framed with a correct checksum and
/// sequence number (what a buggy writer or a deliberately crafted file holds), are either
/// decoded or refused by `SegmentReader` and `scan_segment`, never a panic, including
/// record bodies that announce huge vectors and strings.
#[test]
fn checksummed_garbage_bodies_are_refused_not_panics() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("crafted.seg");
    let mut rng = Rng::new(0x5e65_e9e7_0000_0002);
    for case in 0..3_000 {
        let mut bytes = segment_header();
        let records = 1 + rng.below(4);
        for seq in 0..records as u64 {
            let n = rng.below(48);
            let mut body = rng.bytes(n);
            // A valid variant tag first, so the decoder gets into the record's fields.
            if let Some(b) = body.first_mut() {
                *b %= 6;
            }
            if rng.chance(3) && body.len() > 2 {
                // A huge varint length for the first string or vector.
                let at = 1 + rng.below(body.len() - 1);
                body.splice(at..at, [0xff, 0xff, 0xff, 0xff, 0x0f]);
            }
            bytes.extend_from_slice(&(body.len() as u32).to_le_bytes());
            bytes.extend_from_slice(&[0; 4]);
            bytes.extend_from_slice(&seq.to_le_bytes());
            bytes.extend_from_slice(&body);
        }
        fix_checksums(&mut bytes);
        std::fs::write(&path, &bytes).unwrap();
        no_panic("checksummed garbage", case, &bytes, || read_every_way(&path, 0, &[], true, &mut rng));
    }
}

/// Proves that valid, checksummed records holding extreme but well-formed values (wall
/// clocks at both ends of `i64`, a sequence number at the end of `u64`) are read by
/// `SegmentReader`, indexed by `scan_segment` and checked by `verify` without a panic: what a
/// unit with a broken clock, or a crafted file, puts on disk.
#[test]
fn extreme_but_valid_records_do_not_panic_the_indexer() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("extreme.seg");
    let frame_at = |wall: i64| {
        let Record::Frame(mut f) = small_frame("front", 1) else { unreachable!() };
        f.wall_clock_us = wall;
        Record::Frame(f)
    };
    // In one segment: wall clocks that make `later - earlier` overflow.
    let mut bytes = segment_header();
    bytes.extend(encode_record(0, &frame_at(i64::MIN)));
    bytes.extend(encode_record(1, &frame_at(1)));
    std::fs::write(&path, &bytes).unwrap();
    let in_segment = catch_unwind(|| scan_segment(&path, 0).map(|s| s.index.records));
    // The last sequence number a segment can hold.
    let mut bytes = segment_header();
    bytes.extend(encode_record(u64::MAX, &frame_at(T0)));
    bytes.extend(encode_record(0, &frame_at(T0)));
    std::fs::write(&path, &bytes).unwrap();
    let last_seq = catch_unwind(|| scan_segment(&path, u64::MAX).map(|s| s.index.records));
    // Across sealed segments, written through the store: verify merges their runs.
    let store = dir.path().join("store");
    {
        let (mut s, _) = Store::open(&store, opts(SEGMENT_BYTES)).unwrap();
        s.append(&params("front")).unwrap();
        s.append(&frame_at(i64::MIN)).unwrap();
        s.seal_all().unwrap();
        s.append(&frame_at(1)).unwrap();
        s.seal_all().unwrap();
    }
    let across = catch_unwind(|| verify(&store, None).map(|r| r.errors));
    assert!(
        matches!(in_segment, Ok(Ok(2))) && matches!(last_seq, Ok(Ok(_))) && matches!(across, Ok(Ok(_))),
        "wall clocks i64::MIN then 1 in a segment: {:?}; sequence u64::MAX: {:?}; \
         across segments (verify): {:?}",
        in_segment.map_err(|_| "panicked"),
        last_seq.map_err(|_| "panicked"),
        across.map_err(|_| "panicked"),
    );
}

/// One way to damage the newest segment of a log.
#[derive(Clone)]
enum Damage {
    /// Cut the file at an offset.
    Truncate(u64),
    /// Write bytes at an offset (growing the file if they reach past its end).
    Overwrite(u64, Vec<u8>),
    /// Flip one bit.
    Flip(u64, u8),
    /// Cut the file at an offset, then append bytes.
    TruncateAndAppend(u64, Vec<u8>),
}

impl std::fmt::Debug for Damage {
    /// Offsets, lengths and the first bytes (the cases are reproduced from the seed).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let head = |b: &[u8]| format!("{} bytes {:02x?}…", b.len(), &b[..b.len().min(8)]);
        match self {
            Damage::Truncate(at) => write!(f, "truncate at {at}"),
            Damage::Overwrite(at, b) => write!(f, "overwrite at {at} with {}", head(b)),
            Damage::Flip(at, bit) => write!(f, "flip bit {bit} at {at}"),
            Damage::TruncateAndAppend(at, b) => {
                write!(f, "truncate at {at} and append {}", head(b))
            }
        }
    }
}

impl Damage {
    /// The lowest offset whose byte may differ afterwards.
    fn lowest(&self) -> u64 {
        match self {
            Damage::Truncate(at)
            | Damage::Overwrite(at, _)
            | Damage::Flip(at, _)
            | Damage::TruncateAndAppend(at, _) => *at,
        }
    }

    fn random(rng: &mut Rng, file_len: u64, valid_end: u64) -> Damage {
        // Mostly in the records; sometimes in the header or the zero tail.
        let at = match rng.below(8) {
            0 => rng.below(SEGMENT_HEADER) as u64,
            1 => rng.below(file_len as usize + 1) as u64,
            _ => SEGMENT_HEADER as u64 + rng.below((valid_end as usize).max(17) - 16) as u64,
        };
        let garbage = |rng: &mut Rng| {
            let n = 1 + rng.below(64);
            if rng.chance(3) { vec![0; n * 8] } else { rng.bytes(n) }
        };
        match rng.below(4) {
            0 => Damage::Truncate(at),
            1 => Damage::Overwrite(at, garbage(rng)),
            2 => Damage::Flip(at.min(file_len.saturating_sub(1)), rng.below(8) as u8),
            _ => Damage::TruncateAndAppend(at, garbage(rng)),
        }
    }

    fn apply(&self, path: &Path) {
        let f = OpenOptions::new().read(true).write(true).open(path).unwrap();
        match self {
            Damage::Truncate(at) => f.set_len(*at).unwrap(),
            Damage::Overwrite(at, bytes) => f.write_all_at(bytes, *at).unwrap(),
            Damage::Flip(at, bit) => {
                let mut b = [0u8];
                f.read_exact_at(&mut b, *at).unwrap();
                f.write_all_at(&[b[0] ^ (1 << bit)], *at).unwrap();
            }
            Damage::TruncateAndAppend(at, bytes) => {
                f.set_len(*at).unwrap();
                f.write_all_at(bytes, *at).unwrap();
            }
        }
    }
}

/// Copies a store directory (closed) file by file.
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// A log as it was before the damage: its records, and the newest segment's records with
/// their byte ranges.
struct Before {
    records: Vec<(u64, Record)>,
    tail_first_seq: u64,
    tail_path: PathBuf,
    tail_spans: Vec<Span>,
    tail_file_len: u64,
}

fn before(store: &Path, camera: &str) -> Before {
    let (tail_first_seq, tail_path) = segments(store, camera).pop().unwrap();
    let tail_spans = spans(&tail_path);
    Before {
        records: read_log(store, camera),
        tail_first_seq,
        tail_file_len: std::fs::metadata(&tail_path).unwrap().len(),
        tail_path: tail_path.strip_prefix(store).unwrap().to_owned(),
        tail_spans,
    }
}

/// A closed store to damage copies of, and its logs as they were.
struct Baseline {
    dir: PathBuf,
    newest_sealed: bool,
    front: Before,
    rear: Before,
}

impl Baseline {
    fn new(root: &Path, newest_sealed: bool) -> Baseline {
        let dir = root.join(format!("baseline-sealed-{newest_sealed}"));
        make_store(&dir, newest_sealed);
        Baseline { front: before(&dir, "front"), rear: before(&dir, "rear"), dir, newest_sealed }
    }
}

/// Checks the recovery property on one damaged copy of the baseline: reopening succeeds; one
/// more frame appends (after the codec parameters if a new segment starts); the store
/// verifies without errors (also after sealing everything, with `seal_after`), except that a
/// segment recovery set aside for its unreadable header is reported as lost records; no record
/// that was durable and wholly before the damaged offset is lost; the sequence stays gapless
/// (but where a set-aside segment began); and the other camera's log is untouched. Returns a
/// description of what failed.
fn recover_case(
    baseline: &Baseline,
    work: &Path,
    camera: &str,
    damage: &Damage,
    seal_after: bool,
) -> Result<(), String> {
    let (was, other, other_was) = match camera {
        "front" => (&baseline.front, "rear", &baseline.rear.records),
        _ => (&baseline.rear, "front", &baseline.front.records),
    };
    copy_dir(&baseline.dir, work);
    damage.apply(&work.join(&was.tail_path));
    let (mut s, recovery) = Store::open(work, opts(SEGMENT_BYTES)).map_err(|e| format!("reopen failed: {e}"))?;
    let next = s.next_seq(camera).ok_or("the log is gone")?;
    let seq = s.append(&small_frame(camera, 1000)).map_err(|e| format!("append failed: {e}"))?;
    // A new segment starts with the codec parameters again, then the frame.
    if seq != next && seq != next + 1 {
        return Err(format!("appended at {seq}, next_seq said {next}"));
    }
    if seal_after {
        s.seal_all().map_err(|e| format!("seal failed: {e}"))?;
    }
    drop(s);
    let report = verify(work, None).map_err(|e| format!("verify failed: {e}"))?;
    let errors = unexplained_errors(&report.errors, &recovery.dropped_segments);
    if !errors.is_empty() {
        return Err(format!("verify errors after {recovery:?}: {errors:?}"));
    }
    // Nothing durable and untouched is lost: every record of the older segments, and every
    // tail record that ended at or before the damaged offset.
    let lowest = damage.lowest();
    let now = read_log(work, camera);
    for kept in &was.records {
        let in_older_segment = kept.0 < was.tail_first_seq;
        let before_damage = lowest >= SEGMENT_HEADER as u64
            && was.tail_spans.iter().any(|sp| sp.seq == kept.0 && sp.end as u64 <= lowest);
        if (in_older_segment || before_damage) && !now.contains(kept) {
            return Err(format!("lost record {} after {recovery:?}", kept.0));
        }
    }
    let seqs: Vec<u64> = now.iter().map(|(s, _)| *s).collect();
    if !gapless_but_for(&seqs, &recovery.dropped_segments) {
        return Err(format!("the sequence has gaps: {seqs:?} after {recovery:?}"));
    }
    let last_frame = now.iter().rev().find(|(_, r)| matches!(r, Record::Frame(_))).unwrap();
    if *last_frame != (seq, small_frame(camera, 1000)) {
        return Err(format!("the appended frame is not last: {}", last_frame.0));
    }
    // The other log is as it was (sealing adds a seal record, nothing else).
    let other_now = read_log(work, other);
    if !other_now.starts_with(other_was)
        || other_now[other_was.len()..].iter().any(|(_, r)| !matches!(r, Record::Seal(_)))
    {
        return Err(format!("{other} changed"));
    }
    Ok(())
}

/// Whether `seqs` runs on from 0 without a gap, but where a segment that recovery removed or
/// set aside began (its records are lost; the sequence goes on after them).
fn gapless_but_for(seqs: &[u64], dropped: &[PathBuf]) -> bool {
    let starts: Vec<u64> = dropped.iter().filter_map(|p| p.file_stem()?.to_str()?.parse().ok()).collect();
    let mut expected = 0;
    for &seq in seqs {
        if seq != expected && !(seq > expected && starts.contains(&expected)) {
            return false;
        }
        expected = seq + 1;
    }
    true
}

/// The errors of a verify report other than the notices of segments that recovery itself set
/// aside as `*.corrupt` (an unreadable header: their records are lost, which `verify` reports
/// and recovery cannot avoid).
fn unexplained_errors<'a>(errors: &'a [String], set_aside: &[PathBuf]) -> Vec<&'a String> {
    errors
        .iter()
        .filter(|e| {
            !set_aside.iter().any(|p| {
                let aside = p.with_extension("corrupt").display().to_string();
                e.starts_with(&aside) && e.contains("set aside")
            })
        })
        .collect()
}

/// Runs `cases` seeded damages of the newest segment of `front` (two in three) or `rear` on
/// copies of `baseline`; returns the failures.
fn damage_cases(
    root: &Path,
    baseline: &Baseline,
    seed: u64,
    cases: usize,
    seal_after: fn(&mut Rng) -> bool,
) -> Vec<String> {
    let mut rng = Rng::new(seed);
    let mut failures = Vec::new();
    for case in 0..cases {
        let camera = if rng.chance(3) { "rear" } else { "front" };
        let was = if camera == "front" { &baseline.front } else { &baseline.rear };
        let valid_end = was.tail_spans.last().map_or(16, |s| s.end) as u64;
        let damage = Damage::random(&mut rng, was.tail_file_len, valid_end);
        let seal = seal_after(&mut rng);
        let work = root.join(format!("case-{seed:x}-{case}"));
        let outcome = catch_unwind(AssertUnwindSafe(|| recover_case(baseline, &work, camera, &damage, seal)))
            .unwrap_or_else(|_| Err("panicked".into()));
        if let Err(why) = outcome {
            failures.push(format!(
                "case {case}: {camera} (newest sealed: {}), {damage:?}, sealed after: {seal}: \
                 {why}",
                baseline.newest_sealed
            ));
        }
        let _ = std::fs::remove_dir_all(&work);
    }
    failures
}

fn assert_no_failures(cases: usize, failures: &[String]) {
    assert!(failures.is_empty(), "{} of {cases} cases failed:\n{}", failures.len(), failures.join("\n"));
}

/// Proves the recovery property (see `recover_case`) over 200 seeded damages of the unsealed
/// newest segment of a log, as a power cut or a bad sector leaves it: truncations anywhere
/// (the header included), overwrites with garbage or zeros, bit flips, garbage after a cut.
/// `Store::open` succeeds, the next frame appends and continues the sequence, `verify` finds
/// no error (also after sealing everything, in a third of the cases), nothing durable before
/// the damage is lost, and the other camera's log is untouched.
#[test]
fn damaged_unsealed_tails_recover_to_a_consistent_store() {
    let root = tempfile::tempdir().unwrap();
    let baseline = Baseline::new(root.path(), false);
    let failures = damage_cases(root.path(), &baseline, 0x5e65_e9e7_0000_0003, 200, |rng| rng.chance(3));
    assert_no_failures(200, &failures);
}

/// Proves the recovery property (see `recover_case`, without sealing again) over 150 seeded
/// damages of a newest segment that was sealed (as after a power-loss warning): the damaged
/// seal or records are cut back, the segment reopens as the tail (or is set aside when its
/// header is gone), the next frame appends, `verify` finds no error, nothing durable before
/// the damage is lost.
#[test]
fn damaged_sealed_newest_segments_recover_to_a_consistent_store() {
    let root = tempfile::tempdir().unwrap();
    let baseline = Baseline::new(root.path(), true);
    let failures = damage_cases(root.path(), &baseline, 0x5e65_e9e7_0000_0004, 150, |_| false);
    assert_no_failures(150, &failures);
}

/// Proves that after a damaged sealed newest segment is recovered and appended to, sealing it
/// again keeps the digest chain whole: `verify` finds no error.
#[test]
fn damaged_sealed_newest_segments_seal_again_into_the_chain() {
    let root = tempfile::tempdir().unwrap();
    let baseline = Baseline::new(root.path(), true);
    let failures = damage_cases(root.path(), &baseline, 0x5e65_e9e7_0000_0005, 100, |_| true);
    assert_no_failures(100, &failures);
}
