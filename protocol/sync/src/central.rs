//! The central side, one [`CentralSync`] per unit: resolves retrievals against the unit's
//! catalog, keeps a window of fetches in flight (paced to the link's cap), verifies and
//! de-duplicates chunks, and acknowledges what central durably holds.
//!
//! Resume never depends on in-memory cursors: what to fetch is always
//! `needed − held − being stored − in flight − lost`, so after a dropped link, a unit restart or a
//! central restart ([`CentralSync::restore`]) the next fresh catalog simply continues from central's
//! holdings.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::ops::Range;

use protocol::sync::{
    CatalogSummary, Chunk, EvidenceLockRequest, FetchFailure, LocalChange, RemoteEvent, SettingsConflict, SettingsPush,
    SyncFrame, SyncFromCentral, SyncFromEdge,
};
use serde::{Deserialize, Serialize};

use crate::SyncError;
use crate::codec::{chunk_digest, decompress_catalog, decompress_events};
use crate::pacing::Pacer;
use crate::ranges::RangeSet;
use crate::retrieval::{
    Failure, Priority, Resolve, Retrieval, RetrievalId, RetrievalRecord, RetrievalStatus, span_seqs,
};

/// Sequence numbers central holds, per camera.
pub type Holdings = BTreeMap<String, RangeSet<u64>>;

/// Tuning of [`CentralSync`].
#[derive(Debug, Clone)]
pub struct CentralConfig {
    /// Most payload bytes requested and not yet answered. The default, 1 MiB, is four fetches:
    /// 10 Mbit/s × 200 ms is 250 kB, so it keeps such a link busy with room to spare.
    pub window_bytes: u64,
    /// Payload budget of one fetch.
    pub fetch_max_bytes: u32,
    /// A fetch unanswered this long (microseconds) is issued again.
    pub fetch_timeout_us: u64,
    /// A retrieval's time range is widened by this much on both sides before it is turned into
    /// sequence numbers (the catalog only gives spans; see [`crate`] docs). Make it longer than
    /// a group of pictures so the first frame's key frame comes along.
    pub resolve_margin_us: u64,
    /// A retrieval's range is considered fully recorded once a catalog is this much newer than
    /// its end (frames still on their way into the store).
    pub settle_us: u64,
    /// Failed reads (digest mismatch, unreadable, malformed answer) of the same range before it
    /// is given up as lost.
    pub max_attempts: u32,
}

impl Default for CentralConfig {
    fn default() -> Self {
        CentralConfig {
            window_bytes: 4 * 256 * 1024,
            fetch_max_bytes: 256 * 1024,
            fetch_timeout_us: 30_000_000,
            resolve_margin_us: 3_000_000,
            settle_us: 10_000_000,
            max_attempts: 4,
        }
    }
}

/// The link's policy, from central's configuration and the unit's current link.
///
/// On a metered link only [`Priority::Event`] and [`Priority::Manual`] retrievals run: both are
/// asked for by someone who needs that video now (an incident, an operator waiting), and both are
/// small and bounded; rule and backfill traffic is bulk that can wait for a cheap link. Outside
/// the allowed time window (`allowed == false`) the same holds. The cap applies to all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkPolicy {
    /// The link costs per byte (cellular).
    pub metered: bool,
    /// Most bits per second of retrieved video, `None` for no cap.
    pub bandwidth_cap_bps: Option<u64>,
    /// Bulk retrieval is allowed now (inside the configured time window).
    pub allowed: bool,
}

impl Default for LinkPolicy {
    fn default() -> Self {
        LinkPolicy { metered: false, bandwidth_cap_bps: None, allowed: true }
    }
}

impl LinkPolicy {
    /// True when retrievals of `priority` may fetch now.
    pub fn permits(&self, priority: Priority) -> bool {
        match priority {
            Priority::Event | Priority::Manual => true,
            Priority::Rule | Priority::Backfill => !self.metered && self.allowed,
        }
    }
}

