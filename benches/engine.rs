//! The graph engine on a generated graph of 100,000 stakeholders and 1,000,000 relationships: building the
//! projection from the store, strongest path, 5 strongest loopless paths, weighted PageRank and reach (the
//! operations `bench/peers.py` compares with igraph and networkx), and a simple GraphQL query's latency alone and
//! while long analyses run beside it.
//!
//! `cargo bench --bench engine`. The graph is written once to `target/bench-data/` (the same file
//! `bench/peers.py` uses; `STAKEGRAPH_BENCH_SIZE` and `STAKEGRAPH_BENCH_RELATIONSHIPS` pick another size).

use async_graphql::{Request, Variables};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use stakegraph::api::{build_schema, ApiLimits, Caller, StakegraphSchema};
use stakegraph::demo::{self, DemoOptions};
use stakegraph::domain::strength::StrengthModel;
use stakegraph::domain::Role;
use stakegraph::engine::analysis::{pagerank, Flow, Via, Walk};
use stakegraph::engine::paths::{reach, strongest_paths};
use stakegraph::engine::Snapshot;
use stakegraph::store::{GraphStore, SqliteStore};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn setting(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|value| value.parse().ok()).unwrap_or(default)
}

/// The benchmark graph, written on first use (to a temporary name, renamed when complete).
fn bench_graph(runtime: &tokio::runtime::Runtime) -> PathBuf {
    let size = setting("STAKEGRAPH_BENCH_SIZE", 100_000);
    let relationships = setting("STAKEGRAPH_BENCH_RELATIONSHIPS", 1_000_000);
    let directory = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench-data");
    let path = directory.join(format!("demo-{size}-r{relationships}-seed42-2026-06-01.db"));
    if path.exists() {
        return path;
    }
    std::fs::create_dir_all(&directory).expect("bench-data directory");
    let partial = directory.join(format!("demo-{size}-r{relationships}.partial.db"));
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", partial.display()));
    }
    let options = DemoOptions { relationships: Some(relationships), ..DemoOptions::new(size, as_of()) };
    runtime.block_on(async {
        let store = SqliteStore::open(&partial).expect("open bench store");
        let summary = demo::generate(&store, &options, &|_| {}).await.expect("demo graph");
        eprintln!("wrote the bench graph: {summary:?}");
    });
    std::fs::rename(&partial, &path).expect("rename the finished bench graph");
    path
}

fn as_of() -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::parse_from_rfc3339("2026-06-01T00:00:00Z").unwrap().to_utc()
}

/// Fixed, seeded query pairs.
fn pairs(nodes: usize, count: usize) -> Vec<(u32, u32)> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    (0..count).map(|_| (rng.gen_range(0..nodes) as u32, rng.gen_range(0..nodes) as u32)).collect()
}

fn engine(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let path = bench_graph(&runtime);
    let store = SqliteStore::open(&path).expect("open bench store");
    let model = Arc::new(StrengthModel::default());

    let mut group = c.benchmark_group("projection");
    group.sample_size(10).measurement_time(Duration::from_secs(30));
    group.bench_function("build from the store", |b| {
        b.iter(|| {
            let scan = runtime.block_on(store.graph_scan()).expect("scan");
            Snapshot::build(&scan, model.clone(), as_of()).expect("projection")
        })
    });
    group.finish();

    let scan = runtime.block_on(store.graph_scan()).expect("scan");
    let snapshot = Snapshot::build(&scan, model.clone(), as_of()).expect("projection");
    // What a mutation waits for: the next snapshot after one relationship changed, and after one was added.
    let mut group = c.benchmark_group("projection");
    group.sample_size(20);
    let mut changed = scan.relationships[scan.relationships.len() / 2].clone();
    changed.trust = stakegraph::domain::Probability::parse(0.9).ok();
    let update = stakegraph::engine::Changes { relationships: vec![changed.clone()], ..Default::default() };
    group.bench_function("apply one changed relationship", |b| b.iter(|| snapshot.apply(1, &update).expect("apply")));
    changed.id = stakegraph::domain::RelationshipId(i64::from(u32::MAX));
    changed.rel_type = stakegraph::domain::RelationshipType::Influences;
    let insert = stakegraph::engine::Changes { relationships: vec![changed.clone()], ..Default::default() };
    group.bench_function("apply one new relationship", |b| b.iter(|| snapshot.apply(1, &insert).expect("apply")));
    // What `recordInteractions` with 1,000 interactions on 1,000 relationships waits for.
    let batch = stakegraph::engine::Changes {
        relationships: (0..1_000)
            .map(|n| {
                let mut relationship = scan.relationships[(n * 997) % scan.relationships.len()].clone();
                relationship.trust = stakegraph::domain::Probability::parse(0.25).ok();
                relationship
            })
            .collect(),
        ..Default::default()
    };
    group.bench_function("apply 1,000 changed relationships", |b| b.iter(|| snapshot.apply(1, &batch).expect("apply")));
    // What `createCustomer` waits for: a stakeholder with the next id.
    let mut row = *scan.stakeholders.iter().max_by_key(|row| row.id).expect("stakeholders");
    row.id = stakegraph::domain::StakeholderId(row.id.0 + 1);
    let created = stakegraph::engine::Changes { stakeholders: vec![row], ..Default::default() };
    group.bench_function("apply one new stakeholder", |b| b.iter(|| snapshot.apply(1, &created).expect("apply")));
    group.finish();

    // Sustained: 10,000 new relationships, one snapshot after another (each applied to the previous one, as the
    // engine does), between seeded random pairs.
    let mut group = c.benchmark_group("projection, sustained");
    group.sample_size(10);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
    let nodes = snapshot.node_count();
    let inserts: Vec<stakegraph::engine::Changes> = (0..10_000)
        .map(|n| {
            let mut relationship = changed.clone();
            relationship.id = stakegraph::domain::RelationshipId(i64::from(u32::MAX) + n);
            let from = rng.gen_range(0..nodes) as u32;
            let to = (from + 1 + rng.gen_range(0..nodes as u32 - 1)) % nodes as u32;
            relationship.from = snapshot.stakeholder(from);
            relationship.to = snapshot.stakeholder(to);
            stakegraph::engine::Changes { relationships: vec![relationship], ..Default::default() }
        })
        .collect();
    group.bench_function("10,000 new relationships, one at a time", |b| {
        b.iter(|| {
            let mut current = snapshot.clone();
            for (n, insert) in inserts.iter().enumerate() {
                current = current.apply(2 + n as i64, insert).expect("apply");
            }
            assert_eq!(current.edge_count(), snapshot.edge_count() + inserts.len());
            current
        })
    });
    // What every quarter of the graph added or changed costs once: laying base and delta out as one base again.
    let mut grown = snapshot.clone();
    for (n, insert) in inserts.iter().enumerate() {
        grown = grown.apply(2 + n as i64, insert).expect("apply");
    }
    group.bench_function("compact after 10,000 new relationships", |b| b.iter(|| grown.compacted()));
    group.finish();
    drop(scan);
    eprintln!(
        "projection: {} stakeholders, {} relationships, {:.1} bytes per relationship",
        snapshot.node_count(),
        snapshot.edge_count(),
        snapshot.heap_bytes() as f64 / snapshot.edge_count() as f64
    );
    let walk = Walk::new(&snapshot, Flow::Both, 0.05, &Via::default());
    let queries = pairs(snapshot.node_count(), 20);

    let mut group = c.benchmark_group("influence");
    group.sample_size(20);
    let mut next = 0;
    group.bench_function("strongest path (per query)", |b| {
        b.iter(|| {
            let (from, to) = queries[next % queries.len()];
            next += 1;
            strongest_paths(&walk, from, to, 1, 8)
        })
    });
    group.bench_function("5 strongest loopless paths (per query)", |b| {
        b.iter(|| {
            let (from, to) = queries[next % queries.len()];
            next += 1;
            strongest_paths(&walk, from, to, 5, 8)
        })
    });
    group.bench_function("reach within 3 hops, score >= 0.05", |b| {
        b.iter(|| {
            let (from, _) = queries[next % queries.len()];
            next += 1;
            reach(&walk, from, 3, 0.05)
        })
    });
    group.bench_function("weighted pagerank (1e-9)", |b| b.iter(|| pagerank(&walk, 0.85, 1e-9, &[], 1_000, None)));
    group.finish();

    contention(c, &runtime, &path);
}

