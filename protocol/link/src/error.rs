use std::path::PathBuf;

/// What went wrong on the link.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// A key or certificate file could not be read or written.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// Certificate generation failed.
    #[error("cannot generate a certificate: {0}")]
    Certificate(#[from] rcgen::Error),
    /// The TLS configuration was refused.
    #[error("TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
    /// The QUIC endpoint could not be set up.
    #[error("QUIC endpoint: {0}")]
    Endpoint(String),
    /// A pinned fingerprint in the configuration is malformed.
    #[error("fingerprint {0:?} is not of the form sha256:<64 hex digits>")]
    BadFingerprint(String),
    /// Reading from a stream failed.
    #[error("read: {0}")]
    Read(#[from] quinn::ReadExactError),
    /// Writing to a stream failed.
    #[error("write: {0}")]
    Write(#[from] quinn::WriteError),
    /// The peer sent a malformed or oversized message.
    #[error("peer sent a bad message: {0}")]
    Framing(#[from] protocol::framing::FramingError),
    /// An enrollment token is malformed.
    #[error("{0:?} is not an enrollment token (cvy1-<32 hex digits>-<32 hex digits>, from `central unit add`)")]
    BadToken(String),
    /// The stream ended in the middle of a message.
    #[error("stream ended in the middle of a message")]
    Truncated,
}
