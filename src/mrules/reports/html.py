"""`mrules report html OUT`: one self-contained HTML page with the reports as charts.

The page (docs/reports-html.md) holds everything it needs: the reports' data,
their Vega-Lite specs (`mrules.reports.charts`) and the vega, vega-lite and
vega-embed JavaScript, inlined once (taken from vl-convert, which ships them).
It loads nothing from the network, and says so to the browser: its Content
Security Policy allows no fetch, no remote script, style or image. Charts are
drawn by vega-embed with its SVG renderer when the page opens.

`page(data)` renders dicts of the contract's shapes; `collect(...)` computes
them from a store with the report functions of `mrules.reports`.
"""

from __future__ import annotations

import datetime as dt
import functools
import html
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, ValidationError

from mrules.diagnostics import plural
from mrules.reports import charts
from mrules.reports._campaigns import campaign_label
from mrules.reports._history import kind_label
from mrules.timetext import utc_text

__all__ = [
    "default_prospect",
    "javascript",
    "page",
    "prospect_timeline",
    "replay_diff_problem",
    "write",
]

_CSP = (
    "default-src 'none'; script-src 'unsafe-inline' 'unsafe-eval'; style-src 'unsafe-inline';"
    " img-src data:; font-src data:"
)

_STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0;
  color: #222; background: #fafafa; }
