//! Progressive MP4: `ftyp`, one `mdat` streamed sample by sample, `moov` at the end.

use std::io::{Seek, SeekFrom, Write};
use std::time::Duration;

use crate::audio::{self, AUDIO_TRACK_ID, write_audio_trak};
use crate::avc::SampleProblem;
use crate::boxes::{BoxBuf, MDAT_HEADER_LEN, mdat_header};
use crate::movie::{CheckedTrack, write_ftyp, write_mvhd, write_mvhd_tracks, write_video_trak_entries};
use crate::sample_table::SampleTable;
use crate::{AudioSample, AudioTrack, Mp4Error, Sample, VideoTrack};

/// What [`Mp4Writer::finish`] wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExportSummary {
    /// Samples (frames) in the file.
    pub samples: u64,
    /// Of which key frames.
    pub keyframes: u64,
    /// Playback duration in `timescale` units: the sum of all sample durations.
    pub duration_ticks: u64,
    /// Units per second of `duration_ticks` (the track's timescale).
    pub timescale: u32,
    /// Pts jumps longer than the maximum sample duration that were shortened to it.
    pub gaps: u64,
    /// Time removed from the timeline by shortening those jumps, in `timescale` units.
    pub gap_ticks_removed: u64,
    /// Bytes written, from the output's position at [`Mp4Writer::new`] to the end of `moov`.
    pub bytes: u64,
    /// Audio samples (AAC access units or G.711 runs) in the file; 0 without audio.
    pub audio_samples: u64,
}

impl ExportSummary {
    /// Playback duration.
    pub fn duration(&self) -> Duration {
        ticks_to_duration(self.duration_ticks, self.timescale)
    }
}

fn ticks_to_duration(ticks: u64, timescale: u32) -> Duration {
    let ts = u64::from(timescale.max(1));
    let nanos = (u128::from(ticks % ts) * 1_000_000_000 / u128::from(ts)) as u32;
    Duration::new(ticks / ts, nanos)
}

/// Streams H.264 samples into a progressive MP4 with one video track, and AAC or G.711 samples
/// into an audio track when one is added ([`Mp4Writer::add_audio`]; media of both interleaved
/// in the `mdat` in push order).
///
/// The file is laid out `ftyp`, `mdat` (sample data in push order, written as it arrives),
/// `moov` (written by [`Mp4Writer::finish`], which then seeks back to patch the `mdat` size).
/// Memory is bounded by the sample tables, about 4 bytes per sample; media is never held.
///
/// ## Timing
/// Sample *n* lasts `pts[n+1] - pts[n]`; the file's timeline starts at 0 at the first sample.
/// The last sample lasts as long as the one before it (1/25 s if it is the only one).
/// Pts must strictly increase: decode order must equal presentation order (no B-frames).
///
/// ## Gaps
/// A pts jump longer than the maximum sample duration (1 s by default, see
/// [`Mp4Writer::with_max_sample_duration`]) is a gap in the recording: the sample before it is
/// shown for exactly the maximum duration, and everything after the gap moves earlier by the
/// rest of the jump, so a player does not sit on a frozen frame for hours. The file's timeline
/// is then shorter than wall-clock time; [`ExportSummary::gaps`] and
/// [`ExportSummary::gap_ticks_removed`] say by how much.
///
/// ## Errors
/// A sample that fails a check (see [`Mp4Error::is_rejection`]) is not written and the writer
/// stays usable. After an I/O error every call returns [`Mp4Error::Poisoned`]. When `finish`
/// fails, the output is not a valid MP4 and should be discarded.
///
/// To keep using a `File` afterwards (e.g. to `sync_all` it), pass `&mut file`.
#[derive(Debug)]
pub struct Mp4Writer<W: Write + Seek> {
    out: W,
    /// The sample entries: the track it was started with, then each change of parameters.
    entries: Vec<CheckedTrack>,
    /// The entry of the samples pushed now.
    current: usize,
    /// Parameters changed: the next sample must be a key frame.
    need_keyframe: bool,
    /// Output position at `new`.
    start: u64,
    /// Position of the 16-byte `mdat` header.
    mdat_start: u64,
    /// Current output position (end of written data).
    pos: u64,
    table: SampleTable,
    last_pts: Option<i64>,
    /// Duration given to the previous sample (after clamping).
    last_duration: Option<u32>,
    max_sample_duration: u32,
    gaps: u64,
    gap_ticks_removed: u64,
    poisoned: bool,
    audio: Option<AudioState>,
}

