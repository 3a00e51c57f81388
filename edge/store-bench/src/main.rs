//! `store-bench`: Convoy's media store side by side with the physical limit (raw appends) and
//! the naive design (a SQLite row per frame), in one run, on one file system. Prints the
//! tables and writes them into BENCHMARKS.md (section "Media store").
//!
//! 1. Append throughput, CPU per GB and write amplification of the three writers, each fed
//!    the same synthetic camera workload and made durable once per simulated second.
//! 2. Recovery time (`Store::open` after a drop without sealing) vs store size.

mod measure;
mod recovery;
mod report;
mod workload;
mod writers;

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Parser;

use crate::measure::{Device, Measured, measure, syncfs};
use crate::recovery::RecoveryRow;
use crate::report::AppendResults;
use crate::workload::{Generator, Workload};
use crate::writers::{ConvoyOptions, Kind, MediaWriter};

const GIB: f64 = (1u64 << 30) as f64;

/// Benchmarks Convoy's media store against raw files and a SQLite row per frame.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// The bench makes (and removes) its temporary directory in this one; its file system is
    /// the one measured.
    #[arg(long, default_value = "/var/tmp")]
    dir: PathBuf,
    /// Media each writer records, GiB.
    #[arg(long, default_value_t = 2.0)]
    bytes: f64,
    /// Cameras recording at once.
    #[arg(long, default_value_t = 8)]
    cameras: usize,
    /// Size of the big store for the recovery benchmark, GiB (the small one is 1 GiB).
    #[arg(long, default_value_t = 4.0)]
    big: f64,
    /// Rounds of the append benchmark; each cell is the writer's best round.
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// Writers to run (raw is the baseline of the ratios).
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = [Kind::Raw, Kind::Convoy, Kind::Sqlite])]
    writers: Vec<Kind>,
    /// Skip the append benchmark.
    #[arg(long)]
    skip_append: bool,
    /// Skip the recovery benchmark.
    #[arg(long)]
    skip_recovery: bool,
    /// Convoy encrypts media at rest (XChaCha20-Poly1305), to measure what that costs.
    #[arg(long)]
    encrypt: bool,
    /// Convoy group-commits with one `syncfs` (`sync_whole_filesystem`) instead of an
    /// `fdatasync` per camera.
    #[arg(long)]
    syncfs: bool,
    /// Convoy runs full, in steady state: a retention budget of this many GiB, filled (not
    /// measured) before each round, groomed every simulated 30 s; new segments reuse
    /// retired segments' files. Raw still appends to new files.
    #[arg(long)]
    steady_state: Option<f64>,
    /// The Markdown file to write the results into.
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/../../BENCHMARKS.md"))]
    report: PathBuf,
    /// Print only; leave the report file alone.
    #[arg(long)]
    no_report: bool,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let workload = Workload::new(args.cameras);
    let tmp = tempfile::Builder::new()
        .prefix("store-bench-")
        .tempdir_in(&args.dir)
        .with_context(|| format!("temporary directory in {}", args.dir.display()))?;
    let root = tmp.path();
    let device = Device::of(root)?;
    let machine = measure::describe_machine(root);
    eprintln!("{machine}");
    let background = match &device {
        Some(d) => Some(measure::background_rate(root, d, Duration::from_secs(5))?),
        None => None,
    };

    let append = if args.skip_append { None } else { Some(run_append(&args, &workload, root, device.as_ref())?) };
    let (recovery, recovery_note) =
        if args.skip_recovery { (Vec::new(), String::new()) } else { run_recovery(&args, &workload, root)? };

    let results = Results { machine, device, background, append, recovery, recovery_note };
    let block = render(&args, &workload, &results);
    println!("{block}");
    if !args.no_report {
        report::update_file(&args.report, &std::env::args().skip(1).collect::<Vec<_>>().join(" "), &block)?;
        eprintln!("wrote {}", args.report.canonicalize()?.display());
    }
    Ok(())
}

