"""Small hand-written report dicts of the reports contract's shapes, for the rendering tests."""

from __future__ import annotations

import itertools
from typing import Any

STAGES = ("visitor", "prospect", "mql", "sql", "won")


STEPS = (("visitor", "prospect"), ("prospect", "mql"), ("mql", "sql"), ("sql", "won"))


def steps(*reached_rates: tuple[int, float | None]) -> list[dict[str, Any]]:
    """A period's conversions, visitor>prospect to sql>won, as (reached, rate)."""
    return [
        {"from": a, "to": b, "reached": n, "rate": rate}
        for (a, b), (n, rate) in zip(STEPS, reached_rates, strict=True)
    ]


def funnel(by: str | None = "month") -> dict[str, Any]:
    counts = {"visitor": 40, "prospect": 20, "mql": 8, "sql": 5, "won": 3}
    return {
        "report": "funnel",
        "since": None,
        "until": None,
        "by": by,
        "reading": "cohort",
        "stages": [{"stage": s, "count": counts[s]} for s in STAGES],
        "conversions": [
            {"from": "visitor", "to": "prospect", "rate": 0.5},
            {"from": "prospect", "to": "mql", "rate": 0.4},
            {"from": "mql", "to": "sql", "rate": 0.625},
            {"from": "sql", "to": "won", "rate": 0.6},
        ],
        "velocity": [
            {"from": "visitor", "to": "prospect", "n": 20, "median_days": 1.5, "mean_days": 2.0},
            {"from": "prospect", "to": "mql", "n": 8, "median_days": 4.0, "mean_days": 6.5},
            {"from": "mql", "to": "sql", "n": 5, "median_days": 10.0, "mean_days": 9.0},
            {"from": "sql", "to": "won", "n": 3, "median_days": 30.0, "mean_days": 41.0},
        ],
        "periods": [
            {
                "period": "2026-10",
                "stages": {"visitor": 15, "prospect": 8, "mql": 3, "sql": 2, "won": 1},
                "conversions": steps((6, 0.4), (3, 0.375), (2, 0.666667), (1, 0.5)),
            },
            {
                "period": "2026-11",
                "stages": {"visitor": 25, "prospect": 12, "mql": 5, "sql": 3, "won": 2},
                "conversions": steps((10, 0.4), (5, 0.416667), (3, 0.6), (2, 0.666667)),
            },
        ],
        "seed": {"mqls": 8, "accepted_by_sales": 5, "customers": 3},
    }


def campaigns() -> dict[str, Any]:
    def camp(name, cost, won_amount, infl):
        return {
            "campaign": name,
            "cost": cost,
            "cost_source": "rules" if cost is not None else None,
            "prospects": 6,
            "mqls": 3,
            "opportunities": 2,
            "won": 1,
            "won_amount": won_amount,
            "cost_per_prospect": None if cost is None else cost / 6,
            "roi": None if not cost else (won_amount - cost) / cost,
            "influence": infl,
        }

    return {
        "report": "campaigns",
        "since": None,
        "until": None,
        "campaigns": [
            camp(
                "Webinar <Q4>",
                2000.0,
                15000.0,
                {
                    "source": 15000.0,
                    "primary": 10000.0,
                    "first_touch": 15000.0,
                    "last_touch": 0.0,
                    "even": 7500.0,
                },
            ),
            camp(
                "Trade show",
                30000.0,
                10000.0,
                {
                    "source": 10000.0,
                    "primary": 15000.0,
                    "first_touch": 0.0,
                    "last_touch": 25000.0,
                    "even": 12500.0,
                },
            ),
            camp(
                "Newsletter",
                None,
                0.0,
                {
                    "source": 0.0,
                    "primary": 0.0,
                    "first_touch": 10000.0,
                    "last_touch": 0.0,
                    "even": 5000.0,
                },
            ),
        ],
        "totals": {
            "cost": 32000.0,
            "won_amount": 25000.0,
            "source": 25000.0,
            "primary": 25000.0,
            "first_touch": 25000.0,
            "last_touch": 25000.0,
            "even": 25000.0,
            "unattributed": {
                "source": 0.0,
                "primary": 0.0,
                "first_touch": 0.0,
                "last_touch": 0.0,
                "even": 0.0,
            },
        },
    }


