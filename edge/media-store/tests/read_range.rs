//! Reading a time range: from the key frame at or before the start, parameters first.

mod common;

use common::*;
use media_store::read::read_range;
use media_store::{Record, Store};

fn frame_indices(records: &[Record]) -> Vec<i64> {
    records
        .iter()
        .filter_map(|r| match r {
            Record::Frame(f) => Some((f.wall_clock_us - T0) / 40_000),
            _ => None,
        })
        .collect()
}

#[test]
fn range_starts_at_the_key_frame_before_and_ends_at_the_end() {
    let dir = tempfile::tempdir().unwrap();
    let (mut s, _) = Store::open(dir.path(), opts(30_000)).unwrap();
    s.append(&params("front")).unwrap();
    for i in 0..200 {
        s.append(&frame("front", i)).unwrap();
    }
    s.sync().unwrap();
    // While the writer is open: sealed segments through the catalog, the tail by scanning.
    for (from, to) in [(30, 60), (0, 10), (110, 199), (176, 180), (51, 51)] {
        let records: Vec<Record> = read_range(dir.path(), "front", T0 + from * 40_000, T0 + to * 40_000, None)
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert!(matches!(records[0], Record::Parameters(_)), "parameters first");
        let got = frame_indices(&records);
        let key = from / 25 * 25;
        assert_eq!(got, (key..=to).collect::<Vec<_>>(), "range {from}..={to}");
    }
    // Before the first frame and after the last.
    let records: Vec<Record> =
        read_range(dir.path(), "front", T0 - 10_000_000, T0 + 30 * 40_000, None).unwrap().map(Result::unwrap).collect();
    assert_eq!(frame_indices(&records), (0..=30).collect::<Vec<_>>());
    let records: Vec<Record> =
        read_range(dir.path(), "front", T0 + 10_000_000, T0 + 20_000_000, None).unwrap().map(Result::unwrap).collect();
    assert!(frame_indices(&records).is_empty());
    let err = read_range(dir.path(), "nobody", T0, T0 + 1, None).err().unwrap();
    assert!(err.to_string().contains("no recordings of camera \"nobody\""), "{err}");
}
