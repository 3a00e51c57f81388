//! Recording at central: a camera whose recording options include `"central"` is recorded by
//! central from the unit's live stream whenever the unit is connected, whether anyone watches
//! or not. The recorder is one more viewer of the camera's relay channel (so the unit still
//! sends one upstream per camera, and only while someone — here the recorder — wants it), and
//! writes what it receives to central's own store, into the camera's log beside retrieved
//! video, as *live holdings* (`holding.live = 1`, see `retrieved.rs`).
//!
//! Live holdings carry no unit sequence numbers (the live stream has none), so the sync core
//! never counts them as retrieved; the timeline and playback do. A frame never lands twice:
//! a retrieved chunk that overlaps a live holding leaves out the frames whose unit timestamps
//! central already recorded live. A batch (about a second) is durable before its holding is
//! recorded: a crash in between loses at most that batch of live video, never a holding that
//! points at missing frames.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use media_store::by_seq::{Limit, SeqRead, read_seqs};
use media_store::{Record, Store};
use protocol::interconnect::{LiveMessage, MediaFrame, VideoParameters};
use rusqlite::params;
use tokio_util::sync::CancellationToken;

use crate::config::RecordingOption;
use crate::fleet::Fleet;
use crate::relay::Relay;
use crate::retrieved::{Inner, RetrievedError, log_name, stored_frame, stored_parameters};
use crate::sync_hub::SyncHub;

/// How often the recorder checks which cameras it should record (connections and options).
const RECONCILE_EVERY: Duration = Duration::from_secs(1);
/// A batch is written at least this often…
const BATCH_AGE: Duration = Duration::from_secs(1);
/// …or once it holds this many frames.
const BATCH_FRAMES: usize = 64;
/// A live holding is extended by the next batch when no more than this separates them.
const JOIN_GAP_US: i64 = 5_000_000;

/// One message of a camera's live stream, as the recorder stores it.
#[derive(Debug, Clone)]
pub enum LiveItem {
    /// New codec parameters.
    Parameters(VideoParameters),
    /// A frame.
    Frame(MediaFrame),
}

/// Records the cameras whose options ask for it, for as long as central runs.
pub async fn run(fleet: Arc<Fleet>, relay: Arc<Relay>, hub: Arc<SyncHub>, shutdown: CancellationToken) {
    let mut recording: HashMap<(String, String), CancellationToken> = HashMap::new();
    let mut tick = tokio::time::interval(RECONCILE_EVERY);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tick.tick() => {}
        }
        let wanted: HashSet<(String, String)> = fleet
            .connected_cameras()
            .into_iter()
            .flat_map(|(unit, cameras)| cameras.into_iter().map(move |c| (unit.clone(), c)))
            .filter(|(unit, camera)| hub.options().camera_options(unit, camera).0.contains(&RecordingOption::Central))
            .collect();
        recording.retain(|key, token| {
            let keep = wanted.contains(key) && !token.is_cancelled();
            if !keep {
                tracing::info!(unit = %key.0, camera = %key.1, "central stops recording the live stream");
                token.cancel();
            }
            keep
        });
        for key in wanted {
            if recording.contains_key(&key) {
                continue;
            }
            tracing::info!(unit = %key.0, camera = %key.1, "central records the live stream");
            let token = shutdown.child_token();
            tokio::spawn(record(relay.clone(), hub.clone(), key.0.clone(), key.1.clone(), token.clone()));
            recording.insert(key, token);
        }
    }
    for token in recording.values() {
        token.cancel();
    }
}

/// Records one camera until `stop`: a viewer of its relay channel, flushed in batches.
async fn record(relay: Arc<Relay>, hub: Arc<SyncHub>, unit: String, camera: String, stop: CancellationToken) {
    let mut viewer = relay.watch(&unit, &camera);
    let mut batch: Vec<LiveItem> = Vec::new();
    let mut frames = 0usize;
    let mut flush = tokio::time::interval(BATCH_AGE);
    loop {
        let done = tokio::select! {
            _ = stop.cancelled() => true,
            _ = flush.tick() => false,
            msg = viewer.subscription.next() => match msg {
                None => true,
                Some(msg) => {
                    batch.push(match &*msg {
                        LiveMessage::Parameters(p) => LiveItem::Parameters(p.clone()),
                        LiveMessage::Frame(f) => {
                            frames += 1;
                            LiveItem::Frame(f.clone())
                        }
                    });
                    if frames < BATCH_FRAMES {
                        continue;
                    }
                    false
                }
            },
        };
        if frames > 0 {
            let items = std::mem::take(&mut batch);
            // Parameters stay in front of the next batch's frames until a frame follows them.
            frames = 0;
            if let Err(e) = hub.store().store_live(&unit, &camera, items).await {
                tracing::warn!(%unit, %camera, "central could not store live video: {e}");
            }
        }
        if done {
            break;
        }
    }
}

