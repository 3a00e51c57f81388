//! Hostile bytes for every decoder of the wire protocol: seeded, deterministic mutations of
//! valid encodings (bit flips, truncations, insertions, deletions, overwrites, hostile length
//! fields) and plain random buffers, fed to `framing::decode` for each stream message type,
//! to `framing::body_len`, and to `postcard::from_bytes` for the I/O board messages.
//!
//! The project's rule: every decode of bytes from a disk or a network returns an error, never
//! panics. The same decoders are fuzzed with cargo-fuzz (see `fuzz/README.md`); these tests
//! run a fixed, seeded slice of that search in the ordinary `cargo test`, without nightly.

use std::fmt::Debug;
use std::panic::{AssertUnwindSafe, catch_unwind};

use protocol::framing::{self, FramingError, MAX_MESSAGE_LEN, PREFIX_LEN};
use protocol::interconnect::{
    AudioParameters, CameraInfo, CameraState, CameraStateKind, CentralMessage, EdgeMessage, Hello, LiveHeader,
    LiveMessage, MediaFrame, VideoParameters,
};
use protocol::io::{BoardMessage, Input, UnitCommand};
use protocol::sync::RetrievedMedia;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// xorshift64*: a tiny deterministic generator (the crate has no random dev-dependency).
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    fn u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform-ish in `0..n` (`n > 0`).
    fn below(&mut self, n: usize) -> usize {
        (self.u64() % n as u64) as usize
    }

    fn byte(&mut self) -> u8 {
        self.u64() as u8
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.byte()).collect()
    }
}

/// Bytes that make decoders work hard: varint continuation bytes, all-ones, zero, and the
/// largest one-byte values.
const INTERESTING: [u8; 8] = [0x00, 0x01, 0x7f, 0x80, 0xfe, 0xff, 0xc0, 0x3f];

/// Applies one to three random mutations to `bytes`.
fn mutate(rng: &mut Rng, bytes: &mut Vec<u8>) {
    for _ in 0..1 + rng.below(3) {
        let len = bytes.len();
        match rng.below(9) {
            // Flip one bit.
            0 if len > 0 => {
                let i = rng.below(len);
                bytes[i] ^= 1 << rng.below(8);
            }
            // Truncate.
            1 if len > 0 => bytes.truncate(rng.below(len)),
            // Insert random bytes.
            2 => {
                let at = rng.below(len + 1);
                let n = 1 + rng.below(8);
                let new = rng.bytes(n);
                bytes.splice(at..at, new);
            }
            // Delete a range.
            3 if len > 0 => {
                let at = rng.below(len);
                let n = 1 + rng.below((len - at).min(8));
                bytes.drain(at..at + n);
            }
            // Overwrite a range with random bytes.
            4 if len > 0 => {
                let at = rng.below(len);
                for b in bytes.iter_mut().skip(at).take(1 + rng.below(8)) {
                    *b = rng.byte();
                }
            }
            // An interesting byte somewhere (a length or discriminant gone wild).
            5 if len > 0 => {
                let i = rng.below(len);
                bytes[i] = INTERESTING[rng.below(INTERESTING.len())];
            }
            // A hostile varint (a huge length or an overlong encoding) inserted.
            6 => {
                let at = rng.below(len + 1);
                let varint: &[u8] = match rng.below(4) {
                    0 => &[0xff, 0xff, 0xff, 0xff, 0x0f],
                    1 => &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01],
                    2 => &[0x80, 0x80, 0x80, 0x80, 0x80, 0x80],
                    _ => &[0xff; 11],
                };
                bytes.splice(at..at, varint.iter().copied());
            }
            // Duplicate a chunk.
            7 if len > 0 => {
                let at = rng.below(len);
                let n = 1 + rng.below((len - at).min(16));
                let chunk = bytes[at..at + n].to_vec();
                let to = rng.below(len + 1);
                bytes.splice(to..to, chunk);
            }
            // Replace everything with random bytes of a random length.
            8 => {
                let n = rng.below(64);
                *bytes = rng.bytes(n);
            }
            _ => {}
        }
    }
}

/// Runs `f` on `input`, turning a panic into a test failure that names the input.
fn no_panic(what: &str, input: &[u8], f: impl FnOnce()) {
    if catch_unwind(AssertUnwindSafe(f)).is_err() {
        panic!("{what} panicked on input {input:02x?}");
    }
}

