//! A deterministic simulation of one edge unit and central connected by a lossy, reordering
//! link, in the manner of quinn-proto's `Pair`: an [`EdgeSync`] with a fake store that records
//! and grooms, a [`CentralSync`] with a fake store, seeded faults (partitions, stalls, corrupted
//! chunks, edge and central restarts, link policy changes) and invariant checks on every step.

pub mod stores;

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, HashSet};
use std::ops::Range;

use protocol::framing;
use protocol::sync::{
    CameraSettings, EventKind, EvidenceLockRequest, LocalChange, RemoteEvent, SettingsPush, SyncFromCentral,
    SyncFromEdge,
};
use sync_core::{
    CentralAction, CentralConfig, CentralDurable, CentralSync, EdgeAction, EdgeConfig, EdgeSync, Failure, LinkPolicy,
    Priority, Retrieval, RetrievalId, RetrievalState, RetrievalStatus,
};

use stores::{CentralStore, EdgeStore, FrameMeta, payload};

/// xorshift64*: a tiny deterministic generator.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next() % n }
    }
    pub fn between(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo)
    }
    pub fn chance(&mut self, p: f64) -> bool {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }
}

const S: u64 = 1_000_000;

/// What a simulation run does.
#[derive(Debug, Clone)]
pub struct Params {
    pub seed: u64,
    pub cameras: usize,
    /// Recording runs from 1 s to this time.
    pub record_until: u64,
    /// Faults, requests and policy changes happen before this time; afterwards the link is
    /// stable, unmetered and allowed.
    pub faults_until: u64,
    pub deadline: u64,
    pub budget: u64,
    pub base_delay: u64,
    pub jitter: u64,
    pub partitions: usize,
    pub edge_restarts: usize,
    pub central_restarts: usize,
    pub requests: usize,
    pub events: usize,
    pub policy_changes: usize,
    pub stall_chance: f64,
    pub corrupt_chance: f64,
    pub camera_downtime: bool,
    /// Central's protocol version: 4 takes audio frames, 3 does not.
    pub central_version: u16,
    pub config: CentralConfig,
}

impl Params {
    /// Random parameters for `seed`.
    pub fn random(seed: u64) -> Params {
        let mut rng = Rng::new(seed ^ 0xabcdef);
        let record_until = rng.between(20, 60) * S;
        let config = CentralConfig {
            window_bytes: rng.between(1, 6) * 128 * 1024,
            fetch_max_bytes: rng.between(64, 300) as u32 * 1024,
            fetch_timeout_us: 2 * S,
            ..CentralConfig::default()
        };
        Params {
            seed,
            cameras: rng.between(1, 4) as usize,
            record_until,
            faults_until: record_until + 20 * S,
            deadline: 2000 * S,
            budget: if rng.chance(0.5) { u64::MAX } else { rng.between(2, 10) * 1024 * 1024 },
            base_delay: rng.between(2_000, 80_000),
            jitter: rng.below(60_000),
            partitions: rng.below(5) as usize,
            edge_restarts: rng.below(3) as usize,
            central_restarts: rng.below(3) as usize,
            requests: rng.between(1, 8) as usize,
            events: rng.below(12) as usize,
            policy_changes: rng.below(4) as usize,
            stall_chance: if rng.chance(0.3) { 0.01 } else { 0.0 },
            corrupt_chance: if rng.chance(0.3) { 0.02 } else { 0.0 },
            camera_downtime: rng.chance(0.5),
            central_version: if rng.chance(0.7) { 4 } else { 3 },
            config,
        }
    }
}

#[derive(Debug)]
enum Ev {
    Record(usize),
    CatalogTick,
    Groom,
    Deliver {
        conn: u64,
        to_central: bool,
        bytes: Vec<u8>,
    },
    Read {
        inc: u64,
        fetch_id: u64,
        camera: String,
        from: u64,
        to: u64,
        max_bytes: u32,
        audio: bool,
    },
    StoreDone {
        inc: u64,
        camera: String,
        covers: Range<u64>,
        frames: Vec<(u64, Vec<u8>)>,
    },
    EventsDone {
        inc: u64,
        events: Vec<RemoteEvent>,
    },
    CentralWake,
    EdgeWake,
    PartitionStart(u64),
    PartitionEnd,
    Reconnect,
    EdgeRestart,
    CentralRestart,
    Policy(LinkPolicy),
    Request(Retrieval),
    Event,
    CameraDown(usize, u64),
    /// Central asks for evidence lock `id`.
    Lock(u64),
    /// The edge's store made lock `id` durable (edge incarnation `inc`).
    LockDone {
        inc: u64,
        id: u64,
    },
    /// Central's settings of the unit change (a new revision).
    Settings,
    /// The edge kept settings `revision` durably (edge incarnation `inc`).
    SettingsDone {
        inc: u64,
        revision: u64,
    },
    /// The technician changes a field on the unit.
    LocalChange,
    /// Central stored the unit's changes (central incarnation `inc`).
    LocalStored {
        inc: u64,
        changes: Vec<LocalChange>,
    },
}

