"""`mrules test`: interrupts, -o over its inputs, a -k that selects nothing, tags the
rules add, unwritable snapshots, and failures whose values print alike."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner, Result
from pydantic import BaseModel, model_serializer
from tests.conftest import contact_test

import mrules.atomic
import mrules.testing
from mrules.cli import main

HERE = Path(__file__).parent / "testing"
EXAMPLE = Path(__file__).parent.parent / "examples" / "getcloudy"

TEST = contact_test("rules.mr", ("one", "a@x.example"), ("two", "b@x.example"))


def _mrules(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def _tests(folder: Path, text: str = TEST, name: str = "t.test.yaml") -> Path:
    shutil.copy(HERE / "rules.mr", folder / "rules.mr")
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


# ------------------------------------------------------------------ 1. interrupts


class _Interrupting(BaseModel):
    """Sends Ctrl-C to this process from inside a pydantic wrap serializer, as `ast.dump`
    met one in the checker: pydantic turns it into PydanticSerializationError."""

    x: int = 1

    @model_serializer(mode="wrap")
    def _ser(self, handler: Any) -> Any:
        os.kill(os.getpid(), signal.SIGINT)
        for _ in range(1000):  # the handler runs between two bytecodes of this loop
            pass
        return handler(self)


def _interrupt_once(monkeypatch: pytest.MonkeyPatch, swallow: bool) -> None:
    """The first test's check meets Ctrl-C: wrapped by pydantic, or swallowed whole."""
    original = mrules.testing._Checker.rejects
    sent: list[bool] = []

    def rejects(self: Any) -> None:
        if not sent:
            sent.append(True)
            if swallow:  # a library that loses it
                try:
                    os.kill(os.getpid(), signal.SIGINT)
                    for _ in range(1000):
                        pass
                except KeyboardInterrupt:
                    pass
            else:
                _Interrupting().model_dump()
        original(self)

    monkeypatch.setattr(mrules.testing._Checker, "rejects", rejects)


