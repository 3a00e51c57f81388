//! Central's side of the sync protocol: one `sync_core::CentralSync` per unit, restored from
//! central's store at first use and kept while central runs (a unit's queued retrievals wait
//! for it to connect), driven by the unit's connection while it is connected.
//!
//! The rules that make retrievals happen on their own are applied here: when a unit comes back
//! after its link was down, what it recorded meanwhile is queued (`link_gap`); each event of the
//! unit becomes an alarm and, for cameras with `event_window`, a retrieval around it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use protocol::interconnect::CentralMessage;
use protocol::sync::{EventKind, RemoteEvent, SettingsPush, SyncFromEdge};
use sync_core::{
    CentralAction, CentralConfig, CentralSync, LinkPolicy, Priority, Retrieval, RetrievalId, RetrievalStatus,
};
use tokio::sync::{Mutex, Notify, mpsc};

use crate::alarms::Alarms;
use crate::config::{CentralConfig as SiteConfig, RecordingOption};
use crate::enrollment::now_us;
use crate::evidence::{self, EvidenceLock, NewLock};
use crate::live_events::LiveEvent;
use crate::lock_catalog::LockCatalog;
use crate::profiles::ProfileError;
use crate::recording_options::RecordingOptions;
use crate::retrieved::{RetrievedError, RetrievedStore};
use sync_core::time_profile::TimeProfile;

/// How often a unit's "last heard from" time is saved (the start of a link gap): it rises
/// with each sync message (the unit sends its catalog every few seconds), not merely while a
/// connection that may already be dead is open.
const SEEN_EVERY_US: i64 = 2_000_000;
/// Retrieved before the last time a unit was heard from, in case its last messages were
/// older than its last recordings.
const GAP_MARGIN_US: i64 = 5_000_000;
/// A link gap shorter than this is not worth a retrieval.
const MIN_GAP_US: i64 = 3_000_000;
/// While a time profile's window is open, what the unit recorded in it is queued in parts of
/// at least this length (a closed window is queued whole).
const RULE_BATCH_US: i64 = 60_000_000;

/// One unit's sync state.
pub struct UnitSync {
    /// The unit's name.
    pub name: String,
    core: Mutex<CentralSync>,
    wake: Notify,
    /// The connection driving the core now; an older one that lingers (dead but not yet
    /// timed out) must neither drive it nor mark it disconnected.
    session: std::sync::atomic::AtomicU64,
    /// By camera: up to when its time profile's windows have been queued for retrieval.
    rule_until: Mutex<HashMap<String, i64>>,
    /// Whether the unit last reported its link as metered (`EdgeMessage::LinkInfo`), since
    /// central started; kept across its connections.
    reported_metered: std::sync::Mutex<Option<bool>>,
}

/// Every unit's sync state.
pub struct SyncHub {
    store: RetrievedStore,
    site: Arc<SiteConfig>,
    options: Arc<RecordingOptions>,
    units: Mutex<HashMap<String, Arc<UnitSync>>>,
    epoch: Instant,
    /// Where the technician's changes units report are recorded.
    audit: Option<Arc<crate::audit::AuditLog>>,
    /// Every unit's alarms (in the catalog, shared by the nodes).
    alarms: Arc<Alarms>,
    /// Every evidence lock (in the catalog; each node's own record is in its store).
    locks: LockCatalog,
}

/// Why a retrieval could not be queued.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// Central's store failed.
    #[error(transparent)]
    Store(#[from] RetrievedError),
    /// The camera's recording options do not allow it.
    #[error("camera {camera:?} of unit {unit:?} is not configured for retrieval on request")]
    NotAllowed {
        /// The unit.
        unit: String,
        /// The camera.
        camera: String,
    },
    /// The range is empty or reversed.
    #[error("the range is empty: start must be before end")]
    EmptyRange,
}

impl SyncHub {
    /// A hub over central's store of retrieved video, retrieving by each camera's `options`,
    /// raising the units' events as `alarms` and keeping evidence locks in `locks`.
    pub fn new(
        store: RetrievedStore,
        site: Arc<SiteConfig>,
        options: Arc<RecordingOptions>,
        alarms: Arc<Alarms>,
        locks: LockCatalog,
    ) -> SyncHub {
        SyncHub { store, site, options, units: Mutex::default(), epoch: Instant::now(), audit: None, alarms, locks }
    }

