//! How many sampled sources make the `brokers` ranking stable: builds the projection from a database, then for
//! each seed takes sources in that seed's order (`engine::brokers::source_order`, as the background estimate
//! does) and, at 32, 64, 128, … sources, prints the top-k overlap across seeds (as sets, and whether the ordered
//! lists are identical) and the time each seed took to get there; then, for each `z`, the number of sources at
//! which the estimate's stopping rule (`Estimate::settled`, checked after every chunk) first held for each seed,
//! and whether the top-k lists at those points agree across seeds.
//!
//! `cargo run --release --example brokers-bench -- --db /tmp/demo-100k.db`  (`--seeds 1,2,3 --max-sources 4096
//! --threads 2 --hide-private --json`)
//!
//! With `--per-source N` it times instead the first `N` sources of the first seed's order on one thread (no leaf
//! folding, chunks of 8), and prints milliseconds per source and the betweenness sums from those sources (JSON):
//! the engine's side of `bench/brokers_peer.py`, which runs igraph from the same sources.

use anyhow::Context;
use clap::Parser;
use serde_json::json;
use stakegraph::domain::strength::StrengthModel;
use stakegraph::engine::analysis::{Flow, Via, Walk};
use stakegraph::engine::brokers::{source_order, weighted_dependencies, Arcs, Dependencies, Estimate, Folding};
use stakegraph::engine::paths::Adjacency;
use stakegraph::engine::Snapshot;
use stakegraph::store::{GraphStore, SqliteStore};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

#[derive(Parser)]
struct Args {
    /// The database (e.g. written by `stakegraph demo --size 100000 --db /tmp/demo-100k.db`).
    #[arg(long)]
    db: PathBuf,
    /// Evaluate strengths as of this time (default: now).
    #[arg(long)]
    as_of: Option<chrono::DateTime<chrono::Utc>>,
    /// Seeds of the source orders, comma-separated.
    #[arg(long, default_value = "1,2,3", value_delimiter = ',')]
    seeds: Vec<u64>,
    /// Most sources per seed.
    #[arg(long, default_value_t = 4096)]
    max_sources: usize,
    /// Sources per chunk (the stopping rule is checked after each).
    #[arg(long, default_value_t = 32)]
    chunk: usize,
    /// Threads per seed.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// The length of the ranking compared.
    #[arg(long, default_value_t = 10)]
    top: usize,
    /// Standard errors of the stopping rule, comma-separated.
    #[arg(long, default_value = "2,3", value_delimiter = ',')]
    z: Vec<f64>,
    /// Edges weaker than this are not followed (the API's default).
    #[arg(long, default_value_t = 0.05)]
    min_strength: f64,
    /// Rank the public part of the graph only (what a viewer gets).
    #[arg(long)]
    hide_private: bool,
    /// Take degree-one stakeholders as sources too, instead of folding them (`engine::brokers::Folding`).
    #[arg(long)]
    unfolded: bool,
    /// Print JSON instead of tables.
    #[arg(long)]
    json: bool,
    /// Time this many sources on one thread instead (see the module's comment).
    #[arg(long)]
    per_source: Option<usize>,
}

