"""The campaigns report: costs, counts and won amount credited under five models, in SQL.

Credit rows (`temp.credit`: model, opportunity, campaign name, share) are
built once per model; every figure is a GROUP BY over them:

- `source`: the Pardot source campaign (first touch) of the opportunity's
  contact-role prospect created first among those that have one;
- `primary`: the opportunity's Primary Campaign Source (`CampaignId`), unless the CRM
  deleted that campaign (a deleted campaign, and its members, credit nothing);
- `first_touch` / `last_touch`: among the campaign memberships of the
  opportunity's contact roles created by its close (a campaign joined after
  the deal closed did not influence it), the campaign whose member record was
  created first / last (ties: campaign name);
- `even`: an equal share to every campaign of those memberships.

An opportunity no campaign is credited for under a model is `unattributed`
under it, so each model's credits plus its unattributed amount add up to the
won amount exactly (up to floating-point rounding of the even shares).
"""

from __future__ import annotations

import json
import math
from typing import Any

from mrules.diagnostics import plural
from mrules.reports._db import Source

__all__ = ["UNATTRIBUTED", "campaign_label", "campaign_report"]

UNATTRIBUTED = "(unattributed)"
"""The label of what no campaign is credited for, in the tables and on the page."""


def campaign_label(name: str) -> str:
    """A campaign's name as the tables and the page show it: as it is, except a name that
    reads as the unattributed row's label, or starts with a double quote, which is shown
    quoted (JSON's quoting), so no campaign can pass for that row and two names never
    show alike.

    >>> campaign_label("Webinar"), campaign_label("(unattributed)")
    ('Webinar', '"(unattributed)"')
    """
    if name == UNATTRIBUTED or name.startswith('"'):
        return json.dumps(name, ensure_ascii=False)
    return name


_NAMED = 10
"""The campaigns a note names, at most (the rest are counted)."""

_MODELS = ("source", "primary", "first_touch", "last_touch", "even")


_LIVE = "{0} NOT IN (SELECT id FROM cname WHERE deleted)"
"""SQL: the campaign id in {0} is not one the CRM has deleted (members and an
opportunity's Primary Campaign Source of such a campaign credit nothing)."""


def _in(col: str) -> str:
    return f"({col} IS NOT NULL AND {col} >= :lo AND {col} < :hi)"


def _build(src: Source) -> None:
    c = src.conn
    for t in ("opp", "cname", "touch", "credit"):
        c.execute(f"DROP TABLE IF EXISTS temp.{t}")
    c.execute(
        "CREATE TEMP TABLE cname (id TEXT PRIMARY KEY, name TEXT, cost REAL, deleted INTEGER)"
    )
    c.execute("CREATE TEMP TABLE credit (model TEXT, opp TEXT, campaign TEXT, share REAL)")
    c.execute("CREATE INDEX temp.credit_model ON credit (model, opp)")
    c.execute("CREATE TEMP TABLE touch (opp TEXT, campaign TEXT, first REAL, last REAL)")
    if src.sync_path is None:
        c.execute(
            "CREATE TEMP TABLE opp (id TEXT PRIMARY KEY, amount REAL, is_won INTEGER,"
            " opened REAL, won_at REAL, campaign TEXT)"
        )
    else:
        cols = src.columns("opportunity")
        created = "unixepoch(created)" if "created" in cols else "NULL"
        closed_at = "unixepoch(closed_at)" if "closed_at" in cols else "NULL"
        campaign = "campaign" if "campaign" in cols else "NULL"
        c.execute(
            "CREATE TEMP TABLE opp (id TEXT PRIMARY KEY, amount REAL, is_won INTEGER,"
            " opened REAL, won_at REAL, campaign TEXT)"
        )
        c.execute(
            f"""
            INSERT OR IGNORE INTO opp
            SELECT id, coalesce(amount, 0.0) AS amount, coalesce(is_won, 0) AS is_won,
                   coalesce({created}, unixepoch(at)) AS opened,
                   CASE WHEN is_won THEN coalesce(unixepoch(close_date), {closed_at},
                                                  unixepoch(at)) END AS won_at,
                   {campaign} AS campaign
            FROM sync.opportunity WHERE coalesce(deleted, 0) = 0
            """
        )
        if {"id", "name", "actual_cost"} <= src.columns("campaign"):
            # A campaign deleted in the CRM (in its recycle bin) is left out: no row, no
            # cost, no credit (`_LIVE`); it is kept here to be told apart and counted.
            c.execute(
                "INSERT OR REPLACE INTO cname SELECT id, coalesce(name, id), actual_cost,"
                " coalesce(deleted, 0) <> 0 FROM sync.campaign"
            )
        if {"campaign", "contact", "created"} <= src.columns("campaign_member"):
            # A membership created after the opportunity closed did not influence it
            # (Salesforce's campaign influence stops at the close): one counts up to the
            # end of the CloseDate, else of the close time the sync saw.
            closed = "coalesce(o.is_closed, 0) OR coalesce(o.is_won, 0)"
            ends = ["unixepoch(o.close_date, '+1 day')"]
            if "closed_at" in cols:
                ends.append("unixepoch(o.closed_at) + 1")
            ends.append("unixepoch(o.at) + 1")
            c.execute(
                f"""
                INSERT INTO touch
                SELECT r.opportunity,
                       coalesce((SELECT name FROM cname WHERE cname.id = m.campaign), m.campaign),
                       min(unixepoch(m.created)),
                       max(unixepoch(m.created))
                FROM sync.opportunity_role r
                JOIN sync.opportunity o ON o.id = r.opportunity
                JOIN sync.campaign_member m
                  ON m.contact = r.contact AND coalesce(m.deleted, 0) = 0
                WHERE coalesce(r.deleted, 0) = 0 AND m.campaign IS NOT NULL
                  AND {_LIVE.format("m.campaign")}
                  AND (NOT ({closed}) OR m.created IS NULL
                       OR unixepoch(m.created) < coalesce({", ".join(ends)}))
                GROUP BY 1, 2
                """
            )
    name = "coalesce((SELECT name FROM cname WHERE cname.id = {0}), {0})"
    c.execute(
        "INSERT INTO credit SELECT 'primary', id, "
        + name.format("opp.campaign")
        + f", 1.0 FROM opp WHERE campaign IS NOT NULL AND {_LIVE.format('campaign')}"
    )
    # A membership without a creation date (NULL: SQLite sorts it first) never wins over
    # a dated one: it won every first touch. Among undated ones only, the name decides.
    for model, order in (
        ("first_touch", "first IS NULL, first, t.campaign"),
        ("last_touch", "last IS NULL, last DESC, t.campaign"),
    ):
        c.execute(
            f"INSERT INTO credit SELECT '{model}', opp, campaign, 1.0 FROM"
            f" (SELECT t.opp, t.campaign, row_number() OVER (PARTITION BY t.opp"
            f" ORDER BY {order}) AS rn FROM touch t) WHERE rn = 1"
        )
    c.execute(
        "INSERT INTO credit SELECT 'even', opp, campaign,"
        " 1.0 / count(*) OVER (PARTITION BY opp) FROM touch"
    )
    c.execute(
        """
        INSERT INTO credit
        SELECT 'source', opp, campaign, 1.0 FROM (
          SELECT po.opp, ps.campaign, row_number() OVER (
                   PARTITION BY po.opp ORDER BY ps.created, ps.email) AS rn
          FROM po JOIN ps ON ps.id = po.prospect WHERE ps.campaign IS NOT NULL)
        WHERE rn = 1
        """
    )


