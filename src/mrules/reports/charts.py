"""Vega-Lite chart specs for the HTML report, built with Altair from the reports' dicts.

Each function takes one report's JSON-able dict (the shapes of
`mrules.reports`, `mrules.reports.timeline` and `mrules replay --diff
--format json`) and returns a Vega-Lite spec as a dict, data inlined. No
chart is drawn here: the page hands the specs to vega-embed (docs/reports-html.md).
A chart with no data is still a chart: one text mark that says there is
nothing yet and why, so the page always renders.
"""

from __future__ import annotations

import itertools
import textwrap
from typing import Any

import altair as alt

from mrules.reports._campaigns import UNATTRIBUTED, campaign_label
from mrules.reports._history import kind_label

__all__ = [
    "STAGE_LABELS",
    "TIMELINE_LABELS",
    "campaign_influence",
    "campaign_roi",
    "conversion_over_time",
    "date_range",
    "empty",
    "funnel",
    "grade_distribution",
    "replay_rules",
    "replay_scores",
    "rule_effectiveness",
    "score_at_mql",
    "score_distribution",
    "timeline",
    "velocity",
]

Spec = dict[str, Any]

# Every chart is as wide as the page's column (`width: "container"`, its axes and legend
# inside: autosize `fit-x`), from a 360-pixel phone to a desktop window; heights are fixed.
WIDTH = "container"
AUTOSIZE = {"type": "fit-x", "contains": "padding"}
# A name on a chart's axis (a rule, a campaign) takes at most 40 % of the chart's width, and
# never more than 260 pixels: the bars keep the rest on a phone. Its tooltip shows it whole.
_NAME_LIMIT = alt.ExprRef(expr="clamp(containerSize()[0] * 0.4, 80, 260)")
# A legend under the chart, in as many columns as fit: beside it, it took a phone's width.
_LEGEND = alt.Legend(orient="bottom", columns=alt.ExprRef(expr="containerSize()[0] < 560 ? 2 : 0"))
STAGE_LABELS = {
    "visitor": "Visitors",
    "prospect": "Prospects",
    "mql": "MQLs",
    "sql": "SQLs",
    "won": "Won",
}
MODEL_LABELS = {  # every model of `mrules report campaigns` (reports.MODELS), in its order
    "source": "Source campaign",
    "primary": "Primary campaign",
    "first_touch": "First touch",
    "last_touch": "Last touch",
    "even": "Even split",
}
TOP_RULES = 15
# Campaigns a chart draws: ten thousand bars are no chart (and made the page 8.5 MB);
# the page's table and `mrules report campaigns` have every one.
TOP_CAMPAIGNS = 25
# Flat labels; those that would overlap (a year of weeks) are left out, as on a number axis.
_FLAT = alt.Axis(labelAngle=0, labelOverlap=True)
_MESSAGE_LINE = 36  # characters of a line of a chart's message (14 px): 300 pixels or less
TIMELINE_LABELS = {"prospect": "prospect", "mql": "MQL", "sql": "SQL", "won": "won"}
_utc = alt.X("at:T", scale=alt.Scale(type="utc"))


def _counts(values: Any) -> alt.Axis:
    """An axis of whole numbers up to the largest of `values`. Vega's tickMinStep=1 still
    ticks every half when the largest is 1 or 2, which format "d" wrote "0 1 1 2 2": small
    ranges get their ticks listed."""
    top = max((int(v) for v in values), default=0)
    if top <= 5:
        return alt.Axis(values=list(range(top + 1)), format="d")
    return alt.Axis(tickMinStep=1, format="d")


def _when(title: str) -> alt.Tooltip:
    # A UTC time unit makes Vega-Lite format with utcFormat. `formatType="utc"` is no format
    # type of Vega-Lite's: it called Vega's utc(year, month, ...) and every tooltip read NaN.
    return alt.Tooltip(
        "at:T", format="%Y-%m-%d %H:%M", title=title, timeUnit="utcyearmonthdatehoursminutes"
    )


