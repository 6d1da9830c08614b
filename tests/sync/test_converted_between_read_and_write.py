"""A lead converted between the cycle's read and its write (a real org's race: the plan
reads up to two minutes ago, a sales rep converts the lead while the cycle runs)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from mrules.crm.emulator import EmulatedCrm
from mrules.crm.port import LeadConvert

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


def test_a_membership_refused_as_converted_lead_goes_to_the_contact(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The membership was dropped: the refusal counted as done, with an error, and the
    contact the lead became never joined the campaign."""
    from click.testing import CliRunner

    from mrules.cli import main

    def ok(*args: str) -> str:
        r = CliRunner().invoke(main, list(args), catch_exceptions=False)
        assert r.exit_code == 0, (args, r.output)
        return r.output

    rules, store = tmp_path / "rules.mr", tmp_path / "s.db"
    rules.write_text(MEMBER_RULES, "utf-8")
    seed = tmp_path / "seed"
    seed.mkdir()
    (seed / "org.json").write_text(json.dumps({"clock": "2026-11-01T00:00:00Z"}), "utf-8")
    (seed / "Campaign.csv").write_text("Id,Name\ncamp-c,C\n", "utf-8")
    (seed / "CampaignMemberStatus.csv").write_text(
        "CampaignId,Label,HasResponded,IsDefault\n"
        "camp-c,Sent,false,true\ncamp-c,Responded,true,false\n",
        "utf-8",
    )
    (seed / "User.csv").write_text(
        "Id,Username,Email,LastName\nalan,alan@x.example,alan@x.example,Alan\n", "utf-8"
    )
    ok("crm", "load", str(seed), "--store", str(store))
    events = tmp_path / "ev.jsonl"

    def submit(*lines: tuple[str, str]) -> None:
        with events.open("a") as f:
            for ts, form in lines:
                e = {"ts": ts, "type": "form_submit", "prospect": "ann@ex.org", "asset": form}
                f.write(json.dumps(e) + "\n")
        ok("run", str(rules), str(events), "--store", str(store))

    def sync(until: str) -> str:
        return ok("sync", "run", "--rules", str(rules), "--store", str(store), "--until", until)

    submit(("2026-11-02T09:00:00Z", "F"))
    sync("2026-11-02T09:00:00Z")
    crm = EmulatedCrm.open(tmp_path / "s.crm.db", create=False)
    try:
        (lead,) = [r.id for r in crm.records("Lead")]
    finally:
        crm.close()
    submit(("2026-11-02T09:05:00Z", "G"))
    original = EmulatedCrm.create
    raced: list[str] = []

    def create(self: EmulatedCrm, sobject: str, records: Any, **kw: Any) -> Any:
        if sobject == "CampaignMember" and not raced:
            raced.append(sobject)  # sales convert the lead as the membership is sent
            [res] = self.convert_leads([LeadConvert(lead, do_not_create_opportunity=True)])
            assert res.success, res.errors
        return original(self, sobject, records, **kw)

    monkeypatch.setattr(EmulatedCrm, "create", create)
    first = sync("2026-11-02T09:10:00Z")
    assert raced
    monkeypatch.setattr(EmulatedCrm, "create", original)
    sync("2026-11-02T09:40:00Z")
    crm = EmulatedCrm.open(tmp_path / "s.crm.db", create=False)
    try:
        (contact,) = [r.id for r in crm.records("Contact")]
        members = [dict(r.fields) for r in crm.records("CampaignMember")]
    finally:
        crm.close()
    assert [m.get("ContactId") for m in members] == [contact], first
    status = json.loads(ok("sync", "status", "--store", str(store), "--format", "json"))
    assert status["errors"] == 0 and status["queue"] == 0, status


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


def test_a_task_refused_as_converted_lead_goes_to_the_contact(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A task for a lead converted since the plan read it: the local CRM made it on the
    dead lead (Salesforce refuses it: cannot reference converted lead), and a refusal
    was counted as done, with an error. The task waits, and goes to the contact."""
    from click.testing import CliRunner

    from mrules.cli import main

    def ok(*args: str) -> str:
        r = CliRunner().invoke(main, list(args), catch_exceptions=False)
        assert r.exit_code == 0, (args, r.output)
        return r.output

    rules, store = tmp_path / "rules.mr", tmp_path / "s.db"
    rules.write_text(TASK_RULES, "utf-8")
    seed = tmp_path / "seed"
    seed.mkdir()
    (seed / "org.json").write_text(json.dumps({"clock": "2026-11-01T00:00:00Z"}), "utf-8")
    (seed / "User.csv").write_text(
        "Id,Username,Email,LastName\nalan,alan@x.example,alan@x.example,Alan\n", "utf-8"
    )
    ok("crm", "load", str(seed), "--store", str(store))
    events = tmp_path / "ev.jsonl"

    def submit(ts: str, form: str) -> None:
        with events.open("a") as f:
            e = {"ts": ts, "type": "form_submit", "prospect": "ann@ex.org", "asset": form}
            f.write(json.dumps(e) + "\n")
        ok("run", str(rules), str(events), "--store", str(store))

    def sync(until: str) -> str:
        return ok("sync", "run", "--rules", str(rules), "--store", str(store), "--until", until)

    submit("2026-11-02T09:00:00Z", "F")
    sync("2026-11-02T09:00:00Z")
    crm = EmulatedCrm.open(tmp_path / "s.crm.db", create=False)
    try:
        (lead,) = [r.id for r in crm.records("Lead")]
    finally:
        crm.close()
    submit("2026-11-02T09:05:00Z", "G")
    original = EmulatedCrm.create
    raced: list[str] = []

    def create(self: EmulatedCrm, sobject: str, records: Any, **kw: Any) -> Any:
        if sobject == "Task" and not raced:
            raced.append(sobject)  # sales convert the lead as the task is sent
            [res] = self.convert_leads([LeadConvert(lead, do_not_create_opportunity=True)])
            assert res.success, res.errors
        return original(self, sobject, records, **kw)

    monkeypatch.setattr(EmulatedCrm, "create", create)
    first = sync("2026-11-02T09:10:00Z")
    assert raced
    monkeypatch.setattr(EmulatedCrm, "create", original)
    sync("2026-11-02T09:40:00Z")
    crm = EmulatedCrm.open(tmp_path / "s.crm.db", create=False)
    try:
        (contact,) = [r.id for r in crm.records("Contact")]
        tasks = [dict(r.fields) for r in crm.records("Task")]
    finally:
        crm.close()
    assert [t["WhoId"] for t in tasks] == [contact], first
    status = json.loads(ok("sync", "status", "--store", str(store), "--format", "json"))
    assert status["errors"] == 0 and status["queue"] == 0, status