/// Runs each writer over the same workload in its own directory, one after the other, for
/// `--rounds` rounds (the order reversed every other round, so that no writer always follows
/// the same one). A writer's files are deleted only at the end of its round, then the file
/// system is given a moment to settle (online discard), so deletions do not land in a
/// measurement.
fn run_append(args: &Args, workload: &Workload, root: &Path, device: Option<&Device>) -> Result<AppendResults> {
    let target = (args.bytes * GIB) as u64;
    let cameras = workload.camera_ids();
    let mut results: Vec<(Kind, Vec<Measured>)> = args.writers.iter().map(|&k| (k, Vec::new())).collect();
    for round in 0..args.rounds {
        let mut order: Vec<usize> = (0..results.len()).collect();
        if round % 2 == 1 {
            order.reverse();
        }
        for i in order {
            let kind = results[i].0;
            let dir = root.join(format!("{}-{round}", kind.name()));
            std::fs::create_dir(&dir)?;
            let convoy = ConvoyOptions {
                encrypt: args.encrypt,
                syncfs: args.syncfs,
                budget: args.steady_state.map(|g| (g * GIB) as u64),
            };
            let mut generator = Generator::new(workload.clone());
            if let (Kind::Convoy, Some(budget)) = (kind, convoy.budget) {
                eprintln!("append round {}: filling the {:.1} GiB budget …", round + 1, budget as f64 / GIB);
                let mut writer = kind.open(&dir, &cameras, convoy)?;
                record(&mut *writer, &mut generator, budget + budget / 4)?;
                writer.close()?;
                syncfs(&dir)?;
            }
            let m = measure(&dir, device, || {
                let mut writer = kind.open(&dir, &cameras, convoy)?;
                let media = record(&mut *writer, &mut generator, target)?;
                Ok((media, writer.close()?))
            })?;
            eprintln!(
                "append round {}: {} {:.1} MB/s, {:.2} CPU s/GB, device amplification {:.3}",
                round + 1,
                kind.name(),
                m.mb_per_s(),
                m.cpu_s_per_gb(),
                m.device_amplification().unwrap_or(f64::NAN)
            );
            results[i].1.push(m);
        }
        for &kind in &args.writers {
            std::fs::remove_dir_all(root.join(format!("{}-{round}", kind.name())))?;
        }
        syncfs(root)?;
        std::thread::sleep(Duration::from_secs(3));
    }
    Ok(AppendResults(results))
}

/// Records at least `target` media bytes: a sync every simulated second, retention every 30.
fn record(writer: &mut dyn MediaWriter, generator: &mut Generator, target: u64) -> Result<u64> {
    let mut media = 0;
    let mut seconds = 0u64;
    while media < target {
        media += generator.next_second(|f| writer.frame(f))?;
        writer.sync()?;
        seconds += 1;
        if seconds.is_multiple_of(30) {
            writer.groom()?;
        }
    }
    Ok(media)
}

/// Builds the 1 GiB store (then fills its tails: the worst case) and the big one, and times
/// their opens. Returns the rows and a note on what was skipped.
fn run_recovery(args: &Args, workload: &Workload, root: &Path) -> Result<(Vec<RecoveryRow>, String)> {
    let mut rows = Vec::new();
    let mut note = String::new();
    for (size, worst_case_too) in [(1.0, true), (args.big, false)] {
        let bytes = (size * GIB) as u64;
        let free = media_store::retention::free_bytes(root)?;
        if free < 2 * bytes {
            note = format!(
                "Skipped the {size} GiB store: {:.1} GiB free on the file system, and a store that size must \
                 leave as much free.",
                free as f64 / GIB
            );
            eprintln!("{note}");
            continue;
        }
        let dir = root.join(format!("recovery-{size}"));
        let mut generator = Generator::new(workload.clone());
        eprintln!("recovery: building {size} GiB …");
        let mut media = recovery::build(&dir, &mut generator, bytes)?;
        rows.push(recovery::time_opens(&dir, &format!("{size} GiB"), media)?);
        if worst_case_too {
            eprintln!("recovery: filling the tails …");
            media += recovery::fill_tails(&dir, &mut generator)?;
            rows.push(recovery::time_opens(&dir, &format!("{size} GiB, tails nearly full (worst case)"), media)?);
        }
        std::fs::remove_dir_all(&dir)?;
    }
    Ok((rows, note))
}

/// What one run found.
struct Results {
    /// The machine, as `measure::describe_machine` shows it.
    machine: String,
    /// The bench directory's block device, if it has one.
    device: Option<Device>,
    /// Device writes per second while idle before the run.
    background: Option<f64>,
    /// The append benchmark, unless skipped.
    append: Option<AppendResults>,
    /// The recovery benchmark's rows.
    recovery: Vec<RecoveryRow>,
    /// What the recovery benchmark skipped, if anything.
    recovery_note: String,
}

/// A part of the benchmark.
#[derive(Clone, Copy)]
enum Part {
    Append,
    Recovery,
}

/// The command that reproduces a part of this run.
fn command(args: &Args, part: Part) -> String {
    let mut c = format!("target/release/store-bench --cameras {}", args.cameras);
    if args.dir != Path::new("/var/tmp") {
        c.push_str(&format!(" --dir {}", args.dir.display()));
    }
    match part {
        Part::Append => {
            c.push_str(&format!(" --bytes {} --rounds {} --skip-recovery", args.bytes, args.rounds));
            if args.encrypt {
                c.push_str(" --encrypt");
            }
            if args.syncfs {
                c.push_str(" --syncfs");
            }
            if let Some(budget) = args.steady_state {
                c.push_str(&format!(" --steady-state {budget}"));
            }
        }
        Part::Recovery => c.push_str(&format!(" --big {} --skip-append", args.big)),
    }
    c
}

