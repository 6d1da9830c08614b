"""What `sync apply` reads of a saved plan, checked before it writes anything.

A saved plan carries its own id, a digest of the rest: an edited plan is refused as
changed. A plan that another program wrote with a matching id (or an older mrules, or a
plan damaged before its id was computed) could still hold a value of another shape
than `mrules sync plan` writes; read as such halfway through an apply it was an
internal error after some of the CRM writes were made. `plan_problem` walks the plan
first (its ops and facts as they stream from disk) and names the first value the
applier could not read, or that `sync plan` never writes: a count below 0 (stored, it
made the sync file unreadable), an op, fact or object of a kind it does not make, a
batch out of range (each was skipped without a word), a hold's payload of another shape
than the write it holds (the apply never reads it; the summary's counts are checked so
too).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any, Final

from mrules.crm.model import parse_datetime
from mrules.events import OWNER_SINCE, parse_timestamp
from mrules.sync.plan import WRITES

__all__ = ["plan_problem"]

# Each kind of CRM record the plan copies into the sync file: its keys, and which of
# them are written as 0/1 flags (`int()`); `id` is text.
_RECORDS: Final = {
    "opportunities": (
        ("id", "name", "stage", "amount", "close_date", "is_won", "is_closed", "deleted"),
        ("is_won", "is_closed", "deleted"),
    ),
    "campaigns": (
        (
            "id",
            "name",
            "type",
            "status",
            "budgeted_cost",
            "actual_cost",
            "start_date",
            "deleted",
        ),
        ("deleted",),
    ),
    "campaign_members": (
        ("id", "campaign", "contact", "lead", "status", "has_responded", "created", "deleted"),
        ("has_responded", "deleted"),
    ),
    "accounts": (("id", "name", "deleted"), ("deleted",)),
    "roles": (
        ("id", "opportunity", "contact", "role", "is_primary", "deleted"),
        ("is_primary", "deleted"),
    ),
}
_SCALAR: Final = (str, int, float, type(None))
_LINKING: Final = ("delete", "convert", "link", "undelete", "new prospect", "merge")
# What `sync plan` writes: the kinds of facts read from the CRM and of ops, the records a
# prospect links to, the objects whose changes it reads (cursors).
_INBOUND_OPS: Final = (*_LINKING, "owner", "opportunity won", "opportunity lost")
_OPS: Final = (
    "create",
    "link",
    "update",
    "pull",
    "base",
    "hold",
    "skip",
    "wait",
    "campaign_member",
    "task",
)
_BATCHED: Final = WRITES
"""The ops that write, each in a batch; the others have none."""
_ON_A_RECORD: Final = ("create", "link", "update", "pull", "base")
"""The ops that name the record's object."""
_OBJECTS: Final = ("lead", "contact")
_CURSORS: Final = (
    "Lead",
    "Contact",
    "Account",
    "Campaign",
    "CampaignMember",
    "Opportunity",
    "OpportunityContactRole",
)
_MAX_COUNT: Final = 2**53
"""The largest count the sync file keeps (`sync status` reads it back)."""
_SUMMARY_COUNTS: Final = (
    "records",
    "this_cycle",
    "waiting",
    "with_records",
    "cycles_to_clear",
    "inbound_facts",
    "expected_errors",
    "held_errors",
)


class _Bad(Exception):
    """The first value the applier could not read: where it is and what is wrong."""


def _need(ok: bool, where: str, what: str) -> None:
    if not ok:
        raise _Bad(f"{where}: {what}")


def _text(value: Any, where: str) -> None:
    _need(isinstance(value, str), where, "not text")


def _whole(value: Any, where: str) -> None:
    _need(isinstance(value, int) and not isinstance(value, bool), where, "not a whole number")


