//! Hostile bytes for every decoder of the sync protocol: seeded mutations of valid encodings
//! (bit flips, truncations, insertions, deletions, overwrites with varint-heavy bytes) and random
//! buffers, fed to `framing::decode` of `SyncFromEdge` and `SyncFromCentral`, to catalog and event
//! decompression (zstd, with its size cap), and through `CentralSync::handle`. Each must return an
//! error or a value, never panic.

use std::panic::{AssertUnwindSafe, catch_unwind};

use protocol::framing;
use protocol::sync::{
    CameraHoldings, CatalogSummary, Chunk, CompressedCatalog, CompressedEvents, EventBatch, EventKind, FetchFailure,
    RemoteEvent, Span, SyncFrame, SyncFromCentral, SyncFromEdge,
};
use sync_core::codec::{chunk_digest, compress_catalog, compress_events, decompress_catalog, decompress_events};
use sync_core::{CentralConfig, CentralSync, EdgeConfig, EdgeSync, Holdings, Priority, Retrieval};

struct Rng(u64);

impl Rng {
    fn u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.u64() % n.max(1) as u64) as usize
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.u64() as u8).collect()
    }
}

const INTERESTING: [u8; 8] = [0x00, 0x01, 0x7f, 0x80, 0xfe, 0xff, 0xc0, 0x3f];

