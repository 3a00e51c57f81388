//! A thin unit: the edge's side of the interconnect protocol and nothing else — enrolled like
//! a real unit (its own key and a certificate from central's CA, mutual TLS), it says hello
//! with its cameras, then sends catalog updates and event batches on a timer and reads (and
//! counts) whatever central sends. No cameras, no store: a thousand of them fit in one
//! process, to load one central the way a fleet does (`fleet_load` bench, `thin_units` test).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, bail};
use link::messages::{self, Tolerant};
use link::pki::UnitIdentity;
use protocol::interconnect::{CameraInfo, CentralMessage, EdgeMessage, Hello};
use protocol::sync::{CameraHoldings, CatalogSummary, EventBatch, EventKind, RemoteEvent, Span, SyncFromEdge};
use tokio_util::sync::CancellationToken;

/// What all thin units of a run have done, summed.
#[derive(Debug, Default)]
pub struct ThinCounters {
    /// Units whose hello central welcomed.
    pub connected: AtomicU64,
    /// Catalog updates sent.
    pub catalogs: AtomicU64,
    /// Events sent.
    pub events: AtomicU64,
    /// Messages read from central (welcome excluded).
    pub received: AtomicU64,
    /// Units whose session ended in an error.
    pub failed: AtomicU64,
}

/// One thin unit.
#[derive(Debug, Clone)]
pub struct ThinUnit {
    /// The unit's id.
    pub id: String,
    /// Where its identity (key, certificate, central's CA) is kept.
    pub dir: PathBuf,
    /// How many cameras it announces.
    pub cameras: usize,
}

impl ThinUnit {
    /// A unit `id` keeping its identity under `root/id`.
    pub fn new(root: &Path, id: &str, cameras: usize) -> ThinUnit {
        ThinUnit { id: id.to_owned(), dir: root.join(id), cameras }
    }

    /// Enrolls with central at `quic` (`HOST:PORT`) using `token`, as `edge enroll` does.
    pub async fn enroll(&self, quic: &str, token: &str) -> anyhow::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        edge::enroll::enroll(quic, token, &self.id, &self.dir)
            .await
            .with_context(|| format!("{} cannot enroll", self.id))?;
        Ok(())
    }

    /// Connects to central at `addr` and, until `stop`, sends a catalog update and an event
    /// every `every` (the first after a random part of it, so that a fleet spreads out).
    /// `every` of `None`: one catalog after the hello, then idle.
    pub async fn run(
        &self,
        addr: SocketAddr,
        every: Option<Duration>,
        counters: Arc<ThinCounters>,
        stop: CancellationToken,
    ) -> anyhow::Result<()> {
        let identity = UnitIdentity::load(&self.dir)?.with_context(|| format!("{} is not enrolled", self.id))?;
        let endpoint = link::endpoint::client(addr, &identity)?;
        let conn = endpoint.connect(addr, link::identity::SERVER_NAME)?.await?;
        let (mut send, mut recv) = conn.open_bi().await?;
        let cameras: Vec<String> = (0..self.cameras).map(|i| format!("cam{i}")).collect();
        let hello = Hello {
            protocol_version: protocol::PROTOCOL_VERSION,
            unit_id: self.id.clone(),
            cameras: cameras.iter().map(|c| CameraInfo { id: c.clone(), name: c.clone() }).collect(),
        };
        messages::write(&mut send, &EdgeMessage::Hello(hello)).await?;
        match messages::read::<CentralMessage>(&mut recv).await? {
            Some(CentralMessage::Welcome { .. }) => {}
            other => bail!("{}: central answered the hello with {other:?}", self.id),
        }
        counters.connected.fetch_add(1, Ordering::Relaxed);
        let drain = {
            let counters = counters.clone();
            tokio::spawn(async move {
                while let Ok(Some(msg)) = messages::read_tolerant::<CentralMessage>(&mut recv).await {
                    if matches!(msg, Tolerant::Message(_) | Tolerant::Unknown(_)) {
                        counters.received.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        };
        let start_us = now_us() - 3_600_000_000;
        let mut next_event = 1u64;
        let mut update = |send_events: bool| -> anyhow::Result<Vec<EdgeMessage>> {
            let now = now_us();
            let catalog = CatalogSummary {
                as_of_us: now,
                cameras: cameras
                    .iter()
                    .map(|c| {
                        let frames = ((now - start_us) / 40_000) as u64;
                        CameraHoldings {
                            camera: c.clone(),
                            spans: vec![Span {
                                first_seq: 0,
                                last_seq: frames.saturating_sub(1),
                                start_us,
                                end_us: now,
                                bytes: frames * 20_000,
                                frames,
                            }],
                            removed: Vec::new(),
                        }
                    })
                    .collect(),
            };
            let mut out = vec![EdgeMessage::Sync(SyncFromEdge::Catalog(sync_core::codec::compress_catalog(&catalog)?))];
            if send_events {
                // Ids as a unit makes them: start time in ms × 1024 + a local count.
                let id = (start_us as u64 / 1000) * 1024 + next_event;
                next_event += 1;
                let event = RemoteEvent {
                    id,
                    cameras: Vec::new(),
                    time_us: now,
                    kind: EventKind::Generic { name: "load".into(), detail: format!("event {id}") },
                };
                let batch = EventBatch { events: vec![event] };
                out.push(EdgeMessage::Sync(SyncFromEdge::Events(sync_core::codec::compress_events(&batch)?)));
            }
            Ok(out)
        };
        for msg in update(false)? {
            messages::write(&mut send, &msg).await?;
        }
        counters.catalogs.fetch_add(1, Ordering::Relaxed);
        if let Some(every) = every {
            tokio::select! {
                _ = stop.cancelled() => {}
                _ = tokio::time::sleep(every.mul_f64(fastrand::f64())) => {}
            }
            let mut tick = tokio::time::interval(every);
            while !stop.is_cancelled() {
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = tick.tick() => {}
                }
                for msg in update(true)? {
                    messages::write(&mut send, &msg).await?;
                }
                counters.catalogs.fetch_add(1, Ordering::Relaxed);
                counters.events.fetch_add(1, Ordering::Relaxed);
            }
        } else {
            stop.cancelled().await;
        }
        drain.abort();
        conn.close(0u32.into(), b"done");
        endpoint.wait_idle().await;
        Ok(())
    }
}

fn now_us() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_micros() as i64)
}
