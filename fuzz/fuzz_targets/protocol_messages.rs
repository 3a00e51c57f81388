//! Wire messages as hostile bytes: the input is decoded as a body of every edge ↔ central
//! stream message (`framing::decode` of `EdgeMessage`, `CentralMessage`, `LiveHeader`,
//! `LiveMessage`), walked as a stream of length-prefixed messages (`framing::body_len`), and
//! decoded as I/O board messages (`postcard::from_bytes` of `BoardMessage`, `UnitCommand`).
//! Decoding must return an error or a value, never panic, and a decoded value must encode and
//! decode back to itself.
#![no_main]

use std::fmt::Debug;

use libfuzzer_sys::fuzz_target;
use protocol::framing::{self, MAX_MESSAGE_LEN, PREFIX_LEN};
use protocol::interconnect::{CentralMessage, EdgeMessage, LiveHeader, LiveMessage};
use protocol::io::{BoardMessage, UnitCommand};
use serde::Serialize;
use serde::de::DeserializeOwned;

fn round_trip<T: Serialize + DeserializeOwned + PartialEq + Debug>(body: &[u8]) {
    if let Ok(msg) = framing::decode::<T>(body) {
        let again = framing::encode(&msg).expect("a decoded message encodes");
        let back = framing::decode::<T>(&again[PREFIX_LEN..]).expect("and decodes again");
        assert_eq!(back, msg);
    }
}

fn board_round_trip<T: Serialize + DeserializeOwned + PartialEq + Debug>(bytes: &[u8]) {
    if let Ok(msg) = postcard::from_bytes::<T>(bytes) {
        let mut buf = [0u8; 128];
        let used = postcard::to_slice(&msg, &mut buf).expect("a decoded board message encodes");
        assert_eq!(postcard::from_bytes::<T>(used).unwrap(), msg);
    }
}

fuzz_target!(|data: &[u8]| {
    round_trip::<EdgeMessage>(data);
    round_trip::<CentralMessage>(data);
    round_trip::<LiveHeader>(data);
    round_trip::<LiveMessage>(data);

    // As a stream: prefix, body, prefix, body… (a live stream: header, then live messages).
    let mut rest = data;
    let mut first = true;
    while let Some((prefix, after)) = rest.split_first_chunk::<PREFIX_LEN>() {
        let Ok(len) = framing::body_len(*prefix) else {
            assert!(u32::from_le_bytes(*prefix) > MAX_MESSAGE_LEN);
            break;
        };
        assert!(len <= MAX_MESSAGE_LEN as usize);
        let Some(body) = after.get(..len) else { break };
        if first {
            round_trip::<LiveHeader>(body);
            round_trip::<EdgeMessage>(body);
        } else {
            round_trip::<LiveMessage>(body);
            round_trip::<CentralMessage>(body);
        }
        first = false;
        rest = &after[len..];
    }

    board_round_trip::<BoardMessage>(data);
    board_round_trip::<UnitCommand>(data);
});
