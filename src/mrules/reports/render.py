"""Reports as text: rich tables for people, CSV for spreadsheets (JSON is the dict itself)."""

from __future__ import annotations

import csv
import io
import itertools
from collections.abc import Iterable, Sequence
from typing import Any

from rich.cells import cell_len
from rich.table import Table
from rich.text import Text

from mrules.reports._campaigns import UNATTRIBUTED, campaign_label
from mrules.reports._history import kind_label

__all__ = ["csv_text", "fit", "is_empty", "nothing_to_report", "tables"]


def _num(value: Any, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and not value.is_integer():
        return f"{value:,.{digits}f}"
    return f"{value:,.0f}" if isinstance(value, float) else f"{value:,}"


def _day(value: float | None) -> str:
    return "-" if value is None else f"{value:,.1f}"


def _pct(rate: float | None) -> str:
    return "-" if rate is None else f"{rate * 100:.1f}%"


def _money(value: float | None) -> str:
    return "-" if value is None else f"{value:,.2f}"


def _range(report: dict[str, Any]) -> str:
    since, until = report.get("since"), report.get("until")
    if since is None and until is None:
        return "all time"
    return f"{since or '…'} to {until or '…'}"


class _Table(Table):
    """A rich table that knows, for each column, the width its content takes on one line
    (`natural`) and the least width it can take without cutting a word of a cell (`least`)."""

    natural: list[int]
    least: list[int]
    text: int


NAME_LEAST = 16
"""The least width of a table's first column (a campaign or rule name) on a narrow terminal:
a longer name wraps onto more lines, whole."""


def _table(
    title: str, columns: Sequence[str], rows: Iterable[Sequence[str]], *, text: int = 1
) -> Table:
    """A table whose first `text` columns are text (a name, a location: they wrap, whole,
    down to NAME_LEAST) and the others figures (never cut)."""
    rows = [tuple(r) for r in rows]
    t = _Table(title=title, title_justify="left")
    t.natural, t.least, t.text = [], [], text
    for i, c in enumerate(columns):
        lines = [line for r in rows for line in r[i].splitlines()]
        words = [w for line in [c, *lines] for w in line.split()]  # the header's too
        natural = max(map(cell_len, [c, *lines]))
        t.natural.append(natural)
        # A name folds down to NAME_LEAST; a figure never loses a character (`6,333.33`
        # cut to `6,333.…` reads as another number), though `3,000.00 (crm)` may wrap at
        # its space; a header wraps between its words, never inside one (`prospects` read
        # `pro`, `spe`, `cts` down a column of small counts).
        longest_word = max(map(cell_len, words), default=1)
        t.least.append(min(natural, NAME_LEAST) if i < text else longest_word)
        # `fold`, not rich's `…`: two long names that begin alike never read as one.
        t.add_column(c, justify="left" if i == 0 else "right", overflow="fold")
    for r in rows:  # as Text: a name's `[emea]` or `[/]` is text, not rich markup
        t.add_row(*(Text(cell) for cell in r))
    return t


def _narrow(table: _Table, room: int) -> list[int]:
    """The columns' widths in `room` characters of content: as they are when they fit; else
    the text columns (a name, a location) down to NAME_LEAST, the first first, then the
    figures' columns, the widest first, down to their longest word (a header's too)."""
    widths = list(table.natural)
    excess = sum(widths) - room
    if excess <= 0:
        return widths
    for i in range(table.text):
        cut = min(excess, widths[i] - table.least[i])
        widths[i] -= cut
        excess -= cut
    while excess > 0:
        can = [(w, i) for i, w in enumerate(widths) if i >= table.text and w > table.least[i]]
        if not can:
            break
        _, i = max(can)
        widths[i] -= 1
        excess -= 1
    return widths


def fit(table: Table, width: int) -> int:
    """Size `table`'s columns for a terminal `width` columns wide; the width it then takes.

    A table that fits stays as it is. Else its first column (a name) narrows first, down to
    NAME_LEAST, then the figures' columns down to their longest word: a figure or a name is
    wrapped, never cut behind `…`, and a header wraps between its words. When that is still
    too wide, the cells lose the space on each side of them (the borders still part them).
    A table whose figures alone need more than `width` is wider than the terminal (the
    terminal wraps its lines), rather than lose figures.
    """
    if not isinstance(table, _Table):
        return width
    n = len(table.columns)
    overhead = 3 * n + 1  # a space each side of a cell, the borders
    widths = _narrow(table, width - overhead)
    if sum(widths) + overhead > width:  # nine columns on 80: the spaces are 18 of them
        table.padding = (0, 0, 0, 0)
        overhead = n + 1
        widths = _narrow(table, width - overhead)
    if widths != table.natural:
        for column, w in zip(table.columns, widths, strict=True):
            column.width = w
    return sum(widths) + overhead


def tables(report: dict[str, Any]) -> list[Table]:
    """The report as one or more rich tables."""
    kind = report["report"]
    return {"funnel": _funnel, "campaigns": _campaigns, "rules": _rules, "scores": _scores}[kind](
        report
    )


def _funnel(r: dict[str, Any]) -> list[Table]:
    conv = {c["from"]: c["rate"] for c in r["conversions"]}
    vel = {v["from"]: v for v in r["velocity"]}
    rows = []
    for s in r["stages"]:
        v = vel.get(s["stage"])
        rows.append(
            (
                s["stage"],
                _num(s["count"]),
                _pct(conv.get(s["stage"])) if s["stage"] in conv else "",
                _day(v["median_days"]) if v else "",
                _day(v["mean_days"]) if v else "",
                # the prospects behind the days: a median of 2 is not one of 2,000
                _num(v["n"]) if v else "",
            )
        )
    title = f"funnel ({r['reading']} reading, {_range(r)})"
    cols = ("stage", "count", "to next", "median days", "mean days", "n")
    out = [_table(title, cols, rows)]
    seed = r["seed"]
    out.append(
        _table(
            "of the MQLs",
            ("MQLs", "accepted by sales (SQL)", "customers (won)"),
            [(_num(seed["mqls"]), _num(seed["accepted_by_sales"]), _num(seed["customers"]))],
        )
    )
    if r["periods"]:
        cols = ("period", "visitor", "prospect", "mql", "sql", "won")
        out.append(
            _table(
                f"by {r['by']}",
                cols,
                [(p["period"], *(_num(p["stages"][c]) for c in cols[1:])) for p in r["periods"]],
            )
        )
    return out


_STAGES = ("visitor", "prospect", "mql", "sql", "won")
_MODEL_COLS = ("source", "primary", "first_touch", "last_touch", "even")


def _campaigns(r: dict[str, Any]) -> list[Table]:
    rows = [
        (
            campaign_label(c["campaign"]),
            _money(c["cost"]) + (f" ({c['cost_source']})" if c["cost_source"] else ""),
            _num(c["prospects"]),
            _num(c["mqls"]),
            _num(c["opportunities"]),
            _num(c["won"]),
            _money(c["won_amount"]),
            _money(c["cost_per_prospect"]),
            _pct(c["roi"]),
        )
        for c in r["campaigns"]
    ]
    t = r["totals"]
    main = _table(
        f"campaigns ({r['model']} model, {_range(r)})",
        (
            "campaign",
            "cost",
            "prospects",
            "MQLs",
            "opps",
            "won",
            "won amount",
            "cost / prospect",
            "ROI",
        ),
        rows,
    )
    influence = _table(
        f"won amount credited by model (total won {_money(t['won_amount'])})",
        ("campaign", *_MODEL_COLS),
        [
            *(
                (campaign_label(c["campaign"]), *(_money(c["influence"][m]) for m in _MODEL_COLS))
                for c in r["campaigns"]
            ),
            (UNATTRIBUTED, *(_money(t["unattributed"][m]) for m in _MODEL_COLS)),
        ],
    )
    return [main, influence]


def _rules(r: dict[str, Any]) -> list[Table]:
    cols = ("rule", "matches", "prospects", "went MQL", "went won", "days to MQL", "days to won")
    rows = [
        (
            f"{kind_label(x['kind'])} {x['name']!r}",
            _num(x["matches"]),
            _num(x["prospects"]),
            _num(x["went_mql"]),
            _num(x["went_won"]),
            _day(x["median_days_to_mql"]),
            _day(x["median_days_to_won"]),
        )
        for x in r["rules"]
    ]
    out = [_table(f"rules ({_range(r)}; days: median)", cols, rows)]
    if r["never_matched"]:
        out.append(
            _table(
                "never matched",
                ("rule", "where"),
                [
                    (f"{kind_label(x['kind'])} {x['name']!r}", x["location"] or "-")
                    for x in r["never_matched"]
                ],
                text=2,  # a location wraps as a name does
            )
        )
    return out


def _bars(buckets: list[dict[str, int]]) -> list[tuple[str, str, str]]:
    top = max((b["count"] for b in buckets), default=0) or 1
    return [
        (f"{b['low']} to {b['high']}", _num(b["count"]), "█" * round(20 * b["count"] / top))
        for b in buckets
    ]


def _scores(r: dict[str, Any]) -> list[Table]:
    at = r["score_at_mql"]
    return [
        _table("score", ("score", "prospects", ""), _bars(r["score_histogram"])),
        _table(
            "grade",
            ("grade", "prospects"),
            [(g["grade"] or "(none)", _num(g["count"])) for g in r["grade_distribution"]],
        ),
        _table(
            f"score at MQL (n {at['n']}, median {_num(at['median'])}, mean {_num(at['mean'])})",
            ("score", "MQLs", ""),
            _bars(at["histogram"]),
        ),
    ]


# -- nothing to report ------------------------------------------------------------------------
def is_empty(report: dict[str, Any]) -> bool:
    """Whether the report counts nothing at all in its range: its tables are empty or zeros.

    The funnel: no visitor and no prospect at any stage; the campaigns: no prospect, member,
    opportunity or win credited to any campaign, nothing won; the rules: no rule acted; the
    scores: no prospect. (A campaign's cost alone, a rule that never matched, are no figure.)
    """
    kind = report.get("report")
    if kind == "funnel":
        return not any(s["count"] for s in report.get("stages") or ())
    if kind == "campaigns":
        counted = ("prospects", "mqls", "members", "opportunities", "won")
        won = (report.get("totals") or {}).get("won_amount")
        return not won and not any(c.get(k) for c in report.get("campaigns") or () for k in counted)
    if kind == "rules":
        return not report.get("rules")
    if kind == "scores":  # the prospects created in the range
        return not report.get("score_histogram")
    return False


_IN_RANGE = {
    "funnel": "no visitor first seen and no prospect created in that range",
    "campaigns": "no prospect created, no campaign member, opportunity or win in that range",
    "rules": "no rule acted on a prospect in that range",
    "scores": "no prospect created in that range",
}
_ALL_TIME = {
    "funnel": "no visitor or prospect is counted",
    "campaigns": "no prospect has a source campaign, no campaign member, opportunity or win"
    " is known",
    "rules": "no rule has acted on a prospect",
    "scores": "no prospect is counted",
}
NO_PROSPECT = (
    "Nothing to report yet: the store holds no prospect (run events into it with `mrules run`)."
)


def nothing_to_report(report: dict[str, Any], *, stored: bool | None) -> str | None:
    """The one line that says why an empty report is empty, or None when it is not empty.

    `stored`: whether the store holds any prospect (None: not known). The table format
    prints the line under its tables and the HTML page in the report's section; JSON and
    CSV do not (an empty list is a fine answer for a program).
    """
    if not is_empty(report):
        return None
    if stored is False:
        return NO_PROSPECT
    kind = str(report["report"])
    since, until = report.get("since"), report.get("until")
    if since is None and until is None:
        return f"Nothing to report yet: {_ALL_TIME[kind]}."
    if kind == "funnel" and report.get("reading") == "stage":
        why = "no visitor first seen and no stage entered in that range"
    else:
        why = _IN_RANGE[kind]
    span = (
        f"before {until}"
        if since is None
        else f"from {since} on"
        if until is None
        else f"from {since} to {until}"
    )
    return f"Nothing to report {span}: {why}."


# -- CSV -------------------------------------------------------------------------------------
def csv_text(report: dict[str, Any]) -> str:
    """The report's main table as CSV (header row first; numbers unformatted)."""
    buf = io.StringIO()
    w = _SafeWriter(csv.writer(buf, lineterminator="\n"))
    kind = report["report"]
    if kind == "funnel":
        if report.get("by"):  # one row a period, none when no period has any: same header
            # Each period's stage counts, then its conversions as the JSON has them: of
            # those counted at a stage, how many reached the next (`reached`) and the share.
            steps = [f"{a}_to_{b}" for a, b in itertools.pairwise(_STAGES)]
            w.writerow(
                ("period", *_STAGES, *(f"{s}_{k}" for s in steps for k in ("reached", "rate")))
            )
            for p in report["periods"]:
                s = p["stages"]
                conv = {(c["from"], c["to"]): c for c in p["conversions"]}
                cells = []
                for a, b in itertools.pairwise(_STAGES):
                    c = conv.get((a, b)) or {}
                    cells += [_cell(c.get("reached")), _cell(c.get("rate"))]
                w.writerow((p["period"], *(s[k] for k in _STAGES), *cells))
        else:
            conv = {c["from"]: c["rate"] for c in report["conversions"]}
            vel = {v["from"]: v for v in report["velocity"]}
            w.writerow(
                (
                    "stage",
                    "count",
                    "rate_to_next",
                    "median_days_to_next",
                    "mean_days_to_next",
                    "n_to_next",
                )
            )
            for s in report["stages"]:
                v = vel.get(s["stage"], {})
                w.writerow(
                    (
                        s["stage"],
                        s["count"],
                        _cell(conv.get(s["stage"])),
                        _cell(v.get("median_days")),
                        _cell(v.get("mean_days")),
                        _cell(v.get("n")),
                    )
                )
    elif kind == "campaigns":
        head = (
            "campaign",
            "cost",
            "cost_source",
            "prospects",
            "mqls",
            "members",
            "opportunities",
            "won",
            "won_amount",
            "cost_per_prospect",
            "roi",
        )
        # The last row is what no campaign is credited for: `unattributed` 1 and no name, so
        # a campaign of any name (even "(unattributed)") is a row of its own, told apart.
        w.writerow((*head, *_MODEL_COLS, "unattributed"))
        for c in report["campaigns"]:
            w.writerow((*(_cell(c[k]) for k in head), *(c["influence"][m] for m in _MODEL_COLS), 0))
        t = report["totals"]
        blank = [""] * len(head)
        w.writerow((*blank, *(t["unattributed"][m] for m in _MODEL_COLS), 1))
    elif kind == "rules":
        cols = (
            "kind",
            "name",
            "location",
            "matches",
            "prospects",
            "went_mql",
            "went_won",
            "median_days_to_mql",
            "median_days_to_won",
        )
        w.writerow(cols)
        for x in report["rules"]:
            w.writerow(tuple(_cell(x[k]) for k in cols))
        for x in report["never_matched"]:
            w.writerow((x["kind"], x["name"], x["location"], 0, 0, 0, 0, "", ""))
    elif kind == "scores":
        w.writerow(("table", "low", "high", "grade", "count"))
        for b in report["score_histogram"]:
            w.writerow(("score", b["low"], b["high"], "", b["count"]))
        for g in report["grade_distribution"]:
            w.writerow(("grade", "", "", g["grade"] or "", g["count"]))
        for b in report["score_at_mql"]["histogram"]:
            w.writerow(("score_at_mql", b["low"], b["high"], "", b["count"]))
    return buf.getvalue()


def _cell(value: Any) -> Any:
    return "" if value is None else value


_FORMULA = ("=", "+", "-", "@", "\t", "\r")
"""What a spreadsheet reads as the start of a formula (OWASP, "CSV Injection")."""


def _defused(value: Any) -> Any:
    """A text cell a spreadsheet would run as a formula (a campaign named `=HYPERLINK(...)`,
    a rule `-1+2`), behind a single quote: shown as the text it is, not computed.
    Numbers are numbers (a negative ROI stays -0.5); JSON keeps every name exact."""
    if isinstance(value, str) and value.startswith(_FORMULA):
        return "'" + value
    return value


class _SafeWriter:
    """A `csv.writer` whose text cells are `_defused`."""

    def __init__(self, writer: Any) -> None:
        self._writer = writer

    def writerow(self, row: Any) -> None:
        self._writer.writerow([_defused(v) for v in row])