/// Decodes a message body; a value that decodes must encode and decode back to itself.
fn decode_checked<T>(body: &[u8]) -> bool
where
    T: Serialize + DeserializeOwned + PartialEq + Debug,
{
    let Ok(msg) = framing::decode::<T>(body) else {
        return false;
    };
    let again = framing::encode(&msg).expect("a decoded message encodes");
    let back = framing::decode::<T>(&again[PREFIX_LEN..]).expect("and decodes again");
    assert_eq!(back, msg);
    true
}

/// Feeds `bytes` to every stream decoder, as a message body and as a stream of framed
/// messages (prefix, body, prefix, body…). Returns how many decodes succeeded.
fn all_stream_decoders(bytes: &[u8]) -> usize {
    let mut decoded = usize::from(decode_checked::<EdgeMessage>(bytes))
        + usize::from(decode_checked::<CentralMessage>(bytes))
        + usize::from(decode_checked::<LiveHeader>(bytes))
        + usize::from(decode_checked::<LiveMessage>(bytes))
        + usize::from(decode_checked::<RetrievedMedia>(bytes));
    let mut rest = bytes;
    while let Some((prefix, after)) = rest.split_first_chunk::<PREFIX_LEN>() {
        let Ok(len) = framing::body_len(*prefix) else {
            break;
        };
        assert!(len <= MAX_MESSAGE_LEN as usize);
        let Some(body) = after.get(..len) else { break };
        decoded += usize::from(decode_checked::<EdgeMessage>(body))
            + usize::from(decode_checked::<LiveHeader>(body))
            + usize::from(decode_checked::<LiveMessage>(body));
        rest = &after[len..];
    }
    decoded
}

/// Feeds `bytes` to the I/O board decoders; decoded values must round-trip.
fn board_decoders(bytes: &[u8]) {
    if let Ok(msg) = postcard::from_bytes::<BoardMessage>(bytes) {
        let mut buf = [0u8; 128];
        let used = postcard::to_slice(&msg, &mut buf).expect("a decoded board message encodes");
        assert_eq!(postcard::from_bytes::<BoardMessage>(used).unwrap(), msg);
    }
    if let Ok(cmd) = postcard::from_bytes::<UnitCommand>(bytes) {
        let mut buf = [0u8; 16];
        let used = postcard::to_slice(&cmd, &mut buf).expect("a decoded command encodes");
        assert_eq!(postcard::from_bytes::<UnitCommand>(used).unwrap(), cmd);
    }
}

fn body<T: Serialize>(msg: &T) -> Vec<u8> {
    framing::encode(msg).unwrap()[PREFIX_LEN..].to_vec()
}

/// Valid bodies of every stream message type, with empty, long and non-ASCII fields.
fn stream_seeds() -> Vec<Vec<u8>> {
    let hello = EdgeMessage::Hello(Hello {
        protocol_version: protocol::PROTOCOL_VERSION,
        unit_id: "bus-42".into(),
        cameras: vec![
            CameraInfo { id: "front".into(), name: "Front".into() },
            CameraInfo { id: "rear".into(), name: "Rück ✓".into() },
        ],
    });
    let state = EdgeMessage::CameraState(CameraState {
        camera: "front".into(),
        state: CameraStateKind::Down,
        reason: Some("connection refused".into()),
    });
    let streaming = EdgeMessage::CameraState(CameraState {
        camera: String::new(),
        state: CameraStateKind::Streaming,
        reason: None,
    });
    let parameters = LiveMessage::Parameters(VideoParameters {
        rfc6381_codec: "avc1.4d401e".into(),
        width: 1920,
        height: 1080,
        extra_data: vec![1, 0x4d, 0, 0x1e, 0xff, 0xe1, 0, 4, 0x67, 0x4d, 0, 0x1e],
    });
    let frame = LiveMessage::Frame(MediaFrame {
        pts: -3600,
        clock_rate: 90_000,
        wall_clock_us: 1_700_000_000_000_000,
        keyframe: true,
        data: (0..200u8).collect(),
    });
    // Chunk payloads (protocol version 4): an audio frame with its parameters, a video frame.
    let audio = RetrievedMedia::Audio {
        parameters: Some(AudioParameters {
            codec: "mp4a.40.2".into(),
            sample_rate: 48_000,
            channels: 2,
            extra_data: vec![0x11, 0x90],
        }),
        frame: MediaFrame { pts: 1024, clock_rate: 48_000, wall_clock_us: 5, keyframe: true, data: vec![0x21; 40] },
    };
    let video = RetrievedMedia::Video(MediaFrame {
        pts: 3600,
        clock_rate: 90_000,
        wall_clock_us: 7,
        keyframe: false,
        data: vec![0, 0, 0, 2, 0x41, 0x9a],
    });
    vec![
        body(&audio),
        body(&video),
        body(&hello),
        body(&state),
        body(&streaming),
        body(&CentralMessage::Welcome { protocol_version: u16::MAX }),
        body(&CentralMessage::Refused { reason: "unknown unit".into() }),
        body(&CentralMessage::StartLive { camera: "front".into() }),
        body(&CentralMessage::StopLive { camera: "front".into() }),
        body(&LiveHeader { camera: "front".into() }),
        body(&parameters),
        body(&frame),
        // Whole framed streams: a header then live messages, prefixes included.
        [
            framing::encode(&LiveHeader { camera: "rear".into() }).unwrap(),
            framing::encode(&parameters).unwrap(),
            framing::encode(&frame).unwrap(),
        ]
        .concat(),
    ]
}

