//! # Stakegraph
//!
//! A GraphQL gateway over a stakeholder relationship graph for relationship marketing.
//!
//! # Layout
//!
//! - [`domain`]: pure types and rules (kinds, markets, levels, validation, the write language, change events).
//! - [`store`]: the [`store::GraphStore`] trait and its backends: SQLite (embedded, the default) and Cypher
//!   (Neo4j through neo4rs; FalkorDB runs the same statements in tests).
//! - [`engine`]: the in-memory projection and graph algorithms (grows with the engine work).
//! - [`api`]: the async-graphql schema: thin views over domain records, DataLoaders, access control.
//! - [`http`]: the axum router, routes only; [`service`]: the [`service::Application`] that binds it, opens the store
//!   and starts the projection and the follower.
//! - [`telemetry`], [`traces`]: Prometheus metrics and OpenTelemetry traces.
//! - [`ws`]: GraphQL over WebSocket (`graphql-transport-ws` and the legacy `graphql-ws`), with its limits.
//! - [`config`]: one typed configuration.
//! - [`demo`]: the deterministic demo-graph generator.
//! - [`import`], [`export`]: stakeholders, relationships and interactions in and out as CSV or JSON Lines.
//! - [`migrate`]: copying a store into a Cypher store, resumably.
//! - [`priority`]: background threads (analyses) below the threads that answer requests, never starved.
// The `falkordb` client's futures are deeply nested types.
#![recursion_limit = "256"]

pub mod api;
pub mod config;
pub mod demo;
pub mod domain;
pub mod engine;
pub mod export;
pub mod graphiql;
pub mod graphql_http;
pub mod http;
pub mod identity;
pub mod import;
pub mod migrate;
pub mod priority;
pub mod service;
pub mod sse;
pub mod store;
pub mod telemetry;
pub mod traces;
pub mod webhooks;
pub mod ws;
