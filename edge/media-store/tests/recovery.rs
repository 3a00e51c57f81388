//! Recovery from torn and corrupted tails on real files.

use std::fs::OpenOptions;
use std::io::{Seek, SeekFrom, Write};
use std::time::Duration;

use media_store::{
    MediaKind, Record, SegmentReader, Store, StoreOptions, StoredFrame, list_segments,
};

fn frame(i: u32) -> Record {
    Record::Frame(StoredFrame {
        camera: "front".into(),
        kind: MediaKind::Video,
        keyframe: i.is_multiple_of(25),
        pts: i64::from(i) * 3600,
        clock_rate: 90_000,
        wall_clock_us: 1_700_000_000_000_000 + i64::from(i) * 40_000,
        data: vec![(i % 251) as u8; 1000 + (i as usize * 37) % 3000],
    })
}

fn opts(segment_bytes: u64) -> StoreOptions {
    StoreOptions {
        segment_bytes,
        fsync_interval: Duration::from_millis(100),
    }
}

fn read_all(dir: &std::path::Path) -> Vec<(u64, Record)> {
    let mut out = Vec::new();
    for (_, path) in list_segments(dir).unwrap() {
        let mut r = SegmentReader::open(&path).unwrap();
        while let Some(rec) = r.next_record().unwrap() {
            out.push(rec);
        }
    }
    out
}

#[test]
fn reopen_continues_sequence_across_segments() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (mut s, rec) = Store::open(dir.path(), opts(20_000)).unwrap();
        assert_eq!(rec.next_seq, 0);
        for i in 0..30 {
            assert_eq!(s.append(&frame(i)).unwrap(), u64::from(i));
        }
    }
    let segments = list_segments(dir.path()).unwrap().len();
    assert!(segments >= 3, "small segments roll over: {segments}");
    let (mut s, rec) = Store::open(dir.path(), opts(20_000)).unwrap();
    assert_eq!(rec.next_seq, 30);
    assert_eq!(rec.dropped_tail_bytes, 0);
    assert_eq!(rec.segments, segments);
    s.append(&frame(30)).unwrap();
    drop(s);
    let all = read_all(dir.path());
    assert_eq!(all.len(), 31);
    for (i, (seq, r)) in all.iter().enumerate() {
        assert_eq!(*seq, i as u64);
        assert_eq!(*r, frame(i as u32));
    }
}

#[test]
fn torn_tail_at_every_offset_is_cut_back_to_last_whole_record() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (mut s, _) = Store::open(dir.path(), opts(1 << 30)).unwrap();
        for i in 0..5 {
            s.append(&frame(i)).unwrap();
        }
    }
    let (_, path) = list_segments(dir.path()).unwrap().pop().unwrap();
    let full = std::fs::read(&path).unwrap();
    // Record boundaries, from a clean read.
    let mut boundaries = vec![16u64];
    let mut r = SegmentReader::open(&path).unwrap();
    while r.next_record().unwrap().is_some() {
        boundaries.push(r.valid_len());
    }
    for cut in (16..full.len() as u64).step_by(97) {
        std::fs::write(&path, &full[..cut as usize]).unwrap();
        let (s, rec) = Store::open(dir.path(), opts(1 << 30)).unwrap();
        drop(s);
        let kept = *boundaries.iter().filter(|b| **b <= cut).max().unwrap();
        assert_eq!(rec.dropped_tail_bytes, cut - kept, "cut at {cut}");
        assert_eq!(std::fs::metadata(&path).unwrap().len(), kept);
        let records = boundaries.iter().filter(|b| **b <= cut).count() as u64 - 1;
        assert_eq!(rec.next_seq, records);
        assert_eq!(read_all(dir.path()).len() as u64, records);
    }
}

#[test]
fn bit_flip_in_tail_drops_that_record_and_after() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (mut s, _) = Store::open(dir.path(), opts(1 << 30)).unwrap();
        for i in 0..10 {
            s.append(&frame(i)).unwrap();
        }
    }
    let (_, path) = list_segments(dir.path()).unwrap().pop().unwrap();
    let mut r = SegmentReader::open(&path).unwrap();
    for _ in 0..6 {
        r.next_record().unwrap().unwrap();
    }
    let sixth_end = r.valid_len();
    let mut f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .unwrap();
    f.seek(SeekFrom::Start(sixth_end + 100)).unwrap();
    f.write_all(&[0x5a]).unwrap();
    drop(f);
    let (mut s, rec) = Store::open(dir.path(), opts(1 << 30)).unwrap();
    assert_eq!(rec.next_seq, 6);
    assert!(rec.dropped_tail_bytes > 0);
    // Appending after recovery continues the sequence with no gap.
    assert_eq!(s.append(&frame(6)).unwrap(), 6);
    drop(s);
    let all = read_all(dir.path());
    assert_eq!(all.len(), 7);
    assert_eq!(all[6], (6, frame(6)));
}

#[test]
fn torn_segment_creation_is_removed() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (mut s, _) = Store::open(dir.path(), opts(1 << 30)).unwrap();
        for i in 0..3 {
            s.append(&frame(i)).unwrap();
        }
    }
    // A crash right after creating the next segment, before its header was written.
    let torn = dir.path().join(format!("{:020}.seg", 3));
    std::fs::write(&torn, b"CONV").unwrap();
    let (mut s, rec) = Store::open(dir.path(), opts(1 << 30)).unwrap();
    assert_eq!(rec.next_seq, 3);
    assert_eq!(rec.dropped_segments, vec![torn.clone()]);
    assert!(!torn.exists());
    assert_eq!(s.append(&frame(3)).unwrap(), 3);
}

#[test]
fn sync_is_due_within_the_window() {
    let dir = tempfile::tempdir().unwrap();
    let (mut s, _) = Store::open(dir.path(), opts(1 << 30)).unwrap();
    assert_eq!(s.sync_due(), None);
    let before = std::time::Instant::now();
    s.append(&frame(0)).unwrap();
    let due = s.sync_due().unwrap();
    assert!(due > before && due <= before + Duration::from_millis(100) + Duration::from_millis(50));
    assert!(!s.sync_if_due(before).unwrap());
    assert!(s.sync_if_due(due).unwrap());
    assert_eq!(s.sync_due(), None);
}
