//! Segment files: a 16-byte header (magic, format version), then records back to back.
//! A segment is named after the sequence number of its first record: `{first_seq:020}.seg`.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use crate::StoreError;
use crate::record::{self, Invalid, RECORD_HEADER_LEN, Record};

/// Magic bytes at the start of every segment.
pub(crate) const MAGIC: [u8; 8] = *b"CONVOYSG";
/// The segment format version this build writes and reads.
pub(crate) const FORMAT_VERSION: u32 = 1;
/// Bytes in a segment header.
pub(crate) const SEGMENT_HEADER_LEN: u64 = 16;
const SUFFIX: &str = ".seg";

/// The segment header bytes.
pub(crate) fn header() -> [u8; SEGMENT_HEADER_LEN as usize] {
    let mut h = [0u8; SEGMENT_HEADER_LEN as usize];
    h[..8].copy_from_slice(&MAGIC);
    h[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    h
}

/// The file name of the segment whose first record has `first_seq`.
pub(crate) fn file_name(first_seq: u64) -> String {
    format!("{first_seq:020}{SUFFIX}")
}

/// The segments in `dir`, as `(first_seq, path)` sorted by sequence. Other files are ignored.
pub fn list_segments(dir: &Path) -> Result<Vec<(u64, PathBuf)>, StoreError> {
    let mut out = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(StoreError::io("list", dir))?;
    for entry in entries {
        let entry = entry.map_err(StoreError::io("list", dir))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(stem) = name.strip_suffix(SUFFIX) else {
            continue;
        };
        if stem.len() != 20 {
            continue;
        }
        if let Ok(seq) = stem.parse::<u64>() {
            out.push((seq, entry.path()));
        }
    }
    out.sort();
    Ok(out)
}

/// Reads a segment's records in order, stopping at the end or at the first invalid record.
pub struct SegmentReader {
    file: BufReader<File>,
    path: PathBuf,
    offset: u64,
    file_len: u64,
    stop: Option<Invalid>,
    buf: Vec<u8>,
}

impl SegmentReader {
    /// Opens a segment and checks its header.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let file = File::open(path).map_err(StoreError::io("open", path))?;
        let file_len = file.metadata().map_err(StoreError::io("stat", path))?.len();
        let mut file = BufReader::with_capacity(256 * 1024, file);
        let mut h = [0u8; SEGMENT_HEADER_LEN as usize];
        if file_len < SEGMENT_HEADER_LEN
            || file.read_exact(&mut h).is_err()
            || h[..8] != MAGIC
            || h[8..12] != FORMAT_VERSION.to_le_bytes()
        {
            return Err(StoreError::BadHeader {
                path: path.to_owned(),
            });
        }
        Ok(SegmentReader {
            file,
            path: path.to_owned(),
            offset: SEGMENT_HEADER_LEN,
            file_len,
            stop: None,
            buf: Vec::new(),
        })
    }

    /// The byte offset just past the last valid record read so far.
    pub fn valid_len(&self) -> u64 {
        self.offset
    }

    /// The file's length when it was opened.
    pub fn file_len(&self) -> u64 {
        self.file_len
    }

    /// Why reading stopped before the end of the file, if it did.
    pub fn stopped_at_invalid(&self) -> bool {
        self.stop.is_some()
    }

    /// The next valid record as `(seq, record)`, or `None` at the end of the valid records.
    pub fn next_record(&mut self) -> Result<Option<(u64, Record)>, StoreError> {
        if self.stop.is_some() || self.offset == self.file_len {
            return Ok(None);
        }
        let remaining = self.file_len - self.offset;
        if remaining < RECORD_HEADER_LEN as u64 {
            self.stop = Some(Invalid::Truncated);
            return Ok(None);
        }
        self.buf.resize(RECORD_HEADER_LEN, 0);
        self.file
            .read_exact(&mut self.buf)
            .map_err(StoreError::io("read", &self.path))?;
        let (len, _, _) = match record::parse_header(&self.buf) {
            Ok(h) => h,
            Err(why) => {
                self.stop = Some(why);
                return Ok(None);
            }
        };
        if (len as u64) > remaining - RECORD_HEADER_LEN as u64 {
            self.stop = Some(Invalid::Truncated);
            return Ok(None);
        }
        self.buf.resize(RECORD_HEADER_LEN + len, 0);
        self.file
            .read_exact(&mut self.buf[RECORD_HEADER_LEN..])
            .map_err(StoreError::io("read", &self.path))?;
        match record::decode(&self.buf) {
            Ok(r) => {
                self.offset += (RECORD_HEADER_LEN + len) as u64;
                Ok(Some(r))
            }
            Err(why) => {
                self.stop = Some(why);
                Ok(None)
            }
        }
    }
}
