"""The benchmark's baselines (bench/handwritten.py, bench/handwritten_memory.py) and mrules
end in the same state.

A differential test: both run the same small generated input and every
prospect, ledger row, outbox and CRM row, visitor and activity must agree. The
baseline's naive ticks (every prospect at every tick) also check the engine's
wake-up heap. The loop without persistence is compared with what `mrules run`
then `mrules state export` print, run as a user runs them. Other tests show the
comparisons notice a difference.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"
sys.path.insert(0, str(BENCH))

import bench_run  # noqa: E402
import generate as gen  # noqa: E402
import handwritten as hw  # noqa: E402
import handwritten_memory as hm  # noqa: E402

from mrules.events import read_events  # noqa: E402


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
    assert bench_run.differential(tmp_path / "mrules.db", tmp_path / "baseline.db", base.obj) == (
        0,
        [],
    )


def test_a_changed_rule_is_noticed(small: dict[str, Any]) -> None:
    model = small["model"]
    rules = [
        r
        if r.name != "Warm band"
        else hw.Rule(r.name, r.reads, lambda p, now: 40 <= p.score <= 99, r.actions)
        for r in model.rules
    ]
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
    monkeypatch.setattr(
        gen,
        "_automation_rules",
        lambda cat: [line.replace("Warm band", "Tepid band") for line in original(cat)],
    )
    with pytest.raises(RuntimeError, match="automation rules differ"):
        hw.build_model(7)
    monkeypatch.setattr(gen, "_automation_rules", original)
    monkeypatch.setattr(gen, "_CONDITIONS", (*gen._CONDITIONS[:-1], "score >= 51"))
    with pytest.raises(ValueError, match="does not know the conditions"):
        hw.build_model(7)


# ------------------------------------------------- without a store (NullStore)


def test_no_store_runs_end_in_the_stored_state(small: dict[str, Any]) -> None:
    """`bench_run.py --no-store`: the engine and the baseline against a store that keeps
    nothing still end where the store-backed run ends (anonymous views kept for attach)."""
    compiled, _ = bench_run.compile_rules(small["dir"] / "rules")
    engine = bench_run.run_mrules(compiled, small["events"], None)
    assert engine.lines == 3000
    assert bench_run.no_store_mismatches(engine.obj, small["dir"] / "mrules.db") == 0
    base = bench_run.run_baseline(small["model"], small["events"], None)
    assert bench_run.differential(small["dir"] / "mrules.db", None, base.obj) == (0, [])


def test_no_store_check_notices_lost_anonymous_views(
    small: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bench_run.NullStore, "anonymous_views", lambda self, visitor: [])
    compiled, _ = bench_run.compile_rules(small["dir"] / "rules")
    # Small commits: views committed before their visitor converts are read back from the
    # store (with the default 20,000 events a commit, this stream never commits early).
    engine = bench_run.run_mrules(compiled, small["events"], None, commit_every=500)
    assert bench_run.no_store_mismatches(engine.obj, small["dir"] / "mrules.db") > 0


# --------------------------------------------- the loop without persistence


@pytest.fixture(scope="module")
def exported(small: dict[str, Any]) -> list[dict[str, Any]]:
    """`mrules run` then `mrules state export`, in subprocesses, on the small workload."""
    d = small["dir"]
    store = d / "cli.db"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "mrules",
            "run",
            str(d / "rules"),
            str(small["events"]),
            "--store",
            str(store),
            "-q",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return hm.mrules_export(store)


def test_memory_loop_equals_state_export(
    small: dict[str, Any], exported: list[dict[str, Any]]
) -> None:
    for reader, lean in (("lean", True), ("mrules", True), ("lean", False)):
        loop = hm.run(small["events"], reader=reader, model=small["model"], lean=lean)
        assert loop.lines == 3000
        assert hm.compare_exports(loop.export(), exported) == (0, [])
    # Not vacuous: the export holds what the comparison is about.
    assert len(exported) > 100
    assert any(r["pending_crm"] for r in exported) and any(r["assigned"] for r in exported)
    assert any(r["lists"] and r["tags"] and r["fields"] for r in exported)
    assert len({r["score"] for r in exported}) > 20


def test_memory_loop_cli_check(
    small: dict[str, Any], exported: list[dict[str, Any]], capsys: pytest.CaptureFixture[str]
) -> None:
    d = small["dir"]
    out = d / "loop.jsonl"
    assert (
        hm.main([str(small["events"]), "--check-against", str(d / "cli.db"), "--export", str(out)])
        == 0
    )
    assert "0 mismatching prospects" in capsys.readouterr().err
    assert hm.read_export(out.read_bytes().splitlines()) == hm.read_export(
        [hm.orjson.dumps(r) for r in exported]
    )


def test_memory_loop_notices_a_changed_rule(
    small: dict[str, Any], exported: list[dict[str, Any]]
) -> None:
    model = small["model"]
    rules = [
        r
        if r.name != "Warm band"
        else hw.Rule(r.name, r.reads, lambda p, now: 40 <= p.score <= 99, r.actions)
        for r in model.rules
    ]
    loop = hm.run(
        small["events"], model=hw.Model(model.exact, model.wildcards, model.blocks, rules)
    )
    count, diffs = hm.compare_exports(loop.export(), exported, show=10**6)
    assert count == len(diffs) > 0
    assert any("'Warm'" in d and "lists: loop" in d for d in diffs)


def test_memory_loop_notices_a_changed_pending_crm_item(
    small: dict[str, Any], exported: list[dict[str, Any]]
) -> None:
    loop = hm.run(small["events"], model=small["model"])
    email = next(e for e, items in sorted(loop.pending.items()) if items)
    seq, ts, kind, payload = loop.pending[email][0]
    loop.pending[email][0] = (seq + 1, ts, kind, payload)
    count, diffs = hm.compare_exports(loop.export(), exported)
    assert count == 1 and diffs[0].startswith(f"prospect {email}: pending_crm")


def test_lean_reader_reads_what_read_events_reads(small: dict[str, Any]) -> None:
    used = (
        "line",
        "id",
        "ts_epoch",
        "type",
        "prospect",
        "visitor",
        "url",
        "asset",
        "fields",
        "user",
        "object",
        "crm_id",
        "status",
    )
    lean = [tuple(getattr(e, k) for k in used) for e in hm.read_lean(small["events"])]
    full = [tuple(getattr(e, k) for k in used) for e in read_events(small["events"])]
    assert lean == full and len(lean) == 3000


def test_lean_reads_fit_the_model(small: dict[str, Any]) -> None:
    model = small["model"]
    lean = hm.lean_model(model)
    assert [r.name for r in lean.rules] == [r.name for r in model.rules]
    changed = [a.name for a, b in zip(lean.rules, model.rules, strict=True) if a.reads != b.reads]
    assert sorted(changed) == sorted(hm.LEAN_READS)
    fewer = [r for r in model.rules if r.name != "Enterprise fast lane"]
    with pytest.raises(ValueError, match="Enterprise fast lane"):
        hm.lean_model(hw.Model(model.exact, model.wildcards, model.blocks, fewer))


def test_lean_loop_needs_its_page_visit_facts(
    small: dict[str, Any], exported: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The rules that read "a:pricing" and "a:docs" are tried only after those facts: a
    page view that forgot to set them ends elsewhere than mrules (a check that can fail)."""
    original = hm.MemoryLoop.visited

    def forgetful(self: hm.MemoryLoop, p: hw.P, u: str, ts: float) -> None:
        original(self, p, u, ts)
        self.changed.difference_update(("a:pricing", "a:docs"))

    monkeypatch.setattr(hm.MemoryLoop, "visited", forgetful)
    loop = hm.run(small["events"], model=small["model"])
    count, diffs = hm.compare_exports(loop.export(), exported, show=10**6)
    assert count > 0 and any("docs-reader" in d for d in diffs)
