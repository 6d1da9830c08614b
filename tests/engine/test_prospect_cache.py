"""The engine keeps a bounded cache of prospects; the store holds them all.

A run with a cache of C prospects (C much smaller than the prospects of the
stream) must hold at most C of them after every commit, and must end exactly
as a run that keeps every prospect: same prospect states, ledger, outbox and
CRM work, with a restart in the middle (the first tick after it looks at
every stored prospect) and any commit size. The stream is bench/generate.py's
(page views, forms, emails, CRM updates, ticks; automation rules with time
criteria, dynamic lists, scoring, grading).
"""

from __future__ import annotations

import sys
import tempfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mrules.api import compile_rules, open_store
from mrules.cli import main
from mrules.compiler import CompiledRuleSet
from mrules.engine import Engine
from mrules.events import Event, Reject, parse_line
from mrules.storeapi import StateStore

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))
import generate as gen  # noqa: E402

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "getcloudy"


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("cache")
    gen.main([str(tmp), "--prospects", "40", "--events", "1200", "--seed", "11"])
    lines = (tmp / "events.jsonl").read_bytes().splitlines()
    return {"rules": compile_rules(tmp / "rules"), "lines": lines}


def _parsed(lines: list[bytes], after: int, upto: int) -> Iterator[Event | Reject]:
    for n, raw in enumerate(lines[:upto], start=1):
        if n > after:
            item = parse_line(raw, n)
            if item is not None:
                yield item


def _engine(
    rules: CompiledRuleSet, store: StateStore, cap: int | None, every: int, sizes: list[int]
) -> Engine:
    engine: Engine

    def noted(_batch: Any) -> None:
        sizes.append(max(len(engine.prospects), len(engine.visitors)))

    engine = Engine(
        rules, store, source="stream", batch_size=every, cache_prospects=cap, on_commit=noted
    )
    return engine


def _final(store: StateStore) -> dict[str, Any]:
    visitors = list(store.visitors())
    # one visitor's tie, as the engine asks for it, is the one in the whole list
    assert {v: store.visitor(v) for v, _, _ in visitors} == {v: p for v, p, _ in visitors}
    assert store.visitor("no such visitor") is None
    return {
        "visitors": visitors,
        "prospects": dict(store.prospects()),
        "ledger": list(store.ledger()),
        "outbox": list(store.outbox()),
        "crm": list(store.crm_pending()),
        "seq": store.max_seq(),
    }


def _both(
    inputs: dict[str, Any], cap: int, every: int, restart: int, on_disk: bool
) -> tuple[dict[str, Any], dict[str, Any], list[int], list[Engine]]:
    """The stream in two parts: by one engine keeping every prospect, and by two engines
    (a restart between them: no wake-up time survives it) with a cache of `cap`."""
    rules, lines = inputs["rules"], inputs["lines"]
    out: list[dict[str, Any]] = []
    sizes: list[int] = []
    engines: list[Engine] = []
    with tempfile.TemporaryDirectory() as tmp:
        for bound in (None, cap):
            spec = str(Path(tmp) / f"{bound}.db") if on_disk else ":memory:"
            store = open_store(spec)
            try:
                noted: list[int] = [] if bound is None else sizes
                engine: Engine | None = None
                for upto in (restart, len(lines)):
                    if engine is None or bound is not None:
                        engine = _engine(rules, store, bound, every, noted)
                        start = engine.start()
                        if bound is not None:
                            engines.append(engine)
                    else:  # the same engine goes on: its wake-up times are still there
                        start = restart
                    engine.run(_parsed(lines, start, upto))
                out.append(_final(store))
            finally:
                store.close()
    return out[0], out[1], sizes, engines


@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    cap=st.integers(0, 6),
    every=st.one_of(st.integers(1, 300), st.integers(300, 1300)),  # chunks are 512 events
    restart=st.integers(1, 1199),
    on_disk=st.booleans(),
)
def test_a_small_cache_ends_as_an_unbounded_run(
    inputs: dict[str, Any], cap: int, every: int, restart: int, on_disk: bool
) -> None:
    whole, cached, sizes, engines = _both(inputs, cap, every, restart, on_disk)
    assert len(whole["prospects"]) >= 30, "too few prospects to evict anything: proves nothing"
    assert whole == cached
    assert len(whole["visitors"]) >= 10, "too few tied visitors to evict any: proves nothing"
    # after every commit, at most `cap` prospects (and tied visitors) are held
    assert sizes and max(sizes) <= cap
    assert [e.cache_prospects for e in engines] == [cap, cap]
    assert engines[1]._stored_beyond  # the second run reads from the store