/// Appends a batch to the camera's log and records it as a live holding (on the store thread).
pub(crate) fn append_live(
    inner: &mut Inner,
    unit: &str,
    camera: &str,
    batch: Vec<LiveItem>,
) -> Result<(), RetrievedError> {
    let log = log_name(unit, camera);
    let (mut last, mut parameters_seq) = match inner.last_parameters.get(&log) {
        Some((p, seq)) => (Some(p.clone()), *seq),
        None => (None, 0),
    };
    let base = inner.store.next_seq(&log).unwrap_or(0);
    // A retrieval may have brought some of these frames first (their live batch was still
    // being gathered): those are not stored again.
    let times = batch.iter().filter_map(|i| match i {
        LiveItem::Frame(f) => Some(f.wall_clock_us),
        LiveItem::Parameters(_) => None,
    });
    let held = match (times.clone().min(), times.max()) {
        (Some(first), Some(last)) => held_frame_times(inner, unit, camera, (first, last), false)?,
        _ => HashSet::new(),
    };
    let (mut start, mut end) = (i64::MAX, i64::MIN);
    for item in batch {
        match item {
            LiveItem::Parameters(p) => {
                let p = stored_parameters(&log, p);
                if last.as_ref() != Some(&p) {
                    parameters_seq = inner.store.append(&Record::Parameters(p.clone()))?;
                    last = Some(p);
                }
            }
            LiveItem::Frame(f) => {
                if last.is_none() || held.contains(&f.wall_clock_us) {
                    continue; // no parameters describe it (cannot be played back), or held
                }
                start = start.min(f.wall_clock_us);
                end = end.max(f.wall_clock_us);
                inner.store.append(&Record::Frame(stored_frame(&log, parameters_seq, f)))?;
            }
        }
    }
    inner.store.sync()?;
    if let Some(p) = last {
        inner.last_parameters.insert(log.clone(), (p, parameters_seq));
    }
    if start > end {
        return Ok(());
    }
    let log_end = inner.store.next_seq(&log).unwrap_or(base);
    let tx = inner.db.transaction()?;
    let previous: Option<(i64, i64, i64)> = tx
        .query_row(
            "SELECT rowid, end_us, log_end FROM holding WHERE unit = ?1 AND camera = ?2 AND live = 1
             ORDER BY rowid DESC LIMIT 1",
            params![unit, camera],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .map(Some)
        .or_else(|e| if e == rusqlite::Error::QueryReturnedNoRows { Ok(None) } else { Err(e) })?;
    match previous {
        // The log holds nothing else between them: one holding grows.
        Some((rowid, prev_end, prev_log_end)) if prev_log_end == base as i64 && start - prev_end <= JOIN_GAP_US => {
            tx.execute(
                "UPDATE holding SET end_us = MAX(end_us, ?2), log_end = ?3 WHERE rowid = ?1",
                params![rowid, end, log_end as i64],
            )?;
        }
        _ => {
            tx.execute(
                "INSERT INTO holding (unit, camera, first_seq, end_seq, start_us, end_us, log_first, log_end, live)
                 VALUES (?1, ?2, 0, 0, ?3, ?4, ?5, ?6, 1)",
                params![unit, camera, start, end, base as i64, log_end as i64],
            )?;
        }
    }
    tx.commit()?;
    Ok(())
}

/// The unit timestamps of the frames central holds of `unit`'s `camera` in the holdings that
/// overlap `(start, end)` (only live ones when `live_only`); no read when none overlaps.
pub(crate) fn held_frame_times(
    inner: &Inner,
    unit: &str,
    camera: &str,
    (start, end): (i64, i64),
    live_only: bool,
) -> Result<HashSet<i64>, RetrievedError> {
    let mut stmt = inner.db.prepare(
        "SELECT log_first, log_end FROM holding WHERE unit = ?1 AND camera = ?2 AND (live = 1 OR ?5 = 0)
         AND start_us <= ?4 AND end_us >= ?3",
    )?;
    let runs: Vec<(i64, i64)> = stmt
        .query_map(params![unit, camera, start, end, live_only], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    let mut times = HashSet::new();
    for (first, last) in runs {
        times.extend(frame_times(&inner.store, &log_name(unit, camera), first, last)?);
    }
    Ok(times)
}

/// The unit timestamps of the frames in `log`'s sequence numbers `first..end`.
fn frame_times(store: &Store, log: &str, first: i64, end: i64) -> Result<Vec<i64>, RetrievedError> {
    if end <= first {
        return Ok(Vec::new());
    }
    match read_seqs(store.dir(), log, (first as u64, end as u64 - 1), u64::MAX, Limit::Until(None), None)? {
        SeqRead::Frames { frames, .. } => Ok(frames.into_iter().map(|f| f.frame.wall_clock_us).collect()),
        SeqRead::Gone { .. } => Ok(Vec::new()),
    }
}
