"""`mrules replay --diff` compares an assignment's time as well as its assignee, and
carries `crm_id` over from the history without reporting it (docs/replay.md)."""

from __future__ import annotations

from pathlib import Path

import orjson
from click.testing import CliRunner, Result

from mrules.cli import main

RULES = """\
queue "Sales"
form "Contact"
list "MQL"

on submit of form "Contact" {
  score +20
}

automation rule "Hand off" priority 10 {
  when all { score >= THRESHOLD }
  then { assign to queue "Sales" }
}
"""

EVENTS = [
    {"ts": "2026-11-02T09:00:00Z", "type": "form_submit", "prospect": "a@x.example",
     "asset": "Contact", "id": "e1"},
    {"ts": "2026-11-02T10:00:00Z", "type": "crm_update", "prospect": "a@x.example",
     "object": "lead", "crm_id": "00Q000000000001AAA", "id": "e2"},
    {"ts": "2026-11-03T09:00:00Z", "type": "form_submit", "prospect": "a@x.example",
     "asset": "Contact", "id": "e3"},
]  # fmt: skip


def _mrules(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def _replay_args(tmp: Path, old: str, new: str, events: list[dict]) -> list[str]:
    """`old/rules.mr`, `new/rules.mr` and `events.jsonl` written in `tmp`: the arguments of
    `mrules replay --diff` on them."""
    for side, text in (("old", old), ("new", new)):
        (tmp / side).mkdir()
        (tmp / side / "rules.mr").write_text(text)
    path = tmp / "events.jsonl"
    path.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in events))
    return ["replay", "--diff", str(tmp / "old"), str(tmp / "new"), str(path)]


def _setup(tmp: Path, old: int, new: int) -> list[str]:
    old_rules, new_rules = (RULES.replace("THRESHOLD", str(t)) for t in (old, new))
    return [*_replay_args(tmp, old_rules, new_rules, EVENTS), "--jobs", "1"]


def _the_one_assignment_change(res: Result) -> dict:
    """The JSON replay `res` changed one prospect, a@x.example, in its assignment: the
    example of that change."""
    assert res.exit_code == 0, res.output
    d = orjson.loads(res.stdout)
    assert d["assignment"]["prospects"] == ["a@x.example"]
    assert d["prospects"]["changed"] == 1
    [item] = d["assignment"]["examples"]
    return item


def test_the_same_assignee_at_another_time_is_a_change(tmp_path: Path) -> None:
    args = _setup(tmp_path, old=40, new=20)  # the new rules hand off a day earlier
    item = _the_one_assignment_change(_mrules(*args, "--format", "json"))
    assert (item["old"], item["new"]) == ("queue Sales", "queue Sales")
    assert item["at"] == ["2026-11-03T09:00:00Z", "2026-11-02T09:00:00Z"]
    text = _mrules(*args).output
    assert "Assignment: 1 prospect changes" in text
    assert "  ~ a@x.example: queue Sales, at 2026-11-03T09:00:00Z -> 2026-11-02T09:00:00Z" in text


def test_a_prospect_whose_assignment_alone_changes_is_counted_as_changed(tmp_path: Path) -> None:
    """Without the CRM's record, the queue's lead to create is the same under both rule
    sets: only the assignment's time differs, and the prospect is one changed."""
    old_rules, new_rules = (RULES.replace("THRESHOLD", str(t)) for t in (40, 20))
    events = [e for e in EVENTS if e["type"] != "crm_update"]
    args = [*_replay_args(tmp_path, old_rules, new_rules, events), "--jobs", "1"]
    d = orjson.loads(_mrules(*args, "--format", "json").stdout)
    others = ("grade", "lists", "data", "crm", "only_old", "only_new")
    assert [d[k]["count"] for k in others] == [0] * len(others)  # the data is what we think
    assert d["score"]["changed"] == d["mql"]["gained"]["count"] == 0
    _the_one_assignment_change(_mrules(*args, "--format", "json"))
    assert "\nProspects: 1 before, 1 after; 1 changed\n" in _mrules(*args).output


def test_crm_id_is_carried_over_and_not_reported(tmp_path: Path) -> None:
    args = _setup(tmp_path, old=20, new=20)
    res = _mrules(*args, "--format", "json", "--store-dir", str(tmp_path / "stores"))
    assert res.exit_code == 0, res.output
    d = orjson.loads(res.stdout)
    assert d["prospects"]["changed"] == 0
    assert b'"crm_id"' not in res.stdout_bytes and b'"what": "crm_id' not in res.stdout_bytes
    for side in ("old", "new"):
        export = _mrules("state", "export", "--store", str(tmp_path / "stores" / f"{side}.db"))
        assert orjson.loads(export.stdout)["crm_id"] == "00Q000000000001AAA"


CRM_RULE = """\
queue "Sales"
form "Contact"
list "MQL"

on submit of form "Contact" {
  ASSIGN
}
"""

OWNER_EVENTS = [
    {"ts": "2026-11-02T09:00:00Z", "type": "form_submit", "prospect": "a@x.example",
     "asset": "Contact", "id": "e1"},
    # The CRM gives the record an owner (the sync's fact, timed by the CRM's edit).
    {"ts": "2026-11-04T10:00:00Z", "type": "crm_update", "prospect": "a@x.example",
     "object": "lead", "crm_id": "00Q000000000001AAA", "user": "rep@x.example",
     "owner_since": "2026-11-03T15:00:00Z", "id": "e2"},
]  # fmt: skip


def test_a_reassignment_at_another_time_is_a_change(tmp_path: Path) -> None:
    # Old rules: assigned by a CRM assignment rule, whose first owner is that rule's
    # assignee (no reassignment); new rules: assigned to a queue, then the CRM owner is a
    # reassignment. Same assignee, same first assignment: only `reassigned_at` differs.
    old, new = (
        CRM_RULE.replace("ASSIGN", how) for how in ("assign by crm rule", 'assign to queue "Sales"')
    )
    args = _replay_args(tmp_path, old, new, OWNER_EVENTS)
    for more in (["--jobs", "1"], ["--jobs", "2", "--store-dir", str(tmp_path / "stores")]):
        item = _the_one_assignment_change(_mrules(*args, *more, "--format", "json"))
        assert (item["old"], item["new"]) == ("user rep@x.example", "user rep@x.example")
        assert item["at"] == ["2026-11-02T09:00:00Z", "2026-11-02T09:00:00Z"]
        assert item["reassigned_at"] == [None, "2026-11-03T15:00:00Z"]
    text = _mrules(*args, "--jobs", "1").output
    assert "Assignment: 1 prospect changes" in text
    assert "  ~ a@x.example: user rep@x.example, reassigned at - -> 2026-11-03T15:00:00Z" in text


def test_the_text_names_each_time_that_differs(tmp_path: Path) -> None:
    from mrules.replay import _assignment_line

    item = {"old": "user u", "new": "user u", "at": ["T1", "T2"], "reassigned_at": ["T3", None]}
    assert _assignment_line(item) == "user u, at T1 -> T2, reassigned at T3 -> -"
    assert _assignment_line(item | {"new": "queue Q"}) == "user u -> queue Q"
