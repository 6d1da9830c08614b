"""A local CRM in SQLite that behaves like Salesforce.

`EmulatedCrm` implements the CRM port (`mrules.crm.port.CrmPort`) over one
SQLite file: 18-character ids with the real key prefixes, system timestamps
on a clock the caller sets, writes checked and refused the way Salesforce
refuses them, a recycle bin, lead conversion and API calls counted. It also
has what only an emulator needs: loading exported rows (`load_rows`),
undelete, and labels (the names seed files give their records).

Every call is one SQLite transaction: a call either happens entirely or not
at all, and a record's failure inside a call leaves the others written.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import json
import os
import shlex
import sqlite3
import stat
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import orjson

from mrules.crm.errors import CrmCallError, CrmError
from mrules.crm.ids import InvalidId, make_id, to18
from mrules.crm.model import (
    DERIVED,
    LEAD_STATUSES,
    LOAD_WRITABLE,
    OPPORTUNITY_STAGES,
    SYSTEM_FIELDS,
    TASK_STATUSES,
    Schema,
    SchemaError,
    check_value,
    format_datetime,
    parse_datetime,
)
from mrules.crm.port import (
    MAX_BATCH,
    ApiUsage,
    Changes,
    ConvertResult,
    Cursor,
    Deleted,
    DeletedRecord,
    LeadConvert,
    ObjectInfo,
    Record,
    WriteResult,
    with_system_fields,
)
from mrules.loader import printable_path
from mrules.pathkind import special_file_kind
from mrules.sqlitefiles import (
    UNREADABLE,
    full_disk_advice,
    reading_uri,
    refuse_writes,
    unreadable_reason,
)
from mrules.storeapi import StoreError

__all__ = [
    "RECYCLE_DAYS",
    "CrmFileError",
    "CrmPathError",
    "EmulatedCrm",
    "LoadIssue",
    "default_crm_path",
]

RECYCLE_DAYS = 15
"""Days a deleted record stays in the recycle bin before it is purged."""
DEFAULT_API_LIMIT = 15_000
INTEGRATION_USER = "integration"
ADMIN_USER = "admin"
_DEFAULT_MEMBER_STATUSES = (("Sent", False, True), ("Responded", True, False))

_SCHEMA_SQL = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS record (
  id TEXT PRIMARY KEY,
  sobject TEXT NOT NULL,
  fields TEXT NOT NULL,
  email TEXT,
  is_deleted INTEGER NOT NULL DEFAULT 0,
  deleted_date TEXT,
  deleted_with TEXT,
  created_date TEXT NOT NULL,
  created_by TEXT NOT NULL,
  last_modified_date TEXT NOT NULL,
  last_modified_by TEXT NOT NULL,
  system_modstamp TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS record_modstamp ON record(sobject, system_modstamp, id);
CREATE INDEX IF NOT EXISTS record_email ON record(sobject, email);
CREATE TABLE IF NOT EXISTS deleted_log (id TEXT PRIMARY KEY, sobject TEXT NOT NULL,
  deleted_date TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS label (label TEXT PRIMARY KEY, id TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS member_status (campaign_id TEXT NOT NULL, label TEXT NOT NULL,
  has_responded INTEGER NOT NULL, is_default INTEGER NOT NULL, sort_order INTEGER NOT NULL,
  PRIMARY KEY (campaign_id, label));
CREATE TABLE IF NOT EXISTS applied_change (key TEXT PRIMARY KEY, at TEXT NOT NULL,
  outcome TEXT NOT NULL);
"""
_FORMAT = "mrules-crm 1"


class CrmFileError(StoreError):
    """The CRM file cannot be used: not an mrules CRM, damaged, or unreadable. A
    StoreError: where no command says otherwise, exit 4 with the message."""


class CrmPathError(CrmFileError):
    """The path names no CRM file to use (none there and none to be made, or a folder):
    the command must be fixed (exit 2). A file that cannot be made where a CRM is to be
    created (its folder read-only) is a CrmFileError: the file failed (exit 4)."""


_DAMAGE = (ValueError, TypeError, AttributeError, KeyError, OverflowError)
"""What decoding a value of the CRM file that is not what mrules wrote raises."""


@dataclass(frozen=True)
class LoadIssue:
    """A row a load refused: where it was and why."""

    line: int
    message: str


def default_crm_path(store: str | Path) -> Path:
    """The CRM file beside a store: `NAME.crm.db` for `NAME.db`."""
    p = Path(store)
    stem = p.name[:-3] if p.name.endswith(".db") else p.name
    return p.with_name(f"{stem}.crm.db")


def _stamp(value: dt.datetime) -> str:
    return format_datetime(value)


_STORE_APPLICATION_ID = 0x6D72756C
"""`PRAGMA application_id` of the state store (`mrules.store.APPLICATION_ID`)."""
_WHAT_TO_GIVE = (
    "give an mrules CRM file as --crm (`mrules crm load` creates one at a path where no file is)"
)


