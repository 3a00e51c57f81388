//! Recovery of a damaged store: a small real store (two cameras, several sealed segments) is
//! copied, the newest segment of one camera is damaged with fuzz-derived bytes, and the store
//! is opened again. Opening may fail with an error but never panic; when it succeeds, one more
//! frame must append and the store must then verify with no errors (but the notice of a
//! segment recovery set aside for an unreadable header: its records are lost), and no record
//! that was durable and wholly before the damaged offset may be lost.
//!
//! Input: `flags u8 | offset u32 LE | len u16 LE | bytes…`
//! - flags bit 0: camera (`front`, with sealed segments before its tail; or `rear`);
//! - flags bit 1: the baseline's newest segments are sealed (as after a power-loss warning);
//! - flags bits 2–3: 0 truncate at `offset`; 1 write `bytes` at `offset` (or `len` zeros when
//!   `bytes` is empty); 2 truncate at `offset` and append `bytes`; 3 flip bit `len % 8` of the
//!   byte at `offset`;
//! - flags bit 4: seal every log after the append, before verifying. On a baseline whose newest
//!   segments were sealed this finds a known bug (the re-sealed segment chains to its own old
//!   digest), so it applies there only with `CONVOY_FUZZ_RESEAL=1`.
//!
//! `offset` is taken modulo the segment's length plus 64 (so past the end too).
#![no_main]

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use convoy_fuzz::{SEGMENT_HEADER, copy_dir, make_store, opts, read_log, record_ends, small_frame};
use libfuzzer_sys::fuzz_target;
use media_store::{Record, Store, list_segments, log_dir};

/// A camera's log in the baseline: its records, and its newest segment with record ends.
struct Log {
    records: Vec<(u64, Record)>,
    tail_first_seq: u64,
    tail: PathBuf,
    tail_ends: Vec<(u64, u64)>,
    tail_len: u64,
}

struct Baseline {
    dir: PathBuf,
    logs: [Log; 2],
}

const CAMERAS: [&str; 2] = ["front", "rear"];

fn baselines() -> &'static [Baseline; 2] {
    static BASELINES: OnceLock<(tempfile::TempDir, [Baseline; 2])> = OnceLock::new();
    let (_, b) = BASELINES.get_or_init(|| {
        let root = tempfile::tempdir().unwrap();
        let make = |sealed: bool| {
            let dir = root.path().join(format!("baseline-{sealed}"));
            make_store(&dir, sealed);
            let log = |camera: &str| {
                let (first_seq, path) = list_segments(&log_dir(&dir, camera)).unwrap().pop().unwrap();
                Log {
                    records: read_log(&dir, camera).unwrap(),
                    tail_first_seq: first_seq,
                    tail_ends: record_ends(&path).into_iter().map(|(seq, _, end)| (seq, end)).collect(),
                    tail_len: std::fs::metadata(&path).unwrap().len(),
                    tail: path.strip_prefix(&dir).unwrap().to_owned(),
                }
            };
            Baseline { logs: [log(CAMERAS[0]), log(CAMERAS[1])], dir }
        };
        let b = [make(false), make(true)];
        (root, b)
    });
    b
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 7 {
        return;
    }
    let flags = data[0];
    let offset = u32::from_le_bytes(data[1..5].try_into().unwrap()) as u64;
    let len = u16::from_le_bytes(data[5..7].try_into().unwrap()) as usize;
    let bytes = &data[7..];
    let cam = usize::from(flags & 1);
    let newest_sealed = flags & 2 != 0;
    let op = (flags >> 2) & 3;
    let reseal_sealed = std::env::var_os("CONVOY_FUZZ_RESEAL").is_some_and(|v| v == "1");
    let seal_after = flags & 16 != 0 && (!newest_sealed || reseal_sealed);

    let baseline = &baselines()[usize::from(newest_sealed)];
    let log = &baseline.logs[cam];
    let camera = CAMERAS[cam];
    let other = CAMERAS[1 - cam];
    let offset = offset % (log.tail_len + 64);

    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    copy_dir(&baseline.dir, dir);
    let lowest = damage(&dir.join(&log.tail), op, offset, len, bytes, log.tail_len);

    let Ok((mut store, recovery)) = Store::open(dir, opts()) else {
        return;
    };
    let next = store.next_seq(camera).expect("the log is still there");
    let seq = store.append(&small_frame(camera, 1000)).expect("append after recovery");
    // A new segment starts with the codec parameters again, then the frame.
    assert!(seq == next || seq == next + 1, "appended at {seq}, next_seq said {next}");
    if seal_after {
        store.seal_all().expect("seal after recovery");
    }
    drop(store);
    let report = media_store::verify::verify(dir, None).expect("verify runs");
    // The only errors allowed: segments recovery itself set aside as `*.corrupt` (an
    // unreadable header; verify reports their records as lost).
    let errors: Vec<&String> = report
        .errors
        .iter()
        .filter(|e| {
            !recovery
                .dropped_segments
                .iter()
                .any(|p| e.starts_with(&p.with_extension("corrupt").display().to_string()) && e.contains("set aside"))
        })
        .collect();
    assert!(errors.is_empty(), "verify errors after {recovery:?}: {errors:?}");

    // Nothing durable and untouched is lost.
    let now = read_log(dir, camera).expect("every segment of a recovered store opens");
    for kept in &log.records {
        let in_older_segment = kept.0 < log.tail_first_seq;
        let before_damage =
            lowest >= SEGMENT_HEADER as u64 && log.tail_ends.iter().any(|(seq, end)| *seq == kept.0 && *end <= lowest);
        assert!(
            !(in_older_segment || before_damage) || now.contains(kept),
            "lost record {} after {recovery:?}",
            kept.0
        );
    }
    let seqs: Vec<u64> = now.iter().map(|(s, _)| *s).collect();
    assert!(gapless_but_for(&seqs, &recovery.dropped_segments), "the sequence has gaps: {seqs:?} after {recovery:?}");
    assert!(now.contains(&(seq, small_frame(camera, 1000))));
    // The other camera's log is untouched (sealing adds a seal, nothing else).
    let other_was = &baseline.logs[1 - cam].records;
    let other_now = read_log(dir, other).expect("the other log opens");
    assert!(other_now.starts_with(other_was), "{other} changed");
    assert!(other_now[other_was.len()..].iter().all(|(_, r)| matches!(r, Record::Seal(_))), "{other} changed");
});

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

/// Damages the segment at `path`; returns the lowest offset whose byte may differ.
fn damage(path: &Path, op: u8, offset: u64, len: usize, bytes: &[u8], file_len: u64) -> u64 {
    let f = OpenOptions::new().read(true).write(true).open(path).unwrap();
    match op {
        0 => f.set_len(offset).unwrap(),
        1 if bytes.is_empty() => f.write_all_at(&vec![0; len % 8192], offset).unwrap(),
        1 => f.write_all_at(bytes, offset).unwrap(),
        2 => {
            f.set_len(offset).unwrap();
            f.write_all_at(bytes, offset).unwrap();
        }
        _ => {
            let at = offset % file_len;
            let mut b = [0u8];
            f.read_exact_at(&mut b, at).unwrap();
            f.write_all_at(&[b[0] ^ (1 << (len % 8))], at).unwrap();
            return at;
        }
    }
    offset
}
