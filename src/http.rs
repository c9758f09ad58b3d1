//! The HTTP layer: the axum router (`/graphql`, GraphiQL, `/healthz`, `/readyz`) and the [`Application`] that binds
//! it and serves from the moment the port is bound, while the store is opened, the demo graph seeded and the
//! projection built in the background. Only this module knows HTTP.

use crate::api::admission::REFUSAL_PAUSE;
use crate::api::auth::{BAD_KEY, NO_KEY};
use crate::api::{self, Caller, KeyId, StakegraphSchema};
use crate::config::Config;
use crate::config::StoreKind;
use crate::demo::{self, DemoOptions};
use crate::engine::EngineError;
use crate::graphql_http::{Media, Page};
use crate::identity::Identity;
use crate::store::falkor::FalkorConnection;
use crate::store::neo4j::Neo4jConnection;
use crate::store::{CypherStore, GraphStore, Metered, SqliteStore, StoreError};
use crate::telemetry::Telemetry;
use crate::{sse, ws};
use async_graphql::parser::types::OperationType;
use axum::extract::rejection::QueryRejection;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tower_http::cors::{AllowOrigin, CorsLayer};

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// The store could not be opened.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The database file is not one Stakegraph may use.
    #[error(transparent)]
    Database(#[from] crate::store::sqlite::OpenError),
    /// The demo graph could not be written.
    #[error("cannot seed the demo graph: {0}")]
    Demo(#[from] demo::DemoError),
    /// The engine's projection could not be built.
    #[error("cannot build the in-memory projection: {0}")]
    Engine(#[from] crate::engine::EngineError),
    /// The address could not be bound.
    #[error("cannot listen on {address}: {source}; pick another address with --listen")]
    Bind {
        /// The address.
        address: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// Serving connections failed.
    #[error("cannot serve: {0}")]
    Serve(#[from] std::io::Error),
}

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    /// The GraphQL schema.
    pub schema: StakegraphSchema,
    /// The store (metered), for readiness and metrics.
    pub store: Arc<Metered>,
    /// Request counters for `/metrics`.
    pub telemetry: Arc<Telemetry>,
    /// Configured API keys.
    pub identity: Identity,
    /// Whether callers without a key may read.
    pub anonymous_reads: bool,
    /// Who may read `/metrics`.
    pub metrics_access: crate::api::auth::Introspection,
    /// Largest request body, in bytes.
    pub max_body_bytes: usize,
    /// Longest a client may take to send a request body.
    pub body_timeout: Duration,
    /// Deepest bracket nesting a document may have (checked before anything parses it).
    pub max_nesting: usize,
    /// The WebSocket transport's limits and the operations each key runs.
    pub ws: ws::WsHub,
    /// The runtime serving WebSocket subscribers, started by the first one.
    subscribers: Arc<std::sync::OnceLock<Option<SubscriberRuntime>>>,
    /// True while `serve --demo` writes the demo graph into an empty store: GraphQL then answers 503.
    seeding: Arc<AtomicBool>,
    /// Documents parsed lately, by their text.
    documents: Arc<Documents>,
}

/// The documents parsed lately, by their text, so that a dashboard that sends the same query again and again has it
/// parsed once (parsing was about 8 % of the CPU time of the dashboard page). Bounded: at most [`Documents::SLOTS`]
/// documents of at most [`Documents::LONGEST`] bytes each; a new one pushes out the one used least recently.
struct Documents(std::sync::Mutex<lru::LruCache<String, async_graphql::parser::types::ExecutableDocument>>);

impl Default for Documents {
    fn default() -> Self {
        Self(std::sync::Mutex::new(lru::LruCache::new(std::num::NonZeroUsize::new(Self::SLOTS).expect("not zero"))))
    }
}

impl Documents {
    /// Most documents kept.
    const SLOTS: usize = 256;
    /// Longest document text kept, in bytes (the queries in `queries/` are under 2 KiB).
    const LONGEST: usize = 16 * 1024;

    /// Puts the parsed document of `request`'s query into it: a copy of the one kept for the same text, else the
    /// one parsed now (kept for next time when it parses and is short enough).
    fn parse(&self, request: &mut async_graphql::Request) {
        let cacheable = request.query.len() <= Self::LONGEST;
        let lock = || self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if cacheable {
            if let Some(document) = lock().get(&request.query).cloned() {
                request.set_parsed_query(document);
                return;
            }
        }
        if let (Ok(document), true) = (request.parsed_query(), cacheable) {
            let document = document.clone();
            lock().put(request.query.clone(), document);
        }
    }
}

/// A runtime of its own for WebSocket subscribers (a bulkhead): when a change wakes ten thousand of them, they
/// queue on these workers, and the requests on the main runtime (a mutation among them) never wait behind them for
/// a turn; the operating system shares the cores between the two. Stops when the last handle is dropped.
#[derive(Clone)]
struct SubscriberRuntime {
    handle: tokio::runtime::Handle,
    _stop: Arc<tokio::sync::oneshot::Sender<()>>,
}

impl SubscriberRuntime {
    /// Starts the runtime on a thread of its own, which owns it (a runtime may not be dropped on an async worker).
    /// With `websocket.subscriber_nice` above 0 its threads run below the requests' (see `crate::priority`).
    fn start(nice: u8) -> std::io::Result<Self> {
        let workers = std::thread::available_parallelism().map_or(2, usize::from);
        let (started, handle) = std::sync::mpsc::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let background = Arc::new(crate::priority::Background::new(nice));
        std::thread::Builder::new().name("stakegraph-subscribers".into()).spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(workers)
                .thread_name("stakegraph-subscribers")
                .on_thread_start(move || background.lower_current_thread())
                .enable_all()
                .build();
            let runtime = match runtime {
                Ok(runtime) => runtime,
                Err(error) => {
                    _ = started.send(Err(error));
                    return;
                }
            };
            _ = started.send(Ok(runtime.handle().clone()));
            runtime.block_on(async {
                let _ = stopped.await;
            });
            runtime.shutdown_background();
        })?;
        let handle = handle.recv().map_err(std::io::Error::other)??;
        Ok(Self { handle, _stop: Arc::new(stop) })
    }
}

/// The router with every route; pages from the `cors_origins` may call it from a browser.
pub fn router(state: AppState, cors_origins: &[String]) -> Router {
    let router = Router::new()
        .route("/", get(graphiql))
        .route("/graphiql/{*file}", get(graphiql_asset))
        .route("/graphql", get(graphql_get).post(graphql_post))
        .route("/graphql/ws", get(graphql_ws))
        .route("/graphql/stream", axum::routing::post(graphql_stream))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state);
    if cors_origins.is_empty() {
        return router;
    }
    let origins = cors_origins.iter().filter_map(|origin| origin.parse().ok());
    let cors = CorsLayer::new()
        .allow_origin(AllowOrigin::list(origins))
        .allow_methods([Method::GET, Method::POST])
        .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE])
        .max_age(Duration::from_secs(3600));
    router.layer(cors)
}