/// Valid encodings of every I/O board message.
fn board_seeds() -> Vec<Vec<u8>> {
    let mut firmware = heapless::String::new();
    firmware.push_str("io-1.0.0+ü").unwrap();
    let full = heapless::String::<{ protocol::io::FIRMWARE_VERSION_LEN }>::try_from("0123456789abcdef0123456789abcdef")
        .unwrap();
    let board = [
        BoardMessage::Heartbeat { seq: u32::MAX, uptime_ms: u64::MAX, firmware },
        BoardMessage::Heartbeat { seq: 0, uptime_ms: 1, firmware: full },
        BoardMessage::InputChanged { input: Input::Door(3), active: true },
        BoardMessage::InputChanged { input: Input::Generic(255), active: false },
        BoardMessage::InputChanged { input: Input::Panic, active: true },
        BoardMessage::PowerWarning { millivolts: 9_800 },
    ];
    let mut out: Vec<Vec<u8>> = board.iter().map(|m| postcard::to_allocvec(m).unwrap()).collect();
    out.push(postcard::to_allocvec(&UnitCommand::SetOutput { output: 7, on: true }).unwrap());
    out
}

/// Proves that thousands of seeded mutations of valid edge ↔ central message bodies (and of a
/// framed live stream) never make `framing::decode` panic for `EdgeMessage`, `CentralMessage`,
/// `LiveHeader`, `LiveMessage` or a chunk's `RetrievedMedia` payload, that walking the bytes as a framed stream with
/// `framing::body_len` never panics or accepts a length above the limit, and that whatever
/// does decode is a well-formed value that encodes and decodes back to itself.
#[test]
fn mutated_stream_messages_decode_to_errors_not_panics() {
    let seeds = stream_seeds();
    let mut rng = Rng::new(0x00c0_ffee_5eed_0001);
    let mut decoded = 0;
    for case in 0..50_000 {
        let mut bytes = seeds[case % seeds.len()].clone();
        mutate(&mut rng, &mut bytes);
        no_panic("stream decoders", &bytes, || decoded += all_stream_decoders(&bytes));
    }
    // Mutations that still decode exercise the decoders past their first error path.
    assert!(decoded > 1_000, "only {decoded} mutated messages decoded");
    // The unmutated seeds decode (the mutations start from valid encodings).
    for seed in &seeds[..seeds.len() - 1] {
        let ok = framing::decode::<EdgeMessage>(seed).is_ok()
            || framing::decode::<CentralMessage>(seed).is_ok()
            || framing::decode::<LiveHeader>(seed).is_ok()
            || framing::decode::<LiveMessage>(seed).is_ok()
            || framing::decode::<RetrievedMedia>(seed).is_ok();
        assert!(ok, "seed {seed:02x?} is valid");
    }
}

