"""Lists of plan items kept on disk as they are made (docs/sync.md#memory).

A first link's plan has an op and an inbound fact for every prospect: held as
Python objects, that is a few kilobytes a prospect. A `Spool` writes each item
as it is appended (its sorted-keys JSON, the bytes the plan id hashes) to a
temporary file, and decodes the items again, one at a time, each time it is
read: the plan's memory is the write buffer, not the number of records.

`ScratchMap` is a dict of picklable values kept the same way, in a private
temporary SQLite database (paged to disk past its cache).
"""

from __future__ import annotations

import datetime as dt
import io
import pickle
import sqlite3
import tempfile
import weakref
from collections.abc import Iterable, Iterator
from typing import Any

import orjson

from mrules.crm.port import Record

__all__ = [
    "DUMP_OPTIONS",
    "RecordMap",
    "ScratchMap",
    "SpillMap",
    "Spool",
    "dump_json",
    "load_spooled",
]

DUMP_OPTIONS = orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS
"""How a plan item is written: the bytes `plan_id` hashes."""

_READ = 1 << 16


class Spool:
    """An append-only list of JSON items on disk, read again item by item.

    `prefix` items (in memory, still changed while the plan is made) come first. An
    item appended is written at once: changing it afterwards changes nothing.
    """

    def __init__(self, items: Iterable[Any] = ()) -> None:
        self.prefix: list[Any] = []
        self._file: io.BufferedRandom | None = None
        self._count = 0
        self._end = 0
        for item in items:
            self.append(item)

    def append(self, item: Any) -> None:
        f = self._file
        if f is None:
            f = self._file = tempfile.TemporaryFile()  # noqa: SIM115 (closed with the spool)
            # A plan's spools live as long as its JSON, which callers keep past the cycle:
            # closed when the spool goes, not left to the file's own finalizer (under
            # `-W error` or `PYTHONWARNINGS`, `sync run` printed a ResourceWarning a cycle).
            weakref.finalize(self, f.close)
        data = orjson.dumps(item, option=DUMP_OPTIONS)
        if f.tell() != self._end:  # read since the last append
            f.seek(self._end)
        f.write(len(data).to_bytes(4, "little") + data)
        self._end += 4 + len(data)
        self._count += 1

    def raw(self) -> Iterator[bytes]:
        """Each item's JSON (sorted keys), prefix first."""
        for item in self.prefix:
            yield orjson.dumps(item, option=DUMP_OPTIONS)
        yield from self.raw_spooled()

    def __iter__(self) -> Iterator[Any]:
        yield from self.prefix
        loads = orjson.loads
        for data in self.raw_spooled():
            yield loads(data)

    def raw_spooled(self) -> Iterator[bytes]:
        """The items written to disk (not the prefix), read a block at a time."""
        f = self._file
        if f is None or not self._count:
            return
        f.flush()
        end = self._end
        pos = 0
        buf = b""
        at = 0
        while True:
            if len(buf) - at < 4 or len(buf) - at < 4 + int.from_bytes(buf[at : at + 4], "little"):
                if pos >= end:
                    return
                f.seek(pos)
                chunk = f.read(min(_READ, end - pos))
                pos += len(chunk)
                buf = buf[at:] + chunk
                at = 0
                continue
            n = int.from_bytes(buf[at : at + 4], "little")
            yield buf[at + 4 : at + 4 + n]
            at += 4 + n

    def __len__(self) -> int:
        return len(self.prefix) + self._count

    def __bool__(self) -> bool:
        return len(self) > 0

    def __getitem__(self, i: int) -> Any:
        if i < 0:
            i += len(self)
        for n, item in enumerate(self):
            if n == i:
                return item
        raise IndexError(i)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Spool | list | tuple):
            return len(self) == len(other) and all(a == b for a, b in zip(self, other, strict=True))
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return repr(list(self))

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
            self._count = self._end = 0


def dump_json(value: Any, out: Any, indent: int = 1) -> None:
    """Write `value` as `json.dumps(value, indent=indent, sort_keys=True)` writes it, to
    the text stream `out`, a list item at a time (a `Spool` is read from disk, not held)."""
    import json

    def write(v: Any, level: int) -> None:
        pad = " " * (indent * level)
        if isinstance(v, Spool):
            if not v:
                out.write("[]")
                return
            inner = " " * (indent * (level + 1))
            out.write("[\n")
            for n, item in enumerate(v):
                if n:
                    out.write(",\n")
                text = json.dumps(item, indent=indent, sort_keys=True)
                out.write(inner + text.replace("\n", "\n" + inner))
            out.write("\n" + pad + "]")
        elif isinstance(v, dict) and any(isinstance(x, Spool) for x in v.values()):
            if not v:
                out.write("{}")
                return
            inner = " " * (indent * (level + 1))
            out.write("{\n")
            for n, key in enumerate(sorted(v)):
                if n:
                    out.write(",\n")
                out.write(inner + json.dumps(key) + ": ")
                write(v[key], level + 1)
            out.write("\n" + pad + "}")
        else:
            text = json.dumps(v, indent=indent, sort_keys=True)
            out.write(text.replace("\n", "\n" + pad))

    write(value, 0)


