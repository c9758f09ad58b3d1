"""Stakegraph's graph engine against python-igraph and networkx, on exactly the same graph.

    pip install -r bench/requirements.txt
    python3 bench/peers.py --build

builds the two release binaries, writes the demo database (100,000 stakeholders, 1,000,000 relationships) on
first use, exports it, runs the engine bench and then the peers, all on one pinned core, and prints per operation
(strongest path, 5 strongest loopless paths, weighted PageRank, reach) each tool's mean time per query, the ratios
igraph/Stakegraph and networkx/Stakegraph, and whether the answers agree; report.md and report.json go beside
the export. Exit status: 0 answers agree, 1 an answer differs, 2 setup failed. `--help` lists the knobs.
"""

from __future__ import annotations

import os

# Every tool gets one core: keep numeric libraries from starting thread pools of their own.
for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")

import argparse
import csv
import importlib.util
import itertools
import json
import math
import random
import shutil
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

try:
    import igraph
    import numpy as np
except ImportError as error:
    sys.exit(f"peers.py needs {error.name}: pip install -r bench/requirements.txt")

REPO = Path(__file__).resolve().parent.parent
BUILD_COMMAND = ["cargo", "build", "--release", "--bin", "stakegraph", "--example", "engine-bench"]
ANCHOR = "2026-06-01"
AS_OF = f"{ANCHOR}T00:00:00Z"
SCORE_TOLERANCE = 1e-9
PAGERANK_TOLERANCE = 1e-6
DAMPING = 0.85
# How much faster Stakegraph must be (igraph time / Stakegraph time) for the acceptance targets.
TARGETS = {"strongest path": 10.0, "k strongest paths": 20.0, "pagerank": 1.0}

EXIT_DIFFERENT = 1
EXIT_SETUP = 2


class SetupError(Exception):
    """The run could not be set up; the message tells the user what to do."""


