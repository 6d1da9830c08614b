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
    assert len(suites) == 10  # pass/basics, 8 fail files, broken/key
    assert (len(cases), len(failures), len(errors), len(skipped)) == (18, 8, 1, 1)
    assert root.get("tests") == "18" and root.get("failures") == "8"
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
    # the text report, failures in full, on stderr for the CI log (docs/testing.md)
    assert res.stdout == "" and "expected: 150" in res.stderr, res.stderr
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
    assert res.exit_code == 2, res.output  # a -k that selects nothing is a typo, not a pass
    assert "7 tests in 1 file, none matches -k 'nothing matches this'" in res.output


def _snapshot_test(folder: Path, name: str) -> Path:
    """A test file `NAME.test.yaml` in `folder` with one case, NAME, that expects a snapshot."""
    shutil.copy(HERE / "rules.mr", folder / "rules.mr")
    test = folder / f"{name}.test.yaml"
    test.write_text(
        f"rules: rules.mr\ntests:\n  - name: {name}\n    events:\n"
        "      - {ts: 2026-11-02T09:00:00Z, type: form_submit, prospect: a@x.example,"
        " asset: Contact}\n    expect: {snapshot: true}\n"
    )
    return test


def test_update_writes_snapshots_only_on_request(tmp_path: Path) -> None:
    test = _snapshot_test(tmp_path, "snap")
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
    # The difference itself, not each prospect's whole record (it was one JSON line each,
    # their keys in two orders, the changed value lost among the rest).
    because = res.output.split("because:\n")[1].splitlines()
    assert because[0].strip() == "a@x.example: score: 20 -> 30"
    assert not because[1].startswith("            ")  # the only difference
    assert orjson.loads(snap.read_bytes()) == saved  # never written without --update


def test_two_files_sharing_a_snapshot_file_never_replace_each_others_tests(
    tmp_path: Path,
) -> None:
    """`snap.test.yaml` and `snap.test.yml` keep their snapshots in `__snapshots__/snap.json`,
    each test's by its name. With a test of the same name in both, `--update` passed twice,
    the second writing over the first's snapshot, and the next run failed the first. Such a
    pair is a broken test, and nothing is written; tests of other names share the file."""
    yaml = _snapshot_test(tmp_path, "snap")
    yml = tmp_path / "snap.test.yml"
    yml.write_text(yaml.read_text().replace("a@x.example", "z@x.example"))
    snap = tmp_path / "__snapshots__" / "snap.json"
    res = _mrules("test", str(tmp_path), "--update")
    assert res.exit_code == 2, res.output
    assert "snap.test.yml beside this file keeps its snapshots in the same file" in res.output
    assert "snap.test.yaml beside this file" in res.output and "Traceback" not in res.output
    assert not snap.exists()
    res = _mrules("test", str(yaml), "--update")  # alone on the command line, too
    assert res.exit_code == 2 and not snap.exists(), res.output

    yml.write_text(yml.read_text().replace("name: snap", "name: other"))
    res = _mrules("test", str(tmp_path), "--update")
    assert res.exit_code == 0 and res.output.count("snapshot updated") == 2, res.output
    assert sorted(orjson.loads(snap.read_bytes())) == ["other", "snap"]
    res = _mrules("test", str(tmp_path))
    assert res.exit_code == 0 and "2 passed" in res.output, res.output


