"""`mrules crm`: the local CRM that stands in for Salesforce (load, export, changes, describe)."""

from __future__ import annotations

import csv
import datetime as dt
import functools
import io
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from mrules.atomic import OutputError, atomic_write
from mrules.cli.common import (
    CRM_PATH,
    EXIT_REJECTS,
    EXIT_STORE,
    EXIT_USAGE,
    PATH,
    STORE_PATH,
    NonEmptyPath,
    fail,
    interrupt_says,
    reads_only,
)
from mrules.crm.changes import apply_changes, read_changes
from mrules.crm.emulator import CrmFileError, CrmPathError, EmulatedCrm, default_crm_path
from mrules.crm.errors import CrmCallError
from mrules.crm.files import (
    CrmInputError,
    export_org,
    export_records,
    find_files,
    load_files,
    read_org,
)
from mrules.crm.model import Schema, SchemaError, parse_datetime
from mrules.diagnostics import plural
from mrules.loader import printable_path
from mrules.sqlitefiles import UNREADABLE, full_disk_advice, unreadable_reason
from mrules.storeapi import MEMORY, is_postgres_url

__all__ = ["COMMANDS"]


def _crm_options(f, *, salesforce: bool = False):  # type: ignore[no-untyped-def]
    f = click.option(
        "--store",
        "store_path",
        type=STORE_PATH,
        default="mrules.db",
        show_default=True,
        help="The state store the CRM sits beside (NAME.crm.db for NAME.db).",
    )(f)
    return click.option(
        "--crm",
        "crm_path",
        type=CRM_PATH,  # a folder is refused by the CRM file itself, with its message
        help="The CRM file, or `local`: the file beside the store, NAME.crm.db [default]"
        + (
            "; or `salesforce`: a real org, MRULES_SF_* variables."
            if salesforce
            else " (`salesforce`, a real org, is for `crm describe` and the sync)."
        ),
    )(f)


def _time(option: str, value: str | None) -> dt.datetime | None:
    if value is None:
        return None
    try:
        return parse_datetime(value)
    except ValueError:
        fail(
            f"{option} {value!r}: not a time with a zone in the years 1 to 9999 (UTC),"
            " e.g. 2026-11-02T09:00:00Z"
        )


def _local_crm_or_exit(crm_path: str | None) -> str | None:
    """`--crm` as the sync reads it: `local` is the file beside the store, `salesforce` a
    real org, which only `crm describe` reads (`crm load --crm salesforce` made a local
    CRM file named `salesforce` in the working folder). A file of either name: `./local`."""
    word = (crm_path or "").strip()
    if word == "local":
        return None
    if word == "salesforce":
        ctx = click.get_current_context(silent=True)
        name = ctx.info_name if ctx is not None else "this command"
        fail(
            f"--crm salesforce: `mrules crm {name}` works on a local CRM file (of the crm"
            " commands, only `crm describe` reads a real org; the sync commands write to"
            " one); give a local CRM file, or ./salesforce for a file of that name"
        )
    return crm_path


@contextmanager
def _open(
    crm_path: str | None,
    store_path: str,
    *,
    create: bool,
    org: dict[str, Any] | None = None,
    readonly: bool = False,
) -> Iterator[EmulatedCrm]:
    """The local CRM; `readonly`: opened to read only (no lock, no write, a read-only
    folder will do), for the commands that only read it."""
    crm_path = _local_crm_or_exit(crm_path)
    if not crm_path and is_postgres_url(store_path):
        # NAME.crm.db beside a URL is no file: the message named a path made of the URL,
        # its password included. The CRM file is given on its own beside such a store.
        fail(
            "a PostgreSQL store has no file for the CRM to sit beside: give the CRM file"
            " with --crm PATH"
        )
    if not crm_path and store_path == MEMORY:
        # `:memory:.crm.db` was made in the working folder, a file no sync would read
        fail(
            "--store :memory: has no file for the CRM to sit beside: give the store's file"
            " (the CRM is NAME.crm.db beside NAME.db), or the CRM file with --crm PATH"
        )
    path = Path(crm_path) if crm_path else default_crm_path(store_path)
    if not path.parent.is_dir():
        fail(
            f"{_shown(path)}: {_shown(path.parent)} does not exist; create it first (mrules"
            " creates no folders)"
        )
    try:
        if readonly:
            crm = EmulatedCrm.open_to_read(path)
        else:
            crm = EmulatedCrm.open(path, create=create, org=org)
    except SchemaError as e:
        fail(f"org.json: {e}")
    except CrmPathError as e:
        # missing, or a folder (NAME.crm.db made a folder): the command must be fixed
        fail(str(e), EXIT_USAGE)
    except CrmFileError as e:  # not a CRM, damaged, or it cannot be made (a read-only folder)
        fail(str(e), EXIT_STORE)
    try:
        yield crm
    except UNREADABLE as e:  # disk full, read-only, locked too long, damaged
        fail(
            f"{_shown(path)}: the CRM file failed: {unreadable_reason(e)}{full_disk_advice(e)}",
            EXIT_STORE,
        )
    finally:
        crm.close()


