//! Thin units (the load test's clients, `hil_tests::thin_unit`) against a real central: each is
//! enrolled through the API, connects over mutual-TLS QUIC, and its catalog and events reach
//! central (the fleet list shows it connected with its catalog's oldest recording, and its
//! events become alarms); when they leave, central shows them offline. This keeps the
//! `fleet_load` benchmark's clients honest.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use hil_tests::thin_unit::{ThinCounters, ThinUnit};
use hil_tests::{CentralProc, wait_until};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

const T: Duration = Duration::from_secs(90);
const UNITS: usize = 24;

fn fleet(central: &CentralProc) -> Vec<Value> {
    central
        .get_json(&format!("{}/api/units", central.web))
        .ok()
        .and_then(|v| v.as_array().cloned())
        .unwrap_or_default()
        .into_iter()
        .filter(|u| u["id"].as_str().is_some_and(|id| id.starts_with("thin-")))
        .collect()
}

#[test]
fn thin_units_enroll_connect_report_and_leave() {
    let dir = tempfile::tempdir().unwrap();
    let central = CentralProc::start(dir.path(), 0).unwrap();
    let quic: SocketAddr = central.quic.parse().unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let units: Vec<ThinUnit> =
        (0..UNITS).map(|i| ThinUnit::new(&dir.path().join("units"), &format!("thin-{i:02}"), 2)).collect();
    for u in &units {
        let answer: Value = central
            .post(&format!("{}/api/units", central.web))
            .send_json(json!({ "name": u.id }))
            .unwrap()
            .body_mut()
            .read_json()
            .unwrap();
        rt.block_on(u.enroll(&central.quic, answer["token"].as_str().unwrap())).unwrap();
    }

    let counters = Arc::new(ThinCounters::default());
    let stop = CancellationToken::new();
    let tasks: Vec<_> = units
        .iter()
        .cloned()
        .map(|u| {
            let (counters, stop) = (counters.clone(), stop.clone());
            rt.spawn(async move { u.run(quic, Some(Duration::from_millis(500)), counters, stop).await })
        })
        .collect();
    let listed = wait_until("every thin unit connected, with its catalog", T, || {
        let units = fleet(&central);
        let ready = units.iter().filter(|u| u["connected"] == true && u["storage"]["oldest"].is_string()).count();
        (ready == UNITS).then_some(units)
    })
    .unwrap_or_else(|e| panic!("{e}: {counters:?}\n{}", central.proc.log_tail()));
    assert!(listed.iter().all(|u| u["cameras"].as_array().map(Vec::len) == Some(2)), "{listed:?}");
    wait_until("an alarm from every thin unit", T, || {
        let alarms = central.get_json(&format!("{}/api/alarms?state=new", central.web)).ok()?;
        let mut from: Vec<&str> = alarms.as_array()?.iter().filter_map(|a| a["unit"].as_str()).collect();
        from.sort_unstable();
        from.dedup();
        (from.iter().filter(|u| u.starts_with("thin-")).count() == UNITS).then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}: {counters:?}\n{}", central.proc.log_tail()));

    stop.cancel();
    for t in tasks {
        rt.block_on(t).unwrap().unwrap();
    }
    assert_eq!(counters.failed.load(Ordering::Relaxed), 0);
    wait_until("central shows every thin unit offline", T, || {
        fleet(&central).iter().all(|u| u["connected"] == false).then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", central.proc.log_tail()));
}
