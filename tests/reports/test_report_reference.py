"""`mrules report funnel|campaigns` against a plain-Python reading of docs/reports.md.

Random stores and sync files (prospects that became MQLs or not, CRM
campaigns with costs, members, opportunities open, lost, won or reopened,
contact roles, deleted records, date ranges whose ends fall on the facts'
own times) are written as the engine and the sync write them; the CLI's JSON
must give exactly what a straightforward reading of each definition gives,
and its CSV and table must show the same figures.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import itertools
import math
import sqlite3
import statistics
from collections import defaultdict
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import orjson
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from mrules.cli import main
from mrules.store import Store
from mrules.sync.db import SyncDb
from strategies import SETTINGS

DAY = 86400
T0 = int(dt.datetime(2026, 1, 1, tzinfo=dt.UTC).timestamp())
SEEN = T0 + 200 * DAY  # when the sync read the CRM
# Names a CSV must quote, one a spreadsheet would compute, plain ones.
NAMES = ("Ads", 'Trade, "Show"', "Web\ninar", "=1+1", "Partner")
MODELS = ("source", "primary", "first_touch", "last_touch", "even")


def _iso(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _day(t: float) -> str:
    return _iso(t)[:10]


def _moment(draw: st.DrawFn, days: int = 60) -> int:
    """A time on one of a few days, often at midnight or a second from it."""
    offset = draw(st.sampled_from((0, 0, 1, 12 * 3600, DAY - 1)))
    return T0 + draw(st.integers(0, days)) * DAY + offset


@st.composite
def worlds(draw: st.DrawFn) -> dict[str, Any]:
    n = draw(st.integers(0, 7))
    contacts = [f"003c{i}" for i in range(n + 1)]  # one contact no prospect has
    prospects = []
    for i in range(n):
        created = _moment(draw)
        prospects.append(
            {
                "email": f"p{i}@x.example",
                "created": created,
                "mql": created + draw(st.integers(0, 20)) * DAY + draw(st.sampled_from((0, 5)))
                if draw(st.booleans())
                else None,
                "campaign": draw(st.sampled_from((None, *NAMES))),
                # sometimes a contact two prospects share (a duplicate in Pardot)
                "contact": draw(st.sampled_from((contacts[i], contacts[0])))
                if draw(st.booleans())
                else None,
                "link_deleted": draw(st.booleans()) and draw(st.booleans()),
                "score": draw(st.integers(0, 120)),
            }
        )
    campaigns = [
        {
            "id": f"701k{k}",
            "name": draw(st.sampled_from(NAMES)),
            "cost": draw(st.sampled_from((None, 0, 500, 1200, 3000))),
            "deleted": draw(st.booleans()) and draw(st.booleans()),
        }
        for k in range(draw(st.integers(0, 4)))
    ]
    ids = [c["id"] for c in campaigns]
    members = [
        {
            "campaign": draw(st.sampled_from(ids)),
            "contact": draw(st.sampled_from(contacts)),
            "created": _moment(draw),
            "deleted": draw(st.booleans()) and draw(st.booleans()),
        }
        for _ in range(draw(st.integers(0, 8) if ids else st.just(0)))
    ]
    opps = []
    for j in range(draw(st.integers(0, 6))):
        state = draw(st.sampled_from(("open", "lost", "won", "won", "reopened")))
        opps.append(
            {
                "id": f"006o{j}",
                "amount": draw(st.sampled_from((None, 0.0, 1000.0, 2500.5, 7000.0))),
                "won": state == "won",
                "closed": state in ("won", "lost"),
                # a CloseDate: a day (none: the sync saw it closed when it read it)
                "close": T0 + draw(st.integers(0, 70)) * DAY if draw(st.integers(0, 6)) else None,
                "created": _moment(draw) if draw(st.integers(0, 4)) else None,
                "primary": draw(st.sampled_from((None, "701zz", *ids))),
                "deleted": draw(st.integers(0, 5)) == 0,
                "roles": [
                    (c, draw(st.integers(0, 5)) == 0)
                    for c in draw(st.lists(st.sampled_from(contacts), max_size=3, unique=True))
                ],
            }
        )
    since = draw(st.none() | st.integers(0, 70).map(lambda d: T0 + d * DAY))
    if since is not None:
        since += draw(st.sampled_from((0, 0, 1)))  # a second past midnight: odd
    until = draw(st.none() | st.integers(1, 80).map(lambda d: T0 + d * DAY))
    if since is not None and until is not None and until <= since:
        until = since + DAY
    return {
        "prospects": prospects,
        "campaigns": campaigns,
        "members": members,
        "opps": opps,
        "since": since,
        "until": until,
    }


def _write(tmp: Path, w: dict[str, Any]) -> Path:
    store = tmp / "r.db"
    Store.open(store).close()
    conn = sqlite3.connect(store)
    with conn:
        for i, p in enumerate(w["prospects"], 1):
            state: dict[str, Any] = {"c": float(p["created"]), "s": p["score"]}
            if p["mql"] is not None:
                state["aa"] = float(p["mql"])
            if p["campaign"]:
                state["cp"] = p["campaign"]
            conn.execute(
                "INSERT INTO prospects (id, email, state) VALUES (?, ?, ?)",
                (i, p["email"], orjson.dumps(state)),
            )
    conn.close()
    db = SyncDb.open(tmp / "r.sync.db")
    c = db.conn
    with c:
        for cp in w["campaigns"]:
            c.execute(
                "INSERT INTO campaign (id, name, actual_cost, deleted) VALUES (?, ?, ?, ?)",
                (cp["id"], cp["name"], cp["cost"], int(cp["deleted"])),
            )
        for k, m in enumerate(w["members"]):
            c.execute(
                "INSERT INTO campaign_member (id, campaign, contact, created, deleted)"
                " VALUES (?, ?, ?, ?, ?)",
                (f"00v{k}", m["campaign"], m["contact"], _iso(m["created"]), int(m["deleted"])),
            )
        for p in w["prospects"]:
            if p["contact"]:
                c.execute(
                    "INSERT INTO link (prospect, object, crm_id, deleted)"
                    " VALUES (?, 'contact', ?, ?)",
                    (p["email"], p["contact"], int(p["link_deleted"])),
                )
        for o in w["opps"]:
            c.execute(
                "INSERT INTO opportunity (id, amount, close_date, is_won, is_closed, deleted, at,"
                " campaign, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    o["id"], o["amount"], o["close"] and _day(o["close"]), int(o["won"]),
                    int(o["closed"]),
                    int(o["deleted"]), _iso(SEEN), o["primary"],
                    None if o["created"] is None else _iso(o["created"]),
                ),
            )  # fmt: skip
            for k, (contact, deleted) in enumerate(o["roles"]):
                c.execute(
                    "INSERT INTO opportunity_role (id, opportunity, contact, is_primary, deleted)"
                    " VALUES (?, ?, ?, ?, ?)",
                    (f"{o['id']}r{k}", o["id"], contact, int(k == 0), int(deleted)),
                )
    c.close()
    return store


# -- the reference ------------------------------------------------------------------------
def _in(t: float | None, w: dict[str, Any]) -> bool:
    lo = -math.inf if w["since"] is None else w["since"]
    hi = math.inf if w["until"] is None else w["until"]
    return t is not None and lo <= t < hi


def _opened(o: dict[str, Any]) -> float:
    return SEEN if o["created"] is None else o["created"]


def _won_at(o: dict[str, Any]) -> float | None:
    if not o["won"]:
        return None
    return SEEN if o["close"] is None else o["close"]  # the CloseDate, midnight UTC


def _closes(o: dict[str, Any]) -> float:
    """The end of the day the opportunity closed (else the second after the sync saw it)."""
    return SEEN + 1 if o["close"] is None else o["close"] + DAY


def _live_opps(w: dict[str, Any]) -> list[dict[str, Any]]:
    return [o for o in w["opps"] if not o["deleted"]]


def _stages(w: dict[str, Any]) -> list[dict[str, Any]]:
    """Each prospect's stage times: created, mql, sql, won."""
    out = []
    for p in w["prospects"]:
        mine = []
        if p["contact"] and not p["link_deleted"]:
            mine = [
                o for o in _live_opps(w) if any(c == p["contact"] and not d for c, d in o["roles"])
            ]
        won = [t for o in mine if (t := _won_at(o)) is not None]
        out.append(
            {
                "email": p["email"],
                "prospect": p["created"],
                "mql": p["mql"],
                "sql": min((_opened(o) for o in mine), default=None),
                "won": min(won, default=None),
                "opps": mine,
            }
        )
    return out


