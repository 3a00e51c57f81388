//! Messages between an edge unit and central over QUIC.
//!
//! Streams (all carry [`crate::framing`]-framed postcard messages):
//! - **control** (bidirectional, opened by the edge once per connection): the edge sends
//!   [`EdgeMessage::Hello`] first; central answers [`CentralMessage::Welcome`] or
//!   [`CentralMessage::Refused`]; then either side sends updates and requests.
//! - **live** (unidirectional edge → central, one per camera while central wants it): a
//!   [`LiveHeader`], then [`LiveMessage`]s; the edge finishes the stream on
//!   [`CentralMessage::StopLive`]. After [`CentralMessage::StartLiveDatagrams`] (protocol
//!   version 5) the stream carries the header and parameters only, and the frames travel as
//!   QUIC datagrams ([`crate::live_datagram`]).
//! - **chunk** (bidirectional, opened by the edge after the control stream, one per
//!   [`crate::sync::Chunk`] of retrieved video): one [`EdgeMessage::Sync`] carrying the chunk,
//!   then the edge finishes its side; central sends nothing on it.

use alloc::string::String;
use alloc::vec::Vec;
use serde::{Deserialize, Serialize};

/// A camera as the edge unit shares it with central.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CameraInfo {
    /// The camera's id, unique within its unit (from the unit's config).
    pub id: String,
    /// A human-readable name.
    pub name: String,
}

/// The edge's first message on the control stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// The edge's [`crate::PROTOCOL_VERSION`].
    pub protocol_version: u16,
    /// The unit's id, unique within the fleet.
    pub unit_id: String,
    /// The cameras the unit shares with central.
    pub cameras: Vec<CameraInfo>,
}

/// What a camera's ingest is doing, as the edge reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CameraStateKind {
    /// Connecting to the camera (first attempt or after a failure).
    Connecting,
    /// Frames are arriving and being recorded.
    Streaming,
    /// The camera failed; the edge retries with backoff.
    Down,
}

impl CameraStateKind {
    /// The state's name in Convoy's HTTP APIs: `connecting`, `streaming` or `down`.
    pub fn as_str(self) -> &'static str {
        match self {
            CameraStateKind::Connecting => "connecting",
            CameraStateKind::Streaming => "streaming",
            CameraStateKind::Down => "down",
        }
    }
}

/// A change in one camera's ingest state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CameraState {
    /// The camera's id.
    pub camera: String,
    /// The new state.
    pub state: CameraStateKind,
    /// Why the camera is down, when it is.
    pub reason: Option<String>,
}

/// A unit's request to enroll: the first and only message of a connection made without a
/// client certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrollRequest {
    /// The secret part of the one-time enrollment token.
    #[serde(with = "serde_bytes")]
    pub token_secret: Vec<u8>,
    /// The unit's id from its configuration; must be the name the token was made for.
    pub unit_id: String,
    /// A DER certificate signing request for the unit's new key.
    #[serde(with = "serde_bytes")]
    pub csr: Vec<u8>,
}

/// Edge → central messages on the control stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum EdgeMessage {
    /// Opens the session; must be first.
    Hello(Hello),
    /// A camera's ingest state changed.
    CameraState(CameraState),
    /// Enrolls the unit (see [`EnrollRequest`]).
    Enroll(EnrollRequest),
    /// A sync protocol message ([`crate::sync`]). Chunks of video do not come this way but on
    /// bidirectional streams of their own, one chunk each, opened by the unit after the control
    /// stream, so that they never hold up the control stream and yield to live video.
    Sync(crate::sync::SyncFromEdge),
    /// A link test from the technician's page, on a bidirectional stream of its own (like a
    /// chunk): `payload` is filler of the size being measured (empty for a round trip).
    /// Central answers on that stream with [`CentralMessage::LinkTestReceived`] once it has read
    /// it all; an older central drops the stream.
    LinkTest(LinkTest),
    /// The unit's current link to central (from the OS's connection manager): sent after the
    /// hello and whenever it changes. Central's link policy follows `metered` unless its own
    /// configuration forces one; an older central skips the message.
    LinkInfo {
        /// What kind of link it is.
        kind: LinkKind,
        /// Whether its traffic costs (then central retrieves only events and what operators ask).
        metered: bool,
    },
    /// The download half of the link test, on a bidirectional stream of its own: central
    /// answers on that stream with [`CentralMessage::LinkTestData`] carrying `bytes` of filler
    /// (at most [`LINK_TEST_MAX_DOWNLOAD`]); an older central drops the stream.
    LinkTestDownload {
        /// How many filler bytes to send back.
        bytes: u64,
    },
}

/// The largest download a unit may ask of central in one [`EdgeMessage::LinkTestDownload`].
pub const LINK_TEST_MAX_DOWNLOAD: u64 = 8 * 1024 * 1024;

/// The kind of a unit's link to central, as [`EdgeMessage::LinkInfo`] reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum LinkKind {
    /// The unit does not know.
    Unknown,
    /// A wired link.
    Ethernet,
    /// Wi-Fi (a depot's, a station's).
    Wifi,
    /// A cellular modem.
    Cellular,
    /// A satellite link.
    Satellite,
}

impl LinkKind {
    /// Every kind, in declaration order.
    pub const ALL: [LinkKind; 5] =
        [LinkKind::Unknown, LinkKind::Ethernet, LinkKind::Wifi, LinkKind::Cellular, LinkKind::Satellite];