def _bands(labels: int, offsets: int, step: int) -> int:
    """The height of a chart of `labels` bands, each of `offsets` bars `step` pixels thick:
    what Vega-Lite's `height: {"step": step}` gives, written out. A step height with a
    container width made Vega-Lite warn (`Dropping "fit-y"`) on the browser's console."""
    return round((labels + 0.2) * step * offsets / 0.8)  # band padding 0.2 inside and out


def _spec(chart: alt.TopLevelMixin) -> Spec:
    spec: Spec = chart.to_dict()
    spec["autosize"] = AUTOSIZE
    return spec


def _label(stage: str) -> str:
    return STAGE_LABELS.get(stage, stage)


def date_range(report: dict[str, Any]) -> str | None:
    """A report's `--since`/`--until` in words (`from X to now`), or None for all time."""
    since, until = report.get("since"), report.get("until")
    if since or until:
        return f"from {since or 'the start'} to {until or 'now'}"
    return None


def empty(title: str, message: str) -> Spec:
    """A chart that says there is nothing to draw yet (one text mark)."""
    lines = textwrap.wrap(message, _MESSAGE_LINE) or [""]  # a phone's width, whole words
    chart = (
        alt.Chart(alt.Data(values=[{"text": message, "lines": lines}]), title=title)
        .mark_text(fontSize=14, color="#666", lineHeight=18)
        .encode(text="lines:N")
        .properties(width=WIDTH, height=max(60, 18 * len(lines) + 24))
    )
    return _spec(chart)


def funnel(report: dict[str, Any]) -> Spec:
    """Stage counts, visitors to won, as horizontal bars with their counts."""
    title = "Lifecycle funnel"
    rows = [{"stage": _label(s["stage"]), "count": s["count"]} for s in report.get("stages", [])]
    if not any(r["count"] for r in rows):
        span = date_range(report)  # a range with no one in it is no call to run events
        if span:
            return empty(title, f"No visitors or prospects {span}.")
        return empty(title, "No visitors or prospects yet: run events into the store.")
    order = [r["stage"] for r in rows]
    base = alt.Chart(alt.Data(values=rows)).encode(
        y=alt.Y("stage:N", sort=order, title=None),
        x=alt.X("count:Q", title="count", axis=_counts(r["count"] for r in rows)),
        tooltip=["stage:N", "count:Q"],
    )
    bars = base.mark_bar(color="#4c78a8")
    text = base.mark_text(align="left", dx=4).encode(text="count:Q")
    return _spec((bars + text).properties(width=WIDTH, height=36 * len(rows), title=title))


def velocity(report: dict[str, Any]) -> Spec:
    """Median days between adjacent stages (bars) with the mean (ticks)."""
    title = "Velocity: days between stages (bar: median, tick: mean)"
    rows = [
        {
            "step": f"{_label(v['from'])} → {_label(v['to'])}",
            "median": v["median_days"],
            "mean": v["mean_days"],
            "n": v["n"],
        }
        for v in report.get("velocity", [])
        if v.get("median_days") is not None
    ]
    if not rows:
        return empty(title, "No prospect has moved between two stages yet.")
    order = [r["step"] for r in rows]
    base = alt.Chart(alt.Data(values=rows)).encode(
        y=alt.Y("step:N", sort=order, title=None),
        tooltip=["step:N", "median:Q", "mean:Q", "n:Q"],
    )
    bars = base.mark_bar(color="#72b7b2").encode(x=alt.X("median:Q", title="days"))
    ticks = base.mark_tick(color="#333", thickness=2).encode(x="mean:Q")
    return _spec((bars + ticks).properties(width=WIDTH, height=40 * len(rows), title=title))


