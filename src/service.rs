//! Start-up: the [`Application`] that binds the listener and serves from the moment the port is bound, while the
//! store is opened (SQLite, Neo4j or FalkorDB), the demo graph seeded, the projection built and the follower of the
//! change log started in the background; the connection loop (limits, timeouts, graceful shutdown). The routes are
//! [`crate::http`]'s.

use crate::api;
use crate::config::{Config, StoreKind};
use crate::demo::{self, DemoOptions};
use crate::engine::EngineError;
use crate::http::{self, AppState, ConnectionPlace, Stopping};
use crate::store::falkor::FalkorConnection;
use crate::store::neo4j::Neo4jConnection;
use crate::store::{CypherStore, GraphStore, SqliteStore, StoreError};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Router;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;

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
        let state = http::app_state(store, config);
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
                routes.install(http::router(prepared.state.clone(), &self.config.cors_origins));
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
        routes.install(http::router(prepared.state.clone(), &config.cors_origins));
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
        let starting = http::with_request_ids(
            Router::new().fallback({
                let service = service.clone();
                move |request: axum::extract::Request| while_starting(service.clone(), request)
            }),
            None,
        );
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
        _ => http::unavailable(
            "the service is starting (its store is being opened); retry in a moment",
            STARTING_RETRY_AFTER,
        ),
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

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::{header, HeaderMap, Method};
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
        assert_eq!(headers["x-request-id"].len(), 36, "a refusal while starting has its request id");

        routes.install(Router::new().route("/graphql", axum::routing::post(|| async { "served" })));
        let (status, _, body) = send(early, Method::POST, "/graphql").await;
        assert_eq!((status, body.as_str()), (StatusCode::OK, "served"), "a connection opened early is handed over");
        let (status, _, body) = send(routes.for_connection(), Method::POST, "/graphql").await;
        assert_eq!((status, body.as_str()), (StatusCode::OK, "served"));
    }
}
