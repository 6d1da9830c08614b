"""One prospect's lifecycle: its stage entries, and its score and grade over time.

What `mrules explain EMAIL --timeline` prints and the HTML report draws
(docs/reports-html.md). Everything comes from the prospect's ledger, which is
never pruned, except the two CRM stages, which come from the sync file:

- **prospect**: the ledger's `create prospect` step (else the prospect's
  creation time);
- **mql**: the first assignment, to a user or a queue, by a rule or by the CRM;
- **sql**: the prospect's linked contact has a contact role on an
  opportunity; the date is the earliest creation date of those opportunities
  (the time the sync recorded one, when the sync file has no creation date);
- **won**: one of those opportunities is won; the date is its close date as
  the CRM gives it (else when it closed, else when the sync recorded it).

These are the funnel's definitions (`mrules.reports`), so the timeline and the
funnel agree. CRM dates are the CRM's: an opportunity closed before the
prospect existed in mrules gives a `won` dated before `prospect`.

The score series has one point per moment the score changed (the last value
at that moment), starting from the prospect's creation; the grade series one
point per moment the grade changed.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import orjson

from mrules.records import LedgerEntry
from mrules.reports._db import check_sync_values, not_a_sync_file, refuse_foreign_sync
from mrules.sqlitefiles import UNREADABLE, reading_uri, refuse_writes, unreadable_reason
from mrules.storeapi import StoreError
from mrules.timetext import utc_text
from mrules.vocab import Action

__all__ = ["STAGES", "crm_stages", "render_text", "timeline"]

STAGES = ("prospect", "mql", "sql", "won")
# The steps whose `after` is the grade. Not `change profile`: its values are profile
# names, and a profile change that moves the grade is followed by a `grade` step.
_GRADE_ACTIONS = frozenset((str(Action.GRADE), str(Action.GRADING)))


def _iso(ts: float | None) -> str | None:
    """Epoch seconds as ISO 8601 UTC text (a four-digit year); None if out of range."""
    if ts is None:
        return None
    try:
        return utc_text(dt.datetime.fromtimestamp(ts, dt.UTC))
    except (ValueError, OverflowError, OSError):  # before the year 1 or after 9999, NaN
        return None


def _as_iso(value: Any) -> str | None:
    """A sync-file time (epoch seconds, an ISO timestamp or a date) as an ISO 8601 UTC string."""
    if value is None or value == "":
        return None
    if isinstance(value, int | float):
        return _iso(float(value))
    text = str(value).strip()
    try:
        return _iso(float(text))
    except ValueError:
        pass
    try:
        when = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    try:
        return utc_text(when)
    except OverflowError:  # 0001-01-01T00:00:00+01:00 is before the year 1 in UTC
        return None


def crm_stages(
    sync_path: str | Path | None,
    email: str,
    *,
    store_id: str | None = None,
    store_path: str | Path = "",
    given: bool = True,
) -> dict[str, str]:
    """The `sql` and `won` entries of `email` from the sync file (empty without one).

    Read only; no file gives no CRM stages: the timeline still shows what the
    store knows. Nor does a file beside the store (not `given`, as `--sync-db`) that
    holds no table yet: what a first sync killed while it made it leaves, which the
    reports read as no sync yet too. A file that cannot be read, or is not a sync file, raises
    StoreError as the reports do (exit 4): "no SQL, no won" would be wrong. So
    does another store's sync file (its noted store id is not `store_id`, the
    store's at `store_path`): StorePathError, exit 2, as in the reports.
    """
    if sync_path is None or not Path(sync_path).is_file():
        return {}
    try:
        conn = sqlite3.connect(reading_uri(sync_path), uri=True)
        conn.set_authorizer(refuse_writes)
    except sqlite3.Error as e:
        raise StoreError(f"cannot read sync file {sync_path}: {e}") from e
    try:
        try:
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
        except UNREADABLE as e:
            raise StoreError(f"cannot read sync file {sync_path}: {unreadable_reason(e)}") from e
        if not tables and not given:
            return {}
        if not {"link", "opportunity", "opportunity_role"} <= tables:
            raise StoreError(not_a_sync_file(sync_path, tables))
        # A value of the wrong kind is the funnel's exit 4 too: a junk CreatedDate fell
        # back to when the sync saw the opportunity, a wrong SQL date shown as right.
        check_sync_values(conn, sync_path, "main", ("link", "opportunity", "opportunity_role"))
        if store_id is not None and "meta" in tables:
            noted = conn.execute("SELECT value FROM meta WHERE key = 'store_id'").fetchone()
            its = str(noted[0]) if noted is not None and noted[0] else None
            refuse_foreign_sync(sync_path, its, store_path, store_id)
        cols = {r[1] for r in conn.execute("PRAGMA table_info(opportunity)")}
        created = "o.created" if "created" in cols else "NULL"
        closed_at = "o.closed_at" if "closed_at" in cols else "NULL"
        rows = conn.execute(
            f"SELECT {created}, o.at, o.close_date, {closed_at}, o.is_won FROM link l"
            " JOIN opportunity_role r ON r.contact = l.crm_id AND coalesce(r.deleted, 0) = 0"
            " JOIN opportunity o ON o.id = r.opportunity AND coalesce(o.deleted, 0) = 0"
            " WHERE l.prospect = ? AND coalesce(l.deleted, 0) = 0",
            (email,),
        ).fetchall()
    except UNREADABLE as e:
        raise StoreError(f"cannot read sync file {sync_path}: {unreadable_reason(e)}") from e
    finally:
        conn.close()
    out: dict[str, str] = {}
    opened = [t for t in (_as_iso(r[0]) or _as_iso(r[1]) for r in rows) if t is not None]
    if opened:
        out["sql"] = min(opened)
    won = [
        t
        for t in (_as_iso(r[2]) or _as_iso(r[3]) or _as_iso(r[1]) for r in rows if r[4])
        if t is not None
    ]
    if won:
        out["won"] = min(won)
    return out


def timeline(
    email: str,
    entries: Iterable[LedgerEntry],
    *,
    created: str | None = None,
    crm: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The timeline of one prospect (the contract's shape) from its ledger entries, in order.

    `created` is the prospect's creation time (ISO), used when the ledger has
    no `create prospect` step; `crm` the `sql`/`won` entries (`crm_stages`).
    """
    at: dict[str, str] = {}
    score: list[dict[str, Any]] = []
    grade: list[dict[str, Any]] = []
    loads = orjson.loads
    for e in entries:
        when = _iso(e.ts)
        if when is None:
            continue
        action = str(e.action)
        if action == Action.CREATE_PROSPECT:
            at.setdefault("prospect", when)
        elif action == Action.ASSIGN:
            at.setdefault("mql", when)
        elif action in (Action.SCORE, Action.SET_SCORE):
            after = loads(e.after) if e.after is not None else None
            if not isinstance(after, int):
                continue
            if not score:
                before = loads(e.before) if e.before is not None else 0
                start = at.get("prospect") or created or when
                if start < when and isinstance(before, int):
                    score.append({"at": start, "score": before})
            if score and score[-1]["at"] == when:
                score[-1]["score"] = after
            else:
                score.append({"at": when, "score": after})
        elif action in _GRADE_ACTIONS:
            after = loads(e.after) if e.after is not None else None
            value = after if isinstance(after, str) else None
            if grade and grade[-1]["at"] == when:
                grade[-1]["grade"] = value
            elif (grade[-1]["grade"] if grade else None) != value:
                grade.append({"at": when, "grade": value})
    if "prospect" not in at and created is not None:
        at["prospect"] = created
    for stage, when in (crm or {}).items():
        if stage in ("sql", "won"):
            at[stage] = when
    if not score and "prospect" in at:
        score.append({"at": at["prospect"], "score": 0})
    return {
        "email": email,
        "stages": [{"stage": s, "at": at[s]} for s in STAGES if s in at],
        "score": score,
        "grade": grade,
    }


