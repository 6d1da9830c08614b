"""`mrules lint` end to end: exit codes, --strict, every --format, and partial checking."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from tests.conftest import mrules_process

from mrules.checker import CODES
from mrules.cli import main

ROOT = Path(__file__).resolve().parent.parent

BROKEN = """\
list "MQL"
field size: picklist ["small", "large"]
form "Demo"
on submit of form "Demo" {
  add to list "MQl"
  if size is "medium" { score +5 }
}
"""
WARNS = 'tag "a"\nform "F"\non submit of form "F" { add tag "b" }\n'


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    # Paths in the output are shown relative to the working directory.
    monkeypatch.chdir(tmp_path)
    Path("broken.mr").write_text(BROKEN, encoding="utf-8")
    Path("warns.mr").write_text(WARNS, encoding="utf-8")
    return tmp_path


def lint(*args: str):
    return CliRunner().invoke(main, ["lint", *args])


def test_example_rule_set_lints_clean_even_strict(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    result = lint("examples/getcloudy/rules", "--strict")
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    # the 6 files of the project, as `fmt --check` counts them; the library ones apart
    assert result.stderr.strip() == "ok: 6 files (and 2 library files they include), no problems"
    fmt = CliRunner().invoke(main, ["fmt", "--check", "examples/getcloudy/rules"])
    assert fmt.exit_code == 0, fmt.output
    assert fmt.stderr.strip() == "6 files already formatted"


@pytest.mark.usefixtures("workdir")
def test_text_output_shows_location_carets_and_hints(snapshot) -> None:
    result = lint("broken.mr")
    assert result.exit_code == 1
    assert result.stdout.startswith("broken.mr:5:15: error[MR103]: unknown list 'MQl'")
    assert result.stderr.strip() == "2 errors in 1 file"
    assert result.stdout == snapshot


@pytest.mark.usefixtures("workdir")
def test_warnings_fail_only_with_strict() -> None:
    plain, strict = lint("warns.mr"), lint("warns.mr", "--strict")
    assert (plain.exit_code, strict.exit_code) == (0, 1)
    assert "warning[MR109]: unknown tag 'b'" in plain.stdout
    assert plain.stderr.strip() == strict.stderr.strip() == "1 warning in 1 file"


@pytest.mark.usefixtures("workdir")
def test_json_format() -> None:
    result = lint("broken.mr", "warns.mr", "--format", "json")
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    got = [(d["path"], d["line"], d["column"], d["code"], d["severity"]) for d in data]
    assert got == [
        ("broken.mr", 5, 15, "MR103", "error"),
        ("broken.mr", 6, 14, "MR211", "error"),
        ("warns.mr", 3, 33, "MR109", "warning"),
    ]
    assert data[0]["hint"] == "did you mean 'MQL'?"


@pytest.mark.usefixtures("workdir")
def test_sarif_format() -> None:
    result = lint("broken.mr", "--format", "sarif")
    assert result.exit_code == 1
    doc = json.loads(result.stdout)
    assert doc["version"] == "2.1.0"
    [run] = doc["runs"]
    assert [r["ruleId"] for r in run["results"]] == ["MR103", "MR211"]
    rules = {r["id"]: r["shortDescription"]["text"] for r in run["tool"]["driver"]["rules"]}
    assert rules == {"MR103": CODES["MR103"], "MR211": CODES["MR211"]}
    region = run["results"][0]["locations"][0]["physicalLocation"]["region"]
    assert (region["startLine"], region["startColumn"]) == (5, 15)


@pytest.mark.usefixtures("workdir")
@pytest.mark.parametrize(
    ("sarif", "held"),
    [("warns.mr", "a rule file it lints"), ("rules/new.mr", "in a rule folder it lints"),
     ("mrules.toml", "the configuration file")],
)  # fmt: skip
def test_the_sarif_file_is_never_one_of_the_inputs(sarif: str, held: str) -> None:
    """`--sarif-file rules/00-declarations.mr` replaced a rule file with the report, exit 0."""
    Path("rules").mkdir()
    Path("rules/a.mr").write_text('list "Other"\n', encoding="utf-8")
    Path("mrules.toml").write_text("strict = false\n", encoding="utf-8")
    before = {f: f.read_bytes() for f in Path(".").rglob("*") if f.is_file()}
    result = lint("warns.mr", "rules", "--sarif-file", sarif)
    assert result.exit_code == 2, result.output
    assert f"--sarif-file {sarif} is {held}: writing it would destroy it" in result.output
    assert {f: f.read_bytes() for f in Path(".").rglob("*") if f.is_file()} == before
    assert lint("warns.mr", "rules", "--sarif-file", "out.sarif").exit_code == 0
    assert json.loads(Path("out.sarif").read_text())["version"] == "2.1.0"


@pytest.mark.usefixtures("workdir")
def test_github_format() -> None:
    result = lint("broken.mr", "warns.mr", "--format", "github")
    lines = result.stdout.splitlines()
    assert len(lines) == 3
    assert lines[0].startswith("::error file=broken.mr,line=5,col=15,")
    assert "title=MR103::unknown list 'MQl' (did you mean 'MQL'?)" in lines[0]
    assert lines[2].startswith("::warning file=warns.mr,line=3,")


def test_unreadable_input_exits_2(tmp_path: Path) -> None:
    missing = lint(str(tmp_path / "nowhere.mr"))
    assert missing.exit_code == 2
    assert "no such file or folder" in missing.stderr
    (tmp_path / "latin1.mr").write_bytes('list "caf\xe9"'.encode("latin-1"))
    latin = lint(str(tmp_path / "latin1.mr"))
    assert latin.exit_code == 2
    assert "not UTF-8" in latin.stderr
    assert lint().exit_code == 2
    assert "Traceback" not in missing.output + latin.output


def test_a_file_that_does_not_parse_does_not_cause_unknown_name_cascades(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    Path("a.mr").write_text('list "X"\nlist "Y" @\n', encoding="utf-8")
    Path("b.mr").write_text(
        'form "F"\non submit of form "F" { add to list "X" }\n'
        'dynamic list "D" { when all { score between 50 and 10 } }\n',
        encoding="utf-8",
    )
    result = lint("a.mr", "b.mr", "--format", "json")
    codes = [d["code"] for d in json.loads(result.stdout)]
    # The syntax error, and the checks that do not depend on a.mr's declarations.
    assert codes == ["MR002", "MR214"]
    assert result.exit_code == 1


def test_help_has_an_example() -> None:
    result = CliRunner().invoke(main, ["lint", "--help"])
    assert result.exit_code == 0
    assert "mrules lint examples/getcloudy/rules" in result.stdout


# ------------------------------------------- inputs that used to crash a command

DEEP_ANY = "any { " * 1000 + 'in list "L"' + " }" * 1000


def _rule(when: str) -> str:
    then = 'then { add to list "L" }'
    return f'list "L"\nautomation rule "R" priority 1 {{\n  when {when}\n  {then}\n}}\n'


CRASHERS = {
    # issue reproductions: each was a traceback with exit 1
    "surrogate-in-a-diagnostic": ('on submit of form "x\\ud800" { score +1 }\n', "MR015"),
    "unknown-name-with-controls": ('on submit of form "x\\u001b[31m" { score +1 }\n', "MR105"),
    "1000-nested-groups": (_rule(DEEP_ANY), "MR016"),
    "4301-digits": ('automation rule "R" priority ' + "9" * 4301 + " { }\n", "MR014"),
    "2^64-priority": ('automation rule "R" priority 18446744073709551616 { }\n', "MR014"),
    "include-nul": ('include "a\\u0000b"\n', "MR015"),
    "include-5000": ('include "' + "a" * 5000 + '"\n', "MR023"),
    "247-nots": (_rule("all { " + "not " * 247 + 'in list "L" }'), "MR016"),
}


@pytest.mark.parametrize(("text", "code"), CRASHERS.values(), ids=CRASHERS)
@pytest.mark.parametrize(
    "command",
    [
        "lint",
        "lint --format json",
        "lint --format github",
        "lint --format sarif",
        "parse",
        "fmt --check",
    ],
)
def test_bad_rule_files_are_diagnostics_in_every_command(tmp_path, text, code, command) -> None:
    (tmp_path / "a.mr").write_text(text, encoding="utf-8")
    res = subprocess.run(
        [sys.executable, "-m", "mrules", *command.split(), "a.mr"],
        cwd=tmp_path,
        capture_output=True,
        timeout=120,
    )
    out = (res.stdout + res.stderr).decode("utf-8")  # strict: the output is valid UTF-8
    assert "Traceback" not in out
    if code == "MR105" and command == "parse":
        assert res.returncode == 0, out  # a checker finding: only lint reports it
    elif code in {"MR105", "MR023"} and command.startswith("fmt"):
        assert "formatted" in out, out  # fmt neither checks nor follows includes
    else:
        assert res.returncode == 1, out
        assert code in out
    assert "\x1b" not in out  # control characters are escaped, never sent to the terminal


def test_an_include_of_a_symlink_loop_and_a_328_file_chain(tmp_path) -> None:
    (tmp_path / "loop.mr").symlink_to(tmp_path / "loop.mr")
    for i in range(330):
        (tmp_path / f"c{i:03}.mr").write_text(f'include "c{i + 1:03}"\n' if i < 329 else "")
    (tmp_path / "a.mr").write_text('include "loop"\ninclude "c000"\n')
    res = subprocess.run(
        [sys.executable, "-m", "mrules", "lint", "a.mr"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 1 and "Traceback" not in res.stderr
    assert "a.mr:1:9: error[MR024]: loop.mr is a loop of symbolic links" in res.stdout
    assert "c031.mr:1:9: error[MR022]: includes nested more than 32 deep" in res.stdout


AT_THE_LIMITS = (
    'tag "t \\ud83c\\udf89 \\u001b"\nfield n: number\n'
    + 'automation rule "R" priority 9007199254740991 {\n'
    + "  when "
    + "all { " * 31
    + "not n > 9007199254740991"
    + " }" * 31
    + "\n"
    + "  then {\n    score -9007199254740991\n    set n = "
    + "9" * 99
    + ".5\n"
    + '    add tag "t \\ud83c\\udf89 \\u001b"\n  }\n}\n'
)


def test_what_lint_accepts_every_command_handles(tmp_path) -> None:
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "a.mr").write_text(AT_THE_LIMITS, encoding="utf-8")
    (tmp_path / "events.jsonl").write_text(
        '{"ts":"2026-11-02T09:00:00Z","type":"page_view","prospect":"a@example.com",'
        '"url":"https://x.example/"}\n'
    )

    def run(*args: str) -> subprocess.CompletedProcess:
        return mrules_process(*args, cwd=tmp_path)

    lint_res = run("lint", "rules")
    assert lint_res.returncode == 0, lint_res.stdout + lint_res.stderr
    parsed = run("parse", "rules")
    assert parsed.returncode == 0, parsed.stderr
    assert "\U0001f389" in parsed.stdout  # the pair of escapes is one character
    assert run("fmt", "--check", "rules").returncode in (0, 1)
    assert run("fmt", "rules").returncode == 0
    assert run("lint", "rules").returncode == 0  # the formatted file lints as clean
    ran = run("run", "rules", "events.jsonl", "--store", "s.db", "-q")
    assert ran.returncode == 0, ran.stderr
    exported = run("state", "export", "--store", "s.db")
    assert exported.returncode == 0 and "a@example.com" in exported.stdout


BELOW_10_100 = "9" * 100  # the largest whole part a decimal may have
AT_10_100 = "1" + "0" * 100


@pytest.mark.parametrize(
    ("number", "code"),
    [
        (f"{BELOW_10_100}.0", 0),
        (f"-{BELOW_10_100}.0", 0),
        (f"{BELOW_10_100}.999", 0),  # still below 10^100 (as a double, it is 1e100)
        (f"000{BELOW_10_100}.5", 0),  # leading zeros do not count
        (f"{AT_10_100}.0", 1),
        (f"-{AT_10_100}.0", 1),
        (f"{AT_10_100}.5", 1),
        (f"{BELOW_10_100}9.0", 1),
    ],
    ids=[
        "10^100-1",
        "-(10^100-1)",
        "10^100-0.001",
        "leading-zeros",
        "10^100",
        "-10^100",
        "10^100+0.5",
        "10^101-1",
    ],
)
def test_the_decimal_limit_is_exact_at_10_100(workdir: Path, number: str, code: int) -> None:
    """100 nines were refused: the number was made a double (1e100) before the check, so
    the hint "a decimal number lies below 10^100 either way" was false for it."""
    Path("big.mr").write_text(
        f'field ratio: number\ndynamic list "D" {{\n  when all {{ ratio > {number} }}\n}}\n',
        encoding="utf-8",
    )
    res = lint("big.mr")
    assert res.exit_code == code, res.output
    if code:
        assert "error[MR014]" in res.output and "is out of range" in res.output
        assert "^ a decimal number lies below 10^100 either way" in res.output
    else:
        assert res.output.startswith("ok: 1 file, no problems"), res.output


def test_a_repository_folder_leaves_out_virtualenvs_and_hidden_folders(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`mrules lint .` (the pre-commit hook's and the action's default, docs/ci.md) in a
    repository with a virtual environment holding mrules linted the bundled library's
    copy there too: a second default scoring, errors that are not the project's. The
    folders below a given folder that hold no rules are left out, as `mrules test` does;
    a file in one is still read when given, or included."""
    monkeypatch.chdir(tmp_path)
    shutil.copytree(ROOT / "examples" / "getcloudy" / "rules", "rules")
    library = ROOT / "src" / "mrules" / "library"
    for held in (".venv/lib/python3.12/site-packages/mrules", "venv/lib/mrules", ".git/x"):
        shutil.copytree(library, Path(held) / "library")
    Path("node_modules/pkg").mkdir(parents=True)
    Path("node_modules/pkg/broken.mr").write_text("}\n", "utf-8")
    Path("rules/__pycache__").mkdir()
    Path("rules/__pycache__/broken.mr").write_text("}\n", "utf-8")
    result = lint(".", "--strict")
    assert result.exit_code == 0, result.output
    assert result.stderr.strip() == "ok: 6 files (and 2 library files they include), no problems"
    assert lint(".", "node_modules/pkg/broken.mr").exit_code == 1  # given: read


