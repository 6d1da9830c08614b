"""A PostgreSQL state store: the `StateStore` interface over one database (`--store postgresql://...`).

For teams whose workers and reports share one database. The tables are the
SQLite store's (docs/store.md), named `mrules_*` so that they can live beside
other tables, with the same meaning: one transaction a batch (everything the
batch changed and the stream position), so a killed run resumes exactly;
history rows packed by `mrules.history` exactly as in SQLite, with the `names`
table; reads (`state export`, `explain`, the action log) that return the same
records in the same order. Differences: the visitor column is always text; the
writers' lock is a PostgreSQL advisory lock held by the writer's session
(`StoreLocked` when another session holds it); `snapshot()` is a REPEATABLE
READ transaction. Install with `pip install 'mrules[postgres]'` (psycopg 3).
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Collection, Iterator
from pathlib import Path
from typing import Any

import orjson

from mrules.batch import (
    ANCHOR_KEY,
    Batch,
    anchor_text,
    event_hash,
    parse_anchor,
    rows_of_records,
)
from mrules.buildinfo import __version__
from mrules.history import CRM, OUTBOX, Interner, Row, pack, unpack
from mrules.records import (
    DIAGNOSTICS_KEPT,
    REJECTS_ORDER_KEY,
    Activity,
    LedgerEntry,
    Message,
    RejectedLine,
    diagnostic_rows,
)
from mrules.store import HISTORY_DAMAGE, _now, damaged_history, dns_by_rule
from mrules.storeapi import MAX_SEQ, YEARS_1_TO_9999, StoreError, StoreLocked, StorePathError

__all__ = ["LOCK_KEY", "PgStore", "copy_from_sqlite"]

SCHEMA_VERSION = 5
"""Bump on every schema change, with its step in `PgStore.open` (as `mrules.store`'s)."""
LOCK_KEY = 0x6D72756C  # "mrul": the advisory lock of the writer

_SCHEMA = """
CREATE TABLE IF NOT EXISTS mrules_meta (key text PRIMARY KEY, value text);
CREATE TABLE IF NOT EXISTS mrules_streams (source text PRIMARY KEY, line bigint NOT NULL,
    updated_at text);
CREATE TABLE IF NOT EXISTS mrules_rules (key text PRIMARY KEY, kind text,
    first_seen double precision);
CREATE TABLE IF NOT EXISTS mrules_names (id integer PRIMARY KEY, text text NOT NULL);
CREATE TABLE IF NOT EXISTS mrules_prospects (id integer PRIMARY KEY, email text UNIQUE NOT NULL,
    state bytea);
CREATE TABLE IF NOT EXISTS mrules_visitors (visitor text PRIMARY KEY, prospect text, history bytea);
CREATE TABLE IF NOT EXISTS mrules_history (id bigserial PRIMARY KEY, prospect integer,
    visitor text, ts double precision, seq bigint, event_id text, event integer,
    messages integer, data bytea NOT NULL);
CREATE INDEX IF NOT EXISTS mrules_history_prospect ON mrules_history (prospect)
    WHERE prospect IS NOT NULL;
CREATE INDEX IF NOT EXISTS mrules_history_anonymous ON mrules_history (visitor)
    WHERE prospect IS NULL AND visitor IS NOT NULL;
CREATE INDEX IF NOT EXISTS mrules_history_event ON mrules_history (event)
    WHERE event IS NOT NULL;
CREATE TABLE IF NOT EXISTS mrules_rejects (source text, line bigint, reason text, text text,
    PRIMARY KEY (source, line));
CREATE TABLE IF NOT EXISTS mrules_shared (key text PRIMARY KEY, value text);
CREATE TABLE IF NOT EXISTS mrules_diagnostics (prospect text PRIMARY KEY, ord bigint NOT NULL,
    report text NOT NULL);
"""

_COLUMNS = "prospect, visitor, ts, seq, event_id, data"
_UPSERT_DIAGNOSTIC = (
    "INSERT INTO mrules_diagnostics (prospect, ord, report) VALUES (%s, %s, %s)"
    " ON CONFLICT (prospect) DO UPDATE SET ord = excluded.ord, report = excluded.report"
)
_SET_META = (
    "INSERT INTO mrules_meta (key, value) VALUES (%s, %s)"
    " ON CONFLICT (key) DO UPDATE SET value = excluded.value"
)


def _shown(url: str) -> str:
    """The URL without its password, for messages: neither the one before `@` (libpq
    takes the user up to the first `:`, and a password may hold `@`) nor a `password=`
    (or `sslpassword=`) parameter."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    main, qsep, query = rest.partition("?")
    head, at, host = main.rpartition("@")
    if at:
        main = f"{head.split(':', 1)[0]}@{host}"
    if qsep:
        kept = [p for p in query.split("&") if not p.partition("=")[0].endswith("password")]
        query = "&".join(kept)
        qsep = "?" if query else ""
    return f"{scheme}://{main}{qsep}{query}"


def _why(e: BaseException) -> str:
    """A psycopg error on one line: the server's primary message (without its `LINE 1:`
    excerpt of the query), or libpq's text with its tab-indented hint joined on."""
    diag = getattr(e, "diag", None)
    primary = getattr(diag, "message_primary", None)
    return " ".join(str(primary or e).split()) or type(e).__name__