@click.group()
def crm() -> None:
    """The local CRM: a SQLite file that behaves like Salesforce.

    It holds leads, contacts, accounts, opportunities, campaigns, campaign
    members, users and tasks, with Salesforce's ids, timestamps and write
    rules. docs/crm.md describes it.

    \b
    Example:
      mrules crm load examples/getcloudy/crm --store getcloudy.db
      mrules crm export --store getcloudy.db --object Lead
    """


LOAD_INTERRUPTED = (
    "interrupted; the rows loaded so far are kept (each row is committed as it loads)."
    " The same command loads every file again from its first row: a row with an Id updates"
    " its record, a campaign member status is set again, and any other row without an Id"
    " makes a new record (a second copy, unless the CRM refuses it as a duplicate); to load"
    " the rest without copies, give only the rows not loaded yet"
)
"""What an interrupted `crm load` says: it does not resume, it loads again."""


@crm.command("load")
@click.argument("paths", nargs=-1, required=True, type=PATH)
@_crm_options
@click.option(
    "--edition",
    type=click.Choice(["standard", "growth", "plus", "advanced", "premium"]),
    help="The declared edition (Standard and Growth have no custom objects); overrides org.json.",
)
@click.option("--at", "at", metavar="TIME", help="Set the CRM's clock first (RFC 3339).")
def load(
    paths: tuple[str, ...],
    crm_path: str | None,
    store_path: str,
    edition: str | None,
    at: str | None,
) -> None:
    """Load exports into the CRM: JSONL or CSV, one file per object.

    Files are named after the object (`Lead.jsonl`, `Contact.csv`...) and
    use Salesforce API field names. A folder's `org.json` declares the
    edition, custom fields and objects, duplicate rules and the clock. A row
    whose Id is already in the CRM updates it; an Id that is not a Salesforce
    id is a label other rows and the changes file can refer to. Bad rows are
    reported with their line (exit 3); the others load.

    \b
    Example:
      mrules crm load examples/getcloudy/crm --store getcloudy.db

    Exit status (docs/exit-codes.md): 0 done; 3 some rows were refused (each
    printed with its line) and the others loaded; 2 bad options, a missing or
    unreadable file; 4 the CRM file cannot be read or written.
    """
    # Each row is committed as it loads, and a load never skips a row: what a second load
    # does with the rows loaded before is the rows' own Id's business.
    interrupt_says(LOAD_INTERRUPTED)
    when = _time("--at", at)
    again: list[Path] = []
    try:
        org_file, files = find_files(paths, again)
        org = read_org(org_file) if org_file else None
    except CrmInputError as e:
        fail(str(e))
    for path in again:  # rows without an Id loaded twice would be created twice
        click.echo(
            f"mrules: warning: {_shown(path)} is given more than once: loaded once", err=True
        )
    taken = {p.parent for _name, p in files} | ({org_file.parent} if org_file else set())
    for raw in paths:  # a folder of other files (the rules'): `loaded nothing`, and why
        if Path(raw).is_dir() and Path(raw) not in taken and not again:
            click.echo(
                f"mrules: warning: {_shown(raw)}: no file to load in this folder (files"
                " named after their object, Lead.jsonl or Contact.csv, and org.json)",
                err=True,
            )
    if edition is not None:
        org = {**(org or {}), "edition": edition}
    merged = _merged_org(crm_path, store_path, org)
    if merged is not None:
        try:  # a bad org file stops the load before anything is written
            Schema.from_org(merged)
        except SchemaError as e:
            fail(f"{org_file or 'org.json'}: {e}")
    with _open(crm_path, store_path, create=True, org=merged) as c:
        clock = when or (_time("org.json clock", org.get("clock")) if org else None)
        if clock is not None:
            c.set_clock(clock)
        report = load_files(c, files)
        for issue in report.issues:
            click.echo(f"{issue}", err=True)
        counts = ", ".join(f"{n} {name}" for name, n in report.loaded.items()) or "nothing"
        click.echo(f"loaded {counts} into {_shown(c.path)}")
        if report.issues:
            # A whole file not loaded (no such object, unreadable, not UTF-8) is one file.
            rows = sum(1 for i in report.issues if not i.whole)
            whole = len(report.issues) - rows
            said = [plural(rows, "row") + " refused"] if rows else []
            said += [plural(whole, "file") + " not loaded"] if whole else []
            click.echo(f"{', '.join(said)}; the others loaded", err=True)
            sys.exit(int(EXIT_REJECTS))


