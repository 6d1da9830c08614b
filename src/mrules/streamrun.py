"""Events run through the engine into a store already open: what `mrules.run` and the
sync's delivery of CRM facts share.

It sits below the library's face (`mrules.api`): the sync feeds the engine the facts it
read from the CRM through here, and `mrules.export`, on the face, reads the sync's file
to tell which CRM work is done; the imports run one way.
"""

from __future__ import annotations

import datetime
import json
import math
import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import orjson

from mrules.engine import DEFAULT_CACHE_PROSPECTS, Engine
from mrules.events import Event, Reject, parse_line, read_events, resume_after
from mrules.state import DamagedState
from mrules.storeapi import DamagedStore, StateStore
from mrules.timedstream import can_go_quiet, with_time_marks

if TYPE_CHECKING:
    from mrules.compiler import CompiledRuleSet
    from mrules.engine import RunSummary

__all__ = ["as_store_error", "lines_as_events", "run_opened"]


def run_opened(
    compiled: CompiledRuleSet,
    st: StateStore,
    events: str | Path | IO[bytes] | Iterable[Any],
    *,
    source: str,
    label: str,
    commit_every: int = 20_000,
    commit_seconds: float | None = None,
    on_commit: Callable[[Any], None] | None = None,
    cache_prospects: int | None = DEFAULT_CACHE_PROSPECTS,
    now: float | None = None,
    progress: Callable[[int], None] | None = None,
    on_start: Callable[[], None] | None = None,
) -> tuple[RunSummary, str]:
    """Resume `st` from what it holds, apply `events` (a path, a binary file, or lines or
    dicts) and commit; the run's summary and the source its rejected lines are kept under.

    `st` stays open, whatever happens: its owner closes it. A stored state that cannot be
    decoded is raised as the `DamagedStore` it is.
    """
    is_path = isinstance(events, str | Path)
    try:
        engine = Engine(
            compiled,
            st,
            source=source,
            source_label=label,
            batch_size=commit_every,
            commit_seconds=commit_seconds,
            on_commit=on_commit,
            cache_prospects=cache_prospects,
        )
        start_line = engine.start()
        if on_start is not None:
            on_start()
        # The last event applied from this stream, checked again: a file replaced at the
        # same path is refused rather than having its first lines skipped.
        anchor = st.stream_anchor(source) if start_line and source != "-" else None
        quiet = commit_seconds is not None and can_go_quiet(events)
        if quiet and hasattr(events, "fileno"):
            # The reading thread gets its own file object over a copy of the descriptor:
            # at exit it may still sit in a read, and Python's shutdown, closing
            # sys.stdin, would wait for that reader's lock (a fatal error).
            shown = getattr(events, "name", None)
            copy = os.fdopen(os.dup(events.fileno()), "rb")  # type: ignore[union-attr]
            if isinstance(shown, str):  # messages name the stream, not the copy's number
                copy.raw.name = shown  # type: ignore[attr-defined]
            events = copy
        if is_path or hasattr(events, "read"):
            stream: Iterable[Event | Reject] = read_events(
                events,  # type: ignore[arg-type]
                start_line=start_line,
                anchor=anchor,
            )
        else:
            stream = resume_after(lines_as_events(events), start_line, anchor, label)  # type: ignore[arg-type]
        if quiet:
            stream = with_time_marks(stream, commit_seconds)  # type: ignore[arg-type, assignment]
        summary = engine.run(stream, now=now, progress=progress)
        engine.release()
    except Exception as e:
        damage = as_store_error(e)
        if damage is not None:
            raise damage from e
        raise
    return summary, engine.reject_source


def as_store_error(e: BaseException) -> DamagedStore | None:
    """`DamagedState` (a ValueError, from decoding a stored state) as the store error it
    is, in the words `mrules` prints for it (exit 4): a caller catching StoreError for a
    damaged store missed it. None for any other exception."""
    if not isinstance(e, DamagedState):
        return None
    return DamagedStore(f"the store is damaged: {e}; restore it from a backup or start a new one")


def lines_as_events(events: Iterable[Any]) -> Iterator[Event | Reject]:
    """Lines (str or bytes) or dicts, read as the lines of a JSONL file would be."""
    for n, item in enumerate(events, start=1):
        if isinstance(item, dict):
            try:
                item = _dict_line(item)
            except (TypeError, ValueError) as e:
                yield Reject(n, f"not JSON: {e}", repr(item)[:1000])
                continue
            except RecursionError:  # not a traceback that stops the run (nor repr it)
                yield Reject(n, "not JSON: nested too deeply, or it holds itself", "")
                continue
        elif not isinstance(item, str | bytes):
            yield Reject(n, f"not a line of text or a dict, but {type(item).__name__}", "")
            continue
        parsed = parse_line(item, n)
        if parsed is not None:
            yield parsed


def _dict_line(item: dict[str, Any]) -> bytes:
    """A dict event as the JSON line it stands for, so it is read (or rejected) as that line.

    orjson writes NaN and infinities as null, where a line holding them is not JSON
    (rejected), and refuses integers beyond 64 bits, which a line may hold (read as
    floats): those dicts go through the standard library's encoder instead.
    """
    try:
        if not _odd_numbers(item):
            return orjson.dumps(item)
    except TypeError:
        pass
    return json.dumps(item, ensure_ascii=False, default=_iso).encode("utf-8", "surrogatepass")


def _odd_numbers(value: Any) -> bool:
    """Whether `value` holds a float that is not finite (NaN, an infinity)."""
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, dict):
        return any(_odd_numbers(v) for v in value.values())
    if isinstance(value, list | tuple):
        return any(_odd_numbers(v) for v in value)
    return False


def _iso(value: Any) -> str:
    if isinstance(value, datetime.datetime | datetime.date):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON")