def test_new_user_story(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A new user tests the example, sees the test fail, fixes the rule, sees it pass:
    docs/testing.md's "What a failure says", its test file and its transcript, played
    in a project folder as the page sets it up."""
    import re

    page = (EXAMPLE.parent.parent / "docs" / "testing.md").read_text(encoding="utf-8")
    story = page.split("## What a failure says", 1)[1]
    test_file = re.search(r"```yaml\n(.*?)```", story, re.S)
    transcript = re.search(r"```text\n\$ mrules test\n(.*?)```", story, re.S)
    assert test_file is not None and transcript is not None
    assert "mkdir -p first/tests && cp -r examples/getcloudy/rules first/" in story
    shutil.copytree(EXAMPLE / "rules", tmp_path / "first" / "rules")
    (tmp_path / "first" / "tests").mkdir()
    (tmp_path / "first" / "tests" / "mql.test.yaml").write_text(
        test_file.group(1), encoding="utf-8"
    )
    res = _mrules("test", cwd=tmp_path / "first", monkeypatch=monkeypatch)
    assert res.exit_code == 1, res.output
    seconds = re.compile(r"in \d+\.\d\d s")
    assert seconds.sub("in N s", res.output) == seconds.sub("in N s", transcript.group(1))
    rule = tmp_path / "first" / "rules" / "30-automation.mr"
    rule.write_text(rule.read_text().replace("score >= 100", "score >= 80"))
    res = _mrules("test")
    assert res.exit_code == 0, res.output
    assert "\n1 passed in " in res.output


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


def test_unknown_names_in_expect_are_broken(tmp_path: Path) -> None:
    """A rule or list name that the rules do not declare would make `no_actions`,
    `rules: {X: 0}` and `exclude` hold whatever the rules do: it is a broken test."""
    test = tmp_path / "t.test.yaml"
    test.write_text(
        f"rules: {(EXAMPLE / 'rules').as_posix()}\n"
        "tests:\n"
        "  - name: cold prospect must not become MQL\n"
        "    given: {prospects: {a@x.com: {score: 60}}}\n"
        "    events:\n"
        "      - {ts: 2026-11-02T09:00:00Z, type: form_submit, prospect: a@x.com,"
        " asset: Demande Get Cloudy}\n"
        "    expect:\n"
        "      rules: {MQL handof: 0}\n"
        "      no_actions: [{rule: MQL handof}, {action: add to list, list: MQLs}]\n"
        "      prospects: {a@x.com: {lists: {exclude: [MQLs]}}}\n"
        "  - name: a page action is not counted under rules\n"
        "    expect:\n"
        "      rules: {Pricing: 0}\n",
        encoding="utf-8",
    )
    kind = tmp_path / "kind.test.yaml"
    kind.write_text(
        f"rules: {(EXAMPLE / 'rules').as_posix()}\n"
        "tests:\n"
        "  - name: a misspelt rule kind\n"
        "    expect:\n"
        "      no_actions: [{rule_kind: automation rules}]\n",
        encoding="utf-8",
    )
    res = _mrules("test", str(test), str(kind))
    assert res.exit_code == 2, res.output
    assert "1 passed" not in res.output and "Traceback" not in res.output
    for want in (
        f"{test}:8:15: expect.rules: unknown automation rule 'MQL handof'"
        " (did you mean 'MQL handoff'?)",
        f"{test}:9:27: expect.no_actions: unknown rule 'MQL handof' (did you mean 'MQL handoff'?)",
        f"{test}:9:68: expect.no_actions: unknown list 'MQLs' (did you mean 'MQL'?)",
        f"{test}:10:47: expect.prospects: a@x.com: lists: unknown list 'MQLs'"
        " (did you mean 'MQL'?)",
        f"{test}:13:15: expect.rules: 'Pricing' is a page action, not an automation rule",
        f"{kind}:5:32: unknown rule_kind 'automation rules' (did you mean 'automation rule'?)",
    ):
        assert want in res.output, f"{want!r} not in:\n{res.output}"


def test_every_kind_of_declared_name_is_accepted(tmp_path: Path) -> None:
    """Rule names as the action log gives them: completion actions, page actions,
    scoring rows, automation rules (paused ones too), dynamic lists, segmentation
    rules and events; lists, tags, categories, profiles, campaigns, emails."""
    test = tmp_path / "t.test.yaml"
    test.write_text(
        f"rules: {(EXAMPLE / 'rules').as_posix()}\n"
        "tests:\n"
        "  - name: every kind of name\n"
        "    given:\n"
        "      prospects:\n"
        "        a@x.com: {score: 60, lists: [Customers], profile: Default}\n"
        "    events:\n"
        "      - {ts: 2026-11-02T09:00:00Z, type: page_view, prospect: a@x.com,\n"
        '         url: "https://getcloudy.com/pricing"}\n'
        "      - {ts: 2026-11-02T09:05:00Z, type: form_submit, prospect: a@x.com,\n"
        '         asset: Demande Get Cloudy, fields: {company_size: "200+"}}\n'
        "      - {ts: 2026-11-02T09:06:00Z, type: file_download, prospect: a@x.com,\n"
        "         asset: Cloud Buyer Guide.pdf}\n"
        "      - {ts: 2026-11-02T09:10:00Z, type: email_click, prospect: a@x.com,\n"
        '         asset: Newsletter, url: "https://getcloudy.com/blog"}\n'
        "    expect:\n"
        "      prospects:\n"
        "        a@x.com:\n"
        "          lists: {include: [Customers, Enterprise], exclude: [MQL]}\n"
        "          dynamic_lists: [Engaged enterprise]\n"
        "          tags: [consult-request, newsletter-reader]\n"
        "          category_scores: {Get Cloudy content: 3}\n"
        "          profile: Default\n"
        "          assigned: alan@getcloudy.com\n"
        "      actions:\n"
        "        - {rule: page view, rule_kind: scoring}\n"
        "        - {rule: Pricing, rule_kind: page action, action: score}\n"
        "        - {rule: submit of form Demande Get Cloudy, rule_kind: completion action,\n"
        "           action: crm campaign member, campaign: Get Cloudy Consult 2026}\n"
        "        - {rule: Engaged enterprise, rule_kind: dynamic list, list: Engaged enterprise}\n"
        "        - {rule: Enterprise grading, rule_kind: automation rule, profile: Default}\n"
        "        - {action: category score, category: Get Cloudy content}\n"
        "        - {rule: download of file Cloud Buyer Guide.pdf, action: score, points: 10}\n"
        "        - {rule: click of email Newsletter, args: {tag: newsletter-reader}}\n"
        "      no_actions:\n"
        "        - {rule: MQL handoff}\n"
        "        - {rule: Careers}\n"
        "        - {rule: Backfill consult tag, rule_kind: segmentation rule}\n"
        "        - {rule: unsubscribe, rule_kind: event}\n"
        "        - {rule: opportunity won}\n"
        "        - {action: autoresponder, email: Newsletter}\n"
        "        - {action: source campaign, campaign: Webinar Cloud Security}\n"
        "        - {action: add to list, list: MQL}\n"
        "      rules: {MQL handoff: 0, Score decay: 0, Enterprise grading: 1}\n"
        "  - name: a paused rule and an event's own entries\n"
        "    rules: |\n"
        '      list "L"\n'
        '      form "F"\n'
        '      automation rule "Draft" priority 50 {\n'
        "        paused\n"
        '        when any { in list "L" }\n'
        '        then { add to list "L" }\n'
        "      }\n"
        "    events:\n"
        "      - {ts: 2026-11-02T09:00:00Z, type: form_submit, prospect: b@x.com, asset: F}\n"
        "    expect:\n"
        "      actions: [{rule: form_submit, rule_kind: event, action: create prospect}]\n"
        "      rules: {Draft: 0}\n",
        encoding="utf-8",
    )
    res = _mrules("test", str(test), "-v")
    assert res.exit_code == 0, res.output
    assert "2 passed" in res.output


def test_snapshot_entry_of_the_wrong_type_is_broken(tmp_path: Path) -> None:
    test = _snapshot_test(tmp_path, "s")
    assert _mrules("test", str(test), "--update").exit_code == 0
    snap = tmp_path / "__snapshots__" / "s.json"
    for bad in (b'{"s": 5}', b'{"s": null}', b'{"s": [1, 2]}', b'{"s": {"a": 1}}'):
        snap.write_bytes(bad)
        res = _mrules("test", str(test))
        assert res.exit_code == 2, res.output
        assert "ERROR" in res.output and "internal error" not in res.output
        assert f"{snap}: the snapshot of 's' must be a list of prospect records" in res.output
        assert snap.read_bytes() == bad
    res = _mrules("test", str(test), "--update")  # writes the actual state in its place
    assert res.exit_code == 0 and "snapshot updated" in res.output, res.output
    assert _mrules("test", str(test)).exit_code == 0


def test_output_in_a_missing_folder_is_refused_before_running(tmp_path: Path) -> None:
    test = _snapshot_test(tmp_path, "s")
    out = tmp_path / "nodir" / "j.xml"
    res = _mrules("test", str(test), "--update", "--format", "junit", "-o", str(out))
    assert res.exit_code == 2, res.output
    assert f"-o {out}: {out.parent} does not exist" in res.output
    assert not (tmp_path / "__snapshots__").exists()  # no test ran: --update wrote nothing
    assert not out.parent.exists()


def test_output_file_is_written_atomically(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import errno
    import os

    out = tmp_path / "j.xml"
    out.write_bytes(b"the previous report\n")
    args = ("test", str(HERE / "pass"), "--format", "junit", "-o", str(out))

    def full_disk(fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    with monkeypatch.context() as m:
        m.setattr("mrules.atomic.os.fsync", full_disk)
        res = _mrules(*args)
    assert res.exit_code == 4, res.output
    assert f"cannot write {out}: No space left on device" in res.output
    assert out.read_bytes() == b"the previous report\n"  # never half a report
    assert [p.name for p in tmp_path.iterdir()] == ["j.xml"]  # no temporary file left
    res = _mrules(*args)
    assert res.exit_code == 0, res.output
    assert ET.parse(out).getroot().get("tests") == "7"


def test_a_field_an_event_sets_may_be_expected(tmp_path: Path) -> None:
    """Expected field names are checked (a typo held vacuously: `{siez: null}` passed),
    but a field the rules do not declare is still kept when an event sets it."""
    case = tmp_path / "f.test.yaml"
    case.write_text(
        'rules: |\n  field size: text\n  form "F"\n  on submit of form "F" { score +30 }\n'
        "tests:\n  - name: t\n    events:\n"
        "      - {ts: 2026-11-02T09:00:00Z, type: prospect_update, prospect: a@x.com,"
        " fields: {region: EU}}\n"
        "    expect:\n      prospects:\n        a@x.com: {fields: {region: EU, size: null}}\n",
        "utf-8",
    )
    res = CliRunner().invoke(main, ["test", str(case)])
    assert res.exit_code == 0, res.output
    case.write_text(case.read_text("utf-8").replace("size: null", "siez: null"), "utf-8")
    res = CliRunner().invoke(main, ["test", str(case)])
    assert res.exit_code == 2
    assert "unknown field 'siez' (did you mean 'size'?)" in res.output
