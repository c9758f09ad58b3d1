//! The nested dashboard query (a page of 50 customers with their manager and five strongest-by-level
//! relationships, and the stakeholders at the other ends) on a 100,000-stakeholder demo graph, through the whole
//! GraphQL stack over the embedded SQLite store.
//!
//! `cargo bench --bench dashboard`. The demo graph is written once to `target/bench-data/` (set
//! `STAKEGRAPH_BENCH_SIZE` for another size) and reused by later runs.

use async_graphql::{Request, Variables};
use criterion::{criterion_group, criterion_main, Criterion};
use serde_json::{json, Value};
use stakegraph::api::{build_schema, ApiLimits, Caller, StakegraphSchema};
use stakegraph::demo::{self, DemoOptions};
use stakegraph::domain::Role;
use stakegraph::store::{GraphStore, Metered, SqliteStore, StoreCalls};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

fn bench_size() -> usize {
    std::env::var("STAKEGRAPH_BENCH_SIZE").ok().and_then(|size| size.parse().ok()).unwrap_or(100_000)
}

/// The demo graph of `size` stakeholders, written on first use (to a temporary name, renamed when complete).
fn demo_graph(runtime: &tokio::runtime::Runtime, size: usize) -> PathBuf {
    let directory = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench-data");
    let path = directory.join(format!("demo-{size}-seed42-2026-06-01.db"));
    if path.exists() {
        return path;
    }
    std::fs::create_dir_all(&directory).expect("bench-data directory");
    let partial = directory.join(format!("demo-{size}.partial.db"));
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", partial.display()));
    }
    let anchor = chrono::DateTime::parse_from_rfc3339("2026-06-01T00:00:00Z").unwrap().to_utc();
    let started = Instant::now();
    runtime.block_on(async {
        let store = SqliteStore::open(&partial).expect("open bench store");
        let summary = demo::generate(&store, &DemoOptions::new(size, anchor), &|_| {}).await.expect("demo graph");
        eprintln!("wrote the bench graph in {:.1} s: {summary:?}", started.elapsed().as_secs_f64());
    });
    std::fs::rename(&partial, &path).expect("rename the finished bench graph");
    path
}

async fn run(schema: &StakegraphSchema, query: &str, variables: Value) -> Value {
    let request = Request::new(query).variables(Variables::from_json(variables)).data(Caller::Key(Role::Viewer));
    let response = serde_json::to_value(schema.execute(request).await).expect("json");
    assert!(response.get("errors").is_none(), "benchmark query failed: {response:#}");
    response
}

/// Store calls made since `before`, by method.
fn calls_since(store: &Metered, before: &StoreCalls) -> StoreCalls {
    let mut calls = store.calls();
    for (method, count) in calls.iter_mut() {
        *count -= before.get(method).copied().unwrap_or(0);
    }
    calls.retain(|_, count| *count > 0);
    calls
}

fn operation(name: &str) -> String {
    std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("queries").join(name)).expect("query file")
}

fn dashboard(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let size = bench_size();
    let path = demo_graph(&runtime, size);
    let store = Arc::new(Metered::new(Arc::new(SqliteStore::open(&path).expect("open bench store"))));
    let schema = build_schema(store.clone(), ApiLimits::default(), false);
    let query = operation("dashboard_page.graphql");

    // A page deep in the listing, to show that keyset paging does not slow down with the offset.
    let deep_cursor = runtime.block_on(async {
        let counts = store.counts().await.expect("counts");
        eprintln!("bench graph: {counts:?}");
        let mut after = Value::Null;
        for _ in 0..20 {
            let page = run(&schema, "query($after: String) { stakeholders(first: 100, after: $after, filter: {kinds: [CUSTOMER]}) { pageInfo { endCursor } } }", json!({ "after": after })).await;
            after = page["data"]["stakeholders"]["pageInfo"]["endCursor"].clone();
        }
        let before = store.calls();
        let page = run(&schema, &query, json!({ "first": 50 })).await;
        let edges = page["data"]["stakeholders"]["edges"].as_array().expect("edges");
        let related: usize =
            edges.iter().map(|edge| edge["node"]["relationships"]["edges"].as_array().unwrap().len()).sum();
        eprintln!("dashboard page: {} customers, {related} relationships, store calls {:?}", edges.len(), calls_since(&store, &before));
        after
    });

    let mut group = c.benchmark_group(format!("dashboard_{size}"));
    group.bench_function("first_page_of_50_customers", |b| {
        b.to_async(&runtime).iter(|| run(&schema, &query, json!({ "first": 50 })))
    });
    group.bench_function("page_of_50_after_2000_customers", |b| {
        b.to_async(&runtime).iter(|| run(&schema, &query, json!({ "first": 50, "after": deep_cursor })))
    });
    let profile = operation("stakeholder_profile.graphql");
    let busiest = runtime.block_on(async {
        let page = run(
            &schema,
            "{ stakeholders(first: 1, filter: {kinds: [EMPLOYEE]}) { edges { node { id } } } }",
            json!({}),
        )
        .await;
        page["data"]["stakeholders"]["edges"][0]["node"]["id"].clone()
    });
    runtime.block_on(async {
        let before = store.calls();
        run(&schema, &profile, json!({ "id": busiest })).await;
        eprintln!("stakeholder profile: store calls {:?}", calls_since(&store, &before));
    });
    group.bench_function("stakeholder_profile", |b| {
        b.to_async(&runtime).iter(|| run(&schema, &profile, json!({ "id": busiest })))
    });
    // The same, as the service serves them: with the projection built, whose records answer the stakeholders and
    // relationships (the first runs above read them all from the store, as before the projection is built).
    runtime.block_on(async {
        let started = Instant::now();
        schema.engine().load().await.expect("projection");
        eprintln!("projection and records built in {:.2} s", started.elapsed().as_secs_f64());
        for (name, query, variables) in [
            ("dashboard page", &query, json!({ "first": 50 })),
            ("stakeholder profile", &profile, json!({ "id": busiest })),
        ] {
            let before = store.calls();
            run(&schema, query, variables).await;
            eprintln!("{name} from the records: store calls {:?}", calls_since(&store, &before));
        }
    });
    group.bench_function("first_page_of_50_customers_from_records", |b| {
        b.to_async(&runtime).iter(|| run(&schema, &query, json!({ "first": 50 })))
    });
    group.bench_function("page_of_50_after_2000_customers_from_records", |b| {
        b.to_async(&runtime).iter(|| run(&schema, &query, json!({ "first": 50, "after": deep_cursor })))
    });
    group.bench_function("stakeholder_profile_from_records", |b| {
        b.to_async(&runtime).iter(|| run(&schema, &profile, json!({ "id": busiest })))
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(50).measurement_time(std::time::Duration::from_secs(8));
    targets = dashboard
}
criterion_main!(benches);
