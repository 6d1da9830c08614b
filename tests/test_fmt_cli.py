"""`mrules fmt` end to end: rewrite in place, --check, --diff, stdin, folders, bad input."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from mrules.cli import main

ROOT = Path(__file__).resolve().parent.parent
MESSY = ROOT / "tests" / "fmt" / "messy"
IDENTITY = ROOT / "tests" / "fmt" / "identity"


def _run(*args: str, input: bytes | None = None):
    return CliRunner().invoke(main, ["fmt", *args], input=input, catch_exceptions=False)


@pytest.fixture
def work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder with one messy and one canonical file; the cwd, so paths print short."""
    folder = tmp_path / "rules"
    folder.mkdir()
    shutil.copy(MESSY / "semicolons.mr", folder / "a.mr")
    shutil.copy(IDENTITY / "page_actions.mr", folder / "b.mr")
    monkeypatch.chdir(tmp_path)
    return folder


def test_rewrites_only_the_files_that_change(work: Path) -> None:
    before_b = (work / "b.mr").stat().st_mtime_ns
    result = _run("rules")
    assert result.exit_code == 0
    assert result.stderr == "reformatted rules/a.mr\n1 file reformatted, 1 file left unchanged\n"
    assert (work / "a.mr").read_text() == _run(
        "-", input=(MESSY / "semicolons.mr").read_bytes()
    ).stdout
    assert (work / "b.mr").stat().st_mtime_ns == before_b
    again = _run("rules", "--check")
    assert again.exit_code == 0
    assert again.stderr == "2 files already formatted\n"


def test_check_exits_1_and_writes_nothing(work: Path) -> None:
    before = (work / "a.mr").read_bytes()
    result = _run("--check", "rules")
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr == (
        "would reformat rules/a.mr\n1 file would be reformatted, 1 file already formatted\n"
    )
    assert (work / "a.mr").read_bytes() == before
    assert _run("--check", "rules/b.mr").exit_code == 0


def test_diff_prints_a_unified_diff_and_writes_nothing(work: Path, snapshot) -> None:
    before = (work / "a.mr").read_bytes()
    result = _run("--diff", "rules")
    assert result.exit_code == 0
    assert (work / "a.mr").read_bytes() == before
    assert result.stdout == snapshot
    assert _run("--diff", "--check", "rules").exit_code == 1
    assert _run("--diff", "rules/b.mr").stdout == ""


def test_a_file_with_syntax_errors_is_left_untouched(work: Path) -> None:
    bad = work / "c.mr"
    bad.write_text('list  "x"\non submit of form "f" { score 25 }\n')
    before = bad.read_bytes()
    result = _run("rules")
    assert result.exit_code == 1
    assert bad.read_bytes() == before
    assert "rules/c.mr:2:31: error[MR001]: unexpected '25'" in result.stderr
    assert "score +25" in result.stderr  # the hint, with the caret excerpt
    assert "1 file with errors (left unchanged)" in result.stderr
    assert (work / "a.mr").read_text() != (MESSY / "semicolons.mr").read_text()  # others done


def test_stdin_to_stdout() -> None:
    result = _run("-", input=b'list  "x" tag "y"\n')
    assert result.exit_code == 0
    assert result.stdout == 'list "x"\ntag "y"\n'
    assert result.stderr == ""
    assert _run("-", "--check", input=b'list "x"\n').exit_code == 0
    check = _run("-", "--check", input=b'list  "x"\n')
    assert (check.exit_code, check.stdout) == (1, "")
    diff = _run("-", "--diff", input=b'list  "x"\n')
    assert diff.stdout == (
        '--- <stdin>\n+++ <stdin> (formatted)\n@@ -1 +1 @@\n-list  "x"\n+list "x"\n'
    )


def test_stdin_with_errors_prints_nothing_on_stdout() -> None:
    result = _run("-", input=b'list "x" ;\n')
    assert result.exit_code == 1
    assert result.stdout == ""
    assert "<stdin>:1:10: error[MR001]" in result.stderr


