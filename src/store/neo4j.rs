//! A [`CypherConnection`] to Neo4j 5 through neo4rs (Bolt 4.4): the production home of the Cypher backend.
//!
//! Connecting sends nothing: the pool opens connections on first use, so the service starts while Neo4j is down
//! and recovers by itself when it returns. `bolt://`, `bolt+s://` and `bolt+ssc://` connect to one server;
//! `neo4j://` and `neo4j+s://` (Aura) are accepted too but, as neo4rs routes only behind an unstable feature,
//! they also connect to the one server named, without a routing table.

use super::cypher::{CypherConnection, Dialect, Rows, Statement, Value};
use super::{StoreError, StoreResult};
use async_trait::async_trait;
use neo4rs::{BoltBoolean, BoltFloat, BoltInteger, BoltList, BoltMap, BoltNull, BoltString, BoltType, Graph};
use std::time::Duration;

/// Where and how to connect.
#[derive(Clone)]
pub struct Neo4jSettings {
    /// `bolt://host:7687`, `neo4j+s://id.databases.neo4j.io`, …
    pub uri: String,
    /// The user.
    pub user: String,
    /// The password (never logged).
    pub password: String,
    /// The database (`neo4j` by default).
    pub database: String,
    /// Pooled connections.
    pub max_connections: usize,
    /// How long opening a connection may take.
    pub connect_timeout: Duration,
}

impl std::fmt::Debug for Neo4jSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Neo4jSettings")
            .field("uri", &self.uri)
            .field("user", &self.user)
            .field("database", &self.database)
            .field("max_connections", &self.max_connections)
            .field("connect_timeout", &self.connect_timeout)
            .finish_non_exhaustive()
    }
}

/// A pool of Bolt connections to one Neo4j database.
pub struct Neo4jConnection {
    graph: Graph,
    address: String,
}

impl Neo4jConnection {
    /// Builds the pool without connecting; fails only on settings neo4rs refuses (a malformed URI).
    pub fn connect(settings: &Neo4jSettings) -> StoreResult<Self> {
        let config = neo4rs::ConfigBuilder::default()
            .uri(settings.uri.as_str())
            .user(settings.user.as_str())
            .password(settings.password.as_str())
            .db(settings.database.as_str())
            .max_connections(settings.max_connections)
            .connection_timeout(settings.connect_timeout)
            .build()
            .map_err(|error| StoreError::Unavailable(format!("invalid Neo4j settings: {error}")))?;
        let graph = Graph::connect(config)
            .map_err(|error| StoreError::Unavailable(format!("cannot set up Neo4j at {}: {error}", settings.uri)))?;
        Ok(Self { graph, address: format!("Neo4j database '{}' at {}", settings.database, settings.uri) })
    }
}

/// The Bolt value of a parameter.
pub fn to_bolt(value: &Value) -> BoltType {
    match value {
        Value::Null => BoltType::Null(BoltNull),
        Value::Bool(value) => BoltType::Boolean(BoltBoolean::new(*value)),
        Value::Int(value) => BoltType::Integer(BoltInteger::new(*value)),
        Value::Float(value) => BoltType::Float(BoltFloat::new(*value)),
        Value::Text(value) => BoltType::String(BoltString::from(value.as_str())),
        Value::List(values) => {
            let mut list = BoltList::with_capacity(values.len());
            for value in values {
                list.push(to_bolt(value));
            }
            BoltType::List(list)
        }
        Value::Map(entries) => {
            let mut map = BoltMap::with_capacity(entries.len());
            for (key, value) in entries {
                map.put(BoltString::from(key.as_str()), to_bolt(value));
            }
            BoltType::Map(map)
        }
    }
}

/// A column value from Bolt.
pub fn from_bolt(value: BoltType) -> StoreResult<Value> {
    Ok(match value {
        BoltType::Null(_) => Value::Null,
        BoltType::Boolean(value) => Value::Bool(value.value),
        BoltType::Integer(value) => Value::Int(value.value),
        BoltType::Float(value) => Value::Float(value.value),
        BoltType::String(value) => Value::Text(value.value),
        BoltType::List(list) => Value::List(list.value.into_iter().map(from_bolt).collect::<StoreResult<_>>()?),
        BoltType::Map(map) => Value::Map(
            map.value.into_iter().map(|(key, value)| Ok((key.value, from_bolt(value)?))).collect::<StoreResult<_>>()?,
        ),
        other => {
            return Err(StoreError::Internal(format!("Neo4j returned {other:?}, which the backend never asks for")))
        }
    })
}

fn failure(error: neo4rs::Error) -> StoreError {
    use neo4rs::{Neo4jClientErrorKind, Neo4jErrorKind};
    let unavailable = match &error {
        neo4rs::Error::IOError { .. }
        | neo4rs::Error::ConnectionError
        | neo4rs::Error::ConnectionTimedOut
        | neo4rs::Error::IncompleteBoltExchange
        | neo4rs::Error::ServerUnavailableError(_)
        | neo4rs::Error::AuthenticationError(_) => true,
        // Transient errors (a leader election, exhausted resources) outlived neo4rs's retries; an expired session
        // or a server that cannot be discovered is the database being away, not a broken statement.
        neo4rs::Error::Neo4j(server) => matches!(
            server.kind(),
            Neo4jErrorKind::Transient
                | Neo4jErrorKind::Client(Neo4jClientErrorKind::SessionExpired | Neo4jClientErrorKind::FatalDiscovery)
        ),
        _ => false,
    };
    if unavailable {
        StoreError::Unavailable(format!("Neo4j: {error}"))
    } else {
        StoreError::Internal(format!("Neo4j: {error}"))
    }
}

#[async_trait]
impl CypherConnection for Neo4jConnection {
    async fn run(&self, statement: &Statement) -> StoreResult<Rows> {
        let mut query = neo4rs::query(statement.text.as_ref());
        for (name, value) in &statement.params {
            query = query.param(name, to_bolt(value));
        }
        let mut stream = self.graph.execute(query).await.map_err(failure)?;
        let mut rows = Vec::new();
        while let Some(row) = stream.next().await.map_err(failure)? {
            let values = statement
                .columns
                .iter()
                .map(|column| {
                    let value: BoltType = row.get(column).map_err(|error| {
                        StoreError::Internal(format!("Neo4j returned no usable column '{column}': {error}"))
                    })?;
                    from_bolt(value)
                })
                .collect::<StoreResult<Vec<_>>>()?;
            rows.push(values);
        }
        Ok(rows)
    }

    fn dialect(&self) -> Dialect {
        Dialect::Neo4j
    }

    fn describe(&self) -> String {
        self.address.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::cypher::value::map;

    #[test]
    fn parameters_survive_the_trip_through_bolt_values() {
        let value = map([
            ("none", Value::Null),
            ("yes", true.into()),
            ("n", 42i64.into()),
            ("x", 0.25f64.into()),
            ("text", "it's \"quoted\"".into()),
            ("list", vec![1i64, 2, 3].into()),
            ("nested", map([("ids", Value::List(vec![Value::Int(7)]))])),
        ]);
        assert_eq!(from_bolt(to_bolt(&value)).unwrap(), value);
    }
}
