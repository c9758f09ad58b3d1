"""How long `stakegraph import` takes on a large file set (issue 14, acceptance 1), against the floor of writing the
same rows into plain SQLite tables.

    cargo build --release --bin stakegraph
    python3 bench/import.py --stakeholders 100000 --relationships 300000 --interactions 1000000

Writes a seeded file set (stakeholders as CSV: 60% customers and the other kinds; relationships as JSON Lines: KNOWS
between random stakeholders, each pair once, with level, bonds, trust and since; interactions as CSV, each with its
own key, spread over the relationships and written one relationship after another, as a CRM export lists them), then for each round: imports it
into an empty database (timed), imports it again (a no-op, timed), and, as the peer, inserts the same rows with
Python's sqlite3 `executemany` into two plain tables in one transaction (no keys resolved, no validation, no change
log, no decayed sums: the floor of putting the rows on disk). Prints the median and spread in seconds. The import runs on the first
core, the peer on the second.

With `--serve`, one more import runs into the database of a running `stakegraph serve` (on the second core): the
service follows the change log as the import commits, and the script reports the processor time the service spent
following it, and how long after the import its projection held every relationship, against the processor time a
fresh `serve` spends building its projection from the finished database.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from serving import free_port, pinned, post, wait_readyz  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
KINDS = [("CUSTOMER", 60), ("SUPPLIER", 10), ("DISTRIBUTOR", 10), ("EMPLOYEE", 8), ("MEDIA", 7), ("GOVERNMENT", 5)]
LEVELS = ["BASIC", "REACTIVE", "ACCOUNTABLE", "PROACTIVE", "PARTNERSHIP"]
BONDS = ["FINANCIAL", "SOCIAL", "STRUCTURAL"]
KEY = "bench-import-viewer-key-0123456789abcdef"


CHANNELS = ["MEETING", "CALL", "EMAIL", "PURCHASE", "MESSAGE", "EVENT"]
INTERACTION_COLUMNS = ["key", "from_key", "to_key", "type", "at", "channel", "direction", "sentiment", "amount",
                       "topic"]


def write_files(directory: Path, stakeholders: int, relationships: int, interactions: int,
                seed: int) -> tuple[Path, Path, Path]:
    rng = random.Random(seed)
    people = directory / "stakeholders.csv"
    kinds = [kind for kind, weight in KINDS for _ in range(weight)]
    with people.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["kind", "key", "name", "power", "interest", "status", "segment", "lifetime_value"])
        for index in range(stakeholders):
            kind = kinds[index % len(kinds)]
            customer = kind == "CUSTOMER"
            writer.writerow([kind, f"K-{index:07d}", f"Stakeholder {index}", round(rng.random(), 2),
                             round(rng.random(), 2), "ACTIVE" if customer else "",
                             rng.choice(["SMB", "ENTERPRISE", "CONSUMER"]) if customer else "",
                             round(rng.lognormvariate(8, 1.5), 2) if customer else ""])
    links = directory / "relationships.jsonl"
    seen = set()
    with links.open("w") as out:
        while len(seen) < relationships:
            a, b = rng.randrange(stakeholders), rng.randrange(stakeholders)
            if a == b or (a, b) in seen:
                continue
            seen.add((a, b))
            record = {"from_key": f"K-{a:07d}", "to_key": f"K-{b:07d}", "type": "KNOWS",
                      "level": rng.choice(LEVELS), "bonds": rng.sample(BONDS, rng.randrange(3)),
                      "trust": round(rng.random(), 2), "since": f"20{rng.randrange(15, 26)}-0{rng.randrange(1, 10)}-01"}
            out.write(json.dumps(record) + "\n")
    mail = directory / "interactions.csv"
    pairs = list(seen)
    # Each relationship's share: at least one when there are as many interactions as relationships.
    shares = [interactions // len(pairs)] * len(pairs)
    for extra in rng.sample(range(len(pairs)), interactions % len(pairs)):
        shares[extra] += 1
    with mail.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(INTERACTION_COLUMNS)
        number = 0
        for (a, b), share in zip(pairs, shares):
            for _ in range(share):
                channel = rng.choice(CHANNELS)
                day = f"20{rng.randrange(20, 26)}-{rng.randrange(1, 13):02d}-{rng.randrange(1, 29):02d}"
                writer.writerow([f"I-{number:08d}", f"K-{a:07d}", f"K-{b:07d}", "KNOWS",
                                 f"{day}T{rng.randrange(8, 18):02d}:{rng.randrange(60):02d}:00Z", channel,
                                 rng.choice(["INBOUND", "OUTBOUND"]), round(rng.uniform(-1, 1), 2),
                                 round(rng.lognormvariate(6, 1), 2) if channel == "PURCHASE" else "",
                                 "ORDER" if channel == "PURCHASE" else ""])
                number += 1
    return people, links, mail


def timed_import(binary: str, db: Path, people: Path, links: Path, mail: Path) -> tuple[float, dict]:
    started = time.perf_counter()
    output = subprocess.run(pinned("0", [binary, "import", "--db", str(db), "--stakeholders", str(people),
                                         "--relationships", str(links), "--interactions", str(mail)]),
                            capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if output.returncode != 0:
        sys.exit(f"import.py: the import failed: {output.stderr[-2000:]}")
    return elapsed, json.loads(output.stdout)


def peer(db: Path, people: Path, links: Path, mail: Path) -> float:
    started = time.perf_counter()
    connection = sqlite3.connect(db)
    connection.execute("PRAGMA journal_mode = WAL")
    connection.execute("CREATE TABLE s (kind TEXT, key TEXT, name TEXT, power REAL, interest REAL, status TEXT,"
                       " segment TEXT, lifetime_value REAL)")
    connection.execute("CREATE TABLE r (from_key TEXT, to_key TEXT, type TEXT, level TEXT, bonds TEXT, trust REAL,"
                       " since TEXT)")
    with connection:
        with people.open(newline="") as source:
            rows = csv.reader(source)
            next(rows)
            connection.executemany("INSERT INTO s VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
        with links.open() as source:
            records = (json.loads(line) for line in source)
            connection.executemany("INSERT INTO r VALUES (?, ?, ?, ?, ?, ?, ?)",
                                   ((r["from_key"], r["to_key"], r["type"], r["level"], "|".join(r["bonds"]),
                                     r["trust"], r["since"]) for r in records))
        connection.execute(f"CREATE TABLE i ({', '.join(INTERACTION_COLUMNS)})")
        with mail.open(newline="") as source:
            rows = csv.reader(source)
            next(rows)
            connection.executemany(f"INSERT INTO i VALUES ({', '.join('?' * len(INTERACTION_COLUMNS))})", rows)
    connection.close()
    return time.perf_counter() - started


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_serve(binary: str, db: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    server = subprocess.Popen(pinned("1", [binary, "serve", "--listen", f"127.0.0.1:{port}", "--db", str(db)]),
                              env=dict(os.environ, RUST_LOG="warn", STAKEGRAPH_API_KEYS=f"viewer:{KEY}"))
    wait_readyz(f"http://127.0.0.1:{port}/readyz")
    return server, f"http://127.0.0.1:{port}/graphql"


def relationships_seen(url: str) -> int:
    answer = post(url, {"query": "{ relationships(first: 1) { totalCount } }"}, KEY, timeout=60)
    return answer["data"]["relationships"]["totalCount"]


def follow(binary: str, work: Path, files: tuple[Path, Path, Path], relationships: int) -> None:
    """An import into the database of a running service: what following it costs the service."""
    db = work / "served.db"
    server, url = start_serve(binary, db)
    try:
        before = cpu_seconds(server.pid)
        elapsed, _ = timed_import(binary, db, *files)
        ended = time.perf_counter()
        while relationships_seen(url) < relationships:
            time.sleep(0.1)
        behind = time.perf_counter() - ended
        # Settled: the last interaction pages are applied once its processor time stops growing.
        settled = cpu_seconds(server.pid)
        while True:
            time.sleep(2)
            now = cpu_seconds(server.pid)
            if now - settled < 0.05:
                break
            settled = now
        following = settled - before
    finally:
        server.terminate()
        server.wait()
    server, url = start_serve(binary, db)
    try:
        built = cpu_seconds(server.pid)
    finally:
        server.terminate()
        server.wait()
    print(f"import into a served database: {elapsed:.2f} s; every relationship in the service's projection "
          f"{behind:.2f} s after the import ended")
    print(f"processor time the service spent following the import: {following:.2f} s; a fresh service building its "
          f"projection from the finished database: {built:.2f} s (start-up included)")


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} s ({min(values):.2f}-{max(values):.2f})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--binary", default=str(ROOT / "target" / "release" / "stakegraph"))
    parser.add_argument("--stakeholders", type=int, default=100_000)
    parser.add_argument("--relationships", type=int, default=300_000)
    parser.add_argument("--interactions", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--serve", action="store_true", help="also measure a running service following an import")
    arguments = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="stakegraph-import-"))
    try:
        files = write_files(work, arguments.stakeholders, arguments.relationships, arguments.interactions,
                            arguments.seed)
        if hasattr(os, "sched_setaffinity"):
            os.sched_setaffinity(0, {1})
        first, again, floor = [], [], []
        for round_ in range(arguments.rounds):
            db = work / f"import-{round_}.db"
            elapsed, report = timed_import(arguments.binary, db, *files)
            first.append(elapsed)
            elapsed, repeat = timed_import(arguments.binary, db, *files)
            again.append(elapsed)
            if repeat["changes_logged"] != 0:
                sys.exit(f"import.py: a repeat logged {repeat['changes_logged']} changes")
            floor.append(peer(work / f"peer-{round_}.db", *files))
            # Each round on the same free space (a full disk slows the writes).
            for written in work.glob("*.db*"):
                written.unlink()
        print(f"load average at the end (1, 5, 15 min): {os.getloadavg()}")
        print(f"report of the first import: {json.dumps(report)}")
        print("| run | seconds (median, min-max) |")
        print("|---|---|")
        print(f"| import into an empty database | {spread(first)} |")
        print(f"| the same import again (a no-op) | {spread(again)} |")
        print(f"| peer: the same rows into plain SQLite tables (executemany) | {spread(floor)} |")
        if arguments.serve:
            follow(arguments.binary, work, files, arguments.relationships)
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