    /// Every unit's alarms.
    pub fn alarms(&self) -> &Arc<Alarms> {
        &self.alarms
    }

    /// Every evidence lock, as the catalog has it (see [`SyncHub::locks_listed`] for this
    /// node's side of each).
    pub fn locks(&self) -> &LockCatalog {
        &self.locks
    }

    /// The technician's changes units report go to this audit log too (action
    /// `unit_local_change`, user `technician@UNIT`).
    pub fn with_audit(mut self, audit: crate::audit::AuditLog) -> SyncHub {
        self.audit = Some(Arc::new(audit));
        self
    }

    /// Every unit camera's recording options.
    pub fn options(&self) -> &RecordingOptions {
        &self.options
    }

    /// Central's store of retrieved video.
    pub fn store(&self) -> &RetrievedStore {
        &self.store
    }

    fn now(&self) -> u64 {
        self.epoch.elapsed().as_micros() as u64
    }

    /// The sync state of `unit`, restored from the store at first use.
    /// The map is not held while a unit is restored (reads of the store), so a reconnect
    /// storm's restores do not hold up the units already known; of two restores of one unit
    /// at once, the first kept wins (nothing changes a unit's state before it is kept).
    pub async fn unit(&self, unit: &str) -> Result<Arc<UnitSync>, RetrievedError> {
        if let Some(u) = self.units.lock().await.get(unit) {
            return Ok(u.clone());
        }
        let holdings = self.store.holdings(unit).await?;
        let config = CentralConfig::default();
        let mut core = match self.store.durable(unit).await? {
            Some(durable) => CentralSync::restore(config, durable, holdings),
            None => CentralSync::new(config, holdings),
        };
        // Central's latest settings of the unit, if it has not applied them yet.
        if let Some(profiles) = self.options.profiles() {
            match (profiles.last_push(unit), profiles.state(unit)) {
                (Ok(Some(push)), Ok(state)) => {
                    if state.and_then(|s| s.applied_revision).is_none_or(|a| a < push.revision) {
                        core.settings(push);
                    }
                }
                (Ok(None), _) => {}
                (Err(e), _) | (_, Err(e)) => tracing::error!(unit, "cannot read the unit's settings: {e}"),
            }
        }
        let u = Arc::new(UnitSync {
            name: unit.to_owned(),
            core: Mutex::new(core),
            wake: Notify::new(),
            session: Default::default(),
            rule_until: Mutex::default(),
            reported_metered: std::sync::Mutex::default(),
        });
        Ok(self.units.lock().await.entry(unit.to_owned()).or_insert(u).clone())
    }

    /// Hands `u`'s unanswered evidence locks from the catalog to its sync core (those it has
    /// not got yet), at each connection: those made through other nodes before it connected
    /// (later ones [`crate::lock_apply`] hands over), also after a failed read.
    async fn hand_pending_locks(&self, u: &UnitSync) {
        match self.locks.pending(&u.name).await {
            Ok(pending) => {
                let mut core = u.core.lock().await;
                for lock in pending {
                    if !core.pending_locks().any(|l| l.lock_id == lock.id) {
                        core.lock(lock.request());
                    }
                }
            }
            Err(e) => tracing::error!(unit = %u.name, "cannot read the unit's evidence locks: {e}"),
        }
    }

    /// For `/metrics`: retrievals by state over every unit central has sync state for, and by
    /// unit the bytes of retrieved video stored since central started.
    pub async fn figures(&self) -> SyncFigures {
        let units: Vec<Arc<UnitSync>> = self.units.lock().await.values().cloned().collect();
        let mut figures = SyncFigures::default();
        for u in units {
            let core = u.core.lock().await;
            for r in core.retrievals() {
                *figures.retrievals.entry(r.status().state.as_str()).or_default() += 1;
            }
            figures.stored_bytes.push((u.name.clone(), core.stats().stored_bytes));
        }
        figures.stored_bytes.sort();
        figures
    }