/// The state for `store` under `config`: the schema with its limits and access rules.
pub fn app_state(store: Arc<dyn GraphStore>, config: &Config) -> AppState {
    let store = Arc::new(Metered::new(store));
    let mut schema = api::build_schema_served(
        store.clone(),
        config.limits,
        config.anonymous_reads(),
        config.strength.clone(),
        config.churn.clone(),
        config.webhooks.clone(),
    );
    if let Some(trusted) = &config.trusted_documents {
        schema = schema.with_persisted(trusted.clone());
    }
    let schema = schema.with_introspection(config.introspection);
    let ws = ws::WsHub::new(config.websocket).with_admission(schema.admission().clone());
    let mut telemetry = Telemetry::default();
    store.register(telemetry.registry());
    schema.admission().register(telemetry.registry());
    AppState {
        schema,
        store,
        telemetry: Arc::new(telemetry),
        identity: Identity { keys: config.api_keys.clone(), tokens: config.jwt.clone() },
        anonymous_reads: config.anonymous_reads(),
        metrics_access: config.metrics,
        max_body_bytes: config.limits.max_body_bytes,
        body_timeout: Duration::from_millis(config.limits.body_timeout_ms),
        max_nesting: config.limits.max_nesting,
        ws,
        subscribers: Arc::default(),
        seeding: Arc::default(),
        documents: Arc::default(),
    }
}

/// How often the engine polls the change log for writes made by other processes (one indexed read).
const FOLLOW_EVERY: Duration = Duration::from_millis(250);

/// A bound, ready-to-run service.
pub struct Application {
    listener: TcpListener,
    connections: Connections,
    /// The router each connection is served by: the service's own once it exists, a start-up one until then.
    routes: Routes,
    /// What remains to do once serving has started.
    startup: Startup,
    /// The store, once open: checkpointed when the service stops.
    store: Arc<OnceLock<Arc<dyn GraphStore>>>,
}

/// How the service treats HTTP connections.
#[derive(Debug, Clone, Copy)]
struct Connections {
    /// Most open at once.
    max: usize,
    /// Longest a client may take to send a request's headers, or sit idle between requests.
    header_timeout: Duration,
    /// Longest a write to the client may wait for the client to take what was sent before.
    write_timeout: Duration,
}

impl Connections {
    fn of(limits: &api::ApiLimits) -> Self {
        Self {
            max: limits.max_connections,
            header_timeout: Duration::from_millis(limits.header_timeout_ms),
            write_timeout: Duration::from_millis(limits.body_timeout_ms),
        }
    }
}

/// The service's state over its store, as start-up prepares it.
struct Prepared {
    state: AppState,
    /// The demo graph to write first (`serve --demo` on an empty store), if any.
    demo: Option<DemoOptions>,
}

impl Prepared {
    /// The state over `store` under `config`; whether the demo graph is to be seeded (asked for, and the store is
    /// empty) is decided here, so a store that cannot say stops start-up.
    async fn over(store: Arc<dyn GraphStore>, config: &Config) -> Result<Self, StartupError> {
        let demo = if config.demo && store.counts().await?.stakeholders == 0 {
            Some(DemoOptions::new(config.demo_size, chrono::Utc::now()))
        } else {
            None
        };
        let state = app_state(store, config);
        state.seeding.store(demo.is_some(), Ordering::Release);
        Ok(Self { state, demo })
    }
}

/// The start-up work that runs in the background while the service answers: opening the store (unless the caller
/// did), seeding the demo graph (when asked, into an empty store), building the projection, then following the
/// change log. Until it is done, `/healthz` answers 200 and `/readyz` 503.
struct Startup {
    config: Config,
    /// The state over the store the caller opened; `None` opens the configured one.
    prepared: Option<Prepared>,
}

impl Startup {
    /// Opens the store and routes GraphQL to it (unless the caller's store is routed already), then seeds, builds
    /// the projection, and starts the follower. A store that is down does not stop the service (the follower builds
    /// the projection once it answers); a store that cannot be opened, a demo graph that cannot be written, or a
    /// graph that cannot be projected does.
    async fn run(
        self,
        address: SocketAddr,
        routes: Routes,
        opened: Arc<OnceLock<Arc<dyn GraphStore>>>,
    ) -> Result<(), StartupError> {
        let Prepared { state, demo } = match self.prepared {
            Some(prepared) => prepared,
            None => {
                let prepared = Prepared::over(open_store(&self.config).await?, &self.config).await?;
                routes.install(router(prepared.state.clone(), &self.config.cors_origins));
                let _ = opened.set(prepared.state.store.clone());
                prepared
            }
        };
        // Tests and benchmarks wait for this line (its `address=`): GraphQL is served from here on.
        tracing::info!(%address, "serving GraphQL at /graphql");
        let (store, engine) = (state.store.clone(), state.schema.engine().clone());
        if let Some(options) = demo {
            tracing::info!(size = options.size, "seeding the demo graph into the empty store");
            let summary = demo::generate(store.as_ref(), &options, &|_| {}).await?;
            store.checkpoint().await?;
            state.seeding.store(false, Ordering::Release);
            tracing::info!(?summary, "demo graph ready");
        }
        let started = Instant::now();
        match engine.load().await {
            Ok(snapshot) => tracing::info!(
                stakeholders = snapshot.node_count(),
                relationships = snapshot.edge_count(),
                bytes = snapshot.heap_bytes(),
                elapsed = ?started.elapsed(),
                "projection built"
            ),
            // A database that is down or failing does not stop the service: it answers with readiness false and
            // clear errors, and the follower builds the projection once the database answers.
            Err(EngineError::Store(reason)) => {
                tracing::warn!(%reason, "the store is unavailable; serving, not ready, retrying in the background")
            }
            Err(error) => return Err(error.into()),
        }
        engine.spawn_follower(FOLLOW_EVERY);
        // Webhook deliveries resume from their cursors (retrying while the store is down).
        let webhooks = state.schema.webhooks().clone();
        tokio::spawn(async move { webhooks.start().await });
        Ok(())
    }
}