def rules() -> dict[str, Any]:
    return {
        "report": "rules",
        "rules": [
            {
                "kind": "automation",
                "name": "MQL handoff",
                "location": "rules/30.mr:3",
                "matches": 8,
                "prospects": 8,
                "went_mql": 8,
                "went_won": 3,
                "median_days_to_mql": 0.0,
                "median_days_to_won": 40.0,
            },
            {
                "kind": "page_action",
                "name": "Pricing",
                "location": "rules/20.mr:8",
                "matches": 30,
                "prospects": 12,
                "went_mql": 5,
                "went_won": 2,
                "median_days_to_mql": 3.0,
                "median_days_to_won": 35.0,
            },
            {
                "kind": "completion_action",
                "name": "submit of form Demo",
                "location": "rules/10.mr:4",
                "matches": 0,
                "prospects": 0,
                "went_mql": 0,
                "went_won": 0,
                "median_days_to_mql": None,
                "median_days_to_won": None,
            },
        ],
        "never_matched": [
            {
                "kind": "completion_action",
                "name": "submit of form Demo",
                "location": "rules/10.mr:4",
            }
        ],
    }


def scores() -> dict[str, Any]:
    return {
        "report": "scores",
        "score_histogram": [
            {"low": 0, "high": 25, "count": 9},
            {"low": 25, "high": 50, "count": 4},
            {"low": 50, "high": 100, "count": 5},
            {"low": 100, "high": 150, "count": 2},
        ],
        "grade_distribution": [
            {"grade": "A", "count": 2},
            {"grade": "C-", "count": 6},
            {"grade": None, "count": 12},
        ],
        "score_at_mql": {
            "n": 8,
            "median": 100.0,
            "mean": 104.5,
            "histogram": [
                {"low": 100, "high": 110, "count": 6},
                {"low": 110, "high": 120, "count": 2},
            ],
        },
    }


def timeline() -> dict[str, Any]:
    return {
        "email": "leung@example.com",
        "stages": [
            {"stage": "prospect", "at": "2026-11-02T09:02:10Z"},
            {"stage": "mql", "at": "2026-11-02T09:06:00Z"},
            {"stage": "sql", "at": "2026-11-10T00:00:00Z"},
        ],
        "score": [
            {"at": "2026-11-02T09:02:10Z", "score": 52},
            {"at": "2026-11-02T09:06:00Z", "score": 130},
            {"at": "2026-11-20T00:00:00Z", "score": 120},
        ],
        "grade": [{"at": "2026-11-02T09:02:10Z", "grade": "C-"}],
    }


def empty() -> dict[str, Any]:
    """Every report of a store with nothing in it."""
    return {
        "funnel": {
            "report": "funnel",
            "since": None,
            "until": None,
            "by": "month",
            "reading": "cohort",
            "stages": [{"stage": s, "count": 0} for s in STAGES],
            "conversions": [
                {"from": a, "to": b, "rate": None} for a, b in itertools.pairwise(STAGES)
            ],
            "velocity": [
                {"from": a, "to": b, "n": 0, "median_days": None, "mean_days": None}
                for a, b in itertools.pairwise(STAGES)
            ],
            "periods": [],
            "seed": {"mqls": 0, "accepted_by_sales": 0, "customers": 0},
        },
        "campaigns": {
            "report": "campaigns",
            "since": None,
            "until": None,
            "campaigns": [],
            "totals": {
                "cost": 0.0,
                "won_amount": 0.0,
                "source": 0.0,
                "primary": 0.0,
                "first_touch": 0.0,
                "last_touch": 0.0,
                "even": 0.0,
                "unattributed": {
                    "source": 0.0,
                    "primary": 0.0,
                    "first_touch": 0.0,
                    "last_touch": 0.0,
                    "even": 0.0,
                },
            },
        },
        "rules": {"report": "rules", "rules": [], "never_matched": []},
        "scores": {
            "report": "scores",
            "score_histogram": [],
            "grade_distribution": [],
            "score_at_mql": {"n": 0, "median": None, "mean": None, "histogram": []},
        },
        "timeline": None,
    }


def full() -> dict[str, Any]:
    return {
        "funnel": funnel(),
        "campaigns": campaigns(),
        "rules": rules(),
        "scores": scores(),
        "timeline": timeline(),
        "title": "Sample report",
        "generated": "2026-12-21T00:00:00Z",
    }


def many_campaigns(n: int) -> dict[str, Any]:
    """`campaigns()` with `n` campaigns of one shape, the won amounts all different, in the
    report's order (the most won amount first)."""
    report = campaigns()
    one = report["campaigns"][0]
    rows = []
    for i in range(n):
        won = float((n - i) * 10)
        rows.append(
            {
                **one,
                "campaign": f"Campaign {i:05d} spring webinar",
                "cost": 100.0 + i,
                "won_amount": won,
                "roi": round((won - 100.0 - i) / (100.0 + i), 6),
                "influence": {m: won if m == "even" else float(i % 5) for m in one["influence"]},
            }
        )
    report["campaigns"] = rows
    return report
