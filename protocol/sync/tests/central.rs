//! Scenarios of `CentralSync` driven by hand: ordering, window, link policy, pacing, digest
//! failures, grooming, acknowledgements over catalog gaps, timeouts and restart.
#![allow(clippy::single_range_in_vec_init)] // lists of one range are what these tests mean

use std::ops::Range;

use protocol::sync::{
    CameraHoldings, CatalogSummary, Chunk, FetchFailure, Span, SyncFrame, SyncFromCentral, SyncFromEdge,
};
use sync_core::codec::{chunk_digest, compress_catalog};
use sync_core::{
    CentralAction, CentralConfig, CentralDurable, CentralSync, Failure, Holdings, LinkPolicy, Priority, RangeSet,
    Retrieval, RetrievalState,
};

const S: i64 = 1_000_000;
const FRAME: u64 = 10_000;

/// A span of `first..=last` with one frame per seq, 10 kB each, 1 s apart from `start` seconds.
fn span(first: u64, last: u64, start: i64) -> Span {
    let n = last - first + 1;
    Span {
        first_seq: first,
        last_seq: last,
        start_us: start * S,
        end_us: (start + n as i64 - 1) * S,
        bytes: n * FRAME,
        frames: n,
    }
}

fn catalog(as_of: i64, spans: Vec<Span>, removed: Vec<Span>) -> SyncFromEdge {
    let c =
        CatalogSummary { as_of_us: as_of * S, cameras: vec![CameraHoldings { camera: "cam".into(), spans, removed }] };
    SyncFromEdge::Catalog(compress_catalog(&c).unwrap())
}

fn frames(seqs: Range<u64>, start_seq: u64, start: i64) -> Vec<SyncFrame> {
    seqs.map(|seq| SyncFrame {
        seq,
        wall_clock_us: (start + (seq - start_seq) as i64) * S,
        keyframe: seq % 25 == 0,
        payload: vec![seq as u8; FRAME as usize],
    })
    .collect()
}

fn config() -> CentralConfig {
    CentralConfig {
        window_bytes: 4 * 50_000,
        fetch_max_bytes: 50_000,
        resolve_margin_us: 0,
        settle_us: 0,
        fetch_timeout_us: 5 * S as u64,
        ..CentralConfig::default()
    }
}

fn req(start: i64, end: i64, priority: Priority) -> Retrieval {
    Retrieval { camera: "cam".into(), start_us: start * S, end_us: end * S, priority }
}

struct Fetch {
    id: u64,
    from: u64,
    to: u64,
}

fn fetches(c: &mut CentralSync, now: u64) -> Vec<Fetch> {
    let mut out = Vec::new();
    while let Some(m) = c.poll_transmit(now) {
        if let SyncFromCentral::Fetch { fetch_id, from_seq, to_seq, .. } = m {
            out.push(Fetch { id: fetch_id, from: from_seq, to: to_seq });
        }
    }
    out
}

/// Answers a fetch with every frame of its range (the test spans hold one frame per seq).
fn answer(c: &mut CentralSync, f: &Fetch) {
    let fr = frames(f.from..f.to + 1, 0, 0);
    let digest = chunk_digest(&fr);
    c.handle(SyncFromEdge::Chunk(Chunk { fetch_id: f.id, camera: "cam".into(), frames: fr, next_seq: None, digest }))
        .unwrap();
}

/// Stores every `Store` action at once; returns the frames stored.
fn store_all(c: &mut CentralSync) -> Vec<u64> {
    let mut stored = Vec::new();
    let mut done = Vec::new();
    while let Some(a) = c.poll_event() {
        if let CentralAction::Store { camera, covers, frames, .. } = a {
            stored.extend(frames.iter().map(|f| f.seq));
            done.push((camera, covers));
        }
    }
    for (camera, covers) in done {
        c.stored(&camera, covers);
    }
    stored
}

fn connected(catalog_msg: SyncFromEdge) -> CentralSync {
    let mut c = CentralSync::new(config(), Holdings::new());
    c.connected();
    c.handle(catalog_msg).unwrap();
    c
}

