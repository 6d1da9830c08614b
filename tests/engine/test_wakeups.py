"""The wake-up queue against a plain dict of live times: the same prospects come due."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mrules.engine.wakeups import WakeQueue

_emails = st.sampled_from(["a@x", "b@x", "c@x", "d@x", "e@x", "f@x"])
_times = st.floats(0, 100, allow_nan=False) | st.just(float("inf"))
_ops = st.lists(
    st.tuples(st.just("schedule"), _emails, _times)
    | st.tuples(st.just("cancel"), _emails, st.just(0.0))
    | st.tuples(st.just("tick"), st.just(""), st.floats(0, 10, allow_nan=False)),
    max_size=80,
)


def held(queue: WakeQueue) -> int:
    """The entries the queue's buckets really hold, checked against its own count
    (`entries`, what decides a compaction) and its heap of bucket numbers: a count
    that drifted would let superseded entries pile up unseen, or compact for nothing."""
    buckets = queue._buckets
    stored = sum(len(b.emails) for b in buckets.values())
    assert stored == sum(len(b.times) for b in buckets.values()) == queue.entries
    assert sorted(queue._numbers) == sorted(buckets)
    return stored


@settings(max_examples=300, deadline=None)
@given(_ops, st.sampled_from([1.0, 7.5, 1000.0]), st.integers(0, 3))
def test_pop_due_gives_exactly_the_live_times_now_past(
    ops: list[tuple[str, str, float]], width: float, slack: int
) -> None:
    queue = WakeQueue(width=width, slack=slack)
    live: dict[str, float] = {}
    now = 0.0
    for op, email, x in ops:
        if op == "schedule":
            queue.schedule(email, now + x)
            if x == float("inf"):
                live.pop(email, None)
            else:
                live[email] = now + x
        elif op == "cancel":
            queue.cancel(email)
            live.pop(email, None)
        else:
            now += x  # the clock only moves forward
            due = queue.pop_due(now)
            expected = sorted(e for e, t in live.items() if t <= now)
            assert sorted(due) == expected
            for e in due:
                del live[e]
        assert len(queue) == len(live)
        assert queue.live_times() == live
        assert held(queue) <= 2 * len(queue) + slack + 1


def test_superseded_entries_do_not_pile_up() -> None:
    """Rescheduling leaves superseded entries; a compaction drops them once they pass
    twice the live ones plus the slack, and not before (one per ~60 schedules here,
    not one each: a compaction walks every bucket)."""
    queue = WakeQueue(width=10.0, slack=8)
    most = 0
    for i in range(10_000):
        queue.schedule(f"p{i % 50}", 100.0 + i % 997)
        most = max(most, held(queue))
        assert held(queue) <= 2 * 50 + 8 + 1
    assert most == 2 * 50 + 8
    assert len(queue) == 50
    assert sorted(queue.pop_due(float("1e9"))) == sorted(f"p{i}" for i in range(50))
    assert len(queue) == 0


def test_popping_due_times_keeps_superseded_entries_bounded() -> None:
    """Found by the property above: two prospects rescheduled earlier leave their first
    entries in a later bucket; once both came due, those two outnumbered the bound."""
    queue = WakeQueue(width=1.0, slack=0)
    for email in ("a@x", "c@x"):
        queue.schedule(email, 1.0)
    for email in ("a@x", "c@x"):
        queue.schedule(email, 0.0)
    assert sorted(queue.pop_due(0.0)) == ["a@x", "c@x"]
    assert len(queue) == 0 and held(queue) <= 1
    assert queue.pop_due(5.0) == []


def test_cancelling_compacts_only_past_the_bound() -> None:
    """A cancelled email's entry stays until the superseded entries pass twice the live
    ones plus the slack: then one compaction drops them all."""
    queue = WakeQueue(width=10.0, slack=8)
    for i in range(1000):
        queue.schedule(f"p{i}", float(i))
    for i in range(1000):
        queue.cancel(f"p{i}")
        live = 1000 - i - 1
        assert held(queue) <= 2 * live + 8 + 1
        if 2 * live + 8 >= 1000:
            assert held(queue) == 1000  # nothing compacted yet
    assert len(queue) == 0 and held(queue) <= 8 + 1
    assert queue.pop_due(1e9) == []


@pytest.mark.parametrize(("superseded", "left"), [(3, 5), (4, 2)])
def test_popping_compacts_only_past_the_bound(superseded: int, left: int) -> None:
    """Prospects rescheduled earlier leave superseded entries in a later bucket. Once
    they come due, those entries stay while they are at most twice the live ones plus
    the slack (3 beside 2 live, slack 1: 5 held), and are dropped past it (4)."""
    queue = WakeQueue(width=10.0, slack=1)
    early = ["a@x", "b@x", "c@x", "f@x"][:superseded]
    for email in ["d@x", "e@x", *early]:
        queue.schedule(email, 100.0)
    for email in early:
        queue.schedule(email, 0.0)
    assert sorted(queue.pop_due(0.0)) == early
    assert len(queue) == 2 and held(queue) == left
    assert sorted(queue.pop_due(100.0)) == ["d@x", "e@x"]
