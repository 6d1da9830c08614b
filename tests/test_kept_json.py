"""JSON bytes a run keeps are right-sized, not orjson's 4 KB output buffers.

orjson (3.12 and later) returns its output in a buffer of about 4 KB that it
does not shrink, so each kept result costs 4 KB whatever its length. These
tests keep 1,000 of each kind of bytes a run holds for long and bound what
tracemalloc sees them take: 600 bytes each (the args cache's count its names
table entry too), against ~4,100 unshrunk.
"""

from __future__ import annotations

import tracemalloc
from collections.abc import Callable
from typing import Any

import orjson

from mrules.history import Interner
from mrules.jsonbytes import kept, kept_dumps
from mrules.state import Codecs, Prospect

PER_ITEM = 600


def _held(make: Callable[[int], Any], n: int = 1_000) -> float:
    """Bytes per item that stay allocated while `n` results of `make` are kept."""
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        keep = [make(i) for i in range(n)]
        held = tracemalloc.get_traced_memory()[0] - base
    finally:
        tracemalloc.stop()
    assert len(keep) == n
    return held / n


def test_kept_dumps_is_the_same_json() -> None:
    value = {"score": 12, "lists": ["MQL", "Newsletter"], "when": 1.5, "none": None}
    assert kept_dumps(value) == orjson.dumps(value)
    assert kept(orjson.dumps(value)) == orjson.dumps(value)


def test_kept_dumps_is_right_sized() -> None:
    assert _held(lambda i: kept_dumps({"points": i})) < PER_ITEM


def test_prospect_state_is_right_sized() -> None:
    codecs = Codecs()

    def state(i: int) -> bytes:
        p = Prospect(f"p{i}@example.com", 1_700_000_000.0 + i)
        p.score = i
        return p.to_json(codecs)

    assert _held(state) < PER_ITEM


def test_the_packers_args_cache_is_right_sized() -> None:
    names = Interner()

    def intern(i: int) -> int | None:  # as `pack` does: a fresh orjson text per step
        return names.maybe_args(orjson.dumps({"field": "city", "value": f"town {i}"}))

    assert _held(intern) < PER_ITEM
    assert len(names.args) == 1_000
