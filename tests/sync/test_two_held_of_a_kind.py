"""Two tasks of one prospect held at once share the error queue's row (keyed by prospect
and field, `*task`): a write of one of them no longer clears the row while the other is
still held (docs/sync.md#errors)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mrules.crm.emulator import EmulatedCrm
from mrules.crm.errors import CrmError
from mrules.crm.port import WriteResult

from .org import Org

T0 = "2026-11-02T09:00:00Z"

RULES = """
user "alan@x.example"
form "F"
on submit of form "F" {
  assign to user "alan@x.example"
  create crm task "Call" (due in 2 days)
  create crm task "Email" (due in 3 days)
}
sync salesforce {
  objects lead, contact
  every 10 minutes batch 800
}
"""

VALIDATION = CrmError(
    "FIELD_CUSTOM_VALIDATION_EXCEPTION", "an email task needs a template", ("Subject",)
)
PICKLIST = CrmError("INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST", "bad value for Call")


def _refuse_by_subject(monkeypatch: pytest.MonkeyPatch, refused: dict[str, CrmError]) -> None:
    """The local CRM refuses each task whose subject `refused` names, with its error, as an
    org's validation rules refuse records one at a time; the others are created."""
    original = EmulatedCrm.create

    def create(crm: EmulatedCrm, name: str, records: Any, **kw: Any) -> Any:
        if name != "Task":
            return original(crm, name, records, **kw)
        return [
            WriteResult(None, False, (refused[rec["Subject"]],))
            if rec["Subject"] in refused
            else original(crm, name, [rec], **kw)[0]
            for rec in records
        ]

    monkeypatch.setattr(EmulatedCrm, "create", create)


def _held(org: Org) -> list[tuple[str, str]]:
    return [(e["field"], e["code"]) for e in org.status()["error_queue"]]  # type: ignore[attr-defined]


def test_a_task_written_does_not_clear_the_row_of_another_still_held(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ann's two tasks are refused (Call for a picklist, Email for a validation rule): one
    `*task` row, about the last refused (Email). Call's refusal lifted and `sync retry` run
    with a batch of 1, Call was written and cleared the row, though Email, waiting in the
    next batch, was still held: `sync status` said no error. The row stays now, and its
    retry mark too, so the next cycle tries Email; once fixed, it is written."""
    org = Org(tmp_path, RULES)
    org.submit((T0, "ann@ex.org", "F"))
    assert org.sync("run", "--until", T0).exit_code == 0  # the lead and its first two tasks
    org.submit(("2026-11-02T09:05:00Z", "ann@ex.org", "F"))
    refused = {"Call": PICKLIST, "Email": VALIDATION}
    _refuse_by_subject(monkeypatch, refused)
    r = org.sync("run", "--until", "2026-11-02T09:10:00Z")
    assert "errors   2" in r.output, r.output
    assert _held(org) == [("*task", "FIELD_CUSTOM_VALIDATION_EXCEPTION")]

    del refused["Call"]  # the picklist fixed; the validation rule not yet
    org.rules.write_text(RULES.replace("batch 800", "batch 1"), "utf-8")
    org.ok("sync", "retry", "--store", str(org.store))
    r = org.sync("run", "--until", "2026-11-02T09:20:00Z")
    assert "tasks    1" in r.output and "waiting     1" in r.output, r.output  # Call written
    assert _held(org) == [("*task", "FIELD_CUSTOM_VALIDATION_EXCEPTION")]  # Email still held
    shown = org.ok("sync", "status", "--store", str(org.store))
    assert "*task: FIELD_CUSTOM_VALIDATION_EXCEPTION an email task needs a template" in shown

    # The next cycle tries Email (the retry asked for it), refused again: still held.
    r = org.sync("run", "--until", "2026-11-02T09:30:00Z")
    assert "errors   1" in r.output, r.output
    assert _held(org) == [("*task", "FIELD_CUSTOM_VALIDATION_EXCEPTION")]

    refused.clear()  # the validation rule fixed
    org.ok("sync", "retry", "--store", str(org.store))
    assert org.sync("run", "--until", "2026-11-02T09:40:00Z").exit_code == 0
    subjects = sorted(str(t["Subject"]) for t in org.crm_rows("Task"))
    assert subjects == ["Call", "Call", "Email", "Email"]
    status = org.status()
    assert status["errors"] == 0 and status["queue"] == 0, status


def test_two_tasks_refused_in_one_cycle_count_one_attempt(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ann's two tasks refused in one cycle share the `*task` row; each refusal counted an
    attempt, so `sync status` said 2 attempts after a single try (and 4 after a retry).
    A cycle counts one attempt a row."""
    org = Org(tmp_path, RULES)
    org.submit((T0, "ann@ex.org", "F"))
    _refuse_by_subject(monkeypatch, {"Call": PICKLIST, "Email": VALIDATION})
    r = org.sync("run", "--until", T0)
    assert "errors   2" in r.output, r.output  # the cycle's two refusals
    ((attempts, code),) = [(e["attempts"], e["code"]) for e in org.status()["error_queue"]]  # type: ignore[attr-defined]
    assert (attempts, code) == (1, "FIELD_CUSTOM_VALIDATION_EXCEPTION")
    org.ok("sync", "retry", "--store", str(org.store))
    org.sync("run", "--until", "2026-11-02T09:10:00Z")
    assert [e["attempts"] for e in org.status()["error_queue"]] == [2]  # type: ignore[attr-defined]
