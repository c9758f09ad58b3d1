//! The HTTP layer, routes only: the axum router (`/graphql` over POST, GET, WebSocket and SSE; GraphiQL; `/healthz`,
//! `/readyz`, `/metrics`), what each route answers, and the state they share. [`crate::service`] binds it and runs
//! it. Only this module and `service` know HTTP.

use crate::api::admission::REFUSAL_PAUSE;
use crate::api::auth::{BAD_KEY, NO_KEY};
use crate::api::{self, Caller, KeyId, StakegraphSchema};
use crate::config::Config;
use crate::graphql_http::{Media, Page};
use crate::identity::Identity;
use crate::store::{GraphStore, Metered};
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
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tower::ServiceBuilder;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

/// Turns true when the service starts to shut down ([`crate::service`] sets it on each connection): an event stream then completes, so that the graceful shutdown
/// does not wait out its grace period for streams that would never end.
#[derive(Clone)]
pub(crate) struct Stopping(pub(crate) tokio::sync::watch::Receiver<bool>);

/// The place an HTTP connection holds among `limits.max_connections`. A WebSocket upgraded from the connection
/// keeps it until the socket closes, so upgraded sockets count against the cap too.
#[derive(Clone)]
pub(crate) struct ConnectionPlace(#[allow(dead_code)] pub(crate) Arc<tokio::sync::OwnedSemaphorePermit>);

/// What every handler can reach: one pointer, since axum clones it for every request (and more than once).
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// What an [`AppState`] points to.
pub struct Shared {
    /// The GraphQL schema.
    pub schema: StakegraphSchema,
    /// The store (metered), for readiness and metrics.
    pub store: Arc<Metered>,
    /// Request counters for `/metrics`.
    pub telemetry: Telemetry,
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
    subscribers: std::sync::OnceLock<Option<SubscriberRuntime>>,
    /// True while `serve --demo` writes the demo graph into an empty store: GraphQL then answers 503.
    pub(crate) seeding: AtomicBool,
    /// Documents parsed lately, by their text.
    documents: Documents,
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
    // Each request's span, only when traces are exported: nothing else reads it, and the layer costs every request
    // (a wrapped body and future, two clock reads, a span).
    let router = if crate::traces::exporting() {
        router.layer(
            TraceLayer::new_for_http()
                .make_span_with(request_span::<axum::body::Body>)
                .on_request(())
                .on_response(|response: &Response, _latency: Duration, span: &tracing::Span| {
                    span.record("http.response.status_code", response.status().as_u16());
                })
                .on_body_chunk(())
                .on_eos(())
                .on_failure(()),
        )
    } else {
        router
    };
    let cors = (!cors_origins.is_empty()).then(|| {
        let origins = cors_origins.iter().filter_map(|origin| origin.parse().ok());
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(origins))
            .allow_methods([Method::GET, Method::POST])
            .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE])
            .expose_headers([REQUEST_ID.clone()])
            .max_age(Duration::from_secs(3600))
    });
    with_request_ids(router, cors)
}

/// The header that names a request (a name made once: looking a header up by text parses the text every time).
static REQUEST_ID: header::HeaderName = header::HeaderName::from_static("x-request-id");

/// The longest `x-request-id` kept from a caller.
const MAX_REQUEST_ID_CHARS: usize = 64;

/// `router` with an `x-request-id` on every request, in its span, its log line and its response (CORS preflights
/// included): the caller's when it is at most [`MAX_REQUEST_ID_CHARS`] letters, digits and `-_.:`, else a new
/// UUID, so that a caller cannot put a large value, or one that breaks a log line, into every log, span and
/// response. `cors`, when given, goes between the ids and the routes.
///
/// All of it is one [`Router::layer`]: axum wraps (and clones, on every request) each route once per call.
pub fn with_request_ids(router: Router, cors: Option<CorsLayer>) -> Router {
    router.layer(
        ServiceBuilder::new()
            .map_request(without_unusable_request_id)
            .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
            .layer(PropagateRequestIdLayer::x_request_id())
            .option_layer(cors),
    )
}

/// `request` without its `x-request-id` unless that is one value of at most [`MAX_REQUEST_ID_CHARS`] letters,
/// digits and `-_.:`.
fn without_unusable_request_id(mut request: axum::extract::Request) -> axum::extract::Request {
    let ids = request.headers().get_all(&REQUEST_ID);
    let mut values = ids.iter();
    let usable = match (values.next(), values.next()) {
        (None, _) => true,
        (Some(id), None) => {
            id.len() <= MAX_REQUEST_ID_CHARS
                && id.as_bytes().iter().all(|byte| byte.is_ascii_alphanumeric() || b"-_.:".contains(byte))
        }
        (Some(_), Some(_)) => false,
    };
    if !usable {
        request.headers_mut().remove(&REQUEST_ID);
    }
    request
}

/// The most of a request's path its span holds (a path that matches no route is the caller's to choose).
const MAX_SPAN_PATH_CHARS: usize = 256;

