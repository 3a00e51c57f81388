//! The edge side: answers central's fetches from the local store (through the glue), forwards
//! central's acknowledgements, announces the catalog and delivers remote events until acked.
//!
//! Nearly stateless: the only state that matters across a reconnect is the queue of events central
//! has not acknowledged, and the glue keeps that durably (it hands it back to [`EdgeSync::new`]
//! after a restart and prunes it on [`EdgeAction::EventsAcked`]).

use std::collections::{HashMap, VecDeque};

use protocol::framing::MAX_MESSAGE_LEN;
use protocol::sync::{
    CatalogSummary, Chunk, EventBatch, EvidenceLockRequest, FetchFailure, LocalChange, RemoteEvent, SettingsConflict,
    SettingsPush, SyncFrame, SyncFromCentral, SyncFromEdge,
};

use crate::SyncError;
use crate::codec::{chunk_digest, compress_catalog, compress_events};

/// Room left in a message for everything but frame payloads.
const CHUNK_OVERHEAD: u64 = 64 * 1024;

/// Tuning of [`EdgeSync`].
#[derive(Debug, Clone)]
pub struct EdgeConfig {
    /// Least time between two catalogs sent on one connection, microseconds (the first one on a
    /// connection goes at once).
    pub catalog_min_interval_us: u64,
    /// Most events in one [`SyncFromEdge::Events`] message. One batch is outstanding at a time
    /// (the next goes when central acknowledges it), so batches arrive in order whatever streams
    /// the glue uses.
    pub max_events_per_batch: usize,
}

impl Default for EdgeConfig {
    fn default() -> Self {
        EdgeConfig { catalog_min_interval_us: 2_000_000, max_events_per_batch: 256 }
    }
}

/// Something the glue must do for the edge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EdgeAction {
    /// Read frames of `camera` from the store and answer with [`EdgeSync::frames_read`] (every
    /// frame with `from_seq <= seq <= to_seq`, in order, stopping once `max_bytes` of payload
    /// are gathered, a single larger frame still whole) or [`EdgeSync::read_failed`]
    /// ([`FetchFailure::Gone`] when retention removed `from_seq`). Serve only frames that are
    /// durable in the store, so that a power cut cannot reuse a sequence number central holds.
    /// With `audio`, the answer holds the range's audio frames too, as
    /// [`protocol::sync::RetrievedMedia::Audio`] payloads; without it, video frames only (a
    /// central older than [`protocol::AUDIO_PROTOCOL_VERSION`] cannot decode audio).
    ReadFrames {
        /// The fetch to answer.
        fetch_id: u64,
        /// The camera.
        camera: String,
        /// First sequence number wanted.
        from_seq: u64,
        /// Last sequence number wanted (inclusive).
        to_seq: u64,
        /// Payload budget.
        max_bytes: u32,
        /// Whether central's protocol takes audio frames (see [`EdgeSync::set_peer_version`]).
        audio: bool,
    },
    /// Central durably holds every frame of `camera` up to `up_to_seq`: persist it and let
    /// retention remove those frames first. Emitted only when it rises within this `EdgeSync`.
    Acknowledged {
        /// The camera.
        camera: String,
        /// The highest sequence number central holds everything up to.
        up_to_seq: u64,
    },
    /// Central holds every event up to `up_to_id`: remove them from the durable event queue.
    EventsAcked {
        /// The highest acknowledged id.
        up_to_id: u64,
    },
    /// Make this evidence lock durable in the store, then answer with
    /// [`EdgeSync::lock_done`]. Central sends a lock again after a reconnect until it has the
    /// answer, so the same `lock_id` may come more than once.
    Lock(EvidenceLockRequest),
    /// Keep central's settings durably and apply them, then answer with
    /// [`EdgeSync::settings_applied`] (or [`EdgeSync::settings_failed`]). Emitted once per
    /// revision newer than the last one applied (see [`EdgeSync::restore_settings`]), one at a
    /// time and in order (a newer revision waits for the answer; one overtaken is skipped); a
    /// revision sent again is answered from memory.
    ApplySettings(SettingsPush),
    /// Central durably holds the technician's changes up to `up_to_id`: remove them from the
    /// durable queue.
    LocalChangesAcked {
        /// The highest acknowledged change id.
        up_to_id: u64,
    },
}

