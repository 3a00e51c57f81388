//! Recovery from torn and corrupted tails, on real files.

mod common;

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::time::Duration;

use common::*;
use media_store::{Record, SegmentReader, Store, list_segments, log_dir};

#[test]
fn reopen_continues_across_sealed_segments() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (mut s, rec) = Store::open(dir.path(), opts(20_000)).unwrap();
        assert_eq!(rec.logs, 0);
        s.append(&params("front")).unwrap();
        for i in 0..30 {
            s.append(&frame("front", i)).unwrap();
        }
    }
    let segments = list_segments(&log_dir(dir.path(), "front")).unwrap().len();
    assert!(segments >= 3, "small segments roll over: {segments}");
    let (mut s, rec) = Store::open(dir.path(), opts(20_000)).unwrap();
    assert_eq!(rec.logs, 1);
    assert_eq!(rec.dropped_tail_bytes, 0);
    assert_eq!(rec.indexed_segments, 0, "the catalog was up to date");
    s.append(&frame("front", 30)).unwrap();
    drop(s);
    let got = frames(dir.path(), "front");
    assert_eq!(got.len(), 31);
    for (i, f) in got.iter().enumerate() {
        assert_eq!(Record::Frame(f.clone()), frame("front", i as u32));
    }
    // Every segment begins with the codec parameters, so each decodes on its own.
    for (_, path) in list_segments(&log_dir(dir.path(), "front")).unwrap() {
        let first = SegmentReader::open(&path).unwrap().next_record().unwrap().unwrap().1;
        assert!(matches!(first, Record::Parameters(_)), "{}", path.display());
    }
    // Sequence numbers are gapless across segments.
    let seqs: Vec<u64> = read_log(dir.path(), "front").iter().map(|r| r.0).collect();
    assert_eq!(seqs, (0..seqs.len() as u64).collect::<Vec<_>>());
}

/// The newest segment's path and the record boundaries in it.
fn tail_boundaries(store: &std::path::Path) -> (std::path::PathBuf, Vec<u64>) {
    let (_, path) = list_segments(&log_dir(store, "front")).unwrap().pop().unwrap();
    let mut boundaries = vec![16u64];
    let mut r = SegmentReader::open(&path).unwrap();
    while r.next_record().unwrap().is_some() {
        boundaries.push(r.valid_len());
    }
    (path, boundaries)
}

#[test]
fn torn_tail_at_many_offsets_is_cut_back_to_the_last_whole_record() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (mut s, _) = Store::open(dir.path(), opts(1 << 20)).unwrap();
        s.append(&params("front")).unwrap();
        for i in 0..5 {
            s.append(&frame("front", i)).unwrap();
        }
    }
    let (path, boundaries) = tail_boundaries(dir.path());
    let full = std::fs::read(&path).unwrap();
    let end = *boundaries.last().unwrap();
    assert_eq!(full.len() as u64, 1 << 20, "segments are pre-allocated");
    for cut in (16..end).step_by(97) {
        // A torn write: the file holds records up to `cut`, then zeros (never written).
        let mut torn = full.clone();
        torn[cut as usize..].fill(0);
        std::fs::write(&path, &torn).unwrap();
        let kept = *boundaries.iter().filter(|b| **b <= cut).max().unwrap();
        let (s, rec) = Store::open(dir.path(), opts(1 << 20)).unwrap();
        let records = boundaries.iter().filter(|b| **b <= cut).count() as u64 - 1;
        assert_eq!(s.next_seq("front"), Some(records), "cut at {cut}");
        drop(s);
        // Only the bytes of the partial record were dropped.
        assert_eq!(
            rec.dropped_tail_bytes,
            (cut - kept).min(torn[kept as usize..].iter().rposition(|b| *b != 0).map_or(0, |p| p as u64 + 1))
        );
        assert_eq!(read_log(dir.path(), "front").len() as u64, records);
    }
}