/// Opens the configured store, off the async workers: opening may take long (a migration, the planner's statistics
/// on a first open, decayed sums recomputed for another strength model), and `/healthz` answers meanwhile.
pub async fn open_store(config: &Config) -> Result<Arc<dyn GraphStore>, StartupError> {
    match config.store {
        StoreKind::Sqlite => {
            let (path, model) = (config.db_path.clone(), config.strength.clone());
            let opened = tokio::task::spawn_blocking(move || SqliteStore::open_with(&path, model))
                .await
                .unwrap_or_else(|failed| std::panic::resume_unwind(failed.into_panic()));
            Ok(Arc::new(opened?))
        }
        StoreKind::Neo4j => {
            let settings = config.neo4j.as_ref().ok_or_else(|| {
                StoreError::Unavailable("the Neo4j store is chosen but no Neo4j settings were given".into())
            })?;
            let connection = Neo4jConnection::connect(settings)?;
            Ok(Arc::new(CypherStore::new(Arc::new(connection), config.strength.clone(), config.neo4j_timeout)))
        }
        StoreKind::Falkordb => {
            let settings = config.falkordb.as_ref().ok_or_else(|| {
                StoreError::Unavailable("the FalkorDB store is chosen but no FalkorDB settings were given".into())
            })?;
            let connection = FalkorConnection::lazy(settings)?;
            Ok(Arc::new(CypherStore::new(Arc::new(connection), config.strength.clone(), config.neo4j_timeout)))
        }
    }
}

impl Application {
    /// Binds the listener (port 0 picks a free port); the store is opened once serving has started, in the
    /// background of [`Application::run_until_stopped`], so `/healthz` answers while it opens (and while the demo
    /// graph is seeded and the projection built after it); an error opening it is returned from there. Binding first
    /// means a busy address fails before any database file is created.
    pub async fn build(config: &Config) -> Result<Self, StartupError> {
        let listener = bind(config.listen).await?;
        Ok(Self::serving(listener, config, None, Routes::new()))
    }

    /// As [`Application::build`], over a store the caller opened: GraphQL is routed to it from the start (the demo
    /// graph and the projection still come in the background).
    pub async fn build_with_store(store: Arc<dyn GraphStore>, config: &Config) -> Result<Self, StartupError> {
        let listener = bind(config.listen).await?;
        let prepared = Prepared::over(store, config).await?;
        let routes = Routes::new();
        routes.install(router(prepared.state.clone(), &config.cors_origins));
        Ok(Self::serving(listener, config, Some(prepared), routes))
    }

    fn serving(listener: TcpListener, config: &Config, prepared: Option<Prepared>, routes: Routes) -> Self {
        if config.api_keys.is_empty() && config.jwt.is_none() && !config.anonymous_reads() {
            tracing::warn!("no API keys are configured: every request will be refused; set STAKEGRAPH_API_KEYS");
        }
        if let Some(tokens) = config.jwt.clone() {
            tokio::spawn(async move { tokens.prefetch().await });
        }
        let store: Arc<OnceLock<Arc<dyn GraphStore>>> = Arc::default();
        if let Some(prepared) = &prepared {
            let _ = store.set(prepared.state.store.clone());
        }
        Self {
            listener,
            connections: Connections::of(&config.limits),
            routes,
            startup: Startup { config: config.clone(), prepared },
            store,
        }
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("a bound listener has an address")
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.local_addr().port()
    }

    /// Accepts connections at once (`/healthz` answers from the start), and in the background opens the store,
    /// seeds the demo graph (when asked), builds the projection and starts following the change log (`/readyz`
    /// answers 200 once that is done). Serves until SIGTERM or Ctrl-C, or until that start-up work fails (its error
    /// is returned), then finishes the requests in flight and checkpoints the store (the SQLite file alone then
    /// holds every write).
    pub async fn run_until_stopped(self) -> Result<(), StartupError> {
        let address = self.local_addr();
        tracing::info!(listening = %address, "accepting connections; /healthz answers");
        let startup = tokio::spawn(self.startup.run(address, self.routes.clone(), self.store.clone()));
        let (failed, failure) = tokio::sync::oneshot::channel();
        let stop = async move {
            tokio::select! {
                () = shutdown_signal() => {}
                error = startup_failure(startup) => {
                    tracing::error!("start-up failed: finishing requests in flight, then stopping");
                    let _ = failed.send(error);
                }
            }
        };
        serve(self.listener, self.routes, self.connections, stop).await?;
        if let Some(store) = self.store.get() {
            match store.checkpoint().await {
                Ok(()) => tracing::info!("stopped; the store is checkpointed"),
                Err(error) => tracing::warn!(%error, "stopped; the store could not be checkpointed"),
            }
        }
        match failure.await {
            Ok(error) => Err(error),
            Err(_stopped_by_a_signal) => Ok(()),
        }
    }
}

/// The error of the start-up work, when it fails; pending forever when it succeeds. A panic in it goes on here.
async fn startup_failure(startup: tokio::task::JoinHandle<Result<(), StartupError>>) -> StartupError {
    match startup.await {
        Ok(Err(error)) => error,
        Err(join) if join.is_panic() => std::panic::resume_unwind(join.into_panic()),
        Ok(Ok(())) | Err(_) => std::future::pending().await,
    }
}

/// The router each connection is served by. Until start-up has built the service's router (while the store is
/// opened), a new connection gets [`while_starting`], which answers `/healthz` and refuses the rest with 503, and
/// hands each request to the service's router once it exists, so a keep-alive connection opened early is not stuck
/// with the refusals.
#[derive(Clone)]
struct Routes {
    service: Arc<OnceLock<Router>>,
    starting: Router,
}

impl Routes {
    fn new() -> Self {
        let service: Arc<OnceLock<Router>> = Arc::default();
        let starting = Router::new().fallback({
            let service = service.clone();
            move |request: axum::extract::Request| while_starting(service.clone(), request)
        });
        Self { service, starting }
    }

    /// Routes every request to `router` from now on.
    fn install(&self, router: Router) {
        let _ = self.service.set(router);
    }

    /// The router for a connection accepted now.
    fn for_connection(&self) -> Router {
        self.service.get().unwrap_or(&self.starting).clone()
    }
}

/// How long a client refused while the service opens its store should wait before it asks again, in seconds.
const STARTING_RETRY_AFTER: u64 = 1;

/// Answers a request made while the store is being opened: `/healthz` 200 (the process is up), `/readyz` 503, and
/// anything else 503 with `Retry-After` and a coded error; once the service's router exists, it answers.
async fn while_starting(service: Arc<OnceLock<Router>>, request: axum::extract::Request) -> Response {
    use tower::ServiceExt;
    if let Some(router) = service.get() {
        return router.clone().oneshot(request).await.unwrap_or_else(|never| match never {});
    }
    match request.uri().path() {
        "/healthz" => "ok".into_response(),
        "/readyz" => (StatusCode::SERVICE_UNAVAILABLE, "the store is being opened").into_response(),
        _ => {
            unavailable("the service is starting (its store is being opened); retry in a moment", STARTING_RETRY_AFTER)
        }
    }
}

