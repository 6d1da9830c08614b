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
stale lock. The lock file is per name, so the writer also holds a lock on
the store file itself (`_lock_file`: an open-file-description lock on one
byte SQLite never locks): two names of one file, hard links or a bind mount,
exclude each other as well. Read-only opens take no lock: WAL lets them read
the last committed batch while a run writes the next one.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import heapq
import itertools
import os
import sqlite3
import stat
import struct
import time
import uuid
from collections.abc import Callable, Collection, Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Final, cast

import orjson

from mrules.atomic import fsync_folder
from mrules.batch import (
    ANCHOR_KEY,
    Batch,
    anchor_text,
    event_hash,
    not_derived,
    parse_anchor,
    rows_of_records,
)
from mrules.buildinfo import __version__
from mrules.history import CRM, OUTBOX, Interner, Row, pack, packed, unpack
from mrules.pathkind import special_file_kind
from mrules.records import (
    DIAGNOSTICS_KEPT,
    REJECTS_ORDER_KEY,
    Activity,
    LedgerEntry,
    Message,
    RejectedLine,
    diagnostic_rows,
)
from mrules.sqlitefiles import refuse_writes, unreadable_reason
from mrules.state import Codecs, Prospect
from mrules.storeapi import (
    MAX_SEQ,
    YEARS_1_TO_9999,
    NotAStore,
    StoreError,
    StoreLocked,
    StorePathError,
)

__all__ = [
    "APPLICATION_ID",
    "HISTORY_DAMAGE",
    "READS_FROM",
    "SCHEMA_VERSION",
    "Store",
    "StoreError",
    "StoreLocked",
    "StorePathError",
    "damaged_history",
    "dns_by_rule",
]

SCHEMA_VERSION = 6
"""Bump on every schema change, with a migration in `_MIGRATIONS`."""

READS_FROM = 2
"""The oldest schema read-only commands read as it is (2: its history rows are JSON)."""

APPLICATION_ID = 0x6D72756C
"""`PRAGMA application_id` of every mrules store ("mrul"), so `file` and we can tell it apart."""

# sqlite3 binds exact int, float and str at once, but sends bytes and None through its
# adapter protocol first: a tuple key, a registry miss, then an `__adapt__` lookup on a
# type whose AttributeError is formatted and dropped, for every history row's data and
# its empty columns. Registering identity adapters makes that a registry hit: about a
# quarter of the binding cost of a run's inserts (bench/README.md, "bound as they are").
# Process-wide, and harmless to other users of sqlite3: each returns its argument.
sqlite3.register_adapter(bytes, bytes)
sqlite3.register_adapter(type(None), cast("Callable[[None], None]", {}.get))  # a C call

_YEARS_1_TO_9999 = YEARS_1_TO_9999  # the epoch times a date can show
_LOCK_POLL = 0.05  # seconds between tries when waiting for the lock with a timeout
_BUSY_TIMEOUT_MS = 10_000  # for SQLite's own locks (a reader checkpointing, a sqlite3 shell)
_CACHE_KIB = 65_536  # the writer's page cache: index pages of a 200,000-event run stay in memory
# Pages the write-ahead log may hold before a commit copies them into the store (SQLite's
# default is 1,000, 4 MB). A commit of a large run dirties index and prospect pages all
# over the file, the same ones commit after commit: copying them after every commit
# rewrote them every time. At 100 MiB a page changed by several commits is copied once.
_WAL_CHECKPOINT_PAGES = 25_600

_SCHEMA_TEMPLATE = """
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
CREATE TABLE names (
    id   INTEGER PRIMARY KEY,
    text TEXT NOT NULL
);
CREATE TABLE prospects (
    id    INTEGER PRIMARY KEY,
    email TEXT NOT NULL UNIQUE,
    state BLOB
);
CREATE TABLE visitors (
    visitor  TEXT NOT NULL PRIMARY KEY,
    prospect TEXT,
    history  BLOB NOT NULL
);
CREATE TABLE history (
    id       INTEGER PRIMARY KEY,
    prospect INTEGER,
    visitor,
    ts,
    seq      INTEGER,
    event_id TEXT,
    event    INTEGER,
    messages INTEGER,
    data     BLOB NOT NULL
);
{HISTORY_PROSPECT_INDEX};
CREATE INDEX history_anonymous ON history (visitor) WHERE prospect IS NULL AND visitor IS NOT NULL;
{HISTORY_EVENT_INDEX};
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
CREATE TABLE diagnostics (
    prospect TEXT PRIMARY KEY,
    ord      INTEGER NOT NULL,
    report   TEXT NOT NULL
) WITHOUT ROWID;
"""

# `history_prospect` and `history_event` lead with the row's generation, `id >> 16` (65,536
# rows each), so a commit's rows land at the end of both indexes instead of all over them:
# keyed by prospect or event hash alone, every commit of a long run rewrote most of their
# pages (bench/README.md, "History indexes by generation"). A lookup by prospect or hash
# asks each generation in turn, `_IN_GENERATIONS` listing them; on a schema 3 store the
# same query uses its plain indexes.
#
# The generations the history has are found by one seek on the row id each, from the
# first row's up: counting from 0 to the largest id's generation took as long as that
# number, and a damaged id of 2**62 made every lookup run for ever. The last generation
# there can be, (2**63 - 1) >> 16, ends the walk before the next one's first id overflows.
_GENERATIONS: Final = (
    "WITH RECURSIVE g(n) AS (SELECT (SELECT min(id) FROM history) >> 16 UNION ALL"
    " SELECT (SELECT min(id) FROM history WHERE id >= (g.n + 1) << 16) >> 16 FROM g"
    " WHERE g.n < 140737488355327)"
)
_IN_GENERATIONS: Final = f"id >> 16 IN ({_GENERATIONS} SELECT n FROM g WHERE n IS NOT NULL)"
# The first generation whose largest event hash is not an integer: text or a blob, which
# SQLite sorts after every number (`has_applied_ids`).
_DAMAGED_HASH: Final = (
    f"{_GENERATIONS} SELECT m FROM (SELECT (SELECT max(event) FROM history WHERE id >> 16 = g.n"
    " AND event IS NOT NULL) AS m FROM g WHERE g.n IS NOT NULL)"
    " WHERE typeof(m) NOT IN ('integer', 'null') LIMIT 1"
)
# One text of each index, for the schema and the migration to schema 4.
_HISTORY_PROSPECT_INDEX: Final = (
    "CREATE INDEX history_prospect ON history (id >> 16, prospect) WHERE prospect IS NOT NULL"
)
_HISTORY_EVENT_INDEX: Final = (
    "CREATE INDEX history_event ON history (id >> 16, event) WHERE event IS NOT NULL"
)
_SCHEMA: Final = _SCHEMA_TEMPLATE.format(
    HISTORY_PROSPECT_INDEX=_HISTORY_PROSPECT_INDEX, HISTORY_EVENT_INDEX=_HISTORY_EVENT_INDEX
)

# Schema version N -> the function that turns an N store into an N+1 store (in the
# transaction that opens it for writing).
_MIGRATIONS: dict[int, Callable[[sqlite3.Connection], None]] = {}


def _migrate_1_to_2(conn: sqlite3.Connection) -> None:
    """Schema 1 -> 2: activities, ledger and applied ids become packed history rows.

    Prospects get integer ids (in email order); every v1 activity becomes a
    history row, the ledger entries become rows grouped by (prospect, time,
    event) in seq order, and applied ids with neither become bare rows, so
    `explain`, `state export` and the action log read exactly what they read
    before. Runs in the transaction that opens the store for writing.
    """
    for statement in (
        "ALTER TABLE prospects RENAME TO prospects_v1",
        "CREATE TABLE names (id INTEGER PRIMARY KEY, text TEXT NOT NULL)",
        "CREATE TABLE prospects (id INTEGER PRIMARY KEY, email TEXT NOT NULL UNIQUE, state BLOB)",
        "INSERT INTO prospects (email, state) SELECT email, state FROM prospects_v1 ORDER BY email",
        "DROP TABLE prospects_v1",
        "CREATE TABLE history (id INTEGER PRIMARY KEY, prospect INTEGER, visitor, ts,"
        " seq INTEGER, event_id TEXT, event INTEGER, messages INTEGER, data BLOB NOT NULL)",
    ):
        conn.execute(statement)
    pids = dict(conn.execute("SELECT email, id FROM prospects"))
    codecs = Codecs()  # states to the short keys of schema 2 (the same values)
    conn.executemany(
        "UPDATE prospects SET state = ? WHERE id = ?",
        [
            (Prospect.from_json(state, codecs).to_json(codecs), i)
            for i, state in conn.execute("SELECT id, state FROM prospects").fetchall()
            if state is not None
        ],
    )
    names = Interner()
    plain = Batch("-", 0, None)
    plain.activities = [
        tuple(r)
        for r in conn.execute(
            "SELECT prospect, visitor, ts, type, asset_kind, asset, url, source, line, event_id"
            " FROM activities ORDER BY id"
        )
    ]
    plain.ledger = [
        tuple(r)
        for r in conn.execute(
            "SELECT seq, ts, prospect, rule_kind, rule_name, rule_loc, source, line, event_id,"
            " action, args, before, after FROM ledger ORDER BY seq"
        )
    ]
    seen = {r[9] for r in plain.activities} | {r[8] for r in plain.ledger}
    plain.applied_ids = [
        r[0] for r in conn.execute("SELECT id FROM applied ORDER BY id") if r[0] not in seen
    ]
    activities, ledger, applied = rows_of_records(plain)
    for row in applied:
        row.source, row.ts = None, None
    for email in {r.prospect for r in activities + ledger if r.prospect is not None} - set(pids):
        cur = conn.execute("INSERT INTO prospects (email, state) VALUES (?, NULL)", (email,))
        pids[email] = int(cur.lastrowid or 0)
    conn.executemany(
        _INSERT_HISTORY,
        [
            (
                None if row.prospect is None else pids[row.prospect],
                None if row.visitor is None else names.maybe(row.visitor),
                _ts(row.ts),
                row.steps[0] if row.steps else None,
                row.event_id,
                None if row.event_id is None else event_hash(row.event_id),
                row.message_bits() or None,
                pack(row, names),
            )
            for row in activities + ledger + applied
        ],
    )
    conn.executemany(_INSERT_NAME, names.added)
    # The engine's messages are their ledger steps now (derived on read): drop the copies.
    for table, want in (("outbox", OUTBOX), ("crm_pending", CRM)):
        seqs = [(m.seq,) for row in ledger for m in row.messages(want)]
        conn.executemany(f"DELETE FROM {table} WHERE seq = ?", seqs)
    top = plain.max_seq()
    for table in ("outbox", "crm_pending"):
        found = conn.execute(f"SELECT max(seq) FROM {table}").fetchone()[0]
        top = max(top, found or 0)
    conn.execute(_SET_META, ("seq", top))
    for statement in (
        "DROP TABLE activities",
        "DROP TABLE ledger",
        "DROP TABLE applied",
        "CREATE INDEX history_prospect ON history (prospect) WHERE prospect IS NOT NULL",
        "CREATE INDEX history_anonymous ON history (visitor)"
        " WHERE prospect IS NULL AND visitor IS NOT NULL",
        "CREATE INDEX history_event ON history (event) WHERE event IS NOT NULL",
    ):
        conn.execute(statement)


