//! Backfill across a real (emulated) link: the unit and central each in a network namespace,
//! joined by `link-emu`. The link goes down while the unit records; when it comes back,
//! central retrieves the gap by itself — through another outage in the middle of the
//! transfer, a central restart (SIGKILL) and a unit restart (SIGKILL) — and ends up with every
//! frame of the gap, byte-identical to the unit's, with no duplicate.

use std::time::Duration;

use hil_tests::media::{central_frame_hashes, compare, frame_hashes, try_central_frame_hashes};
use hil_tests::netns::{EmulatedLink, LinkParams, Netns, unsupported_reason};
use hil_tests::services::{edge_enroll_in, sim_camera_in};
use hil_tests::{CentralApi, CentralProc, EdgeProc, edge_config, get_json, timeline_us, wait_until};
use serde_json::Value;

const T: Duration = Duration::from_secs(90);

fn now_us() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_micros() as i64
}

/// `GET url` from inside a namespace.
fn get_in(ns: &Netns, url: &str) -> Option<Value> {
    let url = url.to_owned();
    ns.call(move || get_json(&url).ok()).ok()?
}

/// `GET url` of central's API from inside a namespace.
fn central_get_in(ns: &Netns, api: &CentralApi, url: &str) -> Option<Value> {
    let (api, url) = (api.clone(), url.to_owned());
    ns.call(move || api.get_json(&url).ok()).ok()?
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
    let mut central = CentralProc::start_in(dir.path(), &central_ns, &central_addr).unwrap();

    // The camera lives with the unit.
    let (_camera, rtsp) = sim_camera_in(dir.path(), &["front"], 0, Some(&unit_ns)).unwrap();
    let store = dir.path().join("store");
    let config = edge_config(
        "bus-9",
        &store,
        Some((&central.quic, &central.fingerprint)),
        &[("front", &format!("{rtsp}/front"))],
    );
    std::fs::write(dir.path().join("edge.toml"), &config).unwrap();
    let token = central.add_unit("bus-9").unwrap();
    edge_enroll_in(&dir.path().join("edge.toml"), &central.quic, &token, Some(&unit_ns)).unwrap();
    let mut edge = EdgeProc::start_in(dir.path(), "edge", &config, Some(&unit_ns)).unwrap();
    let connected = |edge_web: &str| {
        wait_until("the unit is connected", T, || {
            (get_in(&unit_ns, &format!("{edge_web}/api/status"))?["central_connected"] == true).then_some(())
        })
    };
    connected(&edge.web).unwrap_or_else(|e| panic!("{e}\n{}", edge.proc.log_tail()));

    // The link goes down for a while; the unit records on.
    std::thread::sleep(Duration::from_secs(3));
    link.down().unwrap();
    let down_at = now_us();
    let before = get_in(&unit_ns, &format!("{}/api/status", edge.web)).unwrap()["cameras"][0]["frames_recorded"]
        .as_u64()
        .unwrap();
    wait_until("the unit records through the outage", T, || {
        let n = get_in(&unit_ns, &format!("{}/api/status", edge.web))?["cameras"][0]["frames_recorded"].as_u64()?;
        (n > before + 20 * 25).then_some(())
    })
    .unwrap();
    link.set(&slow).unwrap();
    link.up().unwrap();
    let up_at = now_us();
    connected(&edge.web).unwrap_or_else(|e| panic!("{e}\n{}", edge.proc.log_tail()));

    // Central queued the gap by itself; interrupt it three ways while it crosses.
    let progress = |api: &CentralApi| -> Option<(u64, u64)> {
        let units = central_get_in(
            &central_ns,
            api,
            &format!(
                "{}/api/units/bus-9/cameras/front/timeline?start={}&end={}",
                api.web,
                jiff::Timestamp::from_microsecond(down_at).unwrap(),
                jiff::Timestamp::from_microsecond(up_at).unwrap()
            ),
        )?;
        let held = timeline_us(&units["central"]);
        Some((held.max(0) as u64, (up_at - down_at) as u64))
    };
    let some_progress = |api: &CentralApi, above: u64| {
        wait_until("the gap starts coming", T, || progress(api).filter(|(h, _)| *h > above))
    };
    let (held, total) = some_progress(&central.api, 0).unwrap_or_else(|e| panic!("{e}\n{}", central.proc.log_tail()));
    assert!(held < total, "the gap crossed before it could be interrupted ({held} of {total} µs)");
    eprintln!("gap of {:.1} s: {:.1} s at central; cutting the link", total as f64 / 1e6, held as f64 / 1e6);
    // 1. The link fails in the middle of the transfer.
    link.down().unwrap();
    std::thread::sleep(Duration::from_secs(3));
    link.up().unwrap();
    let (held, _) = some_progress(&central.api, held).unwrap_or_else(|e| panic!("{e}\n{}", central.proc.log_tail()));
    eprintln!("{:.1} s at central; killing central", held as f64 / 1e6);
    // 2. Central dies and comes back.
    central.proc.signal(nix::sys::signal::Signal::SIGKILL).unwrap();
    central.proc.wait(T).unwrap();
    central = CentralProc::start_in(dir.path(), &central_ns, &central.quic).unwrap();
    some_progress(&central.api, held).unwrap_or_else(|e| panic!("{e}\n{}", central.proc.log_tail()));
    eprintln!("killing the unit");
    // 3. The unit dies and comes back.
    edge.proc.signal(nix::sys::signal::Signal::SIGKILL).unwrap();
    edge.proc.wait(T).unwrap();
    edge = EdgeProc::start_in(dir.path(), "edge", &config, Some(&unit_ns)).unwrap();
    connected(&edge.web).unwrap_or_else(|e| panic!("{e}\n{}", edge.proc.log_tail()));
    // Done when central holds every frame the unit recorded in the gap (a timeline that is
    // nearly whole may still lack a chunk in its middle).
    let (start, end) = (down_at + 500_000, up_at - 500_000);
    let (unit, unit_dups) = frame_hashes(&store, "front", start, end);
    wait_until("the whole gap is at central", Duration::from_secs(180), || {
        let (held, _) = try_central_frame_hashes(&dir.path().join("central"), "bus-9", "front", start, end).ok()?;
        compare(&unit, &held).0.is_empty().then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}\n{}\n{}", central.proc.log_tail(), edge.proc.log_tail()));

    // Every frame of the gap, byte for byte, once.
    let (at_central, dups) = central_frame_hashes(&dir.path().join("central"), "bus-9", "front", start, end);
    assert_eq!((unit_dups, dups), (0, 0), "no frame twice");
    let (missing, _, differ) = compare(&unit, &at_central);
    let (missing, differ) = (missing.len(), differ.len());
    assert!(unit.len() > 15 * 25, "{} frames recorded in the gap", unit.len());
    assert_eq!((missing, differ), (0, 0), "of {} frames of the gap: {missing} missing, {differ} differ", unit.len());
    println!(
        "backfill: {} frames of a {:.0} s gap retrieved through an outage, a central restart and a unit restart",
        unit.len(),
        (up_at - down_at) as f64 / 1e6
    );
}
