//! Protocol version 1 on the wire, frozen: every message type and variant as version 1 encodes
//! it, in `tests/wire-v1.txt` (`name hex` per line, the postcard body without the length
//! prefix). This build must decode each to the same value and encode the value to the same
//! bytes, so a unit that speaks version 1 keeps working with any later central (and a version 1
//! central with later units) as long as this test passes. A change that moves a field, inserts
//! a variant before another or changes a type breaks it: add new variants at the end of an enum
//! and new message types instead, and raise `PROTOCOL_VERSION` when a peer must know.
//!
//! The file was written once by `CONVOY_BLESS_WIRE_V1=1 cargo test -p protocol --test wire_v1`;
//! never write it again for version 1 (a later version gets a file of its own).

use std::fmt::Debug;

use protocol::framing;
use protocol::interconnect::{
    AudioParameters, CameraInfo, CameraState, CameraStateKind, CentralMessage, EdgeMessage, EnrollRequest, Hello,
    LinkKind, LinkTest, LiveHeader, LiveMessage, LiveSlot, MediaFrame, VideoParameters,
};
use protocol::io::{BoardMessage, Input, InputState, UnitCommand};
use protocol::live_datagram::{DatagramHeader, FragmentKind};
use protocol::sync::{
    CameraHoldings, CameraSettings, CatalogSummary, Chunk, CompressedCatalog, CompressedEvents, EventBatch, EventKind,
    EvidenceLockRequest, FetchFailure, LocalChange, RemoteEvent, RetrievedFrame, RetrievedMedia, SettingsConflict,
    SettingsPush, Span, SyncFrame, SyncFromCentral, SyncFromEdge,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Checks that frozen bytes decode to a case's value.
type DecodesBack = Box<dyn Fn(&[u8]) -> Result<(), String>>;

/// One frozen case: its name, its bytes as this build encodes them, and a check that the frozen
/// bytes decode to the value.
struct Case {
    name: &'static str,
    encoded: Vec<u8>,
    decodes_back: DecodesBack,
}

fn case<T: Serialize + DeserializeOwned + PartialEq + Debug + 'static>(name: &'static str, value: T) -> Case {
    let encoded = framing::encode(&value).expect("encodes")[framing::PREFIX_LEN..].to_vec();
    let decodes_back = Box::new(move |bytes: &[u8]| match framing::decode::<T>(bytes) {
        Ok(v) if v == value => Ok(()),
        Ok(v) => Err(format!("decodes to {v:?}, not {value:?}")),
        Err(e) => Err(format!("does not decode: {e}")),
    });
    Case { name, encoded, decodes_back }
}

fn board<T: Serialize + DeserializeOwned + PartialEq + Debug + 'static>(name: &'static str, value: T) -> Case {
    let encoded = postcard::to_allocvec(&value).expect("encodes");
    let decodes_back = Box::new(move |bytes: &[u8]| match postcard::from_bytes::<T>(bytes) {
        Ok(v) if v == value => Ok(()),
        Ok(v) => Err(format!("decodes to {v:?}, not {value:?}")),
        Err(e) => Err(format!("does not decode: {e}")),
    });
    Case { name, encoded, decodes_back }
}

