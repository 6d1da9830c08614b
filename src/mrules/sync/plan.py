"""What one sync cycle would do, record by record (`mrules sync plan`).

A plan is plain data (JSON): it reads the store, the sync file and the CRM,
and writes nothing (a cycle's plan moves the local CRM's clock to the cycle's
time, `move_clock`; `sync plan` does not). `mrules.sync.apply` performs it.
Every decision is in the plan with its reason, so what `apply` does is what
`plan` showed.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import orjson

from mrules.crm.errors import NO_ACCESS_CODES, RECORD_ACCESS_CODES, CrmCallError, CrmError
from mrules.crm.model import TYPES, check_value, format_datetime, parse_datetime
from mrules.crm.port import MAX_BATCH, Cursor, ObjectInfo, Record
from mrules.diagnostics import plural
from mrules.state import Codecs, DamagedState, Prospect
from mrules.storeapi import StateStore
from mrules.sync.config import FieldMap, SyncConfig
from mrules.sync.db import NOT_WAITING, SyncDb, held_campaign, held_item, store_identity
from mrules.sync.merge import decide, norm, same
from mrules.sync.spool import RecordMap, Spool
from mrules.timetext import utc_seconds_text

__all__ = ["PLAN_FORMAT", "Plan", "iso", "make_plan", "plan_id", "to_epoch"]

PLAN_FORMAT = "mrules-sync-plan/1"
UNKNOWN = "[[unknown]]"
"""What a required CRM field gets when we have no value (LastName, Company), as Pardot sends."""
OBJECT_NAMES = {"lead": "Lead", "contact": "Contact"}
SCORE_FIELD, GRADE_FIELD = "pi__Score__c", "pi__Grade__c"


def iso(epoch: float) -> str:
    """Epoch seconds as `YYYY-MM-DDTHH:MM:SSZ`, the year in four digits (`0999`, not `999`:
    an event's or a CRM record's time may be that early, and the plan's times are read back)."""
    return utc_seconds_text(epoch)


def to_epoch(text: str) -> float:
    return parse_datetime(text).timestamp()


def _dt(epoch: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(round(epoch, 3), dt.UTC)


def _facts_of(o: Mapping[str, Any]) -> int:
    """The engine facts `sync apply` delivers for one op of this cycle (`apply_plan`)."""
    if o["op"] == "create":
        return 1  # the created record's id and owner
    n = 0
    if o["op"] == "link":
        n += bool(o.get("link_event") or o.get("event"))
        pulled = "link_event" in o and bool(o.get("event"))
    else:
        pulled = bool(o.get("event"))
    return n + (pulled and "base_after" in o)


@dataclass
class Plan:
    """A cycle's plan; `as_json()` is what `sync plan --format json` prints and `apply` reads."""

    at: float
    until: str
    generation: int
    store_seq: int
    work_seq: int
    config: dict[str, Any]
    cursors_from: dict[str, list[str]]
    cursors_to: dict[str, list[str]]
    ops: Spool = field(default_factory=Spool)
    """Record by record; kept on disk as they are made (docs/sync.md#memory)."""
    inbound: Spool = field(default_factory=Spool)
    """CRM facts read this cycle: events for the engine and link changes (on disk too)."""
    notes: list[str] = field(default_factory=list)
    opportunities: list[dict[str, Any]] = field(default_factory=list)
    roles: list[dict[str, Any]] = field(default_factory=list)
    campaigns: list[dict[str, Any]] = field(default_factory=list)
    members: list[dict[str, Any]] = field(default_factory=list)
    accounts: list[dict[str, Any]] = field(default_factory=list)
    """Campaigns, campaign members and accounts read this cycle (kept for reports)."""
    sent: list[str] = field(default_factory=list)
    """CRM ids sent to marketing (`sync send`) this plan reads; done once applied."""
    api_calls: int = 0
    """CRM API calls the plan made (reads); counted with the cycle's once applied."""
    dirty: list[str] = field(default_factory=list)
    """Prospects marked for this plan to look at; looked at once applied."""
    retry_mark: int = 0
    """The latest `sync retry` mark the plan read (`SyncDb.retry_mark`): applied, it clears
    those marks only."""
    store: str = ""
    """The path of the store the plan was made from (absolute), for `sync apply`'s message
    when it is given another store."""
    store_id: str | None = None
    """That store's id (`store_id` in its meta; None for a store without one): `sync apply`
    refuses the plan for a store of another id (docs/sync.md#plan-and-apply)."""
    no_access: list[dict[str, str]] = field(default_factory=list)
    """The objects the integration user may not read (`object`, `code`, `message`,
    `said`: the one-line message), left out of this cycle: their cursors stay, and the
    next cycle reads them again (docs/sync.md#errors)."""
    id: str = ""

    def as_json(self) -> dict[str, Any]:
        body = {
            "format": PLAN_FORMAT,
            "at": iso(self.at),
            "until": self.until,
            "generation": self.generation,
            "store_seq": self.store_seq,
            "work_seq": self.work_seq,
            "config": self.config,
            "cursors_from": self.cursors_from,
            "cursors_to": self.cursors_to,
            "summary": self.summary(),
            "ops": self.ops,
            "inbound": self.inbound,
            "opportunities": self.opportunities,
            "roles": self.roles,
            "campaigns": self.campaigns,
            "campaign_members": self.members,
            "accounts": self.accounts,
            "sent": self.sent,
            "dirty": self.dirty,
            "retry_mark": self.retry_mark,
            "api_calls": self.api_calls,
            "notes": self.notes,
            "store": self.store,
            "store_id": self.store_id,
        }
        if self.no_access:  # only then: the plans of an org that refuses nothing are as before
            body["no_access"] = self.no_access
        if not self.id:
            self.id = plan_id(body)
        return {"id": self.id, **body}

    @property
    def batch(self) -> int:
        return int(self.config["batch"])

    def summary(self) -> dict[str, Any]:
        """Counts over the ops, in one pass (the ops are read back from disk)."""
        writes = now = riders = expected = held = 0
        # The facts this cycle gives the engine, as apply delivers them when every write
        # succeeds: the inbound ones, a created record's, a link's, a field the CRM won.
        facts = sum(bool(i.get("event")) + bool(i.get("create_event")) for i in self.inbound)
        last_batch = -1
        counts: dict[str, int] = {}
        for o in self.ops:
            kind = o["op"]
            counts[kind] = counts.get(kind, 0) + 1
            expected += len(o.get("expected_errors", ()))
            held += len(o.get("held", ()))
            if o.get("batch", 0) == 0:
                facts += _facts_of(o)
            if kind not in WRITES:
                continue
            if o.get("with_record"):  # counted in their record's batch
                riders += 1
                continue
            writes += 1
            b = o.get("batch")
            now += b == 0
            last_batch = max(last_batch, int(b or 0))
        cycles = last_batch + 1 if writes else 0
        every_s = float(self.config["every_minutes"]) * 60
        return {
            "records": writes,
            "this_cycle": now,
            "waiting": writes - now,
            "with_records": riders,
            "cycles_to_clear": cycles,
            "clear_at": iso(self.at + max(cycles - 1, 0) * every_s) if writes else None,
            "by_op": dict(sorted(counts.items())),
            "inbound_facts": facts,
            "expected_errors": expected,
            "held_errors": held,
        }

    def pending(self) -> bool:
        """Anything to do: a write, a fact for the engine, a cursor to move."""
        return bool(
            any(o["op"] not in ("wait", "base") for o in self.ops)
            or self.inbound
            or self.opportunities
            or self.roles
            or self.campaigns
            or self.members
            or self.accounts
            or self.sent
        )

    work_seq_moved: bool = False


WRITES = ("create", "link", "update", "campaign_member", "task")
LINK_ERROR_FIELD = "*link"
"""The error queue's field for a link the sync did not make (`DUPLICATE_LINK`)."""
DUPLICATE_LINK = "DUPLICATE_LINK"
"""mrules' own code (not the CRM's) for a CRM record another prospect is linked to: one
prospect a CRM record (docs/sync.md#one-prospect-a-crm-record)."""
RECORD_FIELDS = ("Email", "FirstName", "LastName", "Company")
"""The fields a create on assignment writes whatever the mappings: the person's email,
names and company. One the CRM refuses (too long, a malformed email) refuses the create
whole (apply writes no record without it: no later cycle would write an unmapped field);
the create is held until the prospect changes."""
CREATE_KINDS = ("create_record", "assignment_rule")
"""Queued work that a record's create (or its link to a record found by email) does."""


def _seqs(work: Iterable[Mapping[str, Any]]) -> list[int]:
    """The seqs of queued work items (each the store's seq of the CRM work it is)."""
    return [int(w["seq"]) for w in work if "seq" in w]


def _store_path(store: Any) -> str:
    """The store's path made absolute (a plan applied from another folder still names it),
    or "" for a store without one."""
    path = getattr(store, "path", None)
    return os.path.abspath(str(path)) if path else ""


def plan_id(body: dict[str, Any]) -> str:
    """A plan's id: a digest of everything else in it (an edited plan no longer matches).

    The digest of the body's sorted-keys JSON, fed a list item at a time (the same bytes
    as the whole document, without holding it: a first link's plan has an op a record).
    """
    opts = orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS
    dumps = orjson.dumps
    h = hashlib.sha256()
    try:
        if any(not isinstance(k, str) for k in body):  # keys orjson sorts its own way
            h.update(dumps(body, option=opts))
            return h.hexdigest()[:16]
        h.update(b"{")
        for n, key in enumerate(sorted(body)):
            h.update(b"," if n else b"")
            h.update(dumps(key))
            h.update(b":")
            value = body[key]
            if type(value) is Spool:  # the bytes it wrote to disk
                h.update(b"[")
                for i, data in enumerate(value.raw()):
                    h.update(b"," if i else b"")
                    h.update(data)
                h.update(b"]")
            elif type(value) is list:
                h.update(b"[")
                for i, item in enumerate(value):
                    h.update(b"," if i else b"")
                    h.update(dumps(item, option=opts))
                h.update(b"]")
            else:
                h.update(dumps(value, option=opts))
        h.update(b"}")
    except TypeError:
        return ""
    return h.hexdigest()[:16]


class _Users:
    """CRM users (and queues) by email / name, read once a plan.

    An object the integration user may not see (`NO_ACCESS_CODES`) is skipped, and `notes`
    says so: its owners are unknown and records go to the integration user. Any other
    failure of the read fails the plan, as every other read does."""

    def __init__(self, crm: Any, until: dt.datetime, notes: list[str]) -> None:
        self.by_id: dict[str, str] = {}
        self.by_email: dict[str, str] = {}  # active users: an inactive one owns nothing new
        self.inactive: set[str] = set()
        self.queues: dict[str, str] = {}
        for sobject, owners in (("User", "a user"), ("Group", "a queue")):
            try:
                self._read(crm, sobject, until)
            except CrmCallError as e:
                if e.transient or e.code not in NO_ACCESS_CODES:
                    raise
                notes.append(
                    f"the CRM's {sobject} records cannot be read ({e.code}: {e.message}):"
                    f" every owner that is {owners} is unknown, and the integration user"
                    f" owns what the sync creates; give the integration user access to"
                    f" {sobject}"
                )

    def _read(self, crm: Any, sobject: str, until: dt.datetime) -> None:
        if sobject == "Group":
            # Only queues own records: a public group (or a role's) may have a queue's
            # name, and must not take its place (Salesforce: `Type = 'Queue'`).
            for r in crm.find("Group", "Type", ["Queue"], READ_OF["Group"], missing_ok=True):
                self.queues.setdefault(str(r.fields.get("Name") or ""), r.id)
            return
        cursor: Cursor | None = None
        while True:
            page = crm.query_changed(
                sobject,
                cursor,
                until,
                READ_OF[sobject],
                include_deleted=False,
                missing_ok=True,
            )
            for r in page.records:
                email = str(r.fields.get("Email") or "").lower()
                self.by_id[r.id] = email
                if r.fields.get("IsActive") is False:
                    self.inactive.add(email)
                else:
                    self.by_email.setdefault(email, r.id)
            cursor = page.cursor
            if page.done:
                break

    def is_inactive(self, name: str | None) -> bool:
        """A CRM user with this email, but none of them active."""
        email = (name or "").lower()
        return email in self.inactive and email not in self.by_email

    def owner_id(self, kind: str | None, name: str | None) -> str | None:
        if not name:
            return None
        if kind == "queue":
            return self.queues.get(name)
        return self.by_email.get(name.lower())


def _change_pages(
    crm: Any,
    plan: Plan,
    sobject: str,
    cursors: dict[str, tuple[str, str]],
    until: dt.datetime,
    keep: frozenset[str],
    sent: list[str],
) -> Iterator[list[Record]]:
    """An object's changes since its cursor, a page at a time, each record slimmed to `keep`
    (a first link reads every record: none is held past its page); then the records `sent`
    to marketing the pages did not have. The plan's cursor moves to what was read."""
    cursor = _cursor(cursors.get(sobject))
    wanted = set(sent)
    seen: set[str] = set()
    while True:
        page = crm.query_changed(
            sobject, cursor, until, sorted(keep), include_deleted=True, missing_ok=True
        )
        seen.update(r.id for r in page.records if r.id in wanted)
        slim = [_slim(r, keep) for r in page.records]
        cursor, done = page.cursor, page.done
        del page  # the whole records go before the next page is read
        yield slim
        del slim
        if done:
            break
    # A first read that finds no record still reads the object: its cursor is the time read
    # up to, so the records created later are new to the connector (`auto create prospects
    # on` creates their prospects; it is not retroactive only for those there before).
    plan.cursors_to[sobject] = (
        _cursor_json(cursor)
        or plan.cursors_from.get(sobject)
        or [format_datetime(until), NO_RECORD_ID]
    )
    if sent:  # sent to marketing: read now, changed or not
        found = crm.find(sobject, "Id", sent, sorted(keep), missing_ok=True)
        yield [r for r in found if r.id not in seen]


def _read_changes(
    crm: Any,
    sobject: str,
    since: Cursor | None,
    until: dt.datetime,
    keep: frozenset[str] | None = None,
) -> tuple[list[Record], Cursor | None]:
    """An object's changes since `since`, with the fields the plan reads of them
    (`READ_OF`); with `keep`, each record keeps only those fields (slimmed page by page:
    a first link reads every record)."""
    out: list[Record] = []
    cursor = since
    while True:
        page = crm.query_changed(
            sobject, cursor, until, READ_OF[sobject], include_deleted=True, missing_ok=True
        )
        if keep is None:
            out += page.records
        else:
            out += [_slim(r, keep) for r in page.records]
        cursor = page.cursor
        if page.done:
            return out, cursor


READ_FIELDS = frozenset(
    (
        "Email",
        "OwnerId",
        "MasterRecordId",
        "IsConverted",
        "ConvertedContactId",
        "LastModifiedDate",
        "LastModifiedById",
    )
)
"""The system fields a plan reads of a lead or contact, besides the mapped ones."""

READ_OF: dict[str, tuple[str, ...]] = {
    "User": ("Email", "IsActive"),
    "Group": ("Name",),
    "Campaign": ("Name", "Type", "Status", "BudgetedCost", "ActualCost", "StartDate"),
    "CampaignMember": (
        "CampaignId",
        "ContactId",
        "LeadId",
        "Status",
        "HasResponded",
        "CreatedDate",
    ),
    "Account": ("Name",),
    "OpportunityContactRole": ("OpportunityId", "ContactId", "Role", "IsPrimary"),
    "Opportunity": (
        "Name",
        "StageName",
        "Amount",
        "CloseDate",
        "IsWon",
        "IsClosed",
        "CampaignId",
        "CreatedDate",
        "AccountId",
    ),
}
"""The fields a plan reads of the other objects (with Id, SystemModstamp and IsDeleted).
A plan selects only what it reads: a query selecting every field of an org with hundreds
of custom fields is too long for Salesforce's URL limit (docs/crm.md)."""


def _slim(r: Record, keep: frozenset[str]) -> Record:
    fields = r.fields
    return Record(
        r.sobject,
        r.id,
        {k: fields[k] for k in keep if k in fields},
        r.system_modstamp,
        r.is_deleted,
    )


NO_RECORD_ID = "000000000000000AAA"
"""Salesforce's empty id, below every record's: a cursor's id when it read no record."""


def _cursor(c: tuple[str, str] | list[str] | None) -> Cursor | None:
    if not c:
        return None
    return Cursor(parse_datetime(c[0]), c[1])


def _cursor_json(c: Cursor | None) -> list[str]:
    return [] if c is None else [format_datetime(c.modstamp), c.last_id]


class ProspectView:
    """What the sync reads of a prospect, straight from its stored JSON (no decoding of
    lists, tags or rules: a plan reads every prospect)."""

    __slots__ = (
        "_f",
        "assigned_kind",
        "assigned_to",
        "crm_status",
        "do_not_sync",
        "email",
        "grade",
        "opted_out",
        "score",
        "stamps",
    )

    def __init__(self, email: str, raw: dict[str, Any]) -> None:
        self.email = email
        self._f: dict[str, Any] = raw.get("f") or {}
        self.score = raw.get("s", 0)
        self.grade = raw.get("g")
        self.assigned_kind = raw.get("ak")
        self.assigned_to = raw.get("at")
        self.do_not_sync = bool(raw.get("ds"))
        self.opted_out = bool(raw.get("oo"))
        self.stamps: dict[str, float] | None = raw.get("sp")
        self.crm_status = raw.get("st", "none")

    def field(self, name: str) -> Any:
        return self._f.get(name)

    @classmethod
    def of(cls, p: Prospect) -> ProspectView:
        view = cls(p.email, {})
        view._f = p.field_items()
        view.score, view.grade, view.stamps = p.score, p.grade, p.stamps
        view.assigned_kind, view.assigned_to = p.assigned_kind, p.assigned_to
        view.do_not_sync, view.crm_status = p.do_not_sync, p.crm_status
        view.opted_out = bool(p.opted_out)
        return view


def _view(email: str, data: bytes, codecs: Codecs) -> ProspectView:
    try:
        raw = orjson.loads(data)
        if type(raw) is not dict:
            raise TypeError("not a JSON object")
    except (ValueError, TypeError) as e:  # what Prospect.from_json says of such bytes
        raise DamagedState(
            f"the stored state of prospect {email} cannot be read ({type(e).__name__}:"
            f" {str(e)[:80]})"
        ) from None
    if "c" in raw:
        for key, kind in (("f", dict), ("sp", dict)):
            if raw.get(key) is not None and type(raw[key]) is not kind:
                raise DamagedState(
                    f"the stored state of prospect {email} cannot be read ({key} is not a"
                    f" JSON {kind.__name__})"
                )
        return ProspectView(email, raw)
    return ProspectView.of(Prospect.from_json(data, codecs, email))  # a schema 1 row


class _Prospects:
    """Prospects as the plan needs them, each read from the store when asked (a first link
    looks at every prospect: none is held past its op). A cycle that looks at some
    prospects keeps those it read (a prospect may be looked at more than once)."""

    def __init__(self, store: StateStore, full: bool) -> None:
        self.store = store
        self.full = full
        self.codecs = Codecs()
        self.cache: dict[str, ProspectView | None] = {}

    def get(self, email: str) -> ProspectView | None:
        if self.full:
            data = self.store.prospect(email)
            return None if data is None else _view(email, data, self.codecs)
        if email in self.cache:
            return self.cache[email]
        data = self.store.prospect(email)
        view = None if data is None else _view(email, data, self.codecs)
        self.cache[email] = view
        return view

    def take(self, email: str) -> ProspectView | None:
        """`get`, for the last time (a cycle's cache lets the prospect go)."""
        if self.full:
            return self.get(email)
        view = self.get(email)
        self.cache.pop(email, None)
        return view

    def __contains__(self, email: str) -> bool:
        if self.full:
            return self.store.prospect(email) is not None
        return self.get(email) is not None


def _fields_of(info: ObjectInfo, mappings: Iterable[FieldMap]) -> dict[str, FieldMap]:
    """Mapped CRM fields the object has, by its canonical API name."""
    lower = {n.lower(): n for n in info.fields}
    out = {}
    for m in mappings:
        name = lower.get(m.crm_field.lower())
        if name is not None:
            out[name] = m
    return out


def _problem(
    info: ObjectInfo, name: str, value: Any, *, creating: bool = False
) -> dict[str, str] | None:
    """The error the CRM will give this value, when we can tell before writing (`creating`:
    in a new record, else in an update)."""
    f = info.fields.get(name)
    if f is None or value is None:
        return None
    if not (f.createable if creating else f.updateable):
        # A formula or system field, or one the integration user may not edit (its
        # describe says so): the CRM refuses the write of it, and the rest goes through.
        verb = "create" if creating else "update"
        return {
            "field": name,
            "code": "INVALID_FIELD_FOR_INSERT_UPDATE",
            "message": f"Unable to {verb} fields: {name}. Please check the security settings"
            " of this field and verify that it is read/write for your profile or permission"
            " set.",
        }
    text = value if isinstance(value, str) else None
    # A multi-select takes several of its values, joined by `;`.
    chosen = text.split(";") if text is not None and f.type == "multipicklist" else [text]
    if (
        f.restricted_picklist
        and f.picklist_values
        and any(v not in f.picklist_values for v in chosen)
    ):
        return {
            "field": name,
            "code": "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
            "message": f"bad value for restricted picklist field: {value}",
        }
    if (
        text is not None
        and f.length
        and len(text) > f.length
        and f.type in ("string", "textarea", "phone", "email", "url", "picklist")
    ):
        return {
            "field": name,
            "code": "STRING_TOO_LONG",
            "message": f"{f.label}: data value too large: {text[:40]} (max length={f.length})",
        }
    if f.type in _CHECKED_TYPES:
        try:  # a value the field's type does not take: text in a number, a bad email...
            check_value(f, value)
        except CrmError as e:
            return {"field": name, "code": e.status_code, "message": e.message}
    return None


_CHECKED_TYPES: Final = TYPES - {"id", "reference"}
"""The field types whose values a plan checks as the local CRM does (a lookup is not mapped,
and a type of a real org's that the local CRM does not know is left to the org)."""


def _not_createable(sobject: str) -> dict[str, str]:
    """The expected error of a create the CRM's describe says the integration user may not
    make (`createable` false): the whole record is refused, held as `*record`."""
    return {
        "field": "*record",
        "code": "INSUFFICIENT_ACCESS_OR_READONLY",
        "message": f"the integration user may not create {sobject} (the CRM's describe says"
        f" so): give it Create on {sobject} (its profile or a permission set)",
    }


def _ours(p: ProspectView, m: FieldMap) -> Any:
    if m.field == "score":
        return p.score
    if m.field == "grade":
        return p.grade
    if m.field == "opted_out":  # the email status, not a field of its own: true or false
        return p.opted_out
    value = p.field(m.field)
    if isinstance(value, list | tuple):
        return ";".join(str(v) for v in value)
    return value


def _json_value(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    return value


def make_plan(
    store: StateStore,
    crm: Any,
    db: SyncDb,
    config: SyncConfig,
    at: float,
    *,
    retry: bool = False,
    move_clock: bool = True,
) -> Plan:
    """The plan of the cycle at `at` (epoch seconds, the run's clock).

    `move_clock`: the local CRM's clock follows the run's (a cycle's plan, whose writes are
    stamped with the cycle's time); `sync plan` leaves it where it is (a plan writes
    nothing: it reads the CRM up to its clock, past which nothing is stamped yet).
    """
    calls_before = crm.api_usage().calls_made if hasattr(crm, "api_usage") else 0
    if move_clock and hasattr(crm, "set_clock"):
        crm.set_clock(_dt(at))  # the local CRM follows the run's clock
    until = crm.now() if hasattr(crm, "now") else _dt(at)
    # The first cycle reads every prospect; later ones only those the engine changed since
    # the last cycle's plan (the ledger says which), those the CRM changed, those left
    # waiting, and those whose held errors are due (docs/sync.md#errors).
    # The facts the sync itself handed the engine (`event` steps of its streams) are in the
    # base already; what rules did in reply to them is not, and is looked at.
    last_seq = db.store_seq
    retry_mark = db.retry_mark()  # before the errors are read: a later mark is not seen
    full = last_seq is None or last_seq > store.max_seq()
    touched: set[str] = set()
    dirty = db.dirty()  # marked by the last apply (work left) and delivery (rules reacted)
    # The prospects that changed since the last plan (the ledger, or their rules reacting
    # to the CRM's facts), as opposed to those looked at for a `sync retry` mark: a held
    # membership or task is due when its prospect changed, or its own row is marked.
    moved: set[str] = set()
    if not full:
        most = max(1000, db.count("link") // 4)  # past this many, reading all is cheaper
        # A held error is due when its prospect changes (the ledger below), its record
        # changes (the CRM's changes), or `sync retry` marked it: not every cycle.
        moved = set(dirty)
        touched = dirty | db.due_errors()
        # The ledger since the last plan is read as it streams, and no further than
        # needed: after a backfill of millions of events, the first `most` prospects
        # settle it.
        for e in store.ledger(after_seq=int(last_seq or 0)):
            if e.prospect and not (
                e.rule_kind == "event" and (e.source or "").startswith("crm-sync:")
            ):
                touched.add(e.prospect)
                moved.add(e.prospect)
                if len(touched) > most:
                    break
        full = len(touched) > most
    prospects = _Prospects(store, full)
    # Links are looked up in the sync file a page of records at a time; this plan's
    # changes to them are an overlay (on disk past a few thousand: a first link).
    links = db.plan_links()
    cursors = db.cursors()
    plan = Plan(
        at=at,
        until=format_datetime(until),
        generation=db.generation,
        store_seq=store.max_seq(),
        work_seq=db.work_seq,
        config=config.as_json(),
        cursors_from={k: list(v) for k, v in cursors.items()},
        cursors_to={k: list(v) for k, v in cursors.items()},
        dirty=sorted(dirty),
        retry_mark=retry_mark,
        store=_store_path(store),
        store_id=store_identity(store),
    )
    users = _Users(crm, until, plan.notes)
    sync_user = getattr(crm, "integration_user_id", None)
    objects = [OBJECT_NAMES[o] for o in ("lead", "contact") if o in config.objects]
    infos = {o: crm.describe(o) for o in objects}
    maps = {o: _fields_of(infos[o], config.mappings) for o in objects}
    for o in objects:
        for managed, ours_name in ((SCORE_FIELD, "score"), (GRADE_FIELD, "grade")):
            if managed in infos[o].fields:  # the managed package's fields, when the org has them
                maps[o][managed] = FieldMap(ours_name, managed, "always ours")
        missing = [
            m.crm_field
            for m in config.mappings
            if m.crm_field.lower() not in {n.lower() for n in infos[o].fields}
        ]
        if missing:
            plan.notes.append(f"{o} has no field {', '.join(missing)}: not synced on {o}s")

    # -- inbound: what changed in the CRM since each object's cursor --------------------------
    # prospect -> its linked record as read now: on disk (a first link reads every record)
    changed = RecordMap()
    # A link set with `new=True` is linked this cycle (`links.is_new`).

    ts = iso(at)  # one string for every event of the plan

    def event(kind: str, prospect: str, **kw: Any) -> dict[str, Any]:
        return {"ts": ts, "type": kind, "prospect": prospect, **kw}

    sends = db.sends()
    # A converted lead's contact -> its prospect, until the contact is read: a lead
    # converted into a contact that the conversion did not change is not among the
    # contacts' changes, and its values are the CRM's now (looked up after the reads).
    converted: dict[str, str] = {}
    for sobject in objects:
        obj = sobject.lower()
        # `auto create prospects on` is not retroactive (Pardot §7.4): the first read of an
        # object (no cursor yet) finds the records that were there before the connector;
        # they come to marketing once they change (a later read) or are sent by hand.
        creates = config.auto_create and cursors.get(sobject) is not None
        sent = sorted(i for i, o in sends.items() if o == obj)
        plan.sent += sent
        # A merge's surviving record is taken from the records read (the merge moves its
        # modstamp to the loser's deletion: it is read in the same page, in an earlier page
        # among the records of that modstamp kept in `window`, or later: `pending`); it is
        # looked up in the CRM only when not read at all, whatever the size of a page.
        window = RecordMap()  # unlinked records of the last modstamp of the pages before
        window_stamp: dt.datetime | None = None
        pending: dict[str, str] = {}  # survivor id -> prospect: a survivor not read yet
        keep = READ_FIELDS | set(maps[sobject])
        for page in _change_pages(crm, plan, sobject, cursors, until, keep, sent):
            seen_now = {r.id: r for r in page}  # a merge's survivor, when read in the same page
            links.page(
                [r.id for r in page],
                [str(r.fields.get("Email") or "").strip().lower() for r in page],
            )
            for r in page:
                converted.pop(r.id, None)  # a converted lead's contact, read with the changes
                if pending and r.id in pending:  # a merge's survivor, read after the merge
                    taker = pending.pop(r.id)
                    if not r.is_deleted:
                        changed[taker] = r
                email = str(r.fields.get("Email") or "").strip().lower()
                owner = users.by_id.get(str(r.fields.get("OwnerId") or ""))
                mine = links.by_crm(r.id) or ""  # "" when no prospect is linked to the record
                link = links.get(mine) if mine else None
                master = r.fields.get("MasterRecordId") if r.is_deleted else None
                if master and link is not None and not link[4]:
                    # Merged in the CRM (Pardot §7.8): the link moves to the surviving record,
                    # unless another prospect is linked to it (that prospect stays; this one's
                    # record is gone, as for a deletion).
                    other = links.by_crm(master)
                    if other is None or other == mine:
                        survivor = seen_now.get(master) or window.get(master)
                        if survivor is None:
                            pending[master] = mine
                        plan.inbound.append(
                            {
                                "op": "merge",
                                "prospect": mine,
                                "object": obj,
                                "crm_id": master,
                                "from": r.id,
                                "why": f"merged in the CRM into {master}: the link moves to it",
                                "event": event("crm_update", mine, object=obj, crm_id=master),
                            }
                        )
                        links.take_crm(master, mine)
                        links.set(mine, (obj, master, link[2], link[3], False))
                        if survivor is not None and not survivor.is_deleted:
                            changed[mine] = survivor  # its values are the CRM's now
                        continue
                if r.is_deleted:
                    if link is not None and not link[4]:
                        plan.inbound.append(
                            {
                                "op": "delete",
                                "prospect": mine,
                                "object": obj,
                                "crm_id": r.id,
                                "why": "deleted in the CRM"
                                + (
                                    f" (merged into {master}, linked to {links.by_crm(master)})"
                                    if master
                                    else ""
                                ),
                                "event": event(
                                    "crm_update", mine, object=obj, crm_id=r.id, status="deleted"
                                ),
                            }
                        )
                        links.set(mine, (link[0], link[1], link[2], link[3], True))
                    continue
                if sobject == "Lead" and r.fields.get("IsConverted"):
                    contact = r.fields.get("ConvertedContactId")
                    holder = _holder(links, contact, mine) if contact else None
                    if link is not None and contact and not link[4] and holder is not None:
                        # Converted into a contact another prospect is linked to: one
                        # prospect a CRM record. That prospect keeps it; this one's record
                        # is gone into it, as a merge's loser is (Pardot §7.8): deleted,
                        # and the duplicate is a sync error, not a second link.
                        why = (
                            f"lead {r.id} converted into contact {contact}, which {holder}"
                            " is linked to: one prospect a CRM record"
                        )
                        plan.inbound.append(
                            {
                                "op": "delete",
                                "prospect": mine,
                                "object": obj,
                                "crm_id": r.id,
                                "why": f"{why}; counted as deleted in the CRM",
                                "error": {
                                    "field": LINK_ERROR_FIELD,
                                    "code": DUPLICATE_LINK,
                                    "message": f"{why}: {mine} is not linked to it and counts"
                                    " as deleted in the CRM (`allow crm recreate` syncs it"
                                    " again)",
                                },
                                "event": event(
                                    "crm_update", mine, object=obj, crm_id=r.id, status="deleted"
                                ),
                            }
                        )
                        links.set(mine, (link[0], link[1], link[2], link[3], True))
                    elif link is not None and contact and not link[4]:
                        plan.inbound.append(
                            {
                                "op": "convert",
                                "prospect": mine,
                                "object": "contact",
                                "crm_id": contact,
                                "from": r.id,
                                "why": "lead converted: the link moves to the contact",
                                "event": event(
                                    "crm_update",
                                    mine,
                                    object="contact",
                                    crm_id=contact,
                                    **({"user": owner} if owner else {}),
                                ),
                            }
                        )
                        links.take_crm(contact, mine)
                        links.set(mine, ("contact", contact, link[2], link[3], False), new=True)
                        converted[contact] = mine
                    continue
                if link is not None:
                    if link[4]:  # undeleted in the CRM: relinked
                        plan.inbound.append(
                            {
                                "op": "undelete",
                                "prospect": mine,
                                "object": obj,
                                "crm_id": r.id,
                                "why": "restored in the CRM",
                                "event": event("crm_update", mine, object=obj, crm_id=r.id),
                            }
                        )
                        links.set(mine, (link[0], link[1], link[2], link[3], False), new=True)
                    changed[mine] = r
                    base_owner = link[2].get("OwnerId")
                    oid = r.fields.get("OwnerId")
                    if owner and oid != base_owner and base_owner is not None:
                        # The change's time as the merge stamps a field's: the edit in
                        # which the sync saw it (`LastModifiedDate`, else the modstamp).
                        stamp = r.fields.get("LastModifiedDate")
                        since = (
                            to_epoch(stamp)
                            if isinstance(stamp, str)
                            else r.system_modstamp.timestamp()
                        )
                        plan.inbound.append(
                            {
                                "op": "owner",
                                "prospect": mine,
                                "crm_id": r.id,
                                "owner": owner,
                                "why": "owner changed in the CRM",
                                "event": event(
                                    "crm_update",
                                    mine,
                                    object=obj,
                                    crm_id=r.id,
                                    user=owner,
                                    owner_since=iso(since),
                                ),
                            }
                        )
                    continue
                if not email:
                    continue
                p = prospects.get(email)
                current = links.get(email)
                if p is None:
                    if creates or r.id in sends:
                        fact: dict[str, Any] = {
                            "op": "new prospect",
                            "prospect": email,
                            "object": obj,
                            "crm_id": r.id,
                            "base": _base_of(r, maps[sobject]),
                            "why": "sent to marketing (sync send)"
                            if r.id in sends
                            else "a new CRM record; auto create prospects on",
                            "event": event(
                                "crm_update",
                                email,
                                object=obj,
                                crm_id=r.id,
                                fields=_crm_fields(r, maps[sobject]),
                                **({"user": owner} if owner else {}),
                            ),
                        }
                        if not config.auto_create:  # the engine creates no prospect from a CRM fact
                            fact["create_event"] = event("prospect_update", email)
                        plan.inbound.append(fact)
                        links.set(
                            email, (obj, r.id, _base_of(r, maps[sobject]), {}, False), new=True
                        )
                        links.take_crm(r.id, email)
                    continue
                if p.do_not_sync:
                    continue
                if (
                    current is not None
                    and not current[4]
                    and not (
                        obj == "contact" and current[0] == "lead" and config.first == "contact"
                    )
                ):
                    # Linked to another record already. With `prefer contact over lead`, a
                    # contact outranks a lead; a lead never takes the link from a contact.
                    continue
                why = (
                    "a contact outranks a lead: the link moves to the contact"
                    if current is not None
                    else "same email (match by email)"
                )
                # A link made earlier in this cycle, moved: one prospect linked, not two.
                again = {"again": True} if current is not None and links.is_new(email) else {}
                _link(plan, links, changed, event, email, r, owner, why, **again)
            if page:  # what a merge in a later page may need of this one
                last = page[-1].system_modstamp
                if last != window_stamp:
                    window.clear()
                    window_stamp = last
                for r in page:
                    if r.system_modstamp == last and links.by_crm(r.id) is None:
                        window[r.id] = r
            del page, seen_now  # let go before the next page is read
        for master, taker in pending.items():  # survivors not read: looked up, in order
            hits = crm.find(sobject, "Id", [master], sorted(keep), missing_ok=True)
            survivor = next(iter(hits), None)
            if survivor is not None and not survivor.is_deleted:
                changed[taker] = survivor
        window.close()
    if converted and "Contact" in maps:  # contacts the conversions did not change: looked up
        keep = READ_FIELDS | set(maps["Contact"])
        for contact_record in crm.find(
            "Contact", "Id", sorted(converted), sorted(keep), missing_ok=True
        ):
            taker = converted[contact_record.id]
            if not contact_record.is_deleted and links.by_crm(contact_record.id) == taker:
                changed[taker] = contact_record

    if "opportunity" in config.objects:
        _plan_opportunities(crm, db, plan, until, links, event)
    if "campaign" in config.objects:
        _plan_campaigns(crm, db, plan, until)
    if "account" in config.objects:
        _plan_accounts(crm, db, plan, until)

    # -- outbound work the engine asked for --------------------------------------------------
    queue = db.queue()
    work_to = plan.work_seq
    for m in store.crm_pending(after_seq=plan.work_seq):
        work_to = max(work_to, m.seq)
        payload = json.loads(m.payload) if isinstance(m.payload, str | bytes) else dict(m.payload)
        item = {"kind": m.kind, "seq": m.seq, **payload}
        if m.prospect in queue:
            work, since, attempts, next_try = queue[m.prospect]
            queue[m.prospect] = ([*work, item], since, attempts, next_try)
        else:
            queue[m.prospect] = ([item], m.ts, 0, NOT_WAITING)
    plan.work_seq_moved = work_to != plan.work_seq
    plan.work_seq = work_to

    creating = [
        email
        for email, (work, _s, _a, next_try) in queue.items()
        if any(w["kind"] in CREATE_KINDS for w in work)
        and (email not in links or links[email][4])
        and next_try <= at
    ]
    found = _find_existing(crm, creating, config.first, maps)
    _link_unlinked(
        crm, plan, config, objects, prospects, links, queue, changed, users, event,
        _unlinked_candidates(store, full, cursors, objects, touched, links, queue), maps,
    )  # fmt: skip
    held_rows = db.errors()  # one a write held: a prospect's two tasks are two
    errors = {(e["prospect"], e["field"]): e for e in held_rows}  # the last refused a field
    # A prospect's rows of the tasks and memberships held, oldest first: a `hold` gives its
    # own row's reason, and a write found in the CRM takes its own rows out of the queue.
    side_rows: dict[str, list[dict[str, Any]]] = {}
    for e in held_rows:
        if e["object"] in ("task", "campaign_member"):
            side_rows.setdefault(e["prospect"], []).append(e)
    # The ops made from the queue stay in memory (a link op takes its record's first merge
    # below); the merges of linked prospects go to disk as they are made.
    ops: list[dict[str, Any]] = plan.ops.prefix
    queued_ops: dict[str, dict[str, Any]] = {}
    writes = 0

    def numbered(op: dict[str, Any]) -> dict[str, Any]:
        nonlocal writes
        op["batch"] = writes // config.batch
        writes += 1
        return op

    # A prospect that no longer syncs (`do not sync`, or gone) has no write left to hold:
    # its errors leave the queue with the work dropped (docs/sync.md#errors).
    held_fields: dict[str, list[str]] = {}
    for e in held_rows:
        held_fields.setdefault(e["prospect"], []).append(e["field"])
    del held_rows
    dropping: set[str] = set()

    def dropped(email: str, why: str) -> dict[str, Any]:
        """A skip op's reason, and the errors it takes out of the queue."""
        dropping.add(email)
        fields = held_fields.get(email)
        if not fields:
            return {"why": why}
        leave = "leaves" if len(fields) == 1 else "leave"
        return {
            "why": f"{why}: its {plural(len(fields), 'held error')} {leave} the queue",
            "resolved": sorted(set(fields)),
        }

    for email, (work, since, _attempts, next_try) in queue.items():
        p = prospects.get(email)
        kinds = [w["kind"] for w in work]
        base_op = {"prospect": email, "since": iso(since), "work": kinds}
        # The queued work an op does, by the seqs of its items (`seqs`): apply takes only
        # those out of the queue, so work an op did not do stays queued (docs/sync.md#errors).
        every = _seqs(work)
        record_seqs = _seqs(w for w in work if w["kind"] in CREATE_KINDS)
        if next_try > at:
            ops.append({**base_op, "op": "wait", "why": f"backing off until {iso(next_try)}"})
            continue
        if p is None:
            gone = {"op": "skip", "done": True, "seqs": every}
            ops.append({**base_op, **gone, **dropped(email, "the prospect is gone")})
            continue
        if p.do_not_sync:
            skip = {"op": "skip", "done": True, "seqs": every}
            ops.append({**base_op, **skip, **dropped(email, "do not sync")})
            continue
        if not any(k in CREATE_KINDS for k in kinds):
            continue  # members and tasks follow the record below
        if email in links and not links[email][4]:
            ops.append(
                {
                    **base_op,
                    "op": "skip",
                    # A link this plan makes (the CRM has a record with the email) does the
                    # creation's work: no record is created, none was linked before.
                    "why": (
                        f"linked by this plan to the {links[email][0]} with its email:"
                        " no record created"
                        if links.is_new(email)
                        else "already linked"
                    ),
                    "done": True,
                    "seqs": record_seqs,
                    "crm_id": links[email][1],
                }
            )
            continue
        # Of several records with the email, the first no other prospect is linked to.
        hit, holder = _first_free(links, found.get(email, ()), email)
        if hit is not None and holder is not None:
            # The record with this email is another prospect's (a lead converted into a
            # contact of this email, say): one prospect a CRM record. Not linked, and no
            # lead created (it would duplicate the person in the CRM): the work waits, and
            # the duplicate is a sync error until the record is no longer the other's.
            obj_name = hit.sobject.lower()
            message = (
                f"the {obj_name} {hit.id} with this email is linked to {holder}: one prospect"
                " a CRM record; not linked, no lead created"
            )
            held_op: dict[str, Any] = {
                **base_op,
                "op": "hold",
                "object": obj_name,
                "crm_id": hit.id,
                "held": [{"field": LINK_ERROR_FIELD, "code": DUPLICATE_LINK, "message": message}],
                "why": f"{obj_name} {hit.id} has this email and is {holder}'s",
            }
            err = errors.get((email, LINK_ERROR_FIELD))
            if err is None or err["message"] != message:
                held_op["error"] = held_op["held"][0]
            ops.append(held_op)
            continue
        if hit is not None:
            op = numbered(
                {
                    **base_op,
                    "op": "link",
                    "object": hit.sobject.lower(),
                    "crm_id": hit.id,
                    "seqs": record_seqs,
                    "why": f"a {hit.sobject.lower()} has this email: linked, no lead created",
                }
            )
            if op["batch"] == 0:  # its fields are merged once it is linked
                changed[email] = hit
                links.set(email, (hit.sobject.lower(), hit.id, {}, {}, False), new=True)
            owner = users.by_id.get(str(hit.fields.get("OwnerId") or ""))
            op["event"] = event(
                "crm_update",
                email,
                object=hit.sobject.lower(),
                crm_id=hit.id,
                **({"user": owner} if owner else {}),
            )
            ops.append(op)
            queued_ops[email] = op
            continue
        sobject = "Contact" if config.create_on == "contact" else "Lead"
        info = infos.get(sobject) or crm.describe(sobject)
        values: dict[str, Any] = {"Email": p.email}
        first = p.field("first_name")
        if first:
            values["FirstName"] = first
        values["LastName"] = p.field("last_name") or UNKNOWN
        if sobject == "Lead":
            values["Company"] = p.field("company") or UNKNOWN
        owner_note = None
        if "assignment_rule" in kinds and p.assigned_kind == "crm rule":
            owner_note = (
                "assigned by the CRM's rule: the integration user owns it until sales assign it"
            )
        elif sobject == "Contact" and p.assigned_kind == "queue":
            owner_note = (
                f"{p.assigned_to!r} is a queue, and a contact is a user's:"
                " the integration user owns it"
            )
        else:
            oid = users.owner_id(p.assigned_kind, p.assigned_to)
            if oid:
                values["OwnerId"] = oid
            else:
                known = users.is_inactive(p.assigned_to)
                owner_note = (
                    f"{p.assigned_to!r} is not {'an active' if known else 'a'} CRM user:"
                    " the integration user owns it"
                )
        fields = []
        # The record's own fields (its email, names, company) the CRM refuses: the create
        # is refused whole (apply writes no record without them), held as `*record`.
        expected = [
            problem
            for name in RECORD_FIELDS
            if name in values
            and name not in maps.get(sobject, {})
            and (problem := _problem(info, name, values[name], creating=True))
        ]
        if not info.createable:  # the describe says the integration user may not create it
            expected.insert(0, _not_createable(sobject))
        for name, m in maps.get(sobject, {}).items():
            ours = _ours(p, m)
            if ours is None or ours == "":
                continue
            values[name] = _json_value(ours)
            fields.append(
                {
                    "field": m.field,
                    "crm_field": name,
                    "ours": ours,
                    "theirs": None,
                    "winner": "ours",
                    "why": "new record",
                }
            )
            problem = _problem(info, name, ours, creating=True)
            if problem:
                expected.append(problem)
        err = errors.get((email, "*record"))
        if (
            err is not None
            and not retry
            and not err["retry"]
            and err["value"] == json.dumps(values, sort_keys=True)
        ):
            ops.append(
                {
                    **base_op,
                    "op": "hold",
                    "object": sobject.lower(),
                    "held": [{"field": "*record", "code": err["code"], "message": err["message"]}],
                    "why": "the create was refused; held until the prospect changes",
                }
            )
            continue
        op = {
            **base_op,
            "op": "create",
            "object": sobject.lower(),
            "values": values,
            "batch": 0,
            "fields": fields,
            "seqs": record_seqs,
            "why": f"assigned, and no contact or lead has {p.email}",
        }
        if owner_note:
            op["note"] = owner_note
        if expected:
            op["expected_errors"] = expected
        ops.append(numbered(op))
        queued_ops[email] = op

    # Only a prospect the engine changed can have become `do not sync` (the store never
    # removes a prospect; another store is a full read): the others' errors are not read.
    for email in sorted(held_fields.keys() - dropping):
        if not full and email not in touched:
            continue
        p = prospects.get(email)
        if p is None or p.do_not_sync:
            why = "the prospect is gone" if p is None else "do not sync"
            ops.append(
                {"prospect": email, "op": "skip", "done": True, "seqs": []} | dropped(email, why)
            )
    # Campaign members and tasks: once the record exists (linked, or created this cycle).

    def own_rows(op: Mapping[str, Any], fields: Sequence[str]) -> list[dict[str, Any]]:
        """The prospect's rows of `fields` that hold the write `op` does (`held_write`), and
        those that do not say which write they hold (kept by an older mrules: they hold each
        write of their kind), oldest first."""
        name = op["payload"].get("campaign")
        known = campaign_ids.get(str(name)) if name else None
        out = []
        for e in side_rows.get(op["prospect"], ()):
            if e["field"] in fields and held_write(e, op, known) is not False:
                out.append(e)
        return out

    def record_held(op: Mapping[str, Any], target: str | None) -> dict[str, Any] | None:
        """The error-queue row of the membership or task write `op` the CRM refused one
        record at a time (for the integration user's permissions, or a data reason), while
        it is not due: due when the prospect changed (the ledger, or its rules reacting, say
        so), its record was edited by someone else, the write goes to another record now (a
        lead converted), or `sync retry` marked its row; not every cycle (docs/sync.md#errors).
        Each write is decided by its own row: a prospect's two tasks held are two rows, and
        one marked by a retry (its task not tried yet) or refused on a lead since converted
        is due while the other is not. A row that does not say which write it holds (kept
        by an older mrules) holds each write of its kind. A full read (every prospect looked
        at) cannot tell what changed: due."""
        if retry or full or op["prospect"] in moved:
            return None
        rows = own_rows(op, RECORD_HELD_FIELDS[op["work"][0]])
        # Its own rows first: one that does not say which write it holds is another's too.
        own = [e for e in rows if held_write(e, op, None) is not None] or rows
        err = own[-1] if own else None  # the latest refusal of this write
        if err is None or err["retry"] or target is None or err["crm_id"] != target:
            return None
        r = changed.get(op["prospect"])
        if r is not None and r.fields.get("LastModifiedById") != sync_user:
            return None
        return err

    def side_op(email: str, w: Mapping[str, Any], target: str | None) -> dict[str, Any]:
        """The op of one membership or task the rules asked (its `seqs` those of `w`)."""
        return {
            "op": w["kind"],
            "prospect": email,
            "crm_id": target,
            "work": [w["kind"]],
            "seqs": _seqs([w]),
            "payload": {k: v for k, v in w.items() if k not in ("kind", "seq")},
        }

    def looked_for(email: str, w: Mapping[str, Any], target: str) -> bool:
        """Whether the plan looks in the CRM for a linked record's membership or task `w`:
        those held because Task could not be read or created (the plan then says whether
        it still cannot), and those refused one record at a time once due (found there,
        their error goes)."""
        kind = w["kind"]
        if kind == "task" and (email, TASK_ACCESS_FIELD) in errors:
            return True
        held = any((email, f) in errors for f in RECORD_HELD_FIELDS[kind])
        return held and not record_held(side_op(email, w, target), target)

    # The members and tasks of records this plan links may be in the CRM already: apply
    # would find them there and write none; the plan says so (`skip`), as apply does it.
    campaign_ids: dict[str, str] = {}  # the CRM's campaigns looked up, by name (below)
    side: list[tuple[str, str, list[dict[str, Any]]]] = []
    for email, (work, _since, _attempts, next_try) in queue.items():
        side_work = [w for w in work if w["kind"] in ("campaign_member", "task")]
        if not side_work or next_try > at:
            continue
        link = links.get(email)
        if not link or link[4] or email not in prospects:
            continue
        if not links.is_new(email):
            side_work = [w for w in side_work if looked_for(email, w, link[1])]
        if side_work:
            side.append((email, link[1], side_work))
    there_members, there_tasks, campaign_ids = (
        _in_crm_already(crm, side, plan.no_access) if side else (set(), set(), {})
    )

    # The CRM's campaigns by name, when the sync reads them (the sync file has each one,
    # deleted ones included, and this plan's reads): a membership of a campaign the CRM
    # has not, or has deleted, is refused at apply.
    # The campaigns unknown when they cannot be read (by the plan's read, or its lookup
    # above): then each membership is expected to be held for that (apply finds no campaign
    # by name either), not to miss its campaign.
    unreadable = next((n for n in plan.no_access if n["object"] == "Campaign"), None)
    names = (
        campaign_names(db, plan.campaigns)
        if "campaign" in config.objects and unreadable is None
        else None
    )
    # Task unreadable (the search above refused for access): each task is expected to be
    # held for that, as apply holds it without trying.
    no_tasks = next((n for n in plan.no_access if n["object"] == "Task"), None)
    for email, (work, _since, _attempts, next_try) in queue.items():
        side_work = [w for w in work if w["kind"] in ("campaign_member", "task")]
        if not side_work or next_try > at or email not in prospects:
            continue
        link = links.get(email)
        target = link[1] if link and not link[4] else None
        if target is None and email not in queued_ops:
            continue  # waits for its record
        members = set()
        made: list[dict[str, Any]] = []
        for w in side_work:
            seqs = _seqs([w])
            if w["kind"] == "campaign_member":  # asked twice, one membership: written once
                key = (w.get("campaign"), w.get("status"))
                if key in members:
                    continue
                members.add(key)
                seqs = _seqs(
                    v
                    for v in side_work
                    if v["kind"] == "campaign_member"
                    and (v.get("campaign"), v.get("status")) == key
                )
            op = {
                **side_op(email, w, target),
                "seqs": seqs,
                "why": "asked by a rule" + ("" if target else "; after the record's creation"),
            }
            there = _there_already(op, there_members, there_tasks)
            if there:
                made.append({**op, "op": "skip", "done": True, "why": there})
                continue
            err = record_held(op, target)
            if err is not None:
                why = (
                    "refused for the integration user's permissions"
                    if err["field"] == RECORD_HELD_FIELDS[w["kind"]][0]
                    else f"refused by the CRM ({err['code']})"
                )
                made.append(
                    {  # its payload kept: the plan names the campaign or task held
                        **op,
                        "op": "hold",
                        "held": [
                            {"field": err["field"], "code": err["code"], "message": err["message"]}
                        ],
                        "why": f"{why}; held until the prospect or its record changes,"
                        " or `sync retry`",
                    }
                )
                continue
            campaign = w.get("campaign") if w["kind"] == "campaign_member" else None
            if names is not None and campaign and not names.get(_name_key(campaign)):
                op["expected_errors"] = [no_campaign(campaign, names)]
            elif unreadable is not None and campaign:
                op["expected_errors"] = [
                    {
                        "field": ACCESS_FIELD,
                        "code": unreadable["code"],
                        "message": unreadable["said"],
                    }
                ]
            elif no_tasks is not None and w["kind"] == "task":
                op["expected_errors"] = [
                    {
                        "field": TASK_ACCESS_FIELD,
                        "code": no_tasks["code"],
                        "message": no_tasks["said"],
                    }
                ]
            parent = queued_ops.get(email)
            if parent is not None and target is None:
                op["batch"] = parent["batch"]  # rides with its record
                op["with_record"] = True
                made.append(op)
            else:
                made.append(numbered(op))
        # Found in the CRM already (written by someone else, or by an apply killed before
        # its commit): that write is done, and its own rows leave the queue (and those that
        # do not say which write they hold, as a write clears them); another task or
        # membership of the prospect still held keeps its row.
        for m in made:
            if m["op"] == "skip":
                rows = own_rows(m, HELD_FIELDS[m["work"][0]])
                if rows:
                    m["resolved_items"] = [
                        {"field": e["field"], "item": held_item(e["object"], e["value"])}
                        for e in rows
                    ]
        ops.extend(made)

    # -- field updates for linked prospects ---------------------------------------------------
    walk: Iterable[tuple[str, Any, bool]]
    looked_at: set[str] = set()
    if full:
        walk = links.walk()
    else:
        looked_at = touched | set(changed.keys()) | set(links.new())
        walk = (
            (email, links[email], links.is_new(email))
            for email in sorted(e for e in looked_at if e in links)
        )
    # Each prospect is looked at once: its record, stored JSON and parsed link are let go
    # as its op is made, and the op goes to disk.
    spool = plan.ops
    for email, (obj, crm_id, base, times, deleted), fresh in walk:
        p = prospects.take(email)
        if deleted or p is None or p.do_not_sync:
            continue
        sobject = OBJECT_NAMES.get(obj) or ""  # "": an object the sync does not map
        if sobject not in maps:
            continue
        # None: the CRM did not change it
        r = changed.pop(email, None)
        if (
            r is None
            and not fresh
            and all(
                _ours(p, m) == base.get(name) and name in base for name, m in maps[sobject].items()
            )
        ):
            continue  # neither side moved: the common case, kept cheap
        rec_time = None
        if r is not None and not all(
            same(r.fields.get(name), base.get(name)) and name in base for name in maps[sobject]
        ):
            stamp = r.fields.get("LastModifiedDate")  # only read when a field moved
            rec_time = to_epoch(stamp) if isinstance(stamp, str) else r.system_modstamp.timestamp()
        has_record = r is not None
        # A record edited by someone else than the sync: the error queue retries its writes.
        edited = has_record and r.fields.get("LastModifiedById") != sync_user
        push: dict[str, Any] = {}
        pull: dict[str, Any] = {}
        rows = []
        held = []
        expected = []
        resolved: list[str] = []  # fields with an error whose write is no longer wanted
        new_base = dict(base)
        new_times = dict(times)
        for name, m in maps[sobject].items():
            ours = _ours(p, m)
            has_base = name in base
            theirs = r.fields.get(name) if has_record else base.get(name)
            if not has_record and not has_base:
                theirs = None if not fresh else theirs
            if (
                has_record
                and has_base
                and not same(theirs, base.get(name))
                and rec_time is not None
            ):
                new_times[name] = rec_time  # field-level change time: the edit that changed it
            their_time = new_times.get(name)
            if their_time is None and has_record and not has_base:
                their_time = rec_time  # first link: the record's last edit
            our_time = (p.stamps or {}).get(m.field)
            if not has_record and has_base and same(ours, base.get(name)):
                continue  # neither side moved
            d = decide(
                ours,
                theirs,
                base.get(name),
                m.prefer,
                has_base=has_base or not has_record,
                blanks=config.blanks,
                our_time=our_time,
                their_time=their_time,
            )
            if d.winner != "ours" and (email, name) in errors:
                resolved.append(name)  # no write of ours left to retry: its error goes
            if d.winner == "same":
                if (not has_base and (has_record or norm(ours) is not None)) or (
                    has_base and not same(base.get(name), ours)
                ):
                    new_base[name] = _json_value(ours)
                continue
            row = {
                "field": m.field,
                "crm_field": name,
                "ours": ours,
                "theirs": theirs,
                "base": base.get(name),
                "winner": d.winner,
                "why": d.why,
            }
            if our_time is not None:
                row["our_time"] = iso(our_time)
            if their_time is not None:
                row["their_time"] = iso(their_time)
            if d.winner == "ours":
                if has_record:
                    # What the CRM holds now, read this cycle: the base until our write
                    # succeeds (apply then sets what it sent). A write refused or held
                    # leaves the CRM's value there, and a later cycle that does not read the
                    # record again takes the base for it: the old base was a value the CRM
                    # no longer had, so a change of ours back to it looked like no change.
                    new_base[name] = _json_value(theirs)
                err = errors.get((email, name))
                if (
                    err is not None
                    and not retry
                    and not err["retry"]
                    and err["value"] == json.dumps(_json_value(ours), sort_keys=True)
                    and not edited
                ):
                    held.append({"field": name, "code": err["code"], "message": err["message"]})
                    continue
                push[name] = _json_value(ours)
                problem = _problem(infos[sobject], name, ours)
                if problem:
                    expected.append(problem)
            elif m.field not in ("score", "grade"):
                pull[m.field] = theirs
                new_base[name] = _json_value(theirs)
            rows.append(row)
        if has_record:
            new_base["OwnerId"] = r.fields.get("OwnerId")
        extra: dict[str, Any] = {
            "base_after": new_base,
            "times_after": new_times,
            "link": [obj, crm_id],
        }
        if resolved:
            extra["resolved"] = resolved
        if pull:
            extra["event"] = event("prospect_update", email, fields=pull)
        parent = queued_ops.get(email)
        if parent is not None and parent["op"] == "link":
            # Coalesced: the link and its first merge are one record's work.
            parent["link_event"] = parent.pop("event", None)
            parent.update(values=push, fields=rows, **extra)
            if held:
                parent["held"] = held
            if expected:
                parent["expected_errors"] = expected
            continue
        if push or held:
            op = {
                "op": "update" if push else "hold",
                "prospect": email,
                "object": obj,
                "crm_id": crm_id,
                "values": push,
                "fields": rows,
                "why": "mapped fields changed" if push else "held by the error queue",
                **extra,
            }
            if held:
                op["held"] = held
            if expected:
                op["expected_errors"] = expected
            if push:
                numbered(op)
            pulled = [row for row in rows if row["winner"] == "crm"]
            if op.get("batch", 0) > 0 and (pulled or resolved):
                # Our write waits for a later batch; the CRM's values do not (docs/sync.md:
                # `batch` caps the writes to the CRM): they are taken now, with the base
                # (for our fields, the CRM's values read now), and the update is planned
                # again next cycle. Riding on the update, they waited with it, and the next
                # cycle, which does not read the record again, no longer saw them change.
                spool.append(
                    {
                        "op": "pull" if pulled else "base",
                        "prospect": email,
                        "object": obj,
                        "crm_id": crm_id,
                        "fields": pulled,
                        "why": "the CRM's values taken; our write waits for a later batch",
                        **extra,
                    }
                )
                for taken in ("event", "resolved", "base_after", "times_after"):
                    op.pop(taken, None)
                op["fields"] = [row for row in rows if row["winner"] != "crm"]
            spool.append(op)
        elif rows or new_base != base or new_times != times or fresh or resolved:
            spool.append(
                {
                    "op": "pull" if rows else "base",
                    "prospect": email,
                    "object": obj,
                    "crm_id": crm_id,
                    "fields": rows,
                    "why": "the CRM's values taken" if rows else "base snapshot recorded",
                    **extra,
                }
            )

    if not full:
        # The held errors not due this cycle (neither the prospect nor its record changed,
        # no `sync retry`): listed as held from the error queue alone, without reading the
        # prospect (an idle cycle read every prospect in error: docs/sync.md#errors).
        # (The record is the error's: one gone is read as deleted, and its errors cleared.)
        idle: dict[str, list[dict[str, Any]]] = {}
        records: dict[str, tuple[str, str]] = {}
        for (email, field), err in errors.items():
            if email in looked_at or email in dropping or field in ("*record", LINK_ERROR_FIELD):
                continue
            if err["object"] not in ("lead", "contact") or not err["crm_id"]:
                continue
            records[email] = (err["object"], err["crm_id"])
            idle.setdefault(email, []).append(
                {"field": field, "code": err["code"], "message": err["message"]}
            )
        for email in sorted(idle):
            spool.append(
                {
                    "op": "hold",
                    "prospect": email,
                    "object": records[email][0],
                    "crm_id": records[email][1],
                    "values": {},
                    "fields": [],
                    "why": "held by the error queue (not due: tried again when the prospect"
                    " or its record changes, or after `sync retry`)",
                    "held": idle[email],
                }
            )

    changed.close()
    links.close()
    if hasattr(crm, "api_usage"):
        plan.api_calls = crm.api_usage().calls_made - calls_before
    return plan


def _crm_fields(r: Record, maps: dict[str, FieldMap]) -> dict[str, Any]:
    return {name: r.fields.get(name) for name in maps if r.fields.get(name) not in (None, "")}


def _base_of(r: Record, maps: dict[str, FieldMap]) -> dict[str, Any]:
    out = {name: _json_value(r.fields.get(name)) for name in maps}
    out["OwnerId"] = r.fields.get("OwnerId")
    return out


def _unlinked_candidates(
    store: StateStore,
    full: bool,
    cursors: dict[str, Any],
    objects: list[str],
    touched: set[str],
    links: Any,
    queue: dict[str, Any],
) -> list[str]:
    """The prospects the engine changed since the last plan that have no CRM record and
    no creation queued: identity is the email (Pardot §7.3, a prospect reaches the CRM
    when it matches a record), so each is looked for among the CRM's records.

    A first read of the objects (no cursor) reads every record, which links every
    prospect with a record's email already: nothing is left to look for."""
    if full:
        if any(cursors.get(o) is None for o in objects):
            return []
        emails: Iterable[str] = (email for email, _data in store.prospects())
    else:
        emails = sorted(touched)
    out = []
    for email in emails:
        if email in queue and any(w["kind"] in CREATE_KINDS for w in queue[email][0]):
            continue  # the creation's own search by email links it
        if links.get(email) is None:
            out.append(email)
    return out


def _link_unlinked(
    crm: Any,
    plan: Plan,
    config: SyncConfig,
    objects: list[str],
    prospects: _Prospects,
    links: Any,
    queue: dict[str, Any],
    changed: Any,
    users: _Users,
    event: Any,
    emails: list[str],
    maps: dict[str, dict[str, FieldMap]],
) -> None:
    """Links each of `emails` to the contact or lead (by the precedence) with its email,
    as a CRM change of that record would have: its fields are merged below."""
    candidates = []
    for email in emails:
        p = prospects.get(email)
        if p is not None and not p.do_not_sync:
            candidates.append(email)
    if not candidates:
        return
    for email, hits in sorted(_find_existing(crm, candidates, config.first, maps).items()):
        # the first record with the email that no other prospect has
        r = next((h for h in hits if links.by_crm(h.id) is None), None)
        if r is None or r.sobject not in objects or links.get(email) is not None:
            continue
        owner = users.by_id.get(str(r.fields.get("OwnerId") or ""))
        _link(plan, links, changed, event, email, r, owner, "same email (match by email)")


def _link(
    plan: Plan,
    links: Any,
    changed: Any,
    event: Any,
    email: str,
    r: Record,
    owner: str | None,
    why: str,
    **again: bool,
) -> None:
    """Link the prospect `email` to the record `r` read from the CRM (a `link` op, the
    link as this plan leaves it, and the record's values to merge below)."""
    obj = r.sobject.lower()
    plan.inbound.append(
        {
            "op": "link",
            "prospect": email,
            "object": obj,
            "crm_id": r.id,
            "why": why,
            **again,
            "event": event(
                "crm_update",
                email,
                object=obj,
                crm_id=r.id,
                **({"user": owner} if owner else {}),
            ),
        }
    )
    links.set(email, (obj, r.id, {}, {}, False), new=True)
    links.take_crm(r.id, email)
    changed[email] = r


def _holder(links: Any, crm_id: str, prospect: str) -> str | None:
    """The other prospect linked to the CRM record `crm_id` (a live link), if any."""
    other = links.by_crm(crm_id)
    if other is None or other == prospect:
        return None
    link = links.get(other)
    if link is None or link[4] or link[1] != crm_id:
        return None
    return str(other)


def _name_key(name: Any) -> str:
    """A campaign name as the CRM's search by name matches it (any case, no outer blanks)."""
    return str(name or "").strip().lower()


def campaign_names(db: SyncDb, read: Iterable[Mapping[str, Any]]) -> dict[str, bool]:
    """The CRM's campaigns as the sync file keeps them, with `read` (a plan's campaign
    rows, not yet in the file) over them: each name (`_name_key`) -> whether a campaign
    of that name is live (False: only deleted ones)."""
    rows = {
        cid: (name, bool(deleted))
        for cid, name, deleted in db.conn.execute("SELECT id, name, deleted FROM campaign")
    }
    for c in read:
        rows[c["id"]] = (c.get("name"), bool(c.get("deleted")))
    out: dict[str, bool] = {}
    for name, deleted in rows.values():
        key = _name_key(name)
        out[key] = out.get(key, False) or not deleted
    return out


def no_campaign(name: str, names: Mapping[str, bool] | None) -> dict[str, str]:
    """The error of a membership of the campaign `name`, which the CRM has not: deleted in
    the CRM, when `names` (`campaign_names`) knows it so, else no campaign of that name."""
    gone = names is not None and names.get(_name_key(name)) is False
    return {
        "field": "CampaignId",
        "code": "INVALID_CROSS_REFERENCE_KEY",
        "message": f"the CRM campaign {name!r} was deleted in the CRM"
        if gone
        else f"no CRM campaign named {name!r}",
    }


def _first_free(
    links: Any, records: Sequence[Record], prospect: str
) -> tuple[Record | None, str | None]:
    """The first of `records` no other prospect is linked to, and None; when each is
    another's, the first and the prospect linked to it."""
    for r in records:
        if _holder(links, r.id, prospect) is None:
            return r, None
    if not records:
        return None, None
    return records[0], _holder(links, records[0].id, prospect)


def _find_existing(
    crm: Any, emails: list[str], first: str, maps: dict[str, dict[str, FieldMap]]
) -> dict[str, list[Record]]:
    """The contacts or the leads (`first` first) that already have each email, the one
    created first first: identity by email, §7.3 (the first no other prospect is linked to
    is the one). Each record has what a plan reads of it (`READ_FIELDS`, the mapped ones)."""
    found: dict[str, list[Record]] = {}
    for sobject in ("Lead", "Contact") if first == "lead" else ("Contact", "Lead"):
        todo = [e for e in emails if e not in found]
        todo_set = set(todo)
        keep = sorted(READ_FIELDS | set(maps.get(sobject, {})))
        for i in range(0, len(todo), MAX_BATCH):
            for r in crm.find(sobject, "Email", todo[i : i + MAX_BATCH], keep, missing_ok=True):
                if sobject == "Lead" and r.fields.get("IsConverted"):
                    continue
                email = str(r.fields.get("Email") or "").lower()
                if email in todo_set:
                    found.setdefault(email, []).append(r)
    return found


def _iso_or_none(value: Any) -> str | None:
    """A CRM datetime as the sync file keeps it (`2026-11-02T09:00:00Z`), None when blank."""
    if value in (None, ""):
        return None
    try:
        return iso(parse_datetime(str(value)).timestamp())
    except ValueError:
        return None


def _read_into(
    crm: Any,
    db_cursors: dict[str, tuple[str, str]],
    plan: Plan,
    sobject: str,
    until: dt.datetime,
) -> list[Record]:
    """An object's changes since its cursor; the plan's cursor moves to what was read."""
    records, c = _read_changes(crm, sobject, _cursor(db_cursors.get(sobject)), until)
    plan.cursors_to[sobject] = _cursor_json(c) or plan.cursors_from.get(sobject, [])
    return records


def no_access(sobject: str, what: str, e: CrmCallError) -> dict[str, str]:
    """The part of a cycle not done because the integration user may not `what` (read,
    create) `sobject`: its record in a plan and an apply report, with its one-line message."""
    permission = "Read" if what == "read" else "Create"
    return {
        "object": sobject,
        "code": e.code,
        "message": e.message,
        "said": f"the integration user may not {what} {sobject} ({e.code}: {e.message}):"
        f" give it {permission} on {sobject} (its profile or a permission set); the rest"
        f" syncs without it, and each cycle tries {sobject} again",
    }


def refused_access(e: CrmCallError) -> bool:
    """A call refused because the user may not see the object: not for now, not a login."""
    return not e.transient and e.code in NO_ACCESS_CODES


ACCESS_FIELD: Final = "*campaign"
"""The error queue's field of a campaign membership held because the integration user may
not read Campaign or create CampaignMember: cleared once a membership of the prospect is
written."""

TASK_ACCESS_FIELD: Final = "*task-access"
"""The error queue's field of a task held because the integration user may not read or
create Task: cleared once a task of the prospect is written."""

MEMBER_PERMISSION_FIELD: Final = "*member-permission"
TASK_PERMISSION_FIELD: Final = "*task-permission"
"""The error queue's fields of a campaign membership or task the CRM refused one record at
a time for the integration user's permissions (`RECORD_ACCESS_CODES`): its work stays
queued, held until the prospect or its record changes, or `sync retry`."""

MEMBER_DATA_FIELD: Final = "*member"
TASK_DATA_FIELD: Final = "*task"
"""The same for any other refusal of one record that is not for now (a validation rule, a
restricted picklist, a flow): held the same way, until the admin fixes the org."""

RECORD_HELD_FIELDS: Final = {
    "campaign_member": (MEMBER_PERMISSION_FIELD, MEMBER_DATA_FIELD),
    "task": (TASK_PERMISSION_FIELD, TASK_DATA_FIELD),
}
"""The error queue's fields of the campaign memberships and tasks refused one record at a
time, by op: (for the integration user's permissions, for any other reason)."""

HELD_FIELDS: Final = {
    "campaign_member": (ACCESS_FIELD, *RECORD_HELD_FIELDS["campaign_member"]),
    "task": (TASK_ACCESS_FIELD, *RECORD_HELD_FIELDS["task"]),
}
"""The error queue's fields of the campaign memberships and tasks held for lack of access,
by op: a write of that kind for the prospect, or one found in the CRM already, clears them."""

_PERMISSION_TO_GIVE: Final = {
    "lead": "Create and Edit on Lead, edit access to the mapped fields (field-level"
    " security) and access to this lead (its sharing)",
    "contact": "Create and Edit on Contact, edit access to the mapped fields (field-level"
    " security) and access to this contact (its sharing)",
    "campaign_member": "Edit on Campaign (with the Marketing User setting) and Read on this"
    " lead or contact (its sharing)",
    "task": "Create on Task and Read on this lead or contact (its sharing)",
}


def permission_hint(obj: str, e: CrmError) -> CrmError:
    """`e` with what to grant in its message when the CRM refused one record's write for the
    integration user's permissions (`RECORD_ACCESS_CODES`): the error queue says it, and
    when the held write is tried again. Any other error as it is."""
    if e.status_code not in RECORD_ACCESS_CODES or obj not in _PERMISSION_TO_GIVE:
        return e
    return CrmError(
        e.status_code,
        f"{e.message} (give the integration user {_PERMISSION_TO_GIVE[obj]}, in its profile"
        " or a permission set; held, and tried again when the prospect or its record"
        " changes, or after `mrules sync retry`)",
        e.fields,
    )


TASK_KEY = "mrules sync key: "
"""What a task the sync creates carries in its `Description`, before the key of the work it
does: a task is looked for by its record (`WhoId`) and this key before it is created, so a
killed apply's tasks are not created twice (as a lead is searched by email)."""
TASK_KEY_RE = re.compile(re.escape(TASK_KEY) + r"([0-9a-f]{20})")


def task_key(email: str, seq: int) -> str:
    """The key of a task's work: the prospect's and the store's seq of the work, hashed."""
    return hashlib.sha256(f"{email}\n{seq}".encode()).hexdigest()[:20]


def held_write(
    row: Mapping[str, Any], op: Mapping[str, Any], campaign_id: str | None = None
) -> bool | None:
    """Whether an error-queue row holds the task or membership `op` does (the queue keeps
    one row a write held): a task's by its sync key, a membership's by its campaign's name
    as the rule gave it (kept with the row), or by the campaign's id when the plan looked
    it up (`campaign_id`: a row kept before names were). None when the row does not say
    which write it holds."""
    item = held_item(row["object"], row["value"])
    if not item:
        return None
    if op["work"][0] == "task":  # a `task` op, or the `skip` of one found in the CRM
        seqs: Sequence[Any] = op.get("seqs") or ()
        return len(seqs) == 1 and item == TASK_KEY + task_key(op["prospect"], int(seqs[0]))
    name = op["payload"].get("campaign")
    if name and held_campaign(row["object"], row["value"]) == name:
        return True
    return campaign_id is not None and item == campaign_id


def _in_crm_already(
    crm: Any, side: list[tuple[str, str, list[dict[str, Any]]]], refused: list[dict[str, str]]
) -> tuple[set[tuple[str, str]], set[tuple[str, str]], dict[str, str]]:
    """Of the campaign members and tasks `side` asks of records this plan links (records
    the CRM had: a sync file made again, a prospect linked to a record sales made), those
    the CRM has already, looked up as apply looks them up: the campaigns by name and the
    memberships of the records (apply's create is refused as DUPLICATE_VALUE, done), and
    the tasks of the records with their keys (apply finds them and creates none). Returns
    (campaign name, record id) and (record id, task key) pairs, the ids in lower case, and
    the campaigns' ids by name (a membership's held row may name its campaign by id). A
    lookup the integration user may not make finds nothing, and the plan notes it in
    `refused` (`no_access`, once an object), as it notes a read of Campaign refused: for
    Campaign and Task, apply then holds the memberships or tasks without trying."""
    members: set[tuple[str, str]] = set()
    tasks: set[tuple[str, str]] = set()
    names = sorted(
        {
            str(w["campaign"])
            for _e, _t, work in side
            for w in work
            if w["kind"] == "campaign_member" and w.get("campaign")
        }
    )
    campaign_of: dict[str, str] = {}  # campaign id -> its name
    sobject = "Campaign"  # the object of the lookup made, for a refusal's message
    try:
        for name in names:
            for r in crm.find("Campaign", "Name", [name], ["Id"]):
                campaign_of[r.id] = name
                break  # apply takes the first found
        by_kind: dict[str, list[str]] = {}
        for _email, target, work in side:
            if any(w["kind"] == "campaign_member" for w in work) and campaign_of:
                by_kind.setdefault(
                    "LeadId" if target.startswith("00Q") else "ContactId", []
                ).append(target)
        sobject = "CampaignMember"
        for id_field, targets in sorted(by_kind.items()):
            for i in range(0, len(targets), MAX_BATCH):
                chunk = targets[i : i + MAX_BATCH]
                for r in crm.find("CampaignMember", id_field, chunk, ["CampaignId", id_field]):
                    of = campaign_of.get(str(r.fields.get("CampaignId") or ""))
                    if of is not None and not r.is_deleted:
                        members.add((of, str(r.fields.get(id_field) or "").lower()))
    except CrmCallError as e:
        if not refused_access(e):
            raise
        _refused_read(refused, sobject, e)
    targets = sorted({t for _e, t, work in side if any(w["kind"] == "task" for w in work)})
    try:
        for i in range(0, len(targets), MAX_BATCH):
            for r in crm.find(
                "Task", "WhoId", targets[i : i + MAX_BATCH], fields=["WhoId", "Description"]
            ):
                for key in TASK_KEY_RE.findall(str(r.fields.get("Description") or "")):
                    tasks.add((str(r.fields.get("WhoId") or "").lower(), key))
    except CrmCallError as e:
        if not refused_access(e):
            raise
        _refused_read(refused, "Task", e)
    return members, tasks, {name: cid for cid, name in campaign_of.items()}


def _refused_read(refused: list[dict[str, str]], sobject: str, e: CrmCallError) -> None:
    """Note in `refused` (`no_access`) that the integration user may not read `sobject`,
    unless a read of it was noted already (the plan's read of Campaign, say): one line an
    object."""
    if not any(n["object"] == sobject for n in refused):
        refused.append(no_access(sobject, "read", e))


def _there_already(
    op: Mapping[str, Any], members: set[tuple[str, str]], tasks: set[tuple[str, str]]
) -> str | None:
    """Why a campaign member or task op writes nothing: the CRM has it already
    (`_in_crm_already`), named (the campaign, the task's subject), for a prospect's two of a
    kind are two skips; None when it writes."""
    target = str(op.get("crm_id") or "").lower()
    if not target:
        return None
    payload = op["payload"]
    if op["op"] == "campaign_member":
        name = str(payload.get("campaign") or "")
        if (name, target) in members:
            return f"already a member of the CRM campaign {name!r}: nothing to write"
        return None
    seqs: Sequence[Any] = op.get("seqs") or []
    if len(seqs) == 1 and (target, task_key(op["prospect"], int(seqs[0]))) in tasks:
        subject = str(payload.get("subject") or "Task")  # as apply names the task it creates
        return f"the CRM has the task {subject!r} already (its sync key): nothing to write"
    return None


def _plan_campaigns(crm: Any, db: SyncDb, plan: Plan, until: dt.datetime) -> None:
    """Campaigns (with their costs) and campaign members, for reports; no engine event.
    An object the integration user may not read is left for a later cycle (`no_access`):
    its cursor stays, and the leads and contacts go on without it."""
    cursors = db.cursors()
    for r in _read_or_none(crm, cursors, plan, "Campaign", until):
        f = r.fields
        plan.campaigns.append(
            {
                "id": r.id,
                "name": f.get("Name"),
                "type": f.get("Type"),
                "status": f.get("Status"),
                "budgeted_cost": f.get("BudgetedCost"),
                "actual_cost": f.get("ActualCost"),
                "start_date": f.get("StartDate"),
                "deleted": r.is_deleted,
            }
        )
    for r in _read_or_none(crm, cursors, plan, "CampaignMember", until):
        f = r.fields
        plan.members.append(
            {
                "id": r.id,
                "campaign": f.get("CampaignId"),
                "contact": f.get("ContactId") or None,
                "lead": f.get("LeadId") or None,
                "status": f.get("Status"),
                "has_responded": bool(f.get("HasResponded")),
                "created": _iso_or_none(f.get("CreatedDate")),
                "deleted": r.is_deleted,
            }
        )


def _read_or_none(
    crm: Any,
    db_cursors: dict[str, tuple[str, str]],
    plan: Plan,
    sobject: str,
    until: dt.datetime,
) -> list[Record]:
    """`_read_into`, or no record when the integration user may not read `sobject` (noted
    in the plan's `no_access`; its cursor does not move)."""
    try:
        return _read_into(crm, db_cursors, plan, sobject, until)
    except CrmCallError as e:
        if not refused_access(e):
            raise
        plan.no_access.append(no_access(sobject, "read", e))
        return []


def _plan_accounts(crm: Any, db: SyncDb, plan: Plan, until: dt.datetime) -> None:
    """Accounts (id and name), for reports (none, and the cursor kept, when the integration
    user may not read them: `no_access`)."""
    for r in _read_or_none(crm, db.cursors(), plan, "Account", until):
        plan.accounts.append({"id": r.id, "name": r.fields.get("Name"), "deleted": r.is_deleted})


def _plan_opportunities(
    crm: Any, db: SyncDb, plan: Plan, until: dt.datetime, links: Any, event: Any
) -> None:
    """Opportunities and their contact roles: stage, amount, won/lost, to prospects by contact.
    When the integration user may not read either (`no_access`), neither is taken and both
    cursors stay: an opportunity read as closed without its roles would never send its won
    or lost to their prospects."""
    cursors = db.cursors()
    roles = db.roles()
    opps = db.opportunities()
    sobject = "OpportunityContactRole"
    try:
        role_records, rc = _read_changes(crm, sobject, _cursor(cursors.get(sobject)), until)
        sobject = "Opportunity"
        opp_records, oc = _read_changes(crm, sobject, _cursor(cursors.get(sobject)), until)
    except CrmCallError as e:
        if not refused_access(e):
            raise
        plan.no_access.append(no_access(sobject, "read", e))
        return
    plan.cursors_to["OpportunityContactRole"] = _cursor_json(rc) or plan.cursors_from.get(
        "OpportunityContactRole", []
    )
    for r in role_records:
        row = {
            "id": r.id,
            "opportunity": r.fields.get("OpportunityId"),
            "contact": r.fields.get("ContactId"),
            "role": r.fields.get("Role"),
            "is_primary": bool(r.fields.get("IsPrimary")),
            "deleted": r.is_deleted,
        }
        plan.roles.append(row)
        roles[r.id] = (row["opportunity"], row["contact"], r.is_deleted)  # type: ignore[assignment]
    plan.cursors_to["Opportunity"] = _cursor_json(oc) or plan.cursors_from.get("Opportunity", [])
    by_contact: dict[str, str | None] = {}  # contact -> its prospect, looked up when needed
    for r in opp_records:
        f = r.fields
        row = {
            "id": r.id,
            "name": f.get("Name"),
            "stage": f.get("StageName"),
            "amount": f.get("Amount"),
            "close_date": f.get("CloseDate"),
            "is_won": bool(f.get("IsWon")),
            "is_closed": bool(f.get("IsClosed")),
            "deleted": r.is_deleted,
            "campaign": f.get("CampaignId") or None,
            "created": _iso_or_none(f.get("CreatedDate")),
            "account": f.get("AccountId") or None,
            "closed_at": f.get("CloseDate") if f.get("IsClosed") else None,
        }
        plan.opportunities.append(row)
        before = opps.get(r.id)
        newly_closed = (
            row["is_closed"] and not r.is_deleted and not (before and before["is_closed"])
        )
        if not newly_closed:
            continue
        status = "won" if row["is_won"] else "lost"
        for opp, contact, deleted in roles.values():
            if opp != r.id or deleted:
                continue
            if contact not in by_contact:
                by_contact[contact] = links.contact_prospect(contact) if contact else None
            prospect = by_contact[contact]
            if prospect:
                plan.inbound.append(
                    {
                        "op": f"opportunity {status}",
                        "prospect": prospect,
                        "crm_id": r.id,
                        "why": f"{row['name']}: {row['stage']}, {row['amount']}",
                        "event": event(
                            "crm_update", prospect, object="opportunity", crm_id=r.id, status=status
                        ),
                    }
                )
