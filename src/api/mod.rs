//! The GraphQL API: async-graphql types as thin views over domain records, DataLoaders, access control and limits.
//! Only this module knows GraphQL.

pub mod admission;
pub mod aggregates;
pub mod auth;
pub mod change_fields;
pub mod changes;
pub mod churn;
mod cost;
mod crossings;
pub mod enums;
pub mod error;
pub mod exits;
pub mod fanout;
pub mod federation;
pub mod ids;
pub mod influence;
pub mod inputs;
pub mod loaders;
pub mod markets;
pub mod mutation;
pub mod paging;
pub mod persisted;
mod policy;
pub mod programs;
pub mod query;
pub mod relationships;
pub mod spans;
pub mod stakeholders;
pub mod strength;
pub mod subscription;
pub mod webhooks;

use crate::engine::estimates::BrokerEstimates;
use crate::engine::Engine;
use crate::store::GraphStore;
use admission::Admission;
use async_graphql::{Data, Executor, Request, Response, Schema};
use futures_util::stream::{BoxStream, StreamExt};
use std::sync::Arc;
use std::time::{Duration, Instant};
use subscription::SubscriptionRoot;

pub use auth::{Caller, KeyId};
pub use cost::nesting;
pub use error::{ApiError, ApiResult};
pub use policy::add_code;
pub use query::Query;

/// Every read: stakeholders and relationships, influence analyses, and the change log.
#[derive(async_graphql::MergedObject, Default)]
#[graphql(name = "Query")]
pub struct QueryRoot(
    Query,
    aggregates::AggregateQuery,
    exits::ExitQuery,
    markets::MarketQuery,
    programs::ProgramQuery,
    churn::ChurnQuery,
    influence::InfluenceQuery,
    influence::RiskQuery,
    changes::ChangesQuery,
    webhooks::WebhookQuery,
    federation::EntityQuery,
);

/// The mutation root: the graph's writes and the webhooks'.
#[derive(async_graphql::MergedObject, Default)]
#[graphql(name = "Mutation")]
pub struct Mutation(mutation::GraphMutation, webhooks::WebhookMutation);

/// The Stakegraph schema behind its request policy. Cheap to clone; it is the [`Executor`] every transport runs.
#[derive(Clone)]
pub struct StakegraphSchema {
    schema: Schema<QueryRoot, Mutation, SubscriptionRoot>,
    engine: Arc<Engine>,
    admission: Arc<Admission>,
    limits: ApiLimits,
    /// The WebSocket `changes` subscriptions' classes and their hub.
    fanout: Arc<fanout::FanOut>,
    /// The registered webhooks and their deliveries.
    webhooks: Arc<crate::webhooks::Webhooks>,
    /// The documents requests may name by hash (automatic persisted queries, or trusted documents only).
    persisted: Arc<persisted::Persisted>,
    /// Who may introspect the schema.
    introspection: auth::Introspection,
}

/// When the request running now must be done (`limits.request_timeout_ms` after it started); analyses stop by it.
#[derive(Debug, Clone, Copy)]
pub struct Deadline(pub Instant);

impl StakegraphSchema {
    /// Executes one query or mutation: priced against the limits before anything of it runs, then run within
    /// `limits.request_timeout_ms` with DataLoaders of its own (its batches never wait for another request). A
    /// request still running at its deadline is dropped and answered with `LIMIT_EXCEEDED` (an analysis it started
    /// stops by the same deadline). Every error carries a code.
    pub async fn execute(&self, request: impl Into<Request>) -> Response {
        let started = Instant::now();
        let mut request = request.into();
        let caller = caller_in(&request.data);
        if let Err(refused) = self.prepare(&mut request, caller) {
            return self.hiding(caller, refusal(refused));
        }
        let response = self.run(request, None, started).await;
        self.hiding(caller, response)
    }

    /// Everything before a request runs, on every transport: its persisted document resolved, its price admitted,
    /// its introspection allowed for `caller`; then a document sent with its hash is kept.
    fn prepare(&self, request: &mut Request, caller: Caller) -> Result<(), async_graphql::ServerError> {
        self.resolve_persisted(request, caller)?;
        policy::admit(request, &self.limits)?;
        self.check_introspection(request, caller)?;
        self.persisted.keep_admitted(request);
        Ok(())
    }

