"""A visitor's first tie finds its anonymous views in what the chunk's prefetch read.

Before applying a chunk of 512 events, the engine reads the committed anonymous
page views of the visitors an event of the chunk may tie for the first time (an
event naming the visitor and a prospect, no tie known), 500 visitors a query
(`StateStore.anonymous_views_among`), instead of one query per first tie
(`StateStore.anonymous_views`). The runs must end exactly as runs that ask visitor
by visitor (a store without the batched method, as the benchmark's null store):
same prospects, ties, ledger, outbox, CRM work and history rows.
"""

from __future__ import annotations

import sys
from collections.abc import Collection, Iterator
from pathlib import Path
from typing import Any, cast

import orjson
import pytest

from mrules.api import compile_rules, open_store
from mrules.compiler import CompiledRuleSet
from mrules.engine import Engine
from mrules.events import Event, Reject, parse_line
from mrules.store import Store
from mrules.storeapi import StateStore, StoreError

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))
import generate as gen  # noqa: E402

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "getcloudy"
PRICING = "https://getcloudy.com/pricing"
URLS = (PRICING, "https://getcloudy.com/consult", "https://www.getcloudy.com/careers/x")


class _Counting:
    """A store that notes the engine's reads of anonymous views. `batched=False` hides
    `anonymous_views_among`: the engine then asks visitor by visitor, as before."""

    def __init__(self, store: StateStore, batched: bool = True) -> None:
        self._store, self._batched = store, batched
        self.single: list[str] = []  # the visitors asked one at a time
        self.among: list[list[str]] = []  # the visitors asked together, a list per call

    def __getattr__(self, name: str) -> Any:
        if name == "anonymous_views_among":
            if not self._batched:
                raise AttributeError(name)
            return self._among
        return getattr(self._store, name)

    def anonymous_views(self, visitor: str) -> list[tuple[float, str]]:
        self.single.append(visitor)
        return self._store.anonymous_views(visitor)

    def _among(self, visitors: Collection[str]) -> dict[str, list[tuple[float, str]]]:
        self.among.append(sorted(visitors))
        return self._store.anonymous_views_among(visitors)


@pytest.fixture(scope="module")
def rules() -> CompiledRuleSet:
    # page views score, page actions, and a rule reading `visited "getcloudy.com/pricing*"`
    return compile_rules(EXAMPLE / "rules")


def _line(n: int, **event: Any) -> bytes:
    """Event `n` of a stream, at second `n` of 2026-11-02 (so at most 86,399 of them)."""
    minutes, seconds = divmod(n, 60)
    hours, minutes = divmod(minutes, 60)
    ts = f"2026-11-02T{hours:02d}:{minutes:02d}:{seconds:02d}Z"
    return orjson.dumps({"ts": ts, "id": f"e{n}", **event})


def _view(n: int, visitor: str, prospect: str | None = None) -> bytes:
    extra = {} if prospect is None else {"prospect": prospect}
    return _line(n, type="page_view", visitor=visitor, url=URLS[n % len(URLS)], **extra)


def _form(n: int, visitor: str, prospect: str) -> bytes:
    asset = "Demande Get Cloudy"
    return _line(n, type="form_submit", visitor=visitor, prospect=prospect, asset=asset)


def _identify(n: int, visitor: str, prospect: str) -> bytes:
    return _line(n, type="identify", visitor=visitor, prospect=prospect)


def _parsed(lines: list[bytes], first: int = 1) -> Iterator[Event | Reject]:
    for n, raw in enumerate(lines, start=first):
        item = parse_line(raw, n)
        assert item is not None
        yield item


def _events(lines: list[bytes], first: int = 1) -> Iterator[Event | Reject]:
    """`_parsed`, every line an event (the hand-made streams have no bad line)."""
    for item in _parsed(lines, first):
        assert type(item) is Event, item
        yield item


