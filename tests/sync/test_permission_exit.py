"""Exit 3 (partly done) for every write held for the integration user's permissions: a
record's write refused with INSUFFICIENT_ACCESS_OR_READONLY (a task, a campaign membership,
a lead's create or field update) is part of the cycle not done, as an object it may not
read or write is (README's exit codes, docs/exit-codes.md)."""

from __future__ import annotations

from pathlib import Path

import pytest

from .org import Org, Refusal
from .test_held_for_permission import PICKLIST, READONLY, RULES, T0

HELD = "held: 1 write refused for the integration user's permissions"


@pytest.mark.parametrize("command", ["run", "apply"])
@pytest.mark.parametrize(
    ("method", "sobject", "field"),
    [
        ("create", "Task", "*task-permission"),
        ("create", "CampaignMember", "*member-permission"),
        ("create", "Lead", "*record"),
        ("update", "Lead", "Phone"),
    ],
    ids=["task", "member", "lead-create", "lead-update"],
)
def test_a_write_held_for_permissions_exits_3(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    command: str,
    method: str,
    sobject: str,
    field: str,
) -> None:
    """Such a cycle exited 0, while one that could not read Campaign exited 3: a script
    could not tell that writes wait for an admin (and, unlike an object refused whole, are
    not tried again by each cycle, only after `sync retry` or a change). It exits 3 and
    says why; the cycles after it, which only keep it held, exit 0."""
    org = Org(tmp_path, RULES)
    org.submit((T0, "ann@ex.org", "F"))
    if method == "update":  # the lead first, then a change of its phone
        assert org.sync("run", "--until", T0).exit_code == 0
        org.update("2026-11-02T09:05:00Z", "ann@ex.org", {"phone": "+33 1 40 00 00 01"})
    Refusal(monkeypatch, method, sobject, READONLY)
    if command == "run":
        r = org.sync("run", "--until", "2026-11-02T09:10:00Z")
    else:
        r = org.sync("apply")
    assert r.exit_code == 3, r.output
    assert HELD in r.output, r.output
    assert [(e["field"], e["code"]) for e in org.status()["error_queue"]] == [  # type: ignore[attr-defined]
        (field, "INSUFFICIENT_ACCESS_OR_READONLY")
    ]
    r = org.sync("run", "--until", "2026-11-02T09:40:00Z")  # held, not tried: idle
    assert r.exit_code == 0, r.output
    assert "idle cycles" in r.output and HELD not in r.output, r.output


def test_a_write_held_for_a_data_reason_still_exits_0(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A refusal that is no permission (a restricted picklist) is an error of the cycle,
    held until the org is fixed: the command did its work, exit 0."""
    org = Org(tmp_path, RULES)
    org.submit((T0, "ann@ex.org", "F"))
    Refusal(monkeypatch, "create", "Task", PICKLIST)
    r = org.sync("run", "--until", T0)
    assert r.exit_code == 0, r.output
    assert "errors   1" in r.output and "held:" not in r.output, r.output
