//! The I/O companion board's logic, free of hardware and of any runtime: the firmware
//! (`boards/io-firmware`) and the host simulator (`boards/io-sim`) both drive it, so the host
//! unit tests cover what runs on the microcontroller.
//!
//! The caller owns the clock and the pins. It feeds raw input levels
//! ([`Board::set_input`]), supply measurements ([`Board::measure_supply`]) and datagrams from the
//! unit ([`Board::handle_datagram`]), calls [`Board::poll`] often (every millisecond on the
//! firmware), sends what [`Board::next_datagram`] gives to the unit and drives its relays from
//! [`Board::outputs`]. Times are milliseconds from any fixed start (`u64`, never wraps).
//!
//! UDP may lose any datagram, so nothing relies on one: every heartbeat is followed by a
//! [`BoardMessage::Status`] with the whole state (inputs, outputs, power), sent every
//! [`Config::power_low_status_ms`] while the supply is low and at once after a command changed an
//! output (its acknowledgement). A lost `InputChanged` or `PowerWarning` is healed by the next one.
//!
//! The unit link has a watchdog: when no command (a [`UnitCommand::KeepAlive`] will do) arrives
//! for [`Config::link_timeout_ms`], the outputs go to [`Config::safe_outputs`] (all relays off by
//! default) until the unit commands them again. Outputs start in that safe state too.
#![no_std]
#![forbid(unsafe_code)]

#[cfg(test)]
extern crate std;

use heapless::{Deque, String, Vec};
pub use protocol::io::{BoardMessage, FIRMWARE_VERSION_LEN, Input, InputState, MAX_INPUTS, MAX_OUTPUTS, UnitCommand};
use serde::{Deserialize, Serialize};

/// Largest datagram either side sends: every [`BoardMessage`] and [`UnitCommand`] fits.
pub const MAX_DATAGRAM: usize = 128;

/// The UDP port the board listens on for unit commands.
pub const BOARD_PORT: u16 = 47800;

/// The UDP port the unit listens on for board messages.
pub const UNIT_PORT: u16 = 47801;

/// Messages the board holds until the caller sends them; when full, the oldest is dropped.
pub const OUTBOX_LEN: usize = 16;

/// What can go wrong with a datagram or a command. None of it is fatal to the board.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The datagram was empty.
    #[error("empty datagram")]
    Empty,
    /// The datagram is not a valid message.
    #[error("undecodable datagram: {0}")]
    Malformed(postcard::Error),
    /// A valid message followed by more bytes: treated as garbage.
    #[error("{0} bytes after the message")]
    TrailingBytes(usize),
    /// A command named an output the board does not have.
    #[error("no output {output}: the board has {count}")]
    NoSuchOutput {
        /// The output asked for.
        output: u8,
        /// How many outputs the board has.
        count: u8,
    },
    /// The message did not fit in the buffer given.
    #[error("message does not fit in {0} bytes")]
    TooLarge(usize),
}

/// Encodes a message (postcard) into `buf`, returning the bytes used.
pub fn encode<'b, T: Serialize>(msg: &T, buf: &'b mut [u8]) -> Result<&'b mut [u8], Error> {
    let len = buf.len();
    postcard::to_slice(msg, buf).map_err(|_| Error::TooLarge(len))
}

/// Decodes one whole datagram: empty input, bad bytes and trailing bytes are errors, never panics.
pub fn decode<'de, T: Deserialize<'de>>(bytes: &'de [u8]) -> Result<T, Error> {
    if bytes.is_empty() {
        return Err(Error::Empty);
    }
    match postcard::take_from_bytes(bytes) {
        Ok((msg, [])) => Ok(msg),
        Ok((_, rest)) => Err(Error::TrailingBytes(rest.len())),
        Err(e) => Err(Error::Malformed(e)),
    }
}

