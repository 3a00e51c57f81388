//! Loading an H.264 Annex-B clip and splitting it into access units.

use std::path::{Path, PathBuf};

use bytes::Bytes;

use crate::nal::{self, NAL_AUD, NAL_IDR_SLICE, NAL_PPS, NAL_SPS};

/// Largest clip file accepted, so a wrong path cannot exhaust memory.
pub const MAX_CLIP_BYTES: u64 = 256 * 1024 * 1024;

/// Why a clip could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ClipError {
    /// The file could not be read.
    #[error("cannot read clip {path}: {source}")]
    Io {
        /// The file that was read.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The file is larger than [`MAX_CLIP_BYTES`].
    #[error("clip is {size} bytes, more than the {max} byte limit")]
    TooLarge {
        /// Size of the file in bytes.
        size: u64,
        /// The limit.
        max: u64,
    },
    /// The data is not an Annex-B byte stream (no start code, or garbage before it).
    #[error("not an H.264 Annex-B byte stream (no start code at offset {offset})")]
    NotAnnexB {
        /// Byte offset where a start code was expected.
        offset: usize,
    },
    /// The stream does not begin with an access unit delimiter.
    #[error("stream must begin with an access unit delimiter (NAL type 9), found type {found}")]
    NoLeadingAud {
        /// The NAL unit type found first.
        found: u8,
    },
    /// A NAL unit has its forbidden_zero_bit set.
    #[error("NAL unit at offset {offset} has forbidden_zero_bit set")]
    ForbiddenBit {
        /// Byte offset of the NAL header.
        offset: usize,
    },
    /// An access unit contains no coded slice.
    #[error("access unit {index} contains no coded slice")]
    NoSlice {
        /// Index of the access unit.
        index: usize,
    },
    /// The first access unit is not an IDR picture, so the loop could not start cleanly.
    #[error("first access unit is not an IDR picture")]
    FirstNotIdr,
    /// No sequence parameter set was found (or it is too short to carry a profile and level).
    #[error("no usable sequence parameter set (NAL type 7)")]
    MissingSps,
    /// No picture parameter set was found.
    #[error("no picture parameter set (NAL type 8)")]
    MissingPps,
}

/// One access unit (one coded picture) of a clip.
#[derive(Clone)]
pub struct AccessUnit {
    nals: Vec<Bytes>,
    idr: bool,
}

impl AccessUnit {
    /// Creates an access unit from NAL units (without start codes).
    pub fn new(nals: Vec<Bytes>) -> Self {
        let idr = nals.iter().any(|n| nal::nal_type(n) == Some(NAL_IDR_SLICE));
        Self { nals, idr }
    }

    /// The NAL units of this access unit, in decoding order, including the leading delimiter.
    pub fn nal_units(&self) -> &[Bytes] {
        &self.nals
    }

    /// True if this access unit holds an IDR picture (a random access point).
    pub fn is_idr(&self) -> bool {
        self.idr
    }

    /// Total size of the NAL units in bytes (without start codes).
    pub fn byte_len(&self) -> usize {
        self.nals.iter().map(Bytes::len).sum()
    }
}

/// An H.264 clip, split into access units, ready to be looped.
#[derive(Clone)]
pub struct Clip {
    access_units: Vec<AccessUnit>,
    sps: Bytes,
    pps: Bytes,
}

