//! Retrieved audio in central's store (protocol version 4): chunks of a version 3 unit (video
//! payloads as `RetrievedFrame`) and of a version 4 unit (video and audio as `RetrievedMedia`)
//! stored side by side, arriving out of order; playback reads video only, the export's reader
//! gets each audio frame once with the parameters in force, and `verify` checks audio records
//! like any other.

use protocol::interconnect::{AudioParameters, MediaFrame, VideoParameters};
use protocol::sync::{RetrievedFrame, RetrievedMedia, SyncFrame};

use crate::retrieved::{RetrievedStore, read_held, read_held_audio};

const T0: i64 = 1_800_000_000_000_000;

fn video_parameters() -> VideoParameters {
    VideoParameters {
        rfc6381_codec: "avc1.42c01e".into(),
        width: 320,
        height: 240,
        extra_data: vec![1, 0x42, 0xc0, 0x1e, 0xff, 0xe1, 0, 4, 0x67, 0x42, 0xc0, 0x1e, 1, 0, 2, 0x68, 0xce],
    }
}

fn aac() -> AudioParameters {
    AudioParameters { codec: "mp4a.40.2".into(), sample_rate: 16_000, channels: 1, extra_data: vec![0x14, 0x08] }
}

fn ulaw() -> AudioParameters {
    AudioParameters { codec: "ulaw".into(), sample_rate: 8000, channels: 1, extra_data: vec![] }
}

/// Sequence number `n` of the unit's log: even numbers video (25 fps), odd ones audio (from a
/// version 4 unit) at the same pace, 20 ms later.
fn wall(n: u64) -> i64 {
    T0 + (n / 2) as i64 * 40_000 + (n % 2) as i64 * 20_000
}

fn video(n: u64, first: bool, v3: bool) -> SyncFrame {
    let frame = MediaFrame {
        pts: (n / 2) as i64 * 3600,
        clock_rate: 90_000,
        wall_clock_us: wall(n),
        keyframe: n.is_multiple_of(50),
        data: n.to_be_bytes().to_vec(),
    };
    let parameters = (first || n.is_multiple_of(50)).then(video_parameters);
    let payload = if v3 {
        postcard::to_allocvec(&RetrievedFrame { parameters, frame }).unwrap()
    } else {
        let media = match parameters {
            Some(p) => RetrievedMedia::VideoWithParameters(p, frame),
            None => RetrievedMedia::Video(frame),
        };
        postcard::to_allocvec(&media).unwrap()
    };
    SyncFrame { seq: n, wall_clock_us: wall(n), keyframe: n.is_multiple_of(50), payload }
}

fn audio(n: u64, parameters: Option<AudioParameters>) -> SyncFrame {
    let frame = MediaFrame {
        pts: (n / 2) as i64 * 640,
        clock_rate: parameters.as_ref().map_or(16_000, |p| p.sample_rate),
        wall_clock_us: wall(n),
        keyframe: true,
        data: [b"audio".as_slice(), &n.to_be_bytes()].concat(),
    };
    let payload = postcard::to_allocvec(&RetrievedMedia::Audio { parameters, frame }).unwrap();
    SyncFrame { seq: n, wall_clock_us: wall(n), keyframe: true, payload }
}

/// A version 4 unit's chunk of `range`: video and audio, the audio parameters with the first
/// audio frame and where the camera changed them (`ulaw` from `ulaw_from` on).
fn v4_chunk(range: std::ops::Range<u64>, ulaw_from: u64) -> Vec<SyncFrame> {
    let mut sent: Option<AudioParameters> = None;
    range
        .clone()
        .map(|n| match n % 2 {
            0 => video(n, n == range.start || n == range.start + 1, false),
            _ => {
                let p = if n >= ulaw_from { ulaw() } else { aac() };
                let with = (sent.as_ref() != Some(&p)).then(|| p.clone());
                sent = Some(p);
                audio(n, with)
            }
        })
        .collect()
}

#[tokio::test]
async fn audio_of_version_4_chunks_is_stored_once_beside_version_3_video_and_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let store = RetrievedStore::open(dir.path()).unwrap();
    let ulaw_from = 501;
    // Out of order: a version 4 chunk, the version 3 unit's video before it (the unit was
    // updated in between: video only, as its old central took it), more version 4 chunks.
    let v3: Vec<SyncFrame> = (0..200).filter(|n| n % 2 == 0).map(|n| video(n, n == 0, true)).collect();
    for (range, frames) in [
        (400..600, v4_chunk(400..600, ulaw_from)),
        (0..200, v3),
        (200..400, v4_chunk(200..400, ulaw_from)),
        (600..800, v4_chunk(600..800, ulaw_from)),
    ] {
        store.store("bus-1", "front", range, frames).await.unwrap();
    }

    let (start, end) = (T0, wall(799));
    let held = read_held(dir.path(), "bus-1", "front", start, end).unwrap();
    let numbers = |frames: &[media_store::by_seq::SeqFrame]| -> Vec<u64> {
        frames.iter().map(|f| u64::from_be_bytes(f.frame.data[f.frame.data.len() - 8..].try_into().unwrap())).collect()
    };
    assert_eq!(numbers(&held), (0..800).filter(|n| n % 2 == 0).collect::<Vec<_>>(), "every video frame once");
    assert!(held.iter().all(|f| f.frame.kind == media_store::MediaKind::Video));

    let audio = read_held_audio(dir.path(), "bus-1", "front", start, end).unwrap();
    assert_eq!(numbers(&audio), (200..800).filter(|n| n % 2 == 1).collect::<Vec<_>>(), "every audio frame once");
    for f in &audio {
        let n = u64::from_be_bytes(f.frame.data[5..].try_into().unwrap());
        assert_eq!(f.frame.data, [b"audio".as_slice(), &n.to_be_bytes()].concat());
        assert_eq!((f.frame.wall_clock_us, f.frame.pts, f.frame.keyframe), (wall(n), (n / 2) as i64 * 640, true));
        let p = f.audio_parameters.as_ref().unwrap_or_else(|| panic!("audio {n} without parameters"));
        let want = if n >= ulaw_from { "ulaw" } else { "mp4a.40.2" };
        assert_eq!(p.codec, want, "audio frame {n}");
    }
    // Narrower reads (as the export's windows make them) agree.
    let window = read_held_audio(dir.path(), "bus-1", "front", wall(451), wall(551)).unwrap();
    assert_eq!(numbers(&window), (451..=551).filter(|n| n % 2 == 1).collect::<Vec<_>>());

    // The holdings the sync core resumes from cover the chunks whole, audio included.
    let holdings = store.holdings("bus-1").await.unwrap();
    assert_eq!(holdings["front"].iter().collect::<Vec<_>>(), vec![0..800]);

    // Central's media store verifies, audio records included.
    drop(store);
    let report = media_store::verify::verify(&dir.path().join("media"), None).unwrap();
    assert!(report.ok(), "{:?}", report.errors);
    assert_eq!(report.frames, 400 + 300, "video and audio frames");
}
