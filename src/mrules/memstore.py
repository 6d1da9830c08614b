"""An in-memory state store: the `StateStore` interface over Python lists and dicts.

`mrules run --store :memory:` and `mrules.run(..., store=":memory:")` use it.
It keeps exactly what the SQLite store keeps and answers the same reads, in
the same order, so a test or a script can run the engine without a file; it
lives as long as the process (nothing is written anywhere). History rows are
kept as the engine made them (`mrules.history.Row`), never encoded; they are
indexed by prospect, by anonymous visitor and by event id. Equal ledger
arguments share one dict (`_share_args`); equal URLs, visitor ids and asset
names one string (`_share_text`). `commit` is atomic in the same sense
as SQLite's: a batch that fails leaves nothing.
"""

from __future__ import annotations

import contextlib
from collections.abc import Collection, Iterator
from pathlib import Path
from typing import Any, Final

import orjson

from mrules.batch import (
    ANCHOR_KEY,
    Batch,
    anchor_text,
    event_hash,
    not_derived,
    parse_anchor,
    rows_of_records,
)
from mrules.history import CRM, OUTBOX, STEP, Row
from mrules.jsonbytes import kept
from mrules.records import (
    DIAGNOSTICS_KEPT,
    REJECTS_ORDER_KEY,
    Activity,
    LedgerEntry,
    Message,
    RejectedLine,
    diagnostic_rows,
)
from mrules.storeapi import StoreError

__all__ = ["MemoryStore"]

SHARED_ARGS_CAP: Final = 65_536
"""At most this many distinct ledger arguments are shared (`MemoryStore._share_args`)."""
SHARED_TEXT_CAP: Final = 262_144
"""At most this many distinct URLs, visitor ids and asset names are shared (`_share_text`)."""


