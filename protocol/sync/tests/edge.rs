//! Scenarios of `EdgeSync` driven by hand: reads, acknowledgements, events, catalog pacing.

use protocol::sync::{CatalogSummary, EventKind, FetchFailure, RemoteEvent, SyncFrame, SyncFromCentral, SyncFromEdge};
use sync_core::codec::{chunk_digest, decompress_catalog, decompress_events};
use sync_core::{EdgeAction, EdgeConfig, EdgeSync};

fn event(id: u64) -> RemoteEvent {
    RemoteEvent {
        id,
        cameras: vec!["cam".into()],
        time_us: id as i64,
        kind: EventKind::DigitalInput { input: 1, active: true },
    }
}

fn fetch(fetch_id: u64, from_seq: u64, to_seq: u64) -> SyncFromCentral {
    SyncFromCentral::Fetch { fetch_id, camera: "cam".into(), from_seq, to_seq, max_bytes: 1000 }
}

fn frame(seq: u64) -> SyncFrame {
    SyncFrame { seq, wall_clock_us: seq as i64 * 40_000, keyframe: seq == 0, payload: vec![seq as u8; 100] }
}

fn drain(e: &mut EdgeSync, now: u64) -> Vec<SyncFromEdge> {
    std::iter::from_fn(|| e.poll_transmit(now)).collect()
}

fn actions(e: &mut EdgeSync) -> Vec<EdgeAction> {
    std::iter::from_fn(|| e.poll_event()).collect()
}

#[test]
fn fetch_read_chunk() {
    let mut e = EdgeSync::new(EdgeConfig::default(), vec![]);
    e.connected();
    e.handle(fetch(7, 10, 20));
    assert_eq!(
        actions(&mut e),
        vec![EdgeAction::ReadFrames {
            fetch_id: 7,
            camera: "cam".into(),
            from_seq: 10,
            to_seq: 20,
            max_bytes: 1000,
            audio: true
        }]
    );
    let frames: Vec<SyncFrame> = (10..14).map(frame).collect();
    e.frames_read(7, frames.clone(), Some(14));
    match drain(&mut e, 0).as_slice() {
        [SyncFromEdge::Chunk(c)] => {
            assert_eq!((c.fetch_id, c.camera.as_str(), c.next_seq), (7, "cam", Some(14)));
            assert_eq!(c.frames, frames);
            assert_eq!(c.digest, chunk_digest(&frames));
        }
        other => panic!("{other:?}"),
    }
    // A second answer for the same fetch, or one for a fetch never asked, is dropped.
    e.frames_read(7, vec![], None);
    e.frames_read(99, vec![], None);
    assert!(drain(&mut e, 0).is_empty());
    assert_eq!(e.stats().stale_reads, 2);
}

#[test]
fn bad_reads_and_failures_become_fetch_failed() {
    let mut e = EdgeSync::new(EdgeConfig::default(), vec![]);
    e.connected();
    e.handle(fetch(1, 10, 20));
    e.handle(fetch(2, 10, 20));
    actions(&mut e);
    e.frames_read(1, vec![frame(21)], None); // outside the range: a glue bug, not sent as data
    e.read_failed(2, FetchFailure::Gone { available_from: 15 });
    let out = drain(&mut e, 0);
    assert!(matches!(&out[0], SyncFromEdge::FetchFailed { fetch_id: 1, reason: FetchFailure::Unreadable { .. } }));
    assert_eq!(out[1], SyncFromEdge::FetchFailed { fetch_id: 2, reason: FetchFailure::Gone { available_from: 15 } });
}

#[test]
fn reads_of_a_dropped_connection_are_not_sent() {
    let mut e = EdgeSync::new(EdgeConfig::default(), vec![]);
    e.connected();
    e.handle(fetch(1, 0, 5));
    actions(&mut e);
    e.disconnected();
    e.connected();
    e.frames_read(1, vec![frame(0)], None);
    assert!(drain(&mut e, 0).is_empty());
    // Fetches while disconnected are ignored too.
    e.disconnected();
    e.handle(fetch(2, 0, 5));
    assert!(actions(&mut e).is_empty());
}

