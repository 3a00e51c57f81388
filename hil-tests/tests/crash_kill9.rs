//! Crash safety with real processes: record two cameras, SIGKILL the edge at random points
//! (while streaming, sealing small segments, grooming, or in the middle of `edge store
//! reindex`), tear the tail of a segment now and then, restart, and prove what survived.
//!
//! `CONVOY_CRASH_ITERATIONS` (default 40) sets the number of kills; `CONVOY_CRASH_SEED`
//! replays a run (the seed is printed).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use hil_tests::{EdgeProc, bin_path, edge_config, sim_camera, wait_until};
use media_store::{Record, SegmentReader, list_logs, list_segments, log_dir};
use sha2::{Digest, Sha256};

const CAMERAS: [&str; 2] = ["a", "b"];

/// Every frame of every camera as `(wall_clock_us, pts)`, checking that no frame appears
/// twice and sequence numbers are gapless except where retention removed whole segments.
fn frames(store: &Path) -> HashMap<String, Vec<(i64, i64)>> {
    let mut out = HashMap::new();
    for log in list_logs(store).unwrap() {
        let mut v: Vec<(i64, i64)> = Vec::new();
        for (_, path) in list_segments(&log_dir(store, &log)).unwrap() {
            let mut r = SegmentReader::open(&path).unwrap();
            while let Some((_, record)) = r.next_record().unwrap() {
                if let Record::Frame(f) = record {
                    if let Some(last) = v.last() {
                        assert!(f.wall_clock_us > last.0, "{log}: frame at {} repeats or goes back", f.wall_clock_us);
                    }
                    v.push((f.wall_clock_us, f.pts));
                }
            }
        }
        out.insert(log, v);
    }
    out
}

/// SHA-256 of every sealed segment (every segment but each log's newest).
fn sealed_hashes(store: &Path) -> HashMap<PathBuf, [u8; 32]> {
    let mut out = HashMap::new();
    for log in list_logs(store).unwrap() {
        let segs = list_segments(&log_dir(store, &log)).unwrap();
        for (_, path) in segs.iter().take(segs.len().saturating_sub(1)) {
            out.insert(path.clone(), Sha256::digest(std::fs::read(path).unwrap()).into());
        }
    }
    out
}

fn verify_json(store: &Path) -> serde_json::Value {
    let out = Command::new(bin_path("edge").unwrap()).args(["store", "verify", "--json"]).arg(store).output().unwrap();
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("verify printed no JSON ({e}): {}", String::from_utf8_lossy(&out.stderr)));
    assert_eq!(out.status.success(), report["ok"] == true, "exit status follows ok");
    report
}

fn frames_recorded(edge: &EdgeProc) -> Option<HashMap<String, u64>> {
    let s = edge.status().ok()?;
    Some(
        s["cameras"]
            .as_array()?
            .iter()
            .map(|c| (c["id"].as_str().unwrap().to_owned(), c["frames_recorded"].as_u64().unwrap()))
            .collect(),
    )
}

/// How many iterations (`var`, or `default`) and a random generator seeded from
/// `CONVOY_CRASH_SEED` (or the clock); prints both so a failing run can be replayed.
fn run_settings(what: &str, var: &str, default: usize) -> (usize, fastrand::Rng) {
    let iterations = std::env::var(var).ok().and_then(|s| s.parse().ok()).unwrap_or(default);
    let seed: u64 =
        std::env::var("CONVOY_CRASH_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| now_us() as u64);
    println!("{what}: {iterations} iterations, CONVOY_CRASH_SEED={seed}");
    (iterations, fastrand::Rng::with_seed(seed))
}

fn now_us() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_micros() as i64
}

