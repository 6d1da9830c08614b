"""What the sync's reports say is what happened: the counts are what was written to the
CRM, a refusal is an error (not a write), and a cycle whose work waits is not idle."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from mrules.crm.emulator import EmulatedCrm
from mrules.crm.errors import CrmCallError, CrmError
from mrules.crm.port import WriteResult

from .org import Org, Refusal

NO_TITLE = CrmCallError(
    "INVALID_FIELD",
    "No such column 'Title' on sobject of type Contact",
    transient=False,
    http_status=400,
)

T0 = "2026-11-02T09:00:00Z"

REFUSED_RULES = """
user "alan@x.example"
crm campaign "C" statuses ["Sent", "Responded"]
crm campaign "Gone" statuses ["Sent"]
form "F"
on submit of form "F" {
  assign to user "alan@x.example"
  create crm task "Call" (due in 2 days, priority "Urgent")
  add to crm campaign "Gone" status "Sent"
}
sync salesforce {
  objects lead, contact, campaign
  every 10 minutes batch 800
}
"""


def test_a_task_and_a_membership_refused_for_good_are_errors_not_writes(tmp_path: Path) -> None:
    """A task the CRM refuses (a priority its picklist does not have) and a membership of a
    campaign the CRM does not have were counted as written: `tasks 1`, `members 1`, with
    their two errors, when nothing was written."""
    org = Org(tmp_path, REFUSED_RULES)
    org.submit((T0, "ann@ex.org", "F"))
    r = org.sync("run", "--until", T0)
    assert r.exit_code == 0, r.output
    (line,) = r.output.splitlines()
    assert "created     1" in line, line
    assert "members    0  tasks    0" in line, line
    assert "errors   2" in line, line
    assert org.crm_rows("Task") == [] and org.crm_rows("CampaignMember") == []
    # The refusals are kept in the error queue, as before.
    status = org.status()
    assert status["errors_by_code"] == {
        "INVALID_CROSS_REFERENCE_KEY": 1,
        "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST": 1,
    }, status


def test_apply_counts_what_was_written(tmp_path: Path) -> None:
    org = Org(tmp_path, REFUSED_RULES)
    org.submit((T0, "ann@ex.org", "F"))
    r = org.sync("apply")
    assert r.exit_code == 0, r.output
    assert "1 created, 0 linked, 0 updated, 0 campaign members, 0 tasks" in r.output, r.output
    assert "2 errors" in r.output, r.output


TASK_RULES = """
user "alan@x.example"
form "F"
on submit of form "F" {
  assign to user "alan@x.example"
  create crm task "Call" (due in 2 days)
}
sync salesforce {
  objects lead, contact
  every 10 minutes batch 800
}
"""


def test_a_failure_on_the_second_task_call_counts_the_tasks_of_the_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Tasks are created 200 a call: when the second call is refused for good, the exit-4
    message said what the cycle had written without the 200 tasks the first call made.
    (A refusal for lack of access no longer stops the cycle: the test below.)"""
    org = Org(tmp_path, TASK_RULES)
    org.submit(*((T0, f"p{i:03}@ex.org", "F") for i in range(201)))
    failed = CrmCallError(
        "INVALID_FIELD", "No such column 'Subject' on entity 'Task'", transient=False
    )
    refusal = Refusal(monkeypatch, "create", "Task", failed, nth=2)
    r = org.sync("run", "--until", T0)
    assert r.exit_code == 4, r.output
    assert refusal.calls == [200, 1]
    assert len(org.crm_rows("Task")) == 200
    assert "201 records created, 200 tasks" in r.output, r.output


