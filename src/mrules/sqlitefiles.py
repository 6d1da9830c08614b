"""Opening mrules' SQLite files (the store, the sync file) for reading only.

Two things every reader needs, in one place:

* the file is named by its real path: `f"file:{path}?mode=ro"` is no URI, since a
  `#` or a `?` in the name ends the path there (`a#b.sync.db` opened, and made,
  the file `a`) and a `%` reads as an escape;
* nothing is left behind: a `mode=ro` connection cannot remove the `-wal` and
  `-shm` files SQLite makes beside a WAL file, so where the file and its folder
  are writable a reader opens it read-write, and `refuse_writes` (an authorizer)
  keeps it from writing anything but its own temporary tables. SQLite then
  removes both files when the last connection closes.

>>> reading_uri("/nowhere/a#b?.db")
'file:///nowhere/a%23b%3F.db?mode=ro'
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

__all__ = ["UNREADABLE", "full_disk_advice", "reading_uri", "refuse_writes", "unreadable_reason"]

UNREADABLE = (sqlite3.DatabaseError, UnicodeDecodeError)
"""What reading a damaged SQLite file raises. SQLite's own errors, and Python's
`UnicodeDecodeError` when SQLite's message quotes bytes of the file that are not UTF-8
(a schema overwritten by junk): Python cannot make the error's text, and raises that."""


def unreadable_reason(e: BaseException) -> str:
    """An `UNREADABLE` error in words, for the message that names the file."""
    if isinstance(e, UnicodeDecodeError):
        return "SQLite's error quotes bytes that are not UTF-8: part of the file is overwritten"
    return str(e) or type(e).__name__


def full_disk_advice(e: BaseException) -> str:
    """What to do after SQLite's "database or disk is full" (SQLITE_FULL), to end the
    message that names the file (`; the disk is full: ...`); "" for any other error."""
    code = getattr(e, "sqlite_errorcode", None)
    if code is None or code & 0xFF != sqlite3.SQLITE_FULL:
        return ""
    return "; the disk is full: free some space, then run the same command again"


_WRITES = frozenset(
    getattr(sqlite3, name)
    for name in (
        "SQLITE_INSERT",
        "SQLITE_UPDATE",
        "SQLITE_DELETE",
        "SQLITE_CREATE_TABLE",
        "SQLITE_CREATE_INDEX",
        "SQLITE_CREATE_TRIGGER",
        "SQLITE_CREATE_VIEW",
        "SQLITE_DROP_TABLE",
        "SQLITE_DROP_INDEX",
        "SQLITE_DROP_TRIGGER",
        "SQLITE_DROP_VIEW",
        "SQLITE_ALTER_TABLE",
        "SQLITE_REINDEX",
        "SQLITE_ANALYZE",
    )
)


def reading_uri(path: str | Path) -> str:
    """The URI that opens `path` to read it: read-write where SQLite may tidy up its WAL
    files (the file and its folder writable), read-only otherwise. A connection made
    with it must be given `refuse_writes` before use.

    On a read-only file system (a read-only mount, an archive) a WAL file cannot be
    read `mode=ro`: SQLite must create its `-shm` index beside it and cannot ("unable
    to open database file"). No writer can be at work there either (it could not
    create its `-wal`), so the file is read as immutable, as the store is; not when a
    `-shm` is there (SQLite reads it) or a `-wal` with content (immutable would not read
    what it holds)."""
    p = Path(path).resolve()
    writable = os.access(p, os.W_OK) and os.access(p.parent, os.W_OK)
    if writable:
        return p.as_uri() + "?mode=rw"
    if _frozen(p):
        return p.as_uri() + "?mode=ro&immutable=1"
    return p.as_uri() + "?mode=ro"


def _frozen(p: Path) -> bool:
    """`p` is on a read-only file system, with no `-shm` beside it and no `-wal` holding
    anything: nothing can change it, and reading it as immutable misses nothing."""
    try:
        if not os.statvfs(p.parent).f_flag & os.ST_RDONLY:
            return False
        if os.path.exists(f"{p}-shm"):
            return False
        return not os.path.exists(f"{p}-wal") or os.path.getsize(f"{p}-wal") == 0
    except (OSError, ValueError):  # ValueError: a NUL in the name
        return False


def refuse_writes(
    action: int, _arg1: str | None, _arg2: str | None, db: str | None, _trigger: str | None
) -> int:
    """A reader's authorizer (`Connection.set_authorizer`): no write to any database but
    `temp` (the reports build temporary tables; they are not a file of mrules)."""
    if action in _WRITES and db != "temp":
        return sqlite3.SQLITE_DENY
    return sqlite3.SQLITE_OK
