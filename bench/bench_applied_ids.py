"""What a run on a store with applied ids pays to skip replayed ones: per id asked, or a fill.

    python bench/bench_applied_ids.py STORE [STORE ...] [--ids 5000]

A run asks the store for the ids of each chunk that its window lacks
(`Store.applied_among`), and once it has asked for `FILL_FILTER_AFTER` ids it
reads every stored hash into its filter instead (`Engine._fill_filter`). For
each store (read only), prints the CPU seconds of `has_applied_ids` (the
start's check of the index), of asking for `--ids` ids the store never applied
(the worst case: every generation is searched), and of a fill; then the cost of
one id asked as a fraction of a fill, and the seconds a run that asks for
`FILL_FILTER_AFTER` ids before it fills spends asking (what a long run loses at
most, beside the fill it would have made at its start before).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from mrules.api import compile_rules
from mrules.engine import Engine
from mrules.engine.run import FILL_FILTER_AFTER
from mrules.store import Store

__all__ = ["main", "measure"]

RULES = 'tag "bench"\n'  # a rule set of its own: the fill does not read the rules


def measure(path: Path, ids: int) -> dict[str, float]:
    """CPU seconds of the start's check, of `ids` new ids asked, and of a fill."""
    with Store.open(path, readonly=True) as store:
        clock = time.process_time
        t = clock()
        if not store.has_applied_ids():
            raise SystemExit(f"{path}: the store has applied no event id")
        check = clock() - t
        asked = [f"bench-applied-ids-never-{i}" for i in range(ids)]
        t = clock()
        found = store.applied_among(asked)
        ask = clock() - t
        assert not found
        engine = Engine(compile_rules(RULES), store, source="bench")  # its filter; it never runs
        t = clock()
        engine._fill_filter()
        fill = clock() - t
    return {"check_s": check, "ask_s": ask, "fill_s": fill, "ids": ids}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("stores", type=Path, nargs="+", metavar="STORE")
    parser.add_argument("--ids", type=int, default=5000, help="new ids to ask for [5000]")
    args = parser.parse_args(argv)
    print(f"{'store':40} {'check s':>8} {'us/id':>7} {'fill s':>7} {'fill/id':>9} {'asked s':>8}")
    for path in args.stores:
        m = measure(path, args.ids)
        per_id = m["ask_s"] / m["ids"]
        print(
            f"{str(path)[-40:]:40} {m['check_s']:8.3f} {per_id * 1e6:7.1f} {m['fill_s']:7.3f} "
            f"{m['fill_s'] / per_id if per_id else float('inf'):9,.0f} "
            f"{per_id * FILL_FILTER_AFTER:8.2f}"
        )
    print(
        f"(CPU seconds; 'asked s': {FILL_FILTER_AFTER:,} ids asked one chunk at a time, what"
        " a long run spends before it fills)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
