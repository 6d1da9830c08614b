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
The rewriting is done shard by shard, where the bucket tasks ran
(`prepare_shard`, against the target's names table `plan` makes from every
shard's), so the serial part only interleaves the prepared rows, numbers
their steps, renumbers the action log's lines and inserts.
This is the one module besides `store.py` that knows the layout of schema 2;
it refuses a store of another schema.
"""

from __future__ import annotations

import heapq
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from mrules.history import Interner, dump_data, load_data
from mrules.records import REJECTS_ORDER_KEY, diagnostic_rows
from mrules.store import SCHEMA_VERSION, Store
from mrules.vocab import Action

__all__ = ["MergeError", "merge_shards", "plan", "prepare_shard", "prepared_path"]

SCHEMA = SCHEMA_VERSION  # shards are written by this mrules
_LAST = 1 << 62  # line 0 (the --now tick at the end of a run) sorts after every line
_SCORE = str(Action.SCORE)
CHUNK = 5_000  # prepared rows a pickle


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

    def meta(self, key: str) -> Any:
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else row[0]

    def close(self) -> None:
        self.conn.close()
        if self.log is not None:
            self.log.close()


def plan(shards: list[Path]) -> tuple[list[tuple[int, str]], list[list[int]]]:
    """The target's `names` table and, per shard, its names ids -> the target's.

    Every name of every shard is kept, in shard order: the rows can then be
    rewritten shard by shard, in parallel (`prepare_shard`), before the merge.
    """
    names = Interner()
    maps: list[list[int]] = []
    for path in shards:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            found = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            if found is None or found[0] != SCHEMA:
                version = None if found is None else found[0]
                raise MergeError(f"shard {path} has schema {version}; the merge knows {SCHEMA}")
            ids = [0]
            get = names.get
            for i, text in conn.execute("SELECT id, text FROM names ORDER BY id"):
                while len(ids) < i:
                    ids.append(0)
                ids.append(get(text))
            maps.append(ids)
        finally:
            conn.close()
    return names.added, maps


def prepared_path(shard: Path) -> Path:
    return shard.with_name(shard.name + ".rows")


def prepare_shard(task: dict[str, Any]) -> dict[str, Any]:
    """One shard's history rows, rewritten to the target's names ids, with their order key.

    Runs in a worker (`task`: the shard, its index, its id map from `plan`, the
    files' ordinals). Writes `prepared_path(shard)`: pickled chunks of
    (ordinal, line, email, index, n, bare, steps, has prospect, visitor, ts,
    seq, event_id, event, messages, data), in the shard's row order, which is
    its order key (checked). The merge then only interleaves, numbers and inserts.
    """
    import os
    import pickle

    started, cpu = time.perf_counter(), time.process_time()
    shard = Path(task["shard"])
    index: int = task["index"]
    ids: list[int] = task["map"]
    ordinals: dict[str, int] = task["ordinals"]
    out_path = prepared_path(shard)
    tmp = out_path.with_name(f".{out_path.name}.{os.getpid()}.tmp")
    conn = sqlite3.connect(f"file:{shard}?mode=ro", uri=True)
    rows = 0
    try:
        names: list[str | None] = [None] * len(ids)
        for i, text in conn.execute("SELECT id, text FROM names ORDER BY id"):
            names[i] = text
        # Values a step takes after its rule, action and args, by the action's id.
        implied = {i: (4 if t == _SCORE else 3) for i, t in enumerate(names) if t is not None}
        sources = {i: ordinals.get(t) for i, t in enumerate(names) if t is not None}  # type: ignore[arg-type]
        emails = dict(conn.execute("SELECT id, email FROM prospects"))
        cur = conn.execute(
            "SELECT prospect, visitor, ts, seq, event_id, event, messages, data"
            " FROM history ORDER BY id"
        )
        last: tuple[int, int, str] | None = None
        chunk: list[tuple[Any, ...]] = []
        with open(tmp, "wb") as f:
            # One pickle a chunk, each with its own memo (read back one `pickle.load` each).
            def dump(chunk: list[tuple[Any, ...]]) -> None:
                pickle.dump(chunk, f, protocol=pickle.HIGHEST_PROTOCOL)

            for n, (pid, visitor, ts, seq, event_id, event, messages, data) in enumerate(cur):
                v = load_data(data)
                x = v[0]
                ordinal = sources.get(x) if x else None
                if ordinal is None:
                    source = names[x] if 0 < x < len(names) else None
                    raise MergeError(
                        f"a row of shard {shard} names a stream not in the manifest: {source}"
                    )
                v[0] = ids[x]
                email = emails[pid] if pid is not None else ""
                key = (ordinal, v[1] or _LAST, email)
                if last is not None and key < last:
                    raise MergeError(f"shard {shard}: rows out of order at row {n + 1}")
                last = key
                head = 5
                etype = v[2]
                if etype:
                    v[2] = ids[etype] if etype > 0 else -ids[-etype]
                    x = v[3]
                    if type(x) is int and x:
                        v[3] = ids[x]
                    x = v[4]
                    if type(x) is int and x:
                        v[4] = ids[x]
                    if etype < 0:
                        head = 7
                steps = 0
                i, end = head, len(v)
                while i < end:
                    if steps:
                        i += 1  # the seq difference: kept
                    v[i] = ids[v[i]]  # the rule
                    action = v[i + 1]
                    if action > 0:
                        v[i + 1] = ids[action]
                        step = 5
                    else:
                        v[i + 1] = -ids[-action]
                        step = implied[-action]
                    args = v[i + 2]
                    if type(args) is int:
                        v[i + 2] = ids[args]
                    i += step
                    steps += 1
                if type(visitor) is int:
                    visitor = ids[visitor]
                # bare: no prospect, no ledger step, no activity, no visitor (a tick's id)
                bare = pid is None and seq is None and not etype and visitor is None
                chunk.append((*key, index, n, bare, steps, pid is not None, visitor, ts, seq,
                              event_id, event, messages, dump_data(v)))  # fmt: skip
                rows += 1
                if len(chunk) >= CHUNK:
                    dump(chunk)
                    chunk = []
            dump(chunk)
        os.replace(tmp, out_path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    finally:
        conn.close()
    return {"shard": str(shard), "rows": rows, "seconds": time.perf_counter() - started,
            "cpu": time.process_time() - cpu}  # fmt: skip


def _prepared_rows(path: Path) -> Iterator[tuple[Any, ...]]:
    import pickle

    with open(path, "rb") as f:
        while True:
            try:
                chunk = pickle.load(f)
            except EOFError:
                return
            yield from chunk


def merge_shards(
    target_path: Path,
    shards: list[Path],
    files: list[str],
    lines: list[int],
    *,
    actions: Path | None = None,
    prepare: Callable[[list[dict[str, Any]]], None] | None = None,
) -> dict[str, Any]:
    """Merge `shards` into the new, empty store at `target_path`; `files`/`lines`: the streams.

    With `actions`, also merge the shards' action logs into that file: each line as the
    bucket wrote it, its seq renumbered (a ledger step's line, in the order of its row).
    `prepare` runs the shards' `prepare_shard` tasks (in parallel, where the tasks ran);
    without it they run here, one after the other.
    """
    started = time.perf_counter()
    added, maps = plan(shards)
    ordinals = {path: i for i, path in enumerate(files)}
    tasks = [{"shard": str(p), "index": i, "map": maps[i], "ordinals": ordinals}
             for i, p in enumerate(shards)]  # fmt: skip
    planned = time.perf_counter()
    if prepare is None:
        for task in tasks:
            prepare_shard(task)
    else:
        prepare(tasks)
    prepared = time.perf_counter()
    Store.open(target_path).close()  # a new store, whole, with its schema
    opened: list[_Shard] = []
    stats: dict[str, Any] = {"rows": 0, "seq": 0, "prospects": 0, "rejects": 0, "bare_dropped": 0}
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
        pids: dict[str, int] = {}
        # Indexes built once after the rows, not row by row (as SQLite stores them).
        indexes = conn.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'history'"
            " AND sql IS NOT NULL"
        ).fetchall()
        for name, _sql in indexes:
            conn.execute(f'DROP INDEX "{name}"')
        seq = _copy_history(conn, opened, pids, stats,
                            out_log if actions is not None else None)  # fmt: skip
        for _name, sql in indexes:
            conn.execute(sql)
        names = Interner()
        names.load(iter(added))
        _copy_rest(conn, opened, ordinals, names, pids, files, lines, seq, stats)
        conn.executemany("INSERT INTO names (id, text) VALUES (?, ?)", added)
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    finally:
        conn.close()
        for s in opened:
            s.close()
            prepared_path(s.path).unlink(missing_ok=True)
        if actions is not None and opened:
            out_log.close()
    stats["plan_seconds"] = planned - started
    stats["prepare_seconds"] = prepared - planned
    stats["serial_seconds"] = time.perf_counter() - prepared
    return stats


def _copy_history(
    conn: sqlite3.Connection,
    shards: list[_Shard],
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
    logs = [iter(s.log) if s.log is not None else iter(()) for s in shards]
    add_line = log_lines.append

    def emit(item: tuple[Any, ...]) -> None:
        nonlocal seq
        (_o, _l, email, index, _n, _bare, steps, has_pid, visitor, ts, first,
         event_id, event, messages, data) = item  # fmt: skip
        if steps:
            first = seq + 1
            if log is not None:
                lines = logs[index]
                for k in range(first, first + steps):
                    # `{"seq":N,...}`: the bucket's seq replaced by the merged one.
                    line = next(lines, b"")
                    cut = line.find(b",", 7)
                    if cut < 0 or line[:7] != b'{"seq":':
                        raise MergeError(f"the action log of shard {shards[index].path} ends early")
                    add_line(b'{"seq":%d%s' % (k, line[cut:]))
            seq += steps
        pid = None
        if has_pid:
            pid = pids.get(email)
            if pid is None:
                pid = pids[email] = len(pids) + 1
        out.append((pid, visitor, ts, first, event_id, event, messages, data))

    group: list[tuple[Any, ...]] = []
    okey: tuple[int, int] | None = None
    rows = dropped = 0
    for item in heapq.merge(*(_prepared_rows(prepared_path(s.path)) for s in shards)):
        key = (item[0], item[1])
        if key == okey:
            group.append(item)
            continue
        if group:
            if len(group) == 1:
                emit(group[0])
                rows += 1
            else:
                # A tick that changed nobody in a bucket left only its id there: kept once.
                kept = [g for g in group if not g[5]] or group[:1]
                dropped += len(group) - len(kept)
                rows += len(kept)
                for g in kept:
                    emit(g)
            if len(out) >= 20_000:
                conn.executemany(insert, out)
                out.clear()
                if log_lines:
                    log.write(b"".join(log_lines))
                    log_lines.clear()
        group, okey = [item], key
    if group:
        kept = [g for g in group if not g[5]] or group[:1]
        dropped += len(group) - len(kept)
        rows += len(kept)
        for g in kept:
            emit(g)
    if out:
        conn.executemany(insert, out)
    if log_lines:
        log.write(b"".join(log_lines))
    stats["rows"] += rows
    stats["bare_dropped"] += dropped
    stats["seq"] = seq
    return seq


def _archive_order(files: list[str]) -> Callable[[bytes], tuple[int, int, str]]:
    """A diagnostics report's place among one process's: the file of the event that made it
    in archive order (a report names it as `mrules run` shows it), its line, then its
    prospect (the order a tick visits prospects in). A report that names none goes last."""
    import orjson

    from mrules.loader import display_path

    ordinal = {display_path(f): i for i, f in enumerate(files)}
    ordinal.update((f, i) for i, f in enumerate(files))
    last = len(files)

    def key(report: bytes) -> tuple[int, int, str]:
        try:
            r = orjson.loads(report)
        except orjson.JSONDecodeError:
            return (last, 0, "")
        if not isinstance(r, dict):
            return (last, 0, "")
        source, line, who = r.get("source"), r.get("line"), r.get("prospect")
        return (
            ordinal.get(source, last) if isinstance(source, str) else last,
            line if isinstance(line, int) and not isinstance(line, bool) else 0,
            who if isinstance(who, str) else "",
        )

    return key


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
    reports: list[Any] = []
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
        kept = s.conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'diagnostics'"
        ).fetchone()
        if kept is not None:  # the reports of the shard's prospects (docs/outputs.md)
            reports += [r[0] for r in s.conn.execute(
                "SELECT report FROM diagnostics ORDER BY ord, prospect")]  # fmt: skip
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
    # the streams with rejected lines, in archive order (the rejects file lists them so)
    firsts = sorted({k[0] for k in rejects}, key=lambda f: (ordinals.get(f, -1), f))
    conn.executemany(
        "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING",
        [(REJECTS_ORDER_KEY + f, i) for i, f in enumerate(firsts)],
    )
    # In one process's order (the order of the events that made them), not bucket by bucket:
    # the next run on the store writes its diagnostics file in this order.
    kept = sorted((r.encode() if isinstance(r, str) else bytes(r) for r in reports),
                  key=_archive_order(files))  # fmt: skip
    conn.executemany(
        "INSERT INTO diagnostics (prospect, ord, report) VALUES (?, ?, ?)"
        " ON CONFLICT (prospect) DO NOTHING",
        diagnostic_rows(kept, 0),
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
