//! The recorder thread: the only writer of the media store. Camera tasks hand it records
//! through a bounded channel; it appends them and runs the group commit on time. Blocking
//! file I/O and fsync never run on the async executor.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TryRecvError, TrySendError};
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use media_store::key_frame_tail::KeyFrameTail;
use media_store::{MediaKind, Record, Store};

use crate::queue_share::QueueShares;
use crate::status::UnitStatus;

/// Records waiting for the disk before camera tasks start losing frames (several seconds of
/// video for a handful of cameras), and at least [`QUEUE_PER_CAMERA`] per camera.
const QUEUE_DEPTH: usize = 2048;

/// Records queued per camera at least: cameras started together fill their segments together,
/// and their seals then come back to back (128 cameras overflowed 2048 records).
const QUEUE_PER_CAMERA: usize = 64;

/// The longest the thread waits for work before it shows it is alive (see [`Liveness`]).
const BEAT: Duration = Duration::from_millis(250);

/// What the recorder thread is asked to do, in order.
enum Job {
    /// Append a record of camera `.0`, whose bytes arrived no earlier than `.2`.
    Record(usize, Record, Instant),
    /// Seal every open segment, then answer.
    SealAll(tokio::sync::oneshot::Sender<Result<(), String>>),
    /// Record a named cursor in a camera's log (e.g. what central acknowledged).
    SetCursor(String, &'static str, u64),
    /// Evidence-lock a window of a camera's recordings, then answer.
    Lock(LockRequest, tokio::sync::oneshot::Sender<Result<u64, String>>),
    /// Say where a camera's frames since its last key frame lie (after appending everything
    /// queued before this request).
    KeyFrameTail(String, tokio::sync::oneshot::Sender<Option<KeyFrameTail>>),
}

/// The queue of a [`RecorderTx::unanswered`] handle.
#[cfg(test)]
pub(crate) struct UnansweredQueue(#[allow(dead_code)] Receiver<Job>);

/// An evidence lock to write.
struct LockRequest {
    camera: String,
    start_us: i64,
    end_us: i64,
    expires_us: i64,
    reason: String,
}

/// Every log as the last group commit made it durable: what may be offered to central.
pub type DurableLogs = tokio::sync::watch::Receiver<Arc<Vec<media_store::by_seq::DurableLog>>>;

/// Why the recorder could not do what it was asked.
#[derive(Debug, thiserror::Error)]
pub enum RecorderError {
    /// The recorder thread has stopped.
    #[error("the recorder thread has stopped")]
    Stopped,
    /// The store failed.
    #[error("store: {0}")]
    Store(String),
}

/// How a camera task hands records to the recorder thread. Cloneable; never blocks.
#[derive(Clone)]
pub struct RecorderTx {
    tx: SyncSender<Job>,
    status: Arc<UnitStatus>,
    /// Frames each camera has queued: one camera may not take the whole queue.
    shares: Arc<QueueShares>,
    /// The recorder thread, woken for records and for requests someone awaits, and as a handle
    /// is dropped. Declared after `tx`, so that its sender is gone by then: the thread sees at
    /// once when the last handle is gone (it drains, syncs and ends).
    thread: RecorderThread,
}

/// The recorder thread's handle in a [`RecorderTx`]; wakes the thread when dropped.
#[derive(Clone)]
struct RecorderThread(std::thread::Thread);

impl RecorderThread {
    fn unpark(&self) {
        self.0.unpark();
    }
}

impl Drop for RecorderThread {
    fn drop(&mut self) {
        self.0.unpark();
    }
}

impl RecorderTx {
    /// Queues a record of camera `index`. If the queue is full (the disk cannot keep up), or
    /// the camera already holds its share of it, a frame is counted as lost rather than
    /// stalling the camera's network reads.
    pub fn send(&self, index: usize, record: Record) {
        self.send_arrived(index, crate::ingest_runtimes::arrived_since(), record);
    }

    /// Queues like [`RecorderTx::send`] a record whose bytes arrived at `arrived` at the earliest
    /// (`ingest_runtimes::arrived_since` as they were read): the durability window counts from
    /// then, however long the record waited meanwhile.
    pub fn send_arrived(&self, index: usize, arrived: Instant, record: Record) {
        let frame = matches!(record, Record::Frame(_));
        if frame && !self.shares.take(index) {
            self.status.count_lost(index);
            return;
        }
        let result = self.tx.try_send(Job::Record(index, record, arrived));
        if frame && result.is_err() {
            self.shares.give_back(index);
        }
        match result {
            Ok(()) => self.wake_for_record(),
            Err(TrySendError::Full(Job::Record(i, Record::Frame(_), _))) => self.status.count_lost(i),
            Err(TrySendError::Full(_)) => {
                tracing::warn!("recorder queue full; codec parameters not recorded");
            }
            Err(TrySendError::Disconnected(_)) => {}
        }
    }

    /// The thread takes a queued record when the ingest thread that queued it ends its turn
    /// ([`turn_ended`]): one wake-up for all that the turn queued. Off an ingest thread (a
    /// test, a camera on the main runtime), now.
    fn wake_for_record(&self) {
        if crate::ingest_runtimes::on_ingest_thread() {
            WAKE_AT_TURN_END.with(|wake| {
                // The unit runs one recorder: the turn wakes the first it queued for.
                let recorder = wake.take().unwrap_or_else(|| self.thread.0.clone());
                wake.set(Some(recorder));
            });
        } else {
            self.thread.unpark();
        }
    }

    /// Records `value` as `camera`'s cursor `name`, durable with the next group commit (dropped
    /// with a warning when the queue is full: cursors are only ever raised again).
    pub fn set_cursor(&self, camera: &str, name: &'static str, value: u64) {
        match self.tx.try_send(Job::SetCursor(camera.to_owned(), name, value)) {
            Ok(()) => self.wake_for_record(),
            Err(_) => tracing::warn!(camera, name, "recorder queue full; cursor not recorded this time"),
        }
    }

    /// Evidence-locks `camera`'s recordings from `start_us` to `end_us` (which may lie ahead)
    /// until `expires_us`; answers with the lock's id once it is durable. Waits for room in a
    /// full queue off the executor: a lock must not be lost.
    pub async fn lock(
        &self,
        camera: &str,
        start_us: i64,
        end_us: i64,
        expires_us: i64,
        reason: &str,
    ) -> Result<u64, RecorderError> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let request =
            LockRequest { camera: camera.to_owned(), start_us, end_us, expires_us, reason: reason.to_owned() };
        self.send_job(Job::Lock(request, reply)).await?;
        answer.await.map_err(|_| RecorderError::Stopped)?.map_err(RecorderError::Store)
    }

    /// Where `camera`'s frames since its last video key frame lie in its open segment, once
    /// every record queued before this call is appended (`None`: no key frame there, or the
    /// queue is full; a live start then waits for the camera's next key frame instead).
    pub async fn key_frame_tail(&self, camera: &str) -> Result<Option<KeyFrameTail>, RecorderError> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        // A live start waits for this: when the queue is full it does not wait for room.
        match self.try_request(Job::KeyFrameTail(camera.to_owned(), reply)) {
            Ok(()) => answer.await.map_err(|_| RecorderError::Stopped),
            Err(TrySendError::Full(_)) => Ok(None),
            Err(TrySendError::Disconnected(_)) => Err(RecorderError::Stopped),
        }
    }

