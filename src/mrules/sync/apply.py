"""Perform a plan: the CRM writes of its first batch, then one transaction of the sync file,
then the CRM's facts handed to the engine (docs/sync.md#nothing-lost).

Order, and why nothing is lost or doubled when a process dies anywhere:

1. the CRM writes (creates, updates, members, tasks). A create is only made
   after a search by email found no contact and no lead; killed after the
   write, the next cycle's search finds the record and links it (no
   duplicate). An update killed before step 2 is read back as a change whose
   value equals ours: the base is set, nothing else happens;
2. one transaction of the sync file: links and base snapshots, queue,
   errors, cursors, and the facts for the engine (rows of `inbound`), with
   the plan marked applied;
3. the facts run through the engine (events with stable ids, one stream per
   plan); killed before they are marked delivered, the next command delivers
   them again and the engine skips what it already applied.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import sqlite3
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import orjson

from mrules.crm.errors import RECORD_ACCESS_CODES, CrmCallError, CrmError
from mrules.crm.model import format_datetime, parse_datetime
from mrules.crm.port import MAX_BATCH, Cursor, WriteResult
from mrules.events import EventSourceError
from mrules.history import STEP
from mrules.loader import printable_path
from mrules.storeapi import StateStore
from mrules.sync.db import NOT_WAITING, SyncDb, SyncDbError, held_item, store_identity
from mrules.sync.plan import (
    ACCESS_FIELD,
    DUPLICATE_LINK,
    HELD_FIELDS,
    LINK_ERROR_FIELD,
    RECORD_HELD_FIELDS,
    TASK_ACCESS_FIELD,
    TASK_KEY,
    TASK_KEY_RE,
    campaign_names,
    held_write,
    no_access,
    no_campaign,
    permission_hint,
    refused_access,
    task_key,
)
from mrules.sync.spool import SpillMap, Spool

__all__ = [
    "ApplyReport",
    "StalePlan",
    "apply_plan",
    "deliver",
    "stale_reason",
    "written_words",
]

ROWS_IN_MEMORY = 5000
"""Link rows apply keeps in memory before it keeps them in a temporary table."""

BACKOFF_MINUTES = (1, 5, 15, 60)
"""Waits after transient failures (then every hour)."""


class StalePlan(Exception):
    """The plan no longer describes the store, the sync file or the CRM."""


@dataclass
class ApplyReport:
    plan_id: str
    already: bool = False
    created: int = 0
    linked: int = 0
    updated: int = 0
    members: int = 0
    tasks: int = 0
    pulled: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)
    transient: str | None = None
    delivered: int = 0
    calls: int = 0
    waiting: int = 0
    """The records left for a later batch, and the prospects whose work waits (a lead
    converted since the plan read it, a failure for now backing off)."""
    held: int = 0
    """The prospects whose work is held because the CRM record their email finds is another
    prospect's (`DUPLICATE_LINK`): looked at again each cycle, not cleared by a retry."""
    no_access: list[dict[str, str]] = field(default_factory=list)
    """The parts of the cycle not done because the integration user may not read or write
    an object (the plan's and the apply's, each with its one-line message, `said`): the
    rest was done, and a later cycle tries them again (`sync apply` exits 3)."""

    def as_json(self) -> dict[str, Any]:
        return {
            "plan": self.plan_id,
            "already_applied": self.already,
            "created": self.created,
            "linked": self.linked,
            "updated": self.updated,
            "campaign_members": self.members,
            "tasks": self.tasks,
            "facts_for_engine": self.delivered,
            "errors": self.errors,
            "transient_failure": self.transient,
            "api_calls": self.calls,
            "waiting": self.waiting,
            "held_duplicate_links": self.held,
            "held_for_permission": self.held_for_permission,
            "no_access": self.no_access,
        }

    @property
    def held_for_permission(self) -> int:
        """The writes of this cycle the CRM refused one record at a time for the integration
        user's permissions (`RECORD_ACCESS_CODES`): held, and tried again only when the
        prospect or its record changes, or after `sync retry`; the cycle is partly done
        (`sync apply` and `sync run` exit 3), as for an object it may not read or write."""
        return sum(1 for e in self.errors if e["code"] in RECORD_ACCESS_CODES)


def _cursor(c: Sequence[str]) -> Cursor | None:
    return Cursor(parse_datetime(c[0]), c[1]) if c else None


def stale_reason(plan: Mapping[str, Any], store: StateStore, crm: Any, db: SyncDb) -> str | None:
    """Why a saved plan can no longer be applied, or None when it still can."""
    if plan.get("generation") != db.generation:
        return "another sync was applied since this plan was made"
    if plan.get("store_seq") != store.max_seq():
        return "the engine changed the store since this plan was made"
    now = crm.now() if hasattr(crm, "now") else dt.datetime.now(dt.UTC)
    try:
        until = now + dt.timedelta(days=1)
    except OverflowError:  # a cycle late in the year 9999: its last moment
        until = dt.datetime.max.replace(tzinfo=dt.UTC)
    for sobject, c in plan.get("cursors_to", {}).items():
        page = crm.query_changed(sobject, _cursor(c), until, ["Id"], limit=1)
        if page.records:
            r = page.records[0]
            return (
                f"the CRM changed since this plan was made ({sobject} {r.id} at "
                f"{format_datetime(r.system_modstamp)})"
            )
    return None


def _backoff(attempts: int) -> float:
    return 60.0 * BACKOFF_MINUTES[min(attempts, len(BACKOFF_MINUTES) - 1)]


def _chunks(items: Sequence[Any], n: int = MAX_BATCH) -> list[Sequence[Any]]:
    return [items[i : i + n] for i in range(0, len(items), n)]


def _errs(result: WriteResult) -> list[CrmError]:
    return list(result.errors)


def _gone(result: WriteResult) -> bool:
    """An update refused because its record is deleted or no record has its id."""
    errs = _errs(result)
    return bool(errs) and all(
        e.status_code in ("ENTITY_IS_DELETED", "INVALID_CROSS_REFERENCE_KEY")
        and set(e.fields) <= {"Id"}
        for e in errs
    )


def _purged(result: WriteResult) -> bool:
    """A write refused as `_gone` because no record has the id (purged from the recycle
    bin), not because the record is in it (ENTITY_IS_DELETED: deleted or merged, which the
    next cycle reads)."""
    return all(e.status_code == "INVALID_CROSS_REFERENCE_KEY" for e in _errs(result))


def _still_there(
    crm: Any,
    sobject: str,
    group: Sequence[tuple[str, str, Mapping[str, Any]]],
    results: Sequence[WriteResult],
) -> set[str]:
    """The records refused as gone that are live still: Salesforce's ENTITY_IS_DELETED
    names no field, alike for a record in the recycle bin and for an update whose value
    refers to a deleted record; only the first is the linked record's deletion."""
    gone = [rec_id for (_e, rec_id, _v), r in zip(group, results, strict=True) if _gone(r)]
    live: set[str] = set()
    for chunk in _chunks(gone):
        live.update(r.id for r in crm.find(sobject, "Id", list(chunk), fields=["Id"]))
    return live


def _converted(result: WriteResult) -> bool:
    """An update refused because the lead was converted since the plan read it."""
    errs = _errs(result)
    return bool(errs) and all(e.status_code == "CANNOT_UPDATE_CONVERTED_LEAD" for e in errs)


def _write(crm: Any, how: str, sobject: str, records: list[dict[str, Any]]) -> list[WriteResult]:
    out: list[WriteResult] = []
    fn = crm.create if how == "create" else crm.update
    for chunk in _chunks(records):
        out += fn(sobject, list(chunk))
    return out


_COUNTED: Final = {
    "Lead": "created",
    "Contact": "created",
    "CampaignMember": "members",
    "Task": "tasks",
}
"""What a successful create of each object is, in a cycle's counts (`ApplyReport`)."""


