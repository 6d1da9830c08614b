"""`mrules test` as a new user meets it: errors in rule text written in a test file, and
paths that exist but are not test files or folders (/dev/null, a named pipe)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from mrules.cli import main
from mrules.exitcodes import ExitCode


def _mrules(*args: str, cwd: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.chdir(cwd)  # paths in the output read as given
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


RULE_TEXT_FILE = """\
# a test file with its rules inside
rules: |
  list "MQL"
  form "F"
  on submit of form "F" { add to lst "MQL" }
tests:
  - name: submit adds to MQL
    events:
      - {ts: 2026-11-02T09:00:00Z, type: form_submit, prospect: a@x.com, asset: F}
    expect:
      prospects:
        a@x.com: {lists: [MQL]}
"""


def test_an_error_in_rule_text_points_at_the_test_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "t.test.yaml").write_text(RULE_TEXT_FILE, encoding="utf-8")
    res = _mrules("test", "t.test.yaml", cwd=tmp_path, monkeypatch=monkeypatch)
    assert res.exit_code == ExitCode.DIAGNOSTICS, res.output
    assert "<string>" not in res.output
    # line 5 of the test file, column 34: where `lst` is in the file (2 spaces of YAML indent)
    assert "t.test.yaml:5:34: error[MR001]: unexpected 'lst'" in res.output
    lines = res.output.splitlines()
    at = next(i for i, line in enumerate(lines) if line.strip().startswith("5 |"))
    assert lines[at].strip() == '5 |   on submit of form "F" { add to lst "MQL" }'
    caret = lines[at + 1]
    assert caret.endswith("^^^ did you mean 'list'?")
    assert caret.index("^") == lines[at].index("lst")  # the caret is under `lst`


@pytest.mark.parametrize(
    ("rules", "where", "marked"),
    [
        # a test's own rules, as a literal block indented more than the key
        (
            'rules: |\n      form "F"\n      on submit of form "F" { add to list "MQ" }',
            "5:43",
            '"MQ"',
        ),
        # folded: a line break of the file is a space of the rules
        (
            'rules: >\n      form "F" on submit of form "F"\n      { add to list "MQ" }',
            "5:21",
            '"MQ"',
        ),
        # double quoted, with escapes before the mistake
        (r'rules: "form \"F\"\non submit of form \"F\" { add to list \"MQ\" }"', "3:63", r"\"MQ\""),
        # single quoted: '' is one quote
        ("""rules: 'form "F''s" on submit of form "F''s" { add to list "MQ" }'""", "3:64", '"MQ"'),
    ],
    ids=["literal", "folded", "double-quoted", "single-quoted"],
)
def test_rule_text_errors_in_every_yaml_style(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, rules: str, where: str, marked: str
) -> None:
    text = f"tests:\n  - name: a\n    {rules}\n"
    (tmp_path / "s.test.yaml").write_text(text, encoding="utf-8")
    res = _mrules("test", "s.test.yaml", cwd=tmp_path, monkeypatch=monkeypatch)
    assert res.exit_code == ExitCode.DIAGNOSTICS, res.output
    assert f"s.test.yaml:{where}: error[MR103]: unknown list 'MQ'" in res.output, res.output
    assert "<string>" not in res.output
    line, col = map(int, where.split(":"))
    file_line = text.splitlines()[line - 1]
    assert file_line[col - 1 :].startswith(marked)
    shown = next(x for x in res.output.splitlines() if x.strip().startswith(f"{line} |"))
    caret = res.output.splitlines()[res.output.splitlines().index(shown) + 1]
    assert caret.index("^") == shown.index(file_line) + col - 1
    assert caret.count("^") == len(marked)
    assert "declare it: list" in caret  # the hint


def test_dev_null_is_not_a_test_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if not Path(os.devnull).exists() or Path(os.devnull).is_file():
        pytest.skip("no character device to try")
    res = _mrules("test", os.devnull, cwd=tmp_path, monkeypatch=monkeypatch)
    assert res.exit_code == ExitCode.USAGE, res.output
    assert f"{os.devnull}: not a test file or folder (it is a character device)" in res.output
    assert "no such file" not in res.output


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes here")
def test_a_named_pipe_is_not_a_test_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    os.mkfifo(tmp_path / "pipe")
    res = _mrules("test", "pipe", cwd=tmp_path, monkeypatch=monkeypatch)
    assert res.exit_code == ExitCode.USAGE, res.output
    assert "pipe: not a test file or folder (it is a named pipe)" in res.output
    assert "no such file" not in res.output and "Traceback" not in res.output


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes here")
def test_a_named_pipe_in_a_folder_is_reported_not_read(tmp_path: Path) -> None:
    """A pipe named like a test file would block the run forever if it were opened."""
    (tmp_path / "ok.test.yaml").write_text(RULE_TEXT_FILE.replace("lst", "list"))
    os.mkfifo(tmp_path / "stuck.test.yaml")
    res = subprocess.run(
        [sys.executable, "-m", "mrules", "test", "."],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == ExitCode.USAGE, res.stdout + res.stderr
    assert "stuck.test.yaml: not a test file (it is a named pipe)" in res.stdout
    assert "1 passed" in res.stdout and "Traceback" not in res.stdout + res.stderr


def test_a_missing_path_still_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    res = _mrules("test", "no/such.test.yaml", cwd=tmp_path, monkeypatch=monkeypatch)
    assert res.exit_code == ExitCode.USAGE
    assert "no/such.test.yaml: no such file or folder" in res.output


def test_a_lone_surrogate_in_a_test_file_is_a_broken_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """YAML's `\\ud800` escape makes half a character, which nothing can encode."""
    (tmp_path / "s.test.yaml").write_text(
        'tests:\n  - name: a\n    rules: "list \\"A\\ud800\\"\\n"\n', encoding="utf-8"
    )
    for fmt in ("text", "json", "junit"):
        res = _mrules("test", "s.test.yaml", "--format", fmt, cwd=tmp_path, monkeypatch=monkeypatch)
        assert res.exit_code == ExitCode.USAGE, res.output
        assert "s.test.yaml:3: not text: " in res.output and "ud800 is half a" in res.output
        assert "Traceback" not in res.output
