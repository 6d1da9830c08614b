"""A plan does not depend on where the CRM's pages end (docs/sync.md#memory).

The CRM's changes are read a page at a time. A merge's surviving record may be read in
the same page as the merged one, in a page before (a merge into an older record: the
survivor's id sorts first at the same modstamp) or after: wherever it falls, the plan is
the same, and it looks no survivor up in the CRM when it read it. Differential over page
sizes 1, 7 and 2,000: the same plan, the same calls but for the page reads themselves.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any
from unittest import mock

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.sync.test_properties import T0, Sim

from mrules.sync.plan import make_plan

PEOPLE = [f"m{i}@x.com" for i in range(8)]


def _plans(sim: Sim, at: float) -> list[tuple[dict[str, Any], int, int]]:
    """The plan made with each page size, its API calls less its page reads, its `find`s."""
    out = []
    for size in (1, 7, 2000):
        reads = finds = 0
        query, find = sim.crm.query_changed, sim.crm.find

        def paged(*a: Any, _q: Any = query, _n: int = size, **kw: Any) -> Any:
            nonlocal reads
            reads += 1
            return _q(*a, **{**kw, "limit": _n})

        def counted(*a: Any, _f: Any = find, **kw: Any) -> Any:
            nonlocal finds
            finds += 1
            return _f(*a, **kw)

        store, db = sim.session()
        try:
            with (
                mock.patch.object(sim.crm, "query_changed", paged),
                mock.patch.object(sim.crm, "find", counted),
            ):
                doc = make_plan(store, sim.crm, db, sim.config, at).as_json()
        finally:
            db.close()
            store.close()
        calls = doc.pop("api_calls")
        doc.pop("id")
        out.append((doc, calls - reads, finds))
    return out


def _world(tmp: Path) -> tuple[Sim, dict[str, str]]:
    """PEOPLE linked to contacts; for each, an older contact no prospect has (a merge into
    it leaves a survivor whose id sorts before the merged record's)."""
    sim = Sim(tmp)
    older = {}
    for e in PEOPLE:
        rid = sim.crm.add("Contact", {"LastName": "Old", "Email": "old-" + e}, sim.admin).id
        assert rid is not None
        older[e] = rid
    sim.engine(
        [{"type": "prospect_update", "prospect": e, "fields": {"phone": "p"}} for e in PEOPLE],
        T0 + 30,
    )
    for e in PEOPLE:
        sim.crm.add("Contact", {"LastName": "X", "Email": e, "Phone": "seed"}, sim.admin)
    sim.do("sync", "", 0, T0 + 60)  # every person linked to a contact
    return sim, older


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    merges=st.lists(
        st.tuples(st.sampled_from(PEOPLE), st.booleans(), st.booleans()), min_size=1, max_size=6
    )
)
def test_a_plan_is_the_same_whatever_the_page_size(
    tmp_path_factory: Any, merges: list[tuple[str, bool, bool]]
) -> None:
    sim, older = _world(tmp_path_factory.mktemp("pages"))
    t = T0 + 120
    for email, into_older, edit in merges:
        t += 60
        sim.crm.set_clock(dt.datetime.fromtimestamp(t, dt.UTC))
        linked = [r[1] for r in sim.live(email) if r[0] == "Contact"]
        if not linked:
            continue
        if into_older:  # the survivor is read before the merged record
            if sim.crm.get(older[email]) is None or sim.crm.get(older[email]).is_deleted:
                continue
            sim.crm.merge(older[email], [linked[-1]], sim.admin)
        else:  # a newer duplicate survives: read after it
            dup = sim.crm.add("Contact", {"LastName": "Dup", "Email": email}, sim.admin).id
            assert dup is not None
            sim.crm.merge(dup, [linked[-1]], sim.admin)
        if edit:  # another record changed at the same time
            other = PEOPLE[(PEOPLE.index(email) + 1) % len(PEOPLE)]
            for kind, rid in sim.live(other)[:1]:
                sim.crm.edit(kind, {"Id": rid, "Phone": f"e{t}"}, sim.admin)
    plans = _plans(sim, t + 60)
    (doc, calls, finds), *others = plans
    assert [p[0] for p in others] == [doc, doc]
    assert [p[1] for p in others] == [calls, calls]
    assert [p[2] for p in others] == [finds, finds]  # no survivor looked up by id
    sim.crm.close()


def test_a_survivor_read_in_another_page_is_not_looked_up(tmp_path: Path) -> None:
    sim, older = _world(tmp_path)
    t = T0 + 180
    sim.crm.set_clock(dt.datetime.fromtimestamp(t, dt.UTC))
    bob, ann = PEOPLE[3], PEOPLE[4]
    ((_, bob_id),) = sim.live(bob)
    ((_, ann_id),) = sim.live(ann)
    newer = sim.crm.add("Contact", {"LastName": "Dup", "Email": ann}, sim.admin).id
    assert newer is not None
    sim.crm.merge(older[bob], [bob_id], sim.admin)  # the survivor sorts before the merged
    sim.crm.merge(newer, [ann_id], sim.admin)  # and after it
    plans = _plans(sim, t + 60)
    for doc, _calls, finds in plans:
        moves = {i["prospect"]: i["crm_id"] for i in doc["inbound"] if i["op"] == "merge"}
        assert moves == {bob: older[bob], ann: newer}
        assert finds == plans[0][2]
        assert doc == plans[0][0]
    sim.crm.close()
