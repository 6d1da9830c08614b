"""Per-rule activity of a run: how many times each rule acted, read from a store's ledger.

`rule_counts(store)` counts, for every rule that acted, automation and
segmentation rules by their matches and the other rules (completion and
page actions, scoring, dynamic lists...) by the events they acted on (one
prospect's one event counts once, however many actions it took). It reads
`StateStore.ledger()`; for the in-memory store it reads the same history
rows without turning every value into JSON text first, and for the SQLite
store those rows as they are read, none held (the ledger entries' fields are
the same, so every path gives the same counts: a test compares them).

>>> import mrules
>>> result = mrules.run(
...     'list "MQL"\\nform "F"\\non submit of form "F" { add to list "MQL"; score +5 }',
...     [{"ts": "2026-11-02T09:00:00Z", "type": "form_submit", "prospect": "a@x.com",
...       "asset": "F"}],
... )
>>> counts, where = rule_counts(result.store)
>>> dict(counts)
{('completion action', 'submit of form F'): 1}
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from typing import Any

__all__ = ["count_steps", "rule_counts"]

_MATCH_KINDS = frozenset(("automation rule", "segmentation rule"))


def _fast_steps(store: Any) -> Iterator[tuple[str, str, str | None, str | None, Any, Any, str]]:
    """(kind, name, loc, prospect, ts, line, action) of every ledger step of an in-memory store,
    or of an SQLite store's history rows read as they go (`Store.ledger_rows`)."""
    from mrules.history import STEP

    rows: Iterable[Any] = store._rows if _has_fast_path(store) else store.ledger_rows()
    for row in rows:
        steps = row.steps
        if not steps:
            continue
        prospect, ts, line = row.prospect, row.clock, row.line
        for i in range(0, len(steps), STEP):
            ref = steps[i + 1]
            yield ref.kind, ref.name, ref.loc, prospect, ts, line, steps[i + 2]


def _slow_steps(store: Any) -> Iterable[tuple[str, str, str | None, str | None, Any, Any, str]]:
    return ((e[3], e[4], e[5], e[2], e[1], e[7], e[9]) for e in store.ledger())


def _reads_rows(store: Any) -> bool:
    """An SQLite store: its history rows can be read one by one (`_fast_steps`)."""
    from mrules.store import Store

    return isinstance(store, Store)


def _has_fast_path(store: Any) -> bool:
    try:
        from mrules.history import STEP, Row
        from mrules.memstore import MemoryStore
    except ImportError:
        return False
    rows = getattr(store, "_rows", None)
    return (
        isinstance(store, MemoryStore)
        and STEP == 6
        and isinstance(rows, list)
        and all(isinstance(r, Row) for r in rows[:1])
    )


def rule_counts(
    store: Any, *, fast: bool | None = None
) -> tuple[Counter[tuple[str, str]], dict[tuple[str, str], str]]:
    """Times each (rule kind, rule name) acted, and where each rule is (file:line)."""
    use_fast = (_has_fast_path(store) or _reads_rows(store)) if fast is None else fast
    return count_steps(_fast_steps(store) if use_fast else _slow_steps(store))


def count_steps(
    steps: Iterable[tuple[str, str, str | None, str | None, Any, Any, str]],
) -> tuple[Counter[tuple[str, str]], dict[tuple[str, str], str]]:
    """`rule_counts` over (kind, name, loc, prospect, time, line, action) of every ledger step."""
    counts: Counter[tuple[str, str]] = Counter()
    where: dict[tuple[str, str], str] = {}
    seen: set[tuple[Any, ...]] = set()
    for kind, name, loc, prospect, ts, line, action in steps:
        if kind == "event":
            continue
        key = (kind, name)
        if key not in where:
            where[key] = loc or ""
        if kind in _MATCH_KINDS:
            if action == "rule matched":
                counts[key] += 1
            continue
        mark = (kind, name, prospect, ts, line)  # one event of one prospect
        if mark not in seen:
            seen.add(mark)
            counts[key] += 1
    return counts, where
