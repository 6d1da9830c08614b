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
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from mrules.crm.errors import CrmError
from mrules.crm.ids import InvalidId, to18
from mrules.crm.port import FieldInfo, ObjectInfo
from mrules.diagnostics import printable

__all__ = [
    "EDITIONS",
    "LEAD_STATUSES",
    "OPPORTUNITY_STAGES",
    "ORG_KEYS",
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
_DEFAULT_LENGTH = {
    "email": 80,
    "phone": 40,
    "url": 255,
    "textarea": 32768,
    "picklist": 255,
    "multipicklist": 4099,  # Salesforce's: the values and their `;`
}
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
        "IsClosed",
        "IsWon",
        "ForecastCategory",
        "HasResponded",
    }
)
"""System fields a load ignores: the CRM computes them. (A load keeps `CreatedById`,
`LastModifiedById` and `MasterRecordId` apart from the fields: `EmulatedCrm.load_rows`.)"""

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
        """A schema from an org file's content; SchemaError names the key that is wrong.

        Every key is checked (type and range) before anything is built, so a bad org
        file is refused whole: docs/crm.md#the-org-file.
        """
        if not isinstance(org, Mapping):
            raise SchemaError(f"the org file must hold one JSON object (got {_shown(org)})")
        unknown = [k for k in org if k not in ORG_KEYS]
        if unknown:
            raise SchemaError(
                f"{_key(unknown[0])}: not an org file key (the keys are {', '.join(ORG_KEYS)})"
            )
        edition = org.get("edition")
        if edition is None:
            edition = "plus"
        if not isinstance(edition, str) or edition.lower() not in EDITIONS:
            raise SchemaError(f"edition {_named(edition)} is not one of {', '.join(EDITIONS)}")
        clock = org.get("clock")
        if clock is not None:
            try:
                parse_datetime(clock if isinstance(clock, str) else "")
            except ValueError:
                raise _must(
                    "clock", "a time with a zone, e.g. 2026-11-01T08:00:00Z", clock
                ) from None
        limit = org.get("api_daily_limit")
        if limit is not None and (
            isinstance(limit, bool) or not isinstance(limit, int) or limit < 0
        ):
            raise _must("api_daily_limit", "a whole number of API calls a day, 0 or more", limit)
        schema = cls(edition=edition.lower())
        references: list[tuple[str, tuple[str, ...]]] = []
        for obj, fields in _names(org, "custom_fields").items():
            if obj not in schema.objects or schema.objects[obj].custom:
                raise SchemaError(
                    f"custom_fields.{_key(obj)}: not a standard object (the standard objects are "
                    f"{', '.join(standard_objects())}; declare a custom object in "
                    "custom_objects)"
                )
            info = schema.objects[obj]
            added = _custom_fields(f"custom_fields.{obj}", info, fields, references)
            schema.objects[obj] = replace(info, fields={**info.fields, **added})
        prefixes = {o.key_prefix for o in schema.objects.values()}
        for name, spec in _names(org, "custom_objects").items():
            key = f"custom_objects.{name}"
            _check_custom_name(
                "custom_objects", name, "custom object", "Invoice__c", "pi__Invoice__c"
            )
            if any(o.lower() == name.lower() for o in schema.objects):
                raise SchemaError(f"{key}: declared twice")
            if not isinstance(spec, dict):
                raise _must(key, 'an object with "key_prefix" and "fields"', spec)
            _only(key, spec, ("key_prefix", "fields"))
            prefix = spec.get("key_prefix")
            if (
                not isinstance(prefix, str)
                or not re.fullmatch(r"a[0-9A-Za-z]{2}", prefix)
                or prefix in prefixes
            ):
                raise _must(
                    f"{key}.key_prefix",
                    "a free 3-character prefix starting with 'a' (e.g. 'a01')",
                    prefix,
                )
            prefixes.add(prefix)
            base = ObjectInfo(
                name=name,
                key_prefix=prefix,
                custom=True,
                fields={f.name: f for f in (*_SYSTEM, _f("Name", "string", 80, required=True))},
            )
            added = _custom_fields(f"{key}.fields", base, spec.get("fields"), references)
            schema.objects[name] = replace(base, fields={**base.fields, **added})
        for key, targets in references:
            for target in targets:
                if target not in schema.objects:
                    raise SchemaError(
                        f"{key}.reference_to: {_named(target)} is not an object of the org"
                    )
        rules = org.get("duplicate_rules")
        if rules is not None and not isinstance(rules, list):
            raise _must("duplicate_rules", "a list of rules", rules)
        for i, rule in enumerate(rules or []):
            schema.duplicate_rules.append(_duplicate_rule(f"duplicate_rules[{i}]", rule, schema))
        return schema

    def custom_objects_allowed(self) -> bool:
        return self.edition not in NO_CUSTOM_OBJECTS

    def object_by_prefix(self, prefix: str) -> ObjectInfo | None:
        for info in self.objects.values():
            if info.key_prefix == prefix:
                return info
        return None


