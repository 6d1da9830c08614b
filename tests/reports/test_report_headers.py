"""Table headers on a narrow terminal: they wrap between their words, never inside one."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from rich.cells import cell_len
from tests.reports.test_report_tables import _on_a_terminal

from conftest import mrules

EXAMPLE_RULES = Path(__file__).parents[2] / "examples" / "getcloudy" / "rules"

HEADERS = {
    "campaigns": [
        "campaign cost prospects MQLs opps won won amount cost / prospect ROI",
        "campaign source primary first_touch last_touch even",
    ],
    "rules": ["rule matches prospects went MQL went won days to MQL days to won", "rule where"],
    "funnel": [
        "stage count to next median days mean days n",
        "MQLs accepted by sales (SQL) customers (won)",
    ],
    "scores": ["score prospects", "grade prospects", "score MQLs"],
}


def headers(shown: str) -> list[str]:
    """Each table's header as words: its lines' pieces joined column by column."""
    out: list[str] = []
    head: list[list[str]] = []
    for line in shown.splitlines():
        if line.startswith("┃"):
            cells = [c.strip() for c in line.strip().strip("┃").split("┃")]
            head = head or [[] for _ in cells]
            for column, cell in zip(head, cells, strict=True):
                if cell:
                    column.append(cell)
        elif line.startswith("┡"):
            out.append(" ".join(" ".join(c) for c in head if c))
            head = []
    return out


@pytest.mark.parametrize("columns", [80, 60])
@pytest.mark.parametrize("report", sorted(HEADERS))
def test_headers_wrap_between_words_on_a_narrow_terminal(
    store: str, report: str, columns: int
) -> None:
    """At 80 columns the campaigns table's headers read `pro/spe/cts`, `MQL/s`, `op/ps`,
    `wo/n` and `co/st/ /p/ro/sp/ec/t` down their columns, `first_tou/ch` in the influence
    table: a header folded inside its words to leave its column to the names."""
    rules = ("--rules", str(EXAMPLE_RULES)) if report in ("campaigns", "rules") else ()
    shown = _on_a_terminal(columns, report, "--store", store, *rules)
    assert headers(shown) == HEADERS[report]
    if report != "campaigns":  # nine columns of figures need 78 columns: printed so wide
        assert max(cell_len(line) for line in shown.splitlines()) <= columns


def test_the_campaigns_table_fits_80_columns(store: str, snapshot: Any) -> None:
    """Nine columns on 80: the names wrap, the headers wrap between their words, and the
    cells give up their side spaces (the borders still part them) to fit."""
    shown = _on_a_terminal(80, "campaigns", "--store", store)
    assert max(cell_len(line) for line in shown.splitlines()) <= 80
    assert re.sub(r" +\n", "\n", shown) == snapshot


@pytest.mark.parametrize(
    ("report", "title"),
    [
        ("funnel", "funnel (cohort reading, 2026-10-01T00:00:00Z to 2026-12-01T00:00:00Z)"),
        ("scores", "score at MQL (n 0, median -, mean -)"),
    ],
)
def test_a_title_longer_than_its_table_stays_on_one_line(
    store: str, tmp_path: Path, report: str, title: str
) -> None:
    """Written to a file, the funnel's title over a range read "funnel (cohort reading,
    2026-10-01T00:00:00Z to" and "2026-12-01T00:00:00Z)" on two lines, and an empty
    score-at-MQL table's "score at MQL (n 0," and "median -, mean -)": rich wrapped a
    title at its table's width. On a terminal too, where it has the room."""
    args = ["--store", store, "--since", "2026-10-01", "--until", "2026-12-01"]
    if report == "scores":
        args[-4:] = ["--since", "2030-01-01"]  # nobody in that range: no MQL
    lines = [line.rstrip() for line in mrules("report", report, *args).stdout.splitlines()]
    assert title in lines
    shown = _on_a_terminal(100, report, *args)
    assert title in [line.rstrip() for line in shown.splitlines()]
