"""What the people-facing outputs of `mrules report` (the table format and the HTML page)
show beyond the JSON's numbers: how many prospects a velocity stands on."""

from __future__ import annotations

import re
from typing import Any

from click.testing import CliRunner

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
