"""JSON bytes that are kept: right-sized copies of orjson's output.

orjson returns its output in the buffer it wrote it into and does not shrink
it: every `orjson.dumps` result holds about 4 KB (orjson 3.12 and later; 1 KB
before), however short the JSON. That is harmless for bytes written out at
once, but a run keeps some for long: the packer's cache of ledger args (up to
the store's `names` cap of entries), the prospects of a commit, every prospect
in an in-memory store. There, 4 KB each was most of a long run's memory.
`kept_dumps` copies the output into an object of its own size (~0.1 µs more).
"""

from __future__ import annotations

from typing import Any, Final

import orjson

__all__ = ["kept", "kept_dumps"]

_dumps: Final = orjson.dumps


def kept(data: bytes) -> bytes:
    """A right-sized copy of orjson output that is going to be kept."""
    return bytes(memoryview(data))


def kept_dumps(value: Any) -> bytes:
    """`orjson.dumps(value)`, right-sized: for JSON bytes that live beyond the call."""
    return kept(_dumps(value))
