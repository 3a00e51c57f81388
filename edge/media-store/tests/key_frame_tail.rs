//! The frames since a log's last key frame, read from its open segment while the writer goes
//! on: the unit's live start.

mod common;

use common::*;
use media_store::{MediaKey, MediaKind, Record, Store, StoreOptions, StoredFrame};

fn audio(camera: &str, i: u32) -> Record {
    Record::Frame(StoredFrame {
        camera: camera.into(),
        stream: 0,
        parameters_seq: 0,
        kind: MediaKind::Audio,
        keyframe: true,
        pts: i64::from(i),
        clock_rate: 8000,
        wall_clock_us: T0 + i64::from(i) * 40_000 + 1,
        data: vec![9; 160],
    })
}

fn wall(r: &Record) -> Option<i64> {
    match r {
        Record::Frame(f) => Some(f.wall_clock_us),
        _ => None,
    }
}

#[test]
fn reads_parameters_and_the_video_since_the_last_key_frame_of_an_encrypted_tail() {
    let dir = tempfile::tempdir().unwrap();
    let key = MediaKey::new(&[3; 32]);
    let (mut s, _) = Store::open(dir.path(), StoreOptions { encryption_key: Some(key), ..opts(64 << 20) }).unwrap();
    assert!(s.key_frame_tail("front").is_none(), "no log yet");
    s.append(&params("front")).unwrap();
    for i in 0..60 {
        s.append(&frame("front", i)).unwrap();
        s.append(&audio("front", i)).unwrap();
    }
    let tail = s.key_frame_tail("front").expect("a key frame in the open segment");
    assert_eq!(tail.key_frame_wall_us(), T0 + 50 * 40_000);
    // Appends after the answer are not part of it.
    s.append(&frame("front", 60)).unwrap();
    let records = tail.read().unwrap();
    assert!(matches!(&records[0], Record::Parameters(_)), "the parameters come first");
    let walls: Vec<i64> = records[1..].iter().map(|r| wall(r).expect("video frames only")).collect();
    let want: Vec<i64> = (50..60).map(|i| T0 + i * 40_000).collect();
    assert_eq!(walls, want, "frames 50 to 59, no audio, nothing after the answer");
    let (Record::Frame(got), Record::Frame(sent)) = (&records[3], frame("front", 52)) else { unreachable!() };
    assert!(got.data == sent.data, "decrypted as recorded");
    assert!(tail.bytes() > 10 * 1000, "{} bytes", tail.bytes());
}

#[test]
fn a_new_segment_without_a_key_frame_yet_has_no_tail() {
    let dir = tempfile::tempdir().unwrap();
    let (mut s, _) = Store::open(dir.path(), opts(64 << 20)).unwrap();
    s.append(&params("front")).unwrap();
    for i in 1..20 {
        s.append(&frame("front", i)).unwrap();
    }
    assert!(s.key_frame_tail("front").is_none(), "frames 1 to 19 hold no key frame");
    s.seal_all().unwrap();
    s.append(&frame("front", 25)).unwrap();
    let records = s.key_frame_tail("front").expect("key frame 25").read().unwrap();
    assert_eq!(records.len(), 2, "the parameters a new segment repeats, and the key frame");
}