/// Counters for the status page and tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EdgeStats {
    /// Fetches received.
    pub fetches: u64,
    /// Chunks sent.
    pub chunks: u64,
    /// Payload bytes sent in chunks.
    pub chunk_bytes: u64,
    /// Fetches answered with [`SyncFromEdge::FetchFailed`].
    pub fetch_failures: u64,
    /// Catalogs sent.
    pub catalogs: u64,
    /// Event batches sent.
    pub event_batches: u64,
    /// Reads that finished after the connection they were for had gone (dropped).
    pub stale_reads: u64,
}

#[derive(Debug)]
struct PendingRead {
    camera: String,
    from_seq: u64,
    to_seq: u64,
}

/// The edge's sync state machine. No I/O: the glue feeds it inputs and drains
/// [`poll_transmit`](Self::poll_transmit) (messages to send to central) and
/// [`poll_event`](Self::poll_event) (actions on the store) after each input.
#[derive(Debug)]
pub struct EdgeSync {
    config: EdgeConfig,
    connected: bool,
    catalog: Option<CatalogSummary>,
    catalog_dirty: bool,
    catalog_sent_at: Option<u64>,
    reads: HashMap<u64, PendingRead>,
    transmit: VecDeque<SyncFromEdge>,
    actions: VecDeque<EdgeAction>,
    /// Events central has not acknowledged, in increasing id.
    events: VecDeque<RemoteEvent>,
    /// The last id of the event batch sent on this connection and not yet acknowledged: one
    /// batch at a time, so batches cannot overtake each other on different streams.
    events_outstanding: Option<u64>,
    /// The highest event id sent on this connection.
    events_sent_up_to: Option<u64>,
    last_event_id: Option<u64>,
    events_acked_up_to: Option<u64>,
    acked: HashMap<String, u64>,
    stats: EdgeStats,
    /// The last settings revision applied and the conflicts it reported.
    settings_applied: Option<(u64, Vec<SettingsConflict>)>,
    /// A revision handed to the glue and not yet applied.
    settings_applying: Option<u64>,
    /// A newer revision that came meanwhile: handed to the glue once the one being applied is
    /// done, so revisions are applied one at a time, in order.
    settings_next: Option<SettingsPush>,
    /// The technician's changes central has not acknowledged, in increasing id.
    local_changes: VecDeque<LocalChange>,
    /// The last id of the batch of changes sent on this connection and not yet acknowledged:
    /// one batch at a time, like events, so batches cannot overtake each other.
    local_outstanding: Option<u64>,
    /// Central's protocol version (from its welcome).
    peer_version: u16,
}

impl EdgeSync {
    /// A new, disconnected edge. `unacked_events` is the glue's durable queue of events central
    /// has not acknowledged (in increasing id), sent again after the next connect.
    pub fn new(config: EdgeConfig, mut unacked_events: Vec<RemoteEvent>) -> EdgeSync {
        unacked_events.sort_by_key(|e| e.id);
        unacked_events.dedup_by_key(|e| e.id);
        let last_event_id = unacked_events.last().map(|e| e.id);
        EdgeSync {
            config,
            connected: false,
            catalog: None,
            catalog_dirty: false,
            catalog_sent_at: None,
            reads: HashMap::new(),
            transmit: VecDeque::new(),
            actions: VecDeque::new(),
            events: unacked_events.into(),
            events_outstanding: None,
            events_sent_up_to: None,
            last_event_id,
            events_acked_up_to: None,
            acked: HashMap::new(),
            stats: EdgeStats::default(),
            settings_applied: None,
            settings_applying: None,
            settings_next: None,
            local_changes: VecDeque::new(),
            local_outstanding: None,
            peer_version: protocol::PROTOCOL_VERSION,
        }
    }

    /// Central's protocol version, from its welcome; call before [`connected`](Self::connected).
    /// Fetches from a central older than [`protocol::AUDIO_PROTOCOL_VERSION`] are answered with
    /// video frames only, as before audio travelled.
    pub fn set_peer_version(&mut self, version: u16) {
        self.peer_version = version;
    }

    /// Whether central's protocol takes audio frames in chunks.
    pub fn peer_takes_audio(&self) -> bool {
        self.peer_version >= protocol::AUDIO_PROTOCOL_VERSION
    }

