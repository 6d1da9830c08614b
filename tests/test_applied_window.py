"""Applied event ids: a bounded window in memory, the store asked for the rest, exactly."""

from __future__ import annotations

import io
import re
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


def _run(
    store: object, source: str, data: bytes, window: int, fill_after: int = 10**6, batch: int = 3
) -> Engine:
    engine = Engine(compile_rules(EXAMPLE / "rules"), store, source=source, batch_size=batch)  # type: ignore[arg-type]
    engine.window = window  # a tiny window: most ids must come from the store
    engine.fill_filter_after = fill_after
    engine.start()
    engine.run(read_events(io.BytesIO(data)))
    return engine


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
@pytest.mark.parametrize(
    "fill_after", [0, 520, 10**6], ids=["filter", "asked-then-filter", "asked"]
)
def test_replayed_ids_are_skipped_exactly_beyond_the_window(
    tmp_path: Path, kind: str, fill_after: int
) -> None:
    """A run on a store with applied ids asks it for every id the window lacks (chunks of
    512 events), then, past `fill_after` ids asked, reads every stored hash into its
    filter and asks only for those the filter may hold: the same answers every way."""
    store = MemoryStore() if kind == "memory" else Store.open(tmp_path / "s.db")
    first = _run(store, "a", _events([f"e{i}" for i in range(40)]), window=4)
    assert first.summary.applied == 40 and len(first.applied) <= 5
    # Another stream (no position to resume from): old ids mixed with new ones, one new
    # id twice in the same stream, and in its second chunk ids of both runs again.
    ids = [f"e{i}" for i in range(0, 40, 3)] + ["n1", "n2", "e39", "n1", "e0"]
    ids += [f"m{i}" for i in range(600)] + ["e5", "m3", "n2"]
    second = _run(store, "b", _events(ids), window=4, fill_after=fill_after)
    assert second.summary.duplicates == 14 + 1 + 1 + 1 + 3
    assert second.summary.applied == 2 + 600
    assert second._unfilled is (fill_after > len(ids))  # which way it went
    if fill_after == 520:
        assert second._asked > 512  # the first chunk asked, the second filled the filter
    if kind == "sqlite":
        assert store.applied_among(["e5", "zz", "n2"]) == {"e5", "n2"}  # type: ignore[attr-defined]
        store.close()  # type: ignore[attr-defined]


def test_a_fractional_hash_is_damage_the_filter_finds_when_it_fills(tmp_path: Path) -> None:
    """The start looks for a hash stored as text or a blob at the top of each generation
    (`Store.has_applied_ids`); a fractional one sorts among the integers, and reading the
    hashes into the filter finds it: the run stops as on any damage (exit 4 in the CLI)."""
    from mrules.store import StoreError

    path = tmp_path / "s.db"
    with Store.open(path) as store:
        _run(store, "a", _events([f"e{i}" for i in range(10)]), window=4)
    with Store.open(path) as store:
        store._connection().execute("UPDATE history SET event = 3.5 WHERE id = 2")
        assert store.has_applied_ids()  # not found at start: it sorts among the integers
        with pytest.raises(StoreError, match=re.escape("an applied event's hash is '3.5'")):
            _run(store, "b", _events(["e1", "x1"]), window=4, fill_after=0)


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_an_id_repeated_in_the_chunk_it_left_the_window_in_is_skipped(
    tmp_path: Path, kind: str
) -> None:
    """An id that leaves the window (the oldest dropped) while its chunk is applied was
    not asked of the store for that chunk (it was in the window when the chunk was
    looked at): repeated later in the same chunk, it was applied a second time. Here x0
    leaves a window of 4 at x4 and comes again at the end, in the same chunk."""
    store = MemoryStore() if kind == "memory" else Store.open(tmp_path / "s.db")
    ids = [f"x{i}" for i in range(10)] + ["x0", "x9"]
    engine = _run(store, "a", _events(ids), window=4)
    assert (engine.summary.applied, engine.summary.duplicates) == (10, 2)
    # and in the next chunk, the store answers for it
    again = _events([*(f"y{i}" for i in range(520)), "x0"])
    engine = _run(store, "b", again, window=4)
    assert (engine.summary.applied, engine.summary.duplicates) == (520, 1)
    if kind == "sqlite":
        store.close()  # type: ignore[attr-defined]