def _days(values: list[float]) -> dict[str, Any]:
    if not values:
        return {"n": 0, "median_days": None, "mean_days": None}
    return {
        "n": len(values),
        "median_days": round(statistics.median(values), 4),
        "mean_days": round(statistics.fmean(values), 4),
    }


def _label(by: str, t: float) -> str:
    moment = dt.datetime.fromtimestamp(t, dt.UTC)
    if by == "week":
        year, week, _ = moment.isocalendar()
        return f"{year}-W{week:02d}"
    if by == "month":
        return moment.strftime("%Y-%m")
    return f"{moment.year}-Q{(moment.month + 2) // 3}"


def funnel_reference(w: dict[str, Any], reading: str, by: str | None) -> dict[str, Any]:
    people = _stages(w)
    order = ("prospect", "mql", "sql", "won")

    def counted(stage: str) -> list[dict[str, Any]]:
        key = "prospect" if reading == "cohort" else stage
        return [p for p in people if _in(p[key], w) and p[stage] is not None]

    stages = [{"stage": "visitor", "count": 0}] + [
        {"stage": s, "count": len(counted(s))} for s in order
    ]
    conversions: list[dict[str, Any]] = [{"from": "visitor", "to": "prospect", "rate": None}]
    velocity: list[dict[str, Any]] = [{"from": "visitor", "to": "prospect", **_days([])}]
    for a, b in itertools.pairwise(order):
        them = counted(a)
        reached = [p for p in them if p[b] is not None]
        conversions.append(
            {"from": a, "to": b, "rate": round(len(reached) / len(them), 6) if them else None}
        )
        velocity.append(
            {"from": a, "to": b, **_days([max(0.0, (p[b] - p[a]) / DAY) for p in reached])}
        )
    periods = []
    if by is not None:
        table: dict[str, dict[str, int]] = {}
        steps: dict[str, dict[str, tuple[int, int]]] = {}
        for a, b in zip(order, (*order[1:], None), strict=True):
            key = "prospect" if reading == "cohort" else a
            for p in counted(a):
                label = _label(by, p[key])
                table.setdefault(label, dict.fromkeys(("visitor", *order), 0))[a] += 1
                if b is not None:
                    total, reached = steps.setdefault(label, {}).get(a, (0, 0))
                    steps[label][a] = (total + 1, reached + (p[b] is not None))
        for label in sorted(table):
            conv = []
            for a, b in zip(("visitor", *order), order, strict=False):
                total, reached = steps.get(label, {}).get(a, (0, 0))
                conv.append(
                    {
                        "from": a,
                        "to": b,
                        "reached": reached,
                        "rate": round(reached / total, 6) if total else None,
                    }
                )
            periods.append({"period": label, "stages": table[label], "conversions": conv})
    mqls = counted("mql")
    seed = {
        "mqls": len(mqls),
        "accepted_by_sales": sum(p["sql"] is not None for p in mqls),
        "customers": sum(p["won"] is not None for p in mqls),
    }
    return {
        "stages": stages,
        "conversions": conversions,
        "velocity": velocity,
        "periods": periods,
        "seed": seed,
    }


