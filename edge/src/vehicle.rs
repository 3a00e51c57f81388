//! The unit in its vehicle: the board description checked at start, the I/O companion link,
//! power handling (run-on, seal on a power warning) and systemd's notifications, wired together
//! for `edge run`.
//!
//! [`VehicleSetup::load`] runs before the store opens (a missing storage device stops the unit
//! there); [`VehicleSetup::start`] inside the runtime; then the binary calls
//! [`Vehicle::ready`] once it records and serves, waits for a signal or
//! [`Vehicle::power_off`], and after stopping the cameras [`Vehicle::seal_for_power_off`].

use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use tokio_util::sync::CancellationToken;

use crate::board::{Board, BoardError, Companion, Ignition, MissingDevice};
use crate::config::EdgeConfig;
use crate::io_link::{self, IoHandle, IoLinkConfig};
use crate::power::Power;
use crate::recorder::{Liveness, RecorderTx};
use crate::sd_notify::Notifier;
use crate::status::UnitStatus;

/// Why the unit cannot start on this board.
#[derive(Debug, thiserror::Error)]
pub enum VehicleError {
    /// The board file cannot be read or is invalid.
    #[error(transparent)]
    Board(#[from] BoardError),
    /// A device the unit cannot record without is missing.
    #[error(
        "board {board} ({}): {}; the unit cannot record without it. Check that [board] file names this \
         box's board, or fix the system",
        file.display(),
        missing.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
    )]
    MissingRequired {
        /// The board's name.
        board: String,
        /// The board file.
        file: PathBuf,
        /// The required devices that are missing.
        missing: Vec<MissingDevice>,
    },
    /// The I/O companion's addresses are incomplete.
    #[error("[io]: {0}")]
    Io(String),
}

/// `"board"` in `/api/status` (present when the unit has a `[board] file`).
#[derive(Debug, Clone, serde::Serialize)]
pub struct BoardJson {
    /// The board's short name (`rpi-cm4`).
    pub name: String,
    /// The product.
    pub model: String,
    /// The board file.
    pub file: String,
    /// Devices the board names that this system lacks (none required), each with what to do.
    pub missing: Vec<String>,
}

/// What `edge run` learnt from the configuration and the board before the store opens.
pub struct VehicleSetup {
    board: Option<(Board, BoardJson)>,
    io: Option<IoLinkConfig>,
    notifier: Notifier,
}

impl VehicleSetup {
    /// Reads and checks the board file (if any) and works out the I/O companion's addresses.
    pub fn load(config: &EdgeConfig) -> Result<VehicleSetup, VehicleError> {
        let notifier = Notifier::from_env().unwrap_or_else(|e| {
            tracing::warn!("{e}; not notifying systemd");
            Notifier::disabled()
        });
        let board = match &config.board {
            None => None,
            Some(b) => Some(check_board(&b.file, config)?),
        };
        let io = io_config(config, board.as_ref().map(|(b, _)| b))?;
        Ok(VehicleSetup { board, io, notifier })
    }

    /// Starts the I/O link and the power handling; they run until `shutdown`.
    pub fn start(
        self,
        config: &EdgeConfig,
        status: Arc<UnitStatus>,
        recorder: RecorderTx,
        liveness: Liveness,
        shutdown: CancellationToken,
    ) -> Vehicle {
        status.set_board(self.board.as_ref().map(|(_, json)| json.clone()));
        let ignition_from_companion = match self.board.as_ref().map(|(b, _)| &b.ignition) {
            Some(Ignition::Gpio { chip, line, .. }) => {
                tracing::warn!(
                    "the board reads the ignition on {} line {line}, which the unit does not read yet: no run-on",
                    chip.display()
                );
                false
            }
            _ => true,
        };
        let io = self.io.map(|io| io_link::start(io, status.clone(), shutdown.clone()).0);
        if io.is_none() {
            tracing::info!("no I/O companion configured: no inputs, outputs, ignition or power warning");
        }
        let power_off = CancellationToken::new();
        let power = Power {
            config: config.power.clone(),
            status: status.clone(),
            recorder: recorder.clone(),
            power_off: power_off.clone(),
            ignition_from_companion,
        };
        tokio::spawn(power.run(io.as_ref().map(IoHandle::state), shutdown.clone()));
        Vehicle { io, power_off, notifier: Arc::new(self.notifier), recorder, liveness, status, shutdown }
    }
}

