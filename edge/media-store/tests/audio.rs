//! Audio beside video in one camera's log: its own parameters record that never replaces the
//! video's, readers that filter by kind, and stores written before audio existed.

mod common;

use common::*;
use media_store::by_seq::{Limit, SeqRead, read_seqs, read_seqs_with_audio};
use media_store::read::{read_range, read_range_with_audio};
use media_store::{MediaKind, Record, Store, StoredAudioParameters, StoredFrame};

/// A segment written by the store before audio existed (format 1, video only): `Parameters`,
/// 30 frames of 25 fps with a key frame every 25 (8 bytes of `i` each), sealed; written by the
/// store of commit 2c73fe7, the last before audio. Frozen bytes: never regenerate.
const OLD_SEGMENT: &[u8] = include_bytes!("fixtures/video-only-v1.seg");

fn audio_params(camera: &str) -> Record {
    Record::AudioParameters(StoredAudioParameters {
        camera: camera.into(),
        codec: "mp4a.40.2".into(),
        sample_rate: 16_000,
        channels: 1,
        extra_data: vec![0x14, 0x08],
    })
}

/// Audio frame `i`: 1024 samples at 16 kHz (64 ms) from [`T0`] + 5 ms.
fn audio_frame(camera: &str, i: u32) -> Record {
    Record::Frame(StoredFrame {
        camera: camera.into(),
        stream: 0,
        parameters_seq: 0,
        kind: MediaKind::Audio,
        keyframe: true,
        pts: i64::from(i) * 1024,
        clock_rate: 16_000,
        wall_clock_us: T0 + 5_000 + i64::from(i) * 64_000,
        data: vec![0x21, i as u8, 0x55],
    })
}

/// Video frames 0..n at 25 fps interleaved with the audio frames due by each one's time.
fn write_av(s: &mut Store, n: u32) {
    s.append(&params("front")).unwrap();
    s.append(&audio_params("front")).unwrap();
    let mut a = 0;
    for i in 0..n {
        s.append(&frame("front", i)).unwrap();
        while T0 + 5_000 + i64::from(a) * 64_000 <= T0 + i64::from(i) * 40_000 {
            s.append(&audio_frame("front", a)).unwrap();
            a += 1;
        }
    }
    s.sync().unwrap();
}

fn collect(r: impl Iterator<Item = Result<Record, media_store::StoreError>>) -> Vec<Record> {
    r.map(Result::unwrap).collect()
}

fn kinds(records: &[Record]) -> (usize, usize, usize, usize) {
    let count = |f: &dyn Fn(&Record) -> bool| records.iter().filter(|r| f(r)).count();
    (
        count(&|r| matches!(r, Record::Parameters(_))),
        count(&|r| matches!(r, Record::AudioParameters(_))),
        count(&|r| matches!(r, Record::Frame(f) if f.kind == MediaKind::Video)),
        count(&|r| matches!(r, Record::Frame(f) if f.kind == MediaKind::Audio)),
    )
}