def test_an_error_is_shown_though_fifty_warnings_come_before_it(workdir: Path) -> None:
    """The text report stops at 50 problems (`... and N more`): 55 warnings before the
    one error of a file hid it, though it was the one that failed the check (exit 1,
    `1 error, 55 warnings`). Errors are shown first; the warnings fill the rest."""
    tags = "".join(f'form "F{i}" on submit of form "F{i}" {{ add tag "t" }}\n' for i in range(55))
    Path("many.mr").write_text(f'{tags}list "A"\nlist "A"\n', "utf-8")
    result = lint("many.mr")
    assert result.exit_code == 1, result.output
    assert result.stderr.strip() == "1 error, 55 warnings in 1 file"
    assert "many.mr:57:6: error[MR101]: list 'A' is declared twice" in result.stdout
    assert result.stdout.count("warning[MR109]") == 49
    assert result.stdout.rstrip().endswith("... and 6 more")


def test_a_category_folder_with_a_trailing_slash_is_unused_and_says_why(workdir: Path) -> None:
    # `mrules run` finds an asset's category by its folder and each parent, compared as
    # written: "Content/" is never one of them, so the category scores nothing.
    Path("cat.mr").write_text(
        'file "a.pdf" folder "Content/Guides"\nscoring category "C" folders ["Content/"]\n',
        encoding="utf-8",
    )
    result = lint("cat.mr", "--format", "json")
    assert result.exit_code == 0, result.output
    [diag] = json.loads(result.stdout)
    assert diag["code"] == "MR603"
    assert (diag["line"], diag["column"]) == (2, 31)
    assert diag["hint"] == "name the folder without the trailing slash: 'Content'"