/// One run's report, in Markdown.
fn render(args: &Args, workload: &Workload, results: &Results) -> String {
    let Results { machine, device, background, append, recovery, recovery_note } = results;
    let invocation = std::iter::once("store-bench".to_owned()).chain(std::env::args().skip(1)).collect::<Vec<_>>();
    let invocation = invocation.join(" ");
    let date = std::process::Command::new("date")
        .args(["-u", "+%F %H:%M UTC"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    let mut out = format!("### `{invocation}` — {date}\n\n");
    if args.encrypt {
        out.push_str("The `convoy` column is Convoy's store **with encryption at rest** (XChaCha20-Poly1305 over frame data).\n\n");
    }
    if args.syncfs {
        out.push_str(
            "The `convoy` column group-commits with **one `syncfs`** per window (`sync_whole_filesystem`).\n\n",
        );
    }
    out.push_str(&format!(
        "media-store as built: {} (e3b0c44298fc1c14 is the digest of an empty diff: no uncommitted \
         changes)\n\n",
        env!("MEDIA_STORE_VERSION")
    ));
    out.push_str(&format!(
        "Command: `cargo build --release -p store-bench && target/release/{invocation}`\n\n\
         Machine and the bench directory's file system (a temporary directory in `{}`):\n\n```\n{machine}```\n\n",
        args.dir.display()
    ));
    match (device, *background) {
        (Some(d), Some(rate)) => out.push_str(&format!(
            "Device counters are those of `{}` in `/proc/diskstats`: they include the file system's own \
             metadata and journal, but also anything else on the machine writing to that device (measured \
             idle for 5 s before the run: {:.2} MB/s).\n\n",
            d.name,
            rate / 1e6
        )),
        _ => out.push_str("The bench directory has no block device in `/proc/diskstats`: no device counters.\n\n"),
    }
    if let Some(a) = append {
        out.push_str(&format!(
            "#### Append: {:.2} GiB of media per writer and round, durable every simulated second\n\n\
             Workload: {}. The clock is simulated: after each second of media (all cameras) the writer makes \
             its data durable — convoy `Store::sync()`, raw `fdatasync` of each camera's file, sqlite `COMMIT` \
             (WAL, `synchronous=FULL`) — and goes on at once (not real time). The I/O pattern is that of a \
             unit recording at real time with a 1 s durability window, without the idle time; so the write \
             amplification is the steady state's. Writers run one after the other in fresh directories, for {} \
             rounds (order reversed every other round). Each cell is the writer's best round (highest \
             throughput, lowest CPU time and writes): other activity on this shared 2-core machine only ever \
             slows a round down or adds device writes; every round is shown below the table. Counters are \
             read after a `syncfs`. MB = 10⁶ B, GB = 10⁹ B. Baseline: raw, measured in the same run.\n\n",
            args.bytes,
            workload.describe(),
            args.rounds
        ));
        if let Some(budget) = args.steady_state {
            out.push_str(&format!(
                "**Steady state**: convoy's store runs full with a retention budget of {budget} GiB, filled before \
                 each round (not measured) and groomed every simulated 30 s, so new segments reuse the files of \
                 retired ones; raw still appends to new files. In this mode `bytes its files hold` is what \
                 retention kept, and convoy's process `write_bytes` is not a write count: the kernel charges page-cache \
                 folios as they are dirtied, and writes into reused files are charged far more than they write \
                 (seen: 1.6× media while the device counted 1.02×; the cause is not pinned down). The device \
                 counters are what reached the disk.\n\n"
            ));
        }
        out.push_str(&a.table());
        out.push_str(&format!("\nReproduce: `{}`\n\n", command(args, Part::Append)));
    }
    if !recovery.is_empty() || !recovery_note.is_empty() {
        out.push_str(
            "#### Recovery: `Store::open` after the store was dropped without sealing its tails\n\n\
             Stores built with the same workload and sync policy, then dropped (no `seal_all`). Before each \
             open the page cache is dropped (`sync; echo 3 > /proc/sys/vm/drop_caches`). Open scans only each \
             camera's unsealed tail segment (pre-allocated to 64 MiB), so its cost follows the tails' fill, \
             not the store's size; the worst case is every tail nearly full.\n\n",
        );
        out.push_str(&report::recovery_table(recovery, &command(args, Part::Recovery)));
        if !recovery_note.is_empty() {
            out.push_str(&format!("\n{recovery_note}\n"));
        }
        out.push_str(
            "\nA 20 GiB store (needs 40 GiB free): `target/release/store-bench --big 20` (or with \
             `--skip-append`).\n\n",
        );
    }
    let mut targets = append.as_ref().map(AppendResults::targets).unwrap_or_default();
    targets.extend(report::recovery_target(recovery));
    if !targets.is_empty() {
        out.push_str("#### Targets\n\n");
        for t in targets {
            out.push_str(&format!("- {t}\n"));
        }
        out.push('\n');
    }
    out
}
