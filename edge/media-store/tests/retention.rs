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