/// One seed's run: the top-k at each checkpoint and the time to it, and where each `z` first held.
struct Run {
    /// The top `2 · top` with their estimates and standard errors, at the end.
    tail: Vec<(u32, f64, f64)>,
    checkpoints: Vec<(usize, Vec<u32>, f64)>,
    settled: Vec<Option<(usize, Vec<u32>, f64)>>,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let store = SqliteStore::open(&args.db).with_context(|| format!("opening {}", args.db.display()))?;
    let scan = store.graph_scan().await?;
    let as_of = args.as_of.unwrap_or_else(chrono::Utc::now);
    let snapshot = Snapshot::build(&scan, Arc::new(StrengthModel::default()), as_of)?;
    drop(scan);
    let walk = Walk::new(&snapshot, Flow::Both, args.min_strength, &Via::default()).hiding_private(args.hide_private);
    let visible: Vec<u32> = (0..snapshot.node_count() as u32).filter(|&node| !walk.hides(node)).collect();
    let started = Instant::now();
    let arcs = Arcs::new(&walk);
    let flatten_seconds = started.elapsed().as_secs_f64();
    let mut degree_one = 0;
    for &node in &visible {
        let mut neighbours = std::collections::BTreeSet::new();
        walk.neighbors(node, |next, _| {
            neighbours.insert(next);
        });
        degree_one += usize::from(neighbours.len() == 1);
    }
    let counts = |node: u32| !walk.hides(node);
    if let Some(count) = args.per_source {
        let seed = args.seeds.first().copied().unwrap_or(1);
        let sources: Vec<u32> =
            source_order(visible.len(), seed).into_iter().take(count).map(|index| visible[index as usize]).collect();
        let report = per_source(&arcs, &sources);
        if args.json {
            println!("{}", serde_json::to_string(&json!({ "per_source": report }))?);
        } else {
            println!(
                "{} sources: {:.2} ms per source (chunks of {PER_SOURCE_CHUNK}: median {:.2}, p10 {:.2}, p90 {:.2})",
                sources.len(),
                report["mean_ms"],
                report["median_ms"],
                report["p10_ms"],
                report["p90_ms"]
            );
        }
        return Ok(());
    }
    let folding = if args.unfolded { Folding::none(arcs.node_count()) } else { Folding::of(&arcs) };
    let sampled: Vec<u32> = visible.iter().copied().filter(|&node| !folding.leaf[node as usize]).collect();
    let runs: Vec<Run> = args
        .seeds
        .iter()
        .map(|&seed| {
            let order: Vec<u32> =
                source_order(sampled.len(), seed).into_iter().map(|index| sampled[index as usize]).collect();
            let run =
                sample(&args, &arcs, &folding, &order[..args.max_sources.min(order.len())], sampled.len(), &counts);
            eprintln!("seed {seed}: {} sources in {:.1} s", run.checkpoints.last().map_or(0, |c| c.0), run.time());
            run
        })
        .collect();
    let overlap = |a: &[u32], b: &[u32]| a.iter().filter(|node| b.contains(node)).count();
    let pairs: Vec<(usize, usize)> = (0..runs.len()).flat_map(|a| (a + 1..runs.len()).map(move |b| (a, b))).collect();
    let mut rows = Vec::new();
    for (index, (sources, _, _)) in runs[0].checkpoints.iter().enumerate() {
        let tops: Vec<&Vec<u32>> = runs.iter().map(|run| &run.checkpoints[index].1).collect();
        let seconds: Vec<f64> = runs.iter().map(|run| run.checkpoints[index].2).collect();
        rows.push(json!({
            "sources": sources,
            "overlap": pairs.iter().map(|&(a, b)| overlap(tops[a], tops[b])).collect::<Vec<_>>(),
            "identical": tops.windows(2).all(|pair| pair[0] == pair[1]),
            "seconds": seconds,
        }));
    }
    let settled: Vec<_> = args
        .z
        .iter()
        .enumerate()
        .map(|(index, z)| {
            let points: Vec<_> = runs.iter().map(|run| run.settled[index].clone()).collect();
            let all = points.iter().all(Option::is_some);
            let tops: Vec<Vec<u32>> = points.iter().flatten().map(|(_, top, _)| top.clone()).collect();
            json!({
                "z": z,
                "sources": points.iter().map(|point| point.as_ref().map(|p| p.0)).collect::<Vec<_>>(),
                "seconds": points.iter().map(|point| point.as_ref().map(|p| p.2)).collect::<Vec<_>>(),
                "overlap": if all {
                    pairs.iter().map(|&(a, b)| overlap(&tops[a], &tops[b])).collect::<Vec<_>>()
                } else {
                    Vec::new()
                },
                "identical": all && tops.windows(2).all(|pair| pair[0] == pair[1]),
            })
        })
        .collect();
    let report = json!({
        "nodes": snapshot.node_count(),
        "candidates": visible.len(),
        "arcs": (0..snapshot.node_count() as u32).map(|node| { let mut d = 0; walk.neighbors(node, |_, _| d += 1); d }).sum::<usize>(),
        "degree_one": degree_one,
        "sampled": sampled.len(),
        "flatten_seconds": flatten_seconds,
        "seeds": args.seeds,
        "threads": args.threads,
        "top": args.top,
        "checkpoints": rows,
        "settled": settled,
        "final_places": runs.iter().map(|run| run.tail.iter().map(|&(node, score, error)| json!([snapshot.stakeholder(node).0, score, error])).collect::<Vec<_>>()).collect::<Vec<_>>(),
        "final_tops": runs.iter().map(|run| run.checkpoints.last().map(|c| c.1.iter().map(|&node| snapshot.stakeholder(node).0).collect::<Vec<_>>())).collect::<Vec<_>>(),
    });
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    println!(
        "{} stakeholders ({} candidates, {} of them with one neighbour; {} sampled), {} arcs followed; flat copy {:.2} s",
        report["nodes"], report["candidates"], report["degree_one"], report["sampled"], report["arcs"], flatten_seconds
    );
    let names: Vec<String> = pairs.iter().map(|&(a, b)| format!("{}∩{}", args.seeds[a], args.seeds[b])).collect();
    println!("\ntop-{} overlap across seeds {:?}, {} threads per seed", args.top, args.seeds, args.threads);
    println!("| sources | {} | identical (ordered) | seconds per seed |", names.join(" | "));
    println!("|---|{}---|---|", "---|".repeat(names.len()));
    for row in &rows {
        let overlaps: Vec<String> = row["overlap"].as_array().unwrap().iter().map(|v| v.to_string()).collect();
        let seconds: Vec<String> =
            row["seconds"].as_array().unwrap().iter().map(|v| format!("{:.1}", v.as_f64().unwrap())).collect();
        println!("| {} | {} | {} | {} |", row["sources"], overlaps.join(" | "), row["identical"], seconds.join(" / "));
    }
    for (seed, run) in args.seeds.iter().zip(&runs) {
        let places: Vec<String> = run
            .tail
            .iter()
            .map(|&(node, score, error)| format!("{}: {:.0} ± {:.0}", snapshot.stakeholder(node).0, score, error))
            .collect();
        println!(
            "seed {seed}, the first {} places at the end (stakeholder: estimate ± standard error): {}",
            places.len(),
            places.join(", ")
        );
    }
    println!("\nstopping rule (checked every {} sources): first point where it held, per seed", args.chunk);
    for entry in &settled {
        println!(
            "z = {}: sources {}, seconds {}, top-{} overlap {}, identical {}",
            entry["z"], entry["sources"], entry["seconds"], args.top, entry["overlap"], entry["identical"]
        );
    }
    Ok(())
}

