//! The accept loop: one task per connection, graceful shutdown from outside.

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::{error, info, warn};

use crate::config::ServerConfig;
use crate::connection;
use crate::error::Error;
use crate::stats::ServedStats;

/// State shared (read-only) by all connections.
pub(crate) struct Shared {
    pub(crate) config: ServerConfig,
    /// Goes in the SDP `o=` line; differs per server run.
    pub(crate) sdp_session_id: u64,
    /// Time between two frames of a playing session.
    pub(crate) frame_period: Duration,
    /// Totals over every ended session.
    pub(crate) served: ServedStats,
}

/// Consecutive failed accepts tolerated (with growing pauses) before giving up.
const MAX_ACCEPT_FAILURES: u32 = 8;

/// Serves RTSP on `listener` until `shutdown` completes.
///
/// Every accepted connection runs in its own task. When `shutdown` completes
/// the listener stops accepting, every connection is closed, and this returns
/// once all connection tasks have ended. Fails at once on an invalid
/// configuration, or if accepting keeps failing.
pub async fn serve(
    listener: TcpListener,
    config: ServerConfig,
    shutdown: impl Future<Output = ()>,
) -> Result<(), Error> {
    config.validate()?;
    let shared = Arc::new(Shared {
        frame_period: Duration::from_secs(1) / config.frame_rate,
        sdp_session_id: rand::random::<u32>().into(),
        config,
        served: ServedStats::default(),
    });
    if let Ok(addr) = listener.local_addr() {
        for mount in shared.config.mounts.keys() {
            info!("serving rtsp://{addr}{mount}");
        }
    }
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks = JoinSet::new();
    let mut failures = 0u32;
    tokio::pin!(shutdown);

    let result = loop {
        tokio::select! {
            () = &mut shutdown => break Ok(()),
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    failures = 0;
                    tasks.spawn(connection::run(stream, peer, shared.clone(), stop_rx.clone()));
                }
                Err(e) if is_per_connection(&e) => warn!("accept: {e}"),
                Err(e) => {
                    failures += 1;
                    if failures > MAX_ACCEPT_FAILURES {
                        break Err(Error::Accept(e));
                    }
                    // Likely out of file descriptors: back off, but stay stoppable.
                    let pause = Duration::from_millis(10 << failures);
                    warn!("accept failed ({e}); retrying in {pause:?}");
                    tokio::select! {
                        () = &mut shutdown => break Ok(()),
                        () = tokio::time::sleep(pause) => {}
                    }
                }
            },
            Some(joined) = tasks.join_next(), if !tasks.is_empty() => {
                if let Err(e) = joined {
                    error!("connection task failed: {e}");
                }
            }
        }
    };

    info!(connections = tasks.len(), "shutting down");
    // Receivers see the change even if they are busy writing right now.
    let _ = stop_tx.send(true);
    while let Some(joined) = tasks.join_next().await {
        if let Err(e) = joined {
            error!("connection task failed: {e}");
        }
    }
    let served = &shared.served;
    info!(
        sessions = served.sessions(),
        frames_written = served.frames_written(),
        frames_skipped = served.frames_skipped(),
        slow_writes = served.slow_writes(),
        "served"
    );
    result
}

/// Errors that concern one incoming connection, not the listener.
fn is_per_connection(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionRefused
            | io::ErrorKind::Interrupted
            | io::ErrorKind::WouldBlock
    )
}