def _before() -> list[bytes]:
    """Committed before the chunk: anonymous views of v0-v9 (1 to 3 each), and visitor u
    viewed anonymously and tied to u@x.com."""
    lines: list[bytes] = []
    for i in range(10):
        for _ in range(1 + i % 3):
            lines.append(_view(len(lines) + 1, f"v{i}"))
    lines.append(_view(len(lines) + 1, "u"))
    lines.append(_identify(len(lines) + 1, "u", "u@x.com"))
    return lines


FIRST_TIES = {f"v{i}" for i in range(8)} | {"v9", "w"}
"""The visitors the chunk of `_chunk` ties for the first time."""


def _chunk(start: int) -> list[bytes]:
    """One chunk: v0-v7 and v9 tied (forms, identify, page views naming a prospect), v9
    after a view in the chunk; w, never seen, tied; v0 tied again to another prospect and
    v1 seen again (no second read); u named with its prospect (tied in the store); v8
    only viewed anonymously (it cannot be tied)."""
    out: list[bytes] = []

    def add(make: Any, *args: Any) -> None:
        out.append(make(start + len(out), *args))

    add(_view, "v8")
    add(_view, "v9")
    for i in range(3):
        add(_form, f"v{i}", f"p{i}@x.com")
    add(_identify, "v3", "p3@x.com")
    add(_identify, "v4", "p4@x.com")
    for i in (5, 6, 7):
        add(_view, f"v{i}", f"p{i}@x.com")
    add(_view, "v9", "p9@x.com")
    add(_form, "w", "pw@x.com")
    add(_identify, "v0", "q0@x.com")
    add(_view, "v1", "p1@x.com")
    add(_view, "u", "u@x.com")
    add(_view, "v8")
    return out


def _final(store: StateStore) -> dict[str, Any]:
    return {
        "prospects": dict(store.prospects()),
        "visitors": list(store.visitors()),
        "ledger": list(store.ledger()),
        "outbox": list(store.outbox()),
        "crm": list(store.crm_pending()),
        "activities": list(store.activities()),
        "seq": store.max_seq(),
        "views": {v: store.anonymous_views(v) for v in ("v8", "v9", "w", "u", "v0")},
    }


def _attached(final: dict[str, Any]) -> dict[str, int]:
    """How many anonymous views each visitor's first tie scored (ledger steps)."""
    counts: dict[str, int] = {}
    for e in final["ledger"]:
        visitor = orjson.loads(e.args or "{}").get("attached_from")
        if visitor is not None:
            counts[visitor] = counts.get(visitor, 0) + 1
    return counts


def _spec(tmp_path: Path, on_disk: bool, name: str) -> str:
    return str(tmp_path / f"{name}.db") if on_disk else ":memory:"


def _two_runs(
    rules: CompiledRuleSet, spec: str | StateStore, batched: bool, every: int = 20_000
) -> tuple[dict[str, Any], _Counting]:
    """`_before` committed by one engine, then `_chunk` (with `every` events a commit) by
    another on the same store (closed after): the counts are the second run's."""
    store = open_store(spec)
    try:
        first = Engine(rules, store, source="stream")
        first.start()
        before = _before()
        first.run(_events(before))
        counting = _Counting(store, batched)
        engine = Engine(rules, cast(StateStore, counting), source="stream", batch_size=every)
        engine.start()
        engine.run(_events(_chunk(len(before) + 1), len(before) + 1))
        return _final(store), counting
    finally:
        store.close()


