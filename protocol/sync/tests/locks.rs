//! Evidence locks from central to a unit: sent while connected, again after a reconnect until
//! answered, answered once, and never sent to a unit whose protocol predates them.

use protocol::sync::{EvidenceLockRequest, SyncFromCentral, SyncFromEdge};
use sync_core::{CentralAction, CentralConfig, CentralSync, EdgeAction, EdgeConfig, EdgeSync, Holdings};

fn request(lock_id: u64) -> EvidenceLockRequest {
    EvidenceLockRequest {
        lock_id,
        camera: "cam".into(),
        start_us: 1_000_000,
        end_us: 5_000_000,
        expires_us: 9_000_000,
        reason: "incident".into(),
    }
}

fn sent(c: &mut CentralSync) -> Vec<SyncFromCentral> {
    std::iter::from_fn(|| c.poll_transmit(0)).collect()
}

fn locked_actions(c: &mut CentralSync) -> Vec<CentralAction> {
    std::iter::from_fn(|| c.poll_event()).filter(|a| matches!(a, CentralAction::Locked { .. })).collect()
}

#[test]
fn a_lock_waits_for_the_unit_and_is_answered_once() {
    let mut c = CentralSync::new(CentralConfig::default(), Holdings::new());
    c.lock(request(1));
    assert!(sent(&mut c).is_empty(), "nothing goes out while the unit is away");
    c.set_peer_version(2);
    c.connected();
    assert_eq!(sent(&mut c), vec![SyncFromCentral::Lock(request(1))]);

    // The unit locks it and answers.
    let mut e = EdgeSync::new(EdgeConfig::default(), vec![]);
    e.connected();
    e.handle(SyncFromCentral::Lock(request(1)));
    assert_eq!(std::iter::from_fn(|| e.poll_event()).collect::<Vec<_>>(), vec![EdgeAction::Lock(request(1))]);
    e.lock_done(1, None);
    let answers: Vec<SyncFromEdge> =
        std::iter::from_fn(|| e.poll_transmit(0)).filter(|m| matches!(m, SyncFromEdge::Locked { .. })).collect();
    assert_eq!(answers, vec![SyncFromEdge::Locked { lock_id: 1, error: None }]);

    c.handle(answers[0].clone()).unwrap();
    assert_eq!(locked_actions(&mut c), vec![CentralAction::Locked { lock_id: 1, error: None }]);
    // A second answer (the lock was sent twice around a reconnect) is not reported again.
    c.handle(answers[0].clone()).unwrap();
    assert!(locked_actions(&mut c).is_empty());
    assert_eq!(c.pending_locks().count(), 0);
    c.disconnected();
    c.connected();
    assert!(sent(&mut c).is_empty(), "an answered lock is not sent again");
}

#[test]
fn an_unanswered_lock_goes_again_after_a_reconnect() {
    let mut c = CentralSync::new(CentralConfig::default(), Holdings::new());
    c.set_peer_version(2);
    c.connected();
    c.lock(request(1));
    c.lock(request(2));
    assert_eq!(sent(&mut c).len(), 2);
    c.handle(SyncFromEdge::Locked { lock_id: 2, error: Some("no camera \"cam\"".into()) }).unwrap();
    assert_eq!(
        locked_actions(&mut c),
        vec![CentralAction::Locked { lock_id: 2, error: Some("no camera \"cam\"".into()) }]
    );
    c.disconnected();
    c.connected();
    assert_eq!(sent(&mut c), vec![SyncFromCentral::Lock(request(1))]);
}

#[test]
fn a_version_1_unit_is_not_sent_locks() {
    let mut c = CentralSync::new(CentralConfig::default(), Holdings::new());
    c.set_peer_version(1);
    c.connected();
    c.lock(request(1));
    assert!(sent(&mut c).is_empty());
    assert_eq!(c.pending_locks().count(), 1, "kept until the unit speaks version 2");
}

#[test]
fn a_disconnected_edge_drops_locks_and_answers() {
    let mut e = EdgeSync::new(EdgeConfig::default(), vec![]);
    e.handle(SyncFromCentral::Lock(request(1)));
    assert!(e.poll_event().is_none());
    e.lock_done(1, None);
    e.connected();
    assert!(std::iter::from_fn(|| e.poll_transmit(0)).all(|m| !matches!(m, SyncFromEdge::Locked { .. })));
}
