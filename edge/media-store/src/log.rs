//! One camera's log: a directory of segments written in sequence. The writer appends to the
//! newest segment, which is pre-allocated and written with positioned writes; when the next
//! record would not fit, the segment is sealed (digest chain + signature), cut to its length
//! and a new one is started.
//!
//! Retention hands the log's oldest retired segment file back as a spare,
//! `{floor:020}.free` (every record in it has a sequence number below `floor`); the next new
//! segment reuses it, so that appends overwrite written blocks and a sync writes no extent
//! metadata. A recycled tail found at start is cut at its valid end and its space reserved
//! again, like a torn tail: after a power cut, records of the crashed run may sit past the
//! valid end in any order, and only zeros there guarantee that none of them is ever read as a
//! successor of the next run's records.

use std::borrow::Cow;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::StoreError;
use crate::crypto::MediaKey;
use crate::digest::{ContentHasher, chain_digest, content_hasher};
use crate::hasher::SegmentHasher;
use crate::index::{SegmentIndex, scan_segment_with_key};
use crate::record::{self, Encoded, Record, Seal};
use crate::segment::{self, SEGMENT_HEADER_LEN, torn_bytes, trailing_garbage};
use crate::signing::Signer;

/// Room kept at the end of a segment for its seal record.
const SEAL_RESERVE: u64 = 512;
/// The suffix of a retired segment file kept for reuse.
const SPARE_SUFFIX: &str = ".free";

/// The file-name-safe directory name of a log: ASCII letters, digits, `-` and `_` as they
/// are, every other byte as `%XX`.
pub fn dir_name(log: &str) -> String {
    let mut s = String::with_capacity(log.len());
    for b in log.bytes() {
        if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' {
            s.push(b as char);
        } else {
            s.push_str(&format!("%{b:02X}"));
        }
    }
    s
}

