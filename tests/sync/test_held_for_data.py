"""A task or campaign membership the CRM refuses one record at a time for a data reason (a
validation rule or a trigger, a value outside a restricted picklist, a flow that fails) is
held in the error queue with its work kept, as a refused lead field is: once the admin fixes
the org, `sync retry` (or a change of the prospect) writes it; it was never written
(docs/sync.md#errors)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mrules.crm.errors import CrmError

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
