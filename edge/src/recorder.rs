//! The recorder thread: the only writer of the media store. Camera tasks hand it records
//! through a bounded channel; it appends them and runs the group commit on time. Blocking
//! file I/O and fsync never run on the async executor.

use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use media_store::{Record, Store};

use crate::status::UnitStatus;

/// Records waiting for the disk before camera tasks start losing frames (several seconds of
/// video for a handful of cameras).
const QUEUE_DEPTH: usize = 2048;

/// How a camera task hands records to the recorder thread. Cloneable; never blocks.
#[derive(Clone)]
pub struct RecorderTx {
    tx: SyncSender<(usize, Record)>,
    status: Arc<UnitStatus>,
}

impl RecorderTx {
    /// Queues a record of camera `index`. If the queue is full (the disk cannot keep up) the
    /// record is counted as lost rather than stalling the camera's network reads.
    pub fn send(&self, index: usize, record: Record) {
        match self.tx.try_send((index, record)) {
            Ok(()) => {}
            Err(TrySendError::Full((i, Record::Frame(_)))) => self.status.count_lost(i),
            Err(TrySendError::Full(_)) => {
                tracing::warn!("recorder queue full; codec parameters not recorded");
            }
            Err(TrySendError::Disconnected(_)) => {}
        }
    }
}

/// The running recorder thread.
pub struct Recorder {
    thread: JoinHandle<()>,
}

impl Recorder {
    /// Starts the recorder thread on an opened store; retention runs every `groom_interval`.
    pub fn start(
        store: Store,
        status: Arc<UnitStatus>,
        groom_interval: Duration,
    ) -> std::io::Result<(Recorder, RecorderTx)> {
        let (tx, rx) = mpsc::sync_channel(QUEUE_DEPTH);
        let thread_status = status.clone();
        let thread = std::thread::Builder::new()
            .name("recorder".into())
            .spawn(move || run(store, rx, &thread_status, groom_interval))?;
        Ok((Recorder { thread }, RecorderTx { tx, status }))
    }

    /// Waits for the thread to write what is queued and sync, after every sender is dropped.
    pub fn join(self) {
        if self.thread.join().is_err() {
            tracing::error!("recorder thread panicked");
        }
    }
}

fn run(mut store: Store, rx: Receiver<(usize, Record)>, status: &UnitStatus, groom_interval: Duration) {
    let mut parameters_seq = vec![0u64; status.cameras.len()];
    let mut next_groom = Instant::now();
    loop {
        if Instant::now() >= next_groom {
            groom(&mut store, status);
            next_groom = Instant::now() + groom_interval;
        }
        let wait = store.sync_due().unwrap_or(next_groom).min(next_groom).saturating_duration_since(Instant::now());
        match rx.recv_timeout(wait) {
            Ok((index, mut record)) => {
                let bytes = match &mut record {
                    Record::Frame(f) => {
                        f.parameters_seq = parameters_seq[index];
                        Some(f.data.len())
                    }
                    _ => None,
                };
                match store.append(&record) {
                    Ok(seq) => {
                        if let Record::Parameters(_) = record {
                            parameters_seq[index] = seq;
                        }
                        if let Some(bytes) = bytes {
                            status.count_recorded(index, bytes);
                        }
                    }
                    Err(e) => {
                        tracing::error!("store: {e}");
                        status.set_store_error(Some(e.to_string()));
                        if bytes.is_some() {
                            status.count_lost(index);
                        }
                    }
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
        if let Err(e) = store.sync_if_due(Instant::now()) {
            tracing::error!("store: {e}");
            status.set_store_error(Some(e.to_string()));
        }
    }
    if let Err(e) = store.sync() {
        tracing::error!("store: final sync: {e}");
    }
}

fn groom(store: &mut Store, status: &UnitStatus) {
    match store.groom(crate::camera::now_us()) {
        Ok(r) if r.shortfall_bytes > 0 => {
            let msg = format!(
                "storage full: {} MB more are needed but everything left is evidence-locked or recording",
                r.shortfall_bytes / 1_000_000
            );
            tracing::error!("{msg}");
            status.set_store_error(Some(msg));
        }
        Ok(_) => {}
        Err(e) => {
            tracing::error!("retention: {e}");
            status.set_store_error(Some(format!("retention: {e}")));
        }
    }
}
