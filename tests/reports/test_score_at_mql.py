"""`mrules report scores`: the score at MQL of prospects whose score was set, not added
to, was never scored at all, or was scored for an asset whose long name is kept with
the step; of a date range; of two assignments in one second; and with late events
(docs/reports.md, scores). Cases found by mutation testing of reports/_history.py:
each passed the suite with the score at MQL read wrong."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from conftest import mrules

LONG = "Webinar " + "x" * 200  # a form whose name makes a score step's arguments long

RULES = {
    # assigned at its submit, never scored: the score at MQL is 0
    "never scored": 'user "rep@acme.example"\nform "F"\n'
    'on submit of form "F" { assign to user "rep@acme.example" }\n',
    # the score only ever set: the score at MQL is the one set
    "score set": 'user "rep@acme.example"\nform "F"\n'
    'automation rule "Set" priority 1 {\n  when all { submitted form "F" }\n'
    "  then { set score to 40 }\n}\n"
    'automation rule "MQL" priority 2 {\n  when all { score >= 40 }\n'
    '  then { assign to user "rep@acme.example" }\n}\n',
    # scored for a form of a long name: the step keeps its arguments with it
    "long asset name": f'user "rep@acme.example"\nform "{LONG}"\n'
    f"scoring {{\n  form submission +55\n}}\n"
    'automation rule "MQL" priority 1 {\n  when all { score >= 50 }\n'
    '  then { assign to user "rep@acme.example" }\n}\n',
}
ASSET = {"never scored": "F", "score set": "F", "long asset name": LONG}
EXPECTED = {"never scored": 0, "score set": 40, "long asset name": 55}


def _report(tmp_path: Path, rules: str, events: list[dict[str, Any]]) -> tuple[Path, Any]:
    """Run `rules` on `events` into a store, and read `mrules report scores` of it (JSON)."""
    (tmp_path / "rules.mr").write_text(rules, "utf-8")
    path = tmp_path / "events.jsonl"
    path.write_text("".join(json.dumps(e) + "\n" for e in events), "utf-8")
    store = tmp_path / "s.db"
    r = mrules("run", tmp_path / "rules.mr", path, "--store", store)
    assert r.exit_code == 0, r.output
    r = mrules("report", "scores", "--store", store, "--format", "json")
    assert r.exit_code == 0, r.output
    return store, json.loads(r.stdout)


def _scores(tmp_path: Path, case: str) -> dict[str, Any]:
    event = _form("e1", "2026-10-01T00:00:00Z", ASSET[case])
    return _report(tmp_path, RULES[case], [event])[1]["score_at_mql"]  # type: ignore[no-any-return]


@pytest.mark.parametrize("case", RULES)
def test_the_score_at_mql(tmp_path: Path, case: str) -> None:
    got = _scores(tmp_path, case)
    assert (got["n"], got["median"], got["mean"]) == (1, EXPECTED[case], EXPECTED[case])


def test_the_score_at_mql_of_a_range_reads_past_the_mqls_before_it(store: str) -> None:
    """The reports fixture from Nov 1: its MQLs are p12 (55), p14 (50) and p18 (65)
    (tests/reports/test_fixture.py); the MQLs of October, older prospects read first,
    are passed over, not the end of the reading (found by mutation testing: stopping
    there gave every MQL of the range a score of 0)."""
    r = mrules("report", "scores", "--store", store, "--since", "2026-11-01", "--format", "json")
    assert r.exit_code == 0, r.output
    got = json.loads(r.stdout)["score_at_mql"]
    assert (got["n"], got["median"], got["mean"]) == (3, 55, round((55 + 50 + 65) / 3, 4))


SAME_SECOND = """\
user "rep@acme.example"
user "owner@acme.example"
queue "Sales"
form "F"
on submit of form "F" { score +50 }
page action "Pricing" on "acme.example/pricing" { score +25 }
automation rule "MQL" priority 1 {
  when all { score >= 50 }
  then { assign to queue "Sales" }
}
"""


def _form(event_id: str, ts: str, form: str) -> dict[str, str]:
    """p1's submission of `form`."""
    return {"id": event_id, "ts": ts, "type": "form_submit", "prospect": "p1@x.example",
            "asset": form}  # fmt: skip


