//! A log by sequence number, for handing recordings to central: what the log holds, as spans
//! of sequence numbers with the time they cover, and the frames of a sequence range with the
//! codec parameters each needs. Works on a store in use by a writer; reads stop at the
//! durable end the writer reports, so that nothing a power cut could still take back is
//! served.

use std::path::{Path, PathBuf};

use crate::StoreError;
use crate::catalog::Catalog;
use crate::crypto::MediaKey;
use crate::index::{GAP_US, KeyFrame, SegmentIndex};
use crate::record::{MediaKind, Record, StoredAudioParameters, StoredFrame, StoredParameters};
use crate::segment::SegmentReader;
use crate::store::{catalog_path, scan_tail};
use crate::volumes::{archive_dir, segment_path_in};

/// A run of a log's sequence numbers and the time its frames cover.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldSpan {
    /// First sequence number.
    pub first_seq: u64,
    /// Last sequence number (inclusive).
    pub last_seq: u64,
    /// Wall clock of its first frame, µs since the Unix epoch.
    pub start_us: i64,
    /// Wall clock of its last frame.
    pub end_us: i64,
    /// Media bytes in it (estimated from its segment, in proportion of sequence numbers).
    pub bytes: u64,
    /// Frames in it (estimated likewise).
    pub frames: u64,
}

/// What a log holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogHoldings {
    /// Spans in increasing sequence order, none longer than the `max_span_us` asked for and
    /// none across a gap in recording.
    pub spans: Vec<HeldSpan>,
    /// Sequence ranges `[first, end)` that are gone (removed by retention).
    pub removed: Vec<(u64, u64)>,
}

/// One segment as seen for this purpose.
struct Seg {
    first_seq: u64,
    end_seq: u64,
    frames: u64,
    media_bytes: u64,
    runs: Vec<(i64, i64)>,
    keyframes: Vec<KeyFrame>,
    path: PathBuf,
}

/// A log as its writer last made it durable: what [`crate::Store::durable_logs`] returns right
/// after a sync, and what the functions here read up to.
#[derive(Debug, Clone)]
pub struct DurableLog {
    /// The log's name.
    pub log: String,
    /// The sequence number after the last durable record.
    pub end: u64,
    /// The unsealed tail segment's path and index, as durable.
    pub tail: Option<(PathBuf, SegmentIndex)>,
}

/// Where reads of a log stop: at a writer's durable snapshot, or (offline) at a sequence
/// number, scanning the tail.
#[derive(Debug, Clone, Copy)]
pub enum Limit<'a> {
    /// A running writer's durable snapshot of the log.
    Durable(&'a DurableLog),
    /// Up to this sequence number (exclusive; `None`: everything).
    Until(Option<u64>),
}

impl Limit<'_> {
    fn end(&self) -> Option<u64> {
        match self {
            Limit::Durable(d) => Some(d.end),
            Limit::Until(end) => *end,
        }
    }
}

fn segments(store: &Path, log: &str, limit: Limit<'_>) -> Result<Vec<Seg>, StoreError> {
    let catalog = match Catalog::open_read_only(&catalog_path(store)) {
        Ok(c) => Some(c),
        Err(StoreError::Catalog(_)) => None,
        Err(e) => return Err(e),
    };
    let archive = archive_dir(store);
    let mut out = Vec::new();
    if let Some(c) = &catalog {
        for row in c.segments(log)? {
            out.push(Seg {
                first_seq: row.first_seq,
                end_seq: row.first_seq + row.records,
                frames: row.frames,
                media_bytes: row.media_bytes,
                runs: c.segment_runs(log, row.first_seq)?,
                keyframes: c.segment_keyframes(log, row.first_seq)?,
                path: segment_path_in(store, archive.as_deref(), log, row.first_seq),
            });
        }
    }
    let tail = match limit {
        Limit::Durable(d) => d.tail.clone(),
        Limit::Until(_) => scan_tail(store, log)?,
    };
    if let Some((path, index)) = tail {
        let index = match limit.end() {
            Some(end) if end < index.next_seq() => truncated(&path, &index, end)?,
            _ => index,
        };
        if out.last().is_none_or(|s| s.end_seq <= index.first_seq) && index.records > 0 {
            out.push(Seg {
                first_seq: index.first_seq,
                end_seq: index.next_seq(),
                frames: index.frames,
                media_bytes: index.media_bytes,
                runs: index.runs.clone(),
                keyframes: index.keyframes.clone(),
                path,
            });
        }
    }
    Ok(out)
}