def conversion_over_time(report: dict[str, Any]) -> Spec:
    """Each period's stage-to-stage conversion rate (a line per step)."""
    by = report.get("by") or "period"
    title = f"Conversion over time (by {by})"
    rows = []
    for p in report.get("periods", []):
        st = p["stages"]
        for c in p["conversions"]:
            a, b, rate = c["from"], c["to"], c["rate"]
            if rate is not None:  # the report's own rate: of those at `a`, the share at `b`
                rows.append(
                    {
                        "period": p["period"],
                        "step": f"{_label(a)} → {_label(b)}",
                        "rate": rate,
                        "from": st[a],
                        "to": c["reached"],
                    }
                )
    if not rows:
        return empty(title, "No period has anyone in a stage yet.")
    order = [p["period"] for p in report.get("periods", [])]
    steps = [f"{_label(a)} → {_label(b)}" for a, b in itertools.pairwise(STAGE_LABELS)]
    chart = (
        alt.Chart(alt.Data(values=rows), title=title)
        .mark_line(point=True)
        .encode(
            x=alt.X("period:O", sort=order, title=by, axis=_FLAT),
            y=alt.Y("rate:Q", axis=alt.Axis(format="%"), title="conversion"),
            color=alt.Color("step:N", sort=steps, title=None, legend=_LEGEND),  # the funnel's order
            tooltip=["period:O", "step:N", alt.Tooltip("rate:Q", format=".1%"), "from:Q", "to:Q"],
        )
        .properties(width=WIDTH, height=240)
    )
    return _spec(chart)


def campaign_roi(report: dict[str, Any], top: int = TOP_CAMPAIGNS) -> Spec:
    """ROI = (won amount - cost) / cost per campaign with a cost, under the report's model:
    the `top` with the most won amount when more have a cost."""
    title = "Campaign ROI ((won amount − cost) / cost)"
    model = MODEL_LABELS.get(report.get("model") or "")
    if model is not None:  # the won amount, so the ROI, is the one model's credit
        title = f"Campaign ROI, {model.lower()} model ((won amount − cost) / cost)"
    costed = [c for c in report.get("campaigns", []) if c.get("roi") is not None]
    if len(costed) > top:
        costed = sorted(costed, key=lambda c: (-c["won_amount"], c["campaign"]))[:top]
        title += f": the {top} of {_count(report, 'roi')} with a cost that won the most"
    rows = [
        {
            "campaign": c["campaign"],
            "label": campaign_label(c["campaign"]),
            "roi": c["roi"],
            "cost": c["cost"],
            "won_amount": c["won_amount"],
            "sign": "gain" if c["roi"] >= 0 else "loss",
        }
        for c in costed
    ]
    if not rows:
        return empty(title, "No campaign with a cost yet: declare costs or load them from the CRM.")
    chart = (
        alt.Chart(alt.Data(values=rows), title=title)
        .mark_bar()
        .encode(
            y=alt.Y("label:N", sort="-x", title=None, axis=alt.Axis(labelLimit=_NAME_LIMIT)),
            x=alt.X("roi:Q", axis=alt.Axis(format="%"), title="ROI"),
            color=alt.Color(
                "sign:N",
                scale=alt.Scale(domain=["gain", "loss"], range=["#54a24b", "#e45756"]),
                legend=None,
            ),
            tooltip=[
                alt.Tooltip("label:N", title="campaign"),
                alt.Tooltip("roi:Q", format=".1%"),
                alt.Tooltip("cost:Q", format=",.2f"),
                alt.Tooltip("won_amount:Q", format=",.2f"),
            ],
        )
        .properties(width=WIDTH, height=max(60, 28 * len(rows)))
    )
    return _spec(chart)


def _count(report: dict[str, Any], key: str) -> str:
    n = sum(1 for c in report.get("campaigns", []) if c.get(key) is not None)
    return f"{n:,}"


def _credited_most(c: dict[str, Any]) -> tuple[float, str]:
    return (-max((c.get("influence") or {}).values(), default=0.0), c["campaign"])