fn cases() -> Vec<Case> {
    let span =
        Span { first_seq: 10, last_seq: 99, start_us: -5, end_us: 1_700_000_000_000_000, bytes: 900, frames: 80 };
    let params = VideoParameters {
        rfc6381_codec: "avc1.64001f".into(),
        width: 1280,
        height: 720,
        extra_data: vec![1, 0x64, 0, 0x1f],
    };
    let frame = MediaFrame {
        pts: -3600,
        clock_rate: 90_000,
        wall_clock_us: 1_700_000_000_123_456,
        keyframe: true,
        data: vec![0, 0, 0, 1, 0x65],
    };
    let mut firmware = heapless::String::new();
    firmware.push_str("io-1.2.3").expect("fits");
    let mut inputs = heapless::Vec::new();
    inputs.push(InputState { input: Input::Door(2), active: true }).expect("fits");
    inputs.push(InputState { input: Input::Generic(7), active: false }).expect("fits");
    vec![
        case(
            "edge.hello",
            EdgeMessage::Hello(Hello {
                protocol_version: 1,
                unit_id: "bus-42".into(),
                cameras: vec![CameraInfo { id: "front".into(), name: "Front door".into() }],
            }),
        ),
        case(
            "edge.camera_state",
            EdgeMessage::CameraState(CameraState {
                camera: "front".into(),
                state: CameraStateKind::Down,
                reason: Some("refused".into()),
            }),
        ),
        case(
            "edge.camera_state.streaming",
            EdgeMessage::CameraState(CameraState {
                camera: "rear".into(),
                state: CameraStateKind::Streaming,
                reason: None,
            }),
        ),
        case(
            "edge.enroll",
            EdgeMessage::Enroll(EnrollRequest {
                token_secret: vec![9; 4],
                unit_id: "bus-42".into(),
                csr: vec![0x30, 0x82],
            }),
        ),
        case(
            "edge.sync.catalog",
            EdgeMessage::Sync(SyncFromEdge::Catalog(CompressedCatalog { zstd: vec![0x28, 0xb5] })),
        ),
        case(
            "edge.sync.chunk",
            EdgeMessage::Sync(SyncFromEdge::Chunk(Chunk {
                fetch_id: 3,
                camera: "front".into(),
                frames: vec![SyncFrame { seq: 10, wall_clock_us: 1, keyframe: true, payload: vec![7; 3] }],
                next_seq: Some(11),
                digest: [0xab; 32],
            })),
        ),
        case(
            "edge.sync.fetch_failed.gone",
            EdgeMessage::Sync(SyncFromEdge::FetchFailed {
                fetch_id: 4,
                reason: FetchFailure::Gone { available_from: 50 },
            }),
        ),
        case(
            "edge.sync.fetch_failed.unknown_camera",
            EdgeMessage::Sync(SyncFromEdge::FetchFailed { fetch_id: 5, reason: FetchFailure::UnknownCamera }),
        ),
        case(
            "edge.sync.fetch_failed.unreadable",
            EdgeMessage::Sync(SyncFromEdge::FetchFailed {
                fetch_id: 6,
                reason: FetchFailure::Unreadable { detail: "io".into() },
            }),
        ),
        case("edge.sync.events", EdgeMessage::Sync(SyncFromEdge::Events(CompressedEvents { zstd: vec![1, 2] }))),
        // What travels zstd-compressed inside `Catalog` and `Events`.
        case(
            "sync.catalog_summary",
            CatalogSummary {
                as_of_us: 1_700_000_000_000_000,
                cameras: vec![CameraHoldings { camera: "front".into(), spans: vec![span], removed: vec![span] }],
            },
        ),
        case(
            "sync.event_batch",
            EventBatch {
                events: vec![
                    RemoteEvent { id: 1, cameras: vec!["front".into()], time_us: 5, kind: EventKind::Motion },
                    RemoteEvent {
                        id: 2,
                        cameras: vec![],
                        time_us: 6,
                        kind: EventKind::CameraLost { reason: "eof".into() },
                    },
                    RemoteEvent { id: 3, cameras: vec![], time_us: 7, kind: EventKind::CameraRestored },
                    RemoteEvent {
                        id: 4,
                        cameras: vec![],
                        time_us: 8,
                        kind: EventKind::DigitalInput { input: 2, active: true },
                    },
                    RemoteEvent {
                        id: 5,
                        cameras: vec!["rear".into()],
                        time_us: 9,
                        kind: EventKind::Generic { name: "panic".into(), detail: "button".into() },
                    },
                ],
            },
        ),
        case("central.welcome", CentralMessage::Welcome { protocol_version: 1 }),
        case("central.refused", CentralMessage::Refused { reason: "revoked".into() }),
        case("central.start_live", CentralMessage::StartLive { camera: "front".into() }),
        case("central.stop_live", CentralMessage::StopLive { camera: "front".into() }),
        case("central.enrolled", CentralMessage::Enrolled { certificate: vec![0x30, 1], ca: vec![0x30, 2] }),
        case(
            "central.sync.fetch",
            CentralMessage::Sync(SyncFromCentral::Fetch {
                fetch_id: 1,
                camera: "front".into(),
                from_seq: 10,
                to_seq: 99,
                max_bytes: 262_144,
            }),
        ),
        case(
            "central.sync.stored",
            CentralMessage::Sync(SyncFromCentral::Stored { camera: "front".into(), up_to_seq: 42 }),
        ),
        case("central.sync.events_ack", CentralMessage::Sync(SyncFromCentral::EventsAck { up_to_id: 7 })),
        case("live.header", LiveHeader { camera: "front".into() }),
        case("live.parameters", LiveMessage::Parameters(params)),
        case("live.frame", LiveMessage::Frame(frame)),
        board("io.heartbeat", BoardMessage::Heartbeat { seq: 7, uptime_ms: 1234, firmware }),
        board("io.input_changed", BoardMessage::InputChanged { input: Input::Panic, active: true }),
        board("io.input_changed.ignition", BoardMessage::InputChanged { input: Input::Ignition, active: false }),
        board("io.power_warning", BoardMessage::PowerWarning { millivolts: 9100 }),
        board("io.power_restored", BoardMessage::PowerRestored { millivolts: 12_400 }),
        board(
            "io.status",
            BoardMessage::Status {
                seq: 9,
                inputs,
                outputs: 0b101,
                millivolts: 12_000,
                power_low: false,
                decode_errors: 2,
            },
        ),
        board("io.set_output", UnitCommand::SetOutput { output: 3, on: true }),
        board("io.keep_alive", UnitCommand::KeepAlive),
    ]
}

