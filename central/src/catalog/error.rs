//! What can go wrong with the catalog, each saying what to do.

/// Why the catalog failed.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// `[catalog] url` is not a form central knows.
    #[error(
        "[catalog] url {0:?} is not understood: use \"postgres://USER@HOST:PORT/DATABASE\", \"sqlite\" or \"sqlite:DIRECTORY\""
    )]
    BadUrl(String),
    /// A SQLite file cannot be opened.
    #[error("cannot open the catalog file {path}: {source}; check that the store directory exists and is writable")]
    OpenSqlite {
        /// The file.
        path: String,
        /// SQLite's error.
        source: rusqlite::Error,
    },
    /// No connection to the PostgreSQL server.
    #[error("cannot connect to the catalog at {url}: {message}; check [catalog] url and that the server is running")]
    Connect {
        /// The catalog's URL without its password.
        url: String,
        /// Why.
        message: String,
    },
    /// A statement failed on SQLite.
    #[error("catalog {part} ({path}): {source}")]
    Sqlite {
        /// The catalog part (registry, accounts, audit, recording options).
        part: &'static str,
        /// The file.
        path: String,
        /// SQLite's error.
        source: rusqlite::Error,
    },
    /// A statement failed on PostgreSQL.
    #[error("catalog {part} at {url}: {message}")]
    Postgres {
        /// The catalog part.
        part: &'static str,
        /// The catalog's URL without its password.
        url: String,
        /// The server's or the client's message.
        message: String,
    },
    /// Another central node changed the same rows at the same moment.
    #[error("catalog {part}: another central changed the same rows at the same time; try again")]
    Conflict {
        /// The catalog part.
        part: &'static str,
    },
    /// A stored value is not of the type this central reads there.
    #[error(
        "a catalog row does not decode (column {column}: {message}); the catalog is damaged or was written by a newer central"
    )]
    Decode {
        /// The column's index in the query.
        column: usize,
        /// What was found instead.
        message: String,
    },
    /// The catalog's schema is newer than this central.
    #[error(
        "the catalog's {part} schema is version {found}, but this central knows only up to {known}; run the newer central that wrote it"
    )]
    TooNew {
        /// The catalog part.
        part: &'static str,
        /// The version found.
        found: i64,
        /// The newest version this build knows.
        known: i64,
    },
    /// The blocking task that ran a call was cancelled (central is shutting down).
    #[error("catalog {part}: the call was cancelled because central is shutting down")]
    Stopped {
        /// The catalog part.
        part: &'static str,
    },
    /// A thread of the catalog's could not be started.
    #[error("catalog {part}: cannot start its writer thread: {message}; the system may be out of threads or memory")]
    Thread {
        /// The catalog part.
        part: &'static str,
        /// The system's message.
        message: String,
    },
}