    /// `response` without the field and type names async-graphql suggests in its errors ("Did you mean …?") when
    /// `caller` may not introspect: they would spell out the schema piece by piece.
    fn hiding(&self, caller: Caller, mut response: Response) -> Response {
        if !self.introspection.allows(caller) {
            response.errors.iter_mut().for_each(policy::without_suggestions);
        }
        response
    }

    /// Refuses an admitted request that introspects the schema when `caller` may not.
    fn check_introspection(&self, request: &mut Request, caller: Caller) -> Result<(), async_graphql::ServerError> {
        if self.introspection.allows(caller) || !policy::introspects(request) {
            return Ok(());
        }
        let who = match self.introspection {
            auth::Introspection::Admins => "admin keys",
            _ => "editor and admin keys",
        };
        Err(ApiError::Forbidden(format!(
            "introspection (`__schema`, `__type`) is for {who} only here (introspection = \"{}\"); build against \
             the published schema (`stakegraph schema`), or ask for such a key",
            self.introspection.as_str()
        ))
        .into_server_error())
    }

    /// Lets only the callers `introspection` names introspect the schema.
    pub fn with_introspection(mut self, introspection: auth::Introspection) -> Self {
        self.introspection = introspection;
        self
    }

    /// Gives `request` the text of the document it names by hash, or refuses it ([`persisted::Persisted::resolve`]).
    /// Transports that read the operation before executing call it first; executing calls it again, which changes
    /// nothing then.
    pub fn resolve_persisted(&self, request: &mut Request, caller: Caller) -> Result<(), async_graphql::ServerError> {
        let sees_private = caller.sees_private();
        self.persisted.resolve(request, sees_private)
    }

    /// Runs only the trusted documents of `persisted` (instead of persisting documents automatically).
    pub fn with_persisted(mut self, persisted: Arc<persisted::Persisted>) -> Self {
        self.persisted = persisted;
        self
    }

    /// Runs an admitted query or mutation, with `session`'s data when it came over a WebSocket.
    async fn run(&self, request: Request, session: Option<Arc<Data>>, started: Instant) -> Response {
        let timeout = Duration::from_millis(self.limits.request_timeout_ms);
        let deadline = started + timeout;
        let executions = Arc::new(loaders::Executions::default());
        let loaders = loaders::Loaders::new(self.engine.clone(), executions.clone());
        let request = request.data(Deadline(deadline)).data(loaders);
        let execution = async {
            match session {
                None => self.schema.execute(request).await,
                // A query or mutation over a WebSocket, with the connection's caller: one response.
                Some(session) => {
                    self.schema.execute_stream_with_session_data(request, session).next().await.unwrap_or_default()
                }
            }
        };
        let response = match tokio::time::timeout_at(deadline.into(), executions.track(execution)).await {
            Ok(response) => response,
            Err(_elapsed) => Response::from_errors(vec![policy::past_deadline(timeout)]),
        };
        coded(response)
    }

    /// Runs an operation sent over a WebSocket, with the session's data (the connection's caller): as
    /// [`Executor::execute_stream`] does, except that a `changes` or `relationshipChanged` subscription joins the
    /// class of subscriptions it shares its payloads with (see [`fanout`]), which are sent as rendered once.
    pub fn execute_websocket(&self, mut request: Request, session: Arc<Data>) -> BoxStream<'static, fanout::Outgoing> {
        let started = Instant::now();
        let caller = caller_in(&session);
        let outgoing = if let Err(refused) = self.prepare(&mut request, caller) {
            futures_util::stream::iter([fanout::Outgoing::Response(Box::new(refusal(refused)))]).boxed()
        } else if !policy::is_subscription(&mut request) {
            let schema = self.clone();
            futures_util::stream::once(async move {
                fanout::Outgoing::Response(Box::new(schema.run(request, Some(session), started).await))
            })
            .boxed()
        } else {
            let max_lag = subscription::max_lag(&self.limits);
            match fanout::execute(&self.fanout, &self.schema, request, session.clone(), max_lag) {
                Ok(shared) => shared,
                Err(request) => self
                    .schema
                    .execute_stream_with_session_data(*request, session)
                    .map(|response| fanout::Outgoing::Response(Box::new(response)))
                    .boxed(),
            }
        };
        if self.introspection.allows(caller) {
            return outgoing;
        }
        let schema = self.clone();
        outgoing
            .map(move |outgoing| match outgoing {
                fanout::Outgoing::Response(response) => {
                    fanout::Outgoing::Response(Box::new(schema.hiding(caller, *response)))
                }
                rendered => rendered,
            })
            .boxed()
    }

    /// The gate in front of requests and analyses (transports count each request against its key's rate).
    pub fn admission(&self) -> &Arc<Admission> {
        &self.admission
    }

    /// The engine whose projection the analyses read.
    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    /// The registered webhooks and their deliveries.
    pub fn webhooks(&self) -> &Arc<crate::webhooks::Webhooks> {
        &self.webhooks
    }
}

