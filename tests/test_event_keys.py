"""Each event type and key of docs/events.md, run through `mrules run` as a user would,
its effect read back with `mrules state export`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from click.testing import CliRunner, Result

from mrules.cli import main


def invoke(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


def run(tmp_path: Path, rules: str, events: list[dict[str, Any]], *extra: str) -> Result:
    (tmp_path / "rules.mr").write_text(rules, encoding="utf-8")
    lines = "".join(json.dumps(e) + "\n" for e in events)
    (tmp_path / "events.jsonl").write_text(lines, encoding="utf-8")
    store = str(tmp_path / "s.db")
    return invoke(
        "run", str(tmp_path / "rules.mr"), str(tmp_path / "events.jsonl"), "--store", store, *extra
    )


def export(tmp_path: Path) -> dict[str, dict[str, Any]]:
    res = invoke("state", "export", "--store", str(tmp_path / "s.db"))
    assert res.exit_code == 0, res.output
    rows = [json.loads(line) for line in res.output.splitlines() if line.startswith("{")]
    return {row["email"]: row for row in rows}


def view(ts: str, prospect: str, url: str) -> dict[str, Any]:
    return {"ts": ts, "type": "page_view", "prospect": prospect, "url": url}


def test_a_kept_query_string_is_the_page_with_its_trailing_slash_and_wildcard(
    tmp_path: Path,
) -> None:
    """With `url_ignore_query = false`, the query is compared, but the page before it is
    still the page: its trailing slash is ignored (default), `P/*` covers `P?q`, and a
    query right after the host (`x.example?a=1`) is not part of the host."""
    rules = (
        "settings { url_ignore_query = false }\n"
        'page action "Exact" on "x.example/p?a=1" { score +10 }\n'
        'page action "Dir" on "x.example/d/*" { score +100 }\n'
        'page action "Home" on "x.example/?Q=1" { score +1000 }\n'
        'tag "dir"\n'
        'automation rule "Dir visit" priority 1 {\n'
        '  when all { visited "x.example/d/*" }\n'
        '  then { add tag "dir" }\n'
        "}\n"
    )
    events = [
        view("2026-01-01T00:00:00Z", "slash@x.example", "https://x.example/p/?a=1"),
        view("2026-01-01T00:01:00Z", "dir@x.example", "https://x.example/d?z=1"),
        view("2026-01-01T00:02:00Z", "home@x.example", "https://x.example?Q=1"),
        view("2026-01-01T00:03:00Z", "other@x.example", "https://x.example/p?a=2"),
    ]
    res = run(tmp_path, rules, events)
    assert res.exit_code == 0, res.output
    state = export(tmp_path)
    scores = {email: row["score"] for email, row in state.items()}
    assert scores == {
        "slash@x.example": 10,
        "dir@x.example": 100,
        "home@x.example": 1000,
        "other@x.example": 0,
    }
    assert [email for email, row in state.items() if row["tags"]] == ["dir@x.example"]


def test_a_date_field_takes_an_rfc3339_time_with_a_space_and_keeps_its_zone(
    tmp_path: Path,
) -> None:
    """RFC 3339 lets a space stand for the `T` (docs/events.md reads `ts` so); a date
    field's value written so fits (docs/events.md: "an RFC 3339 time"), and criteria read
    it in its own zone: 00:30 at +01:00 is 23:30 UTC the day before."""
    rules = (
        "field signed: date\n"
        'tag "early"\n'
        'automation rule "Early" priority 1 {\n'
        "  when all { signed < 2026-01-31T00:00:00Z }\n"
        '  then { add tag "early" }\n'
        "}\n"
    )
    events = [
        {
            "ts": "2026-02-01T00:00:00Z",
            "type": "prospect_update",
            "prospect": f"{who}@x.example",
            "fields": {"signed": when},
        }
        for who, when in (
            ("space", "2026-01-31 00:30:00+01:00"),
            ("tee", "2026-01-31T00:30:00+01:00"),
            ("late", "2026-01-31 00:30:00Z"),
        )
    ]
    res = run(tmp_path, rules, events)
    assert res.exit_code == 0, res.output
    assert "skip field" not in res.output
    state = export(tmp_path)
    assert state["space@x.example"]["fields"] == {"signed": "2026-01-31 00:30:00+01:00"}
    assert {email: row["tags"] for email, row in state.items()} == {
        "space@x.example": ["early"],
        "tee@x.example": ["early"],
        "late@x.example": [],
    }


def test_an_opted_out_value_kept_that_is_not_true_or_false_never_opts_back_in(
    tmp_path: Path,
) -> None:
    """`bad_field_values = "keep"` stores a value as given, but the email status is true
    or false: `"maybe"` or `0` leaves it as it is, as a blank does (docs/events.md), and
    never opts back in a prospect who unsubscribed."""
    rules = 'settings { bad_field_values = "keep" }\n'
    events: list[dict[str, Any]] = [
        {"ts": "2026-01-01T00:00:00Z", "type": "unsubscribe", "prospect": "out@x.example"},
        {"ts": "2026-01-01T00:00:00Z", "type": "unsubscribe", "prospect": "zero@x.example"},
    ]
    events += [
        {
            "ts": "2026-01-01T00:01:00Z",
            "type": "prospect_update",
            "prospect": email,
            "fields": {"opted_out": value},
        }
        for email, value in (
            ("out@x.example", "maybe"),
            ("zero@x.example", 0),
            ("new@x.example", "maybe"),
            ("yes@x.example", "TRUE"),
        )
    ]
    res = run(tmp_path, rules, events)
    assert res.exit_code == 0, res.output
    assert "field values kept that do not fit" in res.output
    assert {email: row["opted_out"] for email, row in export(tmp_path).items()} == {
        "out@x.example": True,
        "zero@x.example": True,
        "new@x.example": False,
        "yes@x.example": True,
    }


def test_a_deleted_opportunity_scores_nothing(tmp_path: Path) -> None:
    """`status` on an opportunity is `won` or `lost`; with none it is created (+50 with
    Pardot's table). `deleted` (docs/events.md: a lead or contact deleted in the CRM) on
    an opportunity is no creation: it scores nothing, where it scored +50."""
    rules = 'include "library/pardot-default-scoring"\n'
    events: list[dict[str, Any]] = []
    for status in (None, "won", "lost", "deleted"):
        email = f"{status or 'open'}@x.example"
        events += [
            {"ts": "2026-01-01T00:00:00Z", "type": "prospect_update", "prospect": email},
            {
                "ts": "2026-01-01T00:01:00Z",
                "type": "crm_update",
                "prospect": email,
                "object": "opportunity",
                "crm_id": "006A",
                "status": status,
            },
        ]
    res = run(tmp_path, rules, events)
    assert res.exit_code == 0, res.output
    assert {email: row["score"] for email, row in export(tmp_path).items()} == {
        "open@x.example": 50,
        "won@x.example": 0,
        "lost@x.example": -100,
        "deleted@x.example": 0,
    }