def campaigns_reference(w: dict[str, Any], model: str) -> dict[str, Any]:
    live = {c["id"]: c for c in w["campaigns"] if not c["deleted"]}
    named = {c["id"]: c["name"] for c in w["campaigns"]}
    # A campaign deleted in the CRM is left out: its members and the opportunities whose
    # primary campaign it is credit nothing, and it is no row.
    gone = {c["id"] for c in w["campaigns"] if c["deleted"]}
    rows: dict[str, dict[str, Any]] = {}

    def row(name: str) -> dict[str, Any]:
        if name not in rows:
            rows[name] = {
                "campaign": name, "cost": None, "cost_source": None, "prospects": 0,
                "mqls": 0, "members": 0, "opportunities": 0, "won": 0, "won_amount": 0.0,
                "influence": dict.fromkeys(MODELS, 0.0),
                "_opps": set(), "_won": set(),
            }  # fmt: skip
        return rows[name]

    for c in live.values():  # CRM campaigns of one name are one row, their costs added
        r = row(c["name"])
        if c["cost"] is not None:
            r["cost"] = (r["cost"] or 0.0) + c["cost"]
            r["cost_source"] = "crm"
    for p in w["prospects"]:  # every source campaign a prospect has
        if p["campaign"]:
            r = row(p["campaign"])
            if _in(p["created"], w):
                r["prospects"] += 1
                r["mqls"] += p["mql"] is not None
    for m in w["members"]:
        if not m["deleted"] and m["campaign"] not in gone and _in(m["created"], w):
            row(named[m["campaign"]])["members"] += 1

    by_contact: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for p in w["prospects"]:
        if p["contact"] and not p["link_deleted"]:
            by_contact[p["contact"]].append(p)
    won_total = 0.0
    unattributed = dict.fromkeys(MODELS, 0.0)
    for o in _live_opps(w):
        amount = o["amount"] or 0.0
        won_in = _in(_won_at(o), w)
        won_total += amount if won_in else 0.0
        roles = [c for c, d in o["roles"] if not d]
        credits: dict[str, dict[str, float]] = {}  # model -> campaign -> share of the amount
        people = sorted(
            (p for c in roles for p in by_contact[c] if p["campaign"]),
            key=lambda p: (p["created"], p["email"]),
        )
        credits["source"] = {people[0]["campaign"]: 1.0} if people else {}
        primary = o["primary"]
        credits["primary"] = (
            {named.get(primary, primary): 1.0} if primary and primary not in gone else {}
        )
        touches: dict[str, list[float]] = defaultdict(list)
        for m in w["members"]:
            if m["deleted"] or m["campaign"] in gone or m["contact"] not in roles:
                continue
            if (o["closed"] or o["won"]) and not m["created"] < _closes(o):
                continue  # joined after the close
            touches[named[m["campaign"]]].append(m["created"])
        if touches:
            first = min(touches, key=lambda c: (min(touches[c]), c))
            last = min(touches, key=lambda c: (-max(touches[c]), c))
            credits["first_touch"] = {first: 1.0}
            credits["last_touch"] = {last: 1.0}
            credits["even"] = {c: 1.0 / len(touches) for c in touches}
        else:
            credits["first_touch"] = credits["last_touch"] = credits["even"] = {}
        for mod, shares in credits.items():
            if not shares and won_in:
                unattributed[mod] += amount
            for name, share in shares.items():
                r = row(name)
                if won_in:
                    r["influence"][mod] += share * amount
                if mod == model:
                    if _in(_opened(o), w):
                        r["_opps"].add(o["id"])
                    if won_in:
                        r["_won"].add(o["id"])
                        r["won_amount"] += share * amount
    out = []
    for r in rows.values():
        r["opportunities"], r["won"] = len(r.pop("_opps")), len(r.pop("_won"))
        cost = r["cost"]
        r["cost_per_prospect"] = (
            round(cost / r["prospects"], 4) if cost is not None and r["prospects"] else None
        )
        r["roi"] = round((r["won_amount"] - cost) / cost, 6) + 0.0 if cost else None
        out.append(r)
    totals = {"won_amount": won_total, "unattributed": unattributed}
    return {"campaigns": out, "totals": totals}


