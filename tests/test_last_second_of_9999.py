"""Events in the last second of the year 9999 (the latest the event reader takes).

A stored time past 9999-12-31T23:59:59Z was "damage" to every reader, and
`9999-12-31T23:59:59.999999Z` as seconds rounds up to the year 10000: one such line
made every `explain`, `state export` and report of its store exit 4, "restore it
from a backup"."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from mrules.cli import main
from mrules.timetext import LAST_TIME, utc_seconds_text

EXAMPLE = Path(__file__).parents[1] / "examples" / "getcloudy"


def mrules(*args: object) -> str:
    r = CliRunner().invoke(main, [str(a) for a in args])
    assert r.exit_code == 0, (args, r.output)
    return r.stdout


@pytest.mark.parametrize(
    "ts, shown",
    [
        ("9999-12-31T23:59:59.5Z", "9999-12-31T23:59:59.500000Z"),
        ("9999-12-31T23:59:59.999999Z", "9999-12-31T23:59:59.999969Z"),  # LAST_TIME
    ],
)
def test_every_reader_takes_the_last_second_of_9999(tmp_path: Path, ts: str, shown: str) -> None:
    events = tmp_path / "late.jsonl"
    event = {"type": "form_submit", "ts": ts, "prospect": "b@x.com",
             "asset": "Demande Get Cloudy", "fields": {"company_size": "11-50"}}  # fmt: skip
    events.write_text(json.dumps(event) + "\n")
    store = tmp_path / "s.db"
    mrules("run", EXAMPLE / "rules", events, "--store", store, "-q")
    [state] = [
        json.loads(line) for line in mrules("state", "export", "--store", store).splitlines()
    ]
    assert state["created"] == shown and state["score"] == 50
    assert shown in mrules("state", "outbox", "--store", store)
    assert "Demande Get Cloudy" in mrules("explain", "b@x.com", "--store", store)
    timeline = json.loads(
        mrules("explain", "b@x.com", "--store", store, "--timeline", "--format", "json")
    )
    assert [s["stage"] for s in timeline["stages"]] == ["prospect", "mql"]
    funnel = json.loads(mrules("report", "funnel", "--store", store, "--format", "json"))
    assert funnel["seed"]["mqls"] == 1


def test_the_last_time_is_the_last_float_before_the_year_10000() -> None:
    assert utc_seconds_text(LAST_TIME) == "9999-12-31T23:59:59Z"
    assert LAST_TIME < 253_402_300_800.0 and LAST_TIME + 2**-15 == 253_402_300_800.0


@pytest.mark.parametrize("now", ["9999-12-31T23:59:59.5Z", "9999-12-31T23:59:59.999999Z"])
def test_run_now_takes_the_last_second_of_9999(tmp_path: Path, now: str) -> None:
    """`mrules run --now` in the last second of 9999, which an event's `ts` may hold, was an
    internal error (exit 70): the API took no time after 23:59:59, and .999999 as seconds
    rounds up to the year 10000. It is kept as an event's `ts` is."""
    store = tmp_path / "s.db"
    events = EXAMPLE / "events.jsonl"
    mrules("run", EXAMPLE / "rules", events, "--store", store, "-q", "--now", now)
    [leung] = [
        json.loads(line)
        for line in mrules("state", "export", "--store", store).splitlines()
        if '"leung@example.com"' in line
    ]
    assert leung["score"] > 0
    timeline = json.loads(
        mrules("explain", "leung@example.com", "--store", store, "--timeline", "--format", "json")
    )
    assert timeline["stages"]
