"""Cycles on the run's clock: plan + apply + hand the facts to the engine."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from mrules.crm.errors import CrmCallError
from mrules.storeapi import StateStore
from mrules.sync.apply import ApplyReport, apply_plan, deliver
from mrules.sync.config import SyncConfig
from mrules.sync.db import SyncDb
from mrules.sync.plan import Plan, iso, make_plan

__all__ = [
    "CycleResult",
    "count_due",
    "due_times",
    "failed_cycle",
    "next_after",
    "run_cycle",
    "run_until",
]


@dataclass
class CycleResult:
    plan: Plan | None
    """None when the plan could not be made: the CRM failed for now (`report.transient`)."""
    plan_json: dict[str, Any]
    report: ApplyReport


def next_after(last: float, every: float, clock: float | None) -> float:
    """The next cycle after the one at `last`: `every` seconds on, or the first time on
    that cadence at or after the store's `clock` when the clock is further on."""
    t = last + every
    if clock is not None and clock > t:
        t += math.ceil((clock - t) / every - 1e-9) * every
    return t


def due_times(db: SyncDb, store: StateStore, config: SyncConfig, until: float) -> Iterator[float]:
    """The cycle times due up to `until`: every `every` minutes after the last cycle,
    one at a time (an `--until` years away is millions of them).

    The first cycle runs at the store's clock (the run's clock), or at `until`
    for a store that has none yet. No cycle is due before the store's clock
    (an `until` before it has none due):
    when the run's clock moved on past several cycles (events of a later day),
    the next cycle is the first on the cadence at or after it, so a record is
    never written before the assignment that asked for it.
    """
    every = config.every_seconds
    t = _first_due(db, store, every, until)
    while t <= until + 1e-6:
        yield t
        t += every


def count_due(db: SyncDb, store: StateStore, config: SyncConfig, until: float) -> int:
    """How many cycles `due_times` gives, worked out rather than counted: a progress bar's
    total (a far `until` is millions of cycles; `due_times` adds `every` one cycle at a
    time, so at the very end its count can differ from this by one)."""
    every = config.every_seconds
    start = _first_due(db, store, every, until)
    if start > until + 1e-6:
        return 0
    return math.floor((until + 1e-6 - start) / every) + 1


def _first_due(db: SyncDb, store: StateStore, every: float, until: float) -> float:
    last = db.last_cycle
    if last is None:
        clock = store.clock()
        return clock if clock is not None else until
    return next_after(last, every, store.clock())


def run_cycle(
    store: StateStore,
    crm: Any,
    db: SyncDb,
    config: SyncConfig,
    compiled: Any,
    at: float,
    *,
    retry: bool = False,
) -> CycleResult:
    """One cycle at `at`. A transient CRM failure (the API limit reached, the CRM
    unavailable) while planning ends the cycle as one while applying does: nothing is
    written, the cursors stay, the cycle counts as run, and a later one tries again
    (docs/sync.md#errors)."""
    deliver(db, store, compiled)  # what a killed cycle left for the engine
    calls_before = _calls(crm)
    try:
        plan = make_plan(store, crm, db, config, at, retry=retry)
    except CrmCallError as e:
        if not e.transient:
            raise
        report = failed_cycle(db, at, str(e), _calls(crm) - calls_before)
        return CycleResult(None, {"at": iso(at), "summary": {"waiting": 0}}, report)
    pj = plan.as_json()
    report = apply_plan(pj, store, crm, db, check_stale=False)
    report.delivered = deliver(db, store, compiled)
    return CycleResult(plan, pj, report)


def _calls(crm: Any) -> int:
    return int(crm.api_usage().calls_made) if hasattr(crm, "api_usage") else 0


def failed_cycle(db: SyncDb, at: float, why: str, calls: int) -> ApplyReport:
    """Record the cycle at `at` whose plan the CRM failed for now: it ran (the next is due
    `every` minutes on), wrote nothing, and its calls count."""
    report = ApplyReport("", transient=why, calls=calls)
    with db.tx() as conn:
        db.set_meta("last_cycle", at)
        conn.execute(
            "INSERT OR REPLACE INTO cycle VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (at, None, 0, 0, 0, 0, 0, None, calls),
        )
        db.set_meta("api_calls", int(db.meta("api_calls", "0") or 0) + calls)
    return report


def run_until(
    store: StateStore,
    crm: Any,
    db: SyncDb,
    config: SyncConfig,
    compiled: Any,
    until: float,
    *,
    changes: Any = None,
    on_cycle: Any = None,
) -> int:
    """Every cycle due up to `until`; `changes` (timed CRM changes) are applied up to each.
    Each result goes to `on_cycle` and is let go: the number of cycles run is returned."""
    ran = 0
    for at in due_times(db, store, config, until):
        if changes is not None:
            changes(at)
        result = run_cycle(store, crm, db, config, compiled, at)
        ran += 1
        if on_cycle is not None:
            on_cycle(result)
    return ran