def test_a_setting_set_three_times_points_each_repeat_at_the_first(workdir: Path) -> None:
    Path("set.mr").write_text(
        "settings { throttle_minutes = 1 }\n"
        "settings { throttle_minutes = 2 }\n"
        "settings { throttle_minutes = 3 }\n",
        encoding="utf-8",
    )
    result = lint("set.mr", "--format", "json")
    assert result.exit_code == 0, result.output
    found = [
        (d["code"], d["line"], [(r["line"], r["message"]) for r in d["related"]])
        for d in json.loads(result.stdout)
    ]
    assert found == [
        ("MR614", 2, [(1, "first set here")]),
        ("MR614", 3, [(1, "first set here")]),
    ]


def test_a_name_in_another_unicode_form_is_the_same_name(workdir: Path) -> None:
    # Names are read in Unicode NFC: "Café" with a composed é (NFC) and with e + a
    # combining accent (NFD) is one list, as it is at run time (events are read in NFC
    # too). It was an unknown list whose hint said to type the name again.
    composed, decomposed = "Caf\u00e9", "Cafe\u0301"
    Path("rules").mkdir()
    Path("rules/a.mr").write_text(f'list "{composed}"\n', encoding="utf-8")
    Path("rules/b.mr").write_text(
        f'form "F"\non submit of form "F" {{ add to list "{decomposed}" }}\n', encoding="utf-8"
    )
    result = lint("rules", "--format", "json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == []


@pytest.mark.parametrize("refused", ["MR023", "MR024"])
def test_names_of_a_file_never_read_are_not_reported_unknown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, refused: str
) -> None:
    # A rule file refused unread (a link out of the rule folder), or an include too long
    # to read: declarations are missing, as after an include not found (MR020), so the
    # uses of their names elsewhere are not unknown (that hint would have the user
    # declare them twice).
    monkeypatch.chdir(tmp_path)
    Path("outside").mkdir()
    Path("outside/lists.mr").write_text('list "MQL"\n', encoding="utf-8")
    Path("rules").mkdir()
    if refused == "MR024":
        Path("rules/lists.mr").symlink_to(tmp_path / "outside/lists.mr")
    else:
        Path("rules/lists.mr").write_text(f'include "{"x" * 300}"\n', encoding="utf-8")
    Path("rules/a.mr").write_text(
        'form "F"\non submit of form "F" { add to list "MQL" }\n'
        'dynamic list "D" { when all { score between 50 and 10 } }\n',
        encoding="utf-8",
    )
    result = lint("rules", "--format", "json")
    codes = sorted(d["code"] for d in json.loads(result.stdout))
    # The refusal, and the checks that do not depend on the missing declarations.
    assert codes == sorted([refused, "MR214"])
    assert result.exit_code == 1


