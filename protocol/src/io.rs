//! Messages between the edge unit and its I/O companion microcontroller (ignition, door and
//! alarm inputs, relay outputs). Fixed-size types only: these build without an allocator.

use heapless::{String, Vec};
use serde::{Deserialize, Serialize};

/// Longest firmware version string a board reports.
pub const FIRMWARE_VERSION_LEN: usize = 32;

/// Most inputs a board reports in one [`BoardMessage::Status`].
pub const MAX_INPUTS: usize = 16;

/// Most relay outputs a board has: [`BoardMessage::Status`] reports them as bits of a `u32`.
pub const MAX_OUTPUTS: usize = 32;

/// A digital input of the I/O board.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Input {
    /// Ignition sense.
    Ignition,
    /// A door contact, numbered from 0.
    Door(u8),
    /// The panic button.
    Panic,
    /// Any other numbered input.
    Generic(u8),
}

/// Board → unit messages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum BoardMessage {
    /// Sent periodically so the unit knows the board is alive.
    Heartbeat {
        /// Increments with every heartbeat; wraps.
        seq: u32,
        /// Milliseconds since the board started.
        uptime_ms: u64,
        /// The board's firmware version.
        firmware: String<FIRMWARE_VERSION_LEN>,
    },
    /// A debounced input changed.
    InputChanged {
        /// Which input.
        input: Input,
        /// Its new state.
        active: bool,
    },
    /// The supply voltage dropped: the unit should seal its store now.
    PowerWarning {
        /// The measured supply voltage.
        millivolts: u16,
    },
    /// The supply voltage is back above the warning threshold plus its hysteresis.
    PowerRestored {
        /// The measured supply voltage.
        millivolts: u16,
    },
    /// The board's whole state, sent after every heartbeat, more often while the supply is low,
    /// and at once after a `SetOutput` (its acknowledgement) or when the board's link watchdog
    /// switched the outputs. UDP may lose any datagram: the next status heals a lost
    /// `InputChanged`, `PowerWarning` or `PowerRestored`.
    Status {
        /// Increments with every status; wraps.
        seq: u32,
        /// Every input's debounced state, in the board's input order.
        inputs: Vec<InputState, MAX_INPUTS>,
        /// Relay outputs: bit `n` set means output `n` is on.
        outputs: u32,
        /// The last supply voltage measured; 0 before the first measurement.
        millivolts: u16,
        /// The supply is below the warning threshold (a `PowerWarning` is in force).
        power_low: bool,
        /// Datagrams from the unit the board could not decode since it started.
        decode_errors: u32,
    },
}

/// One input's debounced state, as repeated in [`BoardMessage::Status`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputState {
    /// Which input.
    pub input: Input,
    /// Whether it is active.
    pub active: bool,
}

/// Unit → board messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum UnitCommand {
    /// Switch a relay output.
    SetOutput {
        /// The output's number, from 0.
        output: u8,
        /// On or off.
        on: bool,
    },
    /// Changes nothing; feeds the board's watchdog on the unit link. A board that hears no
    /// command for its link timeout puts its outputs in their safe state.
    KeepAlive,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn board_messages_round_trip_without_alloc() {
        let mut firmware = String::new();
        firmware.push_str("io-1.0.0").unwrap();
        let msg = BoardMessage::Heartbeat { seq: 7, uptime_ms: 1234, firmware };
        let mut buf = [0u8; 64];
        let used = postcard::to_slice(&msg, &mut buf).unwrap();
        let back: BoardMessage = postcard::from_bytes(used).unwrap();
        assert_eq!(back, msg);
    }

    #[test]
    fn variant_tags_never_move() {
        // Compatibility: postcard writes the variant index first; new variants only at the end.
        let mut buf = [0u8; 96];
        let tag = |msg: &BoardMessage, buf: &mut [u8]| postcard::to_slice(msg, buf).unwrap()[0];
        assert_eq!(tag(&BoardMessage::PowerWarning { millivolts: 1 }, &mut buf), 2);
        assert_eq!(tag(&BoardMessage::PowerRestored { millivolts: 1 }, &mut buf), 3);
        let status = BoardMessage::Status {
            seq: 0,
            inputs: Vec::new(),
            outputs: 0,
            millivolts: 0,
            power_low: false,
            decode_errors: 0,
        };
        assert_eq!(tag(&status, &mut buf), 4);
        assert_eq!(postcard::to_slice(&UnitCommand::KeepAlive, &mut buf).unwrap(), [1]);
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(postcard::from_bytes::<BoardMessage>(&[0xff, 0xff, 0xff]).is_err());
        assert!(postcard::from_bytes::<UnitCommand>(&[]).is_err());
    }
}
