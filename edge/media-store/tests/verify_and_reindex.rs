//! `verify` finds what is wrong with a store; the catalog rebuilds from the segments alone.

mod common;

use std::os::unix::fs::FileExt;

use common::*;
use media_store::catalog::Catalog;
use media_store::verify::verify;
use media_store::{Store, catalog_path, list_segments, log_dir};

/// A store with two cameras over several sealed segments and an open tail.
fn make_store() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let (mut s, _) = Store::open(dir.path(), opts(16_000)).unwrap();
    s.append(&params("front")).unwrap();
    s.append(&params("rear")).unwrap();
    for i in 0..60 {
        s.append(&frame("front", i)).unwrap();
        if i % 2 == 0 {
            s.append(&frame("rear", i)).unwrap();
        }
    }
    dir
}

#[test]
fn a_healthy_store_verifies_with_its_summary() {
    let dir = make_store();
    let r = verify(dir.path(), None).unwrap();
    assert!(r.ok(), "{:?}", r.errors);
    assert_eq!(r.frames, 90);
    assert_eq!(r.cameras["front"].frames, 60);
    assert_eq!(r.cameras["rear"].frames, 30);
    assert_eq!(r.cameras["front"].first_us, Some(T0));
    assert_eq!(r.cameras["front"].last_us, Some(T0 + 59 * 40_000));
    assert!(r.cameras["front"].gaps.is_empty());
    assert_eq!(r.dropped_tail_bytes, 0);
    assert!(r.segments >= 6, "{}", r.segments);
    assert!(r.warnings.is_empty(), "{:?}", r.warnings);
}

#[test]
fn an_altered_sealed_segment_is_an_error() {
    let dir = make_store();
    let (_, first) = list_segments(&log_dir(dir.path(), "front")).unwrap().remove(0);
    // Flip a byte and fix up nothing: the record CRC catches it as a short segment, and the
    // digest chain and seal catch the rest.
    let f = std::fs::OpenOptions::new().write(true).open(&first).unwrap();
    f.write_all_at(&[0xee], 200).unwrap();
    drop(f);
    let r = verify(dir.path(), None).unwrap();
    assert!(!r.ok());
    assert!(r.errors.iter().any(|e| e.contains("not sealed") || e.contains("seal")), "{:?}", r.errors);
}

#[test]
fn a_missing_middle_segment_is_an_error() {
    let dir = make_store();
    let segs = list_segments(&log_dir(dir.path(), "front")).unwrap();
    std::fs::remove_file(&segs[1].1).unwrap();
    let r = verify(dir.path(), None).unwrap();
    assert!(r.errors.iter().any(|e| e.contains("a segment is missing")), "{:?}", r.errors);
}

#[test]
fn another_units_key_does_not_verify() {
    let dir = make_store();
    let r = verify(dir.path(), Some([7u8; 32])).unwrap();
    assert!(r.errors.iter().any(|e| e.contains("signature")), "{:?}", r.errors);
}

#[test]
fn a_torn_tail_is_reported_as_dropped_bytes_not_an_error() {
    let dir = make_store();
    let (_, tail) = list_segments(&log_dir(dir.path(), "front")).unwrap().pop().unwrap();
    let len = {
        let mut r = media_store::SegmentReader::open(&tail).unwrap();
        while r.next_record().unwrap().is_some() {}
        r.valid_len()
    };
    let f = std::fs::OpenOptions::new().write(true).open(&tail).unwrap();
    f.write_all_at(&[1, 2, 3, 4, 5, 6, 7], len).unwrap();
    drop(f);
    let r = verify(dir.path(), None).unwrap();
    assert!(r.ok(), "{:?}", r.errors);
    assert_eq!(r.dropped_tail_bytes, 7);
}

#[test]
fn reindex_rebuilds_the_same_catalog_from_segments_alone() {
    let dir = make_store();
    {
        let (mut s, _) = Store::open(dir.path(), opts(16_000)).unwrap();
        s.lock("front", T0, T0 + 1_000_000, i64::MAX, "incident 7").unwrap();
        s.set_cursor("rear", "central-ack", 12).unwrap();
    }
    let before = {
        let c = Catalog::open_read_only(&catalog_path(dir.path())).unwrap();
        (c.all_segments().unwrap(), c.runs("front").unwrap(), c.locks().unwrap(), c.cursors().unwrap())
    };
    assert_eq!(before.2.len(), 1);
    // Lose the catalog entirely, then rebuild it.
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", catalog_path(dir.path()).display()));
    }
    let rec = Store::reindex(dir.path(), None).unwrap();
    assert!(rec.indexed_segments >= 6);
    let c = Catalog::open_read_only(&catalog_path(dir.path())).unwrap();
    let after = (c.all_segments().unwrap(), c.runs("front").unwrap(), c.locks().unwrap(), c.cursors().unwrap());
    assert_eq!(before, after);
}