def _pricing(event_id: str, ts: str) -> dict[str, str]:
    """p1's view of the pricing page (the page action scores +25)."""
    return {"id": event_id, "ts": ts, "type": "page_view", "prospect": "p1@x.example",
            "url": "https://acme.example/pricing"}  # fmt: skip


def test_the_score_at_mql_is_the_first_assignments_in_its_second(tmp_path: Path) -> None:
    """In one second: the form (score 50) assigns p1 to the queue, a page view adds 25,
    and the CRM gives the lead an owner, a second assignment. The score at MQL is the
    one after the first assignment, 50, not 75 (found by mutation testing: starting
    from the newest assignment of that second passed)."""
    rules = SAME_SECOND
    ts, who = "2026-10-01T00:00:00Z", "p1@x.example"
    events = [
        _form("e1", ts, "F"),
        _pricing("e2", ts),
        {"id": "e3", "ts": ts, "type": "crm_update", "prospect": who, "object": "lead",
         "crm_id": "00Q000000000001AAA", "user": "owner@acme.example"},
    ]  # fmt: skip
    store, body = _report(tmp_path, rules, events)
    r = mrules("explain", who, "--store", store)
    assert r.exit_code == 0 and "owner@acme.example" in r.stdout, r.output  # owned by the CRM
    got = body["score_at_mql"]
    assert (got["n"], got["median"]) == (1, 50)


def test_a_late_event_at_the_mql_time_comes_after_the_assignment(tmp_path: Path) -> None:
    """The form at 10:00 scores 50 and assigns p1; then a page view of 09:00 arrives late
    (+25): the engine applies it at its clock, 10:00, the MQL time, after the
    assignment. The score at MQL is 50 (found by mutation testing: a late event's row,
    which keeps its clock apart from its time, was read at the wrong places and passed)."""
    rules = SAME_SECOND
    events = [
        _form("e1", "2026-10-01T10:00:00Z", "F"),
        _pricing("e2", "2026-10-01T09:00:00Z"),
    ]
    body = _report(tmp_path, rules, events)[1]
    assert body["score_histogram"] and body["prospects"] == 1
    got = body["score_at_mql"]
    assert (got["n"], got["median"]) == (1, 50)


def test_a_late_events_score_before_the_mql_counts(tmp_path: Path) -> None:
    """The form at 10:00 scores 20; a page view of 09:00 arrives late (+25: 45, at the
    clock's 10:00); at 11:00 form A assigns p1 without scoring. The score at MQL is 45,
    the late row's (found by mutation testing: that row's steps read from the wrong
    place gave 20 and passed)."""
    rules = (
        'queue "Sales"\nform "F"\nform "A"\non submit of form "F" { score +20 }\n'
        'on submit of form "A" { assign to queue "Sales" }\n'
        'page action "Pricing" on "acme.example/pricing" { score +25 }\n'
    )
    events = [
        _form("e1", "2026-10-01T10:00:00Z", "F"),
        _pricing("e2", "2026-10-01T09:00:00Z"),
        _form("e3", "2026-10-01T11:00:00Z", "A"),
    ]
    got = _report(tmp_path, rules, events)[1]["score_at_mql"]
    assert (got["n"], got["median"]) == (1, 45)


def test_a_late_event_after_the_mql_is_passed_over(tmp_path: Path) -> None:
    """The form at 10:00 scores 50 and assigns p1 (the MQL); form A at 11:00; then a page
    view of 09:00 arrives late: its time is before the MQL, its clock (11:00) after, so
    it is passed over and the score at MQL is 50 (found by mutation testing: stopping
    the reading at that row gave 0 and passed)."""
    rules = SAME_SECOND + 'form "A"\n'
    events = [
        _form("e1", "2026-10-01T10:00:00Z", "F"),
        _form("e2", "2026-10-01T11:00:00Z", "A"),
        _pricing("e3", "2026-10-01T09:00:00Z"),
    ]
    got = _report(tmp_path, rules, events)[1]["score_at_mql"]
    assert (got["n"], got["median"]) == (1, 50)
