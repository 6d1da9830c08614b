"""The plan's "CRM facts for the engine" is what `sync apply` then delivers: links,
created records and fields the CRM's value won included (it counted inbound facts only,
so a plan said 0 and apply delivered 1)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from tests.sync.world import BOB, T0, World, ev


def _plan_then_apply(w: World) -> tuple[int, int]:
    plan = json.loads(w.sync("plan", "--format", "json", code=None).output)
    out = w.sync("apply").output
    delivered = re.search(r"([\d,]+) CRM facts? to the engine", out)
    assert delivered is not None, out
    return plan["summary"]["inbound_facts"], int(delivered.group(1).replace(",", ""))


def test_the_plan_counts_the_facts_apply_delivers(tmp_path: Path) -> None:
    w = World(tmp_path)
    w.seed({"Contact": [BOB]})
    # Bob links to his contact; Ann is assigned: a lead is created for her.
    w.run(ev(T0, "bob@x.com", asset="Quiet"), ev(T0, "ann@x.com", asset="Demo"))
    planned, delivered = _plan_then_apply(w)
    assert planned == delivered >= 2
    # Sales edit Bob's lead source (prefer crm): the CRM's value comes to us.
    w.changes(
        {
            "at": "2026-11-02T09:05:00Z",
            "op": "update",
            "email": "bob@x.com",
            "fields": {"LeadSource": "Partner"},
        },
        until="2026-11-02T09:05:00Z",
    )
    w.run(ev("2026-11-02T09:09:00Z", "bob@x.com", "prospect_update", fields={"title": "CTO"}))
    planned, delivered = _plan_then_apply(w)
    assert planned == delivered >= 1
    assert w.prospects()["bob@x.com"]["fields"]["lead_source"] == "Partner"


@pytest.mark.parametrize(
    ("objects", "contact"),
    [
        ("lead, contact", BOB),  # linked and merged in one op: the CRM's values come to us
        ("lead, contact", {"Id": "c-dan", "LastName": "Dane", "Email": "bob@x.com"}),  # none
        ("lead", BOB),  # contacts not synced: linked, nothing merged
    ],
    ids=["link-and-pull", "link-and-merge", "link-alone"],
)
def test_the_plan_counts_the_facts_of_a_record_its_create_finds(
    tmp_path: Path, objects: str, contact: dict[str, str]
) -> None:
    """Bob, assigned after the sync read his contact, has a lead to create: its search by
    email finds the contact and links him to it (no lead created), with the first merge
    of its fields in the same op."""
    w = World(tmp_path, objects=objects)
    w.seed({"Contact": [dict(contact)]})
    w.run(ev(T0, "ann@x.com", asset="Quiet"))
    w.sync("apply")
    w.run(ev("2026-11-02T09:05:00Z", "bob@x.com", asset="Demo"))
    planned, delivered = _plan_then_apply(w)
    assert planned == delivered >= 1
    assert w.prospects()["bob@x.com"]["crm_status"] == "contact"


def test_writes_that_all_fit_this_cycle_clear_in_it(tmp_path: Path) -> None:
    """One lead to create, in this cycle's batch: one cycle to clear, at the plan's time."""
    w = World(tmp_path)
    w.seed({})
    w.run(ev(T0, "ann@x.com", asset="Demo"))
    plan = json.loads(w.sync("plan", "--format", "json", code=None).output)
    s = plan["summary"]
    assert (s["records"], s["this_cycle"], s["cycles_to_clear"]) == (1, 1, 1), s
    assert s["clear_at"] == plan["at"], (s, plan["at"])
