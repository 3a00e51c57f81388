//! Live fan-out of one camera's frames: a publisher (on the unit, the camera task; at central,
//! the unit's live stream) and any number of subscribers (on the unit, the uplink and the local
//! page; at central, the viewers). Publishing never blocks and memory is bounded; a
//! subscriber that falls behind skips to the next key frame.
//!
//! A hub made with [`LiveHub::with_gop_cache`] (central's relay) also keeps the frames since the
//! last key frame, so that a viewer who joins a stream already flowing starts at once from that
//! key frame instead of waiting for the next one. The unit's hubs keep no cache (their memory
//! is counted per camera): a new subscription there starts from the camera's last key frame
//! *read back from what the unit has recorded* (`edge/src/live_start.rs`), handed to
//! [`LiveSubscription::start_from`]. The hub's own stream then goes on after the last frame
//! read (the seam, `live_splice`). For that seam to have no gap, the publisher queues each
//! frame to its recorder between [`LiveHub::begin_frame`] and [`PassingFrame::passed`], and
//! [`LiveHub::subscribe`] notes the last frame passed before it: a start that reaches that
//! frame misses none.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use protocol::interconnect::{LiveMessage, MediaFrame, VideoParameters};
use tokio::sync::broadcast;

use crate::live_splice::Splice;

/// Messages a slow subscriber may fall behind before it skips ahead (about 2 s of video).
const CAPACITY: usize = 64;

/// One camera's live hub.
pub struct LiveHub {
    tx: broadcast::Sender<Arc<LiveMessage>>,
    parameters: Mutex<Option<Arc<LiveMessage>>>,
    counters: Arc<Counters>,
    /// The frames since the last key frame, when this hub keeps them (see the module docs).
    gop: Option<Mutex<GopCache>>,
    /// The wall clock of the last frame the publisher passed on ([`LiveHub::begin_frame`]; a
    /// publisher that only publishes, like central's relay, leaves it `None`); its lock orders
    /// passing against subscribing.
    last_passed_us: Mutex<Option<i64>>,
}

/// The frames of the current group of pictures, from its key frame on.
#[derive(Default)]
struct GopCache {
    frames: Vec<Arc<LiveMessage>>,
    bytes: usize,
    max_bytes: usize,
}

impl GopCache {
    /// Keeps `msg` (a frame) if it belongs to a group whose key frame is kept and fits.
    fn push(&mut self, msg: &Arc<LiveMessage>) {
        let LiveMessage::Frame(f) = &**msg else { return };
        if f.keyframe {
            self.frames.clear();
            self.bytes = 0;
        } else if self.frames.is_empty() {
            return; // no key frame to start from
        }
        if self.bytes + f.data.len() > self.max_bytes {
            // A group too large to keep: new viewers wait for the next key frame instead.
            self.frames.clear();
            self.bytes = 0;
            return;
        }
        self.bytes += f.data.len();
        self.frames.push(msg.clone());
    }
}

/// What a hub has carried since it was made (atomics: publishing takes no lock for them).
#[derive(Debug, Default)]
struct Counters {
    published: AtomicU64,
    delivered: AtomicU64,
    skipped: AtomicU64,
}

/// Frame counts of a [`LiveHub`] since it was made.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LiveStats {
    /// Frames published (whether or not anyone watched).
    pub frames_published: u64,
    /// Frames handed to subscribers, summed over them.
    pub frames_delivered: u64,
    /// Frames subscribers never got because they fell behind (the frames they missed and
    /// those skipped until the next key frame), summed over them.
    pub frames_skipped: u64,
}

impl Default for LiveHub {
    fn default() -> Self {
        LiveHub {
            tx: broadcast::channel(CAPACITY).0,
            parameters: Mutex::new(None),
            counters: Arc::default(),
            gop: None,
            last_passed_us: Mutex::new(None),
        }
    }
}

impl LiveHub {
    /// A hub that keeps the frames since the last key frame (at most `max_bytes` of them) for
    /// viewers who join while the stream flows.
    pub fn with_gop_cache(max_bytes: usize) -> LiveHub {
        LiveHub { gop: Some(Mutex::new(GopCache { max_bytes, ..GopCache::default() })), ..LiveHub::default() }
    }

    /// Forgets the cached frames (the stream they came from has ended: a viewer who joins
    /// later must not start from stale pictures).
    pub fn clear_cache(&self) {
        if let Some(gop) = &self.gop {
            let mut gop = gop.lock().unwrap_or_else(|p| p.into_inner());
            gop.frames.clear();
            gop.bytes = 0;
        }
    }

