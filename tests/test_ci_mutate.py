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


def _mutate_urls_1(*tests: str) -> subprocess.CompletedProcess[str]:
    """mutate.py on urls.py's first mutant, with the tests given."""
    return subprocess.run(
        [sys.executable, str(MUTATE), "src/mrules/urls.py", "--only", "1", *tests],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )


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
    r = _mutate_urls_1(*tests)
    assert r.returncode == 2, r.stdout + r.stderr
    assert "killed" not in r.stdout and "SURVIVED" not in r.stdout, r.stdout
    assert "ran no test" in r.stderr, r.stderr


def test_tests_failing_before_any_mutant_stop_the_run(tmp_path: Path) -> None:
    """A test that fails on the unmutated copy made every mutant look killed."""
    failing = tmp_path / "test_fails.py"
    failing.write_text("def test_fails() -> None:\n    assert False\n", "utf-8")
    r = _mutate_urls_1(str(failing))
    assert r.returncode == 2, r.stdout + r.stderr
    assert "killed" not in r.stdout and "SURVIVED" not in r.stdout, r.stdout
    assert "fail before any mutant" in r.stderr, r.stderr


def test_the_copy_keeps_the_stores_the_tests_read() -> None:
    """The copy left out every `*.db`, the fixture of an old schema's store too: the
    migration tests failed there, and every mutant they were given looked killed."""
    r = _mutate_urls_1("tests/test_store_migration.py", "-k=the_fixture_is_a_schema_1_store")
    # urls.py's mutant is nothing that test reads: it survives, as it should
    assert r.returncode == 1, r.stdout + r.stderr
    assert "SURVIVED" in r.stdout, r.stdout