ORG_KEYS = (
    "edition",
    "clock",
    "api_daily_limit",
    "custom_fields",
    "custom_objects",
    "duplicate_rules",
)
"""The keys of an org file (docs/crm.md#the-org-file)."""
# A custom API name, with the namespace prefix of the managed package that adds it
# when there is one (`pi__Score__c`: the Pardot package's `pi`, at most 15 characters).
_CUSTOM_NAME = re.compile(
    r"(?:[A-Za-z][A-Za-z0-9]{0,14}__)?(?P<name>[A-Za-z][A-Za-z0-9]*(?:_[A-Za-z0-9]+)*)__c"
)
# Salesforce's limits: a custom field's or object's name has at most 40 characters
# before its `__c`, a namespace prefix at most 15 before its `__`. A longer name is
# refused before `_CUSTOM_NAME` reads it, whose group keeps about 60 bytes of
# backtracking a character (650 MB for a 10 MB name in an org file).
_CUSTOM_NAME_MAX = 40
_CUSTOM_API_NAME_MAX = 15 + len("__") + _CUSTOM_NAME_MAX + len("__c")
_FIELD_KEYS = ("type", "length", "values", "restricted", "required", "external_id", "reference_to")
_MAX_LENGTH = {"string": 255, "textarea": 131072}
_RULE_KEYS = ("name", "object", "fields", "match_objects", "action")


def _cut(text: str) -> str:
    """Text a message quotes, cut to its first 57 characters past 60: a 10 MB name or
    value of an org file was quoted whole."""
    return text if len(text) <= 60 else text[:57] + "..."


def _shown(value: Any) -> str:
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        text = repr(value)
    return _cut(text)


def _named(value: Any) -> str:
    """A value of the org file a message quotes as Python shows it (`'X'`), cut."""
    return repr(_cut(value)) if isinstance(value, str) else repr(value)


def _key(name: str) -> str:
    """A key of the org file as a message names it: control characters escaped (a line
    break split the message's line), and cut to 60 characters (a 10 MB key was quoted
    whole). Keys the file is refused for; the keys it keeps are API names already."""
    return printable(_cut(name))


def _must(key: str, what: str, got: Any) -> SchemaError:
    return SchemaError(f"{key}: must be {what} (got {_shown(got)})")


def _only(key: str, spec: Mapping[str, Any], allowed: tuple[str, ...]) -> None:
    for name in spec:
        if name not in allowed:
            raise SchemaError(
                f"{key}.{_key(name)}: not a key here (the keys are {', '.join(allowed)})"
            )


def _names(org: Mapping[str, Any], key: str) -> dict[str, Any]:
    value = org.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _must(key, "an object of names", value)
    return value


def _strings(key: str, value: Any, what: str) -> list[str]:
    if not isinstance(value, list) or not value:
        raise _must(key, f"a list of one or more {what}", value)
    for item in value:
        if not isinstance(item, str) or not item:
            raise _must(key, f"a list of one or more {what}", value)
    if len(set(value)) != len(value):
        raise SchemaError(f"{key}: {what} are listed more than once")
    return list(value)


def _custom_fields(
    key: str, info: ObjectInfo, fields: Any, references: list[tuple[str, tuple[str, ...]]]
) -> dict[str, FieldInfo]:
    if fields is None:
        return {}
    if not isinstance(fields, dict):
        raise _must(key, "an object of field names", fields)
    taken = {n.lower() for n in info.fields}
    out: dict[str, FieldInfo] = {}
    for name, spec in fields.items():
        field_key = f"{key}.{name}"
        _check_custom_name(key, name, "custom field", "Size__c", "pi__Score__c")
        if name.lower() in taken:
            raise SchemaError(f"{field_key}: {info.name} already has a field named so")
        taken.add(name.lower())
        out[name] = _custom_field(field_key, name, spec, references)
    return out


def _check_custom_name(key: str, name: str, what: str, example: str, packaged: str) -> None:
    """Refuse a custom API name Salesforce would not take: its length first (at most 60
    characters in all), so that a long one is never matched by `_CUSTOM_NAME`."""
    shown = f"{key}.{_key(name)}"
    limits = (
        f"a {what}'s API name has at most {_CUSTOM_NAME_MAX} characters before its __c,"
        f" after a package's namespace prefix of at most 15 if any (e.g. {packaged})"
    )
    if len(name) > _CUSTOM_API_NAME_MAX:
        raise SchemaError(f"{shown}: {len(name):,} characters; {limits}")
    m = _CUSTOM_NAME.fullmatch(name)
    if m is None:
        raise SchemaError(
            f"{shown}: a {what}'s API name is letters, digits and single"
            f" underscores, starting with a letter and ending in __c (e.g. {example}),"
            f" after a package's namespace prefix if any (e.g. {packaged})"
        )
    if len(m.group("name")) > _CUSTOM_NAME_MAX:
        raise SchemaError(f"{shown}: {len(m.group('name'))} characters before its __c; {limits}")