#[test]
fn audio_parameters_never_replace_the_video_parameters_and_readers_filter_by_kind() {
    let dir = tempfile::tempdir().unwrap();
    // Small segments: many seals, each new segment starts with both parameters again.
    let (mut s, _) = Store::open(dir.path(), opts(30_000)).unwrap();
    write_av(&mut s, 200);
    let log = read_log(dir.path(), "front");
    let segment_starts: Vec<usize> = log
        .iter()
        .enumerate()
        .filter(|(i, (_, r))| *i == 0 || matches!(log[i - 1].1, Record::Seal(_)) && !matches!(r, Record::Seal(_)))
        .map(|(i, _)| i)
        .collect();
    assert!(segment_starts.len() > 3, "several segments");
    for i in segment_starts {
        assert!(matches!(log[i].1, Record::Parameters(_)), "video parameters open segment at {i}");
        assert!(matches!(log[i + 1].1, Record::AudioParameters(_)), "audio parameters next at {i}");
    }

    // Video only, as before audio existed.
    let video = collect(read_range(dir.path(), "front", T0 + 60 * 40_000, T0 + 120 * 40_000, None).unwrap());
    assert!(matches!(video[0], Record::Parameters(_)));
    let (vp, ap, vf, af) = kinds(&video);
    assert_eq!((vp > 0, ap, vf, af), (true, 0, 120 - 50 + 1, 0));

    // With audio: both parameters first, audio frames only from the first video frame on.
    let av = collect(read_range_with_audio(dir.path(), "front", T0 + 60 * 40_000, T0 + 120 * 40_000, None).unwrap());
    assert!(matches!(av[0], Record::Parameters(_)), "{:?}", av[0]);
    assert!(matches!(av[1], Record::AudioParameters(_)), "{:?}", av[1]);
    let (_, ap, vf, af) = kinds(&av);
    assert!(ap >= 1);
    assert_eq!(vf, 71);
    // From the key frame at 50 (2.0 s) to 120 (4.8 s): audio frames at 5 ms + 64 ms·n.
    let expected = (0..200).filter(|a| (2_000..=4_800).contains(&(5 + 64 * a))).count();
    assert!(af.abs_diff(expected) <= 1, "{af} audio frames, about {expected} expected");
    let first_video = av.iter().position(|r| matches!(r, Record::Frame(f) if f.kind == MediaKind::Video)).unwrap();
    let first_audio = av.iter().position(|r| matches!(r, Record::Frame(f) if f.kind == MediaKind::Audio)).unwrap();
    assert!(first_video < first_audio);

    // Reopened (recovery scans the tail): audio parameters are still written at new segments.
    drop(s);
    let (mut s, _) = Store::open(dir.path(), opts(30_000)).unwrap();
    for i in 200..400 {
        s.append(&frame("front", i)).unwrap();
    }
    s.sync().unwrap();
    let log = read_log(dir.path(), "front");
    let after = log.iter().rposition(|(_, r)| matches!(r, Record::Seal(_))).unwrap();
    assert!(matches!(log[after + 2].1, Record::AudioParameters(_)), "{:?}", log[after + 2]);

    // Sync to central reads by sequence number: video frames only.
    let SeqRead::Frames { frames, .. } =
        read_seqs(dir.path(), "front", (0, 10_000), u64::MAX, Limit::Until(None), None).unwrap()
    else {
        panic!("gone")
    };
    assert_eq!(frames.len(), 400);
    assert!(frames.iter().all(|f| f.frame.kind == MediaKind::Video));
    assert!(frames.iter().all(|f| f.parameters.as_ref().is_some_and(|p| p.rfc6381_codec.starts_with("avc1"))));
}

#[test]
fn a_store_written_before_audio_existed_reads_as_before() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("logs").join("front");
    std::fs::create_dir_all(&log).unwrap();
    std::fs::write(log.join("00000000000000000000.seg"), OLD_SEGMENT).unwrap();
    let (mut s, _) = Store::open(dir.path(), opts(30_000)).unwrap();
    for reader in [
        read_range(dir.path(), "front", T0, T0 + 10_000_000, None),
        read_range_with_audio(dir.path(), "front", T0, T0 + 10_000_000, None),
    ] {
        let records = collect(reader.unwrap());
        assert_eq!(records[0], params("front"));
        assert_eq!(records[1..], (0..30).map(small_frame).collect::<Vec<_>>()[..]);
    }
    // The log goes on, now with audio.
    s.append(&audio_params("front")).unwrap();
    s.append(&audio_frame("front", 40)).unwrap();
    s.sync().unwrap();
    let all = read_log(dir.path(), "front");
    assert!(matches!(all.last(), Some((_, Record::Frame(f))) if f.kind == MediaKind::Audio));
}

/// Frame `i` of the frozen segment.
fn small_frame(i: u32) -> Record {
    let Record::Frame(mut f) = frame("front", i) else { unreachable!() };
    f.data = vec![i as u8; 8];
    Record::Frame(f)
}

