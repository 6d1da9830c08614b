"""The explicit per-event context: which prospect an event is changing, and which facts.

Handlers make one `Context` per event and prospect and pass it to every
effect and to settlement; an effect records the facts it changed
(`score`, `list`, `f:company_size`, ...) in `facts`, and settlement
re-evaluates the rules that read them. Nothing about the current event is
kept on the engine itself.
"""

from __future__ import annotations

from collections.abc import Iterable

from mrules.state import Prospect

__all__ = ["Context"]


class Context:
    """One prospect being changed, and the facts changed since its rules last ran."""

    __slots__ = ("facts", "p", "throttled")

    def __init__(self, p: Prospect, facts: Iterable[str] = ()) -> None:
        self.p = p
        self.facts: set[str] = set(facts)
        # Throttle decisions taken for this event (key -> throttled?): every action of
        # one trigger gets the same answer, since throttling is for repeat activity.
        self.throttled: dict[str, bool] | None = None

    def __repr__(self) -> str:
        return f"Context({self.p.email!r}, {sorted(self.facts)})"
