//! Central's side of live datagrams ([`protocol::live_datagram`]) as a sans-IO state machine:
//! feed it datagrams, the live stream's parameters and the time; take out parameters, whole
//! frames in order, and requests to send fragments again.
//!
//! A lost fragment is rebuilt from its group's parity as soon as the group's other datagrams
//! are in. Frames wait in a small jitter buffer (bounded in frames and bytes) until every frame
//! before them is out, so viewers get frames in order. A frame that is still missing pieces once
//! a later frame's datagram has been in for [`ReassemblyConfig::reorder_wait`] (or that has
//! waited [`ReassemblyConfig::stall_wait`] with no later frame) is asked for again
//! ([`Reassembled::Nack`]); if it is still not whole [`ReassemblyConfig::give_up_after`] later,
//! or the buffer overflows, it is given up with every frame after it until the next key frame,
//! so viewers never get a frame whose references they lack.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use protocol::interconnect::{MediaFrame, VideoParameters};
use protocol::live_datagram::{self, DatagramError, DatagramHeader, FragmentKind};

/// How far ahead of the next frame to deliver a datagram may be before it is refused.
const MAX_AHEAD: u32 = 1024;

/// The reassembler's timings and bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReassemblyConfig {
    /// How long a frame may miss pieces after a later frame's datagram arrived before it is
    /// asked for again (datagrams may be reordered a little).
    pub reorder_wait: Duration,
    /// How long a frame may miss pieces with no later frame before it is asked for again.
    pub stall_wait: Duration,
    /// How long after asking again a frame is given up.
    pub give_up_after: Duration,
    /// The most frames the jitter buffer holds.
    pub max_frames: usize,
    /// The most fragment bytes the jitter buffer holds.
    pub max_bytes: usize,
}

impl Default for ReassemblyConfig {
    fn default() -> Self {
        ReassemblyConfig {
            reorder_wait: Duration::from_millis(10),
            stall_wait: Duration::from_millis(150),
            give_up_after: Duration::from_millis(400),
            max_frames: 100,
            max_bytes: 8 << 20,
        }
    }
}

/// What the reassembler hands out, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reassembled {
    /// Parameters for the frames that follow.
    Parameters(VideoParameters),
    /// The next whole frame.
    Frame(MediaFrame),
    /// Ask the unit to send these data fragments of `frame` again (all when empty).
    Nack {
        /// The frame's number.
        frame: u32,
        /// The missing data fragments.
        fragments: Vec<u16>,
    },
}

/// What the reassembler has seen (plain counts; the caller sums them where it reports).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReassemblyStats {
    /// Datagrams that decoded and belonged here.
    pub datagrams: u64,
    /// Datagrams that did not decode or did not fit their frame.
    pub bad_datagrams: u64,
    /// Datagrams of fragments already held, or of frames already out or given up.
    pub duplicates: u64,
    /// Data fragments rebuilt from parity.
    pub rebuilt: u64,
    /// Frames asked for again.
    pub nacks: u64,
    /// Frames handed out.
    pub frames: u64,
    /// Frames given up (unrecoverable, or skipped until the next key frame).
    pub given_up: u64,
}

/// One frame on its way.
struct Partial {
    header: DatagramHeader,
    data: Vec<Option<Vec<u8>>>,
    parity: Vec<Option<Vec<u8>>>,
    bytes: usize,
    first_seen: Instant,
    nacked_at: Option<Instant>,
    /// The frame, once whole.
    done: Option<MediaFrame>,
}

impl Partial {
    fn new(header: DatagramHeader, now: Instant) -> Partial {
        Partial {
            header,
            data: vec![None; header.fragments() as usize],
            parity: vec![None; header.groups() as usize],
            bytes: 0,
            first_seen: now,
            nacked_at: None,
            done: None,
        }
    }

