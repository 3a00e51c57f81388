//! The audio track of a progressive MP4: its checks, the sample entry (AAC: `mp4a` with its
//! `esds`, ISO/IEC 14496-1 descriptors around the `AudioSpecificConfig`; G.711: `ulaw` or
//! `alaw`) and the sound `trak`.

use crate::boxes::{BoxBuf, UNITY_MATRIX};
use crate::movie::{data_information, media_header, time_version, times};
use crate::{AudioCodec, AudioTrack, Mp4Error};

/// The audio track's id (the video's is 1).
pub const AUDIO_TRACK_ID: u32 = 2;

/// Checks an [`AudioTrack`]: a sample rate and channel count an `mp4a` entry can hold and an
/// `AudioSpecificConfig` of at least its two bytes whose object type is not 0.
pub fn check(track: &AudioTrack) -> Result<(), Mp4Error> {
    if track.sample_rate == 0 || track.sample_rate > 0xffff {
        return Err(Mp4Error::InvalidAudio("sample rate must be 1..=65535 Hz"));
    }
    if track.channels == 0 {
        return Err(Mp4Error::InvalidAudio("channel count must not be zero"));
    }
    if track.codec != AudioCodec::Aac {
        return Ok(());
    }
    match track.audio_specific_config.first() {
        None => Err(Mp4Error::InvalidAudio("no AudioSpecificConfig")),
        Some(_) if track.audio_specific_config.len() < 2 => {
            Err(Mp4Error::InvalidAudio("AudioSpecificConfig too short"))
        }
        Some(b) if b >> 3 == 0 => Err(Mp4Error::InvalidAudio("AudioSpecificConfig has no object type")),
        Some(_) if track.audio_specific_config.len() > 0xff => {
            Err(Mp4Error::InvalidAudio("AudioSpecificConfig longer than 255 bytes"))
        }
        Some(_) => Ok(()),
    }
}

/// `trak` of the audio track. `delay` (movie timescale) of silence comes before its first
/// sample (an empty edit); `duration` is in the track's timescale (its sample rate) and
/// `movie_duration` the same in the movie's.
pub fn write_audio_trak<F>(
    b: &mut BoxBuf,
    track: &AudioTrack,
    (delay, movie_duration): (u64, u64),
    duration: u64,
    stbl_tables: F,
) -> Result<(), Mp4Error>
where
    F: FnOnce(&mut BoxBuf) -> Result<(), Mp4Error>,
{
    b.write_box(*b"trak", |b| {
        let total = delay + movie_duration;
        let version = time_version(total);
        b.write_full_box(*b"tkhd", version, 0x3, |b| {
            times(b, version, &[AUDIO_TRACK_ID, 0], total);
            // reserved, layer, alternate_group 1, volume 1.0, reserved
            b.zeros(8).u16(0).u16(1).u16(0x0100).u16(0);
            for m in UNITY_MATRIX {
                b.u32(m);
            }
            b.u32(0).u32(0); // no picture
            Ok(())
        })?;
        if delay > 0 {
            b.write_box(*b"edts", |b| {
                b.write_full_box(*b"elst", 1, 0, |b| {
                    b.u32(2);
                    b.u64(delay).u64(u64::MAX).u16(1).u16(0); // empty edit: media_time -1
                    b.u64(movie_duration).u64(0).u16(1).u16(0);
                    Ok(())
                })
            })?;
        }
        b.write_box(*b"mdia", |b| {
            let version = time_version(duration);
            media_header(b, version, track.sample_rate, duration, b"soun", b"SoundHandler\0")?;
            b.write_box(*b"minf", |b| {
                b.write_full_box(*b"smhd", 0, 0, |b| {
                    b.u16(0).u16(0); // balance, reserved
                    Ok(())
                })?;
                data_information(b)?;
                b.write_box(*b"stbl", |b| {
                    b.write_full_box(*b"stsd", 0, 0, |b| {
                        b.u32(1);
                        write_sample_entry(b, track)
                    })?;
                    stbl_tables(b)
                })
            })
        })
    })
}

