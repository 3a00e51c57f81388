//! Live relay: central asks a unit for a camera only while someone watches it, takes one
//! upstream per camera whatever the number of viewers, and fans it out. A viewer that cannot
//! keep up skips to the next key frame ([`link::live`]); nothing queues without bound. A viewer
//! who joins a stream already flowing starts at once from the last key frame, which each
//! channel keeps with the frames after it.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use link::live::{LiveHub, LiveSubscription};
use tokio::sync::watch;

/// The relay of every camera of the fleet.
#[derive(Default)]
pub struct Relay {
    cameras: Mutex<HashMap<(String, String), Arc<Channel>>>,
    demand: Mutex<HashMap<String, watch::Sender<BTreeSet<String>>>>,
}

/// One camera's relay channel.
pub struct Channel {
    hub: LiveHub,
    viewers: AtomicUsize,
    upstreams: AtomicUsize,
    datagrams: crate::live_datagrams::DatagramCounters,
}

/// The most a channel keeps of the current group of pictures for viewers who join while it
/// flows (a 2 s group at 16 Mbit/s fits).
const GOP_CACHE_BYTES: usize = 4 << 20;

impl Default for Channel {
    fn default() -> Self {
        Channel {
            hub: LiveHub::with_gop_cache(GOP_CACHE_BYTES),
            viewers: AtomicUsize::new(0),
            upstreams: AtomicUsize::new(0),
            datagrams: Default::default(),
        }
    }
}

impl Channel {
    /// The hub the unit's live stream publishes into.
    pub fn hub(&self) -> &LiveHub {
        &self.hub
    }

    /// Viewers watching now.
    pub fn viewers(&self) -> usize {
        self.viewers.load(Ordering::Relaxed)
    }

    /// What live datagrams (protocol version 5) brought this camera.
    pub fn datagrams(&self) -> &crate::live_datagrams::DatagramCounters {
        &self.datagrams
    }

    /// Live streams from the unit open now (1 while watched and connected; never more).
    pub fn upstreams(&self) -> usize {
        self.upstreams.load(Ordering::Relaxed)
    }
}

/// Counts an open upstream for as long as it lives.
pub struct UpstreamGuard(Arc<Channel>);

impl Drop for UpstreamGuard {
    fn drop(&mut self) {
        self.0.hub.clear_cache();
        self.0.upstreams.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A viewer of one camera: its subscription, and its place in the camera's demand.
pub struct Viewer {
    /// The frames to forward.
    pub subscription: LiveSubscription,
    relay: Arc<Relay>,
    unit: String,
    camera: String,
    channel: Arc<Channel>,
}

impl Drop for Viewer {
    fn drop(&mut self) {
        self.relay.count_viewer(&self.unit, &self.camera, &self.channel, false);
    }
}

impl Relay {
    /// The channel of `unit`'s `camera` (made on first use).
    pub fn channel(&self, unit: &str, camera: &str) -> Arc<Channel> {
        self.cameras
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry((unit.to_owned(), camera.to_owned()))
            .or_default()
            .clone()
    }

    /// The channel of `unit`'s `camera` if anyone ever watched it or it ever streamed.
    pub fn existing(&self, unit: &str, camera: &str) -> Option<Arc<Channel>> {
        self.cameras.lock().unwrap_or_else(|p| p.into_inner()).get(&(unit.to_owned(), camera.to_owned())).cloned()
    }

    /// Every channel so far, by unit and camera, sorted.
    pub fn channels(&self) -> Vec<((String, String), Arc<Channel>)> {
        let cameras = self.cameras.lock().unwrap_or_else(|p| p.into_inner());
        let mut out: Vec<_> = cameras.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// Starts watching `unit`'s `camera`: the first viewer makes central ask the unit for it.
    pub fn watch(self: &Arc<Self>, unit: &str, camera: &str) -> Viewer {
        let channel = self.channel(unit, camera);
        let subscription = channel.hub.subscribe();
        self.count_viewer(unit, camera, &channel, true);
        Viewer { subscription, relay: self.clone(), unit: unit.to_owned(), camera: camera.to_owned(), channel }
    }

    /// The cameras of `unit` someone watches; the unit's connection follows its changes.
    pub fn demand(&self, unit: &str) -> watch::Receiver<BTreeSet<String>> {
        self.demand
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(unit.to_owned())
            .or_insert_with(|| watch::channel(BTreeSet::new()).0)
            .subscribe()
    }

    /// Counts an upstream of `unit`'s `camera` until the guard is dropped.
    pub fn upstream(&self, unit: &str, camera: &str) -> (Arc<Channel>, UpstreamGuard) {
        let channel = self.channel(unit, camera);
        channel.upstreams.fetch_add(1, Ordering::Relaxed);
        (channel.clone(), UpstreamGuard(channel))
    }

    /// Counts a viewer of `channel` in (`joins`) or out, and keeps `unit`'s demand in step with
    /// the count. Both happen under the demand's lock: counted apart, a viewer leaving as
    /// another arrived could clear the demand after the newcomer set it, and the camera was
    /// then watched but never asked for (a live tile waiting for ever).
    fn count_viewer(&self, unit: &str, camera: &str, channel: &Channel, joins: bool) {
        let mut demand = self.demand.lock().unwrap_or_else(|p| p.into_inner());
        let before = if joins {
            channel.viewers.fetch_add(1, Ordering::AcqRel)
        } else {
            channel.viewers.fetch_sub(1, Ordering::AcqRel)
        };
        let first_or_last = if joins { before == 0 } else { before == 1 };
        if !first_or_last {
            return;
        }
        let tx = demand.entry(unit.to_owned()).or_insert_with(|| watch::channel(BTreeSet::new()).0);
        tx.send_modify(|set| {
            if joins {
                set.insert(camera.to_owned());
            } else {
                set.remove(camera);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demand_follows_the_first_and_last_viewer() {
        let relay = Arc::new(Relay::default());
        let demand = relay.demand("bus-1");
        let a = relay.watch("bus-1", "front");
        let b = relay.watch("bus-1", "front");
        assert_eq!(*demand.borrow(), BTreeSet::from(["front".to_owned()]));
        assert_eq!(relay.channel("bus-1", "front").viewers(), 2);
        drop(a);
        assert_eq!(demand.borrow().len(), 1, "one viewer left");
        drop(b);
        assert!(demand.borrow().is_empty());
        let (channel, guard) = relay.upstream("bus-1", "front");
        assert_eq!(channel.upstreams(), 1);
        drop(guard);
        assert_eq!(channel.upstreams(), 0);
    }

    #[test]
    fn a_viewer_leaving_as_another_arrives_leaves_the_camera_wanted() {
        // Viewers come and go on two threads at once; whatever the interleaving, the camera is
        // wanted exactly while one of them watches.
        let relay = Arc::new(Relay::default());
        let demand = relay.demand("bus-1");
        for _ in 0..200 {
            let first = relay.watch("bus-1", "front");
            let r = relay.clone();
            let leaving = std::thread::spawn(move || drop(first));
            let arriving = std::thread::spawn(move || r.watch("bus-1", "front"));
            leaving.join().unwrap();
            let second = arriving.join().unwrap();
            assert_eq!(*demand.borrow(), BTreeSet::from(["front".to_owned()]), "watched, so wanted");
            drop(second);
            assert!(demand.borrow().is_empty());
        }
    }
}
