"""What a run's live memory costs per prospect once its bounded caches are full.

    python bench/live_memory.py [--events 2000000] [--prospects 200000] [--seed 7]
                                [--cache bench/.cache] [--workdir /tmp/mrules-live]
                                [--from-events 1000000] [--cache-prospects 50000]

A whole-process peak RSS measured at two stream sizes (bench/bench_scale.py)
mixes three things: what each prospect costs, bounded caches filling up (the
prospect cache, the applied-id window, the store's name table, SQLite's
pages), and allocator slack. This script separates the first: it runs the
engine in this process with `tracemalloc`, reads the live Python memory after
every commit together with the prospects created so far, and fits a line
through the commits from `--from-events` on, where the caches are full. Its
slope is the memory each further prospect keeps alive (SQLite's page cache,
fixed in size, is not Python memory and is not counted). tracemalloc makes the
run about three times slower: 2M events take about 10 minutes.

The inputs are bench_scale.py's (generated once into --cache). The result
(the points and the slope) goes to WORKDIR/live_memory.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import tracemalloc
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(BENCH.parent / "src"))
import bench_scale  # noqa: E402

from mrules.api import compile_rules, open_store  # noqa: E402
from mrules.engine import Engine  # noqa: E402
from mrules.events import read_events  # noqa: E402

__all__ = ["main", "slope"]


def slope(points: list[tuple[int, int]]) -> float:
    """Least-squares slope of y over x for (x, y) points (bytes per prospect)."""
    n = len(points)
    if n < 2:
        raise ValueError("a slope needs two points")
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    var = sum((x - mx) ** 2 for x, _ in points)
    if var == 0:
        raise ValueError("the prospects did not grow over these commits")
    return sum((x - mx) * (y - my) for x, y in points) / var


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", type=int, default=2_000_000)
    ap.add_argument("--prospects", type=int, default=200_000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--cache", type=Path, default=BENCH / ".cache")
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/mrules-live"))
    ap.add_argument("--from-events", type=int, default=None,
                    help="fit from this many events on [default: half the stream]")  # fmt: skip
    ap.add_argument("--cache-prospects", type=int, default=50_000)
    ap.add_argument("--commit-every", type=int, default=20_000)
    ap.add_argument("--top", type=int, default=0,
                    help="also print the N source lines whose live memory grew most over"
                         " the fitted range, in bytes per prospect")  # fmt: skip
    args = ap.parse_args(argv)
    start_at = args.events // 2 if args.from_events is None else args.from_events

    d = bench_scale.ensure_cached(args.cache, args.events, args.prospects, args.seed, False)
    args.workdir.mkdir(parents=True, exist_ok=True)
    db = args.workdir / "live.db"
    for leftover in (db, *(db.with_name(db.name + s) for s in ("-wal", "-shm", ".lock"))):
        leftover.unlink(missing_ok=True)
    stream = next(p for p in (d / "events.jsonl", d / "events.jsonl.gz") if p.exists())

    rules = compile_rules(d / "rules")
    points: list[tuple[int, int, int]] = []  # (lines, prospects created, live bytes)
    snapshots: list[tuple[int, tracemalloc.Snapshot]] = []  # (prospects, snapshot), for --top
    tracemalloc.start(1)
    store = open_store(str(db))
    try:
        engine: Engine

        def noted(_batch: Any) -> None:
            s = engine.summary
            points.append((s.lines, s.prospects_created, tracemalloc.get_traced_memory()[0]))
            if args.top and not snapshots and s.lines >= start_at:
                snapshots.append((s.prospects_created, tracemalloc.take_snapshot()))
            print(f"\r{s.lines:,} events, {s.prospects_created:,} prospects,"
                  f" {points[-1][2] / 2**20:,.0f} MiB live", end="", file=sys.stderr)  # fmt: skip

        engine = Engine(
            rules,
            store,
            source=str(stream),
            batch_size=args.commit_every,
            cache_prospects=args.cache_prospects,
            on_commit=noted,
        )
        engine.start()
        engine.run(read_events(stream))
        if snapshots:
            snapshots.append((engine.summary.prospects_created, tracemalloc.take_snapshot()))
    finally:
        store.close()
        tracemalloc.stop()
    print(file=sys.stderr)
    fitted = [(p, live) for lines, p, live in points if lines >= start_at]
    per_prospect = slope(fitted)
    result = {
        "events": args.events,
        "prospects": points[-1][1] if points else 0,
        "from_events": start_at,
        "cache_prospects": args.cache_prospects,
        "commit_every": args.commit_every,
        "live_bytes_per_prospect": round(per_prospect),
        "points": points,
    }
    (args.workdir / "live_memory.json").write_text(json.dumps(result, indent=1))
    first, last = fitted[0], fitted[-1]
    print(f"live memory from {start_at:,} events on ({first[0]:,} -> {last[0]:,} prospects,"
          f" {len(fitted)} commits): {per_prospect:,.0f} B per prospect")  # fmt: skip
    if len(snapshots) == 2:
        (p0, before), (p1, after) = snapshots
        grown = max(p1 - p0, 1)
        print(f"grew most from {p0:,} to {p1:,} prospects (B per prospect, source line):")
        for stat in after.compare_to(before, "lineno")[: args.top]:
            print(f"  {stat.size_diff / grown:8.1f}  {stat.traceback}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