/// How many settings revisions and technician changes each run makes.
const SETTINGS_PER_RUN: u64 = 4;
const LOCAL_CHANGES_PER_RUN: u64 = 5;

fn settings_push(revision: u64) -> SettingsPush {
    let camera = CameraSettings {
        camera: "*".into(),
        recording: Some(vec!["remote".into()]),
        mode: Some(if revision.is_multiple_of(2) { "event" } else { "continuous" }.into()),
        schedule: None,
        pre_buffer_ms: Some(revision as u32 * 1000),
        post_buffer_ms: None,
        motion: None,
        motion_sensitivity: None,
        max_age_s: None,
    };
    SettingsPush { revision, profile: Some("fleet".into()), set_at_us: revision as i64, cameras: vec![camera] }
}

/// How many evidence locks each run asks for.
const LOCKS_PER_RUN: u64 = 3;

fn lock_request(id: u64) -> EvidenceLockRequest {
    EvidenceLockRequest {
        lock_id: id,
        camera: "cam0".into(),
        start_us: 0,
        end_us: id as i64 * 1_000_000,
        expires_us: i64::MAX,
        reason: format!("lock {id}"),
    }
}

/// A frame the edge ever recorded, and whether retention removed it.
struct Shadow {
    meta: FrameMeta,
    groomed: bool,
}

/// Counters a run reports.
#[derive(Debug, Default, Clone)]
pub struct Outcome {
    pub done: usize,
    pub failed: usize,
    pub frames_stored: u64,
    pub digest_mismatches: u64,
    pub timeouts: u64,
    pub restarts: usize,
    pub acks: u64,
    pub audio_stored: u64,
    pub audio_runs: usize,
    pub video_only_runs: usize,
}

pub struct Sim {
    p: Params,
    rng: Rng,
    now: u64,
    queue: BinaryHeap<Reverse<(u64, u64)>>,
    evs: HashMap<u64, Ev>,
    ev_seq: u64,
    names: Vec<String>,
    edge: EdgeSync,
    edge_inc: u64,
    store: EdgeStore,
    shadow: Vec<BTreeMap<u64, Shadow>>,
    edge_events: Vec<RemoteEvent>,
    next_event_id: u64,
    events_made: u64,
    central: CentralSync,
    central_inc: u64,
    cstore: CentralStore,
    durable: Option<Vec<u8>>,
    policy: LinkPolicy,
    partitioned: u32,
    connected: bool,
    conn: u64,
    /// Store actions of the current central life, to catch a frame handed out twice.
    lifetime_stores: HashSet<(String, u64)>,
    pending_stores: usize,
    requests: Vec<(RetrievalId, Retrieval)>,
    progress: HashMap<RetrievalId, RetrievalStatus>,
    central_wake: Option<u64>,
    edge_wake: Option<u64>,
    down_until: Vec<u64>,
    out: Outcome,
    /// Locks asked for and not yet answered, as central's glue keeps them durably.
    locks_pending: BTreeMap<u64, EvidenceLockRequest>,
    locks_made: u64,
    /// Locks the edge's store holds.
    edge_locks: HashSet<u64>,
    /// Central's latest settings revision and, durably, the one not yet answered.
    settings_made: u64,
    settings_pending: Option<SettingsPush>,
    /// The revision the edge keeps durably, and how often each revision was kept.
    edge_settings: Option<u64>,
    settings_applies: HashMap<u64, u32>,
    /// The technician's changes: made, the edge's durable queue, and what central stored.
    local_made: u64,
    edge_local: Vec<LocalChange>,
    central_local: BTreeMap<u64, LocalChange>,
}

/// Encodes a message body as the glue would (`framing::encode` is the same bytes behind a length
/// prefix; its byte-by-byte `Extend` flavor is slow in debug builds, so the sim uses a `Vec`).
fn encode<T: serde::Serialize>(msg: &T) -> Vec<u8> {
    postcard::to_allocvec(msg).expect("encodes")
}

