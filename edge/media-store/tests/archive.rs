//! Multistage archiving: old sealed segments move to a second volume, whole or thinned to key
//! frames; the store still verifies, reads and continues across both volumes.

mod common;

use std::time::Duration;

use common::*;
use media_store::archive::ArchiveOptions;
use media_store::read::read_range;
use media_store::verify::verify;
use media_store::volumes::{archive_dir, log_segments, volume_log_dir};
use media_store::{Record, Retention, Store, StoreOptions, list_segments, log_dir};

fn archive_opts(archive: &std::path::Path, keyframes_only: bool, max_bytes: Option<u64>) -> StoreOptions {
    StoreOptions {
        archive: Some(ArchiveOptions {
            path: archive.to_owned(),
            after: Duration::from_secs(3600),
            keyframes_only,
            max_bytes,
        }),
        retention: Retention { min_free_bytes: Some(0), ..Default::default() },
        ..opts(20_000)
    }
}

/// Frame indices (0-based from T0) that `read_range` returns over everything.
fn read_all(store: &std::path::Path) -> Vec<i64> {
    read_range(store, "front", T0, T0 + 1_000_000_000, None)
        .unwrap()
        .map(Result::unwrap)
        .filter_map(|r| match r {
            Record::Frame(f) => Some((f.wall_clock_us - T0) / 40_000),
            _ => None,
        })
        .collect()
}

/// Records 300 frames (12 s), then archives everything sealed (the clock is 2 h later).
fn record_and_archive(dir: &std::path::Path, opts: StoreOptions) -> Store {
    let (mut s, _) = Store::open(dir, opts).unwrap();
    s.append(&params("front")).unwrap();
    for i in 0..300 {
        s.append(&frame("front", i)).unwrap();
    }
    let report = s.groom(T0 + 7_200_000_000).unwrap();
    assert!(report.archived.segments >= 10, "{report:?}");
    s
}

#[test]
fn whole_segments_move_and_everything_still_reads_and_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let archive = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let s = record_and_archive(&store, archive_opts(archive.path(), false, None));
    drop(s);
    assert_eq!(archive_dir(&store).as_deref(), Some(archive.path()), "offline tools can find the archive");
    assert_eq!(list_segments(&log_dir(&store, "front")).unwrap().len(), 1, "only the open tail stays");
    assert!(list_segments(&volume_log_dir(archive.path(), "front")).unwrap().len() >= 10);
    let v = verify(&store, None).unwrap();
    assert!(v.ok(), "{:?}", v.errors);
    assert_eq!(v.frames, 300);
    assert_eq!(read_all(&store), (0..300).collect::<Vec<_>>());
    // Reopen (the catalog knows where everything is) and keep recording.
    let (mut s, rec) = Store::open(&store, archive_opts(archive.path(), false, None)).unwrap();
    assert_eq!(rec.indexed_segments, 0);
    s.append(&frame("front", 300)).unwrap();
    drop(s);
    assert_eq!(read_all(&store).len(), 301);
    // The catalog rebuilds from both volumes.
    Store::reindex(&store, None).unwrap();
    assert!(verify(&store, None).unwrap().ok());
    assert_eq!(read_all(&store).len(), 301);
}

#[test]
fn thinned_archive_keeps_key_frames_and_a_verifiable_chain() {
    let dir = tempfile::tempdir().unwrap();
    let archive = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let s = record_and_archive(&store, archive_opts(archive.path(), true, None));
    let tail_first = list_segments(&log_dir(&store, "front")).unwrap()[0].0;
    drop(s);
    let v = verify(&store, None).unwrap();
    assert!(v.ok(), "{:?}", v.errors);
    let frames = read_all(&store);
    // Archived part: key frames only (every 25th); the tail: every frame.
    let archived_part: Vec<i64> = frames.iter().copied().take_while(|i| i % 25 == 0).collect();
    assert!(!archived_part.is_empty());
    assert!(frames.iter().all(|i| i % 25 == 0 || *i >= archived_part.len() as i64), "{frames:?}");
    let archived_bytes: u64 = list_segments(&volume_log_dir(archive.path(), "front"))
        .unwrap()
        .iter()
        .map(|(_, p)| p.metadata().unwrap().len())
        .sum();
    assert!(archived_bytes < 100_000, "thinned to about a tenth of ~700 kB: {archived_bytes} bytes");
    // Tampering with a thinned copy is found.
    let (_, first) = list_segments(&volume_log_dir(archive.path(), "front")).unwrap().remove(0);
    let mut bytes = std::fs::read(&first).unwrap();
    let n = bytes.len();
    bytes[n / 2] ^= 1;
    std::fs::write(&first, &bytes).unwrap();
    assert!(!verify(&store, None).unwrap().ok());
    // New recording continues after the archived sequence numbers.
    assert!(tail_first > 0);
}

#[test]
fn a_move_cut_short_is_finished_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let archive = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let opts = StoreOptions { archive: None, ..archive_opts(archive.path(), false, None) };
    {
        let (mut s, _) = Store::open(&store, opts).unwrap();
        s.append(&params("front")).unwrap();
        for i in 0..100 {
            s.append(&frame("front", i)).unwrap();
        }
    }
    // A crash after the archive copy was renamed into place, before the primary copy went;
    // and a temporary of the next move.
    let (seq, path) = list_segments(&log_dir(&store, "front")).unwrap().remove(0);
    let target = volume_log_dir(archive.path(), "front");
    std::fs::create_dir_all(&target).unwrap();
    std::fs::copy(&path, target.join(path.file_name().unwrap())).unwrap();
    std::fs::write(target.join("00000000000000000099.tmp"), b"partial").unwrap();
    let (s, rec) = Store::open(&store, archive_opts(archive.path(), false, None)).unwrap();
    drop(s);
    assert_eq!(rec.finished_archive_moves, 1);
    assert!(!path.exists(), "the primary copy went");
    assert!(!target.join("00000000000000000099.tmp").exists());
    assert_eq!(log_segments(&store, "front").unwrap()[0].0, seq);
    assert!(verify(&store, None).unwrap().ok());
    assert_eq!(read_all(&store), (0..100).collect::<Vec<_>>());
}

#[test]
fn the_archive_has_its_own_budget() {
    let dir = tempfile::tempdir().unwrap();
    let archive = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let mut s = record_and_archive(&store, archive_opts(archive.path(), false, Some(100_000)));
    // The next pass trims the archive to its budget, oldest first.
    let report = s.groom(T0 + 7_200_000_000).unwrap();
    drop(s);
    let archived: u64 = list_segments(&volume_log_dir(archive.path(), "front"))
        .unwrap()
        .iter()
        .map(|(_, p)| p.metadata().unwrap().len())
        .sum();
    assert!(archived <= 100_000, "{archived} {report:?}");
    let v = verify(&store, None).unwrap();
    assert!(v.ok(), "{:?}", v.errors);
    assert_eq!(v.cameras["front"].last_us, Some(T0 + 299 * 40_000));
}
