//! Hashing segments off the write path. BLAKE3 over every recorded byte costs about a third of
//! the writer's CPU; a thread of its own reads freshly written ranges back (from the page
//! cache) and hashes them, so appends cost only the write. A seal asks for the hash up to its
//! own offset and waits for it.

use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, Sender, SyncSender};
use std::thread::JoinHandle;

use crate::StoreError;
use crate::digest::{ContentHasher, content_hash};

/// Hash ranges this large are handed over without waiting for a group commit.
pub(crate) const HAND_OVER_BYTES: u64 = 4 << 20;

/// A new id for a segment being hashed, unique in the process.
pub(crate) fn new_id() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

enum Job {
    Start { id: u64, hasher: Box<ContentHasher>, file: Arc<File>, path: PathBuf },
    Hash { id: u64, from: u64, to: u64 },
    Finish { id: u64, reply: SyncSender<Result<[u8; 32], StoreError>> },
    Drop { id: u64 },
}

/// The hashing thread, shared by every log of a store.
pub(crate) struct BackgroundHasher {
    tx: Option<Sender<Job>>,
    thread: Option<JoinHandle<()>>,
}

impl BackgroundHasher {
    /// Starts the thread.
    pub fn start() -> Result<Arc<BackgroundHasher>, StoreError> {
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("segment-hasher".into())
            .spawn(move || run(rx))
            .map_err(StoreError::io("start the hashing thread for", "."))?;
        Ok(Arc::new(BackgroundHasher { tx: Some(tx), thread: Some(thread) }))
    }

    fn send(&self, job: Job) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(job);
        }
    }

    /// Begins hashing a segment whose bytes so far `hasher` has seen.
    pub fn begin(&self, id: u64, hasher: ContentHasher, file: Arc<File>, path: PathBuf) {
        self.send(Job::Start { id, hasher: Box::new(hasher), file, path });
    }

    /// Hashes `from..to` of segment `id` (bytes already written).
    pub fn hash(&self, id: u64, from: u64, to: u64) {
        if to > from {
            self.send(Job::Hash { id, from, to });
        }
    }

    /// Waits for the hash of everything handed over for segment `id`, and forgets it.
    pub fn finish(&self, id: u64) -> Result<[u8; 32], StoreError> {
        let (reply, rx) = mpsc::sync_channel(1);
        self.send(Job::Finish { id, reply });
        rx.recv().map_err(|_| StoreError::io("hash", ".")(std::io::Error::other("the hashing thread stopped")))?
    }

    /// Forgets segment `id` without a result (its writer is gone).
    pub fn forget(&self, id: u64) {
        self.send(Job::Drop { id });
    }
}

impl Drop for BackgroundHasher {
    fn drop(&mut self) {
        drop(self.tx.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

struct Segment {
    hasher: ContentHasher,
    file: Arc<File>,
    path: PathBuf,
    error: Option<std::io::Error>,
}

fn run(rx: Receiver<Job>) {
    let mut segments: HashMap<u64, Segment> = HashMap::new();
    let mut buf = vec![0u8; 1 << 20];
    while let Ok(job) = rx.recv() {
        match job {
            Job::Start { id, hasher, file, path } => {
                segments.insert(id, Segment { hasher: *hasher, file, path, error: None });
            }
            Job::Hash { id, mut from, to } => {
                let Some(s) = segments.get_mut(&id) else { continue };
                while from < to && s.error.is_none() {
                    let n = ((to - from) as usize).min(buf.len());
                    match s.file.read_exact_at(&mut buf[..n], from) {
                        Ok(()) => {
                            s.hasher.update(&buf[..n]);
                            from += n as u64;
                        }
                        Err(e) => s.error = Some(e),
                    }
                }
            }
            Job::Finish { id, reply } => {
                let result = match segments.remove(&id) {
                    Some(Segment { error: Some(e), path, .. }) => Err(StoreError::io("hash", path)(e)),
                    Some(s) => Ok(content_hash(&s.hasher)),
                    None => Err(StoreError::io("hash", ".")(std::io::Error::other("unknown segment"))),
                };
                let _ = reply.send(result);
            }
            Job::Drop { id } => {
                segments.remove(&id);
            }
        }
    }
}
