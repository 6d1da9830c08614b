"""The README shows real things: its example lints clean and its transcript is real output."""

from __future__ import annotations

import re

from click.testing import CliRunner

from conftest import ROOT
from mrules.cli import main

README = (ROOT / "README.md").read_text("utf-8")

# The file behind the README's lint transcript.
MISSPELT = """automation rule "Enterprise" priority 5 {
  when all {
    compnay_size is "200+"
  }
  then {
    add to list "Enterprise"
  }
}
field company_size: picklist ["1-10", "11-50", "51-200", "200+"]
list "Enterprise"
"""


def test_readme_rule_example_lints_clean(tmp_path) -> None:
    block = re.search(r"```mrules\n(.*?)```", README, re.S)
    assert block is not None
    (tmp_path / "readme.mr").write_text(block.group(1))
    result = CliRunner().invoke(main, ["lint", str(tmp_path / "readme.mr")])
    assert result.exit_code == 0, result.output


def test_readme_lint_transcript_is_real_output(tmp_path, monkeypatch) -> None:
    transcript = re.search(r"```text\n\$ mrules lint rules/\n(.*?)```", README, re.S)
    assert transcript is not None
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "automation.mr").write_text(MISSPELT)
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["lint", "rules/"])
    assert result.exit_code == 1
    assert result.output.strip() == transcript.group(1).strip()


def test_readme_commands_match_ci() -> None:
    lines = (ROOT / ".ci" / "run").read_text("utf-8").strip().splitlines()
    tests = [line for line in lines if "pytest" in line]
    # CI runs exactly the README's test commands: the tests on the editable install,
    # then again on the compiled wheel...
    assert len(tests) == 2, tests
    assert all(t in README for t in tests), tests
    assert "pip install -q -e '.[test]'" in tests[0]
    assert "MRULES_EXPECT_COMPILED=1" in tests[1] and " -e " not in tests[1]
    assert ".venv/bin/ruff check src tests bench" in lines  # ...lints (src, and the tests)
    assert ".venv/bin/mypy src" in lines
