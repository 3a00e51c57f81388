//! [`CatalogDb`]: one catalog part's connection, SQLite or PostgreSQL, with a small portable
//! query API, and [`Tx`], a transaction on either.

use std::sync::{Mutex, MutexGuard};

use super::{CatalogError, CatalogLocation, Row, Schema, Value, migrate, pg, redact_url, sqlite};

/// How long a failed call's check that its PostgreSQL connection still answers may take.
const PG_VALID_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// Which backend a [`CatalogDb`] runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A SQLite file.
    Sqlite,
    /// A PostgreSQL database.
    Postgres,
}

enum Conn {
    Sqlite { conn: rusqlite::Connection, path: String },
    Postgres { client: Option<postgres::Client>, url: String },
}

/// One catalog part (see [`Schema`]) on its backend; its migrations are applied when opened.
/// Calls are serialised on one connection (PostgreSQL: reconnected when lost).
pub struct CatalogDb {
    part: &'static str,
    conn: Mutex<Conn>,
}

/// A transaction on either backend; it commits when the closure given to
/// [`CatalogDb::transaction`] returns `Ok`, and rolls back otherwise.
pub enum Tx<'a> {
    /// On SQLite.
    Sqlite {
        /// The transaction.
        tx: rusqlite::Transaction<'a>,
        /// For errors: the catalog part and file.
        part: &'static str,
        /// The file.
        path: &'a str,
    },
    /// On PostgreSQL.
    Postgres {
        /// The transaction.
        tx: postgres::Transaction<'a>,
        /// For errors: the catalog part.
        part: &'static str,
        /// The URL without its password.
        url: String,
    },
}

impl Tx<'_> {
    fn fail_sqlite(part: &'static str, path: &str, source: rusqlite::Error) -> CatalogError {
        CatalogError::Sqlite { part, path: path.to_owned(), source }
    }

    fn fail_pg(part: &'static str, url: &str, e: &postgres::Error) -> CatalogError {
        if pg::is_conflict(e) {
            CatalogError::Conflict { part }
        } else {
            CatalogError::Postgres { part, url: url.to_owned(), message: pg::message(e) }
        }
    }

    /// Runs a statement: how many rows it changed.
    pub fn execute(&mut self, sql: &str, params: &[Value]) -> Result<u64, CatalogError> {
        match self {
            Tx::Sqlite { tx, part, path } => {
                sqlite::execute(tx, sql, params).map_err(|e| Self::fail_sqlite(part, path, e))
            }
            Tx::Postgres { tx, part, url } => pg::execute(tx, sql, params).map_err(|e| Self::fail_pg(part, url, &e)),
        }
    }

    /// Runs a query: every row.
    pub fn query(&mut self, sql: &str, params: &[Value]) -> Result<Vec<Row>, CatalogError> {
        match self {
            Tx::Sqlite { tx, part, path } => {
                sqlite::query(tx, sql, params).map_err(|e| Self::fail_sqlite(part, path, e))?
            }
            Tx::Postgres { tx, part, url } => pg::query(tx, sql, params).map_err(|e| Self::fail_pg(part, url, &e))?,
        }
    }

    /// Runs a query: its first row, if any.
    pub fn query_opt(&mut self, sql: &str, params: &[Value]) -> Result<Option<Row>, CatalogError> {
        Ok(self.query(sql, params)?.into_iter().next())
    }

    /// Runs a query that returns exactly one row.
    pub fn query_one(&mut self, sql: &str, params: &[Value]) -> Result<Row, CatalogError> {
        self.query_opt(sql, params)?.ok_or_else(|| CatalogError::Decode { column: 0, message: "no row".into() })
    }

    /// Runs several statements without parameters (schema changes).
    pub fn batch(&mut self, sql: &str) -> Result<(), CatalogError> {
        match self {
            Tx::Sqlite { tx, part, path } => tx.execute_batch(sql).map_err(|e| Self::fail_sqlite(part, path, e)),
            Tx::Postgres { tx, part, url } => tx.batch_execute(sql).map_err(|e| Self::fail_pg(part, url, &e)),
        }
    }

    /// Which backend this transaction runs on.
    pub fn backend(&self) -> Backend {
        match self {
            Tx::Sqlite { .. } => Backend::Sqlite,
            Tx::Postgres { .. } => Backend::Postgres,
        }
    }
}

impl Drop for CatalogDb {
    fn drop(&mut self) {
        // Closing the client blocks on its own runtime: never on a tokio worker thread.
        if let Conn::Postgres { client, .. } = &mut *self.lock() {
            let client = client.take();
            pg::off_runtime(move || drop(client));
        }
    }
}

