//! Errors returned by the server.

/// Why [`serve`](crate::serve) failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration cannot be served.
    #[error("invalid server configuration: {0}")]
    InvalidConfig(String),
    /// Accepting connections failed.
    #[error("accept failed: {0}")]
    Accept(#[source] std::io::Error),
}
