"""Properties of the reports, against a plain-Python reference.

Random CRM facts (campaigns, members, opportunities, contact roles) and
prospects are written into a store and a sync file; the campaigns report
must credit exactly what a straightforward reading of each attribution model
credits, and every model must reconcile with the won amount. ISO week, month
and quarter labels computed in SQL must equal Python's.
"""

from __future__ import annotations

import datetime as dt
import math
import sqlite3
from collections import defaultdict
from pathlib import Path
from typing import Any

import orjson
from hypothesis import given
from hypothesis import strategies as st

from mrules.reports import campaigns, funnel
from mrules.reports._db import period_sql
from mrules.store import Store
from mrules.sync.db import SyncDb
from strategies import SETTINGS

DAY = 86400
T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC).timestamp()
CAMPAIGNS = ("Alpha", "Beta", "Gamma", "Delta")


def _iso(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@st.composite
def worlds(draw: st.DrawFn) -> dict[str, Any]:
    n = draw(st.integers(1, 8))
    prospects = [
        {
            "email": f"p{i}@x.example",
            "created": T0 + draw(st.integers(0, 300)) * DAY,
            "campaign": draw(st.sampled_from((None, *CAMPAIGNS))),
            "contact": f"c{i}" if draw(st.booleans()) else None,
        }
        for i in range(n)
    ]
    contacts = [f"c{i}" for i in range(n + 2)]  # two contacts no prospect has
    members = [
        {
            "campaign": draw(st.sampled_from(CAMPAIGNS)),
            "contact": draw(st.sampled_from(contacts)),
            "created": T0 + draw(st.integers(0, 6)) * DAY,  # ties happen
            "deleted": draw(st.booleans()) and draw(st.booleans()),
        }
        for _ in range(draw(st.integers(0, 10)))
    ]
    opps = []
    for j in range(draw(st.integers(0, 6))):
        roles = draw(st.lists(st.sampled_from(contacts), min_size=0, max_size=3, unique=True))
        opps.append(
            {
                "id": f"o{j}",
                "amount": float(draw(st.integers(0, 50)) * 1000),
                "won": draw(st.booleans()),
                # often among the memberships' days: some joined after the close
                "close": T0 + draw(st.integers(0, 8) | st.integers(0, 330)) * DAY,
                "created": T0 + draw(st.integers(0, 300)) * DAY,
                "primary": draw(st.sampled_from((None, *CAMPAIGNS))),
                "roles": roles,
            }
        )
    return {"prospects": prospects, "members": members, "opps": opps}


def _write(tmp: Path, w: dict[str, Any]) -> str:
    store = tmp / "p.db"
    for f in tmp.glob("p.*"):
        f.unlink()
    Store.open(store).close()
    conn = sqlite3.connect(store)
    with conn:
        for i, p in enumerate(w["prospects"], 1):
            state: dict[str, Any] = {"c": p["created"], "s": 0}
            if p["campaign"]:
                state["cp"] = p["campaign"]
            conn.execute(
                "INSERT INTO prospects (id, email, state) VALUES (?, ?, ?)",
                (i, p["email"], orjson.dumps(state)),
            )
    conn.close()
    db = SyncDb.open(tmp / "p.sync.db")
    c = db.conn
    ids = {name: f"701{k}" for k, name in enumerate(CAMPAIGNS)}
    for name, cid in ids.items():
        c.execute(
            "INSERT INTO campaign (id, name, actual_cost, deleted) VALUES (?, ?, 100, 0)",
            (cid, name),
        )
    for k, m in enumerate(w["members"]):
        c.execute(
            "INSERT INTO campaign_member (id, campaign, contact, created, deleted)"
            " VALUES (?, ?, ?, ?, ?)",
            (f"m{k}", ids[m["campaign"]], m["contact"], _iso(m["created"]), int(m["deleted"])),
        )
    for p in w["prospects"]:
        if p["contact"]:
            c.execute(
                "INSERT INTO link (prospect, object, crm_id) VALUES (?, 'contact', ?)",
                (p["email"], p["contact"]),
            )
    for o in w["opps"]:
        c.execute(
            "INSERT INTO opportunity (id, amount, close_date, is_won, is_closed, deleted, at,"
            " campaign, created) VALUES (?, ?, ?, ?, 1, 0, ?, ?, ?)",
            (
                o["id"], o["amount"], _iso(o["close"])[:10], int(o["won"]), _iso(T0),
                ids.get(o["primary"]), _iso(o["created"]),
            ),
        )  # fmt: skip
        for k, contact in enumerate(o["roles"]):
            c.execute(
                "INSERT INTO opportunity_role (id, opportunity, contact, is_primary, deleted)"
                " VALUES (?, ?, ?, ?, 0)",
                (f"{o['id']}r{k}", o["id"], contact, int(k == 0)),
            )
    db.conn.close()
    return str(store)


def reference(w: dict[str, Any]) -> tuple[dict[str, dict[str, float]], dict[str, float], float]:
    """Credits by model and campaign, unattributed by model, won total: read plainly."""
    credit: dict[str, dict[str, float]] = {
        m: defaultdict(float) for m in ("source", "primary", "first_touch", "last_touch", "even")
    }
    lost = dict.fromkeys(credit, 0.0)
    won_total = 0.0
    by_contact = {p["contact"]: p for p in w["prospects"] if p["contact"]}
    for o in w["opps"]:
        if not o["won"]:
            continue
        amount = o["amount"]
        won_total += amount
        # source: the first-created role prospect with a source campaign
        people = [by_contact[c] for c in o["roles"] if c in by_contact]
        people = sorted(
            (p for p in people if p["campaign"]), key=lambda p: (p["created"], p["email"])
        )
        if people:
            credit["source"][people[0]["campaign"]] += amount
        else:
            lost["source"] += amount
        if o["primary"]:
            credit["primary"][o["primary"]] += amount
        else:
            lost["primary"] += amount
        touches: dict[str, list[float]] = defaultdict(list)
        for m in w["members"]:
            # joined by the close (times are midnights: the CloseDate's day counts)
            if m["contact"] in o["roles"] and not m["deleted"] and m["created"] <= o["close"]:
                touches[m["campaign"]].append(m["created"])
        if not touches:
            for model in ("first_touch", "last_touch", "even"):
                lost[model] += amount
            continue
        first = min(touches, key=lambda c: (min(touches[c]), c))
        last = min(touches, key=lambda c: (-max(touches[c]), c))
        credit["first_touch"][first] += amount
        credit["last_touch"][last] += amount
        for campaign in touches:
            credit["even"][campaign] += amount / len(touches)
    return credit, lost, won_total


@SETTINGS
@given(w=worlds())
def test_campaign_credits_match_the_reference_and_reconcile(
    tmp_path_factory: Any, w: dict[str, Any]
) -> None:
    tmp = tmp_path_factory.mktemp("prop")
    store = _write(tmp, w)
    r = campaigns(store)
    credit, lost, won_total = reference(w)
    t = r["totals"]
    assert math.isclose(t["won_amount"], won_total)
    for model, per in credit.items():
        got = {c["campaign"]: c["influence"][model] for c in r["campaigns"]}
        for name in CAMPAIGNS:
            assert math.isclose(got.get(name, 0.0), per.get(name, 0.0), abs_tol=1e-6), (model, name)
        assert math.isclose(t["unattributed"][model], lost[model], abs_tol=1e-6), model
        # reconciliation: credited + unattributed == won
        assert math.isclose(t[model] + t["unattributed"][model], t["won_amount"], abs_tol=1e-6)


@SETTINGS
@given(w=worlds())
def test_funnel_counts_match_a_plain_count(tmp_path_factory: Any, w: dict[str, Any]) -> None:
    tmp = tmp_path_factory.mktemp("prop")
    store = _write(tmp, w)
    r = funnel(store)
    contacts = {p["contact"] for p in w["prospects"] if p["contact"]}
    sql = won = 0
    for p in w["prospects"]:
        mine = [o for o in w["opps"] if p["contact"] and p["contact"] in o["roles"]]
        sql += bool(mine)
        won += any(o["won"] for o in mine)
    assert contacts is not None
    counts = {s["stage"]: s["count"] for s in r["stages"]}
    assert counts == {
        "visitor": 0,
        "prospect": len(w["prospects"]),
        "mql": 0,
        "sql": sql,
        "won": won,
    }


@SETTINGS
@given(st.integers(0, 4_000_000_000))
def test_period_labels_match_python(t: int) -> None:
    moment = dt.datetime.fromtimestamp(t, dt.UTC)
    year, week, _ = moment.isocalendar()
    conn = sqlite3.connect(":memory:")
    got = conn.execute(
        f"SELECT {period_sql('week', ':t')}, {period_sql('month', ':t')},"
        f" {period_sql('quarter', ':t')}",
        {"t": t},
    ).fetchone()
    assert got == (
        f"{year}-W{week:02d}",
        moment.strftime("%Y-%m"),
        f"{moment.year}-Q{(moment.month + 2) // 3}",
    )
