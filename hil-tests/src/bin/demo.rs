//! The local demo: central, one edge unit and two simulated cameras, all on loopback, with
//! their data in a temporary directory. Prints both web addresses; Ctrl-C stops everything.

use std::time::Duration;

use anyhow::Context;
use hil_tests::{CentralProc, EdgeProc, edge_config, sim_camera, wait_until};

fn main() -> anyhow::Result<()> {
    let dir = tempfile::Builder::new().prefix("convoy-demo-").tempdir()?;
    let (stop_tx, stop_rx) = std::sync::mpsc::channel();
    ctrlc::set_handler(move || {
        let _ = stop_tx.send(());
    })?;
    // Preferred ports, falling back to any free one when taken.
    let (_cameras, rtsp) = sim_camera(dir.path(), &["front", "rear"], 8554)
        .or_else(|_| sim_camera(dir.path(), &["front", "rear"], 0))
        .context("cannot start the simulated cameras")?;
    let central = CentralProc::start_on(dir.path(), 4433, 8080)
        .or_else(|_| CentralProc::start_on(dir.path(), 0, 0))
        .context("cannot start central")?;
    let config = edge_config(
        "bus-42",
        &dir.path().join("edge-store"),
        Some((&central.quic, &central.fingerprint)),
        &[("front", &format!("{rtsp}/front")), ("rear", &format!("{rtsp}/rear"))],
    )
    .replace("127.0.0.1:0", "127.0.0.1:8081");
    // Provision the unit as an installer would: a token from central, `edge enroll` with it.
    let config_path = dir.path().join("edge.toml");
    std::fs::write(&config_path, &config)?;
    hil_tests::edge_enroll(&config_path, &central.quic, &central.add_unit("bus-42")?)
        .context("cannot enroll the edge unit")?;
    let edge = EdgeProc::start(dir.path(), "edge", &config)
        .or_else(|_| EdgeProc::start(dir.path(), "edge", &config.replace("127.0.0.1:8081", "127.0.0.1:0")))
        .context("cannot start the edge unit")?;
    wait_until("the unit is connected to central", Duration::from_secs(30), || {
        let units = central.units().ok()?;
        (units.get(0)?["connected"] == true && units[0]["cameras"].as_array()?.len() == 2).then_some(())
    })?;
    println!();
    println!("Convoy demo is running (data in {}):", dir.path().display());
    println!("  central site:       {}/", central.web);
    println!("    log in as:        admin / {}", central.admin_password()?);
    println!("  edge unit bus-42:   {}/", edge.web);
    println!("  simulated cameras:  {rtsp}/front  {rtsp}/rear");
    println!("Press Ctrl-C to stop.");
    let _ = stop_rx.recv();
    println!("stopping");
    Ok(())
}
