"""The CRM sync block: one Salesforce connector whose mappings can work.

Rules (codes MR501-MR512):

* the CRM is `salesforce` (MR501); `objects` names Salesforce objects the
  connector syncs (MR502);
* one CRM field mapped twice, compared case-insensitively as Salesforce API
  names are (MR503, §7.6); one mrules field mapped twice (MR504);
* `as TYPE` names a Salesforce field type (MR505) the connector supports:
  lookup and geolocation fields cannot be mapped (MR506); the mrules field's
  type fits it (MR507): a number field never maps to a phone field, a date
  never to a number, a picklist never to a number;
* a field the CRM owns (`prefer crm`) that a rule keeps changing (MR508, a
  warning): Salesforce's value wins once it has one (a value beats a blank,
  §7.6), so a write only fills a blank CRM field. An `increment`, or writes of
  different values, are overwritten at the next sync. A single `set` (a
  first-touch lead source) is a fill-the-blank and is not reported;
* `every N minutes` below 2, the connector's fastest cycle (MR509, a warning);
  `batch` of zero records (MR510); more than one sync block (MR511);
* `match by crm id` (MR512): Pardot's "several prospects with the same email"
  mode keys a prospect by its CRM id; mrules keys each prospect by its email,
  so the setting is refused rather than ignored.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator

from mrules import ast
from mrules.checker import report
from mrules.checker.values import describe_value
from mrules.checker.visit import actions, of_type
from mrules.diagnostics import Diagnostic
from mrules.symbols import FIELD_TYPES, Symbols

__all__ = ["CRM_TYPES", "FITS", "SYNC_OBJECTS", "check_sync"]

SYNC_OBJECTS = ("lead", "contact", "account", "opportunity", "campaign", "custom")
CRM_TYPES = (
    "text",
    "textarea",
    "number",
    "currency",
    "percent",
    "phone",
    "email",
    "url",
    "date",
    "datetime",
    "boolean",
    "checkbox",
    "picklist",
    "multipicklist",
    "lookup",
    "geolocation",
)
UNSUPPORTED = ("lookup", "geolocation")
_TEXTUAL = ("text", "textarea")
# The Salesforce types each mrules field type can be mapped to; a text field
# takes anything (Salesforce validates the value, §7.6).
FITS: dict[str, tuple[str, ...]] = {
    "text": CRM_TYPES,
    "number": ("number", "currency", "percent", *_TEXTUAL),
    "date": ("date", "datetime", *_TEXTUAL),
    "boolean": ("boolean", "checkbox", *_TEXTUAL),
    "picklist": ("picklist", "multipicklist", *_TEXTUAL),
    "multiselect": ("multipicklist", *_TEXTUAL),
}
MIN_MINUTES = 2


def check_sync(program: ast.Program, sym: Symbols) -> Iterator[Diagnostic]:
    """MR501-MR512 over every sync block."""
    first: tuple[str, ast.Sync] | None = None
    for path, item in of_type(program, ast.Sync):
        if first is None:
            first = (path, item)
        else:
            yield report.error(
                "MR511",
                "only one sync block is allowed",
                path,
                item.crm,
                hint="merge the two blocks",
                related=[report.note(first[0], first[1].crm, "first sync block here")],
            )
        yield from _block(path, item, sym)
    if first is not None:
        yield from _owned_writes(program, sym, first[0], first[1])


def _at(sync: ast.Sync, key: str) -> ast.Node | ast.Span:
    """Where an option of the block is written; the CRM name if the parser did not say."""
    return sync.option_span(key) or sync.crm


def _block(path: str, sync: ast.Sync, sym: Symbols) -> Iterator[Diagnostic]:
    if sync.crm.text != "salesforce":
        yield report.error(
            "MR501",
            f"unknown CRM '{sync.crm.text}'",
            path,
            sync.crm,
            hint="mrules syncs with Salesforce: `sync salesforce { ... }`",
        )
    for obj in sync.objects or ():
        if obj.text not in SYNC_OBJECTS:
            yield report.error(
                "MR502",
                f"unknown sync object '{obj.text}'",
                path,
                obj,
                hint=report.did_you_mean(obj.text, SYNC_OBJECTS)
                or "objects: " + ", ".join(SYNC_OBJECTS),
            )
    if sync.match_by == "crm id":
        yield report.error(
            "MR512",
            "`match by crm id` is not supported: mrules keys a prospect by its email",
            path,
            _at(sync, "match_by"),
            hint="write `match by email` (Pardot's legacy mode, one prospect an email) or"
            " leave it out",
        )
    if sync.every_minutes is not None and sync.every_minutes < MIN_MINUTES:
        yield report.warning(
            "MR509",
            f"the connector syncs at most every {MIN_MINUTES} minutes",
            path,
            _at(sync, "every_minutes"),
            hint=f"write `every {MIN_MINUTES} minutes` or more",
        )
    if sync.batch is not None and sync.batch <= 0:
        yield report.error(
            "MR510",
            "a sync batch must hold at least one record",
            path,
            _at(sync, "batch"),
            hint="the classic connector sends 200 records a batch",
        )
    crm_seen: dict[str, ast.SyncMap] = {}
    field_seen: dict[str, ast.SyncMap] = {}
    for m in sync.mappings:
        prev = crm_seen.setdefault(m.crm_field.text.casefold(), m)
        if prev is not m:
            yield report.error(
                "MR503",
                f"CRM field '{m.crm_field.text}' is mapped twice",
                path,
                m.crm_field,
                hint="Salesforce field names are case-insensitive; one mapping a field",
                related=[report.note(path, prev.crm_field, "first mapped here")],
            )
        prev = field_seen.setdefault(m.field.text, m)
        if prev is not m:
            yield report.error(
                "MR504",
                f"field '{m.field.text}' is mapped twice",
                path,
                m.field,
                hint="a prospect field syncs with one CRM field",
                related=[report.note(path, prev.field, "first mapped here")],
            )
        yield from _crm_type(path, m, sym)


def _crm_type(path: str, m: ast.SyncMap, sym: Symbols) -> Iterator[Diagnostic]:
    if m.crm_type is None:
        return
    crm = m.crm_type.text
    if crm not in CRM_TYPES:
        yield report.error(
            "MR505",
            f"unknown CRM field type '{crm}'",
            path,
            m.crm_type,
            hint=report.did_you_mean(crm, CRM_TYPES) or "types: " + ", ".join(CRM_TYPES),
        )
        return
    if crm in UNSUPPORTED:
        yield report.error(
            "MR506",
            f"the connector cannot sync {crm} fields",
            path,
            m.crm_type,
            hint="map a text or formula field instead",
        )
        return
    ftype = sym.field_type(m.field.text)
    if ftype in FIELD_TYPES and crm not in FITS[ftype]:
        hint = (
            "map phone numbers to a text field"
            if crm == "phone"
            else "fits: " + ", ".join(FITS[ftype])
        )
        yield report.error(
            "MR507",
            f"{ftype} field '{m.field.text}' cannot map to a CRM {crm} field",
            path,
            m.crm_type,
            hint=hint,
        )


def _owned_writes(
    program: ast.Program, sym: Symbols, sync_path: str, sync: ast.Sync
) -> Iterator[Diagnostic]:
    owned = {m.field.text: m for m in sync.mappings if m.prefer == "crm"}
    writes: dict[str, list[tuple[str, ast.SetField | ast.IncrementField]]] = defaultdict(list)
    for site in actions(program):
        if isinstance(site.action, ast.SetField | ast.IncrementField) and (
            site.action.field.text in owned
        ):
            writes[site.action.field.text].append((site.path, site.action))
    for name, found in writes.items():
        increments = [(p, a) for p, a in found if isinstance(a, ast.IncrementField)]
        action: ast.SetField | ast.IncrementField
        if increments:
            path, action = increments[0]
            why = "the next sync overwrites the increments"
        else:
            sets = [(p, a) for p, a in found if isinstance(a, ast.SetField)]
            first = describe_value(sets[0][1].value)
            # the first write of another value than the first write's
            other = next(((p, a) for p, a in sets if describe_value(a.value) != first), None)
            if other is None:
                continue
            path, action = other
            why = "only the first value written to a blank CRM field survives the next sync"
        yield report.warning(
            "MR508",
            f"the CRM owns '{name}'; {why}",
            path,
            action,
            hint="map the field with `prefer ours` or `prefer most recent`, or stop writing it",
            related=[report.note(sync_path, owned[name], "mapped with `prefer crm` here")],
        )
