"""What the people-facing outputs of `mrules report` (the table format and the HTML page)
show beyond the JSON's numbers: how many prospects a velocity stands on; on a terminal,
tables that wrap long names rather than cut them or a figure."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner
from rich.cells import cell_len
from tests.terminal import output_on_a_terminal

from mrules.cli import main


def _run(*args: str) -> str:
    result = CliRunner().invoke(main, ["report", *args])
    assert result.exit_code == 0, result.output
    return result.stdout


def _rows(text: str) -> dict[str, list[str]]:
    """A rich table's rows and header, by their first cell: the other cells, stripped."""
    out = {}
    for line in text.splitlines():
        if line.startswith(("│", "┃")):
            first, *rest = (c.strip() for c in re.split("[│┃]", line.strip("│┃")))
            out[first] = rest
    return out


# The fixture's velocity (tests/reports/test_fixture.py's story): of its 6 visitors, 3
# became prospects (v01, v04, v10); 9 prospects became MQLs, 7 of them SQLs, 5 of those won.
N_TO_NEXT = {"visitor": "3", "prospect": "9", "mql": "7", "sql": "5", "won": ""}


def test_the_funnel_table_shows_how_many_prospects_each_velocity_stands_on(
    store: str, snapshot: Any
) -> None:
    """The JSON had `velocity[].n` and the CSV `n_to_next`, the table not: a median over 2
    prospects looked as solid as one over 2,000. Its last column is `n`."""
    text = _run("funnel", "--store", store)
    rows = _rows(text.split("of the MQLs")[0])
    assert rows["stage"] == ["count", "to next", "median days", "mean days", "n"]
    assert {stage: cells[-1] for stage, cells in rows.items() if stage != "stage"} == N_TO_NEXT
    assert text == snapshot


def test_the_html_funnel_table_shows_the_velocity_and_its_n(store: str) -> None:
    """The page's funnel table had the conversions only; the velocity was a chart whose
    sample size only a tooltip told. Each step's row now has its days and their `n`."""
    text = _run("html", "-", "--store", store)
    table = text[text.index("<tr><th>from</th>") :]
    table = table[: table.index("</table>")]
    cells = [re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row) for row in table.split("<tr>")[1:]]
    assert cells == [
        ["from", "to", "conversion", "median days", "mean days", "n"],
        ["Visitors", "Prospects", "50.0%", "1.0", "1.7", "3"],
        ["Prospects", "MQLs", "45.0%", "2.0", "3.0", "9"],
        ["MQLs", "SQLs", "77.8%", "2.0", "2.6", "7"],
        ["SQLs", "Won", "71.4%", "15.0", "15.2", "5"],
    ]


# -- a table on a terminal ----------------------------------------------------------------------
def _on_a_terminal(columns: int, *args: str | Path) -> str:
    """`mrules report ARGS` with standard output on a terminal `columns` wide: what it shows."""
    code, shown = output_on_a_terminal(
        [sys.executable, "-m", "mrules", "report", *map(str, args)],
        env={"COLUMNS": str(columns), "NO_COLOR": "1"},
    )
    assert code == 0
    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", shown).replace("\r\n", "\n")


LONG = [f"utm_campaign={stem}_{'x' * 150}_{stem}" for stem in ("spring", "fall")]


def _first_column(table: str) -> str:
    """The text of a table's first column, its lines joined (a folded name is whole again)."""
    return "".join(
        line.split("│")[1].strip() for line in table.splitlines() if line.startswith("│")
    )


@pytest.mark.parametrize("columns", [100, 80, 40])
def test_on_a_narrow_terminal_names_wrap_and_figures_stay_whole(
    store: str, tmp_path: Path, columns: int
) -> None:
    """On a terminal, rich cut what did not fit behind `…`: at 80 columns `6,333.…` for a
    won amount of 6,333.33, `1166.…` for an ROI of 1166.7%, `3,000.…` for a cost, and two
    long campaign names that began alike both read `utm_ca…`. Now a name wraps (whole, on
    more lines), a figure is never cut, and a table whose figures need more than the
    terminal has is printed at the width it needs rather than lose any."""
    rules = tmp_path / "campaigns.mr"
    rules.write_text("".join(f'campaign "{n}" cost 100\n' for n in LONG))
    shown = _on_a_terminal(columns, "campaigns", "--store", store, "--rules", rules)
    assert "…" not in shown
    main, influence = shown.split("won amount credited by model")
    report = orjson.loads(
        _run("campaigns", "--store", store, "--rules", str(rules), "--format", "json")
    )
    names = [c["campaign"] for c in report["campaigns"]]
    assert _first_column(main).replace(" ", "") == "".join(names).replace(" ", "")
    assert _first_column(influence).replace(" ", "") == "".join([*names, "(unattributed)"]).replace(
        " ", ""
    )
    for c in report["campaigns"]:  # every figure whole, in its row's place
        assert f"{c['won_amount']:,.2f}" in main
        assert c["roi"] is None or f"{c['roi'] * 100:.1f}%" in main
    if columns >= 80:  # room for every figure: the table fits the terminal
        assert max(cell_len(line) for line in shown.splitlines()) <= columns