/// The log name a directory name stands for.
pub fn log_name(dir_name: &str) -> Option<String> {
    let bytes = dir_name.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = dir_name.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// What opening a log found.
#[derive(Debug, Default)]
pub struct LogRecovery {
    /// Non-zero bytes cut from the tail segment (a torn or corrupt tail).
    pub dropped_tail_bytes: u64,
    /// Tail segments removed (torn creation) or set aside as `*.corrupt`.
    pub dropped_segments: Vec<PathBuf>,
    /// Records found in the tail segment.
    pub tail_records: u64,
}

/// The open segment being appended to.
struct Tail {
    file: File,
    path: PathBuf,
    index: SegmentIndex,
    /// BLAKE3 of the segment's bytes so far, for its seal.
    hash: SegmentHasher,
    dirty: bool,
    /// Set for an encrypted segment.
    salt: Option<[u8; 16]>,
    /// The file held a retired segment.
    recycled: bool,
}

/// The writer of one log.
pub struct LogWriter {
    name: String,
    dir: PathBuf,
    segment_bytes: u64,
    tail: Option<Tail>,
    next_seq: u64,
    prev_digest: [u8; 32],
    dir_dirty: bool,
    /// Written again at the start of each new segment, so every segment can be decoded alone.
    last_parameters: Option<Record>,
    /// The same for audio: written after the video's.
    last_audio_parameters: Option<Record>,
    /// Encrypts the media payloads of new segments.
    key: Option<MediaKey>,
}

impl LogWriter {
    /// Opens the log `name` in `dir` (created if missing). `prev_digest` is the chain digest
    /// of its newest sealed segment as the catalog knows it, and `next_seq` the sequence
    /// number after it (segments may have moved to the archive). Segments before the newest
    /// must already be sealed; only the newest is scanned and repaired.
    pub(crate) fn open(
        name: &str,
        dir: &Path,
        segment_bytes: u64,
        (prev_digest, next_seq): ([u8; 32], u64),
        key: Option<MediaKey>,
    ) -> Result<(LogWriter, LogRecovery, Option<SegmentIndex>), StoreError> {
        let created = !dir.exists();
        std::fs::create_dir_all(dir).map_err(StoreError::io("create", dir))?;
        let mut recovery = LogRecovery::default();
        let mut writer = LogWriter {
            name: name.to_owned(),
            dir: dir.to_owned(),
            segment_bytes,
            tail: None,
            next_seq,
            prev_digest,
            dir_dirty: created,
            last_parameters: None,
            last_audio_parameters: None,
            key,
        };
        // Sequence numbers in a spare file must stay below every new record's.
        if let Some((floor, _)) = spare(dir)? {
            writer.next_seq = writer.next_seq.max(floor);
        }
        let mut segments = segment::list_segments(dir)?;
        let mut sealed_tail = None;
        while let Some((first_seq, path)) = segments.pop() {
            let scan = match scan_segment_with_key(&path, first_seq, writer.key.clone()) {
                Ok(scan) => scan,
                Err(StoreError::BadHeader { .. }) => {
                    let len = std::fs::metadata(&path).map_err(StoreError::io("stat", &path))?.len();
                    if len <= SEGMENT_HEADER_LEN || trailing_garbage(&path, 0)? == 0 {
                        std::fs::remove_file(&path).map_err(StoreError::io("remove", &path))?;
                    } else {
                        let aside = path.with_extension("corrupt");
                        std::fs::rename(&path, &aside).map_err(StoreError::io("rename", &path))?;
                        recovery.dropped_tail_bytes += len;
                    }
                    recovery.dropped_segments.push(path);
                    writer.dir_dirty = true;
                    continue;
                }
                Err(e) => return Err(e),
            };
            let valid_len = scan.index.len;
            writer.last_parameters = scan.index.last_parameters.clone().map(Record::Parameters);
            writer.last_audio_parameters = scan.index.last_audio_parameters.clone().map(Record::AudioParameters);
            recovery.tail_records = scan.index.records;
            writer.next_seq = scan.index.next_seq();
            if let Some(seal) = &scan.index.seal {
                // Sealed, possibly before it was cut to length: cut it now.
                if scan.file_len > valid_len {
                    recovery.dropped_tail_bytes += torn_bytes(&path, valid_len, scan.recycled.then_some(first_seq))?;
                    cut(&path, valid_len)?;
                }
                writer.prev_digest = seal.digest;
                sealed_tail = Some(scan.index);
                break;
            }
            let recycled = scan.recycled.then_some(first_seq);
            let garbage = if scan.stopped_at_invalid { torn_bytes(&path, valid_len, recycled)? } else { 0 };
            let file = OpenOptions::new().read(true).write(true).open(&path).map_err(StoreError::io("open", &path))?;
            recovery.dropped_tail_bytes += garbage;
            // A recycled tail is cut like a torn one, whatever follows its valid records (see
            // the module docs).
            if garbage > 0 || scan.recycled {
                // Cut the torn tail and re-reserve the space, so that what follows is zeros.
                file.set_len(valid_len).map_err(StoreError::io("truncate", &path))?;
                preallocate(&file, &path, segment_bytes)?;
                file.sync_all().map_err(StoreError::io("sync", &path))?;
            }
            let content = match scan.hasher {
                Some(h) => h,
                None => rehash(&path, valid_len)?,
            };
            if scan.salt.is_some() && writer.key.is_none() {
                return Err(StoreError::NeedKey(path));
            }
            writer.tail = Some(Tail {
                file,
                path,
                index: scan.index,
                hash: SegmentHasher::new(content, valid_len),
                dirty: false,
                salt: scan.salt,
                recycled: scan.recycled,
            });
            break;
        }
        Ok((writer, recovery, sealed_tail))
    }

    /// The log's name (the camera id).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The sequence number the next record gets.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// The unsealed segment's index, if there is one.
    pub fn tail_index(&self) -> Option<&SegmentIndex> {
        self.tail.as_ref().map(|t| &t.index)
    }

    /// The unsealed segment's path, if there is one.
    pub fn tail_path(&self) -> Option<&Path> {
        self.tail.as_ref().map(|t| t.path.as_path())
    }

    /// Appends `record`. If the segment is full it is sealed first, and its index is returned
    /// for the catalog. Returns the record's sequence number.
    pub fn append(&mut self, record: &Record, signer: &Signer) -> Result<(u64, Option<SegmentIndex>), StoreError> {
        let mut bytes = self.encode_for_disk(record)?;
        let mut sealed = None;
        if let Some(t) = &self.tail
            && t.index.records > 0
            && t.index.len + bytes.len() as u64 + SEAL_RESERVE > self.segment_bytes
        {
            sealed = Some(self.seal(signer)?);
        }
        if self.tail.is_none() {
            self.start_segment()?;
            if !matches!(record, Record::Parameters(_))
                && let Some(p) = self.last_parameters.take()
            {
                self.write(&p)?;
                self.last_parameters = Some(p);
            }
            if !matches!(record, Record::AudioParameters(_))
                && let Some(p) = self.last_audio_parameters.take()
            {
                self.write(&p)?;
                self.last_audio_parameters = Some(p);
            }
            // A new segment (new salt) or a new sequence number: encode again.
            bytes = self.encode_for_disk(record)?;
        }
        match record {
            Record::Parameters(_) => self.last_parameters = Some(record.clone()),
            Record::AudioParameters(_) => self.last_audio_parameters = Some(record.clone()),
            _ => {}
        }
        let seq = self.write_encoded(record, bytes)?;
        Ok((seq, sealed))
    }

    fn write(&mut self, record: &Record) -> Result<u64, StoreError> {
        let bytes = self.encode_for_disk(record)?;
        self.write_encoded(record, bytes)
    }

    /// Encodes `record` as the next record of the open segment (or of a new one, when none
    /// is open), its payload encrypted if the segment is. A frame's data is not copied unless
    /// it is encrypted.
    fn encode_for_disk<'a>(&self, record: &'a Record) -> Result<Encoded<'a>, StoreError> {
        let seq = self.next_seq;
        let salt = match &self.tail {
            Some(t) => t.salt,
            None => self.key.as_ref().map(|_| [0; 16]),
        };
        match (record, salt.zip(self.key.as_ref())) {
            (Record::Frame(f), None) => record::encode_frame(seq, f, Cow::Borrowed(&f.data)),
            (Record::Frame(f), Some((salt, key))) => {
                let mut data = f.data.clone();
                key.encrypt_bytes(&salt, seq, &mut data);
                record::encode_frame(seq, f, Cow::Owned(data))
            }
            (_, None) => Ok(Encoded::whole(record::encode(seq, record)?)),
            (_, Some((salt, key))) => {
                let mut r = record.clone();
                key.encrypt(&salt, seq, &mut r);
                Ok(Encoded::whole(record::encode(seq, &r)?))
            }
        }
    }

    /// Writes a record encoded with sequence number `self.next_seq`.
    fn write_encoded(&mut self, record: &Record, bytes: Encoded<'_>) -> Result<u64, StoreError> {
        let seq = self.next_seq;
        let t = self.tail.as_mut().expect("an open segment");
        let offset = t.index.len;
        // In a recycled file, zeros up to the next page boundary mark where the records end
        // (that page is written whole anyway, so this adds no device writes).
        let end = offset + bytes.len() as u64;
        let fill = if t.recycled {
            (segment::fill_end(end).min(self.segment_bytes) - end.min(self.segment_bytes)) as usize
        } else {
            0
        };
        write_all_at(&t.file, [&bytes.head, &bytes.payload, &segment::ZEROS[..fill]], offset)
            .map_err(StoreError::io("write", &t.path))?;
        t.index.observe(seq, offset, bytes.len() as u64, record);
        t.hash.update(&bytes.head);
        t.hash.update(&bytes.payload);
        t.dirty = true;
        self.next_seq += 1;
        Ok(seq)
    }

    /// Seals the open segment: appends the seal record, cuts the file to length and makes it
    /// durable. Returns the sealed segment's index. The next append starts a new segment.
    pub fn seal(&mut self, signer: &Signer) -> Result<SegmentIndex, StoreError> {
        let mut t = self.tail.take().expect("seal needs an open segment");
        let content_hash = t.hash.finish();
        let digest = chain_digest(&self.prev_digest, &content_hash);
        let seq = self.next_seq;
        let message = Seal::signed_message(&self.name, t.index.first_seq, seq, &digest);
        let seal = Record::Seal(Seal {
            content_hash,
            prev_digest: self.prev_digest,
            digest,
            signature: signer.sign(&message),
        });
        let bytes = record::encode(seq, &seal)?;
        let offset = t.index.len;
        t.file.write_all_at(&bytes, offset).map_err(StoreError::io("write", &t.path))?;
        t.index.observe(seq, offset, bytes.len() as u64, &seal);
        t.file.set_len(t.index.len).map_err(StoreError::io("truncate", &t.path))?;
        // Data, size and the cut all durable before the next segment can exist.
        t.file.sync_all().map_err(StoreError::io("sync", &t.path))?;
        crate::sync_journal::record(&t.path, t.index.len);
        self.next_seq += 1;
        self.prev_digest = digest;
        Ok(t.index)
    }

    /// Starts writing the open segment's dirty pages back, if it has any (a hint before
    /// `sync`; failures only cost the optimisation, `sync` reports real errors).
    pub(crate) fn start_writeback(&self) {
        if let Some(t) = self.tail.as_ref().filter(|t| t.dirty)
            && let Err(e) = crate::writeback::start(&t.file)
        {
            tracing::debug!("{}: sync_file_range: {e}", t.path.display());
        }
    }

    /// Waits for the writeback [`LogWriter::start_writeback`] started.
    pub(crate) fn wait_writeback(&self) {
        if let Some(t) = self.tail.as_ref().filter(|t| t.dirty)
            && let Err(e) = crate::writeback::wait(&t.file)
        {
            tracing::debug!("{}: sync_file_range: {e}", t.path.display());
        }
    }

    /// Whether anything awaits `sync`.
    pub fn is_dirty(&self) -> bool {
        self.dir_dirty || self.tail.as_ref().is_some_and(|t| t.dirty)
    }

    /// Makes appended records durable (`fdatasync`), and the directory if a segment was
    /// created or removed.
    pub fn sync(&mut self) -> Result<(), StoreError> {
        if let Some(t) = &self.tail
            && t.dirty
        {
            t.file.sync_data().map_err(StoreError::io("sync", &t.path))?;
        }
        if self.dir_dirty {
            sync_dir(&self.dir)?;
        }
        self.synced();
        Ok(())
    }

    /// Records that everything written is durable (after [`LogWriter::sync`], or after a
    /// `syncfs` of the whole file system did the same for every log at once).
    pub(crate) fn synced(&mut self) {
        self.dir_dirty = false;
        if let Some(t) = &mut self.tail {
            t.dirty = false;
            crate::sync_journal::record(&t.path, t.index.len);
        }
    }

    /// Retires a sealed segment (retention): with `keep_spare`, its file becomes the log's
    /// spare if it has none, else it is deleted. `floor` is the sequence number after the
    /// segment's last record. The caller has carried forward what must outlive it and removed
    /// it from the catalog. Returns the segment's length.
    pub fn remove_segment(&mut self, first_seq: u64, floor: u64, keep_spare: bool) -> Result<u64, StoreError> {
        let path = self.dir.join(segment::file_name(first_seq));
        let len = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        if keep_spare && len > 0 && spare(&self.dir)?.is_none() {
            let to = self.dir.join(spare_name(floor));
            std::fs::rename(&path, &to).map_err(StoreError::io("rename", &path))?;
            self.dir_dirty = true;
            return Ok(len);
        }
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(StoreError::io("remove", &path)(e)),
        }
        self.dir_dirty = true;
        Ok(len)
    }

    fn start_segment(&mut self) -> Result<(), StoreError> {
        let path = self.dir.join(segment::file_name(self.next_seq));
        let spare = spare(&self.dir)?.filter(|(floor, _)| *floor <= self.next_seq);
        let file = match &spare {
            Some((_, from)) => {
                OpenOptions::new().read(true).write(true).open(from).map_err(StoreError::io("open", from))?
            }
            None => OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .open(&path)
                .map_err(StoreError::io("create", &path))?,
        };
        let salt = match self.key {
            Some(_) => {
                let mut s = [0u8; 16];
                ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut s)
                    .map_err(|_| StoreError::io("random salt for", &path)(std::io::Error::other("no randomness")))?;
                Some(s)
            }
            None => None,
        };
        let header = match &spare {
            Some(_) => segment::recycled_header(salt),
            None => segment::header(salt),
        };
        file.write_all_at(&header, 0).map_err(StoreError::io("write", &path))?;
        if let Some((_, from)) = &spare {
            // The new header reaches the disk with the first records' `fdatasync`, before the
            // directory `fsync` that makes the new name durable.
            std::fs::rename(from, &path).map_err(StoreError::io("rename", from))?;
        }
        preallocate(&file, &path, self.segment_bytes)?;
        let mut content = content_hasher();
        content.update(&header);
        let index = SegmentIndex::new(self.next_seq, header.len() as u64);
        let hash = SegmentHasher::new(content, header.len() as u64);
        let recycled = spare.is_some();
        self.tail = Some(Tail { file, path, index, hash, dirty: true, salt, recycled });
        self.dir_dirty = true;
        Ok(())
    }
}

