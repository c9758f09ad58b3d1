"""Stakegraph's serving speed against a graphql-js peer, on the same SQLite file, with the same query.

    npm_config_nodedir=/usr npm ci --prefix bench/peer-js   # the peer (graphql-js 16, graphql-http, dataloader,
                                                            # better-sqlite3, built from source against Node 20)
    cargo build --release --bin stakegraph
    apt-get install wrk                          # the load generator
    python3 bench/serving.py                     # --help for the knobs

writes the demo database on first use (`stakegraph demo`, 3,000 stakeholders by default, into
target/bench-data/serving-<size>.db), starts `stakegraph serve` and the peer (`node bench/peer-js/server.mjs`) over
it, both pinned to the first core, checks that both answer the dashboard query identically
(`bench/peer-js/compare.mjs`), then runs `wrk` pinned to the second core against each in turn: for every round,
for every number of connections (1, 4, 16, 64), Stakegraph then the peer (the order alternates between rounds).
It prints req/s, p50 and p99 of each, the ratio Stakegraph ÷ peer per round and its spread. Exit status: 0
measured, 1 the answers differ, 2 setup failed.

The query is `queries/dashboard_page.graphql` (50 customers, each with manager and 5 relationships with their other
ends), with `--strength` each relationship's `strength { score }` too. Stakegraph runs with its per-key request
rate lifted (anonymous callers share one budget, which `wrk` would exhaust at once) and otherwise its defaults.

With `--writer RATE` (issue 12, target 1: "the same while a writer makes 10 mutations a second"), threads pinned
to the load generator's core post RATE mutations a second to Stakegraph while each wrk run lasts (open loop: on
schedule, whether or not the earlier ones were answered), for both servers' runs (the peer reads the writes from
the shared file; both serve a copy of the database made for this invocation): `upsertRelationship` setting new
`trust` and `commitment` (read by the dashboard query, and components of `strength`) on a random relationship of
the dashboard's first page, as an editor (a key is configured for it; the dashboard is still read anonymously).
Each answer must echo the values written. The writer starts after the answers were compared; once the timed
rounds are over they are compared again, with every write in place. The writes made and failed (and their
p50/p99) are reported per run.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import random
import secrets
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PEER = ROOT / "bench" / "peer-js"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def query_text(strength: bool) -> str:
    text = (ROOT / "queries" / "dashboard_page.graphql").read_text()
    if strength:
        text = text.replace("node { id type level trust commitment }", "node { id type level trust commitment strength { score } }")
        if "strength { score }" not in text:
            sys.exit("serving.py: cannot add strength to queries/dashboard_page.graphql (it changed); update serving.py")
    return text


def wait_ready(url: str, what: str, seconds: float = 120.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            body = json.dumps({"query": "{ __typename }"}).encode()
            request = urllib.request.Request(url, body, {"Content-Type": "application/json"})
            with urllib.request.urlopen(request, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    sys.exit(f"serving.py: {what} did not answer at {url} within {seconds:.0f} s")


def wait_readyz(url: str, seconds: float = 300.0) -> None:
    """Stakegraph serves at once and builds its projection in the background; measure only once it is built."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    sys.exit(f"serving.py: {url} did not answer 200 within {seconds:.0f} s")


def pinned(core: str | None, command: list[str]) -> list[str]:
    return ["taskset", "-c", core, *command] if core is not None else command


def parse_wrk(output: str) -> dict:
    """Requests/s, p50 and p99 in milliseconds, and non-2xx answers, from `wrk --latency` output."""
    units = {"us": 1e-3, "ms": 1.0, "s": 1e3}

    def latency(percent: str) -> float:
        match = re.search(rf"^\s+{percent}%\s+([\d.]+)(us|ms|s)\s*$", output, re.MULTILINE)
        if not match:
            raise ValueError(f"no {percent}% latency in wrk output:\n{output}")
        return float(match.group(1)) * units[match.group(2)]

    rate = re.search(r"^Requests/sec:\s+([\d.]+)", output, re.MULTILINE)
    if not rate:
        raise ValueError(f"no Requests/sec in wrk output:\n{output}")
    errors = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    socket_errors = re.search(r"Socket errors: (.*)", output)
    return {
        "rps": float(rate.group(1)),
        "p50_ms": latency("50"),
        "p99_ms": latency("99"),
        "non_2xx": int(errors.group(1)) if errors else 0,
        "socket_errors": socket_errors.group(1).strip() if socket_errors else "",
    }


