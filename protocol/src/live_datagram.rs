//! Live frames as QUIC datagrams with parity (protocol version 5).
//!
//! Central asks a unit of version 5 or later for a camera with
//! [`crate::interconnect::CentralMessage::StartLiveDatagrams`], naming a *slot* (a number unique
//! within the connection). The unit still opens the camera's live stream (a
//! [`crate::interconnect::LiveHeader`], then [`crate::interconnect::LiveMessage::Parameters`],
//! which must not be lost), but sends its frames as datagrams: each frame, postcard-encoded as a
//! [`crate::interconnect::MediaFrame`], is cut into data fragments of `fragment_size` bytes (the
//! last may be shorter), and each group of up to `group` consecutive data fragments is followed
//! by a parity fragment, the XOR of the group's fragments (each zero-padded to the group's first,
//! the longest). Any one lost datagram of a group is rebuilt from the others without waiting;
//! a one-fragment frame is simply sent twice. A frame that still cannot be rebuilt is asked for
//! again with [`crate::interconnect::CentralMessage::LiveNack`].
//!
//! A datagram is a postcard-encoded [`DatagramHeader`] followed by the fragment's bytes (no
//! length prefix: the datagram's end is the fragment's end). Frames carry the number of
//! parameters the unit had sent on the stream before them, so that central never hands a frame
//! to viewers ahead of its parameters. [`decode`] checks every field against the others and
//! returns an error, never panics, whatever the bytes.

use alloc::vec::Vec;
use serde::{Deserialize, Serialize};

/// The largest encoded frame a datagram header may announce.
pub const MAX_FRAME_BYTES: u32 = 8 * 1024 * 1024;
/// The most data fragments of one frame.
pub const MAX_FRAGMENTS: u32 = 16 * 1024;
/// The largest parity group.
pub const MAX_GROUP: u8 = 16;
/// The most bytes a [`DatagramHeader`] takes encoded (every varint at its longest).
pub const MAX_HEADER_BYTES: usize = 5 + 5 + 5 + 1 + 5 + 3 + 1 + 1 + 3;
/// The smallest fragment a sender may choose (a path whose datagrams are smaller falls back to
/// the stream).
pub const MIN_FRAGMENT_SIZE: usize = 64;

/// What a datagram's bytes are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum FragmentKind {
    /// A piece of the encoded frame; `index` is its number among the frame's data fragments.
    Data,
    /// The XOR of a group's data fragments; `index` is the group's number.
    Parity,
}

/// The header in front of each live datagram's bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatagramHeader {
    /// The slot central named in its request (which camera's live stream this belongs to).
    pub slot: u32,
    /// The frame's number within the slot, from 0, one more for each frame the unit sends.
    pub frame: u32,
    /// How many parameters the unit had sent on the live stream before this frame.
    pub parameters: u32,
    /// Whether the frame is a key frame (known before the frame is whole).
    pub keyframe: bool,
    /// Bytes of the encoded frame.
    pub frame_len: u32,
    /// Bytes of every data fragment but the last.
    pub fragment_size: u16,
    /// Data fragments per parity group.
    pub group: u8,
    /// Data or parity.
    pub kind: FragmentKind,
    /// The data fragment's or the parity group's number.
    pub index: u16,
}

/// Why a datagram could not be decoded or a frame not be cut.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatagramError {
    /// The header is not a valid postcard encoding.
    Header(postcard::Error),
    /// A field is out of range or does not agree with the others (named).
    Invalid(&'static str),
    /// The fragment's length is not the one its header implies.
    Length {
        /// The length the header implies.
        expected: usize,
        /// The length that arrived.
        got: usize,
    },
    /// The connection's datagrams are too small to carry live frames.
    TooSmall(usize),
}

impl core::fmt::Display for DatagramError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            DatagramError::Header(e) => write!(f, "malformed live datagram header: {e}"),
            DatagramError::Invalid(what) => write!(f, "invalid live datagram: {what}"),
            DatagramError::Length { expected, got } => {
                write!(f, "live datagram fragment of {got} bytes, its header says {expected}")
            }
            DatagramError::TooSmall(n) => write!(
                f,
                "datagrams of at most {n} bytes are too small for live frames (need {} or more); use the live stream",
                MAX_HEADER_BYTES + MIN_FRAGMENT_SIZE
            ),
        }
    }
}

impl core::error::Error for DatagramError {}

impl DatagramHeader {
    /// Data fragments in the frame.
    pub fn fragments(&self) -> u32 {
        self.frame_len.div_ceil(u32::from(self.fragment_size.max(1)))
    }