def _custom_field(
    key: str, name: str, spec: Any, references: list[tuple[str, tuple[str, ...]]]
) -> FieldInfo:
    if isinstance(spec, str):
        spec = {"type": spec}
    if not isinstance(spec, dict):
        raise _must(key, 'a type name or an object with "type"', spec)
    _only(key, spec, _FIELD_KEYS)
    type_ = spec.get("type", "string")
    if not isinstance(type_, str) or type_ not in TYPES or type_ == "id":
        types = ", ".join(sorted(TYPES - {"id"}))
        raise SchemaError(f"{key}.type: unknown type {_shown(type_)} (the types: {types})")
    length = spec.get("length")
    if length is not None:
        most = _MAX_LENGTH.get(type_)
        if most is None:
            raise SchemaError(
                f"{key}.length: only a string or textarea field takes a length (this is a {type_})"
            )
        if isinstance(length, bool) or not isinstance(length, int) or not 1 <= length <= most:
            raise _must(f"{key}.length", f"a whole number from 1 to {most}", length)
    values: tuple[str, ...] = ()
    if "values" in spec:
        if type_ not in ("picklist", "multipicklist"):
            raise SchemaError(f"{key}.values: only a picklist or multipicklist has values")
        values = tuple(_strings(f"{key}.values", spec["values"], "picklist values (text)"))
        for v in values:
            if len(v) > 255 or (type_ == "multipicklist" and ";" in v):
                raise _must(
                    f"{key}.values",
                    "values of at most 255 characters (no ';' in a multipicklist)",
                    v,
                )
    for flag in ("restricted", "required", "external_id"):
        if flag in spec and not isinstance(spec[flag], bool):
            raise _must(f"{key}.{flag}", "true or false", spec[flag])
    to: tuple[str, ...] = ()
    if type_ == "reference":
        to = tuple(_strings(f"{key}.reference_to", spec.get("reference_to"), "object names"))
        references.append((key, to))
    elif "reference_to" in spec:
        raise SchemaError(f"{key}.reference_to: only a reference field refers to objects")
    return _f(
        name,
        type_,
        length or 0,
        required=spec.get("required", False),
        values=values,
        restricted=spec.get("restricted", type_ in ("picklist", "multipicklist")),
        to=to,
        external_id=spec.get("external_id", False),
    )


def _duplicate_rule(key: str, rule: Any, schema: Schema) -> dict[str, Any]:
    if not isinstance(rule, dict):
        raise _must(key, 'an object with "object", "fields", "match_objects", "action"', rule)
    _only(key, rule, _RULE_KEYS)
    obj = rule.get("object")
    if not isinstance(obj, str) or obj not in schema.objects:
        raise _must(f"{key}.object", "an object of the org (e.g. Lead)", obj)
    action = rule.get("action", "block")
    if action not in ("block", "alert"):
        raise _must(f"{key}.action", "'block' or 'alert'", action)
    name = rule.get("name", f"{obj} duplicate rule")
    if not isinstance(name, str) or not name:
        raise _must(f"{key}.name", "a name (text)", name)
    fields = rule.get("fields")
    fields = ["Email"] if fields is None else _strings(f"{key}.fields", fields, "field names")
    also = rule.get("match_objects")
    also = [obj] if also is None else _strings(f"{key}.match_objects", also, "object names")
    for other in also:
        if other not in schema.objects:
            raise SchemaError(f"{key}.match_objects: {_named(other)} is not an object of the org")
    for target in dict.fromkeys([obj, *also]):
        for f in fields:
            if f not in schema.objects[target].fields:
                raise SchemaError(f"{key}.fields: {target} has no field {_named(f)}")
    return {"name": name, "object": obj, "fields": fields, "match_objects": also, "action": action}


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
    # `1-01-01T...`: a year before 1000 as `format_datetime` wrote it before it padded
    s = re.sub(r"^(\d{1,3})-", lambda m: f"{int(m[1]):04d}-", s)
    value = dt.datetime.fromisoformat(s)
    if value.tzinfo is None:
        raise ValueError(f"a datetime needs a time zone: {text!r}")
    try:
        return value.astimezone(dt.UTC)
    except OverflowError:  # 0001-01-01T00:00:00+01:00, 9999-12-31T23:00:00-01:00
        raise ValueError(f"{text!r} is outside the years 1 to 9999 in UTC") from None


def format_datetime(value: dt.datetime) -> str:
    """A datetime the way Salesforce writes it: `2026-11-02T09:00:00.000+0000`."""
    value = value.astimezone(dt.UTC)
    # the year in four digits: strftime("%Y") writes the year 1 as `1` (glibc)
    return (
        f"{value.year:04d}"
        + value.strftime("-%m-%dT%H:%M:%S.")
        + (f"{value.microsecond // 1000:03d}+0000")
    )
