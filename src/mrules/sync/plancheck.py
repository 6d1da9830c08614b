"""What `sync apply` reads of a saved plan, checked before it writes anything.

A saved plan carries its own id, a digest of the rest: an edited plan is refused as
changed. A plan that another program wrote with a matching id (or an older mrules, or a
plan damaged before its id was computed) could still hold a value of another shape
than `mrules sync plan` writes; read as such halfway through an apply it was an
internal error after some of the CRM writes were made. `plan_problem` walks the plan
first (its ops and facts as they stream from disk) and names the first value the
applier could not read.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Final

from mrules.crm.model import parse_datetime

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


class _Bad(Exception):
    """The first value the applier could not read: where it is and what is wrong."""


def _need(ok: bool, where: str, what: str) -> None:
    if not ok:
        raise _Bad(f"{where}: {what}")


def _text(value: Any, where: str) -> None:
    _need(isinstance(value, str), where, "not text")


def _whole(value: Any, where: str) -> None:
    _need(isinstance(value, int) and not isinstance(value, bool), where, "not a whole number")


def _mapping(value: Any, where: str) -> None:
    _need(isinstance(value, Mapping), where, "not a JSON object")


def _items(value: Any, where: str) -> Iterable[Any]:
    """A list of the plan (or a spooled one, read as it goes)."""
    _need(value is not None and not isinstance(value, str | bytes | Mapping), where, "not a list")
    try:
        return iter(value)
    except TypeError:
        raise _Bad(f"{where}: not a list") from None


def _inbound(i: Any, where: str) -> None:
    _mapping(i, where)
    _text(i.get("prospect"), f"{where}.prospect")
    _text(i.get("op"), f"{where}.op")
    for key in ("create_event", "event"):
        if key in i:
            _mapping(i[key], f"{where}.{key}")
    if i["op"] in _LINKING:
        _text(i.get("object"), f"{where}.object")
        _text(i.get("crm_id"), f"{where}.crm_id")
    if "base" in i:
        _mapping(i["base"], f"{where}.base")


def _op(o: Any, where: str) -> None:
    _mapping(o, where)
    _text(o.get("prospect"), f"{where}.prospect")
    _text(o.get("op"), f"{where}.op")
    if "batch" in o:
        _whole(o["batch"], f"{where}.batch")
    if "seqs" in o:
        for n, seq in enumerate(_items(o["seqs"], f"{where}.seqs")):
            _whole(seq, f"{where}.seqs[{n}]")
    if "work" in o:
        for n, kind in enumerate(_items(o["work"], f"{where}.work")):
            _text(kind, f"{where}.work[{n}]")
    for key in ("event", "link_event"):
        if o.get(key) is not None:
            _mapping(o[key], f"{where}.{key}")
    if o.get("values") is not None or o["op"] == "create":
        _mapping(o.get("values"), f"{where}.values")
        for field, value in o["values"].items():
            _need(isinstance(value, _SCALAR), f"{where}.values.{field}", "not a plain value")
    op = o["op"]
    if op in ("create", "link"):
        _text(o.get("object"), f"{where}.object")
    if op == "create":
        for n, f in enumerate(_items(o.get("fields", ()), f"{where}.fields")):
            _mapping(f, f"{where}.fields[{n}]")
            _text(f.get("crm_field"), f"{where}.fields[{n}].crm_field")
    if op == "link":
        _text(o.get("crm_id"), f"{where}.crm_id")
    if "base_after" in o:
        link = o.get("link")
        _need(
            isinstance(link, list) and len(link) == 2 and all(isinstance(x, str) for x in link),
            f"{where}.link",
            "not [object, CRM id]",
        )
        _mapping(o["base_after"], f"{where}.base_after")
        _mapping(o.get("times_after"), f"{where}.times_after")
        for n, field in enumerate(_items(o.get("resolved", ()), f"{where}.resolved")):
            _text(field, f"{where}.resolved[{n}]")
    if op in ("campaign_member", "task"):
        if o.get("crm_id") is not None:
            _text(o["crm_id"], f"{where}.crm_id")
        payload = o.get("payload")
        _mapping(payload, f"{where}.payload")
        for key in ("campaign", "status", "subject", "priority"):
            if payload.get(key) is not None:
                _text(payload[key], f"{where}.payload.{key}")
        if payload.get("due_days") is not None:
            _whole(payload["due_days"], f"{where}.payload.due_days")


def _check(plan: Mapping[str, Any]) -> None:
    for key in ("retry_mark", "work_seq", "api_calls"):
        if key in plan:
            _whole(plan[key], key)
    for key in ("sent", "dirty"):
        for n, value in enumerate(_items(plan.get(key, ()), key)):
            _text(value, f"{key}[{n}]")
    if "summary" in plan:
        _mapping(plan["summary"], "summary")
    cursors = plan.get("cursors_to", {})
    _mapping(cursors, "cursors_to")
    for sobject, c in cursors.items():
        if c:
            where = f"cursors_to.{sobject}"
            _need(isinstance(c, list) and len(c) == 2, where, "not [time, id]")
            _text(c[1], where)
            try:
                parse_datetime(c[0])
            except (TypeError, ValueError, AttributeError):
                raise _Bad(f"{where}: not [time, id]") from None
    for n, i in enumerate(_items(plan.get("inbound", ()), "inbound")):
        _inbound(i, f"inbound[{n}]")
    for n, o in enumerate(_items(plan.get("ops", ()), "ops")):
        _op(o, f"ops[{n}]")
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
    """The first value of `plan` the applier could not read, as `ops[3].seqs: not a
    list`; None when every value it reads has the shape `mrules sync plan` writes."""
    try:
        _check(plan)
    except _Bad as e:
        return str(e)
    return None