fn edge_config() -> EdgeConfig {
    EdgeConfig { catalog_min_interval_us: 500_000, max_events_per_batch: 4 }
}

impl Sim {
    pub fn new(p: Params) -> Sim {
        let mut rng = Rng::new(p.seed);
        let names: Vec<String> = (0..p.cameras).map(|i| format!("cam{i}")).collect();
        let store = EdgeStore::new(&names, &mut rng, p.budget);
        let central = CentralSync::new(p.config.clone(), Default::default());
        let mut sim = Sim {
            rng,
            now: 0,
            queue: BinaryHeap::new(),
            evs: HashMap::new(),
            ev_seq: 0,
            edge: EdgeSync::new(edge_config(), Vec::new()),
            edge_inc: 0,
            store,
            shadow: (0..p.cameras).map(|_| BTreeMap::new()).collect(),
            edge_events: Vec::new(),
            next_event_id: 1,
            events_made: 0,
            central,
            central_inc: 0,
            cstore: CentralStore::default(),
            durable: None,
            policy: LinkPolicy::default(),
            partitioned: 0,
            connected: false,
            conn: 0,
            lifetime_stores: HashSet::new(),
            pending_stores: 0,
            requests: Vec::new(),
            progress: HashMap::new(),
            central_wake: None,
            edge_wake: None,
            down_until: vec![0; p.cameras],
            names,
            out: Outcome::default(),
            locks_pending: BTreeMap::new(),
            locks_made: 0,
            edge_locks: HashSet::new(),
            settings_made: 0,
            settings_pending: None,
            edge_settings: None,
            settings_applies: HashMap::new(),
            local_made: 0,
            edge_local: Vec::new(),
            central_local: BTreeMap::new(),
            p,
        };
        sim.schedule_script();
        sim
    }

    fn at(&mut self, t: u64, ev: Ev) {
        self.ev_seq += 1;
        self.queue.push(Reverse((t, self.ev_seq)));
        self.evs.insert(self.ev_seq, ev);
    }

    fn schedule_script(&mut self) {
        let f = self.p.faults_until;
        for i in 0..self.p.cameras {
            let t = S + self.rng.below(S);
            self.at(t, Ev::Record(i));
        }
        self.at(S, Ev::CatalogTick);
        self.at(S, Ev::Groom);
        self.at(S / 2, Ev::Reconnect);
        for _ in 0..self.p.partitions {
            let t = self.rng.below(f);
            let d = self.rng.between(S / 5, 15 * S);
            self.at(t, Ev::PartitionStart(d));
        }
        for _ in 0..self.p.edge_restarts {
            let t = self.rng.below(f);
            self.at(t, Ev::EdgeRestart);
        }
        for _ in 0..self.p.central_restarts {
            let t = self.rng.below(f);
            self.at(t, Ev::CentralRestart);
        }
        for _ in 0..self.p.policy_changes {
            let t = self.rng.below(f);
            let policy = LinkPolicy {
                metered: self.rng.chance(0.4),
                bandwidth_cap_bps: if self.rng.chance(0.5) { Some(self.rng.between(1, 20) * 1_000_000) } else { None },
                allowed: self.rng.chance(0.6),
            };
            self.at(t, Ev::Policy(policy));
        }
        self.at(f, Ev::Policy(LinkPolicy::default()));
        for _ in 0..self.p.requests {
            let t = self.rng.between(S / 2, f);
            let camera = if self.rng.chance(0.05) {
                "ghost".to_string()
            } else {
                self.names[self.rng.below(self.p.cameras as u64) as usize].clone()
            };
            let start = (t as i64) - self.rng.below(self.p.record_until + 10 * S) as i64 + 10 * S as i64;
            let end = start + self.rng.between(S, 25 * S) as i64;
            let priority =
                [Priority::Event, Priority::Manual, Priority::Rule, Priority::Backfill][self.rng.below(4) as usize];
            self.at(t, Ev::Request(Retrieval { camera, start_us: start, end_us: end, priority }));
        }
        for _ in 0..self.p.events {
            let t = self.rng.below(f);
            self.at(t, Ev::Event);
        }
        for id in 1..=LOCKS_PER_RUN {
            let t = self.rng.below(f);
            self.at(t, Ev::Lock(id));
        }
        for _ in 0..SETTINGS_PER_RUN {
            let t = self.rng.below(f);
            self.at(t, Ev::Settings);
        }
        for _ in 0..LOCAL_CHANGES_PER_RUN {
            let t = self.rng.below(f);
            self.at(t, Ev::LocalChange);
        }
        if self.p.camera_downtime {
            for i in 0..self.p.cameras {
                let t = self.rng.below(self.p.record_until);
                let d = self.rng.between(S, 8 * S);
                self.at(t, Ev::CameraDown(i, d));
            }
        }
    }