    /// Whether `other` describes the same frame as the first datagram did.
    fn agrees(&self, other: &DatagramHeader) -> bool {
        let h = &self.header;
        (h.parameters, h.keyframe, h.frame_len, h.fragment_size, h.group)
            == (other.parameters, other.keyframe, other.frame_len, other.fragment_size, other.group)
    }

    /// Rebuilds what parity can; returns how many fragments it rebuilt.
    fn rebuild(&mut self) -> u64 {
        let mut rebuilt = 0;
        for g in 0..self.header.groups() {
            let members = self.header.group_members(g);
            let missing: Vec<u32> = members.clone().filter(|&i| self.data[i as usize].is_none()).collect();
            let [lost] = missing[..] else { continue };
            let Some(parity) = &self.parity[g as usize] else { continue };
            let mut piece = parity.clone();
            for i in members.filter(|&i| i != lost) {
                if let Some(d) = &self.data[i as usize] {
                    live_datagram::xor_into(&mut piece, d);
                }
            }
            piece.truncate(self.header.data_len(lost));
            self.bytes += piece.len();
            self.data[lost as usize] = Some(piece);
            rebuilt += 1;
        }
        rebuilt
    }

    /// The encoded frame, when every data fragment is in.
    fn joined(&self) -> Option<Vec<u8>> {
        let mut out = Vec::with_capacity(self.header.frame_len as usize);
        for piece in &self.data {
            out.extend_from_slice(piece.as_deref()?);
        }
        Some(out)
    }

    fn missing(&self) -> Vec<u16> {
        self.data.iter().enumerate().filter(|(_, d)| d.is_none()).map(|(i, _)| i as u16).collect()
    }
}

/// One live slot's reassembly (see the module docs).
pub struct Reassembler {
    slot: u32,
    config: ReassemblyConfig,
    /// The next frame to hand out.
    next: u32,
    frames: BTreeMap<u32, Partial>,
    /// Frames asked for again that have not arrived at all, by number.
    nacked_unseen: BTreeMap<u32, Instant>,
    /// Frames after a give-up are dropped until a key frame.
    need_keyframe: bool,
    /// Parameters from the stream, numbered from 1, not yet handed out.
    parameters: VecDeque<(u32, VideoParameters)>,
    parameters_received: u32,
    parameters_out: u32,
    out: VecDeque<Reassembled>,
    stats: ReassemblyStats,
}

impl Reassembler {
    /// A reassembler for `slot`'s datagrams, from frame 0 on.
    pub fn new(slot: u32, config: ReassemblyConfig) -> Reassembler {
        Reassembler {
            slot,
            config,
            next: 0,
            frames: BTreeMap::new(),
            nacked_unseen: BTreeMap::new(),
            need_keyframe: false,
            parameters: VecDeque::new(),
            parameters_received: 0,
            parameters_out: 0,
            out: VecDeque::new(),
            stats: ReassemblyStats::default(),
        }
    }

    /// What it has seen so far.
    pub fn stats(&self) -> ReassemblyStats {
        self.stats
    }

    /// Parameters read from the live stream (the next in its order).
    pub fn parameters(&mut self, now: Instant, params: VideoParameters) {
        self.parameters_received += 1;
        self.parameters.push_back((self.parameters_received, params));
        self.advance(now);
    }

    /// One datagram. An error says what was wrong with it; the reassembly goes on.
    pub fn datagram(&mut self, now: Instant, bytes: &[u8]) -> Result<(), DatagramError> {
        let result = self.take(now, bytes);
        if result.is_err() {
            self.stats.bad_datagrams += 1;
        }
        self.advance(now);
        result
    }

