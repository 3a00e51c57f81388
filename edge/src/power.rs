//! What the unit does about the vehicle's power, from the I/O companion's state:
//!
//! - **Ignition off** starts the run-on: the unit keeps recording `[power] run_on_s`, then asks
//!   the process to stop (the binary stops the cameras, seals every open segment and exits 0).
//!   The ignition coming on during the run-on cancels it. A unit that starts with the ignition
//!   already off (e.g. restarted while parked) runs the run-on too, so it does not drain the
//!   battery.
//! - **Power warning** (the supply dropped): with `seal_on_power_warning`, every open segment
//!   is sealed at once, so a power cut that follows loses nothing already recorded; recording
//!   continues into new segments.
//!
//! The state is shown in `/api/status` as `"power"`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use io_logic::Input;
use serde::Serialize;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::camera::now_us;
use crate::config::PowerConfig;
use crate::io_link::IoState;
use crate::recorder::RecorderTx;
use crate::status::UnitStatus;

/// `"power"` in `/api/status`.
#[derive(Debug, Clone, Serialize)]
pub struct PowerJson {
    /// `running`, `run_on` (ignition off, counting down) or `shutting_down`.
    pub state: &'static str,
    /// Seconds left of the run-on, while in `run_on`.
    pub run_on_remaining_s: Option<u64>,
    /// The ignition as last reported (null without a companion or while unknown).
    pub ignition: Option<bool>,
    /// When every open segment was last sealed for a power warning or the shutdown, µs since
    /// the Unix epoch.
    pub last_seal_us: Option<i64>,
    /// Why the last such seal failed, if it did.
    pub last_seal_error: Option<String>,
}

impl Default for PowerJson {
    fn default() -> Self {
        PowerJson {
            state: "running",
            run_on_remaining_s: None,
            ignition: None,
            last_seal_us: None,
            last_seal_error: None,
        }
    }
}

/// The power handling of a running unit.
pub struct Power {
    /// `[power]`.
    pub config: PowerConfig,
    /// The unit's status (for `"power"` and the store error).
    pub status: Arc<UnitStatus>,
    /// The recorder, to seal.
    pub recorder: RecorderTx,
    /// Cancelled when the run-on is over: the binary then stops, seals and exits 0.
    pub power_off: CancellationToken,
    /// Whether the ignition comes from the companion (false when the board reads it on a GPIO
    /// line).
    pub ignition_from_companion: bool,
}

impl Power {
    /// Follows the companion's state until `shutdown`. Without a companion there is nothing to
    /// follow: the unit just records.
    pub async fn run(self, io: Option<watch::Receiver<IoState>>, shutdown: CancellationToken) {
        let Some(mut io) = io else {
            shutdown.cancelled().await;
            return;
        };
        let run_on = Duration::from_secs(self.config.run_on_s);
        let sealing = Arc::new(AtomicBool::new(false));
        let mut ignition = None;
        let mut power_low = None;
        let mut deadline: Option<Instant> = None;
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            let (now_ignition, now_low) = {
                let s = io.borrow_and_update();
                (s.input(Input::Ignition).filter(|_| self.ignition_from_companion), s.power_low)
            };
            if now_ignition != ignition {
                match now_ignition {
                    Some(false) if deadline.is_none() => {
                        tracing::info!(
                            "ignition off: recording {} s more, then sealing the store and stopping",
                            run_on.as_secs()
                        );
                        deadline = Some(Instant::now() + run_on);
                    }
                    Some(true) if deadline.take().is_some() => {
                        tracing::info!("ignition on again: run-on cancelled, recording on");
                    }
                    _ => {}
                }
                ignition = now_ignition;
            }
            if now_low != power_low {
                if now_low == Some(true) && self.config.seal_on_power_warning {
                    self.seal_for_power_warning(&sealing);
                }
                power_low = now_low;
            }
            let remaining = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            self.status.update_power(|p| {
                p.state = if remaining.is_some() { "run_on" } else { "running" };
                p.run_on_remaining_s = remaining.map(|r| r.as_secs_f64().ceil() as u64);
                p.ignition = ignition;
            });
            tokio::select! {
                () = shutdown.cancelled() => return,
                changed = io.changed() => {
                    if changed.is_err() {
                        // The link task ended: the unit is stopping.
                        shutdown.cancelled().await;
                        return;
                    }
                }
                () = tokio::time::sleep_until(deadline.unwrap_or_else(Instant::now)), if deadline.is_some() => {
                    let after = run_on.as_secs();
                    tracing::info!("run-on over ({after} s after ignition off): sealing the store and stopping");
                    self.status.update_power(|p| {
                        p.state = "shutting_down";
                        p.run_on_remaining_s = Some(0);
                    });
                    self.power_off.cancel();
                    shutdown.cancelled().await;
                    return;
                }
                _ = tick.tick() => {}
            }
        }
    }

    fn seal_for_power_warning(&self, sealing: &Arc<AtomicBool>) {
        if sealing.swap(true, Ordering::AcqRel) {
            return;
        }
        tracing::warn!("power warning: sealing every open segment now");
        let recorder = self.recorder.clone();
        let status = self.status.clone();
        let sealing = sealing.clone();
        tokio::spawn(async move {
            seal(&recorder, &status, "the power warning").await;
            sealing.store(false, Ordering::Release);
        });
    }
}

/// Seals every open segment through the recorder and records the outcome in `"power"`.
pub async fn seal(recorder: &RecorderTx, status: &UnitStatus, why: &str) {
    let started = Instant::now();
    match recorder.seal_all().await {
        Ok(()) => {
            tracing::info!("sealed every open segment for {why} ({} ms)", started.elapsed().as_millis());
            status.update_power(|p| {
                p.last_seal_us = Some(now_us());
                p.last_seal_error = None;
            });
        }
        Err(e) => {
            tracing::error!("cannot seal the open segments for {why}: {e}");
            status.update_power(|p| p.last_seal_error = Some(e.to_string()));
        }
    }
}