/// Proves that every truncation of every valid message body is an error (a message cut short
/// by a closed stream is never mistaken for a shorter one), and that a trailing byte is too.
#[test]
fn every_truncation_of_a_valid_body_is_an_error() {
    fn check<T: DeserializeOwned + Debug>(body: &[u8]) -> bool {
        if framing::decode::<T>(body).is_err() {
            return false;
        }
        for end in 0..body.len() {
            let cut = &body[..end];
            assert!(
                framing::decode::<T>(cut).is_err(),
                "truncation {cut:02x?} of a valid {} decoded",
                std::any::type_name::<T>()
            );
        }
        let mut longer = body.to_vec();
        longer.push(0);
        assert!(framing::decode::<T>(&longer).is_err(), "trailing byte");
        true
    }
    let seeds = stream_seeds();
    for seed in &seeds[..seeds.len() - 1] {
        let checked = check::<EdgeMessage>(seed)
            || check::<CentralMessage>(seed)
            || check::<LiveHeader>(seed)
            || check::<LiveMessage>(seed)
            || check::<RetrievedMedia>(seed);
        assert!(checked, "seed {seed:02x?} decodes as some message");
    }
}

/// Proves that `framing::body_len` refuses every length above `MAX_MESSAGE_LEN` and accepts
/// every length up to it, over the edges of the range and thousands of random prefixes.
#[test]
fn body_len_refuses_every_length_over_the_limit() {
    let mut rng = Rng::new(0x00c0_ffee_5eed_0002);
    let edges = [0, 1, MAX_MESSAGE_LEN - 1, MAX_MESSAGE_LEN, MAX_MESSAGE_LEN + 1, u32::MAX - 1, u32::MAX];
    let random = (0..20_000).map(|_| rng.u64() as u32);
    for len in edges.into_iter().chain(random) {
        match framing::body_len(len.to_le_bytes()) {
            Ok(n) => assert!(len <= MAX_MESSAGE_LEN && n == len as usize, "{len}"),
            Err(FramingError::TooLong(n)) => {
                assert!(len > MAX_MESSAGE_LEN && n == u64::from(len), "{len}")
            }
            Err(e) => panic!("{len}: unexpected {e}"),
        }
    }
}

/// Proves that seeded mutations of valid I/O board encodings (and random buffers of random
/// lengths) never make `postcard::from_bytes` panic for `BoardMessage` or `UnitCommand`
/// (fixed-capacity `heapless` fields included), and that what decodes round-trips.
#[test]
fn mutated_board_messages_decode_to_errors_not_panics() {
    let seeds = board_seeds();
    let mut rng = Rng::new(0x00c0_ffee_5eed_0003);
    for case in 0..50_000 {
        let mut bytes = seeds[case % seeds.len()].clone();
        mutate(&mut rng, &mut bytes);
        no_panic("board decoders", &bytes, || board_decoders(&bytes));
    }
    // A firmware string one byte longer than the capacity is refused, not cut or overflowed.
    let mut too_long = vec![0u8, 1, 1, (protocol::io::FIRMWARE_VERSION_LEN + 1) as u8];
    too_long.extend(std::iter::repeat_n(b'a', protocol::io::FIRMWARE_VERSION_LEN + 1));
    assert!(postcard::from_bytes::<BoardMessage>(&too_long).is_err());
    for seed in &seeds {
        let ok =
            postcard::from_bytes::<BoardMessage>(seed).is_ok() || postcard::from_bytes::<UnitCommand>(seed).is_ok();
        assert!(ok, "seed {seed:02x?} is valid");
    }
}

/// Proves that purely random buffers of every small length (the bytes a confused or hostile
/// peer might send) are errors or values for every decoder, never panics.
#[test]
fn random_buffers_decode_to_errors_not_panics() {
    let mut rng = Rng::new(0x00c0_ffee_5eed_0004);
    for case in 0..10_000 {
        let len = case % 96;
        let mut bytes = rng.bytes(len);
        // Bias some towards valid discriminants so the decoders get past the first byte.
        if let Some(first) = bytes.first_mut()
            && case % 2 == 0
        {
            *first %= 4;
        }
        no_panic("all decoders", &bytes, || {
            all_stream_decoders(&bytes);
            board_decoders(&bytes);
        });
    }
}