/// The board's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// An input's raw level must hold this long before it counts.
    pub debounce_ms: u32,
    /// Heartbeat (and status) period; at least 1.
    pub heartbeat_ms: u32,
    /// A supply below this is a power warning.
    pub power_low_mv: u16,
    /// The supply must come back to `power_low_mv + power_hysteresis_mv` to count as restored.
    pub power_hysteresis_mv: u16,
    /// Status period while the supply is low (heals a lost `PowerWarning` quickly); at least 1.
    pub power_low_status_ms: u32,
    /// Outputs go to their safe state after this long without a unit command; 0 never.
    pub link_timeout_ms: u32,
    /// How many relay outputs the board has (at most [`MAX_OUTPUTS`]).
    pub outputs: u8,
    /// Output states at start and after a link timeout: bit `n` is output `n`. 0 = all off.
    pub safe_outputs: u32,
}

impl Default for Config {
    /// 20 ms debounce, 1 s heartbeat, warning below 9.0 V and restored from 10.0 V, status every
    /// 100 ms while low, 10 s link timeout, 4 outputs, all off when safe.
    fn default() -> Self {
        Config {
            debounce_ms: 20,
            heartbeat_ms: 1000,
            power_low_mv: 9000,
            power_hysteresis_mv: 1000,
            power_low_status_ms: 100,
            link_timeout_ms: 10_000,
            outputs: 4,
            safe_outputs: 0,
        }
    }
}

/// Counters since the board started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Commands decoded (including rejected ones).
    pub commands: u32,
    /// Datagrams that did not decode.
    pub decode_errors: u32,
    /// Commands that decoded but could not be applied.
    pub rejected_commands: u32,
    /// Messages dropped because the outbox was full.
    pub dropped_messages: u32,
    /// Times the unit-link watchdog put the outputs in their safe state.
    pub link_timeouts: u32,
}

/// One input's debouncer: the raw level must stay unchanged for the debounce time to count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Debouncer {
    stable: bool,
    raw: bool,
    raw_since_ms: u64,
}

impl Debouncer {
    /// A debouncer whose input is inactive.
    pub const fn new(now_ms: u64) -> Self {
        Debouncer { stable: false, raw: false, raw_since_ms: now_ms }
    }

    /// Feeds a raw level; returns the new debounced state when it changed.
    pub fn sample(&mut self, raw: bool, now_ms: u64, debounce_ms: u32) -> Option<bool> {
        if raw != self.raw {
            self.raw = raw;
            self.raw_since_ms = now_ms;
        }
        self.poll(now_ms, debounce_ms)
    }

    /// Lets time pass; returns the new debounced state when it changed.
    pub fn poll(&mut self, now_ms: u64, debounce_ms: u32) -> Option<bool> {
        if self.raw != self.stable && now_ms.saturating_sub(self.raw_since_ms) >= u64::from(debounce_ms) {
            self.stable = self.raw;
            return Some(self.stable);
        }
        None
    }

    /// The debounced state.
    pub const fn state(&self) -> bool {
        self.stable
    }
}

/// The board: `N` inputs (at most [`MAX_INPUTS`]), the outputs, the supply monitor, heartbeat
/// and the unit-link watchdog, with an outbox of messages for the unit.
#[derive(Debug, Clone)]
pub struct Board<const N: usize> {
    config: Config,
    firmware: String<FIRMWARE_VERSION_LEN>,
    inputs: [Input; N],
    debouncers: [Debouncer; N],
    outputs: u32,
    millivolts: u16,
    power_low: bool,
    heartbeat_seq: u32,
    status_seq: u32,
    started_ms: u64,
    next_heartbeat_ms: u64,
    next_status_ms: u64,
    last_command_ms: u64,
    link_lost: bool,
    stats: Stats,
    outbox: Deque<BoardMessage, OUTBOX_LEN>,
}

