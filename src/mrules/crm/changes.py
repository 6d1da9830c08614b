"""Timed CRM-side changes: what sales do in the CRM, on the run's clock.

A changes file is JSON Lines, one change a line, each with the time it
happens (`at`) and what it does (`op`):

- `update`: `id` or `email` (+ `object`), `fields`: edit fields;
- `owner`: `id` or `email`, `owner` (a user's label, username or id): change the owner;
- `create`: `object`, `fields`, `label`?: create a record (a label names it for later lines);
- `convert`: `id` or `email`, `status`?, `opportunity`? (a name, or false), `account`?,
  `contact`?, `owner`?: convert a lead;
- `opportunity`: `contact` (id, label or email), `name`, `amount`?, `stage`?, `close_date`?,
  `label`?: an opportunity on the contact's account, the contact its primary contact role;
- `win`, `lose`: `id` (an opportunity), `amount`?: Closed Won / Closed Lost;
- `add_member`: `campaign` (id, label or name), `id` or `email`, `status`?: add a lead or
  contact to a campaign;
- `delete`, `undelete`: `id` or `email`: to and from the recycle bin.

`id` takes a record id or a label given at load time; `email` finds the live
contact with that email, else the live lead (`object` narrows it). `by`
names the CRM user who makes the change (default: the admin user).

`apply_changes` applies, in time order, every change at or before `until` not
applied yet, each at its own time on the CRM's clock, so SystemModstamp says
when sales made it. A change the CRM refuses is reported and not retried.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mrules.crm.emulator import EmulatedCrm
from mrules.crm.errors import CrmError
from mrules.crm.files import (
    NotAJsonValue,
    half_a_character,
    lone_surrogate,
    no_json_constant,
    not_utf8,
)
from mrules.crm.ids import InvalidId, to18
from mrules.crm.model import parse_datetime
from mrules.crm.port import LeadConvert

__all__ = ["OPS", "ApplyReport", "Change", "apply_changes", "read_changes"]

OPS = frozenset(
    {
        "update",
        "owner",
        "create",
        "convert",
        "opportunity",
        "win",
        "lose",
        "add_member",
        "delete",
        "undelete",
        "merge",
    }
)


@dataclass(frozen=True)
class Change:
    line: int
    at: dt.datetime
    op: str
    data: Mapping[str, Any]
    key: str


@dataclass
class ApplyReport:
    applied: list[tuple[Change, str]] = field(default_factory=list)
    failed: list[tuple[Change, str]] = field(default_factory=list)
    pending: int = 0
    already: int = 0


def read_changes(path: Path) -> tuple[list[Change], list[tuple[int, str]]]:
    """The changes of a file, and (line, reason) for each line that is not one."""
    data = path.read_bytes()  # once: a pipe cannot be read again
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        return [], [not_utf8(data, e)]  # the line of the first bad byte
    changes: list[Change] = []
    issues: list[tuple[int, str]] = []
    seen: dict[str, int] = {}
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            data = json.loads(line, parse_constant=no_json_constant)
        except json.JSONDecodeError as e:
            issues.append((n, f"not JSON: {e.msg} (column {e.colno})"))
            continue
        except NotAJsonValue as e:
            issues.append((n, f"not JSON: {e}"))
            continue
        if not isinstance(data, dict):
            issues.append((n, "a line holds one JSON object"))
            continue
        code = lone_surrogate(data)
        if code is not None:
            issues.append((n, half_a_character(code)))
            continue
        op = data.get("op")
        if op is None:  # an event of a stream (`type`, `ts`) given as a change, often
            issues.append((n, _no_op(data)))
            continue
        if not isinstance(op, str) or op not in OPS:
            issues.append((n, f"op {op!r} is not one of {', '.join(sorted(OPS))}"))
            continue
        try:
            at = parse_datetime(str(data.get("at", "")))
        except ValueError:
            issues.append((n, f"at {data.get('at')!r} is not a time with a zone (…Z)"))
            continue
        digest = hashlib.sha1(
            json.dumps(data, sort_keys=True, ensure_ascii=False).encode()
        ).hexdigest()
        seen[digest] = seen.get(digest, 0) + 1
        changes.append(Change(n, at, op, data, f"{digest}#{seen[digest]}"))
    changes.sort(key=lambda c: (c.at, c.line))
    return changes, issues


def _no_op(data: Mapping[str, Any]) -> str:
    """Why a line without an `op` is no change, in words (`op None is not one of ...`
    said nothing of what the line was)."""
    ops = ", ".join(sorted(OPS))
    if "type" in data and "op" not in data:
        return (
            'a line of events (it has "type"), not a CRM change: a change has "op" (one of'
            f' {ops}) and "at"; events go to `mrules run`'
        )
    return f'no "op": a change has "op", one of {ops}'


def apply_changes(
    crm: EmulatedCrm, changes: Sequence[Change], until: dt.datetime | None = None
) -> ApplyReport:
    """Apply the changes due by `until` (all when None) that were not applied before.

    The report counts the changes applied before (or refused before: not tried again)
    whatever their time, and those still to come: after `until`, and not applied yet.
    """
    report = ApplyReport()
    for change in changes:
        if crm.change_applied(change.key):  # before the time: done is done, due or not
            report.already += 1
            continue
        if until is not None and change.at > until:
            report.pending += 1
            continue
        crm.set_clock(change.at)
        try:
            with crm.transaction():
                outcome = _apply(crm, change)
                crm.record_change(change.key, change.at, "ok: " + outcome)
            report.applied.append((change, outcome))
        except CrmError as e:
            with crm.transaction():
                crm.record_change(change.key, change.at, f"failed: {e}")
            report.failed.append((change, str(e)))
    if until is not None:
        crm.set_clock(until)
    return report


def _apply(crm: EmulatedCrm, c: Change) -> str:
    d = c.data
    by = _user(crm, d["by"]) if d.get("by") else crm.admin_user_id
    op = c.op
    if op == "create":
        sobject = _text(d, "object")
        res = crm.add(sobject, _resolve_refs(crm, _fields(d)), by)
        _label(crm, d, res.id)
        return f"created {sobject} {res.id}"
    if op == "update":
        rid, sobject = _target(crm, d)
        crm.edit(sobject, {"Id": rid, **_resolve_refs(crm, _fields(d))}, by)
        return f"updated {sobject} {rid}"
    if op == "owner":
        rid, sobject = _target(crm, d)
        owner = _user(crm, _need(d, "owner"))
        crm.edit(sobject, {"Id": rid, "OwnerId": owner}, by)
        return f"{sobject} {rid} now owned by {owner}"
    if op == "convert":
        rid, sobject = _target(crm, d, "Lead")
        opportunity = d.get("opportunity", True)
        conv = crm.convert_as(
            LeadConvert(
                lead_id=rid,
                converted_status=d.get("status"),
                account_id=_ref(crm, d["account"]) if d.get("account") else None,
                contact_id=_ref(crm, d["contact"]) if d.get("contact") else None,
                owner_id=_user(crm, d["owner"]) if d.get("owner") else None,
                do_not_create_opportunity=opportunity is False,
                opportunity_name=opportunity if isinstance(opportunity, str) else None,
            ),
            by,
        )
        for key, value in (
            ("contact_label", conv.contact_id),
            ("account_label", conv.account_id),
            ("opportunity_label", conv.opportunity_id),
        ):
            if d.get(key) and value:
                crm.set_label(str(d[key]), value)
        return f"lead {rid} converted to contact {conv.contact_id}"
    if op == "opportunity":
        contact = _person(crm, _need(d, "contact"), "Contact")
        account = (crm.get(contact) or _missing(contact)).fields.get("AccountId")
        values = {
            "Name": _need(d, "name"),
            "StageName": d.get("stage", "Prospecting"),
            "CloseDate": d.get("close_date", c.at.date().isoformat()),
            "Amount": d.get("amount"),
            "AccountId": account,
        }
        res = crm.add("Opportunity", {k: v for k, v in values.items() if v is not None}, by)
        crm.add(
            "OpportunityContactRole",
            {"OpportunityId": res.id, "ContactId": contact, "IsPrimary": True},
            by,
        )
        _label(crm, d, res.id)
        return f"opportunity {res.id} for contact {contact}"
    if op in ("win", "lose"):
        rid = _ref(crm, _need(d, "id"))
        stage = "Closed Won" if op == "win" else "Closed Lost"
        edit: dict[str, Any] = {"Id": rid, "StageName": stage}
        if "amount" in d:
            edit["Amount"] = d["amount"]
        if "close_date" in d:
            edit["CloseDate"] = d["close_date"]
        crm.edit("Opportunity", edit, by)
        return f"opportunity {rid} {stage}"
    if op == "add_member":
        campaign = _campaign(crm, _need(d, "campaign"))
        rid, sobject = _target(crm, d)
        values = {"CampaignId": campaign, f"{sobject}Id": rid}
        if d.get("status"):
            values["Status"] = d["status"]
        res = crm.add("CampaignMember", values, by)
        return f"{sobject} {rid} added to campaign {campaign} ({res.id})"
    if op == "delete":
        rid, sobject = _target(crm, d)
        crm.remove(rid)
        return f"{sobject} {rid} deleted"
    if op == "merge":
        master = _ref(crm, _need(d, "master"))
        losers = d.get("losers")
        if not isinstance(losers, list) or not losers:
            raise CrmError("MISSING_ARGUMENT", "the change needs 'losers': ids or labels")
        ids = [_ref(crm, x) for x in losers]
        crm.merge(master, ids, by)
        return f"{', '.join(ids)} merged into {master}"
    rid = _ref(crm, _need(d, "id"))
    crm.restore(rid)
    return f"{rid} undeleted"


def _need(d: Mapping[str, Any], key: str) -> Any:
    if d.get(key) in (None, ""):
        raise CrmError("MISSING_ARGUMENT", f"the change needs {key!r}")
    return d[key]


def _text(d: Mapping[str, Any], key: str) -> str:
    value = _need(d, key)
    if not isinstance(value, str):
        raise CrmError("INVALID_TYPE", f"{key!r} must be a text, not {value!r}")
    return value


def _fields(d: Mapping[str, Any]) -> dict[str, Any]:
    fields = d.get("fields")
    if not isinstance(fields, dict):
        raise CrmError("MISSING_ARGUMENT", "the change needs 'fields': an object of API names")
    return dict(fields)


def _label(crm: EmulatedCrm, d: Mapping[str, Any], rid: str | None) -> None:
    if d.get("label") and rid:
        crm.set_label(str(d["label"]), rid)


def _missing(ref: str) -> Any:
    raise CrmError("INVALID_CROSS_REFERENCE_KEY", f"no record {ref!r}")


def _ref(crm: EmulatedCrm, ref: Any) -> str:
    """A label or an id, as an 18-character id of an existing record."""
    ref = str(ref)
    found = crm.label_id(ref)
    if found is not None:
        return found
    try:
        rid = to18(ref)
    except InvalidId:
        raise CrmError("INVALID_CROSS_REFERENCE_KEY", f"no record or label {ref!r}") from None
    if crm.get(rid) is None:
        _missing(ref)
    return rid


def _person(crm: EmulatedCrm, ref: Any, only: str | None = None) -> str:
    if isinstance(ref, str) and "@" in ref:
        return _by_email(crm, ref, only)[0]
    return _ref(crm, ref)


def _by_email(crm: EmulatedCrm, email: str, only: str | None) -> tuple[str, str]:
    for sobject in (only,) if only else ("Contact", "Lead"):
        for rid in crm.ids_by_email(sobject, email):
            record = crm.get(rid)
            if record is not None and not (sobject == "Lead" and record.fields.get("IsConverted")):
                return rid, sobject
    raise CrmError("INVALID_CROSS_REFERENCE_KEY", f"no live {only or 'contact or lead'} {email!r}")


def _target(crm: EmulatedCrm, d: Mapping[str, Any], only: str | None = None) -> tuple[str, str]:
    only = _text(d, "object") if d.get("object") else only
    if d.get("email"):
        return _by_email(crm, str(d["email"]), only)
    rid = _ref(crm, _need(d, "id"))
    record = crm.get(rid)
    assert record is not None
    if only and record.sobject != only:
        raise CrmError("MALFORMED_ID", f"{only} ID: id value of incorrect type: {rid}")
    return rid, record.sobject


def _user(crm: EmulatedCrm, ref: Any) -> str:
    ref = str(ref)
    for field_name in ("Username", "Email"):
        ids = crm.find_local("User", field_name, ref)
        if ids:
            return ids[0]
    ids = crm.find_local("Group", "Name", ref)
    if ids:
        return ids[0]
    return _ref(crm, ref)


def _campaign(crm: EmulatedCrm, ref: Any) -> str:
    ids = crm.find_local("Campaign", "Name", str(ref))
    return ids[0] if ids else _ref(crm, ref)


def _resolve_refs(crm: EmulatedCrm, fields: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for k, v in fields.items():
        if k.endswith("Id") and isinstance(v, str) and v:
            found = crm.label_id(v)
            if found is None and k == "OwnerId":
                try:
                    found = _user(crm, v)
                except CrmError:
                    found = None
            out[k] = found or v
        else:
            out[k] = v
    return out
