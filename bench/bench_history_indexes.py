"""SQLite's cost of a run's commits with the history indexes keyed plainly or by generation.

    python bench/bench_history_indexes.py [--events 2000000] [--prospects 145000]
                                          [--touched 0.58] [--workdir /tmp/mrules-hidx]

Writes what `mrules run` commits, without the engine: every 20,000 events, one
`history` row an event (a random prospect of `--prospects`, a random 31-bit
event hash, 37 bytes of data) and `--touched` x 20,000 prospect states of 200
to 520 bytes (0.58 is what bench_scale.py's 2M stream touches a commit, 0.32
its 200k one), in one transaction, with the store's pragmas. Two stores side
by side, the same rows: `plain` has schema 3's indexes (`prospect`, `event`),
`generation` schema 4's (`id >> 16, prospect`, `id >> 16, event`). Prints the
CPU microseconds an event of the commits (SQLite's work, the rows already
built): over the first fifth of the commits, the last fifth, and all of them.
"""

from __future__ import annotations

import argparse
import random
import sqlite3
import time
from pathlib import Path

__all__ = ["main", "run"]

COMMIT = 20_000
INDEXES = {
    "plain": ("(prospect) WHERE prospect IS NOT NULL", "(event) WHERE event IS NOT NULL"),
    "generation": (
        "(id >> 16, prospect) WHERE prospect IS NOT NULL",
        "(id >> 16, event) WHERE event IS NOT NULL",
    ),
}


def run(variant: str, events: int, prospects: int, touched: float, path: Path) -> list[float]:
    """CPU seconds of each commit."""
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    conn = sqlite3.connect(path, isolation_level=None)
    for pragma in ("journal_mode = WAL", "synchronous = NORMAL", "cache_size = -65536"):
        conn.execute(f"PRAGMA {pragma}")
    conn.execute("PRAGMA wal_autocheckpoint = 25600")
    conn.execute("CREATE TABLE prospects (id INTEGER PRIMARY KEY, email TEXT UNIQUE, state BLOB)")
    conn.execute(
        "CREATE TABLE history (id INTEGER PRIMARY KEY, prospect INTEGER, visitor, ts,"
        " seq INTEGER, event_id TEXT, event INTEGER, messages INTEGER, data BLOB NOT NULL)"
    )
    by_prospect, by_event = INDEXES[variant]
    conn.execute(f"CREATE INDEX history_prospect ON history {by_prospect}")
    conn.execute(f"CREATE INDEX history_event ON history {by_event}")
    rnd = random.Random(1)  # the same rows for both variants
    data = bytes(rnd.getrandbits(8) for _ in range(37))
    spent: list[float] = []
    row_id = 0
    commits = events // COMMIT
    for n in range(commits):
        rows = []
        for _ in range(COMMIT):
            row_id += 1
            pid, h = rnd.randrange(prospects), rnd.getrandbits(31)
            rows.append((row_id, pid, None, row_id, None, f"e-{row_id:08d}", h, None, data))
        states = {
            rnd.randrange(prospects): rnd.randbytes(rnd.randrange(200, 520))
            for _ in range(int(COMMIT * touched))
        }
        upserts = [(pid, f"p{pid}@example.com", state) for pid, state in states.items()]
        started = time.process_time()
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(
            "INSERT INTO prospects VALUES (?, ?, ?)"
            " ON CONFLICT (id) DO UPDATE SET state = excluded.state",
            upserts,
        )
        conn.executemany("INSERT INTO history VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
        conn.execute("COMMIT")
        spent.append(time.process_time() - started)
        if n % 10 == 9:
            print(f"  {variant}: {n + 1}/{commits} commits", flush=True)
    conn.close()
    return spent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", type=int, default=2_000_000)
    ap.add_argument("--prospects", type=int, default=145_000)
    ap.add_argument("--touched", type=float, default=0.58)
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/mrules-hidx"))
    args = ap.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    results = {}
    for variant in INDEXES:
        results[variant] = run(
            variant, args.events, args.prospects, args.touched, args.workdir / f"{variant}.db"
        )
    print(f"{'indexes':<12}{'first fifth':>13}{'last fifth':>12}{'all':>8}  (us of CPU an event)")
    for variant, spent in results.items():
        k = max(1, len(spent) // 5)
        first, last = sum(spent[:k]) / k / COMMIT, sum(spent[-k:]) / k / COMMIT
        every = sum(spent) / (len(spent) * COMMIT)
        print(f"{variant:<12}{first * 1e6:>13.2f}{last * 1e6:>12.2f}{every * 1e6:>8.2f}")
    for suffix in ("", "-wal", "-shm"):
        for variant in INDEXES:
            Path(f"{args.workdir / variant}.db{suffix}").unlink(missing_ok=True)


if __name__ == "__main__":
    main()