def campaign_influence(report: dict[str, Any], top: int = TOP_CAMPAIGNS) -> Spec:
    """Won amount credited to each campaign under each attribution model of the report:
    the `top` campaigns credited most (under any model) when there are more."""
    title = "Won amount credited, by attribution model"
    campaigns = report.get("campaigns", [])
    if len(campaigns) > top:
        campaigns = sorted(campaigns, key=_credited_most)[:top]
        title += f": the {top} of {_count(report, 'campaign')} campaigns credited the most"
    rows = []
    for c in campaigns:
        for model, label in MODEL_LABELS.items():
            amount = (c.get("influence") or {}).get(model) or 0.0
            rows.append(
                {
                    "campaign": c["campaign"],
                    "label": campaign_label(c["campaign"]),
                    "model": label,
                    "amount": amount,
                }
            )
    # What no campaign gets: no campaign's row (`campaign` null), a label no name shows as.
    unattributed = (report.get("totals") or {}).get("unattributed") or {}
    for model, label in MODEL_LABELS.items():
        if unattributed.get(model):
            rows.append(
                {
                    "campaign": None,
                    "label": UNATTRIBUTED,
                    "model": label,
                    "amount": unattributed[model],
                }
            )
    if not any(r["amount"] for r in rows):
        span = date_range(report)
        if span and report.get("sync") is not False:  # without a sync file, syncing is the answer
            return empty(title, f"No won opportunity {span}.")
        return empty(title, "No won opportunity yet: sync the CRM to see its amounts.")
    chart = (
        alt.Chart(alt.Data(values=rows), title=title)
        .mark_bar()
        .encode(
            y=alt.Y("label:N", title=None, axis=alt.Axis(labelLimit=_NAME_LIMIT)),
            yOffset=alt.YOffset("model:N", sort=list(MODEL_LABELS.values())),
            x=alt.X("amount:Q", title="won amount", axis=alt.Axis(format="~s")),
            color=alt.Color(
                "model:N", sort=list(MODEL_LABELS.values()), title="model", legend=_LEGEND
            ),
            tooltip=[
                alt.Tooltip("label:N", title="campaign"),
                "model:N",
                alt.Tooltip("amount:Q", format=",.2f"),
            ],
        )
        .properties(
            width=WIDTH, height=_bands(len({r["label"] for r in rows}), len(MODEL_LABELS), 9)
        )
    )
    return _spec(chart)


def _bounds(buckets: list[dict[str, Any]]) -> alt.Axis:
    """A score axis ticked at the buckets' bounds, whole scores: left to itself, one bucket
    60 to 61 was ticked "60.0 60.1 ... 61.0"."""
    bounds = sorted({b["low"] for b in buckets} | {b["high"] for b in buckets})
    return alt.Axis(values=bounds, format="d", labelOverlap=True)


def _histogram(title: str, buckets: list[dict[str, Any]], x_title: str, color: str) -> Spec:
    rows = [
        {
            "low": b["low"],
            "high": b["high"],
            "count": b["count"],
            "range": f"{b['low']}–{b['high']}",
        }
        for b in buckets
    ]
    chart = (
        alt.Chart(alt.Data(values=rows), title=title)
        .mark_bar(color=color, stroke="white", strokeWidth=0.5)
        .encode(
            x=alt.X("low:Q", title=x_title, bin="binned", axis=_bounds(buckets)),
            x2="high:Q",
            y=alt.Y("count:Q", title="prospects", axis=_counts(r["count"] for r in rows)),
            tooltip=[alt.Tooltip("range:N", title="score"), "count:Q"],
        )
        .properties(width=WIDTH, height=200)
    )
    return _spec(chart)


def score_distribution(report: dict[str, Any]) -> Spec:
    """How many prospects have each score (buckets [low, high))."""
    title = "Score distribution"
    buckets = report.get("score_histogram") or []
    if not any(b["count"] for b in buckets):
        return empty(title, "No prospects yet.")
    return _histogram(title, buckets, "score", "#4c78a8")