/// Longest a clean shutdown waits for the connections still open to finish their requests.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// Serves HTTP/1.1 connections from `listener` until `shutdown` resolves, then lets the requests in flight finish
/// (at most [`SHUTDOWN_GRACE`]). Unlike `axum::serve`, every connection has a deadline for its headers and for
/// idling between requests (a client that never finishes its headers holds nothing for long), and at most
/// `connections.max` are open at once, below the open-file limit, so a flood of idle connections cannot leave the
/// service unable to accept a health check.
async fn serve(
    listener: TcpListener,
    routes: Routes,
    connections: Connections,
    shutdown: impl std::future::Future<Output = ()>,
) -> std::io::Result<()> {
    use hyper_util::rt::{TokioIo, TokioTimer};
    use hyper_util::service::TowerToHyperService;
    use tower::ServiceExt;
    let max = connections.max.min(raise_open_file_limit().saturating_sub(RESERVED_FILES)).max(1);
    if max < connections.max {
        tracing::warn!(max, configured = connections.max, "connections capped below the open-file limit");
    }
    let open = Arc::new(tokio::sync::Semaphore::new(max));
    let (stop, stopped) = tokio::sync::watch::channel(false);
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            permit = open.clone().acquire_owned() => permit.expect("the semaphore is never closed"),
            () = &mut shutdown => break,
        };
        let (stream, _peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors or a connection reset before it was accepted: wait a moment, go on.
                    tracing::warn!(%error, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        // A client that stops taking its answers (or a WebSocket's frames) for `body_timeout_ms` is dropped, so it
        // holds neither its connection place nor the answers piling up for it.
        let mut stream = tokio_io_timeout::TimeoutStream::new(stream);
        stream.set_write_timeout(Some(connections.write_timeout));
        let stream = Box::pin(stream);
        let place = ConnectionPlace(Arc::new(permit));
        let service = TowerToHyperService::new(routes.for_connection().map_request({
            let (place, stopping) = (place.clone(), Stopping(stopped.clone()));
            move |mut request: axum::extract::Request<hyper::body::Incoming>| {
                request.extensions_mut().insert(place.clone());
                request.extensions_mut().insert(stopping.clone());
                request
            }
        }));
        let mut stopped = stopped.clone();
        tokio::spawn(async move {
            let _place = place;
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(connections.header_timeout)
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades();
            tokio::pin!(connection);
            tokio::select! {
                _ = connection.as_mut() => return,
                _ = stopped.wait_for(|stop| *stop) => connection.as_mut().graceful_shutdown(),
            }
            let _ = connection.await;
        });
    }
    drop(listener);
    let _ = stop.send(true);
    let all = u32::try_from(max).unwrap_or(u32::MAX);
    if tokio::time::timeout(SHUTDOWN_GRACE, open.acquire_many(all)).await.is_err() {
        tracing::warn!("connections still open after the shutdown grace period; closing them");
    }
    Ok(())
}

/// Turns true when the service starts to shut down: an event stream then completes, so that the graceful shutdown
/// does not wait out its grace period for streams that would never end.
#[derive(Clone)]
pub(crate) struct Stopping(pub(crate) tokio::sync::watch::Receiver<bool>);

/// The place an HTTP connection holds among `limits.max_connections`. A WebSocket upgraded from the connection
/// keeps it until the socket closes, so upgraded sockets count against the cap too.
#[derive(Clone)]
struct ConnectionPlace(#[allow(dead_code)] Arc<tokio::sync::OwnedSemaphorePermit>);

/// Files kept free for the database, logs and the like, below the open-file limit.
const RESERVED_FILES: usize = 64;

/// The process's open-file limit, raised to its hard limit first (many systems start services at 1,024).
fn raise_open_file_limit() -> usize {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => usize::try_from(limit).unwrap_or(usize::MAX),
        Err(error) => {
            tracing::warn!(%error, "cannot read the open-file limit; assuming 1,024");
            1_024
        }
    }
}

/// Binds `address`, or says which address is taken and how to choose another.
async fn bind(address: SocketAddr) -> Result<TcpListener, StartupError> {
    TcpListener::bind(address).await.map_err(|source| StartupError::Bind { address, source })
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down: finishing requests in flight");
}

/// Who the request's `Authorization: Bearer` header says the caller is (the scheme is case-insensitive): an API
/// key or a JWT, with the configured key (or token subject) it counts under; or the 401 that refuses a credential
/// that names no caller, saying why.
async fn caller(headers: &HeaderMap, identity: &Identity) -> Result<(Caller, Option<KeyId>), Response> {
    let Some(value) = headers.get(header::AUTHORIZATION) else { return Ok((Caller::Anonymous, None)) };
    let Some(credential) = value.to_str().ok().and_then(bearer_key) else { return Err(unauthenticated(BAD_KEY)) };
    match identity.identify(credential).await {
        Ok((caller, key)) => Ok((caller, Some(key))),
        Err(reason) => Err(unauthenticated(&reason)),
    }
}

/// 401 with `WWW-Authenticate: Bearer` and a GraphQL error coded `UNAUTHENTICATED` saying `message`.
fn unauthenticated(message: &str) -> Response {
    (StatusCode::UNAUTHORIZED, [(header::WWW_AUTHENTICATE, "Bearer")], error_body(message, "UNAUTHENTICATED"))
        .into_response()
}

/// The key of an `Authorization` value of the form `Bearer <key>` (the scheme is case-insensitive).
fn bearer_key(value: &str) -> Option<&str> {
    value.trim().split_once(' ').filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer")).map(|(_, key)| key.trim())
}

