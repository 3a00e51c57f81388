//! The link to the I/O companion board (`boards/README.md`): a UDP socket on which the board
//! sends heartbeats, status, input changes and power warnings (`protocol::io::BoardMessage`),
//! and the unit sends `KeepAlive` every [`KEEPALIVE_INTERVAL`] (the board puts its relays in
//! their safe state when it hears nothing for its link timeout) and `SetOutput`.
//!
//! The link keeps the board's live state ([`IoState`], watched by the power handling and shown
//! in `/api/status` as `"io"`), turns changes into events, and counts datagrams that do not
//! decode (never fatal). Outputs the unit switched are switched again when the board reports
//! them otherwise (after its link watchdog tripped or it restarted).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use io_logic::{BoardMessage, Input, InputState, MAX_DATAGRAM, UnitCommand, decode, encode};
use serde::{Deserialize, Serialize};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::camera::now_us;
use crate::events::EventKind;
use crate::status::UnitStatus;

/// How often the unit sends `KeepAlive` (the board's link timeout is 10 s).
pub const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(2);

/// The link is down when no heartbeat or status came for this long (the board sends both every
/// second).
pub const LINK_TIMEOUT: Duration = Duration::from_secs(5);

/// How long to wait before trying again to bind the listen address (e.g. the interface has no
/// address yet).
const REBIND_DELAY: Duration = Duration::from_secs(5);

/// How long a `SetOutput` waits for the board's status to show it, per attempt.
const CONFIRM_TIMEOUT: Duration = Duration::from_millis(500);

/// Attempts of a `SetOutput` before it is reported as not confirmed.
const CONFIRM_ATTEMPTS: u32 = 3;

/// The least time between two corrections of outputs the board reports otherwise.
const REASSERT_INTERVAL: Duration = Duration::from_secs(1);

/// Where the link runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IoLinkConfig {
    /// Where the unit listens for the board's messages.
    pub listen: SocketAddr,
    /// The board's address and port. Datagrams from other IP addresses are ignored.
    pub board: SocketAddr,
}

/// What the unit knows of the board.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IoState {
    /// A heartbeat or status came within [`LINK_TIMEOUT`].
    pub link_up: bool,
    /// The address the socket is bound to, once it is.
    pub local: Option<SocketAddr>,
    /// Why the socket is not bound, if it is not.
    pub error: Option<String>,
    /// The board's firmware version, from its heartbeat.
    pub firmware: Option<String>,
    /// The board's uptime at its last heartbeat.
    pub board_uptime_ms: Option<u64>,
    /// When the last heartbeat arrived, µs since the Unix epoch.
    pub last_heartbeat_us: Option<i64>,
    /// Every input the board reported, in its order.
    pub inputs: Vec<InputState>,
    /// Relay outputs as the board last reported them: bit `n` is output `n`.
    pub outputs: Option<u32>,
    /// The supply voltage last reported.
    pub millivolts: Option<u16>,
    /// Whether a power warning is in force.
    pub power_low: Option<bool>,
    /// `Status` messages received.
    pub statuses: u64,
    /// Datagrams from the board that did not decode.
    pub garbage: u64,
    /// Datagrams from other addresses, ignored.
    pub foreign: u64,
    /// Datagrams from the unit the board could not decode (its own count).
    pub board_decode_errors: u32,
}

impl IoState {
    /// An input's state, if the board reported it.
    pub fn input(&self, input: Input) -> Option<bool> {
        self.inputs.iter().find(|i| i.input == input).map(|i| i.active)
    }

    /// An output's state, once the board reported its outputs.
    pub fn output(&self, output: u8) -> Option<bool> {
        let bit = 1u32.checked_shl(u32::from(output))?;
        self.outputs.map(|o| o & bit != 0)
    }

