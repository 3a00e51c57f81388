//! The PostgreSQL side: connecting (never showing the password), values in and out, and
//! running the synchronous client where it may block.

use std::error::Error;
use std::time::Duration;

use bytes::BytesMut;
use postgres::types::{IsNull, ToSql, Type, to_sql_checked};

use super::{CatalogError, Row, Value, redact_url};

/// Connects to the catalog at `url` (no TLS: keep the database on a trusted network or a
/// local socket), giving up after 10 s unless the URL sets `connect_timeout`.
pub(super) fn connect(url: &str) -> Result<postgres::Client, CatalogError> {
    let fail = |message: String| CatalogError::Connect { url: redact_url(url), message };
    let mut config: postgres::Config = url.parse().map_err(|e: postgres::Error| fail(e.to_string()))?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(Duration::from_secs(10));
    }
    config.application_name("convoy-central");
    off_runtime(|| config.connect(postgres::NoTls)).map_err(|e| fail(message(&e)))
}

/// The most useful words of a client error: the server's code and message when it sent one.
pub(super) fn message(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => match e.source() {
            Some(source) => format!("{e}: {source}"),
            None => e.to_string(),
        },
    }
}

/// Whether `e` is a serialization failure or a deadlock: two nodes changed the same rows.
pub(super) fn is_conflict(e: &postgres::Error) -> bool {
    e.code().is_some_and(|c| {
        *c == postgres::error::SqlState::T_R_SERIALIZATION_FAILURE
            || *c == postgres::error::SqlState::T_R_DEADLOCK_DETECTED
    })
}

/// Runs `f` where the synchronous client may block: on this thread, or on a scoped helper
/// thread when this one drives a tokio runtime (the client runs its own small runtime, which
/// tokio refuses to start inside another).
pub(super) fn off_runtime<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    if tokio::runtime::Handle::try_current().is_err() {
        return f();
    }
    std::thread::scope(|s| match s.spawn(f).join() {
        Ok(out) => out,
        Err(panic) => std::panic::resume_unwind(panic),
    })
}

impl ToSql for Value {
    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> Result<IsNull, Box<dyn Error + Sync + Send>> {
        let mismatch =
            || -> Box<dyn Error + Sync + Send> { format!("{} cannot go into a {ty} column", kind(self)).into() };
        match self {
            Value::Null => Ok(IsNull::Yes),
            Value::Int(v) => match *ty {
                Type::INT8 => v.to_sql(ty, out),
                Type::INT4 => i32::try_from(*v)?.to_sql(ty, out),
                Type::INT2 => i16::try_from(*v)?.to_sql(ty, out),
                Type::FLOAT8 => (*v as f64).to_sql(ty, out),
                Type::BOOL => (*v != 0).to_sql(ty, out),
                _ => Err(mismatch()),
            },
            Value::Real(v) => match *ty {
                Type::FLOAT8 => v.to_sql(ty, out),
                Type::FLOAT4 => (*v as f32).to_sql(ty, out),
                _ => Err(mismatch()),
            },
            Value::Bool(b) => match *ty {
                Type::BOOL => b.to_sql(ty, out),
                Type::INT8 => i64::from(*b).to_sql(ty, out),
                _ => Err(mismatch()),
            },
            Value::Text(s) if <&str as ToSql>::accepts(ty) => s.as_str().to_sql(ty, out),
            Value::Bytes(b) if <&[u8] as ToSql>::accepts(ty) => b.as_slice().to_sql(ty, out),
            Value::Text(_) | Value::Bytes(_) => Err(mismatch()),
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Int(_) => "an integer",
        Value::Real(_) => "a real number",
        Value::Text(_) => "text",
        Value::Bytes(_) => "bytes",
        Value::Bool(_) => "a boolean",
    }
}

/// A PostgreSQL row as a [`Row`].
fn row(r: &postgres::Row) -> Result<Row, CatalogError> {
    let mut values = Vec::with_capacity(r.len());
    for (i, column) in r.columns().iter().enumerate() {
        let decode = |e: postgres::Error| CatalogError::Decode { column: i, message: e.to_string() };
        let v = match *column.type_() {
            Type::INT8 => r.try_get::<_, Option<i64>>(i).map_err(decode)?.map(Value::Int),
            Type::INT4 => r.try_get::<_, Option<i32>>(i).map_err(decode)?.map(|v| Value::Int(v.into())),
            Type::INT2 => r.try_get::<_, Option<i16>>(i).map_err(decode)?.map(|v| Value::Int(v.into())),
            Type::FLOAT8 => r.try_get::<_, Option<f64>>(i).map_err(decode)?.map(Value::Real),
            Type::FLOAT4 => r.try_get::<_, Option<f32>>(i).map_err(decode)?.map(|v| Value::Real(v.into())),
            Type::BOOL => r.try_get::<_, Option<bool>>(i).map_err(decode)?.map(Value::Bool),
            Type::BYTEA => r.try_get::<_, Option<Vec<u8>>>(i).map_err(decode)?.map(Value::Bytes),
            Type::TEXT | Type::VARCHAR | Type::NAME | Type::BPCHAR => {
                r.try_get::<_, Option<String>>(i).map_err(decode)?.map(Value::Text)
            }
            ref other => {
                return Err(CatalogError::Decode { column: i, message: format!("unsupported column type {other}") });
            }
        };
        values.push(v.unwrap_or(Value::Null));
    }
    Ok(Row::new(values))
}

fn refs(params: &[Value]) -> Vec<&(dyn ToSql + Sync)> {
    params.iter().map(|p| p as &(dyn ToSql + Sync)).collect()
}

/// Runs `sql` in `tx`: how many rows it changed.
pub(super) fn execute(tx: &mut postgres::Transaction<'_>, sql: &str, params: &[Value]) -> Result<u64, postgres::Error> {
    tx.execute(sql, &refs(params))
}

/// Runs `sql` in `tx`: its rows (a decode failure is the outer error's job, so `Ok(Err)`).
pub(super) fn query(
    tx: &mut postgres::Transaction<'_>,
    sql: &str,
    params: &[Value],
) -> Result<Result<Vec<Row>, CatalogError>, postgres::Error> {
    let rows = tx.query(sql, &refs(params))?;
    Ok(rows.iter().map(row).collect())
}
