//! Live video from a unit as QUIC datagrams with parity (protocol version 5): central asks a
//! unit of version 5 whose connection allows datagrams for a camera on a *slot* of its own
//! ([`DatagramLive::start`]), routes each datagram to its slot's live stream task
//! ([`DatagramLive::dispatch`]), and there rebuilds frames ([`link::live_reassembly`]) and
//! publishes them to the camera's viewers in order, after the parameters the stream carries.
//! Fragments parity cannot rebuild are asked for again on the control stream.
//!
//! `CONVOY_LIVE_DATAGRAMS=0` keeps every unit on the live stream (for A/B benchmarks).

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Instant;

use bytes::Bytes;
use link::live_reassembly::{Reassembled, Reassembler, ReassemblyConfig, ReassemblyStats};
use link::messages;
use protocol::interconnect::{CentralMessage, Hello, LiveMessage};
use tokio::sync::mpsc;

use crate::fleet::CameraLive;
use crate::relay::Channel;

/// Datagrams that may wait for their slot's task (about 1.5 s of a 4 Mbit/s camera).
const SLOT_QUEUE: usize = 512;

/// Whether central may ask `hello`'s unit for datagrams on `conn`: the unit speaks version 5,
/// the connection allows datagrams, and `CONVOY_LIVE_DATAGRAMS` is not `0`.
pub fn wanted(hello: &Hello, conn: &quinn::Connection) -> bool {
    let forced_off = std::env::var("CONVOY_LIVE_DATAGRAMS").is_ok_and(|v| v == "0");
    !forced_off
        && hello.protocol_version >= protocol::DATAGRAM_LIVE_PROTOCOL_VERSION
        && conn.max_datagram_size().is_some()
}

/// One connection's live slots.
#[derive(Default)]
pub struct DatagramLive {
    next_slot: AtomicU32,
    /// Where each open slot's datagrams go.
    slots: Mutex<HashMap<u32, mpsc::Sender<Bytes>>>,
    /// Each camera's newest slot: asked for (with the receiver its stream's task takes when the
    /// stream arrives, naming the slot in its `LiveSlot`) or streaming (`None`: taken).
    newest: Mutex<HashMap<String, NewestSlot>>,
}

/// A camera's newest slot, and its datagrams until its stream's task takes them.
type NewestSlot = (u32, Option<mpsc::Receiver<Bytes>>);

impl DatagramLive {
    /// The request for `camera`'s live video on a new slot. An older slot of the camera is
    /// closed: its datagrams are dropped, and its stream, if it still arrives, is not bound.
    pub fn start(&self, camera: &str) -> CentralMessage {
        let slot = self.next_slot.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel(SLOT_QUEUE);
        let mut slots = lock(&self.slots);
        slots.insert(slot, tx);
        if let Some((old, _)) = lock(&self.newest).insert(camera.to_owned(), (slot, Some(rx))) {
            slots.remove(&old);
        }
        CentralMessage::StartLiveDatagrams { camera: camera.to_owned(), slot }
    }

    /// Live of `camera` was stopped: its slot is closed (a stream still on its way is not bound).
    pub fn stop(&self, camera: &str) {
        if let Some((slot, _)) = lock(&self.newest).remove(camera) {
            lock(&self.slots).remove(&slot);
        }
    }

    /// The datagrams of `camera`'s `slot`, when its stream arrives and the slot is still the
    /// camera's newest request; `None` for a stream that answers an older one.
    pub fn take(&self, camera: &str, slot: u32) -> Option<mpsc::Receiver<Bytes>> {
        match lock(&self.newest).get_mut(camera) {
            Some((newest, rx)) if *newest == slot => rx.take(),
            _ => None,
        }
    }

    /// Hands `datagram` to its slot's task; unknown slots and a full queue drop it.
    pub fn dispatch(&self, datagram: Bytes) {
        let Ok((header, _)) = protocol::live_datagram::decode(&datagram) else {
            tracing::debug!("dropped a live datagram that does not decode");
            return;
        };
        let mut slots = lock(&self.slots);
        if let Some(tx) = slots.get(&header.slot) {
            match tx.try_send(datagram) {
                Ok(()) | Err(mpsc::error::TrySendError::Full(_)) => {}
                Err(mpsc::error::TrySendError::Closed(_)) => {
                    slots.remove(&header.slot);
                }
            }
        }
    }

    /// Reads the connection's datagrams until it closes.
    pub async fn read(&self, conn: &quinn::Connection) -> Result<(), String> {
        loop {
            let datagram = conn.read_datagram().await.map_err(|e| e.to_string())?;
            self.dispatch(datagram);
        }
    }
}

/// What live datagrams brought one camera's channel, summed over its upstreams.
#[derive(Debug, Default)]
pub struct DatagramCounters {
    /// Datagrams received that belonged to the camera's slot.
    pub datagrams: AtomicU64,
    /// Datagrams that did not decode or did not fit their frame.
    pub bad: AtomicU64,
    /// Data fragments rebuilt from parity.
    pub rebuilt: AtomicU64,
    /// Frames asked for again.
    pub nacks: AtomicU64,
    /// Frames given up (unrecoverable, or skipped until the next key frame).
    pub given_up: AtomicU64,
    /// Frames handed to the relay.
    pub frames: AtomicU64,
}