impl<const N: usize> Board<N> {
    /// A board started at `now_ms`: inputs inactive, outputs safe, first heartbeat at the first
    /// poll. `firmware` is cut to [`FIRMWARE_VERSION_LEN`] bytes; `config.outputs` to
    /// [`MAX_OUTPUTS`]; zero periods to 1 ms.
    pub fn new(mut config: Config, inputs: [Input; N], firmware: &str, now_ms: u64) -> Self {
        const { assert!(N <= MAX_INPUTS, "a board reports at most MAX_INPUTS inputs") };
        config.outputs = config.outputs.min(MAX_OUTPUTS as u8);
        config.heartbeat_ms = config.heartbeat_ms.max(1);
        config.power_low_status_ms = config.power_low_status_ms.max(1);
        let mut name = String::new();
        for c in firmware.chars() {
            if name.push(c).is_err() {
                break;
            }
        }
        let mut board = Board {
            config,
            firmware: name,
            inputs,
            debouncers: [Debouncer::new(now_ms); N],
            outputs: 0,
            millivolts: 0,
            power_low: false,
            heartbeat_seq: 0,
            status_seq: 0,
            started_ms: now_ms,
            next_heartbeat_ms: now_ms,
            next_status_ms: now_ms,
            last_command_ms: now_ms,
            link_lost: false,
            stats: Stats::default(),
            outbox: Deque::new(),
        };
        board.outputs = board.safe_outputs();
        board
    }

    /// The settings in force (after clamping).
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The board's inputs, in order.
    pub fn inputs(&self) -> &[Input; N] {
        &self.inputs
    }

    /// Feeds input `index`'s raw level (already turned into "active", whatever the wiring's
    /// polarity). Returns false if there is no such input.
    pub fn set_input(&mut self, index: usize, active: bool, now_ms: u64) -> bool {
        let Some(debouncer) = self.debouncers.get_mut(index) else {
            return false;
        };
        if let Some(active) = debouncer.sample(active, now_ms, self.config.debounce_ms) {
            self.push(BoardMessage::InputChanged { input: self.inputs[index], active });
        }
        true
    }

    /// [`Board::set_input`] by the input's name. Returns false if the board has no such input.
    pub fn set_input_by_name(&mut self, input: Input, active: bool, now_ms: u64) -> bool {
        match self.inputs.iter().position(|i| *i == input) {
            Some(index) => self.set_input(index, active, now_ms),
            None => false,
        }
    }

    /// Input `index`'s debounced state.
    pub fn input(&self, index: usize) -> Option<bool> {
        self.debouncers.get(index).map(Debouncer::state)
    }

    /// Feeds a supply voltage measurement: below the threshold queues one `PowerWarning` per drop,
    /// back above threshold plus hysteresis one `PowerRestored`.
    pub fn measure_supply(&mut self, millivolts: u16, now_ms: u64) {
        self.millivolts = millivolts;
        if !self.power_low && millivolts < self.config.power_low_mv {
            self.power_low = true;
            self.push(BoardMessage::PowerWarning { millivolts });
            self.next_status_ms = now_ms + u64::from(self.config.power_low_status_ms);
        } else if self.power_low
            && millivolts >= self.config.power_low_mv.saturating_add(self.config.power_hysteresis_mv)
        {
            self.power_low = false;
            self.push(BoardMessage::PowerRestored { millivolts });
            self.next_status_ms = self.next_heartbeat_ms;
        }
    }

    /// The last supply measurement (0 before the first).
    pub fn millivolts(&self) -> u16 {
        self.millivolts
    }

    /// Whether a power warning is in force.
    pub fn power_low(&self) -> bool {
        self.power_low
    }

    /// Decodes a datagram from the unit and applies it. Errors are counted in [`Stats`]; any
    /// command that decodes feeds the link watchdog, even one that is rejected.
    pub fn handle_datagram(&mut self, bytes: &[u8], now_ms: u64) -> Result<UnitCommand, Error> {
        let command = decode::<UnitCommand>(bytes).inspect_err(|_| self.stats.decode_errors += 1)?;
        self.handle_command(command, now_ms)?;
        Ok(command)
    }

