"""The typed records the store keeps and returns: activities, ledger entries, messages, rejects.

NamedTuples: read by name (`entry.action`, `activity.ts`), and still equal to
the plain tuples of the same values, so a store can return them as cheaply
as rows.
"""

from __future__ import annotations

from typing import NamedTuple

__all__ = [
    "DIAGNOSTICS_KEPT",
    "REJECTS_ORDER_KEY",
    "Activity",
    "LedgerEntry",
    "Message",
    "RejectedLine",
    "diagnostic_rows",
    "stdin_run",
    "stdin_run_source",
]


class Activity(NamedTuple):
    """Something a prospect (or an anonymous visitor) did: one event's activity."""

    prospect: str | None  # None while the visitor is anonymous
    visitor: str | None
    ts: float  # event time, epoch seconds
    type: str  # the event type (`mrules.vocab.EventType`)
    asset_kind: str | None  # `mrules.vocab.AssetKind`, or None
    asset: str | None
    url: str | None
    source: str  # the stream
    line: int
    event_id: str | None


class LedgerEntry(NamedTuple):
    """One change a rule (or an event) made to a prospect: what `explain` reads."""

    seq: int  # position in the run's one sequence (shared with outbox and CRM work)
    ts: float | None  # the engine clock when it happened
    prospect: str | None
    rule_kind: str  # `automation rule`, `completion action`, ..., or `event`
    rule_name: str
    rule_loc: str | None  # file:line
    source: str | None  # the stream of the event behind it
    line: int | None  # its line (0 or None: at the start of a run, or a tick)
    event_id: str | None
    action: str  # `mrules.vocab.Action`
    args: str | None  # JSON text
    before: str | None  # JSON text
    after: str | None  # JSON text


class Message(NamedTuple):
    """An outbox message or a piece of CRM work."""

    seq: int
    ts: float | None
    prospect: str | None
    kind: str  # outbox: notify | autoresponder; CRM: campaign_member | task | ...
    payload: str  # JSON text


class RejectedLine(NamedTuple):
    """An event line that was not applied.

    `source` is the stream: a file's absolute path, or for standard input and pipes
    `- (run N)`, the N-th run on standard input of that store (each such run numbers
    its lines from 1, so `-` alone would let a later run replace an earlier run's
    rows); a store written before runs were told apart keeps `-`.
    """

    source: str
    line: int
    reason: str
    text: str


REJECTS_ORDER_KEY = "rejects_order:"
"""The store's meta key `rejects_order:SOURCE` (0, 1, 2...): the order in which it first kept
a rejected line of each stream, the order of the streams in the rejects file."""

DIAGNOSTICS_KEPT = "diagnostics_kept"
"""The store's meta key that says it holds the diagnostics reports (schema 6 on): a store
upgraded from an older schema takes in its diagnostics file's reports once."""


def diagnostic_rows(reports: list[bytes], start: int) -> list[tuple[str, int, str]]:
    """Diagnostics reports (JSON text) as the store's rows (prospect, ord, report), in
    order from `start`; a report naming no prospect (a damaged file's line) is left out."""
    import orjson

    rows: list[tuple[str, int, str]] = []
    for report in reports:
        try:
            record = orjson.loads(report)
        except orjson.JSONDecodeError:
            continue
        who = record.get("prospect") if isinstance(record, dict) else None
        if isinstance(who, str):
            rows.append((who, start + len(rows), report.decode()))
    return rows


_STDIN_RUN = "- (run "


def stdin_run_source(n: int) -> str:
    """The rejects' source of the `n`-th run on standard input or a pipe: `- (run 3)`."""
    return f"{_STDIN_RUN}{n})"


def stdin_run(source: str) -> int | None:
    """Which run on standard input a rejects' source names: 0 for the `-` of a store
    written before runs were told apart, None for a file's path."""
    if source == "-":
        return 0
    if source.startswith(_STDIN_RUN) and source.endswith(")"):
        n = source[len(_STDIN_RUN) : -1]
        if (
            n.isascii() and n.isdigit()
        ):  # a file's source is an absolute path: it never starts with `-`
            return int(n)
    return None
