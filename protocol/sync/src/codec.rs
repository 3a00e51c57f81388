//! Compression of catalogs and event batches (zstd over postcard, with a cap on the decompressed
//! size) and the BLAKE3 digest of a chunk's frames.

use std::io::Read;

use protocol::sync::{CatalogSummary, CompressedCatalog, CompressedEvents, EventBatch, SyncFrame};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::SyncError;

/// The largest decompressed catalog or event batch accepted: a guard against zstd bombs.
pub const MAX_DECOMPRESSED: usize = 16 * 1024 * 1024;

/// zstd level used for catalogs and events (small messages; speed matters more than ratio).
const LEVEL: i32 = 3;

/// log2 of the largest zstd window accepted, so a hostile frame cannot make the decoder allocate
/// more than [`MAX_DECOMPRESSED`].
const WINDOW_LOG_MAX: u32 = 24;

/// The BLAKE3 digest carried by a chunk: over each frame's `seq` and `wall_clock_us` (little
/// endian), key flag (one byte), payload length (`u64` little endian) and payload, in order,
/// with a key derived from a fixed context string.
pub fn chunk_digest(frames: &[SyncFrame]) -> [u8; 32] {
    let mut h = blake3::Hasher::new_derive_key("convoy sync chunk v1");
    for f in frames {
        h.update(&f.seq.to_le_bytes());
        h.update(&f.wall_clock_us.to_le_bytes());
        h.update(&[u8::from(f.keyframe)]);
        h.update(&(f.payload.len() as u64).to_le_bytes());
        h.update(&f.payload);
    }
    *h.finalize().as_bytes()
}

/// Compresses a catalog for [`protocol::sync::SyncFromEdge::Catalog`].
pub fn compress_catalog(catalog: &CatalogSummary) -> Result<CompressedCatalog, SyncError> {
    Ok(CompressedCatalog { zstd: compress(catalog, "catalog")? })
}

/// Decompresses and decodes a catalog, refusing more than [`MAX_DECOMPRESSED`] bytes.
pub fn decompress_catalog(compressed: &CompressedCatalog) -> Result<CatalogSummary, SyncError> {
    decompress(&compressed.zstd, "catalog")
}

/// Compresses an event batch for [`protocol::sync::SyncFromEdge::Events`].
pub fn compress_events(batch: &EventBatch) -> Result<CompressedEvents, SyncError> {
    Ok(CompressedEvents { zstd: compress(batch, "events")? })
}

/// Decompresses and decodes an event batch, refusing more than [`MAX_DECOMPRESSED`] bytes.
pub fn decompress_events(compressed: &CompressedEvents) -> Result<EventBatch, SyncError> {
    decompress(&compressed.zstd, "events")
}

fn compress<T: Serialize>(value: &T, what: &'static str) -> Result<Vec<u8>, SyncError> {
    let raw = postcard::to_allocvec(value).map_err(|e| SyncError::Encode { what, detail: e.to_string() })?;
    if raw.len() > MAX_DECOMPRESSED {
        return Err(SyncError::TooLarge { what, limit: MAX_DECOMPRESSED });
    }
    zstd::stream::encode_all(&raw[..], LEVEL).map_err(|e| SyncError::Encode { what, detail: e.to_string() })
}

/// Decompresses at most [`MAX_DECOMPRESSED`] bytes of `data`.
pub fn unzstd(data: &[u8], what: &'static str) -> Result<Vec<u8>, SyncError> {
    let err = |source| SyncError::Decompress { what, source };
    let mut decoder = zstd::stream::read::Decoder::with_buffer(data).map_err(err)?;
    decoder.window_log_max(WINDOW_LOG_MAX).map_err(err)?;
    let mut out = Vec::new();
    decoder.take(MAX_DECOMPRESSED as u64 + 1).read_to_end(&mut out).map_err(err)?;
    if out.len() > MAX_DECOMPRESSED {
        return Err(SyncError::TooLarge { what, limit: MAX_DECOMPRESSED });
    }
    Ok(out)
}

fn decompress<T: DeserializeOwned>(data: &[u8], what: &'static str) -> Result<T, SyncError> {
    let raw = unzstd(data, what)?;
    let (value, rest) = postcard::take_from_bytes(&raw).map_err(|source| SyncError::Decode { what, source })?;
    if !rest.is_empty() {
        return Err(SyncError::Decode { what, source: postcard::Error::DeserializeBadEncoding });
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::sync::{CameraHoldings, Span};

    #[test]
    fn catalog_round_trip() {
        let catalog = CatalogSummary {
            as_of_us: 1_700_000_000_000_000,
            cameras: vec![CameraHoldings {
                camera: "front".into(),
                spans: vec![Span { first_seq: 1, last_seq: 9, start_us: 10, end_us: 20, bytes: 300, frames: 9 }],
                removed: vec![],
            }],
        };
        let c = compress_catalog(&catalog).unwrap();
        assert_eq!(decompress_catalog(&c).unwrap(), catalog);
    }

    #[test]
    fn bomb_is_refused() {
        let zeros = vec![0u8; MAX_DECOMPRESSED + 1];
        let bomb = zstd::stream::encode_all(&zeros[..], 19).unwrap();
        assert!(bomb.len() < 64 * 1024, "bomb of {} bytes", bomb.len());
        assert!(matches!(unzstd(&bomb, "catalog"), Err(SyncError::TooLarge { .. })));
        assert!(matches!(decompress_catalog(&CompressedCatalog { zstd: bomb }), Err(SyncError::TooLarge { .. })));
    }

    #[test]
    fn digest_covers_every_field() {
        let f = SyncFrame { seq: 1, wall_clock_us: 2, keyframe: false, payload: vec![1, 2, 3] };
        let base = chunk_digest(std::slice::from_ref(&f));
        let variants = [
            SyncFrame { seq: 2, ..f.clone() },
            SyncFrame { wall_clock_us: 3, ..f.clone() },
            SyncFrame { keyframe: true, ..f.clone() },
            SyncFrame { payload: vec![1, 2, 4], ..f.clone() },
        ];
        for v in variants {
            assert_ne!(chunk_digest(&[v]), base);
        }
        assert_ne!(chunk_digest(&[]), base);
    }
}
