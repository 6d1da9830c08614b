"""Writes the CRM refuses one record at a time for the integration user's permissions
(`INSUFFICIENT_ACCESS_OR_READONLY`): held in the error queue with what to grant, their work
kept, and tried again when the prospect or its record changes, or after `sync retry`; not
every cycle, and never dropped (docs/sync.md#errors)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from mrules.crm.emulator import EmulatedCrm
from mrules.crm.errors import CrmCallError, CrmError

from .org import Org, Refusal

T0 = "2026-11-02T09:00:00Z"

RULES = """
user "alan@x.example"
crm campaign "C" statuses ["Sent", "Responded"]
field phone: text
form "F"
on submit of form "F" {
  assign to user "alan@x.example"
  create crm task "Call" (due in 2 days)
  add to crm campaign "C" status "Responded"
}
sync salesforce {
  objects lead, contact
  every 10 minutes batch 800
  map phone <-> "Phone" prefer ours
}
"""

READONLY = CrmError(
    "INSUFFICIENT_ACCESS_OR_READONLY", "insufficient access rights on cross-reference id"
)

HELD = [
    ("Task", "*task-permission", "Create on Task and Read on this lead or contact"),
    (
        "CampaignMember",
        "*member-permission",
        "Edit on Campaign (with the Marketing User setting) and Read on this lead or contact",
    ),
]


def _held(org: Org) -> list[tuple[str, str, int]]:
    """The error queue: (field, code, attempts) of each held write."""
    return [(e["field"], e["code"], e["attempts"]) for e in org.status()["error_queue"]]  # type: ignore[attr-defined]


def _lookups(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The objects the emulated CRM is asked to find records of, from now on, in order."""
    looked: list[str] = []
    find = EmulatedCrm.find

    def finding(crm: EmulatedCrm, sobject: str, *args: Any, **kw: Any) -> Any:
        looked.append(sobject)
        return find(crm, sobject, *args, **kw)

    monkeypatch.setattr(EmulatedCrm, "find", finding)
    return looked


@pytest.mark.parametrize(("sobject", "field", "grant"), HELD)
def test_a_write_refused_for_permissions_is_held_and_retried_on_a_change_or_a_retry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sobject: str, field: str, grant: str
) -> None:
    """A task or a campaign membership refused record by record with
    INSUFFICIENT_ACCESS_OR_READONLY was an error of its own and its work was dropped: no
    change and no `sync retry` ever wrote it. It is held (its work kept), the message says
    what to grant; idle cycles do not try it again, `sync retry` does, and so does a change
    of the prospect, which writes it once the access is given."""
    org = Org(tmp_path, RULES)
    org.submit((T0, "ann@ex.org", "F"))
    refusal = Refusal(monkeypatch, "create", sobject, READONLY)
    r = org.sync("run", "--until", T0)
    assert r.exit_code == 3, r.output  # partly done: held for permission
    assert "errors   1" in r.output, r.output
    assert refusal.calls == [1]
    status = org.status()
    assert status["queue"] == 1, status  # the work is kept
    (error,) = status["error_queue"]  # type: ignore[misc]
    assert (error["field"], error["code"], error["object"]) == (
        field,
        "INSUFFICIENT_ACCESS_OR_READONLY",
        sobject.lower().replace("campaignmember", "campaign_member"),
    ), error
    assert error["message"] == (
        f"insufficient access rights on cross-reference id (give the integration user {grant}"
        " (its sharing), in its profile or a permission set; held, and tried again when the"
        " prospect or its record changes, or after `mrules sync retry`)"
    ), error
    shown = org.ok("sync", "status", "--store", str(org.store))
    assert f"{field}: INSUFFICIENT_ACCESS_OR_READONLY insufficient access" in shown, shown

    # Nothing changed: the next cycles do not try it again, and the plan shows it held.
    r = org.sync("run", "--until", "2026-11-02T09:30:00Z")
    assert r.exit_code == 0, r.output
    assert "3 idle cycles" in r.output, r.output
    assert refusal.calls == [1]
    plan = json.loads(org.sync("plan", "--format", "json").output)
    (hold,) = [o for o in plan["ops"] if o["op"] == "hold"]
    assert [h["field"] for h in hold["held"]] == [field], hold
    (line,) = [x for x in org.sync("plan").output.splitlines() if f"held {field}:" in x]
    assert line.count("tried again when") + line.count("retried when") == 1, line  # not twice

    # `sync retry`: the next cycle tries it; refused again, it stays held.
    org.ok("sync", "retry", "--store", str(org.store))
    r = org.sync("run", "--until", "2026-11-02T09:40:00Z")
    assert r.exit_code == 3, r.output
    assert refusal.calls == [1, 1]
    assert _held(org) == [(field, "INSUFFICIENT_ACCESS_OR_READONLY", 2)]
    r = org.sync("run", "--until", "2026-11-02T09:50:00Z")
    assert refusal.calls == [1, 1], r.output  # the retry was once

    # The access given: still held while nothing changes; the prospect changes: written.
    refusal.lift()
    org.sync("run", "--until", "2026-11-02T10:00:00Z")
    assert org.crm_rows(sobject) == []
    org.update("2026-11-02T10:05:00Z", "ann@ex.org", {"phone": "+33 1 40 00 00 01"})
    r = org.sync("run", "--until", "2026-11-02T10:10:00Z")
    assert r.exit_code == 0, r.output
    assert len(org.crm_rows(sobject)) == 1
    status = org.status()
    assert status["errors"] == 0 and status["queue"] == 0, status