    /// Queues an operator's retrieval of `unit`'s `camera` between two times; returns its API id.
    pub async fn request(&self, unit: &str, camera: &str, start_us: i64, end_us: i64) -> Result<i64, RequestError> {
        if end_us <= start_us {
            return Err(RequestError::EmptyRange);
        }
        let (options, _) = self.options.camera_options(unit, camera);
        if !options.contains(&RecordingOption::OnRequest) {
            return Err(RequestError::NotAllowed { unit: unit.to_owned(), camera: camera.to_owned() });
        }
        let u = self.unit(unit).await?;
        let (core_id, durable) = {
            let mut core = u.core.lock().await;
            let id =
                core.request(Retrieval { camera: camera.to_owned(), start_us, end_us, priority: Priority::Manual });
            (id, core.durable())
        };
        self.store.save_durable(unit, &durable).await?;
        u.wake.notify_one();
        Ok(self.store.add_retrieval(unit, core_id.0, camera, start_us, end_us).await?)
    }

    /// Evidence-locks a range of `unit`'s `camera` until `expires_us`: in the catalog, at
    /// once in this node's store, in the other nodes' stores within their next look at the
    /// catalog, and in the unit's store when it is next connected, to whichever node (see
    /// [`crate::evidence`], [`crate::lock_apply`]).
    pub async fn lock(&self, lock: NewLock) -> Result<EvidenceLock, RequestError> {
        if lock.end_us <= lock.start_us {
            return Err(RequestError::EmptyRange);
        }
        let u = self.unit(&lock.unit).await?;
        let mut made = self.locks.create(lock, now_us()).await.map_err(RetrievedError::from)?;
        // Had this node stopped here, its next look at the catalog would apply the lock.
        (made.central, made.central_error) = evidence::apply(&self.store, &made).await?;
        u.core.lock().await.lock(made.request());
        u.wake.notify_one();
        Ok(made)
    }

    /// Applies catalog lock `lock` to this node (idempotent): its store, and, while the unit
    /// has not answered, the unit's sync core if this node has it loaded (a unit this node
    /// loads later gets its unanswered locks from the catalog then).
    pub async fn apply_lock(&self, lock: &EvidenceLock) -> Result<(), RetrievedError> {
        evidence::apply(&self.store, lock).await?;
        if lock.unit_state != evidence::LockState::Pending {
            return Ok(());
        }
        let u = self.units.lock().await.get(&lock.unit).cloned();
        if let Some(u) = u {
            let mut core = u.core.lock().await;
            if !core.pending_locks().any(|l| l.lock_id == lock.id) {
                core.lock(lock.request());
                drop(core);
                u.wake.notify_one();
            }
        }
        Ok(())
    }

    /// The newest `limit` evidence locks (of `unit`, or all), each with this node's side.
    pub async fn locks_listed(&self, unit: Option<String>, limit: u32) -> Result<Vec<EvidenceLock>, RetrievedError> {
        let locks = self.locks.list(unit, limit).await?;
        let states = evidence::central_states(&self.store, locks.iter().map(|l| l.id).collect()).await?;
        Ok(locks.into_iter().map(|l| evidence::with_central(l, &states)).collect())
    }

    /// Evidence lock `id` with this node's side, if it exists.
    pub async fn lock_by_id(&self, id: u64) -> Result<Option<EvidenceLock>, RetrievedError> {
        let Some(lock) = self.locks.get(id).await? else { return Ok(None) };
        let states = evidence::central_states(&self.store, vec![id]).await?;
        Ok(Some(evidence::with_central(lock, &states)))
    }

    /// Works out `unit`'s effective camera settings for `cameras` (the cameras it shares), makes
    /// them a new revision if they changed, and hands the latest revision to the unit's sync core
    /// unless the unit applied it already (sent when a unit of protocol version 3 or later is
    /// connected). `None` when central keeps no profiles.
    pub async fn push_settings(&self, unit: &str, cameras: &[String]) -> Result<Option<SettingsPush>, ProfileError> {
        let Some(profiles) = self.options.profiles().cloned() else { return Ok(None) };
        let effective = profiles.effective(unit, cameras, |c| self.options.camera(unit, c).0.recording);
        let wire: Vec<_> = effective.iter().map(|(c, s)| s.to_wire(c)).collect();
        let profile = profiles.assignment(unit).profile;
        let (p, u) = (profiles.clone(), unit.to_owned());
        let (push, state) = tokio::task::spawn_blocking(move || {
            let push = p.revise(&u, profile, wire, now_us())?;
            Ok::<_, ProfileError>((push, p.state(&u)?))
        })
        .await
        .map_err(|e| ProfileError::Invalid(e.to_string()))??;
        if state.and_then(|s| s.applied_revision).is_none_or(|a| a < push.revision) {
            let u = self.unit(unit).await.map_err(|e| ProfileError::Invalid(e.to_string()))?;
            u.core.lock().await.settings(push.clone());
            u.wake.notify_one();
        }
        Ok(Some(push))
    }