#[test]
fn bit_flip_in_tail_drops_that_record_and_what_follows() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (mut s, _) = Store::open(dir.path(), opts(1 << 20)).unwrap();
        s.append(&params("front")).unwrap();
        for i in 0..10 {
            s.append(&frame("front", i)).unwrap();
        }
    }
    let (path, boundaries) = tail_boundaries(dir.path());
    let f = OpenOptions::new().read(true).write(true).open(&path).unwrap();
    // Corrupt the 7th record (params + 6 frames come before it).
    f.write_all_at(&[0x5a], boundaries[7] + 100).unwrap();
    drop(f);
    let (mut s, rec) = Store::open(dir.path(), opts(1 << 20)).unwrap();
    assert_eq!(s.next_seq("front"), Some(7));
    assert_eq!(rec.dropped_tail_bytes, boundaries[11] - boundaries[7]);
    // Appending after recovery continues the sequence with no gap.
    assert_eq!(s.append(&frame("front", 6)).unwrap(), 7);
    drop(s);
    let got = frames(dir.path(), "front");
    assert_eq!(got.len(), 7);
    assert_eq!(Record::Frame(got[6].clone()), frame("front", 6));
}

#[test]
fn torn_segment_creation_is_removed() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (mut s, _) = Store::open(dir.path(), opts(1 << 20)).unwrap();
        s.append(&params("front")).unwrap();
        for i in 0..3 {
            s.append(&frame("front", i)).unwrap();
        }
        s.seal_all().unwrap();
    }
    // A crash right after creating the next segment, before its header reached the disk.
    let torn = log_dir(dir.path(), "front").join(format!("{:020}.seg", 5));
    std::fs::write(&torn, vec![0u8; 4096]).unwrap();
    let (mut s, rec) = Store::open(dir.path(), opts(1 << 20)).unwrap();
    assert_eq!(rec.dropped_segments, vec![torn.clone()]);
    assert_eq!(rec.dropped_tail_bytes, 0, "zeros are not data");
    assert!(!torn.exists());
    // The new segment starts with the codec parameters again, then the frame.
    assert_eq!(s.append(&frame("front", 3)).unwrap(), 6);
    drop(s);
    assert!(matches!(read_log(dir.path(), "front")[5], (5, Record::Parameters(_))));
}

#[test]
fn corrupt_newest_segment_is_set_aside_not_deleted() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (mut s, _) = Store::open(dir.path(), opts(1 << 20)).unwrap();
        s.append(&params("front")).unwrap();
        s.append(&frame("front", 0)).unwrap();
    }
    let (path, _) = tail_boundaries(dir.path());
    let f = OpenOptions::new().write(true).open(&path).unwrap();
    f.write_all_at(b"GARBAGE!", 0).unwrap();
    drop(f);
    let (_, rec) = Store::open(dir.path(), opts(1 << 20)).unwrap();
    assert_eq!(rec.dropped_segments, vec![path.clone()]);
    assert!(path.with_extension("corrupt").exists());
}

#[test]
fn sync_is_due_within_the_window() {
    let dir = tempfile::tempdir().unwrap();
    let (mut s, _) = Store::open(dir.path(), opts(1 << 20)).unwrap();
    assert_eq!(s.sync_due(), None);
    let before = std::time::Instant::now();
    s.append(&params("front")).unwrap();
    let due = s.sync_due().unwrap();
    assert!(due > before && due <= before + Duration::from_millis(100) + Duration::from_millis(50));
    assert!(!s.sync_if_due(before).unwrap());
    assert!(s.sync_if_due(due).unwrap());
    assert_eq!(s.sync_due(), None);
}

#[test]
fn the_window_counts_from_when_a_record_arrived() {
    let dir = tempfile::tempdir().unwrap();
    let (mut s, _) = Store::open(dir.path(), opts(1 << 20)).unwrap();
    let arrived = std::time::Instant::now() - Duration::from_millis(60);
    // Waited 60 ms (in a socket, in the queue): due ¾ of the 100 ms window after it arrived.
    s.append_arrived(&params("front"), arrived).unwrap();
    assert_eq!(s.sync_due(), Some(arrived + Duration::from_millis(75)));
    // A record that arrived later does not move the commit later.
    s.append(&frame("front", 0)).unwrap();
    assert_eq!(s.sync_due(), Some(arrived + Duration::from_millis(75)));
    // One that arrived even earlier moves it sooner.
    s.append_arrived(&frame("front", 1), arrived - Duration::from_millis(10)).unwrap();
    assert_eq!(s.sync_due(), Some(arrived + Duration::from_millis(65)));
    assert!(s.sync_if_due(arrived + Duration::from_millis(65)).unwrap());
    assert_eq!(s.sync_due(), None);
}

#[test]
fn a_second_writer_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let _first = Store::open(dir.path(), opts(1 << 20)).unwrap();
    let err = Store::open(dir.path(), opts(1 << 20)).err().unwrap().to_string();
    assert!(err.contains("in use by another process"), "{err}");
}
