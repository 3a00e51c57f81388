//! `record_bench`: the recording engine beside ffmpeg (issue #4). K simulated 4 Mbit/s H.264
//! cameras served by `sim-camera` on loopback are recorded for D seconds by one `edge`
//! process, then by K `ffmpeg -rtsp_transport tcp -i URL -c copy -f segment …` processes, in
//! the same run. Reports CPU seconds per camera-hour, resident memory and frames lost (frames
//! the camera wrote in full but the recorder did not store, plus frame times the camera could
//! not send because the recorder did not read), and prints a Markdown table.
//!
//! `cargo build --release -p edge -p sim-camera -p hil-tests --bins && target/release/record_bench
//! [--cameras 4,16,64] [--seconds 60] [--recorders edge,ffmpeg] [--dir /var/tmp/record_bench]
//! [--stagger]`
//!
//! `--stagger`: each camera starts its frames at a random point of the first frame time, as
//! independent cameras would; without it the cameras, played together, send in step.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use hil_tests::bench_clip::camera_clip;
use hil_tests::proc_stats::{self, CpuMeter, Memory};
use hil_tests::recording_media::sim_camera_with_clip_args;
use hil_tests::{EdgeProc, Proc, wait_until};

/// Store segments of 32 MiB (a minute of one camera): each camera seals one in a 60 s run.
const SEGMENT_BYTES: u64 = 32 << 20;

/// Who records the cameras.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Recorder {
    Edge,
    Ffmpeg,
}

/// What one phase measured over its window.
struct Measured {
    recorder: Recorder,
    /// Which entry of `--cameras` this phase ran for: its edge and ffmpeg phases pair up.
    round: usize,
    cameras: usize,
    window_s: f64,
    /// CPU seconds of the recorder(s) over the window ([`CpuMeter`]: the scheduler's count).
    cpu_s: f64,
    /// CPU seconds of `sim-camera` over the window.
    camera_cpu_s: f64,
    /// Memory at the window's end (summed over the ffmpeg processes).
    memory: Memory,
    /// Frames the camera wrote in full, frame times it had to skip, and writes that took longer
    /// than a frame time (the recorder not reading).
    written: u64,
    skipped: u64,
    slow_writes: u64,
    /// Frames the recorder stored.
    stored: u64,
    /// The edge's own lost-frame counter (a full recorder queue).
    edge_lost: Option<u64>,
    load: (String, String),
}

impl Measured {
    fn cpu_per_camera_hour(&self) -> f64 {
        self.cpu_s / self.window_s * 3600.0 / self.cameras as f64
    }

    /// Frames lost because of the recorder: written but not stored, and the frame times the
    /// camera skipped if the recorder ever stopped reading (else the camera itself was late:
    /// starved of CPU on this shared machine).
    fn lost(&self) -> u64 {
        let skipped = if self.slow_writes > 0 { self.skipped } else { 0 };
        self.written.saturating_sub(self.stored) + skipped
    }
}

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned()
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

