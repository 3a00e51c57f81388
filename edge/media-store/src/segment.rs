//! Segment files: a 16-byte header (magic, format version, flags), for an encrypted segment a
//! 16-byte salt, then records back to back. A segment is named after the sequence number of
//! its first record: `{first_seq:020}.seg`.
//!
//! A *recycled* segment reuses the file of a segment retention retired from the same log
//! (flag [`FLAG_RECYCLED`]): appends then overwrite blocks the file system already counts as
//! written, so a sync writes data only, no extent metadata. What follows its valid records is
//! the old segment's data: records of the same log with lower sequence numbers, which the
//! in-sequence check of every scan rejects, and which [`torn_bytes`] does not count as torn.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use crate::StoreError;
use crate::crypto::MediaKey;
use crate::digest::{ContentHasher, content_hash, content_hasher};
use crate::record::{self, Invalid, RECORD_HEADER_LEN, Record};

/// Magic bytes at the start of every segment.
pub(crate) const MAGIC: [u8; 8] = *b"CONVOYSG";
/// The segment format version this build writes and reads.
pub(crate) const FORMAT_VERSION: u32 = 1;
/// Bytes in a segment header (without the salt of an encrypted segment).
pub(crate) const SEGMENT_HEADER_LEN: u64 = 16;
/// Header flag: media payloads are encrypted; a 16-byte salt follows the header.
const FLAG_ENCRYPTED: u32 = 1;
/// Header flag: an archive copy thinned to key frames; sequence numbers may skip.
const FLAG_THINNED: u32 = 2;
/// Header flag: the file held an older segment of the same log; stale records follow the end.
const FLAG_RECYCLED: u32 = 4;
/// How far past a recycled segment's valid end [`torn_bytes`] looks for the old records.
const STALE_SEARCH_BYTES: u64 = 16 << 20;
/// At most this many checksums are tried while looking for the old records.
const STALE_SEARCH_CHECKS: usize = 4096;
/// The page size the end-of-records marker of a recycled segment is aligned to.
const PAGE: u64 = 4096;
/// Zeros for that marker.
pub(crate) static ZEROS: [u8; PAGE as usize] = [0; PAGE as usize];

/// Where the zeros written after a recycled segment's last record (ending at `end`) stop: the
/// next page boundary after `end`.
pub(crate) fn fill_end(end: u64) -> u64 {
    (end / PAGE + 1) * PAGE
}
const SALT_LEN: u64 = 16;
const SUFFIX: &str = ".seg";

/// The bytes before a segment's first record: the header, and the salt if encrypted.
pub(crate) fn header(salt: Option<[u8; 16]>) -> Vec<u8> {
    header_with(salt, false)
}

/// [`header`], optionally flagged as a thinned archive copy.
pub(crate) fn header_with(salt: Option<[u8; 16]>, thinned: bool) -> Vec<u8> {
    header_flags(salt, if thinned { FLAG_THINNED } else { 0 })
}

/// [`header`] of a segment written into a retired segment's file.
pub(crate) fn recycled_header(salt: Option<[u8; 16]>) -> Vec<u8> {
    header_flags(salt, FLAG_RECYCLED)
}

fn header_flags(salt: Option<[u8; 16]>, flags: u32) -> Vec<u8> {
    let mut h = Vec::with_capacity(32);
    h.extend_from_slice(&MAGIC);
    h.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    let flags = if salt.is_some() { FLAG_ENCRYPTED } else { 0 } | flags;
    h.extend_from_slice(&flags.to_le_bytes());
    if let Some(salt) = salt {
        h.extend_from_slice(&salt);
    }
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
    hasher: Option<ContentHasher>,
    hash_before_seal: Option<[u8; 32]>,
    header: Vec<u8>,
    salt: Option<[u8; 16]>,
    thinned: bool,
    recycled: bool,
    key: Option<MediaKey>,
}

