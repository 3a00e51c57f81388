//! Convoy's wire types, shared by the edge unit, central and the I/O companion board.
//!
//! Every message is [postcard]-encoded. The crate is `no_std`: the I/O board messages in
//! [`io`] use fixed-capacity [`heapless`] types and need no allocator; the interconnect
//! messages between an edge unit and central (in [`interconnect`]) need the `alloc` feature.
//!
//! Compatibility rule: enums only ever gain variants at the end and structs only change in a
//! new protocol version, announced in the handshake ([`PROTOCOL_VERSION`]).
#![no_std]
#![forbid(unsafe_code)]

#[cfg(feature = "alloc")]
extern crate alloc;

#[cfg(feature = "alloc")]
pub mod framing;
#[cfg(feature = "alloc")]
pub mod interconnect;
pub mod io;
#[cfg(feature = "alloc")]
pub mod live_datagram;
#[cfg(feature = "alloc")]
pub mod sync;

/// The protocol version this build speaks. Bumped on any incompatible change.
///
/// - 1: the first version.
/// - 2: evidence locks from central (`SyncFromCentral::Lock`, `SyncFromEdge::Locked`); the unit's
///   link test (`EdgeMessage::LinkTest`, answered by `CentralMessage::LinkTestReceived`); the unit's
///   link type (`EdgeMessage::LinkInfo`).
/// - 3: camera settings from central (`SyncFromCentral::Settings`, answered by
///   `SyncFromEdge::SettingsApplied`) and the technician's changes reported back
///   (`SyncFromEdge::LocalChanges`, answered by `SyncFromCentral::LocalChangesAck`); the link
///   test's download half (`EdgeMessage::LinkTestDownload`, answered by
///   `CentralMessage::LinkTestData`).
/// - 4: audio in retrieval: a unit sends its cameras' audio frames in chunks, as
///   `sync::RetrievedMedia::Audio` payloads with `interconnect::AudioParameters`, only to a central
///   of version 4 or later (video payloads keep their bytes, see `sync::RetrievedMedia`).
/// - 5: live frames as QUIC datagrams with parity ([`live_datagram`]): central asks a unit of
///   version 5 whose connection allows datagrams with `CentralMessage::StartLiveDatagrams` and
///   asks for lost fragments again with `CentralMessage::LiveNack`; the live stream carries the
///   `LiveHeader`, then `interconnect::LiveSlot` (the request it answers), then the parameters.
///   Older units get `StartLive` only, as before.
pub const PROTOCOL_VERSION: u16 = 5;

/// The first protocol version whose units send live frames as datagrams ([`live_datagram`]).
pub const DATAGRAM_LIVE_PROTOCOL_VERSION: u16 = 5;

/// The first protocol version whose chunks carry audio frames (`sync::RetrievedMedia::Audio`).
pub const AUDIO_PROTOCOL_VERSION: u16 = 4;

/// The oldest peer protocol version this build still accepts.
pub const MIN_PROTOCOL_VERSION: u16 = 1;

/// The ALPN name of the edge <-> central QUIC protocol.
pub const ALPN: &[u8] = b"convoy/1";
