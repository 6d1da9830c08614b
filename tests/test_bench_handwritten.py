"""The benchmark's baseline (bench/handwritten.py) and mrules end in the same state.

A differential test: both run the same small generated input and every
prospect, ledger row, outbox and CRM row, visitor and activity must agree. The
baseline's naive ticks (every prospect at every tick) also check the engine's
wake-up heap. The last tests show the comparison notices a difference.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"
sys.path.insert(0, str(BENCH))

import bench_run  # noqa: E402
import generate as gen  # noqa: E402
import handwritten as hw  # noqa: E402


def _inputs(tmp: Path, seed: int, prospects: int, events: int) -> dict[str, Any]:
    path = bench_run.ensure_inputs(tmp, prospects, events, seed)
    compiled, problems = bench_run.compile_rules(tmp / "rules")
    assert problems == []  # the generated rule set lints clean
    mrules = bench_run.run_mrules(compiled, path, tmp / "mrules.db")
    assert mrules.lines == events
    return {"events": path, "model": hw.build_model(seed), "dir": tmp, "seed": seed}


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return _inputs(tmp_path_factory.mktemp("bench"), 7, 300, 3000)


def test_same_state_ledger_and_outputs(small: dict[str, Any]) -> None:
    d = small["dir"]
    base = bench_run.run_baseline(small["model"], small["events"], d / "baseline.db")
    count, diffs = bench_run.differential(d / "mrules.db", d / "baseline.db", base.obj)
    assert (count, diffs) == (0, [])
    # Not vacuous: the run did the things the comparison looks at.
    assert len(base.obj.prospects) > 100 and base.obj.seq > 3000
    assert any(p.matches for p in base.obj.prospects.values())


def test_naive_ticks_agree_with_the_engine(small: dict[str, Any]) -> None:
    base = bench_run.run_baseline(small["model"], small["events"], None, ticks="naive")
    assert bench_run.differential(small["dir"] / "mrules.db", None, base.obj) == (0, [])


@pytest.mark.parametrize("seed", [1, 2])
def test_other_seeds(tmp_path: Path, seed: int) -> None:
    """Other seeds draw other page and completion actions: the decoding must still fit."""
    inp = _inputs(tmp_path, seed, 120, 1500)
    base = bench_run.run_baseline(inp["model"], inp["events"], tmp_path / "baseline.db")
    assert bench_run.differential(tmp_path / "mrules.db", tmp_path / "baseline.db",
                                  base.obj) == (0, [])


def test_a_changed_rule_is_noticed(small: dict[str, Any]) -> None:
    model = small["model"]
    rules = [r if r.name != "Warm band" else hw.Rule(r.name, r.reads,
                                                     lambda p, now: 40 <= p.score <= 99,
                                                     r.actions)
             for r in model.rules]
    wrong = hw.Model(model.exact, model.wildcards, model.blocks, rules)
    d = small["dir"]
    base = bench_run.run_baseline(wrong, small["events"], d / "wrong.db")
    count, diffs = bench_run.differential(d / "mrules.db", d / "wrong.db", base.obj)
    assert count > 0
    assert any("Warm" in text for text in diffs)


def test_a_changed_prospect_is_noticed(small: dict[str, Any]) -> None:
    base = bench_run.run_baseline(small["model"], small["events"], None)
    p = base.obj.prospects[sorted(base.obj.prospects)[0]]
    p.score += 1
    p.tags.add("cold" if "cold" not in p.tags else "trial")
    count, diffs = bench_run.differential(small["dir"] / "mrules.db", None, base.obj)
    assert count == 1
    assert "score: mrules" in diffs[0] and "tags: mrules" in diffs[0]


def test_model_refuses_a_generator_it_does_not_mirror(monkeypatch: pytest.MonkeyPatch) -> None:
    original = gen._automation_rules
    monkeypatch.setattr(gen, "_automation_rules",
                        lambda cat: [line.replace("Warm band", "Tepid band")
                                     for line in original(cat)])
    with pytest.raises(RuntimeError, match="automation rules differ"):
        hw.build_model(7)
    monkeypatch.setattr(gen, "_automation_rules", original)
    monkeypatch.setattr(gen, "_CONDITIONS", (*gen._CONDITIONS[:-1], "score >= 51"))
    with pytest.raises(ValueError, match="does not know the conditions"):
        hw.build_model(7)