    /// Runs to the end and checks the final invariants.
    pub fn run(mut self) -> Outcome {
        while let Some(Reverse((t, id))) = self.queue.pop() {
            let ev = self.evs.remove(&id).expect("scheduled");
            assert!(t >= self.now);
            self.now = t;
            self.step(ev);
            self.pump();
            self.check_progress();
            if self.finished() || self.now > self.p.deadline {
                break;
            }
        }
        self.final_checks();
        if self.takes_audio() {
            self.out.audio_runs += 1;
        } else {
            self.out.video_only_runs += 1;
        }
        self.out.digest_mismatches += self.central.stats().digest_mismatches;
        self.out.timeouts += self.central.stats().fetch_timeouts;
        self.out
    }

    fn finished(&self) -> bool {
        self.now > self.p.faults_until
            && self.pending_stores == 0
            && self.edge_events.is_empty()
            && self.events_made == self.p.events as u64
            && self.locks_made == LOCKS_PER_RUN
            && self.locks_pending.is_empty()
            && self.settings_made == SETTINGS_PER_RUN
            && self.settings_pending.is_none()
            && self.local_made == LOCAL_CHANGES_PER_RUN
            && self.edge_local.is_empty()
            && self.requests.len() == self.p.requests
            && self.requests.iter().all(|(id, _)| self.central.retrieval(*id).is_some_and(|s| s.state.is_finished()))
    }

