"""`state outbox` prints each message as it is read (docs/outputs.md).

It derived every message of the store into a list before printing the first:
at 2 million events (244,128 messages), about 100 MB of the command's 199 MB
peak. The Python memory the outbox allocates at its peak (tracemalloc) must
not follow the number of messages; the same holds for the store's pending CRM
work read whole (`Store.crm_pending()`), which a sync cycle reads.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from pathlib import Path

import mrules
from mrules.api import compile_rules

RULES = """user "rep@site.example"
crm campaign "Pricing 2026"

page action "Pricing" on "site.example/pricing" {
  notify user "rep@site.example"
  add to crm campaign "Pricing 2026" status "Responded"
}
"""
PROSPECTS = 20
START = dt.datetime(2026, 1, 1)


def _store(path: Path, n: int) -> Path:
    """N pricing views by 20 prospects, a prospect's 80 minutes apart (none throttled)."""
    events = (
        json.dumps(
            {
                "ts": (START + dt.timedelta(minutes=4 * j)).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "id": f"e{j}",
                "type": "page_view",
                "visitor": f"v{j % PROSPECTS}",
                "prospect": f"p{j % PROSPECTS:02d}@outbox.example",
                "url": "https://site.example/pricing",
            }
        )
        for j in range(n)
    )
    mrules.run(compile_rules(RULES), events, store=path).close()
    return path


_MEASURE = """
import sys, tracemalloc
from mrules.store import Store
with Store.open(sys.argv[1], readonly=True) as store:
    counts = []
    peaks = []
    for read in (store.outbox, store.crm_pending):
        with store.snapshot():
            sum(1 for m in store.outbox())  # the names and emails loaded once
            tracemalloc.start()
            base = tracemalloc.get_traced_memory()[0]
            counts.append(sum(1 for m in read() if m.seq))
            peaks.append(tracemalloc.get_traced_memory()[1] - base)
            tracemalloc.stop()
print(*counts, *peaks)
"""


def _peaks(path: Path) -> list[int]:
    """Messages read and the traced peaks, in a fresh interpreter."""
    out = subprocess.run(
        [sys.executable, "-c", _MEASURE, str(path)],
        capture_output=True, text=True, check=True, timeout=120,
    ).stdout.split()  # fmt: skip
    return [int(x) for x in out]


def test_the_outbox_and_the_crm_work_are_read_one_message_at_a_time(tmp_path: Path) -> None:
    small, large = 1000, 4000
    n_small, c_small, peak_small, crm_small = _peaks(_store(tmp_path / "small.db", small))
    n_large, c_large, peak_large, crm_large = _peaks(_store(tmp_path / "large.db", large))
    assert (n_small, n_large) == (small, large)  # a notification a view
    assert c_large > c_small > 0
    per_message = (peak_large - peak_small) / (large - small)
    # Holding every message grew the peak by about 400 bytes a message.
    assert per_message < 40, (peak_small, peak_large, per_message)
    per_work = (crm_large - crm_small) / (c_large - c_small)
    assert per_work < 40, (crm_small, crm_large, per_work)