def test_an_asset_of_another_kind_is_shown_with_the_verb_its_kind_takes(workdir: Path) -> None:
    # `on submit of form "N"` where "N" is an email: `on submit of email "N"` does not
    # parse, an email's trigger is a click; a criterion likewise takes the kind's verbs.
    Path("kinds.mr").write_text(
        'email "N"\nform "Fm"\nlanding page "LP"\n'
        'on submit of form "N" { send autoresponder "Fm" }\n'
        'dynamic list "E" { when all { submitted form "N" } }\n'
        'dynamic list "G" { when all { viewed form "LP" } }\n',
        encoding="utf-8",
    )
    result = lint("kinds.mr", "--format", "json")
    assert result.exit_code == 1, result.output
    hints = [(d["code"], d["line"], d["hint"]) for d in json.loads(result.stdout)]
    assert hints == [
        ("MR106", 4, 'write `on click of email "N"`'),
        ("MR106", 4, 'an autoresponder is an email: name one, or declare it: `email "Fm"`'),
        ("MR106", 5, 'write `opened email "N"` or `clicked email "N"`'),
        ("MR106", 6, 'write `viewed landing page "LP"`'),
    ]


EMPTY_BLOCKS = """\
field size: picklist ["small", "large"]
tag "demo"
form "F"
on submit of form "F" {
  add tag "demo"
  if size is "large" { }
}
grading profile "Enterprise" {
  # criteria to come
}
"""


