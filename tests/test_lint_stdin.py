"""`lint -` and `fmt -` read standard input; `lint --explain`; `mrules completion`."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from conftest import build_wheel
from mrules.checker import CODES
from mrules.cli import main

ROOT = Path(__file__).resolve().parent.parent


def run(*args: str, stdin: str = ""):
    return CliRunner().invoke(main, list(args), input=stdin)


def test_lint_reads_standard_input() -> None:
    result = run("lint", "-", "--format", "json", stdin='list "A"\nlist "A"\n')
    assert result.exit_code == 1
    [d] = json.loads(result.stdout)
    assert (d["path"], d["line"], d["code"]) == ("<stdin>", 2, "MR101")


def test_lint_stdin_filename_names_the_file_and_roots_its_includes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "lists.mr").write_text('list "MQL"\n', "utf-8")
    text = 'include "lists"\nform "F"\non submit of form "F" { add to list "MQL" }\n'
    ok = run("lint", "-", "--stdin-filename", "rules/draft.mr", stdin=text)
    assert ok.exit_code == 0, ok.output
    bad = run(
        "lint",
        "-",
        "--stdin-filename",
        "rules/draft.mr",
        "--format",
        "json",
        stdin=text.replace('"MQL" }', '"MQl" }'),
    )
    assert [(d["path"], d["code"]) for d in json.loads(bad.stdout)] == [("rules/draft.mr", "MR103")]


def test_parse_reads_standard_input_as_lint_does() -> None:
    """`mrules parse -` said "-: no such file or folder" where lint and fmt read it."""
    path = ROOT / "examples" / "getcloudy" / "rules" / "10-completion-actions.mr"
    text = path.read_text("utf-8")
    piped = run("parse", "-", "--no-spans", stdin=text)
    assert piped.exit_code == 0, piped.output
    given = run("parse", str(path), "--no-spans")
    assert json.loads(piped.stdout)["files"][0]["path"] == "<stdin>"
    shown = json.loads(given.stdout)["files"][0]["path"]  # as the working folder names it
    assert piped.stdout.replace('"<stdin>"', json.dumps(shown)) == given.stdout
    broken = run("parse", "-", stdin="list\n")
    assert broken.exit_code == 1 and broken.stderr.startswith("<stdin>:"), broken.output
    mixed = run("parse", "-", str(path))
    assert mixed.exit_code == 2 and "standard input" in mixed.stderr


@pytest.mark.parametrize("args", [("-", "x.mr"), ("x.mr", "--stdin-filename", "y.mr")])
def test_stdin_misuse_is_a_usage_error(args: tuple[str, ...]) -> None:
    result = run("lint", *args)
    assert result.exit_code == 2 and "standard input" in result.stderr


def test_lint_stdin_that_is_not_utf8_is_a_usage_error() -> None:
    result = CliRunner().invoke(main, ["lint", "-"], input=b'list "\xff"\n')
    assert result.exit_code == 2 and "not UTF-8" in result.stderr


def test_fmt_stdin_filename_names_the_file_in_errors() -> None:
    result = run("fmt", "-", "--stdin-filename", "rules/a.mr", stdin='list "A" @\n')
    assert result.exit_code == 1 and "rules/a.mr:1:10" in result.stderr
    result = run("fmt", "-", "--stdin-filename", "rules/a.mr", stdin='list   "A"\n')
    assert result.exit_code == 0 and result.stdout == 'list "A"\n'


def test_explain_prints_a_codes_documentation() -> None:
    result = run("lint", "--explain", "mr312")
    assert result.exit_code == 0
    assert result.stdout.startswith("## MR312: automation rules share a priority\n")
    assert "Fix: give each rule its own priority." in result.stdout
    assert "](" not in result.stdout  # links are shown as text


def test_every_code_can_be_explained() -> None:
    from mrules.explain_codes import code_doc

    assert [c for c in CODES if code_doc(c) is None] == []


def test_explain_an_unknown_code() -> None:
    result = run("lint", "--explain", "MR31")
    assert result.exit_code == 2 and "no diagnostic code 'MR31'" in result.stderr


def test_explain_a_code_cut_short_lists_its_family() -> None:
    """`--explain MR1` suggested MR614, difflib's nearest spelling: the codes that begin
    so are the answer."""
    result = run("lint", "--explain", "mr60")
    assert result.exit_code == 2
    family = sorted(c for c in CODES if c.startswith("MR60"))
    assert result.stderr.strip().endswith("the codes that start so: " + ", ".join(family))
    result = run("lint", "--explain", "MR1")
    assert "MR101, MR102" in result.stderr and "MR614" not in result.stderr


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completion_scripts(shell: str) -> None:
    result = run("completion", shell)
    assert result.exit_code == 0
    assert "_MRULES_COMPLETE" in result.stdout


def test_completion_answers_through_the_script_protocol() -> None:
    env = {
        **os.environ,
        "_MRULES_COMPLETE": "bash_complete",
        "COMP_WORDS": "mrules li",
        "COMP_CWORD": "1",
    }
    script = Path(sys.executable).with_name("mrules")  # the console script the user runs
    out = subprocess.run([str(script)], env=env, capture_output=True, text=True, check=False)
    assert "plain,lint" in out.stdout.split("\n"), out.stdout


def test_an_installed_mrules_ships_the_diagnostics_docs(tmp_path: Path) -> None:
    """Build the wheel and run mrules from it: `--explain` must not need the checkout.

    A pure-Python wheel: it is imported from the zip file, and the docs are what is tested
    (the compiled wheel is .ci/run's second pass)."""
    build, wheel = build_wheel(ROOT, tmp_path, MRULES_PURE_PYTHON="1")
    assert build.returncode == 0 and wheel is not None, build.stderr
    with zipfile.ZipFile(wheel) as z:
        assert "mrules/docs/diagnostics.md" in z.namelist()
    env = {**os.environ, "PYTHONPATH": str(wheel)}
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            "import mrules, sys; from mrules.cli import main; "
            "print(mrules.__file__, file=sys.stderr); main(['lint', '--explain', 'MR101'])",
        ],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert ".whl" in out.stderr, out.stderr
    assert out.stdout.startswith("## MR101: duplicate declaration"), out.stderr


