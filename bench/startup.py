#!/usr/bin/env python3
"""How soon `stakegraph serve` answers after its port is bound (issue 12, target 6).

Each run starts `stakegraph serve` on a free port, pinned to one core, and from the other core tries to connect in
a tight loop. The port is bound the moment a connection succeeds (the kernel completes the handshake into the
listen backlog as soon as the socket listens, whether or not the service accepts yet); on that same connection it
sends `GET /healthz` and notes when the 200 arrives, then polls `/readyz` (a new connection every 20 ms) until it
answers 200, and last asks /healthz five times more on new connections (the service ready and idle: what the
machine's load alone costs a health check), then reads the server's resident memory (`VmRSS` of
/proc/PID/status: the projection and the records it holds once ready). Reported per binary: port bound → /healthz
200 (target: within 10 ms), port bound → /readyz 200, /healthz once ready and RSS once ready, median and range over
the runs.

A second binary (`--peer`, e.g. a build of the commit before the change) runs in the same session, interleaved
run by run (A B A B …, the order alternating), on the same database, with the same pinning.

    target/release/stakegraph demo --size 100000 --db /tmp/demo-100k.db
    python3 bench/startup.py --db /tmp/demo-100k.db --runs 7 [--peer /tmp/stakegraph-before]
    python3 bench/startup.py --db /tmp/pristine-100k.db --copy   # a first open (ANALYZE) each run, on a copy
    python3 bench/startup.py --fresh-demo 3000 --runs 5        # serve --demo seeding an empty store each run
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
KEY = "viewer:startup-bench-key-0123456789"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def status_of(connection: socket.socket, path: str) -> int:
    """Sends GET `path` on `connection` and returns the status of the answer."""
    connection.sendall(f"GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".encode())
    answer = b""
    while b"\r\n" not in answer:
        chunk = connection.recv(4096)
        if not chunk:
            return 0
        answer += chunk
    return int(answer.split(b" ", 2)[1])


def get_status(port: int, path: str) -> int:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=30) as connection:
            return status_of(connection, path)
    except OSError:
        return 0


def one_run(binary: Path, db: Path, demo: Path | None, server_core: str | None, timeout: float) -> dict[str, float]:
    """One start of `binary` serving `db` (with `--demo` and the configuration file `demo`, when given)."""
    port = free_port()
    command = [str(binary), "serve", "--listen", f"127.0.0.1:{port}", "--db", str(db)]
    if demo is not None:
        command += ["--demo", "--config", str(demo)]
    if server_core is not None:
        command = ["taskset", "-c", server_core, *command]
    environment = dict(os.environ, STAKEGRAPH_API_KEYS=KEY, RUST_LOG="warn", NO_COLOR="1")
    environment.pop("STAKEGRAPH_CONFIG", None)
    spawned = time.perf_counter()
    process = subprocess.Popen(command, env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = spawned + timeout
        while True:
            if process.poll() is not None:
                sys.exit(f"startup.py: {binary} exited: {process.stderr.read().decode(errors='replace')}")
            if time.perf_counter() > deadline:
                sys.exit(f"startup.py: {binary} did not bind 127.0.0.1:{port} within {timeout:.0f} s")
            connection = socket.socket()
            try:
                connection.connect(("127.0.0.1", port))
            except ConnectionRefusedError:
                connection.close()
                continue
            bound = time.perf_counter()
            break
        with connection:
            connection.settimeout(timeout)
            health = status_of(connection, "/healthz")
        healthy = time.perf_counter()
        if health != 200:
            sys.exit(f"startup.py: /healthz answered {health}")
        while get_status(port, "/readyz") != 200:
            if time.perf_counter() > deadline:
                sys.exit(f"startup.py: /readyz did not answer 200 within {timeout:.0f} s")
            time.sleep(0.02)
        ready = time.perf_counter()
        # The same request once the service is ready and idle: what this machine's load alone costs a health check.
        idle = []
        for _ in range(5):
            started = time.perf_counter()
            if get_status(port, "/healthz") != 200:
                sys.exit("startup.py: /healthz failed once ready")
            idle.append(time.perf_counter() - started)
        rss_mib = resident_mib(process.pid)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return {
        "spawn_to_bound_ms": (bound - spawned) * 1e3,
        "bound_to_healthz_ms": (healthy - bound) * 1e3,
        "bound_to_readyz_ms": (ready - bound) * 1e3,
        "idle_healthz_ms": statistics.median(idle) * 1e3,
        "rss_mib": rss_mib,
    }


def resident_mib(pid: int) -> float:
    """The resident memory of process `pid` in MiB (its `VmRSS`)."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    sys.exit(f"startup.py: no VmRSS in /proc/{pid}/status")


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):9.1f}  ({min(values):.1f}–{max(values):.1f})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--binary", type=Path, default=ROOT / "target" / "release" / "stakegraph")
    parser.add_argument("--peer", type=Path, help="a second binary measured in the same session, interleaved")
    parser.add_argument("--db", type=Path, help="the database to serve (e.g. the 100k demo)")
    parser.add_argument("--copy", action="store_true",
                        help="serve a fresh copy of --db each run (a database `demo` wrote and nothing opened since: "
                             "each run is a first open, which gathers the planner's statistics)")
    parser.add_argument("--fresh-demo", type=int, metavar="SIZE",
                        help="instead of --db: `serve --demo` on a new, empty database each run, with demo_size SIZE")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--server-core", default="0", help="core the server is pinned to ('' for none)")
    parser.add_argument("--client-core", default="1", help="core this script is pinned to ('' for none)")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds a run may take before it is abandoned")
    args = parser.parse_args()
    if (args.db is None) == (args.fresh_demo is None):
        parser.error("give either --db or --fresh-demo")
    if args.client_core:
        os.sched_setaffinity(0, {int(core) for core in args.client_core.split(",")})
    server_core = args.server_core or None
    binaries = {"stakegraph": args.binary}
    if args.peer is not None:
        binaries["peer"] = args.peer
    for name, binary in binaries.items():
        if not binary.exists():
            sys.exit(f"startup.py: {binary} does not exist (cargo build --release)")
    results: dict[str, list[dict[str, float]]] = {name: [] for name in binaries}
    scratch = Path(tempfile.mkdtemp(prefix="startup-bench-"))
    try:
        for run in range(args.runs):
            order = list(binaries.items())
            if run % 2 == 1:
                order.reverse()
            for name, binary in order:
                if args.fresh_demo is not None:
                    config = scratch / "stakegraph.toml"
                    config.write_text(f"demo_size = {args.fresh_demo}\n")
                    result = one_run(binary, scratch / f"{name}-{run}.db", config, server_core, args.timeout)
                elif args.copy:
                    db = scratch / f"{name}-{run}.db"
                    shutil.copyfile(args.db, db)
                    os.sync()  # the copy's writeback is not the run's
                    result = one_run(binary, db, None, server_core, args.timeout)
                    for leftover in scratch.glob(f"{name}-{run}.db*"):
                        leftover.unlink()
                else:
                    result = one_run(binary, args.db, None, server_core, args.timeout)
                results[name].append(result)
                print(f"[startup] run {run + 1} {name}: " + ", ".join(f"{k} {v:.1f}" for k, v in result.items()),
                      file=sys.stderr)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    if args.fresh_demo:
        what = f"serve --demo, seeding {args.fresh_demo} stakeholders into an empty store"
    else:
        what = f"serve {args.db}" + (" (a fresh copy each run: a first open)" if args.copy else "")
    print(f"\n{what}; {args.runs} runs each, server on core {server_core}, client on core {args.client_core}")
    load = open("/proc/loadavg").read().split()[0] if os.path.exists("/proc/loadavg") else "?"
    print(f"load average {load} (other work on the machine shows in every column, the last one alone)")
    print(f"{'binary':<12} {'spawn → bound ms':>24} {'bound → /healthz 200 ms':>26} {'bound → /readyz 200 ms':>26} "
          f"{'/healthz once ready ms':>26} {'RSS once ready MiB':>26}")
    for name, runs in results.items():
        print(f"{name:<12} {spread([r['spawn_to_bound_ms'] for r in runs]):>24} "
              f"{spread([r['bound_to_healthz_ms'] for r in runs]):>26} "
              f"{spread([r['bound_to_readyz_ms'] for r in runs]):>26} "
              f"{spread([r['idle_healthz_ms'] for r in runs]):>26} "
              f"{spread([r['rss_mib'] for r in runs]):>26}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