class _Counted:
    """The CRM, counting in `report` each record a create or update of it took, as its call
    returns: whichever call fails next (a later chunk, a retry without refused fields, the
    first call of a later group, a read after the writes), the counts are what the CRM
    took, no more and no less."""

    def __init__(self, crm: Any, report: ApplyReport) -> None:
        self.crm = crm
        self.report = report

    def _count(self, key: str | None, results: list[WriteResult]) -> list[WriteResult]:
        if key is not None:
            took = sum(1 for r in results if r.success)
            setattr(self.report, key, getattr(self.report, key) + took)
        return results

    def create(self, sobject: str, records: list[dict[str, Any]]) -> list[WriteResult]:
        return self._count(_COUNTED.get(sobject), list(self.crm.create(sobject, records)))

    def update(self, sobject: str, records: list[dict[str, Any]]) -> list[WriteResult]:
        key = "updated" if sobject in ("Lead", "Contact") else None
        return self._count(key, list(self.crm.update(sobject, records)))

    def find(self, *args: Any, **kw: Any) -> Any:
        return self.crm.find(*args, **kw)


def _write_keeping(
    crm: Any, how: str, sobject: str, records: list[dict[str, Any]], required: set[str]
) -> tuple[list[WriteResult], list[list[CrmError]]]:
    """Write; a record refused for some of its fields is written again without them.

    Returns each record's final result and the field errors set aside (those
    fields stay pending: their values are kept, in the error queue).
    """
    results = _write(crm, how, sobject, records)
    set_aside: list[list[CrmError]] = [[] for _ in records]
    todo = list(range(len(records)))
    # A CRM may name one refused field a call (the local CRM does): written again
    # without it, the record may be refused for the next one. Each round sets at
    # least one field aside, so this ends.
    while todo:
        again: list[int] = []
        for i in todo:
            r = results[i]
            if r.success:
                continue
            errs = _errs(r)
            named = {f for e in errs for f in e.fields}
            if (
                errs
                and all(e.fields for e in errs)
                and not (named & required)
                and not any(e.transient for e in errs)
            ):
                keep = {k: v for k, v in records[i].items() if k not in named}
                if len(keep) < len(records[i]) and len(keep) > (1 if how == "update" else 0):
                    set_aside[i] += errs
                    records[i] = keep
                    again.append(i)
        if again:
            retried = _write(crm, how, sobject, [records[i] for i in again])
            for i, r in zip(again, retried, strict=True):
                results[i] = r
        todo = again
    return results, set_aside


