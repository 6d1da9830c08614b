"""`mrules test` through the CLI: data cases under tests/testing/, formats, selection, snapshots.

tests/testing/pass/ must pass; each file of tests/testing/fail/ must fail
(exit 1) and each of tests/testing/broken/ must be refused (exit 2), with
every `# expect: TEXT` line of the file found in the text output (run from
tests/testing/, so paths read as in the files).
"""

from __future__ import annotations

import shutil
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner

from mrules.cli import main

HERE = Path(__file__).parent / "testing"
EXAMPLE = Path(__file__).parent.parent / "examples" / "getcloudy"


def _mrules(*args: str, cwd: Path | None = None, monkeypatch: Any = None) -> Any:
    if cwd is not None:
        monkeypatch.chdir(cwd)
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def _expected_lines(path: Path) -> list[str]:
    return [
        line[len("# expect: ") :]
        for line in path.read_text(encoding="utf-8").splitlines()
        if line.startswith("# expect: ")
    ]


def test_pass_cases(monkeypatch: pytest.MonkeyPatch) -> None:
    res = _mrules("test", "pass", "-v", cwd=HERE, monkeypatch=monkeypatch)
    assert res.exit_code == 0, res.output
    assert "6 passed, 1 skipped" in res.output
    assert "FAIL" not in res.output and "ERROR" not in res.output


@pytest.mark.parametrize(
    "path",
    sorted(p.relative_to(HERE).as_posix() for p in (HERE / "fail").glob("*.test.yaml")),
)
def test_fail_cases(path: str, monkeypatch: pytest.MonkeyPatch) -> None:
    res = _mrules("test", path, cwd=HERE, monkeypatch=monkeypatch)
    assert res.exit_code == 1, res.output
    lines = _expected_lines(HERE / path)
    assert lines, f"{path} has no '# expect:' line"
    for want in lines:
        assert want in res.output, f"{want!r} not in:\n{res.output}"


@pytest.mark.parametrize(
    "path",
    sorted(p.relative_to(HERE).as_posix() for p in (HERE / "broken").glob("*.test.yaml")),
)
def test_broken_files(path: str, monkeypatch: pytest.MonkeyPatch) -> None:
    res = _mrules("test", path, cwd=HERE, monkeypatch=monkeypatch)
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.output
    for want in _expected_lines(HERE / path):
        assert want in res.output, f"{want!r} not in:\n{res.output}"


def test_bundled_example_passes() -> None:
    res = _mrules("test", str(EXAMPLE / "tests"), "-v")
    assert res.exit_code == 0, res.output
    assert " 0 passed" not in res.output and "failed" not in res.output
    assert res.output.count("PASS") >= 5