    /// Records the link `unit` reports (metered or not); its link policy follows at once
    /// unless central.toml forces `metered`.
    pub async fn link_reported(&self, unit: &str, metered: bool) -> Result<(), RetrievedError> {
        let u = self.unit(unit).await?;
        *u.reported_metered.lock().unwrap_or_else(|p| p.into_inner()) = Some(metered);
        u.wake.notify_one();
        Ok(())
    }

    /// The state and progress of the retrieval with API id `id`.
    pub async fn status(&self, id: i64) -> Result<Option<RetrievalStatus>, RetrievedError> {
        let Some(row) = self.store.retrieval(id).await? else {
            return Ok(None);
        };
        let u = self.unit(&row.unit).await?;
        let core = u.core.lock().await;
        Ok(core.retrieval(RetrievalId(row.core_id)))
    }

    /// The unit's latest catalog, if it sent one since central started (a unit whose sync
    /// state is not restored yet has sent none: nothing is read from the store for it).
    pub async fn catalog(&self, unit: &str) -> Result<Option<protocol::sync::CatalogSummary>, RetrievedError> {
        let u = self.units.lock().await.get(unit).cloned();
        match u {
            Some(u) => Ok(u.core.lock().await.catalog().cloned()),
            None => Ok(None),
        }
    }

    /// Drives `unit`'s sync while its connection `session` (whose hello said `peer_version`) is
    /// connected: `inputs` are its sync messages (control stream and chunk streams), `out` the
    /// control stream. Returns when `inputs` ends or a newer connection of the unit takes over.
    pub async fn drive(
        &self,
        unit: &str,
        session: u64,
        peer_version: u16,
        shared: &[String],
        mut inputs: mpsc::Receiver<SyncFromEdge>,
        out: mpsc::Sender<CentralMessage>,
    ) -> Result<(), RetrievedError> {
        use std::sync::atomic::Ordering;
        let u = self.unit(unit).await?;
        u.session.store(session, Ordering::SeqCst);
        self.hand_pending_locks(&u).await;
        let (done_tx, mut done_rx) = mpsc::channel::<Done>(64);
        // The unit's bulk windows, parsed once for the session (the loop asks every wake-up).
        let bulk = self.site.bulk_time_profile(unit);
        let mut policy_set = self.link_policy(&u, bulk.as_ref());
        {
            let mut core = u.core.lock().await;
            core.set_link(policy_set, self.now());
            core.set_peer_version(peer_version);
            core.connected();
            // What the unit recorded while the link was down.
            if let Some(since) = self.store.last_seen(unit).await? {
                let now = now_us();
                if now - since >= MIN_GAP_US {
                    for camera in shared {
                        if self.options.camera_options(unit, camera).0.contains(&RecordingOption::LinkGap) {
                            tracing::info!(unit, camera, gap_s = (now - since) / 1_000_000, "retrieving the link gap");
                            core.request(Retrieval {
                                camera: camera.clone(),
                                start_us: since - GAP_MARGIN_US,
                                end_us: now,
                                priority: Priority::Backfill,
                            });
                        }
                    }
                }
            }
        }
        if let Some(profiles) = self.options.profiles().cloned() {
            let u = unit.to_owned();
            match tokio::task::spawn_blocking(move || profiles.unit_connected(&u, peer_version)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::error!(unit, "cannot record the unit's protocol version: {e}"),
                Err(e) => tracing::error!(unit, "cannot record the unit's protocol version: {e}"),
            }
        }
        if let Err(e) = self.push_settings(unit, shared).await {
            tracing::error!(unit, "cannot work out the unit's settings: {e}");
        }
        self.store.set_last_seen(unit, now_us()).await?;
        let mut seen_saved = now_us();
        loop {
            if u.session.load(Ordering::SeqCst) != session {
                return Ok(());
            }
            let (messages, actions, timeout) = {
                let mut core = u.core.lock().await;
                let now = self.now();
                // Bulk retrieval may start or stop with the time of day and the unit's link.
                let policy = self.link_policy(&u, bulk.as_ref());
                if policy != policy_set {
                    tracing::info!(unit, allowed = policy.allowed, metered = policy.metered, "link policy");
                    core.set_link(policy, now);
                    policy_set = policy;
                }
                core.handle_timeout(now);
                let actions: Vec<CentralAction> = std::iter::from_fn(|| core.poll_event()).collect();
                let messages: Vec<_> = std::iter::from_fn(|| core.poll_transmit(now)).collect();
                let timeout = core.poll_timeout().map(|t| Duration::from_micros(t.saturating_sub(now)));
                (messages, actions, timeout)
            };
            for m in messages {
                if out.send(CentralMessage::Sync(m)).await.is_err() {
                    break;
                }
            }
            self.act(&u, actions, &done_tx).await?;
            let sleep = timeout.unwrap_or(Duration::from_secs(1)).min(Duration::from_secs(1));
            tokio::select! {
                msg = inputs.recv() => match msg {
                    Some(msg) => {
                        let catalog = matches!(msg, SyncFromEdge::Catalog(_));
                        if let Err(e) = u.core.lock().await.handle(msg) {
                            tracing::debug!(unit, "sync: {e}");
                        } else if catalog {
                            self.time_profile_rules(&u).await;
                        }
                        if now_us() - seen_saved >= SEEN_EVERY_US {
                            seen_saved = now_us();
                            self.store.set_last_seen(unit, seen_saved).await?;
                        }
                    }
                    None => break Ok(()),
                },
                Some(done) = done_rx.recv() => {
                    let mut core = u.core.lock().await;
                    match done {
                        Done::Stored(camera, covers) => core.stored(&camera, covers),
                        Done::StoreFailed(camera, covers) => core.store_failed(&camera, covers),
                        Done::Events(up_to) => core.events_stored(up_to),
                        Done::LocalChanges(up_to) => core.local_changes_stored(up_to),
                    }
                }
                () = u.wake.notified() => {}
                () = tokio::time::sleep(sleep) => {}
            }
        }
    }