def score_at_mql(report: dict[str, Any]) -> Spec:
    """The score prospects had when they became MQLs."""
    at = report.get("score_at_mql") or {}
    title = "Score at MQL"
    if at.get("median") is not None:
        title += f" (median {at['median']:g}, n = {at.get('n', 0)})"
    buckets = at.get("histogram") or []
    if not any(b["count"] for b in buckets):
        return empty(title, "No MQL yet.")
    return _histogram(title, buckets, "score at MQL", "#f58518")


def grade_distribution(report: dict[str, Any]) -> Spec:
    """How many prospects have each grade (no grade: "none")."""
    title = "Grade distribution"
    rows = [
        {"grade": g["grade"] if g["grade"] is not None else "none", "count": g["count"]}
        for g in report.get("grade_distribution") or []
    ]
    if not any(r["count"] for r in rows):
        return empty(title, "No prospects yet.")
    chart = (
        alt.Chart(alt.Data(values=rows), title=title)
        .mark_bar(color="#b279a2")
        .encode(
            x=alt.X("grade:N", sort=[r["grade"] for r in rows], title="grade", axis=_FLAT),
            y=alt.Y("count:Q", title="prospects", axis=_counts(r["count"] for r in rows)),
            tooltip=["grade:N", "count:Q"],
        )
        .properties(width=WIDTH, height=200)
    )
    return _spec(chart)


def rule_effectiveness(report: dict[str, Any], top: int = TOP_RULES) -> Spec:
    """The rules with the most matches: prospects touched and how many went on to MQL and won."""
    title = f"Rule effectiveness (top {top} by matches)"
    ranked = sorted(report.get("rules") or [], key=lambda r: (-r["matches"], r["name"]))
    ranked = [r for r in ranked if r["matches"]][:top]
    if not ranked:
        return empty(title, "No rule has matched yet.")
    rows = []
    order = []
    for r in ranked:
        label = f"{r['name']} ({kind_label(r['kind'])})"  # as the rule-change chart says it
        order.append(label)
        for measure, key in (
            ("matches", "matches"),
            ("prospects", "prospects"),
            ("went MQL", "went_mql"),
            ("went won", "went_won"),
        ):
            rows.append(
                {
                    "rule": label,
                    "at": r.get("location"),
                    "measure": measure,
                    "value": r[key],
                }
            )
    measures = ["matches", "prospects", "went MQL", "went won"]
    chart = (
        alt.Chart(alt.Data(values=rows), title=title)
        .mark_bar()
        .encode(
            y=alt.Y("rule:N", sort=order, title=None, axis=alt.Axis(labelLimit=_NAME_LIMIT)),
            yOffset=alt.YOffset("measure:N", sort=measures),
            x=alt.X("value:Q", title="count", axis=_counts(r["value"] for r in rows)),
            color=alt.Color("measure:N", sort=measures, title=None, legend=_LEGEND),
            tooltip=["rule:N", "at:N", "measure:N", "value:Q"],
        )
        .properties(width=WIDTH, height=_bands(len(order), len(measures), 7))
    )
    return _spec(chart)


def timeline(t: dict[str, Any] | None) -> Spec:
    """One prospect's score over time (a step line) with its stage entries (rules)."""
    if not t:
        return empty("Prospect timeline", "No prospect to show yet.")
    title = f"Lifecycle of {t['email']}: score over time and stages entered"
    points = t.get("score") or []
    if not points:
        return empty(title, "This prospect has no history yet.")
    line = (
        alt.Chart(alt.Data(values=points))
        .mark_line(interpolate="step-after", point=True, color="#4c78a8")
        .encode(
            x=alt.X(
                "at:T",
                title="time (UTC)",
                scale=alt.Scale(type="utc"),
                # A tick every 100 pixels or more: Vega's one every 40, over a desktop's
                # width, ticked 18 days every 12 hours and kept only the labels "12 PM".
                axis=alt.Axis(tickCount=alt.ExprRef(expr="ceil(width / 100)")),
            ),
            y=alt.Y("score:Q", title="score"),
            tooltip=[_when("time"), "score:Q"],
        )
    )
    stages = [
        {"at": s["at"], "stage": TIMELINE_LABELS.get(s["stage"], s["stage"]), "row": 4 + 13 * i}
        for i, s in enumerate(t.get("stages") or [])
    ]
    layers: Any = line
    if stages:
        rules = (
            alt.Chart(alt.Data(values=stages))
            .mark_rule(color="#e45756", strokeDash=[4, 3])
            .encode(x=_utc, tooltip=["stage:N", _when("entered")])
        )
        labels = (
            alt.Chart(alt.Data(values=stages))
            .mark_text(align="left", dx=3, color="#e45756", baseline="top")
            .encode(x=_utc, y=alt.Y("row:Q", scale=None), text="stage:N")
        )
        layers = rules + labels + line  # the points on top: hovering one shows its score
    return _spec(layers.properties(width=WIDTH, height=240, title=title))


