"""`assigned_at` is the first assignment (the MQL time, which the funnel reads); a later
change of assignee is `reassigned_at`, shown only once there was one."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.sync.world import T0, World, ev

HENRY = {"Id": "l-hen", "LastName": "Blanc", "Company": "Ex", "Email": "henry@x.com",
         "OwnerId": "alan"}  # fmt: skip


def _funnel(w: World) -> Any:
    r = w.ok("report", "funnel", "--store", str(w.store), "--format", "json")
    return json.loads(r.output)


def _changes(w: World, *rows: dict[str, Any]) -> str:
    path = w.tmp / "changes.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), "utf-8")
    return str(path)


def test_an_owner_changed_in_the_crm_is_a_reassignment_not_a_new_mql(tmp_path: Path) -> None:
    w = World(tmp_path)
    w.seed({"Lead": [HENRY]})
    w.run(ev(T0, "henry@x.com", asset="Demo"), ev(T0, "bob@x.com", asset="Demo"))
    w.sync("apply")  # Henry linked to his lead (owned by alan, as assigned); Bob's created
    before = w.prospects()
    funnel = _funnel(w)
    for email in ("henry@x.com", "bob@x.com"):
        assert before[email]["assigned"] == {"kind": "user", "name": "alan@x.com", "at": T0}
    w.sync(
        "run",
        "--until",
        "2026-11-02T09:20:00Z",
        "--changes",
        _changes(
            w,
            {
                "at": "2026-11-02T09:05:00Z",
                "op": "owner",
                "email": "henry@x.com",
                "owner": "sam@x.com",
            },
        ),
    )
    after = w.prospects()
    # The CRM's change was made at 09:05 and read by the cycle of 09:10: its time is the
    # edit's, as a field's change time is; the first assignment (the MQL) does not move.
    assert after["henry@x.com"]["assigned"] == {
        "kind": "user",
        "name": "sam@x.com",
        "at": T0,
        "reassigned_at": "2026-11-02T09:05:00Z",
    }
    # Never reassigned: no `reassigned_at` at all (the export is as it was).
    assert after["bob@x.com"]["assigned"] == before["bob@x.com"]["assigned"]
    assert _funnel(w) == funnel
    text = w.ok("explain", "henry@x.com", "--store", str(w.store)).output
    assert f"  first assigned {T0}, reassigned 2026-11-02T09:05:00Z" in text
    assert "reassigned" not in w.ok("explain", "bob@x.com", "--store", str(w.store)).output
    data = json.loads(
        w.ok("explain", "henry@x.com", "--store", str(w.store), "--format", "json").output
    )
    assert data["prospect"]["assigned"]["reassigned_at"] == "2026-11-02T09:05:00Z"


def test_a_rule_never_reassigns_so_neither_time_moves(tmp_path: Path) -> None:
    """`assign to` on an assigned prospect is kept (Pardot's "never reassigns"): the
    first assignment's time stays, and there is no `reassigned_at`."""
    w = World(tmp_path)
    w.rules.write_text(
        w.rules.read_text("utf-8").replace(
            'form "Quiet"\n',
            'form "Quiet"\nform "Other"\n'
            'on submit of form "Other" { assign to user "sam@x.com" }\n',
        ),
        "utf-8",
    )
    w.run(ev(T0, "ann@x.com", asset="Demo"), ev(T0, "cleo@x.com", asset="Demo"))
    funnel = _funnel(w)
    w.run(ev("2026-11-03T09:00:00Z", "ann@x.com", asset="Other"))
    ann = w.prospects()["ann@x.com"]
    assert ann["assigned"] == {"kind": "user", "name": "alan@x.com", "at": T0}
    assert _funnel(w) == funnel