/// The file name of a spare whose records all have sequence numbers below `floor`.
fn spare_name(floor: u64) -> String {
    format!("{floor:020}{SPARE_SUFFIX}")
}

/// The log's spare file, if it has one, as `(floor, path)`.
fn spare(dir: &Path) -> Result<Option<(u64, PathBuf)>, StoreError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(StoreError::io("list", dir)(e)),
    };
    let mut best: Option<(u64, PathBuf)> = None;
    for entry in entries {
        let entry = entry.map_err(StoreError::io("list", dir))?;
        let name = entry.file_name();
        let Some(floor) = name.to_str().and_then(|n| n.strip_suffix(SPARE_SUFFIX)).and_then(|s| s.parse::<u64>().ok())
        else {
            continue;
        };
        if best.as_ref().is_none_or(|(f, _)| floor > *f) {
            best = Some((floor, entry.path()));
        }
    }
    Ok(best)
}

/// Reserves the segment's space up front, so appends neither allocate blocks nor change the
/// file size, and a full disk shows at creation. (Each `fdatasync` still writes the inode
/// once, as written data turns pre-allocated extents from unwritten to written.)
fn preallocate(file: &File, path: &Path, len: u64) -> Result<(), StoreError> {
    match rustix::fs::fallocate(file, rustix::fs::FallocateFlags::empty(), 0, len) {
        Ok(()) => Ok(()),
        // A file system without fallocate: fall back to growing as we append.
        Err(rustix::io::Errno::OPNOTSUPP) => Ok(()),
        Err(e) => Err(StoreError::io("pre-allocate", path)(e.into())),
    }
}