#[test]
fn acknowledgements_only_rise() {
    let mut e = EdgeSync::new(EdgeConfig::default(), vec![]);
    e.connected();
    for up_to_seq in [5, 3, 5, 9] {
        e.handle(SyncFromCentral::Stored { camera: "cam".into(), up_to_seq });
    }
    e.handle(SyncFromCentral::Stored { camera: "other".into(), up_to_seq: 1 });
    let acked: Vec<(String, u64)> = actions(&mut e)
        .into_iter()
        .map(|a| match a {
            EdgeAction::Acknowledged { camera, up_to_seq } => (camera, up_to_seq),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(acked, vec![("cam".into(), 5), ("cam".into(), 9), ("other".into(), 1)]);
}

fn sent_event_ids(msgs: &[SyncFromEdge]) -> Vec<Vec<u64>> {
    msgs.iter()
        .filter_map(|m| match m {
            SyncFromEdge::Events(c) => Some(decompress_events(c).unwrap().events.iter().map(|e| e.id).collect()),
            _ => None,
        })
        .collect()
}

#[test]
fn events_go_one_batch_at_a_time_until_acknowledged() {
    let config = EdgeConfig { max_events_per_batch: 2, ..EdgeConfig::default() };
    let mut e = EdgeSync::new(config.clone(), vec![event(1)]);
    for id in 2..=5 {
        e.event(event(id)).unwrap();
    }
    assert!(e.event(event(5)).is_err(), "ids must rise");
    assert!(drain(&mut e, 0).is_empty(), "nothing while disconnected");
    e.connected();
    assert_eq!(sent_event_ids(&drain(&mut e, 0)), vec![vec![1, 2]]);
    e.handle(SyncFromCentral::EventsAck { up_to_id: 2 });
    assert_eq!(actions(&mut e), vec![EdgeAction::EventsAcked { up_to_id: 2 }]);
    assert_eq!(sent_event_ids(&drain(&mut e, 0)), vec![vec![3, 4]]);
    // The link drops before the ack: the unacknowledged events go again.
    e.disconnected();
    e.connected();
    assert_eq!(sent_event_ids(&drain(&mut e, 0)), vec![vec![3, 4]]);
    e.handle(SyncFromCentral::EventsAck { up_to_id: 4 });
    assert_eq!(sent_event_ids(&drain(&mut e, 0)), vec![vec![5]]);
    e.handle(SyncFromCentral::EventsAck { up_to_id: 5 });
    assert_eq!(e.unacked_events().count(), 0);
    // A restarted edge gets its durable queue back and sends it.
    let mut e = EdgeSync::new(config, vec![event(9), event(8)]);
    e.connected();
    assert_eq!(sent_event_ids(&drain(&mut e, 0)), vec![vec![8, 9]]);
}

#[test]
fn catalog_goes_at_connect_and_then_rate_limited() {
    let config = EdgeConfig { catalog_min_interval_us: 1_000, ..EdgeConfig::default() };
    let mut e = EdgeSync::new(config, vec![]);
    let cat = |as_of_us| CatalogSummary { as_of_us, cameras: vec![] };
    e.catalog_changed(cat(1));
    e.connected();
    let first = drain(&mut e, 100);
    match first.as_slice() {
        [SyncFromEdge::Catalog(c)] => assert_eq!(decompress_catalog(c).unwrap(), cat(1)),
        other => panic!("{other:?}"),
    }
    e.catalog_changed(cat(2));
    e.catalog_changed(cat(3));
    assert!(drain(&mut e, 500).is_empty());
    assert_eq!(e.poll_timeout(), Some(1_100));
    match drain(&mut e, 1_100).as_slice() {
        [SyncFromEdge::Catalog(c)] => assert_eq!(decompress_catalog(c).unwrap(), cat(3)),
        other => panic!("{other:?}"),
    }
    assert_eq!(e.poll_timeout(), None);
    // A new connection gets the catalog at once.
    e.disconnected();
    e.connected();
    assert_eq!(drain(&mut e, 1_200).len(), 1);
}

/// Audio goes only to a central whose welcome says it takes it (protocol version 4): against a
/// version 3 central the unit reads video only, as before; a reconnect to a newer central
/// changes that.
#[test]
fn audio_is_read_only_for_a_central_that_takes_it() {
    let audio_of = |e: &mut EdgeSync| match actions(e).as_slice() {
        [EdgeAction::ReadFrames { audio, .. }] => *audio,
        other => panic!("{other:?}"),
    };
    let mut e = EdgeSync::new(EdgeConfig::default(), vec![]);
    for (version, expected) in [(3, false), (1, false), (4, true), (3, false), (5, true)] {
        e.disconnected();
        e.set_peer_version(version);
        e.connected();
        assert_eq!(e.peer_takes_audio(), expected, "version {version}");
        e.handle(fetch(u64::from(version), 10, 20));
        assert_eq!(audio_of(&mut e), expected, "version {version}");
    }
}