/// The audio track while samples arrive.
#[derive(Debug)]
struct AudioState {
    track: AudioTrack,
    table: SampleTable,
    /// The first sample's pts: the track starts after that much silence.
    first_pts: Option<i64>,
    last_pts: Option<i64>,
    last_duration: Option<u32>,
}

impl<W: Write + Seek> Mp4Writer<W> {
    /// Checks the track, then writes `ftyp` and a placeholder `mdat` header at the output's
    /// current position.
    pub fn new(mut out: W, track: VideoTrack) -> Result<Self, Mp4Error> {
        let track = CheckedTrack::new(track)?;
        let start = out.stream_position()?;
        let mut head = BoxBuf::new();
        write_ftyp(&mut head)?;
        let mdat_start = start + head.len() as u64;
        head.bytes(&mdat_header(MDAT_HEADER_LEN));
        out.write_all(head.as_bytes())?;
        let max_sample_duration = track.track.timescale;
        Ok(Self {
            out,
            entries: vec![track],
            current: 0,
            need_keyframe: true,
            start,
            mdat_start,
            pos: mdat_start + MDAT_HEADER_LEN,
            table: SampleTable::new(),
            last_pts: None,
            last_duration: None,
            max_sample_duration,
            gaps: 0,
            gap_ticks_removed: 0,
            poisoned: false,
            audio: None,
        })
    }

    /// Adds an audio track (AAC or G.711) (once, before its first [`Mp4Writer::push_audio`]).
    pub fn add_audio(&mut self, track: AudioTrack) -> Result<(), Mp4Error> {
        if self.audio.is_some() {
            return Err(Mp4Error::InvalidAudio("the file has an audio track already"));
        }
        audio::check(&track)?;
        self.audio = Some(AudioState {
            track,
            table: SampleTable::all_sync(),
            first_pts: None,
            last_pts: None,
            last_duration: None,
        });
        Ok(())
    }

    /// The audio track, when one was added.
    pub fn audio_track(&self) -> Option<&AudioTrack> {
        self.audio.as_ref().map(|a| &a.track)
    }

    /// Appends a sample's bytes to the media data; its offset in the file and its size. A
    /// failed write poisons the writer (the file is no longer consistent).
    fn write_media(&mut self, data: &[u8]) -> Result<(u64, u32), Mp4Error> {
        let size = u32::try_from(data.len()).map_err(|_| Mp4Error::TooLarge("sample larger than 4 GiB"))?;
        if let Err(e) = self.out.write_all(data) {
            self.poisoned = true;
            return Err(e.into());
        }
        let offset = self.pos;
        self.pos += u64::from(size);
        Ok((offset, size))
    }

    /// Appends one AAC access unit or run of G.711 samples. Its pts counts samples from the first video sample; the
    /// first one's pts (not negative) becomes silence before the track starts. A pts jump of
    /// more than a second is shortened to one second, as for video.
    pub fn push_audio(&mut self, sample: AudioSample<'_>) -> Result<(), Mp4Error> {
        if self.poisoned {
            return Err(Mp4Error::Poisoned);
        }
        let no_track = || Mp4Error::InvalidAudio("no audio track: call add_audio first");
        let a = self.audio.as_ref().ok_or_else(no_track)?;
        a.table.check_room()?;
        let index = a.table.len();
        let delta = match a.last_pts {
            Some(previous) if sample.pts <= previous => {
                return Err(Mp4Error::PtsNotIncreasing { index, previous, pts: sample.pts });
            }
            Some(previous) => Some(i128::from(sample.pts) - i128::from(previous)),
            None if sample.pts < 0 => {
                return Err(Mp4Error::InvalidAudio("audio starts before the first video sample"));
            }
            None => None,
        };
        if sample.data.is_empty() {
            return Err(Mp4Error::InvalidAudio("empty audio sample"));
        }
        let (offset, size) = self.write_media(sample.data)?;
        let a = self.audio.as_mut().ok_or_else(no_track)?;
        a.table.add_sample(offset, size, true)?;
        if let Some(delta) = delta {
            let max = i128::from(a.track.sample_rate);
            let duration = delta.min(max) as u32; // 0 < delta, max <= 65535
            a.table.add_duration(duration);
            a.last_duration = Some(duration);
        }
        a.first_pts.get_or_insert(sample.pts);
        a.last_pts = Some(sample.pts);
        Ok(())
    }