fn mutate(rng: &mut Rng, bytes: &mut Vec<u8>) {
    for _ in 0..1 + rng.below(3) {
        let len = bytes.len();
        match rng.below(6) {
            0 if len > 0 => {
                let i = rng.below(len);
                bytes[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => bytes.truncate(rng.below(len)),
            2 => {
                let i = rng.below(len + 1);
                let b = INTERESTING[rng.below(INTERESTING.len())];
                bytes.insert(i, b);
            }
            3 if len > 0 => {
                bytes.remove(rng.below(len));
            }
            4 if len > 0 => {
                let i = rng.below(len);
                for b in bytes.iter_mut().skip(i).take(1 + rng.below(5)) {
                    *b = INTERESTING[rng.below(INTERESTING.len())];
                }
            }
            _ => {
                let n = 1 + rng.below(8);
                bytes.extend(rng.bytes(n));
            }
        }
    }
}

fn catalog() -> CatalogSummary {
    let span = Span { first_seq: 10, last_seq: 99, start_us: 1, end_us: 9_000_000, bytes: 900_000, frames: 80 };
    CatalogSummary {
        as_of_us: 1_700_000_000_000_000,
        cameras: vec![
            CameraHoldings { camera: "front".into(), spans: vec![span], removed: vec![] },
            CameraHoldings { camera: "rear".into(), spans: vec![], removed: vec![span] },
        ],
    }
}

fn events() -> EventBatch {
    EventBatch {
        events: vec![
            RemoteEvent { id: 1, cameras: vec!["front".into()], time_us: 5, kind: EventKind::Motion },
            RemoteEvent {
                id: 2,
                cameras: vec![],
                time_us: 6,
                kind: EventKind::Generic { name: "door".into(), detail: "open".into() },
            },
            RemoteEvent { id: 3, cameras: vec![], time_us: 7, kind: EventKind::CameraLost { reason: "eof".into() } },
        ],
    }
}

fn edge_messages() -> Vec<SyncFromEdge> {
    let frames = vec![
        SyncFrame { seq: 10, wall_clock_us: 1, keyframe: true, payload: vec![1; 40] },
        SyncFrame { seq: 11, wall_clock_us: 2, keyframe: false, payload: vec![2; 3] },
    ];
    vec![
        SyncFromEdge::Catalog(compress_catalog(&catalog()).unwrap()),
        SyncFromEdge::Chunk(Chunk {
            fetch_id: 3,
            camera: "front".into(),
            digest: chunk_digest(&frames),
            frames,
            next_seq: Some(12),
        }),
        SyncFromEdge::FetchFailed { fetch_id: 4, reason: FetchFailure::Gone { available_from: 50 } },
        SyncFromEdge::FetchFailed { fetch_id: 5, reason: FetchFailure::Unreadable { detail: "io".into() } },
        SyncFromEdge::Events(compress_events(&events()).unwrap()),
    ]
}

fn central_messages() -> Vec<SyncFromCentral> {
    vec![
        SyncFromCentral::Fetch { fetch_id: 1, camera: "front".into(), from_seq: 10, to_seq: 99, max_bytes: 262_144 },
        SyncFromCentral::Stored { camera: "front".into(), up_to_seq: 42 },
        SyncFromCentral::EventsAck { up_to_id: 7 },
    ]
}

fn no_panic<R>(what: &str, bytes: &[u8], f: impl FnOnce() -> R) -> R {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(_) => panic!("{what} panicked on {bytes:02x?}"),
    }
}

/// A central with a catalog and a retrieval under way, so chunks and failures reach real code.
fn busy_central() -> CentralSync {
    let mut c = CentralSync::new(CentralConfig::default(), Holdings::new());
    c.connected();
    c.handle(SyncFromEdge::Catalog(compress_catalog(&catalog()).unwrap())).unwrap();
    c.request(Retrieval { camera: "front".into(), start_us: 0, end_us: 10_000_000, priority: Priority::Manual });
    while c.poll_transmit(0).is_some() {}
    c
}

#[test]
fn mutated_and_random_messages_never_panic() {
    let mut rng = Rng(0x5eed_5eed_1234_5678);
    let edge: Vec<Vec<u8>> = edge_messages().iter().map(|m| postcard::to_allocvec(m).unwrap()).collect();
    let central: Vec<Vec<u8>> = central_messages().iter().map(|m| postcard::to_allocvec(m).unwrap()).collect();
    let mut central_sync = busy_central();
    let mut edge_sync = EdgeSync::new(EdgeConfig::default(), vec![]);
    edge_sync.connected();
    let mut decoded = 0;
    for i in 0..6000 {
        let mut bytes = if i % 10 == 0 {
            let n = rng.below(64);
            rng.bytes(n)
        } else if i % 2 == 0 {
            edge[rng.below(edge.len())].clone()
        } else {
            central[rng.below(central.len())].clone()
        };
        mutate(&mut rng, &mut bytes);
        if let Ok(msg) = no_panic("decode SyncFromEdge", &bytes, || framing::decode::<SyncFromEdge>(&bytes)) {
            decoded += 1;
            let _ = no_panic("CentralSync::handle", &bytes, || central_sync.handle(msg));
            while central_sync.poll_event().is_some() {}
            while central_sync.poll_transmit(0).is_some() {}
        }
        if let Ok(msg) = no_panic("decode SyncFromCentral", &bytes, || framing::decode::<SyncFromCentral>(&bytes)) {
            decoded += 1;
            no_panic("EdgeSync::handle", &bytes, || edge_sync.handle(msg));
            while edge_sync.poll_event().is_some() {}
        }
    }
    // Some mutations still decode (a flipped bit in a number): the state machines took them.
    assert!(decoded > 100, "{decoded}");
}

#[test]
fn mutated_compressed_payloads_never_panic() {
    let mut rng = Rng(0xdead_beef_cafe_f00d);
    let cat = compress_catalog(&catalog()).unwrap().zstd;
    let ev = compress_events(&events()).unwrap().zstd;
    let raw_cat = postcard::to_allocvec(&catalog()).unwrap();
    for i in 0..4000 {
        let mut bytes = match i % 4 {
            0 => cat.clone(),
            1 => ev.clone(),
            // Valid zstd of mutated postcard: reaches the postcard decoder after decompression.
            _ => {
                let mut raw = raw_cat.clone();
                mutate(&mut rng, &mut raw);
                zstd::stream::encode_all(&raw[..], 1).unwrap()
            }
        };
        if i % 4 < 2 {
            mutate(&mut rng, &mut bytes);
        }
        let c = CompressedCatalog { zstd: bytes.clone() };
        let _ = no_panic("decompress_catalog", &bytes, || decompress_catalog(&c));
        let e = CompressedEvents { zstd: bytes.clone() };
        let _ = no_panic("decompress_events", &bytes, || decompress_events(&e));
    }
}

#[test]
fn hostile_catalogs_are_refused_cleanly() {
    let mut c = busy_central();
    // Spans out of order, inverted, overlapping, at the end of the number space; a camera twice.
    let bad_spans = [
        vec![Span { first_seq: 50, last_seq: 40, start_us: 0, end_us: 1, bytes: 1, frames: 1 }],
        vec![
            Span { first_seq: 0, last_seq: 10, start_us: 0, end_us: 1, bytes: 1, frames: 1 },
            Span { first_seq: 5, last_seq: 20, start_us: 2, end_us: 3, bytes: 1, frames: 1 },
        ],
        vec![Span { first_seq: 0, last_seq: u64::MAX, start_us: 0, end_us: 1, bytes: 1, frames: 1 }],
        vec![Span { first_seq: 0, last_seq: 1, start_us: 5, end_us: 1, bytes: 1, frames: 1 }],
    ];
    for spans in bad_spans {
        let cat = CatalogSummary {
            as_of_us: 0,
            cameras: vec![CameraHoldings { camera: "front".into(), spans, removed: vec![] }],
        };
        assert!(c.handle(SyncFromEdge::Catalog(compress_catalog(&cat).unwrap())).is_err());
    }
    let mut twice = catalog();
    twice.cameras.push(twice.cameras[0].clone());
    assert!(c.handle(SyncFromEdge::Catalog(compress_catalog(&twice).unwrap())).is_err());
    // Extreme but valid values resolve without overflow.
    let span =
        Span { first_seq: 0, last_seq: u64::MAX - 1, start_us: i64::MIN, end_us: i64::MAX, bytes: u64::MAX, frames: 1 };
    let cat = CatalogSummary {
        as_of_us: i64::MAX,
        cameras: vec![CameraHoldings { camera: "front".into(), spans: vec![span], removed: vec![span] }],
    };
    c.handle(SyncFromEdge::Catalog(compress_catalog(&cat).unwrap())).unwrap();
    c.request(Retrieval { camera: "front".into(), start_us: i64::MIN, end_us: i64::MAX, priority: Priority::Event });
    for _ in 0..10 {
        let _ = c.poll_transmit(0);
    }
    // A zstd bomb is refused without decompressing it all.
    let bomb = zstd::stream::encode_all(&vec![0u8; 17 << 20][..], 3).unwrap();
    assert!(c.handle(SyncFromEdge::Catalog(CompressedCatalog { zstd: bomb.clone() })).is_err());
    assert!(c.handle(SyncFromEdge::Events(CompressedEvents { zstd: bomb })).is_err());
}