/// Subscriptions over WebSocket (`graphql-transport-ws`, and the legacy `graphql-ws`), served by [`ws`]. The API key
/// comes in the `connection_init` payload, as `{"Authorization": "Bearer <key>"}` or `{"apiKey": "<key>"}`; a
/// connection without a valid one is closed (`4403`) unless anonymous reads are allowed.
async fn graphql_ws(
    State(state): State<AppState>,
    place: Option<axum::Extension<ConnectionPlace>>,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Response {
    if let Some(refusal) = while_seeding(&state) {
        return refusal;
    }
    let upgrade = match upgrade {
        Ok(upgrade) => upgrade,
        Err(rejection) => {
            let message = format!(
                "/graphql/ws speaks GraphQL over WebSocket only ({}); connect with a WebSocket client and \
                 `Sec-WebSocket-Protocol: graphql-transport-ws`, or send queries to /graphql",
                rejection.body_text()
            );
            return (rejection.status(), bad_request(&message)).into_response();
        }
    };
    let offered = headers.get(header::SEC_WEBSOCKET_PROTOCOL).and_then(|value| value.to_str().ok());
    let Some(protocol) = offered.and_then(ws::Protocol::negotiate) else {
        let message = "no WebSocket subprotocol this server speaks was offered; send \
                       `Sec-WebSocket-Protocol: graphql-transport-ws` (or the legacy `graphql-ws`)";
        return (StatusCode::BAD_REQUEST, bad_request(message)).into_response();
    };
    let schema = state.schema.clone();
    let (identity, anonymous_reads, hub) = (state.identity.clone(), state.anonymous_reads, state.ws.clone());
    upgrade
        .protocols([protocol.name()])
        // Clients send small messages: a 4 KiB read chunk (it grows for a larger message) instead of the default
        // 128 KiB keeps ten thousand idle subscribers in tens of megabytes; no message may exceed a request body.
        .read_buffer_size(WS_READ_CHUNK)
        .max_message_size(state.max_body_bytes)
        .on_upgrade(move |socket| async move {
            let _place = place;
            let admit = move |payload: &serde_json::Value| connection_caller(payload, &identity, anonymous_reads);
            let connection = ws::serve(socket, protocol, schema, hub, admit);
            let pool = state.subscribers.get_or_init(|| {
                SubscriberRuntime::start(state.ws.limits().subscriber_nice)
                    .inspect_err(|error| {
                        tracing::warn!(%error, "cannot start the subscribers' runtime; serving them beside requests")
                    })
                    .ok()
            });
            match pool {
                Some(pool) => {
                    if let Err(error) = pool.handle.spawn(connection).await {
                        tracing::error!(%error, "a WebSocket connection failed");
                    }
                }
                None => connection.await,
            }
        })
        .into_response()
}

/// Bytes a WebSocket connection reads at a time.
const WS_READ_CHUNK: usize = 4 * 1024;

/// Who a WebSocket connection's `connection_init` payload says the caller is, or why it is refused.
fn connection_caller(
    payload: &serde_json::Value,
    identity: &Identity,
    anonymous_reads: bool,
) -> Result<ws::Credentials, String> {
    let text = |name: &str| payload.get(name).and_then(serde_json::Value::as_str);
    let bearer = text("Authorization").or_else(|| text("authorization")).and_then(bearer_key);
    match bearer.or_else(|| text("apiKey")) {
        Some(credential) => {
            let (caller, key) = identity.identify_now(credential)?;
            Ok(ws::Credentials { caller, key: Some(key) })
        }
        None if anonymous_reads => Ok(ws::Credentials { caller: Caller::Anonymous, key: None }),
        None => Err(WS_NO_KEY.to_owned()),
    }
}

/// Why a WebSocket connection without a key is refused (a close reason: at most 123 bytes with `Forbidden: `).
const WS_NO_KEY: &str = "no API key; send {\"Authorization\": \"Bearer <key>\"} in the connection_init payload";

/// How long a client refused while the demo graph is written should wait before it asks again, in seconds.
const SEEDING_RETRY_AFTER: u64 = 2;

/// Refuses a GraphQL request (or subscription) while `serve --demo` writes the demo graph into an empty store: it
/// would read a graph half written, or write beside the generator. 503, with `Retry-After`.
fn while_seeding(state: &AppState) -> Option<Response> {
    if !state.seeding.load(Ordering::Acquire) {
        return None;
    }
    Some(unavailable("the demo graph is being written; retry in a few seconds", SEEDING_RETRY_AFTER))
}

/// 503 with `Retry-After: retry_after` and a GraphQL error body coded `UNAVAILABLE` saying `message`.
fn unavailable(message: &str, retry_after: u64) -> Response {
    let error = serde_json::json!({
        "message": message,
        "extensions": { "code": "UNAVAILABLE", "retryAfter": retry_after }
    });
    let body = Json(serde_json::json!({ "errors": [error] }));
    (StatusCode::SERVICE_UNAVAILABLE, [(header::RETRY_AFTER, retry_after.to_string())], body).into_response()
}

/// Refuses, before its body is read, a request whose caller may do nothing at all.
fn refuse_early(state: &AppState, caller: Caller) -> Option<Response> {
    let message = match caller {
        Caller::InvalidKey => BAD_KEY,
        Caller::Anonymous if !state.anonymous_reads => NO_KEY,
        _ => return None,
    };
    Some(unauthenticated(message))
}

async fn graphiql() -> Response {
    crate::graphiql::page()
}

/// One of GraphiQL's embedded files.
async fn graphiql_asset(uri: axum::http::Uri) -> Response {
    crate::graphiql::asset(uri.path())
}

/// The service's metrics in the Prometheus text format, to the callers `metrics` lets in (admins by default): the
/// gauges read now (subscriptions running, how far the projection lags behind the change log), then everything
/// the registry holds.
async fn metrics(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let (caller, _) = match caller(&headers, &state.identity).await {
        Ok(found) => found,
        Err(refusal) => return refusal,
    };
    if !state.metrics_access.allows(caller) {
        let message = format!(
            "/metrics is for {} keys (`metrics` in the configuration, STAKEGRAPH_METRICS); send one as \
             `Authorization: Bearer <key>`",
            match state.metrics_access {
                crate::api::auth::Introspection::Admins => "admin",
                _ => "editor and admin",
            }
        );
        let status = if caller.role().is_some() { StatusCode::FORBIDDEN } else { StatusCode::UNAUTHORIZED };
        let code = if status == StatusCode::FORBIDDEN { "FORBIDDEN" } else { "UNAUTHENTICATED" };
        return (status, error_body(&message, code)).into_response();
    }
    state.telemetry.subscribers.set(state.ws.running() as i64);
    if let Some(applied) = state.schema.engine().loaded().map(|snapshot| snapshot.seq()) {
        if let Ok(latest) = state.store.changes_before(i64::MAX, 1).await {
            let head = latest.first().map_or(0, |event| event.seq);
            state.telemetry.projection_lag.set((head - applied).max(0));
        }
    }
    state.telemetry.analyses_queued.set(state.schema.admission().waiting() as i64);
    let text = state.telemetry.render();
    ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], text).into_response()
}

