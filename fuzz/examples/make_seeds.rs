//! Writes the seed corpus (`corpus/<target>/seed-*`) from valid encodings:
//! `cargo run --example make_seeds` in `fuzz/`. The files are committed; run it again only
//! when the formats change.

use std::path::Path;

use convoy_fuzz::{SEGMENT_HEADER, make_store, record_ends};
use media_store::{list_segments, log_dir};
use protocol::framing;
use protocol::interconnect::{
    CameraInfo, CameraState, CameraStateKind, CentralMessage, EdgeMessage, Hello, LiveHeader, LiveMessage, MediaFrame,
    VideoParameters,
};
use protocol::io::{BoardMessage, Input, UnitCommand};

fn write(target: &str, seeds: &[Vec<u8>]) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus").join(target);
    std::fs::create_dir_all(&dir).unwrap();
    for (i, seed) in seeds.iter().enumerate() {
        std::fs::write(dir.join(format!("seed-{i:02}")), seed).unwrap();
    }
    println!("{target}: {} seeds", seeds.len());
}

/// Segment files: the valid records of the first sealed segment, of a sealed newest segment
/// and of unsealed tails (with a little of their zero tail), in each input mode.
fn segment_seeds() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for sealed in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        make_store(dir.path(), sealed);
        for camera in ["front", "rear"] {
            let segments = list_segments(&log_dir(dir.path(), camera)).unwrap();
            let mut picks = vec![segments.len() - 1];
            if !sealed && segments.len() > 1 {
                picks.insert(0, 0);
            }
            for i in picks {
                let path = &segments[i].1;
                let end = record_ends(path).last().map_or(SEGMENT_HEADER as u64, |r| r.2);
                let bytes = std::fs::read(path).unwrap();
                let bytes = &bytes[..(end as usize + 32).min(bytes.len())];
                // Mode 0: header supplied by the target; mode 1: the file as it is; mode 2:
                // header supplied and checksums fixed.
                let mode = out.len() as u8 % 3;
                let mut seed = vec![mode];
                if mode == 1 {
                    seed.extend_from_slice(bytes);
                } else {
                    seed.extend_from_slice(&bytes[SEGMENT_HEADER..]);
                }
                out.push(seed);
                // Mode 4 (bodies framed by the target): `len u8 | body` of each record that
                // fits; mode 12: the same after a first sequence number.
                let mut framed = vec![if sealed { 12 } else { 4 }];
                if sealed {
                    framed.extend_from_slice(&segments[i].0.to_le_bytes());
                }
                let mut at = SEGMENT_HEADER;
                for (_, _, end) in record_ends(path) {
                    let body = &bytes[at + 16..end as usize];
                    if let Ok(len) = u8::try_from(body.len()) {
                        framed.push(len);
                        framed.extend_from_slice(body);
                    }
                    at = end as usize;
                }
                out.push(framed);
            }
        }
    }
    out
}

/// Damages: `flags | offset u32 | len u16 | bytes`.
fn recovery_seeds() -> Vec<Vec<u8>> {
    let seed = |flags: u8, offset: u32, len: u16, bytes: &[u8]| {
        let mut s = vec![flags];
        s.extend_from_slice(&offset.to_le_bytes());
        s.extend_from_slice(&len.to_le_bytes());
        s.extend_from_slice(bytes);
        s
    };
    vec![
        // Truncate front's tail in a record.
        seed(0, 700, 0, &[]),
        // Overwrite rear's tail with garbage, then seal.
        seed(1 | 1 << 2 | 16, 120, 0, b"\xde\xad\xbe\xef garbage"),
        // Zeros over front's records (a torn page).
        seed(1 << 2, 300, 512, &[]),
        // Cut front's sealed newest segment and append garbage.
        seed(2 | 2 << 2, 900, 0, &[0x55; 40]),
        // Flip a bit in the header of rear's sealed newest segment.
        seed(3 | 3 << 2, 3, 5, &[]),
        // Flip a bit in front's tail records.
        seed(3 << 2 | 16, 333, 2, &[]),
    ]
}

fn body<T: serde::Serialize>(msg: &T) -> Vec<u8> {
    framing::encode(msg).unwrap()[framing::PREFIX_LEN..].to_vec()
}

