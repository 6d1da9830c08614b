"""Campaign members are written as tasks and records are: 200 a call (sObject Collections),
not one call each."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mrules.crm.emulator import EmulatedCrm
from mrules.crm.errors import CrmCallError

from .org import Org, Refusal

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


TASK_RULES = RULES.replace(
    'add to crm campaign "C" status "Responded"', 'create crm task "Call" (due in 2 days)'
)
NO_CREATE = CrmCallError(
    "INSUFFICIENT_ACCESS", "insufficient access rights on object id", transient=False
)


@pytest.mark.parametrize(
    ("sobject", "rules", "field"),
    [("CampaignMember", RULES, "*campaign"), ("Task", TASK_RULES, "*task-access")],
    ids=["member", "task"],
)
def test_a_create_refused_whole_for_access_sends_no_later_chunk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sobject: str, rules: str, field: str
) -> None:
    """A CampaignMember create call refused whole for lack of access (the integration user
    may not create it) went on sending the next chunks of 200, each refused the same way:
    250 memberships made 2 calls, 10,000 made 50, every one of them refused. The first
    refusal now holds that chunk and every later one without a call, as it did for tasks;
    every write is held in the error queue under the same field, none lost, and once the
    access is given the next cycle writes them all."""
    org = Org(tmp_path, rules)
    people = [f"p{i:03d}@ex.org" for i in range(250)]
    org.submit(*(("2026-11-02T09:00:00Z", who, "F") for who in people))
    # One cycle creates the 250 leads, then their memberships or tasks, 200 a call.
    refusal = Refusal(monkeypatch, "create", sobject, NO_CREATE)
    r = org.sync("run", "--until", "2026-11-02T09:00:00Z")
    assert r.exit_code == 3, r.output
    assert refusal.calls == [200], refusal.calls  # not [200, 50]
    assert r.output.count(f"not done: the integration user may not create {sobject}") == 1
    status = org.status()
    held = status["error_queue"]
    assert sorted(e["prospect"] for e in held) == people  # type: ignore[attr-defined]
    assert {(e["field"], e["code"]) for e in held} == {(field, "INSUFFICIENT_ACCESS")}  # type: ignore[attr-defined]
    assert status["queue"] == 250, status  # every write's work kept

    refusal.lift()  # the access given: a later cycle writes them all, once each
    r = org.sync("run", "--until", "2026-11-02T09:30:00Z")
    assert r.exit_code == 0, r.output
    written = org.crm_rows(sobject)
    who = {str(x["Id"]): str(x["Email"]) for x in org.crm_rows("Lead")}
    key = "LeadId" if sobject == "CampaignMember" else "WhoId"
    assert sorted(who[str(x[key])] for x in written) == people
    status = org.status()
    assert status["queue"] == 0 and status["errors"] == 0, status
