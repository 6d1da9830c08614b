"""`state export` reads each prospect's pending CRM work with its state (docs/outputs.md).

It read all the pending CRM work of the store first, grouped by prospect, and
held it until the prospect's line was printed: about 400 bytes an item, at
2 million events 218,512 items and 189 MB peak (122 MB now, the same bytes
out). The Python memory an export allocates at its peak (tracemalloc) must
not follow the pending work of the store.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import mrules
from mrules.api import compile_rules

RULES = """crm campaign "Pricing 2026"

page action "Pricing" on "site.example/pricing" {
  add to crm campaign "Pricing 2026" status "Responded"
}
"""
PROSPECTS = 1000


def _store(path: Path, views: int) -> Path:
    """1,000 prospects, each viewing the page `views` times: as many items of CRM work."""
    events = (
        json.dumps(
            {
                "ts": f"2026-11-{1 + j % views:02d}T09:00:00Z",
                "id": f"e{j}",
                "type": "page_view",
                "visitor": f"v{j // views}",
                "prospect": f"p{j // views:06d}@pending.example",
                "url": "https://site.example/pricing",
            }
        )
        for j in range(PROSPECTS * views)
    )
    mrules.run(compile_rules(RULES), events, store=path).close()
    return path


_MEASURE = """
import sys, tracemalloc
from mrules.outputs import export_records
from mrules.store import Store
with Store.open(sys.argv[1], readonly=True) as store:
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    work = sum(len(record["pending_crm"]) for record in export_records(store))
    peak = tracemalloc.get_traced_memory()[1] - base
    tracemalloc.stop()
print(work, peak)
"""


def _export_peak(path: Path) -> tuple[int, int]:
    out = subprocess.run(
        [sys.executable, "-c", _MEASURE, str(path)],
        capture_output=True, text=True, check=True, timeout=120,
    ).stdout.split()  # fmt: skip
    return int(out[0]), int(out[1])


def test_an_export_holds_the_pending_work_of_one_prospect_at_a_time(tmp_path: Path) -> None:
    work_few, peak_few = _export_peak(_store(tmp_path / "few.db", 3))
    work_many, peak_many = _export_peak(_store(tmp_path / "many.db", 9))
    assert (work_few, work_many) == (PROSPECTS * 3, PROSPECTS * 9)
    per_item = (peak_many - peak_few) / (work_many - work_few)
    # Reading all the work first grew the peak by about 290 bytes an item.
    assert per_item < 40, (peak_few, peak_many, per_item)
