//! Reading a camera's frames over a time range: from the key frame at or before the start
//! (with the codec parameters that apply to it) to the last frame at or before the end,
//! across sealed segments (found through the catalog) and the unsealed tail (scanned). Works
//! on a store in use by a writer, and on a copy.

use std::path::{Path, PathBuf};

use crate::StoreError;
use crate::catalog::Catalog;
use crate::crypto::MediaKey;
use crate::index::KeyFrame;
use crate::record::{MediaKind, Record};
use crate::segment::SegmentReader;
use crate::store::{catalog_path, scan_tail};
use crate::volumes::{archive_dir, segment_path_in};

/// An iterator over the records of a range: [`Record::Parameters`] and [`Record::Frame`]s of
/// video only, in order, starting with parameters; with [`read_range_with_audio`] also
/// [`Record::AudioParameters`] and audio frames.
pub struct RangeReader {
    segments: Vec<PathBuf>,
    next_segment: usize,
    reader: Option<SegmentReader>,
    pending: Vec<Record>,
    audio: bool,
    end_us: i64,
    started: bool,
    done: bool,
    key: Option<MediaKey>,
}

/// Opens a reader of `camera`'s records between `start_us` and `end_us` (µs since the Unix
/// epoch), decrypting with `key` where segments are encrypted. Without a catalog, only the
/// unsealed tail is seen: run `edge store reindex`.
pub fn read_range(
    store: &Path,
    camera: &str,
    start_us: i64,
    end_us: i64,
    key: Option<MediaKey>,
) -> Result<RangeReader, StoreError> {
    open_range(store, camera, (start_us, end_us), key, false)
}

/// [`read_range`] with the camera's audio: audio parameters (those in force at the start
/// first) and the audio frames from the first video frame on, interleaved as recorded. An
/// audio frame after `end_us` is passed over; the range ends at the first video frame after it.
pub fn read_range_with_audio(
    store: &Path,
    camera: &str,
    start_us: i64,
    end_us: i64,
    key: Option<MediaKey>,
) -> Result<RangeReader, StoreError> {
    open_range(store, camera, (start_us, end_us), key, true)
}

fn open_range(
    store: &Path,
    camera: &str,
    (start_us, end_us): (i64, i64),
    key: Option<MediaKey>,
    audio: bool,
) -> Result<RangeReader, StoreError> {
    if !crate::volumes::list_logs(store)?.iter().any(|l| l == camera) {
        return Err(StoreError::NoSuchCamera(camera.to_owned()));
    }
    let catalog = match Catalog::open_read_only(&catalog_path(store)) {
        Ok(c) => Some(c),
        Err(StoreError::Catalog(_)) => None,
        Err(e) => return Err(e),
    };
    let sealed = match &catalog {
        Some(c) => c.segments(camera)?,
        None => Vec::new(),
    };
    let tail = scan_tail(store, camera)?;
    // Nothing at or after the start: an empty range, not the lead-in to it.
    let last_us = sealed
        .iter()
        .filter_map(|s| s.time_range.map(|r| r.1))
        .chain(tail.as_ref().and_then(|(_, t)| t.time_range().map(|r| r.1)))
        .max();
    if last_us.is_none_or(|l| l < start_us) || end_us < start_us {
        return Ok(RangeReader::empty(end_us, key, audio));
    }
    // Candidate start points: the catalog's key frame at or before the start, and the tail's.
    let mut start: Option<(u64, KeyFrame)> = match &catalog {
        Some(c) => c.keyframe_at_or_before(camera, start_us)?,
        None => None,
    };
    if let Some((_, index)) = &tail
        && let Some(k) = index.keyframes.iter().rev().find(|k| k.wall_us <= start_us)
        && start.is_none_or(|(_, s)| k.wall_us >= s.wall_us)
    {
        start = Some((index.first_seq, *k));
    }
    let archive = archive_dir(store);
    let mut segments: Vec<(u64, PathBuf)> = sealed
        .iter()
        .filter(|s| s.time_range.is_some_and(|(_, e)| e >= start_us) || start.is_some_and(|(f, _)| f == s.first_seq))
        .map(|s| (s.first_seq, segment_path_in(store, archive.as_deref(), camera, s.first_seq)))
        .collect();
    if let Some((path, index)) = tail {
        segments.push((index.first_seq, path));
    }
    if let Some((first_seq, _)) = start {
        segments.retain(|(s, _)| *s >= first_seq);
    }
    let mut reader = RangeReader {
        segments: segments.iter().map(|(_, p)| p.clone()).collect(),
        next_segment: 0,
        reader: None,
        pending: Vec::new(),
        audio,
        end_us,
        started: false,
        done: segments.is_empty(),
        key,
    };
    if let Some((_, k)) = start {
        let path = reader.segments[0].clone();
        if k.parameters_offset > 0 {
            let mut p = reader.open(&path, k.parameters_offset)?;
            reader.pending.extend(p.next_record()?.map(|(_, r)| r));
        }
        if audio {
            // The catalog's key frames point at the video parameters only: the audio
            // parameters in force are the segment's last before the key frame (normally its
            // second record, written again at every segment's start).
            let mut p = reader.open(&path, 0)?;
            let mut last = None;
            while p.offset() < k.offset {
                match p.next_record()? {
                    Some((_, r @ Record::AudioParameters(_))) => last = Some(r),
                    Some(_) => {}
                    None => break,
                }
            }
            reader.pending.extend(last);
        }
        reader.reader = Some(reader.open(&path, k.offset)?);
        reader.next_segment = 1;
    }
    Ok(reader)
}