_MIGRATIONS[1] = _migrate_1_to_2


def _migrate_2_to_3(conn: sqlite3.Connection) -> None:
    """Schema 2 -> 3: new history rows pack their `data` in MessagePack, not JSON.

    The rows already written stay as they are: `history.load_data` tells the
    two encodings apart by their first byte. The version changes so that an
    mrules that reads only JSON rows refuses the store instead of misreading it.
    """
    del conn


_MIGRATIONS[2] = _migrate_2_to_3


def _migrate_3_to_4(conn: sqlite3.Connection) -> None:
    """Schema 3 -> 4: the history indexes by prospect and by event lead with the generation.

    Rebuilding both reads the history once (a few seconds for 2 million rows).
    """
    for statement in (
        "DROP INDEX history_prospect",
        "DROP INDEX history_event",
        _HISTORY_PROSPECT_INDEX,
        _HISTORY_EVENT_INDEX,
    ):
        conn.execute(statement)


_MIGRATIONS[3] = _migrate_3_to_4


def dns_by_rule(entries: Iterable[LedgerEntry]) -> bool:
    """Whether a prospect marked `do not sync` and deleted in the CRM was marked by a rule,
    from its history's steps in order: unless its last `do not sync` / `allow crm
    recreate` step is the deletion's (`by: crm delete`). Both stores' migrations use it."""
    last = None
    for e in entries:
        if e.action in ("do not sync", "allow crm recreate"):
            last = e
    return not (
        last is not None
        and last.action == "do not sync"
        and (orjson.loads(last.args) if last.args else {}).get("by") == "crm delete"
    )


def _migrate_4_to_5(conn: sqlite3.Connection) -> None:
    """Schema 4 -> 5: a rule's `do not sync` is kept apart from the CRM's deletion.

    A prospect's state gets `dr` (`Prospect.dns_by_rule`) where a rule set its
    `do not sync`, so an undelete in the CRM lifts only the deletion's mark. A
    prospect marked but not deleted in the CRM was marked by a rule; one marked and
    deleted was marked by a rule unless its last `do not sync` / `allow crm
    recreate` step is the deletion's (`by: crm delete`), read from its history.
    """
    names: Interner | None = None
    updates = []
    for pid, email, state in conn.execute("SELECT id, email, state FROM prospects").fetchall():
        if state is None:
            continue
        raw = orjson.loads(state)
        if not raw.get("ds") or raw.get("dr"):
            continue
        by_rule = True
        if raw.get("st") == "deleted":
            if names is None:
                names = Interner()
                names.load(iter(conn.execute("SELECT id, text FROM names ORDER BY id").fetchall()))
            rows = conn.execute(
                "SELECT seq, event_id, data FROM history"
                " WHERE prospect = ? AND seq IS NOT NULL ORDER BY id",
                (pid,),
            )
            by_rule = dns_by_rule(
                e
                for seq, event_id, data in rows
                for e in unpack(data, names, email, None, None, seq, event_id).entries()
            )
        if by_rule:
            raw["dr"] = True
            updates.append((orjson.dumps(raw), pid))
    conn.executemany("UPDATE prospects SET state = ? WHERE id = ?", updates)


_MIGRATIONS[4] = _migrate_4_to_5

