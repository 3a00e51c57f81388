//! Segment recycling: retention keeps a retired segment file as the log's spare, the next
//! segment reuses it (appends overwrite written blocks, so a sync writes no extent metadata),
//! and the retired records left in it are never read as the new segment's.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use media_store::verify::verify;
use media_store::{Record, Retention, SegmentReader, Store, StoreOptions, list_segments, log_dir};

const SEGMENT: u64 = 20_000;

fn recycling_opts() -> StoreOptions {
    StoreOptions {
        retention: Retention { max_bytes: Some(3 * SEGMENT), min_free_bytes: Some(0), ..Default::default() },
        ..opts(SEGMENT)
    }
}

/// Whether the segment file's header carries the recycled flag.
fn is_recycled(path: &Path) -> bool {
    let bytes = std::fs::read(path).unwrap();
    u32::from_le_bytes(bytes[12..16].try_into().unwrap()) & 4 != 0
}

fn spares(store: &Path, camera: &str) -> Vec<PathBuf> {
    std::fs::read_dir(log_dir(store, camera))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "free"))
        .collect()
}

/// The frame numbers (from `common::frame`) a log holds, in order, checking that sequence
/// numbers only ever grow by one within a segment and never repeat.
fn frame_numbers(store: &Path, camera: &str) -> Vec<u32> {
    let mut seqs = Vec::new();
    let mut numbers = Vec::new();
    for (_, path) in list_segments(&log_dir(store, camera)).unwrap() {
        let mut r = SegmentReader::open(&path).unwrap();
        let mut prev = None;
        while let Some((seq, rec)) = r.next_record().unwrap() {
            if let Some(p) = prev {
                assert_eq!(seq, p + 1, "{}: sequence numbers skip", path.display());
            }
            prev = Some(seq);
            seqs.push(seq);
            if let Record::Frame(f) = rec {
                numbers.push(((f.wall_clock_us - T0) / 40_000) as u32);
            }
        }
    }
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "sequence numbers repeat or go back");
    numbers
}

/// Appends frames `from..to` (parameters first), grooming often enough that each pass
/// retires about one segment, as a unit's periodic retention does with full-size segments.
fn record(s: &mut Store, from: u32, to: u32) {
    s.append(&params("front")).unwrap();
    for i in from..to {
        s.append(&frame("front", i)).unwrap();
        if i % 5 == 0 {
            s.groom(T0).unwrap();
        }
    }
}

#[test]
fn retired_segments_are_reused_and_their_old_records_never_read() {
    let dir = tempfile::tempdir().unwrap();
    let (mut s, _) = Store::open(dir.path(), recycling_opts()).unwrap();
    record(&mut s, 0, 600);
    let recycled = list_segments(&log_dir(dir.path(), "front")).unwrap().iter().filter(|(_, p)| is_recycled(p)).count();
    assert!(recycled > 0, "no segment reused a retired file");
    assert!(spares(dir.path(), "front").len() <= 1, "at most one spare per log");
    drop(s);
    let v = verify(dir.path(), None).unwrap();
    assert!(v.ok(), "{:?}", v.errors);
    assert_eq!(v.dropped_tail_bytes, 0, "stale records of a reused file are not a torn tail");
    let numbers = frame_numbers(dir.path(), "front");
    assert_eq!(*numbers.last().unwrap(), 599);
    assert!(numbers.windows(2).all(|w| w[1] == w[0] + 1), "a hole or a stale frame: {numbers:?}");
}

#[test]
fn a_recycled_tail_is_cut_at_open_and_recording_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let (mut s, _) = Store::open(dir.path(), recycling_opts()).unwrap();
    record(&mut s, 0, 400);
    let (_, tail) = list_segments(&log_dir(dir.path(), "front")).unwrap().pop().unwrap();
    assert!(is_recycled(&tail), "the test needs a recycled tail");
    drop(s);
    let (mut s, rec) = Store::open(dir.path(), recycling_opts()).unwrap();
    assert_eq!(rec.dropped_tail_bytes, 0);
    let len = s.tail_index("front").expect("the tail goes on").len as usize;
    let bytes = std::fs::read(&tail).unwrap();
    assert!(bytes[len..].iter().all(|b| *b == 0), "the retired segment's records are gone from the tail");
    record(&mut s, 400, 800);
    drop(s);
    let v = verify(dir.path(), None).unwrap();
    assert!(v.ok(), "{:?}", v.errors);
    let numbers = frame_numbers(dir.path(), "front");
    assert_eq!(*numbers.last().unwrap(), 799);
    assert!(numbers.windows(2).all(|w| w[1] == w[0] + 1));
}

