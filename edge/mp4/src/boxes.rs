//! A small ISO-BMFF box writer: big-endian primitives into a growing buffer, boxes whose size is
//! patched when their contents are done.
//!
//! Boxes built here live in memory (`moov`, and later `moof` for fragmented MP4), so a 32-bit
//! box size is enough; larger contents are an error rather than a silent wrap. Media data
//! (`mdat`) is never built here: writers stream it and use [`mdat_header`] for its header.

use crate::Mp4Error;

/// A four-character box or brand code.
pub type FourCc = [u8; 4];

/// Unity transformation matrix used by `mvhd` and `tkhd` (16.16 and 2.30 fixed point).
pub const UNITY_MATRIX: [u32; 9] = [0x0001_0000, 0, 0, 0, 0x0001_0000, 0, 0, 0, 0x4000_0000];

/// Length of the reserved header in front of streamed media data: either `free` (8 bytes)
/// followed by a 32-bit `mdat` header (8 bytes), or a 64-bit `mdat` header (16 bytes).
pub const MDAT_HEADER_LEN: u64 = 16;

/// The 16-byte header for an `mdat` box whose total size (header included) is `box_size`.
///
/// Both layouts put the payload right after the 16 bytes, so chunk offsets do not depend on
/// which one is used and the header can be patched after the payload was streamed.
pub fn mdat_header(box_size: u64) -> [u8; MDAT_HEADER_LEN as usize] {
    let mut h = [0u8; MDAT_HEADER_LEN as usize];
    if let Ok(small) = u32::try_from(box_size.saturating_sub(8)) {
        // `free` (8 bytes, empty) then a compact mdat header covering the rest.
        h[0..4].copy_from_slice(&8u32.to_be_bytes());
        h[4..8].copy_from_slice(b"free");
        h[8..12].copy_from_slice(&small.to_be_bytes());
        h[12..16].copy_from_slice(b"mdat");
    } else {
        h[0..4].copy_from_slice(&1u32.to_be_bytes());
        h[4..8].copy_from_slice(b"mdat");
        h[8..16].copy_from_slice(&box_size.to_be_bytes());
    }
    h
}

/// A buffer that boxes are written into.
#[derive(Debug, Default, Clone)]
pub struct BoxBuf {
    buf: Vec<u8>,
}

impl BoxBuf {
    /// An empty buffer.
    pub fn new() -> Self {
        Self::default()
    }

    /// The bytes written so far.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf
    }

    /// The buffer's bytes.
    pub fn into_bytes(self) -> Vec<u8> {
        self.buf
    }

    /// Number of bytes written so far.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// True when nothing was written.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// Appends one byte.
    pub fn u8(&mut self, v: u8) -> &mut Self {
        self.buf.push(v);
        self
    }

    /// Appends a big-endian `u16`.
    pub fn u16(&mut self, v: u16) -> &mut Self {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }

    /// Appends a big-endian `u32`.
    pub fn u32(&mut self, v: u32) -> &mut Self {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }

    /// Appends a big-endian `u64`.
    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }

    /// Appends `n` zero bytes.
    pub fn zeros(&mut self, n: usize) -> &mut Self {
        self.buf.resize(self.buf.len() + n, 0);
        self
    }

    /// Appends raw bytes.
    pub fn bytes(&mut self, v: &[u8]) -> &mut Self {
        self.buf.extend_from_slice(v);
        self
    }

    /// Writes a box: 32-bit size, type, then what `body` writes. The size is patched afterwards.
    pub fn write_box<F>(&mut self, kind: FourCc, body: F) -> Result<(), Mp4Error>
    where
        F: FnOnce(&mut Self) -> Result<(), Mp4Error>,
    {
        let start = self.buf.len();
        self.u32(0).bytes(&kind);
        body(self)?;
        let size = u32::try_from(self.buf.len() - start).map_err(|_| Mp4Error::TooLarge("box larger than 4 GiB"))?;
        self.buf[start..start + 4].copy_from_slice(&size.to_be_bytes());
        Ok(())
    }

    /// Writes a full box: like [`BoxBuf::write_box`] with an 8-bit version and 24-bit flags
    /// in front of the body.
    pub fn write_full_box<F>(&mut self, kind: FourCc, version: u8, flags: u32, body: F) -> Result<(), Mp4Error>
    where
        F: FnOnce(&mut Self) -> Result<(), Mp4Error>,
    {
        self.write_box(kind, |b| {
            b.u32((u32::from(version) << 24) | (flags & 0x00ff_ffff));
            body(b)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn primitives_are_big_endian() {
        let mut b = BoxBuf::new();
        b.u8(1).u16(0x0203).u32(0x0405_0607).u64(0x0809_0a0b_0c0d_0e0f);
        b.zeros(2).bytes(b"ab");
        assert_eq!(b.as_bytes(), &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 0, 0, b'a', b'b']);
    }

    #[test]
    fn box_sizes_are_patched_including_nested_boxes() {
        let mut b = BoxBuf::new();
        b.write_box(*b"moov", |b| {
            b.write_full_box(*b"mvhd", 1, 0x0a0b0c, |b| {
                b.u32(7);
                Ok(())
            })?;
            b.write_box(*b"free", |_| Ok(()))
        })
        .unwrap();
        let bytes = b.into_bytes();
        assert_eq!(
            bytes,
            [
                &[0, 0, 0, 32][..],
                b"moov",
                &[0, 0, 0, 16],
                b"mvhd",
                &[1, 0x0a, 0x0b, 0x0c],
                &[0, 0, 0, 7],
                &[0, 0, 0, 8],
                b"free",
            ]
            .concat()
        );
    }

    #[test]
    fn full_box_flags_are_24_bits() {
        let mut b = BoxBuf::new();
        b.write_full_box(*b"test", 0, 0xffff_ffff, |_| Ok(())).unwrap();
        assert_eq!(&b.as_bytes()[8..12], &[0, 0xff, 0xff, 0xff]);
    }

    #[test]
    fn body_errors_propagate() {
        let mut b = BoxBuf::new();
        let err = b.write_box(*b"test", |_| Err(Mp4Error::Empty)).unwrap_err();
        assert!(matches!(err, Mp4Error::Empty));
    }

    #[test]
    fn mdat_header_small_uses_free_then_compact_header() {
        let h = mdat_header(16 + 100);
        assert_eq!(&h[0..8], &[0, 0, 0, 8, b'f', b'r', b'e', b'e']);
        assert_eq!(u32::from_be_bytes(h[8..12].try_into().unwrap()), 108);
        assert_eq!(&h[12..16], b"mdat");
        // The empty mdat is still well-formed.
        let h = mdat_header(16);
        assert_eq!(u32::from_be_bytes(h[8..12].try_into().unwrap()), 8);
    }

    #[test]
    fn mdat_header_switches_to_64_bit_size_past_4_gib() {
        let fits = 8 + u64::from(u32::MAX);
        assert_eq!(&mdat_header(fits)[4..8], b"free");
        let big = fits + 1;
        let h = mdat_header(big);
        assert_eq!(&h[0..8], &[0, 0, 0, 1, b'm', b'd', b'a', b't']);
        assert_eq!(u64::from_be_bytes(h[8..16].try_into().unwrap()), big);
    }
}
