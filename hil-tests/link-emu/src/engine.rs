//! Moving packets: per direction, a reader thread that takes packets from the sending side's
//! TUN device and schedules them with the [`Shaper`], and a writer thread that hands each to
//! the receiving side's TUN device at its release instant (a binary heap of release times,
//! waited on with a condition variable; timer slack set to 1 ns).

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::fmt;
use std::fs::File;
use std::io::{self, Read, Write};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Instant;

use crate::params::{Dir, DirParams, ParamError, apply_words};
use crate::shaper::{Shaper, Verdict};

/// The most bytes held for release in one direction, whatever the parameters (a guard against
/// runaway memory with huge delays and no rate limit); packets beyond it count as queue drops.
pub const MAX_HELD_BYTES: u64 = 256 * 1024 * 1024;

/// A direction's thread failed for good (e.g. its TUN device vanished with its namespace).
#[derive(Debug, thiserror::Error)]
#[error("{dir}: {what}: {source}")]
pub struct EngineError {
    /// The direction (`u2c` or `c2u`).
    pub dir: &'static str,
    /// What failed.
    pub what: &'static str,
    /// The OS error.
    pub source: io::Error,
}

/// One direction's counters.
#[derive(Default)]
struct Counters {
    received: AtomicU64,
    packets: AtomicU64,
    bytes: AtomicU64,
    drop_loss: AtomicU64,
    drop_queue: AtomicU64,
    drop_outage: AtomicU64,
    write_errors: AtomicU64,
}

/// A copy of one direction's counters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CounterSnapshot {
    /// Packets read from the sending side.
    pub received: u64,
    /// Packets delivered to the receiving side.
    pub packets: u64,
    /// Bytes (IP packets, headers included) delivered to the receiving side.
    pub bytes: u64,
    /// Packets dropped by random loss.
    pub drop_loss: u64,
    /// Packets dropped because the bottleneck queue was full.
    pub drop_queue: u64,
    /// Packets dropped because the link was down.
    pub drop_outage: u64,
    /// Packets the receiving TUN device refused (e.g. while it was down).
    pub write_errors: u64,
    /// Packets accepted and waiting for their release instant.
    pub queued: u64,
}

impl CounterSnapshot {
    /// Writes `PREFIX.key=value` words.
    pub fn write_words(&self, prefix: &str, f: &mut impl fmt::Write) -> fmt::Result {
        write!(
            f,
            "{prefix}.received={} {prefix}.packets={} {prefix}.bytes={} {prefix}.drop_loss={} {prefix}.drop_queue={} \
             {prefix}.drop_outage={} {prefix}.write_errors={} {prefix}.queued={}",
            self.received,
            self.packets,
            self.bytes,
            self.drop_loss,
            self.drop_queue,
            self.drop_outage,
            self.write_errors,
            self.queued
        )
    }
}

/// A packet waiting for its release instant; the heap's top is the earliest (then the first
/// to arrive).
struct Pending {
    release: Instant,
    seq: u64,
    data: Vec<u8>,
}