# -- the CLI --------------------------------------------------------------------------------
def _report(store: Path, w: dict[str, Any], *args: str) -> str:
    dates = []
    if w["since"] is not None:  # the same moment, in UTC or at UTC+05:30
        zone = dt.timezone(dt.timedelta(hours=5, minutes=30) if w["since"] % 2 else dt.timedelta())
        dates += ["--since", dt.datetime.fromtimestamp(w["since"], zone).isoformat()]
    if w["until"] is not None:
        until = w["until"]  # a day is its midnight
        dates += ["--until", _iso(until) if until % DAY else _day(until)]
    result = CliRunner().invoke(main, ["report", *args, "--store", str(store), *dates])
    assert result.exit_code == 0, result.output
    return result.stdout


def _cells(text: str) -> dict[str, list[str]]:
    """A rich table's rows, by their first cell: the other cells, stripped."""
    out = {}
    for line in text.splitlines():
        if line.startswith("│"):
            first, *rest = (c.strip() for c in line.strip("│").split("│"))
            out[first] = rest
    return out


def _close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-6)


@SETTINGS
@given(
    w=worlds(),
    reading=st.sampled_from(("cohort", "stage")),
    by=st.sampled_from((None, "week", "month", "quarter")),
)
def test_funnel_matches_the_reference(
    tmp_path_factory: Any, w: dict[str, Any], reading: str, by: str | None
) -> None:
    store = _write(tmp_path_factory.mktemp("ref"), w)
    periods = () if by is None else ("--by", by)
    got = orjson.loads(
        _report(store, w, "funnel", "--format", "json", "--reading", reading, *periods)
    )
    want = funnel_reference(w, reading, by)
    for key, value in want.items():
        assert got[key] == value, key
    # The CSV has the same figures.
    rows = list(csv.DictReader(io.StringIO(_report(store, w, "funnel", "--format", "csv",
                                                   "--reading", reading))))  # fmt: skip
    assert [(r["stage"], int(r["count"])) for r in rows] == [
        (s["stage"], s["count"]) for s in want["stages"]
    ]
    rate = {c["from"]: c["rate"] for c in want["conversions"]}
    assert [r["rate_to_next"] for r in rows] == [
        "" if rate.get(r["stage"]) is None else repr(rate[r["stage"]]) for r in rows
    ]
    if by is not None:
        text = _report(store, w, "funnel", "--format", "csv", "--reading", reading, *periods)
        rows = list(csv.DictReader(io.StringIO(text)))
        # every figure of each period: the stage counts, then each step's reached and rate
        wanted = []
        for p in want["periods"]:
            cells = {k: str(n) for k, n in p["stages"].items()}
            for c in p["conversions"]:
                cells[f"{c['from']}_to_{c['to']}_reached"] = str(c["reached"])
                cells[f"{c['from']}_to_{c['to']}_rate"] = (
                    "" if c["rate"] is None else repr(c["rate"])
                )
            wanted.append((p["period"], cells))
        assert [(r.pop("period"), r) for r in rows] == wanted
    # The table: the stages with their rates, and the three numbers of the MQL handoff.
    cells = _cells(_report(store, w, "funnel", "--reading", reading))
    for s in want["stages"]:
        rate = next((c["rate"] for c in want["conversions"] if c["from"] == s["stage"]), "")
        shown = "" if rate == "" else "-" if rate is None else f"{rate * 100:.1f}%"
        assert cells[s["stage"]][:2] == [str(s["count"]), shown], s["stage"]
    seed = want["seed"]
    assert [[k, *v] for k, v in cells.items() if k.isdigit()] == [
        [str(seed["mqls"]), str(seed["accepted_by_sales"]), str(seed["customers"])]
    ]


