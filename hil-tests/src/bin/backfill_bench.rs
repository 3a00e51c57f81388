//! `backfill_bench`: backfill goodput over an emulated vehicle link, side by side with a plain
//! TCP transfer (a Python sender and receiver) of the same bytes through the same link, and the time from
//! the link's return to video flowing again. Needs root (network namespaces, TUN). Prints a
//! Markdown table.
//!
//! The unit's store holds twice `--seconds` of a 4 Mbit/s camera. Central retrieves two thirds
//! of the first half alone on the link (the goodput), then the same length of the second half
//! while a live viewer watches the unit's camera (live latency during a backfill), then
//! the rest of the first half across an outage (resume), and the viewer watches alone. The
//! emulator's counters of each backfill tell how busy the link was and what it dropped.
//!
//! `cargo build --release --workspace --bins && target/release/backfill_bench [--seconds 60]
//! [--rate-kbit 10000] [--delay-ms 50] [--loss 1]`; for side-by-side runs the unit's
//! controller follows `CONVOY_QUIC_CONGESTION` and `CONVOY_QUIC_LIVE_QUEUE_MS` (`0`: no live
//! window), and `CONVOY_LIVE_DATAGRAMS=0` keeps live frames on the live stream instead of
//! datagrams with parity, which the table's heading names.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use hil_tests::netns::{EmulatedLink, LinkCounters, LinkParams, Netns, unsupported_reason};
use hil_tests::services::{edge_enroll_in, sim_camera_in};
use hil_tests::synthetic_store::SyntheticCamera;
use hil_tests::{CentralProc, EdgeProc, Proc, edge_config, wait_until};
use serde_json::{Value, json};

const T: Duration = Duration::from_secs(120);

fn arg(name: &str, default: f64) -> f64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn now_us() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_micros() as i64)
}

/// `(latency µs, frame bytes)` of the frames the unit received from the camera between `from_us`
/// and `to_us`.
fn live_latencies(seen: &hil_tests::viewer::Seen, from_us: i64, to_us: i64) -> Vec<(i64, usize)> {
    seen.frames
        .iter()
        .zip(&seen.sizes)
        .filter(|(_, (wall, _))| (from_us..to_us).contains(wall))
        .map(|(f, (_, bytes))| (f.2, *bytes))
        .collect()
}

/// What `CONVOY_QUIC_LIVE_QUEUE_MS` makes of the window while live is open.
fn live_window_label() -> String {
    match std::env::var("CONVOY_QUIC_LIVE_QUEUE_MS").ok().and_then(|v| v.parse::<u64>().ok()) {
        Some(0) => "no live bound (CONVOY_QUIC_LIVE_QUEUE_MS=0)".to_owned(),
        Some(ms) => format!("while live is open, a queue of {ms} ms (CONVOY_QUIC_LIVE_QUEUE_MS={ms})"),
        None => format!(
            "while live is open, a queue of {} ms (default)",
            link::live_window::DEFAULT_LIVE_QUEUE_TARGET.as_millis()
        ),
    }
}

