"""Fuzz harness (e): the example's saved sync plan with values replaced by junk of every
type and keys dropped, its id computed again (so the edit is not refused as such), then
`mrules sync apply`. Whatever the plan holds, the command ends with a documented exit
code and never an internal error: a plan of another shape is refused before any write
(exit 2), one that is still well formed is applied, and leaves a sync file that
`mrules sync status` reads (a count below 0 applied was a damaged sync file after it).

The default run tries a few seeded plans (seconds); the long one is opt-in:

    MRULES_FUZZ_PLANS=1000 MRULES_FUZZ_SEED=1 .venv/bin/python -m pytest -m slow \\
        tests/fuzz/test_fuzz_plans.py
"""

from __future__ import annotations

import json
import os
import random
import shutil
from pathlib import Path
from typing import Any

import pytest
from fuzzing import cli, mutated

from mrules.sync.plan import plan_id

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "getcloudy"
RULES = str(EXAMPLE / "rules")
JUNK: list[Any] = [
    None,
    0,
    -1,
    2**70,
    1.5,
    "",
    "x",
    "2026-13-45T99:00:00Z",
    [],
    [1],
    {},
    {"a": 1},
    True,
    "ann@example.com",
    [None],
    "1e999",
    "-5",
    [{}],
    [[]],
    # Of the right type, but no value `sync plan` writes there: an op or object it does
    # not know, a count or batch below 0.
    -100,
    "delete",
    "Widget",
    "lead",
    "update",
]


@pytest.fixture(scope="module")
def planned(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("plans")
    assert cli("crm", "load", str(EXAMPLE / "crm"), "--store", str(d / "g.db"))[0] == 0
    assert (
        cli("run", RULES, str(EXAMPLE / "events.jsonl"), "--store", str(d / "g.db"), "-q")[0] == 0
    )
    code, out = cli(
        "sync", "plan", "--rules", RULES, "--store", str(d / "g.db"), "--out", str(d / "plan.json")
    )
    assert code == 2, out  # changes pending
    return d


def _run(planned: Path, work: Path, n: int, seed: int) -> None:
    original = json.loads((planned / "plan.json").read_text("utf-8"))
    rng = random.Random(seed)
    for _ in range(n):
        for left in work.iterdir():
            left.unlink()
        for name in ("g.db", "g.crm.db"):
            shutil.copy(planned / name, work / name)
        doc, place = mutated(original, rng, JUNK, change=0.1, keep=("id",))
        doc["id"] = plan_id({k: v for k, v in doc.items() if k != "id"})
        text = json.dumps(doc)
        (work / "plan.json").write_text(text, "utf-8")
        code, out = cli(
            "sync",
            "apply",
            str(work / "plan.json"),
            "--rules",
            RULES,
            "--store",
            str(work / "g.db"),
        )
        assert code in (0, 1, 2, 4), f"exit {code} after changing {place}:\n{out}"
        assert "internal error" not in out, f"after changing {place}:\n{out}"
        if code == 0:  # applied: what it stored reads back
            code, out = cli("sync", "status", "--store", str(work / "g.db"))
            assert code == 0, f"sync status: exit {code} after changing {place}:\n{out}"


def test_plans_of_another_shape_short(planned: Path, tmp_path: Path) -> None:
    _run(planned, tmp_path, 10, seed=3)


@pytest.mark.slow
def test_plans_of_another_shape_long(planned: Path, tmp_path: Path) -> None:
    _run(
        planned,
        tmp_path,
        int(os.environ.get("MRULES_FUZZ_PLANS", "1000")),
        seed=int(os.environ.get("MRULES_FUZZ_SEED", "1")),
    )