def run_wrk(url: str, body_file: Path, connections: int, seconds: float, core: str | None) -> dict:
    script = body_file.with_suffix(".lua")
    command = pinned(
        core,
        ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--latency", "--timeout", "10s", "-s", str(script), url],
    )
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    return parse_wrk(output)


def write_request(directory: Path, query: str) -> Path:
    body = directory / "request.json"
    body.write_text(json.dumps({"query": query}))
    lua = directory / "request.lua"
    lua.write_text(
        'wrk.method = "POST"\n'
        'wrk.headers["Content-Type"] = "application/json"\n'
        f"local file = io.open({json.dumps(str(body))}, \"rb\")\n"
        "wrk.body = file:read(\"*a\")\n"
        "file:close()\n"
    )
    return body


WRITE = (
    "mutation DashboardWriter($input: UpsertRelationshipInput!) "
    "{ upsertRelationship(input: $input) { created relationship { trust commitment } } }"
)


def post(url: str, body: dict, key: str | None = None, timeout: float = 10.0) -> dict:
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    request = urllib.request.Request(url, json.dumps(body).encode(), headers)
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read())


def dashboard_relationships(url: str, query: str, key: str) -> list[dict]:
    """`(from, to, type)` of every relationship on the dashboard's first page whose ends are live (an archived
    stakeholder's relationships can no longer change)."""
    page = post(url, {"query": query})
    if page.get("errors"):
        raise RuntimeError(f"the dashboard query failed: {page['errors']}")
    ids = [edge["node"]["id"] for customer in page["data"]["stakeholders"]["edges"]
           for edge in customer["node"]["relationships"]["edges"]]
    nodes = []
    for start in range(0, len(ids), 100):  # `nodes` takes at most limits.max_page_size ids
        details = post(url, {
            "query": "query($ids: [ID!]!) { nodes(ids: $ids) { ... on Relationship { "
                     "type from { id archivedAt } to { id archivedAt } } } }",
            "variables": {"ids": ids[start:start + 100]},
        }, key)
        if details.get("errors"):
            raise RuntimeError(f"reading the dashboard's relationships failed: {details['errors']}")
        nodes += details["data"]["nodes"]
    return [
        {"from": node["from"]["id"], "to": node["to"]["id"], "type": node["type"]}
        for node in nodes
        if node and node["from"]["archivedAt"] is None and node["to"]["archivedAt"] is None
    ]


class Writer(threading.Thread):
    """Posts `rate` mutations a second to `url` until stopped, open loop: each on the schedule, on a pool of
    threads, whether or not the earlier ones have been answered (a slow service does not slow the writer down).
    All its threads are pinned to `core`. Counts the writes made and failed, and times them."""

    def __init__(self, url: str, key: str, targets: list[dict], rate: float, core: str | None, seed: int):
        super().__init__(daemon=True)
        self.url, self.key, self.targets, self.rate, self.core = url, key, targets, rate, core
        self.random = random.Random(seed)
        self.halt = threading.Event()
        self.lock = threading.Lock()
        self.made = 0
        self.failed = 0
        self.latencies_ms: list[float] = []
        self.first_failure = ""
        self.pool = concurrent.futures.ThreadPoolExecutor(max_workers=64, initializer=self.pin)

    def pin(self) -> None:
        if self.core is not None:
            os.sched_setaffinity(0, {int(self.core)})  # the calling thread only

    def write(self, body: dict, trust: float, commitment: float) -> None:
        begun = time.monotonic()
        try:
            answer = post(self.url, body, self.key, timeout=30.0)
            written = (answer.get("data") or {}).get("upsertRelationship") or {}
            echoed = written.get("relationship") or {}
            if answer.get("errors") or written.get("created") is not False or \
                    (echoed.get("trust"), echoed.get("commitment")) != (trust, commitment):
                raise ValueError(json.dumps(answer)[:400])
            failure = None
        except (OSError, ValueError) as error:
            failure = str(error)
        with self.lock:
            self.latencies_ms.append((time.monotonic() - begun) * 1e3)
            if failure is None:
                self.made += 1
            else:
                self.failed += 1
                self.first_failure = self.first_failure or failure

    def run(self) -> None:
        self.pin()
        started = time.monotonic()
        sent = 0
        while not self.halt.wait(max(0.0, started + sent / self.rate - time.monotonic())):
            sent += 1
            target = self.targets[self.random.randrange(len(self.targets))]
            trust, commitment = round(self.random.random(), 3), round(self.random.random(), 3)
            body = {"query": WRITE, "variables": {"input": {**target, "trust": trust, "commitment": commitment}}}
            self.pool.submit(self.write, body, trust, commitment)

    def stop(self) -> dict:
        """Stops sending, waits for the writes in flight, and returns the counts."""
        self.halt.set()
        self.join()
        self.pool.shutdown(wait=True)
        ordered = sorted(self.latencies_ms)

        def percentile(share: float) -> float:
            return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else 0.0

        return {"made": self.made, "failed": self.failed, "p50_ms": percentile(0.50), "p99_ms": percentile(0.99),
                "first_failure": self.first_failure}


