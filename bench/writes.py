"""Stakegraph's write path through the real HTTP service (issue 12, targets 3 and 4).

    cargo build --release --bin stakegraph
    apt-get install wrk                          # the load generator
    python3 bench/writes.py --quick              # small graphs, a few seconds per run: a trial
    python3 bench/writes.py                      # the issue's sizes (writes the graphs on first use)

Three cases, each run on a fresh copy of its database (copied into a temporary directory, deleted afterwards):

- customers: `createCustomer` at 8 connections for --seconds on the demo of 3,000 and of 200,000 stakeholders
  (`stakegraph demo --size N --anchor 2026-06-01`, written on first use to target/bench-data/writes-N.db, a few
  minutes for 200,000), interleaved: 3k, 200k, 3k, 200k … for --rounds rounds. Reports req/s, p50, p99 and the
  ratio 200k ÷ 3k of each round (the target: ≥ 0.8, throughput flat within 20 %).
- relationships: 10,000 `upsertRelationship` mutations at 8 connections on the 1,000,000-relationship graph, each
  creating a KNOWS relationship between two live stakeholders not related yet in either direction (picked from
  the database copy before the server starts); reports new relationships/s over the whole 10,000 and p50/p99 (the
  target: ≥ 5,000/s). One run (it takes minutes while a new relationship costs tens of milliseconds).
- interactions: `recordInteractions` in batches of 1,000 (the API's `limits.max_batch`) on random existing
  relationships of the 1M graph, for --seconds at 1 and at 2 connections, --rounds interleaved rounds; reports
  interactions/s and p50/p99 per request (the target: ≥ 50,000/s).

The 1M graph is `stakegraph demo --size 100000 --relationships 1000000 --anchor 2026-06-01`, written on first use
to target/bench-data/demo-100000-r1000000-seed42-2026-06-01.db (the file `cargo bench --bench engine` and
bench/peers.py use; about two minutes), or --graph PATH. --quick uses 3,000 against 20,000 stakeholders, a
20,000-relationship graph of 3,000 stakeholders, 1,000 new relationships, 3 s runs and 2 rounds.

The server runs `stakegraph serve` pinned to core 0 (`taskset -c 0`), `wrk` (one thread) pinned to core 1. The
server has one admin key (`STAKEGRAPH_API_KEYS`: writes need an editor or admin key) and its per-key request rate
lifted (`[limits] requests_per_second_per_key = 1000000` in a STAKEGRAPH_CONFIG file); every other limit is the
default (a batch of 1,000 is `max_batch`, about 130 KiB against `max_body_bytes` of 1 MiB; a mutation past
`request_timeout_ms`, 10 s, would fail the run). wrk's Lua script (generated per run into the temporary directory)
sends per-request bodies from a pre-generated list, rotating via a counter (createCustomer's key carries the
counter, so every key is new), and checks every answer in its `response()` hook: HTTP 200, no `errors`, and the
expected payload (`"created":true` for a new relationship, `"count":1000` for a batch). Rates are measured in the
script from its first request to its last answer (CLOCK_MONOTONIC through LuaJIT's ffi), so they are sustained
rates; p50 and p99 are wrk's (`--latency`). After each run the service's `graphCounts` must have grown by exactly
what was acknowledged (plus at most the requests still in flight when wrk stopped), and the new relationships
are looked up in the database file. From /proc, for the length of each run: the server's CPU time, the time its
threads waited runnable for a core (summed over its threads, so it may pass 100 %: other work on core 0, or its
own threads queueing for their one core), and the bytes it wrote (to the database and its write-ahead log,
where every commit is fsynced, `synchronous = FULL`; the answers are a small part).

Prints a markdown table (with --json, one JSON object on stdout and the table on stderr). Exit status: 0
measured, 1 a check failed (a non-200 answer, a GraphQL error, an unexpected answer or count), 2 setup failed.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import random
import re
import secrets
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ANCHOR = "2026-06-01"
SEED = 42
MARK = "@SEQ@"

CREATE_CUSTOMER = "mutation CreateCustomer($input: CreateCustomerInput!) { createCustomer(input: $input) { id } }"
NEW_RELATIONSHIP = (
    "mutation NewRelationship($input: UpsertRelationshipInput!) "
    "{ upsertRelationship(input: $input) { created relationship { id } } }"
)
RECORD_INTERACTIONS = (
    "mutation RecordInteractions($input: RecordInteractionsInput!) { recordInteractions(input: $input) { count } }"
)
COUNTS = "{ graphCounts { stakeholders relationships interactions } }"

CHANNELS = ["MEETING", "EVENT", "CALL", "PURCHASE", "SUPPORT", "MESSAGE", "EMAIL", "SOCIAL", "PRESS", "FILING"]
LEVELS = ["BASIC", "REACTIVE", "ACCOUNTABLE", "PROACTIVE", "PARTNERSHIP"]
STATUSES = ["PROSPECT", "ACTIVE", "AT_RISK"]


class SetupError(Exception):
    """The benchmark could not be set up (exit status 2)."""


class CheckFailed(Exception):
    """A run answered something other than what was asked for (exit status 1)."""


def log(message: str) -> None:
    print(f"[writes] {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def pinned(core: str | None, command: list[str]) -> list[str]:
    return ["taskset", "-c", core, *command] if core is not None else command


def global_id(kind: str, number: int) -> str:
    """The opaque id the service issues (src/api/ids.rs); checked against the service before any run uses it."""
    return base64.urlsafe_b64encode(f"{kind}:{number}".encode()).decode().rstrip("=")


# ---------------------------------------------------------------------------------------------------------------
# Databases


def ensure_demo(binary: Path, path: Path, size: int, relationships: int | None = None) -> Path:
    """Writes the demo graph to `path` on first use: to a temporary name, renamed once `demo` has finished."""
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.stem + ".partial.db")
    for suffix in ("", "-wal", "-shm"):
        Path(f"{partial}{suffix}").unlink(missing_ok=True)
    command = [str(binary), "demo", "--size", str(size), "--anchor", ANCHOR, "--db", str(partial)]
    if relationships is not None:
        command += ["--relationships", str(relationships)]
    log(f"writing {path.name}: {' '.join(command[1:])} (once; large graphs take minutes)")
    started = time.monotonic()
    result = subprocess.run(command, env=dict(os.environ, RUST_LOG="warn"), stdout=sys.stderr)
    if result.returncode != 0:
        raise SetupError(f"`stakegraph demo` failed (exit status {result.returncode})")
    for suffix in ("-wal", "-shm"):
        Path(f"{partial}{suffix}").unlink(missing_ok=True)  # `demo` folds the log into the file before it exits
    partial.rename(path)
    log(f"wrote {path} in {time.monotonic() - started:.0f} s")
    return path


def fresh_copy(source: Path, directory: Path, name: str) -> Path:
    if Path(f"{source}-wal").exists() and Path(f"{source}-wal").stat().st_size > 0:
        raise SetupError(f"{source} has a non-empty write-ahead log (is a server using it?); stop it first")
    copy = directory / name
    shutil.copyfile(source, copy)
    # On disk before the server starts: else the server's first fsync of the file (a checkpoint's) waits for the
    # whole copy to be written back, inside a timed run.
    descriptor = os.open(copy, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
    return copy


def remove_database(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


# ---------------------------------------------------------------------------------------------------------------
# The server


class Server:
    """`stakegraph serve` over one database copy, pinned, with one admin key and the request rate lifted."""

    def __init__(self, binary: Path, db: Path, work: Path, core: str | None):
        self.key = secrets.token_hex(24)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/graphql"
        config = work / "stakegraph.toml"
        config.write_text("[limits]\nrequests_per_second_per_key = 1000000\n")
        environment = dict(os.environ, RUST_LOG="warn", STAKEGRAPH_CONFIG=str(config),
                           STAKEGRAPH_API_KEYS=f"admin:{self.key}")
        command = [str(binary), "serve", "--listen", f"127.0.0.1:{self.port}", "--db", str(db)]
        self.process = subprocess.Popen(pinned(core, command), env=environment)

    def wait_ready(self, seconds: float = 900.0) -> None:
        """Serves at once and builds its projection in the background; measure only once /readyz says it is built."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SetupError(f"stakegraph serve exited with status {self.process.returncode}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/readyz", timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.2)
        raise SetupError(f"/readyz did not answer 200 within {seconds:.0f} s")

    def graphql(self, query: str, variables: dict | None = None) -> dict:
        body = json.dumps({"query": query, "variables": variables or {}}).encode()
        headers = {"Content-Type": "application/json", "Authorization": f"Bearer {self.key}"}
        request = urllib.request.Request(self.url, body, headers)
        try:
            with urllib.request.urlopen(request, timeout=120) as response:
                answer = json.loads(response.read())
        except urllib.error.HTTPError as error:
            raise CheckFailed(f"HTTP {error.code} for {query[:60]}…: {error.read()[:500]!r}") from error
        if answer.get("errors"):
            raise CheckFailed(f"GraphQL errors for {query[:60]}…: {json.dumps(answer['errors'])[:500]}")
        return answer["data"]

    def counts(self) -> dict:
        return self.graphql(COUNTS)["graphCounts"]

    def bytes_written(self) -> int:
        """Bytes the server has passed to write calls (`wchar`: the database, its write-ahead log, and sockets).
        Not `write_bytes`, the kernel's count of what reached storage: on this machine's page cache that was 7
        times what SQLite wrote (115 MB against 16.5 MB for a batch of 1,000 interactions)."""
        text = Path(f"/proc/{self.process.pid}/io").read_text()
        return int(re.search(r"^wchar: (\d+)", text, re.MULTILINE).group(1))

    def queued_seconds(self) -> float:
        """Seconds the server's live threads have spent runnable but waiting for a core (schedstat's second field)."""
        total = 0
        for task in Path(f"/proc/{self.process.pid}/task").iterdir():
            try:
                total += int((task / "schedstat").read_text().split()[1])
            except (OSError, IndexError, ValueError):
                pass  # a thread that ended meanwhile
        return total / 1e9

    def cpu_and_threads(self) -> tuple[float, int]:
        """CPU seconds the server has used (user + system) and its thread count, from /proc."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks = os.sysconf("SC_CLK_TCK")
        return (int(fields[11]) + int(fields[12])) / ticks, int(fields[17])

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()  # a clean stop folds the write-ahead log into the file
            try:
                self.process.wait(timeout=120)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def check_ids(server: Server, db: Path) -> None:
    """The ids this script builds from database rows are the ones the service issues."""
    connection = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        stakeholder, key = connection.execute("SELECT id, key FROM stakeholder ORDER BY id LIMIT 1").fetchone()
        relationship, source = connection.execute(
            "SELECT id, from_id FROM relationship ORDER BY id LIMIT 1").fetchone()
    finally:
        connection.close()
    found = server.graphql("query($key: String!) { stakeholderByKey(key: $key) { id } }", {"key": key})
    if (found["stakeholderByKey"] or {}).get("id") != global_id("Stakeholder", stakeholder):
        raise SetupError(f"the service's id of stakeholder {stakeholder} is not "
                         f"{global_id('Stakeholder', stakeholder)} "
                         "(src/api/ids.rs changed?); update global_id() in bench/writes.py")
    found = server.graphql("query($id: ID!) { relationship(id: $id) { from { id } } }",
                           {"id": global_id("Relationship", relationship)})
    if ((found["relationship"] or {}).get("from") or {}).get("id") != global_id("Stakeholder", source):
        raise SetupError("relationship ids are not encoded as bench/writes.py assumes (src/api/ids.rs changed?)")


# ---------------------------------------------------------------------------------------------------------------
# wrk


def lua_string(text: str) -> str:
    """A Lua string literal of `text`: plain ASCII as is, every other byte as a decimal escape."""
    plain = set(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 /._-:@{}[](),;=+*'#")
    return '"' + "".join(chr(byte) if byte in plain else f"\\{byte:03d}" for byte in text.encode()) + '"'


def write_lua(work: Path, name: str, bodies: list[str], key: str, expect: str, limit: int = 0) -> Path:
    """A wrk script sending `bodies` in turn (the first MARK in a body becomes the request's sequence number),
    checking each answer, stopping after `limit` answers (0: when wrk's duration ends)."""
    if any("\n" in body for body in bodies):
        raise SetupError("a request body holds a newline; bodies are one per line")
    body_file = work / f"{name}.bodies"
    body_file.write_text("\n".join(bodies) + "\n")
    script = work / f"{name}.lua"
    parked = (
        "-- wrk asks delay() before each request and calls request() once the delay is over, so requests are\n"
        "-- counted out here: once `limit` are, a connection waits (an hour) instead of sending another.\n"
        "local granted = 0\n"
        "function delay()\n"
        "  if granted >= limit then return 3600000 end\n"
        "  granted = granted + 1\n"
        "  return 0\n"
        "end\n"
    ) if limit > 0 else ""
    script.write_text(f"""-- Written by bench/writes.py for one run of wrk (-t1); see there.
local ffi = require("ffi")
ffi.cdef[[
typedef struct {{ long tv_sec; long tv_nsec; }} writes_timespec;
int clock_gettime(int clock, writes_timespec *now);
int getpid(void);
int tgkill(int tgid, int tid, int sig);
]]
local clock = ffi.new("writes_timespec")
local function now()
  ffi.C.clock_gettime(1, clock) -- CLOCK_MONOTONIC
  return tonumber(clock.tv_sec) + tonumber(clock.tv_nsec) / 1e9
end

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. {lua_string(key)}

local mark = {lua_string(MARK)}
local heads, tails = {{}}, {{}}
for line in io.lines({lua_string(str(body_file))}) do
  local at = line:find(mark, 1, true)
  if at then
    heads[#heads + 1] = line:sub(1, at - 1)
    tails[#tails + 1] = line:sub(at + #mark)
  else
    heads[#heads + 1] = line
    tails[#tails + 1] = false
  end
end
local expect = {lua_string(expect)}
limit = {limit}

-- Globals: done() reads them from this thread's state.
sent, answered, bad_status, graphql_errors, unexpected = 0, 0, 0, 0, 0
started, finished = 0, 0
first_failure = ""
local verified = false

local function body_of(sequence)
  local index = (sequence - 1) % #heads + 1
  if tails[index] then
    return heads[index] .. sequence .. tails[index]
  end
  return heads[index]
end

{parked}function request()
  -- wrk calls request() once before the run to check the request (script_verify_request); that one is not sent.
  if not verified then
    verified = true
    return wrk.format(nil, nil, nil, body_of(1))
  end
  sent = sent + 1
  if started == 0 then started = now() end
  return wrk.format(nil, nil, nil, body_of(sent))
end

local function failure(kind, status, body)
  if first_failure == "" then
    first_failure = kind .. " (HTTP " .. status .. "): " .. body:sub(1, 800):gsub("[\\r\\n]", " ")
  end
end

function response(status, headers, body)
  answered = answered + 1
  finished = now()
  if status ~= 200 then
    bad_status = bad_status + 1
    failure("status", status, body)
  elseif body:find('"errors"', 1, true) then
    graphql_errors = graphql_errors + 1
    failure("GraphQL errors", status, body)
  elseif not body:find(expect, 1, true) then
    unexpected = unexpected + 1
    failure("unexpected answer", status, body)
  end
  if limit > 0 and answered >= limit then
    wrk.thread:stop()
    -- SIGINT to wrk's main thread (its id is the process id) ends its wait for the duration at once. (Not
    -- os.execute("kill …"): system() ignores SIGINT in the caller while its child runs.)
    ffi.C.tgkill(ffi.C.getpid(), ffi.C.getpid(), 2)
  end
end

local threads = {{}}
function setup(thread)
  table.insert(threads, thread)
end

function done(summary, latency, requests)
  for _, thread in ipairs(threads) do
    io.write(string.format(
      "WRITES_COUNTS sent=%d answered=%d bad_status=%d graphql_errors=%d unexpected=%d seconds=%.6f\\n",
      thread:get("sent"), thread:get("answered"), thread:get("bad_status"), thread:get("graphql_errors"),
      thread:get("unexpected"), thread:get("finished") - thread:get("started")))
    io.write("WRITES_FIRST_FAILURE " .. thread:get("first_failure") .. "\\n")
  end
end
""")
    return script


def parse_wrk(output: str) -> dict:
    units = {"us": 1e-3, "ms": 1.0, "s": 1e3}

    def latency(percent: str) -> float:
        match = re.search(rf"^\s+{percent}%\s+([\d.]+)(us|ms|s)\s*$", output, re.MULTILINE)
        if not match:
            raise CheckFailed(f"no {percent}% latency in wrk output:\n{output}")
        return float(match.group(1)) * units[match.group(2)]

    counts = re.search(r"^WRITES_COUNTS (.*)$", output, re.MULTILINE)
    if not counts:
        raise CheckFailed(f"the wrk script printed no counts:\n{output}")
    figures = {name: float(value) if name == "seconds" else int(value)
               for name, value in (pair.split("=") for pair in counts.group(1).split())}
    failure = re.search(r"^WRITES_FIRST_FAILURE ?(.*)$", output, re.MULTILINE)
    socket_errors = re.search(r"Socket errors: (.*)", output)
    rate = re.search(r"^Requests/sec:\s+([\d.]+)", output, re.MULTILINE)
    return {
        **figures,
        "p50_ms": latency("50"),
        "p99_ms": latency("99"),
        "wrk_rps": float(rate.group(1)) if rate else 0.0,
        "socket_errors": socket_errors.group(1).strip() if socket_errors else "",
        "first_failure": failure.group(1).strip() if failure else "",
    }


def run_wrk(server: Server, script: Path, connections: int, seconds: float, core: str | None) -> dict:
    command = pinned(core, ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--latency",
                            "--timeout", "60s", "-s", str(script), server.url])
    load_before = os.getloadavg()[0]
    cpu_before, _ = server.cpu_and_threads()
    written_before = server.bytes_written()
    queued_before = server.queued_seconds()
    wall = time.monotonic()
    result = subprocess.run(command, capture_output=True, text=True)
    wall = time.monotonic() - wall
    cpu_after, threads = server.cpu_and_threads()
    written = server.bytes_written() - written_before
    queued = server.queued_seconds() - queued_before
    if result.returncode != 0:
        raise CheckFailed(f"wrk failed (exit status {result.returncode}):\n{result.stdout}\n{result.stderr}")
    figures = parse_wrk(result.stdout)
    figures["server_cpu_s"] = cpu_after - cpu_before
    figures["server_core_busy"] = (cpu_after - cpu_before) / wall if wall > 0 else 0.0
    figures["server_threads"] = threads
    figures["server_core_queued"] = queued / wall if wall > 0 else 0.0
    figures["server_written_bytes"] = written
    # Other work on the machine competes for the pinned cores: the 1-minute load average before and after.
    figures["load_average"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
    failed = figures["bad_status"] + figures["graphql_errors"] + figures["unexpected"]
    if failed or figures["socket_errors"]:
        raise CheckFailed(
            f"{failed} of {figures['answered']} answers failed ({figures['bad_status']} non-200, "
            f"{figures['graphql_errors']} with GraphQL errors, {figures['unexpected']} unexpected); socket errors: "
            f"{figures['socket_errors'] or 'none'}; the first: {figures['first_failure']}")
    if figures["answered"] == 0 or figures["seconds"] <= 0:
        raise CheckFailed(f"no answer in {seconds:.0f} s:\n{result.stdout}")
    return figures


# ---------------------------------------------------------------------------------------------------------------
# The cases


@dataclass
class Settings:
    binary: Path
    work: Path
    server_core: str | None
    load_core: str | None
    seconds: float
    rounds: int
    results: list[dict] = field(default_factory=list)


def customer_bodies(prefix: str, rng: random.Random) -> list[str]:
    bodies = []
    for variant in range(1000):
        status = rng.choice(STATUSES)
        customer = {
            "key": f"{prefix}-{MARK}",
            "name": f"Bench Customer {variant} {rng.choice(['Ltd', 'GmbH', 'SA', 'Inc', 'BV'])}",
            "power": round(rng.random(), 3),
            "interest": round(rng.random(), 3),
            "markets": rng.sample(["REFERRAL", "INFLUENCE", "SUPPLIER"], rng.randint(0, 2)),
            "status": status,
            "segment": rng.choice(["SMB", "Mid-market", "Enterprise"]),
        }
        if status != "PROSPECT":
            customer["lifetimeValue"] = round(rng.uniform(100, 500_000), 2)
        bodies.append(json.dumps({"query": CREATE_CUSTOMER, "variables": {"input": customer}},
                                 separators=(",", ":")))
    return bodies


def run_customers(settings: Settings, sizes: list[int]) -> None:
    databases = {size: ensure_demo(settings.binary, ROOT / "target" / "bench-data" / f"writes-{size}.db", size)
                 for size in sizes}
    for round_number in range(settings.rounds):
        for size in sizes:
            log(f"customers: round {round_number + 1}, {size:,} stakeholders, 8 connections, {settings.seconds:.0f} s")
            copy = fresh_copy(databases[size], settings.work, f"customers-{size}.db")
            server = Server(settings.binary, copy, settings.work, settings.server_core)
            try:
                server.wait_ready()
                check_ids(server, copy)
                before = server.counts()
                prefix = f"bench-{round_number}-{size}-{secrets.token_hex(4)}"
                script = write_lua(settings.work, "customers", customer_bodies(prefix, random.Random(SEED)),
                                   server.key, '"createCustomer":{"id":"')
                figures = run_wrk(server, script, 8, settings.seconds, settings.load_core)
                after = server.counts()
                created = after["stakeholders"] - before["stakeholders"]
                # Requests still in flight when wrk stopped may have committed, unanswered.
                if not figures["answered"] <= created <= figures["sent"]:
                    raise CheckFailed(f"{figures['answered']} customers acknowledged ({figures['sent']} sent) but "
                                      f"graphCounts grew by {created}")
                first = server.graphql("query($key: String!) { stakeholderByKey(key: $key) { kind name } }",
                                      {"key": f"{prefix}-1"})["stakeholderByKey"]
                if not first or first["kind"] != "CUSTOMER":
                    raise CheckFailed(f"customer {prefix}-1 (the first sent) is not there: {first}")
            finally:
                server.stop()
                remove_database(copy)
            rate = figures["answered"] / figures["seconds"]
            log(f"  {rate:,.0f} customers/s, p50 {figures['p50_ms']:.1f} ms, p99 {figures['p99_ms']:.1f} ms; "
                f"{created:,} created; server core {figures['server_core_busy']:.0%} busy, "
                f"{figures['server_core_queued']:.0%} waited for")
            settings.results.append({"case": "customers", "round": round_number + 1,
                                     "stakeholders": before["stakeholders"],
                                     "size": size, "connections": 8, "rate": rate, "created": created, **figures})


def unrelated_pairs(db: Path, count: int, rng: random.Random) -> list[tuple[int, int]]:
    """`count` distinct pairs of live stakeholders with no relationship between them, of any type or direction."""
    connection = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        live = [row[0] for row in connection.execute("SELECT id FROM stakeholder WHERE archived_at IS NULL")]
        pairs: list[tuple[int, int]] = []
        seen: set[frozenset] = set()
        while len(pairs) < count:
            source, target = rng.sample(live, 2)
            if frozenset((source, target)) in seen:
                continue
            related = connection.execute(
                "SELECT 1 FROM relationship WHERE (from_id = ? AND to_id = ?) OR (from_id = ? AND to_id = ?) LIMIT 1",
                (source, target, target, source)).fetchone()
            if related:
                continue
            seen.add(frozenset((source, target)))
            pairs.append((source, target))
    finally:
        connection.close()
    return pairs


def run_relationships(settings: Settings, graph: Path, count: int) -> None:
    log(f"relationships: {count:,} new relationships on {graph.name}, 8 connections")
    copy = fresh_copy(graph, settings.work, "relationships.db")
    try:
        rng = random.Random(SEED)
        pairs = unrelated_pairs(copy, count, rng)
        bodies = []
        for source, target in pairs:
            upsert = {"from": global_id("Stakeholder", source), "to": global_id("Stakeholder", target), "type": "KNOWS",
                      "level": rng.choice(LEVELS[:3]), "trust": round(rng.random(), 3),
                      "commitment": round(rng.random(), 3)}
            bodies.append(json.dumps({"query": NEW_RELATIONSHIP, "variables": {"input": upsert}},
                                     separators=(",", ":")))
        server = Server(settings.binary, copy, settings.work, settings.server_core)
        try:
            server.wait_ready()
            check_ids(server, copy)
            before = server.counts()
            script = write_lua(settings.work, "relationships", bodies, server.key, '"created":true', limit=count)
            # wrk's duration is only a ceiling here: the script stops wrk after the last answer.
            figures = run_wrk(server, script, 8, 4 * 3600, settings.load_core)
            after = server.counts()
        finally:
            server.stop()
        created = after["relationships"] - before["relationships"]
        if figures["answered"] != count or figures["sent"] != count or created != count:
            raise CheckFailed(f"{figures['sent']} sent, {figures['answered']} answered, graphCounts grew by {created}; "
                              f"expected {count} each")
        connection = sqlite3.connect(f"file:{copy}?mode=ro", uri=True)
        try:
            query = "SELECT count(*) FROM relationship WHERE from_id = ? AND to_id = ? AND type = 'KNOWS'"
            found = sum(connection.execute(query, pair).fetchone()[0] for pair in pairs)
        finally:
            connection.close()
        if found != count:
            raise CheckFailed(f"only {found} of the {count} new relationships are in the database file")
    finally:
        remove_database(copy)
    rate = count / figures["seconds"]
    log(f"  {rate:,.1f} new relationships/s over {figures['seconds']:.1f} s, p50 {figures['p50_ms']:.1f} ms, "
        f"p99 {figures['p99_ms']:.1f} ms; all {count:,} in graphCounts and in the file")
    settings.results.append({"case": "relationships", "round": 1, "relationships": before["relationships"],
                             "connections": 8, "rate": rate, "created": created, **figures})


def interaction_bodies(db: Path, batch: int, batches: int, rng: random.Random) -> list[str]:
    connection = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        live = [row[0] for row in connection.execute(
            "SELECT r.id FROM relationship r JOIN stakeholder f ON f.id = r.from_id "
            "JOIN stakeholder t ON t.id = r.to_id "
            "WHERE f.archived_at IS NULL AND t.archived_at IS NULL")]
    finally:
        connection.close()
    now = datetime.now(timezone.utc).replace(microsecond=0)
    bodies = []
    for _ in range(batches):
        interactions = []
        for _ in range(batch):
            channel = rng.choice(CHANNELS)
            at = now - timedelta(seconds=rng.randint(3600, 30 * 86400))
            interaction = {"relationship": global_id("Relationship", rng.choice(live)),
                           "at": at.isoformat().replace("+00:00", "Z"), "channel": channel,
                           "direction": rng.choice(["INBOUND", "OUTBOUND"]), "sentiment": round(rng.uniform(-1, 1), 2)}
            if channel == "PURCHASE":
                interaction["amount"] = round(rng.uniform(10, 5000), 2)
            interactions.append(interaction)
        bodies.append(json.dumps({"query": RECORD_INTERACTIONS, "variables": {"input": {"interactions": interactions}}},
                                 separators=(",", ":")))
    return bodies


def run_interactions(settings: Settings, graph: Path, batch: int, connection_counts: list[int]) -> None:
    bodies: list[str] | None = None
    for round_number in range(settings.rounds):
        for connections in connection_counts:
            log(f"interactions: round {round_number + 1}, batches of {batch:,}, {connections} connection(s), "
                f"{settings.seconds:.0f} s on {graph.name}")
            copy = fresh_copy(graph, settings.work, "interactions.db")
            try:
                if bodies is None:
                    bodies = interaction_bodies(copy, batch, 64, random.Random(SEED))
                    size = max(len(body) for body in bodies)
                    log(f"  {len(bodies)} distinct batches, up to {size / 1024:.0f} KiB each")
                server = Server(settings.binary, copy, settings.work, settings.server_core)
                try:
                    server.wait_ready()
                    check_ids(server, copy)
                    before = server.counts()
                    script = write_lua(settings.work, "interactions", bodies, server.key, f'"count":{batch}')
                    figures = run_wrk(server, script, connections, settings.seconds, settings.load_core)
                    after = server.counts()
                finally:
                    server.stop()
            finally:
                remove_database(copy)
            recorded = after["interactions"] - before["interactions"]
            if recorded % batch or not figures["answered"] * batch <= recorded <= figures["sent"] * batch:
                raise CheckFailed(f"{figures['answered']} batches of {batch} acknowledged ({figures['sent']} sent) "
                                  f"but graphCounts.interactions grew by {recorded}")
            rate = figures["answered"] * batch / figures["seconds"]
            log(f"  {rate:,.0f} interactions/s, p50 {figures['p50_ms']:.1f} ms, p99 {figures['p99_ms']:.1f} ms per "
                f"batch; {recorded:,} recorded; server core {figures['server_core_busy']:.0%} busy, "
                f"{figures['server_core_queued']:.0%} waited for")
            settings.results.append({"case": "interactions", "round": round_number + 1,
                                     "relationships": before["relationships"],
                                     "connections": connections, "batch": batch, "rate": rate, "recorded": recorded,
                                     **figures})


# ---------------------------------------------------------------------------------------------------------------
# Report


def spread(values: list[float], digits: int = 0) -> str:
    return f"{min(values):,.{digits}f}–{max(values):,.{digits}f}" if len(values) > 1 else "-"


def report(settings: Settings, sizes: list[int]) -> tuple[list[str], dict]:
    lines = [
        "| case | graph | conns | rate, median [spread] | p50 ms | p99 ms | server CPU per request "
        "| server core busy / waited for | written per request | runs |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    summary: dict = {}

    def row(case: str, graph: str, connections: int, runs: list[dict], unit: str) -> None:
        rates = [run["rate"] for run in runs]
        digits = 1 if max(rates) < 100 else 0
        rate = f"{statistics.median(rates):,.{digits}f} {unit} [{spread(rates, digits)}]"
        p50 = statistics.median(run["p50_ms"] for run in runs)
        p99 = statistics.median(run["p99_ms"] for run in runs)
        cpu = statistics.median(run["server_cpu_s"] / run["answered"] * 1000 for run in runs)
        written = statistics.median(run["server_written_bytes"] / run["answered"] / 1024 for run in runs)
        busy = statistics.median(run["server_core_busy"] for run in runs)
        queued = statistics.median(run["server_core_queued"] for run in runs)
        lines.append(
            f"| {case} | {graph} | {connections} | {rate} | {p50:.1f} | {p99:.1f} | "
            f"{cpu:.2f} ms | {busy:.0%} / {queued:.0%} | {written:,.0f} KiB | {len(runs)} |")

    customers = [run for run in settings.results if run["case"] == "customers"]
    for size in sizes:
        runs = [run for run in customers if run["size"] == size]
        if runs:
            row("createCustomer", f"{size:,} stakeholders", 8, runs, "req/s")
    if len(sizes) == 2 and customers:
        small, large = sizes
        by_round = {}
        for run in customers:
            by_round.setdefault(run["round"], {})[run["size"]] = run["rate"]
        ratios = [rates[large] / rates[small] for rates in by_round.values() if small in rates and large in rates]
        if ratios:
            summary["customer_ratio"] = {"median": statistics.median(ratios), "per_round": ratios}
    relationships = [run for run in settings.results if run["case"] == "relationships"]
    if relationships:
        row("upsertRelationship (new)", f"{relationships[0]['relationships']:,} relationships", 8, relationships,
            "new/s")
    interactions = [run for run in settings.results if run["case"] == "interactions"]
    for connections in sorted({run["connections"] for run in interactions}):
        runs = [run for run in interactions if run["connections"] == connections]
        row(f"recordInteractions ×{runs[0]['batch']:,}", f"{runs[0]['relationships']:,} relationships", connections,
            runs, "interactions/s")
    if "customer_ratio" in summary:
        ratio = summary["customer_ratio"]
        met = "met" if ratio["median"] >= 0.8 else "not met"
        lines.append("")
        lines.append(f"createCustomer {sizes[1]:,} ÷ {sizes[0]:,}: {ratio['median']:.2f} "
                     f"[{spread(ratio['per_round'], 2)}] per round (target ≥ 0.8: {met})")
    if relationships:
        rate = relationships[0]["rate"]
        lines.append(f"new relationships: {rate:,.1f}/s sustained over {relationships[0]['answered']:,} "
                     f"(target ≥ 5,000/s: {'met' if rate >= 5000 else 'not met'})")
    if interactions:
        best = max(statistics.median(run["rate"] for run in interactions if run["connections"] == c)
                   for c in {run["connections"] for run in interactions})
        lines.append(f"recordInteractions: best median {best:,.0f} interactions/s "
                     f"(target ≥ 50,000/s: {'met' if best >= 50000 else 'not met'})")
    return lines, summary


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bin", type=Path, default=ROOT / "target" / "release" / "stakegraph",
                        help="the stakegraph binary [default: target/release/stakegraph]")
    parser.add_argument("--cases", default="customers,relationships,interactions",
                        help="comma-separated: customers, relationships, interactions")
    parser.add_argument("--quick", action="store_true",
                        help="3,000 vs 20,000 stakeholders, a 20,000-relationship graph, 1,000 new relationships, "
                        "3 s, 2 rounds")
    parser.add_argument("--sizes", help="the two demo sizes of the customers case [default: 3000,200000]")
    parser.add_argument("--graph", type=Path, help="an existing graph for the relationships and interactions cases "
                        "[default: target/bench-data/demo-100000-r1000000-seed42-2026-06-01.db, written on first use]")
    parser.add_argument("--new-relationships", type=int, help="relationships the relationships case creates [10000]")
    parser.add_argument("--batch", type=int, default=1000, help="interactions per recordInteractions")
    parser.add_argument("--interaction-connections", default="1,2", help="connections of the interactions case")
    parser.add_argument("--seconds", type=float, help="length of each timed run [10; --quick 3]")
    parser.add_argument("--rounds", type=int,
                        help="interleaved rounds of the customers and interactions cases [3; --quick 2]")
    parser.add_argument("--no-pin", action="store_true", help="do not pin the server and wrk to separate cores")
    parser.add_argument("--json", action="store_true", help="print every figure as one JSON object on stdout")
    args = parser.parse_args()

    sizes = [int(size) for size in (args.sizes or ("3000,20000" if args.quick else "3000,200000")).split(",")]
    graph_size, graph_relationships = (3000, 20000) if args.quick else (100_000, 1_000_000)
    new_relationships = args.new_relationships or (1000 if args.quick else 10_000)
    seconds = args.seconds or (3.0 if args.quick else 10.0)
    rounds = args.rounds or (2 if args.quick else 3)
    cases = [case.strip() for case in args.cases.split(",") if case.strip()]
    unknown = set(cases) - {"customers", "relationships", "interactions"}

    try:
        if unknown:
            raise SetupError(f"unknown case(s): {', '.join(sorted(unknown))}")
        if shutil.which("wrk") is None:
            raise SetupError("`wrk` is not installed (apt-get install wrk)")
        binary = args.bin if args.bin.is_absolute() else Path.cwd() / args.bin
        if not binary.exists():
            raise SetupError(f"{binary} is missing: cargo build --release --bin stakegraph")
        pin = not args.no_pin and (os.cpu_count() or 1) >= 2 and shutil.which("taskset") is not None
        server_core, load_core = ("0", "1") if pin else (None, None)
        graph = None
        if {"relationships", "interactions"} & set(cases):
            name = f"demo-{graph_size}-r{graph_relationships}-seed{SEED}-{ANCHOR}.db"
            graph = args.graph or ensure_demo(binary, ROOT / "target" / "bench-data" / name, graph_size,
                                              graph_relationships)
            if not graph.exists():
                raise SetupError(f"{graph} does not exist")
        work = Path(tempfile.mkdtemp(prefix="stakegraph-writes-"))
        settings = Settings(binary, work, server_core, load_core, seconds, rounds)
        try:
            if "customers" in cases:
                run_customers(settings, sizes)
            if "relationships" in cases:
                run_relationships(settings, graph, new_relationships)
            if "interactions" in cases:
                run_interactions(settings, graph, args.batch,
                                 [int(value) for value in args.interaction_connections.split(",")])
        finally:
            shutil.rmtree(work, ignore_errors=True)
    except SetupError as error:
        print(f"writes.py: setup failed: {error}", file=sys.stderr)
        return 2
    except CheckFailed as error:
        print(f"writes.py: check failed: {error}", file=sys.stderr)
        return 1

    lines, summary = report(settings, sizes)
    loads = [load for run in settings.results for load in run["load_average"]]
    timed = [case for case in ("customers", "interactions") if case in cases]
    durations = f"{' and '.join(timed)}: {rounds} interleaved round(s) of {seconds:.0f} s; " if timed else ""
    heading = ("writes.py: " + durations
               + ("server on core 0, wrk on core 1" if pin else "not pinned")
               + (f"; 1-minute load average {min(loads):.1f}–{max(loads):.1f} around the runs" if loads else ""))
    print("\n".join([heading, "", *lines]), file=sys.stderr if args.json else sys.stdout)
    if args.json:
        print(json.dumps({"pinned": pin, "rounds": rounds, "seconds": seconds, "sizes": sizes,
                          "graph": str(graph) if graph else None, "summary": summary, "runs": settings.results}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
