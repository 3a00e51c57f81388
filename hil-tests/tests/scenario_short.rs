//! Issue #9's CI scenario: `scenarios/short.toml` played by the scenario runner's library with
//! the real binaries (2 units × 2 cameras in network namespaces, a tunnel, a power cut, panic
//! presses, a generic event, an operator retrieval, an evidence lock and a live watch); every check must hold.

use std::path::Path;
use std::time::Instant;

use hil_tests::netns::unsupported_reason;
use hil_tests::scenario::{self, Scenario};

#[test]
fn the_short_scenario_passes_every_check() {
    if let Some(why) = unsupported_reason() {
        eprintln!("SKIPPED scenario_short: {why}");
        return;
    }
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/short.toml");
    let scenario = Scenario::load(&file).unwrap_or_else(|e| panic!("{e}"));
    let dir = tempfile::Builder::new().prefix("scenario-short-").tempdir().unwrap();
    let began = Instant::now();
    let report = scenario::run(&scenario, dir.path()).unwrap_or_else(|e| panic!("{e:#}"));
    let text = report.render();
    println!("{text}");
    assert!(report.passed(), "the short scenario failed:\n{text}");
    assert_eq!(text.lines().last(), Some(report.summary().as_str()));
    // Every kind of check ran, on every unit and camera.
    for (check, at_least) in [
        ("unit recording", 4),
        ("byte-identical", 4),
        ("no duplicates", 4),
        ("central holds", 4),
        ("alarms", 2),
        ("store verify", 2),
        ("operator retrieval", 1),
        ("live watch", 1),
        ("evidence lock", 1),
    ] {
        let n = report.checks.iter().filter(|c| c.check == check).count();
        assert!(n >= at_least, "{n} {check:?} checks, wanted {at_least}:\n{text}");
    }
    assert!(
        report
            .checks
            .iter()
            .any(|c| c.check == "alarms" && c.subject == "bus-1" && c.detail.contains("1 generic event")),
        "bus-1's generic event was checked:\n{text}"
    );
    eprintln!("short scenario: {:.0} s", began.elapsed().as_secs_f64());
}

#[test]
fn the_shipped_scenarios_are_valid() {
    for name in ["short.toml", "day.toml", "panic_after_restart.toml", "late_retrieval.toml"] {
        let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios").join(name);
        if let Err(e) = Scenario::load(&file) {
            panic!("{e}");
        }
    }
}
