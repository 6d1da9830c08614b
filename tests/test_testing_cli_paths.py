"""`mrules test` as a new user meets it: errors and failures of rule text written in a test
file, paths that exist but are not test files or folders (/dev/null, a named pipe), paths
that do not exist, and names that are not UTF-8."""

from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner
from tests.conftest import CONTACT_RULES, contact_test

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


def test_a_loop_of_links_named_like_a_test_file_in_a_folder_is_a_broken_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`Path.resolve()` raises RuntimeError on a loop of links (Python 3.11): the folder
    walk and the file's shown name now take the path as it is, and the file says why."""
    (tmp_path / "ok.test.yaml").write_text(RULE_TEXT_FILE.replace("lst", "list"))
    (tmp_path / "self.test.yaml").symlink_to("self.test.yaml")
    (tmp_path / "a.test.yaml").symlink_to("b.test.yaml")
    (tmp_path / "b.test.yaml").symlink_to("a.test.yaml")
    res = _mrules("test", ".", cwd=tmp_path, monkeypatch=monkeypatch)
    assert res.exit_code == ExitCode.USAGE, res.output  # broken test files
    for name in ("self", "a", "b"):
        assert f"{name}.test.yaml: cannot read: Too many levels of symbolic links" in res.output
    assert "1 passed, 3 errors" in res.output


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
        assert "s.test.yaml:3:5: not text: " in res.output and "ud800 is half a" in res.output
        assert "Traceback" not in res.output


def test_a_number_beyond_64_bits_in_a_test_file_is_a_broken_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An expected score of 2**70 failed, then the failure's report could not be written:
    orjson holds 64-bit integers only (an internal error)."""
    (tmp_path / "n.test.yaml").write_text(
        'rules: |\n  form "F"\n  on submit of form "F" { score +5 }\ntests:\n'
        "  - name: a\n    events:\n"
        "      - {ts: 2026-11-02T09:00:00Z, type: form_submit, prospect: a@x.com, asset: F}\n"
        "    expect:\n      prospects:\n        a@x.com: {score: 1180591620717411303424}\n",
        encoding="utf-8",
    )
    for fmt in ("text", "json", "junit"):
        res = _mrules("test", "n.test.yaml", "--format", fmt, cwd=tmp_path, monkeypatch=monkeypatch)
        assert res.exit_code == ExitCode.USAGE, res.output
        assert (
            "n.test.yaml:10:9: the number 1180591620717411303424 is too large:"
            " numbers fit in 64 bits"
        ) in res.output
        assert "Traceback" not in res.output and "internal error" not in res.output


@pytest.mark.parametrize("score", ["9007199254740992", "18446744073709551615"])
def test_a_starting_score_out_of_range_is_a_broken_file_with_a_caret_at_the_value(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, score: str
) -> None:
    """A starting score past what `set score to` takes (2**53 - 1) failed each test at run
    time with `file:line` and no caret; it is a broken test file, pointed at the value."""
    (tmp_path / "s.test.yaml").write_text(
        'rules: |\n  form "F"\ntests:\n  - name: a\n    given:\n      prospects:\n'
        f"        a@x.com:\n          score: {score}\n    events: []\n",
        encoding="utf-8",
    )
    res = _mrules("test", "s.test.yaml", cwd=tmp_path, monkeypatch=monkeypatch)
    assert res.exit_code == ExitCode.USAGE, res.output
    assert (
        f"s.test.yaml:8:18: a@x.com: score '{score}' is out of range:"
        " a score is a whole number from 0 to 9007199254740991\n"
    ) in res.output
    assert f"8 |           score: {score}\n" in res.output
    assert "  |                  " + "^" * len(score) + "\n" in res.output


@pytest.mark.parametrize("depth", [70, 5_000, 200_000])
def test_a_test_file_nested_too_deeply_is_a_broken_file_at_its_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, depth: int
) -> None:
    """Lists nested past what the reader takes were refused as `not valid YAML: nested too
    deeply`, with no line (the file is valid YAML); now `file:line:col`, where the level
    past the limit (64) opens, a caret and a hint, and the other files' tests still run."""
    from mrules.testing import MAX_NESTING

    (tmp_path / "ok.test.yaml").write_text(RULE_TEXT_FILE.replace("lst", "list"))
    (tmp_path / "deep.test.yaml").write_text(
        'rules: |\n  form "F"\ntests:\n  - name: a\n    events: []\n'
        "    expect:\n      prospects:\n        a@x.com:\n"
        f"          fields: {{x: {'[' * depth}{']' * depth}}}\n",
        encoding="utf-8",
    )
    res = _mrules("test", ".", cwd=tmp_path, monkeypatch=monkeypatch)
    assert res.exit_code == ExitCode.USAGE, res.output
    # levels: the file, tests, the test, expect, prospects, a@x.com, fields, then the lists
    col = len("          fields: {x: ") + (MAX_NESTING + 1 - 8) + 1
    assert (
        f"deep.test.yaml:9:{col}: nested too deeply: a list or mapping"
        f" {MAX_NESTING + 1} levels deep; a test file nests at most {MAX_NESTING}"
    ) in res.output
    assert "hint: a test needs a few levels" in res.output
    assert res.output.splitlines()[-1].startswith("1 passed, 1 error in "), res.output


