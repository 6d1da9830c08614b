"""The wake-up queue against a plain dict of live times: the same prospects come due."""

from __future__ import annotations

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
        assert queue.entries <= 2 * len(queue) + slack + 1


def test_superseded_entries_do_not_pile_up() -> None:
    queue = WakeQueue(width=10.0, slack=8)
    for i in range(10_000):
        queue.schedule(f"p{i % 50}", 100.0 + i % 997)
    assert len(queue) == 50
    assert queue.entries <= 2 * 50 + 8 + 1
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
    assert len(queue) == 0 and queue.entries <= 1
    assert queue.pop_due(5.0) == []
