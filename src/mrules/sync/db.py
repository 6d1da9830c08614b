"""The sync's file: `NAME.sync.db` beside the store `NAME.db` (docs/sync.md#the-sync-file).

Why a file of its own, not tables of the store: the store is the engine's
(its schema is the runtime's contract); the CRM may be a remote org. The
sync's state is a third thing, and every step of a cycle that must be atomic
is atomic inside this file: the cursor of an object is committed in the same
transaction as the facts read up to it (the `inbound` rows); links, base
snapshots, queue and errors move in the same transaction as the outcome of
the writes that changed them. Handing the inbound facts to the engine is
idempotent (each fact is an event with a stable id the store remembers), so
a kill between the two files repeats a delivery the engine then skips.

The sync always runs holding the store's writer lock, so an engine run and a
sync on one store serialise (the second waits with `--wait`, or refuses).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import sqlite3
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson

from mrules.buildinfo import __version__
from mrules.crm.model import parse_datetime
from mrules.loader import printable_path
from mrules.pathkind import special_file_kind
from mrules.sqlitefiles import (
    UNREADABLE,
    full_disk_advice,
    reading_uri,
    refuse_writes,
    unreadable_reason,
)
from mrules.storeapi import YEARS_1_TO_9999, StoreError
from mrules.sync.spool import SpillMap

__all__ = [
    "NOT_WAITING",
    "SCHEMA_VERSION",
    "PlanLinks",
    "SyncDb",
    "SyncDbError",
    "SyncDbPathError",
    "default_sync_path",
    "held_campaign",
    "held_item",
    "pending_beside",
    "read_only_file",
]

Link = tuple[str, str, dict[str, Any], dict[str, float], bool]

NOT_WAITING = float("-inf")
"""A queue item's `next_try` when it does not back off: due at any time of any clock.

Not 0: a cycle's time is the run's clock, which may be before 1970 (a negative POSIX
time), and work due at 0 would wait until 1970 there. SQLite stores it as -Inf."""
_DUPLICATE_LINK = "DUPLICATE_LINK"
"""`mrules.sync.plan.DUPLICATE_LINK`: a link not made, which no retry clears."""


def store_identity(store: Any) -> str | None:
    """The store's id (`store_id` in its meta: a SQLite store has one since 0.1), or None:
    an in-memory or PostgreSQL store, whose sync file is not told from another's."""
    meta = getattr(store, "meta", None)
    if meta is None:
        return None
    found = meta().get("store_id")
    return str(found) if found else None


_DAMAGE = (ValueError, TypeError, KeyError, IndexError, OverflowError, AttributeError)
"""What decoding a value of the sync file that is not what mrules wrote raises."""


def _damaged(conn: sqlite3.Connection, what: str, e: BaseException) -> SyncDbError:
    """The error for a value of the sync file that cannot be read, whoever read it: exit 4
    naming the file and the value (it was an internal error, or a wrong sync, further on)."""
    path = next((r[2] for r in conn.execute("PRAGMA database_list") if r[1] == "main"), "")
    reason = str(e).splitlines()[0][:80] if str(e) else type(e).__name__
    return SyncDbError(
        f"{printable_path(path or ':memory:')}: the sync file is damaged ({what}: {reason});"
        " restore it from a backup"
    )


def _text(value: object) -> str:
    if type(value) is not str:
        raise TypeError(f"not text: {str(value)[:40]!r}")
    return value


def _number(value: object) -> float:
    """A time or a count stored as a number (SQLite keeps -Inf for NOT_WAITING)."""
    if type(value) not in (int, float) or math.isnan(value):  # type: ignore[arg-type]
        raise TypeError(f"not a number: {str(value)[:40]!r}")
    return float(value)  # type: ignore[arg-type]


def _time(value: object) -> float:
    """A time (POSIX seconds) within the years 1 to 9999, which every date can hold."""
    t = _number(value)
    if not YEARS_1_TO_9999[0] <= t <= YEARS_1_TO_9999[1]:
        raise ValueError(f"not a time: {t!r}")
    return t


