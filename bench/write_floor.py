"""The least SQLite must do for `recordInteractions` in batches of 1,000 on random relationships of a large graph,
without Stakegraph: what the disk allows, as a floor for bench/writes.py's interactions case (issue 12, target 4).

    python3 bench/write_floor.py --graph target/bench-data/demo-100000-r1000000-seed42-2026-06-01.db

On a copy of the graph (deleted afterwards), for --seconds per setting: per interaction, read its relationship's
row and its two ends' `archived_at`, insert the interaction (row and index), update the relationship's decayed sums;
one change_log row per interaction; one `BEGIN IMMEDIATE` transaction per batch, `journal_mode = WAL`,
`synchronous = FULL`, a 64 MiB page cache, as the service's writer. Python's own cost per statement is in the batch
time, not in the commit time. For each `wal_autocheckpoint` setting in --checkpoints (pages of log before a commit
folds it into the file; SQLite's default is 1,000, the service's 16,384; 0 means never, which shows the log alone):
batches done, p50 of the batch and of its commit, and interactions a second. Pinned to core 0 unless --no-pin.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time

PAYLOAD = '{"interactions":[{"at":"2026-06-01T00:00:00Z","channel":"EMAIL","direction":"INBOUND","sentiment":0.5}]}'


def run(graph: str, checkpoint: int, seconds: float, batch: int) -> dict:
    with tempfile.TemporaryDirectory(dir=os.path.dirname(os.path.abspath(graph))) as directory:
        path = os.path.join(directory, "floor.db")
        shutil.copy(graph, path)
        with open(path, "rb") as copy:
            os.fsync(copy.fileno())
        db = sqlite3.connect(path, isolation_level=None)
        for pragma in ("journal_mode = WAL", "synchronous = FULL", "cache_size = -65536"):
            db.execute(f"PRAGMA {pragma}")
        db.execute(f"PRAGMA wal_autocheckpoint = {checkpoint}")
        last = db.execute("SELECT max(id) FROM relationship").fetchone()[0]
        rng = random.Random(1)
        now = 1_780_000_000_000
        batches, commits = [], []
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            ids = [rng.randint(1, last) for _ in range(batch)]
            started = time.perf_counter()
            db.execute("BEGIN IMMEDIATE")
            for id in ids:
                row = db.execute(
                    "SELECT sum_weighted, sum_inbound, sum_sentiment, from_id, to_id FROM relationship WHERE id = ?",
                    (id,),
                ).fetchone()
                if row is None:
                    continue
                for end_id in row[3:5]:
                    db.execute("SELECT archived_at FROM stakeholder WHERE id = ?", (end_id,)).fetchone()
                db.execute(
                    "INSERT INTO interaction (relationship_id, at, channel, direction, sentiment) VALUES (?, ?, ?, ?, ?)",
                    (id, now, "EMAIL", "INBOUND", 0.5),
                )
                db.execute(
                    "UPDATE relationship SET sum_weighted = ?, sum_inbound = ?, sum_sentiment = ?, last_at = ? WHERE id = ?",
                    (row[0] + 1, row[1] + 1, row[2] + 0.5, now, id),
                )
                db.execute(
                    "INSERT INTO change_log (at, kind, stakeholders, relationship_id, payload) VALUES (?, ?, ?, ?, ?)",
                    (now, "INTERACTIONS_RECORDED", f"[{row[3]},{row[4]}]", id, PAYLOAD),
                )
            committing = time.perf_counter()
            db.execute("COMMIT")
            done = time.perf_counter()
            batches.append(done - started)
            commits.append(done - committing)
            now += 1000
        db.close()
    return {
        "wal_autocheckpoint": checkpoint,
        "batches": len(batches),
        "batch_p50_ms": statistics.median(batches) * 1e3,
        "commit_p50_ms": statistics.median(commits) * 1e3,
        "commit_mean_ms": statistics.mean(commits) * 1e3,
        "per_second": batch * len(batches) / sum(batches),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--graph", default="target/bench-data/demo-100000-r1000000-seed42-2026-06-01.db")
    parser.add_argument("--checkpoints", default="1000,16384,0", help="wal_autocheckpoint settings to run")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--no-pin", action="store_true")
    arguments = parser.parse_args()
    if not os.path.exists(arguments.graph):
        print(f"write_floor.py: no graph at {arguments.graph}; write it with bench/writes.py or `stakegraph demo "
              "--size 100000 --relationships 1000000 --anchor 2026-06-01 --db PATH`", file=sys.stderr)
        return 2
    if not arguments.no_pin and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {0})
    print("| wal_autocheckpoint | batches | batch p50 | commit p50 (mean) | interactions/s |")
    print("|---|---|---|---|---|")
    for checkpoint in (int(value) for value in arguments.checkpoints.split(",")):
        result = run(arguments.graph, checkpoint, arguments.seconds, arguments.batch)
        print(f"| {checkpoint or 'never'} | {result['batches']} | {result['batch_p50_ms']:.1f} ms "
              f"| {result['commit_p50_ms']:.1f} ms ({result['commit_mean_ms']:.1f}) | {result['per_second']:,.0f} |",
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