/// Writes both parts at `offset` with as few system calls as the kernel allows (`pwritev`).
fn write_all_at<const N: usize>(file: &File, mut parts: [&[u8]; N], mut offset: u64) -> std::io::Result<()> {
    while parts.iter().any(|p| !p.is_empty()) {
        let slices = parts.map(std::io::IoSlice::new);
        let mut n = match rustix::io::pwritev(file, &slices, offset) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => n,
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        };
        offset += n as u64;
        for part in &mut parts {
            let done = n.min(part.len());
            *part = &part[done..];
            n -= done;
        }
    }
    Ok(())
}

fn cut(path: &Path, len: u64) -> Result<(), StoreError> {
    let f = OpenOptions::new().write(true).open(path).map_err(StoreError::io("open", path))?;
    f.set_len(len).map_err(StoreError::io("truncate", path))?;
    f.sync_all().map_err(StoreError::io("sync", path))
}

fn rehash(path: &Path, len: u64) -> Result<ContentHasher, StoreError> {
    use std::io::Read;
    let mut f = File::open(path).map_err(StoreError::io("open", path))?.take(len);
    let mut h = content_hasher();
    std::io::copy(&mut f, &mut h).map_err(StoreError::io("read", path))?;
    Ok(h)
}

/// `fsync` of a directory, so that file creations and removals in it survive power loss.
pub fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(StoreError::io("sync directory", dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dir_names_round_trip() {
        for name in ["front", "rear-2", "cab_1", "../etc", "a b/c", "ünï", "%", ""] {
            let d = dir_name(name);
            assert!(d.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_%".contains(&b)), "{d}");
            assert_eq!(log_name(&d).as_deref(), Some(name));
        }
        assert_eq!(log_name("%zz"), None);
        assert_eq!(log_name("%4"), None);
    }
}
