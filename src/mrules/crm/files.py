"""CRM data files: exports to load (JSONL or CSV, one file per object) and to write.

A folder of exports holds `Lead.jsonl`, `Contact.csv`... (the object's API
name, any case) and, optionally, `org.json` (the org's edition, custom fields
and objects, duplicate rules, API limit, clock). Files load in dependency
order (`LOAD_ORDER`), so a lead may name the contact it was converted to.
A bad row is reported with its file and line and the rest loads.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mrules.crm.emulator import EmulatedCrm, LoadIssue
from mrules.crm.model import format_datetime
from mrules.pathkind import special_file_kind

__all__ = [
    "LOAD_ORDER",
    "CrmInputError",
    "FileIssue",
    "LoadReport",
    "NotAJsonValue",
    "export_org",
    "export_records",
    "find_files",
    "half_a_character",
    "load_files",
    "lone_surrogate",
    "no_json_constant",
    "not_utf8",
    "read_org",
    "read_rows",
]

LOAD_ORDER = (
    "User",
    "Group",
    "Account",
    "Campaign",
    "CampaignMemberStatus",
    "Contact",
    "Opportunity",
    "OpportunityContactRole",
    "Lead",
    "CampaignMember",
    "Task",
)
_SUFFIXES = (".jsonl", ".csv")
_NAMES = {name.lower(): name for name in LOAD_ORDER}


class CrmInputError(Exception):
    """Input that cannot be read at all (a missing path, an unknown kind of file)."""


@dataclass(frozen=True)
class FileIssue:
    path: str
    line: int
    message: str
    whole: bool = False
    """The whole file is not loaded (a file of no object, unreadable, not UTF-8, a header
    naming a field twice), not one row: `crm load` counts it as a file."""

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line else self.path
        return f"{where}: {self.message}"


@dataclass
class LoadReport:
    loaded: dict[str, int] = field(default_factory=dict)
    issues: list[FileIssue] = field(default_factory=list)


def _kind(p: Path) -> str:
    """What a path that is neither a file nor a folder is, in words."""
    try:
        mode = p.stat().st_mode
    except OSError:
        if str(p) == "-":  # it said "no such file or folder"
            return (
                "crm load reads export files and folders, not standard input (a file named"
                " - is ./-)"
            )
        return "no such file or folder"
    return f"{special_file_kind(mode)}, not a file: give a CRM export file or a folder of them"


def find_files(
    paths: Sequence[str | Path], again: list[Path] | None = None
) -> tuple[Path | None, list[tuple[str, Path]]]:
    """The org file and the (object, file) pairs among paths (files or folders).

    A file given twice (the same path, another spelling of it, or a file and its folder)
    is taken once: loading rows without an Id twice would create their records twice.
    Those found again are added to `again`, for the caller to say so. Two files for one
    object (`Lead.csv` and `lead.jsonl`) are a CrmInputError naming both: one file per
    object, or which one's rows win is a matter of load order.
    """
    org: Path | None = None
    found: list[tuple[str, Path]] = []
    seen: set[object] = set()
    objects: dict[str, Path] = {}  # an object's name in lower case -> its file
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            entries = sorted(x for x in p.iterdir() if x.is_file())
        elif p.is_file():
            entries = [p]
        else:
            raise CrmInputError(f"{p}: {_kind(p)}")
        for entry in entries:
            keys = _file_keys(entry)
            if keys & seen:
                if again is not None:
                    again.append(entry)
                continue
            seen |= keys
            if entry.name == "org.json":
                org = entry
            elif entry.suffix.lower() in _SUFFIXES:
                first = objects.setdefault(entry.stem.lower(), entry)
                if first != entry:
                    name = _NAMES.get(entry.stem.lower(), entry.stem)
                    raise CrmInputError(
                        f"{first} and {entry} are both files of the object {name}: give one"
                        " file per object (merge them, or load them one at a time)"
                    )
                found.append((entry.stem, entry))
            elif p.is_file():
                raise CrmInputError(f"{entry}: a CRM file ends in .jsonl or .csv (or is org.json)")
    return org, found


def _file_keys(path: Path) -> set[object]:
    """What tells two paths apart: the resolved path and the file's identity (a hard link
    or another spelling of the same file has the same)."""
    keys: set[object] = {os.path.realpath(path)}
    with contextlib.suppress(OSError):
        st = path.stat()
        keys.add((st.st_dev, st.st_ino))
    return keys


def read_org(path: Path) -> dict[str, Any]:
    """The org file's settings. A UTF-8 BOM is taken, as the export files' is (it was
    Python's `Unexpected UTF-8 BOM (decode using utf-8-sig)`), and what is not UTF-8 or
    not JSON is said with its line, as a row's is."""
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise CrmInputError(f"{path}: cannot read the org file: {e.strerror or e}") from e
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line, message = not_utf8(raw, e)
        raise CrmInputError(f"{path}:{line}: the org file is {message}") from e
    if not text.strip():
        raise CrmInputError(f"{path}: the org file is empty: it holds one JSON object, {{...}}")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise CrmInputError(
            f"{path}:{e.lineno}: the org file is not JSON: {e.msg} (column {e.colno})"
        ) from e
    if not isinstance(data, dict):
        raise CrmInputError(f"{path}: the org file holds one JSON object")
    return data


def not_utf8(data: bytes, error: UnicodeDecodeError) -> tuple[int, str]:
    """(line, message) for bytes that are not UTF-8: the line of the first bad byte."""
    start = data.rfind(b"\n", 0, error.start) + 1
    line = data.count(b"\n", 0, error.start) + 1
    return line, f"not UTF-8 ({error.reason} at byte {error.start - start + 1} of the line)"


_SURROGATE = re.compile("[\ud800-\udfff]")


def lone_surrogate(value: object) -> str | None:
    """The first lone surrogate of a JSON value's strings (keys too), as `\\ud800`; None
    when it has none. `json` reads `"\\ud800"` as half a character, which the CRM file
    then stored and read back as damage (and which a change's key could not encode)."""
    todo = [value]
    while todo:
        item = todo.pop()
        if isinstance(item, str):
            found = _SURROGATE.search(item)
            if found:
                return f"\\u{ord(found.group()):04x}"
        elif isinstance(item, dict):
            todo.extend(item)
            todo.extend(item.values())
        elif isinstance(item, list):
            todo.extend(item)
    return None


def half_a_character(code: str) -> str:
    """The refusal of a line holding a lone surrogate, as `mrules test` words it."""
    return f"not text: {code} is half a character (a lone surrogate)"


def read_rows(path: Path, issues: list[FileIssue]) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line, row) of a JSONL or CSV export; unreadable rows go to `issues`."""
    try:
        data = path.read_bytes()
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        where, message = not_utf8(data, e)
        issues.append(
            FileIssue(str(path), where, f"{message}: none of this file's rows is loaded", True)
        )
        return
    except OSError as e:
        issues.append(FileIssue(str(path), 0, f"cannot read: {e.strerror or e}", True))
        return
    if path.suffix.lower() == ".jsonl":
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(
                    line, object_pairs_hook=_no_key_twice, parse_constant=no_json_constant
                )
            except _KeyTwice as e:
                issues.append(FileIssue(str(path), n, f"{e}: the row is refused"))
                continue
            except NotAJsonValue as e:
                issues.append(FileIssue(str(path), n, f"not JSON: {e}: the row is refused"))
                continue
            except json.JSONDecodeError as e:
                issues.append(FileIssue(str(path), n, f"not JSON: {e.msg} (column {e.colno})"))
                continue
            if not isinstance(row, dict):
                issues.append(FileIssue(str(path), n, "a line holds one JSON object"))
                continue
            code = lone_surrogate(row)
            if code is not None:
                issues.append(
                    FileIssue(str(path), n, f"{half_a_character(code)}: the row is refused")
                )
                continue
            twice = _field_twice(list(row))
            if twice is not None:
                was, name, _, _ = twice
                issues.append(
                    FileIssue(
                        str(path),
                        n,
                        f"the field {json.dumps(was)} is given twice{_spellings(was, name)}:"
                        " the row is refused",
                    )
                )
                continue
            yield n, row
        return
    reader = csv.DictReader(io.StringIO(text, newline=""))
    try:
        twice = _field_twice(list(reader.fieldnames or ()))
        if twice is not None:  # every row's value of that field would be a guess
            was, name, a, b = twice
            issues.append(
                FileIssue(
                    str(path),
                    reader.line_num,
                    f"the header names the field {json.dumps(was)} twice, in columns {a} and"
                    f" {b}{_spellings(was, name)}: none of this file's rows is loaded",
                    True,
                )
            )
            return
        for row in reader:
            n = reader.line_num
            if None in row:
                issues.append(FileIssue(str(path), n, "more values than the header has columns"))
                continue
            if any(v is None for v in row.values()):
                issues.append(FileIssue(str(path), n, "fewer values than the header has columns"))
                continue
            yield n, {k: (v if v != "" else None) for k, v in row.items() if k}
    except csv.Error as e:
        issues.append(FileIssue(str(path), reader.line_num, f"bad CSV: {e}"))


class _KeyTwice(ValueError):
    """A JSON object of a line names one key twice."""


class NotAJsonValue(ValueError):
    """A line holds `NaN`, `Infinity` or `-Infinity`: Python's `json` reads them, JSON has
    no such value, and a CRM field cannot hold one (`NaN` was loaded as the text "nan")."""


def no_json_constant(name: str) -> Any:
    """`json.loads`'s `parse_constant`: refuse `NaN` and the infinities (`NotAJsonValue`)."""
    raise NotAJsonValue(f"{name} is no JSON value (write a number, or null for none)")


