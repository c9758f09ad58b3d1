//! A [`CypherConnection`] to FalkorDB through the `falkordb` crate: the Cypher engine that runs the Neo4j
//! adapter's statements where no Neo4j server can (CI), and a target for `migrate` when trying things out.
//! It is not a supported production backend.

use super::cypher::{CypherConnection, Dialect, Rows, Statement, Value};
use super::{StoreError, StoreResult};
use async_trait::async_trait;
use falkordb::{AsyncGraph, FalkorAsyncClient, FalkorClientBuilder, FalkorDBError, FalkorValue};
use futures_util::StreamExt;
use std::collections::HashMap;

/// A connection to one graph of a FalkorDB server.
pub struct FalkorConnection {
    /// Kept alive for the graph handle.
    _client: FalkorAsyncClient,
    graph: AsyncGraph,
    address: String,
}

impl FalkorConnection {
    /// Connects to `url` (`falkor://host:port` or `redis://host:port`) and selects graph `graph`.
    pub async fn connect(url: &str, graph: &str) -> StoreResult<Self> {
        let info = url.try_into().map_err(|error: FalkorDBError| {
            StoreError::Unavailable(format!("'{url}' is not a FalkorDB URL: {error}"))
        })?;
        let client = FalkorClientBuilder::new_async()
            .with_connection_info(info)
            .build()
            .await
            .map_err(|error| StoreError::Unavailable(format!("cannot connect to FalkorDB at {url}: {error}")))?;
        let graph_handle = client.select_graph(graph);
        Ok(Self { _client: client, graph: graph_handle, address: format!("FalkorDB graph '{graph}' at {url}") })
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
        let mut graph = self.graph.clone();
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
