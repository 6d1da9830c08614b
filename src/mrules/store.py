"""The SQLite state store of `mrules run`: prospect state, resume position, ledger, outputs.

The engine owns what a prospect's state *means* (it hands over opaque bytes);
this module owns how it is kept: the schema, transactions, locking and
errors. The layout is documented table by table in docs/store.md.

Resume model. Everything one batch of events changes (prospect states,
visitors, activities, ledger, outbox, CRM work, rejects, shared state, rule
first-seen clocks) is written by `Store.commit` in ONE SQLite transaction
together with the stream position (`streams.line`) and the ids of the events
the batch applied. A process killed at any instant therefore leaves the store
at the end of some committed batch: the position and the state always agree,
and a new run resumes after `streams.line` (and skips any event whose id is
in `applied`), so no event is applied twice and none is skipped.

Durability. The store runs in WAL mode with `synchronous=NORMAL`: a commit
is in the operating system's hands when `commit` returns, so it survives the
process being killed (SIGKILL, OOM killer). A power loss or kernel crash may
roll back the last few commits, never half of one; the run then replays
those events from the stream, which is safe for the same reason.

Locking. A writer holds an exclusive `fcntl.flock` on the sidecar file
`PATH.lock` (which holds its pid) for as long as the store is open, so a
second writer refuses at once with `StoreLocked` (or waits, if asked). The
kernel drops the lock when the holder dies, so a killed run never leaves a
stale lock. Read-only opens take no lock: WAL lets them read the last
committed batch while a run writes the next one.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

from mrules import __version__
from mrules.atomic import fsync_folder

__all__ = [
    "APPLICATION_ID",
    "SCHEMA_VERSION",
    "Batch",
    "Store",
    "StoreError",
    "StoreLocked",
    "StorePathError",
]

SCHEMA_VERSION = 1
"""Bump on every schema change, with a migration in `_MIGRATIONS`."""

APPLICATION_ID = 0x6D72756C
"""`PRAGMA application_id` of every mrules store ("mrul"), so `file` and we can tell it apart."""

_LOCK_POLL = 0.05  # seconds between tries when waiting for the lock with a timeout
_BUSY_TIMEOUT_MS = 10_000  # for SQLite's own locks (a reader checkpointing, a sqlite3 shell)
_CACHE_KIB = 32_768  # the writer's page cache: index pages of a 200,000-event run stay in memory

_SCHEMA = """
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value
) WITHOUT ROWID;
CREATE TABLE streams (
    source     TEXT PRIMARY KEY,
    line       INTEGER NOT NULL,
    updated_at TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE rules (
    key        TEXT PRIMARY KEY,
    kind       TEXT NOT NULL,
    first_seen REAL
) WITHOUT ROWID;
CREATE TABLE prospects (
    email TEXT NOT NULL PRIMARY KEY,
    state BLOB NOT NULL
);
CREATE TABLE visitors (
    visitor  TEXT NOT NULL PRIMARY KEY,
    prospect TEXT,
    history  BLOB NOT NULL
);
CREATE TABLE applied (
    id TEXT PRIMARY KEY
) WITHOUT ROWID;
CREATE TABLE activities (
    id         INTEGER PRIMARY KEY,
    prospect   TEXT,
    visitor    TEXT,
    ts         REAL NOT NULL,
    type       TEXT NOT NULL,
    asset_kind TEXT,
    asset      TEXT,
    url        TEXT,
    source     TEXT NOT NULL,
    line       INTEGER NOT NULL,
    event_id   TEXT
);
CREATE INDEX activities_prospect ON activities (prospect, ts);
CREATE INDEX activities_anonymous ON activities (visitor) WHERE prospect IS NULL;
CREATE TABLE ledger (
    seq       INTEGER PRIMARY KEY,
    ts        REAL,
    prospect  TEXT,
    rule_kind TEXT NOT NULL,
    rule_name TEXT NOT NULL,
    rule_loc  TEXT,
    source    TEXT,
    line      INTEGER,
    event_id  TEXT,
    action    TEXT NOT NULL,
    args      TEXT,
    before    TEXT,
    after     TEXT
);
CREATE INDEX ledger_prospect ON ledger (prospect, seq);
CREATE TABLE outbox (
    seq      INTEGER PRIMARY KEY,
    ts       REAL,
    prospect TEXT,
    kind     TEXT NOT NULL,
    payload  TEXT NOT NULL
);
CREATE TABLE crm_pending (
    seq      INTEGER PRIMARY KEY,
    ts       REAL,
    prospect TEXT,
    kind     TEXT NOT NULL,
    payload  TEXT NOT NULL,
    done     INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX crm_pending_prospect ON crm_pending (prospect, seq);
CREATE TABLE rejects (
    source TEXT NOT NULL,
    line   INTEGER NOT NULL,
    reason TEXT NOT NULL,
    text   TEXT NOT NULL,
    PRIMARY KEY (source, line)
) WITHOUT ROWID;
CREATE TABLE shared (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;
"""

# Schema version N -> SQL script that turns an N store into an N+1 store.
_MIGRATIONS: dict[int, str] = {}

# The writes of one batch, in the order `commit` runs them. Activities go in
# before `attach_visitor`, so an `identify` also claims the anonymous page
# views of its own batch. `activities_anonymous` indexes only rows without a
# prospect, the ones `attach_visitor` looks for, so identified activities
# (most of them) cost no visitor index update.
_UPSERT_PROSPECT = (
    "INSERT INTO prospects (email, state) VALUES (?, ?) "
    "ON CONFLICT (email) DO UPDATE SET state = excluded.state"
)
_UPSERT_VISITOR = (
    "INSERT INTO visitors (visitor, prospect, history) VALUES (?, ?, ?) "
    "ON CONFLICT (visitor) DO UPDATE SET prospect = excluded.prospect, history = excluded.history"
)
_INSERT_ACTIVITY = (
    "INSERT INTO activities (prospect, visitor, ts, type, asset_kind, asset, url, source, line,"
    " event_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_ATTACH_VISITOR = "UPDATE activities SET prospect = ? WHERE visitor = ? AND prospect IS NULL"
# `ON CONFLICT (key) DO NOTHING`, not `INSERT OR IGNORE`: OR IGNORE would also
# drop rows that break NOT NULL, silently.
_INSERT_APPLIED = "INSERT INTO applied (id) VALUES (?) ON CONFLICT (id) DO NOTHING"
_INSERT_LEDGER = (
    "INSERT INTO ledger (seq, ts, prospect, rule_kind, rule_name, rule_loc, source, line,"
    " event_id, action, args, before, after) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_INSERT_OUTBOX = "INSERT INTO outbox (seq, ts, prospect, kind, payload) VALUES (?, ?, ?, ?, ?)"
_INSERT_CRM = "INSERT INTO crm_pending (seq, ts, prospect, kind, payload) VALUES (?, ?, ?, ?, ?)"
_UPSERT_REJECT = (
    "INSERT INTO rejects (source, line, reason, text) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (source, line) DO UPDATE SET reason = excluded.reason, text = excluded.text"
)
_UPSERT_SHARED = (
    "INSERT INTO shared (key, value) VALUES (?, ?) "
    "ON CONFLICT (key) DO UPDATE SET value = excluded.value"
)
_INSERT_RULE = (
    "INSERT INTO rules (key, kind, first_seen) VALUES (?, ?, ?) ON CONFLICT (key) DO NOTHING"
)
_UPSERT_STREAM = (
    "INSERT INTO streams (source, line, updated_at) VALUES (?, ?, ?) "
    "ON CONFLICT (source) DO UPDATE SET line = excluded.line, updated_at = excluded.updated_at"
)
_SET_META = (
    "INSERT INTO meta (key, value) VALUES (?, ?) "
    "ON CONFLICT (key) DO UPDATE SET value = excluded.value"
)

_LOG_KEY = "actions_log:"  # meta key prefix: where an action log (by absolute path) starts

_ACTIVITY_COLUMNS = "prospect, visitor, ts, type, asset_kind, asset, url, source, line, event_id"
_LEDGER_COLUMNS = (
    "seq, ts, prospect, rule_kind, rule_name, rule_loc, source, line, event_id, action,"
    " args, before, after"
)


class StoreError(Exception):
    """The store cannot be opened, read or written; the message says why and what to do."""


class StorePathError(StoreError):
    """The store path itself is wrong (a folder, a missing folder, no store to read): usage."""


class StoreLocked(StoreError):
    """Another process holds the store for writing.

    Attributes:
        path: the store's path.
        pid: the holder's process id as written in the lock file, or None if unknown.
    """

    def __init__(self, message: str, path: Path, pid: int | None) -> None:
        super().__init__(message)
        self.path = path
        self.pid = pid


@dataclass
class Batch:
    """Everything one transaction writes. The engine fills it and calls Store.commit."""

    source: str  # stream identity (absolute path of the events file, or "-")
    line: int  # last stream line (1-based) fully processed by this batch
    clock: float | None  # engine clock (epoch seconds, event time) after the batch
    prospects: dict[str, bytes] = field(default_factory=dict)  # email -> state (upsert)
    # visitor -> (prospect email or None, history bytes) (upsert)
    visitors: dict[str, tuple[str | None, bytes]] = field(default_factory=dict)
    applied_ids: list[str] = field(default_factory=list)  # event ids applied in this batch
    # (prospect|None, visitor|None, ts, type, asset_kind|None, asset|None, url|None,
    #  source, line, event_id|None)
    activities: list[tuple[Any, ...]] = field(default_factory=list)
    # (seq, ts, prospect, rule_kind, rule_name, rule_loc, source, line, event_id, action,
    #  args_json, before_json, after_json)
    ledger: list[tuple[Any, ...]] = field(default_factory=list)
    # (seq, ts, prospect, kind, payload_json)  kind: notify | autoresponder | task
    outbox: list[tuple[Any, ...]] = field(default_factory=list)
    # (seq, ts, prospect, kind, payload_json)  kind: campaign_member | task | assignment_rule ...
    crm_pending: list[tuple[Any, ...]] = field(default_factory=list)
    rejects: list[tuple[Any, ...]] = field(default_factory=list)  # (source, line, reason, text)
    shared: dict[str, str] | None = None  # key -> JSON text (upsert), None = unchanged
    # (rule key, kind, first_seen clock) insert-if-absent
    rules: list[tuple[str, str, float | None]] = field(default_factory=list)
    ruleset_version: str | None = None  # set meta when not None
    # (visitor, prospect): UPDATE activities SET prospect=? WHERE visitor=? AND prospect IS NULL
    attach_visitor: list[tuple[str, str]] = field(default_factory=list)


class Store:
    """An open mrules store: reads at any time, writes only through `commit`.

    Open it with `Store.open`, use it as a context manager, or call `close`.
    """

    path: Path
    readonly: bool

    def __init__(
        self, path: Path, conn: sqlite3.Connection, lock_fd: int | None, readonly: bool
    ) -> None:
        self.path = path
        self.readonly = readonly
        self._conn: sqlite3.Connection | None = conn
        self._lock_fd = lock_fd

    # -- opening and closing ---------------------------------------------------------------

    @classmethod
    def open(
        cls,
        path: str | Path,
        *,
        wait: bool = False,
        timeout: float | None = None,
        readonly: bool = False,
    ) -> Store:
        """Open (creating it if needed) the store at `path`.

        Args:
            path: the SQLite file; `PATH.lock` beside it is the writers' lock.
            wait: if another process holds the store, wait for it instead of refusing.
            timeout: with `wait`, give up (StoreLocked) after this many seconds.
            readonly: read the last committed state without locking or creating anything.

        Raises:
            StoreLocked: another process holds the store (and `wait` is false or timed out).
            StoreError: the path is not a usable mrules store; the message says why.
        """
        path = Path(path)
        _check_path(path, readonly)
        if readonly:
            return cls(path, _connect_readonly(path), None, True)
        lock_fd = _lock(path, wait, timeout)
        try:
            conn = _connect_writer(path)
        except BaseException:
            _unlock(lock_fd)
            raise
        return cls(path, conn, lock_fd, False)

    def close(self) -> None:
        """Close the connection and release the lock; safe to call twice."""
        if self._conn is not None:
            with contextlib.suppress(sqlite3.Error):
                self._conn.close()
            self._conn = None
        if self._lock_fd is not None:
            _unlock(self._lock_fd)
            self._lock_fd = None

    def __enter__(self) -> Store:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        mode = "closed" if self._conn is None else "read-only" if self.readonly else "writer"
        return f"Store({str(self.path)!r}, {mode})"

    # -- reads -----------------------------------------------------------------------------

    def stream_position(self, source: str) -> int:
        """The last line of `source` a committed batch processed; 0 if never seen."""
        row = self._one("SELECT line FROM streams WHERE source = ?", (source,))
        return 0 if row is None else int(row[0])

    def streams(self) -> dict[str, int]:
        """Every stream this store has read, with its position."""
        return dict(self._all("SELECT source, line FROM streams ORDER BY source"))

    def clock(self) -> float | None:
        """The engine clock after the last committed batch, or None before any."""
        row = self._one("SELECT value FROM meta WHERE key = 'clock'")
        return None if row is None or row[0] is None else float(row[0])

    def ruleset_version(self) -> str | None:
        """The version of the rule set that last committed, or None."""
        row = self._one("SELECT value FROM meta WHERE key = 'ruleset_version'")
        return None if row is None else str(row[0])

    def rules_first_seen(self) -> dict[str, float | None]:
        """Rule key -> the clock when the rule first appeared in a run of this store."""
        return dict(self._all("SELECT key, first_seen FROM rules"))

    def rules(self) -> Iterator[tuple[str, str, float | None]]:
        """Every known rule as (key, kind, first_seen), ordered by key."""
        return self._iter("SELECT key, kind, first_seen FROM rules ORDER BY key")

    def applied_ids(self) -> set[str]:
        """The ids of every applied event (for the engine's in-memory dedupe set)."""
        return {row[0] for row in self._all("SELECT id FROM applied")}

    def has_applied(self, event_id: str) -> bool:
        """Whether the event with this id was applied by a committed batch."""
        return self._one("SELECT 1 FROM applied WHERE id = ?", (event_id,)) is not None

    def prospect(self, email: str) -> bytes | None:
        """The state the engine stored for this prospect, or None."""
        row = self._one("SELECT state FROM prospects WHERE email = ?", (email,))
        return None if row is None else bytes(row[0])

    def prospects(self) -> Iterator[tuple[str, bytes]]:
        """Every prospect as (email, state), ordered by email."""
        return self._iter("SELECT email, state FROM prospects ORDER BY email")

    def prospect_count(self) -> int:
        """How many prospects the store holds."""
        row = self._one("SELECT count(*) FROM prospects")
        return int(row[0]) if row else 0

    def visitors(self) -> Iterator[tuple[str, str | None, bytes]]:
        """Every visitor as (visitor, prospect or None, history), ordered by visitor."""
        return self._iter("SELECT visitor, prospect, history FROM visitors ORDER BY visitor")

    def anonymous_views(self, visitor: str) -> list[tuple[float, str]]:
        """A visitor's committed anonymous page views as (ts, url), in arrival order."""
        sql = (
            "SELECT ts, url FROM activities WHERE visitor = ? AND prospect IS NULL"
            " AND type = 'page_view' ORDER BY id"
        )
        return [(ts, url or "") for ts, url in self._all(sql, (visitor,))]

    def shared(self) -> dict[str, str]:
        """State shared across prospects (round-robin counters, throttles): key -> JSON text."""
        return dict(self._all("SELECT key, value FROM shared"))

    def activities(self, prospect: str | None = None) -> Iterator[tuple[Any, ...]]:
        """Activities as Batch.activities tuples, ordered by ts then insertion."""
        if prospect is None:
            sql = f"SELECT {_ACTIVITY_COLUMNS} FROM activities ORDER BY ts, id"
            return self._iter(sql)
        sql = f"SELECT {_ACTIVITY_COLUMNS} FROM activities WHERE prospect = ? ORDER BY ts, id"
        return self._iter(sql, (prospect,))

    def ledger(self, prospect: str | None = None, after_seq: int = 0) -> Iterator[tuple[Any, ...]]:
        """Ledger entries as Batch.ledger tuples with seq > after_seq, ordered by seq."""
        if prospect is None:
            sql = f"SELECT {_LEDGER_COLUMNS} FROM ledger WHERE seq > ? ORDER BY seq"
            return self._iter(sql, (after_seq,))
        sql = f"SELECT {_LEDGER_COLUMNS} FROM ledger WHERE prospect = ? AND seq > ? ORDER BY seq"
        return self._iter(sql, (prospect, after_seq))

    def max_seq(self) -> int:
        """The largest seq of ledger, outbox and crm_pending (one shared sequence); 0 if none."""
        row = self._one(
            "SELECT max(coalesce((SELECT max(seq) FROM ledger), 0),"
            " coalesce((SELECT max(seq) FROM outbox), 0),"
            " coalesce((SELECT max(seq) FROM crm_pending), 0))"
        )
        return int(row[0]) if row else 0

    def outbox(self) -> Iterator[tuple[Any, ...]]:
        """Outbox messages as Batch.outbox tuples, ordered by seq."""
        return self._iter("SELECT seq, ts, prospect, kind, payload FROM outbox ORDER BY seq")

    def crm_pending(self, prospect: str | None = None) -> Iterator[tuple[Any, ...]]:
        """CRM work not yet done, as Batch.crm_pending tuples, ordered by seq."""
        if prospect is None:
            sql = "SELECT seq, ts, prospect, kind, payload FROM crm_pending WHERE done = 0"
            return self._iter(sql + " ORDER BY seq")
        sql = (
            "SELECT seq, ts, prospect, kind, payload FROM crm_pending"
            " WHERE prospect = ? AND done = 0 ORDER BY seq"
        )
        return self._iter(sql, (prospect,))

    def rejects(self, source: str | None = None) -> Iterator[tuple[Any, ...]]:
        """Rejected lines as (source, line, reason, text), ordered by source then line."""
        if source is None:
            return self._iter(
                "SELECT source, line, reason, text FROM rejects ORDER BY source, line"
            )
        sql = "SELECT source, line, reason, text FROM rejects WHERE source = ? ORDER BY line"
        return self._iter(sql, (source,))

    def meta(self) -> dict[str, str]:
        """The meta table (schema_version, ruleset_version, clock, created_at, mrules_version)."""
        return {k: str(v) for k, v in self._all("SELECT key, value FROM meta ORDER BY key")}

    def log_start(self, log: str) -> int | None:
        """The seq after which the action log at absolute path `log` starts, if noted."""
        row = self._one("SELECT value FROM meta WHERE key = ?", (_LOG_KEY + log,))
        return None if row is None else int(row[0])

    def set_log_start(self, log: str, seq: int) -> None:
        """Note where a new action log starts (`meta`, key `actions_log:PATH`).

        A small transaction of its own, before the run's first batch: a run
        killed before writing the log's first row leaves an empty file, and
        the next run writes every row after `seq` into it.
        """
        if self.readonly:
            raise StoreError(f"store {self.path} was opened read-only")
        conn = self._connection()
        try:
            conn.execute(_SET_META, (_LOG_KEY + log, int(seq)))
        except sqlite3.Error as e:
            raise StoreError(
                f"cannot write to store {self.path}: {_describe(e)}; {_advice(e, self.path)}"
            ) from e

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[Store]:
        """Read several things from one committed state, even while a run commits.

        Inside the block every read sees the same batch (a WAL read transaction);
        consume iterators before the block ends.
        """
        conn = self._connection()
        if conn.in_transaction:
            raise StoreError("snapshots do not nest")
        self._exec(conn, "BEGIN")
        try:
            yield self
        finally:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("COMMIT")

    # -- writes ----------------------------------------------------------------------------

    def commit(self, batch: Batch) -> None:
        """Write everything in `batch` and the stream position in one transaction.

        On any error the transaction is rolled back: nothing of the batch is kept.

        Raises:
            StoreError: the store is read-only or closed, or SQLite refused a row
                (the message names the part of the batch).
        """
        if self.readonly:
            raise StoreError(f"store {self.path} was opened read-only")
        conn = self._connection()
        part = "transaction"
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                part = "prospects"
                if batch.prospects:
                    conn.executemany(_UPSERT_PROSPECT, batch.prospects.items())
                part = "visitors"
                if batch.visitors:
                    conn.executemany(
                        _UPSERT_VISITOR, [(v, p, h) for v, (p, h) in batch.visitors.items()]
                    )
                part = "activities"
                if batch.activities:
                    conn.executemany(_INSERT_ACTIVITY, batch.activities)
                part = "attach_visitor"
                if batch.attach_visitor:
                    conn.executemany(_ATTACH_VISITOR, [(p, v) for v, p in batch.attach_visitor])
                part = "applied_ids"
                if batch.applied_ids:
                    conn.executemany(_INSERT_APPLIED, zip(batch.applied_ids, strict=True))
                part = "ledger"
                if batch.ledger:
                    conn.executemany(_INSERT_LEDGER, batch.ledger)
                part = "outbox"
                if batch.outbox:
                    conn.executemany(_INSERT_OUTBOX, batch.outbox)
                part = "crm_pending"
                if batch.crm_pending:
                    conn.executemany(_INSERT_CRM, batch.crm_pending)
                part = "rejects"
                if batch.rejects:
                    conn.executemany(_UPSERT_REJECT, batch.rejects)
                part = "shared"
                if batch.shared:
                    conn.executemany(_UPSERT_SHARED, batch.shared.items())
                part = "rules"
                if batch.rules:
                    conn.executemany(_INSERT_RULE, batch.rules)
                part = "stream position"
                conn.execute(_UPSERT_STREAM, (batch.source, batch.line, _now()))
                part = "meta"
                meta: list[tuple[str, Any]] = [("mrules_version", __version__)]
                if batch.clock is not None:
                    meta.append(("clock", float(batch.clock)))
                if batch.ruleset_version is not None:
                    meta.append(("ruleset_version", batch.ruleset_version))
                conn.executemany(_SET_META, meta)
                part = "transaction"
                conn.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
                raise
        except (sqlite3.Error, ValueError, TypeError) as e:
            raise StoreError(
                f"cannot commit to store {self.path} ({part} of the batch at"
                f" {batch.source}:{batch.line}): {_describe(e)}; nothing of this batch was"
                f" written, every earlier batch is kept; {_advice(e, self.path)}"
            ) from e

    # -- internals -------------------------------------------------------------------------

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StoreError(f"store {self.path} is closed")
        return self._conn

    def _exec(
        self, conn: sqlite3.Connection, sql: str, params: tuple[Any, ...] = ()
    ) -> sqlite3.Cursor:
        try:
            return conn.execute(sql, params)
        except sqlite3.Error as e:
            raise StoreError(_read_message(self.path, e)) from e

    def _one(self, sql: str, params: tuple[Any, ...] = ()) -> Any:
        return self._exec(self._connection(), sql, params).fetchone()

    def _all(self, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        cur = self._exec(self._connection(), sql, params)
        try:
            return cur.fetchall()
        except sqlite3.Error as e:
            raise StoreError(_read_message(self.path, e)) from e

    def _iter(self, sql: str, params: tuple[Any, ...] = ()) -> Iterator[Any]:
        # Executed now, so a bad store fails at the call, not at the first next().
        cur = self._exec(self._connection(), sql, params)
        return self._rows(cur)

    def _rows(self, cur: sqlite3.Cursor) -> Iterator[Any]:
        try:
            yield from cur
        except sqlite3.Error as e:
            raise StoreError(_read_message(self.path, e)) from e


# -- opening: paths, lock, connections, schema ---------------------------------------------


def _check_path(path: Path, readonly: bool) -> None:
    """Refuse paths SQLite would fail on obscurely (or, read-only, silently create)."""
    if path.is_dir():
        raise StorePathError(
            f"store {path} is a folder, not a file (did you mean {path}/mrules.db?)"
        )
    if readonly:
        if not path.exists():
            raise StorePathError(f"no store at {path}")
    else:
        parent = path.parent
        if not parent.is_dir():
            raise StorePathError(f"cannot create store {path}: folder {parent} does not exist")
    _refuse_empty_file(path)


def _refuse_empty_file(path: Path) -> None:
    """A store file that exists is never taken as new: mrules creates stores whole.

    A 0-byte file is what a full disk, a failed copy or `touch` leaves; taking
    it for a new store would silently start over from nothing.
    """
    try:
        size = path.stat().st_size
    except OSError:
        return
    if size == 0:
        raise StoreError(
            f"store {path} is an empty file (0 bytes), not an mrules store; if it is a copy"
            f" that failed, copy the store again; to start a new store from nothing, delete it"
            f" (rm {path}) and run again"
        )


def _lock_path(path: Path) -> Path:
    return path.with_name(path.name + ".lock")


def _lock(path: Path, wait: bool, timeout: float | None) -> int:
    """Take the writers' lock on `PATH.lock` and write our pid into it."""
    lock_path = _lock_path(path)
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as e:
        raise StoreError(
            f"cannot create lock file {lock_path}: {e.strerror}; {_os_advice(e)}"
        ) from e
    try:
        _acquire(fd, path, lock_path, wait, timeout)
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        except OSError as e:
            raise StoreError(
                f"cannot write lock file {lock_path}: {e.strerror}; {_os_advice(e)}"
            ) from e
    except BaseException:
        os.close(fd)
        raise
    return fd


def _acquire(fd: int, path: Path, lock_path: Path, wait: bool, timeout: float | None) -> None:
    if wait and timeout is None:
        fcntl.flock(fd, fcntl.LOCK_EX)
        return
    deadline = time.monotonic() + (timeout or 0.0)
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except OSError as e:
            if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise StoreError(f"cannot lock {lock_path}: {e.strerror}") from e
        if not wait or time.monotonic() >= deadline:
            break
        time.sleep(_LOCK_POLL)
    pid = _holder(fd)
    holder = f"pid {pid}" if pid is not None else "pid unknown"
    waited = f" after waiting {timeout:g} s" if wait else ""
    raise StoreLocked(
        f"store {path} is in use by another mrules process ({holder}){waited}", path, pid
    )


def _holder(fd: int) -> int | None:
    """The pid the lock holder wrote, or None (it may not have written it yet)."""
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def _unlock(fd: int) -> None:
    """Blank the pid and release the lock; the file stays (deleting it would race)."""
    with contextlib.suppress(OSError):
        os.ftruncate(fd, 0)
    with contextlib.suppress(OSError):
        fcntl.flock(fd, fcntl.LOCK_UN)
    os.close(fd)


def _create(path: Path) -> None:
    """Create a new store whole: schema in a temporary file, then renamed into place.

    So a store file that exists always holds a schema, and a run killed while
    creating one leaves no half-made store (only, at worst, a hidden temporary
    file, removed by the next creation).
    """
    folder = path.parent
    tmp = folder / f".{path.name}.new"
    for leftover in (tmp, tmp.with_name(tmp.name + "-journal")):
        with contextlib.suppress(FileNotFoundError):
            leftover.unlink()
    try:
        conn = sqlite3.connect(tmp, isolation_level=None)
        try:
            _init_schema(conn, path)
        finally:
            conn.close()
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.link(tmp, path)  # never replaces a file that appeared meanwhile
    except FileExistsError:
        pass
    except sqlite3.Error as e:
        raise StoreError(_open_message(path, e)) from e
    except OSError as e:
        raise StoreError(f"cannot create store {path}: {e.strerror}; {_os_advice(e)}") from e
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()
    fsync_folder(folder)


def _connect_writer(path: Path) -> sqlite3.Connection:
    """Connect, switch to WAL, create or check the schema; every error becomes StoreError."""
    if not path.exists():
        _create(path)
    try:
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=True)
    except sqlite3.Error as e:
        raise StoreError(_open_message(path, e)) from e
    try:
        conn.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
        # Look before switching to WAL: a database that is not ours stays untouched.
        version = _schema_version(conn, path)
        if version is None:  # mrules creates stores whole (`_create`): this one is not ours
            raise StoreError(
                f"{path} is an empty SQLite database, not an mrules store; to start a new"
                f" store there, delete it (rm {path}) and run again"
            )
        _refuse_newer(version, path)
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise StoreError(f"cannot open store {path}: SQLite refused WAL mode ({mode})")
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute(f"PRAGMA cache_size = -{_CACHE_KIB}")
        conn.execute("PRAGMA foreign_keys = OFF")
        _init_schema(conn, path)
    except sqlite3.Error as e:
        conn.close()
        raise StoreError(_open_message(path, e)) from e
    except BaseException:
        conn.close()
        raise
    return conn


def _connect_readonly(path: Path) -> sqlite3.Connection:
    try:
        return _connect_readonly_as(path, "?mode=ro")
    except StoreError as e:
        cause = e.__cause__
        if not isinstance(cause, sqlite3.Error) or _code(cause) not in (
            sqlite3.SQLITE_CANTOPEN,
            sqlite3.SQLITE_READONLY,
        ):
            raise
        if os.access(path.parent, os.W_OK) and not _read_only_fs(path.parent):
            raise
    # A WAL store in a read-only folder (a read-only mount, an archive): SQLite
    # cannot create its `-shm` index there, and no writer can be at work either
    # (it could not create its `-wal`), so the file can be read as immutable.
    return _connect_readonly_as(path, "?mode=ro&immutable=1")


def _read_only_fs(folder: Path) -> bool:
    try:
        return bool(os.statvfs(folder).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def _connect_readonly_as(path: Path, query: str) -> sqlite3.Connection:
    uri = path.resolve().as_uri() + query
    try:
        conn = sqlite3.connect(uri, uri=True, isolation_level=None)
    except sqlite3.Error as e:
        raise StoreError(_open_message(path, e)) from e
    try:
        conn.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
        version = _schema_version(conn, path)
        if version is None:
            raise StoreError(
                f"store {path} is empty: no run has written to it yet; if that is unexpected,"
                f" delete it (rm {path}) and run again"
            )
        _refuse_newer(version, path)
        if version < SCHEMA_VERSION:
            raise StoreError(
                f"store {path} has schema {version} from an older mrules; open it once"
                f" for writing (e.g. with `mrules run`) to upgrade it to schema {SCHEMA_VERSION}"
            )
    except sqlite3.Error as e:
        conn.close()
        raise StoreError(_open_message(path, e)) from e
    except BaseException:
        conn.close()
        raise
    return conn


def _schema_version(conn: sqlite3.Connection, path: Path) -> int | None:
    """The store's schema version, None for an empty database; refuse foreign databases."""
    app_id = conn.execute("PRAGMA application_id").fetchone()[0]
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if app_id not in (0, APPLICATION_ID) or (tables and "meta" not in tables):
        raise StoreError(
            f"{path} is a SQLite database but not an mrules store: give another --store path"
        )
    if not tables:
        return None
    row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    if row is None or not str(row[0]).isdigit():
        raise StoreError(f"{path} is not an mrules store (no schema version)")
    return int(row[0])


def _refuse_newer(version: int, path: Path) -> None:
    if version > SCHEMA_VERSION:
        raise StoreError(
            f"store {path} was written by a newer mrules (schema {version}; this mrules"
            f" {__version__} reads schema {SCHEMA_VERSION} and older): upgrade mrules"
        )


def _init_schema(conn: sqlite3.Connection, path: Path) -> None:
    conn.execute("BEGIN IMMEDIATE")
    try:
        version = _schema_version(conn, path)
        if version is None:
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            conn.executemany(
                _SET_META,
                [
                    ("schema_version", SCHEMA_VERSION),
                    ("created_at", _now()),
                    ("mrules_version", __version__),
                ],
            )
        else:
            _refuse_newer(version, path)
            while version < SCHEMA_VERSION:
                if version not in _MIGRATIONS:
                    raise StoreError(f"store {path} has schema {version}, which mrules cannot read")
                for statement in _MIGRATIONS[version].split(";"):
                    if statement.strip():
                        conn.execute(statement)
                version += 1
                conn.execute(_SET_META, ("schema_version", version))
        conn.execute("COMMIT")
    except BaseException:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")
        raise


def _code(e: sqlite3.Error) -> int | None:
    """SQLite's primary result code of an error (extended codes folded), or None."""
    code = getattr(e, "sqlite_errorcode", None)
    return None if code is None else code & 0xFF


def _damaged(path: Path) -> str:
    return (
        f"restore {path} from a backup, or move it away to start a new store (a new run"
        f" then applies the stream from its first line)"
    )


def _advice(e: BaseException, path: Path) -> str:
    """What to do about a failed read or write of the store, for the message's end."""
    code = _code(e) if isinstance(e, sqlite3.Error) else None
    if code == sqlite3.SQLITE_FULL:
        return "the disk is full: free some space, then run the same command again to resume"
    if code == sqlite3.SQLITE_READONLY:
        return (
            f"the store or its folder is read-only: make both writable (a run creates"
            f" {path.name}-wal and {path.name}-shm beside it), then run the same command again"
        )
    if code in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB):
        return f"the store is damaged: {_damaged(path)}"
    if code == sqlite3.SQLITE_IOERR:
        return "the disk reported an error: check it, then run the same command again"
    if code == sqlite3.SQLITE_CANTOPEN:
        return "check that the store and its folder exist and can be read and written"
    if code in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
        return "another program holds the database (a sqlite3 shell?): close it and run again"
    return "run the same command again; if it fails again, please report it"


def _os_advice(e: OSError) -> str:
    if e.errno in (errno.ENOSPC, errno.EDQUOT):
        return "the disk is full: free some space, then run the same command again"
    if e.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return (
            "the store's folder is read-only or not writable: make it writable, then run the"
            " same command again"
        )
    return "check the store's folder, then run the same command again"


def _read_message(path: Path, e: sqlite3.Error) -> str:
    if _code(e) in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB):
        return f"store {path} is damaged ({e}): {_damaged(path)}"
    return f"cannot read store {path}: {_describe(e)}; {_advice(e, path)}"


def _open_message(path: Path, e: sqlite3.Error) -> str:
    code = _code(e)
    if code == sqlite3.SQLITE_NOTADB:
        return (
            f"{path} is not an mrules store (not a SQLite database): give another --store"
            f" path, or move the file away"
        )
    if code == sqlite3.SQLITE_CORRUPT:
        return f"store {path} is damaged ({e}): {_damaged(path)}"
    if code == sqlite3.SQLITE_READONLY:
        return f"cannot write store {path}: {e}; {_advice(e, path)}"
    return f"cannot open store {path}: {_describe(e)}; {_advice(e, path)}"


def _describe(e: BaseException) -> str:
    return str(e) or type(e).__name__


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