#[test]
fn audio_in_an_encrypted_store_comes_back_with_the_key_only() {
    let dir = tempfile::tempdir().unwrap();
    let key = media_store::MediaKey::new(&[7; 32]);
    let opts = media_store::StoreOptions { encryption_key: Some(key.clone()), ..opts(30_000) };
    let (mut s, _) = Store::open(dir.path(), opts).unwrap();
    write_av(&mut s, 100);
    drop(s);
    // The AudioSpecificConfig and the audio payloads are sealed on disk.
    let on_disk = read_log(dir.path(), "front");
    assert!(on_disk.iter().any(|(_, r)| matches!(r, Record::AudioParameters(p) if p.extra_data != [0x14, 0x08])));
    let without =
        read_range_with_audio(dir.path(), "front", T0, T0 + 10_000_000, None).map(|r| r.collect::<Result<Vec<_>, _>>());
    assert!(!matches!(without, Ok(Ok(_))), "no key, no audio: {without:?}");
    let records = collect(read_range_with_audio(dir.path(), "front", T0, T0 + 10_000_000, Some(key)).unwrap());
    assert_eq!(records[1], audio_params("front"));
    let audio: Vec<_> = records
        .iter()
        .filter_map(|r| match r {
            Record::Frame(f) if f.kind == MediaKind::Audio => Some(f.data.clone()),
            _ => None,
        })
        .collect();
    assert!(audio.len() > 50);
    assert!(audio.iter().enumerate().all(|(i, d)| d == &[0x21, i as u8, 0x55]), "decrypted as written");
}

/// Reads for a central that takes audio: every audio frame of the range once, in log order
/// between the video frames, each with the audio parameters in force, also when the read starts
/// at a key frame in the middle of a segment and when the camera's audio changed mid-segment.
#[test]
fn reads_by_sequence_number_with_audio_carry_each_audio_frame_and_its_parameters() {
    let dir = tempfile::tempdir().unwrap();
    let (mut s, _) = Store::open(dir.path(), opts(30_000)).unwrap();
    write_av(&mut s, 200);
    // The camera comes back with 8 kHz G.711: new parameters in the middle of a segment.
    let g711 = StoredAudioParameters {
        camera: "front".into(),
        codec: "ulaw".into(),
        sample_rate: 8000,
        channels: 1,
        extra_data: vec![],
    };
    let changed_at = s.append(&Record::AudioParameters(g711.clone())).unwrap();
    for i in 200..260 {
        s.append(&frame("front", i)).unwrap();
        if i % 2 == 0 {
            let mut f = audio_frame("front", 1000 + i);
            if let Record::Frame(f) = &mut f {
                f.parameters_seq = changed_at;
                f.clock_rate = 8000;
            }
            s.append(&f).unwrap();
        }
    }
    s.sync().unwrap();
    let log = read_log(dir.path(), "front");
    let all_audio: Vec<u64> = log
        .iter()
        .filter(|(_, r)| matches!(r, Record::Frame(f) if f.kind == MediaKind::Audio))
        .map(|(q, _)| *q)
        .collect();
    let last = log.last().unwrap().0;

    // In small fetches from every start: the pieces together hold each audio frame once.
    let mut got = Vec::new();
    let mut from = 0;
    loop {
        let SeqRead::Frames { frames, next_seq } =
            read_seqs_with_audio(dir.path(), "front", (from, last), 2_000, Limit::Until(None), None).unwrap()
        else {
            panic!("gone")
        };
        for f in &frames {
            if f.frame.kind == MediaKind::Audio {
                let p = f.audio_parameters.as_ref().unwrap_or_else(|| panic!("audio {} without parameters", f.seq));
                let expected = if f.seq > changed_at { "ulaw" } else { "mp4a.40.2" };
                assert_eq!(p.codec, expected, "audio frame {}", f.seq);
                assert_eq!(p.sample_rate, f.frame.clock_rate);
                got.push(f.seq);
            } else {
                assert!(f.audio_parameters.is_none());
            }
        }
        assert!(frames.windows(2).all(|w| w[0].seq < w[1].seq));
        match next_seq {
            Some(n) => from = n,
            None => break,
        }
    }
    assert_eq!(got, all_audio, "each audio frame once, in order");
    assert!(all_audio.len() > 100);

    // A read that starts at a key frame mid-segment, after the change: the changed parameters.
    let start = log
        .iter()
        .find(|(q, r)| *q > changed_at + 20 && matches!(r, Record::Frame(f) if f.kind == MediaKind::Audio))
        .unwrap()
        .0;
    let SeqRead::Frames { frames, .. } =
        read_seqs_with_audio(dir.path(), "front", (start, start), u64::MAX, Limit::Until(None), None).unwrap()
    else {
        panic!("gone")
    };
    assert_eq!(frames.len(), 1);
    assert_eq!(frames[0].audio_parameters, Some(g711));
}
