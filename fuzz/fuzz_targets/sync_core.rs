//! The sync protocol's state machines fed hostile messages: the input is walked as a stream of
//! length-prefixed bodies (`framing::body_len`); each body that decodes as `SyncFromEdge` goes
//! to a `CentralSync` that holds a catalog and a retrieval under way, each that decodes as
//! `SyncFromCentral` goes to a connected `EdgeSync`, and both are drained (`poll_event`,
//! `poll_transmit`, `handle_timeout` at a clock the input moves). Compressed catalogs and event
//! batches inside are decompressed by the real code (zstd with its size cap). Nothing may panic;
//! what the machines send must encode.
#![no_main]

use libfuzzer_sys::fuzz_target;
use protocol::framing::{self, PREFIX_LEN};
use protocol::sync::{CameraHoldings, CatalogSummary, Span, SyncFromCentral, SyncFromEdge};
use sync_core::codec::compress_catalog;
use sync_core::{CentralConfig, CentralSync, EdgeConfig, EdgeSync, Holdings, Priority, Retrieval};

fn busy_central() -> CentralSync {
    let span = Span { first_seq: 10, last_seq: 99, start_us: 1, end_us: 9_000_000, bytes: 900_000, frames: 80 };
    let catalog = CatalogSummary {
        as_of_us: 1_700_000_000_000_000,
        cameras: vec![CameraHoldings { camera: "front".into(), spans: vec![span], removed: vec![] }],
    };
    let mut c = CentralSync::new(CentralConfig::default(), Holdings::new());
    c.connected();
    c.handle(SyncFromEdge::Catalog(compress_catalog(&catalog).expect("a catalog compresses")))
        .expect("a valid catalog is taken");
    c.request(Retrieval { camera: "front".into(), start_us: 0, end_us: 10_000_000, priority: Priority::Manual });
    c
}

fuzz_target!(|data: &[u8]| {
    let mut central = busy_central();
    let mut edge = EdgeSync::new(EdgeConfig::default(), vec![]);
    edge.connected();
    let mut now = 0u64;
    let mut rest = data;
    while let Some((prefix, after)) = rest.split_first_chunk::<PREFIX_LEN>() {
        let Ok(len) = framing::body_len(*prefix) else { break };
        let Some(body) = after.get(..len) else { break };
        rest = &after[len..];
        // The clock moves by the prefix's top byte, in milliseconds (timeouts fire too).
        now += u64::from(prefix[PREFIX_LEN - 1]) * 1000;
        if let Ok(msg) = framing::decode::<SyncFromEdge>(body) {
            let _ = central.handle(msg);
        }
        if let Ok(msg) = framing::decode::<SyncFromCentral>(body) {
            edge.handle(msg);
        }
        central.handle_timeout(now);
        while central.poll_event().is_some() {}
        while let Some(out) = central.poll_transmit(now) {
            framing::encode(&out).expect("what central sends encodes");
        }
        while edge.poll_event().is_some() {}
        while let Some(out) = edge.poll_transmit(now) {
            framing::encode(&out).expect("what the edge sends encodes");
        }
    }
});
