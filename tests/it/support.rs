//! Shared fixtures: fresh stores, a demo graph, schemas with a caller, and a running server.

use async_graphql::{Request, Variables};
use chrono::{DateTime, Utc};
use serde_json::Value;
use stakegraph::api::{build_schema, ApiLimits, Caller, StakegraphSchema};
use stakegraph::config::{ApiKeys, Config};
use stakegraph::demo::{self, DemoOptions};
use stakegraph::domain::{
    Applied, ChangeEvent, Command, Interaction, InteractionId, Relationship, RelationshipId, Role, Stakeholder,
    StakeholderId,
};
use stakegraph::service::Application;
use stakegraph::store::{
    GraphCounts, GraphScan, GraphStore, InteractionCursor, InteractionPage, Metered, SqliteStore, StakeholderPage,
    StakeholderQuery, StoreResult,
};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use tempfile::TempDir;

/// Stakeholders in the shared demo graph.
pub const DEMO_SIZE: usize = 400;

/// The fixed "today" of the shared demo graph, so that its content never changes.
pub fn demo_anchor() -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::parse_from_rfc3339("2026-06-01T00:00:00Z").unwrap().to_utc()
}

/// A fresh, empty store in its own temporary directory (kept alive by the returned guard).
pub fn fresh_store() -> (Arc<SqliteStore>, TempDir) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let store = SqliteStore::open(dir.path().join("stakegraph.db")).expect("open store");
    (Arc::new(store), dir)
}

/// The path of a demo graph written once per test run; read-only tests open it, writers copy it first.
pub fn demo_db() -> PathBuf {
    static DEMO: OnceLock<(TempDir, PathBuf)> = OnceLock::new();
    let (_, path) = DEMO.get_or_init(|| {
        let dir = tempfile::tempdir().expect("temporary directory");
        let path = dir.path().join("demo.db");
        let store = SqliteStore::open(&path).expect("open demo store");
        // Async tests call this from inside their runtime, which must not block on another: write on a thread.
        std::thread::scope(|scope| {
            scope.spawn(|| {
                let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
                runtime
                    .block_on(demo::generate(&store, &DemoOptions::new(DEMO_SIZE, demo_anchor()), &|_| {}))
                    .expect("demo graph");
            });
        });
        (dir, path)
    });
    path.clone()
}

/// The shared demo graph, opened read-mostly (tests that write must use [`demo_copy`]).
pub fn demo_store() -> Arc<SqliteStore> {
    Arc::new(SqliteStore::open(demo_db()).expect("open demo store"))
}

/// A private copy of the demo graph that a test may change (`VACUUM INTO` copies a WAL database consistently).
pub fn demo_copy() -> (Arc<SqliteStore>, TempDir) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("copy.db");
    let source = rusqlite::Connection::open(demo_db()).expect("open demo database");
    source.execute("VACUUM INTO ?1", [path.to_str().expect("utf-8 path")]).expect("copy demo database");
    (Arc::new(SqliteStore::open(&path).expect("open copy")), dir)
}

/// A schema over `store` with default limits.
pub fn schema(store: Arc<dyn GraphStore>) -> StakegraphSchema {
    build_schema(store, ApiLimits::default(), false)
}

/// A schema over a metered copy of `store`, to count store calls.
pub fn metered_schema(store: SqliteStore) -> (StakegraphSchema, Arc<Metered>) {
    let metered = Arc::new(Metered::new(Arc::new(store)));
    (build_schema(metered.clone(), ApiLimits::default(), false), metered)
}

/// Runs `query` with `variables` as `caller`; returns the whole response as JSON (`data`, `errors`).
pub async fn run_as(schema: &StakegraphSchema, caller: Caller, query: &str, variables: Value) -> Value {
    let request = Request::new(query).variables(Variables::from_json(variables)).data(caller);
    let response = schema.execute(request).await;
    serde_json::to_value(&response).expect("response serializes")
}