def _no_key_twice(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object, refused when it names a key twice (`json` keeps the last value)."""
    row = dict(pairs)
    if len(row) != len(pairs):
        seen: set[str] = set()
        for key, _value in pairs:
            if key in seen:
                raise _KeyTwice(f"the field {json.dumps(key)} is given twice")
            seen.add(key)
    return row


def _field_twice(names: list[str]) -> tuple[str, str, int, int] | None:
    """The first field `names` gives twice, as field names match (in any case): its two
    spellings and places (from 1); None when each is given once. Empty CSV header cells
    are no field."""
    first: dict[str, int] = {}
    for n, name in enumerate(names, 1):
        if not name:
            continue
        key = name.lower()
        if key in first:
            return names[first[key] - 1], name, first[key], n
        first[key] = n
    return None


def _spellings(was: str, name: str) -> str:
    """The two spellings of a field given twice, when they differ (field names match in
    any case)."""
    return "" if was == name else f" (as {json.dumps(was)} and {json.dumps(name)})"


def load_files(crm: EmulatedCrm, files: list[tuple[str, Path]]) -> LoadReport:
    """Load (object, file) pairs in dependency order."""
    report = LoadReport()
    known = {name.lower(): name for name in (*crm.schema.objects, "CampaignMemberStatus")}

    def order(item: tuple[str, Path]) -> tuple[int, str]:
        name = known.get(item[0].lower(), item[0])
        return (LOAD_ORDER.index(name) if name in LOAD_ORDER else len(LOAD_ORDER), str(item[1]))

    for stem, path in sorted(files, key=order):
        sobject = known.get(stem.lower())
        if sobject is None:
            report.issues.append(
                FileIssue(
                    str(path),
                    0,
                    f"no object named {stem!r}: a file is named after its object (Lead.jsonl,"
                    " Contact.csv), or after a custom object org.json declares; none of its"
                    " rows is loaded",
                    True,
                )
            )
            continue
        read_issues: list[FileIssue] = []
        loaded, issues = crm.load_rows(sobject, read_rows(path, read_issues))
        report.issues += read_issues
        report.issues += [_issue(path, i) for i in issues]
        report.loaded[sobject] = report.loaded.get(sobject, 0) + loaded
    report.issues.sort(key=lambda i: (i.path, i.line))
    return report


def _issue(path: Path, issue: LoadIssue) -> FileIssue:
    return FileIssue(str(path), issue.line, issue.message)


def export_org(crm: EmulatedCrm) -> dict[str, Any]:
    """The org file of an export: the CRM's org settings, with its clock as it is now.

    Loaded with the records, it gives back the same CRM: its custom fields and objects,
    edition, duplicate rules, API limit and clock.
    """
    org = dict(crm.org)
    org.pop("clock", None)
    clock = crm.clock()
    if clock is not None:
        org["clock"] = format_datetime(clock)
    return org


def export_records(
    crm: EmulatedCrm, objects: Sequence[str] | None = None
) -> Iterator[tuple[str, list[str], list[dict[str, Any]]]]:
    """(object, field names, rows) for each object with records, deleted ones included."""
    names = list(objects) if objects else [*LOAD_ORDER, *sorted(crm.schema.objects)]
    seen: set[str] = set()
    for name in names:
        if name in seen:
            continue
        seen.add(name)
        if name == "CampaignMemberStatus":
            rows = [
                {"CampaignId": c.id, "Label": label, "HasResponded": resp, "IsDefault": default}
                for c in crm.records("Campaign", include_deleted=True)
                for label, resp, default in crm.member_statuses(c.id)
            ]
            if rows:
                yield name, ["CampaignId", "Label", "HasResponded", "IsDefault"], rows
            continue
        info = crm.schema.objects.get(name)
        if info is None or (info.custom and not crm.schema.custom_objects_allowed()):
            continue
        records = list(crm.records(name, include_deleted=True))
        if records:
            fields = list(info.fields)
            yield name, fields, [dict(r.fields) for r in records]