#[test]
fn sigkill_at_random_points_loses_nothing_written_and_keeps_the_store_consistent() {
    let (iterations, mut rng) = run_settings("crash harness", "CONVOY_CRASH_ITERATIONS", 40);
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let (_cam, rtsp) = sim_camera(dir.path(), &CAMERAS, 0).unwrap();
    let urls: Vec<String> = CAMERAS.iter().map(|c| format!("{rtsp}/{c}")).collect();
    let cams: Vec<(&str, &str)> = CAMERAS.iter().zip(&urls).map(|(c, u)| (*c, u.as_str())).collect();
    // Small segments (sealed every few seconds), a short durability window, a tight budget
    // and frequent retention passes: every mechanism runs often enough to be hit by a kill.
    let config = edge_config("crash-unit", &store, None, &cams).replace(
        &format!("path = {store:?}\n"),
        &format!(
            "path = {store:?}\nfsync_interval_ms = 200\nsegment_bytes = 65536\nmax_bytes = 1500000\nmin_free_bytes = 0\nretention_interval_s = 1\n"
        ),
    );
    let mut sealed: HashMap<PathBuf, [u8; 32]> = HashMap::new();
    let (mut kills, mut reindex_kills, mut tears, mut dropped_total) = (0, 0, 0, 0u64);
    for i in 0..iterations {
        if i % 9 == 4 {
            // Kill a reindex part-way: the catalog must come back whole at the next open.
            let mut child =
                Command::new(bin_path("edge").unwrap()).args(["store", "reindex"]).arg(&store).spawn().unwrap();
            std::thread::sleep(Duration::from_millis(rng.u64(0..40)));
            let _ = child.kill();
            let _ = child.wait();
            reindex_kills += 1;
        }
        let run_start = now_us();
        let mut edge = EdgeProc::start(dir.path(), "edge", &config).unwrap();
        // Run until both cameras have recorded something new, then a random while more.
        let counted = wait_until("both cameras record", Duration::from_secs(30), || {
            let n = frames_recorded(&edge)?;
            CAMERAS.iter().all(|c| n.get(*c).is_some_and(|v| *v > 0)).then_some(n)
        })
        .unwrap_or_else(|e| panic!("{e}\n{}", edge.proc.log_tail()));
        std::thread::sleep(Duration::from_millis(rng.u64(0..2500)));
        // What the edge says it wrote just before the kill must all be there afterwards.
        let acknowledged = frames_recorded(&edge).unwrap_or(counted);
        edge.proc.signal(nix::sys::signal::Signal::SIGKILL).unwrap();
        edge.proc.wait(Duration::from_secs(10)).unwrap();
        kills += 1;

        // Sometimes also tear the newest segment's tail, as a power cut mid-write would.
        let mut torn_camera = None;
        if rng.u8(0..4) == 0 {
            let cam = CAMERAS[rng.usize(0..CAMERAS.len())];
            let (_, path) = list_segments(&log_dir(&store, cam)).unwrap().pop().unwrap();
            let mut r = SegmentReader::open(&path).unwrap();
            let mut ends = vec![r.valid_len()];
            while r.next_record().unwrap().is_some() {
                ends.push(r.valid_len());
            }
            let end = *ends.last().unwrap();
            if end > ends[0] {
                let cut = rng.u64(ends[0]..end);
                let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
                // Zeros from the cut on (never written), then a few garbage bytes.
                use std::os::unix::fs::FileExt;
                f.write_all_at(&vec![0u8; (end - cut) as usize], cut).unwrap();
                f.write_all_at(&[0xa5; 7], cut).unwrap();
                torn_camera = Some(cam);
                tears += 1;
            }
        }

        let report = verify_json(&store);
        assert_eq!(report["ok"], true, "iteration {i}: {report:#}");
        dropped_total += report["dropped_tail_bytes"].as_u64().unwrap();
        if torn_camera.is_some() {
            assert!(report["dropped_tail_bytes"].as_u64().unwrap() >= 7, "the torn tail is seen");
        }
        let now = frames(&store);
        for cam in CAMERAS {
            if torn_camera == Some(cam) {
                continue;
            }
            // This run's frames are the newest (retention removes the oldest, far from these).
            let this_run = now.get(cam).map_or(0, |v| v.iter().filter(|f| f.0 >= run_start).count());
            let written = acknowledged[cam] as usize;
            assert!(
                this_run >= written,
                "iteration {i}: camera {cam}: the edge had written {written} frames, the store holds {this_run}"
            );
        }
        // Sealed segments never change; retention may only remove them.
        for (path, hash) in &sealed {
            if path.exists() {
                let now: [u8; 32] = Sha256::digest(std::fs::read(path).unwrap()).into();
                assert_eq!(&now, hash, "iteration {i}: sealed segment {} changed", path.display());
            }
        }
        sealed = sealed_hashes(&store);
    }
    // One clean run after everything: the unit starts, recovers and records.
    let mut edge = EdgeProc::start(dir.path(), "edge", &config).unwrap();
    wait_until("recording resumes", Duration::from_secs(30), || {
        frames_recorded(&edge)?.values().all(|v| *v > 10).then_some(())
    })
    .unwrap();
    assert!(edge.proc.stop(Duration::from_secs(20)).unwrap().success());
    let report = verify_json(&store);
    assert_eq!(report["ok"], true, "{report:#}");
    assert_eq!(report["dropped_tail_bytes"], 0, "a clean stop leaves no torn tail");
    println!(
        "crash harness: {kills} SIGKILLs ({reindex_kills} during reindex), {tears} torn tails, \
         {dropped_total} torn bytes cut, final store: {} segments, {} frames",
        report["segments"], report["frames"]
    );
}

