"""`.ci/mutate.py`: a run of pytest that tested nothing is no kill.

Any exit of pytest but 0 counted as a killed mutant: tests given wrong (`-k EXPR`,
whose EXPR argparse took for a test path; a path that does not exist; a selection
that collects nothing) made every mutant "killed", and the module looked tested.
Pytest's usage error (4) and no tests collected (5) now stop the run, exit 2.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
MUTATE = REPO / ".ci" / "mutate.py"


@pytest.mark.parametrize(
    "tests",
    [
        ["tests/no_such_test_file.py"],
        ["tests/engine/test_normalized_urls.py", "-k", "no_test_is_named_so"],  # a path
        ["tests/engine/test_normalized_urls.py", "-k=no_test_is_named_so"],
    ],
    ids=["no-such-path", "an-option-s-value-taken-for-a-path", "nothing-collected"],
)
def test_tests_that_run_nothing_stop_the_run(tests: list[str]) -> None:
    r = subprocess.run(
        [sys.executable, str(MUTATE), "src/mrules/urls.py", "--only", "1", *tests],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 2, r.stdout + r.stderr
    assert "killed" not in r.stdout and "SURVIVED" not in r.stdout, r.stdout
    assert "ran no test" in r.stderr, r.stderr
