"""An in-memory state store: the `StateStore` interface over Python lists and dicts.

`mrules run --store :memory:` and `mrules.run(..., store=":memory:")` use it.
It keeps exactly what the SQLite store keeps and answers the same reads, in
the same order, so a test or a script can run the engine without a file; it
lives as long as the process (nothing is written anywhere). `commit` is
atomic in the same sense as SQLite's: a batch that fails leaves nothing.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mrules.records import Activity, LedgerEntry, Message, RejectedLine
from mrules.store import Batch, StoreError

__all__ = ["MemoryStore"]


class MemoryStore:
    """A store in memory; see `mrules.storeapi.StateStore` for what each method means."""

    readonly = False

    def __init__(self) -> None:
        self.path = Path(":memory:")
        self._closed = False
        self._streams: dict[str, int] = {}
        self._meta: dict[str, Any] = {}
        self._rules: dict[str, tuple[str, float | None]] = {}
        self._prospects: dict[str, bytes] = {}
        self._visitors: dict[str, tuple[str | None, bytes]] = {}
        self._applied: set[str] = set()
        self._activities: list[list[Any]] = []  # mutable rows: attach_visitor sets [0]
        self._ledger: list[tuple[Any, ...]] = []
        self._outbox: list[tuple[Any, ...]] = []
        self._crm: list[tuple[Any, ...]] = []
        self._rejects: dict[tuple[str, int], tuple[Any, ...]] = {}
        self._shared: dict[str, str] = {}
        self._max_seq = 0

    def __repr__(self) -> str:
        return f"MemoryStore({len(self._prospects)} prospects)"

    def __enter__(self) -> MemoryStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Nothing to release: the data stays readable until the object goes."""

    # -- reads -------------------------------------------------------------------------------

    def stream_position(self, source: str) -> int:
        return self._streams.get(source, 0)

    def streams(self) -> dict[str, int]:
        return dict(sorted(self._streams.items()))

    def clock(self) -> float | None:
        return self._meta.get("clock")

    def ruleset_version(self) -> str | None:
        return self._meta.get("ruleset_version")

    def meta(self) -> dict[str, str]:
        return {k: str(v) for k, v in sorted(self._meta.items())}

    def rules_first_seen(self) -> dict[str, float | None]:
        return {k: first for k, (_, first) in self._rules.items()}

    def rules(self) -> Iterator[tuple[str, str, float | None]]:
        return iter([(k, kind, first) for k, (kind, first) in sorted(self._rules.items())])

    def applied_ids(self) -> set[str]:
        return set(self._applied)

    def applied_among(self, ids: list[str]) -> set[str]:
        applied = self._applied
        return {i for i in ids if i in applied}

    def has_applied(self, event_id: str) -> bool:
        return event_id in self._applied

    def prospect(self, email: str) -> bytes | None:
        return self._prospects.get(email)

    def prospects(self) -> Iterator[tuple[str, bytes]]:
        return iter(sorted(self._prospects.items()))

    def prospect_count(self) -> int:
        return len(self._prospects)

    def visitors(self) -> Iterator[tuple[str, str | None, bytes]]:
        return iter([(v, p, h) for v, (p, h) in sorted(self._visitors.items())])

    def anonymous_views(self, visitor: str) -> list[tuple[float, str]]:
        return [
            (a[2], a[6] or "")
            for a in self._activities
            if a[1] == visitor and a[0] is None and a[3] == "page_view"
        ]

    def shared(self) -> dict[str, str]:
        return dict(self._shared)

    def activities(self, prospect: str | None = None) -> Iterator[tuple[Any, ...]]:
        rows = self._activities
        if prospect is not None:
            rows = [a for a in rows if a[0] == prospect]
        return iter([Activity._make(a) for a in sorted(rows, key=lambda a: a[2])])

    def ledger(self, prospect: str | None = None, after_seq: int = 0) -> Iterator[tuple[Any, ...]]:
        return iter(
            [
                LedgerEntry._make(e)
                for e in self._ledger
                if e[0] > after_seq and (prospect is None or e[2] == prospect)
            ]
        )

    def max_seq(self) -> int:
        return self._max_seq

    def outbox(self) -> Iterator[tuple[Any, ...]]:
        return iter([Message._make(r) for r in sorted(self._outbox, key=lambda r: r[0])])

    def crm_pending(self, prospect: str | None = None) -> Iterator[tuple[Any, ...]]:
        rows = sorted(self._crm, key=lambda r: r[0])
        return iter([Message._make(r) for r in rows if prospect is None or r[2] == prospect])

    def rejects(self, source: str | None = None) -> Iterator[tuple[Any, ...]]:
        rows = sorted(self._rejects.values(), key=lambda r: (r[0], r[1]))
        return iter([RejectedLine._make(r) for r in rows if source is None or r[0] == source])

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[MemoryStore]:
        """Every read already sees one committed state (commits are not concurrent here)."""
        yield self

    # -- writes ------------------------------------------------------------------------------

    def commit(self, batch: Batch) -> None:
        """Apply the batch; on a malformed part nothing of the batch is kept."""
        if self._closed:
            raise StoreError("store :memory: is closed")
        try:
            ledger = sorted(batch.ledger, key=lambda e: e[0])
            seqs = (
                [e[0] for e in ledger]
                + [r[0] for r in batch.outbox]
                + [r[0] for r in batch.crm_pending]
            )
            activities = [list(a) for a in batch.activities]
            for a in activities:
                if len(a) != 10:
                    raise ValueError("an activity row has the wrong length")
        except (TypeError, ValueError, IndexError) as e:
            raise StoreError(f"cannot commit to store :memory:: {e}") from e
        self._prospects.update(batch.prospects)
        self._visitors.update(batch.visitors)
        self._activities.extend(activities)
        for visitor, prospect in batch.attach_visitor:
            for a in self._activities:
                if a[1] == visitor and a[0] is None:
                    a[0] = prospect
        self._applied.update(batch.applied_ids)
        self._ledger.extend(ledger)
        self._outbox.extend(batch.outbox)
        self._crm.extend(batch.crm_pending)
        for r in batch.rejects:
            self._rejects[(r[0], r[1])] = tuple(r)
        if batch.shared:
            self._shared.update(batch.shared)
        for key, kind, first in batch.rules:
            self._rules.setdefault(key, (kind, first))
        self._streams[batch.source] = batch.line
        if batch.clock is not None:
            self._meta["clock"] = float(batch.clock)
        if batch.ruleset_version is not None:
            self._meta["ruleset_version"] = batch.ruleset_version
        if seqs:
            self._max_seq = max(self._max_seq, *seqs)
