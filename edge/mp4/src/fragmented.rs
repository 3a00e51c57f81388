//! Fragmented MP4 (fMP4, as Media Source Extensions in browsers take it): an *init segment*
//! (`ftyp` + `moov` with empty sample tables and `mvex`) and then *media segments*
//! (`moof` + `mdat`), each starting where the previous one ended on one continuous timeline.
//!
//! [`FragmentWriter`] buffers samples until a fragment is complete: at the next key frame (a
//! fragment per GOP), or after [`FragmentWriter::with_max_fragment_samples`] samples (1 for
//! live video: a fragment per frame, one frame of delay, since a sample's duration is known only
//! when the next one arrives). New codec parameters need a new init segment
//! ([`FragmentWriter::restart`]); the timeline and the fragment numbers go on across it.

use crate::avc::SampleProblem;
use crate::boxes::BoxBuf;
use crate::movie::{CheckedTrack, VIDEO_TRACK_ID, write_ftyp, write_mvhd, write_video_trak};
use crate::sample_table::SampleTable;
use crate::{Mp4Error, Sample, VideoTrack};

/// `trun` sample flags of a key frame: depends on no other sample.
const KEY_SAMPLE_FLAGS: u32 = 0x0200_0000;
/// `trun` sample flags of any other frame: depends on others, not a sync sample.
const DELTA_SAMPLE_FLAGS: u32 = 0x0101_0000;

/// One buffered sample: its data, key flag and (once the next sample came) its duration.
#[derive(Debug, Clone)]
struct Pending {
    keyframe: bool,
    data: Vec<u8>,
    duration: Option<u32>,
}

/// Turns H.264 samples into an fMP4 init segment and media segments.
///
/// Timing follows [`crate::Mp4Writer`]: the timeline starts at 0 at the first sample, sample
/// *n* lasts `pts[n+1] - pts[n]`, and a jump longer than the maximum sample duration (1 s by
/// default) is a gap shortened to it, so a player never waits on a hole. Pts must strictly
/// increase. A rejected sample ([`Mp4Error::is_rejection`]) leaves the writer unchanged.
#[derive(Debug, Clone)]
pub struct FragmentWriter {
    track: CheckedTrack,
    pending: Vec<Pending>,
    /// Decode time of the first pending sample (or of the next sample when none is pending).
    decode_time: u64,
    last_pts: Option<i64>,
    last_duration: Option<u32>,
    sequence: u32,
    max_sample_duration: u32,
    max_fragment_samples: usize,
    samples: u64,
}

impl FragmentWriter {
    /// Checks the track. Fragments end at every key frame and after 250 samples.
    pub fn new(track: VideoTrack) -> Result<Self, Mp4Error> {
        let track = CheckedTrack::new(track)?;
        let max_sample_duration = track.track.timescale;
        Ok(Self {
            track,
            pending: Vec::new(),
            decode_time: 0,
            last_pts: None,
            last_duration: None,
            sequence: 0,
            max_sample_duration,
            max_fragment_samples: 250,
            samples: 0,
        })
    }

    /// Ends a fragment after at most `n` samples (1: a fragment per frame, for live video).
    pub fn with_max_fragment_samples(mut self, n: usize) -> Self {
        self.max_fragment_samples = n.max(1);
        self
    }

    /// Sets the longest duration a sample may get, in timescale units (0 counts as 1).
    pub fn with_max_sample_duration(mut self, ticks: u32) -> Self {
        self.max_sample_duration = ticks.max(1);
        self
    }

    /// The track of the current init segment.
    pub fn track(&self) -> &VideoTrack {
        &self.track.track
    }

    /// RFC 6381 codec string of the track, e.g. `avc1.4d401e`.
    pub fn codec_string(&self) -> String {
        self.track.config.codec_string()
    }

    /// The MIME type a browser's `MediaSource.isTypeSupported` is asked about.
    pub fn mime_type(&self) -> String {
        format!("video/mp4; codecs=\"{}\"", self.codec_string())
    }

    /// Samples accepted so far (buffered ones included).
    pub fn sample_count(&self) -> u64 {
        self.samples
    }

    /// Fragments written so far.
    pub fn fragment_count(&self) -> u32 {
        self.sequence
    }