    /// Applies a command from the unit (see [`Board::handle_datagram`]). A `SetOutput` queues a
    /// `Status` at once as its acknowledgement.
    pub fn handle_command(&mut self, command: UnitCommand, now_ms: u64) -> Result<(), Error> {
        self.stats.commands += 1;
        self.last_command_ms = now_ms;
        self.link_lost = false;
        match command {
            UnitCommand::SetOutput { output, on } => {
                if output >= self.config.outputs {
                    self.stats.rejected_commands += 1;
                    return Err(Error::NoSuchOutput { output, count: self.config.outputs });
                }
                let bit = 1u32 << output;
                if on {
                    self.outputs |= bit;
                } else {
                    self.outputs &= !bit;
                }
                self.push_status(now_ms);
            }
            UnitCommand::KeepAlive => {}
        }
        Ok(())
    }

    /// Lets time pass: debounces inputs, runs the link watchdog and queues heartbeats and status.
    pub fn poll(&mut self, now_ms: u64) {
        for index in 0..N {
            if let Some(active) = self.debouncers[index].poll(now_ms, self.config.debounce_ms) {
                self.push(BoardMessage::InputChanged { input: self.inputs[index], active });
            }
        }
        if self.config.link_timeout_ms > 0
            && !self.link_lost
            && now_ms.saturating_sub(self.last_command_ms) >= u64::from(self.config.link_timeout_ms)
        {
            self.link_lost = true;
            self.stats.link_timeouts += 1;
            let safe = self.safe_outputs();
            if self.outputs != safe {
                self.outputs = safe;
                self.push_status(now_ms);
            }
        }
        if now_ms >= self.next_heartbeat_ms {
            let period = u64::from(self.config.heartbeat_ms);
            self.next_heartbeat_ms += period;
            if self.next_heartbeat_ms <= now_ms {
                // Fell behind (a stalled caller): no burst of heartbeats, just carry on from now.
                self.next_heartbeat_ms = now_ms + period;
            }
            self.push(BoardMessage::Heartbeat {
                seq: self.heartbeat_seq,
                uptime_ms: now_ms.saturating_sub(self.started_ms),
                firmware: self.firmware.clone(),
            });
            self.heartbeat_seq = self.heartbeat_seq.wrapping_add(1);
            self.push_status(now_ms);
        } else if now_ms >= self.next_status_ms {
            self.push_status(now_ms);
        }
    }

    /// Takes the oldest queued message.
    pub fn pop_message(&mut self) -> Option<BoardMessage> {
        self.outbox.pop_front()
    }

    /// Takes the oldest queued message, encoded into `buf` (use [`MAX_DATAGRAM`] bytes). A
    /// message that does not fit is counted as dropped and skipped.
    pub fn next_datagram<'b>(&mut self, buf: &'b mut [u8]) -> Option<&'b [u8]> {
        loop {
            let msg = self.outbox.pop_front()?;
            match postcard::to_slice(&msg, buf) {
                Ok(used) => {
                    let len = used.len();
                    return Some(&buf[..len]);
                }
                Err(_) => self.stats.dropped_messages += 1,
            }
        }
    }

    /// Output states: bit `n` set means output `n` is on.
    pub fn outputs(&self) -> u32 {
        self.outputs
    }

    /// Whether output `n` is on (false if there is no such output).
    pub fn output(&self, n: u8) -> bool {
        n < self.config.outputs && self.outputs & (1 << n) != 0
    }

    /// Whether the link watchdog has tripped and no command came since.
    pub fn link_lost(&self) -> bool {
        self.link_lost
    }

    /// Counters since start.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// The current state as a `Status` message (with the sequence number the next one would get).
    pub fn status(&self) -> BoardMessage {
        let mut inputs = Vec::new();
        for (input, debouncer) in self.inputs.iter().zip(&self.debouncers) {
            // Cannot fail: N <= MAX_INPUTS is checked at compile time.
            let _ = inputs.push(InputState { input: *input, active: debouncer.state() });
        }
        BoardMessage::Status {
            seq: self.status_seq,
            inputs,
            outputs: self.outputs,
            millivolts: self.millivolts,
            power_low: self.power_low,
            decode_errors: self.stats.decode_errors,
        }
    }

    fn safe_outputs(&self) -> u32 {
        let mask = if self.config.outputs as usize >= MAX_OUTPUTS { u32::MAX } else { (1 << self.config.outputs) - 1 };
        self.config.safe_outputs & mask
    }

    fn push_status(&mut self, now_ms: u64) {
        let status = self.status();
        self.push(status);
        self.status_seq = self.status_seq.wrapping_add(1);
        let period = if self.power_low { self.config.power_low_status_ms } else { self.config.heartbeat_ms };
        self.next_status_ms = now_ms + u64::from(period);
    }

    fn push(&mut self, msg: BoardMessage) {
        if self.outbox.is_full() {
            self.outbox.pop_front();
            self.stats.dropped_messages += 1;
        }
        // Cannot fail: there is room now.
        let _ = self.outbox.push_back(msg);
    }
}

