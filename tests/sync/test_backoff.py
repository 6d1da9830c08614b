"""A write the CRM refuses for now, cycle after cycle, backs off: tried again after 1, 5,
15, then every 60 minutes (docs/sync.md#errors), run as a user would."""

from __future__ import annotations

from pathlib import Path

import pytest

from mrules.crm.errors import CrmError

from .org import Org, Refusal
from .test_held_for_permission import RULES, T0

ASSIGN = """
form "G"
on submit of form "G" { assign to user "alan@x.example" }
"""
"""A form whose prospects' work is a lead only."""

LOCKED = CrmError("UNABLE_TO_LOCK_ROW", "unable to obtain exclusive access to this record")


def test_a_task_refused_for_now_backs_off_1_5_15_then_60_minutes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ann's task is refused for now at every try (its record locked): with a cycle every
    10 minutes, the waits of 1 and 5 minutes are over by the next cycle, the wait of 15
    minutes skips one, and then it is tried once an hour; the work is kept all along.
    Zoe's lead, queued before, is all done in the first cycle: her queue row goes, and
    Ann's after it is kept all the same."""
    org = Org(tmp_path, RULES + ASSIGN)
    org.submit((T0, "zoe@ex.org", "G"), (T0, "ann@ex.org", "F"))
    refusal = Refusal(monkeypatch, "create", "Task", LOCKED)
    tried = []
    for minutes in range(0, 130, 10):
        at = f"2026-11-02T{9 + minutes // 60:02d}:{minutes % 60:02d}:00Z"
        before = len(refusal.calls)
        r = org.sync("run", "--until", at)
        assert r.exit_code == 0, r.output
        if len(refusal.calls) > before:
            tried.append(at[11:16])
            assert r.output.rstrip().endswith("waiting     1"), r.output  # was: 0, at 09:00
    assert tried == ["09:00", "09:10", "09:20", "09:40", "10:40"]
    status = org.status()
    assert (status["queue"], status["errors"]) == (1, 0), status
    refusal.lift()
    assert org.sync("run", "--until", "2026-11-02T11:40:00Z").exit_code == 0
    assert len(org.crm_rows("Task")) == 1
    assert sorted(str(r["Email"]) for r in org.crm_rows("Lead")) == ["ann@ex.org", "zoe@ex.org"]
    assert org.status()["queue"] == 0
