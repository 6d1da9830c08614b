"""Campaign members are written as tasks and records are: 200 a call (sObject Collections),
not one call each."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mrules.crm.emulator import EmulatedCrm

from .org import Org

RULES = """
user "alan@x.example"
crm campaign "C" statuses ["Sent", "Responded"]
form "F"
on submit of form "F" {
  assign to user "alan@x.example"
  add to crm campaign "C" status "Responded"
}
sync salesforce {
  objects lead, contact, campaign
  every 10 minutes batch 800
}
"""


def test_campaign_members_are_written_200_a_call(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """250 prospects added to a campaign in one cycle made 250 calls (one a member): on a
    real org, 250 of its daily API requests where 2 do, and a campaign that a big form
    feeds could spend the org's allowance in a day."""
    org = Org(tmp_path, RULES)
    people = [f"p{i:03d}@ex.org" for i in range(250)]
    org.submit(*(("2026-11-02T09:00:00Z", who, "F") for who in people))
    original = EmulatedCrm.create
    calls: list[int] = []

    def create(self: EmulatedCrm, name: str, records: Any, **kw: Any) -> Any:
        if name == "CampaignMember":
            calls.append(len(records))
        return original(self, name, records, **kw)

    monkeypatch.setattr(EmulatedCrm, "create", create)
    out = org.sync("run", "--until", "2026-11-02T09:00:00Z")
    assert out.exit_code == 0, out.output
    assert calls == [200, 50]
    members = org.crm_rows("CampaignMember")
    leads = {r["Id"]: r["Email"] for r in org.crm_rows("Lead")}
    assert sorted(leads[m["LeadId"]] for m in members) == people
    assert {m["Status"] for m in members} == {"Responded"}
    assert org.status()["queue"] == 0 and org.status()["errors"] == 0