def _csv_name(text: str) -> str:
    return text[1:] if text.startswith("'=") else text


@SETTINGS
@given(w=worlds(), model=st.sampled_from(MODELS))
def test_campaigns_match_the_reference(
    tmp_path_factory: Any, w: dict[str, Any], model: str
) -> None:
    store = _write(tmp_path_factory.mktemp("ref"), w)
    got = orjson.loads(_report(store, w, "campaigns", "--format", "json", "--model", model))
    want = campaigns_reference(w, model)
    mine = {r["campaign"]: r for r in got["campaigns"]}
    assert set(mine) == {r["campaign"] for r in want["campaigns"]}
    for r in want["campaigns"]:
        g = mine[r["campaign"]]
        for key, value in r.items():
            if key == "influence":
                for m in MODELS:
                    assert _close(g[key][m], value[m]), (r["campaign"], key, m)
            elif isinstance(value, float):
                assert g[key] is not None and _close(g[key], value), (r["campaign"], key)
            else:
                assert g[key] == value, (r["campaign"], key)
    assert _close(got["totals"]["won_amount"], want["totals"]["won_amount"])
    for m in MODELS:
        assert _close(got["totals"]["unattributed"][m], want["totals"]["unattributed"][m]), m
    # The CSV: one row a campaign with the JSON's figures, names intact, then the
    # unattributed row (no name, `unattributed` 1).
    rows = list(csv.DictReader(io.StringIO(_report(store, w, "campaigns", "--format", "csv",
                                                   "--model", model))))  # fmt: skip
    assert [_csv_name(r["campaign"]) for r in rows] == [
        *(c["campaign"] for c in got["campaigns"]),
        "",
    ]
    assert [r["unattributed"] for r in rows] == ["0"] * len(got["campaigns"]) + ["1"]
    for m in MODELS:
        assert float(rows[-1][m]) == got["totals"]["unattributed"][m], m
    for r, c in zip(rows, got["campaigns"], strict=False):
        for key in ("cost", "cost_per_prospect", "roi", "won_amount"):
            assert r[key] == ("" if c[key] is None else repr(c[key])), key
        for key in ("prospects", "mqls", "members", "opportunities", "won"):
            assert int(r[key]) == c[key], key
        for m in MODELS:
            assert float(r[m]) == c["influence"][m], m
    # The table: each campaign's figures as the JSON has them, with the money rounded.
    text = _report(store, w, "campaigns", "--model", model)
    cells = _cells(text.split("won amount credited by model")[0])
    for c in got["campaigns"]:
        if "\n" in c["campaign"]:
            continue  # a name of two lines: two table lines
        row = cells[c["campaign"]]
        assert row[1:6] == [
            str(c["prospects"]), str(c["mqls"]), str(c["opportunities"]), str(c["won"]),
            f"{c['won_amount']:,.2f}",
        ], c["campaign"]  # fmt: skip
        assert row[7] == ("-" if c["roi"] is None else f"{c['roi'] * 100:.1f}%")


