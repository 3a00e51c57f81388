//! Retention: size budget and age, oldest first, never what an evidence lock covers; locks
//! outlive the segments that held their records.

mod common;

use std::time::Duration;

use common::*;
use media_store::catalog::Catalog;
use media_store::verify::verify;
use media_store::{Retention, Store, StoreOptions, catalog_path};

fn retention_opts(retention: Retention) -> StoreOptions {
    StoreOptions { retention, ..opts(20_000) }
}

fn fill(s: &mut Store, camera: &str, frames: std::ops::Range<u32>) {
    s.append(&params(camera)).unwrap();
    for i in frames {
        s.append(&frame(camera, i)).unwrap();
    }
}

#[test]
fn size_budget_removes_oldest_segments_first() {
    let dir = tempfile::tempdir().unwrap();
    let budget = 60_000;
    let (mut s, _) = Store::open(
        dir.path(),
        retention_opts(Retention { max_bytes: Some(budget), min_free_bytes: Some(0), ..Default::default() }),
    )
    .unwrap();
    fill(&mut s, "front", 0..300);
    let report = s.groom(T0 + 3_600_000_000).unwrap();
    assert!(report.removed_segments > 0);
    assert_eq!(report.shortfall_bytes, 0);
    assert!(s.total_bytes().unwrap() <= budget, "{}", s.total_bytes().unwrap());
    drop(s);
    let v = verify(dir.path(), None).unwrap();
    assert!(v.ok(), "{:?}", v.errors);
    // What is left is the newest part, without holes.
    let first = v.cameras["front"].first_us.unwrap();
    assert!(first > T0);
    assert_eq!(v.cameras["front"].last_us, Some(T0 + 299 * 40_000));
    assert!(v.cameras["front"].gaps.is_empty());
}

#[test]
fn max_age_applies_per_camera() {
    let dir = tempfile::tempdir().unwrap();
    let mut max_age = std::collections::HashMap::new();
    max_age.insert("front".to_owned(), Duration::from_secs(5));
    let (mut s, _) =
        Store::open(dir.path(), retention_opts(Retention { max_age, min_free_bytes: Some(0), ..Default::default() }))
            .unwrap();
    fill(&mut s, "front", 0..300);
    fill(&mut s, "rear", 0..300);
    // 300 frames are 12 s; at T0 + 12 s, front keeps about its last 5 s, rear keeps all.
    s.groom(T0 + 12_000_000).unwrap();
    drop(s);
    let v = verify(dir.path(), None).unwrap();
    assert!(v.cameras["front"].first_us.unwrap() >= T0 + 7_000_000 - 2_000_000);
    assert_eq!(v.cameras["rear"].first_us, Some(T0));
}

#[test]
fn evidence_locks_keep_their_range_and_survive_their_segment() {
    let dir = tempfile::tempdir().unwrap();
    let (mut s, _) = Store::open(
        dir.path(),
        retention_opts(Retention { max_bytes: Some(40_000), min_free_bytes: Some(0), ..Default::default() }),
    )
    .unwrap();
    fill(&mut s, "front", 0..100);
    // Lock frames 10..20, recorded now (its record sits in the current segment).
    let id = s.lock("front", T0 + 10 * 40_000, T0 + 20 * 40_000, i64::MAX, "incident").unwrap();
    for i in 100..400 {
        s.append(&frame("front", i)).unwrap();
    }
    let report = s.groom(T0 + 100_000_000).unwrap();
    assert!(report.kept_by_lock >= 1);
    assert!(report.carried_forward >= 1, "the lock record's segment went, so it was written again");
    drop(s);
    let v = verify(dir.path(), None).unwrap();
    assert!(v.ok(), "{:?}", v.errors);
    assert!(v.cameras["front"].first_us.unwrap() <= T0 + 10 * 40_000, "locked frames kept");
    assert_eq!(v.cameras["front"].gaps.len(), 1, "a hole between the locked range and the newest");
    // The lock is still in the segments: a rebuilt catalog has it.
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", catalog_path(dir.path()).display()));
    }
    Store::reindex(dir.path(), None).unwrap();
    let locks = Catalog::open_read_only(&catalog_path(dir.path())).unwrap().locks().unwrap();
    assert_eq!(locks.len(), 1);
    assert_eq!(locks[0].lock.id, id);
}

