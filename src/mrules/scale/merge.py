"""Shards into one store: what one process would have written, seq for seq.

Every shard holds its bucket's prospects (disjoint: asserted), their history
rows, visitors and rejects, with seqs numbered within the bucket. The merge
reads the shards' history rows in their order key (file ordinal, line; the
rows of one tick by prospect email, the order a tick visits prospects in;
rows at line 0, from `--now`, last), numbers their ledger steps again in that
order (one process numbers them in event order), and writes them to the new
target store. A tick goes to every bucket: a bucket where it changed nobody
keeps a bare row with its id; one process keeps that row only when the tick
changed nobody at all, so the merge does the same. Then prospects, visitors,
rejects (a line rejected in every bucket, a tick that is not valid, once),
rules, the shared state (equal in every shard, or the merge refuses), the
clock (the latest) and every stream's position (the file's last line, from
the manifest).

Speed: rows are copied as stored (docs/store.md, `history`), not decoded
into records and encoded again: only what names a `names` id (the stream,
the event type, assets, URLs, visitors, rule references, actions, arguments)
is rewritten to the target's ids, and the row's first seq. Steps after the
first hold their seq as a difference, which a contiguous renumbering keeps.
This is the one module besides `store.py` that knows the layout of schema 2;
it refuses a store of another schema.
"""

from __future__ import annotations

import heapq
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from mrules.history import Interner
from mrules.store import Store
from mrules.vocab import Action

__all__ = ["MergeError", "merge_shards"]

SCHEMA = 2
_LAST = 1 << 62  # line 0 (the --now tick at the end of a run) sorts after every line
_SCORE = str(Action.SCORE)
_loads, _dumps = orjson.loads, orjson.dumps


class MergeError(Exception):
    """The shards do not merge (they overlap, or disagree on shared state)."""


class _Shard:
    def __init__(self, path: Path, index: int) -> None:
        self.path, self.index = path, index
        self.log: Any = None  # the shard's action log, when the run writes one
        self.conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        version = self.meta("schema_version")
        if version != SCHEMA:
            raise MergeError(f"shard {path} has schema {version}; the merge knows {SCHEMA}")
        self.names: list[str | None] = [None]
        for i, text in self.conn.execute("SELECT id, text FROM names ORDER BY id"):
            while len(self.names) <= i:
                self.names.append(None)
            self.names[i] = text
        self.emails = dict(self.conn.execute("SELECT id, email FROM prospects"))

    def meta(self, key: str) -> Any:
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else row[0]

    def rows(self, ordinals: dict[str, int]) -> Iterator[tuple[Any, ...]]:
        names, emails, index = self.names, self.emails, self.index
        last: tuple[int, int, str] | None = None
        cur = self.conn.execute(
            "SELECT prospect, visitor, ts, seq, event_id, event, messages, data"
            " FROM history ORDER BY id"
        )
        for n, row in enumerate(cur):
            v = _loads(row[7])
            source = names[v[0]] if v[0] else None
            try:
                ordinal = ordinals[source]  # type: ignore[index]
            except KeyError:
                raise MergeError(
                    f"a row of shard {self.path} names a stream not in the manifest: {source}"
                ) from None
            email = emails[row[0]] if row[0] is not None else ""
            key = (ordinal, v[1] or _LAST, email)
            if last is not None and key < last:
                raise MergeError(f"shard {self.path}: rows out of order at row {n + 1}")
            last = key
            yield (*key, index, n, row, v)

    def close(self) -> None:
        self.conn.close()
        if self.log is not None:
            self.log.close()


def merge_shards(
    target_path: Path,
    shards: list[Path],
    files: list[str],
    lines: list[int],
    *,
    actions: Path | None = None,
) -> dict[str, Any]:
    """Merge `shards` into the new, empty store at `target_path`; `files`/`lines`: the streams.

    With `actions`, also merge the shards' action logs into that file: each line as the
    bucket wrote it, its seq renumbered (a ledger step's line, in the order of its row).
    """
    Store.open(target_path).close()  # a new store, whole, with its schema
    ordinals = {path: i for i, path in enumerate(files)}
    opened: list[_Shard] = []
    stats = {"rows": 0, "seq": 0, "prospects": 0, "rejects": 0, "bare_dropped": 0}
    conn = sqlite3.connect(target_path, isolation_level=None)
    try:
        conn.execute("PRAGMA synchronous = OFF")  # the file is hidden until renamed into place
        conn.execute("PRAGMA foreign_keys = OFF")
        version = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        if version is None or version[0] != SCHEMA:
            raise MergeError(f"{target_path}: the merge writes schema {SCHEMA} stores only")
        opened = [_Shard(p, i) for i, p in enumerate(shards)]
        if actions is not None:
            from mrules.scale.tasks import log_of

            for s in opened:
                s.log = open(log_of(s.path), "rb")  # noqa: SIM115  # closed with the shard
            out_log = open(actions, "wb")  # noqa: SIM115
        conn.execute("BEGIN")
        names = Interner()
        pids: dict[str, int] = {}
        # Indexes built once after the rows, not row by row (as SQLite stores them).
        indexes = conn.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'history'"
            " AND sql IS NOT NULL"
        ).fetchall()
        for name, _sql in indexes:
            conn.execute(f'DROP INDEX "{name}"')
        seq = _copy_history(conn, opened, ordinals, names, pids, stats,
                            out_log if actions is not None else None)  # fmt: skip
        for _name, sql in indexes:
            conn.execute(sql)
        _copy_rest(conn, opened, ordinals, names, pids, files, lines, seq, stats)
        conn.executemany("INSERT INTO names (id, text) VALUES (?, ?)", names.added)
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    finally:
        conn.close()
        for s in opened:
            s.close()
        if actions is not None and opened:
            out_log.close()
    return stats


