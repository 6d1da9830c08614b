"""Reports over a store and its sync file: the funnel, campaigns, rules and scores.

Each report is a plain JSON-able dict (the shapes are in docs/reports.md);
`mrules report` renders it as a table, JSON or CSV, and the HTML report draws
the same dicts. Every figure is read with set-based SQL over the store (the
prospects' JSON state, the history) and the sync file (links, opportunities,
contact roles, campaigns and their members), attached to one read-only
connection; the one pass in Python is over the packed ledger steps, which
SQL cannot walk (rules touched, score at MQL).

    funnel(store, *, sync_db=None, since=None, until=None, by=None, reading="cohort")
    campaigns(store, *, sync_db=None, rules=None, since=None, until=None, model="even")
    rules_report(store, *, rules=None, sync_db=None, since=None, until=None)
    scores(store, *, since=None, until=None)

`store` is the path of an mrules store; `sync_db` the sync file (default
NAME.sync.db beside NAME.db, when it exists); `since`/`until` ISO 8601 dates
or times (UTC when no zone is given; `since` included, `until` excluded).
"""

from __future__ import annotations

import itertools
import math
import statistics
from array import array
from collections.abc import Sequence
from operator import itemgetter
from pathlib import Path
from typing import Any

from mrules.reports._db import DAY, Source, epoch, iso, period_sql
from mrules.reports._history import kind_key, walk

__all__ = [
    "MODELS",
    "PERIODS",
    "READINGS",
    "STAGES",
    "ReportError",
    "ReportRulesError",
    "campaigns",
    "funnel",
    "rules_report",
    "scores",
]

STAGES = ("visitor", "prospect", "mql", "sql", "won")
READINGS = ("cohort", "stage")
PERIODS = ("week", "month", "quarter")
MODELS = ("source", "primary", "first_touch", "last_touch", "even")
_FAR = 1e18  # an open end of a date range
_YEARS = (-62_135_596_800.0, 253_402_300_799.0)  # 0001-01-01 to 9999-12-31T23:59:59, UTC


class ReportError(ValueError):
    """A report's arguments are wrong (a bad date, an unknown period or model)."""


class ReportRulesError(ReportError):
    """The `rules` a report was given have errors (the command exits 1, as `lint` does)."""


def _rules_error(e: Any) -> ReportError:
    if getattr(e, "diagnostics", None):
        return ReportRulesError(f"the rules have errors: {e}")
    return ReportError(f"the rules cannot be read: {e}")


# -- shared pieces ---------------------------------------------------------------------------
def _range(since: Any, until: Any) -> tuple[float, float, str | None, str | None]:
    try:
        lo = epoch(since)
    except ValueError as e:
        raise ReportError(f"--since {e}") from None
    try:
        hi = epoch(until)
    except ValueError as e:
        raise ReportError(f"--until {e}") from None
    for option, value, text in (("--since", lo, since), ("--until", hi, until)):
        if value is not None and not _YEARS[0] <= value <= _YEARS[1]:
            raise ReportError(f"{option} {text!r} is not a date between the years 1 and 9999 (UTC)")
    if lo is not None and hi is not None and hi <= lo:
        raise ReportError(f"--until ({until}) must be after --since ({since})")
    return (
        -_FAR if lo is None else lo,
        _FAR if hi is None else hi,
        iso(lo),
        iso(hi),
    )


def _days(values: Sequence[float]) -> dict[str, Any]:
    if not values:
        return {"n": 0, "median_days": None, "mean_days": None}
    return {
        "n": len(values),
        "median_days": round(float(statistics.median(values)), 4),
        "mean_days": round(float(statistics.fmean(values)), 4),
    }


def _rate(part: int, whole: int) -> float | None:
    return None if whole == 0 else round(part / whole, 6)


def _in(col: str) -> str:
    """SQL: the time in `col` lies in the range given as the next two parameters."""
    return f"({col} IS NOT NULL AND {col} >= ? AND {col} < ?)"


