"""bench/bench_read_commands.py runs end to end on the example's store, as a user runs it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from conftest import ROOT, example_store

SCRIPT = ROOT / "bench" / "bench_read_commands.py"


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=300
    )


def test_both_trees_side_by_side(tmp_path: Path) -> None:
    store = example_store(tmp_path)
    src = str(ROOT / "src")
    before = store.read_bytes()
    rules = str(ROOT / "examples" / "getcloudy" / "rules")
    proc = _run(str(store), "--before", src, "--after", src, "--segment", rules)
    assert proc.returncode == 0, proc.stderr
    rows = proc.stdout.splitlines()[2:]
    assert [r[:26].strip() for r in rows] == [
        "state outbox",
        "state export",
        "state export --prospect",
        "report rules",
        "segment",
    ]
    assert all(len(r.split()) >= 9 for r in rows), proc.stdout
    assert store.read_bytes() == before  # segment ran on copies, removed after
    assert sorted(p.name for p in store.parent.iterdir() if "bench-copy" in p.name) == []


def test_a_folder_that_is_no_tree_is_refused(tmp_path: Path) -> None:
    proc = _run(str(tmp_path / "g.db"), "--before", str(tmp_path))
    assert proc.returncode == 2
    assert "is no source tree" in proc.stderr
