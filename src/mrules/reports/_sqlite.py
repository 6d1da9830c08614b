"""Opening the SQLite files the reports read (the sync file) read-only, whatever their names."""

from __future__ import annotations

from pathlib import Path

__all__ = ["readonly_uri"]


def readonly_uri(path: str | Path) -> str:
    """The SQLite URI that opens `path` read-only.

    `f"file:{path}?mode=ro"` is not one: a `#` or a `?` in the name ends the
    path there, so `a#b.sync.db` opened (and made) the file `a`, for writing;
    a `%` was read as an escape.

    >>> readonly_uri("/tmp/a#b?.db")
    'file:///tmp/a%23b%3F.db?mode=ro'
    """
    return Path(path).resolve().as_uri() + "?mode=ro"
