//! Backfill across a real (emulated) link: the unit and central each in a network namespace,
//! joined by `link-emu`. The link goes down while the unit records; when it comes back,
//! central retrieves the gap by itself — through another outage in the middle of the
//! transfer, a central restart (SIGKILL) and a unit restart (SIGKILL) — and ends up with every
//! frame of the gap, byte-identical to the unit's, with no duplicate.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use hil_tests::netns::{EmulatedLink, LinkParams, Netns, unsupported_reason};
use hil_tests::{Proc, bin_path, edge_config, get_json, wait_until};
use serde_json::Value;

const T: Duration = Duration::from_secs(90);

fn now_us() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_micros() as i64
}

fn last_word(line: &str) -> String {
    line.rsplit(' ').next().unwrap_or_default().to_owned()
}

/// `GET url` from inside a namespace.
fn get_in(ns: &Netns, url: &str) -> Option<Value> {
    let url = url.to_owned();
    ns.spawn(move || get_json(&url).ok()).ok()?.join().ok()?
}

/// Starts central inside `ns`, QUIC on `quic` (port 0: any); returns it, its web URL and its
/// QUIC address.
fn start_central(dir: &Path, ns: &Netns, quic: &str) -> (Proc, String, String) {
    let config = dir.join("central.toml");
    std::fs::write(
        &config,
        format!(
            "[web]\nlisten = \"127.0.0.1:0\"\n[quic]\nlisten = \"{quic}\"\n[store]\npath = {:?}\n",
            dir.join("central")
        ),
    )
    .unwrap();
    let mut cmd = ns.command(bin_path("central").unwrap());
    cmd.arg("run").arg("--config").arg(&config);
    let mut proc = Proc::spawn("central", cmd, &dir.join("central.log")).unwrap();
    let quic = last_word(&proc.wait_line("QUIC listening on", T).unwrap());
    let web = last_word(&proc.wait_line("web listening on", T).unwrap());
    (proc, web, quic)
}

fn start_edge(dir: &Path, ns: &Netns) -> (Proc, String) {
    let mut cmd = ns.command(bin_path("edge").unwrap());
    cmd.arg("run").arg("--config").arg(dir.join("edge.toml"));
    let mut proc = Proc::spawn("edge", cmd, &dir.join("edge.log")).unwrap();
    let web = last_word(&proc.wait_line("web listening on", T).unwrap());
    (proc, web)
}

