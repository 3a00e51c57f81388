//! `central_bench`: central under load, on loopback, each figure beside a baseline measured in
//! the same run. Prints Markdown tables.
//!
//! (a) Live fan-out: one camera relayed by central to M WebSocket viewers, against the same M
//! viewers each pulling the camera directly over RTSP (`ffmpeg -rtsp_transport tcp -i URL -c
//! copy -f null -`, one process per viewer), which is what they would do without central.
//! (b) Fleet ingest: N edge units retrieving recordings into one central at once, against a
//! plain TCP sink (Python, writing to files, one fsync at the end) receiving the same bytes.
//!
//! `cargo build --release --workspace --bins && target/release/central_bench [--viewers
//! 1,10,50,100] [--units 1,4,8] [--seconds 20] [--record-seconds 120] [--skip-fanout]
//! [--skip-ingest] [--dir /var/tmp/central_bench]`

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use hil_tests::bench_clip::camera_clip;
use hil_tests::proc_stats::{self, Memory};
use hil_tests::prometheus::scrape;
use hil_tests::recording_media::sim_camera_with_clip;
use hil_tests::synthetic_store::SyntheticCamera;
use hil_tests::{CentralProc, EdgeProc, LiveViewer, Proc, edge_config, wait_until};
use serde_json::{Value, json};

const T: Duration = Duration::from_secs(120);

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned()
}

fn list(name: &str, default: &str) -> anyhow::Result<Vec<usize>> {
    arg(name).unwrap_or_else(|| default.into()).split(',').map(|v| Ok(v.trim().parse()?)).collect()
}

fn flag(name: &str) -> bool {
    std::env::args().any(|a| a == name)
}

fn now_us() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_micros() as i64)
}

