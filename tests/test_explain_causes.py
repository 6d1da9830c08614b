"""`mrules explain`: each answer checked against a small history whose truth is known."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from click.testing import CliRunner, Result

import mrules
from mrules.cli import main

GRADING_RULES = """\
default grading profile "Default" {
  criterion "Size" 2/3
}
grading profile "Other" {
  criterion "Size" 3/3
}
form "F"
form "G"
form "H"
automation rule "Fit" priority 1 {
  when all { submitted form "F" }
  then { mark "Size" of profile "Default" as matches }
}
automation rule "Other fit" priority 2 {
  when all { submitted form "H" }
  then { mark "Size" of profile "Other" as matches }
}
automation rule "Move" priority 3 {
  when all { submitted form "G" }
  then { change profile to "Other" }
}
"""


def invoke(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


def submit(line: int, email: str, form: str, minute: int) -> str:
    return json.dumps(
        {
            "ts": f"2026-01-01T00:{minute:02d}:00Z",
            "id": f"e{line}",
            "type": "form_submit",
            "prospect": email,
            "asset": form,
        }
    )


def run(tmp_path: Path, rules: str, lines: list[str]) -> Path:
    (tmp_path / "rules.mr").write_text(rules)
    events, store = tmp_path / "events.jsonl", tmp_path / "s.db"
    events.write_text("".join(line + "\n" for line in lines))
    res = invoke("run", str(tmp_path / "rules.mr"), str(events), "--store", str(store), "-q")
    assert res.exit_code == 0, res.output
    return store


def explain_json(email: str, store: Path, *extra: str) -> dict[str, Any]:
    res = invoke("explain", email, "--store", str(store), "--format", "json", *extra)
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)


def test_the_grade_is_explained_by_the_step_that_changed_it(tmp_path: Path) -> None:
    """A rule that marks a criterion of a profile the prospect is not on leaves its grade
    as it was, yet `explain` said the grade was "last changed by" that rule (a step whose
    grade before and after are the same), not by the rule that set it."""
    store = run(
        tmp_path, GRADING_RULES, [submit(1, "ann@x.com", "F", 1), submit(2, "ann@x.com", "H", 2)]
    )
    ex = explain_json("ann@x.com", store)
    assert ex["prospect"]["grade"] == "C-"
    g = ex["grading"]
    assert (g["rule"]["name"], g["event"]["line"], g["before"], g["after"]) == (
        "Fit",
        1,
        None,
        "C-",
    )
    text = invoke("explain", "ann@x.com", "--store", str(store)).stdout
    assert "Grade C-: last changed by automation rule 'Fit' (" in text


def test_a_profile_change_that_leaves_the_grade_is_no_grade_change(tmp_path: Path) -> None:
    """An ungraded prospect moved to another profile stays ungraded: `explain` said its
    grade `-` was "last changed by" the profile change."""
    store = run(tmp_path, GRADING_RULES, [submit(1, "bo@x.com", "G", 1)])
    ex = explain_json("bo@x.com", store)
    assert (ex["prospect"]["grade"], ex["prospect"]["profile"]) == (None, "Other")
    assert ex["grading"] is None
    text = invoke("explain", "bo@x.com", "--store", str(store)).stdout
    assert "Grade" not in text.split("\n", 1)[1]


def test_the_timeline_never_shows_a_profile_name_as_the_grade(tmp_path: Path) -> None:
    """`explain --timeline` read a `change profile` step's value, a profile name, as the
    grade: an ungraded prospect moved to profile "Other" had grade `Other` from then on."""
    lines = [
        submit(1, "bo@x.com", "Nothing", 1),
        submit(2, "bo@x.com", "G", 2),
    ]
    store = run(tmp_path, GRADING_RULES + 'form "Nothing"\n', lines)
    t = explain_json("bo@x.com", store, "--timeline")
    assert t["grade"] == []
    text = invoke("explain", "bo@x.com", "--store", str(store), "--timeline").stdout
    assert "Other" not in text
    assert text.splitlines()[2:] == [
        "  2026-01-01T00:01:00Z  prospect      0  -",
        "  not reached: mql, sql, won",
    ]


def test_a_segmentation_is_explained_as_mrules_segment(tmp_path: Path) -> None:
    """What `mrules segment` did was explained as done "at the start of a run
    (retroactive) or by a tick", by the segmentation rule and the automation rule that
    read its list alike."""
    rules = """\