fn main() -> anyhow::Result<()> {
    if let Some(why) = unsupported_reason() {
        bail!("needs root and /dev/net/tun: {why}");
    }
    let seconds = arg("--seconds", 60.0) as u32;
    let rate_kbit = arg("--rate-kbit", 10_000.0) as u64;
    let delay_ms = arg("--delay-ms", 50.0);
    let loss = arg("--loss", 1.0);
    let dir = tempfile::tempdir()?;
    let store = dir.path().join("store");
    let (media_bytes, start, end) = hil_tests::synthetic_store::write(
        &store,
        seconds * 2,
        0,
        SyntheticCamera { gop: 25, p_frame_bytes: 15_625, seed: 7 },
    )?;

    let unit_ns = Netns::create("bb-unit")?;
    let central_ns = Netns::create("bb-central")?;
    let params = LinkParams { delay_ms, rate_kbit, loss_pct: loss, ..LinkParams::default() };
    let link = EmulatedLink::start(&unit_ns, &central_ns, &params)?;

    // TCP baseline: the store's segment bytes over HTTP, through the same link.
    // As many bytes as the first backfill below moves (two thirds of the recording).
    let blob = dir.path().join("blob");
    let segment = std::fs::read_dir(store.join("logs/front"))?.next().context("a segment")??.path();
    let size = media_bytes / 3;
    // The first half of the store (`seconds`).
    let half = (end - start) / 2;
    std::fs::write(&blob, &std::fs::read(segment)?[..size as usize])?;
    // A plain TCP sender (its congestion control set on the socket: the namespace's default
    // cannot be changed here) and a receiver that times the transfer from connect to EOF.
    const SENDER: &str = "import socket,sys\ns=socket.socket();s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\n\
        s.bind((sys.argv[1],int(sys.argv[2])));s.listen(1);print('ready',flush=True)\nc,_=s.accept()\n\
        c.setsockopt(socket.IPPROTO_TCP,socket.TCP_CONGESTION,sys.argv[3].encode())\n\
        c.sendall(open(sys.argv[4],'rb').read());c.close()";
    const RECEIVER: &str = "import socket,sys,time\nt=time.monotonic();s=socket.create_connection((sys.argv[1],int(sys.argv[2])))\n\
        n=0\nwhile True:\n  b=s.recv(1<<20)\n  if not b: break\n  n+=len(b)\nprint(n,time.monotonic()-t)";
    let mut tcp = Vec::new();
    for (i, cc) in ["cubic", "bbr"].into_iter().enumerate() {
        let port = (8099 + i).to_string();
        let addr = link.unit_addr().to_string();
        let mut sender = unit_ns.command("/usr/bin/python3");
        sender.args(["-c", SENDER, &addr, &port, cc]).arg(&blob);
        let mut sender = Proc::spawn("tcp-sender", sender, &dir.path().join(format!("tcp-{cc}.log")))?;
        sender.wait_line("ready", T)?;
        let out = central_ns.run("/usr/bin/python3", &["-c", RECEIVER, &addr, &port])?;
        let mut words = out.split_whitespace();
        let got: u64 = words.next().context("bytes")?.parse()?;
        let secs: f64 = words.next().context("seconds")?.parse()?;
        if got != size {
            bail!("the TCP transfer moved {got} of {size} bytes");
        }
        tcp.push((cc, size as f64 * 8.0 / secs / 1000.0));
    }

    // Central and the unit.
    let central = CentralProc::start_in(dir.path(), &central_ns, &format!("{}:0", link.central_addr()))?;
    let web = central.web.clone();
    let api = central.api.clone();
    // A live camera with the unit, for the live relay's latency.
    let (camera, rtsp) = sim_camera_in(dir.path(), &["front"], 0, Some(&unit_ns))?;
    let edge_toml = dir.path().join("edge.toml");
    let config = edge_config(
        "bus-1",
        &store,
        Some((&central.quic, &central.fingerprint)),
        &[("front", &format!("{rtsp}/front"))],
    );
    std::fs::write(&edge_toml, &config)?;
    edge_enroll_in(&edge_toml, &central.quic, &central.add_unit("bus-1")?, Some(&unit_ns))?;
    let _edge = EdgeProc::start_in(dir.path(), "edge", &config, Some(&unit_ns))?;
    let get = |path: String| {
        let (url, api) = (format!("{web}{path}"), api.clone());
        central_ns.call(move || api.get_json(&url).ok()).ok().flatten()
    };
    let rfc = |us: i64| jiff::Timestamp::from_microsecond(us).map(|t| t.to_string()).unwrap_or_default();
    wait_until("central knows the unit's recording", T, || {
        let t = get(format!("/api/units/bus-1/cameras/front/timeline?start={}&end={}", rfc(start), rfc(end)))?;
        (!t["remote_only"].as_array()?.is_empty()).then_some(())
    })?;

    // A backfill, timed from the request to done: (bytes, seconds, the link's counters).
    let request = |from: i64, to: i64| -> anyhow::Result<i64> {
        let url = format!("{web}/api/units/bus-1/cameras/front/retrieve");
        let body = json!({ "start": rfc(from), "end": rfc(to) });
        let api = api.clone();
        let v: Value = central_ns
            .call(move || api.post(&url).send_json(body).ok().and_then(|mut r| r.body_mut().read_json::<Value>().ok()))?
            .context("retrieve")?;
        v["id"].as_i64().context("an id")
    };
    // Also the packets in the link unit → central (queued at the bottleneck or on their way),
    // sampled every 100 ms.
    let backfill = |from: i64, to: i64| -> anyhow::Result<(u64, f64, LinkCounters, Vec<u64>)> {
        link.reset_counters()?;
        let began = Instant::now();
        let id = request(from, to)?;
        let mut in_link = Vec::new();
        let done = wait_until("the backfill finishes", Duration::from_secs(600), || {
            if let Ok(c) = link.counters() {
                in_link.push(c.u2c.queued);
            }
            let s = get(format!("/api/retrievals/{id}"))?;
            (s["state"] == "done" || s["state"] == "failed").then_some(s)
        })?;
        let secs = began.elapsed().as_secs_f64();
        in_link.sort_unstable();
        Ok((done["bytes_total"].as_u64().unwrap_or(0), secs, link.counters()?, in_link))
    };
    // Alone on the link: the goodput.
    let alone_backfill = backfill(start, start + half * 2 / 3)?;
    // With a live viewer: live must not wait behind bulk data.
    let web_for_viewer = api.clone();
    let viewer = central_ns.call(move || hil_tests::LiveViewer::open(&web_for_viewer, "bus-1", "front"))??;
    wait_until("live video reaches the viewer", T, || (viewer.frames() > 25).then_some(()))?;
    let began_us = now_us();
    let live_backfill = backfill(start + half, start + half + half * 2 / 3)?;
    let during_backfill = live_latencies(&viewer.seen(), began_us + 1_000_000, now_us());
    drop(viewer);

    // Resume: the link fails in the middle of the last third; time from its return to progress.
    let id = request(start + half * 2 / 3, start + half)?;
    wait_until("the second backfill starts", T, || {
        (get(format!("/api/retrievals/{id}"))?["bytes_done"].as_u64()? > 0).then_some(())
    })?;
    link.down()?;
    std::thread::sleep(Duration::from_secs(15));
    let stalled = get(format!("/api/retrievals/{id}")).and_then(|s| s["bytes_done"].as_u64()).unwrap_or(0);
    link.up()?;
    let up = Instant::now();
    wait_until("bytes flow again", T, || {
        (get(format!("/api/retrievals/{id}"))?["bytes_done"].as_u64()? > stalled).then_some(())
    })?;
    let resume = up.elapsed().as_secs_f64();
    wait_until("the second backfill finishes", Duration::from_secs(600), || {
        let s = get(format!("/api/retrievals/{id}"))?;
        (s["state"] == "done" || s["state"] == "failed").then_some(())
    })?;

    // Live: one viewer at central for 20 s; latency = arrival − when the unit got the frame.
    let web_for_viewer = api.clone();
    let viewer = central_ns.call(move || hil_tests::LiveViewer::open(&web_for_viewer, "bus-1", "front"))??;
    wait_until("live video reaches the viewer", T, || (viewer.frames() > 25).then_some(()))?;
    let alone_from = now_us();
    link.reset_counters()?;
    std::thread::sleep(Duration::from_secs(20));
    let live_kbit = link.counters()?.u2c.bytes as f64 * 8.0 / 20.0 / 1000.0;
    let alone = live_latencies(&viewer.seen(), alone_from, now_us());
    drop(viewer);
    drop(camera);

    println!(
        "Link: {rate_kbit} kbit/s, {delay_ms} ms each way ({} ms RTT), {loss} % loss each way; {} s of a \
         4 Mbit/s camera ({:.1} MB). QUIC congestion control: {}; {}. Live frames: {}. Load: {}.\n",
        delay_ms * 2.0,
        seconds * 2,
        media_bytes as f64 / 1e6,
        match std::env::var("CONVOY_QUIC_CONGESTION").as_deref() {
            Ok("bbr") => "quinn's BBR (CONVOY_QUIC_CONGESTION=bbr)",
            Ok("lowqueue") => "BBR with a window of 1.2 × the paced BDP (CONVOY_QUIC_CONGESTION=lowqueue)",
            _ => "BBR with a window of 1.2 × the paced BDP, bounded by the measured delivery rate (default)",
        },
        live_window_label(),
        if std::env::var("CONVOY_LIVE_DATAGRAMS").is_ok_and(|v| v == "0") {
            "on the live stream (CONVOY_LIVE_DATAGRAMS=0)"
        } else {
            "datagrams with parity (default)"
        },
        std::fs::read_to_string("/proc/loadavg").unwrap_or_default().trim()
    );
    println!("| transfer | goodput kbit/s | × link rate | × TCP (cubic) | × TCP (bbr) |");
    println!("|---|---:|---:|---:|---:|");
    let row = |what: &str, kbit: f64| {
        println!(
            "| {what} | {kbit:.0} | {:.2} | {:.2} | {:.2} |",
            kbit / rate_kbit as f64,
            kbit / tcp[0].1,
            kbit / tcp[1].1
        )
    };
    // Only the first backfill's: a range in the middle of the recording moves more than its
    // `bytes_total` counts (the margins around the range are estimated from the spans' averages).
    let (bytes, secs, _, _) = &alone_backfill;
    row(
        &format!("Convoy backfill over QUIC ({:.1} MB, request to done)", *bytes as f64 / 1e6),
        *bytes as f64 * 8.0 / secs / 1000.0,
    );
    for (cc, kbit) in &tcp {
        row(&format!("plain TCP, {cc} ({:.1} MB, connect to EOF)", size as f64 / 1e6), *kbit);
    }
    println!(
        "\nThe link unit → central during each backfill, alone and while a viewer watched live (IP bytes \
         delivered ÷ (link rate × time); IP bytes ÷ the retrieval's bytes, the first only; what the emulator \
         dropped; packets in the link, sampled every 100 ms):\n"
    );
    println!(
        "| backfill | seconds | link busy | wire bytes ÷ video bytes | dropped at random | dropped, queue full | \
         packets in the link p50 | p90 | p99 |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (what, (bytes, secs, c, in_link)) in [("alone", &alone_backfill), ("during live", &live_backfill)] {
        let pct = |p: f64| in_link.get(((in_link.len().max(1) - 1) as f64 * p) as usize).copied().unwrap_or(0);
        let overhead = if what == "alone" {
            format!("{:.3}", c.u2c.bytes as f64 / (*bytes).max(1) as f64)
        } else {
            "—".to_owned()
        };
        println!(
            "| {what} | {secs:.2} | {:.3} | {overhead} | {} | {} | {} | {} | {} |",
            c.u2c.bytes as f64 * 8.0 / secs / (rate_kbit as f64 * 1000.0),
            c.u2c.drop_loss,
            c.u2c.drop_queue,
            pct(0.5),
            pct(0.9),
            pct(0.99)
        );
    }
    // The second backfill moves more than its `bytes_total` (see above): compare how busy the
    // link was with bulk data, less what the live camera took.
    let busy = |(_, secs, c, _): &(u64, f64, LinkCounters, Vec<u64>)| {
        c.u2c.bytes as f64 * 8.0 / secs / (rate_kbit as f64 * 1000.0)
    };
    println!(
        "\nWhile a viewer watched, backfill had {:.3} of the link (busy less the live camera's share), {:.2} × \
         its share alone.",
        busy(&live_backfill) - live_kbit / rate_kbit as f64,
        (busy(&live_backfill) - live_kbit / rate_kbit as f64) / busy(&alone_backfill)
    );
    println!(
        "\n(One-way delay × link rate is {:.0} full-sized packets; the live camera alone took {live_kbit:.0} kbit/s of \
         the link.)",
        delay_ms / 1000.0 * rate_kbit as f64 * 1000.0 / 8.0 / 1480.0
    );
    println!("\nTransfer resumed {resume:.2} s after a 15 s outage ended (bytes flowing again at central).");
    println!(
        "\nLive relay, camera → unit → central → one viewer over the same link. Latency: arrival at the viewer − \
         when the unit got the frame. Added: latency − the link's one-way delay ({delay_ms} ms) − the frame's \
         serialisation at the link rate.\n"
    );
    println!("| live | frames | latency p50 ms | p99 ms | max ms | added p50 ms | added p99 ms |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    let link_us_per_byte = 8_000.0 / rate_kbit as f64;
    for (what, frames) in [("alone on the link", &alone), ("during the backfill", &during_backfill)] {
        let mut lat: Vec<f64> = frames.iter().map(|&(l, _)| l as f64 / 1000.0).collect();
        let mut added: Vec<f64> =
            frames.iter().map(|&(l, b)| (l as f64 - b as f64 * link_us_per_byte) / 1000.0 - delay_ms).collect();
        lat.sort_by(f64::total_cmp);
        added.sort_by(f64::total_cmp);
        let pct = |v: &[f64], p: f64| v.get(((v.len().max(1) - 1) as f64 * p) as usize).copied().unwrap_or(0.0);
        println!(
            "| {what} | {} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} |",
            lat.len(),
            pct(&lat, 0.5),
            pct(&lat, 0.99),
            pct(&lat, 1.0),
            pct(&added, 0.5),
            pct(&added, 0.99)
        );
    }
    // What the live datagrams went through (protocol version 5), from central's `/metrics`.
    let metrics_url = format!("{web}/metrics");
    let samples = central_ns.call(move || hil_tests::prometheus::scrape(&metrics_url))??;
    let figure = |name: &str| samples.get(name, &[("unit", "bus-1"), ("camera", "front")]).unwrap_or(0.0);
    println!(
        "\nLive at central over the whole run: {} frames received; {} datagrams, {} bad, {} fragments rebuilt by \
         parity, {} frames asked again, {} given up.",
        figure("convoy_central_live_frames_received_total"),
        figure("convoy_central_live_datagrams_received_total"),
        figure("convoy_central_live_datagrams_bad_total"),
        figure("convoy_central_live_fragments_rebuilt_total"),
        figure("convoy_central_live_nacks_total"),
        figure("convoy_central_live_frames_given_up_total"),
    );
    drop(central);
    Ok(())
}
