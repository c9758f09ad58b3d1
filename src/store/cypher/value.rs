//! The values the Cypher backend sends as parameters and reads back from result columns: the common ground of
//! Bolt (Neo4j) and FalkorDB's protocol, so that one statement runs on both with the same parameters.

use crate::store::StoreError;
use std::collections::BTreeMap;

/// A parameter or a column value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `null`.
    Null,
    /// A boolean.
    Bool(bool),
    /// A 64-bit integer.
    Int(i64),
    /// A double.
    Float(f64),
    /// A string.
    Text(String),
    /// A list.
    List(Vec<Value>),
    /// A map (parameters only: neither backend stores maps as properties).
    Map(BTreeMap<String, Value>),
}

impl From<bool> for Value {
    fn from(value: bool) -> Self {
        Value::Bool(value)
    }
}

impl From<i64> for Value {
    fn from(value: i64) -> Self {
        Value::Int(value)
    }
}

impl From<f64> for Value {
    fn from(value: f64) -> Self {
        Value::Float(value)
    }
}

impl From<&str> for Value {
    fn from(value: &str) -> Self {
        Value::Text(value.to_owned())
    }
}

impl From<String> for Value {
    fn from(value: String) -> Self {
        Value::Text(value)
    }
}

impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(value: Option<T>) -> Self {
        value.map_or(Value::Null, Into::into)
    }
}

impl<T: Into<Value>> From<Vec<T>> for Value {
    fn from(values: Vec<T>) -> Self {
        Value::List(values.into_iter().map(Into::into).collect())
    }
}

/// Builds a map value from `(key, value)` pairs.
pub fn map<const N: usize>(entries: [(&str, Value); N]) -> Value {
    Value::Map(entries.into_iter().map(|(key, value)| (key.to_owned(), value)).collect())
}

fn unexpected(what: &str, value: &Value) -> StoreError {
    StoreError::Internal(format!("the graph database returned {value:?} where {what} was expected"))
}

impl Value {
    /// An integer column.
    pub fn int(&self) -> Result<i64, StoreError> {
        match self {
            Value::Int(value) => Ok(*value),
            // FalkorDB and Neo4j may hand back a whole number stored as a float from arithmetic.
            Value::Float(value) if value.fract() == 0.0 => Ok(*value as i64),
            other => Err(unexpected("an integer", other)),
        }
    }

    /// An optional integer column.
    pub fn opt_int(&self) -> Result<Option<i64>, StoreError> {
        match self {
            Value::Null => Ok(None),
            other => other.int().map(Some),
        }
    }

    /// A number column.
    pub fn float(&self) -> Result<f64, StoreError> {
        match self {
            Value::Float(value) => Ok(*value),
            Value::Int(value) => Ok(*value as f64),
            other => Err(unexpected("a number", other)),
        }
    }

    /// An optional number column.
    pub fn opt_float(&self) -> Result<Option<f64>, StoreError> {
        match self {
            Value::Null => Ok(None),
            other => other.float().map(Some),
        }
    }

    /// A boolean column.
    pub fn bool(&self) -> Result<bool, StoreError> {
        match self {
            Value::Bool(value) => Ok(*value),
            other => Err(unexpected("a boolean", other)),
        }
    }

    /// A string column.
    pub fn text(&self) -> Result<&str, StoreError> {
        match self {
            Value::Text(value) => Ok(value),
            other => Err(unexpected("a string", other)),
        }
    }

    /// An optional string column.
    pub fn opt_text(&self) -> Result<Option<&str>, StoreError> {
        match self {
            Value::Null => Ok(None),
            other => other.text().map(Some),
        }
    }

    /// A list column.
    pub fn list(&self) -> Result<&[Value], StoreError> {
        match self {
            Value::List(values) => Ok(values),
            other => Err(unexpected("a list", other)),
        }
    }
}