impl Clip {
    /// Reads and parses an Annex-B file. See [`Clip::from_annexb`] for the requirements.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, ClipError> {
        let path = path.as_ref();
        let io_err = |source| ClipError::Io { path: path.to_owned(), source };
        let size = std::fs::metadata(path).map_err(io_err)?.len();
        if size > MAX_CLIP_BYTES {
            return Err(ClipError::TooLarge { size, max: MAX_CLIP_BYTES });
        }
        let data = std::fs::read(path).map_err(io_err)?;
        Self::from_annexb(data)
    }

    /// Parses an Annex-B byte stream held in memory.
    ///
    /// The stream must start with an access unit delimiter (AUD, NAL type 9);
    /// each AUD starts a new access unit. Every access unit must contain a
    /// coded slice, the first must be an IDR picture, and the stream must
    /// carry an SPS and a PPS.
    pub fn from_annexb(data: impl Into<Bytes>) -> Result<Self, ClipError> {
        let data: Bytes = data.into();
        if data.len() as u64 > MAX_CLIP_BYTES {
            return Err(ClipError::TooLarge { size: data.len() as u64, max: MAX_CLIP_BYTES });
        }
        let nals = nal::split_annexb(&data).map_err(|offset| ClipError::NotAnnexB { offset })?;

        let mut access_units = Vec::new();
        let mut current: Vec<Bytes> = Vec::new();
        let mut sps = None;
        let mut pps = None;
        for found in nals {
            let header = found.data[0];
            if header & 0x80 != 0 {
                return Err(ClipError::ForbiddenBit { offset: found.offset });
            }
            let nal_type = header & 0x1f;
            if current.is_empty() && access_units.is_empty() && nal_type != NAL_AUD {
                return Err(ClipError::NoLeadingAud { found: nal_type });
            }
            match nal_type {
                NAL_AUD if !current.is_empty() => {
                    access_units.push(finish_access_unit(std::mem::take(&mut current), access_units.len())?);
                }
                NAL_SPS if sps.is_none() && found.data.len() >= 4 => sps = Some(found.data.clone()),
                NAL_PPS if pps.is_none() => pps = Some(found.data.clone()),
                _ => {}
            }
            current.push(found.data);
        }
        if !current.is_empty() {
            access_units.push(finish_access_unit(current, access_units.len())?);
        }
        if !access_units.first().is_some_and(AccessUnit::is_idr) {
            return Err(ClipError::FirstNotIdr);
        }
        Ok(Self { access_units, sps: sps.ok_or(ClipError::MissingSps)?, pps: pps.ok_or(ClipError::MissingPps)? })
    }

    /// The access units, in decoding (and presentation) order.
    pub fn access_units(&self) -> &[AccessUnit] {
        &self.access_units
    }

    /// Number of access units (frames); always at least one.
    pub fn frame_count(&self) -> usize {
        self.access_units.len()
    }

    /// Indices of the access units that are IDR pictures.
    pub fn idr_indices(&self) -> impl Iterator<Item = usize> + '_ {
        self.access_units.iter().enumerate().filter(|(_, au)| au.is_idr()).map(|(i, _)| i)
    }

    /// The first sequence parameter set NAL unit (header byte included).
    pub fn sps(&self) -> &[u8] {
        &self.sps
    }

    /// The first picture parameter set NAL unit (header byte included).
    pub fn pps(&self) -> &[u8] {
        &self.pps
    }

    /// The RFC 6184 `profile-level-id`: profile_idc, constraint flags and level_idc in hex.
    pub fn profile_level_id(&self) -> String {
        format!("{:02x}{:02x}{:02x}", self.sps[1], self.sps[2], self.sps[3])
    }
}

/// Shows NAL types and sizes rather than every byte.
impl std::fmt::Debug for AccessUnit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let nals: Vec<(u8, usize)> = self.nals.iter().map(|n| (nal::nal_type(n).unwrap_or(0), n.len())).collect();
        f.debug_struct("AccessUnit").field("idr", &self.idr).field("nals (type, len)", &nals).finish()
    }
}

/// Shows a summary rather than every byte.
impl std::fmt::Debug for Clip {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Clip")
            .field("frames", &self.access_units.len())
            .field("idr_frames", &self.idr_indices().count())
            .field("profile_level_id", &self.profile_level_id())
            .finish()
    }
}