impl PartialEq for Pending {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Pending {}
impl PartialOrd for Pending {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Pending {
    fn cmp(&self, other: &Self) -> Ordering {
        (other.release, other.seq).cmp(&(self.release, self.seq))
    }
}

struct State {
    shaper: Shaper,
    held: BinaryHeap<Pending>,
    held_bytes: u64,
    seq: u64,
}

/// One direction of the link.
pub struct Direction {
    dir: Dir,
    state: Mutex<State>,
    wake: Condvar,
    counters: Counters,
}

impl Direction {
    fn new(dir: Dir, params: DirParams, seed: u64) -> Direction {
        Direction {
            dir,
            state: Mutex::new(State {
                shaper: Shaper::new(params, seed),
                held: BinaryHeap::new(),
                held_bytes: 0,
                seq: 0,
            }),
            wake: Condvar::new(),
            counters: Counters::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The parameters in force.
    pub fn params(&self) -> DirParams {
        self.lock().shaper.params().clone()
    }

    /// Changes the parameters. Taking the link down drops every packet held.
    pub fn set_params(&self, params: DirParams) {
        let mut st = self.lock();
        if params.down && !st.held.is_empty() {
            self.counters.drop_outage.fetch_add(st.held.len() as u64, Relaxed);
            st.held.clear();
            st.held_bytes = 0;
        }
        st.shaper.set_params(params);
        drop(st);
        self.wake.notify_one();
    }

    /// A copy of the counters.
    pub fn counters(&self) -> CounterSnapshot {
        let c = &self.counters;
        let queued = self.lock().held.len() as u64;
        CounterSnapshot {
            received: c.received.load(Relaxed),
            packets: c.packets.load(Relaxed),
            bytes: c.bytes.load(Relaxed),
            drop_loss: c.drop_loss.load(Relaxed),
            drop_queue: c.drop_queue.load(Relaxed),
            drop_outage: c.drop_outage.load(Relaxed),
            write_errors: c.write_errors.load(Relaxed),
            queued,
        }
    }

    /// Sets the counters (not the queue) back to zero.
    pub fn reset_counters(&self) {
        let c = &self.counters;
        for a in [&c.received, &c.packets, &c.bytes, &c.drop_loss, &c.drop_queue, &c.drop_outage, &c.write_errors] {
            a.store(0, Relaxed);
        }
    }

    /// Takes in a packet that arrived at `now`.
    pub fn offer(&self, now: Instant, packet: &[u8]) {
        self.counters.received.fetch_add(1, Relaxed);
        let mut st = self.lock();
        let verdict = st.shaper.admit(now, packet.len());
        let counter = match verdict {
            Verdict::Deliver(_) if st.held_bytes + packet.len() as u64 > MAX_HELD_BYTES => &self.counters.drop_queue,
            Verdict::Deliver(release) => {
                let seq = st.seq;
                st.seq += 1;
                st.held_bytes += packet.len() as u64;
                let earliest = st.held.peek().is_none_or(|top| release < top.release);
                st.held.push(Pending { release, seq, data: packet.to_vec() });
                drop(st);
                if earliest {
                    self.wake.notify_one();
                }
                return;
            }
            Verdict::DropLoss => &self.counters.drop_loss,
            Verdict::DropQueue => &self.counters.drop_queue,
            Verdict::DropOutage => &self.counters.drop_outage,
        };
        counter.fetch_add(1, Relaxed);
    }

    /// Reads packets from `input` for ever.
    fn run_reader(&self, mut input: File) -> Result<(), EngineError> {
        let mut buf = vec![0u8; 65536];
        loop {
            let n = match input.read(&mut buf) {
                Ok(0) => {
                    let source = io::Error::new(io::ErrorKind::UnexpectedEof, "TUN device closed");
                    return Err(EngineError { dir: self.dir.name(), what: "reading", source });
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(source) => return Err(EngineError { dir: self.dir.name(), what: "reading", source }),
            };
            self.offer(Instant::now(), &buf[..n]);
        }
    }

    /// Writes each held packet to `output` at its release instant, for ever.
    fn run_writer(&self, mut output: File) {
        // Wake-ups as close to the deadline as the kernel can (default slack is 50 µs).
        // SAFETY: plain prctl on the calling thread.
        unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong, 0, 0, 0) };
        let mut due = Vec::new();
        let mut st = self.lock();
        loop {
            let now = Instant::now();
            while st.held.peek().is_some_and(|top| top.release <= now) {
                let p = st.held.pop().expect("peeked");
                st.held_bytes -= p.data.len() as u64;
                due.push(p.data);
            }
            if !due.is_empty() {
                drop(st);
                for packet in due.drain(..) {
                    // A TUN device takes a whole packet per write, or none.
                    match output.write(&packet) {
                        Ok(n) if n == packet.len() => {
                            self.counters.packets.fetch_add(1, Relaxed);
                            self.counters.bytes.fetch_add(packet.len() as u64, Relaxed);
                        }
                        Ok(n) => {
                            tracing::debug!(dir = self.dir.name(), "TUN device took {n} of {} bytes", packet.len());
                            self.counters.write_errors.fetch_add(1, Relaxed);
                        }
                        Err(e) => {
                            tracing::debug!(dir = self.dir.name(), "write to TUN device failed: {e}");
                            self.counters.write_errors.fetch_add(1, Relaxed);
                        }
                    }
                }
                st = self.lock();
                continue;
            }
            st = match st.held.peek().map(|top| top.release) {
                None => self.wake.wait(st).unwrap_or_else(|e| e.into_inner()),
                Some(release) => self.wake.wait_timeout(st, release - now).unwrap_or_else(|e| e.into_inner()).0,
            };
        }
    }
}

/// Both directions of the emulated link.
pub struct Link {
    dirs: [Arc<Direction>; 2],
    control: Mutex<()>,
}

impl Link {
    /// A link with these parameters (`[u2c, c2u]`); random choices follow `seed`.
    pub fn new(params: [DirParams; 2], seed: u64) -> Link {
        let [u2c, c2u] = params;
        Link {
            dirs: [
                Arc::new(Direction::new(Dir::U2c, u2c, seed)),
                Arc::new(Direction::new(Dir::C2u, c2u, seed ^ 0x9e37_79b9_7f4a_7c15)),
            ],
            control: Mutex::new(()),
        }
    }

    /// One direction.
    pub fn dir(&self, dir: Dir) -> &Direction {
        &self.dirs[dir.index()]
    }

    /// Both directions' parameters (`[u2c, c2u]`).
    pub fn params(&self) -> [DirParams; 2] {
        [self.dirs[0].params(), self.dirs[1].params()]
    }

    /// Applies `key=value` words (see [`apply_words`]): all of them, or none on an error.
    pub fn apply<'a>(&self, words: impl IntoIterator<Item = &'a str>) -> Result<(), ParamError> {
        let _serial = self.control.lock().unwrap_or_else(|e| e.into_inner());
        let mut params = self.params();
        apply_words(&mut params, words)?;
        let [u2c, c2u] = params;
        self.dirs[0].set_params(u2c);
        self.dirs[1].set_params(c2u);
        Ok(())
    }

    /// Starts the four threads moving packets between the unit's and central's TUN devices. A
    /// thread that fails for good sends its error to `fatal`.
    pub fn start(&self, unit: File, central: File, fatal: Sender<EngineError>) -> io::Result<()> {
        let ends = [(unit.try_clone()?, central.try_clone()?), (central, unit)];
        for (dir, (input, output)) in self.dirs.iter().zip(ends) {
            let name = dir.dir.name();
            let (reader, fatal) = (dir.clone(), fatal.clone());
            std::thread::Builder::new().name(format!("{name}-in")).spawn(move || {
                if let Err(e) = reader.run_reader(input) {
                    let _ = fatal.send(e);
                }
            })?;
            let writer = dir.clone();
            std::thread::Builder::new().name(format!("{name}-out")).spawn(move || writer.run_writer(output))?;
        }
        Ok(())
    }
}
