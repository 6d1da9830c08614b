"""mrules' engine with a store that keeps nothing: the ceiling of any store, in one process.

    python bench/engine_only.py RULES EVENTS [--check-against STORE]

Loads and compiles RULES as `mrules run` does, then runs EVENTS through the
engine into `bench_run.NullStore`: every batch is still built (history rows,
prospect states encoded), and dropped at its commit; the engine keeps every
prospect, since the store keeps none. What it spends is what `mrules run`
spends before its store writes anything, so no store design run in the same
process can make `mrules run` faster than this (bench/compare.py, variant n).

Prints one JSON line: lines read, events applied, prospects. With
`--check-against STORE` (an `mrules run` store of the same inputs), it also
counts the prospects whose final state differs from that store's, after the
run (compare.py runs this once more, untimed, to check its variant n).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from bench_run import no_store_mismatches, run_mrules

from mrules.api import compile_rules

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("rules", type=Path)
    parser.add_argument("events", type=Path)
    parser.add_argument("--check-against", type=Path, metavar="STORE")
    parser.add_argument("--commit-every", type=int, default=20_000)
    args = parser.parse_args(argv)
    # bench_run's wiring of the engine; with no store path, its NullStore
    run = run_mrules(compile_rules(args.rules), args.events, None, commit_every=args.commit_every)
    engine = run.obj
    summary = engine.summary
    out = {"lines": summary.lines, "applied": summary.applied, "prospects": len(engine.prospects)}
    if args.check_against is not None:
        out["mismatching_prospects"] = no_store_mismatches(engine, args.check_against)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