/// 200 once the service can answer everything: the demo graph written (with `serve --demo` on an empty store), the
/// store answering, and the projection built. 503 with the reason until then.
async fn readyz(State(state): State<AppState>) -> Response {
    if state.seeding.load(Ordering::Acquire) {
        return (StatusCode::SERVICE_UNAVAILABLE, "the demo graph is being written").into_response();
    }
    match state.store.ping().await {
        Ok(()) if state.schema.engine().loaded().is_none() => {
            (StatusCode::SERVICE_UNAVAILABLE, "projection not built yet").into_response()
        }
        Ok(()) => (StatusCode::OK, "ready").into_response(),
        Err(error) => {
            tracing::warn!(%error, "not ready");
            (StatusCode::SERVICE_UNAVAILABLE, "store unavailable").into_response()
        }
    }
}

/// The parameters of a GraphQL request sent with GET (GraphQL over HTTP).
#[derive(Debug, serde::Deserialize)]
struct GetRequest {
    query: Option<String>,
    #[serde(rename = "operationName")]
    operation_name: Option<String>,
    variables: Option<String>,
    extensions: Option<String>,
}

/// GET runs queries only; without a query it serves GraphiQL to a browser.
async fn graphql_get(
    State(state): State<AppState>,
    headers: HeaderMap,
    get: Result<Query<GetRequest>, QueryRejection>,
) -> Response {
    let get = match get {
        Ok(Query(get)) => get,
        Err(rejection) => {
            let message = format!(
                "the query string is not a GraphQL request ({}); send ?query=…&variables=…&operationName=…, \
                 URL-encoded",
                rejection.body_text()
            );
            return (StatusCode::BAD_REQUEST, bad_request(&message)).into_response();
        }
    };
    let query = get.query.filter(|query| !query.trim().is_empty());
    let Some(query) = query.or_else(|| get.extensions.is_some().then(String::new)) else {
        return match Media::page(&headers) {
            Ok(Page::Graphiql) => graphiql().await.into_response(),
            Ok(Page::Graphql(media)) => media.error(
                StatusCode::BAD_REQUEST,
                "the request has no `query`; send ?query=…&variables=…&operationName=…, URL-encoded",
                "BAD_USER_INPUT",
            ),
            Err(not_acceptable) => not_acceptable.into_response(),
        };
    };
    let media = match Media::negotiate(&headers) {
        Ok(media) => media,
        Err(not_acceptable) => return not_acceptable.into_response(),
    };
    let (caller, key) = match caller(&headers, &state.identity).await {
        Ok(found) => found,
        Err(refusal) => return refusal,
    };
    if let Some(refusal) = refuse_early(&state, caller).or_else(|| while_seeding(&state)) {
        return refusal;
    }
    if let Some((refusal, retry_after)) = over_rate(&state, key) {
        return paused(refusal, retry_after).await;
    }
    let mut request = async_graphql::Request::new(query);
    if let Some(name) = get.operation_name {
        request = request.operation_name(name);
    }
    if let Some(variables) = get.variables {
        match serde_json::from_str::<serde_json::Value>(&variables) {
            Ok(variables @ (serde_json::Value::Object(_) | serde_json::Value::Null)) => {
                request = request.variables(async_graphql::Variables::from_json(variables))
            }
            outcome => {
                let why = outcome.err().map_or_else(|| "not an object".to_owned(), |error| error.to_string());
                let message = format!("`variables` is not a JSON object ({why}); send variables={{\"name\": …}}");
                return media.error(StatusCode::BAD_REQUEST, &message, "BAD_USER_INPUT");
            }
        }
    }
    if let Some(extensions) = get.extensions {
        match serde_json::from_str::<serde_json::Value>(&extensions) {
            Ok(serde_json::Value::Object(extensions)) => {
                for (name, value) in extensions {
                    let value = async_graphql::Value::from_json(value).unwrap_or(async_graphql::Value::Null);
                    request.extensions.insert(name, value);
                }
            }
            outcome => {
                let why = outcome.err().map_or_else(|| "not an object".to_owned(), |error| error.to_string());
                let message = format!("`extensions` is not a JSON object ({why}); send extensions={{\"name\": …}}");
                return media.error(StatusCode::BAD_REQUEST, &message, "BAD_USER_INPUT");
            }
        }
    }
    if let Err(refused) = state.schema.resolve_persisted(&mut request, caller) {
        return media.respond(refused_response(refused));
    }
    let (operation, kind) = operation_of(&mut request, &state);
    if kind == Some(OperationType::Mutation) {
        let message = "mutations are not allowed over GET; send them with POST";
        let mut refusal = media.error(StatusCode::METHOD_NOT_ALLOWED, message, "BAD_USER_INPUT");
        refusal.headers_mut().insert(header::ALLOW, header::HeaderValue::from_static("POST"));
        return refusal;
    }
    execute(state, caller, key, request, operation, media).await
}

/// The media types a POST body may have: JSON (GraphQL over HTTP), with any parameters (`; charset=utf-8`).
const POST_MEDIA_TYPES: [&str; 2] = ["application/json", "application/graphql-response+json"];

/// Whether `headers` say the body is JSON.
fn is_json(headers: &HeaderMap) -> bool {
    let Some(content_type) = headers.get(header::CONTENT_TYPE).and_then(|value| value.to_str().ok()) else {
        return false;
    };
    let media_type = content_type.split(';').next().unwrap_or_default().trim();
    POST_MEDIA_TYPES.iter().any(|accepted| media_type.eq_ignore_ascii_case(accepted))
}

/// POST runs a JSON GraphQL request: `{"query": …, "operationName": …, "variables": …}`.
async fn graphql_post(State(state): State<AppState>, request: axum::extract::Request) -> Response {
    let media = match Media::negotiate(request.headers()) {
        Ok(media) => media,
        Err(not_acceptable) => return not_acceptable.into_response(),
    };
    let Posted { caller, key, mut request } = match read_post(&state, request, media).await {
        Ok(posted) => posted,
        Err(refusal) => return refusal,
    };
    if let Err(refused) = state.schema.resolve_persisted(&mut request, caller) {
        return media.respond(refused_response(refused));
    }
    let operation = operation_of(&mut request, &state).0;
    execute(state, caller, key, request, operation, media).await
}

/// A GraphQL request read from a POST, with its caller.
struct Posted {
    caller: Caller,
    key: Option<KeyId>,
    request: async_graphql::Request,
}