fn rfc3339(us: i64) -> String {
    jiff::Timestamp::from_microsecond(us).map(|t| t.to_string()).unwrap_or_default()
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    sorted.get(((sorted.len().max(1) - 1) as f64 * p).round() as usize).copied().unwrap_or(f64::NAN)
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn main() -> anyhow::Result<()> {
    let seconds = arg("--seconds").map_or(Ok(20), |s| s.parse())?;
    let dir = PathBuf::from(arg("--dir").unwrap_or_else(|| "/var/tmp/central_bench".into()));
    if dir.exists() {
        std::fs::remove_dir_all(&dir)?;
    }
    std::fs::create_dir_all(&dir)?;
    println!(
        "Machine: {} cores ({}), load average at the start {}; all processes on loopback.\n",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        cpu_model(),
        load_average()
    );
    if !flag("--skip-fanout") {
        fanout(&dir, &list("--viewers", "1,10,50,100")?, seconds)?;
    }
    if !flag("--skip-ingest") {
        let record_s = arg("--record-seconds").map_or(Ok(120), |s| s.parse())?;
        ingest(&dir, &list("--units", "1,4,8")?, record_s)?;
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into())
}

/// TCP bytes sent so far on each established connection from local port `port` (`ss`).
fn tcp_sent_by_connection(port: &str) -> anyhow::Result<Vec<u64>> {
    let out = Command::new("ss").args(["-tinH", "state", "established", &format!("( sport = :{port} )")]).output()?;
    anyhow::ensure!(out.status.success(), "ss failed: {}", String::from_utf8_lossy(&out.stderr));
    Ok(String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter_map(|w| w.strip_prefix("bytes_sent:"))
        .filter_map(|v| v.parse::<u64>().ok())
        .collect())
}

/// TCP bytes sent so far on the established connections from local port `port`.
fn tcp_bytes_sent_from(port: &str) -> anyhow::Result<u64> {
    Ok(tcp_sent_by_connection(port)?.iter().sum())
}

/// One fan-out measurement.
struct Fanout {
    viewers: usize,
    window_s: f64,
    /// Convoy: central's CPU seconds and memory; the edge's CPU seconds.
    central_cpu_s: f64,
    central_mem: Memory,
    edge_cpu_s: f64,
    /// Convoy: bytes the unit sent central (QUIC, all of it), and the camera sent (to the unit).
    uplink_bytes: f64,
    camera_bytes_convoy: u64,
    latencies_ms: Vec<f64>,
    frames_per_viewer: f64,
    skipped: f64,
    /// Baseline: the ffmpeg clients' CPU seconds and memory, the camera's bytes sent.
    direct_cpu_s: f64,
    direct_mem: Memory,
    camera_bytes_direct: u64,
    camera_cpu_convoy_s: f64,
    camera_cpu_direct_s: f64,
}

/// (a) Live fan-out.
fn fanout(base: &Path, viewers: &[usize], seconds: u64) -> anyhow::Result<()> {
    let dir = base.join("fanout");
    std::fs::create_dir_all(&dir)?;
    let (clip, kbit) = camera_clip(base, 1280, 720, 4000, 10)?;
    let (camera, url) = sim_camera_with_clip(&dir, &clip, &["front"])?;
    let camera_port = url.rsplit(':').next().context("camera port")?.to_owned();
    let central = CentralProc::start(&dir, 0)?;
    let config = edge_config(
        "bus-1",
        &dir.join("store"),
        Some((&central.quic, &central.fingerprint)),
        &[("front", &format!("{url}/front"))],
    );
    let edge = EdgeProc::start_enrolled(&dir, "edge", &config, "bus-1", &central)?;
    wait_until("the unit is connected and records", T, || {
        let s = scrape(&format!("{}/metrics", edge.web)).ok()?;
        (s.get("convoy_edge_central_connected", &[])? == 1.0
            && s.get("convoy_edge_camera_frames_recorded_total", &[("camera", "front")])? > 25.0)
            .then_some(())
    })?;
    let edge_sent = || -> anyhow::Result<f64> {
        scrape(&format!("{}/metrics", edge.web))?.get("convoy_edge_central_sent_bytes_total", &[]).context("sent bytes")
    };
    let skipped = || -> anyhow::Result<f64> {
        Ok(scrape(&format!("{}/metrics", central.web))?
            .get("convoy_central_live_frames_skipped_total", &[("unit", "bus-1"), ("camera", "front")])
            .unwrap_or(0.0))
    };
    let mut rows = Vec::new();
    for &m in viewers {
        eprintln!("central_bench: fan-out to {m} viewers, {seconds} s each way (load {})", load_average());
        // Convoy: M viewers at central.
        let open: Vec<LiveViewer> =
            (0..m).map(|_| LiveViewer::open(&central.api, "bus-1", "front")).collect::<anyhow::Result<_>>()?;
        wait_until("every viewer gets frames", T, || open.iter().all(|v| v.frames() > 25).then_some(()))?;
        let (c0, e0, k0) = (
            proc_stats::cpu_seconds(central.proc.pid())?,
            proc_stats::cpu_seconds(edge.proc.pid())?,
            proc_stats::cpu_seconds(camera.pid())?,
        );
        let (up0, cam0, skip0, f0) = (edge_sent()?, tcp_bytes_sent_from(&camera_port)?, skipped()?, now_us());
        let frames0: u64 = open.iter().map(LiveViewer::frames).sum();
        let t0 = Instant::now();
        std::thread::sleep(Duration::from_secs(seconds));
        let window_s = t0.elapsed().as_secs_f64();
        let (c1, e1, k1) = (
            proc_stats::cpu_seconds(central.proc.pid())?,
            proc_stats::cpu_seconds(edge.proc.pid())?,
            proc_stats::cpu_seconds(camera.pid())?,
        );
        let (up1, cam1, skip1, f1) = (edge_sent()?, tcp_bytes_sent_from(&camera_port)?, skipped()?, now_us());
        let central_mem = proc_stats::memory(central.proc.pid())?;
        let frames1: u64 = open.iter().map(LiveViewer::frames).sum();
        let mut latencies_ms: Vec<f64> = open
            .iter()
            .flat_map(|v| {
                let seen = v.seen();
                seen.frames
                    .iter()
                    .zip(&seen.sizes)
                    .filter(|(_, (wall, _))| (f0..f1).contains(wall))
                    .map(|(f, _)| f.2 as f64 / 1000.0)
                    .collect::<Vec<_>>()
            })
            .collect();
        latencies_ms.sort_by(f64::total_cmp);
        drop(open);

        // Baseline: M direct RTSP clients.
        let clients = start_direct_clients(&dir, &format!("{url}/front"), m)?;
        let pids: Vec<u32> = clients.iter().map(Proc::pid).collect();
        wait_until("every direct client streams", T, || {
            // The unit's connection and one per client, each past a second of video.
            let sent = tcp_sent_by_connection(&camera_port).ok()?;
            (sent.len() > m && sent.iter().all(|&b| b > kbit as u64 * 125)).then_some(())
        })?;
        let (d0, _) = proc_stats::sum(&pids);
        let k2 = proc_stats::cpu_seconds(camera.pid())?;
        let cam2 = tcp_bytes_sent_from(&camera_port)?;
        let t0 = Instant::now();
        std::thread::sleep(Duration::from_secs(seconds));
        let direct_window = t0.elapsed().as_secs_f64();
        let (d1, direct_mem) = proc_stats::sum(&pids);
        let k3 = proc_stats::cpu_seconds(camera.pid())?;
        let cam3 = tcp_bytes_sent_from(&camera_port)?;
        drop(clients);
        // Same window length for both: scale the baseline to the Convoy window.
        let scale = window_s / direct_window;
        rows.push(Fanout {
            viewers: m,
            window_s,
            central_cpu_s: c1 - c0,
            central_mem,
            edge_cpu_s: e1 - e0,
            uplink_bytes: up1 - up0,
            camera_bytes_convoy: cam1 - cam0,
            latencies_ms,
            frames_per_viewer: (frames1 - frames0) as f64 / m as f64,
            skipped: skip1 - skip0,
            direct_cpu_s: (d1 - d0) * scale,
            direct_mem,
            // Less the unit's own stream from the camera, which runs throughout.
            camera_bytes_direct: (((cam3 - cam2) as f64 * scale) as u64).saturating_sub(cam1 - cam0),
            camera_cpu_convoy_s: k1 - k0,
            camera_cpu_direct_s: (k3 - k2) * scale,
        });
    }
    drop(edge);
    drop(central);
    drop(camera);
    print_fanout(&rows, seconds, kbit);
    Ok(())
}

/// Starts `n` `ffmpeg` processes, each pulling `url` over RTSP/TCP and discarding it.
fn start_direct_clients(dir: &Path, url: &str, n: usize) -> anyhow::Result<Vec<Proc>> {
    (0..n)
        .map(|_| {
            let mut cmd = Command::new("ffmpeg");
            cmd.args(["-nostdin", "-loglevel", "error", "-rtsp_transport", "tcp", "-i", url])
                .args(["-c", "copy", "-f", "null", "-"]);
            Proc::spawn("ffmpeg", cmd, &dir.join("ffmpeg.log"))
        })
        .collect()
}

fn print_fanout(rows: &[Fanout], seconds: u64, kbit: f64) {
    println!(
        "### (a) Live fan-out: one camera to M viewers\n\n1280x720 25 fps H.264 at {kbit:.0} kbit/s from sim-camera; \
         {seconds} s window per row and side. Convoy: camera → edge (recording, as always) → QUIC → central → M \
         WebSocket viewers (`/api/units/{{unit}}/cameras/{{camera}}/live`, read by threads of the bench). \
         Baseline: M `ffmpeg -rtsp_transport tcp -i URL -c copy -f null -` processes pulling the camera directly, \
         what the viewers would do without central (every one a stream over the vehicle's uplink).\n"
    );
    println!(
        "| M | uplink MB (Convoy: unit → central) | uplink MB (direct: camera → M clients) | uplink × direct | central \
         CPU s per viewer-hour | direct client CPU s per viewer-hour | central × direct | central RSS MB | direct \
         clients RSS MB | latency p50 / p99 ms | frames per viewer | skipped | edge CPU % | camera CPU % Convoy / \
         direct |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in rows {
        let viewer_hours = r.viewers as f64 * r.window_s / 3600.0;
        let central = r.central_cpu_s / viewer_hours;
        let direct = r.direct_cpu_s / viewer_hours;
        println!(
            "| {} | {:.1} | {:.1} | {:.3} | {:.1} | {:.1} | {:.2} | {:.1} | {:.1} | {:.0} / {:.0} | {:.0} | {:.0} | \
             {:.1} | {:.1} / {:.1} |",
            r.viewers,
            r.uplink_bytes / 1e6,
            r.camera_bytes_direct as f64 / 1e6,
            r.uplink_bytes / r.camera_bytes_direct as f64,
            central,
            direct,
            central / direct,
            r.central_mem.rss_kib as f64 / 1024.0,
            r.direct_mem.rss_kib as f64 / 1024.0,
            pct(&r.latencies_ms, 0.5),
            pct(&r.latencies_ms, 0.99),
            r.frames_per_viewer,
            r.skipped,
            r.edge_cpu_s / r.window_s * 100.0,
            r.camera_cpu_convoy_s / r.window_s * 100.0,
            r.camera_cpu_direct_s / r.window_s * 100.0,
        );
    }
    println!(
        "\nUplink: Convoy counts the unit's QUIC bytes to central (`convoy_edge_central_sent_bytes_total`, all \
         traffic); direct counts the camera's TCP bytes sent to the M clients (`ss` bytes_sent). Latency: arrival \
         at the viewer − when the unit got the frame from the camera. Skipped: frames viewers missed by falling \
         behind (`convoy_central_live_frames_skipped_total`)."
    );
    let unit_mb: Vec<String> = rows.iter().map(|r| format!("{:.1}", r.camera_bytes_convoy as f64 / 1e6)).collect();
    println!(
        "The camera's stream to the unit itself (recording) was {} MB in the rows' windows; the direct column \
         leaves it out.",
        unit_mb.join(", ")
    );
}

/// One fleet-ingest measurement.
struct Ingest {
    units: usize,
    bytes: u64,
    secs: f64,
    cpu_s: f64,
    mem: Memory,
    received_udp: f64,
    sink_secs: f64,
    sink_cpu_s: f64,
    sink_peak_kib: u64,
}

fn copy_dir(from: &Path, to: &Path) -> anyhow::Result<()> {
    let status = Command::new("cp").arg("-a").arg(from).arg(to).status()?;
    anyhow::ensure!(status.success(), "cp -a {} {}", from.display(), to.display());
    Ok(())
}

/// (b) Fleet ingest.
fn ingest(base: &Path, units: &[usize], record_s: u32) -> anyhow::Result<()> {
    let template = base.join("template-store");
    // Ends a few seconds ago: the unit's catalog settles before the retrieval asks for it.
    let camera = SyntheticCamera { gop: 50, p_frame_bytes: 18_000, seed: 9 };
    let (_, start, end) = hil_tests::synthetic_store::write(&template, record_s, 5_000_000, camera)?;
    let mut rows = Vec::new();
    for &n in units {
        eprintln!("central_bench: fleet ingest from {n} units (load {})", load_average());
        let dir = base.join(format!("ingest-{n}"));
        std::fs::create_dir_all(&dir)?;
        let central = CentralProc::start(&dir, 0)?;
        let mut edges = Vec::new();
        for i in 0..n {
            let unit = format!("bus-{i}");
            let store = dir.join(format!("store-{i}"));
            copy_dir(&template, &store)?;
            // A camera that is not there: the unit holds its recordings, nothing new arrives.
            let config = edge_config(
                &unit,
                &store,
                Some((&central.quic, &central.fingerprint)),
                &[("front", "rtsp://127.0.0.1:9/front")],
            );
            edges.push(EdgeProc::start_enrolled(&dir, &unit, &config, &unit, &central)?);
        }
        let web = central.web.clone();
        let api = central.api.clone();
        for i in 0..n {
            wait_until("central knows the unit's recordings", T, || {
                let t = api
                    .get_json(&format!(
                        "{web}/api/units/bus-{i}/cameras/front/timeline?start={}&end={}",
                        rfc3339(start),
                        rfc3339(end)
                    ))
                    .ok()?;
                (!t["remote_only"].as_array()?.is_empty()).then_some(())
            })?;
        }
        let received = || -> anyhow::Result<f64> {
            let s = scrape(&format!("{web}/metrics"))?;
            Ok(s.family("convoy_central_unit_received_bytes_total").iter().map(|(_, v)| v).sum())
        };
        let pid = central.proc.pid();
        let (cpu0, rx0) = (proc_stats::cpu_seconds(pid)?, received()?);
        let began = Instant::now();
        let ids: Vec<i64> = (0..n)
            .map(|i| {
                let body = json!({ "start": rfc3339(start), "end": rfc3339(end) });
                let v: Value = api
                    .post(&format!("{web}/api/units/bus-{i}/cameras/front/retrieve"))
                    .send_json(body)?
                    .body_mut()
                    .read_json()?;
                v["id"].as_i64().context("a retrieval id")
            })
            .collect::<anyhow::Result<_>>()?;
        let mut bytes = 0;
        for id in &ids {
            let s = wait_until("the retrieval finishes", Duration::from_secs(600), || {
                let s = api.get_json(&format!("{web}/api/retrievals/{id}")).ok()?;
                (s["state"] == "done" || s["state"] == "failed").then_some(s)
            })?;
            if s["state"] != "done" {
                bail!("retrieval {id} failed: {s}");
            }
            bytes += s["bytes_total"].as_u64().unwrap_or(0);
        }
        let secs = began.elapsed().as_secs_f64();
        let (cpu1, rx1, mem) = (proc_stats::cpu_seconds(pid)?, received()?, proc_stats::memory(pid)?);
        drop(edges);
        drop(central);
        let (sink_secs, sink_cpu_s, sink_peak_kib) = tcp_sink(&dir, n, bytes / n as u64)?;
        let _ = std::fs::remove_dir_all(&dir);
        rows.push(Ingest {
            units: n,
            bytes,
            secs,
            cpu_s: cpu1 - cpu0,
            mem,
            received_udp: rx1 - rx0,
            sink_secs,
            sink_cpu_s,
            sink_peak_kib,
        });
    }
    print_ingest(&rows, record_s);
    Ok(())
}

/// A TCP sink: `n` connections, each sending `bytes` from one sender process over loopback,
/// received by another that writes each to a file and fsyncs them at the end. Returns the
/// sink's elapsed seconds, CPU seconds and peak RSS (KiB; `VmHWM`, since `ru_maxrss` keeps
/// the forking parent's peak across exec).
fn tcp_sink(dir: &Path, n: usize, bytes: u64) -> anyhow::Result<(f64, f64, u64)> {
    const SINK: &str = "import os,resource,socket,sys,threading,time\n\
        n=int(sys.argv[1]);d=sys.argv[2]\n\
        s=socket.socket();s.bind(('127.0.0.1',0));s.listen(n);print('ready',s.getsockname()[1],flush=True)\n\
        got=[0]*n;files=[]\n\
        def rx(i,c):\n  f=open(os.path.join(d,'sink-%d'%i),'wb');files.append(f)\n  while True:\n    b=c.recv(1<<20)\n    if not b: break\n    f.write(b);got[i]+=len(b)\n\
        conns=[s.accept()[0] for _ in range(n)];t=time.monotonic()\n\
        th=[threading.Thread(target=rx,args=(i,c)) for i,c in enumerate(conns)]\n\
        [x.start() for x in th];[x.join() for x in th]\n\
        for f in files:\n  f.flush();os.fsync(f.fileno());f.close()\n\
        r=resource.getrusage(resource.RUSAGE_SELF)\n\
        hwm=[l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM:')][0]\n\
        print('done',sum(got),time.monotonic()-t,r.ru_utime+r.ru_stime,hwm,flush=True)";
    const SOURCE: &str = "import socket,sys,threading\n\
        n=int(sys.argv[1]);port=int(sys.argv[2]);path=sys.argv[3]\n\
        def tx():\n  c=socket.create_connection(('127.0.0.1',port))\n  c.sendfile(open(path,'rb'));c.close()\n\
        th=[threading.Thread(target=tx) for _ in range(n)];[x.start() for x in th];[x.join() for x in th]";
    let blob = dir.join("blob");
    let mut rng = fastrand::Rng::with_seed(3);
    std::fs::write(&blob, (0..bytes).map(|_| rng.u8(..)).collect::<Vec<u8>>())?;
    let mut sink = Command::new("/usr/bin/python3");
    sink.args(["-c", SINK, &n.to_string()]).arg(dir);
    let mut sink = Proc::spawn("tcp-sink", sink, &dir.join("tcp-sink.log"))?;
    let port = hil_tests::services::last_word(&sink.wait_line("ready", T)?);
    let out = Command::new("/usr/bin/python3").args(["-c", SOURCE, &n.to_string(), &port]).arg(&blob).output()?;
    anyhow::ensure!(out.status.success(), "the TCP source failed: {}", String::from_utf8_lossy(&out.stderr));
    let line = sink.wait_line("done", T)?;
    let words: Vec<&str> = line.split_whitespace().collect();
    let [_, got, secs, cpu, peak] = words[..] else { bail!("the sink said {line:?}") };
    if got.parse::<u64>()? != bytes * n as u64 {
        bail!("the sink received {got} of {} bytes", bytes * n as u64);
    }
    Ok((secs.parse()?, cpu.parse()?, peak.parse()?))
}

fn print_ingest(rows: &[Ingest], record_s: u32) {
    println!(
        "\n### (b) Fleet ingest: N units retrieving into one central at once\n\nEach unit (a real `edge` process) \
         holds {record_s} s of a ~4 Mbit/s camera (random bytes as frames, so nothing compresses); central is asked \
         to retrieve all of it from every unit at the same moment, and stores it. CPU and RSS are central's, from \
         the requests to the last retrieval done (a new central per row). Baseline: a plain TCP sink (Python, one \
         thread per connection, 1 MiB reads written to a file per connection, fsync at the end) receiving the same \
         bytes from N connections on loopback: no encryption, no index, no framing.\n"
    );
    println!(
        "| N | MB retrieved | seconds | MB/s | central CPU s per GB | sink CPU s per GB | central × sink | central \
         RSS MB (peak) | sink RSS MB (peak) |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in rows {
        let gb = r.bytes as f64 / 1e9;
        let central = r.cpu_s / gb;
        let sink = r.sink_cpu_s / gb;
        println!(
            "| {} | {:.0} | {:.1} | {:.1} | {:.2} | {:.2} | {:.1} | {:.1} ({:.1}) | {:.1} |",
            r.units,
            r.bytes as f64 / 1e6,
            r.secs,
            r.bytes as f64 / 1e6 / r.secs,
            central,
            sink,
            central / sink,
            r.mem.rss_kib as f64 / 1024.0,
            r.mem.peak_kib as f64 / 1024.0,
            r.sink_peak_kib as f64 / 1024.0,
        );
        eprintln!(
            "central_bench: N={}: the sink took {:.1} s; central received {:.1} MB over QUIC (UDP, all traffic)",
            r.units,
            r.sink_secs,
            r.received_udp / 1e6
        );
    }
}