    /// After a restart: the settings revision the glue applied last (kept durably) and the
    /// conflicts it reported, so a resend of it is answered without applying it again.
    pub fn restore_settings(&mut self, revision: u64, conflicts: Vec<SettingsConflict>) {
        self.settings_applied = Some((revision, conflicts));
    }

    /// The technician changed a field (the glue has stored the change durably); sent to
    /// central now if connected, else at the next connection, until acknowledged. Ids must
    /// increase; an id not above the last one is ignored.
    pub fn local_change(&mut self, change: LocalChange) {
        if self.local_changes.back().is_some_and(|c| c.id >= change.id) {
            return;
        }
        self.local_changes.push_back(change);
    }

    /// The glue's answer to [`EdgeAction::ApplySettings`]: the revision is durable and in force.
    pub fn settings_applied(&mut self, revision: u64, conflicts: Vec<SettingsConflict>) {
        if self.settings_applying == Some(revision) {
            self.settings_applying = None;
        }
        if self.settings_applied.as_ref().is_none_or(|(r, _)| *r <= revision) {
            self.settings_applied = Some((revision, conflicts.clone()));
            if self.connected {
                self.transmit.push_back(SyncFromEdge::SettingsApplied { revision, conflicts });
            }
        }
        self.apply_next_settings();
    }

    /// Hands the newer revision that waited to the glue, if nothing is being applied.
    fn apply_next_settings(&mut self) {
        if self.settings_applying.is_some() {
            return;
        }
        let applied = self.settings_applied.as_ref().map(|(r, _)| *r);
        if let Some(next) = self.settings_next.take()
            && applied.is_none_or(|a| next.revision > a)
        {
            self.settings_applying = Some(next.revision);
            self.actions.push_back(EdgeAction::ApplySettings(next));
        }
    }

    /// The glue could not keep or apply settings `revision`: a later resend of it (at the next
    /// connection) is applied again.
    pub fn settings_failed(&mut self, revision: u64) {
        if self.settings_applying == Some(revision) {
            self.settings_applying = None;
        }
        self.apply_next_settings();
    }

    /// The technician's changes not yet acknowledged by central, oldest first.
    pub fn unacked_local_changes(&self) -> impl Iterator<Item = &LocalChange> {
        self.local_changes.iter()
    }

    /// The connection to central is up (the hello was accepted): the catalog and unacknowledged
    /// events go out at once.
    pub fn connected(&mut self) {
        self.connected = true;
        self.catalog_dirty = self.catalog.is_some();
        self.catalog_sent_at = None;
        self.events_outstanding = None;
        self.events_sent_up_to = None;
        self.local_outstanding = None;
    }

    /// The connection is gone: pending reads are dropped (central forgets its fetches too) and
    /// unsent messages discarded.
    pub fn disconnected(&mut self) {
        self.connected = false;
        self.reads.clear();
        self.transmit.clear();
        self.events_outstanding = None;
        self.events_sent_up_to = None;
        self.local_outstanding = None;
    }

    /// The store's holdings changed (or a periodic refresh: call it at least every minute so
    /// `as_of_us` advances). Sent on the next [`poll_transmit`](Self::poll_transmit) allowed by
    /// [`EdgeConfig::catalog_min_interval_us`].
    pub fn catalog_changed(&mut self, catalog: CatalogSummary) {
        self.catalog = Some(catalog);
        self.catalog_dirty = true;
    }

    /// Records an event for delivery; the glue has already stored it durably. Ids must increase.
    pub fn event(&mut self, event: RemoteEvent) -> Result<(), SyncError> {
        if let Some(previous) = self.last_event_id
            && event.id <= previous
        {
            return Err(SyncError::EventIdNotIncreasing { id: event.id, previous });
        }
        self.last_event_id = Some(event.id);
        self.events.push_back(event);
        Ok(())
    }

