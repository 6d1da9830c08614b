"""A task or campaign membership refused because the lead or contact it is for is gone
(docs/sync.md#inbound-what-comes-from-the-crm): in the recycle bin, it is held and the next
cycle reads the deletion or the merge; purged, it is the record's deletion at once, as an
update so refused is, not a write held forever."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from mrules.crm.emulator import EmulatedCrm

from .org import Org
from .test_held_for_permission import RULES, T0


def _prospect(org: Org) -> dict[str, Any]:
    (line,) = org.ok("state", "export", "--store", str(org.store)).splitlines()
    return json.loads(line)  # type: ignore[no-any-return]


def _lead_goes(
    monkeypatch: pytest.MonkeyPatch, how: str, lead: str, *, before: tuple[str, str]
) -> list[str]:
    """Sales delete `lead` (to the recycle bin), or merge it into a new lead, while a cycle
    runs: just before its first `before` call (method, object) reaches the CRM. The list
    gets the surviving lead's id ("" for a deletion) once it happened."""
    method, sobject = before
    original, create = getattr(EmulatedCrm, method), EmulatedCrm.create
    survivor: list[str] = []

    def call(crm: EmulatedCrm, name: str, records: Any, **kw: Any) -> Any:
        if name == sobject and not survivor:
            if how == "deleted":
                crm.delete([lead])
                survivor.append("")
            else:
                other = {"LastName": "Ann", "Company": "X", "Email": "ann.b@ex.org"}
                survivor.append(str(create(crm, "Lead", [other])[0].id))
                crm.merge(survivor[0], [lead], "alan")
        return original(crm, name, records, **kw)

    monkeypatch.setattr(EmulatedCrm, method, call)
    return survivor


def test_a_task_for_a_purged_record_is_its_deletion_not_held_forever(tmp_path: Path) -> None:
    """Ann's lead is deleted, and purged from the recycle bin (15 days) before any cycle
    read the deletion; her next form asks a task and a membership. Both were refused
    (INVALID_CROSS_REFERENCE_KEY on WhoId and LeadId) and held for good: no cycle reads a
    purged record's deletion, every `sync retry` was refused again, and Ann stayed linked
    to a lead that no longer exists. The refusal is now the lead's deletion, as for an
    update: no error, Ann's CRM status is deleted (not recreated, as a deletion read),
    and her queued work leaves the queue with it."""
    org = Org(tmp_path, RULES)
    org.submit((T0, "ann@ex.org", "F"))
    assert org.sync("run", "--until", T0).exit_code == 0
    changes = tmp_path / "changes.jsonl"
    deleted = {"at": "2026-11-02T09:05:00Z", "op": "delete", "email": "ann@ex.org"}
    changes.write_text(json.dumps(deleted) + "\n", "utf-8")
    org.submit(("2026-11-20T09:00:00Z", "ann@ex.org", "F"))  # 18 days on: purged
    r = org.sync("run", "--until", "2026-11-20T09:00:00Z", "--changes", str(changes))
    assert r.exit_code == 0, r.output
    assert "errors   0" in r.output, r.output
    assert org.status()["error_queue"] == []
    ann = _prospect(org)
    assert (ann["crm_status"], ann["crm_id"], ann["do_not_sync"]) == ("deleted", None, True)
    r = org.sync("run", "--until", "2026-11-20T09:30:00Z")
    assert r.exit_code == 0, r.output
    status = org.status()
    assert status["queue"] == 0 and status["errors"] == 0, status
    assert _prospect(org)["pending_crm"] == []


@pytest.mark.parametrize("how", ["deleted", "merged"])
def test_a_task_whose_lead_goes_between_plan_and_apply_follows_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    """Sales delete Ann's lead (to the recycle bin), or merge it into another, while the
    cycle runs: the task is refused (ENTITY_IS_DELETED) and held, `sync status` says so.
    The next cycle reads the deletion, and the work goes with it (Ann's CRM status is
    deleted, her queued task dropped, the error gone); or it reads the merge, and the task
    is made on the surviving lead. It is not held for ever."""
    org = Org(tmp_path, RULES)
    org.submit((T0, "ann@ex.org", "F"))
    assert org.sync("run", "--until", T0).exit_code == 0
    (lead,) = [str(r["Id"]) for r in org.crm_rows("Lead")]
    org.submit(("2026-11-02T09:05:00Z", "ann@ex.org", "F"))  # a second task
    survivor = _lead_goes(monkeypatch, how, lead, before=("create", "Task"))
    r = org.sync("run", "--until", "2026-11-02T09:10:00Z")
    assert r.exit_code == 0 and "errors   1" in r.output, r.output
    shown = org.ok("sync", "status", "--store", str(org.store))
    assert "ann@ex.org task *task: ENTITY_IS_DELETED" in shown, shown

    r = org.sync("run", "--until", "2026-11-02T09:30:00Z")  # the deletion or merge read
    assert r.exit_code == 0, r.output
    status = org.status()
    assert status["errors"] == 0 and status["queue"] == 0, status
    ann = _prospect(org)
    calls = [str(t["WhoId"]) for t in org.crm_rows("Task")]
    if how == "deleted":
        assert (ann["crm_status"], ann["do_not_sync"]) == ("deleted", True), ann
        assert calls == [lead]  # the first cycle's task only
    else:
        assert (ann["crm_status"], ann["crm_id"]) == ("lead", survivor[0]), ann
        assert calls == [lead, survivor[0]]  # the second task, on the surviving lead


