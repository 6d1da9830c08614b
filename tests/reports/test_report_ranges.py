"""`mrules report` with a date range: what the range leaves in and out (docs/reports.md)."""

from __future__ import annotations

import csv
import io
import json

import pytest
from click.testing import CliRunner

from mrules.cli import main

RULES = """\
campaign "Spring promo"
form "Spring form"
on submit of form "Spring form" { change source campaign to "Spring promo" }
"""
EVENTS = [
    {"ts": "2026-03-02T09:00:00Z", "type": "form_submit", "prospect": "a@example.com",
     "asset": "Spring form"},
]  # fmt: skip


def _cli(*args: str) -> str:
    res = CliRunner().invoke(main, list(args))
    assert res.exit_code == 0, res.output
    return res.stdout


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> str:
    folder = tmp_path_factory.mktemp("ranges")
    (folder / "rules.mr").write_text(RULES, encoding="utf-8")
    (folder / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in EVENTS))
    path = str(folder / "s.db")
    _cli("run", str(folder / "rules.mr"), str(folder / "events.jsonl"), "--store", path)
    return path


@pytest.mark.parametrize("fmt", ["json", "csv", "table"])
def test_a_source_campaign_is_a_row_when_its_prospects_are_outside_the_range(
    store: str, fmt: str
) -> None:
    # "One row a campaign: ... every source campaign a prospect has": a range that holds
    # none of its prospects shows the campaign with its zeros, as it shows a CRM campaign.
    # It was left out, as if it did not exist.
    out = _cli("report", "campaigns", "--store", store, "--since", "2026-04-01", "--format", fmt)
    if fmt == "json":
        rows = json.loads(out)["campaigns"]
        assert [(r["campaign"], r["prospects"], r["mqls"]) for r in rows] == [
            ("Spring promo", 0, 0)
        ]
    elif fmt == "csv":
        rows = list(csv.DictReader(io.StringIO(out)))
        assert [(r["campaign"], r["prospects"], r["unattributed"]) for r in rows] == [
            ("Spring promo", "0", "0"),
            ("", "", "1"),  # what no campaign is credited for
        ]
    else:
        assert "Spring promo" in out
    whole = json.loads(_cli("report", "campaigns", "--store", store, "--format", "json"))
    assert [(r["campaign"], r["prospects"]) for r in whole["campaigns"]] == [("Spring promo", 1)]


@pytest.mark.parametrize(
    ("given", "same_as"),
    [
        ("2026-W10", "2026-03-02T00:00:00Z"),  # an ISO week: its Monday
        ("2026-03-02T11:00:00+02:00", "2026-03-02T09:00:00Z"),  # a zone: that moment
        ("2026-03-02T09:00:00", "2026-03-02T09:00:00Z"),  # no zone: UTC
    ],
)
def test_the_documented_forms_of_a_date(store: str, given: str, same_as: str) -> None:
    # docs/reports.md: the prospect created at 09:00 UTC is in a range from 09:00 UTC on.
    for since, count in ((given, 1), ("2026-03-02T09:00:01Z", 0)):
        out = json.loads(
            _cli("report", "funnel", "--store", store, "--since", since, "--format", "json")
        )
        assert out["stages"][1] == {"stage": "prospect", "count": count}
    out = json.loads(
        _cli("report", "scores", "--store", store, "--since", given, "--format", "json")
    )
    assert out["since"] == same_as


def test_the_first_and_last_moments_of_the_years_1_to_9999_are_accepted(store: str) -> None:
    # docs/reports.md: a date between the years 1 and 9999 in UTC; the ends themselves too.
    out = json.loads(
        _cli(
            "report", "funnel", "--store", store, "--format", "json",
            "--since", "0001-01-01T00:00:00Z", "--until", "9999-12-31T23:59:59Z",
        )
    )  # fmt: skip
    assert (out["since"], out["until"]) == ("0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z")
    assert out["stages"][1] == {"stage": "prospect", "count": 1}


@pytest.mark.parametrize("until", ["2026-03-02T09:00:00Z", "2026-03-01"])
def test_a_range_that_ends_where_or_before_it_starts_is_refused(store: str, until: str) -> None:
    # `since` is included and `until` is not: since == until holds no moment at all.
    res = CliRunner().invoke(
        main,
        ["report", "funnel", "--store", store, "--since", "2026-03-02T09:00:00Z",
         "--until", until],
    )  # fmt: skip
    assert res.exit_code == 2, res.output
    assert f"--until ({until}) must be after --since (2026-03-02T09:00:00Z)" in res.output
    assert "Traceback" not in res.output


@pytest.mark.parametrize(
    ("since", "until", "count"),
    [
        ("2026-03-02T09:00:00Z", None, 1),  # since is included
        ("2026-03-01", "2026-03-02T09:00:00Z", 0),  # until is not
        ("2026-03-01", "2026-03-02T09:00:01Z", 1),
    ],
)
def test_a_campaigns_prospects_at_the_ends_of_the_range(
    store: str, since: str, until: str | None, count: int
) -> None:
    # docs/reports.md: `since` is included, `until` is not; the prospect is created at
    # 09:00:00 UTC, the very end given.
    args = ["report", "campaigns", "--store", store, "--format", "json", "--since", since]
    out = json.loads(_cli(*args, *(["--until", until] if until else [])))
    assert [(r["campaign"], r["prospects"]) for r in out["campaigns"]] == [("Spring promo", count)]
