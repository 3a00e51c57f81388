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
    /// A record could not be encoded (too large for the format).
    #[error("record of {0} bytes is larger than a record may be")]
    RecordTooLarge(usize),
    /// A record body could not be serialized.
    #[error("cannot encode record: {0}")]
    Encode(postcard::Error),
}

impl StoreError {
    pub(crate) fn io(
        op: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| StoreError::Io { op, path, source }
    }
}
