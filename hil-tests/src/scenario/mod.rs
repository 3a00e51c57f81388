//! The scenario runner (issue #9): reads a scenario file and plays it with the real binaries —
//! one central, N edge units each in its own network namespace behind a `link-emu` link, their
//! cameras on real RTSP servers, an `io-sim` board per unit — following a schedule of link
//! phases, power events, panic presses and operator actions; then checks what everyone holds
//! and reports.
//!
//! - [`file`]: the TOML format and its validation.
//! - [`rig`]: starting the processes.
//! - [`player`]: the timeline on the real clock, and the journal of what happened when.
//! - [`rules`]: what central must hold by the end.
//! - [`checks`]: waiting for central, stopping everything, the checks.
//! - [`report`]: the printed report and its one-line summary.
//!
//! `cargo run --release -p hil-tests --bin scenario -- hil-tests/scenarios/short.toml`

pub mod checks;
pub mod file;
pub mod player;
pub mod report;
pub mod rig;
pub mod rules;
pub mod time;

use std::path::Path;
use std::time::Instant;

pub use file::{Scenario, ScenarioError};
pub use report::{Check, Report};

/// Plays `scenario` with its processes' files in `dir` and returns the report (an `Err` only
/// when the processes cannot be started at all; a failure during the play is a failed check).
pub fn run(scenario: &Scenario, dir: &Path) -> anyhow::Result<Report> {
    if let Some(why) = crate::netns::unsupported_reason() {
        anyhow::bail!("the scenario runner needs network namespaces: {why}");
    }
    let began = Instant::now();
    eprintln!(
        "scenario {}: {} unit(s), {} of route at ×{} (≈{:.0} s real); files in {}",
        scenario.name,
        scenario.units.len(),
        scenario.duration,
        scenario.compression,
        scenario.real_s(scenario.duration),
        dir.display()
    );
    if let Some(free) = free_bytes(dir)
        && free < LOW_DISK_BYTES
    {
        eprintln!(
            "WARNING: only {:.1} GB free in {}: the units' stores may fill the disk, and a unit then deletes its \
             oldest video (its low-disk guard), which the checks report as gaps",
            free as f64 / 1e9,
            dir.display()
        );
    }
    let mut rig = rig::Rig::start(scenario, dir)?;
    eprintln!("every unit records and is connected ({:.1} s); the route starts", began.elapsed().as_secs_f64());
    let journal = player::play(scenario, &mut rig);
    let central = checks::settle(scenario, &rig, &journal);
    let mut checks = checks::stop_all(&mut rig, &journal);
    checks.extend(checks::run_checks(scenario, &rig, &journal, &central));
    Ok(Report {
        name: scenario.name.clone(),
        duration: scenario.duration,
        compression: scenario.compression,
        real_s: began.elapsed().as_secs_f64(),
        checks,
    })
}

/// Below this much free space the runner warns before starting (`day.toml` writes about 2 GB).
const LOW_DISK_BYTES: u64 = 4_000_000_000;

/// Free bytes for unprivileged use on the file system holding `dir`.
fn free_bytes(dir: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    // SAFETY: a zeroed statvfs is a valid out-parameter; `path` is a NUL-terminated string.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers are valid for the call.
    if unsafe { libc::statvfs(path.as_ptr(), &mut st) } != 0 {
        return None;
    }
    Some(st.f_bavail as u64 * st.f_frsize as u64)
}
