"""Plan + apply hold no list of every record (docs/sync.md#memory).

A first link (every prospect linked by email) and a cycle with 10% changed on
each side, at 2,000 and 6,000 prospects: the Python memory plan + apply
allocate at their peak (tracemalloc), a prospect more. The plan's ops and
facts are on disk, the CRM's changes read a page at a time, the prospects read
when looked at; a change that holds them as objects again fails the bound.
"""

from __future__ import annotations

import io
import json
import random
import tracemalloc
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

import mrules
from mrules.api import compile_rules
from mrules.crm.emulator import EmulatedCrm
from mrules.store import Store
from mrules.sync import SyncConfig, SyncDb, default_sync_path
from mrules.sync.apply import apply_plan, deliver
from mrules.sync.plan import make_plan, plan_id
from mrules.sync.spool import Spool, dump_json

RULES = """field phone: text
field title: text
field lead_source: text
sync salesforce {
  objects lead, contact
  match by email
  every 10 minutes batch 100000
  map phone <-> "Phone" prefer most recent
  map title <-> "Title" prefer ours
  map lead_source <-> "LeadSource" prefer crm
}
"""
AT = 1793610000.0  # 2026-11-02T09:00:00Z


def _world(work: Path, n: int) -> tuple[Any, Path, Path]:
    compiled = compile_rules(RULES)
    crm = EmulatedCrm.open(
        work / "w.crm.db", org={"edition": "plus", "clock": "2026-11-01T08:00:00Z"}
    )
    emails = [f"p{i:06d}@mem.example" for i in range(n)]
    for i in range(0, n, 200):
        crm.create(
            "Contact",
            [
                {
                    "LastName": f"P{j}",
                    "Email": emails[j],
                    "Phone": f"+1 555 {j:06d}",
                    "Title": "Engineer",
                    "LeadSource": "Web",
                }
                for j in range(i, min(n, i + 200))
            ],
        )
    crm.close()
    events = (
        json.dumps(
            {
                "ts": "2026-11-01T09:00:00Z",
                "type": "prospect_update",
                "prospect": e,
                "fields": {"phone": f"+1 555 {j:06d}", "title": "Engineer", "lead_source": "Web"},
            }
        )
        for j, e in enumerate(emails)
    )
    mrules.run(compiled, events, store=work / "w.db").close()
    return compiled, work / "w.db", work / "w.crm.db"


def _change(work: Path, n: int, compiled: Any) -> None:
    """10% changed on our side, 10% in the CRM, half of them the same people."""
    rnd = random.Random(n)
    emails = [f"p{i:06d}@mem.example" for i in range(n)]
    ours = rnd.sample(range(n), n // 10)
    theirs = ours[: n // 20] + rnd.sample(range(n), n // 20)
    crm = EmulatedCrm.open(work / "w.crm.db")
    crm.set_clock(crm.now().replace(hour=9, minute=5))
    for i in range(0, len(theirs), 200):
        found = crm.find("Contact", "Email", [emails[j] for j in theirs[i : i + 200]])
        crm.update("Contact", [{"Id": r.id, "Title": "Manager"} for r in found])
    crm.close()
    events = (
        json.dumps(
            {
                "ts": "2026-11-02T09:06:00Z",
                "type": "prospect_update",
                "prospect": emails[j],
                "fields": {"title": "Director"},
            }
        )
        for j in ours
    )
    mrules.run(compiled, events, store=work / "w.db", source="changes").close()


def _plan_and_apply_peak(compiled: Any, store_path: Path, crm_path: Path, at: float) -> int:
    """Peak Python memory (bytes) of one plan + apply, the engine's step left out."""
    config = SyncConfig.from_rules(compiled)
    crm = EmulatedCrm.open(crm_path)
    store = Store.open(store_path)
    db = SyncDb.open(default_sync_path(store_path))
    try:
        tracemalloc.start()
        try:
            base = tracemalloc.get_traced_memory()[0]
            plan = make_plan(store, crm, db, config, at)
            report = apply_plan(plan.as_json(), store, crm, db, check_stale=False)
            peak = tracemalloc.get_traced_memory()[1] - base
        finally:
            tracemalloc.stop()
        assert report.linked or report.updated  # the cycle did its work
        deliver(db, store, compiled)
    finally:
        db.close()
        store.close()
        crm.close()
    return peak


def _peaks(work: Path, n: int) -> tuple[int, int]:
    work.mkdir()
    compiled, store_path, crm_path = _world(work, n)
    first = _plan_and_apply_peak(compiled, store_path, crm_path, AT)
    _change(work, n, compiled)
    cycle = _plan_and_apply_peak(compiled, store_path, crm_path, AT + 600)
    return first, cycle


def test_plan_and_apply_memory_does_not_follow_the_records(tmp_path: Path) -> None:
    small, large = 2000, 6000  # the CRM is read 2,000 records a page
    first_s, cycle_s = _peaks(tmp_path / "small", small)
    first_l, cycle_l = _peaks(tmp_path / "large", large)
    # Bytes a prospect the peak grows by (tracemalloc, 2,000 to 6,000 prospects): about
    # 1.0 KB for a first link and 0.65 KB for a cycle. What still grows (docs/sync.md#memory):
    # the links the plan indexes by prospect and by CRM id, apply's rows of the links it
    # writes. With the plan's ops, facts and CRM records held as objects (as before), a
    # first link was 2.3 KB; every prospect's stored JSON or every link's base held in a
    # cycle adds 0.4 KB and more.
    per_first = (first_l - first_s) / (large - small)
    per_cycle = (cycle_l - cycle_s) / (large - small)
    assert per_first < 1600, (first_s, first_l, per_first)
    assert per_cycle < 1000, (cycle_s, cycle_l, per_cycle)


_json = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=60, deadline=None)
@given(
    items=st.lists(st.dictionaries(st.text(max_size=5), _json, max_size=4), max_size=6),
    prefix=st.lists(st.dictionaries(st.text(max_size=5), _json, max_size=3), max_size=2),
    other=st.dictionaries(st.text(max_size=6), _json, max_size=4),
)
def test_a_spooled_plan_prints_and_hashes_as_the_whole_document(
    items: list[Any], prefix: list[Any], other: dict[str, Any]
) -> None:
    """Differential: a plan whose lists are on disk prints byte for byte as `json.dumps`
    prints the whole document, and has the id the whole document has."""
    spool = Spool(items)
    spool.prefix = list(prefix)
    assert list(spool) == prefix + items
    doc = {**other, "ops": spool, "inbound": Spool()}
    whole = {**other, "ops": prefix + items, "inbound": []}
    out = io.StringIO()
    dump_json(doc, out)
    assert out.getvalue() == json.dumps(whole, indent=1, sort_keys=True)
    assert plan_id(doc) == plan_id(whole)