/// The sample entry: `mp4a` with its `esds` for AAC, `ulaw` or `alaw` (the same fields, no
/// further box; 8-bit samples) for G.711.
fn write_sample_entry(b: &mut BoxBuf, t: &AudioTrack) -> Result<(), Mp4Error> {
    let (kind, sample_size) = match t.codec {
        AudioCodec::Aac => (*b"mp4a", 16),
        AudioCodec::Ulaw => (*b"ulaw", 8),
        AudioCodec::Alaw => (*b"alaw", 8),
    };
    b.write_box(kind, |b| {
        b.zeros(6).u16(1); // reserved, data_reference_index
        b.zeros(8); // reserved
        b.u16(t.channels).u16(sample_size).u16(0).u16(0); // channelcount, samplesize, pre_defined, reserved
        b.u32(t.sample_rate << 16);
        if t.codec != AudioCodec::Aac {
            return Ok(());
        }
        b.write_full_box(*b"esds", 0, 0, |b| {
            b.bytes(&es_descriptor(&t.audio_specific_config));
            Ok(())
        })
    })
}

/// ES_Descriptor (tag 3) holding a DecoderConfigDescriptor (tag 4: MPEG-4 audio, an audio
/// stream) with the DecoderSpecificInfo (tag 5: the `AudioSpecificConfig`), and an
/// SLConfigDescriptor (tag 6, predefined 2: MP4).
fn es_descriptor(asc: &[u8]) -> Vec<u8> {
    let mut specific = Vec::new();
    descriptor(&mut specific, 5, asc);
    let mut config = vec![0x40, 0x15, 0, 0, 0]; // object type MPEG-4 audio, audio stream, buffer size
    config.extend_from_slice(&0u32.to_be_bytes()); // max bitrate: unknown
    config.extend_from_slice(&0u32.to_be_bytes()); // average bitrate: unknown
    config.extend_from_slice(&specific);
    let mut es = Vec::new();
    es.extend_from_slice(&(AUDIO_TRACK_ID as u16).to_be_bytes()); // ES_ID
    es.push(0); // no dependence, URL or OCR stream
    descriptor(&mut es, 4, &config);
    descriptor(&mut es, 6, &[2]);
    let mut out = Vec::new();
    descriptor(&mut out, 3, &es);
    out
}

/// Appends a descriptor: tag, size in the 4-byte form of 7 bits each, body.
fn descriptor(out: &mut Vec<u8>, tag: u8, body: &[u8]) {
    let n = body.len() as u32;
    out.push(tag);
    out.extend_from_slice(&[
        0x80 | (n >> 21) as u8 & 0x7f,
        0x80 | (n >> 14) as u8 & 0x7f,
        0x80 | (n >> 7) as u8 & 0x7f,
    ]);
    out.push(n as u8 & 0x7f);
    out.extend_from_slice(body);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn track(asc: Vec<u8>) -> AudioTrack {
        AudioTrack { codec: AudioCodec::Aac, sample_rate: 48_000, channels: 1, audio_specific_config: asc }
    }

    #[test]
    fn tracks_are_checked() {
        assert!(check(&track(vec![0x11, 0x88])).is_ok());
        for bad in [vec![], vec![0x11], vec![0x01, 0x88]] {
            assert!(matches!(check(&track(bad)), Err(Mp4Error::InvalidAudio(_))));
        }
        let mut t = track(vec![0x11, 0x88]);
        t.sample_rate = 96_000;
        assert!(check(&t).is_err());
        t.sample_rate = 8_000;
        t.channels = 0;
        assert!(check(&t).is_err());
        let g711 =
            AudioTrack { codec: AudioCodec::Ulaw, sample_rate: 8_000, channels: 1, audio_specific_config: vec![] };
        assert!(check(&g711).is_ok(), "G.711 needs no decoder configuration");
    }

    #[test]
    fn es_descriptor_nests_the_audio_specific_config() {
        let es = es_descriptor(&[0x11, 0x88]);
        // tag 3, 4-byte size, ES_ID 2, flags, tag 4 ...
        assert_eq!(&es[..8], &[3, 0x80, 0x80, 0x80, 3 + 5 + 13 + 5 + 2 + 5 + 1, 0, 2, 0]);
        assert_eq!(&es[8..15], &[4, 0x80, 0x80, 0x80, 13 + 5 + 2, 0x40, 0x15]);
        let tail = &es[es.len() - 13..];
        assert_eq!(tail, &[5, 0x80, 0x80, 0x80, 2, 0x11, 0x88, 6, 0x80, 0x80, 0x80, 1, 2]);
    }
}
