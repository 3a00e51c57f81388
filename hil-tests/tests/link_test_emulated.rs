//! The technician's link test measures the link it crosses: a unit and central in network
//! namespaces joined by the link emulator with an asymmetric link (a slow uplink, a faster
//! downlink, as on cellular), and `POST /api/link-test` on the unit must report the round trip
//! and both rates close to what the emulator enforces.

use std::time::Duration;

use hil_tests::netns::{EmulatedLink, LinkDir, LinkParams, Netns, unsupported_reason};
use hil_tests::services::edge_enroll_in;
use hil_tests::technician::{TechClient, set_technician};
use hil_tests::{CentralProc, EdgeProc, edge_config, get_json, wait_until};
use serde_json::Value;

const T: Duration = Duration::from_secs(90);
const PASSWORD: &str = "depot-laptop-7";
/// One-way delay each way, ms.
const DELAY_MS: f64 = 30.0;
/// The unit's uplink, kbit/s.
const UP_KBIT: u64 = 4_000;
/// The unit's downlink, kbit/s.
const DOWN_KBIT: u64 = 12_000;

#[test]
fn the_link_test_reports_the_emulated_round_trip_and_both_rates() {
    if let Some(why) = unsupported_reason() {
        eprintln!("SKIPPED link test over the emulator: {why}");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let unit_ns = Netns::create("lt-unit").unwrap();
    let central_ns = Netns::create("lt-central").unwrap();
    let up = LinkParams { delay_ms: DELAY_MS, rate_kbit: UP_KBIT, ..LinkParams::default() };
    let down = LinkParams { delay_ms: DELAY_MS, rate_kbit: DOWN_KBIT, ..LinkParams::default() };
    let link = EmulatedLink::start(&unit_ns, &central_ns, &up).unwrap();
    link.set_dir(LinkDir::CentralToUnit, &down).unwrap();
    let central = CentralProc::start_in(dir.path(), &central_ns, &format!("{}:0", link.central_addr())).unwrap();

    // A unit without cameras, so that nothing else crosses the link while it is measured.
    let config = edge_config("bus-lt", &dir.path().join("store"), Some((&central.quic, &central.fingerprint)), &[]);
    let config_path = dir.path().join("edge.toml");
    std::fs::write(&config_path, &config).unwrap();
    let token = central.add_unit("bus-lt").unwrap();
    edge_enroll_in(&config_path, &central.quic, &token, Some(&unit_ns)).unwrap();
    set_technician(&config_path, "tech", PASSWORD, false).unwrap();
    let config = std::fs::read_to_string(&config_path).unwrap();
    let edge = EdgeProc::start_in(dir.path(), "edge", &config, Some(&unit_ns)).unwrap();
    let status_url = format!("{}/api/status", edge.web);
    wait_until("the unit is connected over the emulated link", T, || {
        let url = status_url.clone();
        let status = unit_ns.call(move || get_json(&url).ok()).ok()??;
        (status["central_connected"] == true).then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", edge.proc.log_tail()));

    let web = edge.web.clone();
    let answer = unit_ns
        .call(move || -> anyhow::Result<(u16, Value)> {
            let mut tech = TechClient::new(&web);
            anyhow::ensure!(tech.login("tech", PASSWORD)?.code == 200, "technician login refused");
            let a = tech.call("/api/link-test", Some(serde_json::json!({})))?;
            Ok((a.code, a.body))
        })
        .unwrap()
        .unwrap();
    let (code, r) = answer;
    assert_eq!(code, 200, "{r}\n{}", edge.proc.log_tail());
    eprintln!("link test over {UP_KBIT}/{DOWN_KBIT} kbit/s, {} ms RTT: {r}", 2.0 * DELAY_MS);

    let rtt = 2.0 * DELAY_MS;
    let ping = r["ping_ms"].as_f64().unwrap();
    assert!(ping >= rtt * 0.95 && ping < rtt * 3.0, "ping {ping} ms over a {rtt} ms link: {r}");
    let up_bps = r["upload_bps"].as_u64().unwrap() as f64;
    let down_bps = r["download_bps"].as_u64().unwrap_or_else(|| panic!("no download measured: {r}")) as f64;
    assert!(r["download_error"].is_null(), "{r}");
    let (up_rate, down_rate) = ((UP_KBIT * 1000) as f64, (DOWN_KBIT * 1000) as f64);
    assert!((0.5 * up_rate..=1.1 * up_rate).contains(&up_bps), "upload {up_bps} b/s over a {up_rate} b/s uplink: {r}");
    assert!(
        (0.5 * down_rate..=1.1 * down_rate).contains(&down_bps),
        "download {down_bps} b/s over a {down_rate} b/s downlink: {r}"
    );
    assert!(r["download_bytes"].as_u64().unwrap() >= 128 * 1024, "{r}");
    assert!(r["download_seconds"].as_f64().unwrap() > 0.0, "{r}");
}