def _count(value: float) -> int:
    """A count or a sequence number: a whole number from 0 to 2**53."""
    if not (value == value // 1 and 0 <= value <= 2.0**53):
        raise ValueError(f"not a count: {value!r}")
    return int(value)


def _json(value: object, kind: type, loads: Any = orjson.loads) -> Any:
    """`value` decoded, of the JSON kind `kind`. Work and facts are read by the stdlib's
    `json` (as they are written): it keeps integers beyond 64 bits exact."""
    if type(value) is not str and type(value) is not bytes:
        raise TypeError(f"not JSON text: {str(value)[:40]!r}")
    decoded = loads(value)
    if not isinstance(decoded, kind):
        raise TypeError(f"not a JSON {kind.__name__}")
    return decoded


def _work(text: object) -> list[dict[str, Any]]:
    """A queue row's work: a JSON list of objects."""
    work = _json(text, list, json.loads)
    for w in work:
        if not isinstance(w, dict):
            raise TypeError("a work item is not a JSON object")
    return work  # type: ignore[no-any-return]


def _link(row: tuple[Any, ...], conn: sqlite3.Connection) -> Link:
    """A link from its row (object, crm id, base, times, deleted)."""
    try:
        times = _json(row[3], dict)
        for t in times.values():
            _number(t)
        return _text(row[0]), _text(row[1]), _json(row[2], dict), times, bool(row[4])
    except _DAMAGE as e:
        raise _damaged(conn, "a link", e) from None


_IN = 500
"""Keys an `IN (...)` query takes at a time."""


class PlanLinks:
    """The links a plan reads and changes, without an index of every link in memory.

    A plan looks links up in the sync file a page of CRM records at a time (`page`: the
    records' ids and emails, two `IN (...)` queries), one at a time otherwise. What this
    plan changes (a link set, a CRM id taken) is an overlay read first: a dict in a
    cycle, a temporary SQLite table past a few thousand links (a first link sets one a
    prospect). The links read behave as a dict of every link would: `walk` gives them in
    the order of the file, then this plan's new ones in the order they were set.
    """

    _COLS = "object, crm_id, base, times, deleted"

    def __init__(self, conn: sqlite3.Connection, limit: int = 5000) -> None:
        self.conn = conn
        self._changes = SpillMap(limit)  # prospect -> (link, linked this plan, in the file)
        self._crm = SpillMap(limit)  # CRM id -> prospect, taken by this plan
        self._rows: dict[str, tuple[Any, ...] | None] = {}  # this page's links, by prospect
        self._ids: dict[str, str | None] = {}  # this page's CRM ids -> prospect

    def page(self, ids: list[str], emails: list[str]) -> None:
        """Read the links of a page of records (by CRM id, and by email) in a few queries;
        the last page's are let go."""
        self._rows, self._ids = {}, {}
        conn = self.conn
        wanted = list(dict.fromkeys(ids))
        for i in range(0, len(wanted), _IN):
            chunk = wanted[i : i + _IN]
            for crm_id, prospect in conn.execute(
                "SELECT crm_id, prospect FROM link WHERE crm_id IN"
                f" ({','.join('?' * len(chunk))}) ORDER BY rowid",
                chunk,
            ):
                self._ids[crm_id] = prospect  # the last wins, as in a dict of every link
        for crm_id in wanted:
            self._ids.setdefault(crm_id, None)
        who = list(dict.fromkeys([*emails, *(p for p in self._ids.values() if p)]))
        for i in range(0, len(who), _IN):
            chunk = who[i : i + _IN]
            for row in conn.execute(
                f"SELECT prospect, {self._COLS} FROM link WHERE prospect IN"
                f" ({','.join('?' * len(chunk))})",
                chunk,
            ):
                self._rows[row[0]] = row[1:]
        for p in who:
            self._rows.setdefault(p, None)

    def _row(self, prospect: str) -> tuple[Any, ...] | None:
        if prospect in self._rows:
            return self._rows[prospect]
        return self.conn.execute(  # type: ignore[no-any-return]
            f"SELECT {self._COLS} FROM link WHERE prospect = ?", (prospect,)
        ).fetchone()

    def by_crm(self, crm_id: str) -> str | None:
        """The prospect linked to this CRM id (the plan's own changes first)."""
        p = self._crm.get(crm_id)
        if p is not None:
            return p  # type: ignore[no-any-return]
        if crm_id in self._ids:
            return self._ids[crm_id]
        row = self.conn.execute(
            "SELECT prospect FROM link WHERE crm_id = ? ORDER BY rowid DESC LIMIT 1", (crm_id,)
        ).fetchone()
        return None if row is None else row[0]

    def take_crm(self, crm_id: str, prospect: str) -> None:
        """This CRM id is the prospect's now."""
        self._crm[crm_id] = prospect

    def get(self, prospect: str, default: Any = None) -> Any:
        c = self._changes.get(prospect)
        if c is not None:
            return c[0]
        row = self._row(prospect)
        return default if row is None else _link(row, self.conn)

    def __getitem__(self, prospect: str) -> Link:
        v = self.get(prospect)
        if v is None:
            raise KeyError(prospect)
        return v  # type: ignore[no-any-return]

    def __contains__(self, prospect: object) -> bool:
        return isinstance(prospect, str) and self.get(prospect) is not None

    def set(self, prospect: str, link: Link, *, new: bool = False) -> None:
        """The prospect's link as this plan leaves it; `new`: linked by this plan (a link
        set new stays new)."""
        c = self._changes.get(prospect)
        if c is None:
            self._changes[prospect] = (link, new, self._row(prospect) is not None)
        else:
            self._changes[prospect] = (link, new or c[1], c[2])

    def is_new(self, prospect: str) -> bool:
        c = self._changes.get(prospect)
        return bool(c is not None and c[1])

    def new(self) -> Iterator[str]:
        """The prospects linked by this plan."""
        return (k for k, c in self._changes.items() if c[1])

    def walk(self) -> Iterator[tuple[str, Link, bool]]:
        """Every link as (prospect, link, linked by this plan): the file's, then the new
        ones, read a block at a time."""
        self._rows, self._ids = {}, {}
        changes = self._changes
        cur = self.conn.execute(f"SELECT prospect, {self._COLS} FROM link")
        while True:
            rows = cur.fetchmany(1000)
            if not rows:
                break
            for row in rows:
                c = changes.get(row[0])
                if c is None:
                    yield row[0], _link(row[1:], self.conn), False
                else:
                    yield row[0], c[0], c[1]
        for k, c in changes.items():
            if not c[2]:
                yield k, c[0], c[1]

    def contact_prospect(self, crm_id: str) -> str | None:
        """The prospect whose link is this contact (the last, in the order of `walk`)."""
        found: list[tuple[int, str]] = [
            (rowid, p)
            for rowid, p in self.conn.execute(
                "SELECT rowid, prospect FROM link WHERE crm_id = ?", (crm_id,)
            )
        ]
        taker = self._crm.get(crm_id)
        if taker is not None and all(p != taker for _r, p in found):
            row = self.conn.execute(
                "SELECT rowid FROM link WHERE prospect = ?", (taker,)
            ).fetchone()
            found.append((row[0] if row is not None else 1 << 62, taker))
        best = None
        for _rowid, p in sorted(found):
            link = self.get(p)
            if link is not None and link[0] == "contact" and link[1] == crm_id:
                best = p
        return best

    def close(self) -> None:
        self._changes.close()
        self._crm.close()
        self._rows, self._ids = {}, {}


SCHEMA_VERSION = "3"
"""2 added the campaign, campaign_member and account tables and four opportunity columns;
3 keyed the error queue by the write held too (`item`: a prospect's two tasks held are two
rows). An older file is migrated when a sync opens it to write."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
-- one row a prospect linked to a CRM record; base: the last values both sides agreed on
CREATE TABLE IF NOT EXISTS link (
  prospect TEXT PRIMARY KEY, object TEXT NOT NULL, crm_id TEXT NOT NULL,
  base TEXT NOT NULL DEFAULT '{}', times TEXT NOT NULL DEFAULT '{}',
  deleted INTEGER NOT NULL DEFAULT 0, history TEXT NOT NULL DEFAULT '[]', at REAL);
CREATE INDEX IF NOT EXISTS link_crm ON link (crm_id);
-- outbound work the engine asked for, coalesced a prospect
CREATE TABLE IF NOT EXISTS queue (
  prospect TEXT PRIMARY KEY, work TEXT NOT NULL, since REAL NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0, next_try REAL NOT NULL DEFAULT (-9e999));
-- rejected writes: held until the prospect or the record changes, or `sync retry`; one
-- row a write: `item` tells a prospect's tasks (their sync keys) and memberships (their
-- campaigns) apart (`held_item`), '' for a lead's or contact's field
CREATE TABLE IF NOT EXISTS error (
  prospect TEXT NOT NULL, object TEXT NOT NULL, crm_id TEXT, field TEXT NOT NULL,
  code TEXT NOT NULL, message TEXT NOT NULL, value TEXT, at REAL NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 1, retry INTEGER NOT NULL DEFAULT 0,
  item TEXT NOT NULL DEFAULT '',
  PRIMARY KEY (prospect, field, item));
-- the held errors a cycle looks at whatever changed: `sync retry`'s marks and the links
-- another prospect holds (`due_errors`); the others wait for their prospect or record
CREATE INDEX IF NOT EXISTS error_due ON error (prospect)
  WHERE retry != 0 OR code = 'DUPLICATE_LINK';
CREATE TABLE IF NOT EXISTS cursor (object TEXT PRIMARY KEY, modstamp TEXT NOT NULL,
  last_id TEXT NOT NULL);
-- CRM facts for the engine (events), committed with the cursor that read them
CREATE TABLE IF NOT EXISTS inbound (
  n INTEGER PRIMARY KEY AUTOINCREMENT, source TEXT NOT NULL, event TEXT NOT NULL,
  delivered INTEGER NOT NULL DEFAULT 0);
-- CRM facts kept for reports (docs/sync.md#the-sync-file): datetimes as ISO 8601 UTC
-- (2026-11-02T09:00:00Z), dates as YYYY-MM-DD, `at` the cycle that last read the row
CREATE TABLE IF NOT EXISTS opportunity (
  id TEXT PRIMARY KEY, name TEXT, stage TEXT, amount REAL, close_date TEXT,
  is_won INTEGER, is_closed INTEGER, deleted INTEGER NOT NULL DEFAULT 0, at TEXT,
  campaign TEXT, created TEXT, account TEXT, closed_at TEXT);
CREATE TABLE IF NOT EXISTS campaign (
  id TEXT PRIMARY KEY, name TEXT, type TEXT, status TEXT, budgeted_cost REAL,
  actual_cost REAL, start_date TEXT, deleted INTEGER NOT NULL DEFAULT 0, at TEXT);
CREATE TABLE IF NOT EXISTS campaign_member (
  id TEXT PRIMARY KEY, campaign TEXT, contact TEXT, lead TEXT, status TEXT,
  has_responded INTEGER, created TEXT, deleted INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS campaign_member_campaign ON campaign_member (campaign);
CREATE TABLE IF NOT EXISTS account (
  id TEXT PRIMARY KEY, name TEXT, deleted INTEGER NOT NULL DEFAULT 0, at TEXT);
CREATE TABLE IF NOT EXISTS opportunity_role (
  id TEXT PRIMARY KEY, opportunity TEXT NOT NULL, contact TEXT NOT NULL, role TEXT,
  is_primary INTEGER, deleted INTEGER NOT NULL DEFAULT 0);
-- prospects a later cycle must look at again (work left waiting, a transient failure)
CREATE TABLE IF NOT EXISTS dirty (prospect TEXT PRIMARY KEY);
-- CRM records sent to marketing (`mrules sync send`): the next cycle creates or updates
-- their prospects, auto create on or off
CREATE TABLE IF NOT EXISTS send (crm_id TEXT PRIMARY KEY, object TEXT NOT NULL, at REAL);
CREATE TABLE IF NOT EXISTS applied_plan (id TEXT PRIMARY KEY, at REAL, summary TEXT);
CREATE TABLE IF NOT EXISTS cycle (
  at REAL PRIMARY KEY, plan TEXT, created INTEGER, linked INTEGER, updated INTEGER,
  pulled INTEGER, errors INTEGER, backlog INTEGER, calls INTEGER);
"""


_OPPORTUNITY_ADDED = ("campaign", "created", "account", "closed_at")


def _migrate_1_to_2(conn: sqlite3.Connection) -> None:
    """Version 1 to 2, in one transaction: the new tables, the new opportunity columns.

    The Opportunity cursor is dropped so that the next cycle reads every opportunity
    again and fills the new columns (an opportunity closed before is not sent again:
    the engine's won/lost goes out only when a row turns closed).
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        have = {r[1] for r in conn.execute("PRAGMA table_info(opportunity)")}
        for col in _OPPORTUNITY_ADDED:
            if have and col not in have:
                conn.execute(f"ALTER TABLE opportunity ADD COLUMN {col} TEXT")
        conn.execute("DELETE FROM cursor WHERE object = 'Opportunity'")
        conn.execute("INSERT OR REPLACE INTO meta VALUES ('schema', '2')")
    except BaseException:
        with contextlib.suppress(sqlite3.Error):  # SQLite may have rolled back already
            conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


_SIDE_OBJECTS = ("task", "campaign_member")
"""The error queue's objects whose writes a prospect may have several of at once."""


def held_item(obj: object, value: object) -> str:
    """Which write an error-queue row holds, across cycles, from its object and its value
    (the JSON the row keeps): a task's sync key (its `Description`), a membership's
    campaign (its `CampaignId`, or the campaign's name when none was found); "" for a lead's
    or contact's field (one value a field), and when the value does not say."""
    if obj not in _SIDE_OBJECTS:
        return ""
    try:
        held = json.loads(str(value or ""))
    except ValueError:
        return ""
    if isinstance(held, str):  # a membership held before its campaign was found: its name
        return held
    if not isinstance(held, dict):
        return ""
    return str(held.get("Description" if obj == "task" else "CampaignId") or "")


def held_campaign(obj: object, value: object) -> str | None:
    """The name a rule gave the campaign of a held membership's row (`add to crm campaign
    "C"`), which the plan's work says too: kept beside the record it was for (`campaign`),
    or the row's value itself for a campaign not found. None for any other row, and for a
    membership held by an mrules that did not keep it (its `CampaignId` says which)."""
    if obj != "campaign_member":
        return None
    try:
        held = json.loads(str(value or ""))
    except ValueError:
        return None
    if isinstance(held, str):
        return held
    name = held.get("campaign") if isinstance(held, dict) else None
    return name if isinstance(name, str) else None


def _migrate_2_to_3(conn: sqlite3.Connection) -> None:
    """Version 2 to 3, in one transaction: the error queue keyed by prospect, field and
    the write held (`item`, from each row's value), so that two held writes of one kind
    are two rows. A version 2 row is one write already (the last refused of its kind)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        have = {r[1] for r in conn.execute("PRAGMA table_info(error)")}
        if have and "item" not in have:
            conn.execute("ALTER TABLE error RENAME TO error_2")
            conn.execute("DROP INDEX IF EXISTS error_due")
            conn.execute(  # not executescript, which commits first
                "CREATE TABLE error (prospect TEXT NOT NULL, object TEXT NOT NULL, crm_id TEXT,"
                " field TEXT NOT NULL, code TEXT NOT NULL, message TEXT NOT NULL, value TEXT,"
                " at REAL NOT NULL, attempts INTEGER NOT NULL DEFAULT 1,"
                " retry INTEGER NOT NULL DEFAULT 0, item TEXT NOT NULL DEFAULT '',"
                " PRIMARY KEY (prospect, field, item))"
            )
            conn.executemany(
                "INSERT INTO error VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    (*row, held_item(row[1], row[6]))
                    for row in conn.execute(
                        "SELECT prospect, object, crm_id, field, code, message, value, at,"
                        " attempts, retry FROM error_2"
                    ).fetchall()
                ),
            )
            conn.execute("DROP TABLE error_2")
        conn.execute("INSERT OR REPLACE INTO meta VALUES ('schema', ?)", (SCHEMA_VERSION,))
    except BaseException:
        with contextlib.suppress(sqlite3.Error):  # SQLite may have rolled back already
            conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


class SyncDbError(StoreError):
    """The sync file cannot be used (not an mrules sync file, damaged, unwritable). A
    StoreError: where no command says otherwise, exit 4 with the message."""


class SyncDbPathError(SyncDbError):
    """The sync file's path is a folder, a named pipe or a device: no file to use. The
    command must be fixed, not the file (exit 2, as a folder given for any file is)."""


class NoSyncYet(SyncDbError):
    """Opened to read, the sync file is not there, or holds no table yet: what a sync
    killed (SIGKILL, a power cut) while it made the file leaves."""


def _forget(conn: sqlite3.Connection | None, made: Path | None) -> None:
    """Close a sync file that failed to open, and remove it if this open `made` it: no
    half-made file is left for `status` and the reports to take for a damaged one."""
    if conn is not None:
        conn.close()
    if made is not None:
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(OSError):
                made.with_name(made.name + suffix).unlink()


def _other_schema(shown: str, version: object) -> str:
    """The refusal of a sync file whose schema this mrules does not write."""
    text = str(version)
    if text.isdigit() and int(text) > int(SCHEMA_VERSION):
        return (
            f"{shown}: the sync file was written by a newer mrules (schema {text}; this"
            f" mrules {__version__} writes schema {SCHEMA_VERSION}): upgrade mrules; the file"
            " was left as it was"
        )
    return f"{shown}: sync file schema {text} is not {SCHEMA_VERSION}"


def default_sync_path(store_path: str | Path) -> Path:
    """`NAME.sync.db` for the store `NAME.db` (`mrules.sync.db` for `mrules.db`)."""
    p = Path(store_path)
    stem = p.name[: -len(p.suffix)] if p.suffix else p.name
    return p.with_name(stem + ".sync.db")


def pending_beside(store_path: str | Path) -> Callable[[int], bool] | None:
    """Whether a seq of the engine's CRM work is still pending, by the sync file beside the
    store (`NAME.sync.db`: done work leaves `state export`'s `pending_crm`); None when there
    is no sync file, or it has no sync yet (all of it is pending).

    Raises:
        SyncDbError: the sync file cannot be read (damaged, not a sync file).
    """
    path = default_sync_path(store_path)
    if not os.path.isfile(path):  # not path.is_file(): it raises on a name too long
        return None
    try:
        db = SyncDb.open(path, readonly=True)
        try:
            work_seq, queued = db.still_pending()
        finally:
            db.close()
    except NoSyncYet:  # a file a killed first sync left, with no table yet: none
        return None
    except SyncDbError:  # it names the file already
        raise
    except (sqlite3.Error, ValueError, KeyError, TypeError) as e:
        raise SyncDbError(f"{path}: cannot read the sync file: {e}") from None
    return lambda seq: seq > work_seq or seq in queued


def read_only_file(e: BaseException, path: Path) -> bool:
    """Whether SQLite could not open or write `path` because the file or its folder is
    read-only (a file's `-wal` and `-shm` are made beside it); not for any other error."""
    code = getattr(e, "sqlite_errorcode", None)
    if code is None or code & 0xFF not in (sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_READONLY):
        return False
    return not os.access(path.parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK))


def _read_only_advice(e: BaseException, p: Path, readonly: bool) -> str:
    """What to do when the sync file, opened for writing, is read-only; "" otherwise."""
    if readonly or not read_only_file(e, p):
        return ""
    return "; it or its folder is read-only: make them writable, then run the same command again"


class SyncDb:
    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self.conn = conn
        self.path = path

    @classmethod
    def open(cls, path: str | Path, *, readonly: bool = False) -> SyncDb:
        p = Path(path)
        shown = printable_path(str(p))  # a name that is not UTF-8 printed as \xNN
        if p.is_dir():
            raise SyncDbPathError(f"{shown}: is a folder, not a sync file")
        with contextlib.suppress(OSError):  # missing: made, or "no sync yet", below
            mode = p.stat().st_mode
            if not stat.S_ISREG(mode) and str(p) != ":memory:":
                # SQLite met a named pipe as "disk I/O error" (exit 4), the damage of a file
                raise SyncDbPathError(
                    f"{shown}: is {special_file_kind(mode)}, not a sync file: move it away (the"
                    " sync keeps its own file there, beside the store)"
                )
        no_sync_yet = f"{shown}: no sync yet (run `mrules sync run` or `sync apply`)"
        if readonly and not p.exists():
            raise NoSyncYet(no_sync_yet)
        created = not readonly and str(p) != ":memory:" and not p.exists()
        conn: sqlite3.Connection | None = None
        try:
            if readonly:
                # By its escaped name, and read-write where SQLite may remove its WAL
                # files at close, with no write allowed (mrules.sqlitefiles).
                conn = sqlite3.connect(reading_uri(p), uri=True, isolation_level=None)
                conn.set_authorizer(refuse_writes)
            else:
                conn = sqlite3.connect(p, isolation_level=None, timeout=30)
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=FULL")
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
            if readonly and not tables:
                conn.close()
                raise NoSyncYet(no_sync_yet)
            if tables and "meta" not in tables:
                conn.close()
                raise SyncDbError(f"{shown}: not an mrules sync file")
            if not readonly:
                version = (
                    conn.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
                    if tables
                    else None
                )
                if version is not None and version[0] == "1":
                    _migrate_1_to_2(conn)
                    version = ("2",)
                if version is not None and version[0] == "2":
                    _migrate_2_to_3(conn)
                    version = (SCHEMA_VERSION,)
                if version is not None and version[0] != SCHEMA_VERSION:
                    # Before any write: the tables below, made in a file of a newer
                    # schema, brought back what it may have dropped or renamed.
                    conn.close()
                    raise SyncDbError(_other_schema(shown, version[0]))
                # One transaction: a full disk midway left a file of some tables and no
                # schema mark, which `sync status` and the reports then failed on.
                mark = (
                    f"INSERT OR REPLACE INTO meta VALUES ('schema', '{SCHEMA_VERSION}');"
                    if version is None
                    else ""
                )
                try:
                    conn.executescript(f"BEGIN IMMEDIATE;{_SCHEMA}{mark}COMMIT;")
                except BaseException:
                    with contextlib.suppress(sqlite3.Error):
                        conn.execute("ROLLBACK")
                    raise
        except UNREADABLE as e:
            _forget(conn, p if created else None)  # a full disk
            raise SyncDbError(
                f"{shown}: cannot use the sync file: {unreadable_reason(e)}"
                f"{full_disk_advice(e) or _read_only_advice(e, p, readonly)}"
            ) from e
        except BaseException:  # Ctrl-C or SIGTERM while the file was made
            _forget(conn, p if created else None)
            raise
        return cls(conn, p)

    def close(self) -> None:
        self.conn.close()

    @contextlib.contextmanager
    def tx(self) -> Iterator[sqlite3.Connection]:
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.conn
        except BaseException:
            # SQLite rolls back by itself on some errors (a full disk: SQLITE_FULL), where
            # a second ROLLBACK fails and its error ("no transaction is active") hid theirs.
            with contextlib.suppress(sqlite3.Error):
                self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    # -- meta ------------------------------------------------------------------------------------
    def meta(self, key: str, default: str | None = None) -> str | None:
        """A meta value, or `default` when it was never set. A table `open` checked but
        SQLite cannot read (its `value` column renamed, a disk error) is the caller's
        error to report: taken for an unset value, `sync status` said "last cycle:
        never; 0 API calls used" of a synced file, and exited 0."""
        row = self.conn.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return default if row is None else row[0]

    def set_meta(self, key: str, value: Any) -> None:
        self.conn.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, str(value)))

    def _meta_number(self, key: str, check: Any) -> float | None:
        v = self.meta(key)
        if v is None or v == "":
            return None
        try:
            return float(check(float(_text(v))))
        except _DAMAGE as e:
            raise _damaged(self.conn, f"meta {key}", e) from None

    @property
    def generation(self) -> int:
        """Bumped by every apply: a plan made before another apply is stale."""
        return int(self._meta_number("generation", _count) or 0)

    @property
    def work_seq(self) -> int:
        """The last seq of the store's pending CRM work taken into the queue."""
        return int(self._meta_number("work_seq", _count) or 0)

    @property
    def last_cycle(self) -> float | None:
        return self._meta_number("last_cycle", _time)

    @property
    def store_seq(self) -> int | None:
        """The store's seq the last plan read the ledger up to (None: read it all)."""
        v = self._meta_number("store_seq", _count)
        return None if v is None else int(v)

    @property
    def failed_cycle(self) -> dict[str, Any] | None:
        """The cycle a call refused for good stopped mid-apply, since the last cycle applied:
        its time (`at`), the error, and the counts of what it had written to the CRM
        (`created`, `updated`, `campaign_members`, `tasks`); None when there is none."""
        v = self.meta("failed_cycle")
        if v is None:
            return None
        try:
            failed = _json(v, dict)
            parse_datetime(_text(failed["at"]))
            _text(failed["error"])
            for key in ("created", "updated", "campaign_members", "tasks"):
                _count(_number(failed[key]))
        except _DAMAGE as e:
            raise _damaged(self.conn, "meta failed_cycle", e) from None
        return failed  # type: ignore[no-any-return]

    @property
    def no_access(self) -> list[dict[str, str]]:
        """The parts the last cycle applied did not do because the integration user may
        not read or write an object (`object`, `code`, `message`, `said`: its one-line
        message); [] when it did them all."""
        v = self.meta("no_access")
        if v is None:
            return []
        try:
            refused = _json(v, list)
            for n in refused:
                for key in ("object", "code", "message", "said"):
                    _text(n[key])
        except _DAMAGE as e:
            raise _damaged(self.conn, "meta no_access", e) from None
        return refused  # type: ignore[no-any-return]

    def api_calls(self) -> int:
        """The CRM API calls the cycles made (their running total)."""
        return int(self._meta_number("api_calls", _count) or 0)

    def retry_mark(self) -> int:
        """The latest `sync retry` mark: each retry marks its errors with a number above
        every mark before it (`error.retry`, 0: no mark). A plan keeps the mark it read
        (`retry_mark`), and its apply clears only the marks up to it: a retry asked for
        while a cycle runs, or after a saved plan was made, waits for the next cycle
        instead of being cleared untried."""
        row = self.conn.execute(
            "SELECT MAX(COALESCE((SELECT CAST(value AS INTEGER) FROM meta"
            " WHERE key = 'retry_mark'), 0), COALESCE((SELECT MAX(retry) FROM error), 0))"
        ).fetchone()
        return int(row[0] or 0)

    def mark_retry(self, conn: sqlite3.Connection, prospects: list[str] | None) -> tuple[int, int]:
        """`sync retry` (inside `tx()`): mark the errors of `prospects` (None: all of them)
        with a new mark, and make their queued work due now; the number of errors marked,
        and of `DUPLICATE_LINK` holds left unmarked (another prospect's CRM record: no
        retry clears them, each cycle looks again)."""
        mark = self.retry_mark() + 1
        self.set_meta("retry_mark", mark)
        among, args = "", []
        if prospects is not None:
            among = f" AND prospect IN ({','.join('?' * len(prospects))})"
            args = list(prospects)
        n = conn.execute(
            f"UPDATE error SET retry = ? WHERE code != ?{among}", [mark, _DUPLICATE_LINK, *args]
        ).rowcount
        (duplicates,) = conn.execute(
            f"SELECT count(*) FROM error WHERE code = ?{among}", [_DUPLICATE_LINK, *args]
        ).fetchone()
        conn.execute(f"UPDATE queue SET next_try = ? WHERE 1{among}", [NOT_WAITING, *args])
        return int(n), int(duplicates)

    # -- reads -------------------------------------------------------------------------------
    def links(self) -> dict[str, Link]:
        """Every link, read whole (tests and small files; a plan looks links up: `plan_links`)."""
        return {
            row[0]: _link(row[1:], self.conn)
            for row in self.conn.execute(
                "SELECT prospect, object, crm_id, base, times, deleted FROM link"
            )
        }

    def plan_links(self) -> PlanLinks:
        """The links as a plan reads and changes them (looked up, not all read)."""
        return PlanLinks(self.conn)

    def link(self, email: str) -> Link | None:
        """One prospect's link, or None."""
        row = self.conn.execute(
            "SELECT object, crm_id, base, times, deleted FROM link WHERE prospect = ?", (email,)
        ).fetchone()
        return None if row is None else _link(row, self.conn)

    def queue(self) -> dict[str, tuple[list[dict[str, Any]], float, int, float]]:
        # Work that never failed (no attempts) does not back off, whatever its `next_try`
        # (files written before NOT_WAITING have 0 there: 1970, after any earlier cycle).
        out: dict[str, tuple[list[dict[str, Any]], float, int, float]] = {}
        for p, w, since, attempts, next_try in self.conn.execute(
            "SELECT prospect, work, since, attempts, next_try FROM queue ORDER BY since, prospect"
        ):
            try:
                work = _work(w)
                out[_text(p)] = (
                    work,
                    _time(since),
                    int(_number(attempts)),
                    _number(next_try) if attempts else NOT_WAITING,
                )
            except _DAMAGE as e:
                raise _damaged(self.conn, f"the queued work of {str(p)[:40]!r}", e) from None
        return out

    def due_errors(self) -> set[str]:
        """The prospects whose held errors are due whatever changed: marked by `sync
        retry`, or a `DUPLICATE_LINK` (each cycle looks again). A held error is otherwise
        due only when its prospect or its record changes, which the cycle learns from the
        ledger and the CRM: an idle cycle reads none of those (the `error_due` index)."""
        sql = "SELECT DISTINCT prospect FROM error WHERE retry != 0 OR code = 'DUPLICATE_LINK'"
        return {str(r[0]) for r in self.conn.execute(sql)}

    def errors(self) -> list[dict[str, Any]]:
        cols = (
            "prospect",
            "object",
            "crm_id",
            "field",
            "code",
            "message",
            "value",
            "at",
            "attempts",
            "retry",
        )
        sql = f"SELECT {', '.join(cols)} FROM error ORDER BY at, prospect, field"
        out = []
        for r in self.conn.execute(sql):
            try:
                _text(r[0]), _text(r[3]), _time(r[7])
            except _DAMAGE as e:
                raise _damaged(self.conn, f"a held error of {str(r[0])[:40]!r}", e) from None
            out.append(dict(zip(cols, r, strict=True)))
        return out

    def cursors(self) -> dict[str, tuple[str, str]]:
        """Per object, how far the sync read the CRM's changes: (modstamp, last id)."""
        out = {}
        for o, m, i in self.conn.execute("SELECT object, modstamp, last_id FROM cursor"):
            try:
                parse_datetime(_text(m))
                out[_text(o)] = (m, _text(i))
            except _DAMAGE as e:
                raise _damaged(self.conn, f"the cursor of {str(o)[:40]!r}", e) from None
        return out

    def undelivered(self) -> list[tuple[int, str, dict[str, Any]]]:
        out = []
        for n, src, ev in self.conn.execute(
            "SELECT n, source, event FROM inbound WHERE delivered = 0 ORDER BY n"
        ):
            try:
                out.append((n, _text(src), _json(ev, dict, json.loads)))
            except _DAMAGE as e:
                raise _damaged(self.conn, f"inbound fact {n}", e) from None
        return out

    def undelivered_sources(self) -> list[str]:
        """The streams (one a plan) with facts not yet delivered, oldest first."""
        return [
            r[0]
            for r in self.conn.execute(
                "SELECT source FROM inbound WHERE delivered = 0 GROUP BY source ORDER BY min(n)"
            )
        ]

    def undelivered_lines(self, source: str) -> Iterator[tuple[int, str]]:
        """A stream's undelivered facts as (n, JSON text), in order, read as they go."""
        yield from self.conn.execute(
            "SELECT n, event FROM inbound WHERE delivered = 0 AND source = ? ORDER BY n",
            (source,),
        )

    def opportunities(self) -> dict[str, dict[str, Any]]:
        cols = ("id", "name", "stage", "amount", "close_date", "is_won", "is_closed", "deleted")
        return {
            r[0]: dict(zip(cols, r, strict=True))
            for r in self.conn.execute(f"SELECT {', '.join(cols)} FROM opportunity")
        }

    def roles(self) -> dict[str, tuple[str, str, bool]]:
        return {
            r[0]: (r[1], r[2], bool(r[3]))
            for r in self.conn.execute(
                "SELECT id, opportunity, contact, deleted FROM opportunity_role"
            )
        }

    def sends(self) -> dict[str, str]:
        """CRM id -> object of the records sent to marketing, not yet synced."""
        try:
            return dict(self.conn.execute("SELECT crm_id, object FROM send").fetchall())
        except sqlite3.OperationalError:  # a file opened read-only from before the table
            return {}

    def applied(self, plan_id: str) -> bool:
        row = self.conn.execute("SELECT 1 FROM applied_plan WHERE id=?", (plan_id,)).fetchone()
        return row is not None

    def still_pending(self) -> tuple[int, set[int]]:
        """What of the engine's CRM work the sync has not done: (work_seq, queued seqs).

        Work with a seq above work_seq is not taken into the queue yet; work at or below
        it is pending while its seq is still in the queue (done work leaves the queue).
        """
        queued: set[int] = set()
        for p, work in self.conn.execute("SELECT prospect, work FROM queue"):
            try:
                queued.update(int(w["seq"]) for w in _work(work) if "seq" in w)
            except _DAMAGE as e:
                raise _damaged(self.conn, f"the queued work of {str(p)[:40]!r}", e) from None
        return self.work_seq, queued

    def dirty(self) -> set[str]:
        return {r[0] for r in self.conn.execute("SELECT prospect FROM dirty")}

    def count(self, table: str) -> int:
        return int(self.conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])

    def live_links(self) -> int:
        """The prospects linked to a CRM record: not those whose record was deleted (or
        merged into another prospect's) in the CRM, which keep their row for its history."""
        return int(self.conn.execute("SELECT count(*) FROM link WHERE deleted = 0").fetchone()[0])