def campaign_report(
    src: Source, declared: dict[str, float | None], lo: float, hi: float, model: str
) -> dict[str, Any]:
    _build(src)
    q = src.query
    p = {"lo": lo, "hi": hi}
    rows: dict[str, dict[str, Any]] = {}

    def row(name: str) -> dict[str, Any]:
        found = rows.get(name)
        if found is None:
            found = rows[name] = {
                "campaign": name,
                "cost": None,
                "cost_source": None,
                "prospects": 0,
                "mqls": 0,
                "members": 0,
                "opportunities": 0,
                "won": 0,
                "won_amount": 0.0,
                "cost_per_prospect": None,
                "roi": None,
                "influence": dict.fromkeys(_MODELS, 0.0),
            }
        return found

    # CRM campaigns of one name are one row (Salesforce allows the name twice): their
    # costs add up, as their members and credits do (the last one's cost alone was kept).
    # A negative cost is bad data (a refund typed as a cost?): it turned a loss into a
    # gain, flipping the ROI's sign. Such a campaign's cost and ROI are unknown, noted.
    bad_costs: dict[str, float] = {}
    for name, cost, lowest in q(
        "SELECT name, sum(cost), min(cost) FROM cname WHERE NOT deleted GROUP BY name ORDER BY name"
    ):
        r = row(name)
        if cost is not None:
            r["cost"], r["cost_source"] = float(cost), "crm"
            if lowest < 0:
                bad_costs[name] = float(lowest)
    for name, cost in declared.items():  # a cost in the rules wins over the CRM's
        r = row(name)
        if cost is not None:
            r["cost"], r["cost_source"] = cost, "rules"
            bad_costs.pop(name, None)
    for r in rows.values():
        if r["cost"] is not None and not (math.isfinite(r["cost"]) and r["cost"] >= 0):
            bad_costs[r["campaign"]] = r["cost"]
    unknown_cost = []
    for name in sorted(bad_costs):
        what = "ActualCost in the CRM" if rows[name]["cost_source"] == "crm" else "cost"
        unknown_cost.append(f"{campaign_label(name)} ({what} {bad_costs[name]:g})")
        rows[name]["cost"] = rows[name]["cost_source"] = None
    # Every source campaign a prospect has is a row, as every CRM campaign is: one whose
    # prospects were all created outside the range shows its zeros (it was left out).
    for name, n, mqls in q(
        f"SELECT campaign, count(CASE WHEN {_in('created')} THEN 1 END),"
        f" count(CASE WHEN {_in('created')} THEN mql END) FROM ps WHERE campaign IS NOT NULL"
        " GROUP BY campaign",
        p,
    ):
        r = row(name)
        r["prospects"], r["mqls"] = n, mqls
    if src.sync_path is not None and {"campaign", "created"} <= src.columns("campaign_member"):
        for name, n in q(
            "SELECT coalesce((SELECT name FROM cname WHERE cname.id = m.campaign), m.campaign),"
            " count(*) FROM sync.campaign_member m WHERE coalesce(m.deleted, 0) = 0"
            f" AND m.campaign IS NOT NULL AND {_LIVE.format('m.campaign')}"
            f" AND {_in('unixepoch(m.created)')} GROUP BY 1",
            p,
        ):
            row(name)["members"] = n
    for mod, name, opps, won, amount in q(
        f"""
        SELECT c.model, c.campaign,
               count(DISTINCT CASE WHEN {_in("o.opened")} THEN o.id END),
               count(DISTINCT CASE WHEN {_in("o.won_at")} THEN o.id END),
               total(CASE WHEN {_in("o.won_at")} THEN c.share * o.amount END)
        FROM credit c JOIN opp o ON o.id = c.opp
        GROUP BY c.model, c.campaign
        """,
        p,
    ):
        r = row(name)
        r["influence"][mod] = amount
        if mod == model:
            r["opportunities"], r["won"], r["won_amount"] = opps, won, amount
    won_total = q(f"SELECT total(amount) FROM opp WHERE {_in('won_at')}", p)[0][0]
    unattributed = dict.fromkeys(_MODELS, 0.0)
    for mod in _MODELS:
        unattributed[mod] = q(
            f"SELECT total(amount) FROM opp WHERE {_in('won_at')} AND id NOT IN"
            " (SELECT opp FROM credit WHERE model = :m)",
            {**p, "m": mod},
        )[0][0]
    out = []
    for r in rows.values():
        cost = r["cost"]
        if cost is not None and r["prospects"]:
            r["cost_per_prospect"] = round(cost / r["prospects"], 4)
        if cost:  # + 0.0: a break-even a rounding error made -0.0 is 0.0, not a "-0.0%" loss
            r["roi"] = round((r["won_amount"] - cost) / cost, 6) + 0.0
        out.append(r)
    out.sort(key=lambda r: (-r["won_amount"], r["campaign"]))
    totals: dict[str, Any] = {
        "cost": float(sum(r["cost"] for r in out if r["cost"] is not None)),
        "won_amount": won_total,
        **{m: float(sum(r["influence"][m] for r in out)) for m in _MODELS},
        "unattributed": unattributed,
    }
    # CRM campaigns read (0: the sync block's `objects` may lack `campaign`, and then the
    # touch models have no memberships to credit and primary campaigns show as ids).
    crm_campaigns = q("SELECT count(*) FROM cname")[0][0] if src.sync_path is not None else 0
    notes: list[str] = []
    undated = 0
    if src.sync_path is not None and {"campaign", "created"} <= src.columns("campaign_member"):
        undated = q(
            "SELECT count(*) FROM sync.campaign_member m WHERE coalesce(m.deleted, 0) = 0"
            " AND m.campaign IS NOT NULL AND m.created IS NULL"
        )[0][0]
    gone, gone_members, gone_primary = q(
        "SELECT count(*), (SELECT count(*) FROM sync.campaign_member m WHERE m.campaign IN"
        " (SELECT id FROM cname WHERE deleted)), (SELECT count(*) FROM opp WHERE campaign IN"
        " (SELECT id FROM cname WHERE deleted)) FROM cname WHERE deleted"
        if src.sync_path is not None and src.columns("campaign_member")
        else "SELECT count(*), 0, (SELECT count(*) FROM opp WHERE campaign IN"
        " (SELECT id FROM cname WHERE deleted)) FROM cname WHERE deleted"
    )[0]
    if gone:
        notes.append(
            f"{plural(gone, 'CRM campaign')} deleted in the CRM left out, with"
            f" {'its' if gone == 1 else 'their'} {plural(gone_members, 'member')} and the"
            f" primary campaign of {plural(gone_primary, 'opportunity', 'opportunities')},"
            " which credits none"
        )
    if undated:
        notes.append(
            f"{plural(undated, 'CRM campaign member')} without a creation date: such a member wins"
            " first or last touch only where no member of that opportunity has a date (then"
            " the first campaign by name), and counts in no campaign's members"
        )
    if unknown_cost:
        notes.append(
            f"{plural(len(unknown_cost), 'campaign')} left without cost and ROI: a cost is 0"
            f" or more, and {'its cost' if len(unknown_cost) == 1 else 'theirs'} is negative"
            " (or not a finite number): "
            + ", ".join(unknown_cost[:_NAMED])
            + (f" and {len(unknown_cost) - _NAMED} more" if len(unknown_cost) > _NAMED else "")
        )
    return {
        "campaigns": out,
        "totals": totals,
        "crm_campaigns": crm_campaigns,
        "crm_opportunities": src.crm_opportunities(),
        "notes": notes,
    }
