//! Live datagrams (protocol version 5) as hostile bytes: the input is decoded as one datagram
//! (`live_datagram::decode`), and also cut at each `0xff` byte into several, each decoded.
//! Decoding must return an error or a header and fragment, never panic; a decoded datagram must
//! encode and decode back to itself and its fragment be exactly as long as its header says.
#![no_main]

use libfuzzer_sys::fuzz_target;
use protocol::live_datagram;

fn check(bytes: &[u8]) {
    if let Ok((header, payload)) = live_datagram::decode(bytes) {
        assert_eq!(payload.len(), header.payload_len());
        assert!(header.validate().is_ok());
        let again = live_datagram::encode(&header, payload).expect("a decoded datagram encodes");
        assert_eq!(live_datagram::decode(&again).expect("and decodes again"), (header, payload));
    }
}

fuzz_target!(|data: &[u8]| {
    check(data);
    for piece in data.split(|b| *b == 0xff) {
        check(piece);
    }
});
