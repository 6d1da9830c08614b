"""Plan + apply hold no list of every record (docs/sync.md#memory).

A first link (every prospect linked by email) and a cycle with 10% changed on
each side, at 2,000 and 6,000 prospects: the Python memory plan + apply
allocate at their peak (tracemalloc), a prospect more. The plan's ops and
facts are on disk, the CRM's changes read a page at a time, the prospects read
when looked at, links looked up in the sync file, the links a plan or apply
changes on disk past a few thousand; a change that holds them as objects again
fails the bound. Scaled down: pages of 500 records, 500 links in memory (as
100,000 prospects have pages of 2,000 and 5,000 links in memory), so that both
sizes take the paths a large sync takes.
"""

from __future__ import annotations

import contextlib
import io
import json
import random
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

from hypothesis import given, settings
from hypothesis import strategies as st

import mrules
from mrules.api import compile_rules
from mrules.crm.emulator import EmulatedCrm
from mrules.store import Store
from mrules.sync import SyncConfig, SyncDb, default_sync_path
from mrules.sync import apply as apply_module
from mrules.sync.apply import apply_plan, deliver
from mrules.sync.db import PlanLinks
from mrules.sync.plan import make_plan, plan_id
from mrules.sync.spool import Spool, dump_json, load_spooled

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


PAGE = IN_MEMORY = 500


@contextlib.contextmanager
def _traced_peak() -> Iterator[list[int]]:
    """The peak Python memory (bytes) the block allocates, put in the list it gives."""
    peak: list[int] = []
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        yield peak
        peak.append(tracemalloc.get_traced_memory()[1] - base)
    finally:
        tracemalloc.stop()


def _plan_and_apply_peak(compiled: Any, store_path: Path, crm_path: Path, at: float) -> int:
    """Peak Python memory (bytes) of one plan + apply, the engine's step left out."""
    config = SyncConfig.from_rules(compiled)
    crm = EmulatedCrm.open(crm_path)
    query = crm.query_changed

    def paged(*a: Any, **kw: Any) -> Any:
        return query(*a, **{**kw, "limit": min(kw.get("limit", 2000), PAGE)})

    crm.query_changed = paged  # type: ignore[method-assign]
    plan_links = SyncDb.plan_links
    store = Store.open(store_path)
    db = SyncDb.open(default_sync_path(store_path))
    try:
        with (
            _traced_peak() as peak,
            mock.patch.object(apply_module, "ROWS_IN_MEMORY", IN_MEMORY),
            mock.patch.object(
                SyncDb, "plan_links", lambda self: PlanLinks(self.conn, limit=IN_MEMORY)
            ),
        ):
            plan = make_plan(store, crm, db, config, at)
            report = apply_plan(plan.as_json(), store, crm, db, check_stale=False)
        assert SyncDb.plan_links is plan_links
        assert report.linked or report.updated  # the cycle did its work
        deliver(db, store, compiled)
    finally:
        db.close()
        store.close()
        crm.close()
    return peak[0]


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
    # Bytes a prospect the peak grows by (tracemalloc, 2,000 to 6,000 prospects): none for
    # a first link (-30 to +30 B), about 0.2 KB for a cycle: what it writes (10% of the
    # prospects: an update's values until its batch is written, the errors it clears),
    # not what it reads (docs/sync.md#memory). With an index of every link (as before)
    # a first link grew by 0.45 KB a prospect and a cycle by 0.55 KB; with the plan's ops,
    # facts and CRM records held as objects, a first link grew by 2.3 KB.
    per_first = (first_l - first_s) / (large - small)
    per_cycle = (cycle_l - cycle_s) / (large - small)
    assert per_first < 150, (first_s, first_l, per_first)
    assert per_cycle < 350, (cycle_s, cycle_l, per_cycle)


def _plan_peak_after_backfill(work: Path, n: int, per_prospect: int) -> tuple[int, bool]:
    """Peak Python memory of a cycle's plan after `per_prospect` changes to every prospect.

    Also says whether the plan read every prospect (it must: most of them changed)."""
    work.mkdir()
    compiled, store_path, crm_path = _world(work, n)
    _plan_and_apply_peak(compiled, store_path, crm_path, AT)  # the first link
    events = (
        json.dumps(
            {
                "ts": "2026-11-02T09:06:00Z",
                "type": "prospect_update",
                "prospect": f"p{j:06d}@mem.example",
                "fields": {"phone": f"+1 666 {r:03d}{j:06d}"},
            }
        )
        for r in range(per_prospect)
        for j in range(n)
    )
    mrules.run(compiled, events, store=store_path, source="backfill").close()
    crm = EmulatedCrm.open(crm_path)
    store = Store.open(store_path)
    db = SyncDb.open(default_sync_path(store_path))
    try:
        with _traced_peak() as peak:
            plan = make_plan(store, crm, db, SyncConfig.from_rules(compiled), AT + 600)
        updated = sum(1 for op in plan.ops if op.get("op") == "update")
    finally:
        db.close()
        store.close()
        crm.close()
    return peak[0], updated == n


def test_a_plan_after_a_backfill_does_not_hold_the_ledger_since_the_last(tmp_path: Path) -> None:
    """The plan finds the prospects changed since the last cycle in the ledger as it streams,
    and stops once there are too many to be worth picking out. Holding every entry since
    the last plan grew the peak by about 1 KB an entry; 2,000 prospects changed 2 and 8
    times leave it where it is."""
    n = 2000
    few, few_all = _plan_peak_after_backfill(tmp_path / "few", n, 2)
    many, many_all = _plan_peak_after_backfill(tmp_path / "many", n, 8)
    assert few_all and many_all  # every changed prospect is in the plan either way
    per_entry = (many - few) / (n * (8 - 2))
    assert per_entry < 50, (few, many, per_entry)


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


_any_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(1 - 2**63, 2**63 - 1)  # 64-bit: the plan id (orjson) takes no more
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4)
    ),
    max_leaves=16,
)


@settings(max_examples=150, deadline=None)
@given(
    doc=st.dictionaries(
        st.sampled_from(["ops", "inbound", "id", "at", "x", "ünï"]), _any_json, max_size=6
    ),
    indent=st.sampled_from([None, 1]),
)
def test_a_saved_plan_read_as_it_goes_is_the_document(doc: dict[str, Any], indent: Any) -> None:
    """Differential: `load_spooled` reads what `json.loads` reads, its lists on disk."""
    text = json.dumps(doc, indent=indent, sort_keys=True, ensure_ascii=False).encode()
    got = load_spooled(io.BytesIO(text))
    for key in ("ops", "inbound"):
        if isinstance(doc.get(key), list):
            assert isinstance(got[key], Spool)
    assert {k: list(v) if isinstance(v, Spool) else v for k, v in got.items()} == doc
    assert plan_id(got) == plan_id(doc)


@given(text=st.binary(max_size=40) | st.text(max_size=40).map(str.encode))
@settings(max_examples=200, deadline=None)
def test_a_saved_plan_that_is_no_json_object_is_a_value_error(text: bytes) -> None:
    """Any bytes: the document `json.loads` reads, or a ValueError of one line (what
    `sync apply PLAN` prints), never another exception."""
    try:
        whole = json.loads(text)
    except ValueError:
        whole = None
    try:
        got = load_spooled(io.BytesIO(text))
    except ValueError as e:
        assert str(e) and "\n" not in str(e)
        return
    assert isinstance(whole, dict)
    assert {k: list(v) if isinstance(v, Spool) else v for k, v in got.items()} == whole