@pytest.mark.parametrize("how", ["deleted", "merged"])
def test_an_update_whose_lead_goes_between_plan_and_apply_follows_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    """Ann's phone changes, and sales delete her lead, or merge it into another, while
    the cycle writes it: the update is refused (ENTITY_IS_DELETED). It was taken for the
    lead's deletion at once, merged or not: Ann ended deleted and marked do not sync,
    her link to the surviving lead lost, though the next cycle reads the merge. Now the
    write waits, and the next cycle reads what happened: the deletion (Ann deleted, as
    before), or the merge (Ann linked to the surviving lead, her phone written there)."""
    org = Org(tmp_path, RULES)
    org.submit((T0, "ann@ex.org", "F"))
    assert org.sync("run", "--until", T0).exit_code == 0
    (lead,) = [str(r["Id"]) for r in org.crm_rows("Lead")]
    org.update("2026-11-02T09:05:00Z", "ann@ex.org", {"phone": "+33 1 00 00 00 01"})
    survivor = _lead_goes(monkeypatch, how, lead, before=("update", "Lead"))
    r = org.sync("run", "--until", "2026-11-02T09:10:00Z")
    assert r.exit_code == 0, r.output
    assert survivor, "the cycle wrote no update"
    r = org.sync("run", "--until", "2026-11-02T09:30:00Z")  # the deletion or merge read
    assert r.exit_code == 0, r.output
    status = org.status()
    assert status["errors"] == 0 and status["queue"] == 0, status
    ann = _prospect(org)
    if how == "deleted":
        assert (ann["crm_status"], ann["do_not_sync"]) == ("deleted", True), ann
    else:
        assert (ann["crm_status"], ann["crm_id"], ann["do_not_sync"]) == (
            "lead",
            survivor[0],
            False,
        ), ann
        (kept,) = [r for r in org.crm_rows("Lead") if str(r["Id"]) == survivor[0]]
        assert kept["Phone"] == "+33 1 00 00 00 01", kept


@pytest.mark.parametrize("sobject", ["Task", "CampaignMember"])
@pytest.mark.parametrize("how", ["deleted", "merged"])
def test_a_write_for_a_lead_the_sync_does_not_read_is_its_deletion_not_held_forever(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str, sobject: str
) -> None:
    """With `objects contact` the sync creates Ann's lead on assignment but never reads
    leads: sales delete it (or merge it into another) while a cycle runs, and her task or
    membership is refused (ENTITY_IS_DELETED). It was held, and no cycle ever read the
    deletion or the merge: `sync status` showed the error a day later, and `sync retry`
    was refused again. Once a read by id finds the lead gone, that is its deletion at
    once (no cycle could follow a merge of a lead): no error, Ann deleted in the CRM, her
    work gone with her record."""
    org = Org(tmp_path, RULES.replace("objects lead, contact", "objects contact"))
    org.submit((T0, "ann@ex.org", "F"))
    assert org.sync("run", "--until", T0).exit_code == 0
    (lead,) = [str(r["Id"]) for r in org.crm_rows("Lead")]
    org.submit(("2026-11-02T09:05:00Z", "ann@ex.org", "F"))  # a second task and membership
    went = _lead_goes(monkeypatch, how, lead, before=("create", sobject))
    r = org.sync("run", "--until", "2026-11-03T09:00:00Z")
    assert r.exit_code == 0, r.output
    assert went, "the cycle wrote no " + sobject
    assert "errors   0" in r.output, r.output
    status = org.status()
    assert status["error_queue"] == [] and status["queue"] == 0, status
    ann = _prospect(org)
    assert (ann["crm_status"], ann["crm_id"], ann["do_not_sync"]) == ("deleted", None, True)
    assert ann["pending_crm"] == []
    assert [str(t["WhoId"]) for t in org.crm_rows("Task")] == [lead]  # the first cycle's
