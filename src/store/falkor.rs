//! A [`CypherConnection`] to FalkorDB through the `falkordb` crate: the Cypher engine that runs the Neo4j
//! adapter's statements where no Neo4j server can (CI), and a target for `migrate` when trying things out.
//! It is not a supported production backend.

use super::cypher::{CypherConnection, Dialect, Rows, Statement, Value};
use super::{StoreError, StoreResult};
use async_trait::async_trait;
use falkordb::{AsyncGraph, FalkorAsyncClient, FalkorClientBuilder, FalkorDBError, FalkorValue};
use futures_util::StreamExt;
use std::collections::HashMap;

/// Where a FalkorDB graph is: the server's URL and the graph's name.
#[derive(Clone, PartialEq, Eq)]
pub struct FalkorSettings {
    /// `falkor://host:6379` or `redis://host:6379` (may carry a user and password: never logged).
    pub url: String,
    /// The graph (a FalkorDB server holds many, by name).
    pub graph: String,
}

impl FalkorSettings {
    /// The URL without its user and password, for messages and logs.
    pub fn shown(&self) -> String {
        match self.url.split_once("://") {
            Some((scheme, rest)) => match rest.rsplit_once('@') {
                Some((_, host)) => format!("{scheme}://{host}"),
                None => self.url.clone(),
            },
            None => self.url.clone(),
        }
    }
}

impl std::fmt::Debug for FalkorSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FalkorSettings").field("url", &self.shown()).field("graph", &self.graph).finish()
    }
}

/// A connection to one graph of a FalkorDB server, opened on first use (and again on the next use when that
/// failed), so that a service starts, and reports itself not ready, while the server is down.
pub struct FalkorConnection {
    settings: FalkorSettings,
    /// The client (kept alive for the graph handle) and the graph handle, once connected.
    connected: tokio::sync::OnceCell<(FalkorAsyncClient, AsyncGraph)>,
    address: String,
}

impl FalkorConnection {
    /// A connection to `settings` that connects on first use; fails only on a URL FalkorDB's client refuses.
    pub fn lazy(settings: &FalkorSettings) -> StoreResult<Self> {
        Self::connection_info(settings)?;
        Ok(Self {
            settings: settings.clone(),
            connected: tokio::sync::OnceCell::new(),
            address: format!("FalkorDB graph '{}' at {}", settings.graph, settings.shown()),
        })
    }

    /// Connects to `url` (`falkor://host:port` or `redis://host:port`) now and selects graph `graph`.
    pub async fn connect(url: &str, graph: &str) -> StoreResult<Self> {
        let connection = Self::lazy(&FalkorSettings { url: url.to_owned(), graph: graph.to_owned() })?;
        connection.graph().await?;
        Ok(connection)
    }

    fn connection_info(settings: &FalkorSettings) -> StoreResult<falkordb::FalkorConnectionInfo> {
        settings.url.as_str().try_into().map_err(|error: FalkorDBError| {
            StoreError::Unavailable(format!("'{}' is not a FalkorDB URL: {error}", settings.shown()))
        })
    }

    /// The graph handle, connecting first when not yet connected.
    async fn graph(&self) -> StoreResult<AsyncGraph> {
        let (_, graph) = self
            .connected
            .get_or_try_init(|| async {
                let client = FalkorClientBuilder::new_async()
                    .with_connection_info(Self::connection_info(&self.settings)?)
                    .build()
                    .await
                    .map_err(|error| StoreError::Unavailable(format!("cannot connect to {}: {error}", self.address)))?;
                let graph = client.select_graph(&self.settings.graph);
                Ok::<_, StoreError>((client, graph))
            })
            .await?;
        Ok(graph.clone())
    }
}

fn to_falkor(value: &Value) -> FalkorValue {
    match value {
        Value::Null => FalkorValue::None,
        Value::Bool(value) => FalkorValue::Bool(*value),
        Value::Int(value) => FalkorValue::I64(*value),
        Value::Float(value) => FalkorValue::F64(*value),
        Value::Text(value) => FalkorValue::String(value.clone()),
        Value::List(values) => FalkorValue::Array(values.iter().map(to_falkor).collect()),
        Value::Map(entries) => {
            FalkorValue::Map(entries.iter().map(|(key, value)| (key.clone(), to_falkor(value))).collect())
        }
    }
}

fn from_falkor(value: FalkorValue) -> StoreResult<Value> {
    Ok(match value {
        FalkorValue::None => Value::Null,
        FalkorValue::Bool(value) => Value::Bool(value),
        FalkorValue::I64(value) => Value::Int(value),
        FalkorValue::F64(value) => Value::Float(value),
        FalkorValue::String(value) => Value::Text(value),
        FalkorValue::Array(values) => Value::List(values.into_iter().map(from_falkor).collect::<StoreResult<_>>()?),
        FalkorValue::Map(entries) => Value::Map(
            entries.into_iter().map(|(key, value)| Ok((key, from_falkor(value)?))).collect::<StoreResult<_>>()?,
        ),
        other => {
            return Err(StoreError::Internal(format!("FalkorDB returned {other:?}, which the backend never asks for")))
        }
    })
}

fn failure(error: FalkorDBError) -> StoreError {
    match error {
        FalkorDBError::ConnectionDown
        | FalkorDBError::NoConnection
        | FalkorDBError::EmptyConnection
        | FalkorDBError::Timeout { .. } => StoreError::Unavailable(format!("FalkorDB: {error}")),
        other => StoreError::Internal(format!("FalkorDB: {other}")),
    }
}

#[async_trait]
impl CypherConnection for FalkorConnection {
    async fn run(&self, statement: &Statement) -> StoreResult<Rows> {
        let params: HashMap<&str, FalkorValue> =
            statement.params.iter().map(|(name, value)| (*name, to_falkor(value))).collect();
        let mut graph = self.graph().await?;
        let mut query = graph.query(statement.text.as_ref());
        for (name, value) in params {
            query = query.with_param(name, value);
        }
        let result = query.execute().await.map_err(failure)?;
        if result.header.iter().map(String::as_str).ne(statement.columns.iter().copied()) {
            return Err(StoreError::Internal(format!(
                "a statement returned the columns {:?} but declares {:?}; Neo4j reads columns by these names",
                result.header, statement.columns
            )));
        }
        let mut rows = Vec::new();
        let mut data = result.data;
        while let Some(row) = data.next().await {
            let row = row.map_err(failure)?;
            rows.push(row.into_values().into_iter().map(from_falkor).collect::<StoreResult<Vec<_>>>()?);
        }
        Ok(rows)
    }

    fn dialect(&self) -> Dialect {
        Dialect::FalkorDb
    }

    fn describe(&self) -> String {
        self.address.clone()
    }
}
