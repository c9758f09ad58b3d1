"""How long churn risk and a relationship manager's portfolio take over HTTP on a large graph (issue 13, points 4
and 8): one customer's `churnRisk`, the churn risks of a page of 20 customers, `atRiskCustomers` over the customers
of the manager with the most and over the whole graph (top 10 and top 50, with how many customers each scored),
and that manager's `portfolio` (every managed customer's churn risk and the
manager's key-person report).

    cargo build --release --bin stakegraph
    python3 bench/churn.py --graph target/bench-data/demo-100000-r1000000-seed42-2026-06-01.db

Serves a copy of --graph (`serve --demo`: anonymous reads on loopback) with the release binary pinned to the first
core, the client on the second, waits for the projection, then sends each request --repeats times and prints the
median and spread (min-max) in milliseconds. Nothing is memoised between repeats: each churn risk reads its
principal relationship's history (the DataLoader's cache lives one request) and forecasts.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
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


def global_id(number: int) -> str:
    return base64.urlsafe_b64encode(f"Stakeholder:{number}".encode()).decode().rstrip("=")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--graph", default="target/bench-data/demo-100000-r1000000-seed42-2026-06-01.db")
    parser.add_argument("--binary", default=str(ROOT / "target" / "release" / "stakegraph"))
    parser.add_argument("--repeats", type=int, default=7)
    arguments = parser.parse_args()
    if not os.path.exists(arguments.graph):
        print(f"churn.py: no graph at {arguments.graph}; write it with `stakegraph demo --size 100000 "
              "--relationships 1000000 --anchor 2026-06-01 --db PATH`", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="stakegraph-churn-", dir=os.path.dirname(os.path.abspath(arguments.graph))))
    try:
        db = work / "graph.db"
        for suffix in ("", "-wal"):
            if os.path.exists(arguments.graph + suffix):
                shutil.copyfile(arguments.graph + suffix, f"{db}{suffix}")
        manager, managed = sqlite3.connect(f"file:{db}?mode=ro", uri=True).execute(
            "SELECT from_id, COUNT(*) FROM relationship WHERE type = 'MANAGES' GROUP BY from_id"
            " ORDER BY COUNT(*) DESC, from_id LIMIT 1").fetchone()
        config = work / "stakegraph.toml"
        config.write_text("[limits]\nrequests_per_second_per_key = 1000000\nanalyses_per_minute_per_key = 1000000\n")
        port = free_port()
        url = f"http://127.0.0.1:{port}/graphql"
        environment = dict(os.environ, RUST_LOG="warn", STAKEGRAPH_CONFIG=str(config))
        server = subprocess.Popen(pinned("0", [arguments.binary, "serve", "--demo", "--listen", f"127.0.0.1:{port}",
                                               "--db", str(db)]), env=environment)
        cases = {
            "churnRisk of one customer, every driver": (
                "{ stakeholders(first: 1, filter: { kinds: [CUSTOMER], status: [AT_RISK] }) { edges { node {"
                " ... on Customer { churnRisk { score drivers { name value weight contribution } } } } } } }", {}),
            "churnRisk of a page of 20 customers": (
                "{ stakeholders(first: 20, filter: { kinds: [CUSTOMER], status: [ACTIVE, AT_RISK] }) { edges { node {"
                " ... on Customer { churnRisk { score valueAtRisk } } } } } }", {}),
            f"atRiskCustomers of the busiest manager's customers, top 10": (
                "query($id: ID!) { atRiskCustomers(first: 10, filter: { manager: $id }) { candidates customers {"
                " position customer { id } churnRisk { score valueAtRisk } } } }",
                {"id": global_id(manager)}),
            "atRiskCustomers graph-wide, top 10": (
                "{ atRiskCustomers(first: 10) { candidates scored customers { position customer { id }"
                " churnRisk { score valueAtRisk } } } }", {}),
            "atRiskCustomers graph-wide, top 50": (
                "{ atRiskCustomers(first: 50) { candidates scored customers { position customer { id }"
                " churnRisk { score valueAtRisk } } } }", {}),
            f"portfolio of the busiest manager ({managed} MANAGES relationships)": (
                "query($id: ID!) { node(id: $id) { ... on Employee { portfolio { customers activeCustomers"
                " meanStrength atRisk lifetimeValue valueAtRisk keyPersonLoss { affected totalLoss } } } } }",
                {"id": global_id(manager)}),
        }
        results: dict[str, list[float]] = {name: [] for name in cases}
        scored: dict[str, tuple[int, int]] = {}
        try:
            if hasattr(os, "sched_setaffinity"):
                os.sched_setaffinity(0, {1})
            wait_ready(url, "stakegraph serve")
            wait_readyz(f"http://127.0.0.1:{port}/readyz")
            for _ in range(arguments.repeats):
                for name, (query, variables) in cases.items():
                    started = time.perf_counter()
                    answer = post(url, {"query": query, "variables": variables}, timeout=120)
                    results[name].append((time.perf_counter() - started) * 1e3)
                    if answer.get("errors"):
                        sys.exit(f"churn.py: {name} failed: {json.dumps(answer['errors'])}")
                    ranking = (answer.get("data") or {}).get("atRiskCustomers")
                    if ranking and "scored" in ranking:
                        scored[name] = (ranking["scored"], ranking["candidates"])
        finally:
            server.terminate()
            server.wait(timeout=30)
        print(f"load average at the end (1, 5, 15 min): {os.getloadavg()}")
        print("| request | ms (median, min-max) |")
        print("|---|---|")
        for name, values in results.items():
            print(f"| {name} | {statistics.median(values):.1f} ({min(values):.1f}-{max(values):.1f}) |")
        for name, (count, candidates) in scored.items():
            print(f"{name}: {count} of {candidates} candidates scored")
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
