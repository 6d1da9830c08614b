"""What `mrules run`, `state export` and `explain` write: records, files and the summary table.

The store is the truth; files are views of it. The action log (`--actions`)
appends the ledger rows each commit made, after the commit, and on start it
catches up from the store whatever a killed run committed but did not write,
so the file never repeats or misses an action. The rejects file is rewritten
from the store's rejects at the end of every run.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Any

import orjson
from rich.console import Console
from rich.table import Table
from rich.text import Text

from mrules.engine import RunSummary, iso
from mrules.state import Codecs, Prospect
from mrules.store import Store

__all__ = [
    "ActionLog",
    "action_record",
    "prospect_record",
    "render_summary",
    "write_rejects",
]


_dumps = orjson.dumps


def _loads(text: Any) -> Any:
    return None if text is None else orjson.loads(text)


def _raw(text: str | bytes | None) -> bytes:
    """Stored JSON text as bytes to embed (NULL in the store is JSON null)."""
    if text is None:
        return b"null"
    return text.encode() if isinstance(text, str) else text


def action_record(row: tuple[Any, ...]) -> dict[str, Any]:
    """A ledger row as one line of the action log (docs/outputs.md)."""
    (seq, ts, prospect, kind, name, loc, source, line, event_id, action, args, before, after) = row
    return {
        "seq": seq,
        "time": iso(ts),
        "prospect": prospect,
        "rule": {"kind": kind, "name": name, "at": loc},
        "event": {"line": line or None, "id": event_id, "source": source},
        "action": action,
        "args": _loads(args),
        "before": _loads(before),
        "after": _loads(after),
    }


class ActionLog:
    """The `--actions` JSONL file, kept exactly in step with the store's ledger."""

    def __init__(self, path: Path, store: Store) -> None:
        self.path = path
        last = _last_seq(path)
        if last is None:  # a new file holds this run's actions only
            last = store.max_seq()
        self.file: IO[bytes] = path.open("ab")
        self.last = last
        self.write(store.ledger(after_seq=last))  # catch up after a killed run

    def write(self, rows: Iterable[tuple[Any, ...]]) -> None:
        out = []
        line = self._line
        for row in rows:
            if row[0] > self.last:
                out.append(line(row))
                self.last = row[0]
        if out:
            self.file.write(b"\n".join(out) + b"\n")
            self.file.flush()

    _time_of: tuple[float | None, bytes] = (None, b"null")

    def _line(self, row: tuple[Any, ...]) -> bytes:
        """`orjson.dumps(action_record(row))`, without decoding the stored JSON to re-encode it.

        The ledger keeps args, before and after as JSON text already; the time
        text is cached, since the rows of one event share it.
        """
        (
            seq,
            ts,
            prospect,
            kind,
            name,
            loc,
            source,
            line,
            event_id,
            action,
            args,
            before,
            after,
        ) = row
        if self._time_of[0] != ts:
            self._time_of = (ts, _dumps(iso(ts)))
        return b"".join(
            (
                b'{"seq":',
                str(seq).encode(),
                b',"time":',
                self._time_of[1],
                b',"prospect":',
                _dumps(prospect),
                b',"rule":{"kind":',
                _dumps(kind),
                b',"name":',
                _dumps(name),
                b',"at":',
                _dumps(loc),
                b'},"event":{"line":',
                _dumps(line or None),
                b',"id":',
                _dumps(event_id),
                b',"source":',
                _dumps(source),
                b'},"action":',
                _dumps(action),
                b',"args":',
                _raw(args),
                b',"before":',
                _raw(before),
                b',"after":',
                _raw(after),
                b"}",
            )
        )

    def close(self) -> None:
        self.file.close()


def _last_seq(path: Path) -> int | None:
    """The seq of the last complete line of an existing action log, or None."""
    if not path.exists() or path.stat().st_size == 0:
        return None
    with path.open("rb") as f:
        f.seek(max(0, path.stat().st_size - 65536))
        tail = f.read().rstrip(b"\n").rsplit(b"\n", 1)[-1]
    try:
        return int(orjson.loads(tail)["seq"])
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return None