/// Something the glue must do for central.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CentralAction {
    /// Store these verified frames durably, together with the fact that central now holds every
    /// frame of `covers` (sequence numbers of `covers` without a frame hold none), then call
    /// [`CentralSync::stored`] with the same `camera` and `covers` (or
    /// [`CentralSync::store_failed`]). `frames` holds no frame central already has or is storing;
    /// it may be empty when `covers` holds no frames.
    Store {
        /// The retrieval that asked for them (others may want them too).
        retrieval: RetrievalId,
        /// The camera.
        camera: String,
        /// The range this completes.
        covers: Range<u64>,
        /// The frames, in increasing `seq`.
        frames: Vec<SyncFrame>,
    },
    /// Store these events (idempotently by `(unit, id)`: after a restart or reconnect an event
    /// may come again), then call [`CentralSync::events_stored`] with the last id. Batches come
    /// one at a time and in order.
    Events {
        /// The events, in increasing id.
        events: Vec<RemoteEvent>,
    },
    /// A retrieval finished.
    Finished {
        /// Which.
        retrieval: RetrievalId,
        /// How.
        status: RetrievalStatus,
    },
    /// [`CentralSync::durable`] changed: save it (coalesced; one per burst of changes).
    Persist,
    /// The unit answered an evidence lock asked for with [`CentralSync::lock`]: made durable
    /// (`error` is `None`) or refused. Each lock is answered once.
    Locked {
        /// The lock.
        lock_id: u64,
        /// The unit's reason when it could not lock.
        error: Option<String>,
    },
    /// The unit applied the settings revision handed to [`CentralSync::settings`] (once per
    /// revision; an answer to an older revision than the latest is not reported).
    SettingsApplied {
        /// The revision.
        revision: u64,
        /// Fields the technician had changed that central's settings override.
        conflicts: Vec<SettingsConflict>,
    },
    /// The technician's changes on the unit: store them (idempotently by `(unit, id)`: they may
    /// come again after a reconnect), then call [`CentralSync::local_changes_stored`].
    LocalChanges {
        /// The changes, in increasing id.
        changes: Vec<LocalChange>,
    },
}

/// Counters for the status page and tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CentralStats {
    /// Fetches sent.
    pub fetches: u64,
    /// Fetches issued again after [`CentralConfig::fetch_timeout_us`].
    pub fetch_timeouts: u64,
    /// Chunks accepted.
    pub chunks: u64,
    /// Chunks whose digest did not match.
    pub digest_mismatches: u64,
    /// Answers to fetches central no longer waits for (timed out, previous connection).
    pub stale_answers: u64,
    /// Frames dropped from chunks because central already held them.
    pub duplicate_frames: u64,
    /// Payload bytes handed to the glue to store.
    pub stored_bytes: u64,
    /// Catalogs accepted.
    pub catalogs: u64,
    /// Malformed or inconsistent messages from the unit.
    pub violations: u64,
}

/// What [`CentralSync`] needs to survive a central restart (serde: save it with any format).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CentralDurable {
    /// Format of this record, for future changes.
    format: u16,
    next_retrieval_id: u64,
    next_fetch_id: u64,
    retrievals: Vec<RetrievalRecord>,
    events_acked_up_to: Option<u64>,
}

impl CentralDurable {
    /// The retrievals, with their state and progress.
    pub fn retrievals(&self) -> &[RetrievalRecord] {
        &self.retrievals
    }
}

#[derive(Debug, Clone)]
struct Inflight {
    retrieval: RetrievalId,
    camera: String,
    from_seq: u64,
    to_seq: u64,
    max_bytes: u32,
    sent_at: u64,
}

/// Central's sync state machine for one unit. No I/O: the glue feeds it inputs and drains
/// [`poll_transmit`](Self::poll_transmit), [`poll_event`](Self::poll_event) and
/// [`poll_timeout`](Self::poll_timeout) after each.
#[derive(Debug)]
pub struct CentralSync {
    config: CentralConfig,
    link: LinkPolicy,
    connected: bool,
    /// A catalog arrived on the current connection.
    catalog_fresh: bool,
    catalog: Option<CatalogSummary>,
    holdings: Holdings,
    storing: Holdings,
    inflight: BTreeMap<u64, Inflight>,
    inflight_seqs: Holdings,
    inflight_bytes: u64,
    retrievals: BTreeMap<RetrievalId, RetrievalRecord>,
    next_retrieval_id: u64,
    next_fetch_id: u64,
    attempts: HashMap<(String, u64), u32>,
    acks_sent: HashMap<String, u64>,
    events_emitted_up_to: Option<u64>,
    events_acked_up_to: Option<u64>,
    pacer: Pacer,
    transmit: VecDeque<SyncFromCentral>,
    actions: VecDeque<CentralAction>,
    persist: bool,
    stats: CentralStats,
    /// Evidence locks the unit has not answered yet, by id.
    locks: BTreeMap<u64, EvidenceLockRequest>,
    /// The connected unit's protocol version (from its hello).
    peer_version: u16,
    /// Central's latest settings of the unit, until the unit answers that revision.
    settings: Option<SettingsPush>,
}