    /// Ok when `track` equals the current one; [`Mp4Error::ParametersChanged`] otherwise (then
    /// call [`FragmentWriter::restart`]).
    pub fn check_parameters(&self, track: &VideoTrack) -> Result<(), Mp4Error> {
        let ours = &self.track.track;
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

    /// The init segment: `ftyp` and `moov` (empty sample tables, `mvex`).
    pub fn init_segment(&self) -> Result<Vec<u8>, Mp4Error> {
        let mut b = BoxBuf::new();
        write_ftyp(&mut b)?;
        b.write_box(*b"moov", |b| {
            write_mvhd(b, self.track.track.timescale, 0)?;
            write_video_trak(b, &self.track, 0, |b| SampleTable::new().write_tables(b))?;
            b.write_box(*b"mvex", |b| {
                b.write_full_box(*b"trex", 0, 0, |b| {
                    b.u32(VIDEO_TRACK_ID).u32(1).u32(0).u32(0).u32(0);
                    Ok(())
                })
            })
        })?;
        Ok(b.into_bytes())
    }

    /// Accepts one sample; returns a media segment when this sample completed one (it then
    /// holds the samples before this one).
    pub fn push(&mut self, sample: Sample<'_>) -> Result<Option<Vec<u8>>, Mp4Error> {
        if self.last_pts.is_none() && !sample.keyframe {
            return Err(Mp4Error::FirstNotKeyframe);
        }
        let index = self.samples;
        if let Some(previous) = self.last_pts
            && sample.pts <= previous
        {
            return Err(Mp4Error::PtsNotIncreasing { index, previous, pts: sample.pts });
        }
        match self.track.config.check_sample(sample.data) {
            Ok(()) => {}
            Err(SampleProblem::Malformed(reason)) => return Err(Mp4Error::InvalidSample { index, reason }),
            Err(SampleProblem::ParametersChanged(why)) => return Err(Mp4Error::ParametersChanged(why)),
        }
        u32::try_from(sample.data.len()).map_err(|_| Mp4Error::TooLarge("sample larger than 4 GiB"))?;
        if let (Some(previous), Some(last)) = (self.last_pts, self.pending.last_mut()) {
            // i128: hostile pts values may be i64::MIN and i64::MAX; 0 < delta here.
            let delta = i128::from(sample.pts) - i128::from(previous);
            let duration = delta.min(i128::from(self.max_sample_duration)) as u32;
            last.duration = Some(duration);
            self.last_duration = Some(duration);
        }
        let out =
            if sample.keyframe || self.pending.len() >= self.max_fragment_samples { self.fragment()? } else { None };
        self.pending.push(Pending { keyframe: sample.keyframe, data: sample.data.to_vec(), duration: None });
        self.last_pts = Some(sample.pts);
        self.samples += 1;
        Ok(out)
    }

    /// Ends the open fragment (its last sample lasts as long as the one before it, or 1/25 s)
    /// and returns it, if any sample is buffered.
    pub fn flush(&mut self) -> Result<Option<Vec<u8>>, Mp4Error> {
        let fallback =
            self.last_duration.unwrap_or((self.track.track.timescale / 25).max(1)).min(self.max_sample_duration);
        if let Some(last) = self.pending.last_mut()
            && last.duration.is_none()
        {
            last.duration = Some(fallback);
        }
        self.fragment()
    }

    /// New codec parameters: ends the open fragment (returned first) and returns the new init
    /// segment. The next sample must be a key frame; the timeline goes on where it was.
    pub fn restart(&mut self, track: VideoTrack) -> Result<(Option<Vec<u8>>, Vec<u8>), Mp4Error> {
        let checked = CheckedTrack::new(track)?;
        let last = self.flush()?;
        self.track = checked;
        self.last_pts = None;
        self.max_sample_duration = self.max_sample_duration.min(self.track.track.timescale.max(1));
        Ok((last, self.init_segment()?))
    }

    /// The decode time (timescale units from the first sample) where the next fragment starts.
    pub fn decode_time(&self) -> u64 {
        self.decode_time
    }

    /// Writes the pending samples (all with durations) as `moof` + `mdat`.
    fn fragment(&mut self) -> Result<Option<Vec<u8>>, Mp4Error> {
        if self.pending.is_empty() {
            return Ok(None);
        }
        let sequence = self.sequence.checked_add(1).ok_or(Mp4Error::TooLarge("more than 2^32-1 fragments"))?;
        let count = u32::try_from(self.pending.len()).map_err(|_| Mp4Error::TooLarge("fragment sample count"))?;
        let media: usize = self.pending.iter().map(|p| p.data.len()).sum();
        let mdat_size = u32::try_from(8 + media).map_err(|_| Mp4Error::TooLarge("fragment larger than 4 GiB"))?;
        let mut data_offset_at = 0usize;
        let mut b = BoxBuf::new();
        b.write_box(*b"moof", |b| {
            b.write_full_box(*b"mfhd", 0, 0, |b| {
                b.u32(sequence);
                Ok(())
            })?;
            b.write_box(*b"traf", |b| {
                // 0x020000: default-base-is-moof (data offsets count from the moof's start).
                b.write_full_box(*b"tfhd", 0, 0x02_0000, |b| {
                    b.u32(VIDEO_TRACK_ID);
                    Ok(())
                })?;
                b.write_full_box(*b"tfdt", 1, 0, |b| {
                    b.u64(self.decode_time);
                    Ok(())
                })?;
                // data-offset, sample duration, size and flags present.
                b.write_full_box(*b"trun", 0, 0x00_0701, |b| {
                    b.u32(count);
                    data_offset_at = b.len();
                    b.u32(0);
                    for p in &self.pending {
                        let flags = if p.keyframe { KEY_SAMPLE_FLAGS } else { DELTA_SAMPLE_FLAGS };
                        b.u32(p.duration.unwrap_or(1)).u32(p.data.len() as u32).u32(flags);
                    }
                    Ok(())
                })
            })
        })?;
        let moof_len = b.len();
        let data_offset = u32::try_from(moof_len + 8).map_err(|_| Mp4Error::TooLarge("moof larger than 4 GiB"))?;
        let mut out = b.into_bytes();
        out[data_offset_at..data_offset_at + 4].copy_from_slice(&data_offset.to_be_bytes());
        out.reserve(8 + media);
        out.extend_from_slice(&mdat_size.to_be_bytes());
        out.extend_from_slice(b"mdat");
        for p in self.pending.drain(..) {
            self.decode_time += u64::from(p.duration.unwrap_or(1));
            out.extend_from_slice(&p.data);
        }
        self.sequence = sequence;
        Ok(Some(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::avc::tests::record;

    fn track() -> VideoTrack {
        VideoTrack { width: 320, height: 240, avcc: record(), timescale: 90_000 }
    }

    /// One IDR slice NAL unit (or a non-IDR one), 4-byte length prefixed.
    fn frame(key: bool) -> Vec<u8> {
        let nal = if key { [0x65, 0x88, 0x84] } else { [0x41, 0x9a, 0x02] };
        [&3u32.to_be_bytes()[..], &nal].concat()
    }

    /// Top-level boxes of `bytes`: (type, offset, size).
    fn boxes(bytes: &[u8]) -> Vec<([u8; 4], usize, usize)> {
        let mut out = Vec::new();
        let mut at = 0;
        while at + 8 <= bytes.len() {
            let size = u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
            out.push((bytes[at + 4..at + 8].try_into().unwrap(), at, size));
            assert!(size >= 8, "box at {at} has size {size}");
            at += size;
        }
        assert_eq!(at, bytes.len(), "boxes cover the bytes exactly");
        out
    }

    fn find(bytes: &[u8], kind: &[u8; 4]) -> usize {
        bytes.windows(4).position(|w| w == kind).unwrap_or_else(|| panic!("no {}", String::from_utf8_lossy(kind)))
    }

    fn u32_at(bytes: &[u8], at: usize) -> u32 {
        u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap())
    }

    fn tfdt(fragment: &[u8]) -> u64 {
        let at = find(fragment, b"tfdt") + 8;
        u64::from_be_bytes(fragment[at..at + 8].try_into().unwrap())
    }

    #[test]
    fn init_segment_is_ftyp_then_moov_with_mvex() {
        let w = FragmentWriter::new(track()).unwrap();
        let init = w.init_segment().unwrap();
        let top: Vec<_> = boxes(&init).into_iter().map(|b| b.0).collect();
        assert_eq!(top, [*b"ftyp", *b"moov"]);
        let trex = find(&init, b"trex");
        assert_eq!(u32_at(&init, trex + 8), VIDEO_TRACK_ID);
        assert!(find(&init, b"mvex") < trex);
        assert!(find(&init, b"avcC") > 0);
        assert_eq!(w.mime_type(), format!("video/mp4; codecs=\"{}\"", w.codec_string()));
    }

    #[test]
    fn fragments_end_at_key_frames_and_carry_durations_and_offsets() {
        let mut w = FragmentWriter::new(track()).unwrap();
        let mut out = Vec::new();
        for i in 0..10i64 {
            if let Some(f) =
                w.push(Sample { pts: 1000 + i * 3600, keyframe: i % 5 == 0, data: &frame(i % 5 == 0) }).unwrap()
            {
                out.push(f);
            }
        }
        assert_eq!(out.len(), 1, "the second key frame closed the first GOP");
        out.push(w.flush().unwrap().unwrap());
        assert!(w.flush().unwrap().is_none(), "nothing left");
        assert_eq!((tfdt(&out[0]), tfdt(&out[1])), (0, 5 * 3600));
        for (n, f) in out.iter().enumerate() {
            let top = boxes(f);
            assert_eq!((top[0].0, top[1].0), (*b"moof", *b"mdat"));
            assert_eq!(u32_at(f, find(f, b"mfhd") + 8), n as u32 + 1, "sequence numbers from 1");
            let trun = find(f, b"trun");
            assert_eq!(u32_at(f, trun + 4), 0x0000_0701);
            assert_eq!(u32_at(f, trun + 8), 5, "samples");
            let data_offset = u32_at(f, trun + 12) as usize;
            assert_eq!(data_offset, top[1].1 + 8, "data starts right after the mdat header");
            assert_eq!(&f[data_offset..data_offset + 7], &frame(true)[..], "a GOP starts with its key frame");
            assert_eq!(u32_at(f, trun + 16), 3600, "duration");
            assert_eq!(u32_at(f, trun + 24), KEY_SAMPLE_FLAGS);
            assert_eq!(u32_at(f, trun + 28 + 8), DELTA_SAMPLE_FLAGS);
        }
        assert_eq!(w.decode_time(), 10 * 3600, "the last sample lasts as long as the one before");
    }

    #[test]
    fn live_mode_writes_a_fragment_per_frame_one_frame_late() {
        let mut w = FragmentWriter::new(track()).unwrap().with_max_fragment_samples(1);
        assert!(w.push(Sample { pts: 0, keyframe: true, data: &frame(true) }).unwrap().is_none());
        for i in 1..5 {
            let f = w.push(Sample { pts: i * 3000, keyframe: false, data: &frame(false) }).unwrap().unwrap();
            assert_eq!(tfdt(&f), (i as u64 - 1) * 3000);
            assert_eq!(u32_at(&f, find(&f, b"trun") + 8), 1);
        }
        assert_eq!(w.fragment_count(), 4);
    }

    #[test]
    fn rejections_leave_the_writer_usable() {
        let mut w = FragmentWriter::new(track()).unwrap();
        assert!(matches!(
            w.push(Sample { pts: 0, keyframe: false, data: &frame(false) }),
            Err(Mp4Error::FirstNotKeyframe)
        ));
        w.push(Sample { pts: 10, keyframe: true, data: &frame(true) }).unwrap();
        let err = w.push(Sample { pts: 10, keyframe: false, data: &frame(false) }).unwrap_err();
        assert!(err.is_rejection() && matches!(err, Mp4Error::PtsNotIncreasing { .. }));
        let err = w.push(Sample { pts: 20, keyframe: false, data: &[0, 0, 0, 9, 1] }).unwrap_err();
        assert!(matches!(err, Mp4Error::InvalidSample { .. }));
        w.push(Sample { pts: i64::MAX, keyframe: false, data: &frame(false) }).unwrap();
        let f = w.flush().unwrap().unwrap();
        assert_eq!(u32_at(&f, find(&f, b"trun") + 8), 2);
        assert_eq!(u32_at(&f, find(&f, b"trun") + 16), 90_000, "a huge jump is shortened to the maximum");
    }

    #[test]
    fn new_parameters_give_a_new_init_segment_and_the_timeline_goes_on() {
        let mut w = FragmentWriter::new(track()).unwrap();
        for i in 0..3 {
            w.push(Sample { pts: i * 3600, keyframe: i == 0, data: &frame(i == 0) }).unwrap();
        }
        let mut other = track();
        other.width = 640;
        assert!(matches!(w.check_parameters(&other), Err(Mp4Error::ParametersChanged(_))));
        assert!(w.check_parameters(&track()).is_ok());
        let (last, init) = w.restart(other.clone()).unwrap();
        assert!(last.is_some(), "the open fragment comes out first");
        assert_eq!(w.track(), &other);
        let stsd = find(&init, b"stsd");
        let avc1 = stsd + find(&init[stsd..], b"avc1"); // ftyp names avc1 too, as a brand
        assert_eq!(&init[avc1 + 4 + 24..avc1 + 4 + 26], &640u16.to_be_bytes());
        // The new camera clock starts anywhere; the timeline does not.
        w.push(Sample { pts: -5, keyframe: true, data: &frame(true) }).unwrap();
        let f = w.flush().unwrap().unwrap();
        assert_eq!(tfdt(&f), 3 * 3600);
        assert_eq!(u32_at(&f, find(&f, b"mfhd") + 8), 2, "fragment numbers go on");
    }
}