    fn step(&mut self, ev: Ev) {
        let now = self.now;
        match ev {
            Ev::Record(i) => {
                if now < self.p.record_until {
                    if now >= self.down_until[i] {
                        let jitter = self.rng.below(self.store.cams[i].interval_us / 5) as i64;
                        let meta = self.store.record(i, now as i64 + jitter, &mut self.rng);
                        self.shadow[i].insert(meta.seq, Shadow { meta, groomed: false });
                        if self.store.cams[i].audio {
                            let wall = now as i64 + jitter + 1 + self.rng.below(10_000) as i64;
                            let meta = self.store.record_audio(i, wall, &mut self.rng);
                            self.shadow[i].insert(meta.seq, Shadow { meta, groomed: false });
                        }
                    }
                    let next = now + self.store.cams[i].interval_us;
                    self.at(next, Ev::Record(i));
                }
            }
            Ev::CameraDown(i, d) => self.down_until[i] = now + d,
            Ev::CatalogTick => {
                self.edge.catalog_changed(self.store.catalog(now as i64));
                self.at(now + S, Ev::CatalogTick);
            }
            Ev::Groom => {
                for (i, f) in self.store.groom() {
                    self.shadow[i].get_mut(&f.seq).expect("recorded").groomed = true;
                }
                self.at(now + S / 2, Ev::Groom);
            }
            Ev::Deliver { conn, to_central, bytes } => {
                if conn != self.conn || !self.connected {
                    return;
                }
                let body = &bytes[..];
                if to_central {
                    let msg: SyncFromEdge = framing::decode(body).expect("decodes");
                    if let Err(e) = self.central.handle(msg) {
                        assert!(
                            matches!(e, sync_core::SyncError::DigestMismatch { .. }),
                            "seed {}: unexpected central error {e}",
                            self.p.seed
                        );
                    }
                } else {
                    let msg: SyncFromCentral = framing::decode(body).expect("decodes");
                    if let SyncFromCentral::Stored { camera, up_to_seq } = &msg {
                        self.check_ack(camera, *up_to_seq, "received by edge");
                    }
                    self.edge.handle(msg);
                }
            }
            Ev::Read { inc, fetch_id, camera, from, to, max_bytes, audio } => {
                if inc != self.edge_inc {
                    return;
                }
                match self.store.read(&camera, (from, to), max_bytes, audio) {
                    Ok((frames, next)) => self.edge.frames_read(fetch_id, frames, next),
                    Err(reason) => self.edge.read_failed(fetch_id, reason),
                }
            }
            Ev::StoreDone { inc, camera, covers, frames } => {
                if inc != self.central_inc {
                    return; // central died before the write was durable
                }
                self.pending_stores -= 1;
                let i = self.store.index(&camera).expect("known camera");
                for (seq, bytes) in frames {
                    let shadow = self.shadow[i].get(&seq).expect("central stores only recorded frames");
                    assert!(bytes == payload(i, &shadow.meta), "seed {}: {camera}/{seq} differs", self.p.seed);
                    let n = self.cstore.writes.entry((camera.clone(), seq)).or_insert(0);
                    *n += 1;
                    assert_eq!(*n, 1, "seed {}: {camera}/{seq} stored twice", self.p.seed);
                    self.out.frames_stored += 1;
                    if shadow.meta.audio {
                        assert!(self.takes_audio(), "seed {}: audio {camera}/{seq} sent to a v3 central", self.p.seed);
                        self.out.audio_stored += 1;
                    }
                }
                // The range holds every frame the edge ever had in it (audio too, when central
                // takes it).
                let carried = |s: &Shadow| self.takes_audio() || !s.meta.audio;
                for seq in self.shadow[i].range(covers.clone()).filter(|(_, s)| carried(s)).map(|(seq, _)| seq) {
                    assert!(
                        self.cstore.holds(&camera, *seq),
                        "seed {}: {camera} covers {covers:?} but lacks {seq}",
                        self.p.seed
                    );
                }
                self.cstore.cover(&camera, covers.clone());
                self.central.stored(&camera, covers);
            }
            Ev::EventsDone { inc, events } => {
                if inc != self.central_inc {
                    return;
                }
                self.pending_stores -= 1;
                let last = events.last().map(|e| e.id);
                for e in events {
                    self.cstore.events.insert(e.id, e);
                }
                if let Some(last) = last {
                    // Everything up to `last` is held (events arrive in order per batch).
                    if (1..=last).all(|id| self.cstore.events.contains_key(&id)) {
                        self.central.events_stored(last);
                    }
                }
            }
            Ev::CentralWake => {
                self.central_wake = None;
                self.central.handle_timeout(now);
            }
            Ev::EdgeWake => self.edge_wake = None,
            Ev::PartitionStart(d) => {
                self.partitioned += 1;
                self.disconnect();
                self.at(now + d, Ev::PartitionEnd);
            }
            Ev::PartitionEnd => {
                self.partitioned -= 1;
                let d = self.rng.between(S / 10, 2 * S);
                self.at(now + d, Ev::Reconnect);
            }
            Ev::Reconnect => {
                if self.partitioned == 0 && !self.connected {
                    self.connected = true;
                    self.conn += 1;
                    self.edge.set_peer_version(self.p.central_version);
                    self.edge.connected();
                    self.central.connected();
                }
            }
            Ev::EdgeRestart => {
                self.disconnect();
                self.out.restarts += 1;
                self.edge_inc += 1;
                self.edge = EdgeSync::new(edge_config(), self.edge_events.clone());
                if let Some(revision) = self.edge_settings {
                    self.edge.restore_settings(revision, Vec::new());
                }
                for c in self.edge_local.clone() {
                    self.edge.local_change(c);
                }
                self.edge.catalog_changed(self.store.catalog(now as i64));
                let d = self.rng.between(S / 10, 3 * S);
                self.at(now + d, Ev::Reconnect);
            }
            Ev::CentralRestart => {
                self.disconnect();
                self.out.restarts += 1;
                self.central_inc += 1;
                self.pending_stores = 0;
                self.lifetime_stores.clear();
                let holdings = self.cstore.covered.clone();
                self.central = match &self.durable {
                    Some(bytes) => {
                        let durable: CentralDurable = postcard::from_bytes(bytes).expect("durable state decodes");
                        CentralSync::restore(self.p.config.clone(), durable, holdings)
                    }
                    None => CentralSync::new(self.p.config.clone(), holdings),
                };
                for lock in self.locks_pending.values() {
                    self.central.lock(lock.clone());
                }
                if let Some(push) = &self.settings_pending {
                    self.central.settings(push.clone());
                }
                self.central.set_link(self.policy, now);
                self.central_wake = None;
                let d = self.rng.between(S / 10, 3 * S);
                self.at(now + d, Ev::Reconnect);
            }
            Ev::Policy(policy) => {
                self.policy = policy;
                self.central.set_link(policy, now);
            }
            Ev::Request(r) => {
                let id = self.central.request(r.clone());
                self.requests.push((id, r));
            }
            Ev::Lock(id) => {
                self.locks_made += 1;
                self.locks_pending.insert(id, lock_request(id));
                self.central.lock(lock_request(id));
            }
            Ev::LockDone { inc, id } => {
                if inc == self.edge_inc {
                    self.edge_locks.insert(id);
                    self.edge.lock_done(id, None);
                }
            }
            Ev::Settings => {
                self.settings_made += 1;
                let push = settings_push(self.settings_made);
                self.settings_pending = Some(push.clone());
                self.central.settings(push);
            }
            Ev::SettingsDone { inc, revision } => {
                if inc == self.edge_inc {
                    assert!(
                        self.edge_settings.is_none_or(|r| r < revision),
                        "seed {}: settings {revision} applied after {:?}",
                        self.p.seed,
                        self.edge_settings
                    );
                    self.edge_settings = Some(revision);
                    *self.settings_applies.entry(revision).or_default() += 1;
                    self.edge.settings_applied(revision, Vec::new());
                }
            }
            Ev::LocalChange => {
                self.local_made += 1;
                let change = LocalChange {
                    id: self.local_made,
                    camera: "cam0".into(),
                    field: "mode".into(),
                    value: format!("\"{}\"", self.local_made),
                    at_us: now as i64,
                    overridden: false,
                };
                self.edge_local.push(change.clone());
                self.edge.local_change(change);
            }
            Ev::LocalStored { inc, changes } => {
                if inc != self.central_inc {
                    return;
                }
                self.pending_stores -= 1;
                let last = changes.last().map(|c| c.id);
                for c in changes {
                    if let Some(old) = self.central_local.insert(c.id, c.clone()) {
                        assert_eq!(old, c, "seed {}: change {} differs when sent again", self.p.seed, c.id);
                    }
                }
                if let Some(last) = last
                    && (1..=last).all(|id| self.central_local.contains_key(&id))
                {
                    self.central.local_changes_stored(last);
                }
            }
            Ev::Event => {
                let id = self.next_event_id;
                self.next_event_id += 1;
                self.events_made += 1;
                let cameras = self.names.iter().filter(|_| self.rng.chance(0.5)).cloned().collect();
                let e = RemoteEvent { id, cameras, time_us: now as i64, kind: EventKind::Motion };
                self.edge_events.push(e.clone());
                self.edge.event(e).expect("increasing ids");
            }
        }
    }