def test_a_lack_of_access_on_the_second_task_call_holds_its_tasks_and_exits_3(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The second task call refused whole for lack of access: the 200 tasks of the first
    are counted, the one left is held in the error queue (`*task-access`), the cycle's
    line says it, and `sync run` exits 3 (partly done), no longer 4."""
    org = Org(tmp_path, TASK_RULES)
    org.submit(*((T0, f"p{i:03}@ex.org", "F") for i in range(201)))
    no_access = CrmCallError(
        "INSUFFICIENT_ACCESS", "no access to Task", transient=False, http_status=403
    )
    refusal = Refusal(monkeypatch, "create", "Task", no_access, nth=2)
    r = org.sync("run", "--until", T0)
    assert r.exit_code == 3, r.output
    assert refusal.calls == [200, 1]
    assert len(org.crm_rows("Task")) == 200
    assert "tasks  200  facts  201  errors   1  waiting     1" in r.output, r.output
    assert "not done: the integration user may not create Task (INSUFFICIENT_ACCESS" in r.output
    status = org.status()
    assert status["errors_by_code"] == {"INSUFFICIENT_ACCESS": 1}, status
    assert [e["field"] for e in status["error_queue"]] == ["*task-access"], status


def test_a_failure_on_the_second_lead_call_counts_the_leads_of_the_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Leads are created 200 a call: when the second call is refused for good, the exit-4
    message said "nothing of this cycle was written to the CRM" and `sync status` the
    same, with 200 leads in the CRM. The next cycle finds them and creates none twice."""
    org = Org(tmp_path, TASK_RULES)
    org.submit(*((T0, f"p{i:03}@ex.org", "F") for i in range(201)))
    no_access = CrmCallError(
        "INSUFFICIENT_ACCESS", "no access to Lead", transient=False, http_status=403
    )
    refusal = Refusal(monkeypatch, "create", "Lead", no_access, nth=2)
    r = org.sync("run", "--until", T0)
    assert r.exit_code == 4, r.output
    assert refusal.calls == [200, 1]
    assert len(org.crm_rows("Lead")) == 200
    assert "nothing of this cycle was written" not in r.output, r.output
    assert "had written to the CRM: 200 records created" in r.output, r.output
    assert org.status()["failed_cycle"]["created"] == 200  # type: ignore[index]

    refusal.lift()  # access given
    r = org.sync("run", "--until", "2026-11-02T09:10:00Z")
    assert r.exit_code == 0, r.output
    leads = org.crm_rows("Lead")
    assert len(leads) == 201 and len({str(x["Email"]).lower() for x in leads}) == 201


def test_status_after_a_first_cycle_that_failed_mid_apply(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first cycle created a lead, then a call was refused for good (exit 4): `sync
    status` said "no sync yet" (exit 2), though the CRM has the lead. It says the cycle
    failed, what it had written, and that the next cycle takes it up."""
    from .world import BOB, World, ev

    w = World(tmp_path)
    w.seed({"Contact": [dict(BOB)]})
    w.run(
        ev(T0, "ann@x.com", asset="Demo"),
        ev(T0, "bob@x.com", "prospect_update", fields={"title": "CTO"}),
    )
    refusal = Refusal(monkeypatch, "update", "Contact", NO_TITLE)
    w.sync("run", "--until", T0, code=4)
    r = w.cli("sync", "status", "--store", str(w.store))
    assert r.exit_code == 0, r.output
    assert "no sync yet" not in r.output
    assert "last cycle: never" in r.output, r.output
    assert f"the cycle at {T0} failed: INVALID_FIELD" in r.output, r.output
    assert "it had written to the CRM: 1 record created" in r.output, r.output
    assert "the next cycle takes" in r.output, r.output
    failed = w.status()["failed_cycle"]
    assert failed["at"] == T0 and failed["created"] == 1, failed
    assert failed["error"].startswith("INVALID_FIELD: "), failed

    refusal.lift()  # the field fixed
    w.sync("run", "--until", "2026-11-02T09:10:00Z")
    status = w.status()
    assert status["failed_cycle"] is None and status["links"] == 2, status
    r = w.cli("sync", "status", "--store", str(w.store))
    assert "failed" not in r.output, r.output


LATER_TASK_RULES = """
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


def test_a_cycle_whose_task_waits_for_the_contact_is_not_idle(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The lead is converted as the task is sent: the task waits for the contact. The
    cycle was printed as `1 idle cycle(s): nothing to do`; it says the work waits."""
    from mrules.crm.port import LeadConvert

    org = Org(tmp_path, LATER_TASK_RULES)
    org.submit((T0, "ann@ex.org", "F"))
    org.sync("run", "--until", T0)
    crm = EmulatedCrm.open(tmp_path / "s.crm.db", create=False)
    try:
        (lead,) = [r.id for r in crm.records("Lead")]
    finally:
        crm.close()
    org.submit(("2026-11-02T09:05:00Z", "ann@ex.org", "G"))
    original = EmulatedCrm.create

    def create(self: EmulatedCrm, sobject: str, records: Any, **kw: Any) -> Any:
        if sobject == "Task":  # sales convert the lead as the task is sent
            monkeypatch.setattr(EmulatedCrm, "create", original)
            [res] = self.convert_leads([LeadConvert(lead, do_not_create_opportunity=True)])
            assert res.success, res.errors
        return original(self, sobject, records, **kw)

    monkeypatch.setattr(EmulatedCrm, "create", create)
    r = org.sync("run", "--until", "2026-11-02T09:10:00Z")
    assert r.exit_code == 0, r.output
    (line,) = r.output.splitlines()
    assert "idle" not in line, line
    assert line.startswith("2026-11-02T09:10:00Z  created     0"), line
    assert "tasks    0" in line and line.endswith("waiting     1"), line
    r = org.sync("run", "--until", "2026-11-02T09:20:00Z")  # the task made on the contact
    (line,) = r.output.splitlines()
    assert "tasks    1" in line and line.endswith("waiting     0"), line


def test_a_failure_for_now_on_the_second_lead_call_counts_the_leads_of_the_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The API limit reached on the second call of a cycle's lead creates: the CRM took the
    first call's 200 leads, and the cycle's line said `created 0` (then `linked 200` the
    next cycle, as if they had been there before). The line now says what the CRM took."""
    org = Org(tmp_path, TASK_RULES)
    org.submit(*((T0, f"p{i:03}@ex.org", "F") for i in range(201)))
    limit = CrmCallError("REQUEST_LIMIT_EXCEEDED", "limit reached", transient=True, http_status=403)
    refusal = Refusal(monkeypatch, "create", "Lead", limit, nth=2)
    r = org.sync("run", "--until", T0)
    assert r.exit_code == 0, r.output
    assert refusal.calls == [200, 1]
    assert len(org.crm_rows("Lead")) == 200
    (line, why) = r.output.splitlines()
    assert line.startswith(f"{T0}  created   200  "), r.output
    assert "retried later" in why, r.output

    refusal.lift()
    r = org.sync("run", "--until", "2026-11-02T09:10:00Z")
    assert "created     1  linked  200" in r.output, r.output
    assert len(org.crm_rows("Lead")) == 201


GONE_RULES = """
user "alan@x.example"
field title: text
sync salesforce {
  objects lead, contact
  every 10 minutes batch 800
  map title <-> "Title" prefer ours
}
"""


def test_a_failure_after_an_update_call_counts_its_updates(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An update call the CRM answered (one contact updated, one refused as deleted), then
    the read that tells a deleted record from a bad reference refused for good: the exit-4
    message said "nothing of this cycle was written to the CRM", with a contact updated."""
    org = Org(tmp_path, GONE_RULES)
    seed = tmp_path / "more.jsonl"
    seed.write_text(
        "".join(
            json.dumps({"at": T0, "op": "create", "object": "Contact", "fields": f}) + "\n"
            for f in (
                {"LastName": "Ann", "Email": "ann@ex.org"},
                {"LastName": "Bob", "Email": "bob@ex.org"},
            )
        ),
        "utf-8",
    )
    org.ok("crm", "apply-changes", str(seed), "--store", str(org.store), "--until", T0)
    for who in ("ann@ex.org", "bob@ex.org"):
        org.update(T0, who, {"title": "Old"})
    assert org.sync("run", "--until", T0).exit_code == 0
    for who in ("ann@ex.org", "bob@ex.org"):
        org.update("2026-11-02T09:05:00Z", who, {"title": "New"})
    original_update, original_find = EmulatedCrm.update, EmulatedCrm.find

    def update(self: EmulatedCrm, sobject: str, records: Any, **kw: Any) -> Any:
        results = original_update(self, sobject, [records[0]], **kw)
        gone = CrmError("ENTITY_IS_DELETED", "entity is deleted", ())
        return [*results, *(WriteResult(r["Id"], False, (gone,)) for r in records[1:])]

    def find(self: EmulatedCrm, sobject: str, field: str, *args: Any, **kw: Any) -> Any:
        if field == "Id":
            raise CrmCallError("INSUFFICIENT_ACCESS", "no access", transient=False)
        return original_find(self, sobject, field, *args, **kw)

    monkeypatch.setattr(EmulatedCrm, "update", update)
    monkeypatch.setattr(EmulatedCrm, "find", find)
    r = org.sync("run", "--until", "2026-11-02T09:10:00Z")
    assert r.exit_code == 4, r.output
    assert sorted(str(c["Title"]) for c in org.crm_rows("Contact")) == ["New", "Old"]
    assert "nothing of this cycle was written" not in r.output, r.output
    assert "had written to the CRM: 1 record updated," in r.output, r.output
    assert org.status()["failed_cycle"]["updated"] == 1  # type: ignore[index]


def test_cycles_whose_only_work_was_a_refused_read_are_partly_done_not_idle(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`sync run` with Campaign unreadable: the cycles after the first had nothing to do
    but the campaigns' read, refused each time. They were printed as `3 idle cycles:
    nothing to do`; they are partly done (one line for the span, naming the object), and
    the command exits 3, each run of such cycles alike."""
    org = Org(
        tmp_path, TASK_RULES.replace("objects lead, contact", "objects lead, contact, campaign")
    )
    org.submit((T0, "ann@ex.org", "F"))
    original = EmulatedCrm.query_changed

    def refusing(crm: EmulatedCrm, sobject: str, *args: Any, **kw: Any) -> Any:
        if sobject == "Campaign":
            raise CrmCallError(
                "INVALID_TYPE", "sObject type 'Campaign' is not supported.", transient=False
            )
        return original(crm, sobject, *args, **kw)

    monkeypatch.setattr(EmulatedCrm, "query_changed", refusing)
    r = org.sync("run", "--until", "2026-11-02T09:30:00Z")
    assert r.exit_code == 3, r.output
    lines = r.output.splitlines()
    assert lines[0].startswith("not done: the integration user may not read Campaign"), lines
    assert lines[1].startswith("2026-11-02T09:00:00Z  created     1"), lines
    partly = (
        "partly done: nothing else to do, but Campaign not done, the integration user"
        " lacking the access (`not done:`); each cycle tries again"
    )
    assert lines[2:] == [f"2026-11-02T09:10:00Z to 2026-11-02T09:30:00Z  3 cycles {partly}"]
    r = org.sync("run", "--until", "2026-11-02T09:40:00Z")
    assert r.exit_code == 3, r.output
    assert r.output.splitlines()[1:] == [f"2026-11-02T09:40:00Z  1 cycle {partly}"], r.output
    monkeypatch.setattr(EmulatedCrm, "query_changed", original)  # the access given
    r = org.sync("run", "--until", "2026-11-02T10:00:00Z")
    assert r.exit_code == 0, r.output
    assert "partly done" not in r.output and "not done" not in r.output, r.output
