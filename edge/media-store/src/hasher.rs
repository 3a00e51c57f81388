//! Hashing a segment's bytes as the writer appends them, for its seal. Each byte is hashed once,
//! while it is still in the CPU's cache from being encoded and checksummed: nothing is read
//! back from the file.
//!
//! BLAKE3 hashes many 1 KiB chunks at once with SIMD, but only over runs of chunks aligned to
//! their position in the stream; a frame appended as it comes (a short record header, then
//! ~20 KB of payload at any offset) mostly falls back to hashing a chunk or two at a time, at
//! about half the speed. So bytes are staged up to the next [`BLOCK`] boundary of the stream and
//! hashed a whole block at a time (payloads that span whole blocks are hashed in place).

use crate::digest::{ContentHasher, content_hash};

/// Bytes hashed at once: 16 chunks of 1 KiB, the widest SIMD degree BLAKE3 uses (AVX-512).
pub(crate) const BLOCK: usize = 16 * 1024;

/// The running BLAKE3 of a segment being written.
pub(crate) struct SegmentHasher {
    hasher: ContentHasher,
    /// Bytes after the last block boundary, not yet given to `hasher`.
    staged: Vec<u8>,
    /// Bytes given to `hasher` so far.
    fed: u64,
}

impl SegmentHasher {
    /// Continues `hasher`, which has seen the segment's first `hashed` bytes.
    pub fn new(hasher: ContentHasher, hashed: u64) -> SegmentHasher {
        SegmentHasher { hasher, staged: Vec::with_capacity(BLOCK), fed: hashed }
    }

    /// Hashes the next bytes of the segment.
    pub fn update(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            let into_block = self.position() % BLOCK as u64;
            if into_block == 0 && data.len() >= BLOCK {
                // At a block boundary with whole blocks to hash: straight from `data`.
                let whole = data.len() / BLOCK * BLOCK;
                self.hasher.update(&data[..whole]);
                self.fed += whole as u64;
                data = &data[whole..];
                continue;
            }
            let take = (BLOCK - into_block as usize).min(data.len());
            self.staged.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.position().is_multiple_of(BLOCK as u64) {
                self.feed_staged();
            }
        }
    }

    /// The hash of every byte given so far.
    pub fn finish(&mut self) -> [u8; 32] {
        self.feed_staged();
        content_hash(&self.hasher)
    }

    /// Bytes of the segment hashed or staged so far.
    fn position(&self) -> u64 {
        self.fed + self.staged.len() as u64
    }

    fn feed_staged(&mut self) {
        self.hasher.update(&self.staged);
        self.fed += self.staged.len() as u64;
        self.staged.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::content_hasher;

    /// Pieces of awkward sizes around the block size, from a start that is not block-aligned,
    /// hash to what one BLAKE3 over the same bytes gives.
    #[test]
    fn staged_hashing_equals_hashing_everything_at_once() {
        let bytes: Vec<u8> = (0..300_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
        let sizes = [0usize, 1, 16, 1023, 1024, 1025, BLOCK - 1, BLOCK, BLOCK + 1, 3 * BLOCK + 7, 20_000];
        for start in [0usize, 9, 1024, BLOCK - 3, BLOCK] {
            let mut first = content_hasher();
            first.update(&bytes[..start]);
            let mut staged = SegmentHasher::new(first, start as u64);
            let mut at = start;
            for size in sizes.iter().cycle() {
                let end = (at + size).min(bytes.len());
                staged.update(&bytes[at..end]);
                at = end;
                if at == bytes.len() {
                    break;
                }
            }
            let mut whole = content_hasher();
            whole.update(&bytes);
            assert_eq!(staged.finish(), content_hash(&whole), "start {start}");
        }
    }

    #[test]
    fn finish_can_be_asked_midway_and_hashing_goes_on() {
        let mut staged = SegmentHasher::new(content_hasher(), 0);
        staged.update(b"header");
        let mut whole = content_hasher();
        whole.update(b"header");
        assert_eq!(staged.finish(), content_hash(&whole));
        staged.update(&[7; BLOCK * 2]);
        whole.update(&[7; BLOCK * 2]);
        assert_eq!(staged.finish(), content_hash(&whole));
    }
}