fn protocol_seeds() -> Vec<Vec<u8>> {
    let parameters = LiveMessage::Parameters(VideoParameters {
        rfc6381_codec: "avc1.4d401e".into(),
        width: 1920,
        height: 1080,
        extra_data: vec![1, 0x4d, 0, 0x1e, 0xff, 0xe1, 0, 4, 0x67, 0x4d, 0, 0x1e],
    });
    let frame = LiveMessage::Frame(MediaFrame {
        pts: 3600,
        clock_rate: 90_000,
        wall_clock_us: 1_700_000_000_000_000,
        keyframe: true,
        data: vec![0, 0, 0, 2, 0x65, 0x88],
    });
    let mut firmware = heapless::String::new();
    firmware.push_str("io-1.0.0").unwrap();
    vec![
        body(&EdgeMessage::Hello(Hello {
            protocol_version: protocol::PROTOCOL_VERSION,
            unit_id: "bus-42".into(),
            cameras: vec![CameraInfo { id: "front".into(), name: "Front".into() }],
        })),
        body(&EdgeMessage::CameraState(CameraState {
            camera: "front".into(),
            state: CameraStateKind::Down,
            reason: Some("refused".into()),
        })),
        body(&CentralMessage::Welcome { protocol_version: 1 }),
        body(&CentralMessage::StartLive { camera: "front".into() }),
        [
            framing::encode(&LiveHeader { camera: "front".into() }).unwrap(),
            framing::encode(&parameters).unwrap(),
            framing::encode(&frame).unwrap(),
        ]
        .concat(),
        body(&frame),
        postcard::to_allocvec(&BoardMessage::Heartbeat { seq: 7, uptime_ms: 1234, firmware }).unwrap(),
        postcard::to_allocvec(&BoardMessage::InputChanged { input: Input::Door(2), active: true }).unwrap(),
        postcard::to_allocvec(&UnitCommand::SetOutput { output: 3, on: true }).unwrap(),
    ]
}

/// Framed streams of sync messages: a chunk of the retrieval under way, a failure, events, and
/// the edge's side (a fetch, an acknowledgement).
fn sync_seeds() -> Vec<Vec<u8>> {
    use protocol::sync::{Chunk, EventBatch, EventKind, FetchFailure, RemoteEvent, SyncFrame, SyncFromCentral, SyncFromEdge};
    let frames = vec![
        SyncFrame { seq: 10, wall_clock_us: 1, keyframe: true, payload: vec![1; 40] },
        SyncFrame { seq: 11, wall_clock_us: 40_001, keyframe: false, payload: vec![2; 3] },
    ];
    let chunk = SyncFromEdge::Chunk(Chunk {
        fetch_id: 1,
        camera: "front".into(),
        digest: sync_core::codec::chunk_digest(&frames),
        frames,
        next_seq: Some(12),
    });
    let events = EventBatch {
        events: vec![RemoteEvent { id: 1, cameras: vec!["front".into()], time_us: 5, kind: EventKind::Motion }],
    };
    let frame = |m: &dyn erased::Encode| m.framed();
    vec![
        [frame(&chunk), frame(&SyncFromEdge::Events(sync_core::codec::compress_events(&events).unwrap()))].concat(),
        [
            frame(&SyncFromEdge::FetchFailed { fetch_id: 1, reason: FetchFailure::Gone { available_from: 50 } }),
            frame(&chunk),
        ]
        .concat(),
        [
            frame(&SyncFromCentral::Fetch { fetch_id: 1, camera: "front".into(), from_seq: 10, to_seq: 99, max_bytes: 262_144 }),
            frame(&SyncFromCentral::Stored { camera: "front".into(), up_to_seq: 11 }),
            frame(&SyncFromCentral::EventsAck { up_to_id: 1 }),
        ]
        .concat(),
    ]
}

/// Framing for seeds of several message types in one list.
mod erased {
    /// A message that frames itself.
    pub trait Encode {
        fn framed(&self) -> Vec<u8>;
    }
    impl<T: serde::Serialize> Encode for T {
        fn framed(&self) -> Vec<u8> {
            protocol::framing::encode(self).unwrap()
        }
    }
}

fn main() {
    write("segment_reader", &segment_seeds());
    write("store_recovery", &recovery_seeds());
    write("protocol_messages", &protocol_seeds());
    write("sync_core", &sync_seeds());
}