def test_empty_if_and_grading_profile_warn_at_their_braces(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, snapshot
) -> None:
    monkeypatch.chdir(tmp_path)
    Path("empty.mr").write_text(EMPTY_BLOCKS, encoding="utf-8")
    result = lint("empty.mr")
    assert result.exit_code == 0, result.output  # warnings only
    assert result.stderr.strip() == "2 warnings in 1 file"
    assert "empty.mr:6:22: warning[MR224]: conditional group with no action" in result.stdout
    assert "empty.mr:8:30: warning[MR607]: grading profile 'Enterprise' has no criterion" in (
        result.stdout
    )
    assert result.stdout == snapshot
    assert lint("empty.mr", "--strict").exit_code == 1
    # `mrules fmt` keeps the empty blocks as they are (only the layout changes)
    fmt = CliRunner().invoke(main, ["fmt", "-"], input=EMPTY_BLOCKS)
    assert fmt.exit_code == 0, fmt.output
    assert 'if size is "large" {}' in fmt.stdout
    assert 'grading profile "Enterprise" {\n  # criteria to come\n}' in fmt.stdout


def test_empty_blocks_warn_at_their_braces_beside_other_diagnostics(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    text = EMPTY_BLOCKS + 'on submit of form "F" { add tag "undeclared" }\n'
    Path("empty.mr").write_text(text, encoding="utf-8")
    result = lint("empty.mr", "--format", "json")
    got = [(d["line"], d["column"], d["code"]) for d in json.loads(result.stdout)]
    assert got == [(6, 22, "MR224"), (8, 30, "MR607"), (11, 33, "MR109")]


def test_the_editor_shows_the_empty_block_warnings_at_the_braces(tmp_path: Path) -> None:
    from mrules.lsp.analysis import analyze

    (tmp_path / "empty.mr").write_text(EMPTY_BLOCKS, encoding="utf-8")
    found = {d.code: EMPTY_BLOCKS[d.start : d.end] for d in analyze([tmp_path]).diagnostics}
    assert found == {"MR224": "{ }", "MR607": "{\n  # criteria to come\n}"}


@pytest.mark.parametrize("command", ["lint", "fmt"])
@pytest.mark.parametrize(
    ("name", "shown"),
    [
        (b"no\xff.mr", "no\\xff.mr: no such file or folder"),
        (b"no\nsuch.mr", "no\\x0asuch.mr: no such file or folder"),
        (b"em\xffpty", "em\\xffpty: no rule files (*.mr) in this folder"),
        (b"em\x07pty", "em\\x07pty: no rule files (*.mr) in this folder"),
    ],
)
def test_a_path_refused_before_reading_is_named_as_every_command_names_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: str, name: bytes, shown: str
) -> None:
    """A byte that is not UTF-8 as `\\xNN` (it was `\\udcff`, what Python reads it as),
    a control character escaped (a newline split the message, a bell rang)."""
    monkeypatch.chdir(tmp_path)
    path = os.fsdecode(name)
    if name.startswith(b"em"):
        try:
            os.mkdir(name)
        except (OSError, ValueError):
            pytest.skip("this file system refuses such a name")
    res = CliRunner().invoke(main, [command, path], catch_exceptions=False)
    assert res.exit_code == 2, res.output
    assert res.stderr == f"mrules: error: {shown}\n"