const DURABLE_FORMAT: u16 = 1;

impl CentralSync {
    /// A new state machine for a unit central has no durable sync state for. `holdings` is what
    /// central's store already holds of the unit (ranges completed by earlier `Store`s).
    pub fn new(config: CentralConfig, holdings: Holdings) -> CentralSync {
        CentralSync {
            config,
            link: LinkPolicy::default(),
            connected: false,
            catalog_fresh: false,
            catalog: None,
            holdings,
            storing: Holdings::new(),
            inflight: BTreeMap::new(),
            inflight_seqs: Holdings::new(),
            inflight_bytes: 0,
            retrievals: BTreeMap::new(),
            next_retrieval_id: 1,
            next_fetch_id: 1,
            attempts: HashMap::new(),
            acks_sent: HashMap::new(),
            events_emitted_up_to: None,
            events_acked_up_to: None,
            pacer: Pacer::new(),
            transmit: VecDeque::new(),
            actions: VecDeque::new(),
            persist: false,
            stats: CentralStats::default(),
            locks: BTreeMap::new(),
            peer_version: protocol::PROTOCOL_VERSION,
            settings: None,
        }
    }

    /// Rebuilds the state machine after a central restart from the last saved
    /// [`durable`](Self::durable) and the holdings of central's store.
    pub fn restore(config: CentralConfig, durable: CentralDurable, holdings: Holdings) -> CentralSync {
        let mut s = CentralSync::new(config, holdings);
        s.next_retrieval_id = durable.next_retrieval_id;
        // Leave a gap so no fetch id of the previous life is reused even if the last save is old.
        s.next_fetch_id = durable.next_fetch_id.saturating_add(1 << 32);
        s.events_acked_up_to = durable.events_acked_up_to;
        s.events_emitted_up_to = durable.events_acked_up_to;
        for r in durable.retrievals {
            s.retrievals.insert(r.id(), r);
        }
        let ids: Vec<_> = s.retrievals.keys().copied().collect();
        for id in ids {
            s.refresh(id);
        }
        s
    }

    /// What to save for a restart (see [`CentralAction::Persist`]).
    pub fn durable(&self) -> CentralDurable {
        CentralDurable {
            format: DURABLE_FORMAT,
            next_retrieval_id: self.next_retrieval_id,
            next_fetch_id: self.next_fetch_id,
            retrievals: self.retrievals.values().cloned().collect(),
            events_acked_up_to: self.events_acked_up_to,
        }
    }

    /// The unit connected. Fetching starts once its catalog arrives on this connection;
    /// unanswered evidence locks go out again at once (to a unit whose protocol knows them).
    pub fn connected(&mut self) {
        self.connected = true;
        self.catalog_fresh = false;
        if self.peer_knows_locks() {
            self.transmit.extend(self.locks.values().cloned().map(SyncFromCentral::Lock));
        }
        if self.peer_knows_settings()
            && let Some(push) = &self.settings
        {
            self.transmit.push_back(SyncFromCentral::Settings(push.clone()));
        }
    }

    /// Whether the connected unit's protocol knows settings (version 3). An older unit is not
    /// sent them; they wait for it to update.
    pub fn peer_knows_settings(&self) -> bool {
        self.peer_version >= 3
    }

    /// Central's settings of the unit: sent now if it is connected, otherwise at the next
    /// connection, until it answers this revision ([`CentralAction::SettingsApplied`]). Only
    /// the latest revision matters: a newer one replaces one not yet answered, an older or
    /// equal one is ignored. The glue keeps the unanswered revision durably and hands it here
    /// again after a restart.
    pub fn settings(&mut self, push: SettingsPush) {
        if self.settings.as_ref().is_some_and(|s| s.revision >= push.revision) {
            return;
        }
        if self.connected && self.peer_knows_settings() {
            self.transmit.push_back(SyncFromCentral::Settings(push.clone()));
        }
        self.settings = Some(push);
    }

    /// The settings revision sent to (or waiting for) the unit and not yet answered.
    pub fn pending_settings(&self) -> Option<&SettingsPush> {
        self.settings.as_ref()
    }

    /// The glue durably stored the unit's changes up to `up_to_id`: acknowledged to the unit.
    pub fn local_changes_stored(&mut self, up_to_id: u64) {
        if self.connected {
            self.transmit.push_back(SyncFromCentral::LocalChangesAck { up_to_id });
        }
    }

    /// The protocol version of the unit's hello; call before [`connected`](Self::connected).
    /// A unit older than version 2 is not sent evidence locks (they wait for it to update).
    pub fn set_peer_version(&mut self, version: u16) {
        self.peer_version = version;
    }