def _merged_org(
    crm_path: str | None, store_path: str, org: dict[str, Any] | None
) -> dict[str, Any] | None:
    """A new org.json replaces the settings it names, and keeps the others."""
    if org is None:
        return None
    path = Path(crm_path) if crm_path else default_crm_path(store_path)
    if not path.exists():
        return org
    try:
        with EmulatedCrm.open(path, create=False) as c:
            return {**c.org, **org}
    except (CrmFileError, SchemaError):
        return org


@crm.command("export")
@_crm_options
@click.option(
    "--out",
    "out",
    type=NonEmptyPath(file_okay=False),
    help="Write one file per object into this folder (it must exist) instead of stdout.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["jsonl", "csv"]),
    default="jsonl",
    show_default=True,
    help="File format with --out (stdout is always JSONL).",
)
@click.option("--object", "objects", multiple=True, help="Only this object (repeatable).")
def export(
    crm_path: str | None, store_path: str, out: str | None, fmt: str, objects: tuple[str, ...]
) -> None:
    """Export the CRM: every record, deleted ones too (IsDeleted), as exports to load back.

    Without --out, one JSON object a line on stdout, each with
    `attributes.type` naming its object.

    \b
    Example:
      mrules crm export --store getcloudy.db --object Lead
      mkdir -p crm-export   # --out takes a folder that exists
      mrules crm export --store getcloudy.db --out crm-export --format csv

    Exit status (docs/exit-codes.md): 0 done; 2 bad options, no such CRM file;
    4 the CRM file cannot be read, or an export cannot be written.
    """
    reads_only()
    if out is None and fmt != "jsonl":  # was: JSONL on stdout, the option unheeded
        fail(
            f"--format {fmt} is the format of the files --out writes: give --out FOLDER"
            " (standard output is always JSONL)"
        )
    if out is not None and not Path(out).is_dir():
        fail(f"--out {_shown(out)}: not a folder; create it first (mrules creates no folders)")
    with _open(crm_path, store_path, create=False, readonly=True) as c:
        unknown = [o for o in objects if o not in c.schema.objects and o != "CampaignMemberStatus"]
        if unknown:
            fail(f"--object: no object named {', '.join(unknown)}")
        stdout = sys.stdout
        if out is not None:  # what a load needs besides the records: custom fields, clock...
            target = Path(out) / "org.json"
            org = json.dumps(export_org(c), indent=2, sort_keys=True, ensure_ascii=False)
            _write(target, org + "\n")
            click.echo(f"{_shown(target)}: the org settings", err=True)
        for name, fields, rows in export_records(c, objects or None):
            if out is None:
                for row in rows:
                    record = {"attributes": {"type": name}, **_compact(row)}
                    stdout.write(json.dumps(record, ensure_ascii=False) + "\n")
                continue
            target = Path(out) / f"{name}.{fmt}"
            buf = io.StringIO()
            if fmt == "jsonl":
                for row in rows:
                    buf.write(json.dumps(_compact(row), ensure_ascii=False) + "\n")
            else:
                writer = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
                writer.writeheader()
                for row in rows:
                    writer.writerow({k: _csv(row.get(k)) for k in fields})
            _write(target, buf.getvalue())
            click.echo(f"{_shown(target)}: {plural(len(rows), 'record')}", err=True)


def _when(at: dt.datetime) -> str:
    """A change's time as the changes file and the sync write times: UTC with `Z`
    (`2026-11-03T10:00:00Z`; was `2026-11-03T10:00:00+00:00`), fractions kept."""
    return at.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def _write(target: Path, text: str) -> None:
    """Replace an export file whole (a full disk leaves the old file, never half a new one)."""
    try:
        atomic_write(target, text.encode("utf-8"))
    except OSError as e:
        raise OutputError(
            f"cannot write {_shown(target)}: {e.strerror or e}; the file was left as it was"
        ) from e


def _shown(path: str | Path) -> str:
    """A path as messages show it: bytes of its name that are not UTF-8 as `\\xNN`."""
    return printable_path(str(path))


def _compact(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if v is not None}