def test_crlf_and_missing_final_newline_count_as_changes(work: Path) -> None:
    (work / "b.mr").write_bytes(b'list "x"\r\nlist "y"')
    result = _run("--diff", "rules/b.mr")
    assert result.stdout.endswith('+list "y"\n')
    assert "\\ No newline at end of file" in result.stdout
    assert _run("rules/b.mr").exit_code == 0
    assert (work / "b.mr").read_bytes() == b'list "x"\nlist "y"\n'


def test_lone_cr_line_ends_split_the_diff_as_they_split_the_file(work: Path) -> None:
    """A lone `\r` ends a line for the loader and the LSP: the diff shows a file with
    old Mac line ends line by line, not as one removed line."""
    (work / "b.mr").write_bytes(b'list "x"\rlist  "y"\r\rlist "z"')
    result = _run("--diff", "rules/b.mr")
    assert result.exit_code == 0
    assert result.stdout_bytes == (  # `stdout` would read `\r\n` as `\n`
        b"--- rules/b.mr\n+++ rules/b.mr (formatted)\n@@ -1,4 +1,4 @@\n"
        b'-list "x"\r\n-list  "y"\r\n-\r\n-list "z"\n\\ No newline at end of file\n'
        b'+list "x"\n+list "y"\n+\n+list "z"\n'
    )
    assert _run("--check", "rules/b.mr").exit_code == 1
    assert _run("rules/b.mr").exit_code == 0
    assert (work / "b.mr").read_bytes() == b'list "x"\nlist "y"\n\nlist "z"\n'
    assert _run("--check", "rules/b.mr").exit_code == 0
    # Mixed line ends: each line keeps its own in the diff.
    (work / "b.mr").write_bytes(b'list "x"\r\nlist "y"\rlist "z"\n')
    result = _run("--diff", "rules/b.mr")
    assert result.stdout_bytes.split(b"\n")[3:] == [
        b'-list "x"\r',
        b'-list "y"\r',
        b'+list "x"',
        b'+list "y"',
        b' list "z"',
        b"",
    ]