    /// `unit`'s connection `session` is gone (however [`SyncHub::drive`] ended); nothing
    /// happens if a newer connection has taken over.
    pub async fn disconnected(&self, unit: &str, session: u64) -> Result<(), RetrievedError> {
        let u = self.unit(unit).await?;
        if u.session.load(std::sync::atomic::Ordering::SeqCst) != session {
            return Ok(());
        }
        let durable = {
            let mut core = u.core.lock().await;
            core.disconnected();
            core.durable()
        };
        self.store.save_durable(unit, &durable).await
    }

    /// Carries out the core's actions: stores chunks and events off this task, saves state.
    async fn act(
        &self,
        u: &Arc<UnitSync>,
        actions: Vec<CentralAction>,
        done: &mpsc::Sender<Done>,
    ) -> Result<(), RetrievedError> {
        let mut persist = false;
        for action in actions {
            match action {
                CentralAction::Store { camera, covers, frames, .. } => {
                    let (store, unit, done) = (self.store.clone(), u.name.clone(), done.clone());
                    tokio::spawn(async move {
                        let result = store.store(&unit, &camera, covers.clone(), frames).await;
                        let msg = match result {
                            Ok(()) => Done::Stored(camera, covers),
                            Err(e) => {
                                tracing::error!(unit, camera, "cannot store retrieved video: {e}");
                                Done::StoreFailed(camera, covers)
                            }
                        };
                        let _ = done.send(msg).await;
                    });
                }
                CentralAction::Events { events } => {
                    let up_to = events.last().map(|e| e.id);
                    self.event_windows(u, &events).await;
                    match self.alarms.add(&u.name, events).await {
                        Ok(added) => {
                            for alarm in added {
                                self.store.live().publish(LiveEvent::Alarm(alarm));
                            }
                            if let Some(id) = up_to {
                                let _ = done.send(Done::Events(id)).await;
                            }
                        }
                        // Not acknowledged: the unit sends them again at its next connection.
                        Err(e) => tracing::error!(unit = %u.name, "cannot store the unit's events as alarms: {e}"),
                    }
                }
                CentralAction::Finished { retrieval, status } => {
                    tracing::info!(
                        unit = %u.name,
                        retrieval = retrieval.0,
                        state = status.state.as_str(),
                        bytes = status.bytes_done,
                        "retrieval finished"
                    );
                    self.store.retrieval_finished(&u.name, retrieval.0, status.state.as_str()).await;
                }
                CentralAction::Persist => persist = true,
                CentralAction::Locked { lock_id, error } => {
                    match &error {
                        None => tracing::info!(unit = %u.name, lock = lock_id, "the unit holds the evidence lock"),
                        Some(e) => {
                            tracing::warn!(unit = %u.name, lock = lock_id, "the unit refused the evidence lock: {e}")
                        }
                    }
                    self.locks.unit_answered(lock_id, error.clone(), now_us()).await?;
                    evidence::unit_answered(&self.store, lock_id, error, now_us()).await?;
                }
                CentralAction::SettingsApplied { revision, conflicts } => {
                    tracing::info!(unit = %u.name, revision, conflicts = conflicts.len(), "the unit applied its settings");
                    if let Some(profiles) = self.options.profiles().cloned() {
                        let unit = u.name.clone();
                        let kept = tokio::task::spawn_blocking(move || {
                            profiles.applied(&unit, revision, &conflicts, now_us())
                        })
                        .await;
                        match kept {
                            Ok(Ok(())) => {}
                            Ok(Err(e)) => {
                                tracing::error!(unit = %u.name, "cannot record the unit's settings answer: {e}")
                            }
                            Err(e) => tracing::error!(unit = %u.name, "cannot record the unit's settings answer: {e}"),
                        }
                    }
                }
                CentralAction::LocalChanges { changes } => {
                    let Some(profiles) = self.options.profiles().cloned() else { continue };
                    let up_to = changes.last().map(|c| c.id);
                    let (unit, audit, n) = (u.name.clone(), self.audit.clone(), changes.len());
                    let stored = tokio::task::spawn_blocking(move || {
                        let new = profiles.add_local_changes(&unit, &changes, now_us())?;
                        for c in new.iter().filter(|_| audit.is_some()) {
                            let event = crate::audit::Event {
                                user: format!("technician@{unit}"),
                                action: "unit_local_change",
                                unit: Some(unit.clone()),
                                camera: Some(c.camera.clone()),
                                detail: format!(
                                    "{} = {}{}",
                                    c.field,
                                    c.value,
                                    if c.overridden { " (overridden by central)" } else { "" }
                                ),
                                client: None,
                            };
                            if let Some(Err(e)) = audit.as_ref().map(|a| a.record(&event)) {
                                tracing::error!("cannot write the audit log: {e}");
                            }
                        }
                        Ok::<_, ProfileError>(())
                    })
                    .await
                    .map_err(|e| ProfileError::Invalid(e.to_string()))
                    .and_then(|r| r);
                    match stored {
                        Ok(()) => {
                            tracing::info!(unit = %u.name, changes = n, "the technician changed settings on the unit");
                            if let Some(id) = up_to {
                                let _ = done.send(Done::LocalChanges(id)).await;
                            }
                        }
                        // Not acknowledged: the unit sends them again at its next connection.
                        Err(e) => tracing::error!(unit = %u.name, "cannot store the unit's changes: {e}"),
                    }
                }
            }
        }
        if persist {
            let durable = u.core.lock().await.durable();
            self.store.save_durable(&u.name, &durable).await?;
        }
        Ok(())
    }