class _Counting:
    """A store that counts the engine's reads of one prospect or one visitor tie."""

    def __init__(self, store: StateStore) -> None:
        self._store, self.single, self.among = store, 0, 0
        self.calls: Counter[str] = Counter()  # the same reads, by name

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def prospect(self, email: str) -> bytes | None:
        self.calls["prospect"] += 1
        self.single += 1
        return self._store.prospect(email)

    def visitor(self, visitor: str) -> str | None:
        self.calls["visitor"] += 1
        self.single += 1
        return self._store.visitor(visitor)

    def prospects_among(self, emails: Any) -> dict[str, bytes]:
        self.calls["prospects_among"] += 1
        self.among += 1
        return self._store.prospects_among(emails)

    def visitors_among(self, visitors: Any) -> dict[str, str]:
        self.calls["visitors_among"] += 1
        self.among += 1
        return self._store.visitors_among(visitors)


@pytest.mark.parametrize("on_disk", [False, True])
def test_a_chunks_misses_are_read_together(
    inputs: dict[str, Any], tmp_path: Path, on_disk: bool
) -> None:
    """Commits at chunk ends (512 events): every prospect and tie the cache dropped is read
    by the chunk's prefetch, none by a query of its own, and the run ends as one that
    keeps every prospect. (Ticks, which wake prospects no event names, are left out.)"""
    rules = inputs["rules"]
    lines = [raw for raw in inputs["lines"] if b'"type":"tick"' not in raw]
    finals = []
    for cap in (None, 5):
        store = open_store(str(tmp_path / f"{cap}.db") if on_disk else ":memory:")
        try:
            counting = _Counting(store)
            engine = Engine(
                rules,
                counting,
                source="stream",
                batch_size=512,
                cache_prospects=cap,  # type: ignore[arg-type]
            )
            engine.start()
            engine.run(_parsed(lines, 0, len(lines)))
            finals.append(_final(store))
            if cap is not None:
                assert engine._stored_beyond and engine._visitors_beyond
                assert counting.among >= 2  # chunks 2 and 3 read what the cache lacks
                assert counting.single == 0
        finally:
            store.close()
    assert finals[0] == finals[1]


def test_the_bound_holds_where_the_whole_stream_is_one_commit(inputs: dict[str, Any]) -> None:
    # one commit at the end: the cache holds the batch's prospects until then, no more after
    whole, cached, sizes, _ = _both(inputs, 3, 10**6, 600, True)
    assert whole == cached
    assert sizes == [3, 3]


def test_the_cli_bound_gives_the_same_export(tmp_path: Path) -> None:
    events = EXAMPLE / "events.jsonl"
    runner = CliRunner()
    exports = []
    for extra in ([], ["--cache-prospects", "1"]):
        db = tmp_path / f"s{len(extra)}.db"
        ran = runner.invoke(
            main, ["run", str(EXAMPLE / "rules"), str(events), "--store", str(db), "-q", *extra]
        )
        assert ran.exit_code == 0, ran.output
        out = runner.invoke(main, ["state", "export", "--store", str(db)])
        assert out.exit_code == 0, out.output
        exports.append(out.output)
    assert exports[0] == exports[1]
    assert exports[0].count("\n") > 1


def test_a_bad_cache_size_is_a_usage_error(tmp_path: Path) -> None:
    ran = CliRunner().invoke(
        main,
        [
            "run",
            str(EXAMPLE / "rules"),
            str(EXAMPLE / "events.jsonl"),
            "--store",
            str(tmp_path / "s.db"),
            "--cache-prospects",
            "-1",
        ],
    )
    assert ran.exit_code == 2
    assert "Traceback" not in ran.output


@pytest.mark.parametrize("timed", [False, True])
def test_ticks_keep_nothing_per_prospect_without_time_based_rules(timed: bool) -> None:
    """Between ticks the engine remembers the prospects touched (for their next wake-up
    time) only when some rule reads time: otherwise that table would grow with every
    prospect ever touched, beyond any cache bound."""
    import orjson

    text = 'field title: text\nlist "Fresh"\n'
    if timed:
        text += (
            'automation rule "Quiet" priority 1 {\n'
            "  when all { days since last activity > 3 }\n"
            '  then { add to list "Fresh" }\n'
            "}\n"
        )
    rules = compile_rules(text)
    store = open_store(":memory:")
    try:
        engine = Engine(rules, store, source="stream", batch_size=3, cache_prospects=2)
        engine.start()
        events = [
            {
                "id": f"e{i}",
                "ts": "2026-11-02T09:00:00Z",
                "type": "prospect_update",
                "prospect": f"p{i}@x.com",
                "fields": {"title": "T"},
            }
            for i in range(10)
        ]
        items = [parse_line(orjson.dumps(e), n) for n, e in enumerate(events, start=1)]
        engine.run([i for i in items if i is not None])
        assert len(engine.prospects) <= 2
        if timed:  # touched since the last tick: their wake-up times are due
            assert len(engine._settled_at) == 10
        else:
            assert engine._settled_at == {}
    finally:
        store.close()


