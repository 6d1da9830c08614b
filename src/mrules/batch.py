"""What one transaction of a run writes (`Batch`), and what every store reads of it alike.

The engine fills a `Batch` and hands it to its store's `commit`
(`mrules.storeapi.StateStore`); the SQLite store (`mrules.store`), the in-memory
store (`mrules.memstore`) and the PostgreSQL store (`mrules.store_pg`) all take it.
So the batch and the rules every store applies to it the same way live here, apart
from any one store: the stream anchor's text, the hash that finds an applied event
id, plain records turned into history rows, and outbox or CRM records that a ledger
step already carries.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Final

import orjson

from mrules.history import STEP, Ref, Row
from mrules.records import LedgerEntry
from mrules.vocab import ASSET_EVENTS

__all__ = [
    "ANCHOR_KEY",
    "Batch",
    "anchor_text",
    "event_hash",
    "not_derived",
    "parse_anchor",
    "rows_of_records",
]

ANCHOR_KEY: Final = "stream_anchor:"  # meta key prefix: a stream's last applied event, "LINE CHECK"


def anchor_text(anchor: tuple[int, int]) -> str:
    return f"{anchor[0]} {anchor[1]}"


def parse_anchor(text: object) -> tuple[int, int] | None:
    """A stream anchor as `anchor_text` wrote it; None if it is not one (a damaged value)."""
    parts = str(text).split()
    if len(parts) != 2 or not all(p.isdigit() for p in parts):
        return None
    return int(parts[0]), int(parts[1])


@dataclass
class Batch:
    """Everything one transaction writes. The engine fills it and calls Store.commit.

    The engine hands its history as `rows` (`mrules.history.Row`: one event's
    activity and ledger steps for one prospect). `activities`, `ledger` and
    `applied_ids` are the same facts as plain records, for tools and tests;
    the store turns them into history rows too.
    """

    source: str  # stream identity (absolute path of the events file, or "-")
    line: int  # last stream line (1-based) fully processed by this batch
    clock: float | None  # engine clock (epoch seconds, event time) after the batch
    prospects: dict[str, bytes] = field(default_factory=dict)  # email -> state (upsert)
    # visitor -> (prospect email or None, history bytes) (upsert)
    visitors: dict[str, tuple[str | None, bytes]] = field(default_factory=dict)
    rows: list[Row] = field(default_factory=list)  # history rows, in the order they happened
    applied_ids: list[str] = field(default_factory=list)  # ids applied besides those in rows
    # mrules.records.Activity: (prospect|None, visitor|None, ts, type, asset_kind|None,
    #  asset|None, url|None, source, line, event_id|None)
    activities: list[tuple[Any, ...]] = field(default_factory=list)
    # mrules.records.LedgerEntry: (seq, ts, prospect, rule_kind, rule_name, rule_loc, source,
    #  line, event_id, action, args_json, before_json, after_json)
    ledger: list[tuple[Any, ...]] = field(default_factory=list)
    # (seq, ts, prospect, kind, payload_json)  kind: notify | autoresponder | task
    outbox: list[tuple[Any, ...]] = field(default_factory=list)
    # (seq, ts, prospect, kind, payload_json)  kind: campaign_member | task | assignment_rule ...
    crm_pending: list[tuple[Any, ...]] = field(default_factory=list)
    rejects: list[tuple[Any, ...]] = field(default_factory=list)  # (source, line, reason, text)
    shared: dict[str, str] | None = None  # key -> JSON text (upsert), None = unchanged
    # (rule key, kind, first_seen clock) insert-if-absent
    rules: list[tuple[str, str, float | None]] = field(default_factory=list)
    ruleset_version: str | None = None  # set meta when not None
    # (visitor, prospect): the visitor's anonymous history rows become the prospect's
    attach_visitor: list[tuple[str, str]] = field(default_factory=list)
    # (line, events.line_check of it): the last event of `source` applied so far, kept with
    # the position so that a file replaced at the same path is told apart; None: unchanged
    anchor: tuple[int, int] | None = None
    # prospects whose rules did not settle (`RunSummary.unsettled`'s reports made in this
    # batch): kept by the stores (`diagnostics`), the diagnostics file rewritten from them
    unsettled: list[dict[str, Any]] = field(default_factory=list)

    def ledger_entries(self) -> Iterator[LedgerEntry]:
        """Every ledger entry of the batch (plain ones, then the rows'), for the action log."""
        for e in self.ledger:
            yield e if type(e) is LedgerEntry else LedgerEntry._make(e)
        for row in self.rows:
            if row.steps:
                yield from row.entries()

    def max_seq(self) -> int:
        """The largest seq the batch uses (ledger, outbox, CRM work); 0 if none."""
        best: Any = 0  # not int: no boxing for each comparison when compiled
        for row in self.rows:
            steps = row.steps
            if steps:
                last = steps[-STEP]
                if last > best:
                    best = last
        for part in (self.ledger, self.outbox, self.crm_pending):
            for r in part:
                if r[0] > best:
                    best = r[0]
        return best


def rows_of_records(batch: Batch) -> tuple[list[Row], list[Row], list[Row]]:
    """The batch's plain activities, ledger entries and applied ids as history rows.

    Raises ValueError/TypeError/IndexError on a malformed record (the caller names the part).
    """
    activities = []
    for a in batch.activities:
        prospect, visitor, ts, etype, kind, asset, url, source, line, event_id = a
        row = Row(prospect, ts, source, line, event_id)
        row.visitor, row.etype, row.asset, row.url = visitor, etype, asset, url
        default = ASSET_EVENTS.get(etype)
        if kind != (None if default is None else default[1]):
            row.kind = kind
        activities.append(row)
    ledger: list[Row] = []
    current: Row | None = None
    for e in sorted(batch.ledger, key=lambda e: e[0]):
        seq, ts, prospect, kind, name, loc, source, line, event_id, action, args, bef, aft = e
        if current is None or (
            current.prospect,
            current.clock,
            current.source,
            current.line,
            current.event_id,
        ) != (prospect, ts, source, line, event_id):
            current = Row(prospect, ts, source, line, event_id)
            ledger.append(current)
        current.steps += (seq, Ref(kind, name, loc), action, _json_value(args),
                          _json_value(bef), _json_value(aft))  # fmt: skip
    applied = []
    for event_id in batch.applied_ids:
        if type(event_id) is not str:
            raise TypeError(f"an event id must be text, not {event_id!r}")
        # A row holding only an applied id: its clock is the batch's, None in a migrated v1 store.
        applied.append(Row(None, batch.clock, batch.source, 0, event_id))
    return activities, ledger, applied


def event_hash(event_id: str) -> int:
    """The 31-bit hash `history_event` indexes (a 4-byte key); the id itself decides."""
    return zlib.crc32(event_id.encode("utf-8", "surrogatepass")) & 0x7FFFFFFF


def not_derived(records: list[Any], rows: list[Row], want: int) -> list[Any]:
    """Plain outbox (or CRM) records but those a ledger step of `rows` already is."""
    derived = {m.seq for row in rows if row.steps for m in row.messages(want)}
    if not derived:
        return records
    return [r for r in records if r[0] not in derived]


def _json_value(text: Any) -> Any:
    if text is None:
        return None
    return orjson.loads(text)