    /// `u`'s link policy now: metered or not (see [`metered`]), its cap, and whether bulk
    /// retrieval is inside its `bulk_time_profile`.
    fn link_policy(&self, u: &UnitSync, bulk: Option<&TimeProfile>) -> LinkPolicy {
        let reported = *u.reported_metered.lock().unwrap_or_else(|p| p.into_inner());
        let c = self.site.unit(&u.name);
        LinkPolicy {
            metered: metered(c.and_then(|c| c.metered), reported),
            bandwidth_cap_bps: c.and_then(|c| c.bandwidth_cap_kbit).map(|k| k * 1000),
            allowed: bulk.is_none_or(|p| p.contains(now_us())),
        }
    }

    /// Queues, by rule, what the unit recorded inside the windows of cameras with
    /// `time_profile`, from the unit's catalog: a window once it has closed, and while it is
    /// open, what it holds so far in parts of at least [`RULE_BATCH_US`]. The first catalog
    /// after central starts queues from the oldest recording the unit holds (what central
    /// holds already is not fetched again).
    async fn time_profile_rules(&self, u: &Arc<UnitSync>) {
        let mut core = u.core.lock().await;
        let Some(catalog) = core.catalog().cloned() else { return };
        let mut rule_until = u.rule_until.lock().await;
        for holdings in &catalog.cameras {
            let Some(profile) = self.options.camera_time_profile(&u.name, &holdings.camera) else { continue };
            let (Some(first), Some(end)) =
                (holdings.spans.iter().map(|s| s.start_us).min(), holdings.spans.iter().map(|s| s.end_us).max())
            else {
                continue;
            };
            let from = *rule_until.entry(holdings.camera.clone()).or_insert(first);
            let mut until = end.max(from);
            for (start, stop) in profile.intervals(from, end) {
                // Clipped at `end`: the window may still be open.
                let closed = stop < end;
                if !closed && stop - start < RULE_BATCH_US {
                    until = start;
                    break;
                }
                tracing::info!(unit = %u.name, camera = %holdings.camera, start, stop, "retrieving by time profile");
                core.request(Retrieval {
                    camera: holdings.camera.clone(),
                    start_us: start,
                    end_us: stop,
                    priority: Priority::Rule,
                });
            }
            rule_until.insert(holdings.camera.clone(), until);
        }
    }

