//! ONVIF metadata messages beside video and audio in one camera's log (`MediaKind::Metadata`):
//! kept byte for byte, and passed over by every reader of media (range reads for playback and
//! export, with or without audio; reads by sequence number for central; thinned archives).

mod common;

use std::time::Duration;

use common::*;
use media_store::archive::ArchiveOptions;
use media_store::by_seq::{Limit, SeqRead, read_seqs, read_seqs_with_audio};
use media_store::read::{read_range, read_range_with_audio};
use media_store::verify::verify;
use media_store::volumes::volume_log_dir;
use media_store::{MediaKind, Record, Retention, Store, StoreOptions, StoredAudioParameters, StoredFrame};

/// Message `i`: every 200 ms from [`T0`] + 7 ms, XML with a byte that is not ASCII.
fn message(i: u32) -> StoredFrame {
    StoredFrame {
        camera: "front".into(),
        stream: 0,
        parameters_seq: 0,
        kind: MediaKind::Metadata,
        keyframe: true,
        pts: i64::from(i) * 18_000,
        clock_rate: 90_000,
        wall_clock_us: T0 + 7_000 + i64::from(i) * 200_000,
        data: format!("<tt:MetadataStream>Zähler {i}</tt:MetadataStream>").into_bytes(),
    }
}

/// Audio frame `i`: every 64 ms from [`T0`] + 5 ms.
fn audio(i: u32) -> Record {
    Record::Frame(StoredFrame {
        camera: "front".into(),
        stream: 0,
        parameters_seq: 0,
        kind: MediaKind::Audio,
        keyframe: true,
        pts: i64::from(i) * 1024,
        clock_rate: 16_000,
        wall_clock_us: T0 + 5_000 + i64::from(i) * 64_000,
        data: vec![0x21, i as u8],
    })
}

/// `n` video frames at 25 fps with the audio and metadata due by each one's time.
fn write(s: &mut Store, n: u32) -> Vec<StoredFrame> {
    s.append(&params("front")).unwrap();
    s.append(&Record::AudioParameters(StoredAudioParameters {
        camera: "front".into(),
        codec: "mp4a.40.2".into(),
        sample_rate: 16_000,
        channels: 1,
        extra_data: vec![0x14, 0x08],
    }))
    .unwrap();
    let (mut a, mut m, mut messages) = (0, 0, Vec::new());
    for i in 0..n {
        let t = T0 + i64::from(i) * 40_000;
        s.append(&frame("front", i)).unwrap();
        while T0 + 5_000 + i64::from(a) * 64_000 <= t {
            s.append(&audio(a)).unwrap();
            a += 1;
        }
        while T0 + 7_000 + i64::from(m) * 200_000 <= t {
            s.append(&Record::Frame(message(m))).unwrap();
            messages.push(message(m));
            m += 1;
        }
    }
    s.sync().unwrap();
    messages
}

fn kinds(records: &[Record]) -> Vec<MediaKind> {
    let mut k: Vec<MediaKind> = records
        .iter()
        .filter_map(|r| match r {
            Record::Frame(f) => Some(f.kind),
            _ => None,
        })
        .collect();
    k.dedup();
    k.sort_by_key(|k| *k as u8);
    k.dedup();
    k
}

#[test]
fn messages_are_kept_as_written_and_media_readers_pass_them_over() {
    let dir = tempfile::tempdir().unwrap();
    let (mut s, _) = Store::open(dir.path(), opts(40_000)).unwrap();
    let written = write(&mut s, 400);
    drop(s);
    // Reopened (recovery scans the tail, the catalog indexes the sealed segments).
    let (s, _) = Store::open(dir.path(), opts(40_000)).unwrap();
    drop(s);
    let stored: Vec<StoredFrame> =
        frames(dir.path(), "front").into_iter().filter(|f| f.kind == MediaKind::Metadata).collect();
    assert_eq!(stored, written, "every message, byte for byte, in order");
    assert!(stored.len() >= 75);
    let v = verify(dir.path(), None).unwrap();
    assert!(v.ok(), "{:?}", v.errors);

    let all = (T0, T0 + 100_000_000);
    let video = read_range(dir.path(), "front", all.0, all.1, None).unwrap().map(Result::unwrap).collect::<Vec<_>>();
    assert_eq!(kinds(&video), [MediaKind::Video]);
    assert_eq!(video.iter().filter(|r| matches!(r, Record::Frame(_))).count(), 400);
    let av =
        read_range_with_audio(dir.path(), "front", all.0, all.1, None).unwrap().map(Result::unwrap).collect::<Vec<_>>();
    assert_eq!(kinds(&av), [MediaKind::Video, MediaKind::Audio], "video and audio, no metadata");
    // A range in the middle: the same.
    let mid = read_range_with_audio(dir.path(), "front", T0 + 5_000_000, T0 + 9_000_000, None).unwrap();
    assert_eq!(kinds(&mid.map(Result::unwrap).collect::<Vec<_>>()), [MediaKind::Video, MediaKind::Audio]);

    // Sync to central reads by sequence number: video frames only.
    let SeqRead::Frames { frames, .. } =
        read_seqs(dir.path(), "front", (0, 100_000), u64::MAX, Limit::Until(None), None).unwrap()
    else {
        panic!("gone")
    };
    assert_eq!(frames.len(), 400);
    assert!(frames.iter().all(|f| f.frame.kind == MediaKind::Video));
    // A central of protocol version 4 takes audio too, never metadata.
    let SeqRead::Frames { frames, .. } =
        read_seqs_with_audio(dir.path(), "front", (0, 100_000), u64::MAX, Limit::Until(None), None).unwrap()
    else {
        panic!("gone")
    };
    assert!(frames.iter().any(|f| f.frame.kind == MediaKind::Audio), "audio read");
    assert_eq!(frames.iter().filter(|f| f.frame.kind == MediaKind::Video).count(), 400);
    assert!(frames.iter().all(|f| f.frame.kind != MediaKind::Metadata), "metadata stays on the unit");
}

#[test]
fn a_thinned_archive_drops_metadata_with_the_audio() {
    let dir = tempfile::tempdir().unwrap();
    let archive = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let opts = StoreOptions {
        archive: Some(ArchiveOptions {
            path: archive.path().to_owned(),
            after: Duration::from_secs(3600),
            keyframes_only: true,
            max_bytes: None,
        }),
        retention: Retention { min_free_bytes: Some(0), ..Default::default() },
        ..opts(40_000)
    };
    let (mut s, _) = Store::open(&store, opts).unwrap();
    write(&mut s, 400);
    let report = s.groom(T0 + 7_200_000_000).unwrap();
    assert!(report.archived.segments >= 5, "{report:?}");
    drop(s);
    assert!(verify(&store, None).unwrap().ok());
    let archived = frames(archive.path(), "front");
    assert!(!archived.is_empty());
    assert!(archived.iter().all(|f| f.kind == MediaKind::Video && f.keyframe), "key frames only");
    assert!(volume_log_dir(archive.path(), "front").exists());
}
