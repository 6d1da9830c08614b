"""A task or campaign membership the CRM refuses one record at a time for a data reason (a
validation rule or a trigger, a value outside a restricted picklist, a flow that fails) is
held in the error queue with its work kept, as a refused lead field is: once the admin fixes
the org, `sync retry` (or a change of the prospect) writes it; it was never written
(docs/sync.md#errors)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from mrules.crm.emulator import EmulatedCrm
from mrules.crm.errors import CrmError
from mrules.crm.port import WriteResult

from .org import Org, Refusal
from .test_held_for_permission import RULES, T0

REFUSED = {
    "validation": CrmError(
        "FIELD_CUSTOM_VALIDATION_EXCEPTION", "a task needs a region", ("Subject",)
    ),
    "picklist": CrmError(
        "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST", "bad value for restricted picklist field"
    ),
    "flow": CrmError("CANNOT_INSERT_UPDATE_ACTIVATE_ENTITY", "Assign_Owner: flow failed to run"),
}
KINDS = [("Task", "*task", "task"), ("CampaignMember", "*member", "campaign_member")]


@pytest.mark.parametrize("why", sorted(REFUSED))
@pytest.mark.parametrize(("sobject", "field", "obj"), KINDS, ids=["task", "member"])
def test_a_write_refused_for_a_data_reason_is_held_and_written_after_retry(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    why: str,
    sobject: str,
    field: str,
    obj: str,
) -> None:
    """Refused record by record for a data reason, a task or membership was an error and
    its work was done: after the org was fixed and `sync retry` run, it was never written.
    It is held (its work kept, not tried by idle cycles, a `hold` in the plan); `sync
    retry` tries it, and once the org is fixed it is written and its error goes."""
    refused = REFUSED[why]
    org = Org(tmp_path, RULES)
    org.submit((T0, "ann@ex.org", "F"))
    refusal = Refusal(monkeypatch, "create", sobject, refused)
    r = org.sync("run", "--until", T0)
    assert r.exit_code == 0, r.output
    assert "errors   1" in r.output, r.output
    status = org.status()
    assert status["queue"] == 1, status  # the work is kept
    (error,) = status["error_queue"]  # type: ignore[misc]
    assert (error["field"], error["code"], error["object"]) == (
        field,
        refused.status_code,
        obj,
    ), error
    shown = org.ok("sync", "status", "--store", str(org.store))
    assert f"{field}: {refused.status_code} {refused.message}" in shown, shown

    # Nothing changed: idle cycles do not try it again; the plan shows it held.
    r = org.sync("run", "--until", "2026-11-02T09:30:00Z")
    assert r.exit_code == 0, r.output
    assert refusal.calls == [1]
    plan = json.loads(org.sync("plan", "--format", "json").output)
    (hold,) = [o for o in plan["ops"] if o["op"] == "hold"]
    assert [(h["field"], h["code"]) for h in hold["held"]] == [(field, refused.status_code)]
    assert hold["why"] == (
        f"refused by the CRM ({refused.status_code}); held until the prospect or its record"
        " changes, or `sync retry`"
    ), hold

    # The org fixed, `sync retry`: the next cycle writes it, and the error goes.
    refusal.lift()
    org.ok("sync", "retry", "--store", str(org.store))
    r = org.sync("run", "--until", "2026-11-02T09:40:00Z")
    assert r.exit_code == 0, r.output
    assert len(org.crm_rows(sobject)) == 1
    status = org.status()
    assert status["errors"] == 0 and status["queue"] == 0, status
    r = org.sync("run", "--until", "2026-11-02T09:50:00Z")
    assert len(org.crm_rows(sobject)) == 1  # written once


@pytest.mark.parametrize(("sobject", "field", "obj"), KINDS, ids=["task", "member"])
def test_a_held_data_refusal_is_tried_again_when_the_prospect_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sobject: str, field: str, obj: str
) -> None:
    """Held for a data reason, the write is tried again when the prospect changes (without
    `sync retry`), refused again it stays held with its attempts counted, and written once
    the refusal is lifted and the prospect changes again."""
    org = Org(tmp_path, RULES)
    org.submit((T0, "ann@ex.org", "F"))
    refusal = Refusal(monkeypatch, "create", sobject, REFUSED["picklist"])
    assert org.sync("run", "--until", T0).exit_code == 0
    org.update("2026-11-02T09:05:00Z", "ann@ex.org", {"phone": "+33 1 40 00 00 01"})
    assert org.sync("run", "--until", "2026-11-02T09:10:00Z").exit_code == 0
    assert refusal.calls == [1, 1]
    (error,) = org.status()["error_queue"]  # type: ignore[misc]
    assert (error["field"], error["object"], error["attempts"]) == (field, obj, 2), error
    refusal.lift()
    org.update("2026-11-02T09:15:00Z", "ann@ex.org", {"phone": "+33 1 40 00 00 02"})
    assert org.sync("run", "--until", "2026-11-02T09:20:00Z").exit_code == 0
    assert len(org.crm_rows(sobject)) == 1
    status = org.status()
    assert status["errors"] == 0 and status["queue"] == 0, status


@pytest.mark.parametrize(("sobject", "field", "obj"), KINDS, ids=["task", "member"])
def test_a_write_refused_without_a_reason_is_held_as_such(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sobject: str, field: str, obj: str
) -> None:
    """A task or membership the CRM answers as not written, with no error at all, is held
    as refused without a reason (its work kept), not left to wait as a refusal for now:
    a CRM that says nothing would say nothing again at every cycle."""
    org = Org(tmp_path, RULES)
    org.submit((T0, "ann@ex.org", "F"))
    Refusal(monkeypatch, "create", sobject, ())
    r = org.sync("run", "--until", T0)
    assert r.exit_code == 0 and "errors   1" in r.output, r.output
    (error,) = org.status()["error_queue"]  # type: ignore[misc]
    assert (error["field"], error["code"], error["object"]) == (field, "UNKNOWN_EXCEPTION", obj)
    assert error["message"].startswith("refused by the CRM without a reason"), error


@pytest.mark.parametrize(("sobject", "field", "obj"), KINDS, ids=["task", "member"])
def test_a_write_refused_as_the_lead_was_converted_waits_without_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sobject: str, field: str, obj: str
) -> None:
    """A task or membership refused because Ann's lead was converted since the cycle read
    it (CANNOT_UPDATE_CONVERTED_LEAD) is not an error of the write: it waits, and the
    next cycle, having read the conversion, writes it to the contact."""
    org = Org(tmp_path, RULES)
    org.submit((T0, "ann@ex.org", "F"))
    converted = CrmError("CANNOT_UPDATE_CONVERTED_LEAD", "cannot reference converted lead")
    refusal = Refusal(monkeypatch, "create", sobject, converted)
    r = org.sync("run", "--until", T0)
    assert r.exit_code == 0 and "errors   0" in r.output, r.output
    assert refusal.calls == [1]
    status = org.status()
    assert (status["error_queue"], status["queue"]) == ([], 1), status


def test_a_task_refused_for_now_leaves_the_others_of_its_call_done(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Of two tasks created in one call, Ann's is refused for now (her lead locked) and
    Bob's is written: Ann's work waits, Bob's leaves the queue, and nothing is held."""
    org = Org(tmp_path, RULES)
    org.submit((T0, "ann@ex.org", "F"), (T0, "bob@ex.org", "F"))
    create = EmulatedCrm.create
    locked = CrmError("UNABLE_TO_LOCK_ROW", "unable to obtain exclusive access to this record")

    def creating(crm: EmulatedCrm, sobject: str, records: Any, **kw: Any) -> Any:
        if sobject != "Task":
            return create(crm, sobject, records, **kw)
        ann = {r.id for r in crm.find("Lead", "Email", ["ann@ex.org"], ["Id"])}
        results = create(crm, sobject, [r for r in records if r["WhoId"] not in ann], **kw)
        written = iter(results)
        return [
            WriteResult(None, False, (locked,)) if r["WhoId"] in ann else next(written)
            for r in records
        ]

    monkeypatch.setattr(EmulatedCrm, "create", creating)
    r = org.sync("run", "--until", T0)
    assert r.exit_code == 0 and "tasks    1" in r.output and "errors   0" in r.output, r.output
    status = org.status()
    assert (status["error_queue"], status["queue"]) == ([], 1), status


def test_a_task_refused_as_a_duplicate_is_held_not_done(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DUPLICATE_VALUE on a membership means the prospect is a member already: done. On a
    task it is a unique field of the org's refusing it: held, its work kept, not taken for
    a task written."""
    org = Org(tmp_path, RULES)
    org.submit((T0, "ann@ex.org", "F"))
    duplicate = CrmError("DUPLICATE_VALUE", "duplicate value found: Ticket__c", ("Ticket__c",))
    Refusal(monkeypatch, "create", "Task", duplicate)
    r = org.sync("run", "--until", T0)
    assert r.exit_code == 0 and "tasks    0" in r.output, r.output
    status = org.status()
    assert status["queue"] == 1, status
    assert [(e["field"], e["code"]) for e in status["error_queue"]] == [  # type: ignore[attr-defined]
        ("*task", "DUPLICATE_VALUE")
    ]