    /// Sets the longest duration a sample may get, in timescale units (default: one second);
    /// longer pts jumps are gaps and are shortened to it. 0 counts as 1.
    pub fn with_max_sample_duration(mut self, ticks: u32) -> Self {
        self.max_sample_duration = ticks.max(1);
        self
    }

    /// The track this file was started with.
    pub fn track(&self) -> &VideoTrack {
        &self.entries[0].track
    }

    /// RFC 6381 codec string of the track, e.g. `avc1.4d401e`.
    pub fn codec_string(&self) -> String {
        self.entries[0].config.codec_string()
    }

    /// Samples written so far.
    pub fn sample_count(&self) -> u64 {
        self.table.len()
    }

    /// Ok when `track` equals the one samples are pushed under now (a store repeats unchanged
    /// parameters, e.g. after a camera reconnects); [`Mp4Error::ParametersChanged`] otherwise,
    /// and then the caller starts a new file or calls [`Mp4Writer::change_parameters`].
    pub fn check_parameters(&self, track: &VideoTrack) -> Result<(), Mp4Error> {
        let ours = &self.entries[self.current].track;
        if track.width != ours.width || track.height != ours.height {
            return Err(Mp4Error::ParametersChanged("picture size differs"));
        }
        if track.timescale != ours.timescale {
            return Err(Mp4Error::ParametersChanged("timescale differs"));
        }
        if track.avcc != ours.avcc {
            return Err(Mp4Error::ParametersChanged("avcC record differs"));
        }
        Ok(())
    }

    /// Goes on under new codec parameters (a camera that changed its resolution): the samples
    /// pushed from now on, starting with a key frame, use a sample entry of `track` (the same
    /// entry again when these parameters came before). The timescale may not change.
    pub fn change_parameters(&mut self, track: VideoTrack) -> Result<(), Mp4Error> {
        if self.poisoned {
            return Err(Mp4Error::Poisoned);
        }
        if track.timescale != self.entries[0].track.timescale {
            return Err(Mp4Error::ParametersChanged("timescale differs"));
        }
        let index = match self.entries.iter().position(|e| e.track == track) {
            Some(index) => index,
            None => {
                self.entries.push(CheckedTrack::new(track)?);
                self.entries.len() - 1
            }
        };
        if index != self.current {
            self.current = index;
            self.need_keyframe = true;
            self.table.set_description(index as u32 + 1);
        }
        Ok(())
    }

    /// Appends one sample (an access unit in AVCC framing with the avcC's NAL length size).
    pub fn push(&mut self, sample: Sample<'_>) -> Result<(), Mp4Error> {
        if self.poisoned {
            return Err(Mp4Error::Poisoned);
        }
        let index = self.table.len();
        self.table.check_room()?;
        if self.need_keyframe && !sample.keyframe {
            return Err(Mp4Error::FirstNotKeyframe);
        }
        let delta = match self.last_pts {
            Some(previous) if sample.pts <= previous => {
                return Err(Mp4Error::PtsNotIncreasing { index, previous, pts: sample.pts });
            }
            // i128: hostile pts values may be i64::MIN and i64::MAX.
            Some(previous) => Some(i128::from(sample.pts) - i128::from(previous)),
            None => None,
        };
        match self.entries[self.current].config.check_sample(sample.data) {
            Ok(()) => {}
            Err(SampleProblem::Malformed(reason)) => {
                return Err(Mp4Error::InvalidSample { index, reason });
            }
            Err(SampleProblem::ParametersChanged(why)) => {
                return Err(Mp4Error::ParametersChanged(why));
            }
        }
        let (offset, size) = self.write_media(sample.data)?;
        self.table.add_sample(offset, size, sample.keyframe)?;
        self.need_keyframe = false;
        if let Some(delta) = delta {
            let max = self.max_sample_duration;
            let duration = if delta > i128::from(max) {
                self.gaps += 1;
                // delta < 2^65 and max > 0, so the difference fits u64.
                self.gap_ticks_removed = self.gap_ticks_removed.saturating_add((delta - i128::from(max)) as u64);
                max
            } else {
                delta as u32 // 0 < delta <= max
            };
            self.table.add_duration(duration);
            self.last_duration = Some(duration);
        }
        self.last_pts = Some(sample.pts);
        Ok(())
    }

