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
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson

__all__ = ["SCHEMA_VERSION", "LinkMap", "SyncDb", "SyncDbError", "default_sync_path"]

Link = tuple[str, str, dict[str, Any], dict[str, float], bool]


class LinkMap(dict):  # type: ignore[type-arg]
    """Links by prospect: (object, crm id, base, times, deleted), parsed when first read.

    `ids()` gives (prospect, object, crm id) of every link without parsing any base.
    With `fetch`, the raw rows are (object, crm id, deleted) only, and a link's base and
    times are read from the sync file (`fetch(prospect)`) when the link is first read: a
    cycle that looks at a few prospects holds no base snapshot of the others.
    """

    def __init__(
        self,
        raw: dict[str, tuple[Any, ...]],
        fetch: Callable[[str], tuple[str, str]] | None = None,
    ) -> None:
        super().__init__()
        self._raw = raw
        self._fetch = fetch

    def ids(self) -> Iterator[tuple[str, str, str]]:
        for k in self:
            v = dict.get(self, k)
            if v is not None:
                yield k, v[0], v[1]
            else:
                r = self._raw[k]
                yield k, r[0], r[1]

    def __missing__(self, key: str) -> Link:
        r = self._raw[key]  # KeyError when there is no such link
        loads = orjson.loads
        if self._fetch is not None:
            base, times = self._fetch(key)
            v = (r[0], r[1], loads(base), loads(times), bool(r[2]))
        else:
            v = (r[0], r[1], loads(r[2]), loads(r[3]), bool(r[4]))
        dict.__setitem__(self, key, v)
        return v

    def take(self, key: str) -> Link:
        """`self[key]`, for the last time: the map lets go of the parsed link (a link set
        since the map was read is gone from it; one read from the file stays as its row)."""
        v = self[key]
        dict.pop(self, key, None)
        return v

    def get(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        try:
            return self[key]
        except KeyError:
            return default

    def __contains__(self, key: object) -> bool:
        return dict.__contains__(self, key) or key in self._raw

    def __iter__(self) -> Iterator[str]:
        yield from self._raw
        for k in dict.__iter__(self):
            if k not in self._raw:
                yield k

    def __len__(self) -> int:
        return len(set(self._raw) | set(dict.keys(self)))

    def items(self) -> Iterator[tuple[str, Link]]:  # type: ignore[override]
        for k in self:
            yield k, self[k]


SCHEMA_VERSION = "2"
"""2 added the campaign, campaign_member and account tables and four opportunity columns;
a version 1 file is migrated when a sync opens it to write."""

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
  attempts INTEGER NOT NULL DEFAULT 0, next_try REAL NOT NULL DEFAULT 0);
-- rejected writes: held until the prospect or the record changes, or `sync retry`
CREATE TABLE IF NOT EXISTS error (
  prospect TEXT NOT NULL, object TEXT NOT NULL, crm_id TEXT, field TEXT NOT NULL,
  code TEXT NOT NULL, message TEXT NOT NULL, value TEXT, at REAL NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 1, retry INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (prospect, field));
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
        conn.execute("INSERT OR REPLACE INTO meta VALUES ('schema', ?)", (SCHEMA_VERSION,))
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


class SyncDbError(Exception):
    """The sync file cannot be used (not an mrules sync file, damaged, unwritable)."""


def default_sync_path(store_path: str | Path) -> Path:
    """`NAME.sync.db` for the store `NAME.db` (`mrules.sync.db` for `mrules.db`)."""
    p = Path(store_path)
    stem = p.name[: -len(p.suffix)] if p.suffix else p.name
    return p.with_name(stem + ".sync.db")