    fn disconnect(&mut self) {
        if self.connected {
            self.connected = false;
            self.edge.disconnected();
            self.central.disconnected();
        }
    }

    fn send(&mut self, to_central: bool, bytes: Vec<u8>) {
        let mut delay = self.p.base_delay + self.rng.below(self.p.jitter + 1);
        if self.rng.chance(self.p.stall_chance) {
            delay += self.rng.between(3 * S, 6 * S);
        }
        let conn = self.conn;
        self.at(self.now + delay, Ev::Deliver { conn, to_central, bytes });
    }

    /// Drains both machines' outputs until neither has anything to say.
    fn pump(&mut self) {
        loop {
            let mut busy = false;
            while let Some(mut msg) = self.edge.poll_transmit(self.now) {
                busy = true;
                if let SyncFromEdge::Chunk(c) = &mut msg
                    && self.rng.chance(self.p.corrupt_chance)
                    && let Some(f) = c.frames.first_mut()
                {
                    f.payload[10] ^= 1;
                }
                let bytes = encode(&msg);
                self.send(true, bytes);
            }
            while let Some(a) = self.edge.poll_event() {
                busy = true;
                match a {
                    EdgeAction::ReadFrames { fetch_id, camera, from_seq, to_seq, max_bytes, audio } => {
                        assert_eq!(audio, self.takes_audio(), "seed {}: audio negotiated wrong", self.p.seed);
                        let t = self.now + self.rng.below(10_000);
                        let inc = self.edge_inc;
                        self.at(t, Ev::Read { inc, fetch_id, camera, from: from_seq, to: to_seq, max_bytes, audio });
                    }
                    EdgeAction::Acknowledged { .. } => self.out.acks += 1,
                    EdgeAction::EventsAcked { up_to_id } => self.edge_events.retain(|e| e.id > up_to_id),
                    EdgeAction::Lock(request) => {
                        assert_eq!(request, lock_request(request.lock_id), "seed {}: lock altered", self.p.seed);
                        let t = self.now + self.rng.below(20_000);
                        let inc = self.edge_inc;
                        self.at(t, Ev::LockDone { inc, id: request.lock_id });
                    }
                    EdgeAction::ApplySettings(push) => {
                        assert_eq!(push, settings_push(push.revision), "seed {}: settings altered", self.p.seed);
                        let t = self.now + self.rng.below(20_000);
                        let inc = self.edge_inc;
                        self.at(t, Ev::SettingsDone { inc, revision: push.revision });
                    }
                    EdgeAction::LocalChangesAcked { up_to_id } => {
                        assert!(
                            (1..=up_to_id).all(|id| self.central_local.contains_key(&id)),
                            "seed {}: changes up to {up_to_id} acknowledged before central stored them",
                            self.p.seed
                        );
                        self.edge_local.retain(|c| c.id > up_to_id);
                    }
                }
            }
            while let Some(msg) = self.central.poll_transmit(self.now) {
                busy = true;
                if let SyncFromCentral::Stored { camera, up_to_seq } = &msg {
                    self.check_ack(camera, *up_to_seq, "sent by central");
                }
                let bytes = encode(&msg);
                self.send(false, bytes);
            }
            while let Some(a) = self.central.poll_event() {
                busy = true;
                match a {
                    CentralAction::Store { camera, covers, frames, .. } => {
                        let mut out = Vec::new();
                        for f in frames {
                            assert!(covers.contains(&f.seq));
                            assert!(
                                self.lifetime_stores.insert((camera.clone(), f.seq)),
                                "seed {}: Store of {camera}/{} twice",
                                self.p.seed,
                                f.seq
                            );
                            assert!(!self.cstore.holds(&camera, f.seq), "seed {}: Store of a held frame", self.p.seed);
                            out.push((f.seq, f.payload));
                        }
                        self.pending_stores += 1;
                        let t = self.now + self.rng.below(30_000);
                        let inc = self.central_inc;
                        self.at(t, Ev::StoreDone { inc, camera, covers, frames: out });
                    }
                    CentralAction::Events { events } => {
                        self.pending_stores += 1;
                        let t = self.now + self.rng.below(30_000);
                        let inc = self.central_inc;
                        self.at(t, Ev::EventsDone { inc, events });
                    }
                    CentralAction::Finished { .. } => {}
                    CentralAction::Locked { lock_id, error } => {
                        assert_eq!(error, None, "seed {}", self.p.seed);
                        assert!(
                            self.edge_locks.contains(&lock_id),
                            "seed {}: lock {lock_id} answered before it was made",
                            self.p.seed
                        );
                        assert!(
                            self.locks_pending.remove(&lock_id).is_some(),
                            "seed {}: lock {lock_id} answered twice",
                            self.p.seed
                        );
                    }
                    CentralAction::SettingsApplied { revision, .. } => {
                        assert!(
                            self.edge_settings.is_some_and(|r| r >= revision),
                            "seed {}: settings {revision} answered before the edge kept them",
                            self.p.seed
                        );
                        let pending = self.settings_pending.take();
                        assert_eq!(
                            pending.map(|p| p.revision),
                            Some(revision),
                            "seed {}: settings {revision} answered twice or out of turn",
                            self.p.seed
                        );
                    }
                    CentralAction::LocalChanges { changes } => {
                        self.pending_stores += 1;
                        let t = self.now + self.rng.below(30_000);
                        let inc = self.central_inc;
                        self.at(t, Ev::LocalStored { inc, changes });
                    }
                    CentralAction::Persist => {
                        self.durable = Some(postcard::to_allocvec(&self.central.durable()).expect("encodes"));
                    }
                }
            }
            if !busy {
                break;
            }
        }
        if let Some(t) = self.central.poll_timeout()
            && self.central_wake.is_none_or(|w| t < w)
        {
            let t = t.max(self.now + 1);
            self.central_wake = Some(t);
            self.at(t, Ev::CentralWake);
        }
        if let Some(t) = self.edge.poll_timeout()
            && self.edge_wake.is_none_or(|w| t < w)
        {
            let t = t.max(self.now + 1);
            self.edge_wake = Some(t);
            self.at(t, Ev::EdgeWake);
        }
    }