    /// A handle whose requests queue but are never answered, as while the recorder thread is
    /// held up by the disk (for tests of what waits on it); the queue lives as long as the
    /// returned guard.
    #[cfg(test)]
    pub(crate) fn unanswered(status: Arc<UnitStatus>) -> (RecorderTx, UnansweredQueue) {
        let (tx, rx) = mpsc::sync_channel(QUEUE_DEPTH);
        let shares = Arc::new(QueueShares::new(status.slots(), QUEUE_DEPTH));
        (RecorderTx { tx, status, shares, thread: RecorderThread(std::thread::current()) }, UnansweredQueue(rx))
    }

    /// Queues a request someone awaits if there is room, and wakes the thread
    /// for it. A full queue hands the job back, as `SyncSender::try_send` does.
    #[allow(clippy::result_large_err)]
    fn try_request(&self, job: Job) -> Result<(), TrySendError<Job>> {
        self.tx.try_send(job).inspect(|()| self.thread.unpark())
    }

    /// Queues a request someone awaits, waiting for room off the executor, and wakes the
    /// thread for it.
    async fn send_job(&self, job: Job) -> Result<(), RecorderError> {
        match self.try_request(job) {
            Ok(()) => Ok(()),
            Err(TrySendError::Disconnected(_)) => Err(RecorderError::Stopped),
            Err(TrySendError::Full(job)) => {
                let tx = self.tx.clone();
                let sent = tokio::task::spawn_blocking(move || tx.send(job).is_ok()).await;
                self.thread.unpark();
                if sent.unwrap_or(false) { Ok(()) } else { Err(RecorderError::Stopped) }
            }
        }
    }