def test_an_empty_when_group_hints_at_a_criterion_not_at_a_when(workdir: Path) -> None:
    """The group of `when all { }` is there: the hint said to add `when all { ... }`."""
    Path("empty_when.mr").write_text(
        'automation rule "A" priority 1 {\n  when all { }\n  then { score +1 }\n}\n'
        'dynamic list "D" { when any { } }\n'
        'dynamic list "E" { }\n',
        encoding="utf-8",
    )
    result = lint("empty_when.mr", "--format", "json")
    assert result.exit_code == 1, result.output
    hints = [(d["code"], d["line"], d["hint"]) for d in json.loads(result.stdout)]
    assert hints == [
        (
            "MR304",
            2,
            "put a criterion in the `all` group (`when all { score > 50 }`), "
            "or remove the automation rule: `all` of nothing matches every prospect",
        ),
        (
            "MR304",
            5,
            "put a criterion in the `any` group (`when any { score > 50 }`), "
            "or remove the dynamic list: `any` of nothing matches no prospect",
        ),
        ("MR304", 6, "add `when all { ... }`"),
    ]


def test_sync_option_diagnostics_point_at_the_option(workdir: Path) -> None:
    """MR509, MR510 and MR512 underlined `salesforce`, lines above what they are about."""
    Path("sync.mr").write_text(
        "sync salesforce {\n  match by crm id\n  every 1 minute batch 0\n}\n", encoding="utf-8"
    )
    result = lint("sync.mr")
    assert result.exit_code == 1, result.output
    assert (
        "sync.mr:2:3: error[MR512]: `match by crm id` is not supported: mrules keys a"
        " prospect by its email\n"
        "  |\n"
        "1 | sync salesforce {\n"
        "2 |   match by crm id\n"
        "  |   ^^^^^^^^^^^^^^^ write"
    ) in result.stdout
    assert (
        "sync.mr:3:3: warning[MR509]: the connector syncs at most every 2 minutes\n"
        "  |\n"
        "2 |   match by crm id\n"
        "3 |   every 1 minute batch 0\n"
        "  |   ^^^^^^^^^^^^^^^^^^^^^^ write `every 2 minutes` or more\n"
    ) in result.stdout
    assert (
        "sync.mr:3:24: error[MR510]: a sync batch must hold at least one record\n"
        "  |\n"
        "2 |   match by crm id\n"
        "3 |   every 1 minute batch 0\n"
        "  |                        ^ the classic connector sends 200 records a batch\n"
    ) in result.stdout


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["lint", "warns.mr", "--config", "folder"], "--config: folder is a folder, not a file"),
        (
            ["lint", "warns.mr", "--sarif-file", "folder"],
            "--sarif-file: folder is a folder, not a file",
        ),
        (["test", "warns.mr", "-o", "folder"], "--output: folder is a folder, not a file"),
        (["report", "html", "folder", "--store", "s.db"], "OUT: folder is a folder, not a file"),
        (
            ["run", "warns.mr", "-", "--actions", "folder"],
            "--actions: folder is a folder, not a file",
        ),
        (["partition", "warns.mr", "--out", "warns.mr"], "--out: warns.mr is a file, not a folder"),
        (  # a newline in the name is shown escaped, as in the other messages
            ["lint", "warns.mr", "--config", "fol\nder"],
            "--config: fol\\x0ader is a folder, not a file",
        ),
    ],
)
def test_a_path_of_the_wrong_kind_is_one_error_line(
    workdir: Path, args: list[str], said: str
) -> None:
    """A folder given for a file (or a file for a folder) printed click's usage block,
    `Error: Invalid value for '--config': File 'folder' is a directory.`; every other bad
    input is one `mrules: error:` line. Exit 2 still."""
    Path("folder").mkdir()
    Path("fol\nder").mkdir()
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    assert result.exit_code == 2, result.output
    assert result.stderr == f"mrules: error: {said}\n"
    assert result.stdout == ""