@pytest.mark.parametrize("on_disk", [False, True])
def test_first_ties_read_their_views_with_the_chunk(
    rules: CompiledRuleSet, tmp_path: Path, on_disk: bool
) -> None:
    got, counting = _two_runs(rules, _spec(tmp_path, on_disk, "batched"), batched=True)
    want, asked = _two_runs(rules, _spec(tmp_path, on_disk, "single"), batched=False)
    assert sorted(asked.single) == sorted(FIRST_TIES)  # before: a query per first tie
    assert counting.single == []
    # one query for the chunk, for exactly the visitors it may tie for the first time:
    # not v8 (never with a prospect) nor u (tied in the store)
    assert counting.among == [sorted(FIRST_TIES)]
    assert got == want
    # Not vacuous: the ties attached the stored views (and v9's view in the chunk; u's
    # tie, in the first run, its one view).
    assert _attached(got) == {"u": 1, "v0": 1, "v1": 2, "v2": 3, "v3": 1, "v4": 2, "v5": 3,
                              "v6": 1, "v7": 2, "v9": 2}  # fmt: skip
    assert len(got["views"].pop("v8")) == 3 + 2  # v8 stays anonymous
    assert got["views"] == {"v9": [], "w": [], "u": [], "v0": []}


@pytest.mark.parametrize("on_disk", [False, True])
def test_a_commit_inside_the_chunk_keeps_what_was_read(
    rules: CompiledRuleSet, tmp_path: Path, on_disk: bool
) -> None:
    """A commit after 2 events of the chunk writes v9's and v8's views of the chunk; the
    first ties after it still use what was read before, with those views added (as the
    store now has them): no visitor is read twice."""
    got, counting = _two_runs(rules, _spec(tmp_path, on_disk, "batched"), True, every=2)
    want, asked = _two_runs(rules, _spec(tmp_path, on_disk, "single"), False, every=2)
    assert sorted(asked.single) == sorted(FIRST_TIES)
    assert counting.single == []
    assert counting.among == [sorted(FIRST_TIES)]
    assert got == want
    assert _attached(got)["v9"] == 2  # the stored view and the chunk's, committed since


def test_a_store_without_the_batched_read_is_asked_one_visitor_at_a_time(
    rules: CompiledRuleSet,
) -> None:
    store = open_store(":memory:")
    try:
        counting = _Counting(store, batched=False)
        engine = Engine(rules, cast(StateStore, counting), source="stream", batch_size=3)
        engine.start()
        assert not engine._views_among
        engine.run(_events(_before() + _chunk(100)))
        assert counting.single and counting.among == []
    finally:
        store.close()


# ---------------------------------------------- the bench workload, cache bounds, commits