fn main() -> anyhow::Result<()> {
    let cameras: Vec<usize> = arg("--cameras")
        .unwrap_or_else(|| "4,16,64".into())
        .split(',')
        .map(|k| k.trim().parse().context("--cameras takes numbers like 4,16,64"))
        .collect::<anyhow::Result<_>>()?;
    let seconds: u64 = arg("--seconds").map_or(Ok(60), |s| s.parse()).context("--seconds")?;
    let recorders: Vec<Recorder> = arg("--recorders")
        .unwrap_or_else(|| "edge,ffmpeg".into())
        .split(',')
        .map(|r| match r.trim() {
            "edge" => Ok(Recorder::Edge),
            "ffmpeg" => Ok(Recorder::Ffmpeg),
            other => bail!("unknown recorder {other:?} (edge, ffmpeg)"),
        })
        .collect::<anyhow::Result<_>>()?;
    let stagger = std::env::args().any(|a| a == "--stagger");
    let dir = PathBuf::from(arg("--dir").unwrap_or_else(|| "/var/tmp/record_bench".into()));
    std::fs::create_dir_all(&dir)?;
    let (clip, kbit) = camera_clip(&dir, 1280, 720, 4000, 10)?;
    let started_load = load_average();

    let mut rows = Vec::new();
    for (round, &k) in cameras.iter().enumerate() {
        for &recorder in &recorders {
            eprintln!("record_bench: {k} cameras, {recorder:?}, {seconds} s (load {})", load_average());
            let m = run_phase(recorder, round, k, seconds, stagger, &clip, &dir)
                .with_context(|| format!("{recorder:?} recording {k} cameras"))?;
            eprintln!(
                "record_bench: {:.0} CPU s per camera-hour, {:.1} MB RSS, {} frames lost",
                m.cpu_per_camera_hour(),
                m.memory.rss_kib as f64 / 1024.0,
                m.lost()
            );
            rows.push(m);
        }
    }
    print_table(&rows, seconds, kbit, stagger, &started_load);
    Ok(())
}

/// One phase: serve `k` cameras, record them, measure over `seconds`, stop the cameras, count.
fn run_phase(
    recorder: Recorder,
    round: usize,
    k: usize,
    seconds: u64,
    stagger: bool,
    clip: &Path,
    base: &Path,
) -> anyhow::Result<Measured> {
    let dir = base.join(format!("{recorder:?}-{k}").to_lowercase());
    if dir.exists() {
        std::fs::remove_dir_all(&dir)?;
    }
    std::fs::create_dir_all(&dir)?;
    let ids: Vec<String> = (0..k).map(|i| format!("cam{i:03}")).collect();
    let mounts: Vec<&str> = ids.iter().map(String::as_str).collect();
    let args: &[&str] = if stagger { &["--stagger"] } else { &[] };
    let (mut camera, url) = sim_camera_with_clip_args(&dir, clip, &mounts, args)?;
    let settle = Duration::from_secs(30) + Duration::from_millis(200 * k as u64);

    let running = match recorder {
        Recorder::Edge => Running::Edge(start_edge(&dir, &ids, &url, settle)?),
        Recorder::Ffmpeg => Running::Ffmpeg(start_ffmpegs(&dir, &ids, &url, settle)?),
    };
    std::thread::sleep(Duration::from_secs(2));
    let pids = running.pids();
    let load_start = load_average();
    let cpu = CpuMeter::start(pids.clone())?;
    let camera_cpu = CpuMeter::start(vec![camera.pid()])?;
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_secs(seconds));
    let (cpu_s, camera_cpu_s) = (cpu.stop(), camera_cpu.stop());
    let window_s = t0.elapsed().as_secs_f64();
    let (_, memory) = proc_stats::sum(&pids);
    let load = (load_start, load_average());

    // Stop the cameras first: whatever they wrote in full must reach the recorders' storage.
    camera.stop(Duration::from_secs(60))?;
    let (written, skipped, slow_writes) = served(&dir.join("sim-camera.log"))?;
    let (stored, edge_lost) = running.finish(&dir)?;
    for sub in ["store", "ffmpeg"] {
        let _ = std::fs::remove_dir_all(dir.join(sub));
    }
    Ok(Measured {
        recorder,
        round,
        cameras: k,
        window_s,
        cpu_s,
        camera_cpu_s,
        memory,
        written,
        skipped,
        slow_writes,
        stored,
        edge_lost,
        load,
    })
}

/// The recorders of a phase.
enum Running {
    Edge(EdgeProc),
    Ffmpeg(Vec<Proc>),
}

impl Running {
    fn pids(&self) -> Vec<u32> {
        match self {
            Running::Edge(edge) => vec![edge.proc.pid()],
            Running::Ffmpeg(procs) => procs.iter().map(Proc::pid).collect(),
        }
    }

