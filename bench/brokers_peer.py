"""The cost of one betweenness source, Stakegraph's engine against python-igraph, on exactly the same graph.

    python3 bench/brokers_peer.py --db /tmp/demo-100k.db --sources 64 --rounds 3

exports the database's graph at a fixed time (`stakegraph export-graph`, as bench/peers.py does), has
`brokers-bench --per-source` time single-source Brandes searches of the engine (`engine::brokers`, no leaf folding)
for a seeded sample of sources and write their betweenness sums, then times igraph's weighted betweenness from
the same sources (`Graph.betweenness(sources=…)`, weight −ln(strength): the strongest path is the shortest; one
edge per pair of stakeholders, the strongest, as the engine reads parallel relationships as one link; edges below
`--min-strength` left out), all on one pinned core, rounds interleaved. Prints milliseconds per source for both
(each round's mean, then the median of the rounds), the ratio igraph / Stakegraph per round, and how far the two
tools' sums differ (the tools break ties between path scores differently: igraph compares sums of logarithms with
a tolerance, the engine products exactly). Exit status: 0 ran, 2 setup failed.
"""

from __future__ import annotations

import os

for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from peers import AS_OF, REPO, igraph_graph, load_export, pin_to_core, strongest_of_parallel, usable_edges  # noqa: E402


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--db", type=Path, required=True, help="the database (stakegraph demo --size 100000)")
    parser.add_argument("--target-dir", type=Path, default=Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target")),
                        help="where the release binaries are")
    parser.add_argument("--out", type=Path, default=None, help="export directory [default: beside the binaries]")
    parser.add_argument("--sources", type=int, default=64, help="sources per round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds, each tool in turn")
    parser.add_argument("--seed", type=int, default=1, help="seed of the sample of sources")
    parser.add_argument("--min-strength", type=float, default=0.05, help="weakest relationship followed")
    parser.add_argument("--core", type=int, default=1, help="the core every tool runs on")
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    release = args.target_dir / "release"
    out = args.out or args.target_dir / "bench-data" / f"brokers-{args.db.stem}"
    out.mkdir(parents=True, exist_ok=True)
    pin = pin_to_core(args.core)
    if not (out / "edges.csv").exists():
        subprocess.run([release / "stakegraph", "export-graph", "--db", args.db, "--format", "csv", "--out", out,
                        "--as-of", AS_OF], check=True, stdout=subprocess.DEVNULL)
    export = load_export(out)
    edges = strongest_of_parallel(usable_edges(export, args.min_strength))
    graph = igraph_graph(export.nodes, edges)
    print(f"{export.nodes} stakeholders, {len(edges)} linked pairs at min strength {args.min_strength}", flush=True)

    engine_ms, igraph_ms, differences = [], [], []
    for round_index in range(args.rounds):
        report = out / f"engine-{round_index}.json"
        subprocess.run(pin + [release / "examples" / "brokers-bench", "--db", args.db, "--as-of", AS_OF,
                              "--min-strength", str(args.min_strength), "--seeds", str(args.seed),
                              "--per-source", str(args.sources), "--json"],
                       check=True, stdout=report.open("w"), stderr=subprocess.DEVNULL)
        engine = json.loads(report.read_text())
        sources, sums = engine["per_source"]["sources"], engine["per_source"]["sums"]
        engine_ms.append(engine["per_source"]["mean_ms"])

        started = time.perf_counter()
        found = graph.betweenness(directed=False, weights="weight", sources=sources)
        igraph_ms.append((time.perf_counter() - started) * 1000 / len(sources))

        # igraph counts each pair once on an undirected graph; the engine counts it from its source: double.
        found = [2 * value for value in found]
        total = sum(sums)
        differences.append(sum(abs(a - b) for a, b in zip(found, sums)) / total if total else 0.0)
        print(f"round {round_index + 1}: engine {engine_ms[-1]:.2f} ms/source, igraph {igraph_ms[-1]:.2f} ms/source,"
              f" ratio {igraph_ms[-1] / engine_ms[-1]:.2f}, sums differ by {differences[-1]:.2e} of the total",
              flush=True)

    ratios = [i / e for i, e in zip(igraph_ms, engine_ms)]
    print(json.dumps({
        "sources_per_round": args.sources,
        "engine_ms_per_source": engine_ms,
        "igraph_ms_per_source": igraph_ms,
        "ratio_igraph_over_engine": ratios,
        "median": {"engine": statistics.median(engine_ms), "igraph": statistics.median(igraph_ms),
                   "ratio": statistics.median(ratios)},
        "relative_difference_of_sums": differences,
    }, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