#[test]
fn priority_order_and_window() {
    let mut c = connected(catalog(1000, vec![span(0, 999, 0)], vec![]));
    let backfill = c.request(req(0, 100, Priority::Backfill));
    let rule = c.request(req(100, 200, Priority::Rule));
    let event = c.request(req(500, 510, Priority::Event));
    let manual = c.request(req(300, 320, Priority::Manual));
    let f = fetches(&mut c, 0);
    // Four fetches of up to five 10 kB frames fill the 200 kB window: event first, then manual.
    // (Interpolation rounds outward: the frame at 510 s comes along.)
    let ranges: Vec<(u64, u64)> = f.iter().map(|f| (f.from, f.to)).collect();
    assert_eq!(ranges, vec![(500, 504), (505, 509), (510, 510), (300, 304)]);
    assert_eq!(c.retrieval(event).unwrap().state, RetrievalState::Running);
    assert_eq!(c.retrieval(backfill).unwrap().state, RetrievalState::Queued);
    // Answers free the window.
    answer(&mut c, &f[0]);
    assert_eq!(store_all(&mut c), (500..505).collect::<Vec<_>>());
    let next = fetches(&mut c, 1);
    assert_eq!((next.len(), next[0].from), (1, 305));
    let status = c.retrieval(event).unwrap();
    assert_eq!((status.bytes_done, status.bytes_total), (50_000, 110_000));
    let _ = (rule, manual);
}

#[test]
fn metered_and_closed_links_run_only_urgent_retrievals() {
    let mut c = CentralSync::new(CentralConfig { window_bytes: 100 * 50_000, ..config() }, Holdings::new());
    c.connected();
    c.handle(catalog(1000, vec![span(0, 999, 0)], vec![])).unwrap();
    c.set_link(LinkPolicy { metered: true, bandwidth_cap_bps: None, allowed: true }, 0);
    c.request(req(0, 10, Priority::Backfill));
    c.request(req(100, 110, Priority::Rule));
    assert!(fetches(&mut c, 0).is_empty());
    c.request(req(200, 205, Priority::Manual));
    assert_eq!(fetches(&mut c, 0).iter().map(|f| f.from).collect::<Vec<_>>(), vec![200, 205]);
    c.set_link(LinkPolicy { metered: false, bandwidth_cap_bps: None, allowed: false }, 0);
    c.request(req(300, 305, Priority::Event));
    assert_eq!(fetches(&mut c, 0).iter().map(|f| f.from).collect::<Vec<_>>(), vec![300, 305]);
    c.set_link(LinkPolicy::default(), 0);
    assert_eq!(fetches(&mut c, 0).iter().map(|f| f.from).collect::<Vec<_>>(), vec![100, 105, 110, 0, 5, 10]);
}

#[test]
fn pacing_holds_the_cap() {
    let mut cfg = config();
    cfg.window_bytes = 100 * 50_000;
    let mut c = CentralSync::new(cfg, Holdings::new());
    c.connected();
    c.handle(catalog(100_000, vec![span(0, 99_999, 0)], vec![])).unwrap();
    // 4 Mbit/s = 500 kB/s; ten seconds should move about 5 MB.
    c.set_link(LinkPolicy { metered: false, bandwidth_cap_bps: Some(4_000_000), allowed: true }, 0);
    c.request(req(0, 10_000, Priority::Manual));
    let mut now = 0u64;
    let mut bytes = 0u64;
    while now < 10 * S as u64 {
        for f in fetches(&mut c, now) {
            bytes += (f.to - f.from + 1) * FRAME;
            answer(&mut c, &f);
            store_all(&mut c);
        }
        now = c.poll_timeout().expect("paced").max(now + 1);
        c.handle_timeout(now);
    }
    assert!((5_000_000..=5_300_000).contains(&bytes), "moved {bytes} bytes");
}

#[test]
fn digest_mismatch_refetches_then_gives_up() {
    let mut c = connected(catalog(100, vec![span(0, 99, 0)], vec![]));
    let id = c.request(req(0, 4, Priority::Manual));
    for attempt in 1..=4 {
        let f = fetches(&mut c, 0);
        assert_eq!(f.len(), 1, "attempt {attempt}");
        let fr = frames(f[0].from..f[0].to + 1, 0, 0);
        let chunk = Chunk { fetch_id: f[0].id, camera: "cam".into(), frames: fr, next_seq: None, digest: [0; 32] };
        assert!(c.handle(SyncFromEdge::Chunk(chunk)).is_err());
        assert!(store_all(&mut c).is_empty());
    }
    assert!(fetches(&mut c, 0).is_empty());
    let status = c.retrieval(id).unwrap();
    assert_eq!(status.state, RetrievalState::Failed);
    assert_eq!(status.failure, Some(Failure::Unreadable { detail: "digest mismatch".into() }));
    assert_eq!(c.stats().digest_mismatches, 4);
}

