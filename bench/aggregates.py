"""How long the chart aggregates take over HTTP on a large graph, cold (the first request after a write, which
makes a new snapshot and a new version of the records; the histories the trends need are read once, by the first
request after the start, timed apart) and memoised (the same request again), against the same
counts done by SQLite's GROUP BY on the same file (issue 13, target 5: ≤ 50 ms cold, ≤ 5 ms memoised).

    cargo build --release --bin stakegraph
    python3 bench/aggregates.py --graph target/bench-data/demo-100000-r1000000-seed42-2026-06-01.db

Serves a copy of --graph (`serve --demo`: anonymous reads on loopback) with the release binary pinned to the first core (the client on the second), waits for
the projection, then for each round and each case: one `upsertRelationship` (new trust on a random relationship, as
an editor) and one `updateCustomer` (new power on a random customer), the case once (cold), then --repeats times (memoised). Cases: the whole stakeholder listing's
`aggregate`, the graph's `relationships { aggregate }` unfiltered and for one market, the first page (20) of the
graph's relationships strongest first and most weakened first, the weakening ones' aggregate, `marketOverview`, and `exitAnalysis` over the demo's two years (all customers, and one segment). The SQL peer counts stakeholders by kind and relationships between live
stakeholders by level with GROUP BY (no strength: SQL does not have the model), and exits by reason over the two
years from the stored records' lifecycles (json_each), on a read-only connection to the
same copy, timed on the client's core. Prints the median and spread (min-max) of each in milliseconds.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import random
import secrets
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from serving import free_port, pinned, post, wait_ready, wait_readyz  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent

CASES = {
    "stakeholders.aggregate": "{ stakeholders(first: 0) { aggregate { count byKind { key count } byMarket { key count }"
    " byStatus { key count } byMendelow { key count } } } }",
    "relationships.aggregate": "{ relationships(first: 0) { aggregate { count meanStrength strengthHistogram(buckets: 10)"
    " { key count } byLevel { key count } byType { key count } byMarket { key count } } } }",
    "relationships.aggregate(market)": "{ relationships(first: 0, filter: { markets: [SUPPLIER] }) { aggregate { count"
    " meanStrength strengthHistogram(buckets: 10) { key count } byLevel { key count } } } }",
    "relationships(first: 20, STRENGTH_DESC)": "{ relationships(first: 20, orderBy: STRENGTH_DESC) { edges { node { id"
    " strength { score } } } } }",
    "exitAnalysis(two years)": "{ exitAnalysis(from: \"2024-06-01\", to: \"2026-06-01\") { customersAtStart churned"
    " churnRate exits lifetimeValueLost winBacks byReason { reason exits share lifetimeValueLost }"
    " controllable { exits lifetimeValueLost } months { from customersAtStart churned exits lifetimeValueLost"
    " winBacks } } }",
    "marketOverview": "{ marketOverview { market stakeholders relationships meanStrength strengthTrend bondCoverage"
    " weakening byLevel { key count } byBond { key count } byMendelow { key count } stakeholdersByKind { key count }"
    " topInfluencers(first: 5) { weightedDegree stakeholder { id } } } }",
    "relationships(first: 20, TREND_ASC)": "{ relationships(first: 20, orderBy: TREND_ASC) { edges { node { id } } } }",
    "relationships.aggregate(maxTrend: -0.05)": "{ relationships(first: 0, filter: { maxTrend: -0.05 }) { aggregate"
    " { count meanStrength meanTrend } } }",
    "exitAnalysis(two years, ENTERPRISE)": "{ exitAnalysis(from: \"2024-06-01\", to: \"2026-06-01\", filter:"
    " { segments: [\"ENTERPRISE\"] }) { customersAtStart churned exits byReason { reason exits } months { exits } } }",
}

PEER = {
    "stakeholders by kind": "SELECT kind, COUNT(*) FROM stakeholder WHERE archived_at IS NULL GROUP BY kind",
    "relationships by level": "SELECT r.level, COUNT(*) FROM relationship r JOIN stakeholder a ON a.id = r.from_id"
    " JOIN stakeholder b ON b.id = r.to_id WHERE a.archived_at IS NULL AND b.archived_at IS NULL GROUP BY r.level",
    "exits by reason over two years": "SELECT json_extract(e.value, '$.reason'), COUNT(*),"
    " TOTAL(json_extract(s.record, '$.details.lifetime_value')) FROM stakeholder s,"
    " json_each(json_extract(s.record, '$.details.lifecycle')) e WHERE s.kind = 'CUSTOMER' AND s.archived_at IS NULL"
    " AND json_extract(e.value, '$.event') = 'EXIT' AND json_extract(e.value, '$.date') >= '2024-06-01'"
    " AND json_extract(e.value, '$.date') < '2026-06-01' GROUP BY 1",
}


def timed(url: str, query: str) -> float:
    started = time.perf_counter()
    answer = post(url, {"query": query}, timeout=60)
    elapsed = (time.perf_counter() - started) * 1e3
    if answer.get("errors"):
        sys.exit(f"aggregates.py: {query} failed: {json.dumps(answer['errors'])}")
    return elapsed


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} ({min(values):.2f}-{max(values):.2f})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--graph", default="target/bench-data/demo-100000-r1000000-seed42-2026-06-01.db")
    parser.add_argument("--binary", default=str(ROOT / "target" / "release" / "stakegraph"))
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=20)
    arguments = parser.parse_args()
    if not os.path.exists(arguments.graph):
        print(f"aggregates.py: no graph at {arguments.graph}; write it with `stakegraph demo --size 100000 "
              "--relationships 1000000 --anchor 2026-06-01 --db PATH`", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="stakegraph-aggregates-", dir=os.path.dirname(os.path.abspath(arguments.graph))))
    try:
        db = work / "graph.db"
        for suffix in ("", "-wal"):
            if os.path.exists(arguments.graph + suffix):
                shutil.copyfile(arguments.graph + suffix, f"{db}{suffix}")
        config = work / "stakegraph.toml"
        config.write_text("[limits]\nrequests_per_second_per_key = 1000000\nanalyses_per_minute_per_key = 1000000\n")
        key = secrets.token_hex(24)
        port = free_port()
        url = f"http://127.0.0.1:{port}/graphql"
        environment = dict(os.environ, RUST_LOG="warn", STAKEGRAPH_CONFIG=str(config),
                           STAKEGRAPH_API_KEYS=f"editor:{key}")
        server = subprocess.Popen(pinned("0", [arguments.binary, "serve", "--demo", "--listen", f"127.0.0.1:{port}", "--db",
                                               str(db)]), env=environment)
        try:
            if hasattr(os, "sched_setaffinity"):
                os.sched_setaffinity(0, {1})
            wait_ready(url, "stakegraph serve")
            wait_readyz(f"http://127.0.0.1:{port}/readyz")
            reader = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
            rows = reader.execute(
                "SELECT from_id, to_id, type FROM relationship WHERE id % 997 = 0 ORDER BY id LIMIT 1000").fetchall()
            customers = [row[0] for row in reader.execute(
                "SELECT id FROM stakeholder WHERE kind = 'CUSTOMER' AND archived_at IS NULL AND id % 97 = 0 LIMIT 1000")]
            touch = "mutation($input: UpdateCustomerInput!) { updateCustomer(input: $input) { id } }"
            rng = random.Random(7)
            write = ("mutation($input: UpsertRelationshipInput!) { upsertRelationship(input: $input) { created } }")

            def global_id(number: int) -> str:
                return base64.urlsafe_b64encode(f"Stakeholder:{number}".encode()).decode().rstrip("=")

            # The first request that needs the trends reads the histories of every relationship with an interaction
            # in the last 30 days (the engine keeps them after that).
            first_trends = timed(url, CASES["marketOverview"])
            cold: dict[str, list[float]] = {name: [] for name in CASES}
            warm: dict[str, list[float]] = {name: [] for name in CASES}
            for _ in range(arguments.rounds):
                for name, query in CASES.items():
                    from_, to, rel_type = rng.choice(rows)
                    written = {"from": global_id(from_), "to": global_id(to), "type": rel_type,
                               "trust": round(rng.random(), 3)}
                    answer = post(url, {"query": write, "variables": {"input": written}}, key)
                    if answer.get("errors"):
                        sys.exit(f"aggregates.py: the write failed: {json.dumps(answer['errors'])}")
                    # A stakeholder's change too: stakeholder tallies outlive changes of relationships alone.
                    touched = {"id": global_id(rng.choice(customers)), "power": round(rng.random(), 3)}
                    answer = post(url, {"query": touch, "variables": {"input": touched}}, key)
                    if answer.get("errors"):
                        sys.exit(f"aggregates.py: the write failed: {json.dumps(answer['errors'])}")
                    cold[name].append(timed(url, query))
                    warm[name].extend(timed(url, query) for _ in range(arguments.repeats))
            peer = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
            sql: dict[str, list[float]] = {name: [] for name in PEER}
            for _ in range(arguments.rounds):
                for name, text in PEER.items():
                    started = time.perf_counter()
                    peer.execute(text).fetchall()
                    sql[name].append((time.perf_counter() - started) * 1e3)
        finally:
            server.terminate()
            server.wait(timeout=30)
        print(f"load average at the end (1, 5, 15 min): {os.getloadavg()}")
        print(f"first marketOverview after the start (reads the recent histories): {first_trends:.1f} ms")
        print("| request | cold, ms (median, min-max) | memoised, ms |")
        print("|---|---|---|")
        for name in CASES:
            print(f"| {name} | {spread(cold[name])} | {spread(warm[name])} |")
        print("| SQLite GROUP BY (peer) | ms (median, min-max) | |")
        for name in PEER:
            print(f"| {name} | {spread(sql[name])} | |")
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
