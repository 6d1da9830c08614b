"""Table headers on a narrow terminal: they wrap between their words, never inside one."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from rich.cells import cell_len
from tests.reports.test_report_tables import _on_a_terminal

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
