"""Fuzz harness (d): the example's rule tests (`examples/getcloudy/tests`) with values
replaced by junk of every type (null, huge and infinite numbers, text that is no time,
lists and mappings where a value goes) and keys renamed, then `mrules test`. Whatever
the file says, the command ends with 0, 1 or 2 and never an internal error: a broken
test file is exit 2 with its line, a test whose expectation is wrong fails.

The default run tries a few seeded files (seconds); the long one is opt-in:

    MRULES_FUZZ_FILES=2000 MRULES_FUZZ_SEED=1 .venv/bin/python -m pytest -m slow \\
        tests/fuzz/test_fuzz_test_files.py
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from fuzzing import mutated

from mrules.cli import main

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "getcloudy"
JUNK: list[Any] = [
    None,
    0,
    -1,
    2**70,
    1.5,
    float("inf"),
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
    {"ts": None},
    "1e999",
    "-5",
]
KEYS = ("bogus", "Score", "", "ts", "expect")


def _run(tmp_path: Path, n: int, seed: int) -> None:
    doc = yaml.safe_load((EXAMPLE / "tests" / "handoff.test.yaml").read_text("utf-8"))
    doc["rules"] = str(EXAMPLE / "rules")
    rng = random.Random(seed)
    target = tmp_path / "t.test.yaml"
    for _ in range(n):
        text = yaml.safe_dump(mutated(doc, rng, JUNK, renames=KEYS)[0], allow_unicode=True)
        target.write_text(text, "utf-8")
        r = CliRunner().invoke(main, ["test", str(target)])
        if r.exception is not None and not isinstance(r.exception, SystemExit):
            raise AssertionError(f"{r.exception!r} on:\n{text}") from r.exception
        assert r.exit_code in (0, 1, 2), f"exit {r.exit_code} on:\n{text}\n{r.output}"
        assert "internal error" not in r.output, f"{text}\n{r.output}"


def test_the_example_is_a_passing_test_file() -> None:
    # Otherwise every mutation would fail for the file's own reason.
    r = CliRunner().invoke(main, ["test", str(EXAMPLE / "tests")])
    assert r.exit_code == 0, r.output


def test_mutated_test_files_short(tmp_path: Path) -> None:
    _run(tmp_path, 25, seed=5)


@pytest.mark.slow
def test_mutated_test_files_long(tmp_path: Path) -> None:
    _run(
        tmp_path,
        int(os.environ.get("MRULES_FUZZ_FILES", "2000")),
        seed=int(os.environ.get("MRULES_FUZZ_SEED", "1")),
    )