/// Reads the GraphQL request a POST carries, or the refusal to send as `media`: the caller's key checked and counted
/// against its rate, a JSON body within the size and time limits, with a query or a persisted document's hash (not
/// resolved yet).
async fn read_post(state: &AppState, request: axum::extract::Request, media: Media) -> Result<Posted, Response> {
    let (caller, key) = caller(request.headers(), &state.identity).await?;
    if let Some(refusal) = refuse_early(state, caller).or_else(|| while_seeding(state)) {
        return Err(refusal);
    }
    if let Some((refusal, retry_after)) = over_rate(state, key) {
        return Err(paused(refusal, retry_after).await);
    }
    if !is_json(request.headers()) {
        let message = "a GraphQL POST body must be JSON: send it with `Content-Type: application/json`";
        return Err(media.error(StatusCode::UNSUPPORTED_MEDIA_TYPE, message, "BAD_USER_INPUT"));
    }
    let body = axum::body::to_bytes(request.into_body(), state.max_body_bytes);
    let body = match tokio::time::timeout(state.body_timeout, body).await {
        Ok(Ok(body)) => body,
        Ok(Err(_too_large)) => {
            let message = format!(
                "the request body is larger than {} bytes (limits.max_body_bytes); send a smaller request (split \
                 large batches)",
                state.max_body_bytes
            );
            return Err((StatusCode::PAYLOAD_TOO_LARGE, limit_body(&message, "max_body_bytes")).into_response());
        }
        Err(_elapsed) => {
            let message = format!(
                "the request body did not arrive within {} ms (limits.body_timeout_ms); send it at once",
                state.body_timeout.as_millis()
            );
            return Err((
                StatusCode::REQUEST_TIMEOUT,
                [(header::CONNECTION, "close")],
                limit_body(&message, "body_timeout_ms"),
            )
                .into_response());
        }
    };
    let mut request: async_graphql::Request = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(error) => {
            let message = format!(
                "the body is not a GraphQL request in JSON ({error}); send {{\"query\": \"…\", \"variables\": {{…}}}}"
            );
            return Err(media.error(StatusCode::BAD_REQUEST, &message, "BAD_USER_INPUT"));
        }
    };
    if request.query.is_empty() && !request.extensions.contains_key(PERSISTED_QUERY) {
        // A persisted document named by `documentId` (GraphQL over HTTP's persisted documents) instead.
        match serde_json::from_slice::<DocumentId>(&body) {
            Ok(DocumentId { document_id: Some(id) }) => {
                request.extensions.insert(PERSISTED_QUERY.to_owned(), api::persisted::document_id(&id));
            }
            _ => {
                let message = "the request has no `query`; send {\"query\": \"…\", \"variables\": {…}}, or name a \
                               persisted document by hash";
                return Err(media.error(StatusCode::BAD_REQUEST, message, "BAD_USER_INPUT"));
            }
        }
    }
    Ok(Posted { caller, key, request })
}

/// GraphQL over Server-Sent Events (`graphql-sse`, distinct-connections mode): a POST to `/graphql/stream` with
/// `Accept: text/event-stream` runs one operation (a subscription, or a query or mutation) and streams its results
/// as `next` events, then `complete` ([`sse`]). The same key, rate, limits and caps as `/graphql` and `/graphql/ws`:
/// a stream holds one of its key's `websocket.max_subscriptions_per_key` places while it runs.
async fn graphql_stream(State(state): State<AppState>, request: axum::extract::Request) -> Response {
    if let Some(refusal) = sse::not_accepted(request.headers()) {
        return refusal;
    }
    let stopping = request.extensions().get::<Stopping>().map(|stopping| stopping.0.clone());
    // A persisted document is resolved (and refused) by the operation itself, so that a refusal is an event too.
    let Posted { caller, key, request } = match read_post(&state, request, Media::Json).await {
        Ok(posted) => posted,
        Err(refusal) => return refusal,
    };
    let Some(place) = state.ws.acquire(key) else {
        let message = format!(
            "this API key already runs {} operations over all its connections and streams, the most \
             `websocket.max_subscriptions_per_key` allows; end one first",
            state.ws.limits().max_subscriptions_per_key
        );
        return Media::Json.error(StatusCode::TOO_MANY_REQUESTS, &message, "LIMIT_EXCEEDED");
    };
    let mut session = async_graphql::Data::default();
    session.insert(caller);
    if let Some(key) = key {
        session.insert(key);
    }
    let results = state.schema.execute_websocket(request, Arc::new(session));
    let pool = state.subscribers.get_or_init(|| {
        SubscriberRuntime::start(state.ws.limits().subscriber_nice)
            .inspect_err(
                |error| tracing::warn!(%error, "cannot start the subscribers' runtime; serving them beside requests"),
            )
            .ok()
    });
    sse::respond(results, place, pool.as_ref().map(|pool| &pool.handle), stopping)
}

/// The extension that names a persisted document by hash (Apollo's automatic persisted queries).
const PERSISTED_QUERY: &str = "persistedQuery";

/// A request body's `documentId`, read when it has no query.
#[derive(serde::Deserialize)]
struct DocumentId {
    #[serde(rename = "documentId")]
    document_id: Option<String>,
}

/// The response to a request refused before it ran, its error coded.
fn refused_response(refused: async_graphql::ServerError) -> async_graphql::Response {
    async_graphql::Response::from_errors(vec![refused])
}

/// A GraphQL error body with `code`, for requests refused before they reach the schema.
fn error_body(message: &str, code: &str) -> Json<serde_json::Value> {
    Json(crate::graphql_http::error_json(message, code))
}

/// A GraphQL error body with code `LIMIT_EXCEEDED` naming `limit`.
fn limit_body(message: &str, limit: &str) -> Json<serde_json::Value> {
    let error = serde_json::json!({ "message": message, "extensions": { "code": "LIMIT_EXCEEDED", "limit": limit } });
    Json(serde_json::json!({ "errors": [error] }))
}

/// A GraphQL error body with code `BAD_USER_INPUT`.
fn bad_request(message: &str) -> Json<serde_json::Value> {
    error_body(message, "BAD_USER_INPUT")
}

/// Any path the service does not serve.
async fn not_found(uri: axum::http::Uri) -> Response {
    let message = format!(
        "nothing is served at {}; GraphQL is at /graphql (POST, GET), subscriptions at /graphql/ws (WebSocket) and \
         /graphql/stream (Server-Sent Events, POST)",
        uri.path()
    );
    (StatusCode::NOT_FOUND, error_body(&message, "NOT_FOUND")).into_response()
}

/// A path served, with a method it does not take.
async fn method_not_allowed(method: Method, uri: axum::http::Uri) -> Response {
    let message = format!(
        "{} does not take {method}; /graphql takes GET and POST, /graphql/stream POST, the others GET",
        uri.path()
    );
    (StatusCode::METHOD_NOT_ALLOWED, error_body(&message, "BAD_USER_INPUT")).into_response()
}