def test_a_lead_field_refused_for_permissions_says_what_to_grant(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A lead's field update refused with INSUFFICIENT_ACCESS_OR_READONLY is held, as a
    data error is (tried again when the prospect or the lead changes, or `sync retry`),
    and its message now says what to grant: it said only the CRM's words."""
    org = Org(tmp_path, RULES)
    org.submit((T0, "ann@ex.org", "F"))
    assert org.sync("run", "--until", T0).exit_code == 0
    refusal = Refusal(monkeypatch, "update", "Lead", READONLY)
    org.update("2026-11-02T09:05:00Z", "ann@ex.org", {"phone": "+33 1 40 00 00 01"})
    r = org.sync("run", "--until", "2026-11-02T09:30:00Z")
    assert r.exit_code == 3, r.output
    assert refusal.calls == [1]  # not tried again by the idle cycles after it
    (error,) = org.status()["error_queue"]  # type: ignore[misc]
    assert (error["field"], error["code"]) == ("Phone", "INSUFFICIENT_ACCESS_OR_READONLY")
    assert error["message"].startswith(
        "insufficient access rights on cross-reference id (give the integration user Create"
        " and Edit on Lead, edit access to the mapped fields (field-level security) and"
        " access to this lead (its sharing), in its profile or a permission set; held"
    ), error
    refusal.lift()
    org.ok("sync", "retry", "--store", str(org.store))
    assert org.sync("run", "--until", "2026-11-02T09:40:00Z").exit_code == 0
    assert [lead["Phone"] for lead in org.crm_rows("Lead")] == ["+33 1 40 00 00 01"]
    assert org.status()["errors"] == 0


NO_TASK_ACCESS = CrmCallError(
    "INSUFFICIENT_ACCESS", "insufficient access rights on object id", transient=False
)
PICKLIST = CrmError(
    "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST", "bad value for restricted picklist field"
)


@pytest.mark.parametrize(
    ("sobject", "refused", "field", "code"),
    [
        ("Task", NO_TASK_ACCESS, "*task-access", 3),
        ("Task", READONLY, "*task-permission", 3),
        ("CampaignMember", READONLY, "*member-permission", 3),
        ("Task", PICKLIST, "*task", 0),
        ("CampaignMember", PICKLIST, "*member", 0),
    ],
    ids=[
        "task-call-refused",
        "task-record-refused",
        "member-record-refused",
        "task-data-refused",
        "member-data-refused",
    ],
)
def test_a_held_write_found_in_the_crm_already_leaves_the_error_queue(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    sobject: str,
    refused: CrmCallError | CrmError,
    field: str,
    code: int,
) -> None:
    """A task or membership held (for lack of access, or refused record by record) that a
    later cycle finds in the CRM already (written by someone else, or by an earlier run's
    apply) is done: its error stayed in the queue, listed by `sync status`, until another
    write of the prospect of that kind was made."""
    org = Org(tmp_path, RULES)
    org.submit((T0, "ann@ex.org", "F"))
    refusal = Refusal(monkeypatch, "create", sobject, refused)
    assert org.sync("run", "--until", T0).exit_code == code
    (error,) = org.status()["error_queue"]  # type: ignore[misc]
    assert error["field"] == field, error
    refusal.lift()
    # Someone writes it in the CRM: the task as the sync would have (its sync key in the
    # description), the membership by hand.
    if sobject == "Task":
        line = {"op": "create", "object": "Task", "fields": json.loads(error["value"])}
    else:
        line = {"op": "add_member", "campaign": "C", "email": "ann@ex.org", "status": "Sent"}
    changes = tmp_path / "changes.jsonl"
    changes.write_text(json.dumps({"at": "2026-11-02T09:05:00Z", **line}) + "\n", "utf-8")
    if field != "*task-access":  # held one record at a time: due after a retry
        org.ok("sync", "retry", "--store", str(org.store))
    until = "2026-11-02T09:05:00Z"
    org.ok("crm", "apply-changes", str(changes), "--store", str(org.store), "--until", until)
    # The plan looks it up, and says it writes nothing (as apply finds it there).
    plan = json.loads(org.sync("plan", "--at", "2026-11-02T09:10:00Z", "--format", "json").output)
    kind = "task" if sobject == "Task" else "campaign_member"
    assert [o["op"] for o in plan["ops"] if o.get("work") == [kind]] == ["skip"], plan["ops"]
    r = org.sync("run", "--until", "2026-11-02T09:10:00Z")
    assert r.exit_code == 0, r.output
    assert len(org.crm_rows(sobject)) == 1  # not written twice
    status = org.status()
    assert status["errors"] == 0 and status["queue"] == 0, status
    shown = org.ok("sync", "status", "--store", str(org.store))
    assert "errors: 0" in shown and field not in shown, shown


def test_a_new_task_of_a_record_linked_before_is_not_looked_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ann's lead was created by an earlier cycle; her rules ask it another task, which
    nothing holds. The plan looks up in the CRM only the tasks and memberships of records
    it links now, and those held that are due (docs/sync.md#the-sync-file): not this one,
    a query a cycle spared."""
    org = Org(tmp_path, RULES)
    org.submit((T0, "ann@ex.org", "F"))
    assert org.sync("run", "--until", T0).exit_code == 0
    org.submit(("2026-11-02T09:05:00Z", "ann@ex.org", "F"))
    looked = _lookups(monkeypatch)
    plan = json.loads(org.sync("plan", "--at", "2026-11-02T09:10:00Z", "--format", "json").output)
    writes = sorted(o["op"] for o in plan["ops"] if o["op"] in ("campaign_member", "task"))
    assert writes == ["campaign_member", "task"], plan["ops"]
    assert "Task" not in looked and "CampaignMember" not in looked, looked


def test_a_held_task_not_due_is_not_looked_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ann's task is refused for a data reason and held; at the next cycle nothing has
    changed, so it is not due: the plan holds it without looking for it in the CRM (a
    held write is looked up once due, to be found there if someone wrote it)."""
    org = Org(tmp_path, RULES)
    Refusal(monkeypatch, "create", "Task", PICKLIST)
    org.submit((T0, "ann@ex.org", "F"))
    assert org.sync("run", "--until", T0).exit_code == 0
    looked = _lookups(monkeypatch)
    plan = json.loads(org.sync("plan", "--at", "2026-11-02T09:10:00Z", "--format", "json").output)
    assert [o["op"] for o in plan["ops"] if o.get("work") == ["task"]] == ["hold"], plan["ops"]
    assert "Task" not in looked, looked


UNAVAILABLE = CrmCallError("SERVER_UNAVAILABLE", "Service Unavailable", transient=True)
LOCKED = CrmError("UNABLE_TO_LOCK_ROW", "unable to obtain exclusive access to this record")


@pytest.mark.parametrize(("sobject", "field", "grant"), HELD)
@pytest.mark.parametrize("failure", [UNAVAILABLE, LOCKED], ids=["call", "record"])
def test_a_retried_write_a_failure_for_now_stopped_is_tried_at_the_next_cycle(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    sobject: str,
    field: str,
    grant: str,
    failure: CrmCallError | CrmError,
) -> None:
    """A task or membership held, the access given, `sync retry`; the cycle that tries it
    meets the CRM down for now (the whole call, or that one record). Its retry mark was
    cleared all the same: the next plan held it again, and it was never written (idle
    cycles, the error still in the queue) until the prospect changed. It stays marked,
    and the next cycle writes it."""
    org = Org(tmp_path, RULES)
    org.submit((T0, "ann@ex.org", "F"))
    refusal = Refusal(monkeypatch, "create", sobject, READONLY)
    assert org.sync("run", "--until", T0).exit_code == 3
    refusal.lift()
    org.ok("sync", "retry", "--store", str(org.store))
    down = Refusal(monkeypatch, "create", sobject, failure)
    r = org.sync("run", "--until", "2026-11-02T09:10:00Z")
    assert r.exit_code == 0, r.output
    assert down.calls == [1]
    assert org.crm_rows(sobject) == []
    (error,) = org.status()["error_queue"]  # type: ignore[misc]
    assert (error["field"], error["attempts"], error["retry"] > 0) == (field, 1, True), error
    down.lift()
    r = org.sync("run", "--until", "2026-11-02T09:40:00Z")
    assert r.exit_code == 0, r.output
    assert len(org.crm_rows(sobject)) == 1, r.output  # was: none, "3 idle cycles"
    status = org.status()
    assert status["errors"] == 0 and status["queue"] == 0, status
