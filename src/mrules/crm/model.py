"""The CRM's data model: objects, fields, types and the values a write may hold.

The standard objects carry the fields the sync and the reports need, with
Salesforce's API names, types, lengths and properties (create, update,
required, restricted picklist). An org adds custom fields (`Name__c`) and
custom objects through its org file (`org.json`, see docs/crm.md).

`check_value` turns one written value into the stored one or a `CrmError`
shaped like Salesforce's.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from mrules.crm.errors import CrmError
from mrules.crm.ids import InvalidId, to18
from mrules.crm.port import FieldInfo, ObjectInfo

__all__ = [
    "EDITIONS",
    "LEAD_STATUSES",
    "OPPORTUNITY_STAGES",
    "Schema",
    "SchemaError",
    "check_value",
    "standard_objects",
]

EDITIONS = ("standard", "growth", "plus", "advanced", "premium")
"""Editions an org may declare; `standard` and `growth` have no custom objects."""
NO_CUSTOM_OBJECTS = frozenset({"standard", "growth"})

LEAD_STATUSES: dict[str, bool] = {
    "Open - Not Contacted": False,
    "Working - Contacted": False,
    "Closed - Converted": True,
    "Closed - Not Converted": False,
}
"""Lead statuses of a fresh org and whether each one is a converted status."""

OPPORTUNITY_STAGES: dict[str, tuple[bool, bool, int, str]] = {
    # stage: (IsClosed, IsWon, default Probability, ForecastCategory)
    "Prospecting": (False, False, 10, "Pipeline"),
    "Qualification": (False, False, 10, "Pipeline"),
    "Needs Analysis": (False, False, 20, "Pipeline"),
    "Value Proposition": (False, False, 50, "Pipeline"),
    "Id. Decision Makers": (False, False, 60, "Pipeline"),
    "Perception Analysis": (False, False, 70, "Pipeline"),
    "Proposal/Price Quote": (False, False, 75, "Pipeline"),
    "Negotiation/Review": (False, False, 90, "Pipeline"),
    "Closed Won": (True, True, 100, "Closed"),
    "Closed Lost": (True, False, 0, "Omitted"),
}

TASK_STATUSES = {
    "Not Started": False,
    "In Progress": False,
    "Completed": True,
    "Waiting on someone else": False,
    "Deferred": False,
}

TYPES = frozenset(
    {
        "id",
        "reference",
        "string",
        "textarea",
        "email",
        "phone",
        "url",
        "picklist",
        "multipicklist",
        "boolean",
        "date",
        "datetime",
        "currency",
        "percent",
        "double",
        "int",
    }
)
_TEXT = frozenset({"string", "textarea", "email", "phone", "url", "picklist", "multipicklist"})
_DEFAULT_LENGTH = {"email": 80, "phone": 40, "url": 255, "textarea": 32768, "picklist": 255}
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class SchemaError(ValueError):
    """An org file that declares something impossible (a bad type, a clashing name)."""


def _f(
    name: str,
    type_: str,
    length: int = 0,
    *,
    required: bool = False,
    create: bool = True,
    update: bool = True,
    defaulted: bool = False,
    values: tuple[str, ...] = (),
    restricted: bool = False,
    to: tuple[str, ...] = (),
    label: str = "",
    external_id: bool = False,
) -> FieldInfo:
    if type_ in ("string",) and not length:
        length = 255
    length = length or _DEFAULT_LENGTH.get(type_, 0)
    return FieldInfo(
        name=name,
        label=label or _label(name),
        type=type_,
        length=length,
        nillable=not required and type_ != "boolean",
        createable=create,
        updateable=update,
        required=required and not defaulted,
        defaulted_on_create=defaulted,
        restricted_picklist=restricted,
        picklist_values=values,
        reference_to=to,
        custom=name.endswith("__c"),
        external_id=external_id,
    )


def _sys(name: str, type_: str, to: tuple[str, ...] = ()) -> FieldInfo:
    return _f(name, type_, create=False, update=False, to=to)


def _label(name: str) -> str:
    base = name.removesuffix("__c").removesuffix("Id") if name != "Id" else "Id"
    words = re.sub(r"(?<=[a-z])(?=[A-Z])", " ", base).replace("_", " ")
    return words + (" ID" if name.endswith("Id") and name != "Id" else "")


_SYSTEM = (
    _sys("Id", "id"),
    _sys("IsDeleted", "boolean"),
    _sys("CreatedDate", "datetime"),
    _sys("CreatedById", "reference", ("User",)),
    _sys("LastModifiedDate", "datetime"),
    _sys("LastModifiedById", "reference", ("User",)),
    _sys("SystemModstamp", "datetime"),
)
SYSTEM_FIELDS = frozenset(f.name for f in _SYSTEM)
LOAD_WRITABLE = frozenset(
    {
        "CreatedDate",
        "LastModifiedDate",
        "IsConverted",
        "ConvertedDate",
        "ConvertedAccountId",
        "ConvertedContactId",
        "ConvertedOpportunityId",
        "FirstRespondedDate",
    }
)
"""System fields a load may set (audit fields and a lead converted before the export)."""
DERIVED = frozenset(
    {
        "IsDeleted",
        "SystemModstamp",
        "CreatedById",
        "LastModifiedById",
        "IsClosed",
        "IsWon",
        "ForecastCategory",
        "HasResponded",
        "MasterRecordId",
    }
)
"""System fields a load ignores: the CRM computes them."""

_PICK_INDUSTRY = ("Agriculture", "Banking", "Consulting", "Education", "Technology", "Other")
_PICK_SOURCE = ("Web", "Phone Inquiry", "Partner Referral", "Purchased List", "Other")
_OWNER = ("User",)


def standard_objects() -> dict[str, ObjectInfo]:
    """The standard objects of a fresh org, by API name."""
    lead_statuses = tuple(LEAD_STATUSES)
    objects: dict[str, tuple[str, tuple[FieldInfo, ...]]] = {
        "User": (
            "005",
            (
                _f("Username", "string", 80, required=True),
                _f("Email", "email", required=True),
                _f("FirstName", "string", 40),
                _f("LastName", "string", 80, required=True),
                _f("Alias", "string", 8),
                _f("IsActive", "boolean", defaulted=True),
            ),
        ),
        "Group": (
            "00G",
            (
                _f("Name", "string", 40, required=True),
                _f("Type", "picklist", values=("Queue", "Regular"), restricted=True),
            ),
        ),
        "Account": (
            "001",
            (
                _f("Name", "string", 255, required=True),
                _f("OwnerId", "reference", defaulted=True, to=_OWNER),
                _f("ParentId", "reference", to=("Account",)),
                _f("Type", "picklist", values=("Prospect", "Customer", "Partner", "Other")),
                _f("Industry", "picklist", values=_PICK_INDUSTRY),
                _f("Website", "url"),
                _f("Phone", "phone"),
                _sys("MasterRecordId", "reference", ("Account",)),
            ),
        ),
        "Contact": (
            "003",
            (
                _f("FirstName", "string", 40),
                _f("LastName", "string", 80, required=True),
                _f("Email", "email"),
                _f("AccountId", "reference", to=("Account",)),
                _f("OwnerId", "reference", defaulted=True, to=_OWNER),
                _f("LeadSource", "picklist", values=_PICK_SOURCE),
                _f("Title", "string", 128),
                _f("Phone", "phone"),
                _f("HasOptedOutOfEmail", "boolean", defaulted=True),
                _sys("MasterRecordId", "reference", ("Contact",)),
            ),
        ),
        "Lead": (
            "00Q",
            (
                _f("FirstName", "string", 40),
                _f("LastName", "string", 80, required=True),
                _f("Company", "string", 255, required=True),
                _f("Email", "email"),
                _f("Title", "string", 128),
                _f("Phone", "phone"),
                _f("Industry", "picklist", values=_PICK_INDUSTRY),
                _f("LeadSource", "picklist", values=_PICK_SOURCE),
                _f(
                    "Status",
                    "picklist",
                    40,
                    required=True,
                    defaulted=True,
                    values=lead_statuses,
                    restricted=True,
                ),
                _f("OwnerId", "reference", defaulted=True, to=("User", "Group")),
                _f("HasOptedOutOfEmail", "boolean", defaulted=True),
                _f("DoNotCall", "boolean", defaulted=True),
                _sys("IsConverted", "boolean"),
                _sys("ConvertedDate", "date"),
                _sys("ConvertedAccountId", "reference", ("Account",)),
                _sys("ConvertedContactId", "reference", ("Contact",)),
                _sys("ConvertedOpportunityId", "reference", ("Opportunity",)),
                _sys("MasterRecordId", "reference", ("Lead",)),
            ),
        ),
        "Campaign": (
            "701",
            (
                _f("Name", "string", 80, required=True),
                _f("IsActive", "boolean", defaulted=True),
                _f("Status", "picklist", values=("Planned", "In Progress", "Completed", "Aborted")),
                _f("Type", "picklist", values=("Conference", "Webinar", "Email", "Advertisement")),
                _f("StartDate", "date"),
                _f("EndDate", "date"),
                _f("ParentId", "reference", to=("Campaign",)),
                _f("OwnerId", "reference", defaulted=True, to=_OWNER),
                _f("BudgetedCost", "currency"),
                _f("ActualCost", "currency"),
                _f("ExpectedRevenue", "currency"),
            ),
        ),
        "CampaignMember": (
            "00v",
            (
                _f("CampaignId", "reference", required=True, update=False, to=("Campaign",)),
                _f("LeadId", "reference", update=False, to=("Lead",)),
                _f("ContactId", "reference", update=False, to=("Contact",)),
                _f("Status", "picklist", 40, defaulted=True),
                _sys("HasResponded", "boolean"),
                _sys("FirstRespondedDate", "date"),
            ),
        ),
        "Opportunity": (
            "006",
            (
                _f("Name", "string", 120, required=True),
                _f(
                    "StageName",
                    "picklist",
                    required=True,
                    values=tuple(OPPORTUNITY_STAGES),
                    restricted=True,
                ),
                _f("CloseDate", "date", required=True),
                _f("Amount", "currency"),
                _f("Probability", "percent", defaulted=True),
                _sys("IsClosed", "boolean"),
                _sys("IsWon", "boolean"),
                _sys("ForecastCategory", "picklist"),
                _f("AccountId", "reference", to=("Account",)),
                _f("CampaignId", "reference", to=("Campaign",)),
                _f("OwnerId", "reference", defaulted=True, to=_OWNER),
                _f("LeadSource", "picklist", values=_PICK_SOURCE),
            ),
        ),
        "OpportunityContactRole": (
            "00K",
            (
                _f(
                    "OpportunityId",
                    "reference",
                    required=True,
                    update=False,
                    to=("Opportunity",),
                ),
                _f("ContactId", "reference", required=True, to=("Contact",)),
                _f(
                    "Role",
                    "picklist",
                    values=("Business User", "Decision Maker", "Economic Buyer", "Influencer"),
                ),
                _f("IsPrimary", "boolean", defaulted=True),
            ),
        ),
        "Task": (
            "00T",
            (
                _f("WhoId", "reference", to=("Lead", "Contact")),
                _f("WhatId", "reference", to=("Account", "Opportunity", "Campaign")),
                _f("Subject", "string", 255),
                _f(
                    "Status",
                    "picklist",
                    required=True,
                    defaulted=True,
                    values=tuple(TASK_STATUSES),
                    restricted=True,
                ),
                _f(
                    "Priority",
                    "picklist",
                    required=True,
                    defaulted=True,
                    values=("High", "Normal", "Low"),
                    restricted=True,
                ),
                _f("ActivityDate", "date"),
                _f("Description", "textarea"),
                _f("OwnerId", "reference", defaulted=True, to=_OWNER),
                _sys("IsClosed", "boolean"),
            ),
        ),
    }
    return {
        name: ObjectInfo(
            name=name,
            key_prefix=prefix,
            custom=False,
            fields={f.name: f for f in (*_SYSTEM, *fields)},
        )
        for name, (prefix, fields) in objects.items()
    }


@dataclass
class Schema:
    """The objects of one org: the standard ones plus the org file's custom fields and objects."""

    edition: str = "plus"
    objects: dict[str, ObjectInfo] = field(default_factory=standard_objects)
    duplicate_rules: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def from_org(cls, org: Mapping[str, Any]) -> Schema:
        """A schema from an org file's content; SchemaError says what is wrong."""
        edition = str(org.get("edition", "plus")).lower()
        if edition not in EDITIONS:
            raise SchemaError(f"edition {edition!r} is not one of {', '.join(EDITIONS)}")
        schema = cls(edition=edition)
        for obj, fields in _mapping(org, "custom_fields").items():
            if obj not in schema.objects:
                raise SchemaError(f"custom_fields: {obj!r} is not a standard object")
            info = schema.objects[obj]
            if not isinstance(fields, dict):
                raise SchemaError(f"custom_fields.{obj}: expected an object of field names")
            added = {n: _custom_field(obj, n, spec) for n, spec in fields.items()}
            schema.objects[obj] = replace(info, fields={**info.fields, **added})
        prefixes = {o.key_prefix for o in schema.objects.values()}
        for name, spec in _mapping(org, "custom_objects").items():
            if not name.endswith("__c"):
                raise SchemaError(f"custom object {name!r}: its API name must end in __c")
            spec = _mapping({name: spec}, name)
            prefix = str(spec.get("key_prefix", ""))
            if not re.fullmatch(r"a[0-9A-Za-z]{2}", prefix) or prefix in prefixes:
                raise SchemaError(
                    f"custom object {name!r}: key_prefix must be a free 3-character prefix "
                    "starting with 'a' (e.g. 'a01')"
                )
            prefixes.add(prefix)
            fields = {n: _custom_field(name, n, s) for n, s in _mapping(spec, "fields").items()}
            fields = {
                f.name: f
                for f in (*_SYSTEM, _f("Name", "string", 80, required=True), *fields.values())
            }
            schema.objects[name] = ObjectInfo(
                name=name, key_prefix=prefix, custom=True, fields=fields
            )
        for i, rule in enumerate(org.get("duplicate_rules") or []):
            if not isinstance(rule, dict) or rule.get("object") not in schema.objects:
                raise SchemaError(f"duplicate_rules[{i}]: needs an 'object' of the org")
            action = rule.get("action", "block")
            if action not in ("block", "alert"):
                raise SchemaError(f"duplicate_rules[{i}]: action is 'block' or 'alert'")
            fields = rule.get("fields") or ["Email"]
            also = rule.get("match_objects") or [rule["object"]]
            schema.duplicate_rules.append(
                {
                    "name": str(rule.get("name", f"{rule['object']} duplicate rule")),
                    "object": rule["object"],
                    "fields": list(fields),
                    "match_objects": list(also),
                    "action": action,
                }
            )
        return schema

    def custom_objects_allowed(self) -> bool:
        return self.edition not in NO_CUSTOM_OBJECTS

    def object_by_prefix(self, prefix: str) -> ObjectInfo | None:
        for info in self.objects.values():
            if info.key_prefix == prefix:
                return info
        return None