/// The caller whose data `data` holds (a request's, or a WebSocket session's); anonymous when none.
fn caller_in(data: &Data) -> Caller {
    data.get(&std::any::TypeId::of::<Caller>())
        .and_then(|data| data.downcast_ref())
        .copied()
        .unwrap_or(Caller::Anonymous)
}

/// The answer to a request the policy refused before any of it ran.
fn refusal(refused: async_graphql::ServerError) -> Response {
    coded(Response::from_errors(vec![refused]))
}

/// Gives every error of `response` a code.
fn coded(mut response: Response) -> Response {
    response.errors.iter_mut().for_each(add_code);
    response
}

impl Executor for StakegraphSchema {
    async fn execute(&self, request: Request) -> Response {
        StakegraphSchema::execute(self, request).await
    }

    /// Priced like any request (before it is parsed further than the policy's own scan allows); then a query or
    /// mutation runs as [`Self::execute`] does, with the session's data (the WebSocket connection's caller), and a
    /// subscription as async-graphql streams it (without a deadline, and with the shared loaders: its resolvers
    /// load one event at a time).
    fn execute_stream(&self, mut request: Request, session: Option<Arc<Data>>) -> BoxStream<'static, Response> {
        let started = Instant::now();
        let session = session.unwrap_or_default();
        let caller = caller_in(&session);
        if let Err(refused) = self.prepare(&mut request, caller) {
            return futures_util::stream::iter([self.hiding(caller, refusal(refused))]).boxed();
        }
        let schema = self.clone();
        if policy::is_subscription(&mut request) {
            let responses = self.schema.execute_stream_with_session_data(request, session);
            return responses.map(move |response| schema.hiding(caller, response)).boxed();
        }
        futures_util::stream::once(async move {
            let response = schema.run(request, Some(session), started).await;
            schema.hiding(caller, response)
        })
        .boxed()
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
    /// Most items in one `recordInteractions`, `upsertStakeholders` or `upsertRelationships` call.
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
    /// How many sources the betweenness sample holds: a `brokers` request computes this many itself when no
    /// background estimate has finished yet, and background estimates take sources in chunks of this many.
    pub betweenness_samples: usize,
    /// Most sources a background estimate of the default `brokers` ranking takes (it stops earlier once its top 10
    /// is settled, and is exact once every stakeholder was a source); 0: no background estimates, every request
    /// ranks from `betweenness_samples` sources.
    pub betweenness_max_sources: usize,
    /// Seed of the order in which betweenness sources are sampled (the same seed, the same ranking).
    pub betweenness_seed: u64,
    /// How old, in seconds, the next event a live subscriber has not yet been sent may get (it is not reading
    /// fast enough) before its subscription ends with `LIMIT_EXCEEDED` and the cursor to resume from.
    pub max_subscriber_lag_seconds: u64,
    /// Deepest nesting of a document: brackets in its text (values included), and selection sets with fragment
    /// spreads followed. Checked before the document is parsed.
    pub max_nesting: usize,
    /// Most a request may cost: field resolutions weighted by what each costs (`strength` 5, `fallsBelow` 50, an
    /// analysis 1,000), times the pages around them, fragments expanded and aliases counted.
    pub max_cost: u64,
    /// Most influence analyses one request may run.
    pub max_analyses: usize,
    /// Most forecasts one request may compute (`fallsBelow` and `churnRisk`: each scans up to ten years of daily
    /// scores, on a blocking thread), counted with the pages around them.
    pub max_forecasts: u64,
    /// Most customers one `Employee.portfolio` or `atRiskCustomers` computes the churn risk of (each a forecast and
    /// a history read); more is refused with `LIMIT_EXCEEDED`.
    pub max_churn_customers: usize,
    /// Longest a request may run, in milliseconds; past it the request ends with `LIMIT_EXCEEDED` (an analysis
    /// stops at this deadline or its own budget, whichever comes first).
    pub request_timeout_ms: u64,
    /// Analyses computing at once, in the whole process (default: the cores).
    pub max_concurrent_analyses: usize,
    /// Analyses compute below the threads that answer requests (`crate::priority`): at `SCHED_IDLE` on Linux, raised
    /// to an ordinary thread this much nicer than the process (1 to 19) when requests keep the core so busy that
    /// an analysis starves; 0 runs analyses at the requests' priority.
    pub analysis_nice: u8,
    /// Analyses waiting for a turn; past that an analysis is refused at once with `LIMIT_EXCEEDED` and
    /// `retryAfter` (HTTP 429).
    pub max_queued_analyses: usize,
    /// Requests per second one API key (or all anonymous callers together) may send, on average; a burst of twice
    /// as many is allowed.
    pub requests_per_second_per_key: u32,
    /// Analyses per minute one API key (or all anonymous callers together) may run, on average; a burst of
    /// `max_analyses` times two is allowed.
    pub analyses_per_minute_per_key: u32,
    /// Most HTTP connections open at once (WebSocket connections are counted by their own caps once upgraded);
    /// further clients wait in the listen backlog. Capped below the process's open-file limit.
    pub max_connections: usize,
    /// Longest a client may take to send a request's headers, and longest a kept-alive connection may sit idle
    /// between requests, in milliseconds; then the connection is closed.
    pub header_timeout_ms: u64,
    /// Longest a client may take to send a request's body, in milliseconds; then it gets HTTP 408. Also the longest
    /// the client may leave an answer (or a WebSocket frame) untaken; then the connection is closed.
    pub body_timeout_ms: u64,
    /// Most document text, in bytes, the cache of automatic persisted queries holds (least recently used out
    /// first); 0 turns automatic persisting off.
    pub persisted_query_cache_bytes: usize,
}

