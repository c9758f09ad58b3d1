//! The Cypher backend: one [`GraphStore`](crate::store::GraphStore) written once in openCypher, over any
//! [`CypherConnection`]. Neo4j (through neo4rs, [`crate::store::neo4j`]) is the production target; FalkorDB
//! (through the `falkordb` crate, [`crate::store::falkor`]) runs the same statements with the same parameters on
//! machines where no Neo4j server can run, which is how CI executes every statement against a real Cypher engine.
//!
//! # The graph
//!
//! - `(:Stakeholder:<Kind> {id, key, kind, name, status, markets, market_names, power, interest, private,
//!   created_at, updated_at, archived_at, record})`: `record` is the stakeholder's whole JSON record, the other
//!   properties are what listings filter and sort on. Times are milliseconds since the epoch.
//! - `(:Stakeholder)-[:<TYPE> {id, level, bonds, trust, commitment, since, basis, created_at, updated_at,
//!   sum_weighted, sum_inbound, sum_outbound, sum_sentiment, last_at}]->(:Stakeholder)`: one relationship type per
//!   relationship type.
//! - `(:Interaction {id, relationship_id, at, channel, direction, sentiment, amount, product_line, note})`, linked
//!   to both ends by `[:BETWEEN]`.
//! - `(:ChangeEvent {seq, at, kind, stakeholders, relationship_id, payload})`: the change log.
//! - `(:StakegraphCounter {name: 'stakegraph', version, seq, stakeholder, relationship, interaction, migration})`:
//!   a version every write bumps, the last change-log sequence number, the last id of each record kind, and the
//!   source a `migrate` copy came from.
//!
//! # Writes
//!
//! A batch reads what its commands need, applies the batch rules ([`crate::store::batch`]) to those rows in
//! memory, then writes everything (records, change events, counter) in **one statement** guarded by the counter's
//! version: atomic on any Cypher engine, with or without explicit transactions. When another writer
//! (another replica) committed in between, the guard matches nothing, nothing is written, and the batch is read
//! and applied again.

mod rows;
pub mod statements;
mod store;
pub mod value;
mod write;

pub use store::{Counter, CypherStore};
pub use value::Value;

use crate::store::StoreResult;
use async_trait::async_trait;
use std::borrow::Cow;

/// One parameterised statement and the names of the columns it returns, in order.
#[derive(Debug, Clone)]
pub struct Statement {
    /// The Cypher text; values never appear in it, only `$parameters`.
    pub text: Cow<'static, str>,
    /// The parameters by name.
    pub params: Vec<(&'static str, Value)>,
    /// The aliases of the RETURN clause, in order (empty when it returns nothing).
    pub columns: &'static [&'static str],
}

impl Statement {
    /// A statement with no parameters yet.
    pub fn new(text: impl Into<Cow<'static, str>>, columns: &'static [&'static str]) -> Self {
        Self { text: text.into(), params: Vec::new(), columns }
    }

    /// Adds parameter `$name`.
    pub fn param(mut self, name: &'static str, value: impl Into<Value>) -> Self {
        self.params.push((name, value.into()));
        self
    }
}

/// The rows of a statement: one vector of values per row, in the order of [`Statement::columns`].
pub type Rows = Vec<Vec<Value>>;

/// Which engine a connection talks to: they differ only in schema DDL (constraints and indexes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// Neo4j 5.
    Neo4j,
    /// FalkorDB 4.
    FalkorDb,
}

/// A connection (pool) to a Cypher engine.
#[async_trait]
pub trait CypherConnection: Send + Sync + 'static {
    /// Runs one statement as its own transaction and returns all its rows. A statement that fails changes
    /// nothing.
    async fn run(&self, statement: &Statement) -> StoreResult<Rows>;

    /// The engine on the other end.
    fn dialect(&self) -> Dialect;

    /// Where it connects, for logs (never with a password).
    fn describe(&self) -> String;
}