def _mapping(m: Any, key: str) -> dict[str, Any]:
    value = m.get(key) if isinstance(m, Mapping) else None
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise SchemaError(f"{key}: expected an object of names")
    return value


def _custom_field(obj: str, name: str, spec: Any) -> FieldInfo:
    if not name.endswith("__c"):
        raise SchemaError(f"{obj}.{name}: a custom field's API name ends in __c")
    if isinstance(spec, str):
        spec = {"type": spec}
    if not isinstance(spec, dict):
        raise SchemaError(f"{obj}.{name}: expected a type or an object with 'type'")
    type_ = spec.get("type", "string")
    if type_ not in TYPES or type_ == "id":
        raise SchemaError(f"{obj}.{name}: unknown type {type_!r}")
    values = tuple(str(v) for v in spec.get("values", ()))
    return _f(
        name,
        type_,
        int(spec.get("length", 0) or 0),
        required=bool(spec.get("required", False)),
        values=values,
        restricted=bool(spec.get("restricted", type_ in ("picklist", "multipicklist"))),
        to=tuple(spec.get("reference_to", ())),
        external_id=bool(spec.get("external_id", False)),
    )


def check_value(info: FieldInfo, value: Any) -> Any:
    """The value to store for `info`, or CrmError (type, length, picklist, email)."""
    if value is None or (value == "" and info.type not in ("boolean",)):
        return None
    t = info.type
    if t in _TEXT:
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise _wrong_type(info, value)
        value = str(value)
        if len(value) > info.length:
            raise CrmError(
                "STRING_TOO_LONG",
                f"{info.label}: data value too large: {value[:40]} (max length={info.length})",
                (info.name,),
            )
        if t == "email" and not _EMAIL.match(value):
            raise CrmError(
                "INVALID_EMAIL_ADDRESS",
                f"{info.label}: invalid email address: {value}",
                (info.name,),
            )
        if info.restricted_picklist and info.picklist_values:
            parts = value.split(";") if t == "multipicklist" else [value]
            for part in parts:
                if part not in info.picklist_values:
                    raise CrmError(
                        "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                        f"{info.label}: bad value for restricted picklist field: {part}",
                        (info.name,),
                    )
        return value
    if t == "boolean":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise _wrong_type(info, value)
    if t in ("currency", "percent", "double", "int"):
        if isinstance(value, bool):
            raise _wrong_type(info, value)
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                raise _wrong_type(info, value) from None
        if (
            not isinstance(value, (int, float))
            or value != value
            or value
            in (
                float("inf"),
                float("-inf"),
            )
        ):
            raise _wrong_type(info, value)
        if t == "int":
            if value != int(value):
                raise _wrong_type(info, value)
            return int(value)
        if abs(value) >= 1e16:
            raise CrmError(
                "NUMBER_OUTSIDE_VALID_RANGE",
                f"{info.label}: value outside of valid range on numeric field: {value}",
                (info.name,),
            )
        return round(float(value), 2) if t == "currency" else float(value)
    if t == "date":
        if isinstance(value, str) and _DATE.match(value):
            try:
                dt.date.fromisoformat(value)
            except ValueError:
                raise _wrong_type(info, value) from None
            return value
        raise _wrong_type(info, value)
    if t == "datetime":
        if isinstance(value, str):
            try:
                return format_datetime(parse_datetime(value))
            except ValueError:
                pass
        raise _wrong_type(info, value)
    if t in ("reference", "id"):
        if not isinstance(value, str):
            raise _wrong_type(info, value)
        try:
            return to18(value)
        except InvalidId:
            raise CrmError(
                "MALFORMED_ID", f"{info.label}: id value of incorrect type: {value}", (info.name,)
            ) from None
    raise _wrong_type(info, value)  # pragma: no cover - every type is handled above


def _wrong_type(info: FieldInfo, value: Any) -> CrmError:
    return CrmError(
        "INVALID_TYPE_ON_FIELD_IN_RECORD",
        f"{info.label}: value not of required type: {value}",
        (info.name,),
    )


@functools.lru_cache(maxsize=8192)
def parse_datetime(text: str) -> dt.datetime:
    """A Salesforce or ISO 8601 datetime as an aware UTC datetime (ValueError otherwise).

    Remembered: a sync reads the same stamps again and again (a batch's writes share one).
    """
    s = text.strip()
    if s.endswith("Z"):
        s = s[:-1] + "+00:00"
    s = re.sub(r"([+-]\d{2})(\d{2})$", r"\1:\2", s)
    value = dt.datetime.fromisoformat(s)
    if value.tzinfo is None:
        raise ValueError(f"a datetime needs a time zone: {text!r}")
    return value.astimezone(dt.UTC)


def format_datetime(value: dt.datetime) -> str:
    """A datetime the way Salesforce writes it: `2026-11-02T09:00:00.000+0000`."""
    value = value.astimezone(dt.UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}+0000"
