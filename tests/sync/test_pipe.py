"""A closed stdout pipe (`| head -1`): every sync and CRM command ends the documented way.

docs/exit-codes.md: exit 4 and one `mrules: error:` line on stderr, no traceback,
no "Exception ignored" noise, when the reader goes away before the output is written.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from tests.sync.world import T0, World, ev

MRULES = [sys.executable, "-m", "mrules"]
ONE_LINE = "mrules: error: the output was closed before everything was written (broken pipe)\n"


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> World:
    """2,000 assigned prospects: every output below is far more than a pipe's 64 KB."""
    w = World(tmp_path_factory.mktemp("pipe"))
    w.seed({})
    w.run(*[ev(T0, f"p{i:04}@x.com", asset="Demo") for i in range(2000)])
    return w


def _head(args: list[str]) -> tuple[int, str, str]:
    writer = subprocess.Popen(
        MRULES + args,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    assert writer.stdout is not None
    head = subprocess.run(
        ["head", "-1"], stdin=writer.stdout, capture_output=True, text=True, check=True
    )
    writer.stdout.close()
    _, err = writer.communicate(timeout=120)
    return writer.returncode, head.stdout, err.decode()


@pytest.mark.parametrize(
    "args",
    [
        ["sync", "plan"],
        ["sync", "plan", "--format", "json"],
    ],
    ids=["plan-text", "plan-json"],
)
def test_sync_plan_into_head(big: World, args: list[str]) -> None:
    code, first, err = _head([*args, "--rules", str(big.rules), "--store", str(big.store)])
    assert first.strip()
    assert (code, err) == (4, ONE_LINE)


def test_state_export_into_head(big: World) -> None:
    code, first, err = _head(["state", "export", "--store", str(big.store)])
    assert first.startswith("{")
    assert (code, err) == (4, ONE_LINE)


def test_crm_export_into_head(big: World, tmp_path: Path) -> None:
    big.sync("run", "--until", "2026-11-02T09:30:00Z")  # 2,000 leads in the CRM
    code, first, err = _head(["crm", "export", "--store", str(big.store), "--object", "Lead"])
    assert first.strip()
    assert (code, err) == (4, ONE_LINE)