    fn take(&mut self, now: Instant, bytes: &[u8]) -> Result<(), DatagramError> {
        let (header, payload) = live_datagram::decode(bytes)?;
        if header.slot != self.slot {
            return Err(DatagramError::Invalid("datagram of another slot"));
        }
        if header.frame < self.next {
            self.stats.datagrams += 1;
            self.stats.duplicates += 1;
            return Ok(());
        }
        if header.frame - self.next > MAX_AHEAD {
            return Err(DatagramError::Invalid("frame number too far ahead"));
        }
        let partial = self.frames.entry(header.frame).or_insert_with(|| Partial::new(header, now));
        if !partial.agrees(&header) {
            return Err(DatagramError::Invalid("datagram does not agree with its frame's others"));
        }
        self.stats.datagrams += 1;
        if let Some(at) = self.nacked_unseen.remove(&header.frame) {
            partial.nacked_at = Some(at);
        }
        let index = usize::from(header.index);
        let place = match header.kind {
            FragmentKind::Data => partial.data.get_mut(index),
            FragmentKind::Parity => partial.parity.get_mut(index),
        };
        // A whole frame keeps no fragments: whatever comes for it now is a duplicate.
        let Some(place) = place.filter(|p| p.is_none()) else {
            self.stats.duplicates += 1;
            return Ok(());
        };
        *place = Some(payload.to_vec());
        partial.bytes += payload.len();
        self.stats.rebuilt += partial.rebuild();
        if let Some(encoded) = partial.joined() {
            partial.data.clear();
            partial.parity.clear();
            partial.bytes = 0;
            match protocol::framing::decode::<MediaFrame>(&encoded) {
                Ok(frame) => partial.done = Some(frame),
                Err(_) => {
                    // Whole, but not a frame: nothing to ask again for.
                    let frame = header.frame;
                    self.frames.remove(&frame);
                    self.nacked_unseen.insert(frame, now.checked_sub(self.config.give_up_after).unwrap_or(now));
                    return Err(DatagramError::Invalid("fragments do not join into a frame"));
                }
            }
        }
        Ok(())
    }

    /// What to hand out next, in order.
    pub fn poll(&mut self) -> Option<Reassembled> {
        self.out.pop_front()
    }

    /// The time passing: asks again and gives up what is due.
    pub fn tick(&mut self, now: Instant) {
        self.advance(now);
    }

    /// When [`Reassembler::tick`] has something to do, if ever.
    pub fn deadline(&self) -> Option<Instant> {
        let mut earliest: Option<Instant> = None;
        let mut consider = |t: Instant| earliest = Some(earliest.map_or(t, |e| e.min(t)));
        // Only the next frame is ever given up (the others wait behind it).
        if let Some(at) = self.nacked_unseen.get(&self.next) {
            consider(*at + self.config.give_up_after);
        }
        let highest = self.frames.keys().next_back().copied();
        for (&n, p) in &self.frames {
            if p.done.is_some() {
                continue;
            }
            match p.nacked_at {
                Some(at) if n == self.next => consider(at + self.config.give_up_after),
                Some(_) => {}
                None => {
                    consider(p.first_seen + self.config.stall_wait);
                    if let Some(later) = self.first_seen_after(n) {
                        consider(later + self.config.reorder_wait);
                    }
                }
            }
        }
        // Frames never seen that a later one passed.
        if let Some(highest) = highest {
            for n in self.next..highest {
                if !self.frames.contains_key(&n)
                    && !self.nacked_unseen.contains_key(&n)
                    && let Some(later) = self.first_seen_after(n)
                {
                    consider(later + self.config.reorder_wait);
                }
            }
        }
        earliest
    }

    /// When the first datagram of any frame after `n` arrived.
    fn first_seen_after(&self, n: u32) -> Option<Instant> {
        self.frames.range(n + 1..).map(|(_, p)| p.first_seen).min()
    }

    fn buffered_bytes(&self) -> usize {
        self.frames.values().map(|p| p.bytes).sum()
    }