# The writes of one batch, in the order `commit` runs them. History rows go in
# before `attach_visitor`, so an `identify` also claims the anonymous page views
# of its own batch. `history_anonymous` indexes only anonymous rows, the ones
# `attach_visitor` looks for, so identified rows (most of them) cost no update of it.
_UPSERT_PROSPECT: Final = (
    "INSERT INTO prospects (id, email, state) VALUES (?, ?, ?) "
    "ON CONFLICT (id) DO UPDATE SET state = excluded.state"
)
_UPDATE_PROSPECT: Final = "UPDATE prospects SET state = ? WHERE id = ?"
PID_CACHE: Final = 1 << 16
"""About how many prospect ids (email -> id) the writer keeps between commits."""
_INSERT_PROSPECT_ID: Final = "INSERT INTO prospects (id, email, state) VALUES (?, ?, NULL)"
_UPSERT_VISITOR: Final = (
    "INSERT INTO visitors (visitor, prospect, history) VALUES (?, ?, ?) "
    "ON CONFLICT (visitor) DO UPDATE SET prospect = excluded.prospect, history = excluded.history"
)
_LARGEST_ID: Final = 2**63 - 1  # SQLite's largest integer
_INSERT_HISTORY: Final = (
    "INSERT INTO history (prospect, visitor, ts, seq, event_id, event, messages, data)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
_ATTACH_VISITOR: Final = "UPDATE history SET prospect = ? WHERE visitor = ? AND prospect IS NULL"
_INSERT_NAME: Final = "INSERT INTO names (id, text) VALUES (?, ?)"
_INSERT_OUTBOX: Final = (
    "INSERT INTO outbox (seq, ts, prospect, kind, payload) VALUES (?, ?, ?, ?, ?)"
)
_INSERT_CRM: Final = (
    "INSERT INTO crm_pending (seq, ts, prospect, kind, payload) VALUES (?, ?, ?, ?, ?)"
)
_UPSERT_REJECT: Final = (
    "INSERT INTO rejects (source, line, reason, text) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (source, line) DO UPDATE SET reason = excluded.reason, text = excluded.text"
)
# The order in which the store first kept a rejected line of each stream (`meta`, key
# `rejects_order:SOURCE`, value 0, 1, 2...): the rejects file lists the streams in it.
_NOTE_REJECTS_ORDER: Final = (
    "INSERT INTO meta (key, value) SELECT ?, count(*) FROM meta"
    " WHERE key >= 'rejects_order:' AND key < 'rejects_order;' ON CONFLICT (key) DO NOTHING"
)
_UPSERT_DIAGNOSTIC: Final = (
    "INSERT INTO diagnostics (prospect, ord, report) VALUES (?, ?, ?) "
    "ON CONFLICT (prospect) DO UPDATE SET ord = excluded.ord, report = excluded.report"
)
_UPSERT_SHARED: Final = (
    "INSERT INTO shared (key, value) VALUES (?, ?) "
    "ON CONFLICT (key) DO UPDATE SET value = excluded.value"
)
_INSERT_RULE: Final = (
    "INSERT INTO rules (key, kind, first_seen) VALUES (?, ?, ?) ON CONFLICT (key) DO NOTHING"
)
_UPSERT_STREAM: Final = (
    "INSERT INTO streams (source, line, updated_at) VALUES (?, ?, ?) "
    "ON CONFLICT (source) DO UPDATE SET line = excluded.line, updated_at = excluded.updated_at"
)
_SET_META: Final = (
    "INSERT INTO meta (key, value) VALUES (?, ?) "
    "ON CONFLICT (key) DO UPDATE SET value = excluded.value"
)
_HISTORY_COLUMNS: Final = "prospect, visitor, ts, seq, event_id, data"

_LOG_KEY: Final = "actions_log:"  # meta key prefix: where an action log (by absolute path) starts


def _ts(ts: float | None) -> float | int | None:
    """A time as whole milliseconds when that is exact (6 bytes, not 8), else as it is."""
    if ts is None:
        return None
    ms = round(ts * 1000)
    return ms if ms / 1000 == ts else ts


def _history_values(row: Row, pid: int | None, names: Interner) -> tuple[Any, ...]:
    """A row's `history` columns (`_INSERT_HISTORY`), its data packed."""
    visitor, event_id, steps = row.visitor, row.event_id, row.steps
    vid = None if visitor is None else names.maybe(visitor)  # interned before the data's names
    data, bits = packed(row, names)
    return (
        pid,
        vid,
        _ts(row.ts),
        steps[0] if steps else None,
        event_id,
        None if event_id is None else event_hash(event_id),
        bits or None,
        data,
    )


class _PartError(ValueError):
    """A malformed record in a named part of a batch."""

    def __init__(self, part: str, cause: Exception) -> None:
        super().__init__(str(cause))
        self.part, self.cause = part, cause


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
        self._file_lock: int | None = None  # `_lock_file`'s descriptor, released on close
        self._names: Interner | None = None  # the names table (loaded on first use)
        # email -> prospect id, for the writer: the ids of recent commits' prospects, at
        # most about PID_CACHE of them (looked up a commit at a time, `_known_pids`).
        self._pids: dict[str, int] | None = None
        self._absent: set[str] = set()  # emails of this commit the store has no id for
        self._held = False  # within `one_transaction`: a commit is a savepoint of it
        self._next_pid = 1

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
        deadline = None if timeout is None else time.monotonic() + timeout
        lock_made = not os.path.lexists(_lock_path(path))
        lock_fd = _lock(path, wait, timeout)
        file_lock = None
        try:
            if not path.exists():
                _create(path)
            # The name's lock does not cover another name of the same file: the file's own.
            file_lock = _lock_file(path, wait, timeout, deadline)
            conn = _connect_writer(path)
        except BaseException as failed:
            _unlock_file(file_lock)
            _unlock(lock_fd)
            if lock_made and isinstance(failed, NotAStore):
                # No mrules store is there, nor will be: the lock file this made would
                # stay beside another program's database for good.
                with contextlib.suppress(OSError):
                    os.unlink(_lock_path(path))
            raise
        store = cls(path, conn, lock_fd, False)
        store._file_lock = file_lock
        return store

    def close(self) -> None:
        """Close the connection and release the lock; safe to call twice."""
        if self._conn is not None:
            with contextlib.suppress(sqlite3.Error):
                self._conn.close()
            self._conn = None
        if self._file_lock is not None:  # after the connection: see `_unlock_file`
            _unlock_file(self._file_lock)
            self._file_lock = None
        if self._lock_fd is not None:
            _unlock(self._lock_fd)
            self._lock_fd = None

    def close_whole(self) -> None:
        """Close, with every commit folded into the database file itself: for a store about
        to be renamed (a partitioned run's shard, its merged store), since a rename moves
        the file and not its write-ahead log (`-wal`). SQLite folds the log in when the
        last connection closes, but says nothing when it cannot (a full disk): the file
        renamed without its log was damaged, or missed commits.

        Raises:
            StoreError: the log could not be folded in; the store is closed all the same.
        """
        conn, wal = self._conn, self.path.with_name(self.path.name + "-wal")
        try:
            if conn is not None and not self.readonly:
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
        except sqlite3.Error as e:
            self.close()
            raise StoreError(
                f"cannot write to store {self.path}: {_describe(e)}; {_advice(e, self.path)}"
            ) from None
        self.close()
        with contextlib.suppress(FileNotFoundError):
            if wal.stat().st_size:
                raise StoreError(
                    f"cannot write to store {self.path}: its write-ahead log could not be"
                    " folded into it; check that the disk has free space, then run the same"
                    " command again"
                )

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
        if row is None:
            return 0
        if type(row[0]) is not int or row[0] < 0:
            raise self.damaged_value(f"the position of stream {source}", row[0])
        return int(row[0])

    def stream_anchor(self, source: str) -> tuple[int, int] | None:
        """(line, check) of the last event a committed batch applied from `source`, if any.

        Stores written before mrules kept it have none: their files are not checked.
        """
        row = self._one("SELECT value FROM meta WHERE key = ?", (ANCHOR_KEY + source,))
        if row is None:
            return None
        found = parse_anchor(row[0])
        if found is None:
            raise self.damaged_value(f"the last event of stream {source}", row[0])
        return found

    def streams(self) -> dict[str, int]:
        """Every stream this store has read, with its position."""
        return dict(self._all("SELECT source, line FROM streams ORDER BY source"))

    def clock(self) -> float | None:
        """The engine clock after the last committed batch, or None before any."""
        row = self._one("SELECT value FROM meta WHERE key = 'clock'")
        return None if row is None else self._time_or_none("the clock", row[0])

    def ruleset_version(self) -> str | None:
        """The version of the rule set that last committed, or None."""
        row = self._one("SELECT value FROM meta WHERE key = 'ruleset_version'")
        return None if row is None else str(row[0])

    def rules_first_seen(self) -> dict[str, float | None]:
        """Rule key -> the clock when the rule first appeared in a run of this store."""
        out: dict[str, float | None] = {}
        for key, first in self._all("SELECT key, first_seen FROM rules"):
            out[key] = self._time_or_none(f"when rule {key} was first seen", first)
        return out

    def _time_or_none(self, what: str, value: object) -> float | None:
        """A stored clock value: None, or a time of the years 1 to 9999; anything else is
        damage (a clock of 1e308, finite, was an OverflowError of the next run: exit 70)."""
        if value is None:
            return None
        if type(value) not in (int, float) or not (
            _YEARS_1_TO_9999[0] <= value <= _YEARS_1_TO_9999[1]  # type: ignore[operator]
        ):
            raise self.damaged_value(what, value)
        return float(value)  # type: ignore[arg-type]

    def rules(self) -> Iterator[tuple[str, str, float | None]]:
        """Every known rule as (key, kind, first_seen), ordered by key."""
        for key, kind, first in self._iter("SELECT key, kind, first_seen FROM rules ORDER BY key"):
            yield key, kind, self._time_or_none(f"when rule {key} was first seen", first)

    def applied_ids(self) -> set[str]:
        """The ids of every applied event (all of them: for tests and tools, not the engine)."""
        sql = "SELECT DISTINCT event_id FROM history WHERE event_id IS NOT NULL"
        return {row[0] for row in self._all(sql)}

    def has_applied_ids(self) -> bool:
        """Whether any committed batch applied an event with an id.

        A run asks this as it starts, and reads the ids' hashes (`applied_hashes`) only
        once it has asked for many ids (`mrules.engine.run.FILL_FILTER_AFTER`). A hash
        that is text or a blob, damage that reading them all found at every start, is
        looked for here: SQLite sorts both after every number, so each generation's
        largest hash shows it (one seek a generation, 0.2 ms at 2 million events, where
        a scan of the index took 0.2 s). A fractional hash sorts among the integers: the
        filter finds it when it fills (`applied_hashes`).
        """
        if self._one("SELECT 1 FROM history WHERE event IS NOT NULL LIMIT 1") is None:
            return False
        damaged = self._one(_DAMAGED_HASH)
        if damaged is not None:
            raise self.damaged_value("an applied event's hash", damaged[0])
        return True

    def applied_hashes(self) -> Iterator[int]:
        """`event_hash` of every applied event id (the engine's filter, filled at start)."""
        for (h,) in self._iter("SELECT event FROM history WHERE event IS NOT NULL"):
            if type(h) is not int:  # the engine masks it: another type is damage
                raise self.damaged_value("an applied event's hash", h)
            yield h

    def applied_among(self, ids: list[str]) -> set[str]:
        """Which of these event ids a committed batch applied (one query for many ids)."""
        wanted = set(ids)
        hashes = {event_hash(x) for x in wanted}
        sql = f"SELECT event_id FROM history WHERE {_IN_GENERATIONS} AND event IN ({{}})"
        rows = self._among(sql, hashes)
        return {r[0] for r in rows if r[0] in wanted}

    def has_applied(self, event_id: str) -> bool:
        """Whether the event with this id was applied by a committed batch."""
        sql = (
            f"SELECT 1 FROM history WHERE {_IN_GENERATIONS} AND event = ? AND event_id = ? LIMIT 1"
        )
        return self._one(sql, (event_hash(event_id), event_id)) is not None

    def prospect(self, email: str) -> bytes | None:
        """The state the engine stored for this prospect, or None."""
        row = self._one("SELECT state FROM prospects WHERE email = ?", (email,))
        if row is None or row[0] is None:
            return None
        state = row[0]
        if type(state) is str:  # text, not a blob (written by hand): decoded the same
            return state.encode()
        if type(state) is not bytes:
            raise self.damaged_value(f"the state of prospect {email}", state)
        return state

    def prospects_among(self, emails: Collection[str]) -> dict[str, bytes]:
        """The stored states of those of these prospects the store has (a query per 500)."""
        sql = "SELECT email, state FROM prospects WHERE state IS NOT NULL AND email IN ({})"
        return dict(map(self._state_row, self._among(sql, emails)))

    def prospects(self) -> Iterator[tuple[str, bytes]]:
        """Every prospect as (email, state), ordered by email."""
        return self._iter(
            "SELECT email, state FROM prospects WHERE state IS NOT NULL ORDER BY email",
            make=self._state_row,
        )

    def _state_row(self, row: tuple[Any, Any]) -> tuple[str, bytes]:
        """(email, state) as `prospect` reads them: a value of another type is damage.

        The compiled build checks declared types where the engine receives them, so a
        text or number state must be reported here, not fail as a `TypeError` there."""
        email, state = row
        if type(state) is str:  # text, not a blob (written by hand): decoded the same
            state = state.encode()
        elif type(state) is not bytes:
            raise self.damaged_value(f"the state of prospect {email}", state)
        if type(email) is not str:
            raise self.damaged_value("a prospect's email", email)
        return email, state

    def prospect_count(self) -> int:
        """How many prospects the store holds."""
        row = self._one("SELECT count(*) FROM prospects WHERE state IS NOT NULL")
        return int(row[0]) if row else 0

    def has_prospects(self) -> bool:
        """Whether the store holds any prospect: what a run asks as it starts.

        Not `prospect_count() > 0`: counting reads every prospect's row, 0.12 s and 67 MiB
        of page cache at 2 million events, for a run that may apply one event.
        """
        return self._one("SELECT 1 FROM prospects WHERE state IS NOT NULL LIMIT 1") is not None

    def visitors(self) -> Iterator[tuple[str, str | None, bytes]]:
        """Every visitor as (visitor, prospect or None, history), ordered by visitor."""
        return self._iter("SELECT visitor, prospect, history FROM visitors ORDER BY visitor")

    def visitor(self, visitor: str) -> str | None:
        """The email of the prospect this visitor is tied to, or None."""
        row = self._one("SELECT prospect FROM visitors WHERE visitor = ?", (visitor,))
        return None if row is None or row[0] is None else self._tied(visitor, row[0])

    def visitors_among(self, visitors: Collection[str]) -> dict[str, str]:
        """The prospects those of these visitors the store has are tied to (a query per 500)."""
        sql = (
            "SELECT visitor, prospect FROM visitors WHERE prospect IS NOT NULL AND visitor IN ({})"
        )
        return {v: self._tied(v, email) for v, email in self._among(sql, visitors)}

    def _tied(self, visitor: str, email: object) -> str:
        """A visitor's prospect as stored: an email; anything else is damage (a blob was a
        TypeError of the run's commit, which sorts the emails it wrote: exit 70)."""
        if type(email) is not str:
            raise self.damaged_value(f"the prospect of visitor {visitor}", email)
        return email

    def anonymous_views(self, visitor: str) -> list[tuple[float, str]]:
        """A visitor's committed anonymous page views as (ts, url), in arrival order."""
        sql = (
            f"SELECT {_HISTORY_COLUMNS} FROM history WHERE visitor = ? AND prospect IS NULL"
            " ORDER BY id"
        )
        out = []
        key = self._interner().ids.get(visitor, visitor)
        for row in self._history(sql, (key,)):
            if row.etype == "page_view" and row.ts is not None:  # a page view has its time
                out.append((row.ts, row.url or ""))
        return out

    def anonymous_views_among(
        self, visitors: Collection[str]
    ) -> dict[str, list[tuple[float, str]]]:
        """`anonymous_views` of those of these visitors that have any (a query per 500).

        Each visitor's list is the one `anonymous_views` returns: the same rows, in
        arrival order (a visitor's rows all come from one query, ordered by id).
        """
        sql = (
            f"SELECT {_HISTORY_COLUMNS} FROM history WHERE visitor IN ({{}})"
            " AND prospect IS NULL ORDER BY id"
        )
        ids = self._interner().ids
        keys = list({ids.get(v, v) for v in visitors})
        out: dict[str, list[tuple[float, str]]] = {}
        for i in range(0, len(keys), 500):
            chunk = tuple(keys[i : i + 500])
            for row in self._history(sql.format(",".join("?" * len(chunk))), chunk):
                visitor, ts = row.visitor, row.ts
                if row.etype == "page_view" and ts is not None and visitor is not None:
                    found = out.get(visitor)
                    if found is None:
                        found = out[visitor] = []
                    found.append((ts, row.url or ""))
        return out

    def shared(self) -> dict[str, str | bytes]:
        """State shared across prospects (round-robin counters, throttles): key -> JSON text.

        Typed `str | bytes` because a damaged store can hold a blob there: the compiled
        build checks declared types, and the caller reports a blob as damage."""
        out: dict[str, str | bytes] = {}
        for key, value in self._all("SELECT key, value FROM shared"):
            if type(key) is not str or type(value) not in (str, bytes):
                raise self.damaged_value(f"shared state {str(key)[:40]!r}", value)
            out[key] = value
        return out

    def activities(
        self, prospect: str | None = None, *, by_time: bool = True
    ) -> Iterator[Activity]:
        """Activities (`mrules.records.Activity`), ordered by ts then insertion.

        `by_time=False` keeps insertion (arrival) order: what `explain` pairs a
        visitor's anonymous views with, whatever times a stream gave them.
        """
        if prospect is None:
            sql = f"SELECT {_HISTORY_COLUMNS} FROM history ORDER BY id"
            rows = self._history(sql)
        else:
            pid = self._pid_of(prospect)
            if pid is None:
                return iter(())
            sql = (
                f"SELECT {_HISTORY_COLUMNS} FROM history WHERE {_IN_GENERATIONS}"
                " AND prospect = ? ORDER BY id"
            )
            rows = self._history(sql, (pid,), (pid, prospect))
        found = [a for a in (row.activity() for row in rows) if a is not None]
        if by_time:
            found.sort(key=lambda a: a.ts)  # stable: ties keep insertion order
        return iter(found)

    def ledger(self, prospect: str | None = None, after_seq: int = 0) -> Iterator[LedgerEntry]:
        """Ledger entries (`mrules.records.LedgerEntry`) with seq > after_seq, by seq."""
        if prospect is not None:
            pid = self._pid_of(prospect)
            if pid is None:
                return iter(())
            sql = (
                f"SELECT {_HISTORY_COLUMNS} FROM history WHERE {_IN_GENERATIONS}"
                " AND prospect = ? AND seq IS NOT NULL ORDER BY id"
            )
            rows = list(self._history(sql, (pid,), (pid, prospect)))
        elif after_seq <= 0:
            sql = f"SELECT {_HISTORY_COLUMNS} FROM history WHERE seq IS NOT NULL ORDER BY id"
            rows = list(self._history(sql))
        else:
            return self._ledger_after(after_seq)
        entries = [e for row in rows for e in row.entries(after_seq)]
        entries.sort(key=lambda e: e.seq)
        return iter(entries)

    def _ledger_after(self, after_seq: int) -> Iterator[LedgerEntry]:
        """The entries past after_seq, read row by row: held one row at a time, not sorted.

        The engine only adds steps to the last row it made, so rows hold ascending seqs in
        the order written (the scale-out merge numbers them in that order too). Reading
        starts at the last row that begins at or before after_seq; a sync after a backfill
        of millions of events reads them without holding them (`mrules.sync.plan`).
        """
        sql = f"SELECT {_HISTORY_COLUMNS} FROM history WHERE seq IS NOT NULL AND id >= ?"
        for row in self._history(sql + " ORDER BY id", (self._row_holding(after_seq),)):
            yield from row.entries(after_seq)

    def _row_holding(self, seq: int) -> int:
        """The id of the last history row whose steps begin at or before seq (0: none).

        Rows hold ascending seqs in the order written, so the steps after seq are in this
        row and the rows after it. Found by reading back from the last row (no index on
        seq): a few rows for the seq of the last sync cycle.
        """
        found = self._one(
            "SELECT id FROM history WHERE seq IS NOT NULL AND seq <= ? ORDER BY id DESC LIMIT 1",
            (seq,),
        )
        return 0 if found is None else int(found[0])

    def ledger_rows(self) -> Iterator[Row]:
        """Every history row with ledger steps, in the order written, decoded as read.

        `ledger()` holds every entry to sort them by seq (over a gigabyte at 2 million
        events); a reader that needs no such order (per-rule counts,
        `mrules.rulestats`) reads a history of any size in bounded memory.
        """
        sql = f"SELECT {_HISTORY_COLUMNS} FROM history WHERE seq IS NOT NULL ORDER BY id"
        return self._history(sql)

    def max_seq(self) -> int:
        """The largest seq of ledger, outbox and crm_pending (one shared sequence); 0 if none."""
        row = self._one("SELECT value FROM meta WHERE key = 'seq'")
        if row is None or row[0] is None:
            return 0
        if type(row[0]) is not int or not 0 <= row[0] <= MAX_SEQ:
            raise self.damaged_value("the ledger's last seq", row[0])
        return int(row[0])

    def outbox(self) -> Iterator[Message]:
        """Outbox messages (`mrules.records.Message`), ordered by seq.

        The engine's messages are ledger steps of `history` rows (derived here);
        the `outbox` table holds messages given as plain records.
        """
        sql = "SELECT seq, ts, prospect, kind, payload FROM outbox ORDER BY seq"
        plain = list(self._iter(sql, make=Message._make))
        return self._merged(plain, OUTBOX, None)

    def crm_pending(self, prospect: str | None = None, after_seq: int = 0) -> Iterator[Message]:
        """CRM work not yet done (`mrules.records.Message`) with seq > after_seq, by seq.

        Derived from the ledger steps of `history` rows, plus the `crm_pending`
        table's rows not marked done (CRM work given as plain records). A sync cycle
        asks for the work since its last one: only the history from there is read.
        """
        if prospect is None:
            sql = "SELECT seq, ts, prospect, kind, payload FROM crm_pending WHERE done = 0"
            plain = list(self._iter(sql + " AND seq > ? ORDER BY seq", (after_seq,), Message._make))
        else:
            sql = (
                "SELECT seq, ts, prospect, kind, payload FROM crm_pending"
                " WHERE prospect = ? AND done = 0 AND seq > ? ORDER BY seq"
            )
            plain = list(self._iter(sql, (prospect, after_seq), make=Message._make))
        return self._merged(plain, CRM, prospect, after_seq)

    def crm_pending_by_email(self) -> Iterator[tuple[str, list[Message]]]:
        """The CRM work not yet done, a prospect at a time in email order (as `prospects()`
        gives them), each one's by seq: `state export` takes each prospect's with its state,
        and holds no more than one prospect's (SQLite sorts the rows, on disk when large)."""
        sql = "SELECT seq, ts, prospect, kind, payload FROM crm_pending WHERE done = 0"
        return self._by_email(sql + " ORDER BY prospect, seq", CRM)

    def outbox_by_email(self) -> Iterator[tuple[str, list[Message]]]:
        """The outbox a prospect at a time in email order, each one's by seq, as
        `crm_pending_by_email` gives the CRM work: `mrules replay` compares two runs'
        messages prospect by prospect, holding no more than one prospect's."""
        sql = "SELECT seq, ts, prospect, kind, payload FROM outbox ORDER BY prospect, seq"
        return self._by_email(sql, OUTBOX)

    def _by_email(self, plain_sql: str, want: int) -> Iterator[tuple[str, list[Message]]]:
        """The plain records of `plain_sql` (ordered by prospect, seq) and the messages
        (`want`: OUTBOX or CRM) of the history rows, a prospect at a time in email order."""
        plain = self._iter(plain_sql, make=Message._make)
        sql = (
            "SELECT p.email, h.visitor, h.ts, h.seq, h.event_id, h.data FROM history h"
            " JOIN prospects p ON p.id = h.prospect WHERE h.messages & ? ORDER BY p.email, h.id"
        )
        derived = _messages_of(self._history(sql, (want,), joined=True), want)
        merged = heapq.merge(plain, derived, key=_email_seq)
        for email, group in itertools.groupby(merged, key=_email):
            yield email, list(group)

    def _merged(
        self, plain: list[Message], want: int, prospect: str | None, after_seq: int = 0
    ) -> Iterator[Message]:
        if prospect is None and after_seq > 0:
            sql = f"SELECT {_HISTORY_COLUMNS} FROM history WHERE messages & ? AND id >= ?"
            rows = self._history(sql + " ORDER BY id", (want, self._row_holding(after_seq)))
        elif prospect is None:
            sql = f"SELECT {_HISTORY_COLUMNS} FROM history WHERE messages & ? ORDER BY id"
            rows = self._history(sql, (want,))
        else:
            pid = self._pid_of(prospect)
            if pid is None:
                return iter(plain)
            sql = (
                f"SELECT {_HISTORY_COLUMNS} FROM history WHERE {_IN_GENERATIONS}"
                " AND prospect = ? AND messages & ? ORDER BY id"
            )
            rows = self._history(sql, (pid, want), (pid, prospect))
        # Each message as it is read (at 2 million events a list of them all was 100 MB of
        # `state outbox`); the rows give them by seq, as the plain records' query does.
        derived = _messages_of(rows, want, after_seq)
        if not plain:
            return derived
        return heapq.merge(plain, derived, key=_seq)

    def rejects(self, source: str | None = None) -> Iterator[RejectedLine]:
        """Rejected lines as (source, line, reason, text), ordered by source then line."""
        if source is None:
            return self._iter(
                "SELECT source, line, reason, text FROM rejects ORDER BY source, line",
                make=RejectedLine._make,
            )
        sql = "SELECT source, line, reason, text FROM rejects WHERE source = ? ORDER BY line"
        return self._iter(sql, (source,), make=RejectedLine._make)

    def diagnostics(self) -> list[bytes]:
        """The diagnostics reports standing (JSON text, one a prospect), oldest first."""
        rows = self._all("SELECT report FROM diagnostics ORDER BY ord, prospect")
        return [r[0].encode() if type(r[0]) is str else bytes(r[0]) for r in rows]

    def keep_diagnostics(self, reports: list[bytes]) -> None:
        """Take in the reports of a diagnostics file written before the store kept them
        (an upgraded store), in a transaction of its own; notes that it holds them."""
        if self.readonly:
            raise StoreError(f"store {self.path} was opened read-only")
        conn = self._connection()
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.executemany(_UPSERT_DIAGNOSTIC, diagnostic_rows(reports, 0))
                conn.execute(_SET_META, (DIAGNOSTICS_KEPT, "1"))
                conn.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
                raise
        except sqlite3.Error as e:
            raise StoreError(
                f"cannot write to store {self.path}: {_describe(e)}; {_advice(e, self.path)}"
            ) from e

    def meta(self) -> dict[str, str]:
        """The meta table (schema_version, ruleset_version, clock, created_at, mrules_version)."""
        out = {}
        for k, v in self._all("SELECT key, value FROM meta ORDER BY key"):
            if type(k) is not str:  # damage: callers read its keys as text (was exit 70)
                raise self.damaged_value("a key of the meta table", k)
            out[k] = str(v)
        return out

    def log_start(self, log: str) -> int | None:
        """The seq after which the action log at absolute path `log` starts, if noted."""
        row = self._one("SELECT value FROM meta WHERE key = ?", (_LOG_KEY + log,))
        if row is None:
            return None
        value = row[0]  # a number; digits in a store from before the meta table kept numbers
        if type(value) is int and value >= 0:
            return value
        if isinstance(value, str) and value.isascii() and value.isdigit():
            return int(value)
        raise self.damaged_value(f"the start of action log {log}", value)  # was exit 70

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

    @contextlib.contextmanager
    def one_transaction(self) -> Iterator[None]:
        """Every `commit` within is a part of one transaction, committed at the end, rolled
        back on an error or an interrupt (then nothing of any is kept).

        What the commits write goes to SQLite's pages (spilled to the write-ahead log
        beyond its cache), not to memory, and no reader sees any of it before the end:
        `mrules segment` commits in chunks this way, so that its memory does not follow
        the prospects it matches, and stays all or nothing for the user.
        """
        if self.readonly:
            raise StoreError(f"store {self.path} was opened read-only")
        conn = self._connection()
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as e:
            raise StoreError(f"cannot write to store {self.path}: {_describe(e)}") from e
        self._held = True
        try:
            yield
            self._held = False
            conn.execute("COMMIT")
        except sqlite3.Error as e:
            self._held = False
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            self._pids = self._names = None  # as the rolled-back commits left them: reread
            raise StoreError(
                f"cannot commit to store {self.path}: {_describe(e)}; nothing of it was"
                f" written; {_advice(e, self.path)}"
            ) from e
        except BaseException:
            self._held = False
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            self._pids = self._names = None
            raise

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
        names = self._interner()
        pids = self._pid_map()
        new_pids: list[str] = []
        part = "transaction"
        try:
            held = self._held
            conn.execute("SAVEPOINT batch" if held else "BEGIN IMMEDIATE")
            try:
                part = "prospects"
                self._known_pids(batch.prospects, pids)
                if batch.prospects:
                    # A prospect the store has is updated by its id (no look at the email
                    # index); a new one is inserted with the id it gets here.
                    updates: list[tuple[bytes, int]] = []
                    inserts: list[tuple[int, str, bytes]] = []
                    for email, state in batch.prospects.items():
                        pid = pids.get(email)
                        if pid is None:
                            inserts.append((self._pid(email, pids, new_pids), email, state))
                        else:
                            updates.append((state, pid))
                    if updates:
                        conn.executemany(_UPDATE_PROSPECT, updates)
                    if inserts:
                        conn.executemany(_UPSERT_PROSPECT, inserts)
                part = "visitors"
                if batch.visitors:
                    conn.executemany(
                        _UPSERT_VISITOR, [(v, p, h) for v, (p, h) in batch.visitors.items()]
                    )
                part = "activities"
                activities = ledger = applied = None
                activities, ledger, applied = self._records(batch)
                for part, rows in (  # noqa: B007 - `part` names the failing part below
                    ("history", batch.rows),
                    ("activities", activities),
                    ("ledger", ledger),
                    ("applied_ids", applied),
                ):
                    if rows:
                        conn.executemany(_INSERT_HISTORY, self._packed(rows, pids, new_pids))
                part = "attach_visitor"
                if batch.attach_visitor:
                    conn.executemany(
                        _ATTACH_VISITOR,
                        [
                            (self._pid(p, pids, new_pids), names.ids.get(v, v))
                            for v, p in batch.attach_visitor
                        ],
                    )
                part = "prospects"
                if new_pids:
                    known = set(batch.prospects)
                    conn.executemany(
                        _INSERT_PROSPECT_ID,
                        [(pids[e], e) for e in new_pids if e not in known],
                    )
                part = "outbox"
                if batch.outbox:
                    conn.executemany(_INSERT_OUTBOX, not_derived(batch.outbox, ledger, OUTBOX))
                part = "crm_pending"
                if batch.crm_pending:
                    conn.executemany(_INSERT_CRM, not_derived(batch.crm_pending, ledger, CRM))
                part = "rejects"
                if batch.rejects:
                    conn.executemany(_UPSERT_REJECT, batch.rejects)
                    for src in dict.fromkeys(r[0] for r in batch.rejects):
                        conn.execute(_NOTE_REJECTS_ORDER, (REJECTS_ORDER_KEY + src,))
                part = "diagnostics"
                if batch.unsettled or batch.prospects:
                    _commit_diagnostics(conn, batch)
                part = "shared"
                if batch.shared:
                    conn.executemany(_UPSERT_SHARED, batch.shared.items())
                part = "rules"
                if batch.rules:
                    conn.executemany(_INSERT_RULE, batch.rules)
                part = "names"
                if names.added:
                    conn.executemany(_INSERT_NAME, names.added)
                part = "stream position"
                conn.execute(_UPSERT_STREAM, (batch.source, batch.line, _now()))
                part = "meta"
                meta: list[tuple[str, Any]] = [("mrules_version", __version__)]
                if batch.clock is not None:
                    meta.append(("clock", float(batch.clock)))
                if batch.ruleset_version is not None:
                    meta.append(("ruleset_version", batch.ruleset_version))
                if batch.anchor is not None:
                    meta.append((ANCHOR_KEY + batch.source, anchor_text(batch.anchor)))
                top = batch.max_seq()
                if top > self.max_seq():
                    meta.append(("seq", top))
                conn.executemany(_SET_META, meta)
                part = "transaction"
                conn.execute("RELEASE batch" if held else "COMMIT")
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK TO batch" if held else "ROLLBACK")
                raise
        except (sqlite3.Error, ValueError, TypeError, IndexError, KeyError, AttributeError) as err:
            e: BaseException = err
            if isinstance(err, _PartError):
                part, e = err.part, err.cause
            names.rollback()
            for email in new_pids:
                pids.pop(email, None)
            raise StoreError(
                f"cannot commit to store {self.path} ({part} of the batch at"
                f" {batch.source}:{batch.line}): {_describe(e)}; nothing of this batch was"
                f" written, every earlier batch is kept; {_advice(e, self.path)}"
            ) from e
        except BaseException:
            names.rollback()
            for email in new_pids:
                pids.pop(email, None)
            raise
        finally:
            self._absent = set()
        names.commit()
        if len(pids) > PID_CACHE:
            pids.clear()  # bounded: the next commits look their prospects up again

    def _records(self, batch: Batch) -> tuple[list[Row], list[Row], list[Row]]:
        """Plain records to rows; a malformed one raises naming its part of the batch."""
        if not (batch.activities or batch.ledger or batch.applied_ids):
            return [], [], []
        part = "activities"
        try:
            plain = Batch(batch.source, batch.line, batch.clock, activities=batch.activities)
            activities = rows_of_records(plain)[0]
            part = "ledger"
            plain = Batch(batch.source, batch.line, batch.clock, ledger=batch.ledger)
            ledger = rows_of_records(plain)[1]
            part = "applied_ids"
            plain = Batch(batch.source, batch.line, batch.clock, applied_ids=batch.applied_ids)
            applied = rows_of_records(plain)[2]
        except (ValueError, TypeError, IndexError, KeyError, orjson.JSONDecodeError) as e:
            raise _PartError(part, e) from e
        return activities, ledger, applied

    def _packed(
        self, rows: list[Row], pids: dict[str, int], new_pids: list[str]
    ) -> Iterator[tuple[Any, ...]]:
        names = self._names
        assert names is not None
        for row in rows:
            email = row.prospect
            pid = None if email is None else pids.get(email) or self._pid(email, pids, new_pids)
            yield _history_values(row, pid, names)

    def _pid(self, email: str, pids: dict[str, int], new_pids: list[str]) -> int:
        """The prospect's integer id, a new one (recorded in new_pids) if it has none."""
        found = pids.get(email)
        if found is None:
            if email not in self._absent:
                row = self._one("SELECT id FROM prospects WHERE email = ?", (email,))
                if row is not None:
                    found = pids[email] = int(row[0])
                    return found
            found = self._next_pid
            if found > _LARGEST_ID:  # only a damaged id leaves no room: they go up by one
                raise self.damaged_value("the largest prospect id", found - 1)
            pids[email] = found
            self._next_pid += 1
            new_pids.append(email)
        return found

    def _pid_map(self) -> dict[str, int]:
        if self._pids is None:
            self._pids = {}
            row = self._one("SELECT max(id) FROM prospects")
            self._next_pid = int(row[0] or 0) + 1 if row else 1
        return self._pids

    def _known_pids(self, emails: Iterable[str], pids: dict[str, int]) -> None:
        """Look up, 500 at a time, the ids of the emails `pids` lacks; note the new ones."""
        missing = [e for e in emails if e not in pids]
        pids.update(self._among("SELECT email, id FROM prospects WHERE email IN ({})", missing))
        self._absent = {e for e in missing if e not in pids}

    def _pid_of(self, email: str) -> int | None:
        if self._pids is not None and not self.readonly:
            found = self._pids.get(email)
            if found is not None:
                return found
        row = self._one("SELECT id FROM prospects WHERE email = ?", (email,))
        return None if row is None else int(row[0])

    def _emails(self) -> dict[int, str]:
        """Prospect id -> email; an email that is not text is damage (exit 4), not a
        TypeError where a command writes it out."""
        found = {}
        for i, e in self._all("SELECT id, email FROM prospects"):
            if type(e) is not str:
                raise self.damaged_value(f"the email of prospect id {i}", e)
            found[i] = e
        return found

    def _interner(self) -> Interner:
        if self._names is None or self.readonly:
            names = Interner()
            rows = self._all("SELECT id, text FROM names ORDER BY id")
            for i, text in rows:
                if type(i) is not int or i < 0 or type(text) is not str:
                    raise self.damaged_value(f"name {i}", text)
                if i > len(rows):  # ids are given in turn from 1: a gap this wide is damage
                    raise self.damaged_value(f"a name's id ({len(rows)} names)", i)
            names.load(iter(rows))
            self._names = names
        return self._names

    def _history(
        self,
        sql: str,
        params: tuple[Any, ...] = (),
        one: tuple[int, str] | None = None,
        *,
        joined: bool = False,
    ) -> Iterator[Row]:
        """History rows decoded (prospect ids read back as emails).

        `one`: (id, email) of the prospect whose rows these are. A reader then asks the
        store for the names those rows use, not for every name and email (at 2 million
        events, loading them all took a second of `explain`). `joined`: the query's first
        column is the email itself (joined from `prospects`), and a reader asks for the
        names as above: the messages read by email (`_by_email`) use few of them. Each
        reader of both kinds of messages (`mrules replay` on each side's store) loaded
        every name (200,000, 29 MiB) and every email (10 MiB at 72,000 prospects).
        """
        cur = self._exec(self._connection(), sql, params)
        return self._decode(cur, one, joined)

    def _names_as_needed(self) -> Interner:
        """An empty `Interner` that asks the store for each name as it is read."""
        names = Interner()
        found: dict[int, str | None] = {}

        def fetch(i: int) -> str | None:
            if i not in found:
                row = self._one("SELECT text FROM names WHERE id = ?", (i,))
                if row is not None and type(row[0]) is not str:
                    raise self.damaged_value(f"name {i}", row[0])
                found[i] = None if row is None else row[0]
            return found[i]

        names.fetch = fetch
        return names

    def _decode(
        self, cur: sqlite3.Cursor, one: tuple[int, str] | None = None, joined: bool = False
    ) -> Iterator[Row]:
        few_names = self.readonly and (one is not None or joined)
        names = self._names_as_needed() if few_names else self._interner()
        emails: dict[int, str] | None = None if one is None else {one[0]: one[1]}
        try:
            for pid, visitor, ts, seq, event_id, data in cur:
                email = None
                if joined:  # the first column is the prospect's email
                    if pid is not None:
                        if type(pid) is not str:
                            raise self.damaged_value("a prospect's email", pid)
                        email = pid
                elif pid is not None:
                    if emails is None:
                        emails = self._emails()
                    email = emails.get(pid)
                    if email is None:  # a prospect committed after this read began
                        emails = self._emails()
                        email = emails.get(pid)
                if type(ts) is int:
                    ts /= 1000
                if ts is not None and (
                    type(ts) is not float or not _YEARS_1_TO_9999[0] <= ts <= _YEARS_1_TO_9999[1]
                ):
                    raise TypeError(f"its time is {str(ts)[:40]!r}")  # damage: no date holds it
                if seq is not None and type(seq) is not int:
                    raise TypeError(f"its seq is {str(seq)[:40]!r}")
                if event_id is not None and type(event_id) is not str:  # the action log's
                    raise TypeError(f"its event id is {str(event_id)[:40]!r}")  # JSON: exit 70
                if type(visitor) is int:
                    visitor = names.text(visitor)
                yield unpack(data, names, email, visitor, ts, seq, event_id)
        except (sqlite3.Error, UnicodeDecodeError) as e:
            raise StoreError(_read_message(self.path, e)) from e
        except HISTORY_DAMAGE as damage:
            raise damaged_history(self.path, damage) from damage

    # -- internals -------------------------------------------------------------------------

    def damaged_value(self, what: str, value: object) -> StoreError:
        """The error for a value of the wrong kind in this store's tables, whoever read it."""
        return StoreError(
            f"store {self.path} is damaged ({what} is {str(value)[:40]!r}): {_damaged(self.path)}"
        )

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StoreError(f"store {self.path} is closed")
        return self._conn

    def _exec(
        self, conn: sqlite3.Connection, sql: str, params: tuple[Any, ...] = ()
    ) -> sqlite3.Cursor:
        try:
            return conn.execute(sql, params)
        except (sqlite3.Error, UnicodeDecodeError) as e:
            raise StoreError(_read_message(self.path, e)) from e

    def _one(self, sql: str, params: tuple[Any, ...] = ()) -> Any:
        return self._exec(self._connection(), sql, params).fetchone()

    def _among(self, sql: str, keys: Collection[Any]) -> list[Any]:
        """The rows of `sql` (an `IN ({})` to fill) for these keys, 500 keys a query."""
        keys = list(keys)
        out: list[Any] = []
        for i in range(0, len(keys), 500):
            chunk = tuple(keys[i : i + 500])
            out += self._all(sql.format(",".join("?" * len(chunk))), chunk)
        return out

    def _all(self, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        cur = self._exec(self._connection(), sql, params)
        try:
            return cur.fetchall()
        except (sqlite3.Error, UnicodeDecodeError) as e:
            raise StoreError(_read_message(self.path, e)) from e

    def _iter(
        self, sql: str, params: tuple[Any, ...] = (), make: Callable[[Any], Any] | None = None
    ) -> Iterator[Any]:
        # Executed now, so a bad store fails at the call, not at the first next().
        cur = self._exec(self._connection(), sql, params)
        return self._rows(cur, make)

    def _rows(self, cur: sqlite3.Cursor, make: Callable[[Any], Any] | None) -> Iterator[Any]:
        try:
            if make is None:
                yield from cur
            else:
                yield from map(make, cur)
        except (sqlite3.Error, UnicodeDecodeError) as e:
            raise StoreError(_read_message(self.path, e)) from e


# -- opening: paths, lock, connections, schema ---------------------------------------------


def _check_path(path: Path, readonly: bool) -> None:
    """Refuse paths SQLite would fail on obscurely (or, read-only, silently create)."""
    try:
        os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        pass  # nothing there: a new store, or none to read (below)
    except OSError as e:  # a name too long, a loop of symbolic links: no file can be there
        raise StorePathError(f"store {path}: {e.strerror}; give another --store path") from None
    if path.is_dir():
        raise StorePathError(
            f"store {path} is a folder, not a file (did you mean {path}/mrules.db?)"
        )
    if readonly:
        if not path.exists():
            blocker = _file_in_the_way(Path(os.path.realpath(path)).parent)
            raise StorePathError(f"no store at {path}" + (f": {blocker}" if blocker else ""))
    else:
        parent = Path(os.path.realpath(path)).parent  # a symlink's store is made at its target
        if not parent.is_dir():
            blocker = _file_in_the_way(parent)
            if blocker:
                raise StorePathError(
                    f"cannot create store {path}: {blocker}; give another --store path"
                )
            raise StorePathError(f"cannot create store {path}: folder {parent} does not exist")
    _refuse_what_is_not_a_store(path)


def _file_in_the_way(folder: Path) -> str | None:
    """`FILE is a file, not a folder` when `folder` or a folder above it is a file (say,
    `--store events.jsonl/x.db`), so no folder can be there; None if it is only missing."""
    for above in (folder, *folder.parents):
        try:
            mode = os.stat(above).st_mode
        except (FileNotFoundError, NotADirectoryError):
            continue
        except OSError:
            return None
        if stat.S_ISDIR(mode):
            return None
        kind = "a file" if stat.S_ISREG(mode) else special_file_kind(mode)
        return f"{above} is {kind}, not a folder"
    return None


def _refuse_what_is_not_a_store(path: Path) -> None:
    """A file that exists is a store or is refused, before any lock file is made.

    A 0-byte file is what a full disk, a failed copy or `touch` leaves; taking
    it for a new store would silently start over from nothing (mrules creates
    stores whole). A file that is not SQLite at all is another file given by
    mistake (the events, say).
    """
    try:
        info = path.stat()
    except OSError:
        return
    if not stat.S_ISREG(info.st_mode):  # a FIFO would read as 0 bytes, or block SQLite
        raise StorePathError(
            f"store {path} is {special_file_kind(info.st_mode)}, not a file: give the path of"
            f" a store file"
        )
    size = info.st_size
    if size > 0:  # not SQLite at all (say, the events file): refused before any lock file
        try:
            with path.open("rb") as f:
                head = f.read(16)
        except OSError:
            return  # unreadable: SQLite's own error says why
        if head != b"SQLite format 3\x00":
            raise NotAStore(
                f"{path} is not an mrules store (not a SQLite database): give another --store"
                f" path, or move the file away"
            )
        return
    if size == 0:
        raise StoreError(
            f"store {path} is an empty file (0 bytes), not an mrules store; if it is a copy"
            f" that failed, copy the store again; to start a new store from nothing, delete it"
            f" (rm {path}) and run again"
        )


def _lock_path(path: Path) -> Path:
    """`PATH.lock` beside the store's real file: a symlink to the store shares its lock."""
    real = Path(os.path.realpath(path))
    return real.with_name(real.name + ".lock")


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
    deadline = time.monotonic() + (timeout or 0.0)
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except OSError as e:
            if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise StoreError(f"cannot lock {lock_path}: {e.strerror}") from e
        pid = _holder(fd)
        if pid == os.getpid():  # held by this very process: waiting would never end
            raise StoreLocked(
                f"store {path} is open in this process already (pid {pid}): close the store"
                " (or end the run) that holds it first",
                path,
                pid,
            )
        if wait and timeout is None:
            fcntl.flock(fd, fcntl.LOCK_EX)
            return
        if not wait or time.monotonic() >= deadline:
            break
        time.sleep(_LOCK_POLL)
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


# One byte of the store file that the writer locks, so that two names of the same file
# (hard links: `ln a.db b.db`; a bind mount) exclude each other: `PATH.lock` is per name,
# and SQLite keeps a `-wal` and a `-shm` per name too, so two runs through two names
# each wrote their own log into one file ("Rowid out of order"). SQLite's unix VFS locks
# bytes of the database file itself only from PENDING_BYTE (0x40000000, 1 GiB) to
# PENDING_BYTE + 1 + 510 (the pending, reserved and 510 shared bytes, os.h); its WAL
# locks are on the `-shm` file. A byte below that range is never one SQLite locks, so
# this lock neither blocks nor is blocked by SQLite's. Locks are advisory: no read or
# write of the byte (the file may hold data there, or be smaller) is affected.
_FILE_LOCK_BYTE = 0x3FFFFFF0
# An open-file-description lock (Linux 3.15+) belongs to the descriptor, not to the
# process: a classic POSIX lock (F_SETLK) would be dropped when SQLite closes any of its
# own descriptors of the file, and would not exclude a second name opened by this very
# process. None where the system has none: the name's lock alone, as before.
_F_OFD_SETLK: int | None = getattr(fcntl, "F_OFD_SETLK", None)
_F_OFD_SETLKW: int | None = getattr(fcntl, "F_OFD_SETLKW", None)
_FILES_HELD: dict[tuple[int, int], Path] = {}  # (device, inode) -> the name this process holds


def _ofd(fd: int, command: int, kind: int) -> None:
    """One OFD lock call on `_FILE_LOCK_BYTE` (struct flock: type, whence, start, len, pid)."""
    fcntl.fcntl(fd, command, struct.pack("hhqqi4x", kind, os.SEEK_SET, _FILE_LOCK_BYTE, 1, 0))


def _lock_file(path: Path, wait: bool, timeout: float | None, deadline: float | None) -> int | None:
    """Lock the store file itself (`_FILE_LOCK_BYTE`); the descriptor, or None where the
    system cannot (no OFD locks, a file system without them, a file we cannot open for
    writing, which SQLite then refuses with its own message).

    Raises:
        StoreLocked: another process (or this one) has the same file open for writing
            under another name, and `wait` is false or `timeout` passed.
    """
    if _F_OFD_SETLK is None or _F_OFD_SETLKW is None:
        return None
    try:
        info = os.stat(path)
    except OSError:
        return None
    mine = _FILES_HELD.get((info.st_dev, info.st_ino))
    if mine is not None:  # waiting on ourselves would never end; checked before any open,
        # since closing a descriptor of the file would drop that store's SQLite locks
        raise StoreLocked(
            f"store {path} is open in this process already (pid {os.getpid()}) under"
            f" another name of the same file, {mine}: close that store first",
            path,
            os.getpid(),
        )
    try:
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        info = os.fstat(fd)
        key = (info.st_dev, info.st_ino)
        while True:
            try:
                if wait and timeout is None:
                    _ofd(fd, _F_OFD_SETLKW, fcntl.F_WRLCK)
                else:
                    _ofd(fd, _F_OFD_SETLK, fcntl.F_WRLCK)
                _FILES_HELD[key] = path
                return fd
            except OSError as e:
                if e.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                    os.close(fd)  # EINVAL, ENOLCK: no such locks here; the name's lock only
                    return None
            if not wait or deadline is None or time.monotonic() >= deadline:
                break
            time.sleep(_LOCK_POLL)
        other, pid = _other_name(path, info)
        waited = f" after waiting {timeout:g} s" if wait else ""
        if other is None:
            where = "another name of the same file (a hard link, or a bind mount)"
        else:
            holder = f"pid {pid}" if pid is not None else "pid unknown"
            where = f"another name of the same file, {other} ({holder})"
        raise StoreLocked(
            f"store {path} is in use by another mrules process under {where}{waited}", path, pid
        )
    except BaseException:
        with contextlib.suppress(OSError):
            os.close(fd)
        raise


def _other_name(path: Path, info: os.stat_result) -> tuple[Path | None, int | None]:
    """Another name of the store's file in its folder (a hard link), and the pid its lock
    file holds: the one with a pid first. (None, None) if there is none there (a hard
    link in another folder, a bind mount)."""
    real = Path(os.path.realpath(path))
    shown = path.parent if os.path.realpath(path.parent) == str(real.parent) else real.parent
    names: list[tuple[bool, str, int | None]] = []
    with contextlib.suppress(OSError), os.scandir(real.parent) as entries:
        for n, entry in enumerate(entries):
            if n >= 100_000:  # a huge folder: say "another name" rather than read it all
                break
            if entry.name == real.name:
                continue
            try:
                found = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            if (found.st_dev, found.st_ino) == (info.st_dev, info.st_ino):
                try:
                    with open(real.parent / f"{entry.name}.lock", "rb") as f:
                        text = f.read(32).decode("ascii", "replace").strip()
                except OSError:
                    text = ""
                pid = int(text) if text.isdigit() else None
                names.append((pid is None, entry.name, pid))
    if not names:
        return None, None
    _, name, pid = min(names)
    return shown / name, pid


def _unlock_file(fd: int | None) -> None:
    """Release `_lock_file`'s lock. Called once the store's connection is closed: closing a
    descriptor of the file drops the process's classic POSIX locks on it, SQLite's own."""
    if fd is None:
        return
    with contextlib.suppress(OSError):
        info = os.fstat(fd)
        _FILES_HELD.pop((info.st_dev, info.st_ino), None)
    with contextlib.suppress(OSError):
        if _F_OFD_SETLK is not None:
            _ofd(fd, _F_OFD_SETLK, fcntl.F_UNLCK)
    os.close(fd)


def _create(path: Path) -> None:
    """Create a new store whole: schema in a temporary file, then renamed into place.

    So a store file that exists always holds a schema, and a run killed while
    creating one leaves no half-made store (only, at worst, a hidden temporary
    file, removed by the next creation).
    """
    path = Path(os.path.realpath(path))  # a dangling symlink: made where it points
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
    except OSError as err:
        raise StoreError(f"cannot create store {path}: {err.strerror}; {_os_advice(err)}") from err
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
    except (sqlite3.Error, UnicodeDecodeError) as e:
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
        conn.execute(f"PRAGMA wal_autocheckpoint = {_WAL_CHECKPOINT_PAGES}")
        conn.execute("PRAGMA foreign_keys = OFF")
        _init_schema(conn, path)
    except (sqlite3.Error, UnicodeDecodeError) as e:
        conn.close()
        raise StoreError(_open_message(path, e)) from e
    except BaseException:
        conn.close()
        raise
    return conn


def _connect_readonly(path: Path) -> sqlite3.Connection:
    if os.access(path, os.W_OK) and os.access(path.parent, os.W_OK):
        # Opened for writing, with an authorizer that refuses every write: when the last
        # connection closes, SQLite removes the `-wal` and `-shm` files it made; a
        # `mode=ro` connection cannot, and left them beside the store after every
        # `state export` or `explain`.
        # A file SQLite will not open for writing is opened read-only, as below; not a
        # damaged file or one that is not a store: a `mode=ro` connection would fail the
        # same way and leave the `-wal` and `-shm` files this one removes.
        conn = _connect_readonly_as(path, "?mode=rw", in_read_only_folder=_read_only_file)
        conn.set_authorizer(refuse_writes)
        return conn
    return _connect_readonly_as(path, "?mode=ro", in_read_only_folder=_immutable)


def _read_only_file(path: Path, error: sqlite3.Error) -> sqlite3.Connection | None:
    """A store SQLite would not open for writing, read read-only; None: it is damaged or
    not a store, which a read-only connection cannot read either."""
    if _code(error) in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB):
        return None
    return _connect_readonly_as(path, "?mode=ro", in_read_only_folder=_immutable)


def _immutable(path: Path, error: sqlite3.Error) -> sqlite3.Connection | None:
    """A WAL store in a read-only folder (a read-only mount, an archive): SQLite cannot
    create its `-shm` index there, and no writer can be at work either (it could not
    create its `-wal`), so the file can be read as immutable. None: not that case."""
    if _code(error) not in (sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_READONLY):
        return None
    if os.access(path.parent, os.W_OK) and not _read_only_fs(path.parent):
        return None
    return _connect_readonly_as(path, "?mode=ro&immutable=1")


def _read_only_fs(folder: Path) -> bool:
    try:
        return bool(os.statvfs(folder).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def _connect_readonly_as(
    path: Path,
    query: str,
    in_read_only_folder: Callable[[Path, sqlite3.Error], sqlite3.Connection | None] | None = None,
) -> sqlite3.Connection:
    """Open for reading with these URI parameters and check it is a store.

    `in_read_only_folder`: asked for another connection when SQLite refuses to open the
    file (decided here, from the sqlite3 error itself: `raise ... from` keeps no
    `__cause__` in the compiled build, so a caller cannot look at it afterwards).
    """
    uri = path.resolve().as_uri() + query
    try:
        conn = sqlite3.connect(uri, uri=True, isolation_level=None)
    except sqlite3.Error as e:
        other = in_read_only_folder(path, e) if in_read_only_folder is not None else None
        if other is not None:
            return other
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
        if version < READS_FROM:
            raise StoreError(
                f"store {path} has schema {version} from an older mrules; open it once"
                f" for writing (e.g. with `mrules run`) to upgrade it to schema {SCHEMA_VERSION}"
            )
    except (sqlite3.Error, UnicodeDecodeError) as failed:  # not `e`: mypyc (test_compiled)
        conn.close()
        other = (
            in_read_only_folder(path, failed)
            if in_read_only_folder is not None and isinstance(failed, sqlite3.Error)
            else None
        )
        if other is not None:
            return other
        raise StoreError(_open_message(path, failed)) from failed
    except BaseException:
        conn.close()
        raise
    return conn


def _schema_version(conn: sqlite3.Connection, path: Path) -> int | None:
    """The store's schema version, None for an empty database; refuse foreign databases."""
    app_id = conn.execute("PRAGMA application_id").fetchone()[0]
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if app_id not in (0, APPLICATION_ID) or (tables and "meta" not in tables):
        raise NotAStore(
            f"{path} is a SQLite database but not an mrules store: give another --store path"
        )
    if not tables:
        return None
    row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    if row is None or not str(row[0]).isdigit():
        raise NotAStore(_not_a_store(conn, path, tables))
    return int(row[0])


def _not_a_store(conn: sqlite3.Connection, path: Path, tables: set[str]) -> str:
    """What a database with a `meta` table but no schema version is, when mrules made it:
    the CRM file or the sync file beside a store, given as `--store` by mistake."""
    meta: dict[str, Any] = {}
    with contextlib.suppress(sqlite3.Error, UnicodeDecodeError):
        meta = dict(conn.execute("SELECT key, value FROM meta"))
    for suffix, what in ((".crm.db", "CRM"), (".sync.db", "sync")):
        if what == "CRM" and not str(meta.get("format", "")).startswith("mrules-crm"):
            continue
        if what == "sync" and not ("schema" in meta and {"link", "cursor"} <= tables):
            continue
        stem = path.name.removesuffix(suffix) if path.name.endswith(suffix) else "NAME"
        return (
            f"{path} is an mrules {what} file, not a store: give the store ({stem}.db) as --store"
        )
    return f"{path} is not an mrules store (no schema version): give another --store path"


def _refuse_newer(version: int, path: Path) -> None:
    if version > SCHEMA_VERSION:
        raise StoreError(
            f"store {path} was written by a newer mrules (schema {version}; this mrules"
            f" {__version__} reads schema {SCHEMA_VERSION} and older): upgrade mrules"
        )


def _migrate_5_to_6(conn: sqlite3.Connection) -> None:
    """Schema 5 -> 6: the diagnostics reports are kept in the store (`diagnostics`).

    The reports of an upgraded store are in its diagnostics file: the first run that
    writes the file takes them in (`keep_diagnostics`), since no `diagnostics_kept`
    meta key says the store holds them already.
    """
    conn.execute(
        "CREATE TABLE IF NOT EXISTS diagnostics (prospect TEXT PRIMARY KEY, ord INTEGER NOT NULL,"
        " report TEXT NOT NULL) WITHOUT ROWID"
    )


_MIGRATIONS[5] = _migrate_5_to_6


def _commit_diagnostics(conn: sqlite3.Connection, batch: Batch) -> None:
    """In the batch's transaction: the reports of the prospects it changed dropped (their
    state is no longer the one the report was made about), its own reports kept."""
    reported = [r[0] for r in conn.execute("SELECT prospect FROM diagnostics")]
    if reported:  # few: read them all rather than look up every changed prospect
        gone = [(p,) for p in reported if p in batch.prospects]
        if gone:
            conn.executemany("DELETE FROM diagnostics WHERE prospect = ?", gone)
    if batch.unsettled:
        top = conn.execute("SELECT coalesce(max(ord), -1) FROM diagnostics").fetchone()[0]
        rows = diagnostic_rows([orjson.dumps(r) for r in batch.unsettled], int(top) + 1)
        conn.executemany(_UPSERT_DIAGNOSTIC, rows)


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
                    ("store_id", uuid.uuid4().hex),
                    (DIAGNOSTICS_KEPT, "1"),
                ],
            )
        else:
            _refuse_newer(version, path)
            while version < SCHEMA_VERSION:
                if version not in _MIGRATIONS:
                    raise StoreError(f"store {path} has schema {version}, which mrules cannot read")
                _MIGRATIONS[version](conn)
                version += 1
                conn.execute(_SET_META, ("schema_version", version))
            # A store made before ids gets one (the sync file notes it: reports tell another
            # store's sync file from its own); a key older versions leave alone.
            conn.execute(
                "INSERT INTO meta (key, value) VALUES ('store_id', ?) ON CONFLICT (key) DO NOTHING",
                (uuid.uuid4().hex,),
            )
        conn.execute("COMMIT")
    except BaseException:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")
        raise


