//! Shared helpers for the store's tests.
#![allow(dead_code)]

use std::path::Path;
use std::time::Duration;

use media_store::{
    MediaKind, Record, SegmentReader, StoreOptions, StoredFrame, StoredParameters, list_segments, log_dir,
};

/// 2023-11-14T22:13:20Z in µs.
pub const T0: i64 = 1_700_000_000_000_000;

pub fn params(camera: &str) -> Record {
    Record::Parameters(StoredParameters {
        camera: camera.into(),
        rfc6381_codec: "avc1.4d401e".into(),
        width: 640,
        height: 360,
        extra_data: vec![1, 0x4d, 0, 0x1e, 0xff],
    })
}

/// Frame `i` of `camera`: 25 fps from [`T0`], a key frame every 25.
pub fn frame(camera: &str, i: u32) -> Record {
    Record::Frame(StoredFrame {
        camera: camera.into(),
        stream: 0,
        parameters_seq: 0,
        kind: MediaKind::Video,
        keyframe: i.is_multiple_of(25),
        pts: i64::from(i) * 3600,
        clock_rate: 90_000,
        wall_clock_us: T0 + i64::from(i) * 40_000,
        data: vec![(i % 250) as u8 + 1; 1000 + (i as usize * 37) % 3000],
    })
}

pub fn opts(segment_bytes: u64) -> StoreOptions {
    StoreOptions { segment_bytes, fsync_interval: Duration::from_millis(100), ..StoreOptions::default() }
}

/// Every record of a log, in order, with sequence numbers.
pub fn read_log(store: &Path, camera: &str) -> Vec<(u64, Record)> {
    let mut out = Vec::new();
    for (_, path) in list_segments(&log_dir(store, camera)).unwrap() {
        let mut r = SegmentReader::open(&path).unwrap();
        while let Some(rec) = r.next_record().unwrap() {
            out.push(rec);
        }
    }
    out
}

/// The frames of a log, in order.
pub fn frames(store: &Path, camera: &str) -> Vec<StoredFrame> {
    read_log(store, camera)
        .into_iter()
        .filter_map(|(_, r)| match r {
            Record::Frame(f) => Some(f),
            _ => None,
        })
        .collect()
}