    fn peer_knows_locks(&self) -> bool {
        self.peer_version >= 2
    }

    /// Asks the unit to evidence-lock a range of its store, now if it is connected, otherwise
    /// at the next connection, until it answers ([`CentralAction::Locked`]). The glue keeps
    /// unanswered locks durably and hands them here again after a restart.
    pub fn lock(&mut self, request: EvidenceLockRequest) {
        if self.connected && self.peer_knows_locks() {
            self.transmit.push_back(SyncFromCentral::Lock(request.clone()));
        }
        self.locks.insert(request.lock_id, request);
    }

    /// Evidence locks sent to (or waiting for) the unit and not yet answered.
    pub fn pending_locks(&self) -> impl Iterator<Item = &EvidenceLockRequest> {
        self.locks.values()
    }

    /// The connection is gone: in-flight fetches are forgotten (their ranges are fetched again
    /// after the next catalog) and unsent messages dropped.
    pub fn disconnected(&mut self) {
        self.connected = false;
        self.catalog_fresh = false;
        for f in std::mem::take(&mut self.inflight).into_values() {
            self.pacer.spend(-i64::from(f.max_bytes));
        }
        self.inflight_seqs.clear();
        self.inflight_bytes = 0;
        self.acks_sent.clear();
        self.transmit.clear();
    }

    /// Sets the link policy; it applies to fetches issued from now on.
    pub fn set_link(&mut self, policy: LinkPolicy, now: u64) {
        self.link = policy;
        self.pacer.set_rate(policy.bandwidth_cap_bps, u64::from(self.config.fetch_max_bytes), now);
    }

    /// Queues a retrieval. It is resolved against the catalog when one is known, and kept queued
    /// until then.
    pub fn request(&mut self, retrieval: Retrieval) -> RetrievalId {
        let id = RetrievalId(self.next_retrieval_id);
        self.next_retrieval_id += 1;
        self.retrievals.insert(id, RetrievalRecord::new(id, retrieval));
        self.persist = true;
        self.resolve(id);
        self.refresh(id);
        id
    }

    /// Cancels a retrieval (it ends `Failed` with [`Failure::Cancelled`]); frames already being
    /// stored still are.
    pub fn cancel(&mut self, id: RetrievalId) {
        if let Some(r) = self.retrievals.get_mut(&id)
            && r.cancel()
        {
            self.persist = true;
            self.actions.push_back(CentralAction::Finished { retrieval: id, status: r.status() });
        }
    }

    /// Drops a finished retrieval from the state (after the glue archived its outcome), so the
    /// durable state does not grow forever. Returns it; `None` if unknown or not finished.
    pub fn forget(&mut self, id: RetrievalId) -> Option<RetrievalRecord> {
        if !self.retrievals.get(&id)?.state().is_finished() {
            return None;
        }
        self.persist = true;
        self.retrievals.remove(&id)
    }

    /// A retrieval's progress.
    pub fn retrieval(&self, id: RetrievalId) -> Option<RetrievalStatus> {
        self.retrievals.get(&id).map(RetrievalRecord::status)
    }

    /// Every retrieval, finished or not, by id.
    pub fn retrievals(&self) -> impl Iterator<Item = &RetrievalRecord> {
        self.retrievals.values()
    }

    /// Retrievals not yet finished (for the planner's `queued`).
    pub fn pending_requests(&self) -> impl Iterator<Item = &Retrieval> {
        self.retrievals.values().filter(|r| !r.state().is_finished()).map(RetrievalRecord::request)
    }

    /// The unit's latest catalog.
    pub fn catalog(&self) -> Option<&CatalogSummary> {
        self.catalog.as_ref()
    }

    /// What central holds of the unit.
    pub fn holdings(&self) -> &Holdings {
        &self.holdings
    }

    /// Counters.
    pub fn stats(&self) -> &CentralStats {
        &self.stats
    }

