//! Convoy's media store: append-only segment files of checksummed, sequenced records.
//!
//! This is the first, simple version of the store (see ARCHITECTURE.md): records are appended
//! to the current segment, `fdatasync`ed at most [`StoreOptions::fsync_interval`] after they
//! were written (group commit), segments roll over at [`StoreOptions::segment_bytes`], and on
//! open the tail of the newest segment is scanned and cut back to the last valid record.
//! Nothing here is async: callers run the [`Store`] on a thread of their own.

mod error;
mod record;
mod segment;
mod store;

pub use error::StoreError;
pub use record::{MediaKind, Record, StoredFrame, StoredParameters};
pub use segment::{SegmentReader, list_segments};
pub use store::{Recovery, Store, StoreOptions};
