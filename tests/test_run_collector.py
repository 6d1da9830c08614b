"""A run switches the automatic garbage collector off, collects at each commit, and
gives the process its collector back as it was."""

from __future__ import annotations

import gc
import weakref
from pathlib import Path

import pytest

import mrules
from mrules.engine.run import paced_collector

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "getcloudy"


class _Cycle:
    """An object that refers to itself: only the cyclic collector frees it."""

    def __init__(self) -> None:
        self.me = self


@pytest.fixture
def collector_on():  # type: ignore[no-untyped-def]
    was = gc.isenabled()
    gc.enable()
    yield
    if not was:
        gc.disable()


def test_a_run_turns_the_collector_off_collects_at_commits_and_turns_it_back_on(
    collector_on,  # type: ignore[no-untyped-def]
) -> None:
    enabled: list[bool] = []
    made: list[weakref.ref[_Cycle]] = []
    freed_by_next_commit: list[bool] = []

    def on_commit(batch: object) -> None:
        enabled.append(gc.isenabled())
        if made:  # the cycle made at the previous commit is garbage since then
            freed_by_next_commit.append(made[-1]() is None)
        made.append(weakref.ref(_Cycle()))

    result = mrules.run(
        EXAMPLE / "rules",
        EXAMPLE / "events.jsonl",
        store=":memory:",
        commit_every=2,
        on_commit=on_commit,
    )
    assert result.summary.applied > 4
    assert enabled and not any(enabled)  # no automatic collection during the run
    assert len(freed_by_next_commit) >= 2 and all(freed_by_next_commit)
    assert gc.isenabled()


def test_a_collector_switched_off_before_stays_off() -> None:
    was = gc.isenabled()
    gc.disable()
    try:
        with paced_collector():
            assert not gc.isenabled()
        assert not gc.isenabled()
    finally:
        if was:
            gc.enable()


def test_the_collector_comes_back_after_an_error(collector_on) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(RuntimeError), paced_collector():
        assert not gc.isenabled()
        raise RuntimeError("stop")
    assert gc.isenabled()
