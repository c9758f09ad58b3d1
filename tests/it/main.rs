//! Integration tests, in one binary (each extra test binary costs a link on a small machine).
//!
//! Three tiers: `api` and `queries` run the schema in-process; `router` drives the axum router with `oneshot`;
//! `server` starts the real service on port 0 and talks to it over HTTP.

#![recursion_limit = "256"]

mod aggregates;
mod api;
mod churn;
mod conformance;
mod cypher;
mod durability;
mod exits;
mod export;
mod federation;
mod graphiql;
mod graphql_http;
mod graphql_ws_client;
mod hostile;
mod import;
mod influence;
mod jwt;
mod limits;
mod neo4j;
mod on_falkordb;
mod paging;
mod privacy;
mod programs;
mod queries;
mod relay;
mod router;
mod schema_sdl;
mod server;
mod startup;
mod store;
mod subscriptions;
mod support;
mod traces;
mod webhooks;
mod websocket;