/// Throws away what a power cut would: everything after each segment's durable length as the
/// store's sync journal reports it, and segments never made durable at all; sometimes leaves a
/// few garbage bytes where a half-written page would be. Returns the number of bytes dropped.
fn emulate_power_cut(store: &Path, journal: &Path, rng: &mut fastrand::Rng) -> u64 {
    use std::os::unix::fs::FileExt;
    let mut durable: HashMap<PathBuf, u64> = HashMap::new();
    for line in std::fs::read_to_string(journal).unwrap_or_default().lines() {
        let (path, len) = line.rsplit_once(' ').unwrap();
        durable.insert(PathBuf::from(path), len.parse().unwrap());
    }
    let mut dropped = 0;
    for log in list_logs(store).unwrap() {
        for (_, path) in list_segments(&log_dir(store, &log)).unwrap() {
            let data = std::fs::read(&path).unwrap();
            let written_end = data.iter().rposition(|b| *b != 0).map_or(0, |p| p as u64 + 1);
            let Some(&len) = durable.get(&path) else {
                dropped += written_end;
                std::fs::remove_file(&path).unwrap();
                continue;
            };
            if written_end > len {
                let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
                f.write_all_at(&vec![0u8; (written_end - len) as usize], len).unwrap();
                if rng.bool() {
                    f.write_all_at(&[0x5a; 13], len).unwrap();
                }
                dropped += written_end - len;
            }
        }
    }
    dropped
}

#[test]
fn emulated_power_cuts_keep_every_frame_older_than_the_durability_window() {
    let (iterations, mut rng) = run_settings("power-cut emulation", "CONVOY_POWERCUT_ITERATIONS", 15);
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let journal = dir.path().join("sync-journal");
    let (_cam, rtsp) = sim_camera(dir.path(), &CAMERAS, 0).unwrap();
    let urls: Vec<String> = CAMERAS.iter().map(|c| format!("{rtsp}/{c}")).collect();
    let cams: Vec<(&str, &str)> = CAMERAS.iter().zip(&urls).map(|(c, u)| (*c, u.as_str())).collect();
    const WINDOW_MS: i64 = 500;
    let config = edge_config("cut-unit", &store, None, &cams).replace(
        &format!("path = {store:?}\n"),
        // A tight budget: retention retires segments and new ones reuse their files, so power
        // cuts also land in recycled tails.
        &format!(
            "path = {store:?}\nfsync_interval_ms = {WINDOW_MS}\nsegment_bytes = 131072\nmax_bytes = 1500000\n\
             min_free_bytes = 0\nretention_interval_s = 1\n"
        ),
    );
    let mut dropped_total = 0;
    for i in 0..iterations {
        let run_start = now_us();
        let mut cmd = Command::new(bin_path("edge").unwrap());
        cmd.args(["run", "--config"]).arg(dir.path().join("edge.toml")).env("CONVOY_SYNC_JOURNAL", &journal);
        std::fs::write(dir.path().join("edge.toml"), &config).unwrap();
        let mut proc = hil_tests::Proc::spawn("edge", cmd, &dir.path().join("edge.log")).unwrap();
        let web = proc.wait_line("web listening on", Duration::from_secs(30)).unwrap();
        let web = web.rsplit(' ').next().unwrap().to_owned();
        wait_until("both cameras record", Duration::from_secs(30), || {
            let s = hil_tests::get_json(&format!("{web}/api/status")).ok()?;
            s["cameras"].as_array()?.iter().all(|c| c["frames_recorded"].as_u64().unwrap_or(0) > 0).then_some(())
        })
        .unwrap();
        std::thread::sleep(Duration::from_millis(1000 + rng.u64(0..2000)));
        let cut_at = now_us();
        proc.signal(nix::sys::signal::Signal::SIGKILL).unwrap();
        proc.wait(Duration::from_secs(10)).unwrap();
        dropped_total += emulate_power_cut(&store, &journal, &mut rng);
        let _ = std::fs::remove_file(&journal);

        let report = verify_json(&store);
        assert_eq!(report["ok"], true, "iteration {i}: {report:#}");
        for (cam, frames) in frames(&store) {
            let run: Vec<i64> = frames.iter().map(|f| f.0).filter(|w| *w >= run_start).collect();
            let last = *run.last().unwrap_or_else(|| panic!("iteration {i}: {cam} kept nothing of this run"));
            // Every frame received more than a window before the cut is there: the run is
            // continuous up to its last frame, and that frame is recent.
            assert!(
                last >= cut_at - (WINDOW_MS + 500) * 1000,
                "iteration {i}: {cam}: the newest surviving frame is {} ms older than the cut",
                (cut_at - last) / 1000
            );
            for w in run.windows(2) {
                assert!(w[1] - w[0] < 1_000_000, "iteration {i}: {cam}: a hole of {} ms", (w[1] - w[0]) / 1000);
            }
        }
    }
    println!("power-cut emulation: {iterations} cuts, {dropped_total} unsynced bytes thrown away");
}