def _visitors(src: Source) -> None:
    """Temp table `vis`: one row a tracked visitor: first seen, the prospect it became."""
    from mrules.reports._db import ROW_TS

    src.conn.execute("DROP TABLE IF EXISTS temp.vis")
    src.conn.execute(
        f"CREATE TEMP TABLE vis AS SELECT h.visitor AS v, min({ROW_TS}) AS first,"
        " max(h.prospect) AS prospect FROM main.history h WHERE h.visitor IS NOT NULL"
        " GROUP BY h.visitor"
    )


# -- funnel ----------------------------------------------------------------------------------
_COL = {"prospect": "created", "mql": "mql", "sql": "sql", "won": "won"}


def funnel(
    store: str | Path,
    *,
    sync_db: str | Path | None = None,
    since: Any = None,
    until: Any = None,
    by: str | None = None,
    reading: str = "cohort",
) -> dict[str, Any]:
    """The lifecycle funnel: stage counts, conversions, velocity, periods, the seed's numbers."""
    if reading not in READINGS:
        raise ReportError(f"unknown reading {reading!r}: cohort or stage")
    if by is not None and by not in PERIODS:
        raise ReportError(f"unknown period {by!r}: week, month or quarter")
    lo, hi, since_iso, until_iso = _range(since, until)
    with Source.open(store, sync_db) as src:
        _visitors(src)
        q = src.query

        def counted(stage: str) -> tuple[str, tuple[float, ...]]:
            """WHERE clause (over ps) of the prospects counted at a prospect stage."""
            col = _COL[stage]
            if reading == "cohort":
                return f"{_in('created')} AND {col} IS NOT NULL", (lo, hi)
            return _in(col), (lo, hi)

        counts: dict[str, int] = {}
        v_total, v_converted = q(
            f"SELECT count(*), count(prospect) FROM vis WHERE {_in('first')}", (lo, hi)
        )[0]
        counts["visitor"] = v_total
        for stage in STAGES[1:]:
            where, params = counted(stage)
            counts[stage] = q(f"SELECT count(*) FROM ps WHERE {where}", params)[0][0]

        conversions = [{"from": "visitor", "to": "prospect", "rate": _rate(v_converted, v_total)}]
        velocity = [
            {
                "from": "visitor",
                "to": "prospect",
                **_days(
                    [
                        r[0]
                        for r in q(
                            "SELECT max(0.0, (ps.created - vis.first) / ?) FROM vis"
                            f" JOIN ps ON ps.id = vis.prospect WHERE {_in('vis.first')}",
                            (DAY, lo, hi),
                        )
                    ]
                ),
            }
        ]
        for a, b in itertools.pairwise(STAGES[1:]):
            where, params = counted(a)
            ca, cb = _COL[a], _COL[b]
            total, reached = q(f"SELECT count(*), count({cb}) FROM ps WHERE {where}", params)[0]
            conversions.append({"from": a, "to": b, "rate": _rate(reached, total)})
            days = [
                r[0]
                for r in q(
                    f"SELECT max(0.0, ({cb} - {ca}) / ?) FROM ps WHERE {where}"
                    f" AND {cb} IS NOT NULL",
                    (DAY, *params),
                )
            ]
            velocity.append({"from": a, "to": b, **_days(days)})

        crm_opportunities = src.crm_opportunities()
        where, params = counted("mql")
        accepted, customers = q(f"SELECT count(sql), count(won) FROM ps WHERE {where}", params)[0]
        seed = {"mqls": counts["mql"], "accepted_by_sales": accepted, "customers": customers}

        periods: list[dict[str, Any]] = []
        if by is not None:
            table: dict[str, dict[str, int]] = {}

            def add(rows: list[tuple[Any, ...]], stage: str) -> None:
                for label, n in rows:
                    table.setdefault(label, dict.fromkeys(STAGES, 0))[stage] += n

            add(
                q(
                    f"SELECT {period_sql(by, 'first')} AS p, count(*) FROM vis"
                    f" WHERE {_in('first')} GROUP BY p",
                    (lo, hi),
                ),
                "visitor",
            )
            for stage in STAGES[1:]:
                col = _COL[stage]
                key = "created" if reading == "cohort" else col
                where, params = counted(stage)
                add(
                    q(
                        f"SELECT {period_sql(by, key)} AS p, count(*) FROM ps"
                        f" WHERE {where} GROUP BY p",
                        params,
                    ),
                    stage,
                )
            # Each period's conversions, defined as the whole range's are (of those
            # counted at a stage in the period, the share that reached the next one), so a
            # rate stays between 0 and 1; the stage counts alone cannot give them.
            steps: dict[str, dict[str, tuple[int, int]]] = {}
            for label, total, reached in q(
                f"SELECT {period_sql(by, 'first')} AS p, count(*), count(prospect) FROM vis"
                f" WHERE {_in('first')} GROUP BY p",
                (lo, hi),
            ):
                steps.setdefault(label, {})["visitor"] = (total, reached)
            for a, b in itertools.pairwise(STAGES[1:]):
                where, params = counted(a)
                key = "created" if reading == "cohort" else _COL[a]
                for label, total, reached in q(
                    f"SELECT {period_sql(by, key)} AS p, count(*), count({_COL[b]}) FROM ps"
                    f" WHERE {where} GROUP BY p",
                    params,
                ):
                    steps.setdefault(label, {})[a] = (total, reached)

            def step(period: str, a: str, b: str) -> dict[str, Any]:
                total, reached = steps.get(period, {}).get(a, (0, 0))
                return {"from": a, "to": b, "reached": reached, "rate": _rate(reached, total)}

            periods = [
                {
                    "period": k,
                    "stages": table[k],
                    "conversions": [step(k, a, b) for a, b in itertools.pairwise(STAGES)],
                }
                for k in sorted(table)
            ]

    return {
        "report": "funnel",
        "since": since_iso,
        "until": until_iso,
        "by": by,
        "reading": reading,
        "sync": src.sync_path is not None,
        "crm_opportunities": crm_opportunities,
        "stages": [{"stage": s, "count": counts[s]} for s in STAGES],
        "conversions": conversions,
        "velocity": velocity,
        "periods": periods,
        "seed": seed,
    }