@pytest.mark.parametrize("swallow", [False, True], ids=["wrapped", "swallowed"])
def test_interrupt_is_exit_130_and_no_report(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, swallow: bool
) -> None:
    test = _tests(tmp_path)
    out = tmp_path / "report.xml"
    out.write_text("the old report")
    _interrupt_once(monkeypatch, swallow)
    res = _mrules("test", str(test), "--format", "junit", "-o", str(out))
    assert res.exit_code == 130, res.output
    assert "interrupted before the tests ended; no report was written" in res.output
    assert "resumes" not in res.output and "committed" not in res.output
    assert out.read_text() == "the old report"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_interrupt_to_stdout_is_exit_130(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    test = _tests(tmp_path)
    _interrupt_once(monkeypatch, swallow=False)
    res = _mrules("test", str(test))
    assert res.exit_code == 130, res.output
    assert "passed" not in res.output and "ERROR" not in res.output


def test_interrupt_while_writing_o_is_told_as_it_is(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C during the write of -o: held until the report is written whole, then 130."""
    test = _tests(tmp_path)
    out = tmp_path / "report.json"
    original = mrules.atomic.atomic_write

    def atomic_write(path: Path, data: bytes) -> None:
        os.kill(os.getpid(), signal.SIGINT)
        for _ in range(1000):
            pass
        original(path, data)

    monkeypatch.setattr(mrules.atomic, "atomic_write", atomic_write)
    # Another thread, as a long test session has: the signal sent to the process may
    # reach it (a signal mask on the main thread alone did not hold it back).
    release = threading.Event()
    other = threading.Thread(target=release.wait)
    other.start()
    try:
        res = _mrules("test", str(test), "--format", "json", "-o", str(out))
    finally:
        release.set()
        other.join()
    assert res.exit_code == 130, res.output
    assert f"interrupted after the report was written to {out}" in res.output
    assert orjson.loads(out.read_bytes())["summary"]["passed"] == 2


def test_sigterm_lost_in_a_library_still_ends_the_command(tmp_path: Path) -> None:
    """The `mrules` program meets SIGTERM as Ctrl-C; lost on its way, it still ends with 130."""
    test = _tests(tmp_path)
    script = textwrap.dedent(
        """
        import os, signal, sys
        import mrules.testing
        from mrules.cli import main

        original = mrules.testing._Checker.rejects
        sent = []

        def rejects(self):
            if not sent:
                sent.append(True)
                try:
                    os.kill(os.getpid(), signal.SIGTERM)
                    for _ in range(1000):
                        pass
                except KeyboardInterrupt:
                    pass
            original(self)

        mrules.testing._Checker.rejects = rejects
        sys.argv = ["mrules", *sys.argv[1:]]
        main()
        """
    )
    res = subprocess.run(
        [sys.executable, "-c", script, "test", str(test)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 130, res.stdout + res.stderr
    assert "interrupted before the tests ended" in res.stderr
    assert "passed" not in res.stdout


@pytest.mark.skipif(not Path("/proc/self/wchan").exists(), reason="needs Linux's /proc")
def test_sigterm_ends_the_wait_for_a_reader_of_an_o_named_pipe(tmp_path: Path) -> None:
    """`-o PIPE` is written to as it is: opening it waits for a reader. The interrupts held
    back while the report is written held SIGTERM back too, so that wait never ended."""
    test = _tests(tmp_path)
    pipe = tmp_path / "report.pipe"
    os.mkfifo(pipe)
    proc = subprocess.Popen(
        [sys.executable, "-m", "mrules", "test", str(test), "-o", str(pipe)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wchan = Path(f"/proc/{proc.pid}/wchan")
        for _ in range(1200):  # the tests run, then it waits in open() for a reader
            if proc.poll() is not None or wchan.read_text() == "wait_for_partner":
                break
            time.sleep(0.1)
        assert wchan.read_text() == "wait_for_partner"
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, out + err
    assert "interrupted; no report was written (report.pipe is left as it was)" in err.replace(
        str(tmp_path) + "/", ""
    )


# ------------------------------------------------------------- 2. -o over its inputs


@pytest.mark.parametrize(
    ("target", "what"),
    [
        ("tests/handoff.test.yaml", "a test file it runs"),
        ("rules/30-automation.mr", "a rule file the tests load"),
        ("rules/new.mr", "in a rule folder the tests load"),
        ("tests/__snapshots__/handoff.json", "a snapshot file of the tests"),
    ],
)
def test_o_never_replaces_what_the_tests_read(tmp_path: Path, target: str, what: str) -> None:
    shutil.copytree(EXAMPLE / "rules", tmp_path / "rules")
    shutil.copytree(EXAMPLE / "tests", tmp_path / "tests")
    (tmp_path / "tests" / "__snapshots__").mkdir()
    (tmp_path / "tests" / "__snapshots__" / "handoff.json").write_text("{}\n")
    out = tmp_path / target
    before = out.read_bytes() if out.exists() else None
    res = _mrules("test", str(tmp_path / "tests"), "--format", "junit", "-o", str(out))
    assert res.exit_code == 2, res.output
    assert f"-o {out} is {what}: writing it would destroy it" in res.output
    assert "passed" not in res.output  # refused before any test ran
    assert (out.read_bytes() if out.exists() else None) == before


def test_o_elsewhere_is_written(tmp_path: Path) -> None:
    out = tmp_path / "junit.xml"
    res = _mrules("test", str(EXAMPLE / "tests"), "--format", "junit", "-o", str(out))
    assert res.exit_code == 0, res.output
    assert out.read_bytes().startswith(b"<?xml")


def test_o_dash_is_standard_output(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`-o -` is standard output, as `-` is for every command: it wrote a file named `-`."""
    monkeypatch.chdir(tmp_path)
    res = _mrules("test", str(EXAMPLE / "tests"), "--format", "junit", "-o", "-")
    assert res.exit_code == 0, res.output
    assert res.stdout.startswith("<?xml") and not (tmp_path / "-").exists()


# ------------------------------------------------------------ 3. -k selects nothing


def test_paths_that_hold_no_test_are_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "rules.mr").write_text('list "MQL"\n', "utf-8")  # not a test file
    for args in (["empty"], ["."], [".", "--format", "json"]):
        res = _mrules("test", *[str(tmp_path / a) if a in ("empty", ".") else a for a in args])
        assert res.exit_code == 2, (args, res.output)
    assert orjson.loads(res.stdout)["summary"]["exit"] == 2
    res = _mrules("test", str(tmp_path / "empty"))
    assert "no tests run: no tests found (test files end in .test.yaml)" in res.output


def test_paths_that_hold_no_test_say_so_on_stderr_under_a_report_format(tmp_path: Path) -> None:
    """With json or junit on standard output (a CI job's `> junit.xml`), the report holds no
    test and nothing said why the job failed: stderr says it, as for a -k that selects none."""
    (tmp_path / "empty").mkdir()
    for fmt in ("json", "junit"):
        res = _mrules("test", str(tmp_path / "empty"), "--format", fmt)
        assert res.exit_code == 2, (fmt, res.output)
        expected = "mrules: error: no tests found (test files end in .test.yaml)\n"
        assert res.stderr == expected, fmt


def test_k_that_selects_nothing_is_a_usage_error() -> None:
    res = _mrules("test", str(EXAMPLE / "tests"), "-k", "handof_typo")
    assert res.exit_code == 2, res.output
    assert "no tests run: 5 tests in 1 file, none matches -k 'handof_typo'" in res.output
    assert "no tests found" not in res.output
    res = _mrules("test", str(EXAMPLE / "tests"), "-k", "x1", "-k", "x2", "--format", "json")
    assert res.exit_code == 2
    assert orjson.loads(res.stdout)["summary"]["exit"] == 2
    assert "mrules: error: 5 tests in 1 file, none matches -k 'x1' or -k 'x2'" in res.stderr


# ----------------------------------------------------------- 4. tags the rules add

TAGS = """\
rules: |
  form "F"
  on submit of form "F" {
    add tag "vip"
  }
tests:
  - name: tagged
    events:
      - {ts: 2026-11-02T09:00:00Z, type: form_submit, prospect: a@b.example, asset: F}
    expect:
      prospects:
        a@b.example: {tags: [vip]}
      actions:
        - {action: add tag, tag: vip}
  - name: given tags are checkable too
    given:
      prospects:
        a@b.example: {tags: [old]}
    events:
      - {ts: 2026-11-02T09:00:00Z, type: form_submit, prospect: a@b.example, asset: F}
    expect:
      prospects:
        a@b.example: {tags: [old, vip]}
"""


def test_tags_the_rules_add_can_be_expected(tmp_path: Path) -> None:
    res = _mrules("test", str(_tests(tmp_path, TAGS)))
    assert res.exit_code == 0, res.output
    assert "2 passed" in res.output


def test_a_tag_no_rule_names_is_still_a_typo(tmp_path: Path) -> None:
    text = TAGS.replace("{tags: [old, vip]}", "{tags: {exclude: [vipp]}}")
    res = _mrules("test", str(_tests(tmp_path, text)))
    assert res.exit_code == 2, res.output
    said = "t.test.yaml:23:40: expect.prospects: a@b.example: tags: unknown tag 'vipp'"
    assert said in res.output
    assert "did you mean 'vip'?" in res.output


def test_an_assignee_no_rule_declares_is_a_typo(tmp_path: Path) -> None:
    """`no_actions: [{action: assign, name: alan@x.exampl}]` held whatever the rules did:
    the user, group or queue an `assign` names is checked like a list or a tag."""
    text = TEST.replace(
        "        a@x.example: {score: 20}\n",
        "        a@x.example: {score: 20}\n"
        "      no_actions:\n"
        "        - {action: assign, to: user, name: alan@x.exampl}\n"
        "        - {action: assign, args: {name: Sale}}\n",
        1,
    )
    res = _mrules("test", str(_tests(tmp_path, text)))
    assert res.exit_code == 2, res.output
    assert (
        "t.test.yaml:10:44: expect.no_actions: unknown user, group or queue 'alan@x.exampl'"
        " (did you mean 'alan@x.example'?)"
    ) in res.output
    assert "unknown user, group or queue 'Sale' (did you mean 'Sales'?)" in res.output
    ok = TEST.replace(
        "        a@x.example: {score: 20}\n",
        "        a@x.example: {score: 20}\n"
        "      actions: [{action: assign, name: alan@x.example}]\n"
        "      no_actions: [{action: assign, to: queue, name: Sales}]\n",
        1,
    )
    res = _mrules("test", str(_tests(tmp_path, ok)))
    assert res.exit_code == 0, res.output


# ------------------------------------------------------- 5. unwritable snapshots


def test_update_that_cannot_write_a_snapshot_is_exit_4(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A read-only folder (as root, checked by hand with setpriv): exit 4, as `-o` gives."""
    text = TEST.replace("{score: 20}\n", "{score: 20}\n      snapshot: true\n", 1)
    test = _tests(tmp_path, text)
    mkstemp = mrules.atomic.tempfile.mkstemp

    def read_only(*args: Any, **kwargs: Any) -> Any:
        if Path(kwargs["dir"]).name == "__snapshots__":
            raise PermissionError(13, "Permission denied", kwargs["dir"])
        return mkstemp(*args, **kwargs)

    monkeypatch.setattr(mrules.atomic.tempfile, "mkstemp", read_only)
    res = _mrules("test", str(test), "--update")
    assert res.exit_code == 4, res.output
    assert "__snapshots__/t.json: cannot write the snapshot:" in res.output
    assert "or run without --update" in res.output
    assert "1 passed, 1 error" in res.output and "1 errors" not in res.output


def _snapshot_tests(folder: Path, prospects: int = 1) -> Path:
    """A test file whose one test, `t`, snapshots the state of `prospects` prospects."""
    events = "".join(
        f"      - {{ts: 2026-11-02T09:00:00Z, type: form_submit, prospect: p{i}@x.example,"
        " asset: Contact}\n"
        for i in range(prospects)
    )
    head = "rules: rules.mr\ntests:\n  - name: t\n    events:\n"
    return _tests(folder, f"{head}{events}    expect: {{snapshot: true}}\n")


def test_update_keeps_the_snapshot_files_mode_and_its_symlink(tmp_path: Path) -> None:
    """A snapshot file is replaced as every file mrules writes is: its permission bits
    kept (a group-writable checkout stayed so), a symlink followed, not replaced by a copy."""
    test = _snapshot_tests(tmp_path)
    snap = tmp_path / "__snapshots__" / "t.json"
    assert _mrules("test", str(test), "--update").exit_code == 0
    shared = tmp_path / "shared.json"
    snap.rename(shared)
    snap.symlink_to(shared)
    shared.chmod(0o664)
    rules = tmp_path / "rules.mr"
    rules.write_text(rules.read_text().replace("score +20", "score +35"))
    res = _mrules("test", str(test), "--update")
    assert res.exit_code == 0 and "snapshot updated" in res.output, res.output
    assert snap.is_symlink() and snap.resolve() == shared
    assert orjson.loads(shared.read_bytes())["t"][0]["score"] == 35
    assert oct(shared.stat().st_mode & 0o777) == oct(0o664)
    assert sorted(p.name for p in snap.parent.iterdir()) == ["t.json"]


def test_update_on_a_full_disk_leaves_no_half_snapshot(tmp_path: Path) -> None:
    """A full disk (a real one: a small tmpfs) fails the test's snapshot with exit 4 and
    leaves the folder as it was: no temporary file holding half of it."""
    from tests.test_faults import tmpfs

    with tmpfs(tmp_path / "small", "24k") as small:
        test = _snapshot_tests(small, prospects=60)
        (small / "__snapshots__").mkdir()
        res = _mrules("test", str(test), "--update")
        assert res.exit_code == 4, res.output
        assert "cannot write the snapshot: No space left on device; the disk is full" in res.output
        assert "writable" not in res.output  # a full disk is no matter of permissions
        assert list((small / "__snapshots__").iterdir()) == []


# ------------------------------------------------- 6. values that print alike


def test_values_that_print_alike_show_their_types(tmp_path: Path) -> None:
    text = (
        "rules: |\n"
        "  field n: number\n"
        '  form "F"\n'
        '  on submit of form "F" {\n'
        "    set n = 1\n"
        "  }\n"
        "tests:\n"
        "  - name: typed\n"
        "    events:\n"
        "      - {ts: 2026-11-02T09:00:00Z, type: form_submit, prospect: a@b.example, asset: F}\n"
        "    expect:\n"
        "      prospects:\n"
        '        a@b.example: {fields: {n: "1"}}\n'
    )
    test = _tests(tmp_path, text)
    res = _mrules("test", str(test))
    assert res.exit_code == 1, res.output
    assert 'expected: "1" (text)\n' in res.output
    assert "actual:   1 (number)\n" in res.output
    junit = _mrules("test", str(test), "--format", "junit").stdout
    assert "expected &quot;1&quot; (text), got 1 (number)" in junit


@pytest.mark.parametrize(
    ("score", "shown"),
    [
        ("[1]", "[1] (list)"),
        ("true", "true (true/false)"),
        (".nan", "NaN (number)"),
        ('">= abc"', '">= abc" (text)'),
        ("1.5", "1.5 (number)"),
    ],
)
def test_a_score_that_is_no_number_is_a_broken_test(tmp_path: Path, score: str, shown: str) -> None:
    test = _tests(tmp_path, TEST.replace("{score: 20}", f"{{score: {score}}}", 1))
    res = _mrules("test", str(test))
    assert res.exit_code == 2, res.output
    assert (
        "t.test.yaml:8:9: a@x.example: score: a whole number or a test like '>= 100', not " + shown
    ) in res.output


def test_texts_that_differ_in_what_does_not_show_are_quoted_and_escaped(tmp_path: Path) -> None:
    """A trailing space, a no-break space or a tab printed as they are made the expected
    and the actual value look the same (`expected: Acme` / `actual:   Acme `): both are
    then quoted, with what does not show escaped."""
    text = (
        "rules: |\n"
        "  field company: text\n"
        "  field city: text\n"
        '  form "F"\n'
        "tests:\n"
        "  - name: invisible\n"
        "    events:\n"
        "      - {ts: 2026-11-02T09:00:00Z, type: prospect_update, prospect: a@b.example,\n"
        '         fields: {company: "Acme ", city: "New\\u00a0York"}}\n'
        "    expect:\n"
        "      prospects:\n"
        "        a@b.example: {fields: {company: Acme, city: New York}}\n"
    )
    test = _tests(tmp_path, text)
    res = _mrules("test", str(test))
    assert res.exit_code == 1, res.output
    assert 'expected: "Acme"\n' in res.output and 'actual:   "Acme "\n' in res.output
    assert 'expected: "New York"\n' in res.output
    assert 'actual:   "New\\u00a0York"\n' in res.output
    junit = _mrules("test", str(test), "--format", "junit").stdout
    assert "expected &quot;Acme&quot;, got &quot;Acme &quot;" in junit


def test_control_characters_never_reach_the_terminal(tmp_path: Path) -> None:
    """A test's name, its skip reason and the values of a failure are printed as
    `mrules lint` prints names: a control character (an escape sequence that could
    recolour or clear the terminal) is shown as `\\x1b`, never written as it is."""
    text = TEST.replace("name: one", 'name: "one \\e[2J"').replace(
        "  - name: two\n", '  - name: two\n    skip: "later \\e]0;title\\a"\n'
    )
    text = text.replace("{score: 20}", "{score: 21}", 1)
    res = _mrules("test", str(_tests(tmp_path, text)))
    assert res.exit_code == 1, res.output
    assert "\x1b" not in res.output and "\x07" not in res.output
    assert "FAIL  one \\x1b[2J [" in res.output
    assert "later \\x1b]0;title\\x07" in res.output


def test_yaml_aliases_that_expand_to_millions_of_values_are_a_broken_file(
    tmp_path: Path,
) -> None:
    """Anchors and aliases (`&a`, `*a`) may share a value; nested, a few lines stand for
    millions of values, and mrules test walked every one of them (ten million: seconds;
    a level more: minutes) before it said anything. Such a file is refused at once."""
    levels = ["    skip: &a1 [x, x, x, x, x, x, x, x, x, x]\n"]
    levels += [f"    skip: &a{n} [{', '.join([f'*a{n - 1}'] * 10)}]\n" for n in range(2, 8)]
    text = "rules: rules.mr\ntests:\n" + "".join(
        f"  - name: t{n}\n{level}" for n, level in enumerate(levels)
    )
    res = _mrules("test", str(_tests(tmp_path, text)))
    assert res.exit_code == 2, res.output
    assert "t.test.yaml: too large: its aliases (*name) expand to more than" in res.output


@pytest.mark.parametrize(
    ("skip", "said"),
    [
        ("[a]", "not a list"),
        ("{}", "not a mapping"),
        ('""', "not an empty text"),
        ("3", "not a number"),
    ],
)
def test_a_skip_that_is_no_reason_is_a_broken_test(tmp_path: Path, skip: str, said: str) -> None:
    """`skip: [a]` and `skip: {}` skipped the test with their Python spelling as the reason;
    `skip: true` printed "True". A reason is text; `true` skips with none."""
    test = _tests(tmp_path, TEST.replace("  - name: one\n", f"  - name: one\n    skip: {skip}\n"))
    res = _mrules("test", str(test))
    assert res.exit_code == 2, res.output
    assert f"t.test.yaml:4:5: 'skip' takes a reason (text) or true, {said}" in res.output


def test_skip_true_skips_without_a_reason(tmp_path: Path) -> None:
    test = _tests(tmp_path, TEST.replace("  - name: one\n", "  - name: one\n    skip: true\n"))
    res = _mrules("test", str(test))
    assert res.exit_code == 0, res.output
    assert "skipped (no reason given)" in res.output and "True" not in res.output


@pytest.mark.parametrize("event", ["0", "2", "-1", "true"])
def test_a_reject_expected_of_an_event_the_test_lacks_is_a_broken_test(
    tmp_path: Path, event: str
) -> None:
    """`rejects: [{event: 0}]` or an event past the last could never match: the test
    failed, as if the rules were wrong, where the test file is."""
    text = TEST.replace("{score: 20}", "{score: 20}\n      rejects: [{event: " + event + "}]", 1)
    res = _mrules("test", str(_tests(tmp_path, text)))
    assert res.exit_code == 2, res.output
    assert "t.test.yaml:9:7: expect.rejects: " in res.output, res.output


@pytest.mark.parametrize("key", ["created", "last_activity"])
def test_a_time_expected_that_is_no_time_is_a_broken_test(tmp_path: Path, key: str) -> None:
    """`created: yesterday` could never match: the test failed as if the rules were wrong."""
    text = TEST.replace("{score: 20}", "{score: 20, " + key + ": yesterday}", 1)
    res = _mrules("test", str(_tests(tmp_path, text)))
    assert res.exit_code == 2, res.output
    assert f"a@x.example: {key}: not an RFC 3339 time: 'yesterday'" in res.output
    good = TEST.replace("{score: 20}", "{score: 20, " + key + ": 2026-11-02T09:00:00Z}", 1)
    assert _mrules("test", str(_tests(tmp_path, good))).exit_code == 0


def test_a_misspelt_key_of_an_expected_reject_is_a_broken_test(tmp_path: Path) -> None:
    """`rejects: [{event: 2, reasn: ...}]` expected the reject and checked no reason: the
    test passed whatever the reject said, as if the reason had been checked."""
    text = TEST.replace(
        "asset: Contact}\n    expect:\n",
        "asset: Contact}\n      - {ts: 2026-11-02T09:01:00Z, type: bogus, prospect: a@x.example}"
        "\n    expect:\n      rejects: [{event: 2, reasn: missing ts}]\n",
        1,
    )
    res = _mrules("test", str(_tests(tmp_path, text)))
    assert res.exit_code == 2, res.output
    assert (
        "t.test.yaml:8:28: unknown key 'reasn' in an expected reject (did you mean 'reason'?)"
        in res.output
    ), res.output
    good = text.replace("reasn: missing ts", "reason: unknown type 'bogus'")
    assert _mrules("test", str(_tests(tmp_path, good))).exit_code == 0


@pytest.mark.parametrize(
    ("event", "said"),
    [
        ("2", "'event' 2 is not one of this test's 1 event (N counts events from 1)"),
        ("0", "'event' 0 is not one of this test's 1 event (N counts events from 1)"),
        ('"1"', "'event' is the event's position in 'events' (a whole number from 1), not"),
        ("true", "'event' is the event's position in 'events' (a whole number from 1), not"),
    ],
)
@pytest.mark.parametrize("key", ["actions", "no_actions"])
def test_an_action_expected_at_an_event_the_test_lacks_is_a_broken_test(
    tmp_path: Path, key: str, event: str, said: str
) -> None:
    """`no_actions: [{action: assign, event: 2}]` in a test of one event (or `event: "1"`)
    could never match: it held whatever the rules did, and `actions` failed as if the
    rules were wrong. As for `rejects`, the test file is broken, at the event's column."""
    check = "{score: 20}\n      " + key + ": [{action: assign, event: " + event + "}]"
    res = _mrules("test", str(_tests(tmp_path, TEST.replace("{score: 20}", check, 1))))
    assert res.exit_code == 2, res.output
    assert f"t.test.yaml:9:{27 + len(key)}: expect.{key}: {said}" in res.output, res.output
    # The event the test has: the assignment is found there
    at_one = TEST.replace("{score: 20}", check.replace(f"event: {event}", "event: 1"), 1)
    assert _mrules("test", str(_tests(tmp_path, at_one))).exit_code == (
        0 if key == "actions" else 1
    )


@pytest.mark.parametrize("key", ["actions", "no_actions"])
def test_an_action_expected_of_a_prospect_the_test_lacks_is_a_broken_test(
    tmp_path: Path, key: str
) -> None:
    """`no_actions: [{action: assign, prospect: a@x.exmaple}]`: no action is ever about a
    prospect that no event of the test names and `given` does not give, so the misspelt
    email held whatever the rules did (and `actions` failed as if the rules were wrong)."""
    check = "{score: 20}\n      " + key + ": [{action: assign, prospect: A@x.exmaple}]"
    res = _mrules("test", str(_tests(tmp_path, TEST.replace("{score: 20}", check, 1))))
    assert res.exit_code == 2, res.output
    assert (
        f"t.test.yaml:9:{37 + len(key)}: expect.{key}: prospect 'A@x.exmaple' is not one of"
        " this test's prospects (the ones its events and given name; did you mean"
        " 'a@x.example'?)" in res.output
    ), res.output
    # the prospect of the test's event, in any case: the assignment is found
    right = TEST.replace("{score: 20}", check.replace("A@x.exmaple", "A@X.example"), 1)
    assert _mrules("test", str(_tests(tmp_path, right))).exit_code == (0 if key == "actions" else 1)


@pytest.mark.parametrize("key", ["actions", "no_actions"])
def test_an_action_expected_of_a_prospect_in_decomposed_unicode_is_found(
    tmp_path: Path, key: str
) -> None:
    """The store keys `josé@x.example` in NFC; an expectation typed with `e` and a
    combining accent names the same prospect, so its assignment is found (it was
    compared trimmed and lowercased only: `actions` failed, `no_actions` held)."""
    composed, decomposed = "jos\u00e9@x.example", "JOSE\u0301@x.example"
    text = TEST.replace("a@x.example", composed).replace(
        "{score: 20}",
        "{score: 20}\n      " + key + ": [{action: assign, prospect: " + decomposed + "}]",
        1,
    )
    res = _mrules("test", str(_tests(tmp_path, text)))
    assert res.exit_code == (0 if key == "actions" else 1), res.output