def test_the_cache_drops_the_least_recently_used_prospect() -> None:
    """After a commit the prospects it wrote are the most recent: a prospect touched again
    outlives one touched once after it, though it was cached first."""
    import orjson

    rules = compile_rules('field title: text\nlist "Fresh"\n')
    store = open_store(":memory:")
    try:
        engine = Engine(rules, store, source="stream", batch_size=1, cache_prospects=2)
        engine.start()
        order = ["p1", "p2", "p1", "p3"]
        items = [
            parse_line(
                orjson.dumps(
                    {
                        "id": f"e{n}",
                        "ts": f"2026-11-02T09:0{n}:00Z",
                        "type": "prospect_update",
                        "prospect": f"{who}@x.com",
                        "fields": {"title": f"T{n}"},
                    }
                ),
                n,
            )
            for n, who in enumerate(order, start=1)
        ]
        engine.run([i for i in items if i is not None])
        assert list(engine.prospects) == ["p1@x.com", "p3@x.com"]
    finally:
        store.close()


def _counted(chunks: list[list[tuple[str | None, str | None]]]) -> tuple[Counter[str], Engine]:
    """Run chunks of 512 events (prospect, visitor: a page view) with a cache of 2 and a
    commit at each chunk's end; the store's reads, by name."""
    import orjson

    rules = compile_rules("field title: text\n")
    store = open_store(":memory:")
    try:
        counting = _Counting(store)
        engine = Engine(rules, counting, source="stream", batch_size=512, cache_prospects=2)  # type: ignore[arg-type]
        engine.start()
        items = []
        for chunk in chunks:
            assert len(chunk) == 512
            for email, vid in chunk:
                n = len(items) + 1
                event: dict[str, Any] = {
                    "id": f"e{n}",
                    "ts": "2026-11-02T09:00:00Z",
                    "type": "page_view",
                    "url": "https://x.example/",
                }
                if email is not None:
                    event["prospect"] = email
                if vid is not None:
                    event["visitor"] = vid
                items.append(parse_line(orjson.dumps(event), n))
        engine.run([i for i in items if i is not None])
        assert engine.summary.applied == 512 * len(chunks)
        return counting.calls, engine
    finally:
        store.close()


def test_prospects_beyond_the_cache_are_read_by_chunk_though_every_tie_is_held() -> None:
    """Twelve prospects and two visitors tied (as many as the cache holds): after the
    first commit the store holds prospects the cache lacks, and every visitor tie is
    still in memory. The prospects a chunk misses are read in one query; a chunk that
    misses none (its events name cached prospects, or none) asks nothing, and no tie
    is asked of the store, not even a visitor's never seen."""
    names = [f"p{i}@x.com" for i in range(10)] + ["z1@x.com", "z2@x.com"]
    first = [("p0@x.com", "v1"), ("p1@x.com", "v2")]
    first += [(names[n % 12], None) for n in range(2, 512)]
    # the two cached prospects, and an anonymous visitor (no prospect to read)
    kept = [[("z1@x.com", None), ("z2@x.com", None), (None, "anon")][n % 3] for n in range(512)]
    missed = [("p0@x.com", None)] * 511 + [(None, "v3")]
    calls, engine = _counted([first, kept, missed])
    assert engine._stored_beyond and not engine._visitors_beyond
    assert calls == {"prospects_among": 1}


def test_ties_beyond_the_cache_are_read_by_chunk_though_every_prospect_is_held() -> None:
    """One prospect seen under ten visitors: after the first commit the store holds
    ties the cache lacks, and the prospect is still in memory. The ties a chunk misses
    are read in one query; a chunk that misses none asks nothing, and no prospect is
    asked of the store (not one new to the run: the store has none the cache lacks)."""
    vids = [f"v{i}" for i in range(10)]
    first = [("a@x.com", vids[n % 10]) for n in range(512)]
    # the last two tied, and a new prospect: nothing in the store yet
    kept = [[(None, "v8"), (None, "v9"), ("b@x.com", None)][n % 3] for n in range(512)]
    missed = [(None, "v0")] * 512
    calls, engine = _counted([first, kept, missed])
    assert engine._visitors_beyond and not engine._stored_beyond
    assert calls == {"visitors_among": 1}