    /// Parity groups in the frame.
    pub fn groups(&self) -> u32 {
        self.fragments().div_ceil(u32::from(self.group.max(1)))
    }

    /// Bytes of data fragment `index`.
    pub fn data_len(&self, index: u32) -> usize {
        let size = u32::from(self.fragment_size);
        let start = index.saturating_mul(size).min(self.frame_len);
        let end = start.saturating_add(size).min(self.frame_len);
        (end - start) as usize
    }

    /// Bytes of group `group`'s parity fragment (its first data fragment's, the longest).
    pub fn parity_len(&self, group: u32) -> usize {
        self.data_len(group.saturating_mul(u32::from(self.group)))
    }

    /// The data fragments of group `group`.
    pub fn group_members(&self, group: u32) -> core::ops::Range<u32> {
        let first = group.saturating_mul(u32::from(self.group));
        first..first.saturating_add(u32::from(self.group)).min(self.fragments())
    }

    /// Checks the fields against each other (not the fragment's length).
    pub fn validate(&self) -> Result<(), DatagramError> {
        if self.frame_len == 0 || self.frame_len > MAX_FRAME_BYTES {
            return Err(DatagramError::Invalid("frame length out of range"));
        }
        if self.fragment_size == 0 {
            return Err(DatagramError::Invalid("zero fragment size"));
        }
        if self.group == 0 || self.group > MAX_GROUP {
            return Err(DatagramError::Invalid("parity group size out of range"));
        }
        if self.fragments() > MAX_FRAGMENTS {
            return Err(DatagramError::Invalid("too many fragments"));
        }
        let bound = match self.kind {
            FragmentKind::Data => self.fragments(),
            FragmentKind::Parity => self.groups(),
        };
        if u32::from(self.index) >= bound {
            return Err(DatagramError::Invalid("fragment index out of range"));
        }
        Ok(())
    }

    /// Bytes this datagram's fragment must have.
    pub fn payload_len(&self) -> usize {
        match self.kind {
            FragmentKind::Data => self.data_len(u32::from(self.index)),
            FragmentKind::Parity => self.parity_len(u32::from(self.index)),
        }
    }
}

/// One datagram: `header`'s encoding, then `payload`.
pub fn encode(header: &DatagramHeader, payload: &[u8]) -> Result<Vec<u8>, DatagramError> {
    let mut out = postcard::to_allocvec(header).map_err(DatagramError::Header)?;
    out.extend_from_slice(payload);
    Ok(out)
}

/// A datagram's header and fragment, checked: every field in range and the fragment exactly as
/// long as the header says.
pub fn decode(bytes: &[u8]) -> Result<(DatagramHeader, &[u8]), DatagramError> {
    let (header, payload) = postcard::take_from_bytes::<DatagramHeader>(bytes).map_err(DatagramError::Header)?;
    header.validate()?;
    let expected = header.payload_len();
    if payload.len() != expected {
        return Err(DatagramError::Length { expected, got: payload.len() });
    }
    Ok((header, payload))
}

/// XORs `src` into `dst` (which is at least as long).
pub fn xor_into(dst: &mut [u8], src: &[u8]) {
    for (d, s) in dst.iter_mut().zip(src) {
        *d ^= s;
    }
}

/// What to cut a frame into: its slot, number, parameters count and key frame flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameLabel {
    /// See [`DatagramHeader::slot`].
    pub slot: u32,
    /// See [`DatagramHeader::frame`].
    pub frame: u32,
    /// See [`DatagramHeader::parameters`].
    pub parameters: u32,
    /// See [`DatagramHeader::keyframe`].
    pub keyframe: bool,
}