class SyncDb:
    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self.conn = conn
        self.path = path

    @classmethod
    def open(cls, path: str | Path, *, readonly: bool = False) -> SyncDb:
        p = Path(path)
        if p.is_dir():
            raise SyncDbError(f"{p}: is a folder, not a sync file")
        if readonly and not p.exists():
            raise SyncDbError(f"{p}: no sync yet (run `mrules sync run` or `sync apply`)")
        try:
            if readonly:
                conn = sqlite3.connect(f"file:{p}?mode=ro", uri=True, isolation_level=None)
            else:
                conn = sqlite3.connect(p, isolation_level=None, timeout=30)
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=FULL")
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
            if tables and "meta" not in tables:
                conn.close()
                raise SyncDbError(f"{p}: not an mrules sync file")
            if not readonly:
                version = (
                    conn.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
                    if tables
                    else None
                )
                if version is not None and version[0] == "1":
                    _migrate_1_to_2(conn)
                    version = (SCHEMA_VERSION,)
                conn.executescript(_SCHEMA)
                if version is None:
                    conn.execute(
                        "INSERT OR REPLACE INTO meta VALUES ('schema', ?)", (SCHEMA_VERSION,)
                    )
                elif version[0] != SCHEMA_VERSION:
                    conn.close()
                    raise SyncDbError(f"{p}: sync file schema {version[0]} is not {SCHEMA_VERSION}")
        except sqlite3.DatabaseError as e:
            raise SyncDbError(f"{p}: cannot use the sync file: {e}") from e
        return cls(conn, p)

    def close(self) -> None:
        self.conn.close()

    @contextlib.contextmanager
    def tx(self) -> Iterator[sqlite3.Connection]:
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.conn
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    # -- meta ------------------------------------------------------------------------------------
    def meta(self, key: str, default: str | None = None) -> str | None:
        try:
            row = self.conn.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        except sqlite3.OperationalError:
            return default
        return default if row is None else row[0]

    def set_meta(self, key: str, value: Any) -> None:
        self.conn.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, str(value)))

    @property
    def generation(self) -> int:
        """Bumped by every apply: a plan made before another apply is stale."""
        return int(self.meta("generation", "0") or 0)

    @property
    def work_seq(self) -> int:
        """The last seq of the store's pending CRM work taken into the queue."""
        return int(self.meta("work_seq", "0") or 0)

    @property
    def last_cycle(self) -> float | None:
        v = self.meta("last_cycle")
        return None if v is None else float(v)

    # -- reads -------------------------------------------------------------------------------
    def links(self) -> dict[str, tuple[str, str, dict[str, Any], dict[str, float], bool]]:
        out = {}
        for prospect, obj, crm_id, base, times, deleted in self.conn.execute(
            "SELECT prospect, object, crm_id, base, times, deleted FROM link"
        ):
            loads = orjson.loads
            out[prospect] = (obj, crm_id, loads(base), loads(times), bool(deleted))
        return out

    def links_lazy(self, compact: bool = False) -> LinkMap:
        """`links()` whose base snapshots are parsed when a prospect's link is read; with
        `compact`, also read from the file only then (a few bytes a link are kept, not its
        base snapshot: for a cycle that looks at some prospects, not all)."""
        if compact:
            kinds: dict[str, str] = {}  # one string an object name, not one a row
            sql = "SELECT base, times FROM link WHERE prospect = ?"
            conn = self.conn

            def fetch(prospect: str) -> tuple[str, str]:
                row = conn.execute(sql, (prospect,)).fetchone()
                return (row[0], row[1]) if row is not None else ("{}", "{}")

            return LinkMap(
                {
                    r[0]: (kinds.setdefault(r[1], r[1]), r[2], r[3])
                    for r in conn.execute("SELECT prospect, object, crm_id, deleted FROM link")
                },
                fetch,
            )
        return LinkMap(
            {
                r[0]: r[1:]
                for r in self.conn.execute(
                    "SELECT prospect, object, crm_id, base, times, deleted FROM link"
                )
            }
        )

    def links_for(
        self, emails: list[str]
    ) -> dict[str, tuple[str, str, dict[str, Any], dict[str, float], bool]]:
        """`links()` for these prospects only."""
        out = {}
        loads = orjson.loads
        for i in range(0, len(emails), 500):
            chunk = emails[i : i + 500]
            marks = ",".join("?" * len(chunk))
            for prospect, obj, crm_id, base, times, deleted in self.conn.execute(
                "SELECT prospect, object, crm_id, base, times, deleted FROM link"
                f" WHERE prospect IN ({marks})",
                chunk,
            ):
                out[prospect] = (obj, crm_id, loads(base), loads(times), bool(deleted))
        return out

    def link(self, email: str) -> Link | None:
        """One prospect's link, or None."""
        row = self.conn.execute(
            "SELECT object, crm_id, base, times, deleted FROM link WHERE prospect = ?", (email,)
        ).fetchone()
        if row is None:
            return None
        loads = orjson.loads
        return (row[0], row[1], loads(row[2]), loads(row[3]), bool(row[4]))

    def queue(self) -> dict[str, tuple[list[dict[str, Any]], float, int, float]]:
        return {
            p: (json.loads(w), since, attempts, next_try)
            for p, w, since, attempts, next_try in self.conn.execute(
                "SELECT prospect, work, since, attempts, next_try FROM queue"
                " ORDER BY since, prospect"
            )
        }

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
        return [dict(zip(cols, r, strict=True)) for r in self.conn.execute(sql)]

    def cursors(self) -> dict[str, tuple[str, str]]:
        return {o: (m, i) for o, m, i in self.conn.execute("SELECT * FROM cursor")}

    def undelivered(self) -> list[tuple[int, str, dict[str, Any]]]:
        return [
            (n, src, json.loads(ev))
            for n, src, ev in self.conn.execute(
                "SELECT n, source, event FROM inbound WHERE delivered = 0 ORDER BY n"
            )
        ]

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
        for (work,) in self.conn.execute("SELECT work FROM queue"):
            queued.update(int(w["seq"]) for w in json.loads(work) if "seq" in w)
        return self.work_seq, queued

    def dirty(self) -> set[str]:
        return {r[0] for r in self.conn.execute("SELECT prospect FROM dirty")}

    def count(self, table: str) -> int:
        return int(self.conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