def apply_plan(
    plan: Mapping[str, Any],
    store: StateStore,
    crm: Any,
    db: SyncDb,
    *,
    check_stale: bool = True,
) -> ApplyReport:
    """Perform `plan` (as `Plan.as_json()` gives it); StalePlan when it no longer applies."""
    report = ApplyReport(plan["id"])
    if db.applied(plan["id"]):
        report.already = True
        return report
    report.no_access = [dict(n) for n in plan.get("no_access", ())]
    if check_stale:
        why = stale_reason(plan, store, crm, db)
        if why is not None:
            raise StalePlan(why)
    calls_before = crm.api_usage().calls_made if hasattr(crm, "api_usage") else 0
    if hasattr(crm, "set_clock"):  # the local CRM stamps the writes with the cycle's time
        crm.set_clock(parse_datetime(plan["at"]))
    at = parse_datetime(plan["at"]).timestamp()
    source = f"crm-sync:{plan['id']}"
    events = Spool()  # the facts for the engine, on disk until the transaction writes them
    # prospect -> link columns to write: in memory for a few thousand, then on disk (a first
    # link writes one a prospect); a row changed is put back.
    links = SpillMap(ROWS_IN_MEMORY)
    history: dict[str, list[str]] = {}
    errors_add: list[tuple[Any, ...]] = []
    errors_clear: list[tuple[str, str | None]] = []  # (prospect, field or None for all)
    side_clear = _Cleared(errors_clear)  # and the rows of the memberships and tasks written
    # The queued work done, item by item: a prospect's queue row keeps what was not done
    # (a campaign member or a task a transient failure stopped before waits, and a later
    # cycle does it without doing again what was done).
    done_seqs: dict[str, set[int]] = {}
    done_kinds: dict[str, set[str]] = {}  # a saved plan from before ops named their `seqs`
    queue_fail: dict[str, float] = {}
    # The prospects whose record write (a create, an update) the CRM answered, done or
    # refused: a `sync retry` mark of a write not tried (in a later batch, or stopped by a
    # transient failure) stays for the cycle that tries it.
    tried: set[str] = set()
    current = _Before(db)
    writer = _Counted(crm, report)  # what the CRM took, counted as each call returns
    # The prospects with a duplicate-link error, which a link clears: few or none, so a
    # first link of every prospect does not keep a clear for each (docs/sync.md#memory).
    duplicates = {
        p
        for (p,) in db.conn.execute("SELECT prospect FROM error WHERE field=?", (LINK_ERROR_FIELD,))
    }

    def linked(email: str) -> None:
        """The prospect is linked: a duplicate-link error it had is gone."""
        if email in duplicates:
            errors_clear.append((email, LINK_ERROR_FIELD))

    def finish(o: Mapping[str, Any]) -> None:
        """The queued work of this op is done."""
        email = o["prospect"]
        if "seqs" in o:
            done_seqs.setdefault(email, set()).update(int(n) for n in o["seqs"])
        else:
            done_kinds.setdefault(email, set()).update(o.get("work", ()))

    gone: set[str] = set()  # the prospects whose record a write found gone

    def record_gone(email: str, obj: str, crm_id: str) -> None:
        """The prospect's record is no more (deleted, or purged from the recycle bin before a
        cycle read the deletion): a deletion, as if read (§7.8), once a prospect."""
        if email in gone:
            return
        gone.add(email)
        link_row(email, obj, crm_id, deleted=1)
        errors_clear.append((email, None))
        events.append(
            {
                "ts": plan["at"],
                "type": "crm_update",
                "prospect": email,
                "object": obj,
                "crm_id": crm_id,
                "status": "deleted",
            }
        )

    def link_row(email: str, obj: str, crm_id: str, **columns: Any) -> None:
        """The prospect's link row to write: now (object, CRM id) and `columns`."""
        row = links.get(email)
        if row is None:
            old = current.get(email)
            row = {
                "object": obj,
                "crm_id": crm_id,
                "base": dict(old[2]) if old else {},
                "times": dict(old[3]) if old else {},
                "deleted": 0,
            }
        row["object"], row["crm_id"] = obj, crm_id
        row.update(columns)
        links[email] = row

    # -- CRM facts read by the plan -----------------------------------------------------------
    for i in plan.get("inbound", ()):
        email, op = i["prospect"], i["op"]
        if "create_event" in i:  # sent to marketing: the prospect is created first
            events.append(i["create_event"])
        if "event" in i:
            events.append(i["event"])
        if op == "delete":
            link_row(email, i["object"], i["crm_id"], deleted=1)
            errors_clear.append((email, None))
            if "error" in i:  # its record is another prospect's (a lead converted into it)
                errors_add.append(_link_error(email, i["object"], i["crm_id"], i["error"], at))
        elif op in ("convert", "link", "undelete", "new prospect", "merge"):
            linked(email)
            old = current.get(email)
            if old is not None and old[1] != i["crm_id"]:
                history.setdefault(email, []).append(f"{old[0]}:{old[1]}")
            columns: dict[str, Any] = {"deleted": 0}
            if op == "link":
                columns["base"], columns["times"] = {}, {}
                if not i.get("again"):  # a link made earlier in this cycle, moved: counted once
                    report.linked += 1
            if "base" in i:
                columns["base"] = dict(i["base"])
            link_row(email, i["object"], i["crm_id"], **columns)

    def now_ops() -> Iterator[dict[str, Any]]:
        """The first batch's ops, read again for each pass (a plan's ops may be on disk)."""
        return (o for o in plan.get("ops", ()) if o.get("batch", 0) == 0)

    # -- creates, grouped by object ---------------------------------------------------------
    transient: str | None = None
    try:
        creates = [o for o in now_ops() if o["op"] == "create"]
        for sobject in ("Lead", "Contact"):
            group = [o for o in creates if o["object"] == sobject.lower()]
            if not group:
                continue
            recs = [dict(o["values"]) for o in group]
            # Written whole or not at all (`RECORD_FIELDS`): a first name too long is not
            # dropped, unless mapped (a mapped field refused is set aside and stays pending
            # in the error queue).
            mapped = {
                str(m.get("crm_field", "")).lower()
                for m in plan.get("config", {}).get("mappings", ())
            }
            required = {"LastName", "Company", "Email"}
            if "firstname" not in mapped:
                required.add("FirstName")
            results, aside = _write_keeping(writer, "create", sobject, recs, required)
            for o, r, errs, sent in zip(group, results, aside, recs, strict=True):
                email = o["prospect"]
                if not any(e.transient for e in _errs(r)):
                    tried.add(email)
                if r.success and r.id:
                    base = {
                        k: v
                        for k, v in sent.items()
                        if k in {f["crm_field"] for f in o.get("fields", ())}
                    }
                    base["OwnerId"] = sent.get("OwnerId")
                    link_row(email, o["object"], r.id, base=base, times={})
                    owner = o["values"].get("OwnerId")
                    ev = {
                        "ts": plan["at"],
                        "type": "crm_update",
                        "prospect": email,
                        "object": o["object"],
                        "crm_id": r.id,
                    }
                    if owner:
                        ev["user"] = _assigned_name(store, email)
                    events.append({k: v for k, v in ev.items() if v is not None})
                    finish(o)
                    errors_clear.append((email, "*record"))
                    linked(email)
                    for e in errs:
                        for f in e.fields:
                            errors_add.append(
                                _error(email, o["object"], r.id, f, e, o["values"].get(f), at)
                            )
                else:
                    errs = _errs(r)
                    if any(e.transient for e in errs):
                        queue_fail[email] = at
                        continue
                    for e in errs:  # held: the queue keeps the work, the error says why
                        errors_add.append(
                            _error(email, o["object"], None, "*record", e, o["values"], at)
                        )
        # -- links found by email, and updates ----------------------------------------------
        # object -> (prospect, CRM id, values) of each update, in the plan's order
        updates: dict[str, list[tuple[str, str, dict[str, Any]]]] = {}
        for o in now_ops():
            email = o["prospect"]
            if o["op"] == "skip" and o.get("done"):
                finish(o)
                for field in o.get("resolved", ()):  # a prospect that no longer syncs
                    errors_clear.append((email, field))
                for held in o.get("resolved_items", ()):  # a write found in the CRM: its rows
                    side_clear.items.append((email, held["field"], held["item"]))
                continue
            if o["op"] == "hold" and any(
                h.get("code") == DUPLICATE_LINK for h in o.get("held", ())
            ):
                report.held += 1  # the record is another prospect's: the work waits
            if o["op"] == "hold" and "error" in o:  # the record is another prospect's
                errors_add.append(_link_error(email, o["object"], o["crm_id"], o["error"], at))
                continue
            pull_event = o.get("event")
            if o["op"] == "link":
                report.linked += 1
                link_row(email, o["object"], o["crm_id"], base={}, times={}, deleted=0)
                linked(email)
                finish(o)
                coalesced = "link_event" in o
                link_event = o["link_event"] if coalesced else o.get("event")
                pull_event = o.get("event") if coalesced else None
                if link_event:
                    events.append(link_event)
            if "base_after" not in o:
                continue
            for field in o.get("resolved", ()):  # both sides agree, or the CRM's value won
                errors_clear.append((email, field))
            # Kept as the JSON the sync file stores (a first link has a row a prospect);
            # parsed again only if a write changes it.
            # (as text: orjson's bytes keep a buffer of some kilobytes each)
            link_row(
                email,
                o["link"][0],
                o["link"][1],
                base=orjson.dumps(o["base_after"], option=orjson.OPT_SORT_KEYS).decode(),
                times=orjson.dumps(o["times_after"], option=orjson.OPT_SORT_KEYS).decode(),
            )
            if pull_event:
                events.append(pull_event)
                report.pulled += 1
            if o.get("values"):
                updates.setdefault(o["link"][0], []).append((email, o["link"][1], o["values"]))
        for obj, upd_group in updates.items():
            sobject = obj.capitalize()
            recs = [{"Id": upd_id, **upd_values} for _e, upd_id, upd_values in upd_group]
            results, aside = _write_keeping(writer, "update", sobject, recs, {"Id"})
            live = _still_there(crm, sobject, upd_group, results)
            for (email, upd_id, upd_values), r, errs, sent in zip(
                upd_group, results, aside, recs, strict=True
            ):
                if not any(e.transient for e in _errs(r)):
                    tried.add(email)
                if r.success:
                    row = links.get(email)
                    row["base"] = _parsed(row["base"])
                    for k, v in sent.items():
                        if k != "Id":
                            row["base"][k] = v
                            errors_clear.append((email, k))
                    links[email] = row
                    for e in errs:
                        for f in e.fields:
                            errors_add.append(
                                _error(email, obj, upd_id, f, e, upd_values.get(f), at)
                            )
                elif _converted(r):
                    # The lead was converted after the plan read it: no error of the value.
                    # The next cycle reads the conversion, moves the link to the contact and
                    # writes the value there (the base still differs from ours).
                    queue_fail[email] = at
                elif _gone(r) and upd_id not in live:
                    if _purged(r):
                        record_gone(email, obj, upd_id)  # the record itself is no more
                    else:
                        # In the recycle bin: deleted, or merged into another record. The
                        # next cycle reads which (a merge moves the link, and the write
                        # goes to the surviving record): the write waits till then.
                        queue_fail[email] = at
                else:
                    # The fields set aside before (each refused in a call of its own) are
                    # refused as much as those of the last call: every one is held. A
                    # refusal that gives no error holds every field all the same (dropped,
                    # the value was never written, and no cycle tried it again).
                    for e in [*errs, *(_errs(r) or [_NO_REASON])]:
                        if e.transient:
                            queue_fail[email] = at
                            continue
                        for f in e.fields or tuple(upd_values):
                            errors_add.append(
                                _error(email, obj, upd_id, f, e, upd_values.get(f), at)
                            )
        # -- campaign members and tasks --------------------------------------------------
        # Each op's work leaves the queue only once done: a call that fails as a whole
        # (the API limit) stops here, and what was not done waits for a later cycle.
        campaigns: dict[str, str | None] = {}  # campaign name -> id, looked up once
        names: dict[str, bool] = {}  # the sync file's campaigns by name, read when needed

        def campaign_gone(name: str) -> dict[str, str]:
            """The error of a membership of a campaign the CRM has not (deleted, or none)."""
            if not names:
                names.update(campaign_names(db, plan.get("campaigns", ())))
            return no_campaign(name, names)

        members: list[tuple[Mapping[str, Any], str]] = []
        tasks: list[tuple[Mapping[str, Any], str]] = []
        for o in now_ops():
            if o["op"] not in ("campaign_member", "task"):
                continue
            email = o["prospect"]
            target = o.get("crm_id") or (links.get(email) or {}).get("crm_id")
            if target is None:
                continue  # its record was not created: the work waits
            (tasks if o["op"] == "task" else members).append((o, target))
        # A lead or contact of an object the sync does not read: no cycle reads its
        # deletion or merge, so a member or task refused as ENTITY_IS_DELETED is it.
        read = set(plan.get("config", {}).get("objects", ("lead", "contact")))
        purged = _Purged(record_gone, frozenset({"lead", "contact"} - read))
        # A refusal is an error, not a member written (`writer` counts what was).
        _members(
            writer, members, at, errors_add, campaigns, campaign_gone, finish, queue_fail,
            report.no_access, side_clear, purged,
        )  # fmt: skip
        # A task held for access before is cleared once written: a delete a task only then.
        held_tasks = bool(tasks) and any(_holds(db, f) for f in HELD_FIELDS["task"])
        _tasks(
            writer, tasks, at, errors_add, plan["at"], finish, queue_fail,
            report.no_access, side_clear if held_tasks else None, purged,
        )  # fmt: skip
    except CrmCallError as e:
        if not e.transient:
            _record_failure(db, plan["at"], e, report)
            raise _stopped(e, report) from e
        transient = str(e)
        report.transient = transient

    report.errors = [
        {
            "prospect": e[0],
            "object": e[1],
            "crm_id": e[2],
            "field": e[3],
            "code": e[4],
            "message": e[5],
        }
        for e in errors_add
    ]
    # -- one transaction of the sync file --------------------------------------------------
    # The `sync retry` marks this plan read are done with; a later one (asked for while the
    # cycle ran, or after a saved plan was made) waits for the next cycle. A saved plan from
    # before plans kept their mark clears them all, as it did.
    read_mark = int(plan.get("retry_mark", 1 << 62))
    with db.tx() as conn:
        queue = db.queue()  # in the transaction: `sync retry` may have made work due since
        conn.executemany(
            "INSERT INTO link (prospect, object, crm_id, base, times, deleted, at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (prospect) DO UPDATE SET"
            " object=excluded.object, crm_id=excluded.crm_id, base=excluded.base,"
            " times=excluded.times, deleted=excluded.deleted, at=excluded.at",
            (  # a row at a time: a first link writes one a prospect
                (
                    email,
                    row["object"],
                    row["crm_id"],
                    _text(row["base"]),
                    _text(row["times"]),
                    row["deleted"],
                    at,
                )
                for email, row in links.items()
            ),
        )
        for email, moved in history.items():  # the records a prospect was linked to before
            (hist,) = conn.execute("SELECT history FROM link WHERE prospect=?", (email,)).fetchone()
            conn.execute(
                "UPDATE link SET history=? WHERE prospect=?",
                (json.dumps(json.loads(hist) + moved), email),
            )
        for email, cleared in errors_clear:
            if cleared is None:
                conn.execute("DELETE FROM error WHERE prospect=?", (email,))
            else:
                conn.execute("DELETE FROM error WHERE prospect=? AND field=?", (email, cleared))
        for email, held_field, written in side_clear.items:
            # The row of this write, or one that does not say which write it holds.
            conn.execute(
                "DELETE FROM error WHERE prospect=? AND field=? AND item IN ('', ?)",
                (email, held_field, written),
            )
        for error_row in _one_a_row(errors_add):
            written_item = held_item(error_row[1], error_row[6])
            before = _OTHER_REFUSAL.get(error_row[3])
            if before is not None and written_item:
                # A membership or task refused for its permissions, then (given) for a data
                # reason, or the other way round: one write, one row, its attempts kept. The
                # earlier refusal stayed beside it, `sync status` counting the write twice and
                # asking the admin for a permission given already.
                conn.execute(
                    "UPDATE OR IGNORE error SET field=? WHERE prospect=? AND field=? AND item=?",
                    (error_row[3], error_row[0], before, written_item),
                )
                conn.execute(
                    "DELETE FROM error WHERE prospect=? AND field=? AND item=?",
                    (error_row[0], before, written_item),
                )
            conn.execute(
                "INSERT INTO error"
                " (prospect, object, crm_id, field, code, message, value, at, item)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (prospect, field, item) DO UPDATE SET"
                " code=excluded.code, message=excluded.message, value=excluded.value,"
                " at=excluded.at, object=excluded.object, crm_id=excluded.crm_id,"
                " attempts=attempts+1,"
                " retry=CASE WHEN retry <= ? THEN 0 ELSE retry END",
                (*error_row, written_item, read_mark),
            )
        _clear_retry_marks(conn, plan, read_mark, tried)
        # The queue: new work from the store, minus what was done.
        work_seq = int(plan.get("work_seq", 0))
        if work_seq > db.work_seq:
            for m in store.crm_pending(after_seq=db.work_seq):
                if m.seq <= work_seq:
                    payload = json.loads(m.payload) if isinstance(m.payload, str | bytes) else {}
                    item = {"kind": m.kind, "seq": m.seq, **payload}
                    if m.prospect in queue:
                        w, since, attempts, nt = queue[m.prospect]
                        queue[m.prospect] = ([*w, item], since, attempts, nt)
                    else:
                        queue[m.prospect] = ([item], m.ts, 0, NOT_WAITING)
            db.set_meta("work_seq", work_seq)
        for email, (work, since, attempts, next_try) in queue.items():
            seqs, kinds = done_seqs.get(email), done_kinds.get(email)
            if seqs or kinds:
                work = [
                    w
                    for w in work
                    if not (seqs and w.get("seq") in seqs) and not (kinds and w["kind"] in kinds)
                ]
                if not work:  # all of it done
                    conn.execute("DELETE FROM queue WHERE prospect=?", (email,))
                    continue
            if email in queue_fail:
                attempts += 1
                next_try = at + _backoff(attempts - 1)
            conn.execute(
                "INSERT OR REPLACE INTO queue (prospect, work, since, attempts, next_try)"
                " VALUES (?, ?, ?, ?, ?)",
                (email, json.dumps(work), since, attempts, next_try),
            )
        deferred = {o["prospect"] for o in plan.get("ops", ()) if o.get("batch", 0) > 0}
        # Marked for the next plan to look at: those whose record write waits (an update is
        # made from the prospect, looked at again). A membership or task waits in the queue,
        # which each plan reads whole: marked, its prospect read as changed, and each of its
        # held memberships and tasks was due again (tried every cycle, one taking the batch
        # while another waited for good).
        looked_again = {
            o["prospect"]
            for o in plan.get("ops", ())
            if o.get("batch", 0) > 0 and o["op"] not in RECORD_HELD_FIELDS
        }
        # Waiting: the records of later batches, and the prospects whose work waits (it
        # waited in this apply, or backs off still): a cycle of only those is not idle.
        waited = set(queue_fail) | {o["prospect"] for o in plan.get("ops", ()) if o["op"] == "wait"}
        report.waiting = int(plan.get("summary", {}).get("waiting", 0)) + len(waited - deferred)
        # Looked at: the batch's prospects and those marked for this plan. A transient
        # failure may have stopped before some of them: they stay marked.
        if transient is None:
            conn.executemany(
                "DELETE FROM dirty WHERE prospect=?",
                (
                    (who,)
                    for who in itertools.chain(
                        (o["prospect"] for o in now_ops()), plan.get("dirty", ())
                    )
                    if who not in looked_again and who not in queue_fail
                ),
            )
        conn.executemany(
            "INSERT OR IGNORE INTO dirty VALUES (?)",
            [(who,) for who in looked_again | set(queue_fail)],
        )
        if transient is None:
            db.set_meta("store_seq", plan.get("store_seq", 0))
            # The store this sync file is of: reports refuse another store's (`--sync-db`).
            store_id = store_identity(store)
            if store_id is not None:
                db.set_meta("store_id", store_id)
            # This cycle took up what a cycle stopped mid-apply had written (found again).
            conn.execute("DELETE FROM meta WHERE key = 'failed_cycle'")
            for sobject, c in plan.get("cursors_to", {}).items():
                if c:
                    conn.execute(
                        "INSERT OR REPLACE INTO cursor VALUES (?, ?, ?)", (sobject, c[0], c[1])
                    )
            for o in plan.get("opportunities", ()):
                conn.execute(
                    "INSERT OR REPLACE INTO opportunity (id, name, stage, amount, close_date,"
                    " is_won, is_closed, deleted, at, campaign, created, account, closed_at)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        o["id"],
                        o["name"],
                        o["stage"],
                        o["amount"],
                        o["close_date"],
                        int(o["is_won"]),
                        int(o["is_closed"]),
                        int(o["deleted"]),
                        plan["at"],
                        o.get("campaign"),
                        o.get("created"),
                        o.get("account"),
                        o.get("closed_at"),
                    ),
                )
            conn.executemany(
                "INSERT OR REPLACE INTO campaign (id, name, type, status, budgeted_cost,"
                " actual_cost, start_date, deleted, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        c["id"],
                        c["name"],
                        c["type"],
                        c["status"],
                        c["budgeted_cost"],
                        c["actual_cost"],
                        c["start_date"],
                        int(c["deleted"]),
                        plan["at"],
                    )
                    for c in plan.get("campaigns", ())
                ],
            )
            conn.executemany(
                "INSERT OR REPLACE INTO campaign_member (id, campaign, contact, lead, status,"
                " has_responded, created, deleted) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        m["id"],
                        m["campaign"],
                        m["contact"],
                        m["lead"],
                        m["status"],
                        int(m["has_responded"]),
                        m["created"],
                        int(m["deleted"]),
                    )
                    for m in plan.get("campaign_members", ())
                ],
            )
            conn.executemany(
                "DELETE FROM send WHERE crm_id = ?", [(i,) for i in plan.get("sent", ())]
            )
            conn.executemany(
                "INSERT OR REPLACE INTO account (id, name, deleted, at) VALUES (?, ?, ?, ?)",
                [
                    (a["id"], a["name"], int(a["deleted"]), plan["at"])
                    for a in plan.get("accounts", ())
                ],
            )
            for r in plan.get("roles", ()):
                conn.execute(
                    "INSERT OR REPLACE INTO opportunity_role (id, opportunity, contact, role,"
                    " is_primary, deleted) VALUES (?, ?, ?, ?, ?, ?)",
                    (
                        r["id"],
                        r["opportunity"],
                        r["contact"],
                        r["role"],
                        int(r["is_primary"]),
                        int(r["deleted"]),
                    ),
                )
        kept = (
            events
            if transient is None
            else (e for e in events if e.get("type") != "prospect_update")
        )
        conn.executemany(
            "INSERT INTO inbound (source, event) VALUES (?, ?)",
            (
                (source, json.dumps({"id": f"{source}:{n}", **event}, sort_keys=True))
                for n, event in enumerate(kept, start=1)
            ),
        )
        events.close()
        links.close()
        db.set_meta("generation", db.generation + 1)
        db.set_meta("last_cycle", at)
        # What this cycle could not do for lack of access, for `sync status` (kept until a
        # cycle does it: each cycle tries again).
        if report.no_access:
            db.set_meta("no_access", json.dumps(report.no_access, sort_keys=True))
        else:
            conn.execute("DELETE FROM meta WHERE key = 'no_access'")
        calls = (crm.api_usage().calls_made if hasattr(crm, "api_usage") else 0) - calls_before
        calls += int(plan.get("api_calls", 0))  # the plan's reads: the cycle's calls
        report.calls = calls
        summary = plan.get("summary", {})
        conn.execute(
            "INSERT OR REPLACE INTO applied_plan VALUES (?, ?, ?)",
            (plan["id"], at, json.dumps(report.as_json())),
        )
        conn.execute(
            "INSERT OR REPLACE INTO cycle VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                at,
                plan["id"],
                report.created,
                report.linked,
                report.updated,
                report.pulled,
                len(errors_add),
                summary.get("waiting", 0),
                calls,
            ),
        )
        total = db.api_calls() + calls
        db.set_meta("api_calls", total)
    return report


