//! The SQLite side: opening a part's file, `$N` → `?N`, values in and out.

use std::borrow::Cow;
use std::path::Path;
use std::time::Duration;

use rusqlite::types::{ToSqlOutput, ValueRef};

use super::{CatalogError, Row, Value};

/// Opens (creating) the SQLite file at `path` in WAL mode, with foreign keys, waiting up to
/// 10 s for a writer in another process (the CLI writes while `central run` has it open).
pub(super) fn open(path: &Path) -> Result<rusqlite::Connection, CatalogError> {
    let fail = |source| CatalogError::OpenSqlite { path: path.display().to_string(), source };
    let conn = rusqlite::Connection::open(path).map_err(fail)?;
    conn.busy_timeout(Duration::from_secs(10)).map_err(fail)?;
    conn.pragma_update(None, "journal_mode", "WAL").map_err(fail)?;
    conn.pragma_update(None, "foreign_keys", "ON").map_err(fail)?;
    Ok(conn)
}

/// `sql` with PostgreSQL's `$N` placeholders written as SQLite's `?N` (outside quotes).
pub(super) fn placeholders(sql: &str) -> Cow<'_, str> {
    if !sql.contains('$') {
        return Cow::Borrowed(sql);
    }
    let mut out = String::with_capacity(sql.len());
    let mut quote: Option<char> = None;
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (None, '\'' | '"') => quote = Some(c),
            (None, '$') if chars.peek().is_some_and(char::is_ascii_digit) => {
                out.push('?');
                continue;
            }
            _ => {}
        }
        out.push(c);
    }
    Cow::Owned(out)
}

impl rusqlite::ToSql for Value {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Borrowed(match self {
            Value::Null => ValueRef::Null,
            Value::Int(v) => ValueRef::Integer(*v),
            Value::Real(v) => ValueRef::Real(*v),
            Value::Text(s) => ValueRef::Text(s.as_bytes()),
            Value::Bytes(b) => ValueRef::Blob(b),
            Value::Bool(b) => ValueRef::Integer(i64::from(*b)),
        }))
    }
}

/// Column `i` of a SQLite row as a [`Value`].
fn value(row: &rusqlite::Row<'_>, i: usize) -> Result<Value, CatalogError> {
    let v = row.get_ref(i).map_err(|e| CatalogError::Decode { column: i, message: e.to_string() })?;
    Ok(match v {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(v) => Value::Int(v),
        ValueRef::Real(v) => Value::Real(v),
        ValueRef::Text(t) => Value::Text(
            String::from_utf8(t.to_vec())
                .map_err(|_| CatalogError::Decode { column: i, message: "text that is not UTF-8".into() })?,
        ),
        ValueRef::Blob(b) => Value::Bytes(b.to_vec()),
    })
}

/// Runs `sql` on `conn`: how many rows it changed.
pub(super) fn execute(conn: &rusqlite::Connection, sql: &str, params: &[Value]) -> rusqlite::Result<u64> {
    let mut stmt = conn.prepare_cached(&placeholders(sql))?;
    Ok(stmt.execute(rusqlite::params_from_iter(params.iter()))? as u64)
}

/// Runs `sql` on `conn`: its rows (a decode failure is the outer error's job, so `Ok(Err)`).
pub(super) fn query(
    conn: &rusqlite::Connection,
    sql: &str,
    params: &[Value],
) -> rusqlite::Result<Result<Vec<Row>, CatalogError>> {
    let mut stmt = conn.prepare_cached(&placeholders(sql))?;
    let n = stmt.column_count();
    let mut rows = stmt.query(rusqlite::params_from_iter(params.iter()))?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        match (0..n).map(|i| value(row, i)).collect::<Result<Vec<_>, _>>() {
            Ok(values) => out.push(Row::new(values)),
            Err(e) => return Ok(Err(e)),
        }
    }
    Ok(Ok(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_become_sqlite_ones_outside_quotes() {
        assert_eq!(
            placeholders("SELECT a FROM t WHERE b = $1 AND c = $12"),
            "SELECT a FROM t WHERE b = ?1 AND c = ?12"
        );
        assert_eq!(placeholders("SELECT '$1', \"$2\", $3"), "SELECT '$1', \"$2\", ?3");
        assert_eq!(placeholders("SELECT 'it''s $1', $2"), "SELECT 'it''s $1', ?2");
        assert_eq!(placeholders("SELECT $ + 1"), "SELECT $ + 1");
    }
}