impl RangeReader {
    /// Opens a segment at `offset`, refusing an encrypted one without a key.
    fn open(&self, path: &Path, offset: u64) -> Result<SegmentReader, StoreError> {
        let r = SegmentReader::open_at(path, offset)?;
        if r.salt().is_some() && self.key.is_none() {
            return Err(StoreError::NeedKey(path.to_owned()));
        }
        Ok(r.with_key(self.key.clone()))
    }

    fn empty(end_us: i64, key: Option<MediaKey>, audio: bool) -> RangeReader {
        RangeReader {
            segments: Vec::new(),
            next_segment: 0,
            reader: None,
            pending: Vec::new(),
            audio,
            end_us,
            started: false,
            done: true,
            key,
        }
    }

    fn next_record(&mut self) -> Result<Option<Record>, StoreError> {
        loop {
            if let Some(r) = &mut self.reader {
                if let Some((_, record)) = r.next_record()? {
                    return Ok(Some(record));
                }
                self.reader = None;
            }
            let Some(path) = self.segments.get(self.next_segment).cloned() else {
                return Ok(None);
            };
            self.reader = Some(self.open(&path, 0)?);
            self.next_segment += 1;
        }
    }
}

impl Iterator for RangeReader {
    type Item = Result<Record, StoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        if !self.pending.is_empty() {
            return Some(Ok(self.pending.remove(0)));
        }
        loop {
            let record = match self.next_record() {
                Ok(Some(r)) => r,
                Ok(None) => {
                    self.done = true;
                    return None;
                }
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
            };
            match &record {
                // Metadata (and any other kind) is never part of a video or audio read.
                Record::Frame(f) if f.kind != MediaKind::Video => {
                    if self.audio && f.kind == MediaKind::Audio && self.started && f.wall_clock_us <= self.end_us {
                        return Some(Ok(record));
                    }
                }
                Record::AudioParameters(_) if self.audio => return Some(Ok(record)),
                Record::AudioParameters(_) => {}
                Record::Frame(f) if f.wall_clock_us > self.end_us => {
                    self.done = true;
                    return None;
                }
                // Without a key frame before the start, begin at the first key frame.
                Record::Frame(f) if !self.started && !f.keyframe => continue,
                Record::Frame(_) => {
                    self.started = true;
                    return Some(Ok(record));
                }
                Record::Parameters(_) => return Some(Ok(record)),
                Record::Seal(_)
                | Record::ThinnedSeal(_)
                | Record::EvidenceLock(_)
                | Record::Cursor { .. }
                | Record::Removed(_) => continue,
            }
        }
    }
}