/// The vehicle side of a running unit.
pub struct Vehicle {
    io: Option<IoHandle>,
    power_off: CancellationToken,
    notifier: Arc<Notifier>,
    recorder: RecorderTx,
    liveness: Liveness,
    status: Arc<UnitStatus>,
    shutdown: CancellationToken,
}

impl Vehicle {
    /// The HTTP routes of the vehicle side (`POST /api/io/outputs/{n}`). Serve them with
    /// `into_make_service_with_connect_info::<SocketAddr>()`: outputs are switched only from
    /// loopback.
    pub fn routes(&self) -> Router {
        io_link::routes(self.io.clone())
    }

    /// The I/O companion link, if the unit has one.
    pub fn io(&self) -> Option<&IoHandle> {
        self.io.as_ref()
    }

    /// Tells systemd the unit records and serves (`READY=1`) and starts the watchdog pings.
    pub fn ready(&self) {
        self.notifier.notify("READY=1");
        if self.notifier.enabled() {
            tracing::info!("told systemd the unit is ready");
        }
        tokio::spawn(crate::sd_notify::watchdog(self.notifier.clone(), self.liveness.clone(), self.shutdown.clone()));
    }

    /// Resolves when the run-on after ignition off is over: the unit should stop.
    pub async fn power_off(&self) {
        self.power_off.cancelled().await;
    }

    /// Tells systemd the unit is stopping (`STOPPING=1`).
    pub fn stopping(&self) {
        self.notifier.notify("STOPPING=1");
    }

    /// Seals every open segment before the unit exits at the end of the run-on. Call it after
    /// the camera tasks have ended, so nothing is appended after the seals.
    pub async fn seal_for_power_off(&self) {
        crate::power::seal(&self.recorder, &self.status, "the shutdown after ignition off").await;
    }
}

fn check_board(file: &std::path::Path, config: &EdgeConfig) -> Result<(Board, BoardJson), VehicleError> {
    let board = Board::load(file)?;
    let missing = board.check();
    let (required, optional): (Vec<_>, Vec<_>) = missing.into_iter().partition(|m| m.required);
    if !required.is_empty() {
        return Err(VehicleError::MissingRequired {
            board: board.board.name.clone(),
            file: file.to_owned(),
            missing: required,
        });
    }
    for m in &optional {
        tracing::warn!("board {}: {m}; running without it", board.board.name);
    }
    if !config.store.path.starts_with(&board.storage.mount) {
        tracing::warn!(
            "store.path {} is not under the board's storage mount {}: recordings may not be on the data partition",
            config.store.path.display(),
            board.storage.mount.display()
        );
    }
    tracing::info!(
        "board {} ({}): {}",
        board.board.name,
        board.board.model,
        if optional.is_empty() {
            "every device present".to_owned()
        } else {
            format!("{} devices missing", optional.len())
        }
    );
    let json = BoardJson {
        name: board.board.name.clone(),
        model: board.board.model.clone(),
        file: file.display().to_string(),
        missing: optional.iter().map(ToString::to_string).collect(),
    };
    Ok((board, json))
}

/// The companion link's addresses: `[io]` over the board file's `[companion]`.
fn io_config(config: &EdgeConfig, board: Option<&Board>) -> Result<Option<IoLinkConfig>, VehicleError> {
    let (mut listen, mut address) = match board.map(|b| &b.companion) {
        Some(Companion::Udp { listen, board, .. }) => (Some(*listen), Some(*board)),
        Some(Companion::Uart { device, .. }) => {
            if config.io.is_none() {
                tracing::warn!(
                    "the board's I/O companion is on the serial port {}, which the unit does not speak yet",
                    device.display()
                );
            }
            (None, None)
        }
        None => (None, None),
    };
    if let Some(io) = &config.io {
        listen = io.listen.or(listen);
        address = io.board.or(address);
    }
    match (listen, address) {
        (Some(listen), Some(board)) => Ok(Some(IoLinkConfig { listen, board })),
        (None, None) => Ok(None),
        _ => Err(VehicleError::Io(
            "the board file has no UDP companion to take the other address from: set both listen and board".into(),
        )),
    }
}