class MemoryStore:
    """A store in memory; see `mrules.storeapi.StateStore` for what each method means."""

    readonly = False

    def __init__(self) -> None:
        self.path = Path(":memory:")
        self._streams: dict[str, int] = {}
        self._meta: dict[str, Any] = {DIAGNOSTICS_KEPT: "1"}
        self._rules: dict[str, tuple[str, float | None]] = {}
        self._prospects: dict[str, bytes] = {}
        self._visitors: dict[str, tuple[str | None, bytes]] = {}
        self._rows: list[Row] = []  # every history row, in commit order
        self._by_prospect: dict[str, list[int]] = {}  # email -> positions in _rows
        self._anonymous: dict[str, list[int]] = {}  # visitor -> positions of anonymous rows
        self._applied: set[str] = set()
        self._outbox: list[tuple[Any, ...]] = []
        self._crm: list[tuple[Any, ...]] = []
        self._rejects: dict[tuple[str, int], tuple[Any, ...]] = {}
        self._shared: dict[str, str] = {}
        self._diagnostics: dict[str, bytes] = {}  # prospect -> report, oldest first
        self._max_seq = 0
        self._args: dict[bytes, dict[str, Any]] = {}  # args as JSON -> the dict rows share
        self._texts: dict[str, str] = {}  # URLs, visitor ids, asset names: one object each

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

    def stream_anchor(self, source: str) -> tuple[int, int] | None:
        found = self._meta.get(ANCHOR_KEY + source)
        return None if found is None else parse_anchor(found)

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

    def has_applied_ids(self) -> bool:
        return bool(self._applied)

    def applied_hashes(self) -> Iterator[int]:
        return (event_hash(i) for i in self._applied)

    def applied_among(self, ids: list[str]) -> set[str]:
        applied = self._applied
        return {i for i in ids if i in applied}

    def has_applied(self, event_id: str) -> bool:
        return event_id in self._applied

    def prospect(self, email: str) -> bytes | None:
        return self._prospects.get(email)

    def prospects_among(self, emails: Collection[str]) -> dict[str, bytes]:
        found = self._prospects
        return {e: found[e] for e in emails if e in found}

    def prospects(self) -> Iterator[tuple[str, bytes]]:
        return iter(sorted(self._prospects.items()))

    def prospect_count(self) -> int:
        return len(self._prospects)

    def has_prospects(self) -> bool:
        return bool(self._prospects)

    def visitors(self) -> Iterator[tuple[str, str | None, bytes]]:
        return iter([(v, p, h) for v, (p, h) in sorted(self._visitors.items())])

    def visitor(self, visitor: str) -> str | None:
        found = self._visitors.get(visitor)
        return None if found is None else found[0]

    def visitors_among(self, visitors: Collection[str]) -> dict[str, str]:
        ties = {v: self._visitors[v][0] for v in visitors if v in self._visitors}
        return {v: p for v, p in ties.items() if p is not None}

    def anonymous_views(self, visitor: str) -> list[tuple[float, str]]:
        rows = (self._rows[i] for i in self._anonymous.get(visitor, ()))
        return [
            (r.ts, r.url or "")
            for r in rows
            if r.prospect is None and r.etype == "page_view" and r.ts is not None
        ]

    def anonymous_views_among(
        self, visitors: Collection[str]
    ) -> dict[str, list[tuple[float, str]]]:
        out: dict[str, list[tuple[float, str]]] = {}
        for visitor in set(visitors):
            views = self.anonymous_views(visitor) if visitor in self._anonymous else None
            if views:
                out[visitor] = views
        return out

    def shared(self) -> dict[str, str]:
        return dict(self._shared)

    def _of(self, prospect: str | None) -> list[Row]:
        if prospect is None:
            return self._rows
        return [self._rows[i] for i in self._by_prospect.get(prospect, ())]

    def activities(
        self, prospect: str | None = None, *, by_time: bool = True
    ) -> Iterator[Activity]:
        found = [a for a in (r.activity() for r in self._of(prospect)) if a is not None]
        if by_time:
            found.sort(key=lambda a: a.ts)  # stable: ties keep insertion order
        return iter(found)

    def ledger(self, prospect: str | None = None, after_seq: int = 0) -> Iterator[LedgerEntry]:
        found = [e for r in self._of(prospect) if r.steps for e in r.entries(after_seq)]
        found.sort(key=lambda e: e.seq)
        return iter(found)

    def max_seq(self) -> int:
        return self._max_seq

    def outbox(self) -> Iterator[Message]:
        derived = [m for r in self._rows if r.steps for m in r.messages(OUTBOX)]
        rows: list[Any] = [*self._outbox, *derived]
        return iter(sorted(rows, key=lambda r: r[0]))

    def crm_pending(self, prospect: str | None = None, after_seq: int = 0) -> Iterator[Message]:
        derived = [
            m for r in self._of(prospect) if r.steps for m in r.messages(CRM) if m.seq > after_seq
        ]
        rows: list[Any] = [
            r for r in self._crm if (prospect is None or r[2] == prospect) and r[0] > after_seq
        ]
        return iter(sorted([*rows, *derived], key=lambda r: r[0]))

    def rejects(self, source: str | None = None) -> Iterator[RejectedLine]:
        rows = sorted(self._rejects.values(), key=lambda r: (r[0], r[1]))
        return iter([RejectedLine._make(r) for r in rows if source is None or r[0] == source])

    def diagnostics(self) -> list[bytes]:
        return list(self._diagnostics.values())

    def keep_diagnostics(self, reports: list[bytes]) -> None:
        for who, _, report in diagnostic_rows(reports, 0):
            self._diagnostics.pop(who, None)
            self._diagnostics[who] = report.encode()
        self._meta[DIAGNOSTICS_KEPT] = "1"

    def log_start(self, log: str) -> int | None:
        return self._meta.get("actions_log:" + log)

    def set_log_start(self, log: str, seq: int) -> None:
        self._meta["actions_log:" + log] = int(seq)

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[MemoryStore]:
        """Every read already sees one committed state (commits are not concurrent here)."""
        yield self

    # -- writes ------------------------------------------------------------------------------

    def commit(self, batch: Batch) -> None:
        """Apply the batch; on a malformed part nothing of the batch is kept."""
        try:
            activities, ledger, applied = rows_of_records(batch)
            outbox = [Message._make(r) for r in not_derived(batch.outbox, ledger, OUTBOX)]
            crm = [Message._make(r) for r in not_derived(batch.crm_pending, ledger, CRM)]
            rejects = [RejectedLine._make(r) for r in batch.rejects]
            visitors = {v: (p, h) for v, (p, h) in batch.visitors.items()}
            attach = [(v, p) for v, p in batch.attach_visitor]
            seqs = {r.seq for r in outbox} | {r.seq for r in crm}
            if len(seqs) < len(outbox) + len(crm) or any(
                r.seq <= self._max_seq for r in outbox + crm
            ):
                raise ValueError("a seq is used twice")
        except (TypeError, ValueError, IndexError) as e:
            raise StoreError(f"cannot commit to store :memory:: {e}") from e
        self._prospects.update(batch.prospects)
        self._visitors.update(visitors)
        rows, by_prospect, anonymous = self._rows, self._by_prospect, self._anonymous
        share = self._share_text
        for row in (*batch.rows, *activities, *ledger, *applied):
            n = len(rows)
            rows.append(row)
            if row.url is not None:
                row.url = share(row.url)
            if row.visitor is not None:
                row.visitor = share(row.visitor)
            if row.asset is not None:
                row.asset = share(row.asset)
            if row.prospect is not None:
                by_prospect.setdefault(row.prospect, []).append(n)
            elif row.visitor is not None:
                anonymous.setdefault(row.visitor, []).append(n)
            if row.event_id is not None:
                self._applied.add(row.event_id)
            if row.steps:
                self._share_args(row.steps)
        for visitor, prospect in attach:
            claimed = anonymous.pop(visitor, [])
            for n in claimed:
                rows[n].prospect = prospect
            if claimed:
                mine = by_prospect.setdefault(prospect, [])
                mine.extend(claimed)
                mine.sort()
        self._outbox.extend(outbox)
        self._crm.extend(crm)
        for r in rejects:
            self._rejects[(r[0], r[1])] = r
            key = REJECTS_ORDER_KEY + r[0]
            if key not in self._meta:
                self._meta[key] = sum(k.startswith(REJECTS_ORDER_KEY) for k in self._meta)
        if self._diagnostics:  # the reports of the prospects the batch changed drop
            for who in [w for w in self._diagnostics if w in batch.prospects]:
                del self._diagnostics[who]
        for report in batch.unsettled:
            who = report["prospect"]
            self._diagnostics.pop(who, None)  # a fresh report goes last
            self._diagnostics[who] = orjson.dumps(report)
        if batch.shared:
            self._shared.update(batch.shared)
        for key, kind, first in batch.rules:
            self._rules.setdefault(key, (kind, first))
        self._streams[batch.source] = batch.line
        if batch.anchor is not None:
            self._meta[ANCHOR_KEY + batch.source] = anchor_text(batch.anchor)
        if batch.clock is not None:
            self._meta["clock"] = float(batch.clock)
        if batch.ruleset_version is not None:
            self._meta["ruleset_version"] = batch.ruleset_version
        self._max_seq = max(self._max_seq, batch.max_seq())

    def _share_text(self, text: str) -> str:
        """The one kept string equal to `text` (a URL, a visitor id, an asset name).

        Each event's JSON line decodes to strings of its own: 200,000 rows kept
        about 30 MB of copies of a few thousand URLs and visitor ids. Past
        `SHARED_TEXT_CAP` distinct ones, new ones stay unshared.
        """
        texts = self._texts
        found = texts.get(text)
        if found is None:
            if len(texts) < SHARED_TEXT_CAP:
                texts[text] = text
            return text
        return found

    def _share_args(self, steps: list[Any]) -> None:
        """Point each step's arguments at the one stored dict with the same JSON.

        A run keeps every ledger step, and most repeat a few thousand argument
        dicts (`{"points": 1}`, a list's name): about 2.4 dicts of 184 bytes an
        event in the benchmark workload, 6,658 distinct in 50,000 events. Nothing
        changes a step's arguments once logged, and the same JSON bytes (key order
        included) read back as the same ledger text, so sharing them changes no
        answer. Past `SHARED_ARGS_CAP` distinct ones, new ones stay unshared.
        """
        shared = self._args
        for i in range(3, len(steps), STEP):  # seq, ref, action, args, before, after
            args = steps[i]
            if type(args) is not dict:
                continue
            try:
                key = orjson.dumps(args)
            except TypeError:  # not JSON: the store's ledger reads would refuse it too
                continue
            found = shared.get(key)
            if found is None:
                if len(shared) < SHARED_ARGS_CAP:
                    shared[kept(key)] = args  # not orjson's 4 KB buffer (mrules.jsonbytes)
            else:
                steps[i] = found