/// The name and type of the operation the request would run (none for a document that does not parse: the
/// executor reports the syntax error). The parsed document stays in `request`, so the schema does not parse it
/// again.
fn operation_of(request: &mut async_graphql::Request, state: &AppState) -> (Option<String>, Option<OperationType>) {
    // Too deep to parse safely: the schema refuses it, with the limit it is over.
    if api::nesting(&request.query) > state.max_nesting {
        return (None, None);
    }
    state.documents.parse(request);
    let wanted = request.operation_name.clone();
    let Ok(document) = request.parsed_query() else { return (None, None) };
    // Without a name, only a document with one operation runs (the executor refuses the others).
    let mut operations = document.operations.iter();
    let operation = match wanted.as_deref() {
        Some(name) => operations.find(|(found, _)| found.map(|found| found.as_str()) == Some(name)),
        None => operations.next().filter(|_| document.operations.iter().count() == 1),
    };
    match operation {
        Some((name, operation)) => (name.map(|name| name.to_string()), Some(operation.node.ty)),
        None => (None, None),
    }
}

/// Sends a refusal for load after a pause of its `Retry-After` (at most [`REFUSAL_PAUSE`]): a client that retries at
/// once, however `Retry-After` reads, sends at most one request a second per connection, instead of keeping a core
/// busy refusing it. The pause is a timer, which costs nothing while it runs; the client still waits out
/// `Retry-After` after it, as any refused client should.
async fn paused(refusal: Response, retry_after: u64) -> Response {
    tokio::time::sleep(REFUSAL_PAUSE.min(Duration::from_secs(retry_after))).await;
    refusal
}

/// Counts one request against `key`'s rate, before its body is read or parsed; past the rate, the 429 to send and
/// its `Retry-After`, in seconds.
fn over_rate(state: &AppState, key: Option<KeyId>) -> Option<(Response, u64)> {
    let refused = state.schema.admission().request(key).err()?;
    let retry_after = match &refused {
        api::ApiError::Refused { retry_after: Some(seconds), .. } => *seconds,
        _ => 1,
    };
    let error = serde_json::to_value(refused.into_server_error()).unwrap_or_default();
    let body = Json(serde_json::json!({ "errors": [error] }));
    let refusal = (StatusCode::TOO_MANY_REQUESTS, [(header::RETRY_AFTER, retry_after.to_string())], body);
    Some((refusal.into_response(), retry_after))
}

/// Runs `request` as `caller` (with `key`, which analyses count against), logs it under `operation` (its
/// operation's name, read once by the caller) and answers as `media` ([`Media::respond`]). A request refused for
/// load is answered with HTTP 429 and `Retry-After`, after a pause ([`paused`]).
async fn execute(
    state: AppState,
    caller: Caller,
    key: Option<KeyId>,
    request: async_graphql::Request,
    operation: Option<String>,
    media: Media,
) -> Response {
    let operation = operation.unwrap_or_else(|| "unnamed".to_owned());
    let started = Instant::now();
    let mut request = request.data(caller);
    if let Some(key) = key {
        request = request.data(key);
    }
    let response = state.schema.execute(request).await;
    let codes: Vec<String> = response
        .errors
        .iter()
        .filter_map(|error| match error.extensions.as_ref()?.get("code")? {
            async_graphql::Value::String(code) => Some(code.clone()),
            other => Some(other.to_string()),
        })
        .collect();
    let role = match caller {
        Caller::Key(role) | Caller::Masked(role) => role.as_str(),
        Caller::Anonymous => "anonymous",
        Caller::InvalidKey => "invalid-key",
    };
    state.telemetry.request(&operation, codes.is_empty(), started.elapsed());
    tracing::info!(
        operation = %operation,
        caller = role,
        duration_ms = started.elapsed().as_secs_f64() * 1e3,
        outcome = if codes.is_empty() { "ok" } else { "error" },
        errors = %codes.join(","),
        "graphql"
    );
    let retry_after = response.data == async_graphql::Value::Null
        && !response.errors.is_empty()
        && response
            .errors
            .iter()
            .all(|error| error.extensions.as_ref().is_some_and(|extensions| extensions.get("retryAfter").is_some()));
    let retry_after = retry_after
        .then(|| match response.errors[0].extensions.as_ref()?.get("retryAfter")? {
            async_graphql::Value::Number(seconds) => seconds.as_u64(),
            _ => None,
        })
        .flatten();
    let mut http = media.respond(response);
    let Some(seconds) = retry_after else { return http };
    *http.status_mut() = StatusCode::TOO_MANY_REQUESTS;
    http.headers_mut().insert(header::RETRY_AFTER, header::HeaderValue::from(seconds));
    paused(http, seconds).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use tower::ServiceExt;

    async fn send(router: Router, method: Method, path: &str) -> (StatusCode, HeaderMap, String) {
        let request = axum::extract::Request::builder().method(method).uri(path).body(Body::empty()).unwrap();
        let response = router.oneshot(request).await.unwrap();
        let (status, headers) = (response.status(), response.headers().clone());
        let body = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
        (status, headers, String::from_utf8(body.to_vec()).unwrap())
    }

    /// While the store is opened, a connection's router answers `/healthz`, refuses the rest with a coded 503, and
    /// once the service's router is installed, hands the same connection's requests to it.
    #[tokio::test]
    async fn while_the_store_opens_healthz_answers_and_the_rest_waits_for_the_service() {
        let routes = Routes::new();
        let early = routes.for_connection();
        let (status, _, body) = send(early.clone(), Method::GET, "/healthz").await;
        assert_eq!((status, body.as_str()), (StatusCode::OK, "ok"));
        let (status, _, body) = send(early.clone(), Method::GET, "/readyz").await;
        assert_eq!((status, body.as_str()), (StatusCode::SERVICE_UNAVAILABLE, "the store is being opened"));
        let (status, headers, body) = send(early.clone(), Method::POST, "/graphql").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(headers[header::RETRY_AFTER], "1");
        let body: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(body["errors"][0]["extensions"]["code"], "UNAVAILABLE", "{body}");
        assert_eq!(body["errors"][0]["extensions"]["retryAfter"], 1, "{body}");

        routes.install(Router::new().route("/graphql", axum::routing::post(|| async { "served" })));
        let (status, _, body) = send(early, Method::POST, "/graphql").await;
        assert_eq!((status, body.as_str()), (StatusCode::OK, "served"), "a connection opened early is handed over");
        let (status, _, body) = send(routes.for_connection(), Method::POST, "/graphql").await;
        assert_eq!((status, body.as_str()), (StatusCode::OK, "served"));
    }
}
