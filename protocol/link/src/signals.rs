//! SIGINT and SIGTERM as an awaitable, for the binaries' orderly shutdown. Install it before
//! announcing readiness, so that a signal sent right after never meets the default handler.

use tokio::signal::unix::{Signal, SignalKind, signal};

/// Installed handlers for SIGINT and SIGTERM.
pub struct ShutdownSignals {
    interrupt: Signal,
    terminate: Signal,
}

impl ShutdownSignals {
    /// Installs the handlers (inside a tokio runtime).
    pub fn install() -> std::io::Result<ShutdownSignals> {
        Ok(ShutdownSignals { interrupt: signal(SignalKind::interrupt())?, terminate: signal(SignalKind::terminate())? })
    }

    /// Waits for either signal.
    pub async fn recv(&mut self) {
        tokio::select! {
            _ = self.interrupt.recv() => {}
            _ = self.terminate.recv() => {}
        }
    }
}