/// The cores this process may use (the default of concurrent analyses).
fn cores() -> usize {
    std::thread::available_parallelism().map_or(2, usize::from)
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
            max_churn_customers: 1_000,
            analysis_budget_ms: 5_000,
            betweenness_exact_below: 2_000,
            betweenness_samples: 32,
            betweenness_max_sources: 250_000,
            betweenness_seed: 42,
            max_subscriber_lag_seconds: 30,
            max_nesting: 64,
            max_cost: 100_000,
            max_analyses: 3,
            max_forecasts: 500,
            request_timeout_ms: 10_000,
            max_concurrent_analyses: cores(),
            analysis_nice: 10,
            max_queued_analyses: 2 * cores(),
            requests_per_second_per_key: 200,
            analyses_per_minute_per_key: 600,
            max_connections: 4_096,
            header_timeout_ms: 10_000,
            body_timeout_ms: 30_000,
            persisted_query_cache_bytes: 16 << 20,
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
    /// The churn-risk model.
    pub churn: Arc<crate::domain::churn::ChurnModel>,
    /// The in-memory projection the analyses read; mutations bring it up to date before they return.
    pub engine: Arc<Engine>,
    /// The gate analyses wait at for a turn.
    pub admission: Arc<Admission>,
    /// Background estimates of the default `brokers` ranking on large graphs.
    pub brokers: Arc<BrokerEstimates>,
    /// The registered webhooks and their deliveries.
    pub webhooks: Arc<crate::webhooks::Webhooks>,
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
    build_schema_of(store, limits, anonymous_reads, strength, Default::default())
}

/// Builds the schema over `store` with the strength model `strength` and the churn-risk model `churn`.
pub fn build_schema_of(
    store: Arc<dyn GraphStore>,
    limits: ApiLimits,
    anonymous_reads: bool,
    strength: crate::domain::strength::StrengthModel,
    churn: crate::domain::churn::ChurnModel,
) -> StakegraphSchema {
    build_schema_served(store, limits, anonymous_reads, strength, churn, Default::default())
}