    /// Publishes new codec parameters.
    pub fn publish_parameters(&self, params: VideoParameters) {
        let msg = Arc::new(LiveMessage::Parameters(params));
        let _gop = self.gop.as_ref().map(|g| {
            let mut g = g.lock().unwrap_or_else(|p| p.into_inner());
            // Frames under the old parameters cannot start a viewer under the new ones.
            g.frames.clear();
            g.bytes = 0;
            g
        });
        *self.parameters.lock().unwrap_or_else(|p| p.into_inner()) = Some(msg.clone());
        let _ = self.tx.send(msg);
    }

    /// Whether anyone subscribes: publishers can skip building frames nobody reads.
    pub fn is_watched(&self) -> bool {
        self.tx.receiver_count() > 0
    }

    /// Begins passing on a frame: no subscription begins until [`PassingFrame::passed`], so
    /// whether anyone watches ([`PassingFrame::watched`]: then publish the frame with
    /// [`LiveHub::publish_frame`] afterwards) holds while the publisher queues the frame to its
    /// recorder. A subscription that begins later starts from the recordings, which must then
    /// reach this frame (see [`LiveSubscription::start_from`]). Hold it only for that (no
    /// await): subscribers wait for it.
    pub fn begin_frame(&self) -> PassingFrame<'_> {
        let last = self.last_passed_us.lock().unwrap_or_else(|p| p.into_inner());
        PassingFrame { watched: self.tx.receiver_count() > 0, last }
    }

    /// Publishes a frame (dropped at once when nobody watches).
    pub fn publish_frame(&self, frame: MediaFrame) {
        self.counters.published.fetch_add(1, Ordering::Relaxed);
        let msg = Arc::new(LiveMessage::Frame(frame));
        match &self.gop {
            None => {
                let _ = self.tx.send(msg);
            }
            Some(gop) => {
                // Sent under the cache's lock, so that a subscriber's snapshot of the cache and
                // its place in the stream meet exactly (no frame missed or doubled).
                let mut gop = gop.lock().unwrap_or_else(|p| p.into_inner());
                gop.push(&msg);
                let _ = self.tx.send(msg);
            }
        }
    }

    /// A subscription that starts with the current parameters and the cached frames from the
    /// last key frame on, or else the next key frame.
    pub fn subscribe(&self) -> LiveSubscription {
        let ((rx, backlog), passed_before_us) = {
            let last = self.last_passed_us.lock().unwrap_or_else(|p| p.into_inner());
            let subscribed = match &self.gop {
                None => (self.tx.subscribe(), Vec::new()),
                Some(gop) => {
                    let gop = gop.lock().unwrap_or_else(|p| p.into_inner());
                    (self.tx.subscribe(), gop.frames.clone())
                }
            };
            (subscribed, *last)
        };
        let pending = self.parameters.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let need_keyframe = backlog.is_empty();
        LiveSubscription {
            rx,
            pending,
            backlog: backlog.into(),
            need_keyframe,
            lagging: false,
            counters: self.counters.clone(),
            passed_before_us,
            started: false,
            splice: None,
        }
    }

    /// Frames published, delivered and skipped so far.
    pub fn stats(&self) -> LiveStats {
        LiveStats {
            frames_published: self.counters.published.load(Ordering::Relaxed),
            frames_delivered: self.counters.delivered.load(Ordering::Relaxed),
            frames_skipped: self.counters.skipped.load(Ordering::Relaxed),
        }
    }
}

/// A frame being passed on by the publisher ([`LiveHub::begin_frame`]).
#[must_use = "a frame is passed on with `passed`"]
pub struct PassingFrame<'a> {
    watched: bool,
    last: std::sync::MutexGuard<'a, Option<i64>>,
}

impl PassingFrame<'_> {
    /// Whether anyone subscribes (and so will get the frame if it is published).
    pub fn watched(&self) -> bool {
        self.watched
    }

    /// The frame at `wall_clock_us` is passed on (queued to the recorder, if any).
    pub fn passed(mut self, wall_clock_us: i64) {
        *self.last = Some(wall_clock_us);
    }
}

/// A reader of one camera's live messages.
pub struct LiveSubscription {
    rx: broadcast::Receiver<Arc<LiveMessage>>,
    pending: Option<Arc<LiveMessage>>,
    /// Cached frames of the current group, delivered before the stream.
    backlog: std::collections::VecDeque<Arc<LiveMessage>>,
    need_keyframe: bool,
    /// Fell behind and waits for a key frame: the frames it drops count as skipped.
    lagging: bool,
    counters: Arc<Counters>,
    /// The last frame the publisher passed on before this subscription began.
    passed_before_us: Option<i64>,
    /// [`LiveSubscription::next`] was called: too late to start from elsewhere.
    started: bool,
    /// After a start from the recordings, until the stream has passed the last frame read.
    splice: Option<Splice>,
}

impl LiveSubscription {
    /// The last frame's wall clock the publisher passed on before this subscription began
    /// (`None`: none yet). A start from the recordings must reach it.
    pub fn passed_before_us(&self) -> Option<i64> {
        self.passed_before_us
    }

