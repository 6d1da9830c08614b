"""Dates in reports have four-digit years: events in the year 1 (or 999) are valid input
(the engine takes years 1 to 9999), and `--since 0001-01-01` is a valid date, so a
report must print `0001-01-01T00:00:00Z`, never `1-01-01T00:00:00Z` (which also
sorts after `2026-...` as text). A date range outside the years 1 to 9999 in UTC is
a usage error, not a crash."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from mrules.cli import main
from mrules.exitcodes import ExitCode

RULES = """\
list "MQL"
user "owner@example.com"
form "F"
on submit of form "F" { add to list "MQL"; score +100; assign to user "owner@example.com" }
"""
EVENTS = [
    {"ts": "0001-01-01T00:00:00Z", "type": "form_submit", "prospect": "old@example.com",
     "asset": "F"},
    {"ts": "0999-03-01T10:00:00Z", "type": "form_submit", "prospect": "mid@example.com",
     "asset": "F"},
    {"ts": "2026-11-02T09:00:00Z", "type": "form_submit", "prospect": "mid@example.com",
     "asset": "F"},
]  # fmt: skip


def _cli(*args: str) -> tuple[int, str, str]:
    res = CliRunner().invoke(main, list(args))
    return res.exit_code, res.stdout, res.stderr


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> str:
    folder = tmp_path_factory.mktemp("dates")
    (folder / "rules.mr").write_text(RULES, encoding="utf-8")
    (folder / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in EVENTS))
    path = str(folder / "s.db")
    code, out, err = _cli("run", str(folder / "rules.mr"), str(folder / "events.jsonl"),
                          "--store", path)  # fmt: skip
    assert code == 0, out + err
    return path


def test_explain_timeline_pads_the_year(store: str) -> None:
    code, out, err = _cli("explain", "old@example.com", "--store", store, "--timeline")
    assert code == 0, err
    assert "  0001-01-01T00:00:00Z  prospect, mql" in out
    assert " 1-01-01" not in out


def test_explain_timeline_is_in_time_order(store: str) -> None:
    code, out, err = _cli("explain", "mid@example.com", "--store", store, "--timeline")
    assert code == 0, err
    times = [line.split()[0] for line in out.splitlines()[2:] if line.startswith("  ")]
    times = [t for t in times if t[:1].isdigit()]
    assert times == ["0999-03-01T10:00:00Z", "2026-11-02T09:00:00Z"], out


def test_explain_timeline_json_pads_the_year(store: str) -> None:
    code, out, err = _cli("explain", "old@example.com", "--store", store, "--timeline",
                          "--format", "json")  # fmt: skip
    assert code == 0, err
    doc = json.loads(out)
    assert {s["at"] for s in doc["stages"]} == {"0001-01-01T00:00:00Z"}


@pytest.mark.parametrize("fmt", ["table", "json"])
def test_report_range_pads_the_year(store: str, fmt: str) -> None:
    code, out, err = _cli("report", "funnel", "--store", store, "--since", "0001-01-01",
                          "--until", "0999-12-31", "--format", fmt)  # fmt: skip
    assert code == 0, err
    if fmt == "json":
        doc = json.loads(out)
        assert (doc["since"], doc["until"]) == ("0001-01-01T00:00:00Z", "0999-12-31T00:00:00Z")
    else:
        title = " ".join(out.split("┏")[0].split())
        assert "0001-01-01T00:00:00Z to 0999-12-31T00:00:00Z" in title, out


def test_report_html_pads_the_year(store: str, tmp_path: Path) -> None:
    page = tmp_path / "r.html"
    code, _, err = _cli("report", "html", str(page), "--store", store, "--since", "0001-01-01",
                        "--timeline", "old@example.com")  # fmt: skip
    assert code == 0, err
    text = page.read_text(encoding="utf-8")
    assert "0001-01-01T00:00:00Z" in text
    assert '"1-01-01T' not in text and ">1-01-01T" not in text


@pytest.mark.parametrize(
    "args",
    [
        ("--since", "0001-01-01T00:00:00+01:00"),  # the year 0 in UTC
        ("--until", "9999-12-31T23:00:00-05:00"),  # the year 10000 in UTC
    ],
)
@pytest.mark.parametrize("report", ["funnel", "campaigns", "rules", "scores"])
def test_a_range_outside_the_years_1_to_9999_is_a_usage_error(
    store: str, report: str, args: tuple[str, str]
) -> None:
    code, out, err = _cli("report", report, "--store", store, *args)
    assert code == ExitCode.USAGE, out + err
    assert "between the years 1 and 9999" in err and args[1] in err
    # The option is named, as for any other bad date (it was not: which one was it?)
    assert f"mrules: error: {args[0]} '{args[1]}' is not a date" in err, err
    assert "internal error" not in err and "Traceback" not in out + err