/// Retention may remove the segment just before the tail (here: the oldest frames are kept
/// by an evidence lock, and the budget is smaller than what that lock keeps); after a restart
/// the chain goes on from that segment's tombstone, and the store verifies.
#[test]
fn the_chain_survives_retention_of_the_segment_before_the_tail_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let opts = || StoreOptions {
        retention: Retention { max_bytes: Some(SEGMENT), min_free_bytes: Some(0), ..Default::default() },
        ..opts(SEGMENT)
    };
    let (mut s, _) = Store::open(dir.path(), opts()).unwrap();
    s.lock("front", T0, T0 + 20 * 40_000, i64::MAX, "evidence").unwrap();
    record(&mut s, 0, 40);
    drop(s);
    let mut next = 40;
    for _ in 0..6 {
        let (mut s, _) = Store::open(dir.path(), opts()).unwrap();
        record(&mut s, next, next + 40);
        next += 40;
        // Retention removes every segment the lock does not keep: the one before the tail too.
        s.groom(T0).unwrap();
        drop(s);
        let v = verify(dir.path(), None).unwrap();
        assert!(v.ok(), "after frame {next}: {:?}", v.errors);
    }
}

/// A power cut while appending to a recycled tail: each page written after the last sync
/// either reached the disk, kept the retired segment's bytes, or holds garbage, in any mix.
/// Whatever survives, nothing synced is lost, no frame is read twice or out of order, and the
/// next run's records are never followed by the crashed run's.
#[test]
fn power_cuts_in_a_recycled_tail_lose_nothing_synced_and_resurrect_nothing() {
    let mut rng = fastrand::Rng::with_seed(7);
    let mut cuts = 0;
    for round in 0..30 {
        let dir = tempfile::tempdir().unwrap();
        let (mut s, _) = Store::open(dir.path(), recycling_opts()).unwrap();
        let warm = 300 + rng.u32(0..200);
        record(&mut s, 0, warm);
        let (_, tail) = list_segments(&log_dir(dir.path(), "front")).unwrap().pop().unwrap();
        if !is_recycled(&tail) {
            continue;
        }
        s.sync().unwrap();
        let durable = s.tail_index("front").unwrap().len;
        let before = std::fs::read(&tail).unwrap();
        // Unsynced appends, staying within this segment.
        let mut n = warm;
        while s.tail_index("front").is_some_and(|t| t.len + 5000 < SEGMENT) && n < warm + 4 {
            s.append(&frame("front", n)).unwrap();
            n += 1;
        }
        drop(s);
        let after = std::fs::read(&tail).unwrap();
        let mut cut = after.clone();
        let end = before.len().max(after.len());
        cut.resize(end, 0);
        let mut page = (durable as usize) & !4095;
        while page < end {
            let range = page.max(durable as usize)..(page + 4096).min(end);
            match rng.u8(0..3) {
                0 => {} // reached the disk
                1 => {
                    for i in range {
                        cut[i] = before.get(i).copied().unwrap_or(0); // never written
                    }
                }
                _ => range.for_each(|i| cut[i] = rng.u8(..)),
            }
            page += 4096;
        }
        std::fs::write(&tail, &cut).unwrap();
        cuts += 1;

        let (mut s, _) = Store::open(dir.path(), recycling_opts()).unwrap();
        let kept = frame_numbers(dir.path(), "front");
        assert!(kept.windows(2).all(|w| w[1] == w[0] + 1), "round {round}: {kept:?}");
        let last = *kept.last().unwrap();
        assert!(last + 1 >= warm, "round {round}: synced frames lost: last kept {last}, synced up to {}", warm - 1);
        // The next run goes on from what survived; a second open finds exactly its records.
        s.append(&params("front")).unwrap();
        for i in last + 1..last + 30 {
            s.append(&frame("front", i)).unwrap();
        }
        drop(s);
        let (s, _) = Store::open(dir.path(), recycling_opts()).unwrap();
        drop(s);
        let v = verify(dir.path(), None).unwrap();
        assert!(v.ok(), "round {round}: {:?}", v.errors);
        let numbers = frame_numbers(dir.path(), "front");
        assert_eq!(*numbers.last().unwrap(), last + 29, "round {round}");
        assert!(numbers.windows(2).all(|w| w[1] == w[0] + 1), "round {round}: {numbers:?}");
    }
    assert!(cuts >= 15, "only {cuts} rounds ended in a recycled tail");
}
