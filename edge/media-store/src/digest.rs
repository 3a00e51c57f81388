//! The hashes behind seals: BLAKE3 of a segment's bytes (fast enough to run over every byte
//! recorded), and the chain digest that links each sealed segment to the one before it.

/// Hashes a segment's bytes as they are written or read.
pub type ContentHasher = blake3::Hasher;

/// A new content hasher.
pub fn content_hasher() -> ContentHasher {
    blake3::Hasher::new()
}

/// The 32-byte hash so far.
pub fn content_hash(h: &ContentHasher) -> [u8; 32] {
    *h.finalize().as_bytes()
}

/// A segment's chain digest: BLAKE3(previous segment's chain digest ‖ this segment's content
/// hash).
pub fn chain_digest(prev_digest: &[u8; 32], content_hash: &[u8; 32]) -> [u8; 32] {
    let mut h = blake3::Hasher::new();
    h.update(prev_digest);
    h.update(content_hash);
    *h.finalize().as_bytes()
}
