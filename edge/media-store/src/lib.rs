//! Convoy's media store: per-camera logs of append-only, pre-allocated segment files holding
//! checksummed, sequenced records, sealed into a signed digest chain, indexed by a SQLite
//! catalog that can always be rebuilt from the segments alone.
//!
//! See `DESIGN.md` beside this crate for the format and the power-loss rules.
//! Nothing here is async: callers run the [`Store`] on a thread of their own.

pub mod archive;
pub mod by_seq;
pub mod catalog;
pub mod crypto;
pub mod digest;
mod durable;
mod error;
mod hasher;
pub mod index;
pub mod key_frame_tail;
pub mod log;
pub mod read;
mod record;
pub mod retention;
pub mod segment;
pub mod signing;
mod store;
mod sync_journal;
pub mod verify;
pub mod volumes;
mod writeback;

pub use crypto::MediaKey;
pub use error::StoreError;
pub use record::{
    EvidenceLock, MediaKind, Record, Removed, Seal, StoredAudioParameters, StoredFrame, StoredParameters, ThinnedSeal,
};
pub use retention::{GroomReport, Retention};
pub use segment::{SegmentReader, list_segments};
pub use store::{Recovery, Store, StoreOptions, catalog_path, list_logs, log_dir, logs_dir, scan_tail};