    /// Whether central's protocol takes audio frames.
    fn takes_audio(&self) -> bool {
        self.p.central_version >= protocol::AUDIO_PROTOCOL_VERSION
    }

    /// An acknowledgement never claims a frame central does not durably hold (audio frames
    /// only when central takes them).
    fn check_ack(&self, camera: &str, up_to: u64, when: &str) {
        let i = self.store.index(camera).expect("known camera");
        let carried = |f: &&FrameMeta| self.takes_audio() || !f.audio;
        for f in self.store.cams[i].frames.iter().take_while(|f| f.seq <= up_to).filter(carried) {
            assert!(
                self.cstore.holds(camera, f.seq),
                "seed {}: Stored {camera} up to {up_to} ({when}) but central lacks {}",
                self.p.seed,
                f.seq
            );
        }
    }

    /// Progress never goes back; a finished retrieval stays finished.
    fn check_progress(&mut self) {
        for (id, _) in &self.requests {
            let status = self.central.retrieval(*id).expect("retrieval survives restarts");
            if let Some(prev) = self.progress.get(id) {
                assert!(status.bytes_done >= prev.bytes_done, "seed {}: progress of {id:?} went back", self.p.seed);
                assert!(status.bytes_total >= prev.bytes_total, "seed {}: total of {id:?} shrank", self.p.seed);
                if prev.state.is_finished() {
                    assert_eq!(status.state, prev.state, "seed {}: {id:?} left its final state", self.p.seed);
                }
            }
            assert!(status.bytes_done <= status.bytes_total);
            self.progress.insert(*id, status);
        }
    }