def _copy_history(
    conn: sqlite3.Connection,
    shards: list[_Shard],
    ordinals: dict[str, int],
    names: Interner,
    pids: dict[str, int],
    stats: dict[str, Any],
    log: Any = None,
) -> int:
    seq = 0
    log_lines: list[bytes] = []
    out: list[tuple[Any, ...]] = []
    insert = (
        "INSERT INTO history (prospect, visitor, ts, seq, event_id, event, messages, data)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
    )
    get, maybe, maybe_args = names.get, names.maybe, names.maybe_args
    # Per shard: its names id -> the target's, for names always interned (`get`), names
    # interned if there is room (`maybe`: assets, URLs, visitors), and action arguments.
    got: list[dict[int, int]] = [{} for _ in shards]
    maybes: list[dict[int, Any]] = [{} for _ in shards]
    argses: list[dict[int, Any]] = [{} for _ in shards]
    widths: list[dict[int, int]] = [{} for _ in shards]  # negative action id -> values a step

    def emit(item: tuple[Any, ...]) -> None:
        nonlocal seq
        _ordinal, _line, email, index, _n, row, v = item
        shard_names = shards[index].names
        ids, maybe_ids, args_ids, width = got[index], maybes[index], argses[index], widths[index]
        pid, visitor, ts, first, event_id, event, messages, _data = row
        x = v[0]
        new = ids.get(x)
        if new is None:
            new = ids[x] = get(shard_names[x])  # type: ignore[arg-type]
        v[0] = new
        head = 5
        etype = v[2]
        if etype:
            t = -etype if etype < 0 else etype
            new = ids.get(t)
            if new is None:
                new = ids[t] = get(shard_names[t])  # type: ignore[arg-type]
            v[2] = new if etype > 0 else -new
            for k in (3, 4):  # asset, url: an id, or the text itself
                x = v[k]
                if type(x) is int and x:
                    new = maybe_ids.get(x)
                    if new is None:
                        new = maybe_ids[x] = maybe(shard_names[x])  # type: ignore[arg-type]
                    v[k] = new
            if etype < 0:
                head = 7
        steps = 0
        i, n = head, len(v)
        while i < n:
            if steps:
                i += 1  # the seq difference: kept
            x = v[i]  # the rule
            new = ids.get(x)
            if new is None:
                new = ids[x] = get(shard_names[x])  # type: ignore[arg-type]
            v[i] = new
            action = v[i + 1]
            if action > 0:
                new = ids.get(action)
                if new is None:
                    new = ids[action] = get(shard_names[action])  # type: ignore[arg-type]
                v[i + 1] = new
                step = 5
            else:
                new = ids.get(-action)
                if new is None:
                    new = ids[-action] = get(shard_names[-action])  # type: ignore[arg-type]
                v[i + 1] = -new
                step = width.get(action)
                if step is None:
                    step = width[action] = 4 if shard_names[-action] == _SCORE else 3
            args = v[i + 2]
            if type(args) is int:
                new = args_ids.get(args)
                if new is None:
                    text = shard_names[args]
                    found = maybe_args(text.encode())  # type: ignore[union-attr]
                    new = args_ids[args] = found if found is not None else [_loads(text)]  # type: ignore[arg-type]
                v[i + 2] = new
            i += step
            steps += 1
        if steps:
            first = seq + 1
            if log is not None:
                shard_log = shards[index].log
                for k in range(first, first + steps):
                    line = shard_log.readline()
                    cut = line.find(b",", 7)
                    if not line.startswith(b'{"seq":') or cut < 0:
                        raise MergeError(f"the action log of shard {shards[index].path} ends early")
                    log_lines.append(b'{"seq":%d%s' % (k, line[cut:]))
            seq += steps
        if pid is not None:
            pid = pids.get(email)
            if pid is None:
                pid = pids[email] = len(pids) + 1
        if type(visitor) is int:
            new = maybe_ids.get(visitor)
            if new is None:
                new = maybe_ids[visitor] = maybe(shard_names[visitor])  # type: ignore[arg-type]
            visitor = new
        out.append((pid, visitor, ts, first, event_id, event, messages, _dumps(v)))
        if len(out) >= 20_000:
            conn.executemany(insert, out)
            out.clear()
            if log_lines:
                log.write(b"".join(log_lines))
                log_lines.clear()

    group: list[tuple[Any, ...]] = []
    key: tuple[int, int] | None = None

    def flush() -> None:
        # bare: no prospect, no ledger step, no activity, no visitor (a tick's id, kept once)
        kept = [g for g in group if not (g[5][0] is None and g[5][3] is None and not g[6][2]
                                         and g[5][1] is None)]  # fmt: skip
        if not kept:
            kept = group[:1]
        stats["bare_dropped"] += len(group) - len(kept)
        stats["rows"] += len(kept)
        for item in kept:
            emit(item)

    for item in heapq.merge(*(s.rows(ordinals) for s in shards)):
        if (item[0], item[1]) != key:
            if group:
                flush()
            group, key = [], (item[0], item[1])
        group.append(item)
    if group:
        flush()
    if out:
        conn.executemany(insert, out)
    if log_lines:
        log.write(b"".join(log_lines))
    stats["seq"] = seq
    return seq