impl CatalogDb {
    /// Opens `schema`'s part of the catalog at `location` (SQLite: its file in the directory,
    /// created if needed) and brings its schema up to date.
    pub fn open(location: &CatalogLocation, schema: &Schema) -> Result<CatalogDb, CatalogError> {
        let conn = match location {
            CatalogLocation::Sqlite { dir } => {
                let path = dir.join(schema.sqlite_file);
                Conn::Sqlite { conn: sqlite::open(&path)?, path: path.display().to_string() }
            }
            CatalogLocation::Postgres { url } => Conn::Postgres { client: Some(pg::connect(url)?), url: url.clone() },
        };
        let db = CatalogDb { part: schema.part, conn: Mutex::new(conn) };
        db.transaction(|tx| migrate::apply(tx, schema))?;
        Ok(db)
    }

    /// Which backend this part runs on.
    pub fn backend(&self) -> Backend {
        match *self.lock() {
            Conn::Sqlite { .. } => Backend::Sqlite,
            Conn::Postgres { .. } => Backend::Postgres,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Conn> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `f` in a transaction: committed if it returns `Ok`, rolled back otherwise. On
    /// PostgreSQL it runs at READ COMMITTED: write statements so that their row locks decide
    /// races between nodes (`ON CONFLICT`, `DELETE … RETURNING`), not a read before a write.
    pub fn transaction<T, E>(&self, f: impl FnOnce(&mut Tx<'_>) -> Result<T, E> + Send) -> Result<T, E>
    where
        T: Send,
        E: From<CatalogError> + Send,
    {
        self.run(true, f)
    }

    /// Runs the reads in `f` in one transaction, one snapshot of the catalog; on SQLite without
    /// taking the write lock, so it never waits for another connection's writer.
    pub fn read_transaction<T, E>(&self, f: impl FnOnce(&mut Tx<'_>) -> Result<T, E> + Send) -> Result<T, E>
    where
        T: Send,
        E: From<CatalogError> + Send,
    {
        self.run(false, f)
    }

    /// [`CatalogDb::transaction`]; `writes`: on SQLite, take the write lock at the start (so a
    /// read-then-write transaction never fails to upgrade), else only when writing.
    fn run<T, E>(&self, writes: bool, f: impl FnOnce(&mut Tx<'_>) -> Result<T, E> + Send) -> Result<T, E>
    where
        T: Send,
        E: From<CatalogError> + Send,
    {
        let part = self.part;
        let mut guard = self.lock();
        match &mut *guard {
            Conn::Sqlite { conn, path } => {
                let path = path.as_str();
                let behavior = if writes {
                    rusqlite::TransactionBehavior::Immediate
                } else {
                    rusqlite::TransactionBehavior::Deferred
                };
                let tx = conn.transaction_with_behavior(behavior).map_err(|e| Tx::fail_sqlite(part, path, e))?;
                let mut tx = Tx::Sqlite { tx, part, path };
                let out = f(&mut tx)?;
                let Tx::Sqlite { tx, .. } = tx else { unreachable!("a SQLite transaction") };
                tx.commit().map_err(|e| Tx::fail_sqlite(part, path, e))?;
                Ok(out)
            }
            Conn::Postgres { client, url } => {
                let shown = redact_url(url);
                if client.as_ref().is_none_or(postgres::Client::is_closed) {
                    let lost = client.take();
                    pg::off_runtime(move || drop(lost));
                    *client = Some(pg::connect(url)?);
                }
                let Some(live) = client.as_mut() else { unreachable!("connected just now") };
                let (out, broken) = pg::off_runtime(move || {
                    let out = (|| {
                        let tx = live.transaction().map_err(|e| Tx::fail_pg(part, &shown, &e))?;
                        let mut tx = Tx::Postgres { tx, part, url: shown.clone() };
                        let out = f(&mut tx)?;
                        let Tx::Postgres { tx, .. } = tx else { unreachable!("a PostgreSQL transaction") };
                        tx.commit().map_err(|e| Tx::fail_pg(part, &shown, &e))?;
                        Ok(out)
                    })();
                    // A call that failed may have met a connection the server had just ended
                    // (its last message read, its close not yet): ask, so that the next call
                    // connects again rather than writing into the closed socket.
                    let broken = out.is_err() && live.is_valid(PG_VALID_TIMEOUT).is_err();
                    (out, broken)
                });
                if broken {
                    let lost = client.take();
                    pg::off_runtime(move || drop(lost));
                }
                out
            }
        }
    }

    /// Runs one statement in its own transaction: how many rows it changed.
    pub fn execute(&self, sql: &str, params: &[Value]) -> Result<u64, CatalogError> {
        self.transaction(|tx| tx.execute(sql, params))
    }

    /// Runs one query: every row.
    pub fn query(&self, sql: &str, params: &[Value]) -> Result<Vec<Row>, CatalogError> {
        self.run(false, |tx| tx.query(sql, params))
    }

    /// Runs one query: its first row, if any.
    pub fn query_opt(&self, sql: &str, params: &[Value]) -> Result<Option<Row>, CatalogError> {
        self.run(false, |tx| tx.query_opt(sql, params))
    }

    /// Runs one query that returns exactly one row.
    pub fn query_one(&self, sql: &str, params: &[Value]) -> Result<Row, CatalogError> {
        self.run(false, |tx| tx.query_one(sql, params))
    }
}
