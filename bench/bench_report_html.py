"""The HTML report's size on many campaigns: what the page is made of.

    .venv/bin/python bench/bench_report_html.py [--campaigns 10000]

Renders `mrules report html`'s page (`mrules.reports.html.page`) for a
campaigns report of N synthetic campaigns (each with a cost, prospects, won
amounts under the five models), the other reports empty, with the real chart
library, and prints one JSON object: the page's bytes, the chart library's,
each chart spec's and the campaign section's (its table). Nothing is timed.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from typing import Any

from mrules.reports import MODELS, html


def campaigns_report(n: int) -> dict[str, Any]:
    rows = []
    for i in range(n):
        won = float((n - i) * 10)
        cost = 100.0 + i
        rows.append(
            {
                "campaign": f"Campaign {i:05d} spring webinar",
                "cost": cost,
                "cost_source": "crm",
                "prospects": 6,
                "mqls": 3,
                "members": 4,
                "opportunities": 2,
                "won": 1,
                "won_amount": won,
                "cost_per_prospect": round(cost / 6, 4),
                "roi": round((won - cost) / cost, 6),
                "influence": {m: won / (1 + k) for k, m in enumerate(MODELS)},
            }
        )
    total = sum(r["won_amount"] for r in rows)
    return {
        "report": "campaigns",
        "since": None,
        "until": None,
        "model": "even",
        "sync": True,
        "campaigns": rows,
        "totals": {
            "cost": sum(r["cost"] for r in rows),
            "won_amount": total,
            **{m: sum(r["influence"][m] for r in rows) for m in MODELS},
            "unattributed": dict.fromkeys(MODELS, 0.0),
        },
        "crm_campaigns": n,
        "crm_opportunities": 2 * n,
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--campaigns", type=int, default=10_000)
    args = ap.parse_args(argv)
    text = html.page({"campaigns": campaigns_report(args.campaigns), "generated": "now"})
    m = re.search(r'<script type="application/json" id="mrules-specs">(.*?)</script>', text, re.S)
    specs = json.loads(m.group(1)) if m else {}
    section = re.search(r"<section id='campaigns'>.*?</section>", text, re.S)
    result = {
        "campaigns": args.campaigns,
        "page_bytes": len(text.encode()),
        "chart_library_bytes": len(html.javascript().encode()),
        "campaign_section_bytes": len(section.group(0).encode()) if section else 0,
        "spec_bytes": {k: len(json.dumps(v).encode()) for k, v in specs.items()},
    }
    json.dump(result, sys.stdout, indent=1)
    print()
    return result


if __name__ == "__main__":
    main()
