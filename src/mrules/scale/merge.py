"""Shards into one store: what one process would have written, seq for seq.

Every shard holds its bucket's prospects (disjoint: asserted), their history
rows, visitors and rejects, with seqs numbered within the bucket. The merge
reads the shards' history rows in their order key (file ordinal, line; the
rows of one tick by prospect email, the order a tick visits prospects in;
rows at line 0, from `--now`, last), numbers their ledger steps again in that
order (one process numbers them in event order), and commits them to the
target store through the store interface. A tick goes to every bucket: a
bucket where it changed nobody keeps a bare row with its id; one process
keeps that row only when the tick changed nobody at all, so the merge does
the same. Then prospects, visitors, rejects (a line rejected in every bucket,
a tick that is not valid, once), rules, the shared state (equal in every
shard, or the merge refuses), the clock (the latest) and every stream's
position (the file's last line, from the manifest).
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from mrules.history import STEP, Row
from mrules.store import _HISTORY_COLUMNS, Batch, Store

__all__ = ["MergeError", "merge_shards"]

_LAST = 1 << 62  # line 0 (the --now tick at the end of a run) sorts after every line


class MergeError(Exception):
    """The shards do not merge (they overlap, or disagree on shared state)."""


def _rows(store: Store, index: int, ordinals: dict[str, int]) -> Iterator[tuple[Any, ...]]:
    # The store reads its rows back as `Row`s; the merge needs them whole, not as records.
    sql = f"SELECT {_HISTORY_COLUMNS} FROM history ORDER BY id"
    last: tuple[Any, ...] | None = None
    for n, row in enumerate(store._history(sql)):
        try:
            ordinal = ordinals[row.source]
        except KeyError:
            raise MergeError(f"a row of shard {store.path} names a stream not in the manifest:"
                             f" {row.source}") from None  # fmt: skip
        key = (ordinal, row.line or _LAST, row.prospect or "")
        if last is not None and key < last:
            raise MergeError(f"shard {store.path}: rows out of order at {row!r}")
        last = key
        yield (*key, index, n, row)


def _bare(row: Row) -> bool:
    return row.prospect is None and not row.steps and row.etype is None


def merge_shards(
    target: Store,
    shards: list[Path],
    files: list[str],
    lines: list[int],
    *,
    on_commit: Callable[[Batch], None] | None = None,
    commit_rows: int = 20_000,
) -> dict[str, Any]:
    """Merge `shards` into the new store `target`; `files`/`lines`: the manifest's streams."""
    ordinals = {path: i for i, path in enumerate(files)}
    opened = [Store.open(p, readonly=True) for p in shards]
    stats = {"rows": 0, "seq": 0, "prospects": 0, "rejects": 0, "bare_dropped": 0}
    try:
        seq = 0
        batch = Batch(source=files[0], line=0, clock=None)

        def commit() -> None:
            nonlocal batch
            target.commit(batch)
            if on_commit is not None:
                on_commit(batch)
            batch = Batch(source=batch.source, line=batch.line, clock=None)

        streams = [_rows(s, i, ordinals) for i, s in enumerate(opened)]
        group: list[Row] = []
        group_key: tuple[int, int] | None = None

        def flush() -> None:
            nonlocal seq
            kept = [r for r in group if not _bare(r)]
            if not kept:
                kept = group[:1]
            stats["bare_dropped"] += len(group) - len(kept)
            for row in kept:
                steps = row.steps
                for i in range(0, len(steps), STEP):
                    seq += 1
                    steps[i] = seq
                batch.rows.append(row)
            batch.source, batch.line = files[group_key[0]], group[0].line  # type: ignore[index]
            stats["rows"] += len(kept)
            if len(batch.rows) >= commit_rows:
                commit()

        for ordinal, line, _email, _i, _n, row in heapq.merge(*streams):
            if (ordinal, line) != group_key:
                if group:
                    flush()
                group, group_key = [], (ordinal, line)
            group.append(row)
        if group:
            flush()
        stats["seq"] = seq

        # Prospects, visitors, rejects, rules, shared state, clock: the rest of the store.
        prospects: dict[str, bytes] = {}
        visitors: dict[str, tuple[str | None, bytes]] = {}
        rejects: dict[tuple[str, int], tuple[Any, ...]] = {}
        shared: dict[str, str] = {}
        rules: dict[str, tuple[str, str, float | None]] = {}
        clock: float | None = None
        version: str | None = None
        for s in opened:
            for email, state in s.prospects():
                if email in prospects:
                    raise MergeError(f"prospect {email} is in two shards (the buckets overlap)")
                prospects[email] = state
            for vid, prospect, history in s.visitors():
                if vid in visitors and visitors[vid][0] != prospect:
                    raise MergeError(f"visitor {vid} is tied to prospects in two shards")
                visitors[vid] = (prospect, history)
            for r in s.rejects():
                rejects.setdefault((r.source, r.line), tuple(r))
            for key, value in s.shared().items():
                if key in shared and shared[key] != value:
                    raise MergeError(
                        f"shared state {key!r} differs between buckets: a partitioned run"
                        f' needs per-prospect rules (round_robin = "by prospect")'
                    )
                shared[key] = value
            for key, kind, first in s.rules():
                rules.setdefault(key, (key, kind, first))
            c = s.clock()
            if c is not None and (clock is None or c > clock):
                clock = c
            version = version or s.ruleset_version()
        batch.prospects = prospects
        batch.visitors = visitors
        order = sorted(rejects, key=lambda k: (ordinals.get(k[0], -1), k[1]))
        batch.rejects = [rejects[k] for k in order]
        batch.shared = shared or None
        batch.rules = list(rules.values())
        batch.ruleset_version = version
        batch.clock = clock
        batch.source, batch.line = files[0], lines[0]
        commit()
        for path, last_line in zip(files[1:], lines[1:], strict=True):
            target.commit(Batch(source=path, line=last_line, clock=None))
        stats["prospects"] = len(prospects)
        stats["rejects"] = len(rejects)
    finally:
        for s in opened:
            s.close()
    return stats