/// Runs `query` as an admin and fails the test on any error; returns `data`.
pub async fn run_ok(schema: &StakegraphSchema, query: &str, variables: Value) -> Value {
    let response = run_as(schema, Caller::Key(Role::Admin), query, variables).await;
    assert!(response.get("errors").is_none(), "unexpected errors: {response:#}");
    response["data"].clone()
}

/// The first error's `extensions.code` and `extensions.field`.
pub fn error_code(response: &Value) -> (String, String) {
    let error = &response["errors"][0];
    assert!(!error.is_null(), "expected an error, got {response:#}");
    let code = error["extensions"]["code"].as_str().unwrap_or_default().to_owned();
    let field = error["extensions"]["field"].as_str().unwrap_or_default().to_owned();
    (code, field)
}

/// Reads one of the committed operations in `queries/`.
pub fn operation(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("queries").join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("cannot read {}: {error}", path.display()))
}

/// POSTs a GraphQL request body to `base`/graphql over real HTTP, with `key` if given; returns the JSON response.
pub async fn post_graphql(client: &reqwest::Client, base: &str, key: Option<&str>, body: &Value) -> Value {
    let mut request = client.post(format!("{base}/graphql")).json(body);
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    request.send().await.expect("the server answers").json().await.expect("a JSON response")
}

/// The editor key of the services [`serve`] starts.
pub const EDITOR_KEY: &str = "editor-key-for-the-integration-tests";

/// The real service on a fresh store, listening on a free loopback port, with [`EDITOR_KEY`] and whatever else
/// `tune` sets; returns its address and the guard of the store's directory.
pub async fn serve(tune: impl FnOnce(&mut Config)) -> (String, TempDir) {
    let (store, dir) = fresh_store();
    let mut config = Config {
        listen: "127.0.0.1:0".parse().expect("a loopback address"),
        api_keys: ApiKeys::parse(&format!("editor:{EDITOR_KEY}")).expect("a valid key"),
        ..Config::default()
    };
    tune(&mut config);
    let application = Application::build_with_store(store, &config).await.expect("service builds");
    let address = application.local_addr();
    tokio::spawn(application.run_until_stopped());
    (format!("{address}"), dir)
}

/// Creates the customer `key` named `name` through the service at `address`, as the editor.
pub async fn create_customer_named(address: &str, key: &str, name: &str) {
    let create = serde_json::json!({
        "query": "mutation($input: CreateCustomerInput!) { createCustomer(input: $input) { id } }",
        "variables": { "input": { "key": key, "name": name, "power": 0.5, "interest": 0.5 } }
    });
    let response = post_graphql(&reqwest::Client::new(), &format!("http://{address}"), Some(EDITOR_KEY), &create).await;
    assert!(response.get("errors").is_none(), "{response:#}");
}

/// Creates the customer `key` (named "Customer `key`") through the service at `address`.
pub async fn create_customer(address: &str, key: &str) {
    create_customer_named(address, key, &format!("Customer {key}")).await;
}

/// A document of `operation` and the fragments `F0` … `F{levels}` on `Query`, each `F{i}` spreading `F{i+1}`
/// `spreads` times and the last selecting `__typename`: a chain (1 spread) or a bomb (2) of fragments.
pub fn fragment_chain(operation: &str, levels: usize, spreads: usize) -> String {
    let mut query = format!("{operation}\n");
    for level in 0..levels {
        let spread = format!(" ...F{}", level + 1);
        query.push_str(&format!("fragment F{level} on Query {{{} }}\n", spread.repeat(spreads)));
    }
    query.push_str(&format!("fragment F{levels} on Query {{ __typename }}\n"));
    query
}

/// Which call of the store a [`Held`] store holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hold {
    /// `graph_scan` reads the graph, then waits: a projection build the test holds, whose scan predates whatever
    /// the test writes meanwhile.
    Scan,
    /// `apply` waits before it writes: a demo graph being seeded.
    Apply,
}

