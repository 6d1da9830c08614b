"""A lead converted between the cycle's read and its write (a real org's race: the plan
reads up to two minutes ago, a sales rep converts the lead while the cycle runs)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from mrules.crm.emulator import EmulatedCrm
from mrules.crm.port import LeadConvert

from .org import Org
from .world import T0, World, ev


def test_an_update_refused_as_converted_lead_goes_to_the_contact(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    w = World(tmp_path)
    w.seed({})
    w.run(ev(T0, "henry@x.com", asset="Demo"))
    w.sync("run", "--until", T0)
    p = w.prospects()["henry@x.com"]
    assert p["crm_status"] == "lead"
    lead_id = p["crm_id"]
    w.run(
        ev(
            "2026-11-02T09:04:00Z",
            "henry@x.com",
            "prospect_update",
            fields={"phone": "+1 555 0777"},
        )
    )
    original = EmulatedCrm.update
    raced: list[str] = []

    def update(self: EmulatedCrm, sobject: str, records: Any, **kw: Any) -> Any:
        if sobject == "Lead" and not raced:
            raced.append(sobject)  # sales convert the lead as the write is sent
            [res] = self.convert_leads([LeadConvert(lead_id, do_not_create_opportunity=True)])
            assert res.success, res.errors
        return original(self, sobject, records, **kw)

    monkeypatch.setattr(EmulatedCrm, "update", update)
    first = w.sync("run", "--until", "2026-11-02T09:10:00Z")
    assert raced
    monkeypatch.setattr(EmulatedCrm, "update", original)
    w.sync("run", "--until", "2026-11-02T09:30:00Z")
    p = w.prospects()["henry@x.com"]
    assert p["crm_status"] == "contact", first.output
    (contact,) = [r for r in w.crm_rows("Contact") if r["Email"] == "henry@x.com"]
    assert contact["Phone"] == "+1 555 0777", first.output
    status = w.status()
    assert status["errors"] == 0, json.dumps(status)


MEMBER_RULES = """
user "alan@x.example"
crm campaign "C" statuses ["Sent", "Responded"]
form "F"
form "G"
on submit of form "F" { assign to user "alan@x.example" }
on submit of form "G" { add to crm campaign "C" status "Responded" }
sync salesforce {
  objects lead, contact, campaign
  every 10 minutes batch 800
}
"""

TASK_RULES = """
user "alan@x.example"
form "F"
form "G"
on submit of form "F" { assign to user "alan@x.example" }
on submit of form "G" { create crm task "Call" (due in 2 days) }
sync salesforce {
  objects lead, contact
  every 10 minutes batch 800
}
"""


@pytest.mark.parametrize(
    ("rules", "sobject", "who"),
    [(MEMBER_RULES, "CampaignMember", "ContactId"), (TASK_RULES, "Task", "WhoId")],
    ids=["membership", "task"],
)
def test_work_refused_as_converted_lead_goes_to_the_contact(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, rules: str, sobject: str, who: str
) -> None:
    """A campaign membership or a task for a lead converted since the plan read it: the
    refusal (cannot reference converted lead) was counted as done, with an error, and the
    contact the lead became never got it (the local CRM even made the task on the dead
    lead). The work waits, and goes to the contact."""
    org = Org(tmp_path, rules)
    org.submit(("2026-11-02T09:00:00Z", "ann@ex.org", "F"))
    org.sync("run", "--until", "2026-11-02T09:00:00Z")
    (lead,) = [r["Id"] for r in org.crm_rows("Lead")]
    org.submit(("2026-11-02T09:05:00Z", "ann@ex.org", "G"))
    original = EmulatedCrm.create
    raced: list[str] = []

    def create(self: EmulatedCrm, name: str, records: Any, **kw: Any) -> Any:
        if name == sobject and not raced:
            raced.append(name)  # sales convert the lead as the work is sent
            [res] = self.convert_leads([LeadConvert(str(lead), do_not_create_opportunity=True)])
            assert res.success, res.errors
        return original(self, name, records, **kw)

    monkeypatch.setattr(EmulatedCrm, "create", create)
    first = org.sync("run", "--until", "2026-11-02T09:10:00Z")
    assert first.exit_code == 0 and raced, first.output
    monkeypatch.setattr(EmulatedCrm, "create", original)
    assert org.sync("run", "--until", "2026-11-02T09:40:00Z").exit_code == 0
    (contact,) = [r["Id"] for r in org.crm_rows("Contact")]
    assert [row.get(who) for row in org.crm_rows(sobject)] == [contact], first.output
    status = org.status()
    assert status["errors"] == 0 and status["queue"] == 0, status