def replay_scores(diff: dict[str, Any]) -> Spec:
    """Score buckets before and after a rule change (`replay --diff`)."""
    title = "Score distribution: old rules vs new rules"
    score = diff.get("score") or {}
    rows = []
    order: list[str] = []
    for side in ("old", "new"):
        for b in (score.get(side) or {}).get("buckets", []):
            if b["range"] not in order:
                order.append(b["range"])
            rows.append({"range": b["range"], "rules": side, "prospects": b["prospects"]})
    if not any(r["prospects"] for r in rows):
        return empty(title, "Neither run has prospects.")
    chart = (
        alt.Chart(alt.Data(values=rows), title=title)
        .mark_bar()
        .encode(
            x=alt.X("range:N", sort=order, title="score", axis=_FLAT),
            xOffset=alt.XOffset("rules:N", sort=["old", "new"]),
            y=alt.Y("prospects:Q", title="prospects", axis=_counts(r["prospects"] for r in rows)),
            color=alt.Color(
                "rules:N",
                sort=["old", "new"],
                scale=alt.Scale(range=["#9d9d9d", "#4c78a8"]),
                title="rules",
                legend=_LEGEND,
            ),
            tooltip=["range:N", "rules:N", "prospects:Q"],
        )
        .properties(width=WIDTH, height=200)
    )
    return _spec(chart)


def replay_rules(diff: dict[str, Any], top: int = TOP_RULES) -> Spec:
    """How often each rule acted under the old and the new rules (the most changed first)."""
    title = "Rule activity: old rules vs new rules"
    acted = [r for r in diff.get("rules") or [] if r["before"] or r["after"]]
    ranked = acted[:top]
    if len(acted) > top:  # `replay --diff` lists the most changed first
        title += f" (the {top} that changed most, of {len(acted)})"
    if not ranked:
        return empty(title, "No rule acted in either run.")
    rows = []
    order = []
    for r in ranked:
        label = f"{r['name']} ({r['kind']})"
        order.append(label)
        rows.append({"rule": label, "rules": "old", "count": r["before"], "at": r.get("at")})
        rows.append({"rule": label, "rules": "new", "count": r["after"], "at": r.get("at")})
    chart = (
        alt.Chart(alt.Data(values=rows), title=title)
        .mark_bar()
        .encode(
            y=alt.Y("rule:N", sort=order, title=None, axis=alt.Axis(labelLimit=_NAME_LIMIT)),
            yOffset=alt.YOffset("rules:N", sort=["old", "new"]),
            x=alt.X("count:Q", title="times acted", axis=_counts(r["count"] for r in rows)),
            color=alt.Color(
                "rules:N",
                sort=["old", "new"],
                scale=alt.Scale(range=["#9d9d9d", "#4c78a8"]),
                title="rules",
                legend=_LEGEND,
            ),
            tooltip=["rule:N", "at:N", "rules:N", "count:Q"],
        )
        .properties(width=WIDTH, height=_bands(len(order), 2, 9))
    )
    return _spec(chart)