    fn final_checks(&mut self) {
        let seed = self.p.seed;
        assert!(
            self.finished(),
            "seed {seed}: not finished by the deadline: {:?}; stores {} events {} locks {:?} settings {:?}/{:?} local {:?}",
            self.unfinished(),
            self.pending_stores,
            self.edge_events.len(),
            self.locks_pending.keys().collect::<Vec<_>>(),
            self.settings_pending.as_ref().map(|p| p.revision),
            self.edge_settings,
            self.edge_local.iter().map(|c| c.id).collect::<Vec<_>>()
        );
        let margin = (self.p.config.resolve_margin_us + 2 * S) as i64;
        for (id, r) in &self.requests {
            let status = self.central.retrieval(*id).expect("known");
            if r.camera == "ghost" {
                assert_eq!(status.state, RetrievalState::Failed);
                assert_eq!(status.failure, Some(Failure::UnknownCamera));
                continue;
            }
            let i = self.store.index(&r.camera).expect("known camera");
            let takes_audio = self.takes_audio();
            let in_window =
                |s: &&Shadow| s.meta.wall >= r.start_us && s.meta.wall < r.end_us && (takes_audio || !s.meta.audio);
            // Everything still on the unit is at central, byte-identical (checked when stored).
            for s in self.shadow[i].values().filter(in_window).filter(|s| !s.groomed) {
                assert!(self.cstore.holds(&r.camera, s.meta.seq), "seed {seed}: {id:?} {r:?} lacks {}", s.meta.seq);
            }
            match status.state {
                RetrievalState::Done => {
                    self.out.done += 1;
                    assert_eq!(status.bytes_done, status.bytes_total, "seed {seed}: {id:?}");
                    for s in self.shadow[i].values().filter(in_window) {
                        assert!(
                            self.cstore.holds(&r.camera, s.meta.seq),
                            "seed {seed}: done {id:?} lacks {}",
                            s.meta.seq
                        );
                    }
                }
                RetrievalState::Failed => {
                    self.out.failed += 1;
                    assert_eq!(status.failure, Some(Failure::Groomed), "seed {seed}: {id:?}");
                    let lost = self.shadow[i].values().any(|s| {
                        s.groomed && s.meta.wall < r.end_us + margin && !self.cstore.holds(&r.camera, s.meta.seq)
                    });
                    assert!(lost, "seed {seed}: {id:?} {r:?} failed but nothing near it was lost");
                }
                other => panic!("seed {seed}: {id:?} ended {other:?}"),
            }
        }
        for id in 1..self.next_event_id {
            assert!(self.cstore.events.contains_key(&id), "seed {seed}: event {id} never reached central");
        }
        assert!(self.edge_events.is_empty(), "seed {seed}: events left unacked");
        assert_eq!(self.edge_locks.len() as u64, LOCKS_PER_RUN, "seed {seed}: locks missing on the edge");
        assert_eq!(self.edge_settings, Some(SETTINGS_PER_RUN), "seed {seed}: the edge lacks the latest settings");
        assert!(self.settings_applies.values().all(|n| *n == 1), "seed {seed}: a revision applied twice");
        assert_eq!(self.central_local.len() as u64, LOCAL_CHANGES_PER_RUN, "seed {seed}: changes missing at central");
    }

    fn unfinished(&self) -> Vec<(RetrievalId, Retrieval, Option<RetrievalStatus>)> {
        self.requests
            .iter()
            .filter(|(id, _)| !self.central.retrieval(*id).is_some_and(|s| s.state.is_finished()))
            .map(|(id, r)| (*id, r.clone(), self.central.retrieval(*id)))
            .collect()
    }
}