@pytest.fixture(scope="module")
def bench_lines(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("prefetch")
    gen.main([str(tmp), "--prospects", "60", "--events", "2000", "--seed", "5"])
    lines = (tmp / "events.jsonl").read_bytes().splitlines()
    return {"rules": compile_rules(tmp / "rules"), "lines": lines}


def _bench_run(
    inputs: dict[str, Any], spec: str, batched: bool, every: int, cap: int | None, restart: int
) -> tuple[dict[str, Any], _Counting]:
    rules, lines = inputs["rules"], inputs["lines"]
    store = open_store(spec)
    try:
        counting = _Counting(store, batched)
        for after, upto in ((0, restart), (restart, len(lines))):
            engine = Engine(
                rules,
                cast(StateStore, counting),
                source="stream",
                batch_size=every,
                cache_prospects=cap,
            )
            assert engine.start() == after
            engine.run(_parsed(lines[after:upto], after + 1))
        return _final(store), counting
    finally:
        store.close()


@pytest.mark.parametrize(
    ("every", "cap", "restart", "on_disk"),
    [
        (20_000, 50_000, 700, True),
        (300, None, 1500, False),
        (512, 5, 900, True),
        (700, 7, 1100, False),
        (97, 3, 1024, True),
    ],
)
def test_the_bench_stream_ends_as_when_asked_visitor_by_visitor(
    bench_lines: dict[str, Any],
    tmp_path: Path,
    every: int,
    cap: int | None,
    restart: int,
    on_disk: bool,
) -> None:
    got, counting = _bench_run(
        bench_lines, _spec(tmp_path, on_disk, "a"), True, every, cap, restart
    )
    want, asked = _bench_run(bench_lines, _spec(tmp_path, on_disk, "b"), False, every, cap, restart)
    assert got == want
    assert counting.single == []  # every first tie used what its chunk's prefetch read
    asked_together = [v for call in counting.among for v in call]
    assert len(asked_together) == len(set(asked_together))  # none read twice
    # every first tie of a visitor was read, one way or the other (a visitor's second
    # first tie comes after its tie was dropped from the cache and from the store: never)
    assert set(asked.single) <= set(asked_together)
    assert len(asked.single) > 40  # not vacuous: many first ties
    assert len(counting.among) <= -(-len(bench_lines["lines"]) // 512) + 2


# ------------------------------------------------------------- the store method itself


def _views_store(spec: str | StateStore, visitors: list[str], every: int) -> StateStore:
    """A store holding anonymous views of `visitors` (two each, several commits), the
    first ten of them tied afterwards (their views claimed by their prospects)."""
    lines = [_view(n, v) for n, v in enumerate(visitors + visitors[::-1], start=1)]
    lines += [_identify(len(lines) + 1 + i, v, f"{i}@x.com") for i, v in enumerate(visitors[:10])]
    store = open_store(spec)
    engine = Engine(compile_rules(EXAMPLE / "rules"), store, source="s", batch_size=every)
    engine.start()
    engine.run(_events(lines))
    return store


def _one_by_one(store: StateStore, visitors: Collection[str]) -> dict[str, Any]:
    return {v: views for v in set(visitors) if (views := store.anonymous_views(v))}


@pytest.mark.parametrize("on_disk", [False, True])
def test_anonymous_views_among_is_anonymous_views_of_each(tmp_path: Path, on_disk: bool) -> None:
    long_id = "v-" + "x" * 300  # too long to be a name: stored as its text
    visitors = [f"v{i:04d}" for i in range(1200)] + [long_id]
    store = _views_store(_spec(tmp_path, on_disk, "views"), visitors, every=700)
    try:
        asked = [*visitors, "never-seen", visitors[20], long_id]  # unknown, twice
        found = store.anonymous_views_among(asked)
        assert found == _one_by_one(store, asked)
        assert set(found) == set(visitors[10:])  # the tied ten have none left
        assert found[long_id] == store.anonymous_views(long_id) and len(found[long_id]) == 2
        assert all(len(views) == 2 for views in found.values())
        ts = found[visitors[30]]
        assert ts[0][0] < ts[1][0]  # in arrival order
        assert store.anonymous_views_among([]) == {}
        assert store.anonymous_views_among(["never-seen"]) == {}
        assert store.anonymous_views_among(set(visitors[:10])) == {}
    finally:
        store.close()


def test_the_sqlite_store_asks_500_visitors_a_query(tmp_path: Path) -> None:
    visitors = [f"v{i:04d}" for i in range(1100)]
    store = _views_store(str(tmp_path / "s.db"), visitors, every=20_000)
    try:
        assert isinstance(store, Store)
        queries: list[str] = []
        conn = store._connection()
        conn.set_trace_callback(queries.append)
        try:
            found = store.anonymous_views_among(visitors)
        finally:
            conn.set_trace_callback(None)
        assert len([q for q in queries if "FROM history" in q]) == 3  # 500 + 500 + 100
        assert len(found) == 1100 - 10
        plan = conn.execute(
            "EXPLAIN QUERY PLAN SELECT data FROM history WHERE visitor IN (?, ?)"
            " AND prospect IS NULL ORDER BY id",
            (1, 2),
        ).fetchall()
        assert any("history_anonymous" in str(row) for row in plan)  # the partial index
    finally:
        store.close()


def test_a_closed_sqlite_store_says_so(tmp_path: Path) -> None:
    store = _views_store(str(tmp_path / "s.db"), ["a", "b"], every=10)
    store.close()
    with pytest.raises(StoreError, match="closed"):
        store.anonymous_views_among(["a"])