    /// A message from central.
    pub fn handle(&mut self, msg: SyncFromCentral) {
        match msg {
            SyncFromCentral::Fetch { fetch_id, camera, from_seq, to_seq, max_bytes } => {
                if !self.connected {
                    return;
                }
                self.stats.fetches += 1;
                if to_seq < from_seq {
                    self.fail(fetch_id, FetchFailure::Unreadable { detail: "empty range".into() });
                    return;
                }
                self.reads.insert(fetch_id, PendingRead { camera: camera.clone(), from_seq, to_seq });
                let audio = self.peer_takes_audio();
                self.actions.push_back(EdgeAction::ReadFrames { fetch_id, camera, from_seq, to_seq, max_bytes, audio });
            }
            SyncFromCentral::Stored { camera, up_to_seq } => {
                if self.acked.get(&camera).is_some_and(|&a| a >= up_to_seq) {
                    return;
                }
                self.acked.insert(camera.clone(), up_to_seq);
                self.actions.push_back(EdgeAction::Acknowledged { camera, up_to_seq });
            }
            SyncFromCentral::Lock(request) => {
                if self.connected {
                    self.actions.push_back(EdgeAction::Lock(request));
                }
            }
            SyncFromCentral::Settings(push) => {
                if !self.connected {
                    return;
                }
                match &self.settings_applied {
                    Some((r, conflicts)) if *r >= push.revision => {
                        // Sent again (the answer was lost): answer again, apply nothing.
                        let conflicts = if *r == push.revision { conflicts.clone() } else { Vec::new() };
                        self.transmit.push_back(SyncFromEdge::SettingsApplied { revision: push.revision, conflicts });
                    }
                    _ if self.settings_applying.is_some_and(|r| r >= push.revision) => {}
                    _ if self.settings_applying.is_some() => {
                        // One at a time: the newest waits for the one being applied.
                        if self.settings_next.as_ref().is_none_or(|n| n.revision < push.revision) {
                            self.settings_next = Some(push);
                        }
                    }
                    _ => {
                        self.settings_applying = Some(push.revision);
                        self.actions.push_back(EdgeAction::ApplySettings(push));
                    }
                }
            }
            SyncFromCentral::LocalChangesAck { up_to_id } => {
                if self.local_outstanding.is_some_and(|o| o <= up_to_id) {
                    self.local_outstanding = None;
                }
                if self.local_changes.front().is_none_or(|c| c.id > up_to_id) {
                    return;
                }
                while self.local_changes.front().is_some_and(|c| c.id <= up_to_id) {
                    self.local_changes.pop_front();
                }
                self.actions.push_back(EdgeAction::LocalChangesAcked { up_to_id });
            }
            SyncFromCentral::EventsAck { up_to_id } => {
                if self.events_outstanding.is_some_and(|o| o <= up_to_id) {
                    self.events_outstanding = None;
                }
                if self.events_acked_up_to.is_some_and(|a| a >= up_to_id) {
                    return;
                }
                self.events_acked_up_to = Some(up_to_id);
                while self.events.front().is_some_and(|e| e.id <= up_to_id) {
                    self.events.pop_front();
                }
                self.actions.push_back(EdgeAction::EventsAcked { up_to_id });
            }
        }
    }

    /// The glue's answer to [`EdgeAction::ReadFrames`]: the frames read and where the range
    /// continues (`None`: the read reached `to_seq`). An answer for a fetch of a connection that
    /// has gone is dropped.
    pub fn frames_read(&mut self, fetch_id: u64, mut frames: Vec<SyncFrame>, mut next_seq: Option<u64>) {
        let Some(read) = self.reads.remove(&fetch_id) else {
            self.stats.stale_reads += 1;
            return;
        };
        let end = next_seq.unwrap_or(read.to_seq.saturating_add(1));
        let in_order = frames.windows(2).all(|w| w[0].seq < w[1].seq);
        let in_range = frames.iter().all(|f| f.seq >= read.from_seq && f.seq < end);
        let next_ok = next_seq.is_none_or(|n| n > read.from_seq && n <= read.to_seq.saturating_add(1));
        if !in_order || !in_range || !next_ok {
            let detail = format!("store returned frames outside {}..={} or out of order", read.from_seq, read.to_seq);
            self.fail(fetch_id, FetchFailure::Unreadable { detail });
            return;
        }
        // Keep the message under the framing limit: cut the chunk short and let central continue.
        let limit = u64::from(MAX_MESSAGE_LEN) - CHUNK_OVERHEAD;
        let mut total = 0u64;
        if let Some(cut) = frames.iter().position(|f| {
            total += f.payload.len() as u64;
            total > limit
        }) {
            if cut == 0 {
                let detail = format!("frame {} is larger than a message", frames[0].seq);
                self.fail(fetch_id, FetchFailure::Unreadable { detail });
                return;
            }
            next_seq = Some(frames[cut].seq);
            frames.truncate(cut);
        }
        let digest = chunk_digest(&frames);
        self.stats.chunks += 1;
        self.stats.chunk_bytes += frames.iter().map(|f| f.payload.len() as u64).sum::<u64>();
        self.transmit.push_back(SyncFromEdge::Chunk(Chunk { fetch_id, camera: read.camera, frames, next_seq, digest }));
    }