impl SegmentReader {
    /// Opens a segment and checks its header.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        Self::open_at(path, 0)
    }

    /// Opens a segment, checks its header and starts reading at `offset` (a record boundary
    /// from the index; 0 for the first record).
    pub fn open_at(path: &Path, offset: u64) -> Result<Self, StoreError> {
        let file = File::open(path).map_err(StoreError::io("open", path))?;
        let file_len = file.metadata().map_err(StoreError::io("stat", path))?.len();
        let mut file = BufReader::with_capacity(256 * 1024, file);
        let bad = || StoreError::BadHeader { path: path.to_owned() };
        let mut h = [0u8; SEGMENT_HEADER_LEN as usize];
        if file_len < SEGMENT_HEADER_LEN || file.read_exact(&mut h).is_err() {
            return Err(bad());
        }
        let [m @ .., v0, v1, v2, v3, f0, f1, f2, f3] = h;
        let flags = u32::from_le_bytes([f0, f1, f2, f3]);
        if m != MAGIC
            || u32::from_le_bytes([v0, v1, v2, v3]) != FORMAT_VERSION
            || flags & !(FLAG_ENCRYPTED | FLAG_THINNED | FLAG_RECYCLED) != 0
        {
            return Err(bad());
        }
        let mut header = h.to_vec();
        let mut salt = None;
        if flags & FLAG_ENCRYPTED != 0 {
            let mut s = [0u8; SALT_LEN as usize];
            if file_len < SEGMENT_HEADER_LEN + SALT_LEN || file.read_exact(&mut s).is_err() {
                return Err(bad());
            }
            header.extend_from_slice(&s);
            salt = Some(s);
        }
        let data_start = header.len() as u64;
        if offset > data_start {
            if offset > file_len {
                return Err(StoreError::BadOffset { path: path.to_owned(), offset });
            }
            file.seek_relative((offset - data_start) as i64).map_err(StoreError::io("seek", path))?;
        }
        Ok(SegmentReader {
            file,
            path: path.to_owned(),
            offset: offset.max(data_start),
            file_len,
            stop: None,
            buf: Vec::new(),
            hasher: None,
            hash_before_seal: None,
            header,
            salt,
            thinned: flags & FLAG_THINNED != 0,
            recycled: flags & FLAG_RECYCLED != 0,
            key: None,
        })
    }

    /// Decrypts media payloads of an encrypted segment with `key` as they are read (without a
    /// key they come out still encrypted, which is enough to verify and index).
    pub fn with_key(mut self, key: Option<MediaKey>) -> Self {
        self.key = key;
        self
    }

    /// Where the first record starts (after the header and any salt).
    pub fn data_start(&self) -> u64 {
        self.header.len() as u64
    }

    /// The salt of an encrypted segment.
    pub fn salt(&self) -> Option<[u8; 16]> {
        self.salt
    }

    /// Whether this is an archive copy thinned to key frames.
    pub fn thinned(&self) -> bool {
        self.thinned
    }

    /// Whether the file held an older segment of the same log (see the module docs).
    pub fn recycled(&self) -> bool {
        self.recycled
    }

    /// The header bytes (with any salt), as they start the file.
    pub fn header_bytes(&self) -> &[u8] {
        &self.header
    }

    /// The on-disk bytes of the record `next_record` returned last (header and body).
    pub fn last_record_bytes(&self) -> &[u8] {
        &self.buf
    }

    /// The byte offset just past the last valid record read so far.
    pub fn valid_len(&self) -> u64 {
        self.offset
    }

    /// The file's length when it was opened.
    pub fn file_len(&self) -> u64 {
        self.file_len
    }

    /// Whether reading stopped at bytes that are not a valid record (rather than at the end
    /// of the file). Zeros of a pre-allocated segment's unwritten tail count as invalid here;
    /// [`trailing_garbage`] tells the two apart.
    pub fn stopped_at_invalid(&self) -> bool {
        self.stop.is_some()
    }

    /// Hashes (BLAKE3) the segment's bytes as records are read, for checking a seal. Call
    /// right after [`SegmentReader::open`].
    pub fn hashing(mut self) -> Self {
        let mut h = content_hasher();
        h.update(&self.header);
        self.hasher = Some(h);
        self
    }

    /// With [`SegmentReader::hashing`]: the hash of the bytes before the seal record if one
    /// was read, else of every valid byte read so far.
    pub fn content_hash(&self) -> Option<[u8; 32]> {
        self.hash_before_seal.or_else(|| self.hasher.as_ref().map(content_hash))
    }

    /// With [`SegmentReader::hashing`]: the running hash over the valid bytes read so far,
    /// to continue hashing while appending.
    pub fn into_hasher(self) -> Option<ContentHasher> {
        self.hasher
    }

    /// The byte offset where the next record starts.
    pub fn offset(&self) -> u64 {
        self.offset
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
        self.file.read_exact(&mut self.buf).map_err(StoreError::io("read", &self.path))?;
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
        self.file.read_exact(&mut self.buf[RECORD_HEADER_LEN..]).map_err(StoreError::io("read", &self.path))?;
        match record::decode(&self.buf) {
            Ok(mut r) => {
                self.offset += (RECORD_HEADER_LEN + len) as u64;
                if let Some(h) = &mut self.hasher {
                    if matches!(r.1, Record::Seal(_) | Record::ThinnedSeal(_)) {
                        self.hash_before_seal = Some(content_hash(h));
                    }
                    h.update(&self.buf);
                }
                if let (Some(key), Some(salt)) = (&self.key, &self.salt) {
                    key.decrypt(salt, r.0, &mut r.1)
                        .map_err(|_| StoreError::Decrypt { path: self.path.clone(), seq: r.0 })?;
                }
                Ok(Some(r))
            }
            Err(why) => {
                self.stop = Some(why);
                Ok(None)
            }
        }
    }
}