    /// After the cameras stopped: waits until everything is stored, stops the recorders and
    /// returns the frames stored (and the edge's lost-frame counter).
    fn finish(self, dir: &Path) -> anyhow::Result<(u64, Option<u64>)> {
        match self {
            Running::Edge(mut edge) => {
                let mut last = None;
                let totals = wait_until("the edge has stored every frame it got", Duration::from_secs(60), || {
                    std::thread::sleep(Duration::from_millis(500));
                    let status = edge.status().ok()?;
                    let cams = status["cameras"].as_array()?;
                    let streaming = cams.iter().any(|c| c["state"] == "streaming");
                    let sum = |key: &str| cams.iter().filter_map(|c| c[key].as_u64()).sum::<u64>();
                    let now = (sum("frames_recorded"), sum("frames_lost"));
                    let stable = last.replace(now) == Some(now);
                    (stable && !streaming).then_some(now)
                })?;
                let status = edge.proc.stop(Duration::from_secs(120))?;
                if !status.success() {
                    bail!("the edge exited with {status}\n{}", edge.proc.log_tail());
                }
                Ok((totals.0, Some(totals.1)))
            }
            Running::Ffmpeg(mut procs) => {
                for p in &mut procs {
                    if p.wait(Duration::from_secs(30)).is_err() {
                        // Asked to stop, ffmpeg still finishes its file.
                        p.stop(Duration::from_secs(30))?;
                    }
                }
                let mut stored = 0;
                for entry in std::fs::read_dir(dir.join("ffmpeg"))? {
                    for segment in std::fs::read_dir(entry?.path())? {
                        stored += count_packets(&segment?.path())?;
                    }
                }
                Ok((stored, None))
            }
        }
    }
}

/// Starts one edge recording every camera and waits until all stream.
fn start_edge(dir: &Path, ids: &[String], url: &str, settle: Duration) -> anyhow::Result<EdgeProc> {
    let mut config = format!(
        "unit_id = \"bench\"\n[store]\npath = {:?}\nsegment_bytes = {SEGMENT_BYTES}\n[web]\nlisten = \"127.0.0.1:0\"\n",
        dir.join("store")
    );
    for id in ids {
        config += &format!("[[camera]]\nid = {id:?}\nurl = \"{url}/{id}\"\n");
    }
    let edge = EdgeProc::start(dir, "edge", &config)?;
    // Steady state: an ingest thread does not nap while one of its cameras' bit rate is not
    // measured yet (its first 2 s).
    wait_until("every camera streams at the edge, its bit rate measured", settle, || {
        let status = edge.status().ok()?;
        let cams = status["cameras"].as_array()?;
        cams.iter()
            .all(|c| c["state"] == "streaming" && c["frames_recorded"].as_u64() > Some(0) && c["bitrate_bps"].is_u64())
            .then_some(())
    })?;
    Ok(edge)
}

/// Starts one `ffmpeg` per camera, copying to 60 s MP4 segments, and waits until all write.
fn start_ffmpegs(dir: &Path, ids: &[String], url: &str, settle: Duration) -> anyhow::Result<Vec<Proc>> {
    let log = dir.join("ffmpeg.log");
    let mut procs = Vec::new();
    for id in ids {
        let out = dir.join("ffmpeg").join(id);
        std::fs::create_dir_all(&out)?;
        let mut cmd = Command::new("ffmpeg");
        cmd.args(["-nostdin", "-loglevel", "error", "-rtsp_transport", "tcp", "-i", &format!("{url}/{id}")])
            .args(["-c", "copy", "-f", "segment", "-segment_time", "60", "-reset_timestamps", "1"])
            .arg(out.join("%05d.mp4"));
        procs.push(Proc::spawn("ffmpeg", cmd, &log)?);
    }
    wait_until("every ffmpeg writes", settle, || {
        ids.iter()
            .all(|id| {
                std::fs::read_dir(dir.join("ffmpeg").join(id))
                    .is_ok_and(|mut d| d.any(|e| e.is_ok_and(|e| e.metadata().is_ok_and(|m| m.len() > 0))))
            })
            .then_some(())
    })?;
    Ok(procs)
}