class ScratchMap:
    """A dict of picklable values in a private temporary SQLite database: the values are
    on disk (past a small cache), not in the process."""

    def __init__(self) -> None:
        self._db = _scratch_db()
        self._db.execute("CREATE TABLE kv (k TEXT PRIMARY KEY, v BLOB NOT NULL) WITHOUT ROWID")

    def __setitem__(self, key: str, value: Any) -> None:
        data = self.dumps(value)
        self._db.execute("INSERT OR REPLACE INTO kv VALUES (?, ?)", (key, data))

    def __contains__(self, key: object) -> bool:
        row = self._db.execute("SELECT 1 FROM kv WHERE k = ?", (key,)).fetchone()
        return row is not None

    def get(self, key: str, default: Any = None) -> Any:
        row = self._db.execute("SELECT v FROM kv WHERE k = ?", (key,)).fetchone()
        return default if row is None else self.loads(row[0])

    def clear(self) -> None:
        self._db.execute("DELETE FROM kv")

    def pop(self, key: str, *default: Any) -> Any:
        row = self._db.execute("DELETE FROM kv WHERE k = ? RETURNING v", (key,)).fetchone()
        if row is None:
            if default:
                return default[0]
            raise KeyError(key)
        return self.loads(row[0])

    def keys(self) -> Iterator[str]:
        return (r[0] for r in self._db.execute("SELECT k FROM kv").fetchall())

    def __iter__(self) -> Iterator[str]:
        return self.keys()

    def __len__(self) -> int:
        return int(self._db.execute("SELECT count(*) FROM kv").fetchone()[0])

    def close(self) -> None:
        self._db.close()

    @staticmethod
    def dumps(value: Any) -> bytes:
        return pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)

    @staticmethod
    def loads(data: bytes) -> Any:
        return pickle.loads(data)


_PLAIN = (str, int, float, bool, type(None))


class RecordMap(ScratchMap):
    """A `ScratchMap` of CRM records: a record whose fields are plain JSON values is kept as
    JSON (cheaper than pickling a dataclass), any other as a pickle.

    The modstamp is kept as its ISO text, not as POSIX seconds: a float of seconds is a few
    microseconds off far from 1970 (the year 9999), and a time with no zone was taken for
    the local time."""

    @staticmethod
    def dumps(value: Any) -> bytes:
        r: Record = value
        if all(type(v) in _PLAIN for v in r.fields.values()) and type(r.fields) is dict:
            stamp = r.system_modstamp.isoformat()
            return b"j" + orjson.dumps((r.sobject, r.id, r.fields, stamp, r.is_deleted))
        return b"p" + pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)

    @staticmethod
    def loads(data: bytes) -> Any:
        if data[:1] == b"p":
            return pickle.loads(data[1:])
        sobject, rid, fields, stamp, deleted = orjson.loads(data[1:])
        return Record(sobject, rid, fields, dt.datetime.fromisoformat(stamp), deleted)