def _refuse_special(path: Path) -> None:
    """A named pipe or a device is no CRM file: refused by name (exit 2). SQLite reads a
    named pipe as an empty file, which was refused as "an empty file (0 bytes)"."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return  # missing, or not to be looked at: what opening it says
    if not stat.S_ISREG(mode) and not stat.S_ISDIR(mode):
        raise CrmPathError(
            f"{path}: is {special_file_kind(mode)}, not a CRM file: give the path of a CRM"
            " file (`mrules crm load` creates one at a path where no file is)"
        )


def _refuse_empty(path: Path) -> None:
    """An empty file is no CRM: refused, never taken over (docs/crm.md)."""
    try:
        size = path.stat().st_size
        wal = path.with_name(path.name + "-wal")
        wal_size = wal.stat().st_size if wal.exists() else 0
    except OSError as e:
        raise CrmFileError(f"{path}: cannot read the CRM file: {e.strerror or e}") from e
    if size == 0 and wal_size == 0:
        raise CrmFileError(
            f"{path}: an empty file (0 bytes), not an mrules CRM file: remove it, or"
            f" {_WHAT_TO_GIVE}"
        )


def _crm_format(conn: sqlite3.Connection, path: Path) -> str:
    """The format of an existing CRM file; CrmFileError, saying what the file is, otherwise.

    Only reads: nothing is written to a file that is not a CRM. The store's and the sync
    file's own marks are looked at first: an older mrules wrote CRM tables into them.
    """
    try:
        app_id = conn.execute("PRAGMA application_id").fetchone()[0]
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    except sqlite3.OperationalError as e:  # a full disk, an I/O error, a lock: not its content
        raise CrmFileError(f"{path}: cannot read the CRM file: {e}") from e
    except UNREADABLE as e:
        raise CrmFileError(
            f"{path}: not an mrules CRM file ({unreadable_reason(e)}): {_WHAT_TO_GIVE}"
        ) from e
    meta: dict[str, Any] = {}
    if "meta" in tables:
        with contextlib.suppress(sqlite3.Error):
            meta = dict(conn.execute("SELECT key, value FROM meta"))
    if app_id == _STORE_APPLICATION_ID or "schema_version" in meta:
        crm = default_crm_path(path)
        raise CrmFileError(
            f"{path}: this is the mrules state store, not a CRM file: give it as --store"
            f" (its CRM is {crm.name} beside it), or give the CRM file as --crm"
        )
    if "schema" in meta and {"link", "cursor"} <= tables:
        stem = path.name.removesuffix(".sync.db") if path.name.endswith(".sync.db") else "NAME"
        raise CrmFileError(
            f"{path}: this is an mrules sync file, not a CRM file: give the CRM file as"
            f" --crm ({stem}.crm.db beside it), or the store ({stem}.db) as --store"
        )
    fmt = meta.get("format")
    if isinstance(fmt, str) and fmt.startswith("mrules-crm"):
        if fmt != _FORMAT:
            raise CrmFileError(f"{path}: CRM file format {fmt!r} is not {_FORMAT!r}")
        _check_columns(conn, path, tables)
        return fmt
    what = "an empty SQLite database" if not tables else "a SQLite database"
    raise CrmFileError(f"{path}: {what}, not an mrules CRM file: {_WHAT_TO_GIVE}")


def _columns(conn: sqlite3.Connection, table: str) -> list[str]:
    return [r[1] for r in conn.execute(f"PRAGMA table_info({table})")]


@functools.cache
def _expected_columns() -> dict[str, list[str]]:
    """Each table's columns as `_SCHEMA_SQL` makes them (read off a database in memory)."""
    with contextlib.closing(sqlite3.connect(":memory:")) as mem:
        mem.executescript(_SCHEMA_SQL)
        names = [r[0] for r in mem.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        return {name: _columns(mem, name) for name in names}


def _check_columns(conn: sqlite3.Connection, path: Path, tables: set[str]) -> None:
    """A CRM file's tables have the columns mrules reads (a table it lacks is made later):
    a column renamed by damage to the schema's text (a byte overwritten) was an IndexError
    of the first read of a record (exit 70)."""
    try:
        for table, expected in _expected_columns().items():
            if table in tables:
                have = set(_columns(conn, table))
                missing = [c for c in expected if c not in have]
                if missing:
                    raise CrmFileError(
                        f"{printable_path(str(path))}: the CRM file is damaged (its table"
                        f" {table} has no column {missing[0]}); restore it from a backup"
                    )
    except UNREADABLE as e:
        raise CrmFileError(
            f"{path}: not an mrules CRM file ({unreadable_reason(e)}): {_WHAT_TO_GIVE}"
        ) from e


def _add_missing_tables(conn: sqlite3.Connection) -> None:
    """The tables a CRM file lacks (one written by an older mrules); only on a CRM file."""
    have = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
    statements = [s for s in _SCHEMA_SQL.split(";") if s.strip()]
    missing = [s for s in statements if s.split("EXISTS", 1)[1].split()[0] not in have]
    if missing:
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in missing:
                conn.execute(statement)
        except BaseException:
            with contextlib.suppress(sqlite3.Error):  # SQLite may have rolled back already
                conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")


def _read_missing_tables_as_empty(conn: sqlite3.Connection) -> None:
    """The tables a CRM file lacks (one written by an older mrules), to a reader: made
    empty in `temp`, which the file never sees (a read-only open writes nothing and
    migrates nothing); `crm load` or a sync adds them to the file itself."""
    have = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    for statement in _SCHEMA_SQL.split(";"):
        head, _, rest = statement.partition("CREATE TABLE IF NOT EXISTS ")
        if rest and not head.strip() and rest.split()[0] not in have:
            conn.execute("CREATE TEMP TABLE " + rest)


def _create_schema(conn: sqlite3.Connection, path: Path) -> str:
    """Make a new file a CRM: its tables and its format, in one transaction."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        if conn.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchone() is not None:
            conn.execute("ROLLBACK")  # made by someone else meanwhile: what is it?
            return _crm_format(conn, path)
        for statement in _SCHEMA_SQL.split(";"):
            if statement.strip():
                conn.execute(statement)
        conn.execute("INSERT INTO meta(key, value) VALUES ('format', ?)", (_FORMAT,))
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    return _FORMAT


def _remove_made(path: Path) -> None:
    """Remove a CRM file this command made and could not give a schema (a full disk,
    Ctrl-C): left, an empty file that `crm load` refuses to take over, where the message
    said to run the same command again."""
    for suffix in ("", "-wal", "-shm"):
        with contextlib.suppress(OSError):
            path.with_name(path.name + suffix).unlink()


def _cannot_create(path: Path, e: BaseException) -> str:
    """Why a new CRM file could not be made, and what to do."""
    why = f"{path}: cannot create the CRM file: {unreadable_reason(e)}"
    if full_disk_advice(e):  # not a matter of the folder's permissions
        return why + full_disk_advice(e)
    folder = path.parent
    if not os.access(folder, os.W_OK):  # read-only, or not the user's to write
        return (
            f"{why}; its folder {folder} is read-only or not writable: make it writable,"
            " or give a path in another folder"
        )
    return f"{why}; check that its folder can be written, then run the same command again"


def _no_such_file(p: Path) -> str:
    """A missing CRM file, and the command that makes it from exports (its path quoted
    for a shell: a folder name with a space is typed in as shown)."""
    return (
        f"{p}: no such CRM file (make it from the CRM's exports: "
        f"`mrules crm load FOLDER --crm {shlex.quote(str(p))}`, FOLDER holding Lead.csv, "
        "Contact.csv...)"
    )


class EmulatedCrm:
    """The local CRM; see the module docstring and docs/crm.md."""

    def __init__(self, conn: sqlite3.Connection, path: Path, schema: Schema | None = None) -> None:
        self._conn = conn
        self.path = path
        if schema is None:
            try:
                schema = Schema.from_org(json.loads(self._meta("org") or "{}"))
            except (SchemaError, ValueError) as e:
                raise CrmFileError(
                    f"{path}: the org settings saved in this CRM are not valid ({e}): load a"
                    " corrected org.json with `mrules crm load`"
                ) from e
        self._schema = schema
        self._calls = 0
        self._readonly = False  # `open_to_read`: calls are not counted (nothing is written)
        self._loading_deleted = False
        self._users: dict[str, str] = {}

    # -- opening -------------------------------------------------------------------------------

    @classmethod
    def open_to_read(cls, path: str | Path) -> EmulatedCrm:
        """Open an existing CRM file to read it only (`crm export`, `crm describe`).

        It takes no writer's lock (a sync or a load holding the file does not make it
        wait), writes nothing (no journal mode, no users, no API calls counted) and
        works in a folder it cannot write to (`mrules.sqlitefiles.reading_uri`).
        """
        p = Path(path)
        if p.is_dir():
            raise CrmPathError(f"{p}: is a folder, not a CRM file")
        if not p.exists():
            raise CrmPathError(_no_such_file(p))
        _refuse_special(p)
        _refuse_empty(p)
        try:
            conn = sqlite3.connect(reading_uri(p), uri=True, isolation_level=None, timeout=30)
            conn.set_authorizer(refuse_writes)
        except sqlite3.Error as e:
            raise CrmFileError(f"{p}: cannot open the CRM file: {e}") from e
        try:
            _crm_format(conn, p)
            _read_missing_tables_as_empty(conn)  # a CRM of an older mrules
            crm = cls(conn, p)
        except UNREADABLE as e:
            conn.close()
            raise CrmFileError(f"{p}: cannot read the CRM file: {unreadable_reason(e)}") from e
        except BaseException:
            conn.close()
            raise
        crm._readonly = True
        return crm

    @classmethod
    def open(
        cls, path: str | Path, *, create: bool = True, org: Mapping[str, Any] | None = None
    ) -> EmulatedCrm:
        """Open a CRM file, or create one where no file is; `org` replaces the org settings.

        An existing file is opened only when it is an mrules CRM (its `meta` table says
        so): anything else (the state store, a sync file, another database, an empty
        file) is refused with `CrmFileError` before anything is written to it.
        `SchemaError` when `org` is not a valid org file (docs/crm.md), before anything
        is written either.
        """
        p = Path(path)
        if p.is_dir():
            raise CrmPathError(f"{p}: is a folder, not a CRM file")
        exists = p.exists()
        if not exists and not create:
            raise CrmPathError(_no_such_file(p))
        schema = Schema.from_org(org) if org is not None else None  # before any write
        if exists:
            _refuse_special(p)
            _refuse_empty(p)
        try:
            conn = sqlite3.connect(p, isolation_level=None, timeout=30)
        except sqlite3.Error as e:
            if not exists:
                _remove_made(p)
                raise CrmFileError(_cannot_create(p, e)) from e
            raise CrmFileError(f"{p}: cannot open the CRM file: {e}") from e
        except BaseException:  # Ctrl-C, SIGTERM
            if not exists:
                _remove_made(p)
            raise
        try:
            fmt = _crm_format(conn, p) if exists else None  # reads only
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            if fmt is None:
                fmt = _create_schema(conn, p)
            _add_missing_tables(conn)  # a CRM of an older mrules
            crm = cls(conn, p, schema)
        except UNREADABLE as e:
            conn.close()
            if not exists:
                _remove_made(p)
                raise CrmFileError(_cannot_create(p, e)) from e
            raise CrmFileError(
                f"{p}: cannot use the CRM file: {unreadable_reason(e)}{full_disk_advice(e)}"
            ) from e
        except BaseException:  # Ctrl-C, SIGTERM
            conn.close()
            if not exists:
                _remove_made(p)
            raise
        try:
            with crm._tx():
                if org is not None:
                    clock = org.get("clock")
                    if isinstance(clock, str) and crm._meta("clock") is None:
                        crm._set_meta("clock", _stamp(parse_datetime(clock)))
                    crm._set_meta("org", json.dumps(org, sort_keys=True))
                crm._ensure_users()
        except sqlite3.DatabaseError as e:  # locked by another process past the timeout, ...
            conn.close()
            raise CrmFileError(f"{p}: cannot write the CRM file: {e}") from e
        except BaseException:
            conn.close()
            raise
        return crm

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> EmulatedCrm:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def schema(self) -> Schema:
        return self._schema

    @property
    def org(self) -> dict[str, Any]:
        return json.loads(self._meta("org") or "{}")

    # -- meta, clock, transactions ---------------------------------------------------------------

    def _meta(self, key: str) -> str | None:
        row = self._conn.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return row[0] if row else None

    def _set_meta(self, key: str, value: str) -> None:
        self._conn.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (key, value))

    @contextlib.contextmanager
    def _tx(self) -> Iterator[None]:
        if self._conn.in_transaction:
            yield
            return
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            # SQLite rolls back by itself on some errors (a full disk: SQLITE_FULL), where
            # a second ROLLBACK fails and its error ("no transaction is active") hid theirs.
            with contextlib.suppress(sqlite3.Error):
                self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")

    def clock(self) -> dt.datetime | None:
        """The clock as last set, None before any clock is set (`now` is then the wall clock)."""
        value = self._meta("clock")
        return self._time(value, "its clock") if value is not None else None

    def now(self) -> dt.datetime:
        """The CRM's clock: the last time set, else the wall clock (to the millisecond)."""
        value = self._meta("clock")
        if value is not None:
            return self._time(value, "its clock")
        now = dt.datetime.now(dt.UTC)
        return now.replace(microsecond=now.microsecond // 1000 * 1000)

    def set_clock(self, when: dt.datetime) -> dt.datetime:
        """Move the clock to `when`; it never goes back (a SystemModstamp never decreases)."""
        if when.tzinfo is None:
            raise ValueError("the clock needs an aware datetime")
        current = self.clock()
        if current is not None and current >= when:
            return current
        with self._tx():
            self._set_meta("clock", _stamp(when))
        return self.now()

    def _count_call(self) -> None:
        day = self.now().date().isoformat()
        used = self._meta_count(f"api:{day}")
        limit = int(self.org.get("api_daily_limit", DEFAULT_API_LIMIT))
        if used >= limit:
            raise CrmCallError(
                "REQUEST_LIMIT_EXCEEDED",
                f"TotalRequests Limit exceeded ({used}/{limit} today).",
                transient=True,
                http_status=403,
            )
        self._calls += 1
        if self._readonly:
            return
        with self._tx():
            self._set_meta(f"api:{day}", str(used + 1))

    def api_usage(self) -> ApiUsage:
        """Calls counted today (on the CRM's clock) against `api_daily_limit` (default 15,000)."""
        day = self.now().date().isoformat()
        return ApiUsage(
            used=self._meta_count(f"api:{day}"),
            limit=int(self.org.get("api_daily_limit", DEFAULT_API_LIMIT)),
            calls_made=self._calls,
        )

    # -- ids, labels, users ---------------------------------------------------------------------

    def _new_id(self, info: ObjectInfo) -> str:
        key = f"counter:{info.key_prefix}"
        n = self._meta_count(key)
        while True:
            n += 1
            new = make_id(info.key_prefix, n)
            if self._row(new) is None:
                break
        self._set_meta(key, str(n))
        return new

    def label_id(self, label: str) -> str | None:
        row = self._conn.execute("SELECT id FROM label WHERE label=?", (label,)).fetchone()
        return row[0] if row else None

    def set_label(self, label: str, id18: str) -> None:
        with self._tx():
            self._conn.execute("INSERT OR REPLACE INTO label VALUES (?, ?)", (label, id18))

    def labels(self) -> dict[str, str]:
        return dict(self._conn.execute("SELECT label, id FROM label ORDER BY label"))

    def _ensure_users(self) -> None:
        for label, first, last in (
            (INTEGRATION_USER, "Integration", "User"),
            (ADMIN_USER, "Admin", "User"),
        ):
            if self.label_id(label) is None:
                info = self._schema.objects["User"]
                new = self._new_id(info)
                email = f"{label}@crm.local"
                values = {
                    "Username": email,
                    "Email": email,
                    "FirstName": first,
                    "LastName": last,
                    "Alias": label[:8],
                    "IsActive": True,
                }
                when = _stamp(self.now())
                self._conn.execute(
                    "INSERT INTO record(id, sobject, fields, email, created_date, created_by,"
                    " last_modified_date, last_modified_by, system_modstamp)"
                    " VALUES (?, 'User', ?, ?, ?, ?, ?, ?, ?)",
                    (new, json.dumps(values), email, when, new, when, new, when),
                )
                self._conn.execute("INSERT INTO label VALUES (?, ?)", (label, new))

    @property
    def integration_user_id(self) -> str:
        if INTEGRATION_USER not in self._users:
            self._users[INTEGRATION_USER] = self.label_id(INTEGRATION_USER) or ""
        return self._users[INTEGRATION_USER]

    @property
    def admin_user_id(self) -> str:
        if ADMIN_USER not in self._users:
            self._users[ADMIN_USER] = self.label_id(ADMIN_USER) or ""
        return self._users[ADMIN_USER]

    # -- reading ------------------------------------------------------------------------------

    def _row(self, id18: str) -> sqlite3.Row | None:
        cur = self._conn.execute("SELECT * FROM record WHERE id=?", (id18,))
        cur.row_factory = sqlite3.Row
        return cur.fetchone()

    def _object(self, sobject: str) -> ObjectInfo:
        """The object, or CrmCallError INVALID_TYPE (unknown, or custom on Standard)."""
        info = self._find_object(sobject)
        if info is None:
            raise CrmCallError(
                "INVALID_TYPE", f"sObject type '{sobject}' is not supported.", transient=False
            )
        if info.custom and not self._schema.custom_objects_allowed():
            raise CrmCallError(
                "INVALID_TYPE", self._edition_message(info.name), transient=False, http_status=400
            )
        return info

    def _edition_message(self, name: str) -> str:
        return (
            f"sObject type '{name}' is not supported: custom objects are not available on "
            f"the {self._schema.edition.capitalize()} edition this CRM declares."
        )

    def _find_object(self, sobject: str) -> ObjectInfo | None:
        info = self._schema.objects.get(sobject)
        if info is None:
            for name, candidate in self._schema.objects.items():
                if name.lower() == str(sobject).lower():
                    return candidate
        return info

    def _record(self, row: sqlite3.Row, fields: Sequence[str] | None = None) -> Record:
        info = self._schema.objects.get(row["sobject"])
        values = self._fields(row)
        system = self._system(row)
        for name in _TIMES:
            self._time(system[name], f"the {name} of record {_id_of(row)}")
        for name in ("Id", "CreatedById", "LastModifiedById"):
            if type(system[name]) is not str:
                raise self._damaged(
                    f"the {name} of record {_id_of(row)}",
                    TypeError(f"not text: {str(system[name])[:40]!r}"),
                )
        names = fields if fields is not None else (info.fields if info else values)
        out: dict[str, Any] = {
            name: system[name] if name in system else values.get(name) for name in names
        }
        out["Id"] = row["id"]
        return Record(
            sobject=row["sobject"],
            id=row["id"],
            fields=out,
            system_modstamp=parse_datetime(row["system_modstamp"]),  # checked above
            is_deleted=bool(row["is_deleted"]),
        )

    @staticmethod
    def _value(row: sqlite3.Row, values: Mapping[str, Any], name: str) -> Any:
        system = EmulatedCrm._system(row)
        if name in system:
            return system[name]
        return values.get(name)

    @staticmethod
    def _system(row: sqlite3.Row) -> dict[str, Any]:
        """The system fields of a stored record, from its columns."""
        return {
            "Id": row["id"],
            "IsDeleted": bool(row["is_deleted"]),
            "CreatedDate": row["created_date"],
            "CreatedById": row["created_by"],
            "LastModifiedDate": row["last_modified_date"],
            "LastModifiedById": row["last_modified_by"],
            "SystemModstamp": row["system_modstamp"],
        }

    def _damaged(self, what: str, e: BaseException) -> CrmFileError:
        reason = str(e).splitlines()[0][:80] if str(e) else type(e).__name__
        return CrmFileError(
            f"{printable_path(str(self.path))}: the CRM file is damaged ({what}: {reason});"
            " restore it from a backup"
        )

    def _fields(
        self, row: sqlite3.Row | tuple[Any, ...], column: str | int = "fields"
    ) -> dict[str, Any]:
        """A stored record's fields: a JSON object, else the file is damaged (exit 4)."""
        try:
            fields = _loads(row[column])  # type: ignore[index]
            if not isinstance(fields, dict):
                raise TypeError("not a JSON object")
        except _DAMAGE as e:
            raise self._damaged(f"the fields of record {_id_of(row)}", e) from None
        return fields

    def _meta_count(self, key: str) -> int:
        """A count kept in `meta` (API calls of a day, the last number of an id prefix)."""
        value = self._meta(key)
        try:
            n = int(value or 0)
            if not 0 <= n <= 2**53:
                raise ValueError(f"not a count: {n}")
        except _DAMAGE as e:
            raise self._damaged(f"its {key}", e) from None
        return n

    def _time(self, value: object, what: str) -> dt.datetime:
        try:
            return parse_datetime(value)  # type: ignore[arg-type]
        except _DAMAGE as e:
            raise self._damaged(what, e) from None

    def get(self, id_: str) -> Record | None:
        """One record by id, deleted or not (no API call counted)."""
        try:
            row = self._row(to18(id_))
        except InvalidId:
            return None
        return self._record(row) if row is not None else None

    def records(self, sobject: str, *, include_deleted: bool = False) -> Iterator[Record]:
        """Every record of an object, oldest id first (no API call counted)."""
        sql = "SELECT * FROM record WHERE sobject=?" + (
            "" if include_deleted else " AND NOT is_deleted"
        )
        cur = self._conn.execute(sql + " ORDER BY created_date, id", (sobject,))
        cur.row_factory = sqlite3.Row
        for row in cur.fetchall():
            yield self._record(row)

    def describe(self, sobject: str) -> ObjectInfo:
        self._count_call()
        return self._object(sobject)

    def _check_fields(
        self, info: ObjectInfo, fields: Sequence[str] | None, missing_ok: bool = False
    ) -> list[str] | None:
        if fields is None:
            return None
        out = []
        for name in fields:
            canon = self._canonical(info, name)
            if canon is None and missing_ok:
                continue
            if canon is None:
                raise CrmCallError(
                    "INVALID_FIELD",
                    f"No such column '{name}' on entity '{info.name}'.",
                    transient=False,
                    http_status=400,
                )
            out.append(canon)
        return with_system_fields(out)

    def query_changed(
        self,
        sobject: str,
        since: Cursor | None,
        until: dt.datetime,
        fields: Sequence[str] | None = None,
        *,
        include_deleted: bool = True,
        limit: int = 2000,
        missing_ok: bool = False,
    ) -> Changes:
        self._count_call()
        info = self._object(sobject)
        names = self._check_fields(info, fields, missing_ok)
        self._purge()
        args: list[Any] = [info.name, _stamp(until)]
        sql = "SELECT * FROM record WHERE sobject=? AND system_modstamp <= ?"
        if since is not None:
            ts = _stamp(since.modstamp)
            sql += " AND (system_modstamp > ? OR (system_modstamp = ? AND id > ?))"
            args += [ts, ts, since.last_id]
        if not include_deleted:
            sql += " AND NOT is_deleted"
        sql += " ORDER BY system_modstamp, id LIMIT ?"
        args.append(limit + 1)
        cur = self._conn.execute(sql, args)
        cur.row_factory = sqlite3.Row
        rows = cur.fetchall()
        done = len(rows) <= limit
        records = [self._record(r, names) for r in rows[:limit]]
        cursor = since
        if records:
            cursor = Cursor(records[-1].system_modstamp, records[-1].id)
        return Changes(records=records, cursor=cursor, done=done)

    def get_deleted(self, sobject: str, start: dt.datetime, end: dt.datetime) -> Deleted:
        self._count_call()
        info = self._object(sobject)
        self._purge()
        earliest = self.now() - dt.timedelta(days=RECYCLE_DAYS)
        rows = self._conn.execute(
            "SELECT id, deleted_date FROM deleted_log WHERE sobject=? AND deleted_date >= ?"
            " AND deleted_date <= ? AND deleted_date >= ? ORDER BY deleted_date, id",
            (info.name, _stamp(start), _stamp(end), _stamp(earliest)),
        ).fetchall()
        return Deleted(
            records=[
                DeletedRecord(r[0], self._time(r[1], f"the deletion time of {r[0]}")) for r in rows
            ],
            earliest_date_available=earliest,
            latest_date_covered=min(end, self.now()),
        )

    def find(
        self,
        sobject: str,
        field: str,
        values: Sequence[str],
        fields: Sequence[str] | None = None,
        *,
        missing_ok: bool = False,
    ) -> list[Record]:
        self._count_call()
        info = self._object(sobject)
        names = self._check_fields(info, fields, missing_ok)
        canon = self._canonical(info, field)
        if canon is None:
            raise CrmCallError(
                "INVALID_FIELD",
                f"No such column '{field}' on entity '{info.name}'.",
                transient=False,
            )
        wanted = {str(v).strip().lower() for v in values if v is not None}
        if canon == "Email":
            out = []
            for chunk in _chunks(sorted(wanted), 500):
                marks = ",".join("?" * len(chunk))
                cur = self._conn.execute(
                    "SELECT * FROM record WHERE sobject=? AND NOT is_deleted"
                    f" AND email IN ({marks}) ORDER BY created_date, id",
                    (info.name, *chunk),
                )
                cur.row_factory = sqlite3.Row
                out += [self._record(r, names) for r in cur.fetchall()]
            return out
        return [
            self._record_with(r, names)
            for r in self.records(info.name)
            if str(r.fields.get(canon) or "").strip().lower() in wanted
        ]

    def _record_with(self, record: Record, names: list[str] | None) -> Record:
        if names is None:
            return record
        return Record(
            record.sobject,
            record.id,
            {n: record.fields.get(n) for n in names},
            record.system_modstamp,
            record.is_deleted,
        )

    # -- writing ------------------------------------------------------------------------------

    @staticmethod
    def _canonical(info: ObjectInfo, name: str) -> str | None:
        if name in info.fields:
            return name
        low = str(name).lower()
        for candidate in info.fields:
            if candidate.lower() == low:
                return candidate
        return None

    def create(
        self,
        sobject: str,
        records: Sequence[Mapping[str, Any]],
        *,
        allow_duplicates: bool = False,
    ) -> list[WriteResult]:
        self._batch(records)
        self._count_call()
        with self._tx():
            return [self._one(self._create, sobject, r, allow_duplicates) for r in records]

    def update(
        self,
        sobject: str,
        records: Sequence[Mapping[str, Any]],
        *,
        allow_duplicates: bool = False,
    ) -> list[WriteResult]:
        self._batch(records)
        self._count_call()
        with self._tx():
            return [self._one(self._update, sobject, r, allow_duplicates) for r in records]

    def upsert(
        self, sobject: str, external_id_field: str, records: Sequence[Mapping[str, Any]]
    ) -> list[WriteResult]:
        self._batch(records)
        self._count_call()
        info = self._object(sobject)
        ext = self._canonical(info, external_id_field)
        if ext is None or not info.fields[ext].external_id:
            raise CrmCallError(
                "INVALID_FIELD",
                f"Field {external_id_field} is not an External ID or Id field on {info.name}",
                transient=False,
                http_status=400,
            )
        out = []
        for r in records:
            key = r.get(ext)
            matches = self.find_local(info.name, ext, key) if key else []
            if not key:
                out.append(_failed(CrmError("MISSING_ARGUMENT", f"{ext} not specified", (ext,))))
            elif len(matches) > 1:
                out.append(
                    _failed(
                        CrmError(
                            "DUPLICATE_EXTERNAL_ID",
                            f"{ext}: more than one record found for external id field: {matches}",
                            (ext,),
                        )
                    )
                )
            elif matches:
                res = self._one(self._update, info.name, {**r, "Id": matches[0]}, False)
                out.append(res)
            else:
                out.append(self._one(self._create, info.name, r, False))
        return out

    def delete(self, ids: Sequence[str]) -> list[WriteResult]:
        self._batch(ids)
        self._count_call()
        with self._tx():
            return [self._one_id(self._delete, i) for i in ids]

    def undelete(self, ids: Sequence[str]) -> list[WriteResult]:
        """Bring records (and what was deleted with them) back from the recycle bin."""
        self._batch(ids)
        return [self._one_id(self._undelete, i) for i in ids]

    @staticmethod
    def _batch(records: Sequence[Any]) -> None:
        if len(records) > MAX_BATCH:
            raise CrmCallError(
                "EXCEEDED_ID_LIMIT",
                f"record limit reached. cannot submit more than {MAX_BATCH} records into this call",
                transient=False,
                http_status=400,
            )

    @contextlib.contextmanager
    def _record_tx(self) -> Iterator[None]:
        """One record of a call: a savepoint inside the call's transaction, else its own."""
        if not self._conn.in_transaction:
            with self._tx():
                yield
            return
        self._conn.execute("SAVEPOINT record")
        try:
            yield
        except BaseException:
            self._conn.execute("ROLLBACK TO record")
            self._conn.execute("RELEASE record")
            raise
        self._conn.execute("RELEASE record")

    def _one(self, fn: Any, sobject: str, values: Mapping[str, Any], allow: bool) -> WriteResult:
        try:
            with self._record_tx():
                return fn(sobject, values, allow)
        except CrmError as e:
            return _failed(e)
        except CrmCallError as e:
            return _failed(CrmError(e.code, e.message))

    def _one_id(self, fn: Any, id_: str) -> WriteResult:
        try:
            with self._record_tx():
                return fn(id_)
        except CrmError as e:
            return _failed(e)

    def _create(
        self,
        sobject: str,
        values: Mapping[str, Any],
        allow_duplicates: bool,
        *,
        load: bool = False,
        by: str | None = None,
        new_id: str | None = None,
        modified_by: str | None = None,
    ) -> WriteResult:
        info = self._writable_object(sobject)
        if "Id" in values and not load:
            raise CrmError(
                "INVALID_FIELD_FOR_INSERT_UPDATE", "cannot specify Id in an insert call", ("Id",)
            )
        given = self._clean(info, values, creating=True, load=load)
        merged = self._defaults(info, given, by or self.integration_user_id)
        self._validate(info, merged, given, None, allow_duplicates)
        if info.name == "Task" and not load:
            self._check_task_who(given)
        now = self.now()
        created = given.pop("CreatedDate", None) if load else None
        modified = given.pop("LastModifiedDate", None) if load else None
        merged.pop("CreatedDate", None)
        merged.pop("LastModifiedDate", None)
        stamp_c = created or modified or _stamp(now)
        stamp_m = modified or created or _stamp(now)
        new = new_id or self._new_id(info)
        user = by or self.integration_user_id
        self._conn.execute(
            "INSERT INTO record(id, sobject, fields, email, created_date, created_by,"
            " last_modified_date, last_modified_by, system_modstamp)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                new,
                info.name,
                _dumps(_nonnull(merged)),
                _email(merged),
                stamp_c,
                user,
                stamp_m,
                modified_by or user,
                max(stamp_m, _stamp(now)) if not load else stamp_m,
            ),
        )
        self._after_write(info, new, merged, None)
        return WriteResult(id=new, success=True, created=True)

    def _update(
        self,
        sobject: str,
        values: Mapping[str, Any],
        allow_duplicates: bool,
        *,
        load: bool = False,
        by: str | None = None,
        created_by: str | None = None,
        modified_by: str | None = None,
    ) -> WriteResult:
        info = self._writable_object(sobject)
        row = self._live_row(values.get("Id"), info)
        old = self._fields(row)
        if info.name == "Lead" and old.get("IsConverted") and not load:
            raise CrmError("CANNOT_UPDATE_CONVERTED_LEAD", "cannot reference converted lead")
        given = self._clean(info, {k: v for k, v in values.items() if k != "Id"}, False, load, old)
        created = given.pop("CreatedDate", None) if load else None
        modified = given.pop("LastModifiedDate", None) if load else None
        if load:  # the audit fields a load gives are kept (docs/crm.md#loading-exports)
            audit: dict[str, Any] = {
                "created_date": created,
                "created_by": created_by,
                "last_modified_date": modified,
                "last_modified_by": modified_by,
            }
            audit = {k: v for k, v in audit.items() if v is not None and row[k] != v}
            if all(old.get(k) == v for k, v in given.items()):  # the fields are as loaded
                if audit:
                    self._set_audit(row["id"], audit)
                return WriteResult(id=row["id"], success=True)
        merged = {**old, **given}
        self._validate(info, merged, given, row["id"], allow_duplicates)
        if info.name == "Task" and not load:
            self._check_task_who(given)
        merged = {**old, **given}
        self._derive(info, merged, given, old)
        stamp = modified or _stamp(self.now())
        self._conn.execute(
            "UPDATE record SET fields=?, email=?, last_modified_date=?, last_modified_by=?,"
            " system_modstamp=max(system_modstamp, ?) WHERE id=?",
            (
                _dumps(_nonnull(merged)),
                _email(merged),
                stamp,
                by or self.integration_user_id,
                stamp,
                row["id"],
            ),
        )
        if load and audit:
            self._set_audit(row["id"], audit)
        self._after_write(info, row["id"], merged, old)
        return WriteResult(id=row["id"], success=True)

    def _set_audit(self, id18: str, columns: Mapping[str, Any]) -> None:
        """Set audit columns (created_date, created_by...) of a loaded record as given."""
        names = sorted(columns)
        self._conn.execute(
            f"UPDATE record SET {', '.join(f'{n}=?' for n in names)} WHERE id=?",
            (*(columns[n] for n in names), id18),
        )

    def _writable_object(self, sobject: str) -> ObjectInfo:
        info = self._find_object(sobject)
        if info is None:
            raise CrmError("INVALID_TYPE", f"sObject type '{sobject}' is not supported.")
        if info.custom and not self._schema.custom_objects_allowed():
            raise CrmError("INVALID_TYPE", self._edition_message(info.name))
        return info

    def _live_row(self, id_: Any, info: ObjectInfo | None = None) -> sqlite3.Row:
        if not id_:
            raise CrmError("MISSING_ARGUMENT", "Id not specified in an update call", ("Id",))
        try:
            id18 = to18(str(id_))
        except InvalidId:
            raise CrmError("MALFORMED_ID", f"malformed id {id_}", ("Id",)) from None
        if info is not None and id18[:3] != info.key_prefix:
            raise CrmError(
                "MALFORMED_ID", f"{info.name} ID: id value of incorrect type: {id_}", ("Id",)
            )
        row = self._row(id18)
        if row is None:
            raise CrmError("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id", ("Id",))
        if row["is_deleted"]:
            raise CrmError("ENTITY_IS_DELETED", "entity is deleted", ("Id",))
        return row

    def _clean(
        self,
        info: ObjectInfo,
        values: Mapping[str, Any],
        creating: bool,
        load: bool,
        old: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        out: dict[str, Any] = {}
        readonly: list[str] = []
        for name, value in values.items():
            if name == "attributes":
                continue
            canon = self._canonical(info, name)
            if canon is None:
                raise CrmError(
                    "INVALID_FIELD", f"No such column '{name}' on sobject of type {info.name}"
                )
            f = info.fields[canon]
            if load and canon in DERIVED:
                continue
            allowed = f.createable if creating else f.updateable
            if load and canon in LOAD_WRITABLE:
                allowed = True
            if canon == "Id" or not allowed:
                if load and old is not None and check_value(f, value) == old.get(canon):
                    continue  # a reload repeats the value it cannot change
                readonly.append(canon)
                continue
            out[canon] = check_value(f, value)
        if readonly:
            verb = "create" if creating else "update"
            raise CrmError(
                "INVALID_FIELD_FOR_INSERT_UPDATE",
                f"Unable to {verb} fields: {', '.join(readonly)}. Please check the security "
                "settings of this field and verify that it is read/write for your profile or "
                "permission set.",
                tuple(readonly),
            )
        return out

    def _defaults(self, info: ObjectInfo, given: dict[str, Any], owner: str) -> dict[str, Any]:
        merged = dict(given)
        for name, f in info.fields.items():
            if name in merged and merged[name] is not None:
                continue
            if f.type == "boolean" and name not in SYSTEM_FIELDS:
                merged[name] = name == "IsActive"
            elif name == "OwnerId":
                merged[name] = owner
        defaults = {
            ("Lead", "Status"): _first(LEAD_STATUSES),
            ("Task", "Status"): "Not Started",
            ("Task", "Priority"): "Normal",
            ("Group", "Type"): "Queue",
        }
        for (obj, name), value in defaults.items():
            if info.name == obj and merged.get(name) is None:
                merged[name] = value
        if info.name == "CampaignMember" and merged.get("Status") is None:
            merged["Status"] = self._default_member_status(merged.get("CampaignId"))
        self._derive(info, merged, given, {})
        return merged

    def _derive(
        self, info: ObjectInfo, merged: dict[str, Any], given: Mapping[str, Any], old: Mapping
    ) -> None:
        if info.name == "Opportunity" and merged.get("StageName") in OPPORTUNITY_STAGES:
            closed, won, probability, forecast = OPPORTUNITY_STAGES[merged["StageName"]]
            merged["IsClosed"], merged["IsWon"], merged["ForecastCategory"] = closed, won, forecast
            if "Probability" not in given and merged.get("StageName") != old.get("StageName"):
                merged["Probability"] = float(probability)
        if info.name == "Task":
            merged["IsClosed"] = TASK_STATUSES.get(merged.get("Status") or "", False)
        if info.name == "CampaignMember" and merged.get("CampaignId"):
            statuses = self._member_statuses(merged["CampaignId"])
            responded = statuses.get(str(merged.get("Status") or ""))
            merged["HasResponded"] = bool(responded)
            if responded and not merged.get("FirstRespondedDate"):
                merged["FirstRespondedDate"] = self.now().date().isoformat()
        if info.name == "Lead":
            merged.setdefault("IsConverted", False)

    def _validate(
        self,
        info: ObjectInfo,
        merged: dict[str, Any],
        given: Mapping[str, Any],
        self_id: str | None,
        allow_duplicates: bool,
    ) -> None:
        missing = [
            n
            for n, f in info.fields.items()
            if (f.required or (not f.nillable and f.type != "boolean" and n in given))
            and n not in SYSTEM_FIELDS
            and merged.get(n) in (None, "")
            and (f.createable or f.updateable)
        ]
        if missing:
            raise CrmError(
                "REQUIRED_FIELD_MISSING",
                f"Required fields are missing: [{', '.join(missing)}]",
                tuple(missing),
            )
        for name, value in given.items():
            f = info.fields[name]
            if f.type == "reference" and value is not None:
                self._check_reference(info, name, value)
        if info.name == "CampaignMember":
            self._check_member(merged, self_id)
        if (
            info.name == "Task"
            and merged.get("WhatId")
            and str(merged.get("WhoId", ""))[:3] == "00Q"
        ):
            raise CrmError(
                "FIELD_INTEGRITY_EXCEPTION",
                "Related To ID: a task whose Name ID is a lead cannot be related to a record",
                ("WhatId",),
            )
        if info.name == "User" and "Username" in given:
            for other in self.find_local("User", "Username", merged["Username"]):
                if other != self_id:
                    raise CrmError("DUPLICATE_USERNAME", "Duplicate Username.", ("Username",))
        if info.name == "CampaignMember" and "Status" in given and merged.get("CampaignId"):
            statuses = self._member_statuses(merged["CampaignId"])
            if merged["Status"] not in statuses:
                raise CrmError(
                    "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                    f"Status: bad value for restricted picklist field: {merged['Status']} "
                    f"(this campaign's statuses: {', '.join(statuses)})",
                    ("Status",),
                )
        self._check_duplicates(info, merged, given, self_id, allow_duplicates)

    def find_local(self, sobject: str, field: str, value: Any) -> list[str]:
        """Ids of live records whose field equals value (no API call counted)."""
        if not field.replace("_", "").isalnum():
            return []
        rows = self._conn.execute(
            "SELECT id FROM record WHERE sobject=? AND NOT is_deleted"
            f" AND json_extract(fields, '$.{field}') = ? ORDER BY created_date, id",
            (sobject, value),
        )
        return [r[0] for r in rows]

    def ids_by_email(self, sobject: str, email: str) -> list[str]:
        """Ids of live records of an object with this email, any case (no API call counted)."""
        rows = self._conn.execute(
            "SELECT id FROM record WHERE sobject=? AND NOT is_deleted AND email=?"
            " ORDER BY created_date, id",
            (sobject, email.strip().lower()),
        )
        return [r[0] for r in rows]

    def _check_reference(self, info: ObjectInfo, name: str, value: str) -> None:
        f = info.fields[name]
        targets = [
            self._schema.objects[t].key_prefix for t in f.reference_to if t in self._schema.objects
        ]
        if value[:3] not in targets:
            raise CrmError(
                "FIELD_INTEGRITY_EXCEPTION",
                f"{f.label}: id value of incorrect type: {value}",
                (name,),
            )
        row = self._row(value)
        if row is None:
            raise CrmError(
                "INVALID_CROSS_REFERENCE_KEY",
                f"{f.label}: invalid cross reference id",
                (name,),
            )
        if row["is_deleted"] and not self._loading_deleted:
            raise CrmError("ENTITY_IS_DELETED", f"{f.label}: entity is deleted", (name,))
        if row["sobject"] == "User" and not self._fields(row).get("IsActive", True):
            raise CrmError(
                "INACTIVE_OWNER_OR_USER",
                f"operation performed with inactive user [{value}] as owner of {info.name.lower()}",
                (name,),
            )

    def _check_task_who(self, given: Mapping[str, Any]) -> None:
        """A task is no more made (or moved) to a converted lead: its activities went to
        the contact, and the lead may no longer be referenced."""
        who = given.get("WhoId")
        if who and str(who)[:3] == "00Q":
            row = self._row(who)
            if row is not None and self._fields(row).get("IsConverted"):
                raise CrmError(
                    "CANNOT_UPDATE_CONVERTED_LEAD", "cannot reference converted lead", ("WhoId",)
                )

    def _check_member(self, merged: Mapping[str, Any], self_id: str | None) -> None:
        who = [k for k in ("LeadId", "ContactId") if merged.get(k)]
        if not who:
            raise CrmError(
                "REQUIRED_FIELD_MISSING",
                "Required fields are missing: [ContactId, LeadId]",
                ("ContactId", "LeadId"),
            )
        if self_id is None:
            lead = merged.get("LeadId")
            if lead and not merged.get("ContactId"):
                row = self._row(lead)
                if row is not None and self._fields(row).get("IsConverted"):
                    raise CrmError(
                        "CANNOT_UPDATE_CONVERTED_LEAD",
                        "cannot reference converted lead",
                        ("LeadId",),
                    )
            key = "ContactId" if merged.get("ContactId") else "LeadId"
            for other in self.find_local("CampaignMember", key, merged.get(key)):
                fields = self._fields(self._row(other))  # type: ignore[arg-type]
                if fields.get("CampaignId") == merged.get("CampaignId"):
                    raise CrmError("DUPLICATE_VALUE", "Already a campaign member.", (key,))

    def _check_duplicates(
        self,
        info: ObjectInfo,
        merged: Mapping[str, Any],
        given: Mapping[str, Any],
        self_id: str | None,
        allow: bool,
    ) -> None:
        if merged.get("IsConverted"):
            return  # a converted lead is nobody's duplicate
        for rule in self._schema.duplicate_rules:
            if rule["object"] != info.name or not any(f in given for f in rule["fields"]):
                continue
            key = [str(merged.get(f) or "").strip().lower() for f in rule["fields"]]
            if not all(key):
                continue
            for obj in rule["match_objects"]:
                for r in self._candidates(obj, rule["fields"], merged):
                    if r.id == self_id or (obj == "Lead" and r.fields.get("IsConverted")):
                        continue
                    other = [str(r.fields.get(f) or "").strip().lower() for f in rule["fields"]]
                    if other == key:
                        if rule["action"] == "alert" and allow:
                            break
                        raise CrmError(
                            "DUPLICATES_DETECTED",
                            "You're creating a duplicate record. We recommend you use an "
                            f"existing record instead. (rule {rule['name']!r} matched {r.id})",
                        )

    def _candidates(
        self, sobject: str, fields: Sequence[str], merged: Mapping[str, Any]
    ) -> Iterator[Record]:
        if "Email" in fields:
            cur = self._conn.execute(
                "SELECT * FROM record WHERE sobject=? AND NOT is_deleted AND email=?",
                (sobject, _email(merged)),
            )
            cur.row_factory = sqlite3.Row
            for row in cur.fetchall():
                yield self._record(row)
        else:
            yield from self.records(sobject)

    def _after_write(
        self, info: ObjectInfo, id18: str, merged: Mapping[str, Any], old: Mapping | None
    ) -> None:
        if info.name == "Campaign" and old is None:
            for order, (label, responded, default) in enumerate(_DEFAULT_MEMBER_STATUSES):
                self._conn.execute(
                    "INSERT OR IGNORE INTO member_status VALUES (?, ?, ?, ?, ?)",
                    (id18, label, responded, default, order),
                )
        if info.name == "OpportunityContactRole" and merged.get("IsPrimary"):
            for other in self.find_local(
                "OpportunityContactRole", "OpportunityId", merged.get("OpportunityId")
            ):
                if other != id18 and self._fields(self._row(other)).get(  # type: ignore[arg-type]
                    "IsPrimary"
                ):
                    self._raw_set(other, {"IsPrimary": False})

    def _raw_set(self, id18: str, values: Mapping[str, Any], *, touch: bool = True) -> None:
        row = self._row(id18)
        assert row is not None
        merged = {**self._fields(row), **values}
        now = _stamp(self.now())
        self._conn.execute(
            "UPDATE record SET fields=?, email=?, system_modstamp=max(system_modstamp, ?),"
            " last_modified_date=CASE WHEN ? THEN ? ELSE last_modified_date END WHERE id=?",
            (json.dumps(_nonnull(merged)), _email(merged), now, touch, now, id18),
        )

    # campaign member statuses

    def _member_statuses(self, campaign_id: str) -> dict[str, bool]:
        rows = self._conn.execute(
            "SELECT label, has_responded FROM member_status WHERE campaign_id=?"
            " ORDER BY sort_order",
            (campaign_id,),
        ).fetchall()
        return {self._label(r[0], campaign_id): bool(r[1]) for r in rows}

    def _label(self, label: object, campaign_id: object) -> str:
        """A member status's label as stored: text, else the file is damaged (exit 4)."""
        if type(label) is not str:
            raise self._damaged(
                f"a member status of campaign {campaign_id}",
                TypeError(f"not text: {str(label)[:40]!r}"),
            )
        return label

    def _default_member_status(self, campaign_id: Any) -> str | None:
        row = self._conn.execute(
            "SELECT label FROM member_status WHERE campaign_id=? AND is_default", (campaign_id,)
        ).fetchone()
        return self._label(row[0], campaign_id) if row else None

    def set_member_statuses(
        self, campaign_id: str, statuses: Sequence[tuple[str, bool, bool]]
    ) -> None:
        """Replace a campaign's member statuses: (label, has_responded, is_default) each."""
        if sum(1 for s in statuses if s[2]) != 1 or not any(s[1] for s in statuses):
            raise CrmError(
                "FIELD_INTEGRITY_EXCEPTION",
                "a campaign needs exactly one default member status and at least one "
                "responded status",
            )
        with self._tx():
            self._conn.execute("DELETE FROM member_status WHERE campaign_id=?", (campaign_id,))
            for order, (label, responded, default) in enumerate(statuses):
                self._conn.execute(
                    "INSERT INTO member_status VALUES (?, ?, ?, ?, ?)",
                    (campaign_id, label, responded, default, order),
                )

    def member_statuses(self, campaign_id: str) -> list[tuple[str, bool, bool]]:
        rows = self._conn.execute(
            "SELECT label, has_responded, is_default FROM member_status WHERE campaign_id=?"
            " ORDER BY sort_order",
            (campaign_id,),
        ).fetchall()
        return [(self._label(r[0], campaign_id), bool(r[1]), bool(r[2])) for r in rows]

    # deletes

    _CHILDREN: ClassVar[dict[str, tuple[tuple[str, str], ...]]] = {
        "Account": (("Contact", "AccountId"), ("Opportunity", "AccountId")),
        "Contact": (("CampaignMember", "ContactId"), ("OpportunityContactRole", "ContactId")),
        "Lead": (("CampaignMember", "LeadId"),),
        "Opportunity": (("OpportunityContactRole", "OpportunityId"),),
        "Campaign": (("CampaignMember", "CampaignId"),),
    }

    def _delete(self, id_: str) -> WriteResult:
        row = self._live_row(id_)
        info = self._schema.objects.get(row["sobject"])
        if info is not None and info.custom and not self._schema.custom_objects_allowed():
            raise CrmError("INVALID_TYPE", self._edition_message(info.name))
        if row["sobject"] == "User":
            raise CrmError("DELETE_FAILED", "users cannot be deleted; deactivate them")
        now = _stamp(self.now())
        self._soft_delete(row["id"], row["sobject"], now, None)
        return WriteResult(id=row["id"], success=True)

    def _soft_delete(self, id18: str, sobject: str, now: str, parent: str | None) -> None:
        self._conn.execute(
            "UPDATE record SET is_deleted=1, deleted_date=?, deleted_with=?,"
            " system_modstamp=max(system_modstamp, ?) WHERE id=?",
            (now, parent, now, id18),
        )
        self._conn.execute(
            "INSERT OR REPLACE INTO deleted_log VALUES (?, ?, ?)", (id18, sobject, now)
        )
        for child, ref in self._CHILDREN.get(sobject, ()):
            for other in self.find_local(child, ref, id18):
                self._soft_delete(other, child, now, parent or id18)

    def _undelete(self, id_: str) -> WriteResult:
        try:
            id18 = to18(str(id_))
        except InvalidId:
            raise CrmError("MALFORMED_ID", f"malformed id {id_}", ("Id",)) from None
        row = self._row(id18)
        if row is None:
            raise CrmError("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id", ("Id",))
        if not row["is_deleted"]:
            raise CrmError("UNDELETE_FAILED", "Entity is not in the recycle bin")
        now = _stamp(self.now())
        for target in (id18, *self._with(id18)):
            self._conn.execute(
                "UPDATE record SET is_deleted=0, deleted_date=NULL, deleted_with=NULL,"
                " system_modstamp=max(system_modstamp, ?) WHERE id=?",
                (now, target),
            )
            self._conn.execute("DELETE FROM deleted_log WHERE id=?", (target,))
        return WriteResult(id=id18, success=True)

    def _with(self, id18: str) -> list[str]:
        return [
            r[0] for r in self._conn.execute("SELECT id FROM record WHERE deleted_with=?", (id18,))
        ]

    def _purge(self) -> None:
        """Empty the recycle bin of what was deleted RECYCLE_DAYS ago or more."""
        limit = _stamp(self.now() - dt.timedelta(days=RECYCLE_DAYS))
        if self._conn.execute(
            "SELECT 1 FROM record WHERE is_deleted AND deleted_date < ? LIMIT 1", (limit,)
        ).fetchone():
            with self._tx():
                self._conn.execute(
                    "DELETE FROM record WHERE is_deleted AND deleted_date < ?", (limit,)
                )

    # lead conversion

    def convert_leads(self, converts: Sequence[LeadConvert]) -> list[ConvertResult]:
        self._batch(converts)
        self._count_call()
        out = []
        for c in converts:
            try:
                with self._tx():
                    out.append(self._convert(c))
            except CrmError as e:
                out.append(ConvertResult(lead_id=c.lead_id, success=False, errors=(e,)))
        return out

    def _convert(self, c: LeadConvert, by: str | None = None) -> ConvertResult:
        lead_info = self._schema.objects["Lead"]
        row = self._live_row(c.lead_id, lead_info)
        lead = self._fields(row)
        if lead.get("IsConverted"):
            raise CrmError("CANNOT_UPDATE_CONVERTED_LEAD", "cannot reference converted lead")
        status = c.converted_status or next(s for s, conv in LEAD_STATUSES.items() if conv)
        if not LEAD_STATUSES.get(status):
            raise CrmError(
                "INVALID_STATUS", f"invalid convertedStatus: {status}", ("convertedStatus",)
            )
        owner = c.owner_id or lead.get("OwnerId")
        if owner and owner[:3] == "00G" and not c.owner_id:
            raise CrmError(
                "REQUIRED_FIELD_MISSING",
                "Converted objects can only be owned by users. If the lead is not owned by a "
                "user, you must specify a user for the Owner field.",
                ("OwnerId",),
            )
        account_id = c.account_id
        if c.contact_id and not account_id:
            raise CrmError(
                "REQUIRED_FIELD_MISSING", "accountId is required with contactId", ("accountId",)
            )
        fill_account = {
            "Name": lead.get("Company"),
            "Industry": lead.get("Industry"),
            "Phone": lead.get("Phone"),
            "OwnerId": owner,
        }
        account_id = self._merge_or_create("Account", account_id, fill_account, by)
        fill_contact = {
            "FirstName": lead.get("FirstName"),
            "LastName": lead.get("LastName"),
            "Email": lead.get("Email"),
            "Title": lead.get("Title"),
            "Phone": lead.get("Phone"),
            "LeadSource": lead.get("LeadSource"),
            "HasOptedOutOfEmail": lead.get("HasOptedOutOfEmail"),
            "AccountId": account_id,
            "OwnerId": owner,
        }
        contact_info = self._schema.objects["Contact"]
        for name, value in lead.items():  # custom fields with the same API name follow
            if name.endswith("__c") and name in contact_info.fields:
                fill_contact[name] = value
        if c.contact_id:
            crow = self._live_row(c.contact_id, contact_info)
            if self._fields(crow).get("AccountId") != account_id:
                raise CrmError(
                    "INVALID_CROSS_REFERENCE_KEY",
                    "the contact does not belong to the account given",
                    ("contactId",),
                )
        contact_id = self._merge_or_create(
            "Contact",
            c.contact_id,
            fill_contact,
            by,
            overwrite=("LeadSource",) if c.overwrite_lead_source else (),
        )
        opportunity_id = None
        if not c.do_not_create_opportunity:
            name = c.opportunity_name or f"{lead.get('Company')}-"
            res = self._create(
                "Opportunity",
                {
                    "Name": name,
                    "StageName": "Prospecting",
                    "CloseDate": self.now().date().isoformat(),
                    "AccountId": account_id,
                    "OwnerId": owner,
                    "LeadSource": lead.get("LeadSource"),
                },
                False,
                by=by,
            )
            opportunity_id = res.id
            self._create(
                "OpportunityContactRole",
                {"OpportunityId": opportunity_id, "ContactId": contact_id, "IsPrimary": True},
                False,
                by=by,
            )
        for member in self.find_local("CampaignMember", "LeadId", row["id"]):
            self._raw_set(member, {"ContactId": contact_id})
        for task in self.find_local("Task", "WhoId", row["id"]):
            self._raw_set(task, {"WhoId": contact_id})
        self._raw_set(
            row["id"],
            {
                "Status": status,
                "IsConverted": True,
                "ConvertedDate": self.now().date().isoformat(),
                "ConvertedAccountId": account_id,
                "ConvertedContactId": contact_id,
                "ConvertedOpportunityId": opportunity_id,
            },
            touch=False,
        )
        return ConvertResult(
            lead_id=row["id"],
            success=True,
            account_id=account_id,
            contact_id=contact_id,
            opportunity_id=opportunity_id,
        )

    def _merge_or_create(
        self,
        sobject: str,
        existing: str | None,
        fill: Mapping[str, Any],
        by: str | None,
        overwrite: tuple[str, ...] = (),
    ) -> str:
        values = {k: v for k, v in fill.items() if v is not None}
        if existing is None:
            res = self._create(sobject, values, True, by=by)
            assert res.id is not None
            return res.id
        row = self._live_row(existing, self._schema.objects[sobject])
        old = self._fields(row)
        blanks = {k: v for k, v in values.items() if old.get(k) in (None, "") or k in overwrite}
        if blanks:
            self._update(sobject, {"Id": row["id"], **blanks}, True, by=by)
        return row["id"]

    # -- loading --------------------------------------------------------------------------------

    def load_rows(
        self, sobject: str, rows: Iterable[tuple[int, Mapping[str, Any]]]
    ) -> tuple[int, list[LoadIssue]]:
        """Load exported rows of one object; (rows loaded, issues) with line numbers.

        A row's `Id` may be a real id (kept) or a label (a name the other files
        use to refer to it); reference fields take labels too. A row whose Id is
        already in the CRM updates it. System audit fields (`CreatedDate`,
        `LastModifiedDate`) and a converted lead's fields are kept; computed ones
        (`IsWon`, `SystemModstamp`...) are recomputed; `IsDeleted` true puts the
        record in the recycle bin.
        """
        if sobject == "CampaignMemberStatus":
            return self._load_member_statuses(rows)
        info = self._find_object(sobject)
        if info is None:
            return 0, [LoadIssue(0, f"sObject type '{sobject}' is not supported")]
        loaded, issues = 0, []
        for line, row in rows:
            try:
                with self._tx():
                    self._load_row(info, row)
                loaded += 1
            except CrmError as e:
                issues.append(LoadIssue(line, str(e)))
        return loaded, issues

    def _resolve(self, value: Any) -> Any:
        if isinstance(value, str) and value:
            found = self.label_id(value)
            if found is not None:
                return found
        return value

    def _load_row(self, info: ObjectInfo, row: Mapping[str, Any]) -> None:
        if info.custom and not self._schema.custom_objects_allowed():
            raise CrmError("INVALID_TYPE", self._edition_message(info.name))
        values = {k: v for k, v in row.items() if k not in ("attributes",)}
        raw_id = values.pop("Id", None)
        deleted = values.pop("IsDeleted", False)
        if isinstance(deleted, str):
            deleted = deleted.strip().lower() == "true"
        users: dict[str, str | None] = {"CreatedById": None, "LastModifiedById": None}
        master = None
        for name in list(values):
            canon = self._canonical(info, name)
            if canon in users:  # kept when they name a user of this CRM, else the loader's
                users[canon] = self._known_user(values.pop(name))
            elif canon == "MasterRecordId":  # a merge's loser: set once the row is in
                master = self._master(info, values.pop(name))
            elif canon is not None and info.fields[canon].type == "reference":
                values[name] = self._resolve(values[name])
        self._loading_deleted = bool(deleted)
        try:
            new = self._load_one(
                info, values, raw_id, deleted, users["CreatedById"], users["LastModifiedById"]
            )
        finally:
            self._loading_deleted = False
        if master is not None:
            loaded = self._row(new)
            assert loaded is not None
            fields = self._fields(loaded)
            if fields.get("MasterRecordId") != master:
                fields["MasterRecordId"] = master
                self._conn.execute("UPDATE record SET fields=? WHERE id=?", (_dumps(fields), new))

    def _master(self, info: ObjectInfo, value: Any) -> str | None:
        """A loaded MasterRecordId: an id (or label) of the same object, or None."""
        value = self._resolve(value)
        if value in (None, ""):
            return None
        try:
            id18 = to18(str(value))
        except InvalidId:
            id18 = ""
        if id18[:3] != info.key_prefix:
            raise CrmError(
                "MALFORMED_ID",
                f"Master Record ID: id value of incorrect type: {value}",
                ("MasterRecordId",),
            )
        return id18

    def _known_user(self, value: Any) -> str | None:
        """The id of the user a loaded CreatedById or LastModifiedById names, if any."""
        if not isinstance(value, str) or not value.strip():
            return None
        try:
            id18 = to18(str(self._resolve(value.strip())))
        except InvalidId:
            return None
        row = self._row(id18)
        return id18 if row is not None and row["sobject"] == "User" else None

    def _load_one(
        self,
        info: ObjectInfo,
        values: dict[str, Any],
        raw_id: Any,
        deleted: bool,
        created_by: str | None,
        modified_by: str | None,
    ) -> str:
        by = self.admin_user_id
        existing, label, keep_id = None, None, None
        if raw_id not in (None, ""):
            raw_id = str(raw_id).strip()
            known = self.label_id(raw_id)
            try:
                as_id = to18(raw_id)
            except InvalidId:
                as_id = None
            if known is not None:
                existing = known
            elif as_id is not None and as_id[:3] == info.key_prefix:
                if self._row(as_id) is not None:
                    existing = as_id
                else:
                    keep_id = as_id
            else:
                label = raw_id
        if existing is not None:
            row_now = self._row(existing)
            if row_now is not None and row_now["is_deleted"]:
                self._undelete(existing)
            self._update(
                info.name,
                {"Id": existing, **values},
                True,
                load=True,
                by=modified_by or by,
                created_by=created_by,
                modified_by=modified_by,
            )
            new = existing
        else:
            res = self._create(
                info.name,
                values,
                True,
                load=True,
                by=created_by or by,
                new_id=keep_id,
                modified_by=modified_by or created_by or by,
            )
            assert res.id is not None
            new = res.id
            if label is not None:
                self._conn.execute("INSERT OR REPLACE INTO label VALUES (?, ?)", (label, new))
        stamp = self._given_stamp(values.get("SystemModstamp"))
        if deleted:
            self._soft_delete(new, info.name, stamp or _stamp(self.now()), None)
        if stamp is not None:  # the export's own stamp, so a reload reads the same
            self._conn.execute("UPDATE record SET system_modstamp=? WHERE id=?", (stamp, new))
        return new

    @staticmethod
    def _given_stamp(value: Any) -> str | None:
        if not isinstance(value, str) or not value:
            return None
        try:
            return _stamp(parse_datetime(value))
        except ValueError:
            raise CrmError(
                "INVALID_TYPE_ON_FIELD_IN_RECORD",
                f"System Modstamp: value not of required type: {value}",
                ("SystemModstamp",),
            ) from None

    def _load_member_statuses(
        self, rows: Iterable[tuple[int, Mapping[str, Any]]]
    ) -> tuple[int, list[LoadIssue]]:
        by_campaign: dict[str, list[tuple[int, str, bool, bool]]] = {}
        issues = []
        for line, row in rows:
            campaign = self._resolve(row.get("CampaignId"))
            label = row.get("Label")
            try:
                campaign = to18(str(campaign))
            except InvalidId:
                issues.append(LoadIssue(line, f"CampaignId: unknown campaign {campaign!r}"))
                continue
            if not label or not isinstance(label, str):
                issues.append(LoadIssue(line, "REQUIRED_FIELD_MISSING: Label"))
                continue
            by_campaign.setdefault(campaign, []).append(
                (line, label, _bool(row.get("HasResponded")), _bool(row.get("IsDefault")))
            )
        loaded = 0
        for campaign, statuses in by_campaign.items():
            found = self._row(campaign)
            if found is None or found["sobject"] != "Campaign":
                issues += [
                    LoadIssue(s[0], f"CampaignId: unknown campaign {campaign}") for s in statuses
                ]
                continue
            try:
                self.set_member_statuses(campaign, [s[1:] for s in statuses])
                loaded += len(statuses)
            except CrmError as e:
                issues.append(LoadIssue(statuses[0][0], f"{e} (campaign {campaign})"))
        return loaded, issues

    # -- CRM-side changes (emulator only) ---------------------------------------------------------

    def change_applied(self, key: str) -> bool:
        return (
            self._conn.execute("SELECT 1 FROM applied_change WHERE key=?", (key,)).fetchone()
            is not None
        )

    def record_change(self, key: str, at: dt.datetime, outcome: str) -> None:
        self._conn.execute(
            "INSERT OR REPLACE INTO applied_change VALUES (?, ?, ?)", (key, _stamp(at), outcome)
        )

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """One transaction around several emulator calls (the changes file uses it)."""
        with self._tx():
            yield

    def edit(self, sobject: str, values: Mapping[str, Any], by: str) -> WriteResult:
        """An update made by a CRM user (not the integration user); CrmError when refused."""
        return self._update(sobject, values, True, by=by)

    def add(self, sobject: str, values: Mapping[str, Any], by: str) -> WriteResult:
        """A record created by a CRM user; CrmError when refused."""
        return self._create(sobject, values, True, by=by)

    def convert_as(self, convert: LeadConvert, by: str) -> ConvertResult:
        """A lead converted by a CRM user; CrmError when refused."""
        return self._convert(convert, by=by)

    def remove(self, id_: str) -> WriteResult:
        return self._delete(id_)

    def restore(self, id_: str) -> WriteResult:
        return self._undelete(id_)

    _MERGEABLE: ClassVar[frozenset[str]] = frozenset({"Lead", "Contact", "Account"})

    def merge(self, master: str, losers: Sequence[str], by: str) -> WriteResult:
        """Merge records into `master`, as a CRM user does (Salesforce's merge).

        Up to two losers, of the master's object (Lead, Contact or Account): their
        children (campaign members, contact roles; an account's contacts and
        opportunities) move to the master, a campaign membership the master already
        has is deleted instead, and each loser goes to the recycle bin with
        `MasterRecordId` set to the master. The master keeps its own values; its
        `SystemModstamp` moves. CrmError when refused.
        """
        row = self._live_row(master)
        sobject = row["sobject"]
        if sobject not in self._MERGEABLE:
            raise CrmError("INVALID_TYPE", f"{sobject} records cannot be merged")
        if not 1 <= len(losers) <= 2:
            raise CrmError(
                "INVALID_ARGUMENT", "a merge takes one or two records besides the master"
            )
        if sobject == "Lead" and self._fields(row).get("IsConverted"):
            raise CrmError("CANNOT_UPDATE_CONVERTED_LEAD", "cannot reference converted lead")
        now = _stamp(self.now())
        for loser in losers:
            other = self._live_row(loser)
            if other["id"] == row["id"]:
                raise CrmError("INVALID_ARGUMENT", "a record cannot be merged into itself")
            if other["sobject"] != sobject:
                raise CrmError(
                    "INVALID_TYPE", f"a {other['sobject']} cannot merge into a {sobject}"
                )
            for child, ref in self._CHILDREN.get(sobject, ()):
                for cid in self.find_local(child, ref, other["id"]):
                    crow = self._row(cid)
                    assert crow is not None
                    fields = self._fields(crow)
                    if child == "CampaignMember" and self._member_of(
                        fields.get("CampaignId"), ref, row["id"]
                    ):
                        self._soft_delete(cid, child, now, None)  # the master is a member
                        continue
                    self._raw_set(cid, {ref: row["id"]})
            self._raw_set(other["id"], {"MasterRecordId": row["id"]})
            self._conn.execute("UPDATE record SET last_modified_by=? WHERE id=?", (by, other["id"]))
            self._soft_delete(other["id"], sobject, now, None)
        self._raw_set(row["id"], {})
        self._conn.execute("UPDATE record SET last_modified_by=? WHERE id=?", (by, row["id"]))
        return WriteResult(id=row["id"], success=True)

    def _member_of(self, campaign: Any, ref: str, person: str) -> bool:
        return any(
            self._fields(r, 0).get(ref) == person
            for r in self._conn.execute(
                "SELECT fields FROM record WHERE sobject='CampaignMember' AND NOT is_deleted"
                " AND json_extract(fields, '$.CampaignId') = ?",
                (campaign,),
            )
        )


def _failed(error: CrmError) -> WriteResult:
    return WriteResult(id=None, success=False, errors=(error,))


_loads = orjson.loads


_TIMES = ("CreatedDate", "LastModifiedDate", "SystemModstamp")
"""A stored record's system times (text columns), as `_system` names them."""


def _id_of(row: Any) -> str:
    """A stored record's id, as a damage message names it ('?' without one)."""
    try:
        return str(row["id"])
    except (IndexError, KeyError, TypeError):
        return "?"


def _dumps(values: Mapping[str, Any]) -> str:
    """A record's fields as stored (JSON text); Python's json for what orjson refuses."""
    try:
        return orjson.dumps(values).decode()
    except TypeError:  # an integer beyond 64 bits
        return json.dumps(values)


def _nonnull(values: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


def _email(values: Mapping[str, Any]) -> str | None:
    email = values.get("Email")
    return str(email).strip().lower() if email else None


def _first(d: Mapping[str, Any]) -> str:
    return next(iter(d))


def _bool(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() == "true"
    return bool(value)


def _chunks(items: list[str], n: int) -> Iterator[list[str]]:
    for i in range(0, len(items), n):
        yield items[i : i + n]