WRITTEN = (
    ("created", "record", "records", " created"),
    ("updated", "record", "records", " updated"),
    ("campaign_members", "campaign member", "campaign members", ""),
    ("tasks", "task", "tasks", ""),
)
"""The counts of what a cycle wrote to the CRM (`ApplyReport.as_json()`'s keys), in words:
the noun, its plural, what follows."""


def written_words(counts: Mapping[str, Any]) -> list[str]:
    """What a cycle wrote to the CRM, in words, from its counts.

    >>> written_words({"created": 1, "updated": 2, "campaign_members": 0, "tasks": 1})
    ['1 record created', '2 records updated', '1 task']
    """
    from mrules.diagnostics import plural

    return [
        plural(counts[key], one, many) + rest for key, one, many, rest in WRITTEN if counts.get(key)
    ]


def _record_failure(db: SyncDb, at: str, e: CrmCallError, report: ApplyReport) -> None:
    """Keep, in the sync file, that the cycle at `at` stopped on a call refused for good,
    and what it had written to the CRM (`sync status` says it, until a cycle is applied):
    the only row such a cycle leaves. Not kept when the sync file fails too: the message
    says it all the same."""
    counts = report.as_json()
    failure = {"at": at, "error": str(e), **{key: counts[key] for key, *_words in WRITTEN}}
    try:
        with db.tx():
            db.set_meta("failed_cycle", json.dumps(failure, sort_keys=True))
    except (sqlite3.Error, OSError):
        pass