form "F"
tag "T"
list "L"
list "Read"
segmentation rule "Seg" {
  when all { submitted form "F" }
  then { add tag "T" add to list "L" }
}
automation rule "Reader" priority 1 {
  when all { in list "L" }
  then { add to list "Read" }
}
"""
    store = run(tmp_path, rules, [submit(1, "ann@x.com", "F", 1)])
    res = invoke("segment", str(tmp_path / "rules.mr"), "--store", str(store))
    assert res.exit_code == 0, res.output
    text = invoke("explain", "ann@x.com", "--store", str(store)).stdout
    assert "retroactive" not in text
    seg = "segmentation rule 'Seg' (" + str(tmp_path / "rules.mr")
    assert f"  L: {seg}:5), by `mrules segment`, 2026-01-01T00:01:00Z" in text
    assert f"  T: {seg}:5), by `mrules segment`, 2026-01-01T00:01:00Z" in text
    assert "  Read: automation rule 'Reader' (" in text
    assert text.count("by `mrules segment`") == 4  # two lists, a tag, a match of Reader


def test_an_assignment_by_crm_rule_is_named_once(tmp_path: Path) -> None:
    """`assign by crm rule` was explained as `crm rule crm rule: ...`."""
    rules = 'form "F"\non submit of form "F" { assign by crm rule }\n'
    store = run(tmp_path, rules, [submit(1, "ann@x.com", "F", 1)])
    text = invoke("explain", "ann@x.com", "--store", str(store)).stdout
    assignment = text.split("\nAssignment:\n", 1)[1].splitlines()[0]
    assert assignment.startswith("  crm rule: completion action 'submit of form F' ("), text


def test_control_characters_of_an_event_are_shown_escaped(tmp_path: Path) -> None:
    """An event id is any JSON string: one with a newline and an escape sequence was
    printed raw, breaking the explanation's line and colouring the terminal red."""
    line = json.loads(submit(1, "ann@x.com", "F", 1))
    line["id"] = "a\nb\x1b[31mred"
    store = run(tmp_path, 'form "F"\non submit of form "F" { score +5 }\n', [json.dumps(line)])
    text = invoke("explain", "ann@x.com", "--store", str(store)).stdout
    assert "\x1b" not in text
    [score] = [x for x in text.splitlines() if x.startswith("     +5")]
    assert score.endswith(", event line 1 id a\\x0ab\\x1b[31mred, 2026-01-01T00:01:00Z")
    assert text.count("\n\n") == 5  # the blank line before each section


def test_replay_explains_a_grade_by_the_step_that_changed_it(tmp_path: Path) -> None:
    """`replay --diff` gave a grade change the reason of the last grading step, even one
    that left the grade as it was (a criterion of a profile the prospect is not on),
    not the rule that set the grade."""
    old, new = tmp_path / "old", tmp_path / "new"
    MQL = 'list "MQL"\n'  # the list replay reads MQLs from
    old.mkdir()
    new.mkdir()
    (new / "rules.mr").write_text(GRADING_RULES + MQL)
    before = GRADING_RULES.replace('when all { submitted form "F" }', 'when all { tagged "z" }')
    assert before != GRADING_RULES
    (old / "rules.mr").write_text(before + MQL)
    events = tmp_path / "events.jsonl"
    events.write_text(submit(1, "ann@x.com", "F", 1) + "\n" + submit(2, "ann@x.com", "H", 2) + "\n")
    res = invoke("replay", "--diff", str(old), str(new), str(events), "--format", "json")
    assert res.exit_code == 0, res.output
    grades = json.loads(res.stdout)["grade"]["examples"]
    assert [(g["prospect"], g["new"]) for g in grades] == [("ann@x.com", "C-")]
    assert grades[0]["reason"].startswith("new rules: automation rule 'Fit'"), grades[0]


def test_an_email_with_control_characters_is_a_one_line_error(tmp_path: Path) -> None:
    """An EMAIL no prospect has, with a newline and a bell in it (a paste gone wrong),
    broke `explain`'s error in two lines and rang the terminal."""
    store = run(tmp_path, GRADING_RULES, [submit(1, "ann@x.com", "F", 1)])
    res = invoke("explain", "a\x07b\n@x.com", "--store", str(store))
    assert res.exit_code == 2
    assert res.output == f"mrules: error: no prospect 'a\\x07b\\x0a@x.com' in {store}\n"


def attached_views(ex: dict[str, Any]) -> list[tuple[int, str]]:
    """The (line, URL) of the view each history step of `explain --format json` names."""
    steps = [r for r in ex["score"] if "attached_from" in r["args"]]
    return [(r["attached_view"]["line"], r["attached_view"]["url"]) for r in steps]


def view(line: int, visitor: str, url: str, minute: int, email: str | None = None) -> str:
    event = {"ts": f"2026-01-01T00:{minute:02d}:00Z", "id": f"e{line}", "type": "page_view"}
    event |= {"visitor": visitor, "url": url}
    return json.dumps(event | ({"prospect": email} if email else {}))


