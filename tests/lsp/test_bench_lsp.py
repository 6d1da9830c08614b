"""bench/bench_lsp.py runs end to end on a small folder, as a user runs it (not a timing)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_bench_lsp_runs_on_a_small_folder(tmp_path: Path) -> None:
    out = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "bench_lsp.py"),
            "--rules",
            "120",
            "--per-file",
            "40",
            "--changes",
            "4",
            "--workdir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    assert "120 items in 3 files; 4 changes" in out.stdout
    assert "change to diagnostics: median" in out.stdout
    assert len(list((tmp_path / "rules").glob("*.mr"))) == 3