class _Tables(HTMLParser):
    """The rows of a page's <table>s (cells as text) and its headline figures."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[list[str]] = []
        self.figures: list[str] = []
        self._cell: list[str] | None = None
        self._figure = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "tr":
            self.rows.append([])
        elif tag in ("td", "th"):
            self._cell = []
        elif tag == "b" and self._in_figure:
            self._figure = True
        if tag == "div":
            self._in_figure = ("class", "figure") in attrs

    _in_figure = False

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)
        if self._figure:
            self.figures.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None:
            self.rows[-1].append("".join(self._cell))
            self._cell = None
        elif tag == "b":
            self._figure = False
        elif tag == "div":
            self._in_figure = False


@settings(SETTINGS, max_examples=min(SETTINGS.max_examples, 5))
@given(w=worlds())
def test_the_html_page_shows_the_reports_figures(tmp_path_factory: Any, w: dict[str, Any]) -> None:
    store = _write(tmp_path_factory.mktemp("ref"), w)
    page = _Tables()
    page.feed(_report(store, w, "html", "-"))
    funnel = funnel_reference(w, "cohort", None)
    seed = funnel["seed"]
    assert page.figures == [
        str(seed["mqls"]), str(seed["accepted_by_sales"]), str(seed["customers"])
    ]  # fmt: skip
    got = orjson.loads(_report(store, w, "campaigns", "--format", "json"))  # the even model
    rows = {r[0]: r[1:] for r in page.rows if len(r) == 9}
    for c in got["campaigns"]:
        assert rows[c["campaign"]] == [
            "–" if c["cost"] is None else f"{c['cost']:,.2f}",
            str(c["prospects"]), str(c["mqls"]), str(c["opportunities"]), str(c["won"]),
            f"{c['won_amount']:,.2f}",
            "–" if c["cost_per_prospect"] is None else f"{c['cost_per_prospect']:,.2f}",
            "–" if c["roi"] is None else f"{c['roi'] * 100:.1f}%",
        ], c["campaign"]  # fmt: skip


def test_a_campaign_that_pays_its_cost_back_has_an_roi_of_zero(tmp_path: Path) -> None:
    """Deals of 100 and 200, each touched by three campaigns: the first, which cost 100,
    is credited a third of each, 100 less a rounding error (99.99999999999999). Its ROI
    was -0.0 in the JSON and the CSV and `-0.0%`, a loss, in the table and the page."""
    names = ("Event", "Ads", "Partner")
    w: dict[str, Any] = {
        "prospects": [
            {"email": "p0@x.example", "created": T0, "mql": T0, "campaign": None,
             "contact": "003c0", "link_deleted": False, "score": 0},
        ],
        "campaigns": [
            {"id": f"701k{k}", "name": name, "cost": 100 if k == 0 else None, "deleted": False}
            for k, name in enumerate(names)
        ],
        "members": [
            {"campaign": f"701k{k}", "contact": "003c0", "created": T0, "deleted": False}
            for k in range(3)
        ],
        "opps": [
            {"id": f"006o{j}", "amount": amount, "won": True, "closed": True,
             "close": T0 + DAY, "created": T0, "primary": None, "deleted": False,
             "roles": [("003c0", False)]}
            for j, amount in enumerate((100.0, 200.0))
        ],
        "since": None,
        "until": None,
    }  # fmt: skip
    store = _write(tmp_path, w)
    got = orjson.loads(_report(store, w, "campaigns", "--format", "json"))
    event = next(c for c in got["campaigns"] if c["campaign"] == "Event")
    assert math.isclose(event["won_amount"], 100.0)
    assert str(event["roi"]) == "0.0"
    rows = list(csv.DictReader(io.StringIO(_report(store, w, "campaigns", "--format", "csv"))))
    assert [r["roi"] for r in rows if r["campaign"] == "Event"] == ["0.0"]
    text = _report(store, w, "campaigns").split("won amount credited by model")[0]
    assert _cells(text)["Event"][-1] == "0.0%"
    page = _report(store, w, "html", "-")
    assert "-0.0%" not in page