    /// Gives the last sample its duration, writes `moov`, patches the `mdat` header and
    /// flushes. The output is left positioned at the end of the file.
    pub fn finish(mut self) -> Result<ExportSummary, Mp4Error> {
        if self.poisoned {
            return Err(Mp4Error::Poisoned);
        }
        if self.table.is_empty() {
            return Err(Mp4Error::Empty);
        }
        let timescale = self.entries[0].track.timescale;
        let last = self.last_duration.unwrap_or((timescale / 25).max(1)).min(self.max_sample_duration);
        self.table.add_duration(last);
        let duration = self.table.duration();

        // The audio track: its last sample lasts as long as the one before (1024 samples, an
        // AAC frame, if it is the only one); its times in the movie's timescale too.
        let audio = self.audio.as_mut().filter(|a| !a.table.is_empty()).map(|a| {
            a.table.add_duration(a.last_duration.unwrap_or(1024));
            let to_movie =
                |ticks: u64| (u128::from(ticks) * u128::from(timescale) / u128::from(a.track.sample_rate)) as u64;
            let delay = to_movie(a.first_pts.unwrap_or(0) as u64);
            (&*a, delay, to_movie(a.table.duration()))
        });
        let movie_duration = audio.as_ref().map_or(duration, |(_, delay, d)| duration.max(delay + d));
        let mut moov = BoxBuf::new();
        moov.write_box(*b"moov", |b| {
            match &audio {
                None => write_mvhd(b, timescale, movie_duration)?,
                Some(_) => write_mvhd_tracks(b, timescale, movie_duration, AUDIO_TRACK_ID + 1)?,
            }
            write_video_trak_entries(b, &self.entries, duration, |b| self.table.write_tables(b))?;
            if let Some((a, delay, d)) = &audio {
                write_audio_trak(b, &a.track, (*delay, *d), a.table.duration(), |b| a.table.write_tables(b))?;
            }
            Ok(())
        })?;
        let audio_samples = audio.map_or(0, |(a, _, _)| a.table.len());
        let mdat_size = self.pos - self.mdat_start;
        let end = self.pos + moov.len() as u64;
        self.out.write_all(moov.as_bytes())?;
        self.out.seek(SeekFrom::Start(self.mdat_start))?;
        self.out.write_all(&mdat_header(mdat_size))?;
        self.out.seek(SeekFrom::Start(end))?;
        self.out.flush()?;

        Ok(ExportSummary {
            samples: self.table.len(),
            keyframes: self.table.sync_count(),
            duration_ticks: duration,
            timescale,
            gaps: self.gaps,
            gap_ticks_removed: self.gap_ticks_removed,
            bytes: end - self.start,
            audio_samples,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::AudioCodec;
    use crate::avc::tests::{PPS, SPS, avcc, record};
    use std::io::Cursor;

    const IDR: &[u8] = &[0x65, 0x88, 0x84, 0x00];
    const P: &[u8] = &[0x41, 0x9a, 0x02];

    fn track() -> VideoTrack {
        VideoTrack { width: 320, height: 240, avcc: record(), timescale: 90000 }
    }

    fn writer() -> Mp4Writer<Cursor<Vec<u8>>> {
        Mp4Writer::new(Cursor::new(Vec::new()), track()).unwrap()
    }

    fn sample(pts: i64, keyframe: bool, data: &[u8]) -> Sample<'_> {
        Sample { pts, keyframe, data }
    }

    /// Top-level boxes of a file as (type, offset, size).
    fn top_level(bytes: &[u8]) -> Vec<(String, usize, u64)> {
        let mut out = Vec::new();
        let mut pos = 0;
        while pos + 8 <= bytes.len() {
            let mut size = u64::from(u32::from_be_bytes(bytes[pos..pos + 4].try_into().unwrap()));
            if size == 1 {
                size = u64::from_be_bytes(bytes[pos + 8..pos + 16].try_into().unwrap());
            }
            let kind = String::from_utf8_lossy(&bytes[pos + 4..pos + 8]).into_owned();
            out.push((kind, pos, size));
            pos += size as usize;
        }
        assert_eq!(pos, bytes.len(), "boxes must tile the file");
        out
    }

    /// Finds the body (after the header) of the first box of type `kind` anywhere in `bytes`,
    /// descending into known containers.
    fn find<'a>(bytes: &'a [u8], kind: &str) -> Option<&'a [u8]> {
        let mut pos = 0;
        while pos + 8 <= bytes.len() {
            let size = u32::from_be_bytes(bytes[pos..pos + 4].try_into().unwrap()) as usize;
            let k = &bytes[pos + 4..pos + 8];
            let body = &bytes[pos + 8..pos + size];
            if k == kind.as_bytes() {
                return Some(body);
            }
            let children = match k {
                b"moov" | b"trak" | b"mdia" | b"minf" | b"stbl" => Some(body),
                b"stsd" => Some(&body[8..]), // version, flags, entry_count
                _ => None,
            };
            if let Some(found) = children.and_then(|c| find(c, kind)) {
                return Some(found);
            }
            pos += size;
        }
        None
    }

