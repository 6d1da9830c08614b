"""What a run did (`RunSummary`) and how times are shown (`iso`)."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

__all__ = ["RunSummary", "iso"]


def iso(ts: float | None) -> str | None:
    """Epoch seconds to RFC 3339 UTC text."""
    if ts is None:
        return None
    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat().replace("+00:00", "Z")


@dataclass
class RunSummary:
    """What a run did, for the summary table and the exit status."""

    lines: int = 0
    applied: int = 0
    duplicates: int = 0
    rejected: int = 0
    ignored: int = 0
    prospects_created: int = 0
    resumed_from: int = 0
    actions: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0
    retroactive: list[str] = field(default_factory=list)
    # Warnings (docs/events.md): events applied although they name an asset the
    # rules do not declare, by "form 'X' (did you mean 'Y'?)"; field values that do
    # not fit their field, by reason (skipped, or kept with bad_field_values = "keep").
    # Past 100 distinct causes, the rest are counted together under "".
    unknown_assets: Counter[str] = field(default_factory=Counter)
    bad_fields: Counter[str] = field(default_factory=Counter)
    bad_fields_kept: bool = False
    # How often each rule acted: automation rules that matched, page actions and
    # completion actions that fired (keyed by the rule's `RuleRef`).
    matches: Counter[Any] = field(default_factory=Counter)
    # Prospects whose rules did not converge: where, and the rules still acting.
    unsettled: list[dict[str, Any]] = field(default_factory=list)
    # The file's last line had no newline and was not whole JSON (still being
    # written?): its number; it was not applied, and the next run reads it again.
    unfinished_line: int | None = None

    @property
    def events_per_second(self) -> float:
        return self.applied / self.seconds if self.seconds > 0 else 0.0
