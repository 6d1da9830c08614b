"""Reading a store and its sync file for the reports: one connection, set-based SQL.

`Source.open(store, sync_db)` opens the store read-only (the same checks and
errors as `mrules explain`), attaches the sync file read-only as `sync` when
there is one, and builds two temporary tables every report reads:

- `ps`: one row a prospect: id, email, created, mql (first assigned), sql
  (first opportunity through a contact role), won (first won opportunity's
  close date), score, grade, source campaign; times in seconds since the epoch.
- `po`: one row a (prospect, opportunity) pair through a live contact role.

Times: the store's are engine seconds; the sync file's CRM dates (CreatedDate,
CloseDate) are ISO 8601 text read with SQLite's `unixepoch()` (UTC).
"""

from __future__ import annotations

import datetime as dt
import math
import sqlite3
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Final

from mrules.sqlitefiles import UNREADABLE, reading_uri, refuse_writes, unreadable_reason
from mrules.state import DamagedState
from mrules.store import READS_FROM, SCHEMA_VERSION, Store, StoreError
from mrules.storeapi import YEARS_1_TO_9999
from mrules.sync.db import default_sync_path
from mrules.timetext import utc_seconds_text, utc_text

__all__ = ["DAY", "Source", "check_sync_values", "epoch", "iso", "period_sql", "utc_text"]

DAY = 86400.0


