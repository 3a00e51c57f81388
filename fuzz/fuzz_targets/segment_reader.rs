//! Segment files as hostile bytes: the input becomes a segment file, read by every decoder of
//! `media-store` (`SegmentReader::open`/`open_at`/`next_record`/`hashing`, `valid_len`,
//! `stopped_at_invalid`, `index::scan_segment`, `segment::trailing_garbage`).
//!
//! Input: a mode byte, then the file's bytes.
//! - mode bit 0 clear: a valid segment header is put first, so the fuzzer works on records;
//! - mode bit 1 set: every record's CRC is recomputed, so mutated bodies reach the postcard
//!   decoder and the segment indexer instead of stopping at the checksum;
//! - mode bit 2 set (overrides bits 0 and 1): the bytes are record bodies, each prefixed by a
//!   one-byte length, framed into a valid segment with correct lengths, checksums and
//!   sequence numbers (from 0, or with bit 3 set from the first 8 bytes, little-endian), so
//!   the fuzzer can grow and shrink bodies freely.
//!
//! `scan_segment` gets the sequence number of the first record as `first_seq` (what the file
//! name says for a real segment), so the indexer sees records in sequence.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use convoy_fuzz::{SEGMENT_HEADER, fix_checksums, segment_header};
use libfuzzer_sys::fuzz_target;
use media_store::index::scan_segment;
use media_store::segment::trailing_garbage;
use media_store::{SegmentReader, StoreError};

/// One file, rewritten for every input.
fn path() -> &'static PathBuf {
    static PATH: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    let (_, path) = PATH.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("00000000000000000000.seg");
        (dir, path)
    });
    path
}

/// A segment of records whose bodies are `len u8 | body` chunks of `input`.
fn frame_bodies(seq_given: bool, mut input: &[u8]) -> Vec<u8> {
    let mut seq = 0u64;
    if seq_given && let Some((first, rest)) = input.split_first_chunk::<8>() {
        seq = u64::from_le_bytes(*first);
        input = rest;
    }
    let mut out = segment_header().to_vec();
    while let Some((&len, rest)) = input.split_first() {
        let body = &rest[..usize::from(len).min(rest.len())];
        input = &rest[body.len()..];
        let start = out.len();
        out.extend_from_slice(&(body.len() as u32).to_le_bytes());
        out.extend_from_slice(&[0; 4]);
        out.extend_from_slice(&seq.to_le_bytes());
        out.extend_from_slice(body);
        let crc = crc32c::crc32c(&out[start + 8..]);
        out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
        seq = seq.wrapping_add(1);
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let mut bytes = Vec::with_capacity(rest.len() + SEGMENT_HEADER);
    if mode & 4 != 0 {
        bytes = frame_bodies(mode & 8 != 0, rest);
    } else {
        if mode & 1 == 0 {
            bytes.extend_from_slice(&segment_header());
        }
        bytes.extend_from_slice(rest);
        if mode & 2 != 0 {
            fix_checksums(&mut bytes);
        }
    }
    let path = path();
    std::fs::write(path, &bytes).unwrap();
    let file_len = bytes.len() as u64;

    // Read through; bytes are never an I/O error.
    let mut reader = match SegmentReader::open(path) {
        Ok(r) => r,
        Err(StoreError::BadHeader { .. }) => {
            assert!(trailing_garbage(path, 0).unwrap() <= file_len);
            return;
        }
        Err(e) => panic!("open: not a bad header: {e}"),
    };
    // Where the first record starts: after the header (and a salt, if the header says so).
    let data_start = reader.offset();
    let mut read = Vec::new();
    loop {
        match reader.next_record() {
            Ok(Some((seq, record))) => read.push((seq, record, reader.offset())),
            Ok(None) => break,
            Err(e) => panic!("next_record: bytes are not an I/O error: {e}"),
        }
    }
    assert!(reader.next_record().unwrap().is_none(), "the end stays the end");
    let valid_len = reader.valid_len();
    assert!((data_start..=file_len).contains(&valid_len));
    if !reader.stopped_at_invalid() {
        assert_eq!(valid_len, file_len, "stopped early without a reason");
    }
    let garbage = trailing_garbage(path, valid_len).unwrap();
    assert!(garbage <= file_len - valid_len);

    // The indexer: the same records up to the first out of sequence or the seal.
    let first_seq = read.first().map_or(0, |r| r.0);
    let scan = scan_segment(path, first_seq).unwrap();
    assert!(scan.index.records <= read.len() as u64);
    assert!(scan.index.len <= file_len);
    assert_eq!(scan.file_len, file_len);
    if scan.index.records < read.len() as u64 {
        assert!(scan.stopped_at_invalid || scan.index.seal.is_some());
    }

    // Opening at a record boundary reads on from there.
    if !read.is_empty() {
        let k = read.len() / 2;
        let from = if k == 0 { data_start } else { read[k - 1].2 };
        let mut r = SegmentReader::open_at(path, from).unwrap();
        for (seq, record, end) in &read[k..] {
            let got = r.next_record().unwrap().expect("the same records");
            assert_eq!((&got.0, &got.1, r.offset()), (seq, record, *end));
        }
    }
    // Opening at an arbitrary offset (taken from the input) reads or refuses.
    let offset = u64::from(mode) * 7 % (file_len + 2);
    match SegmentReader::open_at(path, offset) {
        Ok(mut r) => while let Ok(Some(_)) = r.next_record() {},
        Err(StoreError::BadOffset { .. }) => assert!(offset > file_len),
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
});