/// Frames in a recorded file, by ffprobe.
fn count_packets(file: &Path) -> anyhow::Result<u64> {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0", "-count_packets"])
        .args(["-show_entries", "stream=nb_read_packets", "-of", "csv=p=0"])
        .arg(file)
        .output()
        .context("ffprobe")?;
    String::from_utf8_lossy(&out.stdout).trim().parse().with_context(|| {
        format!("ffprobe could not count {}: {}", file.display(), String::from_utf8_lossy(&out.stderr))
    })
}

/// `sim-camera`'s totals at its exit: frames written in full, frame times skipped, slow writes.
fn served(log: &Path) -> anyhow::Result<(u64, u64, u64)> {
    let text = std::fs::read_to_string(log)?;
    let line = text
        .lines()
        .rev()
        .find(|l| l.contains(" served sessions="))
        .with_context(|| format!("sim-camera logged no totals in {}", log.display()))?;
    let field = |key: &str| -> anyhow::Result<u64> {
        let value = line.split_whitespace().find_map(|w| w.strip_prefix(key)).context("field")?;
        Ok(value.parse()?)
    };
    Ok((field("frames_written=")?, field("frames_skipped=")?, field("slow_writes=")?))
}

fn print_table(rows: &[Measured], seconds: u64, kbit: f64, stagger: bool, load: &str) {
    let mb = |kib: u64| kib as f64 / 1024.0;
    let phase = if stagger { "cameras staggered" } else { "cameras in step" };
    let buffers = edge::receive_buffers::ReceiveBuffers::of_this_system();
    println!(
        "{} s per phase, 1280x720 25 fps H.264 at {kbit:.0} kbit/s (GOP 2 s) from sim-camera on loopback, {phase}; \
         load average (1, 5, 15 min) at the start: {load}; default receive buffers: TCP {} bytes \
         (net.ipv4.tcp_rmem), UDP {} bytes (net.core.rmem_default).\n",
        seconds, buffers.tcp, buffers.udp
    );
    println!(
        "| cameras | recorder | CPU s per camera-hour | × ffmpeg (same round) | RSS MB (peak) | RSS MB per camera | frames \
         written | stored | camera skipped / slow writes | lost | sim-camera CPU % | load at start → end |"
    );
    println!("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|");
    for m in rows {
        let ffmpeg = rows.iter().find(|f| f.recorder == Recorder::Ffmpeg && f.round == m.round);
        let ratio =
            ffmpeg.map_or("–".into(), |f| format!("{:.3}", m.cpu_per_camera_hour() / f.cpu_per_camera_hour()));
        let edge_lost = m.edge_lost.map_or(String::new(), |n| format!(" (queue: {n})"));
        println!(
            "| {} | {:?} | {:.1} | {ratio} | {:.1} ({:.1}) | {:.2} | {} | {} | {} / {} | {}{edge_lost} | {:.0} | {} → {} |",
            m.cameras,
            m.recorder,
            m.cpu_per_camera_hour(),
            mb(m.memory.rss_kib),
            mb(m.memory.peak_kib),
            mb(m.memory.rss_kib) / m.cameras as f64,
            m.written,
            m.stored,
            m.skipped,
            m.slow_writes,
            m.lost(),
            m.camera_cpu_s / m.window_s * 100.0,
            m.load.0,
            m.load.1,
        );
    }
    println!(
        "\nLost = frames the camera wrote in full but the recorder did not store, plus the frame times the camera \
         skipped if a frame write ever took longer than a frame time (the recorder not reading); with no slow \
         write, skipped frame times are the camera's own lateness (starved of CPU) and are not counted."
    );
}