#[cfg(test)]
mod tests {
    use std::vec::Vec as StdVec;

    use super::*;

    const INPUTS: [Input; 4] = [Input::Ignition, Input::Door(0), Input::Door(1), Input::Panic];

    fn board(config: Config) -> Board<4> {
        Board::new(config, INPUTS, "io-test 1.0", 0)
    }

    fn drain(board: &mut Board<4>) -> StdVec<BoardMessage> {
        core::iter::from_fn(|| board.pop_message()).collect()
    }

    fn events(board: &mut Board<4>) -> StdVec<BoardMessage> {
        drain(board)
            .into_iter()
            .filter(|m| !matches!(m, BoardMessage::Heartbeat { .. } | BoardMessage::Status { .. }))
            .collect()
    }

    fn changed(input: Input, active: bool) -> BoardMessage {
        BoardMessage::InputChanged { input, active }
    }

    /// Drives input 0 through `(time, level)` samples, polling every millisecond in between,
    /// and returns the times at which input events came out.
    fn run_pattern(board: &mut Board<4>, samples: &[(u64, bool)], until: u64) -> StdVec<(u64, BoardMessage)> {
        let mut out = StdVec::new();
        let mut level = false;
        for t in 0..=until {
            if let Some(&(_, l)) = samples.iter().find(|(at, _)| *at == t) {
                level = l;
            }
            board.set_input(0, level, t);
            board.poll(t);
            out.extend(events(board).into_iter().map(|m| (t, m)));
        }
        out
    }

    #[test]
    fn clean_press_counts_after_the_debounce_time() {
        let mut b = board(Config::default());
        let out = run_pattern(&mut b, &[(100, true)], 200);
        assert_eq!(out, [(120, changed(Input::Ignition, true))]);
        assert_eq!(b.input(0), Some(true));
    }

    #[test]
    fn contact_bounce_gives_one_edge_each_way() {
        let mut b = board(Config::default());
        // Press: bounces every 3 ms for 15 ms, then holds.
        let mut samples: StdVec<(u64, bool)> = (0..6).map(|i| (100 + 3 * i, i % 2 == 0)).collect();
        samples.push((118, true));
        // Release: irregular bounce, then holds low.
        samples.extend([(300, false), (301, true), (304, false), (310, true), (311, false)]);
        let out = run_pattern(&mut b, &samples, 400);
        assert_eq!(out, [(138, changed(Input::Ignition, true)), (331, changed(Input::Ignition, false))]);
    }

    #[test]
    fn glitches_shorter_than_the_debounce_are_ignored() {
        let mut b = board(Config::default());
        let out = run_pattern(&mut b, &[(50, true), (69, false), (100, true), (101, false)], 300);
        assert!(out.is_empty(), "{out:?}");
        assert_eq!(b.input(0), Some(false));
    }

