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

--layouts also measures layouts the service does not use, to show what a different storage design would allow:
`append` (each interaction and its change_log row appended in rowid order: no index on the relationship, no
relationship row touched) and `append-fold` (the same, and every --fold-every batches the appended interactions
are moved into the indexed table and the relationships' sums, in relationship order, in one transaction, whose
time counts against the throughput) and `append-sums` (the same appends, and every --fold-every batches only the
touched relationships' sums are written, in id order: a history whose by-relationship index is kept in memory).

--page-sizes rewrites the copy with other page sizes first; --synchronous NORMAL shows commits that do not wait for
the disk.
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


def run(graph: str, checkpoint: int, seconds: float, batch: int, layout: str = "current", fold_every: int = 50,
        page_size: int = 0, synchronous: str = "FULL") -> dict:
    with tempfile.TemporaryDirectory(dir=os.path.dirname(os.path.abspath(graph))) as directory:
        path = os.path.join(directory, "floor.db")
        shutil.copy(graph, path)
        if page_size:
            # The page size of a file changes only by rewriting it, out of WAL mode.
            rewrite = sqlite3.connect(path, isolation_level=None)
            rewrite.execute("PRAGMA journal_mode = DELETE")
            rewrite.execute(f"PRAGMA page_size = {page_size}")
            rewrite.execute("VACUUM")
            rewrite.close()
        with open(path, "rb") as copy:
            os.fsync(copy.fileno())
        db = sqlite3.connect(path, isolation_level=None)
        for pragma in ("journal_mode = WAL", f"synchronous = {synchronous}", "cache_size = -65536"):
            db.execute(f"PRAGMA {pragma}")
        db.execute(f"PRAGMA wal_autocheckpoint = {checkpoint}")
        last = db.execute("SELECT max(id) FROM relationship").fetchone()[0]
        rng = random.Random(1)
        now = 1_780_000_000_000
        batches, commits, folds = [], [], []
        touched: set[int] = set()
        if layout != "current":
            db.execute("CREATE TABLE recent (relationship_id INTEGER NOT NULL, at INTEGER NOT NULL, channel TEXT NOT NULL, "
                       "direction TEXT NOT NULL, sentiment REAL NOT NULL)")
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            ids = [rng.randint(1, last) for _ in range(batch)]
            started = time.perf_counter()
            db.execute("BEGIN IMMEDIATE")
            if layout == "current":
                record(db, ids, now)
            else:
                append(db, ids, now)
            committing = time.perf_counter()
            db.execute("COMMIT")
            done = time.perf_counter()
            batches.append(done - started)
            commits.append(done - committing)
            now += 1000
            touched.update(ids)
            if layout in FOLDS and len(batches) % fold_every == 0:
                folding = time.perf_counter()
                FOLDS[layout](db, touched)
                touched.clear()
                folds.append(time.perf_counter() - folding)
                batches[-1] += folds[-1]
        db_page_size = db.execute("PRAGMA page_size").fetchone()[0]
        db.close()
    return {
        "layout": layout,
        "page_size": db_page_size,
        "folds": len(folds),
        "fold_mean_ms": statistics.mean(folds) * 1e3 if folds else 0.0,
        "wal_autocheckpoint": checkpoint,
        "batches": len(batches),
        "batch_p50_ms": statistics.median(batches) * 1e3,
        "commit_p50_ms": statistics.median(commits) * 1e3,
        "commit_mean_ms": statistics.mean(commits) * 1e3,
        "per_second": batch * len(batches) / sum(batches),
    }


def record(db: sqlite3.Connection, ids: list, now: int) -> None:
    """The layout the service writes: per interaction, its relationship's row and ends read, the interaction
    inserted (row and index), the relationship's sums updated, a change_log row appended."""
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


def append(db: sqlite3.Connection, ids: list, now: int) -> None:
    """The append-only layout: each interaction and its change_log row are appended (rowid order, no secondary index,
    no relationship row touched); the ends are still read to check they are live."""
    rows = []
    for id in ids:
        row = db.execute("SELECT from_id, to_id FROM relationship WHERE id = ?", (id,)).fetchone()
        if row is None:
            continue
        for end_id in row:
            db.execute("SELECT archived_at FROM stakeholder WHERE id = ?", (end_id,)).fetchone()
        rows.append((id, now, row[0], row[1]))
    db.executemany("INSERT INTO recent (relationship_id, at, channel, direction, sentiment) VALUES (?, ?, 'EMAIL', 'INBOUND', 0.5)",
                   [(id, at) for id, at, _, _ in rows])
    db.executemany("INSERT INTO change_log (at, kind, stakeholders, relationship_id, payload) VALUES (?, ?, ?, ?, ?)",
                   [(at, "INTERACTIONS_RECORDED", f"[{a},{b}]", id, PAYLOAD) for id, at, a, b in rows])


def fold(db: sqlite3.Connection, touched: set) -> None:
    """Folds the appended interactions into the indexed table and the relationships' sums, in relationship order
    (each page of the index and of the relationship table written once per fold, however many interactions it got),
    in one transaction, and empties the appended table (which holds what `touched` names)."""
    db.execute("BEGIN IMMEDIATE")
    db.execute("INSERT INTO interaction (relationship_id, at, channel, direction, sentiment) "
               "SELECT relationship_id, at, channel, direction, sentiment FROM recent ORDER BY relationship_id, at")
    db.execute("UPDATE relationship SET sum_weighted = sum_weighted + r.n, sum_inbound = sum_inbound + r.n, "
               "sum_sentiment = sum_sentiment + r.s, last_at = r.last FROM (SELECT relationship_id, count(*) AS n, "
               "sum(sentiment) AS s, max(at) AS last FROM recent GROUP BY relationship_id ORDER BY relationship_id) AS r "
               "WHERE relationship.id = r.relationship_id")
    db.execute("DELETE FROM recent")
    db.execute("COMMIT")


def fold_sums(db: sqlite3.Connection, touched: set) -> None:
    """Writes the sums of the relationships that got interactions since the last fold, in id order, in one
    transaction: what a layout costs whose history has no by-relationship index on disk (the index kept in memory,
    rebuilt at start-up from the appended rows) and whose sums on disk are brought up to date now and then (the
    ones in memory are current). The sums written are stand-ins: the cost is in the pages, not the values."""
    db.execute("BEGIN IMMEDIATE")
    db.executemany("UPDATE relationship SET sum_weighted = sum_weighted + 1, last_at = ? WHERE id = ?",
                   [(1_780_000_000_000, id) for id in sorted(touched)])
    db.execute("COMMIT")


# What each layout that folds does every --fold-every batches, given the relationships touched since the last fold.
FOLDS = {"append-fold": fold, "append-sums": fold_sums}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--graph", default="target/bench-data/demo-100000-r1000000-seed42-2026-06-01.db")
    parser.add_argument("--checkpoints", default="1000,16384,0", help="wal_autocheckpoint settings to run")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--no-pin", action="store_true")
    parser.add_argument("--layouts", default="current",
                        help="current (as the service writes), append (interactions and log rows appended only), "
                             "append-fold (append, and fold into the index and sums every --fold-every batches), "
                             "append-sums (append, and write only the touched relationships' sums every --fold-every "
                             "batches: the by-relationship index in memory)")
    parser.add_argument("--fold-every", type=int, default=50)
    parser.add_argument("--page-sizes", default="0",
                        help="page sizes to rewrite the copy with before the run (VACUUM); 0 keeps the file's own")
    parser.add_argument("--synchronous", default="FULL", choices=["FULL", "NORMAL"],
                        help="FULL (as the service: a commit waits for the disk) or NORMAL (the log is synced only at "
                             "checkpoints: an acknowledged batch can be lost on power failure)")
    arguments = parser.parse_args()
    if not os.path.exists(arguments.graph):
        print(f"write_floor.py: no graph at {arguments.graph}; write it with bench/writes.py or `stakegraph demo "
              "--size 100000 --relationships 1000000 --anchor 2026-06-01 --db PATH`", file=sys.stderr)
        return 2
    if not arguments.no_pin and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {0})
    print(f"synchronous = {arguments.synchronous}")
    print("| layout | page size | wal_autocheckpoint | batches | batch p50 | commit p50 (mean) | folds (mean) "
          "| interactions/s |")
    print("|---|---|---|---|---|---|---|---|")
    for layout, page_size, checkpoint in ((layout, int(size), int(checkpoint))
                                          for layout in arguments.layouts.split(",")
                                          for size in arguments.page_sizes.split(",")
                                          for checkpoint in arguments.checkpoints.split(",")):
        result = run(arguments.graph, checkpoint, arguments.seconds, arguments.batch, layout, arguments.fold_every,
                     page_size, arguments.synchronous)
        folds = f"{result['folds']} ({result['fold_mean_ms']:.0f} ms)" if result["folds"] else "-"
        print(f"| {layout} | {result['page_size']} | {checkpoint or 'never'} | {result['batches']} "
              f"| {result['batch_p50_ms']:.1f} ms "
              f"| {result['commit_p50_ms']:.1f} ms ({result['commit_mean_ms']:.1f}) | {folds} "
              f"| {result['per_second']:,.0f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