    /// Seals every open segment (after the records queued before this call are written) and
    /// answers once the seals are durable. Recording continues into new segments afterwards.
    pub async fn seal_all(&self) -> Result<(), RecorderError> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        // A full queue: wait for room off the executor; this request must not be lost.
        self.send_job(Job::SealAll(reply)).await?;
        answer.await.map_err(|_| RecorderError::Stopped)?.map_err(RecorderError::Store)
    }
}

thread_local! {
    /// On an ingest thread: the recorder to wake when the thread ends its turn, for the records
    /// the turn queued.
    static WAKE_AT_TURN_END: Cell<Option<std::thread::Thread>> = const { Cell::new(None) };
}

/// Runs as an ingest thread ends its turn (before it naps and waits for its sockets): wakes the
/// recorder for the records the turn queued, if it queued any, so that one wake-up takes them
/// all: at 4 cameras about 4 times a second on the image's receive buffers (10 on Linux's
/// defaults), where the recorder's own 100 ms nap and the first frame of each turn woke it
/// more often. A thread busy enough not to park between turns does not get here; the recorder
/// then takes its records when it wakes on its own, a quarter of the window later at most.
pub fn turn_ended() {
    if let Some(recorder) = WAKE_AT_TURN_END.take() {
        recorder.unpark();
    }
}

/// Shows that the recorder thread is going round its loop (it beats at least every 250 ms
/// while it is not stuck in the store). The systemd watchdog pings only while it does.
#[derive(Clone, Debug)]
pub struct Liveness(Arc<AtomicU64>);

impl Liveness {
    fn new() -> Liveness {
        let liveness = Liveness(Arc::new(AtomicU64::new(0)));
        liveness.beat();
        liveness
    }

    fn beat(&self) {
        self.0.store(millis_since_start(), Ordering::Relaxed);
    }

    /// How long ago the thread last went round its loop.
    pub fn since_last_beat(&self) -> Duration {
        Duration::from_millis(millis_since_start().saturating_sub(self.0.load(Ordering::Relaxed)))
    }
}

