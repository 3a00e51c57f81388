//! Convoy's sync protocol core: the state machines that move recorded video from edge units to
//! central, with no I/O, no async runtime and no clock (in the manner of `quinn-proto`).
//!
//! # Who drives what
//!
//! The edge's glue owns one [`EdgeSync`], central's glue one [`CentralSync`] per connected unit.
//! Each glue feeds its machine inputs (messages decoded from the QUIC streams, connection
//! up/down, results of store operations, the time as `now`: monotonic microseconds) and after each
//! input drains three outputs: `poll_transmit` (messages to encode and send, wire types in
//! [`protocol::sync`]), `poll_event` (actions on the local store: [`EdgeAction`],
//! [`CentralAction`]) and `poll_timeout` (when to call again without input).
//!
//! # Message flow
//!
//! ```text
//! edge                                           central
//!  connected ── Catalog (zstd) ───────────────▶  resolve queued retrievals to seq ranges
//!            ◀──────────────── Fetch{id, cam, from..=to, max_bytes}   (window of several)
//!  ReadFrames → store → frames_read
//!            ── Chunk{id, frames, next_seq, digest} ─▶  verify digest, drop held frames
//!                                                 Store → glue writes durably → stored()
//!            ◀──────────────── Stored{cam, up_to_seq}  (everything ≤ up_to held)
//!  Acknowledged → retention may groom
//!  event()   ── Events (zstd batch) ───────────▶  CentralAction::Events → events_stored()
//!            ◀──────────────── EventsAck{up_to_id}
//!  Lock → store → lock_done  ◀──── Lock{lock_id, cam, range, expires}  (again at each connect)
//!            ── Locked{lock_id, error} ─────────▶  CentralAction::Locked (once per lock)
//!  ApplySettings → keep, apply ◀── Settings{revision, cameras}  (latest; again at each connect)
//!            ── SettingsApplied{revision, conflicts} ▶  CentralAction::SettingsApplied (once)
//!  local_change() ── LocalChanges[..] ─────────▶  CentralAction::LocalChanges → local_changes_stored()
//!  LocalChangesAcked ◀──────── LocalChangesAck{up_to_id}   (unacked changes resent at connect)
//! ```
//!
//! Settings (protocol version 3) follow the evidence locks' model: central's glue keeps the
//! latest unanswered revision durably and hands it to [`CentralSync::settings`], which sends it
//! only to a unit whose hello says version 3 or later, at once and after every reconnect, until
//! the unit answers that revision. The edge applies each revision once, one at a time and in
//! order (a newer revision waits for the one being applied; one overtaken meanwhile is skipped):
//! a revision it has applied (restored with [`EdgeSync::restore_settings`] after a restart) or is
//! applying is answered from memory. The technician's changes go one batch at a time, like
//! events, so batches cannot overtake each other.
//!
//! Audio (protocol version 4) needs no message of its own: audio frames have sequence numbers in
//! the camera's log like video frames, so fetches, chunks, holdings and acknowledgements cover
//! them unchanged. The edge's glue tells [`EdgeSync::set_peer_version`] central's version from its
//! welcome, and each [`EdgeAction::ReadFrames`] says whether to read audio too (`audio`: only for
//! a central of version 4 or later); the payloads are `protocol::sync::RetrievedMedia`, whose
//! video variants keep the bytes of the older `RetrievedFrame`. Against an older central the
//! unit sends video only, exactly as before, and central acknowledges the range as before.
//!
//! # Why pull-based
//!
//! Central decides what to fetch and when, so the priority order (event, manual, rule, backfill),
//! the window of bytes in flight, the bandwidth cap and the metered-link policy all live in one
//! place, next to the operator who sets them. The edge only answers reads: it needs no cursors,
//! and resuming after a dropped link, a unit restart or a central restart needs none either —
//! central fetches `needed − held − in flight`, computed from its durable holdings and the unit's
//! fresh catalog. A frame is identified by `(camera, seq)`; a chunk tells central that it holds a
//! whole *range* of sequence numbers (numbers without a frame hold none), so holdings are range
//! sets and acknowledgements are exact.
//!
//! # Version tolerance
//!
//! Wire enums only gain variants at the end, and a peer sends a new variant only to a peer whose
//! hello version knows it. An unknown variant decodes to an error (never a panic); the glue drops
//! that message and the machines never see it: a fetch it would have answered times out and is
//! issued again, an event batch is sent again after the next reconnect.
//!
//! # Limits worth knowing
//!
//! The catalog gives spans, not per-frame times, so a time range becomes sequence numbers by
//! linear interpolation within each span, widened by [`CentralConfig::resolve_margin_us`]; a
//! camera whose frame rate varies a lot inside one span may lose frames at the edges of a range.
//! A retrieval that reaches into the future stays open and grows with each catalog until one is
//! [`CentralConfig::settle_us`] newer than its end. Parts of a range that retention removed before
//! central got them make the retrieval end [`RetrievalState::Failed`] with [`Failure::Groomed`];
//! everything else of it is still retrieved (partial success is reported as failure, with
//! `bytes_done < bytes_total`).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod central;
pub mod codec;
pub mod edge;
mod error;
mod pacing;
pub mod planner;
pub mod ranges;
pub mod retrieval;
pub mod time_profile;

pub use central::{CentralAction, CentralConfig, CentralDurable, CentralStats, CentralSync, Holdings, LinkPolicy};
pub use edge::{EdgeAction, EdgeConfig, EdgeStats, EdgeSync};
pub use error::SyncError;
pub use ranges::RangeSet;
pub use retrieval::{Failure, Priority, Retrieval, RetrievalId, RetrievalRecord, RetrievalState, RetrievalStatus};