    /// Starts this subscription with `start` instead of the next key frame: codec parameters,
    /// a key frame, and the frames (and any new parameters) after it, in order, as the camera
    /// sent them (e.g. read back from the unit's recordings). The hub's stream then goes on
    /// after the last frame of `start`, each frame once. Refused (false, the subscription is
    /// unchanged and waits for the next key frame) unless `start` begins with parameters and
    /// a key frame and reaches the last frame passed before the subscription began (else
    /// frames in between would be missing), or when messages were already taken.
    pub fn start_from(&mut self, start: Vec<Arc<LiveMessage>>) -> bool {
        let last_us = start.iter().rev().find_map(|m| match &**m {
            LiveMessage::Frame(f) => Some(f.wall_clock_us),
            LiveMessage::Parameters(_) => None,
        });
        let begins_right = matches!(start.first().map(|m| &**m), Some(LiveMessage::Parameters(_)))
            && matches!(start.get(1).map(|m| &**m), Some(LiveMessage::Frame(f)) if f.keyframe);
        let (Some(last_us), Some(passed_us)) = (last_us, self.passed_before_us) else { return false };
        if self.started || !begins_right || last_us < passed_us || !self.backlog.is_empty() {
            return false;
        }
        self.splice = Some(Splice::after(&start, last_us));
        self.pending = None;
        self.backlog = start.into();
        self.need_keyframe = false;
        true
    }

    /// The next message to forward; `None` when the camera's hub is gone. Frames before the
    /// first key frame, and after falling behind until the next key frame, are skipped.
    pub async fn next(&mut self) -> Option<Arc<LiveMessage>> {
        self.started = true;
        if let Some(p) = self.pending.take() {
            return Some(p);
        }
        loop {
            if let Some(m) = self.backlog.pop_front() {
                if matches!(&*m, LiveMessage::Frame(_)) {
                    self.counters.delivered.fetch_add(1, Ordering::Relaxed);
                }
                return Some(m);
            }
            let msg = match self.rx.recv().await {
                Ok(msg) => msg,
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    tracing::debug!("live subscriber fell {n} messages behind; skipping to a key frame");
                    self.need_keyframe = true;
                    self.lagging = true;
                    self.counters.skipped.fetch_add(n, Ordering::Relaxed);
                    continue;
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            };
            // No await from here on: a cancelled `next` loses nothing.
            let passed = match &mut self.splice {
                Some(splice) => {
                    let passed = splice.pass(msg);
                    if splice.done() {
                        self.splice = None;
                    }
                    passed
                }
                None => vec![msg],
            };
            for m in passed {
                if self.admit(&m) {
                    self.backlog.push_back(m);
                }
            }
        }
    }

