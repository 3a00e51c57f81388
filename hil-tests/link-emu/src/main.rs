//! `link-emu`: joins two network namespaces through an emulated link. See README.md.

use std::io::{BufRead, BufReader, IsTerminal, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::channel;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use link_emu::control::{After, counters_line, handle};
use link_emu::engine::Link;
use link_emu::params::{Dir, DirParams, apply_words};
use link_emu::tun;

/// Joins two network namespaces through an emulated link (delay, jitter, loss, rate, outage).
///
/// Creates a TUN device in each namespace, gives it its address, and carries IP packets
/// between them. Prints `ready unit=ADDR central=ADDR dev=DEV` on stdout when traffic can
/// flow; then takes commands on stdin (and on --control): `set delay_ms=50 loss=1`, `down`,
/// `up`, `get`, `counters`, `reset`, `quit`, `help`.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// The unit's network namespace (made with `ip netns add`).
    #[arg(long)]
    unit_ns: String,
    /// Central's network namespace.
    #[arg(long)]
    central_ns: String,
    /// The unit side's address and prefix.
    #[arg(long, default_value = "10.77.0.1/24")]
    unit_addr: String,
    /// Central's side's address and prefix (same subnet).
    #[arg(long, default_value = "10.77.0.2/24")]
    central_addr: String,
    /// The TUN device's name in both namespaces.
    #[arg(long, default_value = "emu0")]
    dev: String,
    /// The devices' MTU.
    #[arg(long, default_value_t = 1500)]
    mtu: u32,
    /// Initial parameters, as words of the `set` command (e.g. "delay_ms=50 rate_kbit=10000");
    /// may be given more than once.
    #[arg(long = "set", value_name = "WORDS")]
    set: Vec<String>,
    /// Seed of the random loss and jitter (same seed and same packets: same drops).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Also take commands on this Unix socket (one answer line per command line).
    #[arg(long, value_name = "PATH")]
    control: Option<PathBuf>,
    /// Print a `stats` line (rates over the interval, then all counters) every this many ms.
    #[arg(long, value_name = "MS")]
    stats_ms: Option<u64>,
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .init();
    let args = Args::parse();
    let started = Instant::now();

    let mut params = [DirParams::default(), DirParams::default()];
    for words in &args.set {
        apply_words(&mut params, words.split_whitespace()).with_context(|| format!("--set {words:?}"))?;
    }
    let unit = tun::open_in_netns(&args.unit_ns, &args.dev).context("unit side")?;
    let central = tun::open_in_netns(&args.central_ns, &args.dev).context("central side")?;
    tun::configure(&args.unit_ns, &args.dev, &args.unit_addr, args.mtu).context("unit side")?;
    tun::configure(&args.central_ns, &args.dev, &args.central_addr, args.mtu).context("central side")?;

    let link = Arc::new(Link::new(params, args.seed));
    let (fatal_tx, fatal_rx) = channel();
    link.start(unit, central, fatal_tx).context("starting threads")?;

    if let Some(path) = &args.control {
        let _ = std::fs::remove_file(path);
        let listener = UnixListener::bind(path).with_context(|| format!("binding {}", path.display()))?;
        let link = link.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                match conn {
                    Ok(conn) => {
                        let link = link.clone();
                        std::thread::spawn(move || serve_socket(&link, started, conn));
                    }
                    Err(e) => tracing::warn!("control socket: {e}"),
                }
            }
        });
    }
    if let Some(ms) = args.stats_ms {
        let link = link.clone();
        std::thread::spawn(move || print_stats(&link, started, Duration::from_millis(ms.max(1))));
    }
    {
        let link = link.clone();
        std::thread::spawn(move || {
            for line in std::io::stdin().lock().lines() {
                let Ok(line) = line else { break };
                if let Some((answer, after)) = handle(&link, started, &line) {
                    println!("{answer}");
                    if after == After::Quit {
                        std::process::exit(0);
                    }
                }
            }
        });
    }

    let addr = |cidr: &str| cidr.split('/').next().unwrap_or(cidr).to_owned();
    tracing::info!(
        "link up: {} {} <-> {} {}; u2c: {}; c2u: {}",
        args.unit_ns,
        args.unit_addr,
        args.central_ns,
        args.central_addr,
        link.dir(Dir::U2c).params(),
        link.dir(Dir::C2u).params()
    );
    println!("ready unit={} central={} dev={}", addr(&args.unit_addr), addr(&args.central_addr), args.dev);

    match fatal_rx.recv() {
        Ok(e) => bail!(e),
        Err(_) => bail!("packet threads ended"),
    }
}

/// Answers commands on one control connection until it closes.
fn serve_socket(link: &Link, started: Instant, conn: UnixStream) {
    let Ok(mut out) = conn.try_clone() else { return };
    for line in BufReader::new(conn).lines() {
        let Ok(line) = line else { return };
        if let Some((answer, after)) = handle(link, started, &line) {
            if writeln!(out, "{answer}").is_err() {
                return;
            }
            if after == After::Quit {
                std::process::exit(0);
            }
        }
    }
}

/// Prints `stats uptime_ms=… u2c.mbit=… c2u.mbit=… <counters>` every `every`.
fn print_stats(link: &Link, started: Instant, every: Duration) {
    let mut next = Instant::now() + every;
    let mut last = [0u64; 2];
    loop {
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
        next += every;
        let mut rates = String::new();
        for dir in Dir::BOTH {
            let bytes = link.dir(dir).counters().bytes;
            let delta = bytes - last[dir.index()];
            last[dir.index()] = bytes;
            let mbit = delta as f64 * 8.0 / every.as_secs_f64() / 1e6;
            rates.push_str(&format!(" {}.mbit={mbit:.3}", dir.name()));
        }
        let counters = counters_line(link, started);
        println!("stats{rates} {}", counters.trim_start_matches("counters "));
    }
}
