"""The tick wake-up queue gives exactly what re-checking every prospect at every tick gives.

The engine re-evaluates, at a tick, only the prospects whose time-based rules
could have changed outcome (docs/semantics.md). This differential test runs the
benchmark's generated rule set and streams (with repeating rules, `within`
windows, `days since` criteria and ticks) both ways and compares every
prospect's state and every ledger row.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import sys

import orjson
import pytest

from conftest import ROOT
from mrules.checker import check
from mrules.compiler import compile_program
from mrules.engine import Engine
from mrules.engine.wakeups import WakeQueue
from mrules.events import read_events
from mrules.loader import load
from mrules.store import Store


def _generator():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("bench_generate", ROOT / "bench" / "generate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_generate"] = module
    spec.loader.exec_module(module)
    return module


def _run(rules_dir, events_path, store_path, exhaustive: bool, width: float = 3600.0):  # type: ignore[no-untyped-def]
    result = load([rules_dir])
    assert not [d for d in check(result.program) if d.is_error]
    compiled = compile_program(result.program, result.sources)
    with Store.open(store_path) as store:
        engine = Engine(
            compiled, store, source="events", batch_size=500, exhaustive_ticks=exhaustive
        )
        engine._wakes.width = width
        engine.start()
        engine.run(read_events(events_path))
        codecs = compiled.codecs
        states = {e: orjson.loads(p.to_json(codecs)) for e, p in engine.prospects.items()}
        ledger = sorted(row[1:] for row in store.ledger())
    return states, ledger


# Bucket widths: the default hour (ticks fall on bucket edges), and widths that put
# ticks inside buckets.
@pytest.mark.parametrize(("seed", "width"), [(1, 3600.0), (2, 1000.0), (3, 7.0)])
def test_wake_queue_equals_exhaustive_ticks(tmp_path, seed: int, width: float) -> None:
    gen = _generator()
    cat = gen.build_catalog()
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "bench.mr").write_text(gen.generate_rules(seed, cat))
    events = list(gen.generate_events(seed, 150, 3000, cat))
    assert sum(e["type"] == "tick" for e in events) >= 3, "the stream must exercise ticks"
    (tmp_path / "events.jsonl").write_bytes(b"\n".join(orjson.dumps(e) for e in events))

    fast = _run(tmp_path / "rules", tmp_path / "events.jsonl", tmp_path / "fast.db", False, width)
    slow = _run(tmp_path / "rules", tmp_path / "events.jsonl", tmp_path / "slow.db", True)
    assert fast[0] == slow[0]
    assert fast[1] == slow[1]
    tick_lines = {i for i, e in enumerate(events, start=1) if e["type"] == "tick"}
    at_ticks = [r for r in slow[1] if r[8] == "rule matched" and r[6] in tick_lines]
    assert at_ticks, "some time-based rule must fire at a tick, or the test proves nothing"


def test_wake_queue_follows_prospects_not_events(tmp_path) -> None:
    """Each settle queues a new wake-up; superseded ones must not pile up with the events."""
    gen = _generator()
    cat = gen.build_catalog()
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "bench.mr").write_text(gen.generate_rules(4, cat))
    events = list(gen.generate_events(4, 12, 4000, cat))
    (tmp_path / "events.jsonl").write_bytes(b"\n".join(orjson.dumps(e) for e in events))
    result = load([tmp_path / "rules"])
    compiled = compile_program(result.program, result.sources)
    pushes = 0
    with Store.open(tmp_path / "s.db") as store:
        engine = Engine(compiled, store, source="events", batch_size=500)

        class Counted(WakeQueue):  # a subclass, not a patched method: the compiled one is fixed
            def schedule(self, email: str, when: float) -> None:
                nonlocal pushes
                super().schedule(email, when)
                pushes += when != float("inf")
                assert self.entries <= 2 * len(self) + self.slack

        # ticks (every 6 hours) fall inside buckets, not on their edges
        queue = engine._wakes = Counted(width=1000.0, slack=4)
        engine.start()
        engine.run(read_events(tmp_path / "events.jsonl"))
        assert set(queue.live_times()) == set(queue._live)  # one live entry each
        codecs = compiled.codecs
        states = {e: orjson.loads(p.to_json(codecs)) for e, p in engine.prospects.items()}
        ledger = sorted(row[1:] for row in store.ledger())
    assert pushes > 4 * len(engine.prospects) + 8, "too few wake-ups to pile up: proves nothing"
    slow = _run(tmp_path / "rules", tmp_path / "events.jsonl", tmp_path / "slow.db", True)
    assert states == slow[0]
    assert ledger == slow[1]


def test_ticks_at_the_very_threshold_equal_exhaustive_ticks(tmp_path) -> None:
    """Ticks that land exactly on `days since ... OP 2` thresholds, for each operator: the
    wake-up came a hair after the threshold, so `>=` and `<` missed such a tick."""
    rules = tmp_path / "rules"
    rules.mkdir()
    lists = "\n".join(
        f'dynamic list "{name}" {{ when all {{ days since {anchor} {op} 2 }} }}'
        for anchor in ("created", "assigned", "last activity")
        for name, op in (
            (f"{anchor} ge", ">="),
            (f"{anchor} lt", "<"),
            (f"{anchor} gt", ">"),
            (f"{anchor} le", "<="),
        )
    )
    (rules / "r.mr").write_text(
        'form "F"\nuser "u@x.com"\ntag "t"\n'
        'on submit of form "F" { assign to user "u@x.com" }\n'
        'automation rule "R" priority 1 {\n'
        '  when all { days since created >= 3 }\n  then { add tag "t" }\n}\n' + lists + "\n"
    )
    day = 86400
    t0 = 1_767_225_600  # 2026-01-01T00:00:00Z

    def iso(t: int) -> str:
        return dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    events = [
        {
            "ts": iso(t0 + k * day // 2),
            "type": "form_submit",
            "prospect": f"p{k}@x.com",
            "asset": "F",
        }
        for k in range(4)
    ]
    events += [{"ts": iso(t0 + k * day // 2), "type": "tick"} for k in range(1, 14)]
    events.sort(key=lambda e: e["ts"])
    (tmp_path / "events.jsonl").write_bytes(b"\n".join(orjson.dumps(e) for e in events))
    fast = _run(rules, tmp_path / "events.jsonl", tmp_path / "fast.db", False)
    slow = _run(rules, tmp_path / "events.jsonl", tmp_path / "slow.db", True)
    assert fast[0] == slow[0]
    assert fast[1] == slow[1]
    assert any(r[8] == "rule matched" for r in slow[1])