    #[test]
    fn sparse_samples_still_debounce_by_time() {
        // A caller that samples rarely: the level held since the first sample counts.
        let mut b = board(Config::default());
        b.set_input(1, true, 10);
        b.poll(25);
        assert!(events(&mut b).is_empty());
        b.set_input(1, true, 30);
        assert_eq!(events(&mut b), [changed(Input::Door(0), true)]);
    }

    #[test]
    fn zero_debounce_is_immediate_and_inputs_are_found_by_name() {
        let mut b = board(Config { debounce_ms: 0, ..Config::default() });
        assert!(b.set_input_by_name(Input::Panic, true, 5));
        assert!(!b.set_input_by_name(Input::Door(7), true, 5));
        assert!(!b.set_input(9, true, 5));
        assert_eq!(events(&mut b), [changed(Input::Panic, true)]);
    }

    #[test]
    fn heartbeats_come_on_time_with_status_and_no_burst_after_a_stall() {
        let mut b = board(Config { link_timeout_ms: 0, ..Config::default() });
        b.poll(0);
        let first = drain(&mut b);
        assert!(
            matches!(&first[..], [BoardMessage::Heartbeat { seq: 0, uptime_ms: 0, firmware }, BoardMessage::Status { seq: 0, .. }] if firmware == "io-test 1.0"),
            "{first:?}"
        );
        b.poll(999);
        assert!(drain(&mut b).is_empty());
        b.poll(1000);
        assert!(matches!(
            &drain(&mut b)[..],
            [BoardMessage::Heartbeat { seq: 1, uptime_ms: 1000, .. }, BoardMessage::Status { seq: 1, .. }]
        ));
        // A stall of several periods gives one heartbeat, then the period restarts from now.
        b.poll(5500);
        assert!(matches!(
            &drain(&mut b)[..],
            [BoardMessage::Heartbeat { seq: 2, uptime_ms: 5500, .. }, BoardMessage::Status { .. }]
        ));
        b.poll(6499);
        assert!(drain(&mut b).is_empty());
        b.poll(6500);
        assert!(matches!(&drain(&mut b)[..], [BoardMessage::Heartbeat { seq: 3, .. }, BoardMessage::Status { .. }]));
    }

