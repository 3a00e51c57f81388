//! The catalog's portable values: typed parameters in, rows of values out, read by index.

use super::CatalogError;

/// A parameter or a column value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// SQL `NULL`.
    Null,
    /// An integer (`INTEGER` in SQLite, `BIGINT` in PostgreSQL).
    Int(i64),
    /// A floating-point number.
    Real(f64),
    /// Text.
    Text(String),
    /// Bytes (`BLOB` in SQLite, `BYTEA` in PostgreSQL).
    Bytes(Vec<u8>),
    /// A boolean (SQLite has none: it reads back as an integer, which [`FromValue`] for `bool`
    /// accepts).
    Bool(bool),
}

impl From<i64> for Value {
    fn from(v: i64) -> Value {
        Value::Int(v)
    }
}

impl From<u32> for Value {
    fn from(v: u32) -> Value {
        Value::Int(v.into())
    }
}

impl From<f64> for Value {
    fn from(v: f64) -> Value {
        Value::Real(v)
    }
}

impl From<bool> for Value {
    fn from(v: bool) -> Value {
        Value::Bool(v)
    }
}

impl From<&str> for Value {
    fn from(v: &str) -> Value {
        Value::Text(v.to_owned())
    }
}

impl From<&String> for Value {
    fn from(v: &String) -> Value {
        Value::Text(v.clone())
    }
}

impl From<String> for Value {
    fn from(v: String) -> Value {
        Value::Text(v)
    }
}

impl From<&[u8]> for Value {
    fn from(v: &[u8]) -> Value {
        Value::Bytes(v.to_vec())
    }
}

impl From<Vec<u8>> for Value {
    fn from(v: Vec<u8>) -> Value {
        Value::Bytes(v)
    }
}

impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Value {
        v.map_or(Value::Null, Into::into)
    }
}

impl Value {
    fn kind(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Int(_) => "an integer",
            Value::Real(_) => "a real number",
            Value::Text(_) => "text",
            Value::Bytes(_) => "bytes",
            Value::Bool(_) => "a boolean",
        }
    }
}

/// A type a column can be read as.
pub trait FromValue: Sized {
    /// `value` as this type, or what it is instead.
    fn from_value(value: &Value) -> Result<Self, String>;
}

fn wrong<T>(want: &str, got: &Value) -> Result<T, String> {
    Err(format!("expected {want}, found {}", got.kind()))
}

impl FromValue for i64 {
    fn from_value(value: &Value) -> Result<i64, String> {
        match value {
            Value::Int(v) => Ok(*v),
            Value::Bool(b) => Ok(i64::from(*b)),
            other => wrong("an integer", other),
        }
    }
}

impl FromValue for f64 {
    fn from_value(value: &Value) -> Result<f64, String> {
        match value {
            Value::Real(v) => Ok(*v),
            Value::Int(v) => Ok(*v as f64),
            other => wrong("a number", other),
        }
    }
}

impl FromValue for bool {
    fn from_value(value: &Value) -> Result<bool, String> {
        match value {
            Value::Bool(b) => Ok(*b),
            Value::Int(v) => Ok(*v != 0),
            other => wrong("a boolean", other),
        }
    }
}

impl FromValue for String {
    fn from_value(value: &Value) -> Result<String, String> {
        match value {
            Value::Text(s) => Ok(s.clone()),
            other => wrong("text", other),
        }
    }
}

impl FromValue for Vec<u8> {
    fn from_value(value: &Value) -> Result<Vec<u8>, String> {
        match value {
            Value::Bytes(b) => Ok(b.clone()),
            other => wrong("bytes", other),
        }
    }
}

impl<T: FromValue> FromValue for Option<T> {
    fn from_value(value: &Value) -> Result<Option<T>, String> {
        match value {
            Value::Null => Ok(None),
            other => T::from_value(other).map(Some),
        }
    }
}

/// One result row.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    values: Vec<Value>,
}

impl Row {
    /// A row of these values.
    pub fn new(values: Vec<Value>) -> Row {
        Row { values }
    }

    /// Column `column` (from 0) as a `T`.
    pub fn get<T: FromValue>(&self, column: usize) -> Result<T, CatalogError> {
        let value = self.values.get(column).ok_or_else(|| CatalogError::Decode {
            column,
            message: format!("the row has only {} columns", self.values.len()),
        })?;
        T::from_value(value).map_err(|message| CatalogError::Decode { column, message })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_read_by_type_and_say_what_does_not_fit() {
        let row = Row::new(vec![Value::Int(7), Value::Null, Value::Text("x".into()), Value::Bool(true)]);
        assert_eq!(row.get::<i64>(0).unwrap(), 7);
        assert!(row.get::<bool>(0).unwrap());
        assert_eq!(row.get::<Option<String>>(1).unwrap(), None);
        assert_eq!(row.get::<i64>(3).unwrap(), 1);
        let e = row.get::<i64>(2).unwrap_err().to_string();
        assert!(e.contains("column 2") && e.contains("expected an integer, found text"), "{e}");
        assert!(row.get::<String>(9).unwrap_err().to_string().contains("only 4 columns"));
        assert!(row.get::<String>(1).is_err(), "null is not text");
    }
}