    /// The `"io"` object of `/api/status`.
    pub fn json(&self, config: &IoLinkConfig) -> IoJson {
        let outputs_on = (0..32u8).filter(|n| self.output(*n) == Some(true)).collect();
        IoJson {
            link_up: self.link_up,
            board: config.board.to_string(),
            listen: self.local.unwrap_or(config.listen).to_string(),
            error: self.error.clone(),
            firmware: self.firmware.clone(),
            board_uptime_ms: self.board_uptime_ms,
            last_heartbeat: self
                .last_heartbeat_us
                .and_then(|us| jiff::Timestamp::from_microsecond(us).ok())
                .map(|t| t.to_string()),
            inputs: self
                .inputs
                .iter()
                .map(|i| InputJson { input: i.input, name: input_name(i.input), active: i.active })
                .collect(),
            outputs: self.outputs,
            outputs_on,
            supply_mv: self.millivolts,
            power_low: self.power_low,
            garbage_datagrams: self.garbage,
            foreign_datagrams: self.foreign,
            board_decode_errors: self.board_decode_errors,
        }
    }
}

/// `"io"` in `/api/status` (present when the unit has an I/O companion link).
#[derive(Debug, Clone, Serialize)]
pub struct IoJson {
    /// A heartbeat or status came within the last 5 s.
    pub link_up: bool,
    /// The board's address.
    pub board: String,
    /// Where the unit listens.
    pub listen: String,
    /// Why the unit cannot listen, if it cannot.
    pub error: Option<String>,
    /// The board's firmware version.
    pub firmware: Option<String>,
    /// The board's uptime at its last heartbeat.
    pub board_uptime_ms: Option<u64>,
    /// When the last heartbeat arrived, RFC 3339.
    pub last_heartbeat: Option<String>,
    /// The board's inputs.
    pub inputs: Vec<InputJson>,
    /// Relay outputs as a bit mask (bit `n` = output `n` on), once reported.
    pub outputs: Option<u32>,
    /// The numbers of the outputs that are on.
    pub outputs_on: Vec<u8>,
    /// The supply voltage in millivolts.
    pub supply_mv: Option<u16>,
    /// Whether the board warns of a low supply.
    pub power_low: Option<bool>,
    /// Datagrams from the board that did not decode.
    pub garbage_datagrams: u64,
    /// Datagrams from other addresses, ignored.
    pub foreign_datagrams: u64,
    /// Datagrams from the unit the board could not decode.
    pub board_decode_errors: u32,
}

/// One input in [`IoJson`].
#[derive(Debug, Clone, Serialize)]
pub struct InputJson {
    /// The input as in events (`"Ignition"`, `{"Door": 0}`, `"Panic"`, `{"Generic": 5}`).
    pub input: Input,
    /// A short name: `ignition`, `door0`, `panic`, `input5`.
    pub name: String,
    /// Whether it is active.
    pub active: bool,
}

/// A short name for an input: `ignition`, `door0`, `panic`, `input5`.
pub fn input_name(input: Input) -> String {
    match input {
        Input::Ignition => "ignition".into(),
        Input::Door(n) => format!("door{n}"),
        Input::Panic => "panic".into(),
        Input::Generic(n) => format!("input{n}"),
    }
}

/// Why an output could not be set.
#[derive(Debug, thiserror::Error)]
pub enum IoError {
    /// Outputs are numbered 0 to 31.
    #[error("there is no output {0}: outputs are numbered 0 to 31")]
    NoSuchOutput(u8),
    /// The link task has ended (the unit is stopping).
    #[error("the I/O companion link has stopped")]
    Stopped,
    /// The board's status did not show the change.
    #[error(
        "the I/O companion did not confirm output {output} {state} (is the link up, and does the board have that \
         output?)"
    )]
    NotConfirmed {
        /// The output.
        output: u8,
        /// `on` or `off`.
        state: &'static str,
    },
}

enum Command {
    Set { output: u8, on: bool },
    Forget { output: u8 },
}

/// Commands to the running link and its state. Cloneable.
#[derive(Clone)]
pub struct IoHandle {
    commands: mpsc::Sender<Command>,
    state: watch::Receiver<IoState>,
}

impl IoHandle {
    /// The board's state, updated with every message.
    pub fn state(&self) -> watch::Receiver<IoState> {
        self.state.clone()
    }