    /// The kind's name in Convoy's configuration files and HTTP APIs: `unknown`, `ethernet`,
    /// `wifi`, `cellular` or `satellite`.
    pub fn as_str(self) -> &'static str {
        match self {
            LinkKind::Unknown => "unknown",
            LinkKind::Ethernet => "ethernet",
            LinkKind::Wifi => "wifi",
            LinkKind::Cellular => "cellular",
            LinkKind::Satellite => "satellite",
        }
    }

    /// The kind named `name` (as [`LinkKind::as_str`] spells it).
    pub fn from_name(name: &str) -> Option<LinkKind> {
        LinkKind::ALL.into_iter().find(|k| k.as_str() == name)
    }

    /// Whether a link of this kind is metered when nothing says otherwise: cellular and
    /// satellite are, the others are not.
    pub fn metered_by_default(self) -> bool {
        matches!(self, LinkKind::Cellular | LinkKind::Satellite)
    }
}

/// The body of [`EdgeMessage::LinkTest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkTest {
    /// Filler bytes (their content means nothing).
    #[serde(with = "serde_bytes")]
    pub payload: Vec<u8>,
}

/// Central → edge messages on the control stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CentralMessage {
    /// The hello was accepted.
    Welcome {
        /// Central's [`crate::PROTOCOL_VERSION`].
        protocol_version: u16,
    },
    /// The hello was refused; the connection closes after this.
    Refused {
        /// Why, for the edge's log and status.
        reason: String,
    },
    /// Start sending live frames of this camera on a new live stream.
    StartLive {
        /// The camera's id.
        camera: String,
    },
    /// Stop sending live frames of this camera.
    StopLive {
        /// The camera's id.
        camera: String,
    },
    /// The answer to an accepted [`EnrollRequest`]; the connection closes after it.
    Enrolled {
        /// The unit's certificate (DER), issued by central's CA.
        #[serde(with = "serde_bytes")]
        certificate: Vec<u8>,
        /// Central's CA certificate (DER).
        #[serde(with = "serde_bytes")]
        ca: Vec<u8>,
    },
    /// A sync protocol message ([`crate::sync`]).
    Sync(crate::sync::SyncFromCentral),
    /// The answer to an [`EdgeMessage::LinkTest`], on its stream: every byte of it arrived.
    LinkTestReceived {
        /// The payload's length as central read it.
        bytes: u64,
    },
    /// The answer to an [`EdgeMessage::LinkTestDownload`], on its stream: the filler asked for.
    LinkTestData(LinkTest),
    /// Start sending live frames of this camera (protocol version 5, only to a unit of version 5
    /// or later whose connection allows datagrams): a live stream with the header and the
    /// parameters as for [`CentralMessage::StartLive`], the frames as datagrams
    /// ([`crate::live_datagram`]) labelled with `slot`. Stopped by [`CentralMessage::StopLive`].
    StartLiveDatagrams {
        /// The camera's id.
        camera: String,
        /// The number the frames' datagrams carry, unique within the connection.
        slot: u32,
    },
    /// Send these data fragments of a live frame again (protocol version 5): parity could not
    /// rebuild them. The unit resends what it still keeps and ignores the rest.
    LiveNack {
        /// The slot of [`CentralMessage::StartLiveDatagrams`].
        slot: u32,
        /// The frame's number.
        frame: u32,
        /// The data fragments missing; empty when none of the frame arrived (then all of them).
        fragments: Vec<u16>,
    },
}

/// The first message on a live stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LiveHeader {
    /// The camera whose frames follow.
    pub camera: String,
}

/// The second message on a live stream that central asked for as datagrams
/// ([`CentralMessage::StartLiveDatagrams`], protocol version 5): the slot it answers, so that
/// central binds the stream to that request and not to a newer one for the same camera (a
/// viewer who leaves and one who comes within a round trip make two requests).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LiveSlot {
    /// The slot of the `StartLiveDatagrams` this stream answers.
    pub slot: u32,
}

/// Codec parameters needed to decode the frames that follow them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VideoParameters {
    /// RFC 6381 codec string, e.g. `avc1.4d401e`.
    pub rfc6381_codec: String,
    /// Coded width in pixels.
    pub width: u32,
    /// Coded height in pixels.
    pub height: u32,
    /// Decoder configuration (for H.264, an `AVCDecoderConfigurationRecord`).
    #[serde(with = "serde_bytes")]
    pub extra_data: Vec<u8>,
}

/// Codec parameters of a camera's audio, needed to decode the audio frames that follow them
/// (protocol version 4).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AudioParameters {
    /// The codec: an RFC 6381 string for AAC (e.g. `mp4a.40.2`), `ulaw` or `alaw` for G.711.
    pub codec: String,
    /// Samples per second (also the clock rate of the audio frames' `pts`).
    pub sample_rate: u32,
    /// Channels.
    pub channels: u16,
    /// Decoder configuration: for AAC the `AudioSpecificConfig`; empty for G.711.
    #[serde(with = "serde_bytes")]
    pub extra_data: Vec<u8>,
}

/// One encoded video frame (an access unit); from protocol version 4 also an audio frame
/// (then `data` is one raw AAC access unit or G.711 samples, and `keyframe` is true).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MediaFrame {
    /// Presentation timestamp in units of `clock_rate`, monotonic within a stream.
    pub pts: i64,
    /// Units per second of `pts` (90 000 for video).
    pub clock_rate: u32,
    /// When the edge received the frame, microseconds since the Unix epoch.
    pub wall_clock_us: i64,
    /// True for a frame a decoder can start from.
    pub keyframe: bool,
    /// The frame's NAL units, each prefixed by a 4-byte big-endian length (AVCC).
    #[serde(with = "serde_bytes")]
    pub data: Vec<u8>,
}

/// The messages after [`LiveHeader`] on a live stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum LiveMessage {
    /// New codec parameters; always sent before the first frame.
    Parameters(VideoParameters),
    /// A frame.
    Frame(MediaFrame),
}
