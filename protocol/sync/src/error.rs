//! The crate's error type.

/// What went wrong. The state machines return these for the glue's log; by the time one is
/// returned the core has already recovered (dropped the message, scheduled a re-fetch, ...).
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// Compressed bytes that zstd refuses.
    #[error("compressed {what} is malformed: {source}")]
    Decompress {
        /// What was being decompressed.
        what: &'static str,
        /// zstd's error.
        #[source]
        source: std::io::Error,
    },
    /// Compressed bytes that expand beyond [`crate::codec::MAX_DECOMPRESSED`] (a zstd bomb).
    #[error("decompressed {what} exceeds {limit} bytes")]
    TooLarge {
        /// What was being decompressed.
        what: &'static str,
        /// The limit.
        limit: usize,
    },
    /// Bytes that are not a postcard encoding of the expected type.
    #[error("{what} does not decode: {source}")]
    Decode {
        /// What was being decoded.
        what: &'static str,
        /// postcard's error.
        #[source]
        source: postcard::Error,
    },
    /// Encoding or compressing failed (out of memory, in practice).
    #[error("cannot encode {what}: {detail}")]
    Encode {
        /// What was being encoded.
        what: &'static str,
        /// The underlying error.
        detail: String,
    },
    /// A catalog whose spans are out of order, overlapping or inverted; it was ignored.
    #[error("invalid catalog: {0}")]
    InvalidCatalog(String),
    /// An event whose id is not above the previous event's.
    #[error("event id {id} is not above the previous id {previous}")]
    EventIdNotIncreasing {
        /// The refused id.
        id: u64,
        /// The previous event's id.
        previous: u64,
    },
    /// A chunk whose digest does not match its frames; the range is fetched again.
    #[error("chunk of fetch {fetch_id} failed its digest check")]
    DigestMismatch {
        /// The fetch.
        fetch_id: u64,
    },
    /// A peer message that breaks the protocol (frames outside the fetched range, ...); it was
    /// dropped and the range is fetched again.
    #[error("protocol violation: {0}")]
    Violation(String),
}