#[test]
fn expired_locks_do_not_keep_anything() {
    let dir = tempfile::tempdir().unwrap();
    let (mut s, _) = Store::open(
        dir.path(),
        retention_opts(Retention { max_bytes: Some(40_000), min_free_bytes: Some(0), ..Default::default() }),
    )
    .unwrap();
    fill(&mut s, "front", 0..400);
    s.lock("front", T0, T0 + 1_000_000, T0 + 50_000_000, "short").unwrap();
    let report = s.groom(T0 + 100_000_000).unwrap();
    assert_eq!(report.kept_by_lock, 0);
    assert!(s.total_bytes().unwrap() <= 40_000);
}

/// Under pressure with `prefer_covered_by`, what the cursor covers goes first even when other
/// recordings are older; once none is left, the rest goes and the report says how much.
#[test]
fn covered_segments_go_before_older_uncovered_ones() {
    let dir = tempfile::tempdir().unwrap();
    let (mut s, _) = Store::open(dir.path(), opts(20_000)).unwrap();
    fill(&mut s, "front", 0..300);
    s.append(&params("rear")).unwrap();
    let mut last = 0;
    for i in 300..600 {
        last = s.append(&frame("rear", i)).unwrap();
    }
    s.set_cursor("rear", "central", last).unwrap();
    let total = s.total_bytes().unwrap();
    drop(s);

    let with = |max_bytes: u64| Retention {
        max_bytes: Some(max_bytes),
        min_free_bytes: Some(0),
        prefer_covered_by: Some("central".into()),
        ..Default::default()
    };
    // A little pressure: only the acknowledged camera loses recordings.
    let (mut s, _) = Store::open(dir.path(), retention_opts(with(total - 200_000))).unwrap();
    let report = s.groom(T0 + 60_000_000).unwrap();
    assert!(report.removed_bytes >= 200_000, "{report:?}");
    assert_eq!(report.uncovered_removed_bytes, 0, "{report:?}");
    assert!(report.covered_reserve_bytes > 200_000, "rear's rest is still covered: {report:?}");
    assert!(report.headroom_bytes < 50_000, "right at the budget: {report:?}");
    drop(s);
    let v = verify(dir.path(), None).unwrap();
    assert!(v.ok(), "{:?}", v.errors);
    assert_eq!(v.cameras["front"].first_us, Some(T0), "the older, unacknowledged camera is whole");
    assert!(v.cameras["rear"].first_us.unwrap() > T0 + 300 * 40_000);

    // Pressure beyond what is covered: the uncovered camera loses its oldest, and it is reported.
    let (mut s, _) = Store::open(dir.path(), retention_opts(with(300_000))).unwrap();
    let report = s.groom(T0 + 60_000_000).unwrap();
    assert!(report.uncovered_removed_bytes > 0, "{report:?}");
    assert_eq!(report.covered_reserve_bytes, 0, "{report:?}");
    drop(s);
    let v = verify(dir.path(), None).unwrap();
    assert!(v.ok(), "{:?}", v.errors);
    assert!(v.cameras["front"].first_us.unwrap() > T0);

    // Without the option the same store loses its oldest recordings first, whoever holds them.
    let dir = tempfile::tempdir().unwrap();
    let (mut s, _) = Store::open(dir.path(), opts(20_000)).unwrap();
    fill(&mut s, "front", 0..300);
    fill(&mut s, "rear", 300..600);
    let total = s.total_bytes().unwrap();
    drop(s);
    let plain = Retention { max_bytes: Some(total - 200_000), min_free_bytes: Some(0), ..Default::default() };
    let (mut s, _) = Store::open(dir.path(), retention_opts(plain)).unwrap();
    let report = s.groom(T0 + 60_000_000).unwrap();
    assert_eq!((report.uncovered_removed_bytes, report.covered_reserve_bytes), (0, 0), "not counted: {report:?}");
    drop(s);
    let v = verify(dir.path(), None).unwrap();
    assert!(v.cameras["front"].first_us.unwrap() > T0);
}