    /// The glue's answer to [`EdgeAction::Lock`]: `error` is `None` once the lock is durable.
    /// Dropped while disconnected (central asks again).
    pub fn lock_done(&mut self, lock_id: u64, error: Option<String>) {
        if self.connected {
            self.transmit.push_back(SyncFromEdge::Locked { lock_id, error });
        }
    }

    /// The glue could not read a fetch's frames.
    pub fn read_failed(&mut self, fetch_id: u64, reason: FetchFailure) {
        if self.reads.remove(&fetch_id).is_none() {
            self.stats.stale_reads += 1;
            return;
        }
        self.fail(fetch_id, reason);
    }

    fn fail(&mut self, fetch_id: u64, reason: FetchFailure) {
        self.stats.fetch_failures += 1;
        self.transmit.push_back(SyncFromEdge::FetchFailed { fetch_id, reason });
    }

    /// The next message to send to central, if any. Call after every input and at
    /// [`poll_timeout`](Self::poll_timeout). `now` is a monotonic clock in microseconds.
    pub fn poll_transmit(&mut self, now: u64) -> Option<SyncFromEdge> {
        if !self.connected {
            return None;
        }
        if self.catalog_dirty && self.catalog_sent_at.is_none_or(|t| now >= t + self.config.catalog_min_interval_us) {
            self.catalog_dirty = false;
            if let Some(catalog) = &self.catalog {
                // A catalog that cannot be compressed (out of memory) is skipped; the next change
                // sends a newer one.
                if let Ok(compressed) = compress_catalog(catalog) {
                    self.catalog_sent_at = Some(now);
                    self.stats.catalogs += 1;
                    return Some(SyncFromEdge::Catalog(compressed));
                }
            }
        }
        let unsent: Vec<RemoteEvent> = if self.events_outstanding.is_some() {
            Vec::new()
        } else {
            self.events
                .iter()
                .filter(|e| self.events_sent_up_to.is_none_or(|s| e.id > s))
                .take(self.config.max_events_per_batch.max(1))
                .cloned()
                .collect()
        };
        if let Some(last) = unsent.last().map(|e| e.id) {
            self.events_sent_up_to = Some(last);
            self.events_outstanding = Some(last);
            if let Ok(compressed) = compress_events(&EventBatch { events: unsent }) {
                self.stats.event_batches += 1;
                return Some(SyncFromEdge::Events(compressed));
            }
        }
        if self.local_outstanding.is_none() {
            let local: Vec<LocalChange> =
                self.local_changes.iter().take(self.config.max_events_per_batch.max(1)).cloned().collect();
            if let Some(last) = local.last() {
                self.local_outstanding = Some(last.id);
                return Some(SyncFromEdge::LocalChanges(local));
            }
        }
        self.transmit.pop_front()
    }

    /// The next action for the glue, if any.
    pub fn poll_event(&mut self) -> Option<EdgeAction> {
        self.actions.pop_front()
    }

    /// When to call [`poll_transmit`](Self::poll_transmit) again although no input came (a
    /// rate-limited catalog is due).
    pub fn poll_timeout(&self) -> Option<u64> {
        if self.connected && self.catalog_dirty {
            self.catalog_sent_at.map(|t| t + self.config.catalog_min_interval_us)
        } else {
            None
        }
    }

    /// Events not yet acknowledged by central, oldest first.
    pub fn unacked_events(&self) -> impl Iterator<Item = &RemoteEvent> {
        self.events.iter()
    }

    /// Counters.
    pub fn stats(&self) -> &EdgeStats {
        &self.stats
    }
}
