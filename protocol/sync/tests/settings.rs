//! Camera settings from central to a unit and the technician's changes back: the latest
//! revision is sent while connected and again after a reconnect until answered, applied once
//! per revision, never sent to a unit whose protocol predates it; changes are resent until
//! acknowledged.

use protocol::sync::{CameraSettings, LocalChange, SettingsConflict, SettingsPush, SyncFromCentral, SyncFromEdge};
use sync_core::{CentralAction, CentralConfig, CentralSync, EdgeAction, EdgeConfig, EdgeSync, Holdings};

fn push(revision: u64) -> SettingsPush {
    SettingsPush {
        revision,
        profile: Some("buses".into()),
        set_at_us: 1,
        cameras: vec![CameraSettings {
            camera: "*".into(),
            recording: Some(vec!["none".into()]),
            mode: None,
            schedule: None,
            pre_buffer_ms: None,
            post_buffer_ms: None,
            motion: None,
            motion_sensitivity: None,
            max_age_s: None,
        }],
    }
}

fn change(id: u64) -> LocalChange {
    LocalChange {
        id,
        camera: "front".into(),
        field: "mode".into(),
        value: "\"event\"".into(),
        at_us: 5,
        overridden: false,
    }
}

fn sent(c: &mut CentralSync) -> Vec<SyncFromCentral> {
    std::iter::from_fn(|| c.poll_transmit(0)).collect()
}

fn edge_sent(e: &mut EdgeSync) -> Vec<SyncFromEdge> {
    std::iter::from_fn(|| e.poll_transmit(0)).collect()
}

#[test]
fn the_latest_revision_waits_for_the_unit_and_is_answered_once() {
    let mut c = CentralSync::new(CentralConfig::default(), Holdings::new());
    c.settings(push(1));
    c.settings(push(2));
    c.settings(push(1));
    assert!(sent(&mut c).is_empty(), "nothing goes out while the unit is away");
    c.set_peer_version(3);
    c.connected();
    assert_eq!(sent(&mut c), vec![SyncFromCentral::Settings(push(2))], "only the latest revision");

    let mut e = EdgeSync::new(EdgeConfig::default(), vec![]);
    e.connected();
    e.handle(SyncFromCentral::Settings(push(2)));
    e.handle(SyncFromCentral::Settings(push(2)));
    let actions: Vec<EdgeAction> = std::iter::from_fn(|| e.poll_event()).collect();
    assert_eq!(actions, vec![EdgeAction::ApplySettings(push(2))], "applied once while it is being applied");
    let conflict = SettingsConflict {
        camera: "front".into(),
        field: "mode".into(),
        local: "\"event\"".into(),
        central: "\"off\"".into(),
    };
    e.settings_applied(2, vec![conflict.clone()]);
    let answer = SyncFromEdge::SettingsApplied { revision: 2, conflicts: vec![conflict.clone()] };
    assert_eq!(edge_sent(&mut e), vec![answer.clone()]);

    // Sent again after a reconnect (the answer was lost): answered from memory, not applied.
    e.disconnected();
    e.connected();
    e.handle(SyncFromCentral::Settings(push(2)));
    assert!(e.poll_event().is_none());
    assert_eq!(edge_sent(&mut e), vec![answer.clone()]);

    c.handle(SyncFromEdge::SettingsApplied { revision: 1, conflicts: vec![] }).unwrap();
    c.handle(answer.clone()).unwrap();
    c.handle(answer).unwrap();
    let done: Vec<CentralAction> =
        std::iter::from_fn(|| c.poll_event()).filter(|a| matches!(a, CentralAction::SettingsApplied { .. })).collect();
    assert_eq!(done, vec![CentralAction::SettingsApplied { revision: 2, conflicts: vec![conflict] }]);
    assert!(c.pending_settings().is_none());
    c.disconnected();
    c.connected();
    assert!(sent(&mut c).is_empty(), "an answered revision is not sent again");
}

#[test]
fn a_restarted_edge_does_not_apply_a_kept_revision_again() {
    let mut e = EdgeSync::new(EdgeConfig::default(), vec![]);
    e.restore_settings(3, vec![]);
    e.connected();
    e.handle(SyncFromCentral::Settings(push(3)));
    assert!(e.poll_event().is_none());
    assert_eq!(edge_sent(&mut e), vec![SyncFromEdge::SettingsApplied { revision: 3, conflicts: vec![] }]);
    e.handle(SyncFromCentral::Settings(push(4)));
    assert_eq!(e.poll_event(), Some(EdgeAction::ApplySettings(push(4))));
}

#[test]
fn a_version_2_unit_is_not_sent_settings() {
    let mut c = CentralSync::new(CentralConfig::default(), Holdings::new());
    c.set_peer_version(2);
    c.connected();
    c.settings(push(1));
    assert!(sent(&mut c).is_empty());
    assert!(!c.peer_knows_settings());
    assert_eq!(c.pending_settings().map(|p| p.revision), Some(1), "kept until the unit speaks version 3");
}

#[test]
fn local_changes_are_resent_until_acknowledged() {
    let mut e = EdgeSync::new(EdgeConfig::default(), vec![]);
    e.local_change(change(1));
    e.local_change(change(1));
    e.local_change(change(2));
    assert!(edge_sent(&mut e).is_empty(), "nothing while disconnected");
    e.connected();
    assert_eq!(edge_sent(&mut e), vec![SyncFromEdge::LocalChanges(vec![change(1), change(2)])]);
    e.disconnected();
    e.connected();
    assert_eq!(edge_sent(&mut e), vec![SyncFromEdge::LocalChanges(vec![change(1), change(2)])], "again");

    let mut c = CentralSync::new(CentralConfig::default(), Holdings::new());
    c.connected();
    c.handle(SyncFromEdge::LocalChanges(vec![change(1), change(2)])).unwrap();
    assert_eq!(c.poll_event(), Some(CentralAction::LocalChanges { changes: vec![change(1), change(2)] }));
    assert!(c.handle(SyncFromEdge::LocalChanges(vec![change(2), change(1)])).is_err(), "out of order");
    c.local_changes_stored(2);
    let ack = sent(&mut c);
    assert_eq!(ack, vec![SyncFromCentral::LocalChangesAck { up_to_id: 2 }]);
    e.handle(ack[0].clone());
    assert_eq!(e.poll_event(), Some(EdgeAction::LocalChangesAcked { up_to_id: 2 }));
    assert_eq!(e.unacked_local_changes().count(), 0);
    e.disconnected();
    e.connected();
    assert!(edge_sent(&mut e).is_empty(), "acknowledged changes are not sent again");
}

#[test]
fn revisions_are_applied_one_at_a_time_in_order() {
    let mut e = EdgeSync::new(EdgeConfig::default(), vec![]);
    e.connected();
    e.handle(SyncFromCentral::Settings(push(3)));
    e.handle(SyncFromCentral::Settings(push(4)));
    e.handle(SyncFromCentral::Settings(push(5)));
    assert_eq!(e.poll_event(), Some(EdgeAction::ApplySettings(push(3))));
    assert_eq!(e.poll_event(), None, "the newer ones wait");
    e.settings_applied(3, vec![]);
    assert_eq!(e.poll_event(), Some(EdgeAction::ApplySettings(push(5))), "4 was overtaken by 5");
    e.settings_failed(5);
    assert_eq!(e.poll_event(), None);
    e.handle(SyncFromCentral::Settings(push(5)));
    assert_eq!(
        e.poll_event(),
        Some(EdgeAction::ApplySettings(push(5))),
        "a failed revision is applied when sent again"
    );
}
