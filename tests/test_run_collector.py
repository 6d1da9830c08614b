"""A run paces the cyclic garbage collector and gives the process its thresholds back."""

from __future__ import annotations

import gc
from pathlib import Path

import pytest

import mrules
from mrules.engine.run import RUN_GC_THRESHOLDS, paced_collector

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "getcloudy"


@pytest.fixture
def odd_thresholds():  # type: ignore[no-untyped-def]
    before = gc.get_threshold()
    gc.set_threshold(555, 7, 3)
    yield (555, 7, 3)
    gc.set_threshold(*before)


def test_a_run_paces_the_collector_and_restores_it(odd_thresholds) -> None:  # type: ignore[no-untyped-def]
    seen: list[tuple[int, ...]] = []
    result = mrules.run(
        EXAMPLE / "rules",
        EXAMPLE / "events.jsonl",
        store=":memory:",
        commit_every=2,
        on_commit=lambda batch: seen.append(gc.get_threshold()),
    )
    assert result.summary.applied > 2
    assert seen and set(seen) == {RUN_GC_THRESHOLDS}
    assert gc.get_threshold() == odd_thresholds


def test_thresholds_come_back_after_an_error(odd_thresholds) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(RuntimeError), paced_collector():
        assert gc.get_threshold() == RUN_GC_THRESHOLDS
        raise RuntimeError("stop")
    assert gc.get_threshold() == odd_thresholds
