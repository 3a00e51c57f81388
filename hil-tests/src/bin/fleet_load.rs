//! `fleet_load`: one central with a fleet of thin units connected over real QUIC on loopback
//! (issue 6's load test). Each unit is enrolled like a real one (its own key, a certificate
//! from central's CA, mutual TLS) and then sends catalog updates and events; what is measured
//! is central's memory per connected unit and the latency of the operator API under that load,
//! each beside the same figure with no unit connected, in the same run.
//!
//! Phases: (0) units added through the API and enrolled, none connected: central's RSS and API
//! latency (the baseline); (1) every unit connected and idle (hello and one catalog): RSS, per
//! unit; (2) every unit sending a catalog update and an event every `--every` seconds: RSS and
//! API latency again.
//!
//! `cargo build --release --workspace --bins && target/release/fleet_load [--units 1000]
//! [--cameras 2] [--every 10] [--seconds 30] [--dir /var/tmp/fleet_load]`

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::Context;
use hil_tests::proc_stats;
use hil_tests::thin_unit::{ThinCounters, ThinUnit};
use hil_tests::{CentralProc, wait_until};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

const T: Duration = Duration::from_secs(600);

fn arg<T: std::str::FromStr>(name: &str, default: T) -> anyhow::Result<T> {
    let args: Vec<String> = std::env::args().collect();
    match args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)) {
        Some(v) => v.parse().map_err(|_| anyhow::anyhow!("{name} {v}: not a valid value")),
        None => Ok(default),
    }
}

/// An API call's name and how to make its URL (the argument picks the unit, where one is named).
type Call<'a> = (&'static str, Box<dyn Fn(usize) -> String + 'a>);

/// Latencies of one API call, ms, sorted.
struct Latencies {
    what: &'static str,
    ms: Vec<f64>,
}

impl Latencies {
    fn quantile(&self, q: f64) -> f64 {
        if self.ms.is_empty() {
            return f64::NAN;
        }
        self.ms[((self.ms.len() - 1) as f64 * q).round() as usize]
    }
}

/// Calls the operator API round-robin for `seconds`: the fleet list, new alarms, one unit's
/// camera timeline and the retrievals list, as the operator page does when it refreshes.
fn api_latencies(central: &CentralProc, units: &[ThinUnit], seconds: f64) -> Vec<Latencies> {
    let web = &central.web;
    let calls: Vec<Call> = vec![
        ("GET /api/units", Box::new(move |_| format!("{web}/api/units"))),
        ("GET /api/alarms?state=new", Box::new(move |_| format!("{web}/api/alarms?state=new"))),
        (
            "GET …/timeline (1 h)",
            Box::new(move |i| {
                let end = jiff::Timestamp::now();
                let start = end - jiff::SignedDuration::from_hours(1);
                format!("{web}/api/units/{}/cameras/cam0/timeline?start={start}&end={end}", units[i % units.len()].id)
            }),
        ),
        ("GET /api/retrievals", Box::new(move |_| format!("{web}/api/retrievals"))),
    ];
    let mut out: Vec<Latencies> = calls.iter().map(|(what, _)| Latencies { what, ms: Vec::new() }).collect();
    let until = Instant::now() + Duration::from_secs_f64(seconds);
    let mut i = 0;
    while Instant::now() < until {
        let k = i % calls.len();
        let url = (calls[k].1)(i / calls.len());
        let started = Instant::now();
        let ok = central.get(&url).call().is_ok_and(|mut r| r.body_mut().read_to_vec().is_ok());
        if ok {
            out[k].ms.push(started.elapsed().as_secs_f64() * 1000.0);
        } else {
            eprintln!("API call failed: {url}");
        }
        i += 1;
        // About 20 calls a second: an operator page or two, not a flood.
        std::thread::sleep(Duration::from_millis(50));
    }
    for l in &mut out {
        l.ms.sort_by(f64::total_cmp);
    }
    out
}

fn rss_kib(central: &CentralProc) -> u64 {
    proc_stats::memory(central.proc.pid()).map(|m| m.rss_kib).unwrap_or(0)
}