# ---------------------------------------------------------------------------------------------------------------
# Command line


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows defaults, except the unset ones whose help says what they default to."""

    def _get_help_string(self, action):
        unset = action.default is None or action.default is False
        return action.help if unset else super()._get_help_string(action)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Compare Stakegraph's graph engine with python-igraph and networkx on the demo graph.",
        formatter_class=HelpFormatter,
    )
    binaries = parser.add_argument_group("binaries and data")
    binaries.add_argument("--stakegraph", type=Path, default=REPO / "target/release/stakegraph",
                          help="the release binary (demo, export-graph)")
    binaries.add_argument("--engine-bench", type=Path, default=REPO / "target/release/examples/engine-bench",
                          help="the engine bench binary")
    binaries.add_argument("--build", action="store_true", help="run `" + " ".join(BUILD_COMMAND) + "` first")
    binaries.add_argument("--size", type=int, default=100_000, help="stakeholders in the demo graph")
    binaries.add_argument("--relationships", type=int, default=1_000_000, help="relationships in the demo graph")
    binaries.add_argument("--demo-seed", type=int, default=42, help="seed of the demo generator")
    binaries.add_argument("--db", type=Path,
                          help="demo database [default: target/bench-data/demo-<size>-r<rels>-seed<s>-2026-06-01.db]")
    binaries.add_argument("--out", type=Path,
                          help="export and report directory [default: target/bench-data/export-<size>-<rels>/]")

    queries = parser.add_argument_group("queries")
    queries.add_argument("--seed", type=int, default=7, help="seed for picking the query pairs")
    queries.add_argument("--pairs", type=int, default=20, help="strongest-path queries")
    queries.add_argument("--unreachable-pairs", type=int, default=1,
                         help="extra strongest-path queries whose target has no usable edge (no path; timed apart)")
    queries.add_argument("--k-pairs", type=int, default=5, help="k-strongest-paths queries (the first pairs)")
    queries.add_argument("--k", type=int, default=5, help="paths per k-strongest-paths query")
    queries.add_argument("--reach-sources", type=int, default=3, help="reach queries")
    queries.add_argument("--min-strength", type=float, default=0.05, help="edges weaker than this are dropped")
    queries.add_argument("--min-score", type=float, default=0.01, help="reach keeps nodes with at least this score")
    queries.add_argument("--max-hops", type=int, default=64, help="the engine's hop bound for paths")
    queries.add_argument("--core", type=int, default=0, help="the one CPU core every tool runs on")
    queries.add_argument("--pagerank-runs", type=int, default=3, help="igraph PageRank runs (the fastest counts)")

    peers = parser.add_argument_group("networkx (slow: seconds per k-paths or reach query on the full graph)")
    peers.add_argument("--networkx", action="store_true", help="run networkx on every query")
    peers.add_argument("--networkx-pairs", type=int, default=3,
                       help="otherwise: networkx on this many queries of each kind (0: no networkx)")
    peers.add_argument("--networkx-pagerank", action="store_true", help="also time networkx PageRank (slow)")
    args = parser.parse_args(argv)

    if args.db is None:
        name = f"demo-{args.size}-r{args.relationships}-seed{args.demo_seed}-{ANCHOR}.db"
        args.db = REPO / "target/bench-data" / name
    if args.out is None:
        args.out = REPO / "target/bench-data" / f"export-{args.size}-{args.relationships}"
    # Commands run in the repository root: paths given relative to where the user stands must survive that.
    for name in ("stakegraph", "engine_bench", "db", "out"):
        setattr(args, name, getattr(args, name).absolute())
    return args


# ---------------------------------------------------------------------------------------------------------------
# Preparing: binaries, database, export


def run_command(command: list[str], what: str) -> None:
    print("$ " + " ".join(str(part) for part in command), flush=True)
    result = subprocess.run([str(part) for part in command], cwd=REPO)
    if result.returncode != 0:
        raise SetupError(f"{what} failed (exit status {result.returncode})")


def ensure_binaries(args: argparse.Namespace) -> None:
    if args.build:
        run_command(BUILD_COMMAND, "the build")
    missing = [path for path in (args.stakegraph, args.engine_bench) if not path.exists()]
    if missing:
        names = ", ".join(str(path) for path in missing)
        raise SetupError(f"missing {names}; build them with:\n    {' '.join(BUILD_COMMAND)}\n"
                         "(or run this script with --build)")


def ensure_database(args: argparse.Namespace) -> None:
    if args.db.exists():
        print(f"demo database: {args.db}")
        return
    args.db.parent.mkdir(parents=True, exist_ok=True)
    command = [args.stakegraph, "demo", "--size", args.size, "--relationships", args.relationships,
               "--seed", args.demo_seed, "--anchor", ANCHOR, "--db", args.db]
    try:
        run_command(command, "writing the demo database")
    except BaseException:
        # A half-written database would be taken as finished by the next run.
        for suffix in ("", "-wal", "-shm"):
            Path(f"{args.db}{suffix}").unlink(missing_ok=True)
        raise


def export_graph(args: argparse.Namespace) -> None:
    args.out.mkdir(parents=True, exist_ok=True)
    for name in ("nodes.csv", "edges.csv", "stakegraph.json", "report.md", "report.json"):
        (args.out / name).unlink(missing_ok=True)  # never compare against a stale file
    run_command([args.stakegraph, "export-graph", "--db", args.db, "--format", "csv", "--out", args.out,
                 "--as-of", AS_OF], "exporting the graph")


# ---------------------------------------------------------------------------------------------------------------
# Loading the export and building the peers' graphs


@dataclass
class Export:
    nodes: int
    source: np.ndarray  # node index per edges.csv row
    target: np.ndarray
    strength: np.ndarray


@dataclass
class EdgeSet:
    """Undirected edges as parallel arrays (u, v, strength)."""

    u: np.ndarray
    v: np.ndarray
    strength: np.ndarray

    def __len__(self) -> int:
        return len(self.u)


def column_positions(path: Path, wanted: list[str]) -> list[int]:
    with path.open(newline="") as file:
        header = next(csv.reader(file), [])
    missing = [name for name in wanted if name not in header]
    if missing:
        raise SetupError(f"{path}: header {header} lacks {missing}")
    return [header.index(name) for name in wanted]


def load_export(directory: Path) -> Export:
    nodes_path, edges_path = directory / "nodes.csv", directory / "edges.csv"
    (index_column,) = column_positions(nodes_path, ["index"])
    with nodes_path.open(newline="") as file:
        rows = csv.reader(file)
        next(rows)
        indices = [int(row[index_column]) for row in rows]
    if indices != list(range(len(indices))):
        raise SetupError(f"{nodes_path}: `index` is not 0..n-1 in row order")

    columns = column_positions(edges_path, ["source", "target", "strength"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # an empty edge list is legal
        table = np.loadtxt(edges_path, delimiter=",", skiprows=1, usecols=columns, dtype=np.float64,
                           quotechar='"', ndmin=2)
    source, target, strength = table[:, 0].astype(np.int64), table[:, 1].astype(np.int64), table[:, 2]
    nodes = len(indices)
    if len(source) and (min(source.min(), target.min()) < 0 or max(source.max(), target.max()) >= nodes):
        raise SetupError(f"{edges_path}: a source/target is not a node index")
    if len(strength) and (np.isnan(strength).any() or strength.min() < 0.0 or strength.max() > 1.0):
        raise SetupError(f"{edges_path}: a strength lies outside [0, 1]")
    return Export(nodes, source, target, strength)


def usable_edges(export: Export, min_strength: float) -> EdgeSet:
    """The edges every tool works on: at least min_strength, above 0, no self-loops (as in the engine)."""
    # The engine keeps strengths as f32 and compares them with min_strength rounded to f32: do the same, so that
    # a strength on the threshold is in or out for every tool alike.
    strong = export.strength.astype(np.float32) >= np.float32(min_strength)
    keep = strong & (export.strength > 0.0) & (export.source != export.target)
    return EdgeSet(export.source[keep], export.target[keep], export.strength[keep])


def strongest_of_parallel(edges: EdgeSet) -> EdgeSet:
    """One edge per node pair, the strongest: a path takes no other, and k-path search must not count parallel
    edges as different paths."""
    low, high = np.minimum(edges.u, edges.v), np.maximum(edges.u, edges.v)
    order = np.lexsort((-edges.strength, high, low))
    low, high, strength = low[order], high[order], edges.strength[order]
    first = np.ones(len(low), dtype=bool)
    first[1:] = (low[1:] != low[:-1]) | (high[1:] != high[:-1])
    return EdgeSet(low[first], high[first], strength[first])


def igraph_graph(nodes: int, edges: EdgeSet) -> igraph.Graph:
    graph = igraph.Graph(n=nodes, edges=np.column_stack([edges.u, edges.v]).tolist(), directed=False)
    graph.es["strength"] = edges.strength.tolist()
    # -ln(1.0) is -0.0; abs keeps igraph from seeing a "negative" weight.
    graph.es["weight"] = np.abs(-np.log(edges.strength)).tolist()
    return graph


# ---------------------------------------------------------------------------------------------------------------
# Queries


@dataclass
class Queries:
    pairs: list[tuple[int, int]]  # the last ones (--unreachable-pairs) target nodes without usable edges
    k_pairs: list[tuple[int, int]]
    reach_sources: list[int]


def pick_queries(args: argparse.Namespace, nodes: int, paths: EdgeSet) -> Queries:
    rng = random.Random(args.seed)
    connected = np.zeros(nodes, dtype=bool)
    connected[paths.u] = True
    connected[paths.v] = True
    candidates = np.flatnonzero(connected).tolist()
    isolated = np.flatnonzero(~connected).tolist()
    if len(candidates) < 2:
        raise SetupError(f"fewer than two nodes have an edge of strength >= {args.min_strength}")
    pairs = distinct_pairs(rng, candidates, candidates, args.pairs)
    unreachable = distinct_pairs(rng, candidates, isolated, min(args.unreachable_pairs, len(isolated)))
    reach_sources = rng.sample(candidates, min(args.reach_sources, len(candidates)))
    return Queries(pairs + unreachable, pairs[: args.k_pairs], reach_sources)


def distinct_pairs(rng: random.Random, sources: list[int], targets: list[int], count: int) -> list[tuple[int, int]]:
    """`count` different (source, target) pairs, source != target, in the order drawn (fewer if there are not
    that many)."""
    count = min(count, len(sources) * len(targets) - len(set(sources) & set(targets)))
    pairs: dict[tuple[int, int], None] = {}
    while len(pairs) < count:
        pair = (rng.choice(sources), rng.choice(targets))
        if pair[0] != pair[1]:
            pairs.setdefault(pair)
    return list(pairs)


def write_queries(directory: Path, queries: Queries) -> None:
    with (directory / "pairs.csv").open("w", newline="") as file:
        writer = csv.writer(file, lineterminator="\n")
        writer.writerow(["source", "target"])
        writer.writerows(queries.pairs)
    with (directory / "reach.csv").open("w", newline="") as file:
        writer = csv.writer(file, lineterminator="\n")
        writer.writerow(["source"])
        writer.writerows([source] for source in queries.reach_sources)


# ---------------------------------------------------------------------------------------------------------------
# One core for everybody


def pin_to_core(core: int) -> list[str]:
    """Pins this process to `core`; returns the command prefix that pins a child process there too."""
    if hasattr(os, "sched_setaffinity"):
        if core not in os.sched_getaffinity(0):
            raise SetupError(f"core {core} is not available here (--core)")
        os.sched_setaffinity(0, {core})
    return ["taskset", "-c", str(core)] if shutil.which("taskset") else []


# ---------------------------------------------------------------------------------------------------------------
# Running the tools


def run_engine(args: argparse.Namespace, queries: Queries, pin: list[str]) -> dict:
    out = args.out / "stakegraph.json"
    command = pin + [args.engine_bench, "--db", args.db, "--as-of", AS_OF, "--pairs", args.out / "pairs.csv",
                     "--k-pairs", len(queries.k_pairs), "--k", args.k, "--reach", args.out / "reach.csv",
                     "--min-strength", args.min_strength, "--min-score", args.min_score,
                     "--max-hops", args.max_hops, "--out", out]
    run_command(command, "the engine bench")
    try:
        return json.loads(out.read_text())
    except (OSError, ValueError) as error:
        raise SetupError(f"the engine bench wrote no readable {out}: {error}") from error


@dataclass
class PathAnswer:
    score: float | None
    hops: int | None
    seconds: float
    nodes: list[int] = field(default_factory=list)


@dataclass
class PathsAnswer:
    scores: list[float]
    hops: list[int]
    seconds: float


@dataclass
class ReachAnswer:
    scores: dict[int, float]  # nodes kept (score >= min score), source excluded
    near: dict[int, float]  # every node within the tolerance of the threshold or above: for borderline calls
    seconds: float


@dataclass
class PeerAnswers:
    name: str
    load_seconds: float
    strongest: dict[tuple[int, int], PathAnswer] = field(default_factory=dict)
    k_strongest: dict[tuple[int, int], PathsAnswer] = field(default_factory=dict)
    pagerank: np.ndarray | None = None
    pagerank_seconds: float | None = None
    reach: dict[int, ReachAnswer] = field(default_factory=dict)
    method: dict[str, str] = field(default_factory=dict)
    # Largest |product of strengths - exp(-sum of weights)| over the paths it returned.
    score_forms_max_diff: float = 0.0

    def methods_used(self) -> dict[str, str]:
        ran = {"strongest path": bool(self.strongest), "k strongest paths": bool(self.k_strongest),
               "pagerank": self.pagerank is not None, "reach": bool(self.reach)}
        return {operation: call for operation, call in self.method.items() if ran[operation]}


def timed(call):
    start = time.perf_counter()
    result = call()
    return result, time.perf_counter() - start


def reach_from_scores(scores: dict[int, float], source: int, min_score: float, seconds: float) -> ReachAnswer:
    near = {node: score for node, score in scores.items()
            if node != source and score >= min_score - SCORE_TOLERANCE}
    kept = {node: score for node, score in near.items() if score >= min_score}
    return ReachAnswer(kept, near, seconds)


class IgraphPeer:
    def __init__(self, nodes: int, paths: EdgeSet, pagerank_edges: EdgeSet):
        start = time.perf_counter()
        self.paths = igraph_graph(nodes, paths)
        self.pagerank_graph = igraph_graph(nodes, pagerank_edges)
        self.load_seconds = time.perf_counter() - start
        self.strength = self.paths.es["strength"]
        self.weight = self.paths.es["weight"]
        self.answers = PeerAnswers("igraph", self.load_seconds, method={
            "strongest path": 'get_shortest_paths(s, to=t, weights="weight", output="epath")',
            "k strongest paths": 'get_k_shortest_paths(s, to=t, k=k, weights="weight", mode="all", output="epath")',
            "pagerank": 'pagerank(weights="strength", damping=0.85, directed=False, implementation="prpack")',
            "reach": 'distances(source=s, weights="weight")',
        })

    def path_answer(self, edge_path: list[int], seconds: float) -> PathAnswer:
        if not edge_path:
            return PathAnswer(None, None, seconds)
        product = math.prod(self.strength[edge] for edge in edge_path)
        by_weights = math.exp(-sum(self.weight[edge] for edge in edge_path))
        self.answers.score_forms_max_diff = max(self.answers.score_forms_max_diff, abs(product - by_weights))
        return PathAnswer(product, len(edge_path), seconds)

    def strongest(self, source: int, target: int) -> None:
        edge_paths, seconds = timed(lambda: self.paths.get_shortest_paths(
            source, to=target, weights="weight", output="epath"))
        self.answers.strongest[(source, target)] = self.path_answer(edge_paths[0], seconds)

    def k_strongest(self, source: int, target: int, k: int) -> None:
        edge_paths, seconds = timed(lambda: self.paths.get_k_shortest_paths(
            source, to=target, k=k, weights="weight", mode="all", output="epath"))
        answers = [self.path_answer(edge_path, 0.0) for edge_path in edge_paths if edge_path]
        ranked = sorted(answers, key=lambda answer: -answer.score)
        self.answers.k_strongest[(source, target)] = PathsAnswer(
            [answer.score for answer in ranked], [answer.hops for answer in ranked], seconds)

    def pagerank(self, runs: int) -> None:
        self.answers.method["pagerank"] += f" (the fastest of {max(1, runs)} runs counts)"
        best = math.inf
        for _ in range(max(1, runs)):
            values, seconds = timed(lambda: self.pagerank_graph.pagerank(
                weights="strength", damping=DAMPING, directed=False, implementation="prpack"))
            best = min(best, seconds)
        self.answers.pagerank, self.answers.pagerank_seconds = np.asarray(values), best

    def reach(self, source: int, min_score: float) -> None:
        rows, seconds = timed(lambda: self.paths.distances(source=[source], weights="weight"))
        scores = np.exp(-np.asarray(rows[0]))
        near = np.flatnonzero(scores >= min_score - SCORE_TOLERANCE)
        self.answers.reach[source] = reach_from_scores(
            dict(zip(near.tolist(), scores[near].tolist())), source, min_score, seconds)


class NetworkxPeer:
    def __init__(self, nx_module, nodes: int, paths: EdgeSet):
        self.nx = nx_module
        start = time.perf_counter()
        self.graph = nx_module.Graph()
        self.graph.add_nodes_from(range(nodes))
        weights = np.abs(-np.log(paths.strength)).tolist()
        self.graph.add_edges_from(
            (u, v, {"weight": weight, "strength": strength})
            for u, v, strength, weight in zip(paths.u.tolist(), paths.v.tolist(), paths.strength.tolist(), weights))
        self.answers = PeerAnswers("networkx", time.perf_counter() - start, method={
            "strongest path": 'bidirectional_dijkstra(G, s, t, weight="weight")',
            "k strongest paths": 'islice(shortest_simple_paths(G, s, t, weight="weight"), k)',
            "pagerank": 'pagerank(G, alpha=0.85, weight="strength", tol=1e-7/n, max_iter=1000)',
            "reach": 'single_source_dijkstra_path_length(G, s, cutoff=-ln(min_score), weight="weight")',
        })

    def node_path_answer(self, nodes: list[int], seconds: float) -> PathAnswer:
        product = math.prod(self.graph[u][v]["strength"] for u, v in zip(nodes, nodes[1:]))
        return PathAnswer(product, len(nodes) - 1, seconds, nodes)

    def strongest(self, source: int, target: int) -> None:
        def search():
            try:
                return self.nx.bidirectional_dijkstra(self.graph, source, target, weight="weight")[1]
            except self.nx.NetworkXNoPath:
                return None
        nodes, seconds = timed(search)
        answer = self.node_path_answer(nodes, seconds) if nodes else PathAnswer(None, None, seconds)
        self.answers.strongest[(source, target)] = answer

    def k_strongest(self, source: int, target: int, k: int) -> None:
        def search():
            try:
                return list(itertools.islice(
                    self.nx.shortest_simple_paths(self.graph, source, target, weight="weight"), k))
            except self.nx.NetworkXNoPath:
                return []
        paths, seconds = timed(search)
        ranked = sorted((self.node_path_answer(nodes, 0.0) for nodes in paths), key=lambda answer: -answer.score)
        self.answers.k_strongest[(source, target)] = PathsAnswer(
            [answer.score for answer in ranked], [answer.hops for answer in ranked], seconds)

    def pagerank(self, pagerank_edges: EdgeSet, nodes: int) -> None:
        # Parallel edges add up, as in a MultiGraph, at a fraction of a MultiGraph's load time.
        summed = self.nx.Graph()
        summed.add_nodes_from(range(nodes))
        for u, v, strength in zip(pagerank_edges.u.tolist(), pagerank_edges.v.tolist(),
                                  pagerank_edges.strength.tolist()):
            data = summed.get_edge_data(u, v)
            if data is None:
                summed.add_edge(u, v, strength=strength)
            else:
                data["strength"] += strength
        # networkx stops when the L1 change is below n * tol.
        ranks, seconds = timed(lambda: self.nx.pagerank(
            summed, alpha=DAMPING, weight="strength", tol=1e-7 / max(nodes, 1), max_iter=1000))
        self.answers.pagerank = np.array([ranks[node] for node in range(nodes)])
        self.answers.pagerank_seconds = seconds

    def reach(self, source: int, min_score: float) -> None:
        # Just past the threshold, so that nodes on it are seen for the borderline calls.
        cutoff = -math.log(max(min_score - SCORE_TOLERANCE, sys.float_info.min))
        lengths, seconds = timed(lambda: self.nx.single_source_dijkstra_path_length(
            self.graph, source, cutoff=cutoff, weight="weight"))
        scores = {node: math.exp(-length) for node, length in lengths.items()}
        self.answers.reach[source] = reach_from_scores(scores, source, min_score, seconds)


def run_igraph(args, queries: Queries, nodes: int, paths: EdgeSet, pagerank_edges: EdgeSet) -> IgraphPeer:
    print("igraph: loading", flush=True)
    peer = IgraphPeer(nodes, paths, pagerank_edges)
    print(f"igraph: loaded in {peer.load_seconds:.2f} s; querying", flush=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # "Couldn't reach some vertices" is an answer here
        for source, target in queries.pairs:
            peer.strongest(source, target)
        for source, target in queries.k_pairs:
            peer.k_strongest(source, target, args.k)
        peer.pagerank(args.pagerank_runs)
        for source in queries.reach_sources:
            peer.reach(source, args.min_score)
    return peer


def run_networkx(args, queries: Queries, nodes: int, paths: EdgeSet, pagerank_edges: EdgeSet) -> PeerAnswers | None:
    if not args.networkx and args.networkx_pairs <= 0 and not args.networkx_pagerank:
        return None
    try:
        import networkx
    except ImportError:
        raise SetupError("networkx is not installed: pip install -r bench/requirements.txt") from None
    if args.networkx_pagerank and importlib.util.find_spec("scipy") is None:  # networkx's PageRank runs on it
        raise SetupError("scipy is not installed: pip install -r bench/requirements.txt")
    limit = None if args.networkx else args.networkx_pairs
    print("networkx: loading", flush=True)
    peer = NetworkxPeer(networkx, nodes, paths)
    print(f"networkx: loaded in {peer.answers.load_seconds:.2f} s; querying", flush=True)
    for source, target in queries.pairs[:limit]:
        peer.strongest(source, target)
    for source, target in queries.k_pairs[:limit]:
        peer.k_strongest(source, target, args.k)
    for source in queries.reach_sources[:limit]:
        peer.reach(source, args.min_score)
    if args.networkx_pagerank:
        peer.pagerank(pagerank_edges, nodes)
    return peer.answers


# ---------------------------------------------------------------------------------------------------------------
# The engine's answers, read into the same shapes


@dataclass
class EngineAnswers:
    graph: dict
    strongest: dict[tuple[int, int], PathAnswer]
    k_strongest: dict[tuple[int, int], PathsAnswer]
    pagerank: np.ndarray
    pagerank_seconds: float
    pagerank_iterations: int | None
    reach: dict[int, ReachAnswer]
    reach_min_scores: dict[int, float]


def read_engine(report: dict) -> EngineAnswers:
    try:
        strongest = {
            (entry["source"], entry["target"]): PathAnswer(
                entry["score"], entry.get("hops"), float(entry["seconds"]), list(entry.get("path") or []))
            for entry in report["strongest"]}
        k_strongest = {
            (entry["source"], entry["target"]): PathsAnswer(list(entry["scores"]), [], float(entry["seconds"]))
            for entry in report["k_strongest"]}
        reach = {
            entry["source"]: ReachAnswer({int(node): score for node, score in entry["scores"].items()}, {},
                                         float(entry["seconds"]))
            for entry in report["reach"]}
        return EngineAnswers(
            graph=report["graph"],
            strongest=strongest,
            k_strongest=k_strongest,
            pagerank=np.asarray(report["pagerank"]["values"], dtype=np.float64),
            pagerank_seconds=float(report["pagerank"]["seconds"]),
            pagerank_iterations=report["pagerank"].get("iterations"),
            reach=reach,
            reach_min_scores={entry["source"]: entry.get("min_score") for entry in report["reach"]},
        )
    except (KeyError, TypeError, ValueError) as error:
        raise SetupError(f"stakegraph.json does not follow the contract: {error!r}") from error


# ---------------------------------------------------------------------------------------------------------------
# Comparing


@dataclass
class Check:
    """How one peer's answers to one operation compare with the engine's."""

    compared: int = 0
    max_diff: float = 0.0
    mismatches: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def difference(self, diff: float) -> None:
        self.max_diff = max(self.max_diff, diff)

    @property
    def identical(self) -> bool:
        return not self.mismatches


class PathChecker:
    """Checks a path the engine returned against the graph the peers use."""

    def __init__(self, graph: igraph.Graph, min_strength: float):
        self.graph = graph
        self.strength = graph.es["strength"]
        self.min_strength = min_strength

    def problem(self, pair: tuple[int, int], answer: PathAnswer) -> str | None:
        nodes = answer.nodes
        if not nodes or nodes[0] != pair[0] or nodes[-1] != pair[1]:
            return f"path {nodes[:4]}... does not run from {pair[0]} to {pair[1]}"
        if len(set(nodes)) != len(nodes):
            return "path visits a node twice"
        if answer.hops is not None and answer.hops != len(nodes) - 1:
            return f"hops {answer.hops} but the path has {len(nodes) - 1} edges"
        product = 1.0
        for u, v in zip(nodes, nodes[1:]):
            edge = self.graph.get_eid(u, v, directed=False, error=False)
            if edge < 0:
                return f"path uses {u}-{v}, which is no edge of strength >= {self.min_strength}"
            product *= self.strength[edge]
        if abs(product - answer.score) > SCORE_TOLERANCE:
            return f"path's strength product {product!r} differs from its score {answer.score!r}"
        return None


def pair_label(pair) -> str:
    return f"{pair[0]}->{pair[1]}"


def compare_strongest(engine: EngineAnswers, peer: PeerAnswers, checker: PathChecker | None,
                      max_hops: int) -> Check:
    check = Check()
    for pair, expected in peer.strongest.items():
        got = engine.strongest.get(pair)
        if got is None:
            check.mismatches.append(f"{pair_label(pair)}: missing from stakegraph.json")
            continue
        beyond = expected.hops is not None and expected.hops > max_hops
        check.compared += not beyond
        if got.score is None or expected.score is None:
            if got.score != expected.score and not beyond:
                check.mismatches.append(f"{pair_label(pair)}: stakegraph {got.score}, {peer.name} {expected.score}")
        else:
            diff = abs(got.score - expected.score)
            if diff > SCORE_TOLERANCE and not beyond:
                check.mismatches.append(
                    f"{pair_label(pair)}: stakegraph {got.score!r}, {peer.name} {expected.score!r} (diff {diff:.3g})")
            elif not beyond:
                check.difference(diff)
            if checker and (problem := checker.problem(pair, got)):
                check.mismatches.append(f"{pair_label(pair)}: stakegraph's {problem}")
        if beyond:
            check.notes.append(f"{pair_label(pair)}: {peer.name}'s strongest path has {expected.hops} hops "
                               f"> max hops {max_hops}; not compared")
    return check


def compare_k_strongest(engine: EngineAnswers, peer: PeerAnswers, max_hops: int) -> Check:
    check = Check()
    for pair, expected in peer.k_strongest.items():
        got = engine.k_strongest.get(pair)
        if got is None:
            check.mismatches.append(f"{pair_label(pair)}: missing from stakegraph.json")
            continue
        if any(hops > max_hops for hops in expected.hops):
            check.notes.append(f"{pair_label(pair)}: a {peer.name} path is longer than {max_hops} hops; not compared")
            continue
        check.compared += 1
        got_scores = sorted(got.scores, reverse=True)
        if len(got_scores) != len(expected.scores):
            check.mismatches.append(f"{pair_label(pair)}: stakegraph {len(got_scores)} paths, "
                                    f"{peer.name} {len(expected.scores)}")
            continue
        if got.scores != got_scores:
            check.notes.append(f"{pair_label(pair)}: stakegraph's scores are not in descending order")
        diffs = [abs(a - b) for a, b in zip(got_scores, expected.scores)]
        worst = max(diffs, default=0.0)
        if worst > SCORE_TOLERANCE:
            rank = diffs.index(worst)
            check.mismatches.append(f"{pair_label(pair)}: path #{rank + 1} stakegraph {got_scores[rank]!r}, "
                                    f"{peer.name} {expected.scores[rank]!r} (diff {worst:.3g})")
        else:
            check.difference(worst)
    return check


def compare_pagerank(engine: EngineAnswers, values: np.ndarray | None, name: str) -> Check:
    check = Check()
    if values is None:
        return check
    check.compared = 1
    if len(engine.pagerank) != len(values):
        check.mismatches.append(f"stakegraph has {len(engine.pagerank)} values, {name} {len(values)}")
        return check
    distance = float(np.abs(engine.pagerank - values).sum())
    check.difference(distance)
    if not distance < PAGERANK_TOLERANCE:
        worst = int(np.argmax(np.abs(engine.pagerank - values)))
        check.mismatches.append(f"L1 distance {distance:.3g} >= {PAGERANK_TOLERANCE:g} (largest at node {worst}: "
                                f"stakegraph {float(engine.pagerank[worst])!r}, {name} {float(values[worst])!r})")
    total = float(engine.pagerank.sum())
    if abs(total - 1.0) > PAGERANK_TOLERANCE:
        check.notes.append(f"stakegraph's values sum to {total!r}, not 1")
    return check


def compare_reach(engine: EngineAnswers, peer: PeerAnswers, min_score: float) -> Check:
    check = Check()
    for source, expected in peer.reach.items():
        got = engine.reach.get(source)
        if got is None:
            check.mismatches.append(f"from {source}: missing from stakegraph.json")
            continue
        check.compared += 1
        if engine.reach_min_scores.get(source) not in (None, min_score):
            check.notes.append(f"from {source}: stakegraph used min_score {engine.reach_min_scores[source]}")
        problems = []
        for node in sorted(got.scores.keys() | expected.scores.keys()):
            mine, theirs = got.scores.get(node), expected.scores.get(node)
            if mine is not None and theirs is not None:
                diff = abs(mine - theirs)
                if diff > SCORE_TOLERANCE:
                    problems.append(f"node {node}: stakegraph {mine!r}, {peer.name} {theirs!r}")
                else:
                    check.difference(diff)
            elif node == source:
                problems.append(f"node {node}: stakegraph lists the source itself")
            elif mine is not None and node in expected.near and abs(mine - expected.near[node]) <= SCORE_TOLERANCE:
                continue  # both put it on the threshold; either side of it is right
            elif theirs is not None and theirs - min_score <= SCORE_TOLERANCE:
                continue
            else:
                problems.append(f"node {node}: stakegraph {mine}, {peer.name} {theirs}")
        if problems:
            shown = "; ".join(problems[:3])
            check.mismatches.append(f"from {source}: {len(problems)} nodes differ ({shown})")
    return check


# ---------------------------------------------------------------------------------------------------------------
# The report


def mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


@dataclass
class Row:
    operation: str
    queries: int
    stakegraph: float | None
    igraph: float | None
    networkx: float | None = None
    networkx_queries: int = 0
    stakegraph_on_networkx_queries: float | None = None
    igraph_check: Check = field(default_factory=Check)
    networkx_check: Check | None = None

    @property
    def igraph_ratio(self) -> float | None:
        return ratio(self.igraph, self.stakegraph)

    @property
    def networkx_ratio(self) -> float | None:
        return ratio(self.networkx, self.stakegraph_on_networkx_queries)

    @property
    def target(self) -> float | None:
        return TARGETS.get(self.operation)

    @property
    def target_met(self) -> bool | None:
        if self.target is None or self.igraph_ratio is None:
            return None
        return self.igraph_ratio >= self.target

    @property
    def identical(self) -> bool:
        return self.igraph_check.identical and (self.networkx_check is None or self.networkx_check.identical)


def ratio(peer: float | None, engine: float | None) -> float | None:
    if peer is None or engine is None:
        return None
    return peer / engine if engine > 0 else math.inf


def timing_rows(operation: str, keys: list, engine_times: dict, igraph: dict, networkx: dict | None) -> Row:
    networkx_keys = [key for key in keys if networkx and key in networkx]
    return Row(
        operation=operation,
        queries=len(keys),
        stakegraph=mean([engine_times[key] for key in keys if key in engine_times]),
        igraph=mean([igraph[key].seconds for key in keys]),
        networkx=mean([networkx[key].seconds for key in networkx_keys]) if networkx_keys else None,
        networkx_queries=len(networkx_keys),
        stakegraph_on_networkx_queries=mean([engine_times[key] for key in networkx_keys if key in engine_times]),
    )


def build_rows(engine: EngineAnswers, igraph_answers: PeerAnswers, networkx_answers: PeerAnswers | None,
               queries: Queries, checker: PathChecker, args) -> list[Row]:
    nx_strongest = networkx_answers.strongest if networkx_answers else None
    connected = [pair for pair in queries.pairs if igraph_answers.strongest[pair].score is not None]
    disconnected = [pair for pair in queries.pairs if igraph_answers.strongest[pair].score is None]
    engine_path_times = {pair: answer.seconds for pair, answer in engine.strongest.items()}

    rows = [timing_rows("strongest path", connected, engine_path_times, igraph_answers.strongest, nx_strongest)]
    rows[0].igraph_check = compare_strongest(engine, igraph_answers, checker, args.max_hops)
    if networkx_answers and networkx_answers.strongest:
        rows[0].networkx_check = compare_strongest(engine, networkx_answers, None, args.max_hops)
    if disconnected:
        rows.append(timing_rows("strongest path, no path", disconnected, engine_path_times,
                                igraph_answers.strongest, nx_strongest))

    k_row = timing_rows("k strongest paths", queries.k_pairs,
                        {pair: answer.seconds for pair, answer in engine.k_strongest.items()},
                        igraph_answers.k_strongest, networkx_answers.k_strongest if networkx_answers else None)
    k_row.igraph_check = compare_k_strongest(engine, igraph_answers, args.max_hops)
    if networkx_answers and networkx_answers.k_strongest:
        k_row.networkx_check = compare_k_strongest(engine, networkx_answers, args.max_hops)
    rows.append(k_row)

    pagerank_row = Row("pagerank", 1, engine.pagerank_seconds, igraph_answers.pagerank_seconds)
    pagerank_row.igraph_check = compare_pagerank(engine, igraph_answers.pagerank, "igraph")
    if networkx_answers and networkx_answers.pagerank is not None:
        pagerank_row.networkx = networkx_answers.pagerank_seconds
        pagerank_row.networkx_queries = 1
        pagerank_row.stakegraph_on_networkx_queries = engine.pagerank_seconds
        pagerank_row.networkx_check = compare_pagerank(engine, networkx_answers.pagerank, "networkx")
    rows.append(pagerank_row)

    reach_row = timing_rows("reach", queries.reach_sources,
                            {source: answer.seconds for source, answer in engine.reach.items()},
                            igraph_answers.reach, networkx_answers.reach if networkx_answers else None)
    reach_row.igraph_check = compare_reach(engine, igraph_answers, args.min_score)
    if networkx_answers and networkx_answers.reach:
        reach_row.networkx_check = compare_reach(engine, networkx_answers, args.min_score)
    rows.append(reach_row)
    return rows


def pagerank_hint(rows: list[Row], engine: EngineAnswers, export: Export) -> str | None:
    """When PageRank differs, say whether the engine ranked the unfiltered graph instead (a contract question)."""
    pagerank_row = next(row for row in rows if row.operation == "pagerank")
    if pagerank_row.igraph_check.identical:
        return None
    everything = usable_edges(export, 0.0)  # zero strengths add nothing to PageRank
    values = igraph_graph(export.nodes, everything).pagerank(
        weights="strength", damping=DAMPING, directed=False, implementation="prpack")
    if len(values) != len(engine.pagerank):
        return None
    distance = float(np.abs(engine.pagerank - np.asarray(values)).sum())
    if distance < PAGERANK_TOLERANCE:
        return (f"hint: stakegraph's PageRank equals igraph's over ALL edges (no min-strength filter; "
                f"L1 {distance:.3g}): the engine does not drop weak edges for PageRank")
    return None


def seconds_text(value: float | None) -> str:
    if value is None:
        return "-"
    if value >= 1:
        return f"{value:.2f} s"
    if value >= 1e-3:
        return f"{value * 1e3:.2f} ms"
    return f"{value * 1e6:.1f} µs"


def ratio_text(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.1f}x" if value >= 1 else f"{value:.2f}x"


def check_text(check: Check | None, name: str) -> str:
    if check is None or check.compared == 0:
        return f"{name}: not compared"
    if check.identical:
        return f"{name}: identical (max |diff| = {check.max_diff:.3g}, {check.compared} compared)"
    return (f"{name}: FAIL ({len(check.mismatches)} mismatches in {check.compared} compared: "
            f"{'; '.join(check.mismatches[:3])})")


def target_text(row: Row) -> str:
    if row.target is None:
        return "-"
    verdict = {True: "met", False: "NOT met", None: "unmeasured"}[row.target_met]
    return f">= {row.target:g}x: {verdict}"


def graph_line(engine: EngineAnswers) -> str:
    graph = engine.graph
    return (f"graph: {graph.get('stakeholders')} stakeholders, {graph.get('relationships')} relationships; "
            f"engine build {seconds_text(graph.get('build_seconds'))}, {graph.get('bytes')} bytes "
            f"({graph.get('bytes_per_relationship')} per relationship)")


def graph_problems(engine: EngineAnswers, export: Export, edge_rows: int) -> list[str]:
    graph = engine.graph
    problems = []
    if graph.get("stakeholders") != export.nodes:
        problems.append(f"engine has {graph.get('stakeholders')} stakeholders, the export {export.nodes}")
    if graph.get("relationships") != edge_rows:
        problems.append(f"engine has {graph.get('relationships')} relationships, the export {edge_rows}")
    return problems


def render_text(rows: list[Row], context: dict) -> str:
    lines = [context["graph_line"], context["edges_line"], context["load_line"]]
    lines += [f"FAIL graph: {problem}" for problem in context["graph_problems"]]
    for row in rows:
        lines.append("")
        unit = "run" if row.operation == "pagerank" else "query" if row.queries == 1 else "queries"
        lines.append(f"{row.operation} ({row.queries} {unit}):")
        lines.append(f"  stakegraph {seconds_text(row.stakegraph)}   igraph {seconds_text(row.igraph)}"
                     f"   igraph/stakegraph {ratio_text(row.igraph_ratio)}   target {target_text(row)}")
        if row.networkx is not None:
            lines.append(f"  networkx {seconds_text(row.networkx)} on {row.networkx_queries} "
                         f"(stakegraph {seconds_text(row.stakegraph_on_networkx_queries)} on the same)"
                         f"   networkx/stakegraph {ratio_text(row.networkx_ratio)}")
        if row.operation != "strongest path, no path":
            lines.append("  answers " + check_text(row.igraph_check, "vs igraph"))
            if row.networkx_check is not None:
                lines.append("  answers " + check_text(row.networkx_check, "vs networkx"))
        for note in row.igraph_check.notes + (row.networkx_check.notes if row.networkx_check else []):
            lines.append(f"  note: {note}")
    lines.append("")
    lines += [f"igraph {operation}: {call}" for operation, call in context["igraph_methods"].items()]
    lines += [f"networkx {operation}: {call}" for operation, call in context["networkx_methods"].items()]
    lines += context["sanity"]
    if context["hint"]:
        lines.append(context["hint"])
    lines.append("")
    lines.append("answers: identical" if context["identical"] else "answers: FAIL (see above)")
    return "\n".join(lines)


def render_markdown(rows: list[Row], context: dict) -> str:
    lines = ["# Stakegraph vs igraph and networkx", "", f"- {context['graph_line']}", f"- {context['edges_line']}",
             f"- {context['load_line']}", f"- one core (core {context['core']}) for every tool; "
             f"times are means per query; ratios are peer time / Stakegraph time", ""]
    lines += [f"- **FAIL graph**: {problem}" for problem in context["graph_problems"]]
    lines += ["| operation | queries | Stakegraph | igraph | igraph/Stakegraph | target | networkx (queries) "
              "| networkx/Stakegraph | answers |", "|---|---:|---:|---:|---:|---|---:|---:|---|"]
    for row in rows:
        networkx = f"{seconds_text(row.networkx)} ({row.networkx_queries})" if row.networkx is not None else "-"
        if row.operation == "strongest path, no path":
            answers = "(with strongest path)"
        else:
            answers = "; ".join(filter(None, [check_text(row.igraph_check, "igraph"),
                                              row.networkx_check and check_text(row.networkx_check, "networkx")]))
        lines.append(f"| {row.operation} | {row.queries} | {seconds_text(row.stakegraph)} | "
                     f"{seconds_text(row.igraph)} | {ratio_text(row.igraph_ratio)} | {target_text(row)} | "
                     f"{networkx} | {ratio_text(row.networkx_ratio)} | {answers.replace('|', chr(92) + '|')} |")
    lines += ["", "Calls timed:", ""]
    for peer in ("igraph", "networkx"):
        lines += [f"- {operation}, {peer}: `{call}`" for operation, call in context[f"{peer}_methods"].items()]
    lines.append("")
    lines += [f"- {line}" for line in context["sanity"]]
    if context["hint"]:
        lines.append(f"- {context['hint']}")
    lines.append("")
    lines.append("**Answers: identical.**" if context["identical"] else "**Answers: FAIL.**")
    return "\n".join(lines) + "\n"


def check_json(check: Check | None) -> dict | None:
    if check is None:
        return None
    return {"compared": check.compared, "identical": check.identical, "max_abs_diff": check.max_diff,
            "mismatches": check.mismatches, "notes": check.notes}


def render_json(rows: list[Row], context: dict, engine: EngineAnswers) -> str:
    operations = [{
        "operation": row.operation,
        "queries": row.queries,
        "stakegraph_mean_seconds": row.stakegraph,
        "igraph_mean_seconds": row.igraph,
        "igraph_ratio": row.igraph_ratio,
        "target_ratio": row.target,
        "target_met": row.target_met,
        "networkx_queries": row.networkx_queries,
        "networkx_mean_seconds": row.networkx,
        "stakegraph_mean_seconds_on_networkx_queries": row.stakegraph_on_networkx_queries,
        "networkx_ratio": row.networkx_ratio,
        "igraph_answers": check_json(row.igraph_check),
        "networkx_answers": check_json(row.networkx_check),
    } for row in rows]
    document = {
        "graph": engine.graph,
        "export": context["export"],
        "load_seconds": context["load_seconds"],
        "settings": context["settings"],
        "methods": {"igraph": context["igraph_methods"], "networkx": context["networkx_methods"]},
        "pagerank_iterations": engine.pagerank_iterations,
        "operations": operations,
        "graph_problems": context["graph_problems"],
        "sanity": context["sanity"],
        "hint": context["hint"],
        "identical": context["identical"],
    }
    return json.dumps(document, indent=2, default=plain_value) + "\n"


def plain_value(value):
    """numpy scalars as plain numbers for json."""
    return value.item() if hasattr(value, "item") else str(value)


def report_context(args, export: Export, usable: EdgeSet, paths: EdgeSet, engine: EngineAnswers,
                   igraph_answers: PeerAnswers, networkx_answers: PeerAnswers | None, rows: list[Row]) -> dict:
    """Everything the text, Markdown and JSON reports say besides the rows."""
    problems = graph_problems(engine, export, len(export.source))
    identical = not problems and all(row.identical for row in rows)
    return {
        "graph_line": graph_line(engine),
        "edges_line": (f"export: {export.nodes} nodes, {len(export.source)} edges; {len(usable)} of strength >= "
                       f"{args.min_strength} (PageRank), {len(paths)} node pairs after keeping the strongest of "
                       "parallel edges (paths, reach)"),
        "load_line": (f"peer load (not in ratios): igraph {seconds_text(igraph_answers.load_seconds)}"
                      + (f", networkx {seconds_text(networkx_answers.load_seconds)}" if networkx_answers else "")),
        "export": {"nodes": export.nodes, "edges": len(export.source), "usable_edges": len(usable),
                   "node_pairs": len(paths)},
        "load_seconds": {"igraph": igraph_answers.load_seconds,
                         "networkx": networkx_answers.load_seconds if networkx_answers else None},
        "settings": {"seed": args.seed, "min_strength": args.min_strength, "min_score": args.min_score,
                     "max_hops": args.max_hops, "k": args.k, "damping": DAMPING, "core": args.core,
                     "as_of": AS_OF, "pagerank_runs": args.pagerank_runs,
                     "igraph": igraph.__version__, "python": sys.version.split()[0]},
        "core": args.core,
        "igraph_methods": igraph_answers.methods_used(),
        "networkx_methods": networkx_answers.methods_used() if networkx_answers else {},
        "graph_problems": problems,
        "sanity": [f"sanity: igraph path scores as product of strengths vs exp(-sum of weights): max |diff| = "
                   f"{igraph_answers.score_forms_max_diff:.3g}"],
        "hint": pagerank_hint(rows, engine, export),
        "identical": identical,
    }


# ---------------------------------------------------------------------------------------------------------------


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    ensure_binaries(args)
    ensure_database(args)
    export_graph(args)

    export = load_export(args.out)
    usable = usable_edges(export, args.min_strength)
    paths = strongest_of_parallel(usable)
    queries = pick_queries(args, export.nodes, paths)
    write_queries(args.out, queries)

    pin = pin_to_core(args.core)
    engine = read_engine(run_engine(args, queries, pin))
    igraph_peer = run_igraph(args, queries, export.nodes, paths, usable)
    igraph_answers = igraph_peer.answers
    networkx_answers = run_networkx(args, queries, export.nodes, paths, usable)

    checker = PathChecker(igraph_peer.paths, args.min_strength)
    rows = build_rows(engine, igraph_answers, networkx_answers, queries, checker, args)
    context = report_context(args, export, usable, paths, engine, igraph_answers, networkx_answers, rows)
    print()
    print(render_text(rows, context))
    (args.out / "report.md").write_text(render_markdown(rows, context))
    (args.out / "report.json").write_text(render_json(rows, context, engine))
    print(f"\nreport: {args.out / 'report.md'}, {args.out / 'report.json'}")
    return 0 if context["identical"] else EXIT_DIFFERENT


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except SetupError as error:
        print(f"peers.py: {error}", file=sys.stderr)
        sys.exit(EXIT_SETUP)