def _stopped(e: CrmCallError, report: ApplyReport) -> CrmCallError:
    """A call refused for good mid-apply, its message saying what the cycle had written
    (the sync file records none of it but the failure: the cycle stops before its commit,
    as if killed) and what to do."""
    written = written_words(report.as_json())
    if written:
        done = (
            f"; before it this cycle had written to the CRM: {', '.join(written)}, which the"
            " sync file does not record: the next cycle finds them (a record by its email, a"
            " task by its key, a member already there) and writes nothing twice. Fix the"
            " cause, then run the command again (a saved plan is stale by then: make a new"
            " one with `mrules sync plan`)"
        )
    else:
        done = "; nothing of this cycle was written to the CRM. Fix the cause, then run the"
        done += " command again"
    return CrmCallError(e.code, e.message + done, transient=False, http_status=e.http_status)


def _clear_retry_marks(conn: Any, plan: Mapping[str, Any], read_mark: int, tried: set[str]) -> None:
    """Clear the `sync retry` marks up to `read_mark`, but those of a prospect whose record
    write the plan has and this apply did not try: a write in a later batch (only the first
    is written), one a transient failure stopped, or a create backing off (`wait`). Those
    stay marked, and the cycle that writes them tries them (cleared untried, the next plan
    held the write again). The same for a membership or task the plan has: its own row
    keeps what mark it has left. One the CRM answered has none left (written, its row is
    deleted; refused again, its row's upsert cleared the mark, and it is held again); one
    it did not (in a later batch, or a transient failure stopped it or the call before it)
    keeps its mark, and the cycle that writes it tries it."""
    marked = {
        r[0]
        for r in conn.execute(
            "SELECT DISTINCT prospect FROM error WHERE retry > 0 AND retry <= ?", (read_mark,)
        )
    }
    if not marked:
        return
    untried: set[str] = set()
    waiting: dict[str, list[Mapping[str, Any]]] = {}  # memberships and tasks: rows kept as left
    for o in plan.get("ops", ()):
        who = o["prospect"]
        if who not in marked:
            continue
        if o["op"] in RECORD_HELD_FIELDS:
            waiting.setdefault(who, []).append(o)
        elif who not in tried and (
            o["op"] == "wait" or (o["op"] in ("create", "update", "link") and o.get("values"))
        ):
            untried.add(who)
    conn.executemany(
        "UPDATE error SET retry = 0 WHERE prospect = ? AND retry <= ?",
        [(who, read_mark) for who in sorted(marked - untried - waiting.keys())],
    )
    for who in sorted(waiting.keys() - untried):
        rows = conn.execute(
            "SELECT object, field, value, item FROM error"
            " WHERE prospect = ? AND retry > 0 AND retry <= ?",
            (who, read_mark),
        ).fetchall()
        conn.executemany(
            "UPDATE error SET retry = 0 WHERE prospect = ? AND field = ? AND item = ?",
            [
                (who, field_name, item)
                for obj, field_name, value, item in rows
                if not any(
                    field_name in RECORD_HELD_FIELDS[o["op"]]
                    and held_write({"object": obj, "value": value}, o) is not False
                    for o in waiting[who]
                )
            ],
        )