fn finish_access_unit(nals: Vec<Bytes>, index: usize) -> Result<AccessUnit, ClipError> {
    if !nals.iter().any(|n| nal::nal_type(n).is_some_and(nal::is_vcl)) {
        return Err(ClipError::NoSlice { index });
    }
    Ok(AccessUnit::new(nals))
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLIP: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../clips/testsrc-640x360-25fps.h264");

    fn annexb(nals: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        for n in nals {
            out.extend_from_slice(&[0, 0, 0, 1]);
            out.extend_from_slice(n);
        }
        out
    }

    const AUD: &[u8] = &[0x09, 0xf0];
    const SPS: &[u8] = &[0x67, 0x4d, 0x40, 0x1e, 0xda];
    const PPS: &[u8] = &[0x68, 0xce, 0x3c, 0x80];
    const IDR: &[u8] = &[0x65, 0x88, 0x84];
    const P: &[u8] = &[0x41, 0x9a, 0x02];

    #[test]
    fn committed_clip_splits_into_200_access_units() {
        let clip = Clip::from_file(CLIP).expect("committed clip loads");
        assert_eq!(clip.frame_count(), 200);
        let idrs: Vec<usize> = clip.idr_indices().collect();
        assert_eq!(idrs, (0..200).step_by(25).collect::<Vec<_>>());
        for au in clip.access_units() {
            assert_eq!(nal::nal_type(&au.nal_units()[0]), Some(NAL_AUD));
            assert!(au.byte_len() > 0);
            let types: Vec<u8> = au.nal_units().iter().filter_map(|n| nal::nal_type(n)).collect();
            if au.is_idr() {
                assert!(types.contains(&NAL_SPS) && types.contains(&NAL_PPS));
            }
            assert_eq!(types.iter().filter(|&&t| t == NAL_AUD).count(), 1);
        }
        assert_eq!(clip.sps()[0] & 0x1f, NAL_SPS);
        assert_eq!(clip.pps()[0] & 0x1f, NAL_PPS);
        assert_eq!(clip.profile_level_id(), "4d401e");
        let debug = format!("{clip:?}");
        assert!(debug.len() < 200, "{debug}");
    }

    #[test]
    fn splits_on_aud_and_tracks_idr() {
        let data = annexb(&[AUD, SPS, PPS, IDR, AUD, P, AUD, P, P]);
        let clip = Clip::from_annexb(data).unwrap();
        assert_eq!(clip.frame_count(), 3);
        assert!(clip.access_units()[0].is_idr());
        assert!(!clip.access_units()[1].is_idr());
        assert_eq!(clip.access_units()[0].nal_units().len(), 4);
        assert_eq!(clip.access_units()[2].nal_units().len(), 3);
        assert_eq!(clip.sps(), SPS);
        assert_eq!(clip.pps(), PPS);
    }

    #[test]
    fn bad_files_are_errors() {
        assert!(matches!(Clip::from_annexb(Vec::new()), Err(ClipError::NotAnnexB { .. })));
        assert!(matches!(Clip::from_annexb(b"GIF89a not a video".to_vec()), Err(ClipError::NotAnnexB { .. })));
        assert!(matches!(Clip::from_annexb(annexb(&[SPS, PPS, IDR])), Err(ClipError::NoLeadingAud { found: 7 })));
        assert!(matches!(
            Clip::from_annexb(annexb(&[AUD, SPS, PPS, IDR, AUD, AUD, P])),
            Err(ClipError::NoSlice { index: 1 })
        ));
        assert!(matches!(Clip::from_annexb(annexb(&[AUD, SPS, PPS, P])), Err(ClipError::FirstNotIdr)));
        assert!(matches!(Clip::from_annexb(annexb(&[AUD, PPS, IDR])), Err(ClipError::MissingSps)));
        assert!(matches!(Clip::from_annexb(annexb(&[AUD, SPS, IDR])), Err(ClipError::MissingPps)));
        assert!(matches!(Clip::from_annexb(annexb(&[AUD, SPS, PPS, &[0xe5, 1]])), Err(ClipError::ForbiddenBit { .. })));
        assert!(matches!(Clip::from_file("/nonexistent/clip.h264"), Err(ClipError::Io { .. })));
    }

    #[test]
    fn truncated_and_random_input_never_panics() {
        let data = std::fs::read(CLIP).unwrap();
        for len in [0, 1, 3, 4, 5, 6, 7, 40, 100, 1000, 5000] {
            let _ = Clip::from_annexb(data[..len.min(data.len())].to_vec());
        }
        // A simple deterministic PRNG keeps this test reproducible.
        let mut x: u32 = 0x1234_5678;
        for _ in 0..200 {
            let mut buf = Vec::new();
            for _ in 0..64 {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                buf.push(match x % 4 {
                    0 | 1 => 0,
                    2 => 1,
                    _ => (x >> 8) as u8,
                });
            }
            let _ = Clip::from_annexb(buf);
        }
    }
}