def _copy_rest(
    conn: sqlite3.Connection,
    shards: list[_Shard],
    ordinals: dict[str, int],
    names: Interner,
    pids: dict[str, int],
    files: list[str],
    lines: list[int],
    seq: int,
    stats: dict[str, Any],
) -> None:
    prospects: list[tuple[int, str, Any]] = []
    seen: set[str] = set()
    visitors: dict[str, tuple[str | None, bytes]] = {}
    rejects: dict[tuple[str, int], tuple[Any, ...]] = {}
    shared: dict[str, str] = {}
    rules: dict[str, tuple[str, str, float | None]] = {}
    clock: float | None = None
    version: Any = None
    mrules_version: Any = None
    for s in shards:
        for email, state in s.conn.execute("SELECT email, state FROM prospects ORDER BY email"):
            if email in seen:
                raise MergeError(f"prospect {email} is in two shards (the buckets overlap)")
            seen.add(email)
            pid = pids.get(email)
            if pid is None:
                pid = pids[email] = len(pids) + 1
            prospects.append((pid, email, state))
        for vid, prospect, history in s.conn.execute(
            "SELECT visitor, prospect, history FROM visitors"
        ):
            if vid in visitors and visitors[vid][0] != prospect:
                raise MergeError(f"visitor {vid} is tied to prospects in two shards")
            visitors[vid] = (prospect, history)
        for row in s.conn.execute("SELECT source, line, reason, text FROM rejects"):
            rejects.setdefault((row[0], row[1]), row)
        for key, value in s.conn.execute("SELECT key, value FROM shared"):
            if key in shared and shared[key] != value:
                raise MergeError(
                    f"shared state {key!r} differs between buckets: a partitioned run"
                    ' needs per-prospect rules (round_robin = "by prospect")'
                )
            shared[key] = value
        for key, kind, first in s.conn.execute("SELECT key, kind, first_seen FROM rules"):
            rules.setdefault(key, (key, kind, first))
        c = s.meta("clock")
        if c is not None and (clock is None or float(c) > clock):
            clock = float(c)
        version = version or s.meta("ruleset_version")
        mrules_version = mrules_version or s.meta("mrules_version")
    conn.executemany("INSERT INTO prospects (id, email, state) VALUES (?, ?, ?)", prospects)
    conn.executemany(
        "INSERT INTO visitors (visitor, prospect, history) VALUES (?, ?, ?)",
        [(v, p, h) for v, (p, h) in visitors.items()],
    )
    order = sorted(rejects, key=lambda k: (ordinals.get(k[0], -1), k[1]))
    conn.executemany(
        "INSERT INTO rejects (source, line, reason, text) VALUES (?, ?, ?, ?)",
        [rejects[k] for k in order],
    )
    conn.executemany("INSERT INTO shared (key, value) VALUES (?, ?)", shared.items())
    conn.executemany(
        "INSERT INTO rules (key, kind, first_seen) VALUES (?, ?, ?)", list(rules.values())
    )
    from mrules.store import _now

    conn.executemany(
        "INSERT INTO streams (source, line, updated_at) VALUES (?, ?, ?)",
        [(f, n, _now()) for f, n in zip(files, lines, strict=True)],
    )
    meta: list[tuple[str, Any]] = [("seq", seq)]
    if clock is not None:
        meta.append(("clock", clock))
    if version is not None:
        meta.append(("ruleset_version", version))
    if mrules_version is not None:
        meta.append(("mrules_version", mrules_version))
    conn.executemany(
        "INSERT INTO meta (key, value) VALUES (?, ?)"
        " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        meta,
    )
    stats["prospects"] = len(prospects)
    stats["rejects"] = len(rejects)
