//! `live_start_bench`: how long after clicking a camera on central's page the first live frame
//! is on screen (issue 6's target: ≤ 1 s on loopback), in headless Chromium with a real
//! central, a real unit and a camera served by `sim-camera` from an H.264 clip with a key frame
//! every `--gop` frames (25 fps). Measured in the page: from the click to the first frame the
//! `<video>` presents (`requestVideoFrameCallback`). Two cases side by side in one run: *cold*
//! (nobody watches, so central asks the unit for the camera, and the unit starts from the last
//! key frame it recorded, or else waits for the camera's next one) and *warm* (another viewer
//! already watches: central's relay already has the stream). Both may start up to a group in
//! the past; 2 s after the first frame the bench also reads how far the `<video>` plays behind
//! the newest frame it has (buffered end − current time), i.e. whether it caught up.
//!
//! `cargo build --release --workspace --bins && target/release/live_start_bench [--rounds 10]
//! [--gop 25] [--dir /var/tmp/live_start_bench]`

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use hil_tests::bench_clip::camera_clip_with_gop;
use hil_tests::browser::Browser;
use hil_tests::central_page::log_in;
use hil_tests::recording_media::sim_camera_with_clip;
use hil_tests::{CentralProc, EdgeProc, LiveViewer, edge_config, wait_until};
use serde_json::{Value, json};

const T: Duration = Duration::from_secs(60);

fn arg<T: std::str::FromStr>(name: &str, default: T) -> anyhow::Result<T> {
    let args: Vec<String> = std::env::args().collect();
    match args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)) {
        Some(v) => v.parse().map_err(|_| anyhow::anyhow!("{name} {v}: not a valid value")),
        None => Ok(default),
    }
}

/// Clicks the camera's Live button and returns the ms until its first frame is presented.
const CLICK_AND_TIME: &str = "(() => { const t = document.querySelector('.tile[data-camera=\"front\"]'); \
     window.__first = null; window.__behind = null; const t0 = performance.now(); \
     t.querySelector('button.live').click(); \
     const wait = () => { const v = t.querySelector('video'); if (!v) return setTimeout(wait, 2); \
     v.requestVideoFrameCallback(() => { window.__first = performance.now() - t0; \
     setTimeout(() => { const b = v.buffered; \
     window.__behind = b.length ? (b.end(b.length - 1) - v.currentTime) * 1000 : -1; }, 2000); }); }; \
     wait(); return true; })()";

fn eval_until(b: &mut Browser, what: &str, expression: &str) -> anyhow::Result<Value> {
    wait_until(what, T, || b.eval(expression).ok().filter(|v| !v.is_null() && *v != json!(false)))
        .map_err(|e| anyhow::anyhow!("{e}"))
}

/// The camera's viewers and upstreams at central.
fn relay(central: &CentralProc) -> Option<(u64, u64)> {
    let units = central.get_json(&format!("{}/api/units", central.web)).ok()?;
    let front = units[0]["cameras"].as_array()?.iter().find(|c| c["id"] == "front")?.clone();
    Some((front["viewers"].as_u64()?, front["upstreams"].as_u64()?))
}

/// `rounds` clicks; each time the tile is stopped again and, when `cold`, the unit's stream
/// is gone before the next click. Returns the times to the first frame and how far behind the
/// newest frame the video played 2 s later, in ms, each sorted.
fn rounds(b: &mut Browser, central: &CentralProc, rounds: usize, cold: bool) -> anyhow::Result<(Vec<f64>, Vec<f64>)> {
    let mut ms = Vec::new();
    let mut behind = Vec::new();
    for _ in 0..rounds {
        b.eval(CLICK_AND_TIME)?;
        let first = eval_until(b, "the first live frame", "window.__first")?;
        ms.push(first.as_f64().context("a time")?);
        let late = eval_until(b, "the video's place 2 s later", "window.__behind")?;
        behind.push(late.as_f64().context("a time")?);
        b.click(".tile[data-camera=\"front\"] button.live")?;
        if cold {
            wait_until("the unit's stream stops", T, || (relay(central)? == (0, 0)).then_some(()))
                .map_err(|e| anyhow::anyhow!("{e}"))?;
        }
        // A pause, as between an operator's clicks (and not in step with the key frames).
        std::thread::sleep(Duration::from_millis(700 + fastrand::u64(0..900)));
    }
    ms.sort_by(f64::total_cmp);
    behind.sort_by(f64::total_cmp);
    Ok((ms, behind))
}

fn main() -> anyhow::Result<()> {
    let n: usize = arg("--rounds", 10)?;
    let gop: u32 = arg("--gop", 25)?;
    let dir = PathBuf::from(arg("--dir", "/var/tmp/live_start_bench".to_owned())?);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let (clip, _) = camera_clip_with_gop(&dir, 1280, 720, 4000, 10, gop)?;
    let (_camera, rtsp) = sim_camera_with_clip(&dir, &clip, &["front"])?;
    let central = CentralProc::start(&dir, 0)?;
    let config = edge_config(
        "bus-1",
        &dir.join("store"),
        Some((&central.quic, &central.fingerprint)),
        &[("front", &format!("{rtsp}/front"))],
    );
    let _edge = EdgeProc::start_enrolled(&dir, "edge", &config, "bus-1", &central)?;
    let mut b = Browser::launch(1280, 900)?;
    b.goto(&format!("{}/", central.web))?;
    log_in(&mut b, "admin", &central.admin_password()?);
    eval_until(&mut b, "the camera tile", "!!document.querySelector('.tile[data-camera=\"front\"] button.live')")?;
    // Until the unit records, its live stream has nothing to send.
    eval_until(
        &mut b,
        "a moment for the unit to start recording",
        "new Promise(r => setTimeout(() => r(true), 3000))",
    )?;

    let cold = rounds(&mut b, &central, n, true)?;
    let other = LiveViewer::open(&central.api, "bus-1", "front")?;
    wait_until("the other viewer's stream", T, || (relay(&central)?.1 == 1).then_some(()))
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let warm = rounds(&mut b, &central, n, false)?;
    drop(other);

    let q = |v: &[f64], q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
    println!("\n### First live frame in Chromium after the click (loopback; key frame every {gop} frames at 25 fps)\n");
    println!("| case | rounds | min ms | p50 ms | max ms | behind 2 s later p50 / max ms | command |");
    println!("|---|---:|---:|---:|---:|---:|---|");
    for (case, (v, late)) in
        [("cold: nobody watched (the unit starts its stream)", &cold), ("warm: another viewer watches", &warm)]
    {
        println!(
            "| {case} | {} | {:.0} | **{:.0}** | **{:.0}** | {:.0} / {:.0} | `target/release/live_start_bench --rounds {n} \
             --gop {gop}` |",
            v.len(),
            v[0],
            q(v, 0.5),
            v[v.len() - 1],
            q(late, 0.5),
            late[late.len() - 1]
        );
    }
    println!("\nload: {}", std::fs::read_to_string("/proc/loadavg").unwrap_or_default().trim());
    Ok(())
}