    #[test]
    fn uptime_counts_from_start_and_firmware_is_cut_to_fit() {
        let long = "x".repeat(100);
        let mut b: Board<0> = Board::new(Config::default(), [], &long, 7_000);
        b.poll(7_250);
        match b.pop_message() {
            Some(BoardMessage::Heartbeat { uptime_ms: 250, firmware, .. }) => {
                assert_eq!(firmware.len(), FIRMWARE_VERSION_LEN)
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_lost_input_edge_is_healed_by_the_next_status() {
        let mut b = board(Config { debounce_ms: 0, link_timeout_ms: 0, ..Config::default() });
        b.poll(0);
        drain(&mut b);
        b.set_input(0, true, 10);
        b.set_input(2, true, 10);
        drain(&mut b); // "lost"
        b.poll(1000);
        let status = drain(&mut b).pop().unwrap();
        let BoardMessage::Status { inputs, .. } = status else { panic!("{status:?}") };
        let active: StdVec<_> = inputs.iter().map(|s| (s.input, s.active)).collect();
        assert_eq!(
            active,
            [(Input::Ignition, true), (Input::Door(0), false), (Input::Door(1), true), (Input::Panic, false)]
        );
    }

    #[test]
    fn power_warning_once_per_drop_with_hysteresis() {
        let mut b = board(Config { link_timeout_ms: 0, ..Config::default() });
        b.poll(0);
        drain(&mut b);
        let mut seen = StdVec::new();
        for (t, mv) in [(10, 12_000), (20, 8_999), (30, 8_500), (40, 9_100), (50, 8_900), (60, 9_999), (70, 10_000)] {
            b.measure_supply(mv, t);
            seen.extend(events(&mut b));
        }
        assert_eq!(
            seen,
            [BoardMessage::PowerWarning { millivolts: 8_999 }, BoardMessage::PowerRestored { millivolts: 10_000 }]
        );
        assert!(!b.power_low());
        b.measure_supply(9_000, 80);
        assert!(events(&mut b).is_empty(), "exactly the threshold is not low");
        b.measure_supply(8_000, 90);
        assert_eq!(events(&mut b), [BoardMessage::PowerWarning { millivolts: 8_000 }]);
        assert_eq!(b.millivolts(), 8_000);
    }

    #[test]
    fn status_repeats_fast_while_the_supply_is_low() {
        let mut b = board(Config { link_timeout_ms: 0, ..Config::default() });
        b.poll(0);
        drain(&mut b);
        b.measure_supply(7_000, 300);
        drain(&mut b);
        let mut status_times = StdVec::new();
        for t in 301..=700 {
            b.poll(t);
            for m in drain(&mut b) {
                if let BoardMessage::Status { power_low, millivolts, .. } = m {
                    assert!(power_low);
                    assert_eq!(millivolts, 7_000);
                    status_times.push(t);
                }
            }
        }
        assert_eq!(status_times, [400, 500, 600, 700]);
        // Restored: back to one status per heartbeat.
        b.measure_supply(12_000, 710);
        drain(&mut b);
        let count = (711..=1999)
            .filter(|t| {
                b.poll(*t);
                !drain(&mut b).is_empty()
            })
            .count();
        assert_eq!(count, 1, "only the heartbeat at 1000");
    }

    #[test]
    fn set_output_switches_and_is_acknowledged_by_a_status() {
        let mut b = board(Config::default());
        let mut buf = [0u8; MAX_DATAGRAM];
        let cmd = UnitCommand::SetOutput { output: 2, on: true };
        let bytes = encode(&cmd, &mut buf).unwrap();
        assert_eq!(b.handle_datagram(bytes, 5), Ok(cmd));
        assert!(b.output(2));
        assert_eq!(b.outputs(), 0b100);
        assert!(matches!(b.pop_message(), Some(BoardMessage::Status { outputs: 0b100, .. })));
        b.handle_command(UnitCommand::SetOutput { output: 2, on: false }, 6).unwrap();
        assert_eq!(b.outputs(), 0);
        assert_eq!(
            b.handle_command(UnitCommand::SetOutput { output: 4, on: true }, 7),
            Err(Error::NoSuchOutput { output: 4, count: 4 })
        );
        assert!(!b.output(4));
        assert_eq!(b.stats().rejected_commands, 1);
        assert_eq!(b.stats().commands, 3);
    }

    #[test]
    fn link_watchdog_drops_outputs_to_safe_state() {
        let config = Config { link_timeout_ms: 1000, safe_outputs: 0b1000, ..Config::default() };
        let mut b = board(config);
        assert_eq!(b.outputs(), 0b1000, "outputs start safe");
        b.handle_command(UnitCommand::SetOutput { output: 0, on: true }, 100).unwrap();
        b.handle_command(UnitCommand::SetOutput { output: 3, on: false }, 100).unwrap();
        b.poll(1050);
        b.handle_command(UnitCommand::KeepAlive, 1050).unwrap();
        b.poll(2049);
        assert_eq!(b.outputs(), 0b0001);
        assert!(!b.link_lost());
        drain(&mut b);
        b.poll(2050);
        assert!(b.link_lost());
        assert_eq!(b.outputs(), 0b1000);
        assert!(drain(&mut b).iter().any(|m| matches!(m, BoardMessage::Status { outputs: 0b1000, .. })));
        b.poll(5000);
        assert_eq!(b.stats().link_timeouts, 1, "trips once per loss");
        b.handle_command(UnitCommand::SetOutput { output: 1, on: true }, 5001).unwrap();
        assert!(!b.link_lost());
        assert_eq!(b.outputs(), 0b1010);

        let mut never = board(Config { link_timeout_ms: 0, ..Config::default() });
        never.handle_command(UnitCommand::SetOutput { output: 0, on: true }, 0).unwrap();
        never.poll(u64::MAX / 2);
        assert!(never.output(0));
    }

    #[test]
    fn garbage_datagrams_are_counted_never_panic() {
        let mut b = board(Config::default());
        assert_eq!(b.handle_datagram(&[], 0), Err(Error::Empty));
        assert!(matches!(b.handle_datagram(&[0xff, 0xff, 0xff], 0), Err(Error::Malformed(_))));
        assert!(matches!(b.handle_datagram(&[9], 0), Err(Error::Malformed(_))), "unknown variant");
        assert!(matches!(b.handle_datagram(&[0, 1], 0), Err(Error::Malformed(_))), "truncated");
        assert_eq!(b.handle_datagram(&[1, 0], 0), Err(Error::TrailingBytes(1)));
        assert_eq!(b.stats().decode_errors, 5);
        // Pseudo-random garbage of every length up to a datagram's worth.
        let mut x: u32 = 0x1234_5678;
        let mut buf = [0u8; 200];
        for round in 0..20_000 {
            let len = round % buf.len();
            for byte in &mut buf[..len] {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                *byte = x as u8;
            }
            let _ = b.handle_datagram(&buf[..len], 1);
            let _ = decode::<BoardMessage>(&buf[..len]);
        }
        assert_eq!(b.stats().commands + b.stats().decode_errors, 20_005);
        b.poll(2);
        let status = drain(&mut b).pop().unwrap();
        let BoardMessage::Status { decode_errors, .. } = status else { panic!() };
        assert_eq!(decode_errors, b.stats().decode_errors);
    }

    #[test]
    fn every_message_fits_a_datagram_and_round_trips() {
        let mut inputs = Vec::new();
        for _ in 0..MAX_INPUTS {
            inputs.push(InputState { input: Input::Generic(255), active: true }).unwrap();
        }
        let mut firmware = String::new();
        firmware.push_str(&"v".repeat(FIRMWARE_VERSION_LEN)).unwrap();
        let messages = [
            BoardMessage::Heartbeat { seq: u32::MAX, uptime_ms: u64::MAX, firmware },
            BoardMessage::InputChanged { input: Input::Door(255), active: true },
            BoardMessage::PowerWarning { millivolts: u16::MAX },
            BoardMessage::PowerRestored { millivolts: u16::MAX },
            BoardMessage::Status {
                seq: u32::MAX,
                inputs,
                outputs: u32::MAX,
                millivolts: u16::MAX,
                power_low: true,
                decode_errors: u32::MAX,
            },
        ];
        let mut buf = [0u8; MAX_DATAGRAM];
        for msg in messages {
            let bytes = encode(&msg, &mut buf).unwrap();
            assert_eq!(decode::<BoardMessage>(bytes), Ok(msg));
        }
        for cmd in [UnitCommand::SetOutput { output: 255, on: true }, UnitCommand::KeepAlive] {
            let bytes = encode(&cmd, &mut buf).unwrap();
            assert_eq!(decode::<UnitCommand>(bytes), Ok(cmd));
        }
        assert!(matches!(encode(&UnitCommand::KeepAlive, &mut []), Err(Error::TooLarge(0))));
    }

    #[test]
    fn a_full_outbox_drops_the_oldest() {
        let mut b = board(Config { debounce_ms: 0, ..Config::default() });
        for i in 0..(OUTBOX_LEN as u64 + 3) {
            b.set_input(0, i % 2 == 0, i);
        }
        assert_eq!(b.stats().dropped_messages, 3);
        assert_eq!(b.pop_message(), Some(changed(Input::Ignition, false)));
        let mut buf = [0u8; MAX_DATAGRAM];
        let bytes = b.next_datagram(&mut buf).unwrap();
        assert_eq!(decode::<BoardMessage>(bytes), Ok(changed(Input::Ignition, true)));
    }
}