def _parsed(value: dict[str, Any] | str) -> dict[str, Any]:
    """A link row's base or times as a dict of its own (a copy, or parsed from its JSON)."""
    return orjson.loads(value) if isinstance(value, str) else dict(value)


def _text(value: dict[str, Any] | str) -> str:
    """A link row's base or times as the sync file stores it (sorted-keys JSON)."""
    if isinstance(value, str):
        return value
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


class _Before:
    """Each prospect's link as the sync file had it before this apply, read when asked
    (not every link the plan touches at once)."""

    def __init__(self, db: SyncDb) -> None:
        self.db = db
        self.last: tuple[str, Any] = ("", None)
        self.none = db.count("link") == 0  # a first link: nothing to read

    def get(self, email: str) -> Any:
        if self.none:
            return None
        if self.last[0] != email:
            self.last = (email, self.db.link(email))
        return self.last[1]


def _assigned_name(store: StateStore, email: str) -> str | None:
    from mrules.state import Codecs, Prospect

    data = store.prospect(email)
    if data is None:
        return None
    p = Prospect.from_json(data, Codecs(), email)
    return p.assigned_to if p.assigned_kind == "user" else None


def _error(
    email: str,
    obj: str,
    crm_id: str | None,
    fld: str,
    e: CrmError,
    value: Any,
    at: float,
    *,
    hint: bool = True,
) -> tuple[Any, ...]:
    """The error queue's row of a write the CRM refused; one refused for the integration
    user's permissions says what to grant (`hint`: False for a hold whose message, the
    `not done:` line, says it already)."""
    if hint:
        e = permission_hint(obj, e)
    return (
        email,
        obj,
        crm_id,
        fld,
        e.status_code,
        e.message,
        json.dumps(value, sort_keys=True),
        at,
    )