/// A store decorator that holds one kind of call until the test releases it, so that a test can look at the
/// service while start-up work is in progress without guessing how long it takes.
pub struct Held {
    inner: Arc<dyn GraphStore>,
    hold: Hold,
    /// How many held calls have reached the hold.
    entered: tokio::sync::watch::Sender<usize>,
    /// Closed by [`Held::release`]: every held call, and every later one, goes through.
    released: tokio::sync::Semaphore,
}

impl Held {
    /// Wraps `inner`, holding `hold`.
    pub fn new(inner: Arc<dyn GraphStore>, hold: Hold) -> Arc<Self> {
        Arc::new(Self {
            inner,
            hold,
            entered: tokio::sync::watch::Sender::new(0),
            released: tokio::sync::Semaphore::new(0),
        })
    }

    /// Waits until a held call has reached the hold.
    pub async fn entered(&self) {
        let mut entered = self.entered.subscribe();
        entered.wait_for(|count| *count > 0).await.expect("the sender lives in self");
    }

    /// Lets every held call through, and every later one.
    pub fn release(&self) {
        self.released.close();
    }

    async fn wait_if(&self, hold: Hold) {
        if hold != self.hold || self.released.is_closed() {
            return;
        }
        self.entered.send_modify(|count| *count += 1);
        // Never granted a permit: `acquire` returns when `release` closes the semaphore.
        let _ = self.released.acquire().await;
    }
}

#[async_trait::async_trait]
impl GraphStore for Held {
    async fn stakeholders_by_id(&self, ids: &[StakeholderId]) -> StoreResult<Vec<Stakeholder>> {
        self.inner.stakeholders_by_id(ids).await
    }

    async fn stakeholder_by_key(&self, key: &str) -> StoreResult<Option<Stakeholder>> {
        self.inner.stakeholder_by_key(key).await
    }

    async fn list_stakeholders(&self, query: &StakeholderQuery) -> StoreResult<StakeholderPage> {
        self.inner.list_stakeholders(query).await
    }

    async fn relationships_by_id(&self, ids: &[RelationshipId]) -> StoreResult<Vec<Relationship>> {
        self.inner.relationships_by_id(ids).await
    }

    async fn relationships_of(&self, ids: &[StakeholderId]) -> StoreResult<HashMap<StakeholderId, Vec<Relationship>>> {
        self.inner.relationships_of(ids).await
    }

    async fn interaction_pages(
        &self,
        relationships: &[RelationshipId],
        count: usize,
        cursor: Option<InteractionCursor>,
        direction: stakegraph::store::PageDirection,
        topics: stakegraph::domain::TopicSet,
    ) -> StoreResult<HashMap<RelationshipId, InteractionPage>> {
        self.inner.interaction_pages(relationships, count, cursor, direction, topics).await
    }

    async fn interaction_histories(
        &self,
        relationships: &[RelationshipId],
    ) -> StoreResult<HashMap<RelationshipId, Vec<Interaction>>> {
        self.inner.interaction_histories(relationships).await
    }

    async fn interactions_by_id(&self, ids: &[InteractionId]) -> StoreResult<Vec<Interaction>> {
        self.inner.interactions_by_id(ids).await
    }

    async fn apply(&self, commands: Vec<Command>, at: DateTime<Utc>) -> StoreResult<Applied> {
        self.wait_if(Hold::Apply).await;
        self.inner.apply(commands, at).await
    }

    async fn programs(&self) -> StoreResult<Vec<stakegraph::domain::Program>> {
        self.inner.programs().await
    }

    async fn changes_after(&self, after: i64, limit: usize) -> StoreResult<Vec<ChangeEvent>> {
        self.inner.changes_after(after, limit).await
    }

    async fn changes_before(&self, before: i64, limit: usize) -> StoreResult<Vec<ChangeEvent>> {
        self.inner.changes_before(before, limit).await
    }

