//! Reading a log by sequence number (what central retrieves): spans of what the log holds, and
//! chunked reads that together return every frame exactly once, stop at the durable end, and
//! say when retention removed the start.

mod common;

use common::*;
use media_store::by_seq::{Limit, SeqRead, holdings, read_seqs};
use media_store::{Record, Retention, Store, StoreOptions};

fn store_with_gap(dir: &std::path::Path) -> Store {
    let (mut s, _) = Store::open(dir, opts(20_000)).unwrap();
    s.append(&params("front")).unwrap();
    for i in 0..150 {
        s.append(&frame("front", i)).unwrap();
    }
    // The camera was down for a minute.
    for i in 1650..1800 {
        s.append(&frame("front", i)).unwrap();
    }
    s.sync().unwrap();
    s
}

/// Every frame of the log as `(seq, frame number)`.
fn all_frames(dir: &std::path::Path) -> Vec<(u64, u32)> {
    read_log(dir, "front")
        .into_iter()
        .filter_map(|(seq, r)| match r {
            Record::Frame(f) => Some((seq, ((f.wall_clock_us - T0) / 40_000) as u32)),
            _ => None,
        })
        .collect()
}

#[test]
fn spans_cover_the_log_without_overlap_and_split_at_gaps() {
    let dir = tempfile::tempdir().unwrap();
    let s = store_with_gap(dir.path());
    let end = s.next_seq("front").unwrap();
    let h = holdings(dir.path(), "front", Limit::Until(Some(end)), 30_000_000).unwrap();
    assert!(h.spans.len() > 2);
    assert_eq!(h.spans[0].first_seq, 0);
    assert_eq!(h.spans.last().unwrap().last_seq, end - 1);
    for w in h.spans.windows(2) {
        assert_eq!(w[1].first_seq, w[0].last_seq + 1, "contiguous");
        assert!(w[0].start_us <= w[0].end_us && w[0].end_us <= w[1].start_us, "{w:?}");
        assert!(w[0].end_us - w[0].start_us <= 30_000_000 + 2_000_000);
    }
    // No span bridges the minute the camera was down.
    let gap = (T0 + 149 * 40_000, T0 + 1650 * 40_000);
    assert!(h.spans.iter().all(|sp| sp.end_us <= gap.0 || sp.start_us >= gap.1), "{:?}", h.spans);
    let frames: u64 = h.spans.iter().map(|s| s.frames).sum();
    assert!(frames + 8 >= 300, "{frames} frames");
}

#[test]
fn spans_of_one_continuous_segment_end_where_the_next_begins() {
    // 60 s of continuous recording in one segment, cut into spans of about 10 s: each span's
    // times must be those of its frames, so that central's time → sequence interpolation lands
    // on the frames it wants (a span claiming to last to the segment's end made it land early).
    let dir = tempfile::tempdir().unwrap();
    let (mut s, _) = Store::open(dir.path(), opts(64 << 20)).unwrap();
    s.append(&params("front")).unwrap();
    for i in 0..1500 {
        s.append(&frame("front", i)).unwrap();
    }
    s.sync().unwrap();
    let end = s.next_seq("front").unwrap();
    let h = holdings(dir.path(), "front", Limit::Until(Some(end)), 10_000_000).unwrap();
    assert!(h.spans.len() >= 5, "{:?}", h.spans);
    let frames = all_frames(dir.path());
    for w in h.spans.windows(2) {
        assert_eq!(w[0].end_us, w[1].start_us, "a span ends where the next begins: {w:?}");
    }
    for span in &h.spans {
        let inside: Vec<u32> =
            frames.iter().filter(|(seq, _)| (span.first_seq..=span.last_seq).contains(seq)).map(|f| f.1).collect();
        let (first, last) = (*inside.first().unwrap(), *inside.last().unwrap());
        assert_eq!(span.start_us, T0 + i64::from(first) * 40_000, "{span:?}");
        assert!(span.end_us >= T0 + i64::from(last) * 40_000, "{span:?}");
        assert!(span.end_us <= T0 + i64::from(last + 1) * 40_000, "no later than its last frame's end: {span:?}");
    }
}

#[test]
fn chunked_reads_return_every_frame_once_and_stop_at_the_durable_end() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = store_with_gap(dir.path());
    let durable = s.next_seq("front").unwrap();
    // Not yet durable: never served.
    for i in 1800..1810 {
        s.append(&frame("front", i)).unwrap();
    }
    let want: Vec<(u64, u32)> = all_frames(dir.path()).into_iter().filter(|(seq, _)| *seq < durable).collect();
    let mut got = Vec::new();
    let mut from = 0;
    let mut reads = 0;
    loop {
        reads += 1;
        match read_seqs(dir.path(), "front", (from, u64::MAX - 1), 12_000, Limit::Until(Some(durable)), None).unwrap() {
            SeqRead::Frames { frames, next_seq } => {
                assert!(frames.iter().map(|f| f.frame.data.len()).sum::<usize>() <= 12_000 + 4_000);
                for f in &frames {
                    assert!(f.parameters.is_some(), "each frame comes with its parameters");
                    got.push((f.seq, ((f.frame.wall_clock_us - T0) / 40_000) as u32));
                }
                match next_seq {
                    Some(n) if n >= durable => break,
                    Some(n) => from = n,
                    None => break,
                }
            }
            SeqRead::Gone { .. } => panic!("nothing was removed"),
        }
    }
    assert_eq!(got, want, "{reads} reads");
    // A bounded range ends at its last sequence number.
    let SeqRead::Frames { frames, next_seq } =
        read_seqs(dir.path(), "front", (10, 20), u64::MAX, Limit::Until(None), None).unwrap()
    else {
        panic!()
    };
    assert_eq!(next_seq, None);
    let want: Vec<u64> = all_frames(dir.path()).iter().map(|f| f.0).filter(|s| (10..=20).contains(s)).collect();
    assert!(want.len() >= 8);
    assert_eq!(frames.iter().map(|f| f.seq).collect::<Vec<_>>(), want);
}

#[test]
fn a_range_retention_removed_is_gone() {
    let dir = tempfile::tempdir().unwrap();
    let opts = StoreOptions {
        retention: Retention { max_bytes: Some(60_000), min_free_bytes: Some(0), ..Default::default() },
        ..opts(20_000)
    };
    let (mut s, _) = Store::open(dir.path(), opts).unwrap();
    s.append(&params("front")).unwrap();
    for i in 0..300 {
        s.append(&frame("front", i)).unwrap();
    }
    s.groom(T0).unwrap();
    s.sync().unwrap();
    let h = holdings(dir.path(), "front", Limit::Until(None), 60_000_000).unwrap();
    let first = h.spans[0].first_seq;
    assert!(first > 0 && !h.removed.is_empty(), "{h:?}");
    assert_eq!(
        read_seqs(dir.path(), "front", (0, 10), u64::MAX, Limit::Until(None), None).unwrap(),
        SeqRead::Gone { available_from: first }
    );
}
