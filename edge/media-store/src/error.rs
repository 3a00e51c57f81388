use std::path::PathBuf;

/// What went wrong in the media store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// An I/O call on a store file failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What the store was doing.
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A segment does not start with the store's magic and version.
    #[error("{path} is not a Convoy segment (bad header)")]
    BadHeader {
        /// The segment file.
        path: PathBuf,
    },
    /// An index pointed past the end of a segment.
    #[error("{path}: offset {offset} is past the end of the segment; run `edge store reindex`")]
    BadOffset {
        /// The segment file.
        path: PathBuf,
        /// The offset.
        offset: u64,
    },
    /// The catalog database failed.
    #[error("catalog: {0}")]
    Catalog(#[from] rusqlite::Error),
    /// The unit's signing key could not be used.
    #[error("signing key {path}: {message}")]
    Key {
        /// The key file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The store directory is already open for writing by another process.
    #[error("{0} is in use by another process (an edge already running on this store?)")]
    Locked(PathBuf),
    /// Only parameters and frames (with a camera) are appended directly; seals, locks and
    /// cursors have their own calls.
    #[error("this record cannot be appended directly")]
    NotAppendable,
    /// An encrypted payload did not decrypt: the key is wrong (its checksum matched).
    #[error("{path}: record {seq} does not decrypt with this key (wrong key?)")]
    Decrypt {
        /// The segment.
        path: PathBuf,
        /// The record's sequence number.
        seq: u64,
    },
    /// The recording is encrypted and no key was given.
    #[error("{0} is encrypted: give the store's key (--key-file, or [store] encryption_key_file)")]
    NeedKey(PathBuf),
    /// A segment that should be sealed is not.
    #[error("{0} is not sealed")]
    NotSealed(PathBuf),
    /// The store has no recordings of this camera.
    #[error("the store holds no recordings of camera {0:?}")]
    NoSuchCamera(String),
    /// A record could not be encoded (too large for the format).
    #[error("record of {0} bytes is larger than a record may be")]
    RecordTooLarge(usize),
    /// A record body could not be serialized.
    #[error("cannot encode record: {0}")]
    Encode(postcard::Error),
}

impl StoreError {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| StoreError::Io { op, path, source }
    }
}
