//! The unit's link type drives central's link policy, over real QUIC: a unit whose link file
//! says `cellular` (metered) gets its event windows retrieved but not its link gap; once the
//! file says `wifi`, central fetches the gap, byte for byte.

use std::net::SocketAddr;
use std::time::Duration;

use hil_tests::media::{central_frame_hashes, compare, frame_hashes};
use hil_tests::{CentralProc, EdgeProc, edge_config, sim_camera, timeline_us, wait_until};
use serde_json::{Value, json};

const T: Duration = Duration::from_secs(90);

fn now_us() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_micros() as i64
}

fn rfc3339(us: i64) -> String {
    jiff::Timestamp::from_microsecond(us).unwrap().to_string()
}

/// The unit's link as `GET /api/units` shows it.
fn unit_link(central: &CentralProc) -> Option<Value> {
    let units = central.get_json(&format!("{}/api/units", central.web)).ok()?;
    units.as_array()?.iter().find(|u| u["id"] == "bus-l").map(|u| u["link"].clone())
}

#[test]
fn a_metered_link_holds_back_the_link_gap_until_the_unit_reports_wifi() {
    let dir = tempfile::tempdir().unwrap();
    // Short event windows, so that one cannot reach back into the gap.
    let settings = "[[unit]]\nname = \"bus-l\"\n[[unit.camera]]\nid = \"front\"\nevent_window_s = [2, 2]\n";
    let mut central = CentralProc::start_with(dir.path(), settings).unwrap();
    let (_camera, rtsp) = sim_camera(dir.path(), &["front"], 0).unwrap();
    let store = dir.path().join("store");
    let link_file = dir.path().join("link");
    std::fs::write(&link_file, "cellular\n").unwrap();
    let config = format!(
        "{}[generic_events]\nudp = \"127.0.0.1:0\"\n[[generic_events.pattern]]\nname = \"door\"\ncontains = \"DOOR\"\n\
         [[rule]]\nname = \"door\"\ntrigger = \"generic\"\nnotify_central = true\n",
        edge_config(
            "bus-l",
            &store,
            Some((&central.quic, &central.fingerprint)),
            &[("front", &format!("{rtsp}/front"))]
        )
        .replace("[central]\n", &format!("[central]\nlink_file = {link_file:?}\n"))
    );
    let mut edge = EdgeProc::start_enrolled(dir.path(), "edge", &config, "bus-l", &central).unwrap();
    let udp: SocketAddr =
        edge.proc.wait_line("generic events udp listening on", T).unwrap().rsplit(' ').next().unwrap().parse().unwrap();
    let status = |edge: &EdgeProc| edge.status().ok();
    let connected = |edge: &EdgeProc| {
        wait_until("the unit is connected", T, || (status(edge)?["central_connected"] == true).then_some(()))
    };
    connected(&edge).unwrap_or_else(|e| panic!("{e}\n{}", edge.proc.log_tail()));
    assert_eq!(status(&edge).unwrap()["link"], json!({ "kind": "cellular", "metered": true }));
    wait_until("central shows the unit's link", T, || {
        (unit_link(&central)? == json!({ "kind": "cellular", "metered": true })).then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", central.proc.log_tail()));
    let frames = |edge: &EdgeProc| status(edge)?["cameras"][0]["frames_recorded"].as_u64();
    wait_until("the unit records", T, || (frames(&edge)? > 3 * 25).then_some(())).unwrap();

    // Central goes away for a while: the unit records a link gap.
    central.proc.signal(nix::sys::signal::Signal::SIGKILL).unwrap();
    central.proc.wait(T).unwrap();
    let gap_start = now_us();
    let before = frames(&edge).unwrap();
    wait_until("the unit records through the outage", T, || (frames(&edge)? > before + 8 * 25).then_some(())).unwrap();
    central = CentralProc::start_with_config(dir.path(), None, &central.quic, settings).unwrap();
    let gap_end = now_us();
    connected(&edge).unwrap_or_else(|e| panic!("{e}\n{}", edge.proc.log_tail()));
    let held = |central: &CentralProc, from: i64, to: i64| -> Option<i64> {
        let url = format!(
            "{}/api/units/bus-l/cameras/front/timeline?start={}&end={}",
            central.web,
            rfc3339(from),
            rfc3339(to)
        );
        Some(timeline_us(&central.get_json(&url).ok()?["central"]))
    };

    // On cellular an event's window is retrieved, the link gap is not. The event comes late
    // enough that its window, with the 3 s a retrieval takes around its range, misses the gap.
    wait_until("a few seconds after the gap", T, || (now_us() > gap_end + 7_000_000).then_some(())).unwrap();
    std::net::UdpSocket::bind("127.0.0.1:0").unwrap().send_to(b"DOOR open", udp).unwrap();
    let event_at = now_us();
    wait_until("central holds the event window", T, || {
        (held(&central, event_at - 1_500_000, event_at + 1_500_000)? >= 2_500_000).then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}\n{}\n{}", central.proc.log_tail(), edge.proc.log_tail()));
    assert_eq!(unit_link(&central).unwrap(), json!({ "kind": "cellular", "metered": true }), "reported again");
    let mut checks = 0;
    while checks < 10 {
        assert_eq!(held(&central, gap_start, gap_end), Some(0), "no link gap over a metered link");
        checks += 1;
        std::thread::sleep(Duration::from_millis(200));
    }

    // At the depot: the file says wifi, and central fetches the gap.
    std::fs::write(&link_file, "wifi\n").unwrap();
    wait_until("central sees the unit on wifi", T, || {
        (unit_link(&central)? == json!({ "kind": "wifi", "metered": false })).then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", central.proc.log_tail()));
    assert_eq!(status(&edge).unwrap()["link"], json!({ "kind": "wifi", "metered": false }));
    wait_until("central holds the link gap", T, || {
        (held(&central, gap_start, gap_end)? + 1_500_000 >= gap_end - gap_start).then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}\n{}\n{}", central.proc.log_tail(), edge.proc.log_tail()));
    let (start, end) = (gap_start + 500_000, gap_end - 500_000);
    let (unit, unit_dups) = frame_hashes(&store, "front", start, end);
    let (at_central, dups) = central_frame_hashes(&central.store, "bus-l", "front", start, end);
    assert_eq!((unit_dups, dups), (0, 0), "no frame twice");
    let (missing, _, differ) = compare(&unit, &at_central);
    assert!(unit.len() > 6 * 25, "{} frames recorded in the gap", unit.len());
    assert_eq!((missing.len(), differ.len()), (0, 0), "of {} frames of the gap", unit.len());
    edge.proc.stop(T).unwrap();
}