def test_the_editor_reads_the_names_of_a_test_file_nested_too_deeply_without_failing(
    tmp_path: Path,
) -> None:
    from mrules.lsp.testfiles import find_names

    text = "rules: ../rules\ntests:\n  - name: a\n    x: " + "[" * 200_000 + "]" * 200_000
    assert find_names(tmp_path / "rules", text, tmp_path / "t" / "a.test.yaml") == []


def test_a_prospect_expected_with_nothing_after_it_must_exist(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`a@x.com:` alone (YAML null) was an AttributeError once the test ran; it is the
    expectation `{}`: the prospect exists."""
    (tmp_path / "e.test.yaml").write_text(
        'rules: |\n  form "F"\n  on submit of form "F" { score +5 }\ntests:\n'
        "  - name: exists\n    events:\n"
        "      - {ts: 2026-11-02T09:00:00Z, type: form_submit, prospect: a@x.com, asset: F}\n"
        "    expect:\n      prospects:\n        a@x.com:\n"
        "  - name: missing\n    events: []\n"
        "    expect:\n      prospects:\n        b@x.com:\n",
        encoding="utf-8",
    )
    res = _mrules("test", "e.test.yaml", cwd=tmp_path, monkeypatch=monkeypatch)
    assert res.exit_code == 1, res.output
    assert "1 passed, 1 failed" in res.output and "no such prospect" in res.output
    assert "Traceback" not in res.output and "internal error" not in res.output


# -- names that are not UTF-8 ------------------------------------------------------------------

BAD_NAME_FILE = """\
rules: |
  list "MQL"
  form "F"
  on submit of form "F" { add to list "MQL" }
tests:
  - name: a failing test
    given:
      prospects:
        a@x.com: {score: 3}
    events:
      - {ts: 2026-11-02T09:00:00Z, type: form_submit, prospect: b@x.com, asset: F}
    expect:
      prospects:
        a@x.com: {score: 5}
  - name: a snapshot
    events:
      - {ts: 2026-11-02T09:00:00Z, type: form_submit, prospect: b@x.com, asset: F}
    expect: {snapshot: true}
"""


def _bad_folder(tmp_path: Path) -> Path:
    """`bad\\xff/t.test.yaml`: a folder whose name is not UTF-8 (skipped where none can be)."""
    folder = os.fsencode(tmp_path) + b"/bad\xff"
    try:
        os.mkdir(folder)
    except (OSError, ValueError):
        pytest.skip("this file system takes only UTF-8 names")
    path = Path(os.fsdecode(folder))
    (path / "t.test.yaml").write_text(BAD_NAME_FILE, encoding="utf-8")
    return path


@pytest.mark.parametrize("fmt", ["text", "json", "junit"])
def test_a_folder_name_that_is_not_utf8_is_shown_escaped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fmt: str
) -> None:
    """Such a name is shown as every command shows it (`bad\\xff`), never an internal error."""
    _bad_folder(tmp_path)
    res = _mrules("test", ".", "--format", fmt, cwd=tmp_path, monkeypatch=monkeypatch)
    assert res.exit_code == ExitCode.DIAGNOSTICS, res.output  # the tests fail: exit 1
    out = res.stdout_bytes.decode("utf-8")  # strict: the report is UTF-8 whatever the names
    assert "\ufffd" not in out and "\\udcff" not in out
    shown = "bad\\xff/t.test.yaml"
    if fmt == "json":
        tests = orjson.loads(res.stdout_bytes)["tests"]
        assert {t["file"] for t in tests} == {shown}
        assert f"the starting state ({shown}:9)" in tests[0]["failures"][0]["reasons"][0]
    elif fmt == "junit":
        root = ET.fromstring(res.stdout_bytes)
        assert [s.get("name") for s in root.iter("testsuite")] == [shown]
        assert {c.get("file") for c in root.iter("testcase")} == {shown}
    else:
        assert f"{shown}:14: a@x.com: score" in out
        assert f"the starting state ({shown}:9)" in out
        assert "the state in bad\\xff/__snapshots__/t.json" in out


def test_a_folder_name_that_is_not_utf8_keeps_its_snapshots_and_k(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = _bad_folder(tmp_path)
    res = _mrules("test", "--update", "-k", "snapshot", cwd=tmp_path, monkeypatch=monkeypatch)
    assert res.exit_code == 0 and "(snapshot updated)" in res.output, res.output
    assert (folder / "__snapshots__" / "t.json").is_file()  # beside the test file
    for keyword in ("bad\\xff/t.test.yaml::a snapshot", os.fsdecode(b"bad\xff/t.test.yaml::a s")):
        res = _mrules("test", "-v", "-k", keyword, cwd=tmp_path, monkeypatch=monkeypatch)
        assert res.exit_code == 0, res.output
        assert "1 passed" in res.output
        assert "PASS  a snapshot [bad\\xff/t.test.yaml:15]" in res.output


def test_a_missing_path_that_is_not_utf8_is_shown_escaped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = os.fsdecode(b"nope\xff.test.yaml")
    for fmt in ("text", "json", "junit"):
        res = _mrules("test", missing, "--format", fmt, cwd=tmp_path, monkeypatch=monkeypatch)
        assert res.exit_code == ExitCode.USAGE, res.output
        out = res.stdout_bytes.decode()  # strict: the report is UTF-8
        if fmt == "json":
            out = orjson.loads(out)["tests"][0]["message"]
        assert "nope\\xff.test.yaml: no such file or folder" in out


# -- failure reasons of rule text written in the test file --------------------------------------

INLINE_FAIL = """\
rules: |
  list "MQL"
  form "F"
  user "u@x.com"
  tag "hot"
  on submit of form "F" { add to list "MQL" }
  on submit of form "F" { score +10 }
  automation rule "hot" priority 1 {
    when all { score >= 5 }
    then { add tag "hot"; notify user "u@x.com" }
  }
tests:
  - name: reasons point at the test file
    events:
      - {ts: 2026-11-02T09:00:00Z, type: form_submit, prospect: a@x.com, asset: F}
    expect:
      prospects:
        a@x.com: {lists: [], score: 5}
      outbox: []
  - name: a test's own rules, double quoted
    rules: "list \\"MQL\\"\\nform \\"F\\"\\non submit of form \\"F\\" { add to list \\"MQL\\" }"
    events:
      - {ts: 2026-11-02T09:00:00Z, type: form_submit, prospect: a@x.com, asset: F}
    expect:
      prospects:
        a@x.com: {lists: []}
"""


def test_failure_reasons_of_rule_text_point_at_the_test_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "t.test.yaml").write_text(INLINE_FAIL, encoding="utf-8")
    res = _mrules("test", "t.test.yaml", cwd=tmp_path, monkeypatch=monkeypatch)
    assert res.exit_code == ExitCode.DIAGNOSTICS, res.output
    assert "<string>" not in res.output
    # the lines of the rules in the test file: 6 (add to list), 7 (score), 8 (automation rule)
    assert "MQL: added by completion action 'submit of form F' (t.test.yaml:6), event 1" in (
        res.output
    )
    assert "+10  submit of form F: completion action 'submit of form F' (t.test.yaml:7)" in (
        res.output
    )
    assert '{"prospect":"a@x.com","kind":"notify","to":"u@x.com"}: hot (t.test.yaml:8)' in (
        res.output
    )
    # a test's own rules, all on line 21 of the file
    assert "completion action 'submit of form F' (t.test.yaml:21), event 1 (t.test.yaml:23)" in (
        res.output
    )
    res = _mrules("test", "t.test.yaml", "--format", "json", cwd=tmp_path, monkeypatch=monkeypatch)
    assert b"<string>" not in res.stdout_bytes


# -- paths of the command line --------------------------------------------------------------------


def test_paths_that_cannot_be_used_are_all_named_and_nothing_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As pytest does with a missing path: a usage error, and no test runs (docs/testing.md)."""
    (tmp_path / "ok.test.yaml").write_text(RULE_TEXT_FILE.replace("lst", "list"))
    res = _mrules(
        "test", "ok.test.yaml", "nope", "no/such.test.yaml", "-v",
        cwd=tmp_path, monkeypatch=monkeypatch,
    )  # fmt: skip
    assert res.exit_code == ExitCode.USAGE, res.output
    assert "nope: no such file or folder" in res.output
    assert "no/such.test.yaml: no such file or folder" in res.output
    assert "submit adds to MQL" not in res.output  # not run
    assert res.output.splitlines()[-1] == "no tests run: 2 paths above cannot be used"
    res = _mrules("test", "ok.test.yaml", "nope", cwd=tmp_path, monkeypatch=monkeypatch)
    assert res.exit_code == ExitCode.USAGE, res.output
    assert res.output.splitlines()[-1] == "no tests run: 1 path above cannot be used"
    res = _mrules(
        "test", "ok.test.yaml", "nope", "--format", "json", cwd=tmp_path, monkeypatch=monkeypatch
    )
    doc = orjson.loads(res.stdout_bytes)
    assert [t["file"] for t in doc["tests"]] == ["nope"] and doc["summary"]["exit"] == 2


@pytest.mark.parametrize(
    ("cwd", "args"),
    [
        ("p", ["tests"]),
        ("p/tests", []),
        ("p/tests", ["."]),
        ("p/tests", ["z.test.yaml"]),
        ("p/tests/sub", [".."]),
        ("p/tests/sub", ["../z.test.yaml"]),
        ("", ["p/tests/sub/../z.test.yaml"]),
        ("p/tests/sub", ["ABSOLUTE"]),  # the tests folder by its absolute path
    ],
)
def test_the_rules_folder_beside_the_tests_folder_is_found_from_any_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cwd: str, args: list[str]
) -> None:
    """Without `rules:`, `project/rules/` tests `project/tests/x.test.yaml`, wherever
    `mrules test` runs: a test file named without its folder (`z.test.yaml`, `.`, `..`)
    found no rules outside the project root."""
    (tmp_path / "p" / "rules").mkdir(parents=True)
    (tmp_path / "p" / "tests" / "sub").mkdir(parents=True)
    (tmp_path / "p" / "rules" / "a.mr").write_text(CONTACT_RULES, encoding="utf-8")
    (tmp_path / "p" / "tests" / "z.test.yaml").write_text(
        contact_test(None, ("t", "a@x.example")), encoding="utf-8"
    )
    args = [str(tmp_path / "p" / "tests") if a == "ABSOLUTE" else a for a in args]
    res = _mrules("test", *args, cwd=tmp_path / cwd, monkeypatch=monkeypatch)
    assert res.exit_code == ExitCode.OK, res.output
    assert "1 passed" in res.output