    fn words(body: &[u8]) -> Vec<u32> {
        body.chunks(4).map(|c| u32::from_be_bytes(c.try_into().unwrap())).collect()
    }

    #[test]
    fn writes_ftyp_mdat_moov_with_matching_tables() {
        let idr = avcc(&[SPS, PPS, IDR]);
        let p = avcc(&[P]);
        let mut buf = Cursor::new(Vec::new());
        let mut w = Mp4Writer::new(&mut buf, track()).unwrap();
        w.push(sample(1000, true, &idr)).unwrap();
        w.push(sample(4600, false, &p)).unwrap();
        w.push(sample(8200, false, &p)).unwrap();
        assert_eq!(w.sample_count(), 3);
        assert_eq!(w.codec_string(), "avc1.4d401e");
        let summary = w.finish().unwrap();
        let bytes = buf.into_inner();
        assert_eq!(
            summary,
            ExportSummary {
                samples: 3,
                keyframes: 1,
                duration_ticks: 3 * 3600,
                timescale: 90000,
                gaps: 0,
                gap_ticks_removed: 0,
                bytes: bytes.len() as u64,
                audio_samples: 0,
            }
        );
        assert_eq!(summary.duration(), Duration::from_millis(120));

        let boxes = top_level(&bytes);
        let kinds: Vec<_> = boxes.iter().map(|(k, _, _)| k.as_str()).collect();
        assert_eq!(kinds, ["ftyp", "free", "mdat", "moov"]);
        let (_, mdat_pos, mdat_size) = boxes[2];
        assert_eq!(mdat_size as usize, 8 + idr.len() + 2 * p.len());
        let media = &bytes[mdat_pos + 8..mdat_pos + mdat_size as usize];
        assert_eq!(media, [idr.as_slice(), &p, &p].concat());

        let moov = &bytes[boxes[3].1..];
        assert_eq!(words(find(moov, "stts").unwrap()), [0, 1, 3, 3600]);
        assert_eq!(words(find(moov, "stss").unwrap()), [0, 1, 1]);
        assert_eq!(words(find(moov, "stsz").unwrap()), [0, 0, 3, idr.len() as u32, p.len() as u32, p.len() as u32]);
        assert_eq!(words(find(moov, "stsc").unwrap()), [0, 1, 1, 3, 1]);
        assert_eq!(words(find(moov, "stco").unwrap()), [0, 1, mdat_pos as u32 + 8]);
        let avcc_box = find(moov, "avc1").map(|b| &b[78 + 8..]).unwrap();
        assert_eq!(avcc_box, record().as_slice());
        // mdhd v0: times, timescale, duration.
        assert_eq!(&words(find(moov, "mdhd").unwrap())[3..5], [90000, 3 * 3600]);
    }