#[test]
fn the_link_gap_is_retrieved_through_outages_and_restarts_byte_for_byte() {
    if let Some(why) = unsupported_reason() {
        eprintln!("SKIPPED backfill: {why}");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let unit_ns = Netns::create("bf-unit").unwrap();
    let central_ns = Netns::create("bf-central").unwrap();
    // A slow link, so that the gap takes seconds to cross and can be interrupted.
    let fast = LinkParams { delay_ms: 20.0, rate_kbit: 20_000, ..LinkParams::default() };
    let slow = LinkParams { delay_ms: 20.0, rate_kbit: 600, ..LinkParams::default() };
    let link = EmulatedLink::start(&unit_ns, &central_ns, &fast).unwrap();
    let central_addr = format!("{}:0", link.central_addr());
    let (mut central, central_web, quic) = start_central(dir.path(), &central_ns, &central_addr);

    // The camera lives with the unit.
    let mut cmd = unit_ns.command(bin_path("sim-camera").unwrap());
    cmd.args(["--listen", "127.0.0.1:0", "--mount", "/front", "--clip"]).arg(hil_tests::services::clip_path());
    let mut camera = Proc::spawn("sim-camera", cmd, &dir.path().join("sim-camera.log")).unwrap();
    let rtsp = last_word(&camera.wait_line("listening on rtsp://", T).unwrap()).trim_end_matches('/').to_owned();

    let store = dir.path().join("store");
    let config = edge_config("bus-9", &store, Some((&quic, "")), &[("front", &format!("{rtsp}/front"))])
        .replace("fingerprint = \"\"\n", "");
    std::fs::write(dir.path().join("edge.toml"), &config).unwrap();
    let token = {
        let out = Command::new(bin_path("central").unwrap())
            .args(["unit", "add", "--name", "bus-9", "--config"])
            .arg(dir.path().join("central.toml"))
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        last_word(String::from_utf8_lossy(&out.stdout).trim())
    };
    let out = unit_ns
        .command(bin_path("edge").unwrap())
        .arg("enroll")
        .arg("--config")
        .arg(dir.path().join("edge.toml"))
        .args(["--central", &quic, "--token", &token])
        .output()
        .unwrap();
    assert!(out.status.success(), "enroll: {}", String::from_utf8_lossy(&out.stderr));
    let (mut edge, edge_web) = start_edge(dir.path(), &unit_ns);
    let connected = |edge_web: &str| {
        wait_until("the unit is connected", T, || {
            (get_in(&unit_ns, &format!("{edge_web}/api/status"))?["central_connected"] == true).then_some(())
        })
    };
    connected(&edge_web).unwrap_or_else(|e| panic!("{e}\n{}", edge.log_tail()));

    // The link goes down for a while; the unit records on.
    std::thread::sleep(Duration::from_secs(3));
    link.down().unwrap();
    let down_at = now_us();
    let before =
        get_in(&unit_ns, &format!("{edge_web}/api/status")).unwrap()["cameras"][0]["frames_recorded"].as_u64().unwrap();
    wait_until("the unit records through the outage", T, || {
        let n = get_in(&unit_ns, &format!("{edge_web}/api/status"))?["cameras"][0]["frames_recorded"].as_u64()?;
        (n > before + 20 * 25).then_some(())
    })
    .unwrap();
    link.set(&slow).unwrap();
    link.up().unwrap();
    let up_at = now_us();
    connected(&edge_web).unwrap_or_else(|e| panic!("{e}\n{}", edge.log_tail()));

    // Central queued the gap by itself; interrupt it three ways while it crosses.
    let progress = |central_web: &str| -> Option<(u64, u64)> {
        let units = get_in(
            &central_ns,
            &format!(
                "{central_web}/api/units/bus-9/cameras/front/timeline?start={}&end={}",
                jiff::Timestamp::from_microsecond(down_at).unwrap(),
                jiff::Timestamp::from_microsecond(up_at).unwrap()
            ),
        )?;
        let held: i64 = units["central"]
            .as_array()?
            .iter()
            .map(|r| {
                let p = |i: usize| r[i].as_str().unwrap().parse::<jiff::Timestamp>().unwrap().as_microsecond();
                p(1) - p(0)
            })
            .sum();
        Some((held.max(0) as u64, (up_at - down_at) as u64))
    };
    let some_progress = |central_web: &str, above: u64| {
        wait_until("the gap starts coming", T, || progress(central_web).filter(|(h, _)| *h > above))
    };
    let (held, total) = some_progress(&central_web, 0).unwrap_or_else(|e| panic!("{e}\n{}", central.log_tail()));
    assert!(held < total, "the gap crossed before it could be interrupted ({held} of {total} µs)");
    eprintln!("gap of {:.1} s: {:.1} s at central; cutting the link", total as f64 / 1e6, held as f64 / 1e6);
    // 1. The link fails in the middle of the transfer.
    link.down().unwrap();
    std::thread::sleep(Duration::from_secs(3));
    link.up().unwrap();
    let (held, _) = some_progress(&central_web, held).unwrap_or_else(|e| panic!("{e}\n{}", central.log_tail()));
    eprintln!("{:.1} s at central; killing central", held as f64 / 1e6);
    // 2. Central dies and comes back.
    central.signal(nix::sys::signal::Signal::SIGKILL).unwrap();
    central.wait(T).unwrap();
    let (c, central_web, _) = start_central(dir.path(), &central_ns, &quic);
    central = c;
    some_progress(&central_web, held).unwrap_or_else(|e| panic!("{e}\n{}", central.log_tail()));
    eprintln!("killing the unit");
    // 3. The unit dies and comes back.
    edge.signal(nix::sys::signal::Signal::SIGKILL).unwrap();
    edge.wait(T).unwrap();
    let (e, edge_web) = start_edge(dir.path(), &unit_ns);
    edge = e;
    connected(&edge_web).unwrap_or_else(|e| panic!("{e}\n{}", edge.log_tail()));
    wait_until("the whole gap is at central", Duration::from_secs(180), || {
        let (held, total) = progress(&central_web)?;
        (held + 1_500_000 >= total).then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}\n{}\n{}", central.log_tail(), edge.log_tail()));

    // Every frame of the gap, byte for byte, once.
    let (start, end) = (down_at + 500_000, up_at - 500_000);
    let (unit, unit_dups) = hil_tests::media::frame_hashes(&store, "front", start, end);
    let held = central::retrieved::read_frames(&dir.path().join("central"), "bus-9", "front", start, end).unwrap();
    let mut at_central = std::collections::BTreeMap::new();
    let mut dups = 0;
    for f in held {
        use sha2::Digest;
        if at_central.insert(f.wall_clock_us, (f.keyframe, sha2::Sha256::digest(&f.data).into())).is_some() {
            dups += 1;
        }
    }
    assert_eq!((unit_dups, dups), (0, 0), "no frame twice");
    let missing = unit.keys().filter(|k| !at_central.contains_key(k)).count();
    let differ = unit.iter().filter(|(k, v)| at_central.get(k).is_some_and(|h| h != *v)).count();
    assert!(unit.len() > 15 * 25, "{} frames recorded in the gap", unit.len());
    assert_eq!((missing, differ), (0, 0), "of {} frames of the gap: {missing} missing, {differ} differ", unit.len());
    println!(
        "backfill: {} frames of a {:.0} s gap retrieved through an outage, a central restart and a unit restart",
        unit.len(),
        (up_at - down_at) as f64 / 1e6
    );
    drop(camera);
}