QUERIES = """\
page action "Search" on "https://x.example/search?q=*" { score +1 }
page action "Shoes" on "x.example/shop?c=shoes" { score +1 }
page action "Boots" on "x.example/shop?c=boots" { score +1 }
"""


def test_a_query_the_views_lose_is_named_in_every_format(workdir: Path) -> None:
    """With url_ignore_query = true (the default) a wildcard whose URL holds a query
    matched no view, silently; two exact URLs differing by their query were one page,
    an error whose hint said only to merge them; and one exact URL with a query matched
    every view of its page, whatever the query, silently (MR407 now)."""
    Path("queries.mr").write_text(QUERIES, encoding="utf-8")
    result = lint("queries.mr", "--format", "json")
    assert result.exit_code == 1, result.output  # MR402 is an error
    got = {d["code"]: d for d in json.loads(result.stdout)}
    assert sorted(got) == ["MR402", "MR406", "MR407"]
    # The first exact URL with a query matches every view of its page (the second is
    # MR402, whose hint says so).
    one_page = got["MR407"]
    assert (one_page["line"], one_page["column"], one_page["severity"]) == (2, 24, "warning")
    assert "it matches every view of 'x.example/shop', whatever its query" in one_page["message"]
    assert one_page["hint"].startswith('write "x.example/shop" to say so')
    wild = got["MR406"]
    assert (wild["line"], wild["column"], wild["severity"]) == (1, 25, "warning")
    assert "this wildcard matches no view" in wild["message"]
    assert wild["hint"] == (
        "set url_ignore_query = false in the settings, or drop the query: "
        '"https://x.example/search" is that page whatever its query'
    )
    assert got["MR402"]["hint"].startswith("url_ignore_query = true drops the query string")

    sarif = json.loads(lint("queries.mr", "--format", "sarif").stdout)
    [run] = sarif["runs"]
    [found] = [r for r in run["results"] if r["ruleId"] == "MR406"]
    assert found["level"] == "warning"
    rules = {r["id"]: r["shortDescription"]["text"] for r in run["tool"]["driver"]["rules"]}
    assert rules["MR406"] == CODES["MR406"]
    assert rules["MR407"] == CODES["MR407"]
    github = lint("queries.mr", "--format", "github").stdout.splitlines()
    assert any(
        line.startswith("::warning file=queries.mr,line=1,col=25,") and "title=MR406::" in line
        for line in github
    ), github

    # With the query compared, both pages the author meant exist: nothing to say.
    Path("queries.mr").write_text(
        "settings { url_ignore_query = false }\n" + QUERIES, encoding="utf-8"
    )
    compared = lint("queries.mr", "--strict")
    assert compared.exit_code == 0, compared.output
    assert compared.stdout == ""