const FILE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/wire-v1.txt");
const FILE_V2: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/wire-v2.txt");

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex")).collect()
}

#[test]
fn version_1_messages_decode_and_encode_byte_for_byte() {
    check_frozen(FILE, "CONVOY_BLESS_WIRE_V1", &cases(), 31);
}

/// What version 2 added, frozen in `tests/wire-v2.txt` the same way (written once by
/// `CONVOY_BLESS_WIRE_V2=1`; version 1 cases above are not repeated there).
fn cases_v2() -> Vec<Case> {
    let lock = EvidenceLockRequest {
        lock_id: 3,
        camera: "front".into(),
        start_us: 1_700_000_000_000_000,
        end_us: 1_700_000_060_000_000,
        expires_us: 1_702_592_000_000_000,
        reason: "incident 42".into(),
    };
    vec![
        case("central.sync.lock", CentralMessage::Sync(SyncFromCentral::Lock(lock))),
        case("edge.sync.locked_ok", EdgeMessage::Sync(SyncFromEdge::Locked { lock_id: 3, error: None })),
        case(
            "edge.sync.locked_error",
            EdgeMessage::Sync(SyncFromEdge::Locked { lock_id: 4, error: Some("no camera \"x\"".into()) }),
        ),
        // The unit page's link test, at the ends of their enums.
        case("edge.link_test", EdgeMessage::LinkTest(LinkTest { payload: vec![0; 3] })),
        case("central.link_test_received", CentralMessage::LinkTestReceived { bytes: 3 }),
        // The unit's link type, at the end of its enum.
        case("edge.link_info_cellular", EdgeMessage::LinkInfo { kind: LinkKind::Cellular, metered: true }),
        case("edge.link_info_wifi", EdgeMessage::LinkInfo { kind: LinkKind::Wifi, metered: false }),
    ]
}

#[test]
fn version_2_additions_decode_and_encode_byte_for_byte() {
    check_frozen(FILE_V2, "CONVOY_BLESS_WIRE_V2", &cases_v2(), 7);
}

const FILE_V3: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/wire-v3.txt");

/// What version 3 added (camera settings from central, the technician's changes back), frozen
/// in `tests/wire-v3.txt` (written once by `CONVOY_BLESS_WIRE_V3=1`).
fn cases_v3() -> Vec<Case> {
    let all = CameraSettings {
        camera: "*".into(),
        recording: Some(vec!["remote".into(), "link_gap".into()]),
        mode: Some("event".into()),
        schedule: Some("nights".into()),
        pre_buffer_ms: Some(5000),
        post_buffer_ms: Some(2500),
        motion: Some(true),
        motion_sensitivity: Some(7),
        max_age_s: Some(86_400),
    };
    let front = CameraSettings {
        camera: "front".into(),
        recording: Some(vec!["none".into()]),
        mode: None,
        schedule: None,
        pre_buffer_ms: None,
        post_buffer_ms: None,
        motion: None,
        motion_sensitivity: None,
        max_age_s: None,
    };
    let push = SettingsPush {
        revision: 7,
        profile: Some("buses".into()),
        set_at_us: 1_700_000_000_000_000,
        cameras: vec![all, front],
    };
    let conflict = SettingsConflict {
        camera: "front".into(),
        field: "mode".into(),
        local: "\"event\"".into(),
        central: "\"off\"".into(),
    };
    let change = LocalChange {
        id: 3,
        camera: "front".into(),
        field: "pre_buffer_s".into(),
        value: "8".into(),
        at_us: 1_700_000_000_500_000,
        overridden: false,
    };
    vec![
        case("central.sync.settings", CentralMessage::Sync(SyncFromCentral::Settings(push))),
        case("central.sync.local_changes_ack", CentralMessage::Sync(SyncFromCentral::LocalChangesAck { up_to_id: 3 })),
        case(
            "edge.sync.settings_applied",
            EdgeMessage::Sync(SyncFromEdge::SettingsApplied { revision: 7, conflicts: vec![conflict] }),
        ),
        case(
            "edge.sync.settings_applied_clean",
            EdgeMessage::Sync(SyncFromEdge::SettingsApplied { revision: 8, conflicts: vec![] }),
        ),
        case("edge.sync.local_changes", EdgeMessage::Sync(SyncFromEdge::LocalChanges(vec![change]))),
        // The link test's download half, at the ends of their enums.
        case("edge.link_test_download", EdgeMessage::LinkTestDownload { bytes: 131_072 }),
        case("central.link_test_data", CentralMessage::LinkTestData(LinkTest { payload: vec![0; 3] })),
    ]
}

