//! systemd's notification protocol (`sd_notify(3)`), by hand: one datagram per message to the
//! Unix socket in `$NOTIFY_SOCKET` (a path, or an abstract name starting with `@`). Without
//! `$NOTIFY_SOCKET` (not started by systemd with `Type=notify`) every call does nothing.
//!
//! The unit sends `READY=1` once it records and serves its page, `WATCHDOG=1` every half
//! `$WATCHDOG_USEC` while the recorder thread and the async runtime both work
//! ([`watchdog`]), and `STOPPING=1` when it begins to stop.

use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::recorder::Liveness;

/// Why `$NOTIFY_SOCKET` cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    /// The variable does not name a usable socket address.
    #[error("NOTIFY_SOCKET={value:?} is not a usable socket address: {source}")]
    Address {
        /// The variable's value.
        value: String,
        /// Why.
        source: std::io::Error,
    },
    /// No socket could be made to send from.
    #[error("cannot make a socket to notify systemd: {0}")]
    Socket(std::io::Error),
}

/// Sends notifications to systemd, or nothing when not asked to.
#[derive(Debug, Default)]
pub struct Notifier {
    target: Option<(UnixDatagram, SocketAddr)>,
    watchdog: Option<Duration>,
}

impl Notifier {
    /// A notifier that does nothing.
    pub fn disabled() -> Notifier {
        Notifier::default()
    }

    /// The notifier the environment asks for: `$NOTIFY_SOCKET`, and `$WATCHDOG_USEC` (when
    /// `$WATCHDOG_PID` is unset or this process).
    pub fn from_env() -> Result<Notifier, NotifyError> {
        let Some(value) = std::env::var_os("NOTIFY_SOCKET") else {
            return Ok(Notifier::disabled());
        };
        let value = value.to_string_lossy().into_owned();
        let address = socket_address(&value).map_err(|source| NotifyError::Address { value: value.clone(), source })?;
        let socket = UnixDatagram::unbound().map_err(NotifyError::Socket)?;
        // Never block the caller (an async task): a full socket buffer drops the message.
        socket.set_nonblocking(true).map_err(NotifyError::Socket)?;
        let for_us = std::env::var("WATCHDOG_PID").ok().is_none_or(|pid| pid.trim() == std::process::id().to_string());
        let watchdog = std::env::var("WATCHDOG_USEC")
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
            .filter(|&usec| usec > 0 && for_us)
            .map(Duration::from_micros);
        Ok(Notifier { target: Some((socket, address)), watchdog })
    }

    /// Whether messages go anywhere.
    pub fn enabled(&self) -> bool {
        self.target.is_some()
    }

    /// systemd's watchdog timeout, if it watches this process.
    pub fn watchdog_timeout(&self) -> Option<Duration> {
        self.watchdog.filter(|_| self.enabled())
    }

    /// Sends one message (e.g. `READY=1`); failures are logged, never fatal.
    pub fn notify(&self, message: &str) {
        if let Some((socket, address)) = &self.target
            && let Err(e) = socket.send_to_addr(message.as_bytes(), address)
        {
            tracing::warn!("cannot notify systemd ({message}): {e}");
        }
    }
}

fn socket_address(value: &str) -> std::io::Result<SocketAddr> {
    if let Some(name) = value.strip_prefix('@') {
        use std::os::linux::net::SocketAddrExt;
        SocketAddr::from_abstract_name(name.as_bytes())
    } else if value.starts_with('/') {
        SocketAddr::from_pathname(value)
    } else {
        Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, "neither an absolute path nor @abstract"))
    }
}

/// Sends `WATCHDOG=1` every half of systemd's timeout for as long as the recorder thread goes
/// round its loop (it beats every 250 ms unless stuck in the store) and this runtime runs this
/// task. When either stops, so do the pings, and systemd restarts the unit. Runs until
/// `shutdown`; returns at once when systemd does not watch.
pub async fn watchdog(notifier: std::sync::Arc<Notifier>, recorder: Liveness, shutdown: CancellationToken) {
    let Some(timeout) = notifier.watchdog_timeout() else {
        return;
    };
    let period = timeout / 2;
    tracing::info!("systemd watchdog: {} ms, pinging every {} ms", timeout.as_millis(), period.as_millis());
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut stuck = false;
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let age = recorder.since_last_beat();
        if age < timeout {
            notifier.notify("WATCHDOG=1");
            if stuck {
                tracing::info!("the recorder thread is going again: systemd watchdog pings resume");
                stuck = false;
            }
        } else if !stuck {
            tracing::error!(
                "the recorder thread has been stuck for {} ms: no more systemd watchdog pings",
                age.as_millis()
            );
            stuck = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        assert!(socket_address("/run/systemd/notify").is_ok());
        assert!(socket_address("@convoy-test").is_ok());
        assert!(socket_address("relative/path").is_err());
    }

    #[test]
    fn sends_to_a_path_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let listener = UnixDatagram::bind(&path).unwrap();
        let socket = UnixDatagram::unbound().unwrap();
        let notifier = Notifier {
            target: Some((socket, SocketAddr::from_pathname(&path).unwrap())),
            watchdog: Some(Duration::from_secs(1)),
        };
        notifier.notify("READY=1");
        let mut buf = [0u8; 64];
        let n = listener.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1");
        assert_eq!(notifier.watchdog_timeout(), Some(Duration::from_secs(1)));
        assert_eq!(Notifier::disabled().watchdog_timeout(), None);
        Notifier::disabled().notify("READY=1");
    }
}