impl DatagramCounters {
    /// Adds what changed between `before` and `now`.
    fn add(&self, before: &ReassemblyStats, now: &ReassemblyStats) {
        let pairs = [
            (&self.datagrams, now.datagrams - before.datagrams),
            (&self.bad, now.bad_datagrams - before.bad_datagrams),
            (&self.rebuilt, now.rebuilt - before.rebuilt),
            (&self.nacks, now.nacks - before.nacks),
            (&self.given_up, now.given_up - before.given_up),
            (&self.frames, now.frames - before.frames),
        ];
        for (counter, delta) in pairs {
            counter.fetch_add(delta, Ordering::Relaxed);
        }
    }
}

/// Receives one camera's live video on `slot`: parameters from `stream`, frames from
/// `datagrams`, published to `channel` in order; fragments to send again go to `control`.
pub async fn receive(
    mut stream: quinn::RecvStream,
    slot: u32,
    mut datagrams: mpsc::Receiver<Bytes>,
    channel: &Channel,
    camera: &CameraLive,
    control: mpsc::Sender<CentralMessage>,
) -> Result<(), link::LinkError> {
    // Stream reads are not cancel-safe: a task of their own feeds a channel.
    let (params_tx, mut params_rx) = mpsc::channel(4);
    let reader = tokio::spawn(async move {
        loop {
            let msg = messages::read::<LiveMessage>(&mut stream).await;
            let end = !matches!(msg, Ok(Some(_)));
            if params_tx.send(msg).await.is_err() || end {
                return;
            }
        }
    });
    let _reader = AbortOnDrop(reader);
    let mut rx = Reassembler::new(slot, ReassemblyConfig::default());
    let mut counted = rx.stats();
    loop {
        let deadline = rx.deadline();
        tokio::select! {
            msg = params_rx.recv() => match msg {
                Some(Ok(Some(LiveMessage::Parameters(p)))) => rx.parameters(Instant::now(), p),
                Some(Ok(Some(LiveMessage::Frame(_)))) => {
                    tracing::debug!(slot, "a frame on a datagram slot's stream; ignored");
                }
                Some(Err(e)) => return Err(e),
                Some(Ok(None)) | None => return Ok(()),
            },
            Some(datagram) = datagrams.recv() => {
                if let Err(e) = rx.datagram(Instant::now(), &datagram) {
                    tracing::debug!(slot, "live datagram: {e}");
                }
            }
            () = sleep_until(deadline) => rx.tick(Instant::now()),
        }
        while let Some(out) = rx.poll() {
            match out {
                Reassembled::Parameters(p) => channel.hub().publish_parameters(p),
                Reassembled::Frame(f) => {
                    camera.count_frame();
                    channel.hub().publish_frame(f);
                }
                Reassembled::Nack { frame, fragments } => {
                    let _ = control.try_send(CentralMessage::LiveNack { slot, frame, fragments });
                }
            }
        }
        let now = rx.stats();
        channel.datagrams().add(&counted, &now);
        counted = now;
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn datagram(slot: u32) -> Bytes {
        let header = protocol::live_datagram::DatagramHeader {
            slot,
            frame: 0,
            parameters: 0,
            keyframe: true,
            frame_len: 1,
            fragment_size: 1,
            group: 1,
            kind: protocol::live_datagram::FragmentKind::Data,
            index: 0,
        };
        let mut bytes = postcard::to_allocvec(&header).unwrap();
        bytes.push(0);
        Bytes::from(bytes)
    }

    fn slot_of(msg: CentralMessage) -> u32 {
        match msg {
            CentralMessage::StartLiveDatagrams { slot, .. } => slot,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_stream_binds_only_to_its_own_request_when_a_viewer_leaves_and_one_comes_at_once() {
        let live = DatagramLive::default();
        let first = slot_of(live.start("front"));
        live.stop("front");
        let second = slot_of(live.start("front"));
        // The unit answers both, in either order: only the newest request's stream is bound.
        assert!(live.take("front", first).is_none(), "the stopped request's stream is not bound");
        let mut rx = live.take("front", second).expect("the newest request's stream is bound");
        assert!(live.take("front", second).is_none(), "once");
        live.dispatch(datagram(first));
        live.dispatch(datagram(second));
        let got = rx.try_recv().expect("the newest slot's datagram");
        assert_eq!(protocol::live_datagram::decode(&got).unwrap().0.slot, second);
        assert!(rx.try_recv().is_err(), "the old slot's datagrams go nowhere");
    }

    #[test]
    fn a_new_request_closes_the_streaming_slot_of_the_camera() {
        let live = DatagramLive::default();
        let first = slot_of(live.start("front"));
        let mut old = live.take("front", first).unwrap();
        let second = slot_of(live.start("front"));
        live.dispatch(datagram(first));
        assert!(old.try_recv().is_err(), "the older stream gets no more datagrams");
        let mut new = live.take("front", second).unwrap();
        live.dispatch(datagram(second));
        assert!(new.try_recv().is_ok());
        assert!(live.take("rear", second).is_none(), "a slot belongs to its camera");
    }
}