class PgStore:
    """An open PostgreSQL store; see `mrules.storeapi.StateStore` for each method."""

    def __init__(self, url: str, conn: Any, readonly: bool) -> None:
        self.url = url
        # `path` names the store in messages; default outputs go beside it (cwd/DBNAME.*).
        self.path = Path(conn.info.dbname or "mrules")
        self.readonly = readonly
        self._conn: Any = conn
        self._names: Interner | None = None
        self._pids: dict[str, int] | None = None
        self._next_pid = 1

    def __repr__(self) -> str:
        return f"PgStore({_shown(self.url)!r})"

    def __enter__(self) -> PgStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @classmethod
    def open(
        cls,
        url: str,
        *,
        wait: bool = False,
        timeout: float | None = None,
        readonly: bool = False,
    ) -> PgStore:
        """Connect; a writer takes the advisory lock and creates the tables if needed.

        Raises:
            StorePathError: psycopg is not installed, or a reader finds no store in the
                database.
            StoreError: the server cannot be reached, or the database holds a store of a
                newer mrules or a damaged one.
            StoreLocked: another session writes to the store (and `wait` is false or timed out).
        """
        try:
            # psycopg is optional (mrules[postgres]): the compiled build's type check,
            # which reaches this module through `mrules.api`, runs without it.
            import psycopg  # type: ignore[import-not-found, unused-ignore]
        except ImportError:  # a missing extra is for the command to fix: usage, exit 2
            raise StorePathError(
                "--store postgresql://... needs psycopg: pip install 'mrules[postgres]'"
            ) from None
        try:
            conn = psycopg.connect(url, autocommit=True, connect_timeout=10)
        except psycopg.Error as e:
            raise StoreError(
                f"cannot connect to store {_shown(url)}: {_why(e)}; check the URL and"
                " that the server runs"
            ) from None
        store = cls(url, conn, readonly)
        try:
            if readonly:
                found = store._one("SELECT to_regclass('mrules_meta')")[0]
                if found is None:  # as for a missing SQLite file: usage, exit 2
                    raise StorePathError(
                        f"no store in {_shown(url)} (run `mrules run RULES EVENTS --store"
                        f" {_shown(url)}` first)"
                    )
            if not readonly:
                store._lock(wait, timeout)
                with conn.transaction():
                    conn.execute(_SCHEMA)
                    version = store._meta_int("schema_version", "the schema version")
                    if version is None:
                        conn.execute(_SET_META, ("schema_version", str(SCHEMA_VERSION)))
                        conn.execute(_SET_META, ("created_at", _now()))
                        conn.execute(_SET_META, ("mrules_version", __version__))
                        conn.execute(_SET_META, (DIAGNOSTICS_KEPT, "1"))
                    elif version < SCHEMA_VERSION:
                        # 2 -> 3: new history rows are MessagePack; the JSON ones stay
                        # readable (`history.load_data`), so nothing else changes.
                        if version < 4:
                            store._migrate_3_to_4()
                        # 4 -> 5: `mrules_diagnostics` (made above); the first run takes
                        # in the diagnostics file's reports (no `diagnostics_kept` yet).
                        conn.execute(_SET_META, ("schema_version", str(SCHEMA_VERSION)))
            version = store._meta_int("schema_version", "the schema version")
            if version is None:
                raise StoreError(f"{_shown(url)} holds no mrules store yet: run mrules run first")
            if version > SCHEMA_VERSION:
                raise StoreError(  # the SQLite store's words (mrules.store)
                    f"store {_shown(url)} was written by a newer mrules (schema {version}; this"
                    f" mrules {__version__} reads schema {SCHEMA_VERSION} and older):"
                    " upgrade mrules"
                )
        except psycopg.Error as e:
            conn.close()
            raise StoreError(f"cannot open store {_shown(url)}: {_why(e)}") from None
        except BaseException:
            conn.close()
            raise
        return store

    def _migrate_3_to_4(self) -> None:
        """Schema 3 -> 4, the SQLite store's 4 -> 5 (`mrules.store._migrate_4_to_5`): a
        rule's `do not sync` is kept apart from the CRM's deletion.

        A prospect's state gets `dr` (`Prospect.dns_by_rule`) where a rule set its `do
        not sync`: one marked and not deleted in the CRM was marked by a rule; one marked
        and deleted was, unless its last `do not sync` / `allow crm recreate` step is the
        deletion's (`by: crm delete`), read from its history (only theirs is read).
        """
        updates = []
        for pid, email, state in self._all("SELECT id, email, state FROM mrules_prospects"):
            if state is None:
                continue
            raw = orjson.loads(bytes(state))
            if not raw.get("ds") or raw.get("dr"):
                continue
            by_rule = True
            if raw.get("st") == "deleted":
                rows = self._all(
                    f"SELECT {_COLUMNS} FROM mrules_history"
                    " WHERE prospect = %s AND seq IS NOT NULL ORDER BY id",
                    (pid,),
                )
                names = self._interner()
                by_rule = dns_by_rule(
                    e
                    for _, visitor, ts, seq, event_id, data in rows
                    for e in unpack(bytes(data), names, email, visitor, ts, seq, event_id).entries()
                )
            if by_rule:
                raw["dr"] = True
                updates.append((orjson.dumps(raw), pid))
        if updates:
            with self._conn.cursor() as cur:
                cur.executemany("UPDATE mrules_prospects SET state = %s WHERE id = %s", updates)

    def _lock(self, wait: bool, timeout: float | None) -> None:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            got = self._conn.execute("SELECT pg_try_advisory_lock(%s)", (LOCK_KEY,)).fetchone()[0]
            if got:
                return
            if not wait or (deadline is not None and time.monotonic() >= deadline):
                raise StoreLocked(
                    f"store {_shown(self.url)} is being written by another run", self.path, None
                )
            time.sleep(0.1)

    def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()  # ends the session: the advisory lock goes with it
            self._conn = None

    # -- helpers ---------------------------------------------------------------------------

    def _c(self) -> Any:
        if self._conn is None:
            raise StoreError(f"store {_shown(self.url)} is closed")
        return self._conn

    def _all(self, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        import psycopg  # type: ignore[import-not-found, unused-ignore]

        try:
            return self._c().execute(sql, params).fetchall()
        except psycopg.Error as e:
            raise StoreError(f"cannot read store {_shown(self.url)}: {_why(e)}") from None

    def _one(self, sql: str, params: tuple[Any, ...] = ()) -> Any:
        rows = self._all(sql, params)
        return rows[0] if rows else None

    def _meta_value(self, key: str) -> str | None:
        row = self._one("SELECT value FROM mrules_meta WHERE key = %s", (key,))
        return None if row is None else row[0]

    def _damaged(self, what: str, value: object) -> StoreError:
        return StoreError(
            f"store {_shown(self.url)} is damaged ({what} is {str(value)[:40]!r}): restore the"
            " database from a backup, or give an empty one to start a new store (a new run"
            " then applies the stream from its first line)"
        )

    def _meta_int(self, key: str, what: str) -> int | None:
        value = self._meta_value(key)
        if value is None:
            return None
        if not value.isascii() or not value.isdigit():
            raise self._damaged(what, value)
        return int(value)

    def _interner(self) -> Interner:
        if self._names is None or self.readonly:
            names = Interner()
            names.load(iter(self._all("SELECT id, text FROM mrules_names ORDER BY id")))
            self._names = names
        return self._names

    def _pid_map(self) -> dict[str, int]:
        if self._pids is None:
            self._pids = dict(self._all("SELECT email, id FROM mrules_prospects"))
            self._next_pid = max(self._pids.values(), default=0) + 1
        return self._pids

    def _pid_of(self, email: str) -> int | None:
        row = self._one("SELECT id FROM mrules_prospects WHERE email = %s", (email,))
        return None if row is None else int(row[0])

    def _history(self, where: str = "", params: tuple[Any, ...] = ()) -> Iterator[Row]:
        names = self._interner()
        emails = dict(self._all("SELECT id, email FROM mrules_prospects"))
        rows = self._all(f"SELECT {_COLUMNS} FROM mrules_history {where} ORDER BY id", params)
        try:
            for pid, visitor, ts, seq, event_id, data in rows:
                email = emails.get(pid) if pid is not None else None
                yield unpack(bytes(data), names, email, visitor, ts, seq, event_id)
        except HISTORY_DAMAGE as e:
            raise damaged_history(_shown(self.url), e) from None

    # -- reads -----------------------------------------------------------------------------

    def stream_position(self, source: str) -> int:
        row = self._one("SELECT line FROM mrules_streams WHERE source = %s", (source,))
        return 0 if row is None else int(row[0])

    def stream_anchor(self, source: str) -> tuple[int, int] | None:
        value = self._meta_value(ANCHOR_KEY + source)
        if value is None:
            return None
        found = parse_anchor(value)
        if found is None:
            raise self._damaged(f"the last event of stream {source}", value)
        return found

    def streams(self) -> dict[str, int]:
        return dict(self._all("SELECT source, line FROM mrules_streams ORDER BY source"))

    def clock(self) -> float | None:
        value = self._meta_value("clock")
        if value is None:
            return None
        try:
            clock = float(value)
        except ValueError:
            clock = math.nan
        if not YEARS_1_TO_9999[0] <= clock <= YEARS_1_TO_9999[1]:  # NaN, inf, 1e308: damage
            raise self._damaged("the clock", value)
        return clock

    def ruleset_version(self) -> str | None:
        return self._meta_value("ruleset_version")

    def meta(self) -> dict[str, str]:
        return dict(self._all("SELECT key, value FROM mrules_meta ORDER BY key"))

    def rules_first_seen(self) -> dict[str, float | None]:
        return dict(self._all("SELECT key, first_seen FROM mrules_rules"))

    def rules(self) -> Iterator[tuple[str, str, float | None]]:
        return iter(self._all("SELECT key, kind, first_seen FROM mrules_rules ORDER BY key"))

    def applied_ids(self) -> set[str]:
        sql = "SELECT DISTINCT event_id FROM mrules_history WHERE event_id IS NOT NULL"
        return {r[0] for r in self._all(sql)}

    def has_applied_ids(self) -> bool:
        sql = "SELECT 1 FROM mrules_history WHERE event IS NOT NULL LIMIT 1"
        return self._one(sql) is not None

    def applied_hashes(self) -> Iterator[int]:
        return iter([r[0] for r in self._all(
            "SELECT event FROM mrules_history WHERE event IS NOT NULL"
        )])  # fmt: skip

    def applied_among(self, ids: list[str]) -> set[str]:
        wanted = set(ids)
        hashes = list({event_hash(x) for x in ids})
        if not hashes:
            return set()
        sql = "SELECT event_id FROM mrules_history WHERE event = ANY(%s)"
        return {r[0] for r in self._all(sql, (hashes,)) if r[0] in wanted}

    def has_applied(self, event_id: str) -> bool:
        sql = "SELECT 1 FROM mrules_history WHERE event = %s AND event_id = %s LIMIT 1"
        return self._one(sql, (event_hash(event_id), event_id)) is not None

    def prospect(self, email: str) -> bytes | None:
        row = self._one("SELECT state FROM mrules_prospects WHERE email = %s", (email,))
        return None if row is None or row[0] is None else bytes(row[0])

    def prospects_among(self, emails: Collection[str]) -> dict[str, bytes]:
        sql = (
            "SELECT email, state FROM mrules_prospects WHERE state IS NOT NULL AND email = ANY(%s)"
        )
        return {e: bytes(s) for e, s in self._all(sql, (list(emails),))}

    def prospects(self) -> Iterator[tuple[str, bytes]]:
        sql = (
            "SELECT email, state FROM mrules_prospects WHERE state IS NOT NULL"
            ' ORDER BY email COLLATE "C"'
        )
        return iter([(e, bytes(s)) for e, s in self._all(sql)])

    def prospect_count(self) -> int:
        row = self._one("SELECT count(*) FROM mrules_prospects WHERE state IS NOT NULL")
        return int(row[0]) if row else 0

    def has_prospects(self) -> bool:
        sql = "SELECT 1 FROM mrules_prospects WHERE state IS NOT NULL LIMIT 1"
        return self._one(sql) is not None

    def visitors(self) -> Iterator[tuple[str, str | None, bytes]]:
        sql = 'SELECT visitor, prospect, history FROM mrules_visitors ORDER BY visitor COLLATE "C"'
        return iter([(v, p, bytes(h) if h is not None else b"[]") for v, p, h in self._all(sql)])

    def visitor(self, visitor: str) -> str | None:
        row = self._one("SELECT prospect FROM mrules_visitors WHERE visitor = %s", (visitor,))
        return None if row is None else row[0]

    def visitors_among(self, visitors: Collection[str]) -> dict[str, str]:
        sql = (
            "SELECT visitor, prospect FROM mrules_visitors"
            " WHERE prospect IS NOT NULL AND visitor = ANY(%s)"
        )
        return dict(self._all(sql, (list(visitors),)))

    def anonymous_views(self, visitor: str) -> list[tuple[float, str]]:
        where = "WHERE visitor = %s AND prospect IS NULL"
        return [
            (row.ts, row.url or "")
            for row in self._history(where, (visitor,))
            if row.etype == "page_view" and row.ts is not None
        ]

    def anonymous_views_among(
        self, visitors: Collection[str]
    ) -> dict[str, list[tuple[float, str]]]:
        out: dict[str, list[tuple[float, str]]] = {}
        wanted = list(set(visitors))
        if not wanted:
            return out
        for row in self._history("WHERE visitor = ANY(%s) AND prospect IS NULL", (wanted,)):
            visitor, ts = row.visitor, row.ts
            if row.etype == "page_view" and ts is not None and visitor is not None:
                out.setdefault(visitor, []).append((ts, row.url or ""))
        return out

    def shared(self) -> dict[str, str]:
        return dict(self._all("SELECT key, value FROM mrules_shared"))

    def activities(
        self, prospect: str | None = None, *, by_time: bool = True
    ) -> Iterator[Activity]:
        if prospect is None:
            rows = self._history()
        else:
            pid = self._pid_of(prospect)
            if pid is None:
                return iter(())
            rows = self._history("WHERE prospect = %s", (pid,))
        found = [a for a in (row.activity() for row in rows) if a is not None]
        if by_time:
            found.sort(key=lambda a: a.ts)
        return iter(found)

    def ledger(self, prospect: str | None = None, after_seq: int = 0) -> Iterator[LedgerEntry]:
        if prospect is not None:
            pid = self._pid_of(prospect)
            if pid is None:
                return iter(())
            rows = list(self._history("WHERE prospect = %s AND seq IS NOT NULL", (pid,)))
        else:
            first = self._row_holding(after_seq)
            rows = list(self._history("WHERE seq IS NOT NULL AND id >= %s", (first,)))
        entries = [e for row in rows for e in row.entries(after_seq)]
        entries.sort(key=lambda e: e.seq)
        return iter(entries)

    def _row_holding(self, seq: int) -> int:
        """The id of the last history row whose steps begin at or before seq (0: none).

        A row's steps start at its seq: the rows before that one hold no step after seq.
        """
        if seq <= 0:
            return 0
        start = self._one(
            "SELECT max(id) FROM mrules_history WHERE seq IS NOT NULL AND seq <= %s", (seq,)
        )
        return start[0] if start and start[0] is not None else 0

    def max_seq(self) -> int:
        seq = self._meta_int("seq", "the ledger's last seq") or 0
        if seq > MAX_SEQ:
            raise self._damaged("the ledger's last seq", str(seq))
        return seq

    def _messages(self, want: int, prospect: str | None, after_seq: int = 0) -> Iterator[Message]:
        if prospect is None:
            first = self._row_holding(after_seq)
            rows = self._history("WHERE (messages & %s) <> 0 AND id >= %s", (want, first))
        else:
            pid = self._pid_of(prospect)
            if pid is None:
                return iter(())
            rows = self._history("WHERE prospect = %s AND (messages & %s) <> 0", (pid, want))
        return iter([m for row in rows for m in row.messages(want) if m.seq > after_seq])

    def outbox(self) -> Iterator[Message]:
        return self._messages(OUTBOX, None)

    def crm_pending(self, prospect: str | None = None, after_seq: int = 0) -> Iterator[Message]:
        return self._messages(CRM, prospect, after_seq)

    def rejects(self, source: str | None = None) -> Iterator[RejectedLine]:
        if source is None:
            sql = (
                "SELECT source, line, reason, text FROM mrules_rejects"
                ' ORDER BY source COLLATE "C", line'
            )
            rows = self._all(sql)
        else:
            sql = (
                "SELECT source, line, reason, text FROM mrules_rejects WHERE source = %s"
                " ORDER BY line"
            )
            rows = self._all(sql, (source,))
        return iter([RejectedLine._make(r) for r in rows])

    def diagnostics(self) -> list[bytes]:
        rows = self._all('SELECT report FROM mrules_diagnostics ORDER BY ord, prospect COLLATE "C"')
        return [r[0].encode() for r in rows]

    def keep_diagnostics(self, reports: list[bytes]) -> None:
        if self.readonly:
            raise StoreError(f"store {_shown(self.url)} was opened read-only")
        conn = self._c()
        with conn.transaction():
            conn.cursor().executemany(_UPSERT_DIAGNOSTIC, diagnostic_rows(reports, 0))
            conn.execute(_SET_META, (DIAGNOSTICS_KEPT, "1"))

    def log_start(self, log: str) -> int | None:
        return self._meta_int("actions_log:" + log, f"the start of action log {log}")

    def set_log_start(self, log: str, seq: int) -> None:
        if self.readonly:
            raise StoreError(f"store {_shown(self.url)} was opened read-only")
        self._c().execute(_SET_META, ("actions_log:" + log, str(int(seq))))

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[PgStore]:
        conn = self._c()
        with conn.transaction():
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            yield self

    # -- writes ----------------------------------------------------------------------------

    @contextlib.contextmanager
    def one_transaction(self) -> Iterator[None]:
        """Every `commit` within is a savepoint of one transaction, committed at the end,
        rolled back on an error or an interrupt (then nothing of any is kept).

        The server keeps what the commits write, not this process, and no other session
        sees any of it before the end: `mrules segment` commits in chunks this way, as it
        does on the SQLite store, so that its memory does not follow the prospects it
        matches.
        """
        import psycopg  # type: ignore[import-not-found, unused-ignore]

        if self.readonly:
            raise StoreError(f"store {_shown(self.url)} was opened read-only")
        conn = self._c()
        try:
            with conn.transaction():  # a `commit`'s own transaction is a savepoint of it
                yield
        except psycopg.Error as e:
            self._pids = self._names = None  # as the rolled-back commits left them: reread
            raise StoreError(
                f"cannot commit to store {_shown(self.url)}: {_why(e)}; nothing of it was written"
            ) from None
        except BaseException:
            self._pids = self._names = None
            raise

    def commit(self, batch: Batch) -> None:
        """Write the batch and the stream position in one transaction (all or nothing)."""
        import psycopg  # type: ignore[import-not-found, unused-ignore]

        if self.readonly:
            raise StoreError(f"store {_shown(self.url)} was opened read-only")
        if batch.outbox or batch.crm_pending:
            raise StoreError(
                "the PostgreSQL store keeps messages as ledger steps only (no plain outbox"
                " or CRM records)"
            )
        conn = self._c()
        names = self._interner()
        pids = self._pid_map()
        new_pids: list[str] = []

        def pid(email: str) -> int:
            found = pids.get(email)
            if found is None:
                found = pids[email] = self._next_pid
                self._next_pid += 1
                new_pids.append(email)
            return found

        try:
            activities, ledger, applied = rows_of_records(batch)
            with conn.transaction(), conn.cursor() as cur:
                if batch.prospects:
                    cur.executemany(
                        "INSERT INTO mrules_prospects (id, email, state) VALUES (%s, %s, %s)"
                        " ON CONFLICT (id) DO UPDATE SET state = excluded.state",
                        [(pid(e), e, s) for e, s in batch.prospects.items()],
                    )
                if batch.visitors:
                    cur.executemany(
                        "INSERT INTO mrules_visitors (visitor, prospect, history)"
                        " VALUES (%s, %s, %s) ON CONFLICT (visitor) DO UPDATE SET"
                        " prospect = excluded.prospect, history = excluded.history",
                        [(v, p, h) for v, (p, h) in batch.visitors.items()],
                    )
                rows = [*batch.rows, *activities, *ledger, *applied]
                if rows:
                    packed = []
                    for row in rows:
                        p = None if row.prospect is None else pid(row.prospect)
                        eid = row.event_id
                        packed.append((
                            p, row.visitor, row.ts, row.steps[0] if row.steps else None, eid,
                            None if eid is None else event_hash(eid),
                            (row.message_bits() or None) if row.steps else None,
                            pack(row, names),
                        ))  # fmt: skip
                    cur.executemany(
                        "INSERT INTO mrules_history (prospect, visitor, ts, seq, event_id,"
                        " event, messages, data) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                        packed,
                    )
                for vid, email in batch.attach_visitor:
                    cur.execute(
                        "UPDATE mrules_history SET prospect = %s WHERE visitor = %s"
                        " AND prospect IS NULL",
                        (pid(email), vid),
                    )
                new = [e for e in new_pids if e not in batch.prospects]
                if new:  # ids that rows name before the prospect has a state
                    cur.executemany(
                        "INSERT INTO mrules_prospects (id, email, state) VALUES (%s, %s, NULL)"
                        " ON CONFLICT DO NOTHING",
                        [(pids[e], e) for e in new],
                    )
                if batch.rejects:
                    cur.executemany(
                        "INSERT INTO mrules_rejects (source, line, reason, text)"
                        " VALUES (%s, %s, %s, %s) ON CONFLICT (source, line) DO UPDATE SET"
                        " reason = excluded.reason, text = excluded.text",
                        [_text_row(r) for r in batch.rejects],
                    )
                    for src in dict.fromkeys(r[0] for r in batch.rejects):
                        cur.execute(
                            "INSERT INTO mrules_meta (key, value) SELECT %s, count(*)::text"
                            " FROM mrules_meta WHERE key LIKE 'rejects\\_order:%%'"
                            " ON CONFLICT (key) DO NOTHING",
                            (REJECTS_ORDER_KEY + _text_row((src,))[0],),
                        )
                if batch.unsettled or batch.prospects:
                    cur.execute("SELECT prospect FROM mrules_diagnostics")
                    gone = [(w,) for (w,) in cur.fetchall() if w in batch.prospects]
                    if gone:
                        cur.executemany("DELETE FROM mrules_diagnostics WHERE prospect = %s", gone)
                    if batch.unsettled:
                        cur.execute("SELECT coalesce(max(ord), -1) FROM mrules_diagnostics")
                        top = int(cur.fetchone()[0]) + 1
                        made = [orjson.dumps(r) for r in batch.unsettled]
                        cur.executemany(_UPSERT_DIAGNOSTIC, diagnostic_rows(made, top))
                if batch.shared:
                    cur.executemany(
                        "INSERT INTO mrules_shared (key, value) VALUES (%s, %s)"
                        " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                        list(batch.shared.items()),
                    )
                if batch.rules:
                    cur.executemany(
                        "INSERT INTO mrules_rules (key, kind, first_seen) VALUES (%s, %s, %s)"
                        " ON CONFLICT (key) DO NOTHING",
                        batch.rules,
                    )
                if names.added:
                    cur.executemany(
                        "INSERT INTO mrules_names (id, text) VALUES (%s, %s)", names.added
                    )
                cur.execute(
                    "INSERT INTO mrules_streams (source, line, updated_at) VALUES (%s, %s, %s)"
                    " ON CONFLICT (source) DO UPDATE SET line = excluded.line,"
                    " updated_at = excluded.updated_at",
                    (batch.source, batch.line, _now()),
                )
                meta: list[tuple[str, str]] = [("mrules_version", __version__)]
                if batch.clock is not None:
                    meta.append(("clock", repr(float(batch.clock))))
                if batch.ruleset_version is not None:
                    meta.append(("ruleset_version", batch.ruleset_version))
                if batch.anchor is not None:
                    meta.append((ANCHOR_KEY + batch.source, anchor_text(batch.anchor)))
                top = batch.max_seq()
                if top > self.max_seq():
                    meta.append(("seq", str(top)))
                cur.executemany(_SET_META, meta)
        except (psycopg.Error, ValueError, TypeError, IndexError, KeyError) as e:
            names.rollback()
            for email in new_pids:
                pids.pop(email, None)
            raise StoreError(
                f"cannot commit to store {_shown(self.url)} (the batch at"
                f" {batch.source}:{batch.line}): {_why(e)}; nothing of this batch was"
                " written, every earlier batch is kept"
            ) from None
        except BaseException:
            names.rollback()
            for email in new_pids:
                pids.pop(email, None)
            raise
        names.commit()


# The SQLite store's tables copied into a new PostgreSQL store (a partitioned run's merge),
# in the order the readers need them: (table, columns, ORDER BY).
_COPIED = (
    ("names", "id, text", "id"),
    ("prospects", "id, email, state", "id"),
    ("visitors", "visitor, prospect, history", "visitor"),
    ("history", "id, prospect, visitor, ts, seq, event_id, event, messages, data", "id"),
    ("rejects", "source, line, reason, text", "source, line"),
    ("shared", "key, value", "key"),
    ("diagnostics", "prospect, ord, report", "ord"),
    ("rules", "key, kind, first_seen", "key"),
    ("streams", "source, line, updated_at", "source"),
)


def _meta_text(value: Any) -> str:
    # As PgStore.commit writes them: a float's repr (the clock), other values as text.
    return repr(float(value)) if isinstance(value, float) else str(value)


def copy_from_sqlite(url: str, path: Path) -> int:
    """Copy the SQLite store at `path` into the new, empty PostgreSQL store at `url`.

    One transaction (all or nothing) of COPYs, rows as stored (history rows stay
    packed; a visitor id becomes its text and a time in milliseconds seconds, as
    this store keeps them). Returns the history rows copied.

    Raises:
        StoreError: the PostgreSQL store holds data already, the SQLite store has plain
            outbox or CRM rows (this store keeps messages as ledger steps only), or a
            database cannot be read or written.
        StoreLocked: another session writes to the PostgreSQL store.
    """
    import sqlite3

    import psycopg  # type: ignore[import-not-found, unused-ignore]

    src = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    store = PgStore.open(url)
    try:
        conn = store._c()
        for table in ("prospects", "history", "streams"):
            if conn.execute(f"SELECT 1 FROM mrules_{table} LIMIT 1").fetchone() is not None:
                raise StoreError(
                    f"store {_shown(url)} is not empty: a partitioned run writes a new store;"
                    " give an empty database"
                )
        for table in ("outbox", "crm_pending"):
            if src.execute(f"SELECT 1 FROM {table} LIMIT 1").fetchone() is not None:
                raise StoreError(
                    f"{path} has plain {table} rows: the PostgreSQL store keeps messages as"
                    " ledger steps only"
                )
        names = dict(src.execute("SELECT id, text FROM names"))
        rows = 0
        with conn.transaction(), conn.cursor() as cur:
            for table, columns, order in _COPIED:
                select = src.execute(f"SELECT {columns} FROM {table} ORDER BY {order}")
                with cur.copy(f"COPY mrules_{table} ({columns}) FROM STDIN") as copy:
                    if table == "history":
                        for row in select:
                            # SQLite keeps a visitor as a names id and an exact time as whole
                            # milliseconds (an int); this store, the text and seconds.
                            visitor, ts = row[2], row[3]
                            if type(visitor) is int:
                                visitor = names[visitor]
                            if type(ts) is int:
                                ts /= 1000
                            copy.write_row((*row[:2], visitor, ts, *row[4:]))
                            rows += 1
                    else:
                        for row in select:
                            copy.write_row(row)
            cur.execute(
                "SELECT setval(pg_get_serial_sequence('mrules_history', 'id'),"
                " GREATEST((SELECT max(id) FROM mrules_history), 1))"
            )
            meta = [
                (k, _meta_text(v))
                for k, v in src.execute("SELECT key, value FROM meta ORDER BY key")
                if k not in ("schema_version", "created_at") and v is not None
            ]
            cur.executemany(_SET_META, meta)
    except psycopg.Error as e:
        raise StoreError(f"cannot write store {_shown(url)}: {_why(e)}") from None
    except (sqlite3.Error, KeyError) as e:
        raise StoreError(f"cannot read the merged store {path}: {e}") from None
    finally:
        store.close()
        src.close()
    return rows


def _text_row(row: Any) -> tuple[Any, ...]:
    """A rejected line's row as PostgreSQL's text takes it: a NUL (a raw NUL byte in a
    line that is not JSON) becomes U+FFFD. PostgreSQL refused the whole commit, and
    every rerun at the same line, so one damaged line stopped the store for good."""
    return tuple(v.replace("\x00", "\ufffd") if type(v) is str else v for v in row)
