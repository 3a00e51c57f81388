//! Messages between the edge unit and its I/O companion microcontroller (ignition, door and
//! alarm inputs, relay outputs). Fixed-size types only: these build without an allocator.

use heapless::String;
use serde::{Deserialize, Serialize};

/// Longest firmware version string a board reports.
pub const FIRMWARE_VERSION_LEN: usize = 32;

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
    fn garbage_is_an_error() {
        assert!(postcard::from_bytes::<BoardMessage>(&[0xff, 0xff, 0xff]).is_err());
        assert!(postcard::from_bytes::<UnitCommand>(&[]).is_err());
    }
}
