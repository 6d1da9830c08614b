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

    def __repr__(self) -> str:
        """One short line, the counts by their attribute names: the dataclass's repr held
        every action and every rule's matches (2,000 characters on the example, more with
        every rule). The rest is in the attributes."""
        shown = [
            ("lines", self.lines),
            ("applied", self.applied),
            ("duplicates", self.duplicates),
            ("rejected", self.rejected),
            ("ignored", self.ignored),
            ("prospects_created", self.prospects_created),
        ]
        if self.resumed_from:
            shown.append(("resumed_from", self.resumed_from))
        if self.unsettled:
            shown.append(("unsettled", len(self.unsettled)))
        if self.unfinished_line is not None:
            shown.append(("unfinished_line", self.unfinished_line))
        return "<RunSummary " + " ".join(f"{name}={value}" for name, value in shown) + ">"

    @property
    def events_per_second(self) -> float:
        return self.applied / self.seconds if self.seconds > 0 else 0.0