@pytest.mark.parametrize("command", ["lint", "fmt"])
def test_lint_of_a_closed_standard_input_is_a_usage_error(tmp_path: Path, command: str) -> None:
    """`mrules lint - <&-` (a shell, a CI step or an editor that closes standard input) was
    `internal error: AttributeError: 'NoneType' object has no attribute 'buffer'`, exit 70;
    so was `mrules fmt - <&-`."""
    cmd = f"exec {sys.executable} -m mrules {command} - <&-"
    res = subprocess.run(
        ["sh", "-c", cmd], cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False
    )
    assert res.returncode == 2, res.stderr
    assert res.stderr.startswith("mrules: error: - reads a rule file from standard input"), (
        res.stderr
    )
    assert "internal error" not in res.stderr


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(["test", str(ROOT / "examples" / "getcloudy" / "tests")], id="test"),
        pytest.param(
            ["test", str(ROOT / "examples" / "getcloudy" / "tests"), "--format", "junit"],
            id="test-junit",
        ),
        pytest.param(["lint", "rules.mr", "--format", "sarif"], id="lint-sarif"),
        pytest.param(["lint", "rules.mr"], id="lint-text-with-problems"),
        pytest.param(["parse", "rules.mr", "--format", "summary"], id="parse"),
        pytest.param(["completion", "bash"], id="completion"),
        pytest.param(["fmt", "-", "<", "messy.mr"], id="fmt-stdin"),
        pytest.param(["fmt", "--diff", "messy.mr"], id="fmt-diff"),
    ],
)
def test_a_report_to_a_closed_standard_output_is_exit_4(tmp_path: Path, args: list[str]) -> None:
    """`mrules test >&-` and `mrules fmt - >&-` were internal errors (exit 70); `mrules lint
    --format sarif >&-`, `parse`, `completion` and `fmt --diff` lost what they print and
    exited 0. A closed output is exit 4, as for `state export`."""
    (tmp_path / "rules.mr").write_text('list "A"\nlist "A"\n', "utf-8")
    (tmp_path / "messy.mr").write_text('list   "A"\n', "utf-8")  # fmt would change it
    cmd = " ".join(a if a == "<" else shlex.quote(a)
                   for a in (sys.executable, "-m", "mrules", *args))  # fmt: skip
    res = subprocess.run(
        ["sh", "-c", f"exec {cmd} >&-"], cwd=tmp_path, stderr=subprocess.PIPE, text=True,
        timeout=120, check=False,
    )  # fmt: skip
    assert res.returncode == 4, res.stderr
    assert res.stderr.startswith("mrules: error: standard output is closed"), res.stderr