/// The span of one HTTP request, for traces ([`crate::traces`]): named by method and route, a child of the caller's
/// span when the request carries a W3C `traceparent`.
fn request_span<B>(request: &axum::http::Request<B>) -> tracing::Span {
    const ROUTES: [&str; 7] = ["/", "/graphql", "/graphql/ws", "/graphql/stream", "/healthz", "/readyz", "/metrics"];
    let path = request.uri().path();
    let route = ROUTES.iter().find(|route| **route == path).copied().unwrap_or_else(|| {
        if path.starts_with("/graphiql/") {
            "/graphiql/{file}"
        } else {
            ""
        }
    });
    let span = tracing::debug_span!(
        target: crate::traces::TARGET,
        "request",
        otel.name = %format!("{} {route}", request.method()).trim_end(),
        otel.kind = "server",
        http.request.method = %request.method(),
        http.route = route,
        url.path = path.get(..MAX_SPAN_PATH_CHARS).unwrap_or(path),
        http.response.status_code = tracing::field::Empty,
        http.request.id = request_id(request.headers()),
        graphql.operation.name = tracing::field::Empty,
    );
    crate::traces::continue_from(&span, request.headers());
    span
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
    AppState(Arc::new(Shared {
        schema,
        store,
        telemetry,
        identity: Identity { keys: config.api_keys.clone(), tokens: config.jwt.clone() },
        anonymous_reads: config.anonymous_reads(),
        metrics_access: config.metrics,
        max_body_bytes: config.limits.max_body_bytes,
        body_timeout: Duration::from_millis(config.limits.body_timeout_ms),
        max_nesting: config.limits.max_nesting,
        ws,
        subscribers: Default::default(),
        seeding: Default::default(),
        documents: Default::default(),
    }))
}

/// Who the request's `Authorization: Bearer` header says the caller is (the scheme is case-insensitive): an API
/// key or a JWT, with the configured key (or token subject) it counts under; or the 401 that refuses a credential
/// that names no caller, saying why.
async fn caller(headers: &HeaderMap, identity: &Identity) -> Result<(Caller, Option<KeyId>), Response> {
    let Some(value) = headers.get(header::AUTHORIZATION) else { return Ok((Caller::Anonymous, None)) };
    let Some(credential) = bearer_key(value) else { return Err(unauthenticated(BAD_KEY)) };
    match identity.identify(&credential).await {
        Ok((caller, key)) => Ok((caller, Some(key))),
        Err(reason) => Err(unauthenticated(&reason)),
    }
}

/// 401 with `WWW-Authenticate: Bearer` and a GraphQL error coded `UNAUTHENTICATED` saying `message`.
fn unauthenticated(message: &str) -> Response {
    (StatusCode::UNAUTHORIZED, [(header::WWW_AUTHENTICATE, "Bearer")], error_body(message, "UNAUTHENTICATED"))
        .into_response()
}

/// The key (or token) of an `Authorization: Bearer <key>` value, as the `headers` crate's typed header reads it
/// (the scheme is case-insensitive).
fn bearer_key(value: &header::HeaderValue) -> Option<String> {
    use headers::authorization::{Authorization, Bearer};
    use headers::Header as _;
    let bearer = Authorization::<Bearer>::decode(&mut std::iter::once(value)).ok()?;
    Some(bearer.token().trim().to_owned()).filter(|key| !key.is_empty())
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
    // An `Authorization` that names no key is refused, as over HTTP, rather than read as no key at all.
    let bearer = match text("Authorization").or_else(|| text("authorization")) {
        Some(value) => Some(
            header::HeaderValue::from_str(value.trim())
                .ok()
                .and_then(|value| bearer_key(&value))
                .ok_or_else(|| BAD_KEY.to_owned())?,
        ),
        None => None,
    };
    match bearer.or_else(|| text("apiKey").map(str::to_owned)) {
        Some(credential) => {
            let (caller, key) = identity.identify_now(&credential)?;
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
pub(crate) fn unavailable(message: &str, retry_after: u64) -> Response {
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
/// gauges read now (subscriptions running, how far the projection and each webhook lag behind the change log), then
/// everything the registry holds; one scrape at a time.
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
    let _scrape = state.telemetry.scrape.lock().await;
    state.telemetry.subscribers.set(state.ws.running() as i64);
    let head = state.store.changes_before(i64::MAX, 1).await.ok().map(|latest| latest.first().map_or(0, |e| e.seq));
    if let (Some(head), Some(applied)) = (head, state.schema.engine().loaded().map(|snapshot| snapshot.seq())) {
        state.telemetry.projection_lag.set((head - applied).max(0));
    }
    if let (Some(head), Ok(webhooks)) = (head, state.schema.webhooks().list().await) {
        state.telemetry.webhook_lag.clear();
        for webhook in webhooks.iter().filter(|webhook| webhook.disabled.is_none()) {
            let labels = crate::telemetry::WebhookLabels { webhook: api::webhooks::encode_id(webhook.id).0 };
            state.telemetry.webhook_lag.get_or_create(&labels).set((head - webhook.cursor).max(0));
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
    execute(state, caller, key, request, operation, media, request_id(&headers).to_owned()).await
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
    let id = request_id(request.headers()).to_owned();
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
    execute(state, caller, key, request, operation, media, id).await
}

/// The request's `x-request-id` (the router gives every request one), for its log line.
fn request_id(headers: &HeaderMap) -> &str {
    headers.get(&REQUEST_ID).and_then(|id| id.to_str().ok()).unwrap_or_default()
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
/// operation's name, read once by the caller) and `id` (its `x-request-id`), and answers as `media`
/// ([`Media::respond`]). A request refused for load is answered with HTTP 429 and `Retry-After`, after a pause
/// ([`paused`]).
async fn execute(
    state: AppState,
    caller: Caller,
    key: Option<KeyId>,
    request: async_graphql::Request,
    operation: Option<String>,
    media: Media,
    id: String,
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
    tracing::Span::current().record("graphql.operation.name", operation.as_str());
    state.telemetry.request(&operation, codes.is_empty(), started.elapsed());
    tracing::info!(
        operation = %operation,
        request_id = %id,
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