def render_text(t: dict[str, Any]) -> str:
    """The timeline as one table in time order: stage entered, score and grade from then on."""
    moments: dict[str, dict[str, Any]] = {}
    for s in t["stages"]:
        moments.setdefault(s["at"], {}).setdefault("stages", []).append(s["stage"])
    for p in t["score"]:
        moments.setdefault(p["at"], {})["score"] = p["score"]
    for g in t["grade"]:
        moments.setdefault(g["at"], {})["grade"] = g["grade"]
    out = [f"{t['email']}: lifecycle"]
    if not moments:
        out.append("  nothing recorded yet")
        return "\n".join(out)
    width = max([5] + [len(", ".join(m.get("stages", ()))) for m in moments.values()])
    out.append(f"  {'time':<20}  {'stage':<{width}}  {'score':>5}  grade")
    score: Any = "-"
    grade: Any = "-"
    for when in sorted(moments):
        m = moments[when]
        score = m.get("score", score)
        if "grade" in m:
            grade = m["grade"] or "-"
        stage = ", ".join(m.get("stages", ())) or ""
        out.append(f"  {when:<20}  {stage:<{width}}  {score!s:>5}  {grade}")
    reached = {s["stage"] for s in t["stages"]}
    missing = [s for s in STAGES if s not in reached]
    if missing:
        out.append(f"  not reached: {', '.join(missing)}")
    return "\n".join(out)