    /// Switches a relay output and waits until the board's status shows it (retrying a lost
    /// command). The unit switches it again should the board later report it otherwise.
    pub async fn set_output(&self, output: u8, on: bool) -> Result<(), IoError> {
        if output >= 32 {
            return Err(IoError::NoSuchOutput(output));
        }
        let mut state = self.state.clone();
        for _ in 0..CONFIRM_ATTEMPTS {
            let seen = state.borrow_and_update().statuses;
            self.commands.send(Command::Set { output, on }).await.map_err(|_| IoError::Stopped)?;
            let confirmed = state.wait_for(|s| s.statuses > seen && s.output(output) == Some(on) && s.link_up);
            match tokio::time::timeout(CONFIRM_TIMEOUT, confirmed).await {
                Ok(Ok(_)) => return Ok(()),
                Ok(Err(_)) => return Err(IoError::Stopped),
                Err(_) => {}
            }
        }
        let _ = self.commands.send(Command::Forget { output }).await;
        Err(IoError::NotConfirmed { output, state: if on { "on" } else { "off" } })
    }
}

/// Starts the link task; it runs until `shutdown`.
pub fn start(
    config: IoLinkConfig,
    status: Arc<UnitStatus>,
    shutdown: CancellationToken,
) -> (IoHandle, tokio::task::JoinHandle<()>) {
    let (commands_tx, commands) = mpsc::channel(16);
    let (state_tx, state) = watch::channel(IoState::default());
    status.set_io(Some(IoState::default().json(&config)));
    let link = Link {
        config,
        status,
        state: state_tx,
        s: IoState::default(),
        last_alive: None,
        ever_up: false,
        desired: 0,
        commanded: 0,
        last_reassert: None,
    };
    let task = tokio::spawn(link.run(commands, shutdown));
    (IoHandle { commands: commands_tx, state }, task)
}

struct Link {
    config: IoLinkConfig,
    status: Arc<UnitStatus>,
    state: watch::Sender<IoState>,
    /// The state being built; published after each change.
    s: IoState,
    last_alive: Option<Instant>,
    ever_up: bool,
    /// Output states the unit asked for (bits of `commanded` only).
    desired: u32,
    /// Outputs the unit has switched.
    commanded: u32,
    last_reassert: Option<Instant>,
}

