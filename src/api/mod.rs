//! The GraphQL API: async-graphql types as thin views over domain records, DataLoaders, access control and limits.
//! Only this module knows GraphQL.

pub mod auth;
pub mod changes;
mod cost;
mod crossings;
pub mod enums;
pub mod error;
mod extension;
pub mod ids;
pub mod influence;
pub mod inputs;
pub mod loaders;
pub mod mutation;
pub mod paging;
pub mod query;
pub mod relationships;
pub mod stakeholders;
pub mod strength;
pub mod subscription;

use crate::engine::Engine;
use crate::store::GraphStore;
use async_graphql::Schema;
use std::sync::Arc;
use subscription::SubscriptionRoot;

pub use auth::Caller;
pub use error::{ApiError, ApiResult};
pub use mutation::Mutation;
pub use query::Query;

/// Every read: stakeholders and relationships, influence analyses, and the change log.
#[derive(async_graphql::MergedObject, Default)]
#[graphql(name = "Query")]
pub struct QueryRoot(Query, influence::InfluenceQuery, influence::RiskQuery, changes::ChangesQuery);

/// The Stakegraph schema, with the DataLoaders it feeds. Cheap to clone.
#[derive(Clone)]
pub struct StakegraphSchema {
    schema: Schema<QueryRoot, Mutation, SubscriptionRoot>,
    executions: Arc<loaders::Executions>,
    engine: Arc<Engine>,
}

impl StakegraphSchema {
    /// Executes one request; its loads are batched with those of every execution in flight.
    pub async fn execute(&self, request: impl Into<async_graphql::Request>) -> async_graphql::Response {
        self.executions.track(self.schema.execute(request)).await
    }

    /// The schema itself, for transports that drive it directly (the WebSocket subscriptions). Loads made under
    /// it are not tracked for DataLoader batching, which subscriptions do not use.
    pub fn inner(&self) -> &Schema<QueryRoot, Mutation, SubscriptionRoot> {
        &self.schema
    }

    /// The engine whose projection the analyses read.
    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }
}

/// Limits that keep one request from taking the service down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApiLimits {
    /// Largest `first` of any connection.
    pub max_page_size: usize,
    /// Deepest query nesting.
    pub max_depth: usize,
    /// Most fields in one query document.
    pub max_complexity: usize,
    /// Most nodes one query may return: each connection returns up to `first` nodes for each node around it.
    pub max_nodes: u64,
    /// Most interactions in one `recordInteractions` batch.
    pub max_batch: usize,
    /// Largest request body, in bytes.
    pub max_body_bytes: usize,
    /// Most steps of an influence path or reach (`maxHops`).
    pub max_hops: usize,
    /// Most results of one analysis (`first` of paths, reach and influencers).
    pub max_analysis_results: usize,
    /// Longest an analysis may compute, in milliseconds, before it stops with `LIMIT_EXCEEDED`.
    pub analysis_budget_ms: u64,
    /// Graphs with fewer stakeholders get exact betweenness (`brokers`); larger ones a sample of sources.
    pub betweenness_exact_below: usize,
    /// How many sources the betweenness sample holds.
    pub betweenness_samples: usize,
    /// How old, in seconds, the next event a live subscriber has not yet been sent may get (it is not reading
    /// fast enough) before its subscription ends with `LIMIT_EXCEEDED` and the cursor to resume from.
    pub max_subscriber_lag_seconds: u64,
}

impl Default for ApiLimits {
    fn default() -> Self {
        Self {
            max_page_size: 100,
            max_depth: 12,
            max_complexity: 2_000,
            max_nodes: 25_000,
            max_batch: 1_000,
            max_body_bytes: 1 << 20,
            max_hops: 8,
            max_analysis_results: 50,
            analysis_budget_ms: 5_000,
            betweenness_exact_below: 2_000,
            betweenness_samples: 32,
            max_subscriber_lag_seconds: 30,
        }
    }
}

/// What every resolver can reach.
pub struct ApiContext {
    /// The graph store.
    pub store: Arc<dyn GraphStore>,
    /// Request limits.
    pub limits: ApiLimits,
    /// Whether callers without a key may read (only `serve --demo` on a loopback address).
    pub anonymous_reads: bool,
    /// The relationship-strength model.
    pub strength: Arc<crate::domain::strength::StrengthModel>,
    /// The in-memory projection the analyses read; mutations bring it up to date before they return.
    pub engine: Arc<Engine>,
}

/// Builds the schema over `store` with the default strength model.
pub fn build_schema(store: Arc<dyn GraphStore>, limits: ApiLimits, anonymous_reads: bool) -> StakegraphSchema {
    build_schema_with(store, limits, anonymous_reads, Default::default())
}

/// Builds the schema over `store` with the strength model `strength`.
pub fn build_schema_with(
    store: Arc<dyn GraphStore>,
    limits: ApiLimits,
    anonymous_reads: bool,
    strength: crate::domain::strength::StrengthModel,
) -> StakegraphSchema {
    build_schema_on(Arc::new(Engine::new(store, Arc::new(strength))), limits, anonymous_reads)
}

/// Builds the schema over `engine`'s store and strength model (tests of decay give the engine their own clock).
pub fn build_schema_on(engine: Arc<Engine>, limits: ApiLimits, anonymous_reads: bool) -> StakegraphSchema {
    let executions = Arc::new(loaders::Executions::default());
    let (store, strength) = (engine.store().clone(), engine.model().clone());
    let schema = Schema::build(QueryRoot::default(), Mutation, SubscriptionRoot)
        .data(loaders::Loaders::new(store.clone(), executions.clone()))
        .data(ApiContext { store, limits, anonymous_reads, strength, engine: engine.clone() })
        .limit_depth(limits.max_depth)
        .limit_complexity(limits.max_complexity)
        .extension(extension::Policy { max_nodes: limits.max_nodes })
        .finish();
    StakegraphSchema { schema, executions, engine }
}

/// The schema in SDL, as committed in `schema/schema.graphql`.
pub fn sdl() -> String {
    Schema::build(QueryRoot::default(), Mutation, SubscriptionRoot).finish().sdl()
}