def spread(values: list[float]) -> str:
    return f"{min(values):.2f}–{max(values):.2f}" if values else "-"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=3000, help="stakeholders in the demo database")
    parser.add_argument("--db", type=Path, help="the database [default: target/bench-data/serving-<size>.db]")
    parser.add_argument("--binary", "--bin", type=Path, default=ROOT / "target" / "release" / "stakegraph")
    parser.add_argument("--connections", default="1,4,16,64", help="comma-separated connection counts")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each wrk run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--strength", action="store_true", help="ask each relationship's strength { score } too")
    parser.add_argument("--writer", type=float, default=0.0, metavar="RATE",
                        help="while each run lasts, post RATE mutations a second to Stakegraph [default: off]")
    parser.add_argument("--no-pin", action="store_true", help="do not pin the servers and wrk to separate cores")
    parser.add_argument("--json", action="store_true", help="print every figure as one JSON object on stdout")
    args = parser.parse_args()

    for tool in ("wrk", "node"):
        if shutil.which(tool) is None:
            print(f"serving.py: `{tool}` is not installed (apt-get install {tool})", file=sys.stderr)
            return 2
    if not args.binary.exists():
        print(f"serving.py: {args.binary} is missing: cargo build --release --bin stakegraph", file=sys.stderr)
        return 2
    if not (PEER / "node_modules").exists():
        print("serving.py: the peer is not installed: npm_config_nodedir=/usr npm ci --prefix bench/peer-js", file=sys.stderr)
        return 2
    cores = os.cpu_count() or 1
    pin = not args.no_pin and cores >= 2 and shutil.which("taskset") is not None
    server_core, load_core = ("0", "1") if pin else (None, None)

    db = args.db or ROOT / "target" / "bench-data" / f"serving-{args.size}.db"
    if not db.exists():
        db.parent.mkdir(parents=True, exist_ok=True)
        print(f"[serving] writing the {args.size}-stakeholder demo into {db}", file=sys.stderr)
        subprocess.run([str(args.binary), "demo", "--size", str(args.size), "--db", str(db)], check=True)

    connections = [int(value) for value in args.connections.split(",")]
    query = query_text(args.strength)
    work = Path(tempfile.mkdtemp(prefix="stakegraph-serving-"))
    if args.writer > 0:
        # The writes change the file: both servers serve a copy, so the next run starts from the same graph.
        served = work / db.name
        for suffix in ("", "-wal"):
            if Path(f"{db}{suffix}").exists():
                shutil.copyfile(f"{db}{suffix}", f"{served}{suffix}")
        db = served
    body = write_request(work, query)
    config = work / "stakegraph.toml"
    config.write_text("[limits]\nrequests_per_second_per_key = 1000000\n")

    ours_port, peer_port = free_port(), free_port()
    ours_url = f"http://127.0.0.1:{ours_port}/graphql"
    peer_url = f"http://127.0.0.1:{peer_port}/graphql"
    environment = dict(os.environ, RUST_LOG="warn", STAKEGRAPH_CONFIG=str(config))
    writer_key = secrets.token_hex(24)
    if args.writer > 0:
        environment["STAKEGRAPH_API_KEYS"] = f"editor:{writer_key}"
    ours = subprocess.Popen(
        pinned(server_core, [str(args.binary), "serve", "--demo", "--listen", f"127.0.0.1:{ours_port}", "--db", str(db)]),
        env=environment,
    )
    peer = subprocess.Popen(
        pinned(server_core, ["node", str(PEER / "server.mjs"), "--db", str(db), "--listen", f"127.0.0.1:{peer_port}"]),
        env=dict(os.environ, NODE_ENV="production"),
    )
    try:
        wait_ready(ours_url, "stakegraph serve")
        wait_readyz(f"http://127.0.0.1:{ours_port}/readyz")
        wait_ready(peer_url, "the graphql-js peer")
        # Every case compare.mjs knows (the dashboard with and without strength, other orderings and filters), page
        # by page, field by field.
        compared = subprocess.run(["node", str(PEER / "compare.mjs"), ours_url, peer_url], stdout=subprocess.DEVNULL)
        if compared.returncode != 0:
            print("serving.py: the answers differ (above); nothing was timed", file=sys.stderr)
            return 1
        try:
            targets = dashboard_relationships(ours_url, query, writer_key) if args.writer > 0 else []
        except (OSError, RuntimeError) as error:
            print(f"serving.py: cannot pick the writer's relationships: {error}", file=sys.stderr)
            return 2
        if args.writer > 0 and not targets:
            print("serving.py: the dashboard's first page has no relationship the writer may change", file=sys.stderr)
            return 2
        results: dict[int, dict[str, list[dict]]] = {n: {"stakegraph": [], "peer": []} for n in connections}
        for round_number in range(args.rounds):
            order = [("stakegraph", ours_url), ("peer", peer_url)]
            if round_number % 2 == 1:
                order.reverse()
            for count in connections:
                for name, url in order:
                    print(f"[serving] round {round_number + 1}: {name}, {count} connections", file=sys.stderr)
                    time.sleep(1.0)
                    writer = None
                    if args.writer > 0:
                        seed = len(results[count][name]) * 1000 + count
                        writer = Writer(ours_url, writer_key, targets, args.writer, load_core, seed)
                        writer.start()
                    try:
                        run = run_wrk(url, body, count, args.seconds, load_core)
                    finally:
                        writes = writer.stop() if writer else None
                    if writes is not None:
                        run["writes"] = writes
                        if writes["failed"]:
                            print(f"[serving] {writes['failed']} writes failed; the first: {writes['first_failure']}",
                                  file=sys.stderr)
                    results[count][name].append(run)
        if args.writer > 0:
            # Every write in place, the peer reading them from the file: the answers must still be identical.
            compared = subprocess.run(["node", str(PEER / "compare.mjs"), ours_url, peer_url], stdout=subprocess.DEVNULL)
            if compared.returncode != 0:
                print("serving.py: after the writes the answers differ (above)", file=sys.stderr)
                return 1
    finally:
        for process in (ours, peer):
            process.terminate()
        for process in (ours, peer):
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
        shutil.rmtree(work, ignore_errors=True)

    lines = [
        f"serving.py: {'dashboard page with strength' if args.strength else 'dashboard page'}, {args.size} "
        f"stakeholders, {args.rounds} interleaved rounds of {args.seconds:.0f} s, "
        + ("servers on core 0, wrk on core 1" if pin else "not pinned")
        + (f", a writer making {args.writer:g} mutations/s during every run" if args.writer > 0 else ""),
        "  conns | Stakegraph req/s (p50 / p99 ms)     | peer req/s (p50 / p99 ms)           | ratio (per round)",
    ]
    figures = []
    for count in connections:
        ours_runs, peer_runs = results[count]["stakegraph"], results[count]["peer"]
        ratios = [a["rps"] / b["rps"] for a, b in zip(ours_runs, peer_runs) if b["rps"] > 0]

        def describe(runs: list[dict]) -> str:
            rps = statistics.median(run["rps"] for run in runs)
            p50 = statistics.median(run["p50_ms"] for run in runs)
            p99 = statistics.median(run["p99_ms"] for run in runs)
            return f"{rps:8.0f} ({p50:6.1f} / {p99:6.1f}) [{spread([run['rps'] for run in runs])}]"

        lines.append(
            f"  {count:5d} | {describe(ours_runs):35s} | {describe(peer_runs):35s} | "
            f"{statistics.median(ratios):.2f} [{spread(ratios)}]"
        )
        errors = [(name, run["non_2xx"], run["socket_errors"]) for name in ("stakegraph", "peer") for run in results[count][name] if run["non_2xx"] or run["socket_errors"]]
        if errors:
            lines.append(f"        errors: {errors}")
        if args.writer > 0:
            def writes(runs: list[dict]) -> str:
                return ", ".join(f"{run['writes']['made']}/{run['writes']['failed']} "
                                 f"({run['writes']['p50_ms']:.1f}/{run['writes']['p99_ms']:.1f} ms)" for run in runs)
            lines.append(f"        writes made/failed (p50/p99) per run: Stakegraph's runs {writes(ours_runs)}; "
                         f"peer's runs {writes(peer_runs)}")
        figures.append({"connections": count, "stakegraph": ours_runs, "peer": peer_runs, "ratios": ratios})
    print("\n".join(lines), file=sys.stderr if args.json else sys.stdout)
    if args.json:
        print(json.dumps({"size": args.size, "strength": args.strength, "pinned": pin, "rounds": args.rounds, "seconds": args.seconds, "writer_rate": args.writer, "results": figures}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