/// The index of the tail's records before sequence number `end`.
fn truncated(path: &Path, full: &SegmentIndex, end: u64) -> Result<SegmentIndex, StoreError> {
    let mut reader = SegmentReader::open(path)?;
    let mut index = SegmentIndex::new(full.first_seq, reader.data_start());
    loop {
        let offset = reader.offset();
        match reader.next_record()? {
            Some((seq, record)) if seq < end => index.observe(seq, offset, reader.offset() - offset, &record),
            _ => break,
        }
    }
    Ok(index)
}

/// What `log` holds up to `limit`, as spans of at most `max_span_us`.
pub fn holdings(store: &Path, log: &str, limit: Limit<'_>, max_span_us: i64) -> Result<LogHoldings, StoreError> {
    let segs = segments(store, log, limit)?;
    let mut out = LogHoldings::default();
    // Sequence numbers start at 0 and run on from segment to segment: every hole is what
    // retention removed.
    let mut expected = 0;
    for seg in &segs {
        if seg.first_seq > expected {
            out.removed.push((expected, seg.first_seq));
        }
        expected = seg.end_seq;
        spans_of(seg, max_span_us, &mut out.spans);
    }
    Ok(out)
}

/// Splits a segment into spans at its key frames: a new span where recording paused
/// (consecutive key frames further apart than a gap allows) or the span reached `max_span_us`.
fn spans_of(seg: &Seg, max_span_us: i64, out: &mut Vec<HeldSpan>) {
    let (Some(first_run), Some(last_run)) = (seg.runs.first(), seg.runs.last()) else {
        return;
    };
    // Span starts: (first seq, start time).
    let mut starts: Vec<(u64, i64)> = vec![(seg.first_seq, first_run.0)];
    let mut prev_kf: Option<i64> = None;
    for k in &seg.keyframes {
        let (_, start) = *starts.last().expect("one start");
        let paused = prev_kf.is_some_and(|p| k.wall_us - p > GAP_US + 10_000_000);
        if k.seq > starts.last().expect("one start").0 && (paused || k.wall_us - start >= max_span_us) {
            starts.push((k.seq, k.wall_us));
        }
        prev_kf = Some(k.wall_us);
    }
    let records = (seg.end_seq - seg.first_seq).max(1);
    for (i, &(first_seq, start_us)) in starts.iter().enumerate() {
        let (last_seq, next_start) = match starts.get(i + 1) {
            Some(&(s, t)) => (s - 1, Some(t)),
            None => (seg.end_seq - 1, None),
        };
        // The span ends where the last run that starts before the next span ends, or where
        // the next span starts if that run goes on into it (continuous recording is one run:
        // without the cut, every span of a segment would claim to last to the segment's end,
        // and time → sequence number interpolation inside it would land too early).
        let end_us = seg
            .runs
            .iter()
            .filter(|r| next_start.is_none_or(|n| r.0 < n))
            .map(|r| next_start.map_or(r.1, |n| r.1.min(n)))
            .max()
            .unwrap_or(last_run.1)
            .max(start_us);
        let share = |total: u64| total * (last_seq + 1 - first_seq) / records;
        out.push(HeldSpan {
            first_seq,
            last_seq,
            start_us,
            end_us,
            bytes: share(seg.media_bytes),
            frames: share(seg.frames),
        });
    }
}

/// A frame read by sequence number, with the codec parameters it needs.
#[derive(Debug, Clone, PartialEq)]
pub struct SeqFrame {
    /// Its sequence number in the log.
    pub seq: u64,
    /// The frame.
    pub frame: StoredFrame,
    /// The (video) parameters that precede it in the log.
    pub parameters: Option<StoredParameters>,
    /// For an audio frame (read by [`read_seqs_with_audio`]), the audio parameters that
    /// describe it; `None` for video.
    pub audio_parameters: Option<StoredAudioParameters>,
}