#[test]
fn groomed_ranges_fail_with_a_reason_and_the_rest_is_retrieved() {
    // 0..=49 was removed before the request; 50..=99 is removed while central fetches.
    let mut c = connected(catalog(200, vec![span(50, 199, 50)], vec![span(0, 49, 0)]));
    let id = c.request(req(40, 120, Priority::Manual));
    let f = fetches(&mut c, 0);
    assert_eq!(f[0].from, 50, "the removed part is not fetched");
    // The unit says everything before 100 is gone: one answer marks it all lost.
    c.handle(SyncFromEdge::FetchFailed { fetch_id: f[0].id, reason: FetchFailure::Gone { available_from: 100 } })
        .unwrap();
    for f in &f[1..] {
        answer(&mut c, f); // read before retention got there
    }
    store_all(&mut c);
    loop {
        let f = fetches(&mut c, 0);
        if f.is_empty() {
            break;
        }
        assert!(f.iter().all(|f| f.from >= 100), "lost ranges are not fetched again");
        for f in &f {
            answer(&mut c, f);
        }
        store_all(&mut c);
    }
    let status = c.retrieval(id).unwrap();
    assert_eq!(status.state, RetrievalState::Failed);
    assert_eq!(status.failure, Some(Failure::Groomed));
    assert_eq!(c.holdings()["cam"].as_slice(), &[55..70, 100..121]);
    assert_eq!(status.bytes_done, 36 * FRAME);
    assert_eq!(status.bytes_total, 81 * FRAME);
}

#[test]
fn acknowledgement_spans_catalog_gaps_but_not_holes() {
    // The unit has 0..=9 and 20..=29 (10..=19 are not frames or were removed).
    let mut c = connected(catalog(100, vec![span(0, 9, 0), span(20, 29, 60)], vec![]));
    c.request(req(0, 100, Priority::Manual));
    let f = fetches(&mut c, 0);
    let acks = |c: &mut CentralSync| {
        let mut out = Vec::new();
        while let Some(m) = c.poll_transmit(0) {
            if let SyncFromCentral::Stored { up_to_seq, .. } = m {
                out.push(up_to_seq);
            }
        }
        out
    };
    // Answer the second half first: nothing below is held, so no acknowledgement.
    let second: Vec<&Fetch> = f.iter().filter(|f| f.from >= 20).collect();
    for f in &second {
        answer(&mut c, f);
    }
    store_all(&mut c);
    assert_eq!(acks(&mut c), Vec::<u64>::new());
    for f in f.iter().filter(|f| f.from < 20) {
        answer(&mut c, f);
    }
    store_all(&mut c);
    // One acknowledgement per stored piece, rising; the last spans the gap 10..=19.
    assert_eq!(acks(&mut c), vec![4, 29]);
}

#[test]
fn timeouts_reissue_and_late_answers_are_dropped() {
    let mut c = connected(catalog(100, vec![span(0, 99, 0)], vec![]));
    let id = c.request(req(0, 3, Priority::Manual));
    let first = fetches(&mut c, 0);
    assert_eq!(first.len(), 1);
    assert_eq!(c.poll_timeout(), Some(5 * S as u64));
    c.handle_timeout(5 * S as u64);
    let second = fetches(&mut c, 5 * S as u64);
    assert_eq!((second.len(), second[0].from), (1, first[0].from));
    assert_ne!(second[0].id, first[0].id);
    answer(&mut c, &first[0]); // late: ignored
    assert!(store_all(&mut c).is_empty());
    assert_eq!(c.stats().stale_answers, 1);
    answer(&mut c, &second[0]);
    assert_eq!(store_all(&mut c), vec![0, 1, 2, 3]);
    assert_eq!(c.retrieval(id).unwrap().state, RetrievalState::Done);
}