    /// Every box of type `kind` anywhere in `bytes` (bodies), in order.
    fn find_all<'a>(bytes: &'a [u8], kind: &str, out: &mut Vec<&'a [u8]>) {
        let mut pos = 0;
        while pos + 8 <= bytes.len() {
            let size = u32::from_be_bytes(bytes[pos..pos + 4].try_into().unwrap()) as usize;
            let k = &bytes[pos + 4..pos + 8];
            let body = &bytes[pos + 8..pos + size];
            if k == kind.as_bytes() {
                out.push(body);
            }
            match k {
                b"moov" | b"trak" | b"mdia" | b"minf" | b"stbl" | b"edts" => find_all(body, kind, out),
                b"stsd" => find_all(&body[8..], kind, out),
                _ => {}
            }
            pos += size;
        }
    }

    fn aac() -> AudioTrack {
        AudioTrack { codec: AudioCodec::Aac, sample_rate: 16_000, channels: 1, audio_specific_config: vec![0x14, 0x08] }
    }

    #[test]
    fn an_aac_track_beside_the_video_starts_after_its_delay() {
        let idr = avcc(&[SPS, PPS, IDR]);
        let p = avcc(&[P]);
        let mut buf = Cursor::new(Vec::new());
        let mut w = Mp4Writer::new(&mut buf, track()).unwrap();
        assert!(matches!(w.push_audio(AudioSample { pts: 0, data: &[1] }), Err(Mp4Error::InvalidAudio(_))));
        w.add_audio(aac()).unwrap();
        assert!(w.add_audio(aac()).is_err(), "one audio track");
        w.push(sample(0, true, &idr)).unwrap();
        // Audio from 0.1 s (1600 samples at 16 kHz), 1024 samples per frame.
        for i in 0..10i64 {
            w.push_audio(AudioSample { pts: 1600 + i * 1024, data: &[0x21, i as u8, 0x80] }).unwrap();
            w.push(sample(3600 * (i + 1), false, &p)).unwrap();
        }
        let e = w.push_audio(AudioSample { pts: 1600, data: &[1] }).unwrap_err();
        assert!(e.is_rejection(), "{e}");
        let summary = w.finish().unwrap();
        assert_eq!((summary.samples, summary.audio_samples), (11, 10));
        let bytes = buf.into_inner();
        let moov = top_level(&bytes).into_iter().find(|b| b.0 == "moov").unwrap();
        let moov = &bytes[moov.1..moov.1 + moov.2 as usize];
        let mut traks = Vec::new();
        find_all(moov, "trak", &mut traks);
        assert_eq!(traks.len(), 2);
        // mvhd: next_track_ID 3; duration covers the audio: 0.1 s + 10 × 64 ms = 0.74 s.
        let mvhd = words(find(moov, "mvhd").unwrap());
        assert_eq!(mvhd[24], 3);
        assert_eq!(mvhd[4], 66_600);
        let audio = traks[1];
        let hdlr = find(audio, "hdlr").unwrap();
        assert_eq!(&hdlr[8..12], b"soun");
        let mdhd = words(find(audio, "mdhd").unwrap());
        assert_eq!((mdhd[3], mdhd[4]), (16_000, 10_240));
        let mut elst = Vec::new();
        find_all(audio, "elst", &mut elst);
        let elst = elst[0];
        // Version 1: an empty edit of 0.1 s (9000 at 90 kHz), then the media from 0.
        assert_eq!(elst[0], 1);
        assert_eq!(u64::from_be_bytes(elst[8..16].try_into().unwrap()), 9_000);
        assert_eq!(i64::from_be_bytes(elst[16..24].try_into().unwrap()), -1);
        assert_eq!(u64::from_be_bytes(elst[28..36].try_into().unwrap()), 57_600);
        let mp4a = find(audio, "mp4a").unwrap();
        assert_eq!(u16::from_be_bytes([mp4a[16], mp4a[17]]), 1, "mono");
        assert_eq!(u32::from_be_bytes(mp4a[24..28].try_into().unwrap()) >> 16, 16_000);
        assert!(mp4a.windows(2).any(|w| w == [0x14, 0x08]), "AudioSpecificConfig in esds");
        // Every audio sample is a sync sample (no stss); stts one run of 1024.
        assert!(find(audio, "stss").is_none());
        assert_eq!(words(find(audio, "stts").unwrap()), [0, 1, 10, 1024]);
        // Interleaved with the video: each audio sample is a chunk of its own here.
        assert_eq!(words(find(audio, "stco").unwrap())[1], 10);
        let stco = words(find(audio, "stco").unwrap());
        assert_eq!(&bytes[stco[2] as usize..stco[2] as usize + 3], &[0x21, 0, 0x80]);
    }

    #[test]
    fn audio_without_samples_leaves_the_file_video_only() {
        let idr = avcc(&[SPS, PPS, IDR]);
        let mut buf = Cursor::new(Vec::new());
        let mut w = Mp4Writer::new(&mut buf, track()).unwrap();
        w.add_audio(aac()).unwrap();
        w.push(sample(0, true, &idr)).unwrap();
        assert_eq!(w.finish().unwrap().audio_samples, 0);
        let bytes = buf.into_inner();
        let mut traks = Vec::new();
        find_all(&bytes, "trak", &mut traks);
        assert_eq!(traks.len(), 1);
    }

    #[test]
    fn new_parameters_get_a_sample_entry_of_their_own_from_a_key_frame() {
        const SPS2: &[u8] = &[0x67, 0x4d, 0x40, 0x1f, 0xe8, 0x80];
        let record2 = [&record()[..8], SPS2, &record()[8 + SPS.len()..]].concat();
        let small = VideoTrack { width: 160, height: 120, avcc: record2, timescale: 90000 };
        let mut buf = Cursor::new(Vec::new());
        let mut w = Mp4Writer::new(&mut buf, track()).unwrap();
        w.push(sample(0, true, &avcc(&[SPS, PPS, IDR]))).unwrap();
        w.change_parameters(track()).unwrap();
        w.push(sample(3600, false, &avcc(&[P]))).unwrap();
        w.change_parameters(small.clone()).unwrap();
        assert!(w.check_parameters(&small).is_ok());
        assert!(matches!(w.push(sample(7200, false, &avcc(&[P]))), Err(Mp4Error::FirstNotKeyframe)));
        assert!(matches!(w.push(sample(7200, true, &avcc(&[SPS, PPS, IDR]))), Err(Mp4Error::ParametersChanged(_))));
        w.push(sample(7200, true, &avcc(&[SPS2, PPS, IDR]))).unwrap();
        w.push(sample(10800, false, &avcc(&[P]))).unwrap();
        w.change_parameters(track()).unwrap();
        w.push(sample(14400, true, &avcc(&[IDR]))).unwrap();
        w.finish().unwrap();
        let bytes = buf.into_inner();
        let moov = &bytes[top_level(&bytes)[3].1..];
        let stsd = find(moov, "stsd").unwrap();
        assert_eq!(words(&stsd[..8]), [0, 2], "two entries: the first parameters are used again");
        // Chunks: [IDR P] under 1, [IDR P] under 2, [IDR] under 1.
        assert_eq!(words(find(moov, "stsc").unwrap()), [0, 3, 1, 2, 1, 2, 2, 2, 3, 1, 1]);
    }

    #[test]
    fn starts_at_the_outputs_position() {
        let mut buf = Cursor::new(vec![0xaa; 10]);
        buf.set_position(10);
        let mut w = Mp4Writer::new(&mut buf, track()).unwrap();
        w.push(sample(0, true, &avcc(&[IDR]))).unwrap();
        let summary = w.finish().unwrap();
        let bytes = buf.into_inner();
        assert_eq!(summary.bytes as usize, bytes.len() - 10);
        let boxes = top_level(&bytes[10..]);
        let moov = &bytes[10 + boxes[3].1..];
        // Chunk offsets are positions in the output, not in the MP4 alone.
        assert_eq!(words(find(moov, "stco").unwrap()), [0, 1, 10 + boxes[2].1 as u32 + 8]);
        // Only sample, all key frames: 1/25 s, no stss.
        assert_eq!(words(find(moov, "stts").unwrap()), [0, 1, 1, 3600]);
        assert!(find(moov, "stss").is_none());
    }

    #[test]
    fn gaps_are_shortened_to_the_maximum_sample_duration() {
        let mut buf = Cursor::new(Vec::new());
        let mut w = Mp4Writer::new(&mut buf, track()).unwrap();
        let idr = avcc(&[IDR]);
        for (pts, key) in [(0, true), (3600, false), (3600 + 10 * 90000, true), (3600 + 10 * 90000 + 3600, false)] {
            w.push(sample(pts, key, &idr)).unwrap();
        }
        let s = w.finish().unwrap();
        assert_eq!(s.gaps, 1);
        assert_eq!(s.gap_ticks_removed, 10 * 90000 - 90000);
        assert_eq!(s.duration_ticks, 3600 + 90000 + 3600 + 3600);
        let bytes = buf.into_inner();
        assert_eq!(words(find(&bytes[top_level(&bytes)[3].1..], "stts").unwrap()), [0, 3, 1, 3600, 1, 90000, 2, 3600]);

        // A custom limit; the last sample after a gap keeps the clamped duration.
        let mut w = writer().with_max_sample_duration(45000);
        w.push(sample(0, true, &idr)).unwrap();
        w.push(sample(i64::MAX, true, &idr)).unwrap();
        let s = w.finish().unwrap();
        assert_eq!((s.gaps, s.duration_ticks), (1, 90000));
        assert_eq!(s.gap_ticks_removed, i64::MAX as u64 - 45000);
    }

    #[test]
    fn rejections_leave_the_writer_usable() {
        let mut w = writer();
        let idr = avcc(&[IDR]);
        let p = avcc(&[P]);
        assert!(matches!(w.push(sample(0, false, &p)), Err(Mp4Error::FirstNotKeyframe)));
        w.push(sample(100, true, &idr)).unwrap();
        for pts in [100, 99, i64::MIN] {
            let err = w.push(sample(pts, false, &p)).unwrap_err();
            assert!(matches!(err, Mp4Error::PtsNotIncreasing { index: 1, previous: 100, .. }), "{err}");
            assert!(err.is_rejection());
        }
        for bad in [&[][..], &[0, 0, 0], &[0, 0, 0, 9, 0x41]] {
            let err = w.push(sample(200, false, bad)).unwrap_err();
            assert!(matches!(err, Mp4Error::InvalidSample { index: 1, .. }), "{err}");
        }
        let new_sps = avcc(&[&[0x67, 0x64, 0, 0x28, 0xac], PPS, IDR]);
        assert!(matches!(w.push(sample(200, true, &new_sps)), Err(Mp4Error::ParametersChanged(_))));
        w.push(sample(200, false, &p)).unwrap();
        let s = w.finish().unwrap();
        assert_eq!((s.samples, s.duration_ticks), (2, 200));
    }

    #[test]
    fn finish_without_samples_is_an_error() {
        assert!(matches!(writer().finish(), Err(Mp4Error::Empty)));
    }

    #[test]
    fn check_parameters_compares_everything() {
        let w = writer();
        w.check_parameters(&track()).unwrap();
        let mut t = track();
        t.height = 480;
        assert!(matches!(w.check_parameters(&t), Err(Mp4Error::ParametersChanged(_))));
        let mut t = track();
        t.timescale = 1000;
        assert!(w.check_parameters(&t).is_err());
        let mut t = track();
        t.avcc.push(0);
        assert!(w.check_parameters(&t).is_err());
    }

    /// Fails every write after the first `budget` bytes.
    struct FailingWriter {
        inner: Cursor<Vec<u8>>,
        budget: usize,
    }

    impl Write for FailingWriter {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            if self.inner.get_ref().len() + buf.len() > self.budget {
                return Err(std::io::Error::other("disk full"));
            }
            self.inner.write(buf)
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Seek for FailingWriter {
        fn seek(&mut self, pos: SeekFrom) -> std::io::Result<u64> {
            self.inner.seek(pos)
        }
    }

    #[test]
    fn io_errors_poison_the_writer() {
        let out = FailingWriter { inner: Cursor::new(Vec::new()), budget: 100 };
        let mut w = Mp4Writer::new(out, track()).unwrap();
        let big = avcc(&[&[0x65; 200]]);
        assert!(matches!(w.push(sample(0, true, &big)), Err(Mp4Error::Io(_))));
        assert!(matches!(w.push(sample(1, true, &avcc(&[IDR]))), Err(Mp4Error::Poisoned)));
        assert!(matches!(w.finish(), Err(Mp4Error::Poisoned)));
        let tiny = FailingWriter { inner: Cursor::new(Vec::new()), budget: 4 };
        assert!(matches!(Mp4Writer::new(tiny, track()), Err(Mp4Error::Io(_))));
    }

    #[test]
    fn hostile_input_never_panics() {
        let mut rng = fastrand::Rng::with_seed(0x6d70_3478);
        let good = record();
        for round in 0..3000 {
            // Random avcC: fully random, or a valid one with a few bytes changed or cut.
            let avcc_bytes = match round % 3 {
                0 => (0..rng.usize(0..64)).map(|_| rng.u8(..)).collect(),
                1 => {
                    let mut r = good.clone();
                    for _ in 0..rng.usize(1..4) {
                        let i = rng.usize(..r.len());
                        r[i] = rng.u8(..);
                    }
                    r
                }
                _ => good[..rng.usize(..=good.len())].to_vec(),
            };
            let t = VideoTrack { width: rng.u32(..), height: rng.u32(..), avcc: avcc_bytes, timescale: rng.u32(..) };
            let _ = Mp4Writer::new(Cursor::new(Vec::new()), t);

            // Valid track, random frames and timestamps.
            let mut w = writer();
            if rng.bool() {
                w = w.with_max_sample_duration(rng.u32(..));
            }
            for _ in 0..rng.usize(0..8) {
                let mut data: Vec<u8> = (0..rng.usize(0..40)).map(|_| rng.u8(..)).collect();
                if rng.bool() && data.len() >= 4 {
                    // Make the first length prefix plausible so checks go deeper.
                    let n = (data.len() - 4) as u32;
                    data[..4].copy_from_slice(&n.to_be_bytes());
                }
                let pts = if rng.bool() { rng.i64(..) } else { rng.i64(-5..5) };
                let _ = w.push(sample(pts, rng.bool(), &data));
            }
            let _ = w.finish();
        }
    }
}