def _code(e: BaseException) -> int | None:
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
    if code in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB) or _not_utf8(e) is not None:
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


def _read_message(path: Path, e: sqlite3.Error | UnicodeDecodeError) -> str:
    if isinstance(e, UnicodeDecodeError):
        return f"store {path} is damaged ({unreadable_reason(e)}): {_damaged(path)}"
    if _code(e) in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB) or _not_utf8(e) is not None:
        return f"store {path} is damaged ({_describe(e)}): {_damaged(path)}"
    return f"cannot read store {path}: {_describe(e)}; {_advice(e, path)}"


def _open_message(path: Path, e: sqlite3.Error | UnicodeDecodeError) -> str:
    if isinstance(e, UnicodeDecodeError):
        return _read_message(path, e)
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


HISTORY_DAMAGE = (KeyError, IndexError, ValueError, TypeError, OverflowError)
"""What reading a history row that is not a packed row raises (`history.load_data`, `unpack`;
`OverflowError`: a time no date can hold)."""


def damaged_history(store: object, e: BaseException) -> StoreError:
    """The error for a history row that cannot be read, whoever read it."""
    return StoreError(
        f"store {store} is damaged (a history row cannot be read: {_describe(e)});"
        " restore it from a backup or start a new one"
    )


def _messages_of(rows: Iterable[Row], want: int, after_seq: int | None = None) -> Iterator[Message]:
    """The messages (`want`: OUTBOX or CRM) of history rows, as they are read, with seq >
    `after_seq` when given. A generator function, not a generator expression: mypyc, which
    compiles this module, builds a generator expression's whole list first (at 2 million
    events, 100 MB of `state outbox`)."""
    for row in rows:
        for message in row.messages(want):
            if after_seq is None or message.seq > after_seq:
                yield message


def _email_seq(message: Message) -> tuple[str, int]:
    """A message's place in the CRM work read by prospect. Work of no prospect, or of one
    that is not text (a damaged row), sorts first: no prospect's record takes it."""
    return _email(message), message.seq


def _email(message: Message) -> str:
    prospect = message.prospect
    return prospect if type(prospect) is str else ""


def _seq(message: Message) -> int:
    """A message's place in the outbox and the CRM work (the merge's key)."""
    return message.seq


def _describe(e: BaseException) -> str:
    return _not_utf8(e) or str(e) or type(e).__name__


def _not_utf8(e: BaseException) -> str | None:
    """Python's `Could not decode to UTF-8 column 'C' with text '...'` (bytes that are not
    UTF-8 where SQLite has text: damage, such as bytes overwritten in a page) in words,
    without the bytes; None for any other error."""
    text = str(e)
    if not isinstance(e, sqlite3.Error) or not text.startswith("Could not decode to UTF-8"):
        return None
    parts = text.split("'")
    column = f"column {parts[1]}" if len(parts) > 2 else "a column"
    return f"{column} holds bytes that are not UTF-8 text"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