EMPTY_GROUP = """\
group "Sales" []
form "Demo request"
on submit of form "Demo request" { assign to group "Sales" }
"""


def test_an_empty_assignment_group_warns_fails_strict_and_can_be_silenced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`assign to group` on a group with no member assigns nobody at run time; lint
    said nothing. It is a warning like the others: `--strict` fails on it, an
    inline suppression silences it, and `--explain` describes it."""
    monkeypatch.chdir(tmp_path)
    Path("sales.mr").write_text(EMPTY_GROUP, encoding="utf-8")
    result = lint("sales.mr")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(
        "sales.mr:1:15: warning[MR117]: assignment group 'Sales' has no members: "
        "assigning to it assigns nobody\n"
    )
    assert result.stderr.strip() == "1 warning in 1 file"
    assert lint("sales.mr", "--strict").exit_code == 1
    assert lint("sales.mr", "--strict", "--ignore", "MR117").exit_code == 0
    Path("sales.mr").write_text(
        EMPTY_GROUP.replace("[]", "[]  # mrules: ignore[MR117]"), encoding="utf-8"
    )
    silenced = lint("sales.mr", "--strict")
    assert silenced.exit_code == 0, silenced.output
    assert silenced.stderr.strip() == "ok: 1 file, no problems"
    explained = lint("--explain", "MR117")
    assert explained.exit_code == 0, explained.output
    assert explained.stdout.startswith("## MR117: assignment group without members")