    async fn graph_scan(&self) -> StoreResult<GraphScan> {
        let scan = self.inner.graph_scan().await;
        self.wait_if(Hold::Scan).await;
        scan
    }

    async fn counts(&self) -> StoreResult<GraphCounts> {
        self.inner.counts().await
    }

    async fn public_counts(&self) -> StoreResult<GraphCounts> {
        self.inner.public_counts().await
    }

    async fn ping(&self) -> StoreResult<()> {
        self.inner.ping().await
    }

    async fn webhooks(&self) -> StoreResult<Vec<stakegraph::domain::webhook::Webhook>> {
        self.inner.webhooks().await
    }

    async fn create_webhook(
        &self,
        webhook: stakegraph::domain::webhook::Webhook,
    ) -> StoreResult<stakegraph::domain::webhook::Webhook> {
        self.inner.create_webhook(webhook).await
    }

    async fn save_webhook(&self, webhook: &stakegraph::domain::webhook::Webhook) -> StoreResult<bool> {
        self.inner.save_webhook(webhook).await
    }

    async fn delete_webhook(&self, id: stakegraph::domain::WebhookId) -> StoreResult<bool> {
        self.inner.delete_webhook(id).await
    }

    async fn checkpoint(&self) -> StoreResult<()> {
        self.inner.checkpoint().await
    }
}

/// Polls `base`/readyz until it answers 200 (at most a minute: a bound on a hang, not a speed requirement).
pub async fn wait_until_ready(client: &reqwest::Client, base: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let response = client.get(format!("{base}/readyz")).send().await.expect("the server answers");
        let status = response.status();
        if status == 200 {
            return;
        }
        let body = response.text().await.unwrap_or_default();
        assert!(std::time::Instant::now() < deadline, "/readyz still answers {status} ({body}) after a minute");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

/// Starts `command` (a `stakegraph serve … --listen 127.0.0.1:0`) with its log on a pipe, and returns the child and
/// the address it logs that it serves GraphQL at; the rest of its log is drained on a thread of its own, so that the
/// server never blocks on a full pipe.
pub fn spawn_serve(mut command: std::process::Command) -> (std::process::Child, String) {
    use std::io::BufRead;
    let mut child = command
        .env("RUST_LOG", "warn,stakegraph=info")
        .env("NO_COLOR", "1")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("`stakegraph serve` starts");
    let mut lines = std::io::BufReader::new(child.stderr.take().expect("stderr")).lines();
    let address = loop {
        let line = lines.next().expect("the server logs its address").expect("a log line");
        if let Some(start) = line.find("address=") {
            break line[start + "address=".len()..].split_whitespace().next().unwrap().to_owned();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    (child, address)
}

/// A `PYTHONPATH` under which `import {module}` works: none needed when it is installed, else `requirement`
/// installed with pip into `target/python-{module}` (pure Python packages).
pub fn python_path(module: &str, requirement: &str) -> Option<String> {
    use std::process::{Command, Stdio};
    let works = |path: Option<&str>| {
        let mut python = Command::new("python3");
        python.args(["-c", &format!("import {module}")]).stderr(Stdio::null());
        if let Some(path) = path {
            python.env("PYTHONPATH", path);
        }
        python.status().is_ok_and(|status| status.success())
    };
    if works(None) {
        return None;
    }
    let target = format!("{}/target/python-{module}", env!("CARGO_MANIFEST_DIR"));
    if !works(Some(&target)) {
        let status = Command::new("python3")
            .args(["-m", "pip", "install", "--quiet", "--target", &target, requirement])
            .status();
        assert!(
            status.is_ok_and(|status| status.success()),
            "this test needs the Python package {requirement}: `python3 -m pip install {requirement}`"
        );
    }
    Some(target)
}

/// A change event's payload as the stores keep it (version 1's JSON), to assert on what was written.
pub fn stored(payload: &stakegraph::domain::Change) -> Value {
    stakegraph::store::record::change_json(payload).unwrap()
}