def test_a_newline_in_a_file_or_test_name_is_shown_escaped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A newline is a control character: the text report shows it as `\\x0a`, as `lint`
    does, rather than split a test's line, its failure's reasons or a YAML error in two."""
    (tmp_path / "r.mr").write_text(CONTACT_RULES, encoding="utf-8")
    text = contact_test("r.mr", ('"one\\ntwo"', "a@x.example")).replace("score: 20", "score: 21")
    try:
        (tmp_path / "a\nb.test.yaml").write_text(text, encoding="utf-8")
        (tmp_path / "br\nok.test.yaml").write_text("rules: r.mr\ntests: [\n", encoding="utf-8")
    except OSError:
        pytest.skip("this file system refuses such a name")
    res = _mrules("test", "a\nb.test.yaml", cwd=tmp_path, monkeypatch=monkeypatch)
    assert res.exit_code == ExitCode.DIAGNOSTICS, res.output
    lines = res.output.splitlines()
    assert lines[:2] == ["a\\x0ab.test.yaml", "  FAIL  one\\x0atwo [a\\x0ab.test.yaml:3]"]
    assert lines[2] == "        a\\x0ab.test.yaml:8: a@x.example: score"
    assert "event 1 (a\\x0ab.test.yaml:5)" in lines[-2]
    res = _mrules(
        "test", "a\nb.test.yaml", "--format", "json", cwd=tmp_path, monkeypatch=monkeypatch
    )
    test = orjson.loads(res.stdout_bytes)["tests"][0]  # JSON keeps the text as it is
    assert (test["file"], test["name"]) == ("a\nb.test.yaml", "one\ntwo")
    res = _mrules("test", "br\nok.test.yaml", cwd=tmp_path, monkeypatch=monkeypatch)
    assert res.exit_code == ExitCode.USAGE, res.output
    assert "        br\\x0aok.test.yaml:3:1: not valid YAML:" in res.output
    assert "        note: br\\x0aok.test.yaml:3:1: while parsing" in res.output
    assert "\nok.test.yaml" not in res.output