impl Link {
    async fn run(mut self, mut commands: mpsc::Receiver<Command>, shutdown: CancellationToken) {
        let socket = loop {
            match UdpSocket::bind(self.config.listen).await {
                Ok(socket) => break socket,
                Err(e) => {
                    let message = format!("cannot listen on {}: {e}", self.config.listen);
                    if self.s.error.as_ref() != Some(&message) {
                        tracing::warn!(
                            "I/O companion link: {message}; trying again every {} s",
                            REBIND_DELAY.as_secs()
                        );
                    }
                    self.s.error = Some(message);
                    self.publish();
                    tokio::select! {
                        () = tokio::time::sleep(REBIND_DELAY) => {}
                        () = shutdown.cancelled() => return,
                    }
                }
            }
        };
        self.s.local = socket.local_addr().ok();
        self.s.error = None;
        self.publish();
        tracing::info!(
            "I/O companion link: listening on {}, board at {}",
            self.s.local.map_or_else(|| self.config.listen.to_string(), |a| a.to_string()),
            self.config.board
        );
        let mut keepalive = tokio::time::interval(KEEPALIVE_INTERVAL);
        keepalive.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut check = tokio::time::interval(Duration::from_millis(500));
        let mut buf = [0u8; 2048];
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                received = socket.recv_from(&mut buf) => match received {
                    Ok((len, from)) => self.datagram(&buf[..len], from, &socket).await,
                    Err(e) => {
                        tracing::debug!("I/O companion link: receive: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                },
                Some(command) = commands.recv() => match command {
                    Command::Set { output, on } => {
                        let bit = 1u32 << output;
                        self.commanded |= bit;
                        if on { self.desired |= bit } else { self.desired &= !bit }
                        tracing::info!("I/O companion: switching output {output} {}", if on { "on" } else { "off" });
                        self.send(&socket, UnitCommand::SetOutput { output, on }).await;
                    }
                    Command::Forget { output } => {
                        self.commanded &= !(1u32 << output);
                    }
                },
                _ = keepalive.tick() => self.send(&socket, UnitCommand::KeepAlive).await,
                _ = check.tick() => self.check_timeout(),
            }
        }
    }

    async fn send(&self, socket: &UdpSocket, command: UnitCommand) {
        let mut buf = [0u8; MAX_DATAGRAM];
        let Ok(bytes) = encode(&command, &mut buf) else {
            tracing::error!("I/O companion link: cannot encode {command:?}");
            return;
        };
        if let Err(e) = socket.send_to(bytes, self.config.board).await {
            tracing::debug!("I/O companion link: cannot send to {}: {e}", self.config.board);
        }
    }

    async fn datagram(&mut self, bytes: &[u8], from: SocketAddr, socket: &UdpSocket) {
        if from.ip() != self.config.board.ip() {
            self.s.foreign += 1;
            tracing::debug!("I/O companion link: ignored {} bytes from {from} (not the board)", bytes.len());
            self.publish();
            return;
        }
        match decode::<BoardMessage>(bytes) {
            Ok(message) => self.message(message, socket).await,
            Err(e) => {
                self.s.garbage += 1;
                tracing::debug!("I/O companion link: garbage datagram of {} bytes from {from}: {e}", bytes.len());
            }
        }
        self.publish();
    }

    async fn message(&mut self, message: BoardMessage, socket: &UdpSocket) {
        match message {
            BoardMessage::Heartbeat { seq: _, uptime_ms, firmware } => {
                self.s.firmware = Some(firmware.as_str().to_owned());
                self.s.board_uptime_ms = Some(uptime_ms);
                self.s.last_heartbeat_us = Some(now_us());
                self.alive();
            }
            BoardMessage::InputChanged { input, active } => self.input(input, active, true),
            BoardMessage::PowerWarning { millivolts } => self.power(true, millivolts),
            BoardMessage::PowerRestored { millivolts } => self.power(false, millivolts),
            BoardMessage::Status { seq: _, inputs, outputs, millivolts, power_low, decode_errors } => {
                self.alive();
                for i in inputs {
                    self.input(i.input, i.active, false);
                }
                self.s.outputs = Some(outputs);
                self.power(power_low, millivolts);
                self.s.board_decode_errors = decode_errors;
                self.s.statuses += 1;
                self.reassert(outputs, socket).await;
            }
        }
    }

    /// A heartbeat or status arrived.
    fn alive(&mut self) {
        self.last_alive = Some(Instant::now());
        if !self.s.link_up {
            self.s.link_up = true;
            if self.ever_up {
                tracing::info!("I/O companion link restored");
                self.status.events.emit(EventKind::IoLinkRestored);
            } else {
                tracing::info!("I/O companion link up ({})", self.config.board);
            }
            self.ever_up = true;
        }
    }

    /// An input's state, from an `InputChanged` (`explicit`) or a status. A status only
    /// raises an event for a change from a state already known; the first one tells the
    /// state.
    fn input(&mut self, input: Input, active: bool, explicit: bool) {
        let changed = match self.s.inputs.iter_mut().find(|i| i.input == input) {
            Some(known) if known.active == active => false,
            Some(known) => {
                known.active = active;
                true
            }
            None => {
                self.s.inputs.push(InputState { input, active });
                explicit
            }
        };
        if changed {
            let kind = match (input, active) {
                (Input::Ignition, true) => EventKind::IgnitionOn,
                (Input::Ignition, false) => EventKind::IgnitionOff,
                (input, active) => EventKind::InputChanged { input, active },
            };
            self.status.events.emit(kind);
        }
    }

    fn power(&mut self, low: bool, millivolts: u16) {
        if millivolts > 0 {
            self.s.millivolts = Some(millivolts);
        }
        let before = self.s.power_low.replace(low);
        match (before, low) {
            (None | Some(false), true) => {
                tracing::warn!("I/O companion: power warning, supply at {millivolts} mV");
                self.status.events.emit(EventKind::PowerWarning { millivolts });
            }
            (Some(true), false) => {
                tracing::info!("I/O companion: power restored, supply at {millivolts} mV");
                self.status.events.emit(EventKind::PowerRestored { millivolts });
            }
            _ => {}
        }
    }

    /// Switches again the outputs the unit set that the board reports otherwise.
    async fn reassert(&mut self, outputs: u32, socket: &UdpSocket) {
        let wrong = (outputs ^ self.desired) & self.commanded;
        if wrong == 0 || self.last_reassert.is_some_and(|t| t.elapsed() < REASSERT_INTERVAL) {
            return;
        }
        self.last_reassert = Some(Instant::now());
        for output in (0..32u8).filter(|n| wrong & (1 << n) != 0) {
            let on = self.desired & (1 << output) != 0;
            tracing::info!(
                "I/O companion: output {output} is not {} as set; switching it again",
                if on { "on" } else { "off" }
            );
            self.send(socket, UnitCommand::SetOutput { output, on }).await;
        }
    }

    fn check_timeout(&mut self) {
        if self.s.link_up && self.last_alive.is_none_or(|t| t.elapsed() >= LINK_TIMEOUT) {
            self.s.link_up = false;
            tracing::warn!(
                "I/O companion link lost: nothing heard from {} for {} s",
                self.config.board,
                LINK_TIMEOUT.as_secs()
            );
            self.status.events.emit(EventKind::IoLinkLost);
            self.publish();
        }
    }

    /// `/api/status` first, then the watchers: a caller that `set_output` answered reads the
    /// confirmed state in the status too.
    fn publish(&self) {
        self.status.set_io(Some(self.s.json(&self.config)));
        self.state.send_replace(self.s.clone());
    }
}

/// The body of `POST /api/io/outputs/{n}`.
#[derive(Debug, Deserialize)]
pub struct OutputRequest {
    /// Switch the output on (true) or off.
    pub on: bool,
}

/// `POST /api/io/outputs/{n}` with `{"on": bool}`: switches relay output `n` and answers
/// `{"output": n, "on": bool}` once the board confirmed it. Only from the unit itself (loopback)
/// until the local API has a login.
pub fn routes(io: Option<IoHandle>) -> Router {
    Router::new().route("/api/io/outputs/{n}", post(set_output)).with_state(io)
}

async fn set_output(
    State(io): State<Option<IoHandle>>,
    Path(output): Path<u8>,
    extensions: axum::http::Extensions,
    axum::Json(request): axum::Json<OutputRequest>,
) -> Response {
    let error =
        |code: StatusCode, message: String| (code, axum::Json(serde_json::json!({ "error": message }))).into_response();
    let peer = extensions.get::<ConnectInfo<SocketAddr>>().map(|ConnectInfo(addr)| *addr);
    if !peer.is_some_and(|addr| addr.ip().is_loopback()) {
        return error(StatusCode::FORBIDDEN, "outputs can only be switched from the unit itself for now".into());
    }
    let Some(io) = io else {
        return error(StatusCode::SERVICE_UNAVAILABLE, "this unit has no I/O companion configured".into());
    };
    match io.set_output(output, request.on).await {
        Ok(()) => axum::Json(serde_json::json!({ "output": output, "on": request.on })).into_response(),
        Err(e @ IoError::NoSuchOutput(_)) => error(StatusCode::BAD_REQUEST, e.to_string()),
        Err(e @ IoError::Stopped) => error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
        Err(e @ IoError::NotConfirmed { .. }) => error(StatusCode::GATEWAY_TIMEOUT, e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn datagram<T: Serialize>(message: &T) -> Vec<u8> {
        let mut buf = [0u8; MAX_DATAGRAM];
        encode(message, &mut buf).unwrap().to_vec()
    }

    fn status_message(ignition: bool, panic: bool, outputs: u32, millivolts: u16, power_low: bool) -> BoardMessage {
        let inputs = [
            InputState { input: Input::Ignition, active: ignition },
            InputState { input: Input::Panic, active: panic },
        ]
        .into_iter()
        .collect();
        BoardMessage::Status { seq: 0, inputs, outputs, millivolts, power_low, decode_errors: 0 }
    }

    /// A fake board on loopback against a real link.
    #[tokio::test]
    async fn state_events_garbage_keepalive_and_outputs() {
        let board = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let listen = std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
        let status = Arc::new(UnitStatus::new("u".into(), []));
        let shutdown = CancellationToken::new();
        let config = IoLinkConfig { listen, board: board.local_addr().unwrap() };
        let (io, task) = start(config, status.clone(), shutdown.clone());
        let mut state = io.state();
        state.wait_for(|s| s.local.is_some()).await.unwrap();
        let mut buf = [0u8; 256];
        let (len, unit) = board.recv_from(&mut buf).await.unwrap();
        assert_eq!(decode::<UnitCommand>(&buf[..len]).unwrap(), UnitCommand::KeepAlive, "a keep-alive at once");

        board.send_to(b"\xff\xff\xff garbage", unit).await.unwrap();
        board.send_to(&datagram(&status_message(true, false, 0, 12_600, false)), unit).await.unwrap();
        let s = state.wait_for(|s| s.statuses == 1).await.unwrap().clone();
        assert!(s.link_up);
        assert_eq!(s.garbage, 1);
        assert_eq!(s.input(Input::Ignition), Some(true));
        assert_eq!(s.millivolts, Some(12_600));
        assert_eq!(status.events.last_id(), 0, "the first status tells the state, it is no event");

        board
            .send_to(&datagram(&BoardMessage::InputChanged { input: Input::Panic, active: true }), unit)
            .await
            .unwrap();
        board.send_to(&datagram(&status_message(false, true, 0, 8000, true)), unit).await.unwrap();
        state.wait_for(|s| s.statuses == 2).await.unwrap();
        let kinds: Vec<EventKind> = status.events.since(0).into_iter().map(|e| e.kind).collect();
        assert_eq!(
            kinds,
            [
                EventKind::InputChanged { input: Input::Panic, active: true },
                EventKind::IgnitionOff,
                EventKind::PowerWarning { millivolts: 8000 }
            ]
        );

        // The board acknowledges a SetOutput with a status showing it.
        let set = tokio::spawn({
            let io = io.clone();
            async move { io.set_output(2, true).await }
        });
        loop {
            let (len, _) = board.recv_from(&mut buf).await.unwrap();
            if decode::<UnitCommand>(&buf[..len]).unwrap() == (UnitCommand::SetOutput { output: 2, on: true }) {
                break;
            }
        }
        board.send_to(&datagram(&status_message(false, true, 0b100, 8000, true)), unit).await.unwrap();
        set.await.unwrap().unwrap();
        assert_eq!(status.snapshot().io.unwrap().outputs_on, [2]);
        assert!(matches!(io.set_output(40, true).await, Err(IoError::NoSuchOutput(40))));

        // A status with the output off again (the board's watchdog): the unit switches it back.
        board.send_to(&datagram(&status_message(false, true, 0, 8000, true)), unit).await.unwrap();
        loop {
            let (len, _) = board.recv_from(&mut buf).await.unwrap();
            if decode::<UnitCommand>(&buf[..len]).unwrap() == (UnitCommand::SetOutput { output: 2, on: true }) {
                break;
            }
        }
        shutdown.cancel();
        task.await.unwrap();
    }

    /// Takes the link timeout (5 s) in real time.
    #[tokio::test]
    async fn link_goes_down_and_comes_back() {
        let board = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let listen = std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
        let status = Arc::new(UnitStatus::new("u".into(), []));
        let shutdown = CancellationToken::new();
        let (io, _task) =
            start(IoLinkConfig { listen, board: board.local_addr().unwrap() }, status.clone(), shutdown.clone());
        let mut state = io.state();
        let mut buf = [0u8; 256];
        let (_, unit) = board.recv_from(&mut buf).await.unwrap();
        board.send_to(&datagram(&status_message(true, false, 0, 12_000, false)), unit).await.unwrap();
        state.wait_for(|s| s.link_up).await.unwrap();
        state.wait_for(|s| !s.link_up).await.unwrap();
        board.send_to(&datagram(&status_message(true, false, 0, 12_000, false)), unit).await.unwrap();
        state.wait_for(|s| s.link_up).await.unwrap();
        let kinds: Vec<EventKind> = status.events.since(0).into_iter().map(|e| e.kind).collect();
        assert_eq!(kinds, [EventKind::IoLinkLost, EventKind::IoLinkRestored]);
        shutdown.cancel();
    }
}
