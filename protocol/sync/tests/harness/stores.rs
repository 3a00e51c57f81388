//! The fake stores of the simulation: the edge's per-camera frame logs (recording, grooming,
//! range reads, catalog) and central's store of retrieved frames.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::ops::Range;

use protocol::sync::{CameraHoldings, CatalogSummary, FetchFailure, RemoteEvent, Span, SyncFrame};
use sync_core::Holdings;

use super::Rng;

/// A frame's metadata; its payload is derived from it (see [`payload`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameMeta {
    pub seq: u64,
    pub wall: i64,
    pub key: bool,
    pub len: u32,
    pub salt: u8,
    /// An audio frame (sent only to a central that takes audio).
    pub audio: bool,
}

/// The payload of a frame: cheap to make, distinct per camera, seq and salt.
pub fn payload(camera: usize, f: &FrameMeta) -> Vec<u8> {
    let mut p = vec![f.salt; f.len as usize];
    p[..8].copy_from_slice(&f.seq.to_le_bytes());
    p[8] = camera as u8;
    p[9] = u8::from(f.audio);
    let last = p.len() - 1;
    p[last] = f.salt ^ 0x5a;
    p
}

/// A time gap that splits catalog spans, as in the media store.
pub const SPAN_GAP_US: i64 = 2_000_000;

pub struct EdgeCamera {
    pub name: String,
    pub frames: VecDeque<FrameMeta>,
    pub next_seq: u64,
    /// Every sequence number below this was removed by retention.
    pub groomed_below: u64,
    /// Runs retention removed, as the catalog reports them.
    pub removed: Vec<Span>,
    pub count: u64,
    pub interval_us: u64,
    /// The camera records audio beside its video.
    pub audio: bool,
}

pub struct EdgeStore {
    pub cams: Vec<EdgeCamera>,
    pub bytes: u64,
    pub budget: u64,
}

impl EdgeStore {
    pub fn new(names: &[String], rng: &mut Rng, budget: u64) -> EdgeStore {
        let cams = names
            .iter()
            .map(|n| EdgeCamera {
                name: n.clone(),
                frames: VecDeque::new(),
                next_seq: rng.below(1000),
                groomed_below: 0,
                removed: Vec::new(),
                count: 0,
                interval_us: 200_000 + rng.below(400_000),
                audio: rng.chance(0.6),
            })
            .collect();
        EdgeStore { cams, bytes: 0, budget }
    }

    pub fn index(&self, camera: &str) -> Option<usize> {
        self.cams.iter().position(|c| c.name == camera)
    }

    /// Appends a frame to camera `i` at `wall`; sometimes a sequence number goes to another
    /// record kind first.
    pub fn record(&mut self, i: usize, wall: i64, rng: &mut Rng) -> FrameMeta {
        let cam = &mut self.cams[i];
        if rng.chance(0.05) {
            cam.next_seq += 1 + rng.below(2);
        }
        let meta = FrameMeta {
            seq: cam.next_seq,
            wall,
            key: cam.count.is_multiple_of(25),
            len: 2_000 + rng.below(58_000) as u32,
            salt: rng.next() as u8,
            audio: false,
        };
        cam.next_seq += 1;
        cam.count += 1;
        cam.frames.push_back(meta);
        self.bytes += u64::from(meta.len);
        meta
    }

    /// Appends an audio frame to camera `i` at `wall` (every audio frame is a key frame).
    pub fn record_audio(&mut self, i: usize, wall: i64, rng: &mut Rng) -> FrameMeta {
        let cam = &mut self.cams[i];
        let meta = FrameMeta {
            seq: cam.next_seq,
            wall,
            key: true,
            len: 100 + rng.below(700) as u32,
            salt: rng.next() as u8,
            audio: true,
        };
        cam.next_seq += 1;
        cam.frames.push_back(meta);
        self.bytes += u64::from(meta.len);
        meta
    }

    /// Removes the oldest frames while over budget; returns them.
    pub fn groom(&mut self) -> Vec<(usize, FrameMeta)> {
        let mut out = Vec::new();
        while self.bytes > self.budget {
            let Some(i) = (0..self.cams.len())
                .filter(|&i| !self.cams[i].frames.is_empty())
                .min_by_key(|&i| self.cams[i].frames[0].wall)
            else {
                break;
            };
            let cam = &mut self.cams[i];
            let f = cam.frames.pop_front().expect("non-empty");
            cam.groomed_below = f.seq + 1;
            extend_spans(&mut cam.removed, &f);
            self.bytes -= u64::from(f.len);
            out.push((i, f));
        }
        out
    }

    pub fn catalog(&self, as_of_us: i64) -> CatalogSummary {
        let cameras = self
            .cams
            .iter()
            .map(|cam| {
                let mut spans: Vec<Span> = Vec::new();
                for f in &cam.frames {
                    extend_spans(&mut spans, f);
                }
                CameraHoldings { camera: cam.name.clone(), spans, removed: cam.removed.clone() }
            })
            .collect();
        CatalogSummary { as_of_us, cameras }
    }

    /// Serves a fetch as the glue would: audio frames only with `audio`.
    pub fn read(
        &self,
        camera: &str,
        (from, to): (u64, u64),
        max_bytes: u32,
        audio: bool,
    ) -> Result<(Vec<SyncFrame>, Option<u64>), FetchFailure> {
        let Some(i) = self.index(camera) else { return Err(FetchFailure::UnknownCamera) };
        let cam = &self.cams[i];
        if from < cam.groomed_below {
            return Err(FetchFailure::Gone { available_from: cam.groomed_below });
        }
        assert!(cam.next_seq > to, "fetch beyond what {camera} recorded: {to} >= {}", cam.next_seq);
        let start = cam.frames.partition_point(|f| f.seq < from);
        let mut out = Vec::new();
        let mut total = 0u64;
        for f in cam.frames.iter().skip(start).take_while(|f| f.seq <= to).filter(|f| audio || !f.audio) {
            if !out.is_empty() && total + u64::from(f.len) > u64::from(max_bytes) {
                return Ok((out, Some(f.seq)));
            }
            total += u64::from(f.len);
            out.push(SyncFrame { seq: f.seq, wall_clock_us: f.wall, keyframe: f.key, payload: payload(i, f) });
        }
        Ok((out, None))
    }
}

/// Adds a frame to runs split at gaps over [`SPAN_GAP_US`].
fn extend_spans(spans: &mut Vec<Span>, f: &FrameMeta) {
    match spans.last_mut() {
        Some(s) if f.wall - s.end_us <= SPAN_GAP_US => {
            s.last_seq = f.seq;
            s.end_us = f.wall;
            s.bytes += u64::from(f.len);
            s.frames += 1;
        }
        _ => spans.push(Span {
            first_seq: f.seq,
            last_seq: f.seq,
            start_us: f.wall,
            end_us: f.wall,
            bytes: u64::from(f.len),
            frames: 1,
        }),
    }
}

/// Central's durable store of one unit's frames and events.
#[derive(Default)]
pub struct CentralStore {
    /// `(camera, seq)` → durable writes of that frame (must stay 1).
    pub writes: HashMap<(String, u64), u32>,
    pub covered: Holdings,
    pub events: BTreeMap<u64, RemoteEvent>,
}

impl CentralStore {
    pub fn holds(&self, camera: &str, seq: u64) -> bool {
        self.writes.contains_key(&(camera.to_string(), seq))
    }

    pub fn cover(&mut self, camera: &str, covers: Range<u64>) {
        self.covered.entry(camera.to_string()).or_default().insert(covers);
    }
}
