//! The movie-level boxes shared by progressive MP4 and (later) fragmented MP4: `ftyp`, `mvhd`,
//! and a video `trak` whose sample tables are written by the caller. A fragmented writer's init
//! segment is `ftyp` + `moov` with an empty `SampleTable` plus `mvex`.

use crate::avc::AvcConfig;
use crate::boxes::{BoxBuf, UNITY_MATRIX};
use crate::{Mp4Error, VideoTrack};

/// The only track's id.
pub const VIDEO_TRACK_ID: u32 = 1;

/// A [`VideoTrack`] whose values were checked, with its parsed `avcC`.
#[derive(Debug, Clone)]
pub struct CheckedTrack {
    /// The track as given.
    pub track: VideoTrack,
    /// Its decoder configuration.
    pub config: AvcConfig,
}

impl CheckedTrack {
    /// Checks dimensions (1..=65535, the sample entry's 16 bits), timescale (non-zero) and the
    /// `avcC` record.
    pub fn new(track: VideoTrack) -> Result<Self, Mp4Error> {
        if track.width == 0 || track.height == 0 {
            return Err(Mp4Error::InvalidTrack("width and height must not be zero"));
        }
        if track.width > 0xffff || track.height > 0xffff {
            return Err(Mp4Error::InvalidTrack("width and height must fit 16 bits"));
        }
        if track.timescale == 0 {
            return Err(Mp4Error::InvalidTrack("timescale must not be zero"));
        }
        let config = AvcConfig::parse(&track.avcc)?;
        Ok(Self { track, config })
    }
}

/// `ftyp`: ISO base media with AVC, as ffmpeg's mp4 muxer labels it.
pub fn write_ftyp(b: &mut BoxBuf) -> Result<(), Mp4Error> {
    b.write_box(*b"ftyp", |b| {
        b.bytes(b"isom").u32(0x200);
        for brand in [b"isom", b"iso2", b"avc1", b"mp41"] {
            b.bytes(brand);
        }
        Ok(())
    })
}

/// Version 0 when `duration` fits 32 bits, else version 1 (64-bit times).
pub(crate) fn time_version(duration: u64) -> u8 {
    u8::from(duration > u64::from(u32::MAX))
}

/// Writes creation time, modification time (both 0: unknown) and then `middle`, then the
/// duration, in the width `version` asks for.
pub(crate) fn times(b: &mut BoxBuf, version: u8, middle: &[u32], duration: u64) {
    if version == 1 {
        b.u64(0).u64(0);
    } else {
        b.u32(0).u32(0);
    }
    for &m in middle {
        b.u32(m);
    }
    if version == 1 {
        b.u64(duration);
    } else {
        b.u32(duration as u32);
    }
}

/// `mvhd` with the movie timescale equal to the track's, so durations need no rescaling.
pub fn write_mvhd(b: &mut BoxBuf, timescale: u32, duration: u64) -> Result<(), Mp4Error> {
    write_mvhd_tracks(b, timescale, duration, VIDEO_TRACK_ID + 1)
}

/// [`write_mvhd`] for a movie whose next free track id is `next_track_id` (3 with audio).
pub fn write_mvhd_tracks(b: &mut BoxBuf, timescale: u32, duration: u64, next_track_id: u32) -> Result<(), Mp4Error> {
    let version = time_version(duration);
    b.write_full_box(*b"mvhd", version, 0, |b| {
        times(b, version, &[timescale], duration);
        b.u32(0x0001_0000).u16(0x0100).zeros(2 + 8); // rate 1.0, volume 1.0, reserved
        for m in UNITY_MATRIX {
            b.u32(m);
        }
        b.zeros(6 * 4).u32(next_track_id); // pre_defined, next_track_ID
        Ok(())
    })
}

/// `trak` for the video track; `duration` is in the track's timescale (which is also the
/// movie's). `stbl_tables` writes the boxes that follow `stsd` inside `stbl`.
pub fn write_video_trak<F>(b: &mut BoxBuf, t: &CheckedTrack, duration: u64, stbl_tables: F) -> Result<(), Mp4Error>
where
    F: FnOnce(&mut BoxBuf) -> Result<(), Mp4Error>,
{
    write_video_trak_entries(b, std::slice::from_ref(t), duration, stbl_tables)
}

/// [`write_video_trak`] with one sample entry per set of codec parameters, in order (the
/// sample tables name them 1, 2, …). The track header has the first one's picture size.
pub fn write_video_trak_entries<F>(
    b: &mut BoxBuf,
    entries: &[CheckedTrack],
    duration: u64,
    stbl_tables: F,
) -> Result<(), Mp4Error>
where
    F: FnOnce(&mut BoxBuf) -> Result<(), Mp4Error>,
{
    let track = &entries.first().ok_or(Mp4Error::InvalidTrack("no sample entry"))?.track;
    b.write_box(*b"trak", |b| {
        let version = time_version(duration);
        // Flags: track enabled, used in the movie.
        b.write_full_box(*b"tkhd", version, 0x3, |b| {
            times(b, version, &[VIDEO_TRACK_ID, 0], duration);
            b.zeros(8).u16(0).u16(0).u16(0).u16(0); // reserved, layer, group, volume, reserved
            for m in UNITY_MATRIX {
                b.u32(m);
            }
            b.u32(track.width << 16).u32(track.height << 16);
            Ok(())
        })?;
        b.write_box(*b"mdia", |b| {
            media_header(b, version, track.timescale, duration, b"vide", b"VideoHandler\0")?;
            b.write_box(*b"minf", |b| {
                b.write_full_box(*b"vmhd", 0, 1, |b| {
                    b.zeros(8); // graphicsmode, opcolor
                    Ok(())
                })?;
                data_information(b)?;
                b.write_box(*b"stbl", |b| {
                    b.write_full_box(*b"stsd", 0, 0, |b| {
                        b.u32(entries.len() as u32);
                        entries.iter().try_for_each(|t| write_avc1(b, t))
                    })?;
                    stbl_tables(b)
                })
            })
        })
    })
}