def _one_a_row(rows: Sequence[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """The error queue's rows of one apply, one a (prospect, field, write held), the last
    refused: the queue keeps one row a write (`held_item`: a prospect's two tasks refused
    are two rows), and each upsert of it counts an attempt, so one write refused twice in
    a cycle (a field set aside, then its record) is one attempt."""
    last: dict[tuple[Any, Any, str], tuple[Any, ...]] = {}
    for row in rows:
        key = (row[0], row[3], held_item(row[1], row[6]))
        last.pop(key, None)  # in the order of the last refusal
        last[key] = row
    return list(last.values())


def _link_error(
    email: str, obj: str, crm_id: str, e: Mapping[str, Any], at: float
) -> tuple[Any, ...]:
    """The error queue's row for a link not made: the record is another prospect's."""
    return _error(email, obj, crm_id, e["field"], CrmError(e["code"], e["message"]), None, at)


def _members(
    crm: Any,
    todo: list[tuple[Mapping[str, Any], str]],
    at: float,
    errors: list[tuple[Any, ...]],
    campaigns: dict[str, str | None],
    gone: Callable[[str], Mapping[str, str]],
    finish: Callable[[Mapping[str, Any]], None],
    failed: dict[str, float],
    refused: list[dict[str, str]],
    cleared: _Cleared,
    purged: _Purged | None = None,
) -> None:
    """Add the records of `todo` (op, record id) to their campaigns, 200 a call (`crm`
    counts each member it takes, as its call returns). Each campaign is looked up by its
    name once (`campaigns`).

    Each op's work is marked done (`finish`) once its member exists: written, or there
    already (DUPLICATE_VALUE: a killed apply made it, not written by this cycle). Any
    other refusal of one member is held (`_held_on_record`), its work kept. A transient
    refusal, or a lead converted since the plan read it, leaves the work waiting
    (`failed`): the next cycle, having read the conversion, adds the contact.

    When the integration user may not read Campaign, or create CampaignMember
    (`refused_access`), the rest of the cycle goes on: the part refused is said once in
    `refused` (`no_access`), and each membership waits (`failed`) with an error of the
    queue (field `*campaign`), which a membership written later clears (`cleared`); once a
    create call is refused so, no later chunk is sent (`_create_held`), as for tasks."""
    create: list[tuple[Mapping[str, Any], str, dict[str, Any]]] = []
    # Campaign unreadable (the plan's read of it refused, or a search by name here): the
    # same for every name, searched no more.
    unreadable = next((n for n in refused if n["object"] == "Campaign"), None)
    for o, target in todo:
        email, payload = o["prospect"], o["payload"]
        name = payload.get("campaign")
        if name and name not in campaigns and unreadable is None:
            try:
                found = crm.find("Campaign", "Name", [name], ["Id"])
            except CrmCallError as refusal:
                if not refused_access(refusal):
                    raise
                unreadable = no_access("Campaign", "read", refusal)
                refused.append(unreadable)
            else:
                campaigns[name] = found[0].id if found else None
        if name and unreadable is not None:
            # The integration user may not read Campaign: the membership waits (backing
            # off, tried again by a later cycle), held in the error queue meanwhile.
            held = CrmError(unreadable["code"], unreadable["said"], ("CampaignId",))
            errors.append(
                _error(email, "campaign_member", target, ACCESS_FIELD, held, name, at, hint=False)
            )
            failed[email] = at
            continue
        campaign = campaigns.get(name) if name else None
        if campaign is None:
            # A reference to no record (ENTITY_IS_DELETED said it was deleted): by its name,
            # and whether the CRM deleted it (`gone`), as the plan expected it.
            if name:
                why = gone(name)
                e = CrmError(why["code"], why["message"], (why["field"],))
            else:
                e = CrmError(
                    "REQUIRED_FIELD_MISSING", f"no CRM campaign named {name!r}", ("CampaignId",)
                )
            errors.append(_error(email, "campaign_member", target, "CampaignId", e, name, at))
            finish(o)
            continue
        rec: dict[str, Any] = {
            "CampaignId": campaign,
            ("LeadId" if target.startswith("00Q") else "ContactId"): target,
        }
        if payload.get("status"):
            rec["Status"] = payload["status"]
        create.append((o, target, rec))
    _create_held(
        crm, "campaign_member", create, None, at, errors, finish, failed, refused, cleared, purged
    )


def _tasks(
    crm: Any,
    todo: list[tuple[Mapping[str, Any], str]],
    at: float,
    errors: list[tuple[Any, ...]],
    when: str,
    finish: Any,
    failed: dict[str, float],
    refused: list[dict[str, str]] | None = None,
    cleared: _Cleared | None = None,
    purged: _Purged | None = None,
) -> None:
    """Create the tasks of `todo` (op, record id) not created already (`crm` counts each
    task it takes, as its call returns: a call refused for good further on says what the
    cycle had written, these included); a task refused for good is held in the error
    queue, its work kept (`_held_on_record`), not a task written.

    The tasks the records have already, with their keys, are read first (one query for
    up to 200 records), then the others are created, 200 a call. Each op's work is marked
    done (`finish`) as soon as its task exists; a transient refusal, or a lead converted
    since the plan read it, leaves it waiting.

    When the integration user may not read Task (the plan's search, or this one, refused
    for access: `refused_access`) or create it (a create call refused whole so), the rest
    of the cycle goes on: the part refused is said once in `refused` (`no_access`), and
    each task waits (`failed`) with an error of the queue (field `*task-access`), which a
    task of the prospect written later clears (`cleared`: None when no task is held so)."""
    if not todo:
        return
    if refused is None:
        refused = []
    unreadable = next((n for n in refused if n["object"] == "Task"), None)
    keyed = [(o, target, _task_key_of(o)) for o, target in todo]
    have: set[tuple[str, str]] = set()
    targets = sorted({t for _o, t, key in keyed if key})
    try:
        for chunk in _chunks(targets if unreadable is None else []):
            for r in crm.find("Task", "WhoId", list(chunk), fields=["WhoId", "Description"]):
                for key in TASK_KEY_RE.findall(str(r.fields.get("Description") or "")):
                    have.add((str(r.fields.get("WhoId") or "").lower(), key))
    except CrmCallError as refusal:
        if not refused_access(refusal):
            raise
        unreadable = no_access("Task", "read", refusal)
        refused.append(unreadable)
    create: list[tuple[Mapping[str, Any], str, dict[str, Any]]] = []
    for o, target, key in keyed:
        if key and (target.lower(), key) in have:
            if cleared is not None:
                cleared.written(o["prospect"], "task", {"Description": TASK_KEY + key})
            finish(o)  # created by an apply killed before its sync file's commit
            continue
        create.append((o, target, _task_record(target, o["payload"], when, key)))
    _create_held(
        crm, "task", create, unreadable, at, errors, finish, failed, refused, cleared, purged
    )


class _Cleared:
    """The error-queue rows the memberships and tasks an apply writes clear.

    The queue keeps one row a write held (`*task`, `*member`... and `held_item`: a
    prospect's two tasks refused are two rows). A write clears the rows held for lack of
    access (all of that kind were held together), and of the rows held for one record's
    refusal, its own (and one that does not say which write it holds): the row of another
    task or membership, still held (waiting in a later batch), stays."""

    def __init__(self, fields: list[tuple[str, str | None]]) -> None:
        self.fields = fields
        """(prospect, field) rows to clear whatever they are about."""
        self.items: list[tuple[str, str, str]] = []
        """(prospect, field, item): the row to clear when it is about that write."""

    def written(self, email: str, kind: str, rec: Mapping[str, Any]) -> None:
        """A `kind` write of the prospect (`rec`, as sent) is done."""
        access, *record = HELD_FIELDS[kind]
        self.fields.append((email, access))
        item = _item_of(kind, rec)
        for f in record:
            if item:
                self.items.append((email, f, item))
            else:
                self.fields.append((email, f))


def _item_of(kind: str, rec: Mapping[str, Any]) -> str:
    """Which write a membership or task record is, across cycles (`held_item` of its row):
    a task's sync key (its `Description`), a membership's campaign; "" when unknown."""
    if kind == "task":
        return str(rec.get("Description") or "")
    return str(rec.get("CampaignId") or "")


@dataclass(frozen=True)
class _Purged:
    """What apply does with a prospect whose record is no more (`gone`: prospect, object,
    record id), and the objects of a lead or contact the sync does not read (`unread`, not
    in `objects`): no cycle reads a deletion or a merge of theirs, so a write refused as
    ENTITY_IS_DELETED on such a record is its deletion at once, as a purged one's is."""

    gone: Callable[[str, str, str], None]
    unread: frozenset[str] = frozenset()

    def __call__(self, email: str, obj: str, crm_id: str) -> None:
        self.gone(email, obj, crm_id)


_REFERENCES: Final = {"task": {"WhoId"}, "campaign_member": {"LeadId", "ContactId"}}
"""The fields of a membership or task that point at the prospect's lead or contact."""


def _object_of(crm_id: str) -> str:
    """The sync's object of a lead's or contact's id (a lead's begins with 00Q)."""
    return "lead" if crm_id.startswith("00Q") else "contact"


def _purged_records(
    crm: Any,
    kind: str,
    chunk: Sequence[tuple[Mapping[str, Any], str, dict[str, Any]]],
    results: Sequence[WriteResult],
    unread: frozenset[str] = frozenset(),
) -> set[str]:
    """The records of `chunk` whose write was refused because no record has the id it points
    at (INVALID_CROSS_REFERENCE_KEY, on the lead or contact field or on none), and that a
    read by id finds gone: purged, not merely refused (a record in the recycle bin is
    ENTITY_IS_DELETED, and the next cycle reads its deletion or its merge). A record of an
    object in `unread` refused as ENTITY_IS_DELETED is counted too: no cycle reads it."""

    def gone_code(e: CrmError, target: str) -> bool:
        if e.status_code == "INVALID_CROSS_REFERENCE_KEY":
            return True
        return e.status_code == "ENTITY_IS_DELETED" and _object_of(target) in unread

    maybe = sorted(
        {
            target
            for (_o, target, _rec), r in zip(chunk, results, strict=True)
            if not r.success
            and r.errors
            and all(gone_code(e, target) and set(e.fields) <= _REFERENCES[kind] for e in r.errors)
        }
    )
    live: set[str] = set()
    for sobject in ("Lead", "Contact"):
        ids = [t for t in maybe if _object_of(t) == sobject.lower()]
        for part in _chunks(ids):
            live.update(r.id for r in crm.find(sobject, "Id", list(part), fields=["Id"]))
    return set(maybe) - live


_CREATED: Final = {
    "campaign_member": ("CampaignMember", ACCESS_FIELD),
    "task": ("Task", TASK_ACCESS_FIELD),
}
"""The object each kind of side write creates, and the error queue's field of one held
because the integration user may not create (or read) it."""


def _create_held(
    crm: Any,
    kind: str,
    create: Sequence[tuple[Mapping[str, Any], str, dict[str, Any]]],
    refused_by: Mapping[str, str] | None,
    at: float,
    errors: list[tuple[Any, ...]],
    finish: Callable[[Mapping[str, Any]], None],
    failed: dict[str, float],
    refused: list[dict[str, str]],
    cleared: _Cleared | None,
    purged: _Purged | None = None,
) -> None:
    """Create the campaign memberships or tasks of `create` (op, record id, record), 200 a
    call, as `_members` and `_tasks` both do.

    Once the CRM refuses a call whole for lack of access (`refused_access`), or when the
    object is known refused before (`refused_by`: Task unreadable), no more call is sent
    this cycle (the same user, the same refusal): that chunk and every later one is held
    (`_hold`) under the kind's access field, and the part refused is said once in
    `refused`. A record the CRM refuses on its own is held (`_held_on_record`), one it
    refuses for now or because the lead was converted since the plan read it waits
    (`failed`), and a membership that exists already (DUPLICATE_VALUE) is done. One refused
    because no record has the id it points at, its lead or contact purged from the recycle
    bin before a cycle read the deletion (no cycle ever will), is that record's deletion
    (`purged`), as an update so refused is: held, it would be refused at every retry."""
    sobject, queue_field = _CREATED[kind]
    for chunk in _chunks(create):
        if refused_by is None:
            try:
                results = crm.create(sobject, [rec for _o, _t, rec in chunk])
            except CrmCallError as refusal:
                if not refused_access(refusal):
                    raise
                refused_by = no_access(sobject, "create", refusal)
                if refused_by["said"] not in {n["said"] for n in refused}:
                    refused.append(refused_by)
            else:
                purged_ids = (
                    _purged_records(crm, kind, chunk, results, purged.unread)
                    if purged is not None
                    else set()
                )
                for (o, target, _rec), r in zip(chunk, results, strict=True):
                    if target in purged_ids and purged is not None and not r.success:
                        purged(o["prospect"], _object_of(target), target)
                kept = [
                    (item, r)
                    for item, r in zip(chunk, results, strict=True)
                    if r.success or item[1] not in purged_ids
                ]
                _created(
                    kind,
                    [item for item, _r in kept],
                    [r for _item, r in kept],
                    queue_field,
                    at,
                    errors,
                    finish,
                    failed,
                    cleared,
                )
                continue
        _hold(chunk, refused_by, kind, queue_field, errors, failed, at)


def _created(
    kind: str,
    chunk: Sequence[tuple[Mapping[str, Any], str, dict[str, Any]]],
    results: Sequence[WriteResult],
    queue_field: str,
    at: float,
    errors: list[tuple[Any, ...]],
    finish: Callable[[Mapping[str, Any]], None],
    failed: dict[str, float],
    cleared: _Cleared | None,
) -> None:
    """What a create call of campaign memberships or tasks answered, record by record."""
    for (o, target, rec), r in zip(chunk, results, strict=True):
        email = o["prospect"]
        if not r.success:
            if any(e.transient for e in r.errors) or _converted(r):
                # For now, or the lead converted since the plan read it: the work waits, and
                # the next cycle, having read the conversion, writes it to the contact.
                failed[email] = at
                continue
            duplicate = kind == "campaign_member" and any(
                e.status_code == "DUPLICATE_VALUE" for e in r.errors
            )
            if not duplicate:  # else already a member: done
                _held_on_record(r, kind, o, target, rec, errors, at)
                if cleared is not None:
                    cleared.fields.append((email, queue_field))  # the call was let through
                continue
        if cleared is not None:
            cleared.written(email, kind, rec)
        finish(o)


def _holds(db: SyncDb, field: str) -> bool:
    """Whether the error queue holds a write on `field`: one query a cycle with tasks,
    which stops at the first row found (the queue is read, not written)."""
    found = db.conn.execute("SELECT 1 FROM error WHERE field = ? LIMIT 1", (field,))
    return found.fetchone() is not None


_HELD_REFERENCE: Final = {"task": "WhoId", "campaign_member": "CampaignId"}
"""The field a held write's error names: the record it would have pointed at."""


def _hold(
    chunk: Sequence[tuple[Mapping[str, Any], str, dict[str, Any]]],
    said: Mapping[str, str],
    kind: str,
    queue_field: str,
    errors: list[tuple[Any, ...]],
    failed: dict[str, float],
    at: float,
) -> None:
    """Hold the writes of `chunk` (tasks, campaign memberships) the integration user may not
    read or create (`said`): each waits (backing off, tried again by a later cycle), in the
    error queue meanwhile under `queue_field`, which a write of its kind clears."""
    for o, target, rec in chunk:
        held = CrmError(said["code"], said["said"], (_HELD_REFERENCE[kind],))
        value = _held_value(kind, o, rec)
        errors.append(_error(o["prospect"], kind, target, queue_field, held, value, at, hint=False))
        failed[o["prospect"]] = at


_OTHER_REFUSAL: Final = {
    field: other
    for permission, data in RECORD_HELD_FIELDS.values()
    for field, other in ((permission, data), (data, permission))
}
"""The error queue's other field of a membership's or task's one-record refusal: the row
a new refusal of that write replaces (for its permissions, or for a data reason)."""

_NO_REASON: Final = CrmError("UNKNOWN_EXCEPTION", "refused by the CRM without a reason")
"""A record's refusal that came without any error (the queue still says it was refused)."""


def _held_on_record(
    r: WriteResult,
    kind: str,
    o: Mapping[str, Any],
    target: str,
    rec: Mapping[str, Any],
    errors: list[tuple[Any, ...]],
    at: float,
) -> None:
    """Hold this one membership or task the CRM refused, not for now: in the error queue,
    under its field for the integration user's permissions (`RECORD_ACCESS_CODES`, with what
    to grant) or for any other reason (a validation rule, a restricted picklist, a flow),
    its work queued (not done, not backing off): the plan holds it until the prospect or its
    record changes, or `sync retry`, and a write of it clears the error. Nothing is lost
    once the org is fixed."""
    permission, data = RECORD_HELD_FIELDS[kind]
    refusal = next((e for e in r.errors if e.status_code in RECORD_ACCESS_CODES), None)
    field, e = (
        (data, next(iter(r.errors), _NO_REASON)) if refusal is None else (permission, refusal)
    )
    errors.append(_error(o["prospect"], kind, target, field, e, _held_value(kind, o, rec), at))


def _held_value(kind: str, o: Mapping[str, Any], rec: Mapping[str, Any]) -> dict[str, Any]:
    """A held membership's or task's row value: the record it was for, and for a membership
    the campaign's name as the rule gave it (`campaign`, not a CampaignMember field): the
    plan knows a membership by that name, not by the campaign's id, so it tells which row
    is whose (a prospect's memberships of two campaigns held are two rows)."""
    if kind != "campaign_member" or not o["payload"].get("campaign"):
        return dict(rec)
    return {**rec, "campaign": str(o["payload"]["campaign"])}


def _task_key_of(o: Mapping[str, Any]) -> str | None:
    seqs: Sequence[Any] = o.get("seqs") or ()
    return task_key(o["prospect"], int(seqs[0])) if len(seqs) == 1 else None


def _task_record(
    target: str, payload: Mapping[str, Any], when: str, key: str | None
) -> dict[str, Any]:
    rec: dict[str, Any] = {"WhoId": target, "Subject": payload.get("subject") or "Task"}
    days = payload.get("due_days")
    if days is not None:
        try:
            due = (parse_datetime(when) + dt.timedelta(days=int(days))).date()
        except OverflowError:  # due past the year 9999 (or before the year 1): the last day
            due = dt.date.max if int(days) > 0 else dt.date.min
        rec["ActivityDate"] = due.isoformat()
    if payload.get("priority"):
        rec["Priority"] = payload["priority"]
    if payload.get("status"):
        rec["Status"] = payload["status"]
    if key:
        rec["Description"] = TASK_KEY + key
    return rec


def deliver(db: SyncDb, store: StateStore, compiled: Any) -> int:
    """Run the CRM facts not yet delivered through the engine; mark them delivered."""
    from mrules.streamrun import run_opened

    total = 0
    for src in db.undelivered_sources():
        # The last fact read (they come in order): every undelivered fact up to it is
        # marked delivered after the run, without a list of every fact in memory.
        last = [0, 0]  # [row number, count]

        def lines(source: str = src, seen_to: list[int] = last) -> Generator[str, None, None]:
            for n, text in db.undelivered_lines(source):  # streamed: no list of every fact
                seen_to[0] = n
                seen_to[1] += 1
                yield text

        # When the store is where the last plan left it, the next plan need not read back
        # this run's ledger (the facts are in the base already): the prospects whose rules
        # reacted are marked for it instead, a committed batch at a time (a mark too many
        # after a crash only makes the next plan look at a prospect again), and its store
        # position moves past the run.
        caught_up = db.store_seq == store.max_seq()

        def seen(batch: Any) -> None:
            reacted = sorted(set(_reacted(batch)))
            if reacted:
                with db.tx() as conn:
                    conn.executemany(
                        "INSERT OR IGNORE INTO dirty VALUES (?)", [(w,) for w in reacted]
                    )

        facts = lines()
        try:
            run_opened(
                compiled,
                store,
                facts,
                source=src,
                label="crm sync",
                on_commit=seen if caught_up else None,
            )
        except EventSourceError as e:
            # The store applied some of these facts before (a kill between the two files)
            # and they read differently now: only damage to the sync file does that.
            raise SyncDbError(
                f"{printable_path(str(db.path))}: the sync file is damaged (its facts of"
                f" {src} are not those the store applied from it); restore it from a backup"
            ) from e
        finally:
            facts.close()  # its query ends here, not after the sync file is closed
        with db.tx() as conn:
            conn.execute(
                "UPDATE inbound SET delivered = 1 WHERE delivered = 0 AND source = ? AND n <= ?",
                (src, last[0]),
            )
            if caught_up:
                db.set_meta("store_seq", store.max_seq())
        total += last[1]
    return total


def _reacted(batch: Any) -> Iterator[str]:
    """Prospects a committed engine batch changed otherwise than by the sync's own facts
    (what `make_plan` would find in the ledger after the facts)."""
    for e in batch.ledger:  # plain ledger records: (seq, ts, prospect, rule_kind, ..., source, ...)
        if e[2] and not (e[3] == "event" and str(e[6] or "").startswith("crm-sync:")):
            yield e[2]
    for row in batch.rows:
        steps = row.steps
        if not steps or not row.prospect:
            continue
        ours = str(row.source or "").startswith("crm-sync:")
        if not ours or any(steps[i].kind != "event" for i in range(1, len(steps), STEP)):
            yield row.prospect
