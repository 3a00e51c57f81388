//! Helpers shared by the fuzz targets and the seed-corpus maker (`examples/make_seeds.rs`).

use std::path::Path;

use media_store::{
    MediaKind, Record, SegmentReader, Store, StoreOptions, StoredFrame, StoredParameters, list_segments, log_dir,
};

/// Bytes in a segment header and in a record header (see ARCHITECTURE.md).
pub const SEGMENT_HEADER: usize = 16;
/// Bytes before a record's body: `len u32 | crc32c u32 | seq u64`.
pub const RECORD_HEADER: usize = 16;
/// The largest record body the format allows.
pub const MAX_RECORD_LEN: usize = 64 * 1024 * 1024;
/// Small segments: a few dozen small frames make several sealed segments.
pub const SEGMENT_BYTES: u64 = 4096;
/// 2023-11-14T22:13:20Z in µs.
pub const T0: i64 = 1_700_000_000_000_000;

/// A valid segment header: magic and format version 1.
pub fn segment_header() -> [u8; SEGMENT_HEADER] {
    let mut h = [0u8; SEGMENT_HEADER];
    h[..8].copy_from_slice(b"CONVOYSG");
    h[8..12].copy_from_slice(&1u32.to_le_bytes());
    h
}

/// Recomputes the CRC of every record (from the first after the header) whose header and
/// body fit, so mutated bodies get past the checksum to the decoder and the indexer.
pub fn fix_checksums(bytes: &mut [u8]) {
    let mut at = SEGMENT_HEADER;
    while at + RECORD_HEADER <= bytes.len() {
        let len = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        if len > MAX_RECORD_LEN || at + RECORD_HEADER + len > bytes.len() {
            break;
        }
        let crc = crc32c::crc32c(&bytes[at + 8..at + RECORD_HEADER + len]);
        bytes[at + 4..at + 8].copy_from_slice(&crc.to_le_bytes());
        at += RECORD_HEADER + len;
    }
}

/// The store options the targets use.
pub fn opts() -> StoreOptions {
    StoreOptions { segment_bytes: SEGMENT_BYTES, ..StoreOptions::default() }
}

/// Codec parameters of `camera`.
pub fn params(camera: &str) -> Record {
    Record::Parameters(StoredParameters {
        camera: camera.into(),
        rfc6381_codec: "avc1.4d401e".into(),
        width: 640,
        height: 360,
        extra_data: vec![1, 0x4d, 0, 0x1e, 0xff],
    })
}

/// A small frame (20–80 bytes of payload), 25 fps from [`T0`], a key frame every 10.
pub fn small_frame(camera: &str, i: u32) -> Record {
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

/// A real store in `dir`: `front` has several sealed segments (a cursor and an evidence lock
/// in them) and a tail; `rear` has only a tail. With `seal`, the newest segments are sealed.
pub fn make_store(dir: &Path, seal: bool) {
    let (mut s, _) = Store::open(dir, opts()).unwrap();
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

/// Every valid record of a log, in order, with sequence numbers. `None` if a segment does not
/// open (which a recovered store must never have).
pub fn read_log(store: &Path, camera: &str) -> Option<Vec<(u64, Record)>> {
    let mut out = Vec::new();
    for (_, path) in list_segments(&log_dir(store, camera)).ok()? {
        let mut r = SegmentReader::open(&path).ok()?;
        while let Some(rec) = r.next_record().ok()? {
            out.push(rec);
        }
    }
    Some(out)
}

/// The valid records of one segment file with the offset where each ends.
pub fn record_ends(path: &Path) -> Vec<(u64, Record, u64)> {
    let mut out = Vec::new();
    if let Ok(mut r) = SegmentReader::open(path) {
        while let Ok(Some((seq, record))) = r.next_record() {
            out.push((seq, record, r.offset()));
        }
    }
    out
}

/// Copies a (closed) store directory file by file.
pub fn copy_dir(from: &Path, to: &Path) {
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
