"""Where a run's time goes, by stage, from a py-spy profile.

    py-spy record -r 200 --format raw -o run.txt -- \\
        .venv/bin/python -m mrules run RULES EVENTS -q --store DB
    python bench/spy_breakdown.py run.txt [--top 25]

py-spy's raw format is one line per distinct stack, `frame;frame;... COUNT`.
Each sample is charged to one stage: the innermost frame that names a stage
decides (a criterion called from settlement counts as criterion evaluation,
the store's packing called from a commit as the store). Frames outside the
run (imports, parsing and checking the rules) are "start-up". `--top N` also
lists the N lines where the most samples were taken. py-spy itself is not a
dependency of mrules (`pip install py-spy`).
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

__all__ = ["STAGES", "breakdown", "main"]

# (stage, pattern on one frame), tried from the innermost frame outwards.
STAGES: tuple[tuple[str, str], ...] = (
    ("store write (packing, SQLite)", r"mrules/store\.py|mrules/memstore\.py|history\.py"),
    ("prospect encoding (commit)", r"Prospect\.to_json|_forget_expired|Engine\.commit"),
    ("criterion evaluation", r"mrules/compiler\.py|Prospect\.act|Prospect\.field"),
    ("settlement (candidates, tries, ticks)", r"engine/settle\.py"),
    ("ledger rows", r"Engine\.log|_row_for|_activity "),
    ("effects", r"engine/effects\.py"),
    ("identity and visitors", r"Engine\._prospect |_tie_visitor"),
    ("URL normalising, page lookup", r"mrules/urls\.py"),
    ("event handlers", r"engine/handlers\.py"),
    ("replay check, apply", r"Engine\.apply|Engine\._dedupe|event_hash"),
    ("reading events (JSON, checks)", r"mrules/events\.py"),
    ("run loop", r"Engine\._?run "),
)


def breakdown(text: str) -> tuple[Counter[str], Counter[str], int]:
    """Samples per stage, samples per innermost frame, and the total."""
    rules = [(name, re.compile(rx)) for name, rx in STAGES]
    stages: Counter[str] = Counter()
    lines: Counter[str] = Counter()
    total = 0
    for raw in text.splitlines():
        stack, _, count = raw.rstrip().rpartition(" ")
        if not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = stack.split(";")
        lines[frames[-1]] += n
        stage = "start-up, rules, other"
        for frame in reversed(frames):
            hit = next((name for name, rx in rules if rx.search(frame)), None)
            if hit is not None:
                stage = hit
                break
        stages[stage] += n
    return stages, lines, total


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("profile", type=Path, help="py-spy record --format raw output")
    parser.add_argument("--top", type=int, default=0, help="also list the N busiest lines")
    args = parser.parse_args(argv)
    try:
        text = args.profile.read_text(errors="replace")
    except OSError as e:
        parser.error(f"cannot read {args.profile}: {e.strerror}")
    stages, lines, total = breakdown(text)
    if not total:
        parser.error(f"{args.profile} holds no py-spy samples (record with --format raw)")
    for name, n in stages.most_common():
        print(f"{100 * n / total:5.1f}%  {name}")
    print(f"{total} samples")
    for frame, n in lines.most_common(args.top):
        print(f"{100 * n / total:5.1f}%  {frame}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