/// Sources per timed chunk of `--per-source`.
const PER_SOURCE_CHUNK: usize = 8;

/// `sources` on this thread, a chunk at a time: milliseconds per source (mean over all, and the spread over the
/// chunks) and the betweenness sums.
fn per_source(arcs: &Arcs, sources: &[u32]) -> serde_json::Value {
    let mut sums = vec![0.0; arcs.node_count()];
    let mut chunk_ms = Vec::new();
    let started = Instant::now();
    for chunk in sources.chunks(PER_SOURCE_CHUNK) {
        let chunk_started = Instant::now();
        let found = weighted_dependencies(arcs, chunk, None, None).expect("no deadline");
        chunk_ms.push(chunk_started.elapsed().as_secs_f64() * 1000.0 / chunk.len() as f64);
        for (sum, more) in sums.iter_mut().zip(found.sums()) {
            *sum += more;
        }
    }
    let mean_ms = started.elapsed().as_secs_f64() * 1000.0 / sources.len().max(1) as f64;
    chunk_ms.sort_by(f64::total_cmp);
    let at = |share: f64| chunk_ms.get(((chunk_ms.len() - 1) as f64 * share).round() as usize).copied();
    json!({
        "sources": sources,
        "mean_ms": mean_ms,
        "median_ms": at(0.5),
        "p10_ms": at(0.1),
        "p90_ms": at(0.9),
        "sums": sums,
    })
}

impl Run {
    fn time(&self) -> f64 {
        self.checkpoints.last().map_or(0.0, |c| c.2)
    }
}

/// Sources in `order`, a chunk at a time on `args.threads` threads, added in chunk order.
fn sample(
    args: &Args,
    arcs: &Arcs,
    folding: &Folding,
    order: &[u32],
    population: usize,
    counts: &impl Fn(u32) -> bool,
) -> Run {
    let started = Instant::now();
    let chunks: Vec<&[u32]> = order.chunks(args.chunk).collect();
    let mut estimate = Estimate::new(arcs.node_count(), population).with_offset(folding.extra.clone());
    let mut run = Run { tail: Vec::new(), checkpoints: Vec::new(), settled: vec![None; args.z.len()] };
    let mut next_checkpoint = args.chunk;
    // Rounds of `threads` chunks at a time: each thread takes the next chunk; results are added in order.
    let mut start = 0;
    while start < chunks.len() {
        let end = (start + args.threads.max(1) * 4).min(chunks.len());
        let results: Vec<Mutex<Option<Dependencies>>> = (start..end).map(|_| Mutex::new(None)).collect();
        let next = AtomicUsize::new(start);
        std::thread::scope(|scope| {
            for _ in 0..args.threads.max(1) {
                scope.spawn(|| loop {
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    if index >= end {
                        break;
                    }
                    let found =
                        weighted_dependencies(arcs, chunks[index], Some(&folding.weight), None).expect("no deadline");
                    *results[index - start].lock().unwrap() = Some(found);
                });
            }
        });
        for result in results {
            estimate.add(&result.into_inner().unwrap().expect("computed"));
            let seconds = started.elapsed().as_secs_f64();
            for (index, z) in args.z.iter().enumerate() {
                if run.settled[index].is_none() && estimate.settled(args.top, *z, counts) {
                    run.settled[index] = Some((estimate.sources(), estimate.top(args.top, counts), seconds));
                }
            }
            if estimate.sources() >= next_checkpoint || estimate.sources() == order.len() {
                let top = estimate.top(args.top, counts);
                eprintln!("checkpoint: {} sources, {seconds:.1} s, top {top:?}", estimate.sources());
                run.checkpoints.push((estimate.sources(), top, seconds));
                next_checkpoint = estimate.sources() * 2;
            }
        }
        start = end;
    }
    let (scores, errors) = (estimate.scores(), estimate.standard_errors());
    run.tail = estimate
        .top(args.top * 2, counts)
        .into_iter()
        .map(|node| (node, scores[node as usize], errors[node as usize]))
        .collect();
    run
}
