//! The frames of a log since its last video key frame, read from its open segment: where a
//! live view starts at once instead of waiting for the camera's next key frame (the unit's
//! live start, `edge/src/live_start.rs`). The writer knows where they are (its tail's index);
//! anyone reads them, off the writer's thread: written bytes are readable at once from the page
//! cache, and an encrypted segment's payloads are decrypted as they are read.

use std::path::PathBuf;

use crate::crypto::MediaKey;
use crate::record::{MediaKind, Record};
use crate::segment::SegmentReader;
use crate::{Store, StoreError};

/// Where a log's last video key frame and the records after it lie in its open segment, as
/// the writer saw them (records appended later are not part of it).
#[derive(Clone)]
pub struct KeyFrameTail {
    path: PathBuf,
    /// The codec parameters record in force at the key frame (0: none in this segment).
    parameters_offset: u64,
    key_frame_offset: u64,
    /// Where the last record written so far ends.
    end: u64,
    /// The key frame's wall clock (µs since the Unix epoch).
    key_frame_wall_us: i64,
    key: Option<MediaKey>,
}

impl std::fmt::Debug for KeyFrameTail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyFrameTail")
            .field("path", &self.path)
            .field("key_frame_offset", &self.key_frame_offset)
            .field("end", &self.end)
            .finish_non_exhaustive()
    }
}

impl KeyFrameTail {
    /// The bytes of records from the key frame to the end (audio and metadata included).
    pub fn bytes(&self) -> u64 {
        self.end.saturating_sub(self.key_frame_offset)
    }

    /// The key frame's wall clock, µs since the Unix epoch.
    pub fn key_frame_wall_us(&self) -> i64 {
        self.key_frame_wall_us
    }

    /// Reads the codec parameters in force at the key frame, then the key frame and every
    /// video frame and parameters record after it up to the end, in order (audio, metadata
    /// and bookkeeping records are passed over). Empty when the segment holds no parameters
    /// for the key frame.
    pub fn read(&self) -> Result<Vec<Record>, StoreError> {
        if self.parameters_offset == 0 {
            return Ok(Vec::new());
        }
        let mut out = Vec::new();
        match self.open(self.parameters_offset)?.next_record()? {
            Some((_, r @ Record::Parameters(_))) => out.push(r),
            _ => return Err(StoreError::BadOffset { path: self.path.clone(), offset: self.parameters_offset }),
        }
        let mut reader = self.open(self.key_frame_offset)?;
        while reader.offset() < self.end {
            let Some((_, record)) = reader.next_record()? else {
                // The index said the records are there: the file changed under us.
                return Err(StoreError::BadOffset { path: self.path.clone(), offset: reader.offset() });
            };
            match record {
                Record::Frame(f) if f.kind != MediaKind::Video => {}
                r @ (Record::Frame(_) | Record::Parameters(_)) => out.push(r),
                _ => {}
            }
        }
        match out.get(1) {
            Some(Record::Frame(f)) if f.keyframe => Ok(out),
            _ => Err(StoreError::BadOffset { path: self.path.clone(), offset: self.key_frame_offset }),
        }
    }

    fn open(&self, offset: u64) -> Result<SegmentReader, StoreError> {
        let reader = SegmentReader::open_at(&self.path, offset)?;
        if reader.salt().is_some() && self.key.is_none() {
            return Err(StoreError::NeedKey(self.path.clone()));
        }
        Ok(reader.with_key(self.key.clone()))
    }
}

impl Store {
    /// Where `log`'s last video key frame and the records since lie, if its open segment
    /// holds a key frame (none when the log has no open segment or its last key frame is in
    /// an earlier, sealed one). Cheap: nothing is read here.
    pub fn key_frame_tail(&self, log: &str) -> Option<KeyFrameTail> {
        let writer = self.logs.get(log)?;
        let index = writer.tail_index()?;
        let k = index.keyframes.last()?;
        Some(KeyFrameTail {
            path: writer.tail_path()?.to_owned(),
            parameters_offset: k.parameters_offset,
            key_frame_offset: k.offset,
            end: index.len,
            key_frame_wall_us: k.wall_us,
            key: self.encryption_key(),
        })
    }
}