@pytest.mark.parametrize("fill_after", [0, 10**6], ids=["filter", "asked"])
def test_lines_with_no_id_beside_ids_beyond_the_window(tmp_path: Path, fill_after: int) -> None:
    """A store with ids beyond the window, a stream mixing them with events without an
    id and a line that is not JSON: those two are no id to look up (the event is
    applied, the line rejected), the old ids are skipped, the new applied."""
    store = Store.open(tmp_path / "s.db")
    _run(store, "a", _events([f"e{i}" for i in range(20)]), window=4)
    no_id = orjson.dumps(
        {"ts": "2026-11-02T10:00:00Z", "type": "prospect_update", "prospect": "q@x.com",
         "fields": {"company": "Q"}}
    ) + b"\n"  # fmt: skip
    data = _events(["e1", "n1"]) + no_id + b"not json\n" + _events(["e2", "n2"]) + no_id
    again = _run(store, "b", data, window=4, fill_after=fill_after)
    s = again.summary
    assert (s.lines, s.applied, s.duplicates, s.rejected) == (7, 4, 2, 1)
    store.close()


def test_an_id_repeated_in_a_later_chunk_of_the_same_batch_is_skipped() -> None:
    """The window holds every id of the batch not committed yet (the store does not have
    them): one repeated 600 lines later, in the next chunk of 512, is skipped."""
    ids = [f"e{i}" for i in range(600)] + ["e0"]
    engine = _run(MemoryStore(), "a", _events(ids), window=1 << 18, batch=10_000)
    assert (engine.summary.applied, engine.summary.duplicates) == (600, 1)


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_the_id_of_an_event_that_changes_nothing_is_kept(tmp_path: Path, kind: str) -> None:
    """An update that sets a field to the value it has writes no ledger step: its id is
    still recorded, and the same id in another stream is skipped as applied."""
    store = MemoryStore() if kind == "memory" else Store.open(tmp_path / "s.db")
    same = {"ts": "2026-11-02T09:00:00Z", "type": "prospect_update", "prospect": "a@x.com",
            "fields": {"company": "C"}}  # fmt: skip
    twice = orjson.dumps({**same, "id": "u1"}) + b"\n" + orjson.dumps({**same, "id": "u2"})
    first = _run(store, "a", twice + b"\n", window=4)
    assert (first.summary.applied, first.summary.duplicates) == (2, 0)
    again = _run(store, "b", orjson.dumps({**same, "id": "u2"}) + b"\n", window=4)
    assert (again.summary.applied, again.summary.duplicates) == (0, 1)
    if kind == "sqlite":
        store.close()  # type: ignore[attr-defined]


SAME_HASH = ("ev-3985819", "ev-4420602")
"""Two event ids with the same 31-bit hash (`event_hash`): the store looks ids up by it."""


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
@pytest.mark.parametrize("fill_after", [0, 10**6], ids=["filter", "asked"])
def test_an_id_that_shares_its_hash_with_an_applied_one_is_applied(
    tmp_path: Path, kind: str, fill_after: int
) -> None:
    """The hash only finds the rows to look at: the id itself decides whether an event
    was applied, asked one at a time (`has_applied`) or many (`applied_among`)."""
    from mrules.batch import event_hash

    assert event_hash(SAME_HASH[0]) == event_hash(SAME_HASH[1])
    store = MemoryStore() if kind == "memory" else Store.open(tmp_path / "s.db")
    first = _run(store, "a", _events([SAME_HASH[0]]), window=0)
    assert first.summary.applied == 1
    assert store.has_applied(SAME_HASH[0]) and not store.has_applied(SAME_HASH[1])
    assert store.applied_among(list(SAME_HASH)) == {SAME_HASH[0]}
    second = _run(
        store, "b", _events([SAME_HASH[1], SAME_HASH[0]]), window=0, fill_after=fill_after
    )
    assert (second.summary.applied, second.summary.duplicates) == (1, 1)
    assert store.applied_ids() == set(SAME_HASH)
    store.close()