/// What [`read_seqs`] found.
#[derive(Debug, Clone, PartialEq)]
pub enum SeqRead {
    /// Every video frame with `from_seq <= seq < next_seq` (`next_seq: None`: up to `to_seq`);
    /// audio frames are left out, unless read by [`read_seqs_with_audio`].
    Frames {
        /// The frames, in order.
        frames: Vec<SeqFrame>,
        /// Where the range continues, when the read stopped early.
        next_seq: Option<u64>,
    },
    /// Retention removed `from_seq`; the log starts again at `available_from`.
    Gone {
        /// The first sequence number still held at or after `from_seq`.
        available_from: u64,
    },
}

/// Reads the video frames of `log` with `from_seq <= seq <= to_seq`, stopping after `max_bytes`
/// of frame data (a single larger frame still whole) and at `limit`.
pub fn read_seqs(
    store: &Path,
    log: &str,
    range: (u64, u64),
    max_bytes: u64,
    limit: Limit<'_>,
    key: Option<MediaKey>,
) -> Result<SeqRead, StoreError> {
    read_seqs_of(store, log, range, max_bytes, limit, key, false)
}

/// Like [`read_seqs`], with the range's audio frames too, in log order, each with the audio
/// parameters that describe it ([`SeqFrame::audio_parameters`]): what a central that takes audio
/// is sent.
pub fn read_seqs_with_audio(
    store: &Path,
    log: &str,
    range: (u64, u64),
    max_bytes: u64,
    limit: Limit<'_>,
    key: Option<MediaKey>,
) -> Result<SeqRead, StoreError> {
    read_seqs_of(store, log, range, max_bytes, limit, key, true)
}

fn read_seqs_of(
    store: &Path,
    log: &str,
    (from_seq, to_seq): (u64, u64),
    max_bytes: u64,
    limit: Limit<'_>,
    key: Option<MediaKey>,
    with_audio: bool,
) -> Result<SeqRead, StoreError> {
    let segs = segments(store, log, limit)?;
    let end = limit.end().unwrap_or(u64::MAX).min(to_seq.saturating_add(1));
    let Some(start) = segs.iter().position(|s| s.end_seq > from_seq) else {
        // Nothing at or after `from_seq` yet: an empty answer that covers nothing.
        return Ok(SeqRead::Frames { frames: Vec::new(), next_seq: Some(from_seq) });
    };
    if segs[start].first_seq > from_seq {
        // Sequence numbers run on from segment to segment: a hole is what retention removed.
        return Ok(SeqRead::Gone { available_from: segs[start].first_seq });
    }
    let mut frames = Vec::new();
    let mut bytes = 0u64;
    let mut parameters: Option<StoredParameters> = None;
    for seg in &segs[start..] {
        // Start at the last key frame at or before `from_seq` (its parameters with it).
        let kf = seg.keyframes.iter().rev().find(|k| k.seq <= from_seq);
        let mut audio = AudioTrack::new(seg, with_audio && kf.is_some_and(|k| k.offset > 0), &key)?;
        let mut reader = match kf {
            Some(k) => {
                if k.parameters_offset > 0 {
                    let mut p = open(&seg.path, k.parameters_offset, &key)?;
                    if let Some((_, Record::Parameters(params))) = p.next_record()? {
                        parameters = Some(params);
                    }
                }
                open(&seg.path, k.offset, &key)?
            }
            None => open(&seg.path, 0, &key)?,
        };
        while let Some((seq, record)) = reader.next_record()? {
            if seq >= end {
                let next = (end <= to_seq).then_some(end);
                return Ok(SeqRead::Frames { frames, next_seq: next });
            }
            match record {
                Record::Parameters(p) => parameters = Some(p),
                Record::AudioParameters(p) => audio.observe(seq, p),
                // Video only unless asked (a central older than protocol version 4 cannot
                // take audio; edge/media-store/DESIGN.md, "Audio"): audio records passed over.
                // ONVIF metadata stays on the unit: never sent.
                Record::Frame(f) if f.kind == MediaKind::Metadata => {}
                Record::Frame(f) if f.kind == MediaKind::Audio && !with_audio => {}
                Record::Frame(f) if seq >= from_seq => {
                    if !frames.is_empty() && bytes + f.data.len() as u64 > max_bytes {
                        return Ok(SeqRead::Frames { frames, next_seq: Some(seq) });
                    }
                    bytes += f.data.len() as u64;
                    let audio_parameters = match f.kind {
                        MediaKind::Audio => audio.parameters_of(&f, &key)?,
                        MediaKind::Video | MediaKind::Metadata => None,
                    };
                    frames.push(SeqFrame { seq, frame: f, parameters: parameters.clone(), audio_parameters });
                }
                _ => {}
            }
        }
    }
    // Read to the end of what the log holds: the range continues there later.
    let held_end = segs.last().map_or(from_seq, |s| s.end_seq).max(from_seq);
    let next = (held_end <= to_seq).then_some(held_end);
    Ok(SeqRead::Frames { frames, next_seq: next })
}