/// The schema `serve` runs: [`build_schema_of`] with the webhooks' settings.
pub fn build_schema_served(
    store: Arc<dyn GraphStore>,
    limits: ApiLimits,
    anonymous_reads: bool,
    strength: crate::domain::strength::StrengthModel,
    churn: crate::domain::churn::ChurnModel,
    webhooks: crate::webhooks::WebhookSettings,
) -> StakegraphSchema {
    let engine = Arc::new(Engine::new(store, Arc::new(strength)));
    build_schema_on_with(engine, limits, anonymous_reads, churn, webhooks)
}

/// Builds the schema over `engine`'s store and strength model (tests of decay give the engine their own clock).
pub fn build_schema_on(engine: Arc<Engine>, limits: ApiLimits, anonymous_reads: bool) -> StakegraphSchema {
    build_schema_on_with(engine, limits, anonymous_reads, Default::default(), Default::default())
}

/// [`build_schema_on`] with the churn-risk model `churn`.
fn build_schema_on_with(
    engine: Arc<Engine>,
    limits: ApiLimits,
    anonymous_reads: bool,
    churn: crate::domain::churn::ChurnModel,
    webhooks: crate::webhooks::WebhookSettings,
) -> StakegraphSchema {
    let (store, strength) = (engine.store().clone(), engine.model().clone());
    let webhooks = crate::webhooks::Webhooks::new(engine.clone(), webhooks);
    let admission = Arc::new(Admission::new(&limits));
    let brokers = Arc::new(BrokerEstimates::new(influence::estimate_settings(&limits), admission.background()));
    let schema = Schema::build(QueryRoot::default(), Mutation::default(), SubscriptionRoot)
        // The loaders of subscriptions; every query and mutation brings its own.
        .data(loaders::Loaders::new(engine.clone(), Arc::new(loaders::Executions::default())))
        .data(ApiContext {
            store: store.clone(),
            limits,
            anonymous_reads,
            strength,
            churn: Arc::new(churn),
            engine: engine.clone(),
            admission: admission.clone(),
            brokers,
            webhooks: webhooks.clone(),
        })
        .limit_depth(limits.max_depth)
        .limit_complexity(limits.max_complexity)
        .limit_recursive_depth(limits.max_nesting);
    // Only with an exporter: any extension puts every field on async-graphql's slower resolve path.
    let schema =
        if crate::traces::exporting() { schema.extension(spans::OperationSpans).finish() } else { schema.finish() };
    let fanout = Arc::new(fanout::FanOut::new(engine.clone()));
    let persisted = Arc::new(persisted::Persisted::new(limits.persisted_query_cache_bytes));
    StakegraphSchema {
        schema,
        engine,
        admission,
        limits,
        fanout,
        webhooks,
        persisted,
        introspection: Default::default(),
    }
}

/// The schema in SDL, as committed in `schema/schema.graphql`.
pub fn sdl() -> String {
    Schema::build(QueryRoot::default(), Mutation::default(), SubscriptionRoot).finish().sdl()
}

/// The schema as an Apollo Federation v2 subgraph's SDL (what `_service { sdl }` answers): async-graphql's
/// federation export, with `@key(fields: "id")` on every entity of [`federation::ENTITIES`] (our `_entities`
/// resolves them; see `federation.rs` for why not async-graphql's).
pub fn federation_sdl() -> &'static str {
    static SDL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        let schema = Schema::build(QueryRoot::default(), Mutation::default(), SubscriptionRoot).finish();
        let mut sdl = schema.sdl_with_options(async_graphql::SDLExportOptions::new().federation());
        for entity in federation::ENTITIES {
            let keyword = if entity == "Stakeholder" { "interface" } else { "type" };
            let opening = [format!("\n{keyword} {entity} {{"), format!("\n{keyword} {entity} implements ")]
                .into_iter()
                .find_map(|opening| sdl.find(&opening).map(|at| at + opening.len()))
                .unwrap_or_else(|| panic!("the federation SDL defines {keyword} {entity}"));
            let brace = opening - 1 + sdl[opening - 1..].find('{').expect("a type's fields follow it");
            sdl.insert_str(brace, "@key(fields: \"id\") ");
        }
        sdl
    });
    &SDL
}