#[test]
fn frames_already_held_are_never_stored_again() {
    let mut holdings = Holdings::new();
    holdings.insert("cam".into(), RangeSet::from_ranges([2..4]));
    let mut c = CentralSync::new(config(), holdings);
    c.connected();
    c.handle(catalog(100, vec![span(0, 99, 0)], vec![])).unwrap();
    let id = c.request(req(0, 9, Priority::Manual));
    let f = fetches(&mut c, 0);
    let ranges: Vec<(u64, u64)> = f.iter().map(|f| (f.from, f.to)).collect();
    assert_eq!(ranges, vec![(0, 1), (4, 8), (9, 9)], "held frames are not fetched");
    // An answer with more than was asked is refused.
    let fr = frames(0..6, 0, 0);
    let digest = chunk_digest(&fr);
    let chunk = Chunk { fetch_id: f[0].id, camera: "cam".into(), frames: fr, next_seq: None, digest };
    assert!(c.handle(SyncFromEdge::Chunk(chunk)).is_err());
    assert!(store_all(&mut c).is_empty());
    // Another path (say an older connection of the same unit) stored 5..=6 meanwhile.
    c.stored("cam", 5..7);
    answer(&mut c, &f[1]);
    answer(&mut c, &f[2]);
    let mut stored = store_all(&mut c);
    for f in fetches(&mut c, 0) {
        answer(&mut c, &f);
    }
    stored.extend(store_all(&mut c));
    stored.sort_unstable();
    assert_eq!(stored, vec![0, 1, 4, 7, 8, 9]);
    assert!(c.stats().duplicate_frames >= 2);
    assert_eq!(c.retrieval(id).unwrap().state, RetrievalState::Done);
}

#[test]
fn central_restart_resumes_from_holdings() {
    let mut c = connected(catalog(100, vec![span(0, 99, 0)], vec![]));
    let id = c.request(req(0, 20, Priority::Rule));
    let f = fetches(&mut c, 0);
    answer(&mut c, &f[0]);
    store_all(&mut c);
    let mut saved = None;
    while let Some(a) = c.poll_event() {
        if a == CentralAction::Persist {
            saved = Some(postcard::to_allocvec(&c.durable()).unwrap());
        }
    }
    let durable: CentralDurable = postcard::from_bytes(&saved.expect("persisted")).unwrap();
    let before = c.retrieval(id).unwrap();
    let holdings = c.holdings().clone();
    drop(c);
    let mut c = CentralSync::restore(config(), durable, holdings);
    assert_eq!(c.retrieval(id).unwrap(), before);
    assert!(fetches(&mut c, 0).is_empty(), "nothing before the unit connects and sends its catalog");
    c.connected();
    assert!(fetches(&mut c, 0).is_empty());
    c.handle(catalog(100, vec![span(0, 99, 0)], vec![])).unwrap();
    let f = fetches(&mut c, 0);
    assert_eq!(f[0].from, 5, "resumes after what central holds");
    assert!(f.iter().all(|g| g.id > 1 << 32), "fetch ids are not reused");
}

#[test]
fn open_ended_retrievals_grow_with_the_catalog() {
    let mut c = connected(catalog(10, vec![span(0, 10, 0)], vec![]));
    let id = c.request(req(5, 20, Priority::Event));
    for f in fetches(&mut c, 0) {
        answer(&mut c, &f);
    }
    store_all(&mut c);
    assert_eq!(c.retrieval(id).unwrap().state, RetrievalState::Running);
    c.handle(catalog(25, vec![span(0, 25, 0)], vec![])).unwrap();
    for f in fetches(&mut c, 0) {
        answer(&mut c, &f);
    }
    store_all(&mut c);
    let status = c.retrieval(id).unwrap();
    assert_eq!(status.state, RetrievalState::Done);
    assert_eq!(c.holdings()["cam"].as_slice(), &[5..21]);
    assert_eq!((status.bytes_done, status.bytes_total), (16 * FRAME, 16 * FRAME));
}

#[test]
fn unknown_camera_and_pending_catalog() {
    let mut c = CentralSync::new(config(), Holdings::new());
    let id = c.request(Retrieval { camera: "nope".into(), start_us: 0, end_us: S, priority: Priority::Manual });
    assert_eq!(c.retrieval(id).unwrap().state, RetrievalState::Queued);
    c.connected();
    c.handle(catalog(100, vec![span(0, 99, 0)], vec![])).unwrap();
    let status = c.retrieval(id).unwrap();
    assert_eq!((status.state, status.failure.clone()), (RetrievalState::Failed, Some(Failure::UnknownCamera)));
    let finished: Vec<CentralAction> = std::iter::from_fn(|| c.poll_event()).collect();
    assert!(finished.contains(&CentralAction::Finished { retrieval: id, status }));
    assert!(c.forget(id).is_some());
    assert!(c.retrieval(id).is_none() && c.durable().retrievals().is_empty());
}