/// The datagrams of one encoded frame, none longer than `max_datagram`: each group's data
/// fragments, then its parity. `group` is clamped to 1..=[`MAX_GROUP`].
pub fn split(
    label: FrameLabel,
    encoded: &[u8],
    max_datagram: usize,
    group: u8,
) -> Result<Vec<(DatagramHeader, Vec<u8>)>, DatagramError> {
    if max_datagram < MAX_HEADER_BYTES + MIN_FRAGMENT_SIZE {
        return Err(DatagramError::TooSmall(max_datagram));
    }
    let fragment_size = (max_datagram - MAX_HEADER_BYTES).min(usize::from(u16::MAX)) as u16;
    let frame_len = u32::try_from(encoded.len()).map_err(|_| DatagramError::Invalid("frame too long"))?;
    let base = DatagramHeader {
        slot: label.slot,
        frame: label.frame,
        parameters: label.parameters,
        keyframe: label.keyframe,
        frame_len,
        fragment_size,
        group: group.clamp(1, MAX_GROUP),
        kind: FragmentKind::Data,
        index: 0,
    };
    base.validate()?;
    let mut out = Vec::with_capacity((base.fragments() + base.groups()) as usize);
    for g in 0..base.groups() {
        let mut parity = alloc::vec![0u8; base.parity_len(g)];
        for i in base.group_members(g) {
            let start = i as usize * usize::from(fragment_size);
            let piece = &encoded[start..start + base.data_len(i)];
            xor_into(&mut parity, piece);
            let header = DatagramHeader { index: i as u16, ..base };
            out.push((header, encode(&header, piece)?));
        }
        let header = DatagramHeader { kind: FragmentKind::Parity, index: g as u16, ..base };
        out.push((header, encode(&header, &parity)?));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn label() -> FrameLabel {
        FrameLabel { slot: 3, frame: 7, parameters: 1, keyframe: true }
    }

    #[test]
    fn a_frame_is_cut_into_groups_each_followed_by_its_parity() {
        let encoded: Vec<u8> = (0..1000u32).map(|i| (i * 7) as u8).collect();
        let max = MAX_HEADER_BYTES + 100;
        let parts = split(label(), &encoded, max, 4).unwrap();
        // 10 data fragments of 100 bytes in groups of 4, 4, 2: 13 datagrams.
        assert_eq!(parts.len(), 13);
        assert!(parts.iter().all(|(_, d)| d.len() <= max));
        let mut joined = Vec::new();
        for (header, bytes) in &parts {
            let (decoded, payload) = decode(bytes).unwrap();
            assert_eq!(decoded, *header);
            if header.kind == FragmentKind::Data {
                joined.extend_from_slice(payload);
            }
        }
        assert_eq!(joined, encoded);
        // Parity of the last group (fragments 8 and 9) rebuilds fragment 8.
        let (_, parity) = decode(&parts[12].1).unwrap();
        let mut rebuilt = parity.to_vec();
        xor_into(&mut rebuilt, &encoded[900..1000]);
        assert_eq!(rebuilt, &encoded[800..900]);
    }

    #[test]
    fn a_one_fragment_frame_is_sent_twice() {
        let parts = split(label(), b"tiny", 1200, 4).unwrap();
        assert_eq!(parts.len(), 2);
        assert_eq!(decode(&parts[0].1).unwrap().1, b"tiny");
        assert_eq!(decode(&parts[1].1).unwrap().1, b"tiny");
        assert_eq!(parts[1].0.kind, FragmentKind::Parity);
    }

    #[test]
    fn too_small_datagrams_are_refused() {
        assert_eq!(split(label(), b"x", 40, 4), Err(DatagramError::TooSmall(40)));
    }

    #[test]
    fn hostile_bytes_are_errors() {
        let parts = split(label(), &[5u8; 300], MAX_HEADER_BYTES + 100, 2).unwrap();
        let good = &parts[1].1;
        for end in 0..good.len() {
            assert!(decode(&good[..end]).is_err(), "prefix of {end} bytes");
        }
        let mut longer = good.clone();
        longer.push(0);
        assert!(decode(&longer).is_err());
        for pattern in [0x00u8, 0xff, 0x80, 0x7f, 0x01] {
            for len in [0usize, 1, 5, 30, 200] {
                let _ = decode(&alloc::vec![pattern; len]);
            }
        }
        // Fields that do not agree.
        let bad = [
            DatagramHeader { frame_len: 0, ..parts[0].0 },
            DatagramHeader { frame_len: MAX_FRAME_BYTES + 1, ..parts[0].0 },
            DatagramHeader { fragment_size: 0, ..parts[0].0 },
            DatagramHeader { group: 0, ..parts[0].0 },
            DatagramHeader { group: MAX_GROUP + 1, ..parts[0].0 },
            DatagramHeader { index: 3, ..parts[0].0 },
            DatagramHeader { kind: FragmentKind::Parity, index: 2, ..parts[0].0 },
            DatagramHeader { frame_len: MAX_FRAME_BYTES, fragment_size: 1, ..parts[0].0 },
        ];
        for header in bad {
            let bytes = encode(&header, &[0u8; 100]).unwrap();
            assert!(matches!(decode(&bytes), Err(DatagramError::Invalid(_))), "{header:?}");
        }
    }
}