/// How many bytes after `valid_len` are not zero: what recovery drops as a torn or corrupt
/// tail. A pre-allocated segment's untouched tail is zeros and counts as nothing; ranges the
/// file system knows hold no data (holes, unwritten extents) are skipped without reading.
pub fn trailing_garbage(path: &Path, valid_len: u64) -> Result<u64, StoreError> {
    let len = std::fs::metadata(path).map_err(StoreError::io("stat", path))?.len();
    nonzero_extent(path, valid_len, len)
}

/// The bytes after a segment's valid end that a crash left half-written: [`trailing_garbage`]
/// for a segment in a new file. In a recycled one (`recycled_first_seq`: the segment's first
/// sequence number) an estimate: none when the zeros the writer puts after its last record
/// are intact, else the non-zero bytes up to where the retired segment's old records begin
/// (which may include the rest of one old record).
pub fn torn_bytes(path: &Path, valid_len: u64, recycled_first_seq: Option<u64>) -> Result<u64, StoreError> {
    let Some(first_seq) = recycled_first_seq else {
        return trailing_garbage(path, valid_len);
    };
    if nonzero_extent(path, valid_len, fill_end(valid_len))? == 0 {
        return Ok(0);
    }
    let end = stale_records_start(path, valid_len, first_seq)?;
    nonzero_extent(path, valid_len, end)
}