#[test]
fn version_3_additions_decode_and_encode_byte_for_byte() {
    check_frozen(FILE_V3, "CONVOY_BLESS_WIRE_V3", &cases_v3(), 7);
}

const FILE_V4: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/wire-v4.txt");

fn aac() -> AudioParameters {
    AudioParameters { codec: "mp4a.40.2".into(), sample_rate: 48_000, channels: 1, extra_data: vec![0x11, 0x88] }
}

fn audio_frame() -> MediaFrame {
    MediaFrame {
        pts: 96_000,
        clock_rate: 48_000,
        wall_clock_us: 1_700_000_000_200_000,
        keyframe: true,
        data: vec![0x21, 0x10, 0x04],
    }
}

fn video_frame() -> MediaFrame {
    MediaFrame {
        pts: 3600,
        clock_rate: 90_000,
        wall_clock_us: 1_700_000_000_040_000,
        keyframe: false,
        data: vec![0, 0, 0, 1, 0x41],
    }
}

fn video_parameters() -> VideoParameters {
    VideoParameters { rfc6381_codec: "avc1.64001f".into(), width: 640, height: 360, extra_data: vec![1, 0x64, 0, 0x1f] }
}

/// What version 4 added (audio in retrieval chunks), frozen in `tests/wire-v4.txt` (written once
/// by `CONVOY_BLESS_WIRE_V4=1`). These are `SyncFrame` payloads: the frame payloads of a chunk.
fn cases_v4() -> Vec<Case> {
    let g711 = AudioParameters { codec: "ulaw".into(), sample_rate: 8000, channels: 1, extra_data: vec![] };
    vec![
        case("interconnect.audio_parameters", aac()),
        case(
            "sync.retrieved_media.audio_with_parameters",
            RetrievedMedia::Audio { parameters: Some(aac()), frame: audio_frame() },
        ),
        case("sync.retrieved_media.audio", RetrievedMedia::Audio { parameters: None, frame: audio_frame() }),
        case(
            "sync.retrieved_media.audio_g711",
            RetrievedMedia::Audio { parameters: Some(g711), frame: MediaFrame { clock_rate: 8000, ..audio_frame() } },
        ),
        case("sync.retrieved_media.video", RetrievedMedia::Video(video_frame())),
        case(
            "sync.retrieved_media.video_with_parameters",
            RetrievedMedia::VideoWithParameters(video_parameters(), video_frame()),
        ),
        case(
            "edge.hello_v4",
            EdgeMessage::Hello(Hello { protocol_version: 4, unit_id: "bus-42".into(), cameras: vec![] }),
        ),
        case("central.welcome_v4", CentralMessage::Welcome { protocol_version: 4 }),
    ]
}

#[test]
fn version_4_additions_decode_and_encode_byte_for_byte() {
    check_frozen(FILE_V4, "CONVOY_BLESS_WIRE_V4", &cases_v4(), 8);
}

const FILE_V5: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/wire-v5.txt");

