//! The engine's side of `bench/peers.py`: builds the projection from a database, runs the same queries as the
//! peers (strongest path, k strongest paths, weighted PageRank, reach) on one thread, and writes the answers and
//! the time each took as JSON. Node numbers are the indices of `stakegraph export-graph` for the same database
//! and `--as-of`.
//!
//! `cargo run --release --example engine-bench -- --db DB --as-of 2026-06-01T00:00:00Z --pairs pairs.csv \
//!     --reach reach.csv --out stakegraph.json`

use anyhow::Context;
use clap::Parser;
use serde_json::{json, Value};
use stakegraph::domain::strength::StrengthModel;
use stakegraph::engine::analysis::{pagerank, Flow, Via, Walk};
use stakegraph::engine::paths::{reach, strongest_paths};
use stakegraph::engine::Snapshot;
use stakegraph::store::{GraphStore, SqliteStore};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

#[derive(Parser)]
struct Args {
    /// The database.
    #[arg(long)]
    db: PathBuf,
    /// Evaluate strengths as of this time.
    #[arg(long)]
    as_of: chrono::DateTime<chrono::Utc>,
    /// CSV `source,target` of node indices: strongest-path queries.
    #[arg(long)]
    pairs: PathBuf,
    /// How many of the pairs (the first ones) also get k strongest paths.
    #[arg(long, default_value_t = 5)]
    k_pairs: usize,
    /// Paths per k-strongest query.
    #[arg(long, default_value_t = 5)]
    k: usize,
    /// CSV `source` of node indices: reach queries.
    #[arg(long)]
    reach: Option<PathBuf>,
    /// Edges weaker than this are not traversed.
    #[arg(long, default_value_t = 0.05)]
    min_strength: f64,
    /// Reach keeps stakeholders reached with at least this score.
    #[arg(long, default_value_t = 0.01)]
    min_score: f64,
    /// Hop limit of paths and reach.
    #[arg(long, default_value_t = 64)]
    max_hops: usize,
    /// PageRank stops when a sweep changes the ranks by less than this (L1).
    #[arg(long, default_value_t = 1e-9)]
    pagerank_tolerance: f64,
    /// Where to write the JSON.
    #[arg(long)]
    out: PathBuf,
}

fn read_column_pairs(path: &PathBuf) -> anyhow::Result<Vec<Vec<u32>>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    text.lines()
        .skip(1)
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            line.split(',')
                .map(|cell| cell.trim().parse::<u32>().with_context(|| format!("'{cell}' in {}", path.display())))
                .collect()
        })
        .collect()
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let store = SqliteStore::open(&args.db).with_context(|| format!("opening {}", args.db.display()))?;
    let started = Instant::now();
    let scan = store.graph_scan().await?;
    let scanned = started.elapsed().as_secs_f64();
    let snapshot = Snapshot::build(&scan, Arc::new(StrengthModel::default()), args.as_of)?;
    let build_seconds = started.elapsed().as_secs_f64();
    drop(scan);
    let relationships = snapshot.edge_count();
    let bytes = snapshot.heap_bytes();
    eprintln!(
        "projection: {} stakeholders, {relationships} relationships, {bytes} bytes ({:.1} per relationship), \
         {build_seconds:.2} s from the store ({scanned:.2} s reading it)",
        snapshot.node_count(),
        bytes as f64 / relationships.max(1) as f64
    );
    let walk = Walk::new(&snapshot, Flow::Both, args.min_strength, &Via::default());
    let pairs = read_column_pairs(&args.pairs)?;

    let mut strongest = Vec::new();
    for pair in &pairs {
        let (from, to) = (pair[0], pair[1]);
        let started = Instant::now();
        let found = strongest_paths(&walk, from, to, 1, args.max_hops);
        let seconds = started.elapsed().as_secs_f64();
        let best = found.first();
        strongest.push(json!({
            "source": from, "target": to, "seconds": seconds,
            "score": best.map(|path| path.score), "hops": best.map(|path| path.hops()),
            "path": best.map(|path| path.nodes.clone()).unwrap_or_default(),
        }));
    }

    let mut k_strongest = Vec::new();
    for pair in pairs.iter().take(args.k_pairs) {
        let (from, to) = (pair[0], pair[1]);
        let started = Instant::now();
        let found = strongest_paths(&walk, from, to, args.k, args.max_hops);
        let seconds = started.elapsed().as_secs_f64();
        let scores: Vec<f64> = found.iter().map(|path| path.score).collect();
        k_strongest.push(json!({ "source": from, "target": to, "k": args.k, "scores": scores, "seconds": seconds }));
    }

    let started = Instant::now();
    let ranks = pagerank(&walk, 0.85, args.pagerank_tolerance, &[], 1_000, None).expect("no deadline");
    let pagerank_seconds = started.elapsed().as_secs_f64();
    eprintln!("pagerank: {} sweeps in {pagerank_seconds:.3} s", ranks.iterations);

    let mut reaches = Vec::new();
    if let Some(path) = &args.reach {
        for row in read_column_pairs(path)? {
            let from = row[0];
            let started = Instant::now();
            let reached = reach(&walk, from, args.max_hops, args.min_score);
            let seconds = started.elapsed().as_secs_f64();
            let scores: serde_json::Map<String, Value> =
                reached.iter().map(|(node, score, _)| (node.to_string(), json!(score))).collect();
            reaches.push(json!({ "source": from, "min_score": args.min_score, "scores": scores, "seconds": seconds }));
        }
    }

    let report = json!({
        "graph": {
            "stakeholders": snapshot.node_count(), "relationships": relationships,
            "build_seconds": build_seconds, "scan_seconds": scanned,
            "bytes": bytes, "bytes_per_relationship": bytes as f64 / relationships.max(1) as f64,
        },
        "strongest": strongest,
        "k_strongest": k_strongest,
        "pagerank": { "values": ranks.values, "iterations": ranks.iterations, "seconds": pagerank_seconds },
        "reach": reaches,
    });
    std::fs::write(&args.out, serde_json::to_vec(&report)?)
        .with_context(|| format!("writing {}", args.out.display()))?;
    Ok(())
}