async fn run(schema: &StakegraphSchema, query: &str, variables: Value) -> Value {
    let request = Request::new(query).variables(Variables::from_json(variables)).data(Caller::Key(Role::Viewer));
    let response = serde_json::to_value(schema.execute(request).await).expect("json");
    assert!(response.get("errors").is_none(), "benchmark query failed: {response:#}");
    response
}

/// A simple query's latency through the whole GraphQL stack, alone and while a stream of long analyses
/// (graph-wide PageRank, 50 paths over 8 hops) runs beside it: analyses run on blocking threads, so the async
/// workers stay free.
fn contention(c: &mut Criterion, runtime: &tokio::runtime::Runtime, path: &PathBuf) {
    let store = Arc::new(SqliteStore::open(path).expect("open bench store"));
    let schema = build_schema(store, ApiLimits::default(), false);
    runtime.block_on(schema.engine().load()).expect("projection");
    let simple = "query($id: ID!) { node(id: $id) { id ... on Stakeholder { name kind } } }";
    let id = json!(stakegraph::api::ids::GlobalId::Stakeholder(stakegraph::domain::StakeholderId(4242)).encode().0);
    let analyses = [
        "{ keyInfluencers(first: 50) { ranked { score } } }".to_owned(),
        format!(
            "{{ influencePaths(from: \"{}\", to: \"{}\", first: 50, maxHops: 8) {{ paths {{ score }} }} }}",
            stakegraph::api::ids::GlobalId::Stakeholder(stakegraph::domain::StakeholderId(17)).encode().0,
            stakegraph::api::ids::GlobalId::Stakeholder(stakegraph::domain::StakeholderId(90_001)).encode().0
        ),
    ];

    let mut group = c.benchmark_group("simple query");
    group.sample_size(200);
    group.bench_function("alone", |b| b.to_async(runtime).iter(|| run(&schema, simple, json!({ "id": id }))));
    let busy = Arc::new(AtomicBool::new(true));
    let runs = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let background = {
        let (schema, busy, runs) = (schema.clone(), busy.clone(), runs.clone());
        runtime.spawn(async move {
            while busy.load(Ordering::Relaxed) {
                for analysis in &analyses {
                    let started = Instant::now();
                    run(&schema, analysis, json!({})).await;
                    runs.fetch_add(1, Ordering::Relaxed);
                    if started.elapsed() < Duration::from_millis(1) {
                        tokio::task::yield_now().await;
                    }
                }
            }
        })
    };
    group.bench_function("while long analyses run", |b| {
        b.to_async(runtime).iter_batched(|| (), |()| run(&schema, simple, json!({ "id": id })), BatchSize::SmallInput)
    });
    busy.store(false, Ordering::Relaxed);
    runtime.block_on(background).expect("background analyses");
    eprintln!("long analyses completed beside the simple queries: {}", runs.load(Ordering::Relaxed));
    group.finish();
}

criterion_group!(benches, engine);
criterion_main!(benches);
