"""Inputs for measuring memory against the number of prospects: one event per new prospect.

    python bench/many_prospects.py DIR [--prospects 200000 400000 800000]
    /usr/bin/time -v .venv/bin/mrules run DIR/rules.mr DIR/ev400000.jsonl --store DIR/s.db -q

Writes DIR/rules.mr (5 text fields, no time-based rule) and, for each N, DIR/evN.jsonl:
one `prospect_update` for each of N new prospects, all at the same time, so a run's
peak resident memory shows what the engine keeps per prospect beyond its bounded
caches (bench/README.md, *Memory: prospects as a cache of the store*).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

FIELDS = ("phone", "title", "lead_source", "department", "description")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dir", type=Path)
    parser.add_argument("--prospects", type=int, nargs="+", default=[200_000, 400_000, 800_000])
    args = parser.parse_args(argv)
    args.dir.mkdir(parents=True, exist_ok=True)
    (args.dir / "rules.mr").write_text("".join(f"field {f}: text\n" for f in FIELDS))
    for n in args.prospects:
        with (args.dir / f"ev{n}.jsonl").open("w", encoding="utf-8") as out:
            for i in range(n):
                fields = dict(
                    zip(FIELDS, (f"+1 555 {i % 10000:04d}", "T", "Web", "D", "x"), strict=True)
                )
                event = {
                    "id": f"e{i}",
                    "ts": "2026-11-02T09:00:00Z",
                    "type": "prospect_update",
                    "prospect": f"p{i:07d}@bench.example",
                    "fields": fields,
                }
                out.write(json.dumps(event) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