    /// A message from the unit. An error is for the log; the message has been dealt with
    /// (dropped, or its range scheduled again).
    pub fn handle(&mut self, msg: SyncFromEdge) -> Result<(), SyncError> {
        match msg {
            SyncFromEdge::Catalog(compressed) => {
                let catalog = decompress_catalog(&compressed).inspect_err(|_| self.stats.violations += 1)?;
                self.on_catalog(catalog)
            }
            SyncFromEdge::Chunk(chunk) => self.on_chunk(chunk),
            SyncFromEdge::FetchFailed { fetch_id, reason } => {
                self.on_fetch_failed(fetch_id, reason);
                Ok(())
            }
            SyncFromEdge::Events(compressed) => {
                let batch = decompress_events(&compressed).inspect_err(|_| self.stats.violations += 1)?;
                self.on_events(batch.events);
                Ok(())
            }
            SyncFromEdge::Locked { lock_id, error } => {
                // An answer to a lock sent twice (before and after a reconnect) comes twice.
                if self.locks.remove(&lock_id).is_some() {
                    self.actions.push_back(CentralAction::Locked { lock_id, error });
                }
                Ok(())
            }
            SyncFromEdge::SettingsApplied { revision, conflicts } => {
                // Answered once: the latest revision only (an answer to an older one, or a
                // second answer, changes nothing).
                if self.settings.as_ref().is_some_and(|s| s.revision == revision) {
                    self.settings = None;
                    self.actions.push_back(CentralAction::SettingsApplied { revision, conflicts });
                }
                Ok(())
            }
            SyncFromEdge::LocalChanges(changes) => {
                if changes.windows(2).any(|w| w[0].id >= w[1].id) {
                    self.stats.violations += 1;
                    return Err(SyncError::Violation("local changes out of order".into()));
                }
                if !changes.is_empty() {
                    self.actions.push_back(CentralAction::LocalChanges { changes });
                }
                Ok(())
            }
        }
    }

    /// The glue durably stored a [`CentralAction::Store`]: central now holds `covers`.
    pub fn stored(&mut self, camera: &str, covers: Range<u64>) {
        if let Some(s) = self.storing.get_mut(camera) {
            s.remove(covers.clone());
        }
        self.holdings.entry(camera.to_string()).or_default().insert(covers.clone());
        let ids: Vec<_> = self
            .retrievals
            .values()
            .filter(|r| r.request().camera == camera && r.needs(&covers))
            .map(|r| r.id())
            .collect();
        for id in ids {
            self.refresh(id);
        }
        self.update_ack(camera);
    }

    /// The glue could not store a [`CentralAction::Store`]; its range is fetched again.
    pub fn store_failed(&mut self, camera: &str, covers: Range<u64>) {
        if let Some(s) = self.storing.get_mut(camera) {
            s.remove(covers);
        }
    }

    /// The glue durably stored every event up to `up_to_id`.
    pub fn events_stored(&mut self, up_to_id: u64) {
        if self.events_acked_up_to.is_some_and(|a| a >= up_to_id) {
            return;
        }
        self.events_acked_up_to = Some(up_to_id);
        self.persist = true;
        if self.connected {
            self.transmit.push_back(SyncFromCentral::EventsAck { up_to_id });
        }
    }

    /// Processes timers due at `now`: fetches unanswered for too long are forgotten, to be issued
    /// again by [`poll_transmit`](Self::poll_transmit).
    pub fn handle_timeout(&mut self, now: u64) {
        let due: Vec<u64> = self
            .inflight
            .iter()
            .filter(|(_, f)| now >= f.sent_at.saturating_add(self.config.fetch_timeout_us))
            .map(|(&id, _)| id)
            .collect();
        for id in due {
            self.stats.fetch_timeouts += 1;
            if let Some(f) = self.forget_fetch(id) {
                self.pacer.spend(-i64::from(f.max_bytes));
            }
        }
        self.pacer.refill(now);
    }

