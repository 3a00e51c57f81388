//! Central's store of what it retrieved from units: the frames in a media store of its own
//! (one log per unit camera, `UNIT/CAMERA`), and in SQLite (`sync.db`) which of each unit's
//! sequence numbers it holds, the sync state that must survive a restart, the operator's
//! retrievals and this node's record of evidence locks. (Alarms are in the catalog,
//! [`crate::alarms`]; an older store's `alarm` table is carried over there once.)
//!
//! A chunk is never stored twice, even when central dies in the middle of storing it: before
//! appending, the plan (which records go where) is written to SQLite; the frames are appended
//! and made durable; then, in one transaction, the holding is recorded and the plan removed.
//! At start, a plan still present means the crash came between the two: the log's durable
//! length tells exactly which of the planned records made it, and those become holdings.

use std::collections::{BTreeMap, HashMap};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::mpsc;

use media_store::{MediaKind, Record, Store, StoreOptions, StoredAudioParameters, StoredFrame, StoredParameters};
use protocol::sync::{RetrievedMedia, SyncFrame};
use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};
use sync_core::{CentralDurable, Holdings};

use crate::live_events::{LiveEvent, LiveEvents};
use crate::sync_reads::SyncReads;
use crate::sync_writes::SyncWrites;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS holding (
    unit TEXT NOT NULL,
    camera TEXT NOT NULL,
    first_seq INTEGER NOT NULL,
    end_seq INTEGER NOT NULL,
    start_us INTEGER,
    end_us INTEGER,
    log_first INTEGER NOT NULL,
    log_end INTEGER NOT NULL
) STRICT;
CREATE INDEX IF NOT EXISTS holding_by_camera ON holding (unit, camera, first_seq);
CREATE INDEX IF NOT EXISTS holding_by_time ON holding (unit, camera, start_us);
CREATE TABLE IF NOT EXISTS pending (
    unit TEXT NOT NULL,
    camera TEXT NOT NULL,
    base INTEGER NOT NULL,
    plan TEXT NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS link (
    unit TEXT PRIMARY KEY NOT NULL,
    last_seen_us INTEGER NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS unit_state (
    unit TEXT PRIMARY KEY NOT NULL,
    durable TEXT NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS retrieval (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    unit TEXT NOT NULL,
    core_id INTEGER NOT NULL,
    camera TEXT NOT NULL,
    start_us INTEGER NOT NULL,
    end_us INTEGER NOT NULL,
    created_us INTEGER NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS evidence_lock (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    unit TEXT NOT NULL,
    camera TEXT NOT NULL,
    start_us INTEGER NOT NULL,
    end_us INTEGER NOT NULL,
    expires_us INTEGER NOT NULL,
    reason TEXT NOT NULL,
    created_us INTEGER NOT NULL,
    central_state TEXT NOT NULL,
    central_error TEXT,
    unit_state TEXT NOT NULL,
    unit_error TEXT,
    unit_done_us INTEGER
) STRICT;
CREATE INDEX IF NOT EXISTS evidence_lock_pending ON evidence_lock (unit, unit_state);
";

/// Why storing failed.
#[derive(Debug, thiserror::Error)]
pub enum RetrievedError {
    /// The media store failed.
    #[error("media store: {0}")]
    Store(#[from] media_store::StoreError),
    /// The sync database failed.
    #[error("sync database: {0}")]
    Db(#[from] rusqlite::Error),
    /// A frame's payload did not decode.
    #[error("a retrieved frame does not decode: {0}")]
    Payload(String),
    /// The store thread is gone.
    #[error("the retrieved-video store has stopped")]
    Stopped,
    /// The catalog failed (the evidence locks and alarms shared with other nodes).
    #[error(transparent)]
    Catalog(#[from] crate::catalog::CatalogError),
}

/// One planned record of a chunk: a frame (its unit sequence number and time) or parameters.
#[derive(Debug, Clone, Serialize, Deserialize)]
enum Planned {
    Parameters,
    Frame { seq: u64, wall_us: i64 },
}

/// A time extent of held video.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct HeldTime {
    /// First frame, µs since the Unix epoch.
    pub start_us: i64,
    /// Last frame.
    pub end_us: i64,
}

/// A retrieval as the operator asked for it.
#[derive(Debug, Clone)]
pub struct RetrievalRow {
    /// The API id.
    pub id: i64,
    /// The unit.
    pub unit: String,
    /// The unit's sync core id.
    pub core_id: u64,
}

/// A retrieval in [`RetrievedStore::recent_retrievals`].
#[derive(Debug, Clone)]
pub struct RetrievalListing {
    /// The API id.
    pub id: i64,
    /// The unit.
    pub unit: String,
    /// The camera.
    pub camera: String,
    /// The range asked for, µs since the Unix epoch.
    pub start_us: i64,
    /// Its end.
    pub end_us: i64,
    /// When it was asked for.
    pub created_us: i64,
}

type Reply<T> = tokio::sync::oneshot::Sender<Result<T, RetrievedError>>;

enum Job {
    Store { unit: String, camera: String, covers: Range<u64>, frames: Vec<SyncFrame>, reply: Reply<()> },
    Query(Box<dyn FnOnce(&mut Inner) + Send>),
}

/// The handle to the store thread (cheap to clone).
#[derive(Clone)]
pub struct RetrievedStore {
    tx: mpsc::SyncSender<Job>,
    dir: PathBuf,
    live: LiveEvents,
    /// `sync.db`'s read connections, for the API (see [`crate::sync_reads`]).
    reads: SyncReads,
    /// Small writes, group-committed (see [`crate::sync_writes`]).
    writes: SyncWrites,
}

/// The store thread's state.
pub(crate) struct Inner {
    pub(crate) store: Store,
    pub(crate) db: Connection,
    /// The last parameters written to each log and their sequence number there, so they are
    /// written again only on change.
    pub(crate) last_parameters: HashMap<String, (StoredParameters, u64)>,
    /// The same for audio parameters (retrieved audio, protocol version 4).
    pub(crate) last_audio_parameters: HashMap<String, (StoredAudioParameters, u64)>,
}

/// Adds `holding.live` to a `sync.db` made before central recorded live video: 1 marks a run of
/// frames central recorded from the live stream (`first_seq`/`end_seq` are 0 then: the unit's
/// sequence numbers are not known), which the sync core must not count as held unit frames.
fn add_live_column(db: &Connection) -> rusqlite::Result<()> {
    let has: bool = db.prepare("SELECT 1 FROM pragma_table_info('holding') WHERE name = 'live'")?.exists([])?;
    if !has {
        db.execute_batch("ALTER TABLE holding ADD COLUMN live INTEGER NOT NULL DEFAULT 0")?;
    }
    Ok(())
}

/// Codec parameters from a unit as central's log `log` keeps them.
pub(crate) fn stored_parameters(log: &str, p: protocol::interconnect::VideoParameters) -> StoredParameters {
    StoredParameters {
        camera: log.to_owned(),
        rfc6381_codec: p.rfc6381_codec,
        width: p.width,
        height: p.height,
        extra_data: p.extra_data,
    }
}

/// A video frame from a unit as central's log `log` keeps it, under the parameters record at
/// `parameters_seq`.
pub(crate) fn stored_frame(log: &str, parameters_seq: u64, f: protocol::interconnect::MediaFrame) -> StoredFrame {
    StoredFrame {
        camera: log.to_owned(),
        stream: 0,
        parameters_seq,
        kind: MediaKind::Video,
        keyframe: f.keyframe,
        pts: f.pts,
        clock_rate: f.clock_rate,
        wall_clock_us: f.wall_clock_us,
        data: f.data,
    }
}

/// Audio codec parameters from a unit as central's log `log` keeps them.
pub(crate) fn stored_audio_parameters(log: &str, p: protocol::interconnect::AudioParameters) -> StoredAudioParameters {
    StoredAudioParameters {
        camera: log.to_owned(),
        codec: p.codec,
        sample_rate: p.sample_rate,
        channels: p.channels,
        extra_data: p.extra_data,
    }
}

/// The media store's log of a unit's camera.
pub fn log_name(unit: &str, camera: &str) -> String {
    format!("{unit}/{camera}")
}

impl RetrievedStore {
    /// Opens (creating) the store under `dir` (`dir/media`, `dir/sync.db`), finishes what a
    /// crash interrupted, and starts its thread.
    pub fn open(dir: &Path) -> Result<RetrievedStore, RetrievedError> {
        let (store, _) = Store::open(&dir.join("media"), StoreOptions::default())?;
        let db = Connection::open(dir.join("sync.db"))?;
        db.pragma_update(None, "journal_mode", "WAL")?;
        db.pragma_update(None, "synchronous", "FULL")?;
        db.busy_timeout(std::time::Duration::from_secs(10))?;
        db.execute_batch(SCHEMA)?;
        add_live_column(&db)?;
        let mut inner = Inner { store, db, last_parameters: HashMap::new(), last_audio_parameters: HashMap::new() };
        inner.finish_pending()?;
        let (tx, rx) = mpsc::sync_channel::<Job>(64);
        std::thread::Builder::new()
            .name("retrieved-store".into())
            .spawn(move || {
                while let Ok(job) = rx.recv() {
                    match job {
                        Job::Store { unit, camera, covers, frames, reply } => {
                            let _ = reply.send(inner.store_chunk(&unit, &camera, covers, &frames));
                        }
                        Job::Query(f) => f(&mut inner),
                    }
                }
            })
            .map_err(|_| RetrievedError::Stopped)?;
        let store_tx = tx.clone();
        let writes =
            SyncWrites::start(Box::new(move |f| store_tx.send(Job::Query(Box::new(|i| f(&mut i.db)))).is_ok()))
                .map_err(|_| RetrievedError::Stopped)?;
        let reads = SyncReads::new(dir.join("sync.db"));
        Ok(RetrievedStore { tx, dir: dir.to_owned(), live: LiveEvents::default(), reads, writes })
    }

    /// The store's directory (`media/`, `sync.db`), for [`read_held`].
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The media store's directory (for reading retrieved video).
    pub fn media_dir(&self) -> PathBuf {
        self.dir.join("media")
    }

    /// Stores a chunk durably and records what it covers.
    pub async fn store(
        &self,
        unit: &str,
        camera: &str,
        covers: Range<u64>,
        frames: Vec<SyncFrame>,
    ) -> Result<(), RetrievedError> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.send(Job::Store { unit: unit.to_owned(), camera: camera.to_owned(), covers, frames, reply }).await?;
        answer.await.map_err(|_| RetrievedError::Stopped)?
    }

    /// Runs `f` on the store thread.
    pub async fn query<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, RetrievedError> + Send + 'static,
    ) -> Result<T, RetrievedError> {
        let (reply, answer) = tokio::sync::oneshot::channel::<Result<T, RetrievedError>>();
        self.send(Job::Query(Box::new(move |inner: &mut Inner| {
            let _ = reply.send(f(&mut inner.db));
        })))
        .await?;
        answer.await.map_err(|_| RetrievedError::Stopped)?
    }

    /// Runs `f` on the store thread with the media store and `sync.db` (for work that must
    /// touch both in order, such as an evidence lock).
    pub async fn with_store<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Store, &mut Connection) -> Result<T, RetrievedError> + Send + 'static,
    ) -> Result<T, RetrievedError> {
        let (reply, answer) = tokio::sync::oneshot::channel::<Result<T, RetrievedError>>();
        self.send(Job::Query(Box::new(move |inner: &mut Inner| {
            let _ = reply.send(f(&mut inner.store, &mut inner.db));
        })))
        .await?;
        answer.await.map_err(|_| RetrievedError::Stopped)?
    }

    /// Runs `f` on one of `sync.db`'s read connections, beside the store thread (for reads
    /// that must not wait behind its writes).
    pub async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, RetrievedError> + Send + 'static,
    ) -> Result<T, RetrievedError> {
        self.reads.read(f).await
    }

    /// Runs the small write `f` in the store thread's next group commit; its result once that
    /// is durable.
    pub async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, RetrievedError> + Send + 'static,
    ) -> Result<T, RetrievedError> {
        self.writes.write(f).await
    }

    async fn send(&self, job: Job) -> Result<(), RetrievedError> {
        let tx = self.tx.clone();
        tokio::task::spawn_blocking(move || tx.send(job))
            .await
            .map_err(|_| RetrievedError::Stopped)?
            .map_err(|_| RetrievedError::Stopped)
    }

    /// What central holds of `unit`, for its sync core.
    pub async fn holdings(&self, unit: &str) -> Result<Holdings, RetrievedError> {
        let unit = unit.to_owned();
        self.query(move |db| {
            let mut stmt = db.prepare("SELECT camera, first_seq, end_seq FROM holding WHERE unit = ?1 AND live = 0")?;
            let rows = stmt.query_map(params![unit], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64, r.get::<_, i64>(2)? as u64))
            })?;
            let mut out: Holdings = BTreeMap::new();
            for row in rows {
                let (camera, first, end) = row?;
                out.entry(camera).or_default().insert(first..end);
            }
            Ok(out)
        })
        .await
    }

    /// The time ranges of `unit`'s `camera` central holds, one per stored chunk, by start.
    pub async fn held_times(&self, unit: &str, camera: &str) -> Result<Vec<HeldTime>, RetrievedError> {
        let (unit, camera) = (unit.to_owned(), camera.to_owned());
        self.read(move |db| {
            let mut stmt = db.prepare(
                "SELECT start_us, end_us FROM holding WHERE unit = ?1 AND camera = ?2 AND start_us IS NOT NULL
                 ORDER BY start_us",
            )?;
            let rows =
                stmt.query_map(params![unit, camera], |r| Ok(HeldTime { start_us: r.get(0)?, end_us: r.get(1)? }))?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
        .await
    }

    /// When `unit` was last seen connected (saved every few seconds while it is), if ever.
    pub async fn last_seen(&self, unit: &str) -> Result<Option<i64>, RetrievedError> {
        let unit = unit.to_owned();
        self.read(move |db| {
            Ok(db.query_row("SELECT last_seen_us FROM link WHERE unit = ?1", params![unit], |r| r.get(0)).optional()?)
        })
        .await
    }

    /// Records that `unit` is connected at `us`.
    pub async fn set_last_seen(&self, unit: &str, us: i64) -> Result<(), RetrievedError> {
        let unit = unit.to_owned();
        self.write(move |db| {
            db.execute(
                "INSERT INTO link (unit, last_seen_us) VALUES (?1, ?2)
                 ON CONFLICT (unit) DO UPDATE SET last_seen_us = excluded.last_seen_us",
                params![unit, us],
            )?;
            Ok(())
        })
        .await
    }

    /// The saved sync state of `unit`.
    pub async fn durable(&self, unit: &str) -> Result<Option<CentralDurable>, RetrievedError> {
        let unit = unit.to_owned();
        self.read(move |db| {
            let text: Option<String> = db
                .query_row("SELECT durable FROM unit_state WHERE unit = ?1", params![unit], |r| r.get(0))
                .optional()?;
            Ok(text.and_then(|t| serde_json::from_str(&t).ok()))
        })
        .await
    }

    /// Saves the sync state of `unit`.
    pub async fn save_durable(&self, unit: &str, durable: &CentralDurable) -> Result<(), RetrievedError> {
        let unit = unit.to_owned();
        let text = serde_json::to_string(durable).map_err(|e| RetrievedError::Payload(e.to_string()))?;
        self.write(move |db| {
            db.execute(
                "INSERT INTO unit_state (unit, durable) VALUES (?1, ?2)
                 ON CONFLICT (unit) DO UPDATE SET durable = excluded.durable",
                params![unit, text],
            )?;
            Ok(())
        })
        .await
    }

    /// Records an operator's retrieval; returns its API id.
    pub async fn add_retrieval(
        &self,
        unit: &str,
        core_id: u64,
        camera: &str,
        start_us: i64,
        end_us: i64,
    ) -> Result<i64, RetrievedError> {
        let (unit, camera) = (unit.to_owned(), camera.to_owned());
        self.query(move |db| {
            db.execute(
                "INSERT INTO retrieval (unit, core_id, camera, start_us, end_us, created_us) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![unit, core_id as i64, camera, start_us, end_us, crate::enrollment::now_us()],
            )?;
            Ok(db.last_insert_rowid())
        })
        .await
    }

    /// An operator's retrieval by API id.
    pub async fn retrieval(&self, id: i64) -> Result<Option<RetrievalRow>, RetrievedError> {
        self.read(move |db| {
            Ok(db
                .query_row("SELECT id, unit, core_id FROM retrieval WHERE id = ?1", params![id], |r| {
                    Ok(RetrievalRow { id: r.get(0)?, unit: r.get(1)?, core_id: r.get::<_, i64>(2)? as u64 })
                })
                .optional()?)
        })
        .await
    }

    /// The newest `limit` retrievals, newest first.
    pub async fn recent_retrievals(&self, limit: u32) -> Result<Vec<RetrievalListing>, RetrievedError> {
        self.read(move |db| {
            let mut stmt = db.prepare(
                "SELECT id, unit, camera, start_us, end_us, created_us FROM retrieval ORDER BY id DESC LIMIT ?1",
            )?;
            let rows = stmt.query_map(params![limit], |r| {
                Ok(RetrievalListing {
                    id: r.get(0)?,
                    unit: r.get(1)?,
                    camera: r.get(2)?,
                    start_us: r.get(3)?,
                    end_us: r.get(4)?,
                    created_us: r.get(5)?,
                })
            })?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
        .await
    }

    /// Tells open pages that `unit`'s retrieval `core_id` (its sync core's id) finished.
    pub async fn retrieval_finished(&self, unit: &str, core_id: u64, state: &str) {
        let (unit, state) = (unit.to_owned(), state.to_owned());
        let id = self
            .query({
                let unit = unit.clone();
                move |db| {
                    Ok(db.query_row(
                        "SELECT MAX(id) FROM retrieval WHERE unit = ?1 AND core_id = ?2",
                        params![unit, core_id as i64],
                        |r| r.get::<_, Option<i64>>(0),
                    )?)
                }
            })
            .await;
        match id {
            Ok(Some(id)) => self.live.publish(LiveEvent::Retrieval { id, unit, state }),
            Ok(None) => {}
            Err(e) => tracing::warn!(unit, "cannot look up a finished retrieval: {e}"),
        }
    }

    /// Appends a batch of frames central recorded from `unit`'s live stream of `camera`
    /// (`central_recording.rs`) and records them as a live holding.
    pub async fn store_live(
        &self,
        unit: &str,
        camera: &str,
        batch: Vec<crate::central_recording::LiveItem>,
    ) -> Result<(), RetrievedError> {
        let (unit, camera) = (unit.to_owned(), camera.to_owned());
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.send(Job::Query(Box::new(move |inner: &mut Inner| {
            let _ = reply.send(crate::central_recording::append_live(inner, &unit, &camera, batch));
        })))
        .await?;
        answer.await.map_err(|_| RetrievedError::Stopped)?
    }

    /// Where changes that open pages want to hear of are published.
    pub fn live(&self) -> &LiveEvents {
        &self.live
    }
}

impl Inner {
    /// Appends a chunk's frames (with parameters where they change) and records its holding;
    /// see the module docs for the order that keeps it exactly-once.
    fn store_chunk(
        &mut self,
        unit: &str,
        camera: &str,
        covers: Range<u64>,
        frames: &[SyncFrame],
    ) -> Result<(), RetrievedError> {
        let log = log_name(unit, camera);
        let live_times = self.live_times(unit, camera, frames)?;
        let mut records = Vec::with_capacity(frames.len() + 1);
        let mut plan = Vec::with_capacity(frames.len() + 1);
        let (mut last, last_seq) = match self.last_parameters.get(&log) {
            Some((p, seq)) => (Some(p.clone()), *seq),
            None => (None, 0),
        };
        let (mut last_audio, last_audio_seq) = match self.last_audio_parameters.get(&log) {
            Some((p, seq)) => (Some(p.clone()), *seq),
            None => (None, 0),
        };
        for f in frames {
            let retrieved: RetrievedMedia =
                postcard::from_bytes(&f.payload).map_err(|e| RetrievedError::Payload(e.to_string()))?;
            let (kind, m) = match retrieved {
                RetrievedMedia::Video(m) => (MediaKind::Video, m),
                RetrievedMedia::VideoWithParameters(p, m) => {
                    let p = stored_parameters(&log, p);
                    if last.as_ref() != Some(&p) {
                        records.push(Record::Parameters(p.clone()));
                        plan.push(Planned::Parameters);
                        last = Some(p);
                    }
                    (MediaKind::Video, m)
                }
                RetrievedMedia::Audio { parameters, frame } => {
                    if let Some(p) = parameters.map(|p| stored_audio_parameters(&log, p))
                        && last_audio.as_ref() != Some(&p)
                    {
                        records.push(Record::AudioParameters(p.clone()));
                        plan.push(Planned::Parameters);
                        last_audio = Some(p);
                    }
                    (MediaKind::Audio, frame)
                }
            };
            // Central recorded this very video frame from the live stream already (the live
            // stream carries no audio).
            if kind == MediaKind::Video && live_times.contains(&m.wall_clock_us) {
                continue;
            }
            let wall_us = m.wall_clock_us;
            let mut stored = stored_frame(&log, 0, m);
            stored.kind = kind;
            records.push(Record::Frame(stored));
            plan.push(Planned::Frame { seq: f.seq, wall_us });
        }
        let base = self.store.next_seq(&log).unwrap_or(0);
        let plan_text = serde_json::to_string(&plan).map_err(|e| RetrievedError::Payload(e.to_string()))?;
        self.db.execute(
            "INSERT INTO pending (unit, camera, base, plan) VALUES (?1, ?2, ?3, ?4)",
            params![unit, camera, base as i64, plan_text],
        )?;
        let (mut parameters_seq, mut audio_parameters_seq) = (last_seq, last_audio_seq);
        for mut record in records {
            if let Record::Frame(f) = &mut record {
                f.parameters_seq = match f.kind {
                    MediaKind::Video => parameters_seq,
                    MediaKind::Audio => audio_parameters_seq,
                    // Units never send ONVIF metadata.
                    MediaKind::Metadata => 0,
                };
            }
            let seq = self.store.append(&record)?;
            match record {
                Record::Parameters(_) => parameters_seq = seq,
                Record::AudioParameters(_) => audio_parameters_seq = seq,
                _ => {}
            }
        }
        self.store.sync()?;
        if let Some(p) = last {
            self.last_parameters.insert(log.clone(), (p, parameters_seq));
        }
        if let Some(p) = last_audio {
            self.last_audio_parameters.insert(log.clone(), (p, audio_parameters_seq));
        }
        let times = frames.iter().map(|f| f.wall_clock_us);
        let (start, end) = (times.clone().min(), times.max());
        let log_end = self.store.next_seq(&log).unwrap_or(base);
        let tx = self.db.transaction()?;
        tx.execute(
            "INSERT INTO holding (unit, camera, first_seq, end_seq, start_us, end_us, log_first, log_end)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![unit, camera, covers.start as i64, covers.end as i64, start, end, base as i64, log_end as i64],
        )?;
        tx.execute(
            "DELETE FROM pending WHERE unit = ?1 AND camera = ?2 AND base = ?3",
            params![unit, camera, base as i64],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// The times of the frames central recorded live that a chunk of `frames` overlaps (empty,
    /// and no read, when no live holding overlaps it: the usual case).
    fn live_times(
        &self,
        unit: &str,
        camera: &str,
        frames: &[SyncFrame],
    ) -> Result<std::collections::HashSet<i64>, RetrievedError> {
        let times = frames.iter().map(|f| f.wall_clock_us);
        match (times.clone().min(), times.max()) {
            (Some(start), Some(end)) => {
                crate::central_recording::held_frame_times(self, unit, camera, (start, end), true)
            }
            _ => Ok(Default::default()),
        }
    }

    /// Turns plans a crash left behind into the holdings of the records that made it.
    fn finish_pending(&mut self) -> Result<(), RetrievedError> {
        let pending: Vec<(String, String, u64, String)> = {
            let mut stmt = self.db.prepare("SELECT unit, camera, base, plan FROM pending")?;
            let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get::<_, i64>(2)? as u64, r.get(3)?)))?;
            rows.collect::<Result<_, _>>()?
        };
        for (unit, camera, base, plan) in pending {
            let plan: Vec<Planned> = serde_json::from_str(&plan).map_err(|e| RetrievedError::Payload(e.to_string()))?;
            let end = self.store.next_seq(&log_name(&unit, &camera)).unwrap_or(0);
            let durable = end.saturating_sub(base) as usize;
            let tx = self.db.transaction()?;
            for (i, p) in plan.iter().enumerate().take(durable) {
                if let Planned::Frame { seq, wall_us } = p {
                    let at = (base + i as u64) as i64;
                    tx.execute(
                        "INSERT INTO holding (unit, camera, first_seq, end_seq, start_us, end_us, log_first, log_end)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?5, ?6, ?7)",
                        params![unit, camera, *seq as i64, *seq as i64 + 1, wall_us, at, at + 1],
                    )?;
                }
            }
            tx.execute(
                "DELETE FROM pending WHERE unit = ?1 AND camera = ?2 AND base = ?3",
                params![unit, camera, base as i64],
            )?;
            tx.commit()?;
            tracing::info!(
                unit,
                camera,
                records = durable.min(plan.len()),
                of = plan.len(),
                "finished a chunk a restart interrupted"
            );
        }
        Ok(())
    }
}

/// A frame central holds, as read back for playback, export or comparison.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldFrame {
    /// When the unit received it, µs since the Unix epoch.
    pub wall_clock_us: i64,
    /// Whether a decoder can start from it.
    pub keyframe: bool,
    /// The frame (AVCC).
    pub data: Vec<u8>,
}

/// Reads the frames of `unit`'s `camera` that central holds between two times, in time order,
/// from central's data directory `dir` (works while central runs). Chunks are stored in the
/// order they arrive, which need not be time order; the holdings say where each one is.
pub fn read_frames(
    dir: &Path,
    unit: &str,
    camera: &str,
    start_us: i64,
    end_us: i64,
) -> Result<Vec<HeldFrame>, RetrievedError> {
    Ok(read_held(dir, unit, camera, start_us, end_us)?
        .into_iter()
        .map(|f| HeldFrame { wall_clock_us: f.frame.wall_clock_us, keyframe: f.frame.keyframe, data: f.frame.data })
        .collect())
}

/// Like [`read_frames`], with each frame whole (pts, clock rate) and the codec parameters that
/// precede it in central's log: what playback and export need. Video only.
pub fn read_held(
    dir: &Path,
    unit: &str,
    camera: &str,
    start_us: i64,
    end_us: i64,
) -> Result<Vec<media_store::by_seq::SeqFrame>, RetrievedError> {
    read_held_of(dir, unit, camera, (start_us, end_us), MediaKind::Video)
}

/// The audio frames of `unit`'s `camera` central holds between two times, in time order, each
/// with its audio parameters ([`media_store::by_seq::SeqFrame::audio_parameters`]): what the
/// export's audio track needs (retrieved from units of protocol version 4).
pub fn read_held_audio(
    dir: &Path,
    unit: &str,
    camera: &str,
    start_us: i64,
    end_us: i64,
) -> Result<Vec<media_store::by_seq::SeqFrame>, RetrievedError> {
    read_held_of(dir, unit, camera, (start_us, end_us), MediaKind::Audio)
}

fn read_held_of(
    dir: &Path,
    unit: &str,
    camera: &str,
    (start_us, end_us): (i64, i64),
    kind: MediaKind,
) -> Result<Vec<media_store::by_seq::SeqFrame>, RetrievedError> {
    use media_store::by_seq::{Limit, SeqRead, read_seqs, read_seqs_with_audio};
    let db = Connection::open_with_flags(dir.join("sync.db"), rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let mut stmt = db.prepare(
        "SELECT log_first, log_end FROM holding WHERE unit = ?1 AND camera = ?2 AND start_us <= ?4 AND end_us >= ?3
         ORDER BY start_us",
    )?;
    let rows: Vec<(i64, i64)> = stmt
        .query_map(params![unit, camera, start_us, end_us], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    let media = dir.join("media");
    let log = log_name(unit, camera);
    let read = match kind {
        // (Central holds no ONVIF metadata: such a read finds nothing.)
        MediaKind::Video | MediaKind::Metadata => read_seqs,
        MediaKind::Audio => read_seqs_with_audio,
    };
    let mut out = Vec::new();
    for (first, end) in rows {
        if end <= first {
            continue;
        }
        if let SeqRead::Frames { frames, .. } =
            read(&media, &log, (first as u64, end as u64 - 1), u64::MAX, Limit::Until(None), None)?
        {
            out.extend(
                frames
                    .into_iter()
                    .filter(|f| f.frame.kind == kind && (start_us..=end_us).contains(&f.frame.wall_clock_us)),
            );
        }
    }
    out.sort_by_key(|f| f.frame.wall_clock_us);
    Ok(out)
}
