"""What the engine's parts share: the state `Engine.__init__` sets, and the calls across parts.

`Engine` is assembled from parts, one a concern (`handlers`, `effects`,
`settle`, `screening`, and the loop in `run`). Each part reads state that
`Engine.__init__` creates and calls methods another part defines. This base
declares both, so the type checker can follow every cross-part access. The
parts and this base are mypyc traits (`mypy_extensions.trait`, a no-op in
pure Python): a compiled class has one base class, and `Engine` mixes four
parts. Each cross-part method is declared here with a body that raises; the
part that defines it comes before this base in `Engine`'s method order.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import TYPE_CHECKING, Any

from mypy_extensions import trait

if TYPE_CHECKING:
    from collections.abc import Iterator

    from mrules.batch import Batch
    from mrules.compiler import (
        CompiledAction,
        CompiledBlock,
        CompiledRule,
        CompiledRuleSet,
        RuleRef,
    )
    from mrules.engine.context import Context
    from mrules.engine.summary import RunSummary
    from mrules.engine.wakeups import WakeQueue
    from mrules.events import Event
    from mrules.history import Row
    from mrules.settings import EngineSettings
    from mrules.state import Prospect
    from mrules.storeapi import StateStore
    from mrules.symbols import FieldInfo
    from mrules.urls import NormalizedUrls

__all__ = ["EngineParts"]


@trait
class EngineParts:
    """Declarations only: see `Engine.__init__` for what each attribute holds."""

    cs: CompiledRuleSet
    store: StateStore
    settings: EngineSettings
    summary: RunSummary
    source: str
    reject_source: str
    source_label: str
    prospects: dict[str, Prospect]
    _wake_all: bool
    visitors: dict[str, str]
    applied: OrderedDict[str, None]
    clock: float | None
    now: float
    seq: int
    shared: dict[str, Any]
    shared_dirty: bool
    dirty: dict[str, int]
    unit: int
    report_units: list[int]
    dirty_visitors: set[str]
    line: int
    event_id: str | None
    event_ts: float
    block_since: dict[str, float | None]
    batch: Batch
    _anonymous: dict[str, list[tuple[float, str]]]
    _candidates: dict[frozenset[str], tuple[tuple[CompiledRule, ...], tuple[CompiledRule, ...]]]
    _row: Row | None
    _rowed: bool
    _time_rules: tuple[CompiledRule, ...]
    _time_dynamic: tuple[CompiledRule, ...]
    _wakes: WakeQueue
    _phased: dict[str, tuple[tuple[CompiledAction, ...], ...]]
    _settled_at: dict[str, float]
    _timed: bool
    _fresh: str | None
    _exhaustive_ticks: bool
    _throttle: float
    _notify_window: float
    _asset_policy: str
    _field_policy: str
    _assets: frozenset[tuple[str, str]]
    _unknown_text: dict[tuple[str, str], str]
    _field_info: dict[str, FieldInfo]
    _urls: NormalizedUrls

    # defined in run.py
    def log(
        self, p: Prospect, ref: RuleRef, action: str, args: Any, before: Any, after: Any
    ) -> None:
        raise NotImplementedError

    def _prospect(self, email: str, e: Event | None) -> Prospect:
        raise NotImplementedError

    def _get(self, email: str, data: bytes | None = None) -> Prospect | None:
        raise NotImplementedError

    def _visitor(self, vid: str) -> str | None:
        raise NotImplementedError

    def _peek(self, email: str, data: bytes | None = None) -> Prospect | None:
        raise NotImplementedError

    def _every(self) -> Iterator[tuple[str, bytes | None]]:
        raise NotImplementedError

    def commit(self, line: int) -> None:
        raise NotImplementedError

    def _ref_for(self, e: Event | None) -> RuleRef:
        raise NotImplementedError

    def _row_for(self, email: str | None) -> Row:
        raise NotImplementedError

    def _tie_visitor(self, vid: str, c: Context) -> None:
        raise NotImplementedError

    def _activity_keys(self, etype: str, asset: str) -> tuple[str, ...]:
        raise NotImplementedError

    # defined in effects.py
    def _active(self, block: CompiledBlock, ts: float) -> bool:
        raise NotImplementedError

    def _run_blocks(self, c: Context, blocks: tuple[CompiledBlock, ...], asset_key: str) -> None:
        raise NotImplementedError

    def _score(self, c: Context, ref: RuleRef, points: int, args: dict[str, Any]) -> None:
        raise NotImplementedError

    def _category(self, c: Context, ref: RuleRef, category: str, points: int) -> None:
        raise NotImplementedError

    def _set_field(self, c: Context, ref: RuleRef, name: str, value: Any) -> None:
        raise NotImplementedError

    # defined in settle.py
    def _settle(self, c: Context) -> None:
        raise NotImplementedError

    def _lists_now(self, c: Context) -> None:
        raise NotImplementedError

    def _tick_all(self) -> None:
        raise NotImplementedError

    # defined in screening.py
    def _misfit(
        self, p: Prospect, ref: RuleRef, name: str, value: Any, problem: str, crm: str | None
    ) -> bool:
        raise NotImplementedError

    def _warn_asset(self, kind: str, asset: str) -> None:
        raise NotImplementedError
