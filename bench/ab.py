"""Two builds of Stakegraph against each other, serving the same SQLite file: did a change cost serving speed?

    git worktree add /tmp/before <commit> && (cd /tmp/before && cargo build --release --bin stakegraph)
    cargo build --release --bin stakegraph
    python3 bench/ab.py --before /tmp/before/target/release/stakegraph   # --help for the knobs

starts both builds with `serve --demo` over one copy of the demo database (written on first use, as
`bench/serving.py` does), both pinned to the first core, checks that they answer the dashboard query identically,
then runs `wrk` pinned to the second core against each in turn: for every round, for every query (`{ __typename }`,
which is all per-request overhead, and the dashboard page), for every number of connections, one build then the
other (the order alternates between rounds). It prints req/s, p50 and p99 of each and the ratio after ÷ before per
round with its spread. Exit status: 0 measured, 1 the answers differ, 2 setup failed.

With `--instructions N` it times nothing: it runs each build under Valgrind's callgrind (apt-get install valgrind),
one at a time, and counts the instructions the whole process executes for N requests of each query sent one after
another on one keep-alive connection (start-up and the first 50 requests not counted; the two builds' last answers
must be the same and without errors). The count moves by about 1% at most from run to run whatever else the machine
does, so it shows a change of a few hundred instructions a request that wall time on a shared machine cannot; it
does not weigh cache misses or system calls, which wall time does.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import serving  # noqa: E402  (the helpers: ports, wrk, readiness)

QUERIES = {"typename": "{ __typename }", "dashboard": serving.query_text(False)}


def answer(url: str, query: str) -> dict:
    body = json.dumps({"query": query}).encode()
    request = urllib.request.Request(url, body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)


def instructions_per_request(binary: Path, db: Path, environment: dict, query: str, count: int,
                             work: Path) -> tuple[float, dict]:
    """Instructions `binary` executes (all threads) per request of `query`, counted by callgrind, and its answer."""
    port = serving.free_port()
    output = work / f"callgrind.{binary.name}.{port}"
    process = subprocess.Popen(
        ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={output}",
         str(binary), "serve", "--demo", "--listen", f"127.0.0.1:{port}", "--db", str(db)],
        env=environment, stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}/graphql"
        serving.wait_ready(url, f"{binary} under callgrind", seconds=600.0)
        serving.wait_readyz(url.replace("/graphql", "/readyz"), seconds=600.0)
        body = json.dumps({"query": query})
        headers = {"Content-Type": "application/json"}
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)

        def send(times: int) -> bytes:
            data = b""
            for _ in range(times):
                connection.request("POST", "/graphql", body, headers)
                response = connection.getresponse()
                data = response.read()
                if response.status != 200:
                    raise RuntimeError(f"{binary} answered {response.status}")
            return data

        send(50)
        subprocess.run(["callgrind_control", "--instr=on", str(process.pid)], check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        answered = send(count)
        subprocess.run(["callgrind_control", "--instr=off", str(process.pid)], check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        connection.close()
    finally:
        process.terminate()
        process.wait(timeout=120)
    total = 0
    for part in work.glob(f"{output.name}*"):
        total += sum(int(line.split()[1]) for line in part.read_text().splitlines() if line.startswith("totals:"))
    return total / count, json.loads(answered)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", type=Path, required=True, help="the build before the change")
    parser.add_argument("--after", type=Path, default=serving.ROOT / "target" / "release" / "stakegraph")
    parser.add_argument("--size", type=int, default=3000, help="stakeholders in the demo database")
    parser.add_argument("--connections", default="1,16,64", help="comma-separated connection counts")
    parser.add_argument("--queries", default="typename,dashboard", help=f"comma-separated, of {', '.join(QUERIES)}")
    parser.add_argument("--seconds", type=float, default=8.0, help="length of each wrk run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--instructions", type=int, metavar="N",
                        help="count instructions per request over N requests under callgrind instead of timing")
    args = parser.parse_args()

    if args.instructions and shutil.which("valgrind") is None:
        print("ab.py: `valgrind` is not installed (apt-get install valgrind)", file=sys.stderr)
        return 2
    if not args.instructions and shutil.which("wrk") is None:
        print("ab.py: `wrk` is not installed (apt-get install wrk)", file=sys.stderr)
        return 2
    for binary in (args.before, args.after):
        if not binary.exists():
            print(f"ab.py: {binary} is missing: cargo build --release --bin stakegraph", file=sys.stderr)
            return 2
    pin = (os.cpu_count() or 1) >= 2 and shutil.which("taskset") is not None
    server_core, load_core = ("0", "1") if pin else (None, None)

    work = Path(tempfile.mkdtemp(prefix="stakegraph-ab-"))
    db = work / "served.db"
    subprocess.run([str(args.after), "demo", "--size", str(args.size), "--db", str(db)], check=True,
                   stdout=subprocess.DEVNULL)
    config = work / "stakegraph.toml"
    config.write_text("[limits]\nrequests_per_second_per_key = 1000000\n")
    environment = dict(os.environ, RUST_LOG="warn", STAKEGRAPH_CONFIG=str(config))
    builds = {"before": args.before, "after": args.after}
    if args.instructions:
        try:
            print(f"ab.py: instructions per request (callgrind, {args.instructions} requests on one connection, "
                  f"{args.size} stakeholders)")
            for query in args.queries.split(","):
                measured = {name: instructions_per_request(binary, db, environment, QUERIES[query],
                                                           args.instructions, work) for name, binary in builds.items()}
                answers = [answered for _, answered in measured.values()]
                if answers[0] != answers[1] or "errors" in answers[0]:
                    print(f"ab.py: the builds answer {query} differently:\n{answers[0]}\n{answers[1]}", file=sys.stderr)
                    return 1
                counts = {name: instructions for name, (instructions, _) in measured.items()}
                print(f"  {query:9s} after {counts['after']:10,.0f}   before {counts['before']:10,.0f}   "
                      f"after ÷ before {counts['after'] / counts['before']:.3f}")
        finally:
            shutil.rmtree(work, ignore_errors=True)
        return 0
    urls = {name: f"http://127.0.0.1:{serving.free_port()}/graphql" for name in builds}
    processes = [
        subprocess.Popen(
            serving.pinned(server_core, [str(binary), "serve", "--demo", "--listen", urls[name][7:-8], "--db", str(db)]),
            env=environment,
        )
        for name, binary in builds.items()
    ]
    connections = [int(value) for value in args.connections.split(",")]
    queries = args.queries.split(",")
    results = {(query, count): {name: [] for name in builds} for query in queries for count in connections}
    try:
        for name, url in urls.items():
            serving.wait_ready(url, f"the {name} build")
            serving.wait_readyz(url.replace("/graphql", "/readyz"))
        answers = [answer(url, QUERIES["dashboard"]) for url in urls.values()]
        if answers[0] != answers[1] or "errors" in answers[0]:
            print(f"ab.py: the builds answer the dashboard differently:\n{answers[0]}\n{answers[1]}", file=sys.stderr)
            return 1
        bodies = {}
        for query in queries:
            directory = work / query
            directory.mkdir()
            bodies[query] = serving.write_request(directory, QUERIES[query])
        for round_number in range(args.rounds):
            order = list(builds) if round_number % 2 == 0 else list(reversed(builds))
            for query in queries:
                for count in connections:
                    for name in order:
                        print(f"[ab] round {round_number + 1}: {name}, {query}, {count} connections", file=sys.stderr)
                        time.sleep(1.0)
                        run = serving.run_wrk(urls[name], bodies[query], count, args.seconds, load_core)
                        results[(query, count)][name].append(run)
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
        shutil.rmtree(work, ignore_errors=True)

    print(f"ab.py: after = {args.after}, before = {args.before}; {args.size} stakeholders, {args.rounds} interleaved "
          f"rounds of {args.seconds:.0f} s, " + ("servers on core 0, wrk on core 1" if pin else "not pinned"))
    print("  query     conns | after req/s (p50 / p99 ms) [spread]        | before req/s (p50 / p99 ms) [spread]       "
          "| after ÷ before (per round)")
    for (query, count), runs in results.items():
        ratios = [a["rps"] / b["rps"] for a, b in zip(runs["after"], runs["before"]) if b["rps"] > 0]

        def describe(runs: list[dict]) -> str:
            rps = statistics.median(run["rps"] for run in runs)
            p50 = statistics.median(run["p50_ms"] for run in runs)
            p99 = statistics.median(run["p99_ms"] for run in runs)
            return f"{rps:8.0f} ({p50:6.2f} / {p99:6.2f}) [{serving.spread([run['rps'] for run in runs])}]"

        print(f"  {query:9s} {count:5d} | {describe(runs['after']):42s} | {describe(runs['before']):42s} | "
              f"{statistics.median(ratios):.3f} [{serving.spread(ratios)}]")
        errors = [(name, run["non_2xx"]) for name in builds for run in runs[name] if run["non_2xx"]]
        if errors:
            print(f"        non-2xx answers: {errors}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