/// Where, at or after `from`, the first old record (valid, with a sequence number below
/// `first_seq`) of a recycled segment starts; the file's end if none is found nearby.
fn stale_records_start(path: &Path, from: u64, first_seq: u64) -> Result<u64, StoreError> {
    use std::os::unix::fs::FileExt;
    let f = File::open(path).map_err(StoreError::io("open", path))?;
    let len = f.metadata().map_err(StoreError::io("stat", path))?.len();
    if from >= len {
        return Ok(len);
    }
    let window = (len - from).min(STALE_SEARCH_BYTES) as usize;
    let mut buf = vec![0u8; window];
    f.read_exact_at(&mut buf, from).map_err(StoreError::io("read", path))?;
    let mut checks = 0;
    let mut record = Vec::new();
    for p in 0..window {
        let Ok((body_len, _, seq)) = record::parse_header(&buf[p..]) else {
            continue;
        };
        let total = RECORD_HEADER_LEN + body_len;
        if seq >= first_seq || from + (p + total) as u64 > len {
            continue;
        }
        checks += 1;
        if checks > STALE_SEARCH_CHECKS {
            break;
        }
        let bytes = match buf.get(p..p + total) {
            Some(b) => b,
            None => {
                record.resize(total, 0);
                f.read_exact_at(&mut record, from + p as u64).map_err(StoreError::io("read", path))?;
                &record
            }
        };
        if record::decode(bytes).is_ok() {
            return Ok(from + p as u64);
        }
    }
    Ok(len)
}

/// How many bytes of `from..to` lie before the last non-zero byte in that range.
fn nonzero_extent(path: &Path, valid_len: u64, to: u64) -> Result<u64, StoreError> {
    use std::os::unix::fs::FileExt;
    let f = File::open(path).map_err(StoreError::io("open", path))?;
    let len = f.metadata().map_err(StoreError::io("stat", path))?.len().min(to);
    let mut buf = vec![0u8; 1 << 20];
    let mut pos = valid_len;
    let mut last_nonzero_end = valid_len;
    while pos < len {
        pos = match rustix::fs::seek(&f, rustix::fs::SeekFrom::Data(pos)) {
            Ok(data) => data,
            Err(rustix::io::Errno::NXIO) => break, // no data after `pos`
            Err(_) => pos,                         // no SEEK_DATA here: read everything
        };
        if pos >= len {
            break;
        }
        let n = ((len - pos) as usize).min(buf.len());
        let n = f.read_at(&mut buf[..n], pos).map_err(StoreError::io("read", path))?;
        if n == 0 {
            break;
        }
        if let Some(end) = last_nonzero(&buf[..n]) {
            last_nonzero_end = pos + end as u64;
        }
        pos += n as u64;
    }
    Ok(last_nonzero_end - valid_len)
}

/// One past the last non-zero byte of `buf`, comparing eight bytes at a time.
fn last_nonzero(buf: &[u8]) -> Option<usize> {
    let words = buf.len() / 8;
    let tail = &buf[words * 8..];
    if let Some(i) = tail.iter().rposition(|b| *b != 0) {
        return Some(words * 8 + i + 1);
    }
    let w = buf[..words * 8].chunks_exact(8).rposition(|c| u64::from_ne_bytes(c.try_into().unwrap_or([0; 8])) != 0)?;
    let word = &buf[w * 8..w * 8 + 8];
    word.iter().rposition(|b| *b != 0).map(|i| w * 8 + i + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_nonzero_finds_the_end_at_every_position() {
        for len in [0usize, 1, 7, 8, 9, 64, 100] {
            assert_eq!(last_nonzero(&vec![0u8; len]), None);
            for at in 0..len {
                let mut buf = vec![0u8; len];
                buf[at] = 3;
                assert_eq!(last_nonzero(&buf), Some(at + 1), "len {len} at {at}");
            }
        }
    }

    #[test]
    fn trailing_garbage_sees_data_after_holes() {
        use std::os::unix::fs::FileExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s");
        let f = File::create(&path).unwrap();
        f.set_len(8 << 20).unwrap();
        f.write_all_at(b"valid", 0).unwrap();
        assert_eq!(trailing_garbage(&path, 5).unwrap(), 0);
        f.write_all_at(b"xy", (6 << 20) + 10).unwrap();
        assert_eq!(trailing_garbage(&path, 5).unwrap(), (6 << 20) + 12 - 5);
    }
}
