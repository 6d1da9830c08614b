"""Applied event ids: a bounded window in memory, the store asked for the rest, exactly."""

from __future__ import annotations

import io
from pathlib import Path

import orjson
import pytest

from mrules.api import compile_rules
from mrules.engine import Engine
from mrules.events import read_events
from mrules.memstore import MemoryStore
from mrules.store import Store

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "getcloudy"


def _events(ids: list[str]) -> bytes:
    return b"".join(
        orjson.dumps(
            {"ts": f"2026-11-02T09:{i // 60:02d}:{i % 60:02d}Z", "type": "prospect_update",
             "prospect": f"p{i % 7}@x.com", "id": eid, "fields": {"company": f"C{i}"}}
        ) + b"\n"
        for i, eid in enumerate(ids)
    )  # fmt: skip


def _run(store: object, source: str, data: bytes, window: int) -> Engine:
    engine = Engine(compile_rules(EXAMPLE / "rules"), store, source=source, batch_size=3)  # type: ignore[arg-type]
    engine.window = window  # a tiny window: most ids must come from the store
    engine.start()
    engine.run(read_events(io.BytesIO(data)))
    return engine


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_replayed_ids_are_skipped_exactly_beyond_the_window(tmp_path: Path, kind: str) -> None:
    store = MemoryStore() if kind == "memory" else Store.open(tmp_path / "s.db")
    first = _run(store, "a", _events([f"e{i}" for i in range(40)]), window=4)
    assert first.summary.applied == 40 and len(first.applied) <= 5
    # Another stream (no position to resume from): old ids mixed with new ones, and one
    # new id twice in the same stream.
    ids = [f"e{i}" for i in range(0, 40, 3)] + ["n1", "n2", "e39", "n1", "e0"]
    second = _run(store, "b", _events(ids), window=4)
    assert second.summary.duplicates == 14 + 1 + 1 + 1
    assert second.summary.applied == 2
    if kind == "sqlite":
        assert store.applied_among(["e5", "zz", "n2"]) == {"e5", "n2"}  # type: ignore[attr-defined]
        store.close()  # type: ignore[attr-defined]
