"""`replay --diff` reads an in-memory run's results straight from its rows: the same diff.

The fast reader (`mrules.replay._read`: one pass over the history rows, no
JSON text, prospects decoded only where the two runs' stored states differ)
is compared byte for byte with the reference reader, which reads every
result through the store interface (`state export`, `state outbox`, the
ledger), on generated workloads (bench/generate.py) with a rule change that
moves MQLs, assignments, lists, CRM work and messages.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

from mrules.events import EventSourceError
from mrules.replay import diff_runs, render_text

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

import generate  # noqa: E402


def _workload(folder: Path, seed: int) -> tuple[Path, Path, Path]:
    generate.main([str(folder), "--prospects", "300", "--events", "3000", "--seed", str(seed)])
    old = folder / "rules"
    new = folder / "rules-new"
    new.mkdir()
    for f in old.glob("*.mr"):
        text = f.read_text(encoding="utf-8")
        text = re.sub(r"score >= (\d+)", lambda m: f"score >= {max(0, int(m.group(1)) - 10)}", text)
        (new / f.name).write_text(text, encoding="utf-8")
    return old, new, folder / "events.jsonl"


def _stable(d: dict[str, Any]) -> dict[str, Any]:
    d = dict(d)
    for key in ("seconds", "old", "new"):
        d.pop(key)
    return d


@pytest.mark.parametrize("seed", [1, 7, 23])
def test_fast_reader_equals_the_reference(tmp_path: Path, seed: int) -> None:
    old, new, events = _workload(tmp_path, seed)
    for a, b in ((old, new), (new, old)):
        ref = diff_runs(str(a), str(b), str(events), examples=20, reference=True)
        fast = diff_runs(str(a), str(b), str(events), examples=20)
        # Not a vacuous comparison: the change does something in every category it can.
        assert ref["mql"]["gained"]["count"] + ref["mql"]["lost"]["count"] > 0
        assert ref["outbox"]["gained"]["total"] + ref["outbox"]["lost"]["total"] > 0
        if seed == 7:  # the bench workload: CRM work and assignments move too
            assert ref["crm"]["count"] > 0 and ref["assignment"]["count"] > 0
        assert orjson.dumps(_stable(fast)) == orjson.dumps(_stable(ref))
        labels = {"old": {"rules": "a"}, "new": {"rules": "b"}}
        assert render_text({**fast, **labels}) == render_text({**ref, **labels})


def test_fast_reader_in_a_second_process(tmp_path: Path) -> None:
    old, new, events = _workload(tmp_path, 5)
    ref = diff_runs(str(old), str(new), str(events), reference=True)
    two = diff_runs(str(old), str(new), str(events), jobs=2)
    assert orjson.dumps(_stable(two)) == orjson.dumps(_stable(ref))


def test_same_rules_change_nothing(tmp_path: Path) -> None:
    old, _new, events = _workload(tmp_path, 3)
    d = diff_runs(str(old), str(old), str(events))
    assert d["prospects"]["changed"] == 0 and d["prospects"]["old"] == d["prospects"]["new"] > 0
    assert d["outbox"]["gained"]["total"] == d["outbox"]["lost"]["total"] == 0
    assert all(r["before"] == r["after"] for r in d["rules"]) and d["rules"]
    assert d["score"]["old"] == d["score"]["new"] and d["score"]["changed"] == 0


@pytest.mark.parametrize("jobs", [1, 2])
def test_the_collector_is_left_as_it_was(tmp_path: Path, jobs: int) -> None:
    """`diff_runs` freezes the runs' objects while it works, and unfreezes them at the end."""
    import gc

    old, new, events = _workload(tmp_path, 11)
    assert gc.get_freeze_count() == 0
    diff_runs(str(old), str(new), str(events), jobs=jobs)
    assert gc.get_freeze_count() == 0
    with pytest.raises(EventSourceError):
        diff_runs(str(old), str(new), str(tmp_path / "missing.jsonl"), jobs=jobs)
    assert gc.get_freeze_count() == 0