    fn advance(&mut self, now: Instant) {
        loop {
            if self.need_keyframe && !self.skip_to_keyframe() {
                break;
            }
            let overflow = self.frames.len() > self.config.max_frames || self.buffered_bytes() > self.config.max_bytes;
            match self.frames.get(&self.next) {
                Some(p) if p.done.is_some() => {
                    if p.header.parameters > self.parameters_received {
                        if overflow {
                            self.give_up_next();
                            continue;
                        }
                        break; // its parameters are still on their way on the stream
                    }
                    let p = self.frames.remove(&self.next).expect("present");
                    self.next += 1;
                    if p.header.parameters < self.parameters_out {
                        // Encoded under parameters already replaced: viewers could not decode it.
                        self.stats.given_up += 1;
                        continue;
                    }
                    while let Some((n, _)) = self.parameters.front()
                        && *n <= p.header.parameters
                    {
                        let (n, params) = self.parameters.pop_front().expect("present");
                        self.parameters_out = n;
                        self.out.push_back(Reassembled::Parameters(params));
                    }
                    self.stats.frames += 1;
                    self.out.push_back(Reassembled::Frame(p.done.expect("whole")));
                }
                _ if overflow || self.next_is_due_to_give_up(now) => self.give_up_next(),
                _ => break,
            }
        }
        self.ask_again(now);
    }

    /// Drops frames until the next key frame; false when none is here yet.
    fn skip_to_keyframe(&mut self) -> bool {
        let key = self.frames.iter().find(|(_, p)| p.header.keyframe).map(|(&n, _)| n);
        let until = match key {
            Some(k) => k,
            // No key frame yet: what is here cannot be shown; later datagrams of these frames
            // count as duplicates.
            None => match self.frames.keys().next_back() {
                Some(&highest) => highest + 1,
                None => return false,
            },
        };
        self.stats.given_up += u64::from(until - self.next);
        self.frames = self.frames.split_off(&until);
        self.nacked_unseen = self.nacked_unseen.split_off(&until);
        self.next = until;
        if key.is_some() {
            self.need_keyframe = false;
        }
        key.is_some()
    }

    fn next_is_due_to_give_up(&self, now: Instant) -> bool {
        let nacked = match self.frames.get(&self.next) {
            Some(p) => p.nacked_at,
            None => self.nacked_unseen.get(&self.next).copied(),
        };
        nacked.is_some_and(|at| now >= at + self.config.give_up_after)
    }

    fn give_up_next(&mut self) {
        self.frames.remove(&self.next);
        self.nacked_unseen.remove(&self.next);
        self.stats.given_up += 1;
        self.next += 1;
        self.need_keyframe = true;
    }

    /// Asks again for every frame due (see the module docs), once each.
    fn ask_again(&mut self, now: Instant) {
        let Some(&highest) = self.frames.keys().next_back() else { return };
        for n in self.next..highest {
            if self.nacked_unseen.contains_key(&n) {
                continue;
            }
            let later = self.first_seen_after(n);
            let passed = later.is_some_and(|t| now >= t + self.config.reorder_wait);
            match self.frames.get_mut(&n) {
                Some(p) if p.done.is_some() || p.nacked_at.is_some() => {}
                Some(p) if passed || now >= p.first_seen + self.config.stall_wait => {
                    p.nacked_at = Some(now);
                    self.stats.nacks += 1;
                    self.out.push_back(Reassembled::Nack { frame: n, fragments: p.missing() });
                }
                Some(_) => {}
                None if passed => {
                    self.nacked_unseen.insert(n, now);
                    self.stats.nacks += 1;
                    self.out.push_back(Reassembled::Nack { frame: n, fragments: Vec::new() });
                }
                None => {}
            }
        }
        // The newest frame: only the stall wait applies.
        if let Some(p) = self.frames.get_mut(&highest)
            && p.done.is_none()
            && p.nacked_at.is_none()
            && now >= p.first_seen + self.config.stall_wait
        {
            p.nacked_at = Some(now);
            self.stats.nacks += 1;
            self.out.push_back(Reassembled::Nack { frame: highest, fragments: p.missing() });
        }
    }
}

#[cfg(test)]
#[path = "live_reassembly_tests.rs"]
mod tests;