def test_each_anonymous_view_a_visitor_brings_is_named(tmp_path: Path) -> None:
    """A visitor's page views made while anonymous score when it becomes a prospect, one
    step each, all caused by the event that made it known: `explain` printed them as the
    same line twice. Each now names its own view (event line, id, time), oldest first;
    a view the visitor makes once known is its own event, and no history step's."""
    rules = 'include "library/pardot-default-scoring"\nform "F"\n'
    submit_known = json.loads(submit(3, "ann@x.com", "F", 5)) | {"visitor": "v1"}
    lines = [
        view(1, "v1", "https://x.com/a", 1),
        view(2, "v1", "https://x.com/b", 2),
        json.dumps(submit_known),
        view(4, "v1", "https://x.com/c", 6, "ann@x.com"),
        view(5, "v2", "https://x.com/d", 7),  # another visitor, never known
        view(6, "v3", "https://x.com/e", 8, "ann@x.com"),  # ann's other visitor, no history
    ]
    store = run(tmp_path, rules, lines)
    ex = explain_json("ann@x.com", store)
    assert attached_views(ex) == [
        (1, "https://x.com/a"),
        (2, "https://x.com/b"),
    ]
    attached = [r for r in ex["score"] if "attached_from" in r["args"]]
    assert all(r["event"]["line"] == 3 for r in attached)  # caused by the form submission
    own = [r for r in ex["score"] if r["event"]["line"] == 4]
    assert own and all("attached_view" not in r for r in own)
    text = invoke("explain", "ann@x.com", "--store", str(store)).stdout
    assert "(history of visitor v1: view of event line 1 id e1, 2026-01-01T00:01:00Z)" in text
    assert "(history of visitor v1: view of event line 2 id e2, 2026-01-01T00:02:00Z)" in text


def test_a_visitors_views_are_named_in_the_order_they_came_whatever_their_times(
    tmp_path: Path,
) -> None:
    """The views a visitor brings are scored in the order they arrived, and they arrived
    before any view it made once known. `explain` paired them with the visitor's views
    sorted by time: in a stream whose times go back, a view made after the tie but dated
    first was named in place of an anonymous one, which was named nowhere."""
    rules = 'include "library/pardot-default-scoring"\nform "F"\n'
    lines = [
        view(1, "v1", "https://x.com/a", 5),
        view(2, "v1", "https://x.com/b", 3),  # dated before line 1
        json.dumps(json.loads(submit(3, "ann@x.com", "F", 6)) | {"visitor": "v1"}),
        view(4, "v1", "https://x.com/c", 1, "ann@x.com"),  # known now, dated first of all
    ]
    store = run(tmp_path, rules, lines)
    ex = explain_json("ann@x.com", store)
    assert attached_views(ex) == [
        (1, "https://x.com/a"),
        (2, "https://x.com/b"),
    ]
    text = invoke("explain", "ann@x.com", "--store", str(store)).stdout
    assert "view of event line 4" not in text
    with mrules.run(tmp_path / "rules.mr", tmp_path / "events.jsonl") as in_memory:
        assert in_memory.explain("ann@x.com")["score"] == ex["score"]


def test_the_score_total_adds_the_steps_after_the_last_set_score(tmp_path: Path) -> None:
    """`score_total` is the score the steps explain: an absolute `set score to` replaces
    everything before it, and the steps after it add to it."""
    rules = """\
form "F"
form "G"
on submit of form "F" { score +10 }
automation rule "Reset" priority 1 {
  when all { submitted form "G" }
  then { set score to 3 }
}
"""
    lines = [submit(1, "ann@x.com", "F", 1), submit(2, "ann@x.com", "G", 2)]
    store = run(tmp_path, rules, [*lines, submit(3, "ann@x.com", "F", 30)])
    ex = explain_json("ann@x.com", store)
    assert [r["action"] for r in ex["score"]] == ["set score", "score"]
    assert ex["score_total"] == ex["prospect"]["score"] == 13


def test_do_not_sync_is_explained_while_it_holds(tmp_path: Path) -> None:
    """The CRM section names the step that marked the prospect `do not sync` while the
    mark holds, and none once `allow crm recreate` lifted it."""
    rules = """\
form "Stop"
form "Go"
automation rule "Stop" priority 1 {
  when all { submitted form "Stop" }
  then { do not sync }
}
automation rule "Go" priority 2 {
  when all { submitted form "Go" }
  then { allow crm recreate }
}
"""
    lines = [submit(1, "ann@x.com", "Stop", 1), submit(2, "bo@x.com", "Stop", 2)]
    store = run(tmp_path, rules, [*lines, submit(3, "bo@x.com", "Go", 3)])
    ann = explain_json("ann@x.com", store)["crm"]["do_not_sync"]
    assert (ann["action"], ann["rule"]["name"], ann["after"]) == ("do not sync", "Stop", True)
    assert explain_json("bo@x.com", store)["crm"]["do_not_sync"] is None
    text = invoke("explain", "ann@x.com", "--store", str(store)).stdout
    assert "do not sync (the sync writes nothing for it" in text