def test_folder_finds_only_test_files(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    shutil.copy(HERE / "rules.mr", tmp_path / "rules.mr")
    text = "rules: ../rules.mr\ntests:\n  - name: empty\n    expect: {}\n"
    (tmp_path / "sub" / "a.test.yaml").write_text(text)
    (tmp_path / "sub" / "other.yaml").write_text("not: a test file\n")
    res = _mrules("test", str(tmp_path), "--format", "json")
    doc = orjson.loads(res.output)
    assert [t["name"] for t in doc["tests"]] == ["empty"]
    assert doc["summary"]["passed"] == 1 and res.exit_code == 0


def test_no_such_path() -> None:
    res = _mrules("test", "no/such/folder")
    assert res.exit_code == 2
    assert "no/such/folder: no such file or folder" in res.output


def test_junit_counts_and_parses(monkeypatch: pytest.MonkeyPatch) -> None:
    res = _mrules(
        "test",
        "pass",
        "fail",
        "broken/key.test.yaml",
        "--format",
        "junit",
        cwd=HERE,
        monkeypatch=monkeypatch,
    )
    assert res.exit_code == 2  # a broken file wins over failures
    root = ET.fromstring(res.stdout_bytes)
    suites = root.findall("testsuite")
    cases = root.findall("testsuite/testcase")
    failures = root.findall("testsuite/testcase/failure")
    errors = root.findall("testsuite/testcase/error")
    skipped = root.findall("testsuite/testcase/skipped")
    assert len(suites) == 6  # pass/basics, 4 fail files, broken/key
    assert (len(cases), len(failures), len(errors), len(skipped)) == (14, 4, 1, 1)
    assert root.get("tests") == "14" and root.get("failures") == "4"
    assert root.get("errors") == "1" and root.get("skipped") == "1"
    for suite in suites:
        n = len(suite.findall("testcase"))
        assert suite.get("tests") == str(n)
        assert suite.get("failures") == str(len(suite.findall("testcase/failure")))
    score = root.find("testsuite[@name='fail/score.test.yaml']/testcase/failure")
    assert score is not None
    assert "ann@x.example: score: expected 150, got 105" in score.get("message", "")
    assert "the starting state (fail/score.test.yaml:10)" in (score.text or "")


def test_junit_output_file_and_json(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "junit.xml"
    res = _mrules(
        "test",
        "fail/score.test.yaml",
        "--format",
        "junit",
        "-o",
        str(out),
        cwd=HERE,
        monkeypatch=monkeypatch,
    )
    assert res.exit_code == 1
    assert ET.parse(out).getroot().get("failures") == "1"
    res = _mrules("test", "fail/score.test.yaml", "--format", "json")
    doc = orjson.loads(res.stdout)
    (failure,) = doc["tests"][0]["failures"]
    assert (failure["what"], failure["expected"], failure["actual"]) == (
        "ann@x.example: score",
        150,
        105,
    )
    assert failure["line"] == 14 and doc["summary"]["exit"] == 1


def test_k_selects(monkeypatch: pytest.MonkeyPatch) -> None:
    res = _mrules(
        "test",
        "pass",
        "fail",
        "-k",
        "ticks",
        "-k",
        "WRONG SCORE",
        "-v",
        cwd=HERE,
        monkeypatch=monkeypatch,
    )
    assert res.exit_code == 1
    assert "PASS  clock ticks move time-based rules" in res.output
    assert "FAIL  wrong score" in res.output
    assert "1 passed, 1 failed" in res.output
    res = _mrules("test", "pass", "-k", "nothing matches this")
    assert "no tests found" in res.output or "0 passed" in res.output


def test_update_writes_snapshots_only_on_request(tmp_path: Path) -> None:
    shutil.copy(HERE / "rules.mr", tmp_path / "rules.mr")
    test = tmp_path / "snap.test.yaml"
    test.write_text(
        "rules: rules.mr\ntests:\n  - name: snap\n    events:\n"
        "      - {ts: 2026-11-02T09:00:00Z, type: form_submit, prospect: a@x.example,"
        " asset: Contact}\n    expect: {snapshot: true}\n"
    )
    snap = tmp_path / "__snapshots__" / "snap.json"
    res = _mrules("test", str(test))
    assert res.exit_code == 1 and "no snapshot yet" in res.output and not snap.exists()
    res = _mrules("test", str(test), "--update")
    assert res.exit_code == 0 and "snapshot updated" in res.output
    saved = orjson.loads(snap.read_bytes())
    assert saved["snap"][0]["email"] == "a@x.example" and saved["snap"][0]["score"] == 20
    assert _mrules("test", str(test)).exit_code == 0
    rules = (tmp_path / "rules.mr").read_text().replace("score +20", "score +30")
    (tmp_path / "rules.mr").write_text(rules)
    res = _mrules("test", str(test))
    assert res.exit_code == 1
    assert '-{"assigned"' in res.output and '"score":30' in res.output
    assert orjson.loads(snap.read_bytes()) == saved  # never written without --update


def test_new_user_story(tmp_path: Path) -> None:
    """A new user tests the example, sees the test fail, fixes the rule, sees it pass."""
    shutil.copytree(EXAMPLE / "rules", tmp_path / "rules")
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "mql.test.yaml").write_text(
        "# Marketing wants prospects at 80 points who asked for a consult handed to sales.\n"
        "tests:\n"
        "  - name: 80 points and a consult request make an MQL\n"
        "    given:\n"
        "      prospects:\n"
        "        zoe@example.com: {score: 30}\n"
        "    events:\n"
        "      - {ts: 2026-11-02T09:00:00Z, type: form_submit, prospect: zoe@example.com,\n"
        "         asset: Demande Get Cloudy}\n"
        "    expect:\n"
        "      prospects:\n"
        "        zoe@example.com: {score: 80, lists: [MQL]}\n",
        encoding="utf-8",
    )
    res = _mrules("test", str(tmp_path))
    assert res.exit_code == 1, res.output
    assert "zoe@example.com: lists" in res.output
    assert "MQL: no rule added it" in res.output
    rule = tmp_path / "rules" / "30-automation.mr"
    rule.write_text(rule.read_text().replace("score >= 100", "score >= 80"))
    res = _mrules("test", str(tmp_path))
    assert res.exit_code == 0, res.output
    assert "1 passed" in res.output


def test_rules_with_errors_fail_each_case(tmp_path: Path) -> None:
    (tmp_path / "rules.mr").write_text(
        'list "L"\nautomation rule "R" priority 1 {\n  when all { in list "M" }\n}\n'
    )
    (tmp_path / "t.test.yaml").write_text("rules: rules.mr\ntests:\n  - name: a\n  - name: b\n")
    res = _mrules("test", str(tmp_path))
    assert res.exit_code == 1, res.output
    assert res.output.count("ERROR") == 2
    assert "the rules have errors" in res.output and "unknown list 'M'" in res.output


def test_readme_transcript_is_real_output(monkeypatch: pytest.MonkeyPatch) -> None:
    import re

    readme = (EXAMPLE.parent.parent / "README.md").read_text(encoding="utf-8")
    block = re.search(r"```text\n\$ mrules test (\S+)\n(.*?)```", readme, re.S)
    assert block is not None
    monkeypatch.chdir(EXAMPLE.parent.parent)
    res = _mrules("test", block.group(1))
    assert res.exit_code == 0
    seconds = re.compile(r"in \d+\.\d\d s")
    assert seconds.sub("in N s", res.output) == seconds.sub("in N s", block.group(2))