def _csv(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


@crm.command("apply-changes")
@click.argument("changes", type=NonEmptyPath(dir_okay=False))
@_crm_options
@click.option(
    "--until",
    "until",
    metavar="TIME",
    help="Apply the changes due by this time, and move the clock there [default: all of them].",
)
def apply_changes_cmd(
    changes: str, crm_path: str | None, store_path: str, until: str | None
) -> None:
    """Apply a file of timed CRM-side changes: what sales do in the CRM.

    Each line is a JSON object with `at` (when it happens) and `op`: update,
    owner, create, convert, opportunity, win, lose, add_member, delete,
    undelete, merge (docs/crm.md). Changes apply in time order, each at its own time
    on the CRM's clock; a change applied before is never applied again, so
    the same command can run every cycle. A change the CRM refuses is printed
    with its line and reason (exit 3).

    \b
    Example:
      mrules crm apply-changes examples/getcloudy/crm-changes.jsonl \\
        --store getcloudy.db --until 2026-11-05T00:00:00Z

    Exit status (docs/exit-codes.md): 0 done; 3 some changes were refused (each
    printed with its line) and the others applied; 2 bad options, a missing or
    unreadable file, no such CRM file; 4 the CRM file cannot be read or written.
    """
    when = _time("--until", until)
    path = Path(changes)
    shown = _shown(changes)
    if changes == "-" and not path.exists():  # it said "-: no such file"
        fail("-: crm apply-changes reads a file, not standard input (a file named - is ./-)")
    if not path.exists() or path.is_dir():  # a pipe (`<(...)`) is read like a file
        fail(f"{shown}: no such file")
    items, issues = read_changes(path)
    with _open(crm_path, store_path, create=False) as c:
        report = apply_changes(c, items, when)
    for line, reason in issues:
        click.echo(f"{shown}:{line}: {reason}" if line else f"{shown}: {reason}", err=True)
    for change, outcome in report.applied:
        click.echo(f"{shown}:{change.line}: {_when(change.at)} {outcome}")
    for change, reason in report.failed:
        click.echo(f"{shown}:{change.line}: refused: {reason}", err=True)
    click.echo(
        f"{len(report.applied)} applied, {len(report.failed)} refused, "
        f"{report.already} applied before, {report.pending} still to come",
        err=True,
    )
    if issues or report.failed:
        sys.exit(int(EXIT_REJECTS))


@crm.command("describe")
@click.argument("sobject")
@functools.partial(_crm_options, salesforce=True)
def describe(sobject: str, crm_path: str | None, store_path: str) -> None:
    """Print an object's fields as JSON: type, length, required, picklist values.

    \b
    Example:
      mrules crm describe Lead --store getcloudy.db

    Exit status (docs/exit-codes.md): 0 done; 2 no such object, no such CRM
    file, or MRULES_SF_* variables missing or unusable; 4 the CRM file cannot
    be read, the org failed, or standard output is closed.
    """
    reads_only()
    from mrules.crm.connect import CrmConnectError, crm_kind, open_crm

    if crm_kind(crm_path) == "salesforce":  # a real org: what its describe says
        try:
            org = open_crm("salesforce", store_path)
        except CrmConnectError as e:
            fail(str(e), e.exit_code)
        try:
            info = org.describe(sobject)
        except CrmCallError as e:
            fail(f"{e.code}: {e.message}", EXIT_USAGE if e.code == "NOT_FOUND" else EXIT_STORE)
        finally:
            org.close()
        click.echo(json.dumps(_describe_json(info), indent=2))
        return
    with _open(crm_path, store_path, create=False, readonly=True) as c:
        try:
            info = c.schema.objects.get(sobject) or c.describe(sobject)
            if info.custom and not c.schema.custom_objects_allowed():
                c.describe(sobject)
        except CrmCallError as e:
            known = sorted(c.schema.objects)
            if e.code == "INVALID_TYPE" and sobject.lower() not in {k.lower() for k in known}:
                fail(f"{e.code}: {e.message} The CRM's objects: {', '.join(known)}")
            fail(f"{e.code}: {e.message}")
        click.echo(json.dumps(_describe_json(info), indent=2))


def _describe_json(info: Any) -> dict[str, Any]:
    return {
        "name": info.name,
        "keyPrefix": info.key_prefix,
        "custom": info.custom,
        "createable": info.createable,
        "fields": [
            {
                "name": f.name,
                "type": f.type,
                "length": f.length,
                "required": f.required,
                "createable": f.createable,
                "updateable": f.updateable,
                "restrictedPicklist": f.restricted_picklist,
                "picklistValues": list(f.picklist_values),
                "referenceTo": list(f.reference_to),
            }
            for f in info.fields.values()
        ],
    }


COMMANDS = (crm,)