    /// When [`handle_timeout`](Self::handle_timeout) (then `poll_transmit`) should run next.
    pub fn poll_timeout(&self) -> Option<u64> {
        let fetch = self.inflight.values().map(|f| f.sent_at.saturating_add(self.config.fetch_timeout_us)).min();
        let pace = if self.connected && self.catalog_fresh { self.pacer.next_ready() } else { None };
        match (fetch, pace) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The next message for the unit, if any: acknowledgements first, then fetches while the
    /// window, the pacing budget and the link policy allow. `now` is a monotonic clock in
    /// microseconds.
    pub fn poll_transmit(&mut self, now: u64) -> Option<SyncFromCentral> {
        if let Some(msg) = self.transmit.pop_front() {
            return Some(msg);
        }
        if !self.connected || !self.catalog_fresh {
            return None;
        }
        let max = u64::from(self.config.fetch_max_bytes);
        if !self.inflight.is_empty() && self.inflight_bytes + max > self.config.window_bytes {
            return None;
        }
        self.pacer.refill(now);
        if !self.pacer.ready() {
            return None;
        }
        let (retrieval, camera, seqs) = self.next_fetch_range()?;
        let to_seq = self.fetch_end(&camera, &seqs);
        let fetch_id = self.next_fetch_id;
        self.next_fetch_id += 1;
        self.inflight_seqs.entry(camera.clone()).or_default().insert(seqs.start..to_seq + 1);
        self.inflight_bytes += max;
        self.pacer.spend(max as i64);
        self.inflight.insert(
            fetch_id,
            Inflight {
                retrieval,
                camera: camera.clone(),
                from_seq: seqs.start,
                to_seq,
                max_bytes: self.config.fetch_max_bytes,
                sent_at: now,
            },
        );
        if let Some(r) = self.retrievals.get_mut(&retrieval)
            && r.set_running()
        {
            self.persist = true;
        }
        self.stats.fetches += 1;
        Some(SyncFromCentral::Fetch {
            fetch_id,
            camera,
            from_seq: seqs.start,
            to_seq,
            max_bytes: self.config.fetch_max_bytes,
        })
    }

    /// The next action for the glue, if any.
    pub fn poll_event(&mut self) -> Option<CentralAction> {
        if let Some(a) = self.actions.pop_front() {
            return Some(a);
        }
        if std::mem::take(&mut self.persist) {
            return Some(CentralAction::Persist);
        }
        None
    }

    /// The first range to fetch: the most urgent permitted retrieval (priority, then oldest
    /// request), its lowest missing sequence numbers.
    fn next_fetch_range(&self) -> Option<(RetrievalId, String, Range<u64>)> {
        let mut order: Vec<&RetrievalRecord> = self
            .retrievals
            .values()
            .filter(|r| !r.state().is_finished() && self.link.permits(r.request().priority))
            .collect();
        order.sort_by_key(|r| (r.request().priority, r.id()));
        let empty = RangeSet::new();
        for r in order {
            let camera = &r.request().camera;
            let have = self
                .holdings
                .get(camera)
                .unwrap_or(&empty)
                .union(self.storing.get(camera).unwrap_or(&empty))
                .union(self.inflight_seqs.get(camera).unwrap_or(&empty));
            if let Some(first) = r.missing(&have).iter().next() {
                return Some((r.id(), camera.clone(), first));
            }
        }
        None
    }

    /// The last sequence number of a fetch starting at `seqs.start`: as many as the span's
    /// average frame size suggests fit in one fetch, within `seqs`.
    fn fetch_end(&self, camera: &str, seqs: &Range<u64>) -> u64 {
        let span = self
            .catalog
            .as_ref()
            .and_then(|c| c.cameras.iter().find(|h| h.camera == camera))
            .and_then(|h| h.spans.iter().find(|s| s.first_seq <= seqs.start && seqs.start <= s.last_seq));
        let count = match span {
            Some(s) if s.frames > 0 && s.bytes > 0 => {
                let avg = (s.bytes / s.frames).max(1);
                let frames = (u64::from(self.config.fetch_max_bytes) / avg).max(1);
                let seqs_per_frame = (s.last_seq - s.first_seq + 1) as f64 / s.frames as f64;
                ((frames as f64 * seqs_per_frame).ceil() as u64).max(1)
            }
            _ => 64,
        };
        (seqs.start.saturating_add(count).min(seqs.end)) - 1
    }

    fn forget_fetch(&mut self, fetch_id: u64) -> Option<Inflight> {
        let f = self.inflight.remove(&fetch_id)?;
        if let Some(s) = self.inflight_seqs.get_mut(&f.camera) {
            s.remove(f.from_seq..f.to_seq + 1);
        }
        self.inflight_bytes = self.inflight_bytes.saturating_sub(u64::from(f.max_bytes));
        Some(f)
    }

    fn on_catalog(&mut self, catalog: CatalogSummary) -> Result<(), SyncError> {
        if let Err(e) = validate(&catalog) {
            self.stats.violations += 1;
            return Err(e);
        }
        self.stats.catalogs += 1;
        self.catalog = Some(catalog);
        if self.connected {
            self.catalog_fresh = true;
        }
        let ids: Vec<_> = self.retrievals.keys().copied().collect();
        for id in ids {
            self.resolve(id);
            self.refresh(id);
        }
        let cameras: Vec<String> =
            self.catalog.iter().flat_map(|c| c.cameras.iter().map(|h| h.camera.clone())).collect();
        for camera in cameras {
            self.update_ack(&camera);
        }
        Ok(())
    }

    fn on_chunk(&mut self, chunk: Chunk) -> Result<(), SyncError> {
        let Some(f) = self.forget_fetch(chunk.fetch_id) else {
            self.stats.stale_answers += 1;
            return Ok(());
        };
        let payload: u64 = chunk.frames.iter().map(|fr| fr.payload.len() as u64).sum();
        self.pacer.spend(payload as i64 - i64::from(f.max_bytes));
        let end = chunk.next_seq.unwrap_or(f.to_seq + 1);
        let valid = chunk.camera == f.camera
            && end > f.from_seq
            && end <= f.to_seq + 1
            && chunk.frames.windows(2).all(|w| w[0].seq < w[1].seq)
            && chunk.frames.iter().all(|fr| fr.seq >= f.from_seq && fr.seq < end);
        if !valid {
            self.stats.violations += 1;
            self.attempt_failed(&f, Failure::Unreadable { detail: "malformed chunk".into() });
            return Err(SyncError::Violation(format!(
                "chunk for fetch {} ({} {}..={}) out of range",
                chunk.fetch_id, f.camera, f.from_seq, f.to_seq
            )));
        }
        if chunk_digest(&chunk.frames) != chunk.digest {
            self.stats.digest_mismatches += 1;
            self.attempt_failed(&f, Failure::Unreadable { detail: "digest mismatch".into() });
            return Err(SyncError::DigestMismatch { fetch_id: chunk.fetch_id });
        }
        self.stats.chunks += 1;
        self.attempts.remove(&(f.camera.clone(), f.from_seq));
        let covers = f.from_seq..end;
        let empty = RangeSet::new();
        let have = self.holdings.get(&f.camera).unwrap_or(&empty).union(self.storing.get(&f.camera).unwrap_or(&empty));
        let new = RangeSet::from(covers).subtract(&have);
        let mut frames = chunk.frames.into_iter().peekable();
        for piece in new.iter() {
            let mut mine = Vec::new();
            while let Some(fr) = frames.next_if(|fr| fr.seq < piece.end) {
                if fr.seq >= piece.start {
                    mine.push(fr);
                } else {
                    self.stats.duplicate_frames += 1;
                }
            }
            self.stats.stored_bytes += mine.iter().map(|fr| fr.payload.len() as u64).sum::<u64>();
            self.storing.entry(f.camera.clone()).or_default().insert(piece.clone());
            self.actions.push_back(CentralAction::Store {
                retrieval: f.retrieval,
                camera: f.camera.clone(),
                covers: piece,
                frames: mine,
            });
        }
        self.stats.duplicate_frames += frames.count() as u64;
        Ok(())
    }

    fn on_fetch_failed(&mut self, fetch_id: u64, reason: FetchFailure) {
        let Some(f) = self.forget_fetch(fetch_id) else {
            self.stats.stale_answers += 1;
            return;
        };
        self.pacer.spend(-i64::from(f.max_bytes));
        match reason {
            FetchFailure::Gone { available_from } if available_from > f.from_seq => {
                self.mark_lost(&f.camera, f.from_seq..available_from, &Failure::Groomed);
            }
            FetchFailure::Gone { .. } => {
                self.stats.violations += 1;
                self.attempt_failed(&f, Failure::Groomed);
            }
            FetchFailure::UnknownCamera => self.mark_lost(&f.camera, f.from_seq..f.to_seq + 1, &Failure::UnknownCamera),
            FetchFailure::Unreadable { detail } => self.attempt_failed(&f, Failure::Unreadable { detail }),
        }
    }

    /// Counts a failed attempt at a range; after [`CentralConfig::max_attempts`] it is lost.
    fn attempt_failed(&mut self, f: &Inflight, reason: Failure) {
        let key = (f.camera.clone(), f.from_seq);
        let n = self.attempts.entry(key.clone()).or_insert(0);
        *n += 1;
        if *n >= self.config.max_attempts {
            self.attempts.remove(&key);
            self.mark_lost(&f.camera, f.from_seq..f.to_seq + 1, &reason);
        }
    }

    fn mark_lost(&mut self, camera: &str, range: Range<u64>, reason: &Failure) {
        let empty = RangeSet::new();
        let have = self.holdings.get(camera).unwrap_or(&empty).union(self.storing.get(camera).unwrap_or(&empty));
        let mut ids = Vec::new();
        for r in self.retrievals.values_mut() {
            if r.request().camera == camera && r.mark_lost(range.clone(), &have, reason) {
                ids.push(r.id());
            }
        }
        for id in ids {
            self.persist = true;
            self.refresh(id);
        }
    }

    fn on_events(&mut self, events: Vec<RemoteEvent>) {
        let floor = self.events_emitted_up_to.max(self.events_acked_up_to);
        let events_min = events.iter().map(|e| e.id).min();
        let mut fresh: Vec<RemoteEvent> = events.into_iter().filter(|e| floor.is_none_or(|f| e.id > f)).collect();
        fresh.sort_by_key(|e| e.id);
        fresh.dedup_by_key(|e| e.id);
        if let Some(acked) = self.events_acked_up_to
            && self.connected
            && events_min.is_some_and(|m| m <= acked)
        {
            // The unit sent events central already holds: it missed the ack; repeat it.
            self.transmit.push_back(SyncFromCentral::EventsAck { up_to_id: acked });
        }
        if let Some(last) = fresh.last() {
            self.events_emitted_up_to = Some(last.id);
            self.actions.push_back(CentralAction::Events { events: fresh });
        }
    }

    /// Applies the catalog to a retrieval.
    fn resolve(&mut self, id: RetrievalId) {
        let Some(catalog) = &self.catalog else { return };
        let Some(r) = self.retrievals.get_mut(&id) else { return };
        let holdings = catalog.cameras.iter().find(|h| h.camera == r.request().camera);
        let cfg = Resolve { margin_us: self.config.resolve_margin_us, settle_us: self.config.settle_us };
        let empty = RangeSet::new();
        let held = self.holdings.get(&r.request().camera).unwrap_or(&empty);
        if r.resolve(holdings, held, catalog.as_of_us, cfg) {
            self.persist = true;
        }
    }

    /// Updates a retrieval's progress and finishes it when it can.
    fn refresh(&mut self, id: RetrievalId) {
        let Some(r) = self.retrievals.get_mut(&id) else { return };
        let empty = RangeSet::new();
        let held = self.holdings.get(&r.request().camera).unwrap_or(&empty);
        if r.update_progress(held) {
            self.persist = true;
        }
        if r.check_finished(held) {
            self.persist = true;
            self.actions.push_back(CentralAction::Finished { retrieval: id, status: r.status() });
        }
    }

    /// Sends `Stored` for `camera` when the highest sequence number up to which central holds
    /// everything the catalog lists has risen.
    fn update_ack(&mut self, camera: &str) {
        if !self.connected {
            return;
        }
        let Some(up_to_seq) = self.ack_point(camera) else { return };
        if self.acks_sent.get(camera).is_some_and(|&a| a >= up_to_seq) {
            return;
        }
        self.acks_sent.insert(camera.to_string(), up_to_seq);
        self.transmit.push_back(SyncFromCentral::Stored { camera: camera.to_string(), up_to_seq });
    }

    /// The highest `s` such that central holds every catalogued sequence number `<= s`.
    fn ack_point(&self, camera: &str) -> Option<u64> {
        let h = self.catalog.as_ref()?.cameras.iter().find(|h| h.camera == camera)?;
        let listed: RangeSet<u64> = h.spans.iter().map(span_seqs).collect();
        let first = listed.min()?;
        let empty = RangeSet::new();
        let missing = listed.subtract(self.holdings.get(camera).unwrap_or(&empty));
        let up_to = match missing.min() {
            None => listed.end()? - 1,
            Some(m) if m > first => m - 1,
            Some(_) => return None,
        };
        Some(up_to)
    }
}

/// Checks a catalog's spans are ordered, disjoint and sane.
fn validate(catalog: &CatalogSummary) -> Result<(), SyncError> {
    for h in &catalog.cameras {
        for spans in [&h.spans, &h.removed] {
            validate_spans(&h.camera, spans)?;
        }
    }
    let mut names: Vec<&str> = catalog.cameras.iter().map(|h| h.camera.as_str()).collect();
    names.sort_unstable();
    if names.windows(2).any(|w| w[0] == w[1]) {
        return Err(SyncError::InvalidCatalog("a camera is listed twice".into()));
    }
    Ok(())
}

fn validate_spans(camera: &str, spans: &[protocol::sync::Span]) -> Result<(), SyncError> {
    let mut prev_end: Option<u64> = None;
    {
        for s in spans {
            if s.last_seq < s.first_seq || s.last_seq == u64::MAX || s.end_us < s.start_us {
                return Err(SyncError::InvalidCatalog(format!("camera {camera}: inverted span {s:?}")));
            }
            if prev_end.is_some_and(|p| s.first_seq <= p) {
                return Err(SyncError::InvalidCatalog(format!("camera {camera}: spans out of order at {s:?}")));
            }
            prev_end = Some(s.last_seq);
        }
    }
    Ok(())
}