/// The audio parameters records of one segment as a read meets them. A read that starts at a
/// key frame in the middle of a segment has not met the segment's opening records, where the
/// writer repeats the audio parameters in force: those are read first (a few records). An
/// audio frame whose `parameters_seq` names a record of this segment the read has not met (the
/// camera's audio changed between the segment's start and the key frame: rare) makes one scan
/// of the segment's records up to it.
struct AudioTrack<'a> {
    seg: &'a Seg,
    /// The records met, by sequence number.
    seen: Vec<(u64, StoredAudioParameters)>,
    /// Whether the whole segment before the read's start has been scanned.
    scanned: bool,
}

/// Records read at a segment's start to find the audio parameters the writer repeats there.
const SEGMENT_HEAD_RECORDS: usize = 8;

impl<'a> AudioTrack<'a> {
    fn new(seg: &'a Seg, read_head: bool, key: &Option<MediaKey>) -> Result<AudioTrack<'a>, StoreError> {
        let mut track = AudioTrack { seg, seen: Vec::new(), scanned: false };
        if read_head {
            let mut head = open(&seg.path, 0, key)?;
            for _ in 0..SEGMENT_HEAD_RECORDS {
                match head.next_record()? {
                    Some((_, Record::Frame(_))) | None => break,
                    Some((seq, Record::AudioParameters(p))) => track.observe(seq, p),
                    Some(_) => {}
                }
            }
        }
        Ok(track)
    }

    fn observe(&mut self, seq: u64, p: StoredAudioParameters) {
        if self.seen.last().is_none_or(|(s, _)| *s < seq) {
            self.seen.push((seq, p));
        }
    }

    /// The parameters of audio frame `f`: the record its `parameters_seq` names when that is in
    /// this segment, else the last one met (the segment's opening copy of an earlier record).
    fn parameters_of(
        &mut self,
        f: &StoredFrame,
        key: &Option<MediaKey>,
    ) -> Result<Option<StoredAudioParameters>, StoreError> {
        let named = f.parameters_seq >= self.seg.first_seq && f.parameters_seq < self.seg.end_seq;
        if named && !self.scanned && !self.seen.iter().any(|(s, _)| *s == f.parameters_seq) {
            self.scanned = true;
            let mut all = open(&self.seg.path, 0, key)?;
            while let Some((seq, record)) = all.next_record()? {
                if seq > f.parameters_seq {
                    break;
                }
                if let Record::AudioParameters(p) = record
                    && !self.seen.iter().any(|(s, _)| *s == seq)
                {
                    self.seen.push((seq, p));
                }
            }
            self.seen.sort_by_key(|(s, _)| *s);
        }
        let found = match named {
            true => self.seen.iter().find(|(s, _)| *s == f.parameters_seq).or(self.seen.last()),
            false => self.seen.last(),
        };
        Ok(found.map(|(_, p)| p.clone()))
    }
}

fn open(path: &Path, offset: u64, key: &Option<MediaKey>) -> Result<SegmentReader, StoreError> {
    let r = SegmentReader::open_at(path, offset)?;
    if r.salt().is_some() && key.is_none() {
        return Err(StoreError::NeedKey(path.to_owned()));
    }
    Ok(r.with_key(key.clone()))
}