fn millis_since_start() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    u64::try_from(START.get_or_init(Instant::now).elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// The running recorder thread.
pub struct Recorder {
    thread: JoinHandle<()>,
    liveness: Liveness,
    durable: DurableLogs,
    /// Frames queued per camera (for what [`Recorder::join`] says while it waits).
    shares: Arc<QueueShares>,
    /// Disconnected when the thread ends.
    ended: Receiver<()>,
}

/// While [`Recorder::join`] waits longer than this, it says how much is still queued.
const JOIN_WORD: Duration = Duration::from_secs(5);

impl Recorder {
    /// Starts the recorder thread on an opened store; retention runs on `retention`'s schedule.
    pub fn start(
        store: Store,
        status: Arc<UnitStatus>,
        retention: RetentionSchedule,
    ) -> std::io::Result<(Recorder, RecorderTx)> {
        let depth = QUEUE_DEPTH.max(QUEUE_PER_CAMERA * status.slots());
        let (tx, rx) = mpsc::sync_channel(depth);
        let shares = Arc::new(QueueShares::new(status.slots(), depth));
        let thread_shares = shares.clone();
        let thread_status = status.clone();
        let liveness = Liveness::new();
        let thread_liveness = liveness.clone();
        let (durable_tx, durable) = tokio::sync::watch::channel(Arc::new(store.durable_logs()));
        let (ended_tx, ended) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new().name("recorder".into()).spawn(move || {
            let _ended = ended_tx;
            run(store, rx, &thread_status, &thread_shares, &retention, &thread_liveness, &durable_tx)
        })?;
        let handle = thread.thread().clone();
        let recorder = Recorder { thread, liveness, durable, shares: shares.clone(), ended };
        Ok((recorder, RecorderTx { tx, status, shares, thread: RecorderThread(handle) }))
    }

    /// The logs as durable after each group commit.
    pub fn durable_logs(&self) -> DurableLogs {
        self.durable.clone()
    }

    /// The thread's heartbeat.
    pub fn liveness(&self) -> Liveness {
        self.liveness.clone()
    }

    /// Waits for the thread to write what is queued and sync, after every sender is dropped;
    /// says every [`JOIN_WORD`] how many frames are still queued (a disk that syncs slowly
    /// under other writes can take many seconds).
    pub fn join(self) {
        let started = Instant::now();
        while let Err(RecvTimeoutError::Timeout) = self.ended.recv_timeout(JOIN_WORD) {
            tracing::warn!(
                "the recorder is still writing after {:.0?}: {} frames queued",
                started.elapsed(),
                self.shares.queued()
            );
        }
        if self.thread.join().is_err() {
            tracing::error!("recorder thread panicked");
        }
    }
}

/// The shortest the thread sleeps on its own (with a durability window of a few milliseconds).
const MIN_SLEEP: Duration = Duration::from_millis(1);

/// The most records the thread takes from the queue between two looks at the group commit
/// and retention.
const BATCH: usize = 1024;

fn run(
    mut store: Store,
    rx: Receiver<Job>,
    status: &UnitStatus,
    shares: &QueueShares,
    retention: &RetentionSchedule,
    liveness: &Liveness,
    durable: &tokio::sync::watch::Sender<Arc<Vec<media_store::by_seq::DurableLog>>>,
) {
    // By camera slot (video's, audio's); grows when cameras are added at run time.
    let mut parameters_seq = vec![[0u64; 2]; status.slots()];
    let mut next_groom = Instant::now();
    let mut disconnected = false;
    // Records an ingest thread queued without waking the thread (one too busy to park between
    // turns) wait at most a quarter of the durability window (`longest_sleep`).
    let longest_sleep = BEAT.min(store.fsync_interval() / 4).max(MIN_SLEEP);
    while !disconnected {
        liveness.beat();
        if Instant::now() >= next_groom {
            groom(&mut store, status, retention.unretrieved_warning);
            next_groom = Instant::now() + retention.interval;
        }
        // What is queued, up to a batch (the queue may never run empty: the group commit and
        // retention come after each batch). Not cut short when the group commit is already
        // overdue: after a slow sync the queued records all are, and syncing after each one
        // (a sync and a nap per record) let the recorder fall further behind for ever.
        let mut taken = 0;
        while taken < BATCH {
            match rx.try_recv() {
                Ok(job) => {
                    give_back(shares, &job);
                    handle(&mut store, job, status, &mut parameters_seq, durable);
                    taken += 1;
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    disconnected = true;
                    break;
                }
            }
        }
        // The batch stopped with records still queued: no sleep before the next.
        let backlog = taken == BATCH;
        let sync_failed = match store.sync_if_due(Instant::now()) {
            Ok(true) => {
                status.count_group_commit();
                durable.send_replace(Arc::new(store.durable_logs()));
                false
            }
            Ok(false) => false,
            Err(e) => {
                tracing::error!("store: {e}");
                status.set_store_error(Some(e.to_string()));
                true
            }
        };
        // A failed sync is tried again a beat later, not at once in a loop.
        let due = if sync_failed { BEAT } else { until(next_due(&store, next_groom)) };
        let sleep = due.min(longest_sleep);
        if !disconnected && !backlog && !sleep.is_zero() {
            // Until the group commit or retention is due, unless woken (`unpark`) for records
            // an ingest thread's turn queued (`turn_ended`), a request someone awaits, or the
            // last handle dropped.
            std::thread::park_timeout(sleep);
        }
    }
    if let Err(e) = store.sync() {
        tracing::error!("store: final sync: {e}");
    }
}

/// A frame left the queue: its camera's place is free again.
fn give_back(shares: &QueueShares, job: &Job) {
    if let Job::Record(index, Record::Frame(_), _) = job {
        shares.give_back(*index);
    }
}

/// When the thread has to act next: the group commit or retention.
fn next_due(store: &Store, next_groom: Instant) -> Instant {
    store.sync_due().unwrap_or(next_groom).min(next_groom)
}

fn until(t: Instant) -> Duration {
    t.saturating_duration_since(Instant::now())
}

/// Does one job of the queue.
fn handle(
    store: &mut Store,
    job: Job,
    status: &UnitStatus,
    parameters_seq: &mut Vec<[u64; 2]>,
    durable: &tokio::sync::watch::Sender<Arc<Vec<media_store::by_seq::DurableLog>>>,
) {
    match job {
        Job::SealAll(reply) => {
            let started = Instant::now();
            let result = store.seal_all().map_err(|e| e.to_string());
            match &result {
                Ok(()) => tracing::info!("sealed every open segment in {} ms", started.elapsed().as_millis()),
                Err(e) => {
                    tracing::error!("store: sealing every open segment: {e}");
                    status.set_store_error(Some(e.clone()));
                }
            }
            durable.send_replace(Arc::new(store.durable_logs()));
            let _ = reply.send(result);
        }
        Job::Lock(l, reply) => {
            let result =
                store.lock(&l.camera, l.start_us, l.end_us, l.expires_us, &l.reason).map_err(|e| e.to_string());
            match &result {
                Ok(id) => tracing::info!(camera = l.camera, id, "evidence lock: {}", l.reason),
                Err(e) => tracing::error!(camera = l.camera, "store: evidence lock: {e}"),
            }
            let _ = reply.send(result);
        }
        Job::KeyFrameTail(camera, reply) => {
            let _ = reply.send(store.key_frame_tail(&camera));
        }
        Job::SetCursor(camera, name, value) => {
            if let Err(e) = store.set_cursor(&camera, name, value) {
                tracing::warn!(camera, name, "store: cannot record cursor: {e}");
            }
        }
        Job::Record(index, mut record, arrived) => {
            if index >= parameters_seq.len() {
                parameters_seq.resize(index + 1, [0; 2]);
            }
            let bytes = match &mut record {
                Record::Frame(f) => {
                    // Metadata messages have no parameters record.
                    f.parameters_seq = match f.kind {
                        MediaKind::Video => parameters_seq[index][0],
                        MediaKind::Audio => parameters_seq[index][1],
                        MediaKind::Metadata => 0,
                    };
                    Some(f.data.len())
                }
                _ => None,
            };
            let metadata = matches!(&record, Record::Frame(f) if f.kind == MediaKind::Metadata);
            match store.append_arrived(&record, arrived) {
                Ok(seq) => {
                    match record {
                        Record::Parameters(_) => parameters_seq[index][0] = seq,
                        Record::AudioParameters(_) => parameters_seq[index][1] = seq,
                        _ => {}
                    }
                    if let Some(bytes) = bytes {
                        status.count_recorded(index, bytes);
                    }
                    if metadata {
                        status.count_metadata_recorded(index);
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
    }
}

/// When retention runs, and how far ahead it warns about recordings central has not retrieved.
#[derive(Debug, Clone, Copy)]
pub struct RetentionSchedule {
    /// Between passes.
    pub interval: Duration,
    /// With `[store] keep_unretrieved`: the horizon of the warning.
    pub unretrieved_warning: Option<Duration>,
}

impl RetentionSchedule {
    /// The schedule `[store]` asks for.
    pub fn from_config(store: &crate::config::StoreConfig) -> RetentionSchedule {
        RetentionSchedule {
            interval: Duration::from_secs(store.retention_interval_s),
            unretrieved_warning: store
                .keep_unretrieved
                .then(|| Duration::from_secs_f64(store.unretrieved_warning_hours * 3600.0)),
        }
    }
}

fn groom(store: &mut Store, status: &UnitStatus, warn_within: Option<Duration>) {
    let report = store.groom(crate::camera::now_us());
    if let (Some(horizon), Ok(r)) = (warn_within, &report) {
        let rate_bps: u64 = status.cameras().iter().filter_map(|c| c.bitrate_bps()).sum();
        status.set_store_warning(crate::retention_warning::unretrieved(r, rate_bps, horizon));
    }
    match report {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// After a slow sync every queued record is already past its group commit. The thread
    /// still appends the whole backlog and syncs once a batch, not once a record (which, with
    /// a nap each time, made it fall behind for ever: CI's recordings crawled and shutdowns
    /// took minutes).
    #[test]
    fn a_backlog_past_its_group_commit_is_written_in_batches_with_one_sync_each() {
        use media_store::{StoreOptions, StoredParameters};
        let dir = tempfile::tempdir().unwrap();
        let options = StoreOptions { fsync_interval: Duration::from_millis(100), ..StoreOptions::default() };
        let (store, _) = Store::open(dir.path(), options).unwrap();
        let status = UnitStatus::new("bus-1".into(), [("front".into(), "Front".into())]);
        let records = 3000;
        let (tx, rx) = mpsc::sync_channel(records + 1);
        // Arrived long ago: the group commit is overdue from the first record on.
        let arrived = Instant::now() - Duration::from_secs(10);
        let parameters = StoredParameters {
            camera: "front".into(),
            rfc6381_codec: "avc1.4d401e".into(),
            width: 640,
            height: 360,
            extra_data: vec![1, 2, 3],
        };
        tx.send(Job::Record(0, Record::Parameters(parameters), arrived)).unwrap();
        for i in 0..records as i64 {
            tx.send(Job::Record(0, video_frame(i, i % 25 == 0, i as u8), arrived)).unwrap();
        }
        drop(tx);
        let shares = QueueShares::new(1, records + 1);
        let retention = RetentionSchedule { interval: Duration::from_secs(3600), unretrieved_warning: None };
        let (durable, _) = tokio::sync::watch::channel(Arc::new(Vec::new()));
        run(store, rx, &status, &shares, &retention, &Liveness::new(), &durable);
        let recorded = status.snapshot().cameras[0].stream.frames_recorded;
        assert_eq!(recorded, records as u64, "every queued frame is written");
        let commits = status.group_commits();
        assert!(commits <= (records / BATCH + 1) as u64, "{commits} group commits for {records} overdue records");
    }

    /// Camera "front"'s video frame `i` at 25 fps: 100 bytes of `fill`.
    fn video_frame(i: i64, keyframe: bool, fill: u8) -> Record {
        Record::Frame(media_store::StoredFrame {
            camera: "front".into(),
            stream: 0,
            parameters_seq: 0,
            kind: MediaKind::Video,
            keyframe,
            pts: i * 3600,
            clock_rate: 90_000,
            wall_clock_us: 1_000_000_000 + i * 40_000,
            data: vec![fill; 100],
        })
    }

    fn frame(i: i64) -> Record {
        video_frame(i, true, 1)
    }

    /// Whether this thread holds a recorder to wake at its turn's end, and which.
    fn held_for_turn_end() -> Option<std::thread::ThreadId> {
        WAKE_AT_TURN_END.with(|wake| {
            let held = wake.take();
            let id = held.as_ref().map(std::thread::Thread::id);
            wake.set(held);
            id
        })
    }

    /// On an ingest thread a queued record does not wake the recorder by itself: the thread's
    /// turn does, as it ends, once for all it queued. Elsewhere a record wakes it at once.
    #[tokio::test]
    async fn records_queued_in_an_ingest_turn_wake_the_recorder_once_as_the_turn_ends() {
        use crate::ingest_runtimes::{IngestRuntimes, Nap};
        let status = Arc::new(UnitStatus::new("bus-1".into(), [("front".into(), "Front".into())]));
        let (tx, _queue) = RecorderTx::unanswered(status);
        let recorder = std::thread::current().id();
        tx.send(0, frame(0));
        assert_eq!(held_for_turn_end(), None, "off an ingest thread: woken at once");
        let pool = IngestRuntimes::with_limits(1, 1, Nap::NONE);
        let (seen_tx, seen) = tokio::sync::oneshot::channel();
        pool.spawn(async move {
            let before = held_for_turn_end();
            tx.send(0, frame(1));
            tx.send(0, frame(2));
            let queued = held_for_turn_end();
            turn_ended();
            let after = held_for_turn_end();
            let _ = seen_tx.send((before, queued, after));
        });
        let (before, queued, after) = seen.await.unwrap();
        assert_eq!(before, None);
        assert_eq!(queued, Some(recorder), "the turn holds the recorder to wake");
        assert_eq!(after, None, "woken as the turn ended");
        pool.shutdown();
    }

    /// End to end on a real ingest thread: the record's turn wakes the recorder when the thread
    /// parks (its park hook, not a call by hand), while the handle lives on; a record queued off
    /// an ingest thread wakes it at once.
    #[tokio::test]
    async fn an_ingest_turn_that_queued_a_record_wakes_the_recorder_as_the_thread_parks() {
        use crate::ingest_runtimes::{IngestRuntimes, Nap};
        // Stand-ins for the recorder thread: each says when it is woken.
        let parked = || {
            let (woken_tx, woken) = mpsc::channel::<()>();
            let thread = std::thread::spawn(move || {
                std::thread::park();
                let _ = woken_tx.send(());
            });
            (thread, woken)
        };
        let status = Arc::new(UnitStatus::new("bus-1".into(), [("front".into(), "Front".into())]));
        let handle = |thread: &std::thread::JoinHandle<()>| {
            let (sender, queue) = mpsc::sync_channel(16);
            let shares = Arc::new(QueueShares::new(1, 16));
            let tx = RecorderTx {
                tx: sender,
                status: status.clone(),
                shares,
                thread: RecorderThread(thread.thread().clone()),
            };
            (tx, queue)
        };
        let (recorder, woken) = parked();
        let (tx, _queue) = handle(&recorder);
        let pool = IngestRuntimes::with_limits(1, 1, Nap::NONE);
        let (_keep, kept) = tokio::sync::oneshot::channel::<()>();
        pool.spawn(async move {
            tx.send(0, frame(1));
            // The handle lives on (dropping it would wake the recorder too).
            let _ = kept.await;
            drop(tx);
        });
        woken.recv_timeout(Duration::from_secs(10)).expect("the turn's end woke the recorder");
        recorder.join().unwrap();

        let (recorder, woken) = parked();
        let (tx, _queue) = handle(&recorder);
        tx.send(0, frame(2));
        woken.recv_timeout(Duration::from_secs(10)).expect("a record off an ingest thread woke it");
        recorder.join().unwrap();
        drop(tx);
        pool.shutdown();
    }

    #[test]
    fn a_frame_napped_in_its_socket_and_in_the_queue_is_appended_before_its_commit_is_due() {
        for ms in [1, 10, 100, 500, 1000, 2000, 60_000] {
            let window = Duration::from_millis(ms);
            // Its arrival counts from the ingest thread's wait before last: two naps before it
            // is queued; the recorder takes it when that turn ends.
            let waited = 2 * crate::ingest_runtimes::window_nap(window);
            assert!(waited < window * 3 / 4, "window {window:?}: {waited:?}");
        }
    }
}