class SpillMap:
    """A dict (insertion order kept, as a dict keeps it) held in memory up to `limit` items,
    then in a private temporary SQLite table: a plan's changes to the links are few in a
    cycle (kept in memory, cheap to look up) and one a prospect in a first link (on disk).
    On disk, the items set last wait in a small buffer, written a block at a time."""

    _BLOCK = 1000

    def __init__(self, limit: int = 5000) -> None:
        self.limit = limit
        self._mem: dict[str, Any] | None = {}
        self._db: sqlite3.Connection | None = None
        self._pending: dict[str, Any] = {}  # set, not written yet (once spilled)

    def _spill(self) -> None:
        assert self._mem is not None
        self._db = _scratch_db()
        self._db.execute("CREATE TABLE kv (n INTEGER PRIMARY KEY, k TEXT UNIQUE NOT NULL, v BLOB)")
        self._pending = self._mem
        self._mem = None
        self._flush()

    def _flush(self) -> None:
        if not self._pending:
            return
        assert self._db is not None
        dumps, hi = pickle.dumps, pickle.HIGHEST_PROTOCOL
        self._db.execute("BEGIN")
        self._db.executemany(  # an update keeps the key's place, as a dict does
            "INSERT INTO kv (k, v) VALUES (?, ?) ON CONFLICT (k) DO UPDATE SET v = excluded.v",
            ((k, dumps(v, hi)) for k, v in self._pending.items()),
        )
        self._db.execute("COMMIT")
        self._pending = {}

    @property
    def spilled(self) -> bool:
        return self._mem is None

    def __setitem__(self, key: str, value: Any) -> None:
        if self._mem is not None:
            self._mem[key] = value
            if len(self._mem) > self.limit:
                self._spill()
            return
        self._pending[key] = value
        if len(self._pending) >= self._BLOCK:
            self._flush()

    def get(self, key: str, default: Any = None) -> Any:
        if self._mem is not None:
            return self._mem.get(key, default)
        if key in self._pending:
            return self._pending[key]
        assert self._db is not None
        row = self._db.execute("SELECT v FROM kv WHERE k = ?", (key,)).fetchone()
        return default if row is None else pickle.loads(row[0])

    def __contains__(self, key: object) -> bool:
        if self._mem is not None:
            return key in self._mem
        if key in self._pending:
            return True
        assert self._db is not None
        return self._db.execute("SELECT 1 FROM kv WHERE k = ?", (key,)).fetchone() is not None

    def __len__(self) -> int:
        if self._mem is not None:
            return len(self._mem)
        self._flush()
        assert self._db is not None
        return int(self._db.execute("SELECT count(*) FROM kv").fetchone()[0])

    def items(self) -> Iterator[tuple[str, Any]]:
        """In insertion order, read a block at a time (not all at once)."""
        if self._mem is not None:
            yield from list(self._mem.items())
            return
        self._flush()
        assert self._db is not None
        last = 0
        while True:
            rows = self._db.execute(
                "SELECT n, k, v FROM kv WHERE n > ? ORDER BY n LIMIT ?", (last, self._BLOCK)
            ).fetchall()
            if not rows:
                return
            for n, k, v in rows:
                last = n
                yield k, pickle.loads(v)

    def __iter__(self) -> Iterator[str]:
        return (k for k, _v in self.items())

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
        self._mem = {}
        self._pending = {}


def _scratch_db() -> sqlite3.Connection:
    """A private temporary SQLite database: nothing to recover, so no journal."""
    db = sqlite3.connect("", isolation_level=None)
    db.execute("PRAGMA cache_size = -2048")
    db.execute("PRAGMA journal_mode = OFF")
    db.execute("PRAGMA synchronous = OFF")
    return db


def load_spooled(stream: Any, keys: Iterable[str] = ("ops", "inbound")) -> dict[str, Any]:
    """A JSON object read from the binary `stream` as it goes: the lists under `keys` go
    to a `Spool` an item at a time, the other values are built whole (a saved plan: its
    ops and facts are one a record, the rest is small). Numbers as `json.loads` reads them.

    ValueError (its first line says why) when the text is no JSON object.
    """
    import ijson  # type: ignore[import-untyped]

    try:
        return _load_spooled(stream, keys)
    except ijson.JSONError as e:
        text = e.args[0] if e.args else "not JSON"
        if isinstance(text, bytes):
            text = text.decode("utf-8", "replace")
        raise ValueError(str(text).strip().splitlines()[0]) from None


def _load_spooled(stream: Any, keys: Iterable[str]) -> dict[str, Any]:
    import ijson  # type: ignore[import-untyped]
    from ijson.common import ObjectBuilder  # type: ignore[import-untyped]

    spooled = set(keys)
    events = ijson.parse(stream, use_float=True)

    def build(event: str, value: Any) -> Any:
        if event not in ("start_map", "start_array"):
            return value
        builder = ObjectBuilder()
        builder.event(event, value)
        depth = 1
        for _prefix, ev, val in events:
            builder.event(ev, val)
            if ev in ("start_map", "start_array"):
                depth += 1
            elif ev in ("end_map", "end_array"):
                depth -= 1
                if depth == 0:
                    return builder.value
        raise ValueError("incomplete JSON")

    first = next(events, None)
    if first is None or first[1] != "start_map":
        raise ValueError("not a JSON object")
    out: dict[str, Any] = {}
    for _prefix, event, key in events:
        if event == "end_map":
            break
        _p, event, value = next(events)
        if key in spooled and event == "start_array":
            spool = Spool()
            for _p2, ev, val in events:
                if ev == "end_array":
                    break
                spool.append(build(ev, val))
            out[key] = spool
        else:
            out[key] = build(event, value)
    for _trailing in events:  # ijson raises on anything after the object
        raise ValueError("text after the JSON object")
    return out