@pytest.mark.parametrize(
    ("setup", "args", "message"),
    [
        (None, ["nowhere"], "nowhere: no such file or folder"),
        ("empty", ["empty"], "empty: no rule files (*.mr) in this folder"),
        ("latin1", ["latin1.mr"], "latin1.mr:1: not UTF-8 text"),
        (None, [], "give at least one rule file or folder"),
        (None, ["-", "x.mr"], "'-' (standard input) cannot be mixed"),
    ],
)
def test_unreadable_input_exits_2(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    setup: str | None,
    args: list[str],
    message: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    if setup == "empty":
        (tmp_path / "empty").mkdir()
    elif setup == "latin1":
        (tmp_path / "latin1.mr").write_bytes('list "café"\n'.encode("latin-1"))
    result = _run(*args)
    assert result.exit_code == 2
    assert result.stderr.startswith("mrules: error: ")
    assert message in result.stderr


def test_nothing_is_written_when_one_file_is_unreadable(work: Path) -> None:
    (work / "z.mr").write_bytes(b'list "\xff"\n')
    before = (work / "a.mr").read_bytes()
    assert _run("rules").exit_code == 2
    assert (work / "a.mr").read_bytes() == before


def test_help_has_an_example() -> None:
    result = CliRunner().invoke(main, ["fmt", "--help"])
    assert result.exit_code == 0
    assert "mrules fmt examples/getcloudy/rules" in result.stdout


def test_the_example_and_library_are_in_canonical_layout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    result = _run("--check", "examples", "rules")
    assert result.exit_code == 0, result.stderr


# -- atomic rewrite: a failure, a full disk or a kill never leaves a damaged file ----------


def test_a_failed_write_leaves_the_file_and_no_temporary(
    work: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno
    import os

    import mrules.atomic

    before = (work / "a.mr").read_bytes()

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(mrules.atomic.os, "fsync", full)
    result = CliRunner().invoke(main, ["fmt", "rules/a.mr"])
    monkeypatch.undo()
    assert result.exit_code == 4, result.output
    assert result.stderr == (
        "mrules: error: rules/a.mr: cannot write: No space left on device; the file was left"
        " as it was\n"
    )
    assert (work / "a.mr").read_bytes() == before
    assert sorted(p.name for p in work.iterdir()) == ["a.mr", "b.mr"]


def test_the_rewrite_keeps_the_mode_and_a_symlink(work: Path, tmp_path: Path) -> None:
    """The rewrite keeps the file's mode, and a link inside the rule root stays a link."""
    os_ = __import__("os")
    (work / "a.mr").chmod(0o640)
    (work / "lib").mkdir()
    real = work / "lib" / "real.mr"
    shutil.copy(MESSY / "semicolons.mr", real)
    (work / "c.mr").symlink_to(real)
    assert _run("rules/a.mr", "rules/c.mr").exit_code == 0
    assert (work / "a.mr").stat().st_mode & 0o777 == 0o640
    assert (work / "c.mr").is_symlink() and os_.readlink(work / "c.mr") == str(real)
    assert real.read_bytes() == (work / "a.mr").read_bytes()


def test_a_link_out_of_the_rule_root_is_refused_and_its_target_untouched(
    work: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "outside.mr"
    shutil.copy(MESSY / "semicolons.mr", outside)
    before = outside.read_bytes()
    (work / "c.mr").symlink_to(outside)
    res = _run("rules/c.mr")
    assert res.exit_code == 1, res.output  # MR024, as lint reports it (docs/exit-codes.md)
    assert "error[MR024]: rules/c.mr leads to" in res.stderr
    assert outside.read_bytes() == before


def test_full_disk_leaves_the_file_whole(tmp_path: Path) -> None:
    """A tmpfs too small for the formatted copy: exit 4, the original intact (root only)."""
    import os
    import subprocess

    if os.geteuid() != 0:
        pytest.skip("needs root to mount a small tmpfs")
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(disk)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        pytest.skip(f"mount failed: {mounted.stderr.strip()}")
    try:
        messy = (MESSY / "semicolons.mr").read_text(encoding="utf-8")
        text = messy * (40_000 // len(messy) + 1)  # about 40 KB: fits once, not twice
        (disk / "big.mr").write_text(text, encoding="utf-8")
        res = CliRunner().invoke(main, ["fmt", str(disk / "big.mr")])
        assert res.exit_code == 4, res.output
        assert "No space left on device" in res.stderr and "left as it was" in res.stderr
        assert (disk / "big.mr").read_text(encoding="utf-8") == text
        assert [p.name for p in disk.iterdir()] == ["big.mr"]
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def test_killed_rewrites_leave_the_old_or_the_new_file(tmp_path: Path) -> None:
    """SIGKILL the moment `fmt` starts writing (its temporary file appears), or a little
    later: the file is always the old one or the new one, never empty or cut."""
    import os
    import subprocess
    import sys
    import time

    messy = (MESSY / "semicolons.mr").read_text(encoding="utf-8")
    text = messy * (60_000 // len(messy) + 1)
    target = tmp_path / "big.mr"
    formatted = CliRunner().invoke(main, ["fmt", "-"], input=text.encode()).stdout
    assert formatted and formatted != text
    for delay in (0.0, 0.0, 0.002, 0.01):
        target.write_text(text, encoding="utf-8")
        proc = subprocess.Popen(
            [sys.executable, "-m", "mrules", "fmt", str(target)],
            stderr=subprocess.DEVNULL,
            env={**os.environ},
        )
        deadline = time.monotonic() + 60
        while proc.poll() is None and time.monotonic() < deadline:
            if any(p.name.endswith(".tmp") for p in tmp_path.iterdir()):
                time.sleep(delay)
                break
        proc.kill()
        proc.wait()
        assert target.read_text(encoding="utf-8") in (text, formatted), delay
        for p in tmp_path.iterdir():
            if p.name != "big.mr":
                p.unlink()  # a temporary file a kill left behind: harmless, hidden


def test_a_suppression_stays_on_the_line_of_what_it_silences(tmp_path: Path) -> None:
    """The example of docs/configuration.md: a one-line rule with `# mrules:
    ignore[MR312]` is spread over four lines; the comment goes on the header, where
    MR312 is reported, not after the `}` (where it silenced nothing and lint --strict
    failed). Inside a block, it follows the statement it silences."""
    rules = tmp_path / "rules.mr"
    rules.write_text(
        'automation rule "A" priority 10 { when all { score > 10 } then { score +1 } }\n'
        'automation rule "B" priority 10 { when all { score > 20 } then { score +1 } }'
        "  # mrules: ignore[MR312]\n"
        'form "F"\non submit of form "F" { score +1 add tag "t" }  # mrules: ignore[MR109]\n',
        "utf-8",
    )
    lint = CliRunner().invoke(main, ["lint", "--strict", str(rules)])
    assert lint.exit_code == 0, lint.output
    assert _run(str(rules)).exit_code == 0
    text = rules.read_text("utf-8")
    assert 'automation rule "B" priority 10 {  # mrules: ignore[MR312]\n' in text
    assert '  add tag "t"  # mrules: ignore[MR109]\n' in text
    lint = CliRunner().invoke(main, ["lint", "--strict", str(rules)])
    assert lint.exit_code == 0, lint.output
    assert _run("--check", str(rules)).exit_code == 0


def test_each_suppression_goes_with_what_it_silences_or_its_first_code(tmp_path: Path) -> None:
    """A comment naming a code follows that code's diagnostic, not another one starting
    earlier on its line; a bare one follows what it silences; an unused one stays on
    the line of its line's first code; a comment alone on its line stays there."""
    rules = tmp_path / "rules.mr"
    rules.write_text(
        '# mrules: ignore-file[MR312]\ntag "t"\nform "F"\n'
        'automation rule "A" priority 10 { when all { score > 10 } then { score +1 } }\n'
        'automation rule "B" priority 10 { when all { score > 20 } then { add tag "u" } }'
        "  # mrules: ignore[MR109]\n"
        'on submit of form "F" { score +1 add tag "v" }  # mrules: ignore\n'
        'on submit of form "F" { score +1 score +2 }  # mrules: ignore[MR117]\n'
        "# mrules: ignore[MR109]\n",
        "utf-8",
    )
    assert _run(str(rules)).exit_code == 0
    assert rules.read_text("utf-8").split("\n\n")[2:] == [
        'automation rule "B" priority 10 {\n  when all { score > 20 }\n'
        '  then { add tag "u" }  # mrules: ignore[MR109]\n}',
        'on submit of form "F" {\n  score +1\n  add tag "v"  # mrules: ignore\n}',
        'on submit of form "F" {  # mrules: ignore[MR117]\n  score +1\n  score +2\n}\n'
        "# mrules: ignore[MR109]\n",
    ]


def test_a_file_with_file_wide_suppressions_only_is_formatted(tmp_path: Path) -> None:
    rules = tmp_path / "rules.mr"
    rules.write_text(
        '# mrules: ignore-file[MR109]\nform "F"\non submit of form "F" { add tag "t" }\n',
        "utf-8",
    )
    assert _run(str(rules)).exit_code == 0
    assert rules.read_text("utf-8") == (
        '# mrules: ignore-file[MR109]\nform "F"\n\non submit of form "F" {\n  add tag "t"\n}\n'
    )


def test_a_suppression_that_formatting_would_split_leaves_the_file_unchanged(
    tmp_path: Path,
) -> None:
    """A bare ignore after a one-line block silences both undeclared tags; spread over
    lines, one comment cannot cover both: the file is left as it is, with the reason."""
    rules = tmp_path / "rules.mr"
    text = 'form "F"\ntag "t"\n'
    text += 'on submit of form "F" { add tag "u" add tag "v" }  # mrules: ignore\n'
    rules.write_text(text, "utf-8")
    res = CliRunner().invoke(main, ["fmt", str(rules)])
    assert res.exit_code == 1
    assert "a comment covers one line" in res.stderr and "left unchanged" in res.stderr
    assert rules.read_text("utf-8") == text


REFUSED = [
    (
        "outside",
        lambda p: p.symlink_to("/etc/passwd"),
        "leads to /etc/passwd, outside the rule root",
    ),
    ("fifo", lambda p: os.mkfifo(p), "is not a regular file"),
    ("dangling", lambda p: p.symlink_to(p.parent / "nowhere.mr"), "is a link to nothing"),
    ("loop", lambda p: p.symlink_to(p), "is a loop of symbolic links"),
]


@pytest.mark.parametrize(("name", "make", "message"), REFUSED, ids=[r[0] for r in REFUSED])
@pytest.mark.parametrize("mode", [[], ["--check"], ["--diff"], ["--check", "--diff"]])
def test_a_refused_file_is_mr024_and_the_others_are_still_formatted(
    work: Path, name: str, make: Callable[[Path], object], message: str, mode: list[str]
) -> None:
    """As `lint` reports it (exit 1, docs/exit-codes.md): `fmt` stopped with exit 2 and
    formatted nothing."""
    make(work / "x.mr")
    messy = (work / "a.mr").read_text()
    result = _run(*mode, "rules")
    assert result.exit_code == 1, result.output
    said = f"rules/x.mr:1:1: error[MR024]: rules/x.mr {message}"
    assert said in result.stderr, result.stderr
    assert "= hint: " in result.stderr
    assert "mrules: error:" not in result.stderr
    assert "1 file refused" in result.stderr.splitlines()[-1]
    lint = CliRunner().invoke(main, ["lint", "rules"])
    assert lint.exit_code == 1 and said in lint.stdout  # the one diagnostic lint gives
    if not mode:
        assert "reformatted rules/a.mr" in result.stderr
        assert (work / "a.mr").read_text() != messy  # the other file is formatted
        again = _run("--check", "rules")
        assert again.exit_code == 1 and "would reformat" not in again.stderr
    else:
        assert (work / "a.mr").read_text() == messy  # --check and --diff write nothing
        if "--check" in mode:
            assert "would reformat rules/a.mr" in result.stderr
        if "--diff" in mode:
            assert "+++ rules/a.mr (formatted)" in result.stdout


def test_a_refused_file_alone_is_mr024(work: Path) -> None:
    (work / "x.mr").symlink_to("/etc/passwd")
    result = _run("rules/x.mr")
    assert result.exit_code == 1, result.output
    assert "error[MR024]: rules/x.mr leads to /etc/passwd" in result.stderr
    assert result.stderr.endswith("1 file refused (not read, see MR024)\n")


@pytest.mark.parametrize(
    ("name", "shown"), [("a\nb.mr", "a\\x0ab.mr"), ("bell\x07.mr", "bell\\x07.mr")]
)
def test_a_control_character_in_a_file_name_is_shown_escaped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, shown: str
) -> None:
    """As `lint` shows such a name: a newline split `would reformat` and the diff's `---`
    line in two, and an escape could steer the terminal."""
    monkeypatch.chdir(tmp_path)
    try:
        Path(name).write_bytes((MESSY / "semicolons.mr").read_bytes())
    except OSError:
        pytest.skip("this file system refuses such a name")
    check = _run("--check", ".")
    assert check.exit_code == 1
    assert check.stderr.splitlines()[0] == f"would reformat {shown}"
    diff = _run("--diff", name)
    assert diff.stdout.splitlines()[:2] == [f"--- {shown}", f"+++ {shown} (formatted)"]
    stdin = _run("--diff", "-", "--stdin-filename", name, input=Path(name).read_bytes())
    assert stdin.stdout.splitlines()[0] == f"--- {shown}"
    res = _run(name)
    assert res.exit_code == 0
    assert res.stderr.splitlines()[0] == f"reformatted {shown}"