def epoch(value: str | float | dt.datetime | dt.date | None) -> float | None:
    """Seconds since the epoch (UTC) of an ISO 8601 date or time; None stays None."""
    if value is None:
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, dt.datetime):
        moment = value
    elif isinstance(value, dt.date):
        moment = dt.datetime(value.year, value.month, value.day)
    else:
        text = value.strip()
        try:
            moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError:
            # "2026-10" is ISO 8601 too (a month), so the message says what is read.
            raise ValueError(
                f"{value!r} is not a date or time (give a day, such as 2026-10-01, or a time,"
                " such as 2026-10-01T09:00:00Z; UTC when no zone is given)"
            ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.timestamp()


def iso(seconds: float | None) -> str | None:
    """Epoch seconds as ISO 8601 UTC text, the year always in four digits.

    (`strftime("%Y")` writes the year 1 as `1` on Linux; `isoformat` pads it.)

    >>> iso(-62135596800.0), iso(0.5)
    ('0001-01-01T00:00:00Z', '1970-01-01T00:00:00Z')
    """
    if seconds is None:
        return None
    return utc_seconds_text(seconds)


def period_sql(by: str, col: str) -> str:
    """SQL for the period label of the epoch seconds in `col`: 2026-W44, 2026-10, 2026-Q4."""
    t = f"{col}, 'unixepoch'"
    if by == "month":
        return f"strftime('%Y-%m', {t})"
    if by == "quarter":
        return f"strftime('%Y', {t}) || '-Q' || ((CAST(strftime('%m', {t}) AS INTEGER) + 2) / 3)"
    if by == "week":  # ISO 8601 week: the week's Thursday decides the year (no %G/%V before 3.46)
        back = f"((CAST(strftime('%w', {t}) AS INTEGER) + 6) % 7)"
        thu = f"date({t}, '-' || {back} || ' days', '+3 days')"
        return (
            f"strftime('%Y', {thu}) || '-W' || "
            f"printf('%02d', (CAST(strftime('%j', {thu}) AS INTEGER) - 1) / 7 + 1)"
        )
    raise ValueError(f"unknown period {by!r}: week, month or quarter")


# A row's time: whole milliseconds as an INTEGER, else seconds as REAL (docs/store.md).
ROW_TS = "(CASE WHEN typeof(h.ts) = 'integer' THEN h.ts / 1000.0 ELSE h.ts END)"

_PROSPECTS = """
CREATE TEMP TABLE ps (
  id INTEGER PRIMARY KEY, email TEXT, created REAL, mql REAL, sql REAL, won REAL,
  score INTEGER, grade TEXT, campaign TEXT)
"""
_FILL = """
INSERT INTO ps (id, email, created, mql, score, grade, campaign)
SELECT id, email, json_extract(j, '$.c'), json_extract(j, '$.aa'), json_extract(j, '$.s'),
       json_extract(j, '$.g'), json_extract(j, '$.cp')
FROM (SELECT id, email, CAST(state AS TEXT) AS j FROM main.prospects WHERE state IS NOT NULL)
"""
# A time: a number within the years 1 to 9999 (what event times can be; inf is beyond).
_TIME_OK = (
    "(typeof({0}) IN ('integer', 'real') AND {0} BETWEEN"
    f" {YEARS_1_TO_9999[0]!r} AND {YEARS_1_TO_9999[1]!r})"
)
_DAMAGED = f"""
SELECT email, CASE
  WHEN created IS NULL THEN 'no creation time'
  WHEN NOT {_TIME_OK.format("created")} THEN 'creation time ' || quote(created)
  WHEN mql IS NOT NULL AND NOT {_TIME_OK.format("mql")} THEN 'assignment time ' || quote(mql)
  WHEN typeof(score) NOT IN ('integer', 'real') OR abs(score) > 1e15
    THEN 'score ' || quote(score)
  WHEN grade IS NOT NULL AND typeof(grade) != 'text' THEN 'grade ' || quote(grade)
  ELSE 'campaign ' || quote(campaign) END
FROM ps
WHERE created IS NULL OR NOT {_TIME_OK.format("created")}
   OR (mql IS NOT NULL AND NOT {_TIME_OK.format("mql")})
   OR typeof(score) NOT IN ('integer', 'real') OR abs(score) > 1e15
   OR (grade IS NOT NULL AND typeof(grade) != 'text')
   OR (campaign IS NOT NULL AND typeof(campaign) != 'text')
LIMIT 1
"""
# What the reports read of the sync file's copy of the CRM, and the kind each value must
# be: an id, a name or a reference is text; an amount or a cost a finite number; a flag
# 0 or 1; a time ISO 8601 text SQLite reads. NULL passes (the CRM left it blank).
_SYNC_READS: Final = {
    "link": {"prospect": "text", "crm_id": "text", "deleted": "flag"},
    "opportunity": {
        "id": "text",
        "amount": "number",
        "is_won": "flag",
        "is_closed": "flag",
        "deleted": "flag",
        "campaign": "text",
        "close_date": "time",
        "created": "time",
        "closed_at": "time",
        "at": "time",
    },
    "opportunity_role": {
        "opportunity": "text",
        "contact": "text",
        "is_primary": "flag",
        "deleted": "flag",
    },
    "campaign": {"id": "text", "name": "text", "actual_cost": "number", "deleted": "flag"},
    "campaign_member": {
        "campaign": "text",
        "contact": "text",
        "created": "time",
        "deleted": "flag",
    },
}
_KIND_OK: Final = {
    "text": "typeof({0}) = 'text'",
    "number": "(typeof({0}) IN ('integer', 'real') AND abs({0}) < 1e18)",  # 18 digits: SF's most
    "flag": "(typeof({0}) = 'integer' AND {0} IN (0, 1))",
    "time": "(typeof({0}) = 'text' AND unixepoch({0}) IS NOT NULL)",
}
_KIND_WHAT: Final = {
    "text": "not text",
    "number": "not a finite number",
    "flag": "not 0 or 1",
    "time": "not a time",
}
_PO = """
CREATE TEMP TABLE po (
  prospect INTEGER, opp TEXT, is_primary INTEGER, amount REAL, is_won INTEGER,
  is_closed INTEGER, opened REAL, won_at REAL, campaign TEXT, contact TEXT)
"""


def not_a_sync_file(path: str | Path, tables: set[str]) -> str:
    """Why the file at `path`, which holds `tables`, is no sync file: a 0-byte file (a copy
    that failed, a `touch`) is named as such, as a 0-byte store is."""
    if not tables:
        try:
            if Path(path).stat().st_size == 0:
                return f"{path} is not an mrules sync file: an empty file (0 bytes)"
        except OSError:
            pass
    name = Path(path).name
    if {"meta", "prospects", "history"} <= tables:  # the store given where its sync file goes
        stem = name.removesuffix(".db")
        return f"{path} is the mrules store, not a sync file: give its sync file ({stem}.sync.db)"
    if {"meta", "record", "applied_change"} <= tables:  # the CRM file beside it
        stem = name.removesuffix(".crm.db") if name.endswith(".crm.db") else "NAME"
        return f"{path} is an mrules CRM file, not a sync file: give the sync file ({stem}.sync.db)"
    return f"{path} is not an mrules sync file (no link or opportunity table)"


def refuse_what_is_no_sync_file_beside(store: str | Path) -> None:
    """StorePathError (exit 2) when NAME.sync.db beside the store is a folder, a named
    pipe or a device: the reports and `explain --timeline` took it for no sync file
    ("no SQL, won or opportunity figures") without a word, where every `sync` command
    refuses it."""
    import os
    import stat

    from mrules.loader import printable_path
    from mrules.pathkind import special_file_kind
    from mrules.store import StorePathError

    beside = default_sync_path(store)
    try:
        mode = os.stat(beside).st_mode
    except (OSError, ValueError):
        return
    if stat.S_ISREG(mode):
        return
    kind = "a folder" if stat.S_ISDIR(mode) else special_file_kind(mode)
    raise StorePathError(
        f"{printable_path(str(beside))}, where the sync file goes beside the store, is {kind}:"
        " move it away, or give --sync-db FILE"
    )


def refuse_foreign_sync(
    sync_path: str | Path, its: str | None, store_path: str | Path, mine: str | None
) -> None:
    """Exit 2 (StorePathError) when a sync file notes another store's id than the store's:
    its links name none of the store's prospects, so every SQL and won read from it would
    be none, without a word. A file or store without an id (from before it) passes."""
    from mrules.loader import printable_path
    from mrules.store import StorePathError

    if mine is not None and its is not None and mine != its:
        raise StorePathError(
            f"the sync file {printable_path(str(sync_path))} belongs to another store (store id"
            f" {its}; {printable_path(str(store_path))} is {mine}): give this store's"
            " own, NAME.sync.db beside the store NAME.db, which `mrules sync` writes"
        )


def check_sync_values(
    conn: sqlite3.Connection, path: str | Path, schema: str, tables: Iterable[str]
) -> None:
    """Raise StoreError naming the first value of the wrong kind (`_SYNC_READS`) in these
    tables of the sync file open as `schema` on `conn`: the reports and `explain
    --timeline` read the same values and refuse the same damage (exit 4)."""
    for table in tables:
        have = {r[1] for r in conn.execute(f'PRAGMA {schema}.table_info("{table}")')}
        for column, kind in _SYNC_READS[table].items():
            if column not in have:
                continue
            ok = _KIND_OK[kind].format(f'"{column}"')
            bad = conn.execute(
                f'SELECT rowid, quote("{column}"), "{column}" FROM {schema}."{table}"'
                f' WHERE "{column}" IS NOT NULL AND NOT {ok} LIMIT 1'
            ).fetchone()
            if bad is not None:
                from mrules.loader import printable_path

                what = _KIND_WHAT[kind]
                if kind == "number" and _finite(bad[2]):  # 1.5e308 is finite, just too big
                    what = "more than 18 digits"  # more than a CRM currency field holds
                raise StoreError(
                    f"{printable_path(str(path))}: the sync file is damaged ({table}"
                    f" row {bad[0]}: {column} is {what}, {bad[1][:40]});"
                    " restore it from a backup"
                )


def _finite(value: object) -> bool:
    """Whether `value` is an int or a float that is finite (not text, NaN or infinite)."""
    return isinstance(value, int) or (isinstance(value, float) and math.isfinite(value))


class Source:
    """An open store (read-only) and, if there is one, its sync file attached as `sync`."""

    def __init__(self, store: Store, conn: sqlite3.Connection, sync_path: Path | None) -> None:
        self.store = store
        self.conn = conn
        self.sync_path = sync_path  # None: no sync file (SQL and won need `mrules sync`)
        self._cols: dict[str, set[str]] = {}

    @classmethod
    def open(cls, store: str | Path, sync_db: str | Path | None = None) -> Source:
        """Open `store` read-only; `sync_db` defaults to NAME.sync.db beside it, if it exists.

        Raises StoreError / StorePathError as the other read commands do; a
        `sync_db` given but missing raises StorePathError.
        """
        from mrules.store import StorePathError

        opened = Store.open(store, readonly=True)
        conn = opened._conn
        assert conn is not None
        sync_path: Path | None
        if sync_db is None:
            guess = default_sync_path(store)
            try:
                refuse_what_is_no_sync_file_beside(store)
            except BaseException:
                opened.close()
                raise
            sync_path = guess if guess.is_file() else None
        else:
            from mrules.loader import printable_path

            sync_path = Path(sync_db)
            shown = printable_path(str(sync_db))
            why = None
            if not str(sync_db).strip():  # Path("") is the folder ".": "no sync file at ."
                why = "the sync file's name is empty: give its path, such as NAME.sync.db"
            elif sync_path.is_dir():
                why = f"the sync file {shown} is a folder: give the file, such as NAME.sync.db"
            elif not sync_path.is_file():
                why = f"no sync file at {shown} (run `mrules sync run` first)"
            if why is not None:
                opened.close()
                raise StorePathError(why)
        self = cls(opened, conn, sync_path)
        try:
            self._check_store()
            if sync_path is not None and not self._attach(sync_path, given=sync_db is not None):
                self.sync_path = None  # beside the store, made by a sync killed at once: none
            elif sync_path is not None and sync_db is not None:
                self._check_owner(sync_path)
            self._build()
        except UNREADABLE as e:
            opened.close()
            raise StoreError(f"cannot read store {store}: {unreadable_reason(e)}") from e
        except BaseException:
            opened.close()
            raise
        return self

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> Source:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, e: BaseException | None, tb: object
    ) -> None:
        """Close; a SQLite error of a report's own query is exit 4 naming the files (a
        damaged page met by one query, "database disk image is malformed", was an
        internal error)."""
        self.close()
        if isinstance(e, UNREADABLE):
            raise StoreError(self._unreadable(e)) from e

    def _unreadable(self, e: BaseException) -> str:
        files = f"store {self.store.path}"
        if self.sync_path is not None:
            files += f" or sync file {self.sync_path}"
        return f"cannot read {files}: {unreadable_reason(e)}"

    # -- opening ---------------------------------------------------------------------------
    def _check_store(self) -> None:
        row = self.conn.execute(
            "SELECT value FROM main.meta WHERE key = 'schema_version'"
        ).fetchone()
        if row is None or not READS_FROM <= int(row[0]) <= SCHEMA_VERSION:
            raise StoreError(
                f"store {self.store.path} has schema {row[0] if row else '?'}; the reports read"
                f" schemas {READS_FROM} to {SCHEMA_VERSION} (open it once with `mrules run` to"
                " migrate it)"
            )

    def _attach(self, path: Path, *, given: bool) -> bool:
        """Attach the sync file as `sync`; False, detached, for a file beside the store
        (not `given`) with no table: what a first sync killed while it made it leaves."""
        uri = reading_uri(path)
        self.conn.set_authorizer(refuse_writes)  # the store's may be mode=ro, without one
        try:
            self.conn.execute("ATTACH DATABASE ? AS sync", (uri,))
            tables = {r[0] for r in self.conn.execute("SELECT name FROM sync.sqlite_master")}
            if not tables and not given:
                self.conn.execute("DETACH DATABASE sync")
                return False
        except UNREADABLE as e:
            raise StoreError(f"cannot read sync file {path}: {unreadable_reason(e)}") from e
        if not {"link", "opportunity", "opportunity_role"} <= tables:
            raise StoreError(not_a_sync_file(path, tables))
        self._check_sync(path)
        return True

    def _check_owner(self, path: Path) -> None:
        """A `--sync-db` another store's cycles wrote is exit 2: its links name none of this
        store's prospects, and every report gave 0 SQL and 0 won without a word. Told by
        the store's id, which the sync file notes at each cycle (files from before it
        have none, and are read as before)."""
        ids = []
        for schema in ("main", "sync"):
            try:
                row = self.conn.execute(
                    f"SELECT value FROM {schema}.meta WHERE key = 'store_id'"
                ).fetchone()
            except sqlite3.OperationalError:  # no meta table: a file from before it
                row = None
            ids.append(str(row[0]) if row is not None and row[0] else None)
        refuse_foreign_sync(path, ids[1], self.store.path, ids[0])

    def _check_sync(self, path: Path) -> None:
        """A value of the sync file's CRM copy of the wrong kind is exit 4 naming it: text
        in a cost reached `float()` and a blob in a campaign's name the sort, internal
        errors, and a junk amount or time would have been counted as nothing, silently."""
        check_sync_values(self.conn, path, "sync", _SYNC_READS)

    def has(self, table: str) -> bool:
        return bool(self.columns(table))

    def crm_opportunities(self) -> int:
        """The opportunities the sync file holds, deleted ones too (0 without a sync file).

        0 with a sync file too: the sync block's `objects` may lack `opportunity` (its
        default is `lead, contact`), and then no prospect is an SQL or won; the reports
        say so rather than show those zeros as the CRM's answer."""
        if self.sync_path is None:
            return 0
        return int(self.query("SELECT count(*) FROM sync.opportunity")[0][0])

    def columns(self, table: str) -> set[str]:
        """The columns of a table of the sync file (empty: no such table, or no sync file)."""
        if self.sync_path is None:
            return set()
        found = self._cols.get(table)
        if found is None:
            found = {r[1] for r in self.conn.execute(f"PRAGMA sync.table_info({table})")}
            self._cols[table] = found
        return found

    def _check_states(self) -> None:
        """Damage in a prospect's stored state is exit 4 with its email, as `state export`
        says it: a state without its creation time (`{}`) or with text, a blob or an
        infinite number in a time or the score got through `json_extract` and failed
        later (an internal error sorting None against floats)."""
        bad = self.conn.execute(_DAMAGED).fetchone()
        if bad is not None:
            email, what = bad
            raise DamagedState(f"the stored state of prospect {email} cannot be read ({what})")

    def _build(self) -> None:
        c = self.conn
        c.execute("DROP TABLE IF EXISTS temp.ps")
        c.execute("DROP TABLE IF EXISTS temp.po")
        c.execute(_PROSPECTS)
        c.execute(_FILL)
        self._check_states()
        c.execute("CREATE INDEX temp.ps_email ON ps (email)")
        c.execute(_PO)
        if self.sync_path is None:
            return
        opp = self.columns("opportunity")
        # When the prospect became an SQL: the opportunity's CreatedDate, else when the sync
        # saw it (`at`); won: its CloseDate (else when it closed, else when it was seen).
        created = "unixepoch(o.created)" if "created" in opp else "NULL"
        closed_at = "unixepoch(o.closed_at)" if "closed_at" in opp else "NULL"
        campaign = "o.campaign" if "campaign" in opp else "NULL"
        c.execute(
            f"""
            INSERT INTO po
            SELECT ps.id, o.id, coalesce(r.is_primary, 0), coalesce(o.amount, 0.0),
                   coalesce(o.is_won, 0), coalesce(o.is_closed, 0),
                   coalesce({created}, unixepoch(o.at)),
                   CASE WHEN o.is_won THEN
                        coalesce(unixepoch(o.close_date), {closed_at}, unixepoch(o.at)) END,
                   {campaign}, l.crm_id
            FROM sync.link l
            JOIN ps ON ps.email = l.prospect
            JOIN sync.opportunity_role r ON r.contact = l.crm_id AND coalesce(r.deleted, 0) = 0
            JOIN sync.opportunity o ON o.id = r.opportunity AND coalesce(o.deleted, 0) = 0
            WHERE coalesce(l.deleted, 0) = 0
            """
        )
        c.execute("CREATE INDEX temp.po_prospect ON po (prospect)")
        c.execute(
            """
            UPDATE ps SET sql = a.sql, won = a.won
            FROM (SELECT prospect, min(opened) AS sql,
                         min(CASE WHEN is_won THEN won_at END) AS won
                  FROM po GROUP BY prospect) AS a
            WHERE ps.id = a.prospect
            """
        )

    # -- helpers ---------------------------------------------------------------------------
    def names(self) -> dict[int, str]:
        """The store's name table (id -> text); a name that is not text is damage (exit 4),
        as the store's own reader says it, not a TypeError further on."""
        out: dict[int, str] = {}
        for i, text in self.query("SELECT id, text FROM main.names"):
            if type(text) is not str:
                raise self.store.damaged_value(f"name {i}", text)
            out[i] = text
        return out

    def query(self, sql: str, params: Any = ()) -> list[tuple[Any, ...]]:
        try:
            return self.conn.execute(sql, params).fetchall()
        except UNREADABLE as e:
            raise StoreError(self._unreadable(e)) from e