# -- scores ----------------------------------------------------------------------------------
_WIDTHS = (1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000, 2000, 2500, 5000, 10000)


def _width(lowest: int, highest: int, most: int = 20) -> int:
    for w in _WIDTHS:
        low = (lowest // w) * w
        if (highest - low) // w + 1 <= most:
            return w
    w = _WIDTHS[-1]
    while (highest - (lowest // w) * w) // w + 1 > most:
        w *= 10
    return w


def histogram(values: Sequence[int]) -> list[dict[str, int]]:
    """[low, high) buckets of one width (1, 2, 5, 10, 20, 25, 50...) covering the values.

    >>> h = histogram([0, 3, 12, 12, 47])
    >>> len(h), h[0], [(b["low"], b["count"]) for b in h if b["count"]]
    (10, {'low': 0, 'high': 5, 'count': 2}, [(0, 2), (10, 2), (45, 1)])
    """
    if not values:
        return []
    lowest, highest = min(values), max(values)
    w = _width(lowest, highest)
    low = (lowest // w) * w
    counts = [0] * ((highest - low) // w + 1)
    for v in values:
        counts[(v - low) // w] += 1
    return [
        {"low": low + i * w, "high": low + (i + 1) * w, "count": c} for i, c in enumerate(counts)
    ]


def _histogram_sql(src: Source, where: str, params: tuple[Any, ...]) -> list[dict[str, int]]:
    """`histogram` of ps.score, grouped in SQL."""
    lowest, highest = src.query(f"SELECT min(score), max(score) FROM ps WHERE {where}", params)[0]
    if lowest is None:
        return []
    lowest, highest = int(lowest), int(highest)
    w = _width(lowest, highest)
    low = (lowest // w) * w
    counts = [0] * ((highest - low) // w + 1)
    for bucket, n in src.query(
        f"SELECT (CAST(score AS INTEGER) - ?) / ? AS b, count(*) FROM ps WHERE {where} GROUP BY b",
        (low, w, *params),
    ):
        counts[bucket] = n
    return [
        {"low": low + i * w, "high": low + (i + 1) * w, "count": c} for i, c in enumerate(counts)
    ]


def scores(store: str | Path, *, since: Any = None, until: Any = None) -> dict[str, Any]:
    """Score histogram, grade distribution and the score each MQL had when assigned.

    `since`/`until` keep the prospects created in that range.
    """
    from mrules.state import GRADES

    lo, hi, since_iso, until_iso = _range(since, until)
    with Source.open(store, None) as src:
        where, params = _in("created"), (lo, hi)
        score_histogram = _histogram_sql(src, where, params)
        grades = dict(
            src.query(f"SELECT grade, count(*) FROM ps WHERE {where} GROUP BY grade", params)
        )
        order = [*reversed(GRADES), None]
        grade_distribution = [
            {"grade": g, "count": grades[g]} for g in order if grades.get(g)
        ] + [  # a grade this mrules does not know, last but before "no grade"
            {"grade": g, "count": n} for g, n in sorted(grades.items(), key=str) if g not in order
        ]
        mql = dict(src.query(f"SELECT id, mql FROM ps WHERE {where} AND mql IS NOT NULL", params))
        at = sorted(walk(src, mql, rules=False).score_at_mql.values())
    return {
        "report": "scores",
        "since": since_iso,
        "until": until_iso,
        "prospects": sum(b["count"] for b in score_histogram),
        "score_histogram": score_histogram,
        "grade_distribution": grade_distribution,
        "score_at_mql": {
            "n": len(at),
            "median": float(statistics.median(at)) if at else None,
            "mean": round(float(statistics.fmean(at)), 4) if at else None,
            "histogram": histogram(at),
        },
    }


# -- rules -----------------------------------------------------------------------------------
def _declared_rules(rules: Any) -> list[tuple[str, str, str]]:
    """(kind, name, file:line) of every automation rule, page action and completion action."""
    from mrules.api import RuleSetError, compile_rules

    try:
        compiled = compile_rules(rules)
    except RuleSetError as e:
        raise _rules_error(e) from None
    refs = []
    for blocks in compiled.blocks.values():
        refs += [b.ref for b in blocks]
    refs += [p.ref for p in compiled.page_actions]
    refs += [r.ref for r in compiled.rules]
    out, seen = [], set()
    for ref in refs:
        if (ref.kind, ref.name) not in seen:
            seen.add((ref.kind, ref.name))
            out.append((ref.kind, ref.name, ref.loc))
    return out


def _stored_rules(src: Source) -> list[tuple[str, str, str]]:
    """The same, from the store's `rules` table (the rules its runs have seen; no location)."""
    from mrules.vocab import TRIGGER_EVENTS

    out = []
    for key, kind in src.query("SELECT key, kind FROM main.rules ORDER BY key"):
        if type(key) is not str:  # damage (exit 4), not a TypeError below (exit 70)
            raise src.store.damaged_value("a rule's key", key)
        if type(kind) is not str:
            raise src.store.damaged_value(f"the kind of rule {key}", kind)
        if (kind == "automation rule" and key.startswith("rule:")) or (
            kind == "page action" and key.startswith("page:")
        ):
            out.append((kind, key[5:], ""))
        elif kind == "completion action" and key.startswith("on:"):
            etype, _, rest = key[3:].partition(":")
            asset = rest.rpartition("#")[0]
            trigger = TRIGGER_EVENTS.get(etype)  # type: ignore[call-overload]
            if trigger is not None:
                out.append((kind, f"{trigger[0]} of {trigger[1]} {asset}", ""))
    return out


def rules_report(
    store: str | Path,
    *,
    rules: Any = None,
    sync_db: str | Path | None = None,
    since: Any = None,
    until: Any = None,
) -> dict[str, Any]:
    """Per automation rule, page action and completion action: who it touched and what followed.

    `rules` (a path, paths or rule text) lists the rules that never matched
    with their location; without it, the store's record of the rules its runs
    saw is used.
    """
    lo, hi, since_iso, until_iso = _range(since, until)
    declared = _declared_rules(rules) if rules is not None else None
    rows: list[dict[str, Any]] = []
    with Source.open(store, sync_db) as src:
        hits = walk(src, {}, rules=True, since=lo, until=hi)
        listed = declared if declared is not None else _stored_rules(src)
        crm_opportunities = src.crm_opportunities()
        # One rule's prospects at a time, read back from the walk's temporary tables; the
        # days to MQL and to won as doubles (8 bytes each), not float objects.
        for key, touches in itertools.groupby(hits.touches(), key=itemgetter(0)):
            kind, name = key
            to_mql = array("d")
            to_won = array("d")
            prospects = 0
            for _key, t0, row0, mql, won, assigned in touches:
                prospects += 1
                # At or after the first touch: in the same second, the assigning event's row
                # must be this one or a later one (a page view just after the form that
                # assigned did not lead to the MQL).
                if mql is not None and (
                    mql > t0 or (mql == t0 and (row0 if assigned is None else assigned) >= row0)
                ):
                    to_mql.append((mql - t0) / DAY)
                if won is not None and won + DAY > t0:  # CloseDate is a day: won that day counts
                    to_won.append(max(0.0, (won - t0) / DAY))
            rows.append(
                {
                    "kind": kind_key(kind),
                    "name": name,
                    "location": hits.where.get(key, ""),
                    "matches": hits.matches.get(key, 0),
                    "prospects": prospects,
                    "went_mql": len(to_mql),
                    "went_won": len(to_won),
                    "median_days_to_mql": _median(to_mql),
                    "median_days_to_won": _median(to_won),
                }
            )
    rows.sort(key=lambda r: (-r["matches"], r["kind"], r["name"]))
    if declared is not None:  # the user's paths, as they gave them
        loc = {(kind_key(k), n): w for k, n, w in declared}
        for r in rows:
            r["location"] = loc.get((r["kind"], r["name"]), r["location"])
    hit = {(r["kind"], r["name"]) for r in rows}
    never = [
        {"kind": kind_key(k), "name": n, "location": w}
        for k, n, w in listed
        if (kind_key(k), n) not in hit
    ]
    return {
        "report": "rules",
        "since": since_iso,
        "until": until_iso,
        "sync": src.sync_path is not None,
        "crm_opportunities": crm_opportunities,
        "rules": rows,
        "never_matched": never,
    }


def _median(values: Sequence[float]) -> float | None:
    return round(float(statistics.median(values)), 4) if values else None


# -- campaigns -------------------------------------------------------------------------------
def campaigns(
    store: str | Path,
    *,
    sync_db: str | Path | None = None,
    rules: Any = None,
    since: Any = None,
    until: Any = None,
    model: str = "even",
) -> dict[str, Any]:
    """Per campaign: cost, prospects, MQLs, opportunities, won, ROI, and influence by model."""
    from mrules.reports._campaigns import campaign_report

    if model not in MODELS:
        raise ReportError(f"unknown model {model!r}: {', '.join(MODELS)}")
    lo, hi, since_iso, until_iso = _range(since, until)
    declared = _declared_campaigns(rules) if rules is not None else {}
    with Source.open(store, sync_db) as src:
        body = campaign_report(src, declared, lo, hi, model)
    return {
        "report": "campaigns",
        "since": since_iso,
        "until": until_iso,
        "model": model,
        "sync": src.sync_path is not None,
        **body,
    }


def _declared_campaigns(rules: Any) -> dict[str, float | None]:
    """Campaigns the rules declare (Pardot and CRM campaigns), with their `cost` if any."""
    from mrules import ast
    from mrules.api import RuleSetError, compile_rules

    try:
        compiled = compile_rules(rules)
    except RuleSetError as e:
        raise _rules_error(e) from None
    out: dict[str, float | None] = {}
    program = compiled.program
    for file in program.files if program is not None else ():
        for item in file.items:
            if isinstance(item, ast.CampaignDecl | ast.CrmCampaignDecl):
                cost = getattr(item, "cost", None)
                name = item.name.text
                if cost is not None or name not in out:
                    out[name] = None if cost is None else float(cost)
    return out


def _isclose(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-6)
