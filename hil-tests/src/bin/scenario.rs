//! `scenario`: plays a scenario file with the real binaries and checks the outcome (issue #9).
//!
//! `cargo build --release --workspace --bins && cargo run --release -p hil-tests --bin scenario --
//! hil-tests/scenarios/short.toml [--report PATH] [--keep DIR] [--check]`
//!
//! `--report PATH` also writes the report there; `--keep DIR` keeps the processes' logs and
//! stores in DIR (default: a temporary directory, removed); `--check` only validates the file.
//!
//! Prints the report (the last line is a one-line summary) and exits 0 only when every check
//! holds; 1 when a check fails; 2 when the file is invalid or the processes cannot start.
//! Needs root (network namespaces, TUN devices).

use std::path::PathBuf;
use std::process::ExitCode;

use hil_tests::scenario::{self, Scenario};

const USAGE: &str = "usage: scenario FILE.toml [--report PATH] [--keep DIR] [--check]";

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let (mut file, mut report_path, mut keep, mut check_only) = (None, None, None, false);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--report" => report_path = args.next().map(PathBuf::from),
            "--keep" => keep = args.next().map(PathBuf::from),
            "--check" => check_only = true,
            "-h" | "--help" => {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            _ if file.is_none() && !a.starts_with('-') => file = Some(PathBuf::from(a)),
            _ => {
                eprintln!("unexpected argument {a:?}\n{USAGE}");
                return ExitCode::from(2);
            }
        }
    }
    let Some(file) = file else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    let scenario = match Scenario::load(&file) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    if check_only {
        println!("scenario {}: valid ({} unit(s), {})", scenario.name, scenario.units.len(), scenario.duration);
        return ExitCode::SUCCESS;
    }
    // Processes' logs and stores: in --keep DIR (kept), or a temporary directory (removed).
    let temp;
    let dir = match keep {
        Some(d) => {
            if let Err(e) = std::fs::create_dir_all(&d) {
                eprintln!("cannot create {}: {e}", d.display());
                return ExitCode::from(2);
            }
            d
        }
        None => match tempfile::Builder::new().prefix("scenario-").tempdir() {
            Ok(t) => {
                temp = t;
                temp.path().to_owned()
            }
            Err(e) => {
                eprintln!("cannot make a temporary directory: {e}");
                return ExitCode::from(2);
            }
        },
    };
    let report = match scenario::run(&scenario, &dir) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("scenario {}: could not run: {e:#}", scenario.name);
            return ExitCode::from(2);
        }
    };
    let text = report.render();
    if let Some(path) = report_path
        && let Err(e) = std::fs::write(&path, &text)
    {
        eprintln!("cannot write the report to {}: {e}", path.display());
    }
    print!("{text}");
    if report.passed() { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}