fn main() -> anyhow::Result<()> {
    let n: usize = arg("--units", 1000)?;
    let cameras: usize = arg("--cameras", 2)?;
    let every: f64 = arg("--every", 10.0)?;
    let seconds: f64 = arg("--seconds", 30.0)?;
    let dir = PathBuf::from(arg("--dir", "/var/tmp/fleet_load".to_owned())?);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let central = CentralProc::start(&dir, 0).context("start central")?;
    let quic: SocketAddr = central.quic.parse()?;
    let units: Vec<ThinUnit> =
        (0..n).map(|i| ThinUnit::new(&dir.join("units"), &format!("load-{i:04}"), cameras)).collect();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;

    // Phase 0: add and enroll every unit; none connected.
    let started = Instant::now();
    for u in &units {
        let answer: Value = central
            .post(&format!("{}/api/units", central.web))
            .send_json(json!({ "name": u.id }))?
            .body_mut()
            .read_json()?;
        let token = answer["token"].as_str().with_context(|| format!("no token for {}: {answer}", u.id))?.to_owned();
        rt.block_on(u.enroll(&central.quic, &token))?;
    }
    eprintln!("{n} units added and enrolled in {:.1} s", started.elapsed().as_secs_f64());
    let rss0 = rss_kib(&central);
    let api0 = api_latencies(&central, &units, seconds.min(15.0));

    // Phase 1: all connected, idle.
    let counters = Arc::new(ThinCounters::default());
    let idle_stop = CancellationToken::new();
    let mut tasks = Vec::new();
    for u in units.clone() {
        let (counters, stop) = (counters.clone(), idle_stop.clone());
        tasks.push(rt.spawn(async move {
            if let Err(e) = u.run(quic, None, counters.clone(), stop).await {
                counters.failed.fetch_add(1, Ordering::Relaxed);
                eprintln!("{}: {e:#}", u.id);
            }
        }));
    }
    wait_until("every unit connected", T, || (counters.connected.load(Ordering::Relaxed) as usize >= n).then_some(()))
        .map_err(|e| anyhow::anyhow!("{e}: {} connected", counters.connected.load(Ordering::Relaxed)))?;
    wait_until("central lists every unit connected", T, || {
        let units = central.get_json(&format!("{}/api/units", central.web)).ok()?;
        let online = units.as_array()?.iter().filter(|u| u["connected"] == true).count();
        (online >= n).then_some(())
    })?;
    // Let catalogs settle.
    std::thread::sleep(Duration::from_secs(5));
    let rss1 = rss_kib(&central);
    idle_stop.cancel();
    for t in tasks.drain(..) {
        rt.block_on(t)?;
    }

    // Phase 2: all connected and busy.
    let busy_counters = Arc::new(ThinCounters::default());
    let stop = CancellationToken::new();
    for u in units.clone() {
        let (counters, stop) = (busy_counters.clone(), stop.clone());
        tasks.push(rt.spawn(async move {
            if let Err(e) = u.run(quic, Some(Duration::from_secs_f64(every)), counters.clone(), stop).await {
                counters.failed.fetch_add(1, Ordering::Relaxed);
                eprintln!("{}: {e:#}", u.id);
            }
        }));
    }
    wait_until("every unit connected again", T, || {
        (busy_counters.connected.load(Ordering::Relaxed) as usize >= n).then_some(())
    })?;
    let busy_from = Instant::now();
    let api2 = api_latencies(&central, &units, seconds);
    let rss2 = rss_kib(&central);
    let busy_s = busy_from.elapsed().as_secs_f64();
    let (catalogs, events) =
        (busy_counters.catalogs.load(Ordering::Relaxed), busy_counters.events.load(Ordering::Relaxed));
    stop.cancel();
    for t in tasks {
        rt.block_on(t)?;
    }
    let failed = counters.failed.load(Ordering::Relaxed) + busy_counters.failed.load(Ordering::Relaxed);
    let alarms = central.get_json(&format!("{}/api/alarms?state=new", central.web))?;

    println!("\n### Fleet load: {n} thin units × {cameras} cameras on one central (loopback)\n");
    println!("| phase | units connected | central RSS MB | RSS per connected unit KB | messages in |");
    println!("|---|---:|---:|---:|---|");
    println!("| enrolled, none connected (baseline) | 0 | {:.1} | — | — |", rss0 as f64 / 1024.0);
    println!(
        "| all connected, idle | {n} | {:.1} | **{:.1}** | hello + 1 catalog each |",
        rss1 as f64 / 1024.0,
        (rss1 as f64 - rss0 as f64) / n as f64
    );
    println!(
        "| all connected, busy | {n} | {:.1} | {:.1} | {catalogs} catalogs + {events} events in {busy_s:.0} s ({:.0}/s) |",
        rss2 as f64 / 1024.0,
        (rss2 as f64 - rss0 as f64) / n as f64,
        (catalogs + events) as f64 / busy_s
    );
    println!(
        "\n| API call | p50 ms, no unit | p99 ms, no unit | p50 ms, {n} busy | p99 ms, {n} busy | calls | × p99 |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for (a, b) in api0.iter().zip(&api2) {
        println!(
            "| {} | {:.1} | {:.1} | {:.1} | **{:.1}** | {} | {:.2} |",
            a.what,
            a.quantile(0.5),
            a.quantile(0.99),
            b.quantile(0.5),
            b.quantile(0.99),
            b.ms.len(),
            b.quantile(0.99) / a.quantile(0.99)
        );
    }
    println!(
        "\nunit sessions failed: {failed}; alarms new at central: {}; load: {}",
        alarms.as_array().map_or(0, Vec::len),
        std::fs::read_to_string("/proc/loadavg").unwrap_or_default().trim()
    );
    Ok(())
}
