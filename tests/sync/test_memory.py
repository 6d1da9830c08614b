"""The plan's memory savings change no plan (docs/sync.md#speed).

A plan keeps of each CRM record only the fields it reads, keeps the prospects
of a full read as their stored JSON, and, in a cycle that looks at some
prospects, keeps each link's object and id without its base snapshot (read
from the sync file when the link is read). Differential: over random
interleavings of edits on both sides, conversions, deletions and merges, every
plan equals the plan made with whole records and every link's base held.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.sync.test_properties import PEOPLE, T0, Sim, step

from mrules.crm.port import Record
from mrules.sync import apply as apply_module
from mrules.sync import plan as plan_module
from mrules.sync.db import PlanLinks, SyncDb
from mrules.sync.plan import READ_FIELDS, make_plan, plan_id


class DictLinks:
    """The reference for `PlanLinks`: every link read up front into a dict (with its base),
    an index of every CRM id, the links made this cycle in a dict, as make_plan had them."""

    def __init__(self, db: SyncDb) -> None:
        self.links = db.links()
        self.by = {link[1]: k for k, link in self.links.items()}
        self.fresh: dict[str, bool] = {}

    def page(self, ids: list[str], emails: list[str]) -> None:
        pass

    def by_crm(self, crm_id: str) -> str | None:
        return self.by.get(crm_id)

    def take_crm(self, crm_id: str, prospect: str) -> None:
        self.by[crm_id] = prospect

    def get(self, prospect: str, default: Any = None) -> Any:
        return self.links.get(prospect, default)

    def __getitem__(self, prospect: str) -> Any:
        return self.links[prospect]

    def __contains__(self, prospect: object) -> bool:
        return prospect in self.links

    def set(self, prospect: str, link: Any, *, new: bool = False) -> None:
        self.links[prospect] = link
        if new:
            self.fresh[prospect] = True

    def is_new(self, prospect: str) -> bool:
        return prospect in self.fresh

    def new(self) -> Iterator[str]:
        return iter(list(self.fresh))

    def walk(self) -> Iterator[tuple[str, Any, bool]]:
        for k in list(self.links):
            yield k, self.links[k], k in self.fresh

    def contact_prospect(self, crm_id: str) -> str | None:
        by_contact = {v[1]: k for k, v in self.links.items() if v[0] == "contact"}
        return by_contact.get(crm_id)

    def close(self) -> None:
        pass


@contextlib.contextmanager
def whole() -> Iterator[None]:
    """make_plan as it was: whole CRM records, every link read up front into dicts."""
    with (
        mock.patch.object(plan_module, "_slim", lambda r, keep: r),
        mock.patch.object(SyncDb, "plan_links", lambda self: DictLinks(self)),
    ):
        yield


def spilling(self: SyncDb) -> PlanLinks:
    """The plan's links with their overlay on disk from the second change (as a first link
    of thousands of prospects has it)."""
    return PlanLinks(self.conn, limit=1)


class DiffSim(Sim):
    def __init__(self, tmp: Path) -> None:
        super().__init__(tmp)
        self.compared = 0

    def do(self, op: str, email: str, k: int, t: float) -> None:
        if op == "bad":  # a value the CRM refuses (Phone takes 40): the error queue holds it
            phone = f"+1 555 {k} ext. 1234, ask for the IT desk, mornings only"
            self.engine(
                [{"type": "prospect_update", "prospect": email, "fields": {"phone": phone}}], t
            )
            return
        if op in ("sync", "kill"):
            store, db = self.session()
            try:
                lean = make_plan(store, self.crm, db, self.config, t).as_json()
                with mock.patch.object(SyncDb, "plan_links", spilling):
                    spilled = make_plan(store, self.crm, db, self.config, t).as_json()
                assert spilled == lean
                with whole():
                    reference = make_plan(store, self.crm, db, self.config, t).as_json()
                assert lean == reference
                self.compared += 1
            finally:
                db.close()
                store.close()
        super().do(op, email, k, t)


@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    steps=st.lists(
        st.one_of(step, st.tuples(st.just("bad"), st.sampled_from(PEOPLE), st.integers(0, 9))),
        min_size=1,
        max_size=12,
    )
)
def test_lean_plans_equal_whole_plans(
    tmp_path_factory: Any, steps: list[tuple[str, str, int]]
) -> None:
    sim = DiffSim(tmp_path_factory.mktemp("mem"))
    t = T0
    for op, email, k in [*steps, ("sync", "", 0), ("sync", "", 0)]:
        t += 60
        sim.do(op, email, k, t)
    assert sim.compared >= 2


class Recording(Sim):
    """A Sim that keeps every plan it applies."""

    def __init__(self, tmp: Path) -> None:
        super().__init__(tmp)
        self.plans: list[Any] = []

    def do(self, op: str, email: str, k: int, t: float) -> None:
        super().do(op, email, k, t)
        if op == "sync":
            self.plans.append(self.last_plan)

    def outcome(self) -> Any:
        store, db = self.session()
        try:
            # Each simulation has its own store: a plan notes the store it was made from
            # (path and id), and its id digests them too; the rest of it must be equal.
            mine = ("id", "store", "store_id")
            return (
                [{k: v for k, v in p.items() if k not in mine} for p in self.plans],
                db.links(),
                db.errors(),
                db.queue(),
                sorted(store.prospects()),
                [(r.id, r.fields, r.is_deleted) for r in self.crm.records("Contact")],
                [(r.id, r.fields, r.is_deleted) for r in self.crm.records("Lead")],
            )
        finally:
            db.close()
            store.close()


@settings(
    max_examples=10,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(steps=st.lists(step, min_size=1, max_size=10))
def test_links_kept_on_disk_change_nothing(
    tmp_path_factory: Any, steps: list[tuple[str, str, int]]
) -> None:
    """Differential: plan's link changes and apply's link rows kept on disk from the second
    (as in a first link of thousands) give the same plans, sync file, store and CRM."""
    outcomes = []
    for spill in (False, True):
        with contextlib.ExitStack() as stack:
            if spill:
                stack.enter_context(mock.patch.object(SyncDb, "plan_links", spilling))
                stack.enter_context(mock.patch.object(apply_module, "ROWS_IN_MEMORY", 1))
            sim = Recording(tmp_path_factory.mktemp("spill"))
            t = T0
            for op, email, k in [*steps, ("sync", "", 0), ("sync", "", 0)]:
                t += 60
                sim.do(op, email, k, t)
            outcomes.append(sim.outcome())
            sim.crm.close()
    assert outcomes[0][0], "no plan applied"
    assert outcomes[0] == outcomes[1]


def test_a_plan_keeps_only_the_fields_it_reads(tmp_path: Path) -> None:
    """The records a plan holds carry the fields it reads and no others."""
    sim = Sim(tmp_path)
    kept: list[tuple[Record, Record]] = []
    slim = plan_module._slim

    def spy(r: Record, keep: frozenset[str]) -> Record:
        out = slim(r, keep)
        kept.append((r, out))
        return out

    store, db = sim.session()
    try:
        with mock.patch.object(plan_module, "_slim", spy):
            make_plan(store, sim.crm, db, sim.config, T0 + 60)
    finally:
        db.close()
        store.close()
    assert kept, "the plan read no record"
    mapped = {"Phone", "LeadSource", "Title"}  # Company_Size__c: this org has none
    for whole_record, r in kept:
        assert set(r.fields) == (READ_FIELDS | mapped) & set(whole_record.fields)
        assert {k: whole_record.fields[k] for k in r.fields} == dict(r.fields)
        assert (r.id, r.sobject, r.system_modstamp, r.is_deleted) == (
            whole_record.id,
            whole_record.sobject,
            whole_record.system_modstamp,
            whole_record.is_deleted,
        )
        assert "Email" in r.fields and "LastModifiedById" in r.fields
        assert "LastName" not in r.fields and "CreatedDate" not in r.fields


_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53), 2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(body=st.dictionaries(st.text(max_size=10), _json, max_size=8))
def test_plan_id_is_the_digest_of_the_whole_document(body: dict[str, Any]) -> None:
    """Fed a list item at a time, the digest is that of the plan's sorted-keys JSON."""
    whole = orjson.dumps(body, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS)
    assert plan_id(body) == hashlib.sha256(whole).hexdigest()[:16]


def test_plan_id_of_a_body_json_cannot_hold() -> None:
    assert plan_id({"ops": [{"x": object()}]}) == ""
