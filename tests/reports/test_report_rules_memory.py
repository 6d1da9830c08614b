"""`report rules` keeps each rule's first hit of each prospect in a temporary table of
SQLite (on disk beyond a few megabytes), not in Python dicts (docs/reports.md).

At 2 million events (1.2 million pairs of a rule and a prospect it touched) the report
peaked at 329 MB, against 100 MB now, the same bytes out. The Python memory the report
allocates at its peak (tracemalloc) must not follow the number of (rule, prospect) pairs.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import mrules
from mrules.api import compile_rules

RULES = 20
RULE_TEXT = "field city: text\n" + "".join(
    f'automation rule "R{i}" priority {i + 1} {{\n'
    '  when all { city is "Lyon" }\n'
    f'  then {{ add tag "t{i}" }}\n'
    "}\n"
    for i in range(RULES)
)


def _store(path: Path, n: int) -> Path:
    """N prospects, each matched by every rule once: RULES * N pairs."""
    events = (
        json.dumps(
            {
                "ts": "2026-11-01T09:00:00Z",
                "type": "prospect_update",
                "prospect": f"p{j:06d}@rules.example",
                "fields": {"city": "Lyon"},
            }
        )
        for j in range(n)
    )
    mrules.run(compile_rules(RULE_TEXT), events, store=path).close()
    return path


_MEASURE = """
import sys, tracemalloc
from mrules.reports import rules_report
tracemalloc.start()
base = tracemalloc.get_traced_memory()[0]
report = rules_report(sys.argv[1])
peak = tracemalloc.get_traced_memory()[1] - base
tracemalloc.stop()
print(sum(r["prospects"] for r in report["rules"]), peak)
"""


def _report_peak(path: Path) -> tuple[int, int]:
    """(Rule, prospect) pairs reported and the traced peak, in a fresh interpreter (as
    tests/test_state_export_memory.py measures)."""
    out = subprocess.run(
        [sys.executable, "-c", _MEASURE, str(path)],
        capture_output=True, text=True, check=True, timeout=120,
    ).stdout.split()  # fmt: skip
    return int(out[0]), int(out[1])


def test_the_first_hits_are_not_held_in_memory(tmp_path: Path) -> None:
    small, large = 500, 2000
    pairs_small, peak_small = _report_peak(_store(tmp_path / "small.db", small))
    pairs_large, peak_large = _report_peak(_store(tmp_path / "large.db", large))
    assert (pairs_small, pairs_large) == (RULES * small, RULES * large)
    per_pair = (peak_large - peak_small) / (pairs_large - pairs_small)
    # Dicts of every rule's first hit of every prospect grew the peak by about 200 bytes
    # a pair.
    assert per_pair < 20, (peak_small, peak_large, per_pair)