def _shown(value: Any) -> str:
    """A value as the plan's JSON has it, cut short (ASCII: no control character)."""
    text = json.dumps(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _count(value: Any, where: str) -> None:
    _whole(value, where)
    _need(
        0 <= value <= _MAX_COUNT,
        where,
        f"not a count (a whole number from 0 to 2^53): {_shown(value)}",
    )


def _one_of(value: Any, known: tuple[str, ...], where: str, what: str) -> None:
    _text(value, where)
    _need(value in known, where, f"not {what}: {_shown(value)}")


def _mapping(value: Any, where: str) -> None:
    _need(isinstance(value, Mapping), where, "not a JSON object")


def _items(value: Any, where: str) -> Iterable[Any]:
    """A list of the plan (or a spooled one, read as it goes)."""
    _need(value is not None and not isinstance(value, str | bytes | Mapping), where, "not a list")
    try:
        return iter(value)
    except TypeError:
        raise _Bad(f"{where}: not a list") from None


def _event(e: Any, where: str) -> None:
    """An event the apply hands the engine: what its reader would refuse of a field the
    plan sets (the line would be rejected, and what it carries lost)."""
    _mapping(e, where)
    if e.get(OWNER_SINCE) is not None:  # the reader reads no null
        since = e[OWNER_SINCE]
        _text(since, f"{where}.{OWNER_SINCE}")
        try:
            parse_timestamp(since)
        except ValueError as problem:
            raise _Bad(f"{where}.{OWNER_SINCE}: {problem}") from None


def _inbound(i: Any, where: str) -> None:
    _mapping(i, where)
    _text(i.get("prospect"), f"{where}.prospect")
    _one_of(i.get("op"), _INBOUND_OPS, f"{where}.op", "a kind of CRM fact a plan reads")
    for key in ("create_event", "event"):
        if key in i:
            _event(i[key], f"{where}.{key}")
    if i["op"] in _LINKING or "object" in i:
        _one_of(i.get("object"), _OBJECTS, f"{where}.object", "lead or contact")
    if i["op"] in _LINKING:
        _text(i.get("crm_id"), f"{where}.crm_id")
    if "base" in i:
        _mapping(i["base"], f"{where}.base")
    if "error" in i:
        _need(i["op"] == "delete", f"{where}.error", f"a {i['op']} fact has no error")
        _link_error(i["error"], f"{where}.error")


def _link_error(e: Any, where: str) -> None:
    """The error queue's row of a link not made (`DUPLICATE_LINK`)."""
    _mapping(e, where)
    for key in ("field", "code", "message"):
        _text(e.get(key), f"{where}.{key}")


def _op(o: Any, where: str, last_batch: int) -> None:
    """One op; `last_batch` is the highest batch it can be in (its place in the plan over
    the batch size: `sync plan` numbers the writes in order)."""
    _mapping(o, where)
    _text(o.get("prospect"), f"{where}.prospect")
    _one_of(o.get("op"), _OPS, f"{where}.op", "an op sync plan writes")
    if o["op"] in _BATCHED:
        _need("batch" in o, where, "no batch")
    if "batch" in o:
        _need(o["op"] in _BATCHED, f"{where}.batch", f"a {o['op']} op is in no batch")
        _whole(o["batch"], f"{where}.batch")
        _need(
            0 <= o["batch"] <= last_batch,
            f"{where}.batch",
            f"out of range (0 to {last_batch} here): {_shown(o['batch'])}",
        )
    if o["op"] in _ON_A_RECORD or "object" in o:
        _one_of(o.get("object"), _OBJECTS, f"{where}.object", "lead or contact")
    if "seqs" in o:
        for n, seq in enumerate(_items(o["seqs"], f"{where}.seqs")):
            _count(seq, f"{where}.seqs[{n}]")
    if "work" in o:
        for n, kind in enumerate(_items(o["work"], f"{where}.work")):
            _text(kind, f"{where}.work[{n}]")
    for key in ("event", "link_event"):
        if o.get(key) is not None:
            _event(o[key], f"{where}.{key}")
    if o.get("values") is not None or o["op"] == "create":
        _mapping(o.get("values"), f"{where}.values")
        for field, value in o["values"].items():
            _need(isinstance(value, _SCALAR), f"{where}.values.{field}", "not a plain value")
    op = o["op"]
    if op == "create":
        for n, f in enumerate(_items(o.get("fields", ()), f"{where}.fields")):
            _mapping(f, f"{where}.fields[{n}]")
            _text(f.get("crm_field"), f"{where}.fields[{n}].crm_field")
    if op == "link":
        _text(o.get("crm_id"), f"{where}.crm_id")
    if "error" in o:
        _need(op == "hold", f"{where}.error", f"a {op} op has no error")
        _text(o.get("crm_id"), f"{where}.crm_id")
        _link_error(o["error"], f"{where}.error")
    if "base_after" in o:
        link = o.get("link")
        _need(
            isinstance(link, list)
            and len(link) == 2
            and link[0] in _OBJECTS
            and isinstance(link[1], str),
            f"{where}.link",
            "not [object, CRM id] (the object lead or contact)",
        )
        _mapping(o["base_after"], f"{where}.base_after")
        _mapping(o.get("times_after"), f"{where}.times_after")
    for n, field in enumerate(_items(o.get("resolved", ()), f"{where}.resolved")):
        _text(field, f"{where}.resolved[{n}]")
    for n, held in enumerate(_items(o.get("resolved_items", ()), f"{where}.resolved_items")):
        _mapping(held, f"{where}.resolved_items[{n}]")
        _text(held.get("field"), f"{where}.resolved_items[{n}].field")
        _text(held.get("item"), f"{where}.resolved_items[{n}].item")
    # The errors an op holds (a field of an update, a create, a membership or task): the
    # apply reads each one's code, and `sync plan` writes each as field, code and message.
    for n, held in enumerate(_items(o.get("held", ()), f"{where}.held")):
        _mapping(held, f"{where}.held[{n}]")
        for key in ("field", "code", "message"):
            _text(held.get(key), f"{where}.held[{n}].{key}")
    # A hold of a membership or task keeps the payload of the write it holds: the apply
    # writes nothing of it, but it is checked as that write's is (one shape, one check).
    if op in ("campaign_member", "task") or (op == "hold" and "payload" in o):
        if o.get("crm_id") is not None:
            _text(o["crm_id"], f"{where}.crm_id")
        payload = o.get("payload")
        _mapping(payload, f"{where}.payload")
        for key in ("campaign", "status", "subject", "priority"):
            if payload.get(key) is not None:
                _text(payload[key], f"{where}.payload.{key}")
        if payload.get("due_days") is not None:
            _whole(payload["due_days"], f"{where}.payload.due_days")


def _cursors(cursors: Any, key: str) -> None:
    _mapping(cursors, key)
    for sobject, c in cursors.items():
        _need(sobject in _CURSORS, f"{key}.{sobject}", "not an object the sync reads")
        if c:
            where = f"{key}.{sobject}"
            _need(isinstance(c, list) and len(c) == 2, where, "not [time, id]")
            _text(c[1], where)
            try:
                parse_datetime(c[0])
            except (TypeError, ValueError, AttributeError):
                raise _Bad(f"{where}: not [time, id]") from None


def _check(plan: Mapping[str, Any]) -> None:
    for key in ("generation", "store_seq", "retry_mark", "work_seq", "api_calls"):
        if key in plan:
            _count(plan[key], key)
    # The store the plan was made from (a plan from before has neither: not compared).
    if "store" in plan:
        _text(plan["store"], "store")
    if plan.get("store_id") is not None:
        _text(plan["store_id"], "store_id")
    config: Any = plan.get("config")
    _mapping(config, "config")
    size = config.get("batch")
    _whole(size, "config.batch")
    _need(size >= 1, "config.batch", f"not 1 or more: {_shown(size)}")
    # The creates read which CRM fields the sync block maps.
    for n, m in enumerate(_items(config.get("mappings", ()), "config.mappings")):
        _mapping(m, f"config.mappings[{n}]")
        _text(m.get("crm_field"), f"config.mappings[{n}].crm_field")
    for key in ("sent", "dirty"):
        for n, value in enumerate(_items(plan.get(key, ()), key)):
            _text(value, f"{key}[{n}]")
    # The objects the integration user may not read: the apply's report says them.
    for n, refused in enumerate(_items(plan.get("no_access", ()), "no_access")):
        _mapping(refused, f"no_access[{n}]")
        for key in ("object", "code", "message", "said"):
            _text(refused.get(key), f"no_access[{n}].{key}")
    if "summary" in plan:
        summary = plan["summary"]
        _mapping(summary, "summary")
        for key in _SUMMARY_COUNTS:
            if key in summary:
                _count(summary[key], f"summary.{key}")
    for key in ("cursors_from", "cursors_to"):
        if key in plan or key == "cursors_to":
            _cursors(plan.get(key, {}), key)
    for n, i in enumerate(_items(plan.get("inbound", ()), "inbound")):
        _inbound(i, f"inbound[{n}]")
    for n, o in enumerate(_items(plan.get("ops", ()), "ops")):
        _op(o, f"ops[{n}]", n // size)
    for part, (keys, flags) in _RECORDS.items():
        for n, r in enumerate(_items(plan.get(part, ()), part)):
            where = f"{part}[{n}]"
            _mapping(r, where)
            for key in keys:
                _need(key in r, where, f"no {key}")
                _need(isinstance(r[key], _SCALAR), f"{where}.{key}", "not a plain value")
            _text(r["id"], f"{where}.id")
            for key in flags:
                _need(isinstance(r[key], bool | int), f"{where}.{key}", "not true or false")


def plan_problem(plan: Mapping[str, Any]) -> str | None:
    """The first value of `plan` the applier could not read, or that `mrules sync plan`
    never writes, as `ops[3].seqs: not a list`; None when every value it reads is one
    `sync plan` could have written."""
    try:
        _check(plan)
    except _Bad as e:
        return str(e)
    return None