/// What version 5 added (live frames as datagrams with parity), frozen in `tests/wire-v5.txt`
/// (written once by `CONVOY_BLESS_WIRE_V5=1`). The datagram header is bare postcard (a datagram
/// has no length prefix: its fragment follows the header).
fn cases_v5() -> Vec<Case> {
    let data = DatagramHeader {
        slot: 3,
        frame: 1000,
        parameters: 2,
        keyframe: true,
        frame_len: 5000,
        fragment_size: 1171,
        group: 4,
        kind: FragmentKind::Data,
        index: 3,
    };
    vec![
        case("central.start_live_datagrams", CentralMessage::StartLiveDatagrams { camera: "front".into(), slot: 3 }),
        case("central.live_nack", CentralMessage::LiveNack { slot: 3, frame: 1000, fragments: vec![1, 2] }),
        case("central.live_nack.whole_frame", CentralMessage::LiveNack { slot: 3, frame: 7, fragments: vec![] }),
        board("live_datagram.header.data", data),
        board("live_datagram.header.parity", DatagramHeader { kind: FragmentKind::Parity, index: 1, ..data }),
        case(
            "edge.hello_v5",
            EdgeMessage::Hello(Hello { protocol_version: 5, unit_id: "bus-42".into(), cameras: vec![] }),
        ),
        case("central.welcome_v5", CentralMessage::Welcome { protocol_version: 5 }),
        case("edge.live_slot", LiveSlot { slot: 3 }),
    ]
}

#[test]
fn version_5_additions_decode_and_encode_byte_for_byte() {
    check_frozen(FILE_V5, "CONVOY_BLESS_WIRE_V5", &cases_v5(), 8);
}

/// A video payload is the same bytes whether a unit of version 1–3 wrote it as a
/// `RetrievedFrame` or a unit of version 4 as a `RetrievedMedia`, both ways, so central decodes
/// every payload as `RetrievedMedia` and a version 3 central reads a version 4 unit's video.
#[test]
fn video_payloads_keep_their_bytes_across_versions() {
    for parameters in [None, Some(video_parameters())] {
        let old = RetrievedFrame { parameters: parameters.clone(), frame: video_frame() };
        let new = RetrievedMedia::from(old.clone());
        let old_bytes = postcard::to_allocvec(&old).expect("encodes");
        let new_bytes = postcard::to_allocvec(&new).expect("encodes");
        assert_eq!(old_bytes, new_bytes, "parameters {}", parameters.is_some());
        assert_eq!(postcard::from_bytes::<RetrievedMedia>(&old_bytes).expect("decodes"), new);
        assert_eq!(postcard::from_bytes::<RetrievedFrame>(&new_bytes).expect("decodes"), old);
    }
    // An audio payload is not a video payload to an older central: a clean decode error.
    let audio = postcard::to_allocvec(&RetrievedMedia::Audio { parameters: Some(aac()), frame: audio_frame() })
        .expect("encodes");
    assert!(postcard::from_bytes::<RetrievedFrame>(&audio).is_err());
}

/// Checks `cases` against the frozen `file` (written first when `bless_var` is set).
fn check_frozen(file: &str, bless_var: &str, cases: &[Case], min_cases: usize) {
    if std::env::var_os(bless_var).is_some() {
        let text: String = cases.iter().map(|c| format!("{} {}\n", c.name, hex(&c.encoded))).collect();
        std::fs::write(file, text).expect("write the frozen file");
    }
    let frozen = std::fs::read_to_string(file).unwrap_or_else(|e| panic!("{file} is committed: {e}"));
    let frozen: Vec<(&str, Vec<u8>)> = frozen
        .lines()
        .map(|l| {
            let (name, bytes) = l.split_once(' ').expect("name hex");
            (name, unhex(bytes))
        })
        .collect();
    let mut problems = Vec::new();
    for (name, bytes) in &frozen {
        let Some(c) = cases.iter().find(|c| c.name == *name) else {
            problems.push(format!("{name}: frozen, but this test no longer builds it"));
            continue;
        };
        if let Err(e) = (c.decodes_back)(bytes) {
            problems.push(format!("{name}: the frozen bytes {e}"));
        }
        if c.encoded != *bytes {
            problems.push(format!("{name}: encodes as {} but the frozen version sent {}", hex(&c.encoded), hex(bytes)));
        }
    }
    assert!(frozen.len() >= min_cases, "{file} lost cases: {}", frozen.len());
    assert!(problems.is_empty(), "wire format changed:\n{}", problems.join("\n"));
}

#[test]
fn a_changed_byte_is_noticed() {
    // The check above can fail: a version 1 hello whose version field is changed decodes to
    // another value.
    let c = cases().into_iter().find(|c| c.name == "edge.hello").expect("case");
    let mut bytes = c.encoded.clone();
    bytes[1] ^= 1;
    assert!((c.decodes_back)(&bytes).is_err());
}