    /// Whether `msg` from the hub is forwarded: frames wait for a key frame when needed.
    fn admit(&mut self, msg: &LiveMessage) -> bool {
        match msg {
            LiveMessage::Frame(f) if self.need_keyframe && !f.keyframe => {
                if self.lagging {
                    self.counters.skipped.fetch_add(1, Ordering::Relaxed);
                }
                false
            }
            LiveMessage::Frame(_) => {
                self.need_keyframe = false;
                self.lagging = false;
                true
            }
            LiveMessage::Parameters(_) => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(pts: i64, keyframe: bool) -> MediaFrame {
        MediaFrame { pts, clock_rate: 90_000, wall_clock_us: 0, keyframe, data: vec![1, 2, 3] }
    }

    fn params() -> VideoParameters {
        VideoParameters { rfc6381_codec: "avc1.4d401e".into(), width: 640, height: 360, extra_data: vec![1] }
    }

    #[tokio::test]
    async fn starts_with_parameters_then_a_key_frame() {
        let hub = LiveHub::default();
        hub.publish_parameters(params());
        let mut sub = hub.subscribe();
        hub.publish_frame(frame(1, false));
        hub.publish_frame(frame(2, true));
        hub.publish_frame(frame(3, false));
        assert!(matches!(&*sub.next().await.unwrap(), LiveMessage::Parameters(_)));
        assert!(matches!(&*sub.next().await.unwrap(), LiveMessage::Frame(f) if f.pts == 2));
        assert!(matches!(&*sub.next().await.unwrap(), LiveMessage::Frame(f) if f.pts == 3));
    }

    #[tokio::test]
    async fn a_gop_cache_starts_a_late_viewer_at_the_last_key_frame_without_gaps() {
        let hub = LiveHub::with_gop_cache(1 << 20);
        hub.publish_parameters(params());
        for pts in 0..5 {
            hub.publish_frame(frame(pts, pts == 2));
        }
        let mut sub = hub.subscribe();
        hub.publish_frame(frame(5, false));
        assert!(matches!(&*sub.next().await.unwrap(), LiveMessage::Parameters(_)));
        for want in 2..=5 {
            let next = sub.next().await.unwrap();
            let LiveMessage::Frame(f) = &*next else { panic!("expected frame {want}") };
            assert_eq!((f.pts, f.keyframe), (want, want == 2), "each frame once, in order, from the key frame");
        }
        // New parameters empty the cache: the next viewer waits for a key frame again.
        hub.publish_parameters(params());
        hub.publish_frame(frame(6, false));
        let mut late = hub.subscribe();
        hub.publish_frame(frame(7, true));
        assert!(matches!(&*late.next().await.unwrap(), LiveMessage::Parameters(_)));
        assert!(matches!(&*late.next().await.unwrap(), LiveMessage::Frame(f) if f.pts == 7));
        // A group larger than the cache is not kept.
        let small = LiveHub::with_gop_cache(5);
        small.publish_frame(frame(0, true));
        small.publish_frame(frame(1, false));
        small.publish_frame(frame(2, false));
        let mut sub = small.subscribe();
        small.publish_frame(frame(3, true));
        assert!(matches!(&*sub.next().await.unwrap(), LiveMessage::Frame(f) if f.pts == 3));
    }

    fn walled(wall: i64, keyframe: bool) -> MediaFrame {
        MediaFrame { wall_clock_us: wall, ..frame(wall, keyframe) }
    }

    async fn pts_of(sub: &mut LiveSubscription, n: usize) -> Vec<i64> {
        let mut out = Vec::new();
        for _ in 0..n {
            match &*sub.next().await.unwrap() {
                LiveMessage::Frame(f) => out.push(f.pts),
                LiveMessage::Parameters(_) => out.push(-1),
            }
        }
        out
    }

    #[tokio::test]
    async fn a_start_from_the_recordings_meets_the_stream_without_gap_or_double() {
        let hub = LiveHub::default();
        hub.publish_parameters(params());
        // Nobody watches: the publisher only notes the frames it passes (to its recorder).
        for wall in 0..5 {
            let passing = hub.begin_frame();
            assert!(!passing.watched(), "nobody watches yet");
            passing.passed(wall);
        }
        let mut sub = hub.subscribe();
        assert_eq!(sub.passed_before_us(), Some(4));
        // Now watched: frames 5 and 6 are published while the recordings are read, and the
        // read (answered later) already holds frame 5.
        for wall in 5..7 {
            let passing = hub.begin_frame();
            assert!(passing.watched());
            passing.passed(wall);
            hub.publish_frame(walled(wall, false));
        }
        let read = |to: i64| {
            let mut m = vec![Arc::new(LiveMessage::Parameters(params()))];
            m.extend((2..=to).map(|w| Arc::new(LiveMessage::Frame(walled(w, w == 2)))));
            m
        };
        assert!(!sub.start_from(read(3)), "frame 4 would be missing");
        assert!(!sub.start_from(read(5)[2..].to_vec()), "no parameters and key frame first");
        assert!(sub.start_from(read(5)));
        hub.publish_frame(walled(7, false));
        assert_eq!(pts_of(&mut sub, 7).await, [-1, 2, 3, 4, 5, 6, 7], "each frame once, in order");
        assert!(!sub.start_from(read(7)), "too late once messages were taken");
        let stats = hub.stats();
        assert_eq!(stats.frames_delivered, 6);
        // A camera that never passed a frame has nothing recorded worth starting from.
        let fresh = LiveHub::default();
        let mut sub = fresh.subscribe();
        assert!(!sub.start_from(read(3)));
    }

    #[tokio::test]
    async fn slow_subscriber_skips_to_next_key_frame() {
        let hub = LiveHub::default();
        let mut sub = hub.subscribe();
        hub.publish_frame(frame(0, true));
        assert!(matches!(&*sub.next().await.unwrap(), LiveMessage::Frame(f) if f.pts == 0));
        // Fall far behind: the publisher never waits for us.
        for pts in 1..=(CAPACITY as i64 * 3) {
            hub.publish_frame(frame(pts, (pts as u64).is_multiple_of(50)));
        }
        hub.publish_frame(frame(1000, false));
        let next = sub.next().await.unwrap();
        let LiveMessage::Frame(f) = &*next else { panic!("expected a frame") };
        assert!(f.keyframe, "resumed on a key frame, got pts {}", f.pts);
        assert!(f.pts > CAPACITY as i64, "skipped ahead");
        let stats = hub.stats();
        assert_eq!(stats.frames_published, CAPACITY as u64 * 3 + 2);
        assert_eq!(stats.frames_delivered, 2);
        assert_eq!(stats.frames_skipped, f.pts as u64 - 1, "every frame between the two it got");
    }
}
