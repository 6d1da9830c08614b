"""A saved plan's owner change (a CRM fact whose `owner_since` times the reassignment)
with a damaged `owner_since` is refused by `sync apply`'s check of the plan, as any
other damaged value of a plan: exit 2, naming the entry and the field, before any
write. It passed the check, and the engine then rejected the fact's line: the owner
change was silently not applied, though the apply said it was done."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from tests.sync.world import T0, World, ev

from mrules.sync.plan import plan_id

HENRY = {"Id": "l-hen", "LastName": "Blanc", "Company": "Ex", "Email": "henry@x.com",
         "OwnerId": "alan"}  # fmt: skip


def _owner_plan(tmp: Path) -> tuple[World, Path]:
    """A saved plan whose only CRM fact is Henry's owner changed to sam in the CRM."""
    w = World(tmp)
    w.seed({"Lead": [HENRY]})
    w.run(ev(T0, "henry@x.com", asset="Demo"))
    w.sync("apply")  # Henry linked to his lead, owned by alan as assigned
    change = {"at": "2026-11-02T09:05:00Z", "op": "owner", "email": "henry@x.com",
              "owner": "sam@x.com"}  # fmt: skip
    w.changes(change, until="2026-11-02T09:05:00Z")
    plan = tmp / "plan.json"
    w.sync("plan", "--at", "2026-11-02T09:10:00Z", "--out", str(plan), code=2)
    return w, plan


def _owner_fact(doc: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    return next((n, i) for n, i in enumerate(doc["inbound"]) if i["op"] == "owner")


def test_the_saved_owner_change_applies(tmp_path: Path) -> None:
    w, plan = _owner_plan(tmp_path)
    w.sync("apply", str(plan))
    assert w.prospects()["henry@x.com"]["assigned"]["name"] == "sam@x.com"


@pytest.mark.parametrize(
    ("since", "said"),
    [
        ("last tuesday", "not an RFC 3339 timestamp: 'last tuesday'"),
        ("2026-11-02T09:05:00", "not an RFC 3339 timestamp: '2026-11-02T09:05:00' (no time zone"),
        (1762074300, "not text"),
        (["2026-11-02T09:05:00Z"], "not text"),
    ],
)
def test_a_damaged_owner_since_is_refused_before_any_write(
    tmp_path: Path, since: Any, said: str
) -> None:
    w, plan = _owner_plan(tmp_path)
    doc = json.loads(plan.read_text("utf-8"))
    n, fact = _owner_fact(doc)
    fact["event"]["owner_since"] = since
    doc["id"] = plan_id({k: v for k, v in doc.items() if k != "id"})
    plan.write_text(json.dumps(doc), "utf-8")
    before = (w.prospects(), w.crm_rows("Lead"), w.status())
    r = w.sync("apply", str(plan), code=2)
    assert "plan.json: not a sync plan mrules can apply (" in r.output
    assert f"inbound[{n}].event.owner_since: {said}" in r.output
    assert (w.prospects(), w.crm_rows("Lead"), w.status()) == before  # nothing applied