    /// Queues the retrieval around an event sent to central's generic-events ingest about
    /// `unit`'s `camera`, as for the unit's own events: when the camera has `event_window`
    /// (runs while the unit is connected, or when it next connects).
    pub async fn ingested_event(&self, unit: &str, camera: &str, time_us: i64) -> Result<(), RetrievedError> {
        let u = self.unit(unit).await?;
        let event = RemoteEvent {
            id: 0,
            cameras: vec![camera.to_owned()],
            time_us,
            kind: EventKind::Generic { name: String::new(), detail: String::new() },
        };
        self.event_windows(&u, &[event]).await;
        let durable = u.core.lock().await.durable();
        self.store.save_durable(unit, &durable).await?;
        u.wake.notify_one();
        Ok(())
    }

    /// Queues the retrievals around events that cameras with `event_window` want.
    async fn event_windows(&self, u: &Arc<UnitSync>, events: &[RemoteEvent]) {
        let mut core = u.core.lock().await;
        for e in events {
            if matches!(e.kind, EventKind::CameraLost { .. } | EventKind::CameraRestored) {
                continue;
            }
            let cameras: Vec<String> = if e.cameras.is_empty() {
                core.catalog().map(|c| c.cameras.iter().map(|h| h.camera.clone()).collect()).unwrap_or_default()
            } else {
                e.cameras.clone()
            };
            for camera in cameras {
                let (options, [pre, post]) = self.options.camera_options(&u.name, &camera);
                if options.contains(&RecordingOption::EventWindow) {
                    core.request(Retrieval {
                        camera,
                        start_us: e.time_us - i64::from(pre) * 1_000_000,
                        end_us: e.time_us + i64::from(post) * 1_000_000,
                        priority: Priority::Event,
                    });
                }
            }
        }
    }
}

/// Whether a unit's link counts as metered: central.toml's `metered` when given (it forces
/// either way), else what the unit last reported, else not.
pub fn metered(configured: Option<bool>, reported: Option<bool>) -> bool {
    configured.or(reported).unwrap_or(false)
}

/// What [`SyncHub::figures`] reports.
#[derive(Debug, Default)]
pub struct SyncFigures {
    /// Retrievals by state (`queued`, `running`, `done`, `failed`).
    pub retrievals: std::collections::BTreeMap<&'static str, u64>,
    /// By unit: bytes of retrieved video stored since central started.
    pub stored_bytes: Vec<(String, u64)>,
}

/// Work finished off the driving task.
enum Done {
    Stored(String, std::ops::Range<u64>),
    StoreFailed(String, std::ops::Range<u64>),
    Events(u64),
    LocalChanges(u64),
}

#[cfg(test)]
mod tests {
    use super::metered;

    #[test]
    fn configuration_forces_and_the_unit_reports_otherwise() {
        assert!(metered(Some(true), Some(false)), "metered = true forces metered");
        assert!(!metered(Some(false), Some(true)), "metered = false forces unmetered");
        assert!(metered(None, Some(true)), "absent: the unit's report");
        assert!(!metered(None, Some(false)));
        assert!(!metered(None, None), "unmetered while the unit reports nothing");
    }
}