/// A track's `mdhd` (its timescale and duration, language "und") and `hdlr` (`handler`, and
/// `name` with its closing NUL).
pub(crate) fn media_header(
    b: &mut BoxBuf,
    version: u8,
    timescale: u32,
    duration: u64,
    handler: &[u8; 4],
    name: &[u8],
) -> Result<(), Mp4Error> {
    b.write_full_box(*b"mdhd", version, 0, |b| {
        times(b, version, &[timescale], duration);
        b.u16(0x55c4).u16(0); // language "und", pre_defined
        Ok(())
    })?;
    b.write_full_box(*b"hdlr", 0, 0, |b| {
        b.u32(0).bytes(handler).zeros(12).bytes(name);
        Ok(())
    })
}

/// A track's `dinf`: one `dref` entry, flag 1: the media is in this file.
pub(crate) fn data_information(b: &mut BoxBuf) -> Result<(), Mp4Error> {
    b.write_box(*b"dinf", |b| {
        b.write_full_box(*b"dref", 0, 0, |b| {
            b.u32(1);
            b.write_full_box(*b"url ", 0, 1, |_| Ok(()))
        })
    })
}

/// The `avc1` sample entry with its `avcC`.
fn write_avc1(b: &mut BoxBuf, t: &CheckedTrack) -> Result<(), Mp4Error> {
    b.write_box(*b"avc1", |b| {
        b.zeros(6).u16(1); // reserved, data_reference_index
        b.zeros(2 + 2 + 12); // pre_defined, reserved, pre_defined
        b.u16(t.track.width as u16).u16(t.track.height as u16);
        b.u32(0x0048_0000).u32(0x0048_0000); // 72 dpi
        b.u32(0).u16(1); // reserved, frame_count
        b.zeros(32); // compressorname: empty Pascal string
        b.u16(0x0018).u16(0xffff); // depth, pre_defined = -1
        b.write_box(*b"avcC", |b| {
            b.bytes(t.config.record());
            Ok(())
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::avc::tests::record;

    fn track(width: u32, height: u32, timescale: u32, avcc: Vec<u8>) -> VideoTrack {
        VideoTrack { width, height, avcc, timescale }
    }

    #[test]
    fn checked_track_rejects_bad_values() {
        for (t, want) in [
            (track(0, 240, 90000, record()), "zero"),
            (track(320, 0, 90000, record()), "zero"),
            (track(70000, 240, 90000, record()), "16 bits"),
            (track(320, 240, 0, record()), "timescale"),
            (track(320, 240, 90000, vec![]), "avcC"),
        ] {
            let err = CheckedTrack::new(t).unwrap_err().to_string();
            assert!(err.contains(want), "{err} should mention {want}");
        }
        assert!(CheckedTrack::new(track(65535, 65535, 1, record())).is_ok());
    }

    #[test]
    fn long_durations_switch_headers_to_version_1() {
        let mut b = BoxBuf::new();
        write_mvhd(&mut b, 90000, u64::from(u32::MAX)).unwrap();
        assert_eq!(b.as_bytes()[8], 0);
        assert_eq!(b.len(), 108);
        let mut b = BoxBuf::new();
        write_mvhd(&mut b, 90000, u64::from(u32::MAX) + 1).unwrap();
        assert_eq!(b.as_bytes()[8], 1);
        assert_eq!(b.len(), 120);
        // version 1: creation, modification (8 each), timescale (4), then the 64-bit duration.
        assert_eq!(&b.as_bytes()[28..32], &90000u32.to_be_bytes());
        assert_eq!(&b.as_bytes()[32..40], &(u64::from(u32::MAX) + 1).to_be_bytes());
    }

    #[test]
    fn avc1_entry_has_the_fixed_layout() {
        let t = CheckedTrack::new(track(320, 240, 90000, record())).unwrap();
        let mut b = BoxBuf::new();
        write_avc1(&mut b, &t).unwrap();
        let bytes = b.into_bytes();
        // 8 header + 78 visual sample entry + avcC box.
        assert_eq!(bytes.len(), 8 + 78 + 8 + record().len());
        assert_eq!(&bytes[32..36], &[1, 0x40, 0, 0xf0]);
        assert_eq!(&bytes[90..94], b"avcC");
        assert_eq!(&bytes[94..], record().as_slice());
    }
}
