"""A report with nothing in it says why, in the formats people read (the table, the HTML
page): a store that holds no prospect yet, or a date range that holds none. JSON and CSV
stay as they are: an empty list is a fine answer for a program. Exit 0 either way."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from mrules.cli import main

FIXTURE = Path(__file__).parent / "fixture"
KINDS = ("funnel", "campaigns", "rules", "scores")
NO_PROSPECT = (
    "Nothing to report yet: the store holds no prospect (run events into it with `mrules run`)."
)
FROM_2030 = "Nothing to report from 2030-01-01T00:00:00Z on: "
IN_2030 = {
    "funnel": "no visitor first seen and no prospect created in that range.",
    "campaigns": "no prospect created, no campaign member, opportunity or win in that range.",
    "rules": "no rule acted on a prospect in that range.",
    "scores": "no prospect created in that range.",
}


def _report(*args: str | Path) -> tuple[str, str]:
    result = CliRunner().invoke(main, ["report", *map(str, args)])
    assert result.exit_code == 0, result.output
    return result.stdout, result.stderr


@pytest.fixture(scope="module")
def empty(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store `mrules run` made from an empty events file: no event, no prospect."""
    folder = tmp_path_factory.mktemp("empty")
    (folder / "events.jsonl").write_text("")
    store = folder / "empty.db"
    result = CliRunner().invoke(
        main, ["run", str(FIXTURE / "rules"), str(folder / "events.jsonl"), "--store", str(store)]
    )
    assert result.exit_code == 0, result.output
    return store


@pytest.mark.parametrize("kind", KINDS)
def test_a_store_with_no_prospect_says_so_under_its_tables(empty: Path, kind: str) -> None:
    """Empty tables (a funnel of zeros, a campaigns table of no row) with no word of why."""
    out, _ = _report(kind, "--store", empty)
    assert out.splitlines()[-1] == NO_PROSPECT
    assert out.count("Nothing to report") == 1


@pytest.mark.parametrize("kind", KINDS)
def test_a_range_with_nothing_in_it_says_so(store: str, kind: str) -> None:
    out, _ = _report(kind, "--store", store, "--since", "2030-01-01")
    assert out.splitlines()[-1] == FROM_2030 + IN_2030[kind]


@pytest.mark.parametrize(
    ("dates", "span"),
    [
        (("--until", "2001-01-01"), "before 2001-01-01T00:00:00Z"),
        (
            ("--since", "2030-01-01", "--until", "2030-02-01"),
            "from 2030-01-01T00:00:00Z to 2030-02-01T00:00:00Z",
        ),
    ],
)
def test_the_line_names_the_range(store: str, dates: tuple[str, ...], span: str) -> None:
    out, _ = _report("scores", "--store", store, *dates)
    assert out.splitlines()[-1] == f"Nothing to report {span}: no prospect created in that range."


def test_the_stage_reading_names_what_it_counts(store: str) -> None:
    out, _ = _report("funnel", "--store", store, "--reading", "stage", "--since", "2030-01-01")
    assert out.splitlines()[-1] == (
        FROM_2030 + "no visitor first seen and no stage entered in that range."
    )


@pytest.mark.parametrize("kind", KINDS)
def test_a_report_with_figures_has_no_such_line(store: str, kind: str) -> None:
    out, _ = _report(kind, "--store", store)
    assert "Nothing to report" not in out
    # a range with something in it: October 2026 has prospects, rule hits and wins
    out, _ = _report(kind, "--store", store, "--since", "2026-10-01", "--until", "2026-11-01")
    assert "Nothing to report" not in out


@pytest.mark.parametrize("fmt", ["json", "csv"])
@pytest.mark.parametrize("kind", KINDS)
def test_json_and_csv_stay_as_they_are(empty: Path, store: str, kind: str, fmt: str) -> None:
    for args in (("--store", empty), ("--store", store, "--since", "2030-01-01")):
        out, err = _report(kind, *args, "--format", fmt)
        assert "Nothing to report" not in out + err


def _nothing(page: str) -> list[str]:
    return re.findall(r"<p class='note nothing'>(.*?)</p>", page)


def test_the_html_page_of_a_store_with_no_prospect_says_so_once(empty: Path) -> None:
    out, _ = _report("html", "-", "--store", empty)
    assert _nothing(out) == [NO_PROSPECT.replace("`mrules run`", "<code>mrules run</code>")]
    # on top of the page, before the first section
    assert out.index("note nothing") < out.index("<section")


def test_the_html_page_of_an_empty_range_says_so_in_each_section(store: str) -> None:
    out, _ = _report("html", "-", "--store", store, "--since", "2030-01-01")
    # the sections' order on the page: funnel, campaigns, rules, scores
    assert _nothing(out) == [FROM_2030 + IN_2030[k] for k in KINDS]
    out, _ = _report("html", "-", "--store", store)
    assert _nothing(out) == []