def write_rejects(path: Path, store: Store, source: str) -> int:
    """Rewrite the rejects file from the store; returns how many lines it has."""
    rows = list(store.rejects(source))
    if not rows:
        if path.exists():
            path.unlink()
        return 0
    with path.open("wb") as f:
        for src, line, reason, text in rows:
            f.write(orjson.dumps({"source": src, "line": line, "reason": reason, "text": text}))
            f.write(b"\n")
    return len(rows)


def prospect_record(
    p: Prospect, codecs: Codecs, pending: Iterable[tuple[Any, ...]] = ()
) -> dict[str, Any]:
    """One prospect as `state export` prints it (`codecs`: the one it was read with)."""
    assigned = None
    if p.assigned_kind is not None:
        assigned = {"kind": p.assigned_kind, "name": p.assigned_to, "at": iso(p.assigned_at)}
    return {
        "email": p.email,
        "created": iso(p.created),
        "score": p.score,
        "category_scores": p.categories or {},
        "grade": p.grade,
        "profile": p.profile,
        "fields": p.field_items(),
        "lists": p.names("lists", codecs),
        "dynamic_lists": p.names("dynamic", codecs),
        "tags": p.names("tags", codecs),
        "assigned": assigned,
        "crm_status": p.crm_status,
        "crm_id": p.crm_id,
        "do_not_sync": p.do_not_sync,
        "opted_out": p.opted_out,
        "source_campaign": p.campaign,
        "last_activity": iso(p.last_activity),
        "pending_crm": [
            {"seq": seq, "time": iso(ts), "kind": kind, **orjson.loads(payload)}
            for seq, ts, _email, kind, payload, *_ in pending
        ],
    }


def render_summary(
    s: RunSummary, console: Console, store_path: Path, rejects_path: Path | None
) -> None:
    """The end-of-run table on stderr."""
    t = Table(title="mrules run", show_header=False, title_justify="left")
    t.add_column(style="bold")
    t.add_column(justify="right")
    t.add_row("lines read", f"{s.lines:,}")
    if s.resumed_from:
        t.add_row("resumed after line", f"{s.resumed_from:,}")
    t.add_row("events applied", f"{s.applied:,}")
    if s.duplicates:
        t.add_row("skipped (id already applied)", f"{s.duplicates:,}")
    if s.ignored:
        t.add_row("ignored (CRM record, no prospect)", f"{s.ignored:,}")
    t.add_row(
        "rejected", Text(f"{s.rejected:,}" + (f"  → {rejects_path}" if s.rejected else ""))
    )
    _warnings(t, "events naming an unknown asset", s.unknown_assets)
    kept = "field values kept that do not fit" if s.bad_fields_kept else None
    _warnings(t, kept or "field values skipped (do not fit)", s.bad_fields)
    t.add_row("prospects created", f"{s.prospects_created:,}")
    for action, n in sorted(s.actions.items()):
        if action != "create prospect":
            t.add_row(f"  {action}", f"{n:,}")
    if s.retroactive:
        t.add_row("retroactive", ", ".join(s.retroactive))
    t.add_row("time", f"{s.seconds:.2f} s")
    t.add_row("events/s", f"{s.events_per_second:,.0f}")
    t.add_row("store", Text(str(store_path)))
    console.print(t)


_SHOWN_WARNINGS = 10


def _warnings(t: Table, label: str, counts: Counter[str]) -> None:
    """A warning row and its most frequent causes (names as data, never as markup)."""
    if not counts:
        return
    t.add_row(Text(label, style="yellow"), f"{sum(counts.values()):,}")
    top = [(cause, n) for cause, n in counts.most_common() if cause]  # "": causes not kept
    for cause, n in top[:_SHOWN_WARNINGS]:
        t.add_row(Text("  " + cause), f"{n:,}")
    rest = top[_SHOWN_WARNINGS:]
    if rest or counts[""]:
        more = f"{len(rest)}+" if counts[""] else f"{len(rest)}"
        t.add_row(Text(f"  and {more} more"), f"{sum(n for _, n in rest) + counts['']:,}")