header { background: #1f3b57; color: #fff; padding: 18px 32px; }
header h1 { margin: 0 0 4px; font-size: 22px; overflow-wrap: anywhere; }
header p { margin: 0; opacity: .85; font-size: 13px; overflow-wrap: anywhere; }
main { padding: 8px 32px 40px; max-width: 1100px; }
section { background: #fff; border: 1px solid #e3e3e3; border-radius: 6px; margin: 18px 0;
  padding: 12px 20px 18px; }
h2 { font-size: 18px; margin: 6px 0 12px; }
.figures { display: flex; gap: 16px; flex-wrap: wrap; margin-bottom: 8px; }
.figure { border: 1px solid #e3e3e3; border-radius: 6px; padding: 8px 16px; min-width: 150px; }
.figure b { display: block; font-size: 24px; }
.figure span { font-size: 12px; color: #555; }
div.table { max-width: 100%; overflow-x: auto; margin: 8px 0; }
table { border-collapse: collapse; font-size: 13px; max-width: 100%; }
th, td { border-bottom: 1px solid #eee; padding: 3px 10px; text-align: left; }
td { overflow-wrap: anywhere; }
td:not(.n) { min-width: 5.5em; }  /* a word breaks only past 5.5em: "Visitors", not "Visitor|s" */
td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; }
td.n { white-space: nowrap; overflow-wrap: normal; }
figure { margin: 14px 0; }
figcaption { font-size: 14px; font-weight: 600; margin: 0 0 4px; overflow-wrap: anywhere; }
.chart, .chart.vega-embed { display: block; width: 100%; }
@media (max-width: 600px) {
  header { padding: 12px 12px; }
  main { padding: 4px 8px 24px; }
  section { padding: 8px 10px 12px; }
  th, td { padding: 3px 5px; }
}
.note { color: #555; font-size: 13px; }
.error { color: #b00; }
"""

# Draws every chart of the page: the specs are JSON in #mrules-specs, keyed by element id.
_DRAW = """
(function () {
  var specs = JSON.parse(document.getElementById("mrules-specs").textContent);
  var done = [];
  Object.keys(specs).forEach(function (id) {
    var el = document.getElementById(id);
    done.push(vegaEmbed(el, specs[id], {renderer: "svg", actions: false})
      .then(function () { el.setAttribute("data-drawn", "yes"); })
      .catch(function (err) {
        el.setAttribute("data-drawn", "error");
        el.textContent = "This chart could not be drawn: " + err;
        el.className += " error";
        console.error(err);
      }));
  });
  Promise.all(done).then(function () { document.body.setAttribute("data-charts", "drawn"); });
})();
"""


_GLOBALS = "window.vegaEmbed = vegaEmbed; window.vega = vega; window.vegaLite = vegaLite;"


@functools.cache
def javascript() -> str:
    """vega, vega-lite and vega-embed as one script (vl-convert's), for Altair's Vega-Lite."""
    import altair as alt
    import vl_convert

    major_minor = ".".join(alt.SCHEMA_VERSION.lstrip("v").split(".")[:2])
    versions = vl_convert.get_vegalite_versions()
    wanted = major_minor if major_minor in versions else versions[-1]
    return str(vl_convert.javascript_bundle(_GLOBALS, vl_version=wanted))


_CLOSERS = re.compile(r"<(/script|!--)", re.IGNORECASE)


def _script_text(text: str) -> str:
    """Text safe inside a <script> element: no `</script` or `<!--` can end it early.

    `<\\/script` means `</script` in a JavaScript string and in JSON; regular
    expressions elsewhere (`/</g`) are left alone.
    """
    return _CLOSERS.sub(lambda m: "<\\" + m.group(1), text)


def _json_text(value: Any) -> str:
    """JSON for a <script type="application/json"> element: every `<` written `\\u003c`."""
    return orjson.dumps(value).decode().replace("<", "\\u003c")


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def _num(x: Any, fmt: str = ",") -> str:
    if x is None:
        return "–"
    if isinstance(x, float) and fmt == ",":
        return f"{x:,.2f}"
    return format(x, fmt)


def _days(x: float | None) -> str:
    return "–" if x is None else f"{x:,.1f}"


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{x:.1%}"


def _table(head: list[str], rows: list[list[Any]], numeric: set[int] | None = None) -> str:
    numeric = numeric or set()
    th = "".join(
        f'<th class="n">{_e(h)}</th>' if i in numeric else f"<th>{_e(h)}</th>"
        for i, h in enumerate(head)
    )
    body = []
    for row in rows:
        tds = "".join(
            f'<td class="n">{_e(c)}</td>' if i in numeric else f"<td>{_e(c)}</td>"
            for i, c in enumerate(row)
        )
        body.append(f"<tr>{tds}</tr>")
    # In a box of the page's width that scrolls sideways when the table needs more (nine
    # columns of figures on a phone), so the page itself never does.
    return (
        f"<div class='table'><table><thead><tr>{th}</tr></thead>"
        f"<tbody>{''.join(body)}</tbody></table></div>"
    )


class _Page:
    def __init__(self) -> None:
        self.parts: list[str] = []
        self.specs: dict[str, Any] = {}

    def chart(self, name: str, spec: dict[str, Any]) -> None:
        """The chart as a figure: its title a caption above it, in the page's text, which wraps
        to a phone's width (vega draws a title on one line, however long: an e-mail address)."""
        chart_id = f"chart-{name}"
        spec = dict(spec)
        title = spec.pop("title", None)
        if isinstance(title, dict):
            title = title.get("text")
        self.specs[chart_id] = spec
        caption = f"<figcaption>{_e(title)}</figcaption>" if title else ""
        self.parts.append(
            f'<figure id="figure-{_e(name)}">{caption}'
            f'<div class="chart" id="{chart_id}" data-chart="{_e(name)}"></div></figure>'
        )

    def add(self, text: str) -> None:
        self.parts.append(text)


def _nothing(p: _Page, report: dict[str, Any], stored: bool | None) -> None:
    """Under a section's title, the line `mrules report KIND` prints under empty tables: why
    there is nothing in it (none in the range; a store with no prospect says it once, on top)."""
    from mrules.reports.render import nothing_to_report

    line = None if stored is False else nothing_to_report(report, stored=stored)
    if line is not None:
        p.add(_nothing_note(line))


def _nothing_note(line: str) -> str:
    """The line as a note, its `command` as code, as the page's other notes write it."""
    return "<p class='note nothing'>" + re.sub(r"`([^`]*)`", r"<code>\1</code>", _e(line)) + "</p>"


def _range(data: dict[str, Any]) -> str:
    return charts.date_range(data.get("funnel") or {}) or "all time"


def _funnel_section(p: _Page, f: dict[str, Any], stored: bool | None = None) -> None:
    p.add("<section id='funnel'><h2>Lifecycle funnel</h2>")
    _nothing(p, f, stored)
    seed = f.get("seed") or {}
    figures = (
        ("MQLs", seed.get("mqls")),
        ("accepted by sales (SQLs)", seed.get("accepted_by_sales")),
        ("became customers (won)", seed.get("customers")),
    )
    p.add(
        '<div class="figures">'
        + "".join(
            f'<div class="figure"><b>{_num(v, ",") if v is not None else "–"}</b>'
            f"<span>{_e(label)}</span></div>"
            for label, v in figures
        )
        + "</div>"
    )
    # As `mrules report funnel` notes: zeros that are no answer from sales.
    if f.get("sync") is False:
        p.add(
            "<p class='note'>No sync file, so no SQL and no won stage: run"
            " <code>mrules sync run</code> (or give <code>--sync-db</code>).</p>"
        )
    elif f.get("sync") and f.get("crm_opportunities") == 0:
        p.add(
            "<p class='note'>The sync file holds no opportunity, so no SQL and no won stage:"
            " is <code>opportunity</code> in the sync block's <code>objects</code> (their"
            " default is <code>lead, contact</code>)?</p>"
        )
    reading = f.get("reading") or "cohort"
    p.add(
        f"<p class='note'>Reading: <b>{_e(reading)}</b> "
        + (
            "(prospects counted by their creation date)."
            if reading == "cohort"
            else "(each stage counted by the date it was entered)."
        )
        + "</p>"
    )
    p.chart("funnel", charts.funnel(f))
    conv = f.get("conversions") or []
    if conv:
        # Each step's velocity beside its conversion, with `n`, the prospects behind the
        # days, as `mrules report funnel` shows them: a median of 2 is not one of 2,000.
        vel = {(v["from"], v["to"]): v for v in f.get("velocity") or []}
        p.add(
            _table(
                ["from", "to", "conversion", "median days", "mean days", "n"],
                [
                    [
                        charts.STAGE_LABELS.get(c["from"], c["from"]),
                        charts.STAGE_LABELS.get(c["to"], c["to"]),
                        _pct(c["rate"]),
                        _days(vel.get((c["from"], c["to"]), {}).get("median_days")),
                        _days(vel.get((c["from"], c["to"]), {}).get("mean_days")),
                        _num(vel.get((c["from"], c["to"]), {}).get("n")),
                    ]
                    for c in conv
                ],
                {2, 3, 4, 5},
            )
        )
    p.chart("velocity", charts.velocity(f))
    p.chart("conversion-over-time", charts.conversion_over_time(f))
    p.add("</section>")


TABLE_CAMPAIGNS = 100
"""Campaigns the page's table lists (those that won the most): `mrules report campaigns
--format csv` has every one. Ten thousand rows, each in the table and twice in the charts'
data, made a page of 8.5 MB."""


def _campaigns_section(p: _Page, c: dict[str, Any], stored: bool | None = None) -> None:
    p.add("<section id='campaigns'><h2>Campaigns: ROI and influence</h2>")
    _nothing(p, c, stored)
    p.chart("campaign-roi", charts.campaign_roi(c))
    p.chart("campaign-influence", charts.campaign_influence(c))
    rows = [
        [
            campaign_label(x["campaign"]),
            _num(x["cost"]),
            x["prospects"],
            x["mqls"],
            x["opportunities"],
            x["won"],
            _num(x["won_amount"]),
            _num(x["cost_per_prospect"]),
            _pct(x["roi"]),
        ]
        for x in (c.get("campaigns") or [])[:TABLE_CAMPAIGNS]
    ]
    left_out = len(c.get("campaigns") or []) - len(rows)
    model = charts.MODEL_LABELS.get(c.get("model") or "")
    if rows and model is not None:  # the figures of one model, as the text report's title says
        p.add(
            "<p class='note'>Opportunities, won, won amount and ROI credit each campaign under"
            f" the <b>{_e(model.lower())}</b> model (<code>mrules report campaigns"
            " --model</code> gives another); the chart above has all five.</p>"
        )
    if rows:
        head = [
            "campaign",
            "cost",
            "prospects",
            "MQLs",
            "opportunities",
            "won",
            "won amount",
            "cost / prospect",
            "ROI",
        ]
        p.add(_table(head, rows, set(range(1, 9))))
    if left_out > 0:  # the report's order: the most won amount first
        p.add(
            f"<p class='note'>The {len(rows):,} campaigns that won the most; {left_out:,} more"
            " (and every figure of each) are in <code>mrules report campaigns --format csv</code>"
            " (or <code>--format json</code>).</p>"
        )
    totals = c.get("totals") or {}
    if totals:
        un = totals.get("unattributed") or {}
        p.add(
            "<p class='note'>Total won amount "
            f"{_num(totals.get('won_amount'))}; not credited to any campaign: "
            + ", ".join(
                f"{_e(label)} {_num(un.get(m))}" for m, label in charts.MODEL_LABELS.items()
            )
            + ".</p>"
        )
    for note in c.get("notes") or ():  # as `mrules report campaigns` says on stderr
        p.add(f"<p class='note'>{_e(note[:1].upper() + note[1:])}.</p>")
    if c.get("sync") and c.get("crm_campaigns") == 0:  # as `mrules report campaigns` notes
        p.add(
            "<p class='note'>The sync file holds no CRM campaign, so no CRM costs or members,"
            " nothing credited under first touch, last touch and even split, and primary"
            " campaigns named by id: is <code>campaign</code> in the sync block's"
            " <code>objects</code>?</p>"
        )
    p.add("</section>")


def _scores_section(p: _Page, s: dict[str, Any], stored: bool | None = None) -> None:
    p.add("<section id='scores'><h2>Scores and grades</h2>")
    _nothing(p, s, stored)
    p.chart("score-distribution", charts.score_distribution(s))
    p.chart("score-at-mql", charts.score_at_mql(s))
    p.chart("grade-distribution", charts.grade_distribution(s))
    p.add("</section>")


def _rules_section(p: _Page, r: dict[str, Any], stored: bool | None = None) -> None:
    p.add("<section id='rules'><h2>Rule effectiveness</h2>")
    _nothing(p, r, stored)
    p.chart("rules", charts.rule_effectiveness(r))
    never = r.get("never_matched") or []
    if never:
        p.add(f"<p class='note'>{plural(len(never), 'rule')} never matched:</p>")
        p.add(
            _table(
                ["kind", "rule", "at"],
                [[kind_label(n["kind"]), n["name"], n["location"]] for n in never],
            )
        )
    p.add("</section>")


def _timeline_section(p: _Page, t: dict[str, Any] | None) -> None:
    p.add("<section id='timeline'><h2>One prospect's lifecycle</h2>")
    p.chart("timeline", charts.timeline(t))
    if t and t.get("stages"):
        p.add(
            _table(
                ["stage", "entered"],
                [
                    [charts.TIMELINE_LABELS.get(s["stage"], s["stage"]), s["at"]]
                    for s in t["stages"]
                ],
            )
        )
    p.add(
        "<p class='note'>Another prospect: <code>mrules report html OUT --timeline EMAIL</code>;"
        " as text: <code>mrules explain EMAIL --timeline</code>.</p></section>"
    )


_DIFF_CATEGORIES = (
    ("MQL gained", ("mql", "gained")),
    ("MQL lost", ("mql", "lost")),
    ("assignment changed", ("assignment",)),
    ("grade changed", ("grade",)),
    ("lists changed", ("lists",)),
    ("fields, tags and other data changed", ("data",)),
    ("CRM work changed", ("crm",)),
    ("only under the old rules", ("only_old",)),
    ("only under the new rules", ("only_new",)),
)


class _Shape(BaseModel):
    # Strict: "5" is not a count, true is not 1; keys the page does not read are let through.
    model_config = ConfigDict(strict=True, extra="ignore")


class _Example(_Shape):
    prospect: str
    reason: str | None = None


class _Category(_Shape):
    count: int
    examples: list[_Example]


class _Mql(_Shape):
    old: int
    new: int
    gained: _Category
    lost: _Category


class _Message(_Shape):
    prospect: str
    kind: str
    count: int
    time: str | None
    reason: str


class _Messages(_Shape):
    total: int
    messages: list[_Message]


class _Outbox(_Shape):
    old: int
    new: int
    gained: _Messages
    lost: _Messages


class _Bucket(_Shape):
    range: str
    prospects: int


class _Scores(_Shape):
    buckets: list[_Bucket]


class _Score(_Shape):
    old: _Scores
    new: _Scores


class _Rule(_Shape):
    kind: str
    name: str
    at: str | None
    before: int
    after: int


class _Prospects(_Shape):
    changed: int


class _ReplayDiff(_Shape):
    """What `_replay_section` and the replay charts read of `mrules replay --diff` JSON."""

    mql_list: str
    prospects: _Prospects
    mql: _Mql
    assignment: _Category
    grade: _Category
    lists: _Category
    data: _Category | None = None  # not in the JSON of replays before it was compared
    crm: _Category
    only_old: _Category
    only_new: _Category
    outbox: _Outbox
    score: _Score
    rules: list[_Rule]


_EXPECTED = {
    "missing": "missing",
    "model_type": "an object expected",
    "dict_type": "an object expected",
    "list_type": "a list expected",
    "int_type": "a whole number expected",
    "string_type": "a string expected",
}


def replay_diff_problem(data: Any) -> str | None:
    """The first key path of `data` the replay section cannot read, with what it expects
    (`mql.gained.count: a whole number expected`), or None: checked before any page is written,
    so a hand-edited or foreign file is refused instead of crashing the page half way."""
    try:
        _ReplayDiff.model_validate(data)
    except ValidationError as e:
        err = e.errors()[0]
        where = "".join(f"[{k}]" if isinstance(k, int) else f".{k}" for k in err["loc"])
        return f"{where.lstrip('.') or 'the top level'}: {_EXPECTED.get(err['type'], err['msg'])}"
    return None


def _dig(d: dict[str, Any], path: tuple[str, ...]) -> dict[str, Any]:
    for k in path:
        d = d.get(k) or {}
    return d


def _replay_section(p: _Page, d: dict[str, Any]) -> None:
    p.add("<section id='replay-diff'><h2>Rule change: replay --diff</h2>")
    pr = d.get("prospects") or {}
    mql = d.get("mql") or {}
    out = d.get("outbox") or {}
    gained = (out.get("gained") or {}).get("total", 0)
    lost = (out.get("lost") or {}).get("total", 0)
    figures = (
        ("prospects changed", pr.get("changed")),
        (f"MQLs ({d.get('mql_list', 'MQL')}) old → new", f"{mql.get('old')} → {mql.get('new')}"),
        ("messages old → new", f"{out.get('old')} → {out.get('new')}"),
        (
            "messages gained / lost",
            f"{gained} / {lost}",
        ),
    )
    p.add(
        '<div class="figures">'
        + "".join(
            f'<div class="figure"><b>{_e(v)}</b><span>{_e(label)}</span></div>'
            for label, v in figures
        )
        + "</div>"
    )
    rows = []
    for label, path in _DIFF_CATEGORIES:
        cat = _dig(d, path)
        for ex in cat.get("examples") or []:
            rows.append([label, ex.get("prospect"), ex.get("reason") or ""])
        if cat.get("count", 0) > len(cat.get("examples") or []):
            rows.append([label, f"… {cat['count'] - len(cat['examples'])} more", ""])
    counts = [[label, _dig(d, path).get("count", 0)] for label, path in _DIFF_CATEGORIES]
    p.add(_table(["what changed", "prospects"], counts, {1}))
    if rows:
        p.add(_table(["what changed", "prospect", "why (new rules unless said)"], rows))
    for side in ("gained", "lost"):
        msgs = (out.get(side) or {}).get("messages") or []
        if msgs:
            p.add(f"<p class='note'>Messages {side}:</p>")
            p.add(
                _table(
                    ["prospect", "kind", "count", "time", "rule"],
                    [
                        [
                            m.get("prospect"),
                            m.get("kind"),
                            m.get("count"),
                            m.get("time"),
                            m.get("reason"),
                        ]
                        for m in msgs
                    ],
                    {2},
                )
            )
    p.chart("replay-scores", charts.replay_scores(d))
    p.chart("replay-rules", charts.replay_rules(d))
    p.add("</section>")


def page(data: dict[str, Any], *, script: Callable[[], str] = javascript) -> str:
    """The whole HTML page for `data`: {"funnel", "campaigns", "rules", "scores", "timeline",
    "replay_diff", "title", "generated", "stored"} (each report optional but the page shows all
    sections; `stored`: whether the store holds any prospect).
    """
    p = _Page()
    title = data.get("title") or "mrules report"
    generated = data.get("generated") or utc_text(dt.datetime.now(dt.UTC))
    # Whether the store holds any prospect (`mrules report html` asks it; None: not known).
    stored = data.get("stored")
    if stored is False:
        from mrules.reports.render import NO_PROSPECT

        p.add(_nothing_note(NO_PROSPECT))
    _funnel_section(p, data.get("funnel") or {}, stored)
    _campaigns_section(p, data.get("campaigns") or {}, stored)
    _rules_section(p, data.get("rules") or {}, stored)
    _scores_section(p, data.get("scores") or {}, stored)
    _timeline_section(p, data.get("timeline"))
    if data.get("replay_diff") is not None:
        _replay_section(p, data["replay_diff"])
    specs = _json_text(p.specs)
    return "".join(
        [
            "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>",
            f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">',
            "<meta name='viewport' content='width=device-width, initial-scale=1'>",
            f"<title>{_e(title)}</title><style>{_STYLE}</style></head><body>",
            f"<header><h1>{_e(title)}</h1><p>{_e(_range(data))} · generated {_e(generated)}"
            " · opens offline: everything is in this file</p></header><main>",
            *p.parts,
            "</main>",
            f'<script type="application/json" id="mrules-specs">{specs}</script>',
            f"<script>{_script_text(script())}</script>",
            f"<script>{_DRAW}</script>",
            "</body></html>\n",
        ]
    )


def default_prospect(store: Any, sync_db: str | Path | None) -> str | None:
    """The prospect the page shows when none is asked for: one that won, else the first one."""
    import sqlite3

    from mrules.sqlitefiles import UNREADABLE, reading_uri, refuse_writes

    if sync_db is not None and Path(sync_db).is_file():
        try:
            conn = sqlite3.connect(reading_uri(sync_db), uri=True)
            conn.set_authorizer(refuse_writes)
            try:
                row = conn.execute(
                    "SELECT min(l.prospect) FROM link l"
                    " JOIN opportunity_role r ON r.contact = l.crm_id AND r.deleted = 0"
                    " JOIN opportunity o ON o.id = r.opportunity AND o.deleted = 0"
                    " WHERE l.deleted = 0 AND o.is_won = 1"
                ).fetchone()
            finally:
                conn.close()
            if row and row[0] and store.prospect(row[0]) is not None:
                return str(row[0])
        except UNREADABLE:
            pass
    for email, _ in store.prospects():
        return str(email)
    return None


def prospect_timeline(
    store: Any, email: str, sync_db: str | Path | None, *, given: bool = True
) -> dict[str, Any] | None:
    """The timeline of `email` in an open store, or None when there is no such prospect.

    `given`: `sync_db` was given (`--sync-db`), not found beside the store (`crm_stages`)."""
    from mrules.outputs import prospect_record
    from mrules.reports.timeline import crm_stages, timeline
    from mrules.state import Codecs, Prospect

    raw = store.prospect(email)
    if raw is None:
        return None
    codecs = Codecs()
    state = prospect_record(Prospect.from_json(raw, codecs, email), codecs, [])
    entries = list(store.ledger(prospect=email))
    crm = crm_stages(sync_db, email, given=given)
    return timeline(email, entries, created=state["created"], crm=crm)


def write(path: Path, text: str) -> None:
    """Write the page atomically (the old file stays whole until the new one is complete)."""
    from mrules.atomic import atomic_write

    atomic_write(path, text.encode("utf-8"))
