"""`mrules test` shows a progress bar on a terminal (the bar `mrules sync run` draws):
never in JSON or JUnit, never with -q, never when standard error is not a terminal."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from tests.terminal import on_a_terminal

from mrules.cli import main

HERE = Path(__file__).parent / "testing"
N = 12


def _tests(folder: Path) -> Path:
    shutil.copy(HERE / "rules.mr", folder / "rules.mr")
    cases = "".join(
        f"""  - name: submit {i}
    events:
      - {{ts: 2026-11-02T09:00:00Z, type: form_submit, prospect: p{i}@x.example, asset: Contact}}
    expect:
      prospects:
        p{i}@x.example: {{score: 20}}
"""
        for i in range(N)
    )
    path = folder / "many.test.yaml"
    path.write_text(f"rules: rules.mr\ntests:\n{cases}", encoding="utf-8")
    return path


def _mrules_on_a_terminal(*args: str) -> tuple[int, str, str]:
    return on_a_terminal([sys.executable, "-m", "mrules", *args])


def test_a_terminal_shows_the_tests_done_of_the_total(tmp_path: Path) -> None:
    path = _tests(tmp_path)
    code, out, shown = _mrules_on_a_terminal("test", str(path))
    assert code == 0
    assert f"/{N}" in shown  # done of the total, as `sync run` counts its cycles
    assert f"{N} passed" in out  # the report itself is unchanged, on standard output
    assert f"/{N}" not in out


@pytest.mark.parametrize(
    "options", [["--format", "json"], ["--format", "junit"], ["-q"], ["--quiet"]]
)
def test_no_bar_in_ci_formats_nor_with_quiet(tmp_path: Path, options: list[str]) -> None:
    path = _tests(tmp_path)
    code, _out, shown = _mrules_on_a_terminal("test", str(path), *options)
    assert code == 0
    assert f"/{N}" not in shown


def test_no_bar_when_standard_error_is_not_a_terminal(tmp_path: Path) -> None:
    path = _tests(tmp_path)
    result = CliRunner().invoke(main, ["test", str(path)], catch_exceptions=False)
    assert result.exit_code == 0
    assert f"/{N}" not in result.stderr
    assert result.stderr == ""
