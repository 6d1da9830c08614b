"""The loader: rule folders, include inside the rule root and into the library, bad files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from mrules.cli import main
from mrules.loader import LoadError, display_path, library_files, load, load_text


def _write(root, name: str, text: str) -> None:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_folder_files_load_in_sorted_order_with_includes_first(tmp_path) -> None:
    _write(tmp_path, "b.mr", 'list "B"')
    _write(tmp_path, "a.mr", 'include "shared/names"\nlist "A"')
    _write(tmp_path, "shared/names.mr", 'list "Shared"')
    result = load([tmp_path])
    assert result.diagnostics == []
    names = [f.path.rsplit("/", 1)[-1] for f in result.program.files]
    assert names == ["names.mr", "a.mr", "b.mr"]  # included once, before its includer


def test_library_include_and_did_you_mean(tmp_path) -> None:
    ok = load_text('include "library/pardot-default-scoring"')
    assert ok.program.files[0].path == "library/pardot-default-scoring.mr"
    bad = load_text('include "library/pardot-default-scorng"', "x.mr")
    [d] = bad.diagnostics
    assert d.code == "MR020"
    assert d.hint == "did you mean 'library/pardot-default-scoring'?"


def test_a_library_name_far_from_every_file_lists_them_all_in_order() -> None:
    """No near name to offer: the hint lists the bundled files, by name (the order of the
    folder's entries is the file system's)."""
    [d] = load_text('include "library/zzzzzzzz"', "x.mr").diagnostics
    assert (d.code, d.message) == ("MR020", "no library file 'zzzzzzzz'")
    assert d.hint == "available: pardot-default-grading, pardot-default-scoring"
    assert library_files() == ["pardot-default-grading", "pardot-default-scoring"]


def test_missing_include_is_mr020(tmp_path) -> None:
    _write(tmp_path, "a.mr", 'include "nowhere"')
    [d] = load([tmp_path]).diagnostics
    assert d.code == "MR020" and "nowhere" in d.message
    assert d.hint is not None and 'include "library/pardot-default-scoring"' in d.hint


def test_missing_include_suggests_a_near_file(tmp_path) -> None:
    _write(tmp_path, "shared/scoring.mr", 'list "X"')
    _write(tmp_path, "a.mr", 'include "shared/scorng.mr"')
    [d] = load([tmp_path / "a.mr"]).diagnostics
    assert d.code == "MR020" and d.hint == "did you mean 'shared/scoring'?"


@pytest.mark.parametrize("target", ["../outside", "/etc/passwd", "sub/../../outside"])
def test_include_never_leaves_the_rule_root(tmp_path, target: str) -> None:
    root = tmp_path / "rules"
    _write(root, "a.mr", f'include "{target}"')
    _write(tmp_path, "outside.mr", 'list "Secret"')
    result = load([root])
    [d] = result.diagnostics
    assert d.code == "MR021"
    assert all("outside" not in f.path for f in result.program.files)


def test_symlink_out_of_the_root_is_refused(tmp_path) -> None:
    root = tmp_path / "rules"
    _write(root, "a.mr", 'include "link"')
    _write(tmp_path, "outside.mr", 'list "Secret"')
    (root / "link.mr").symlink_to(tmp_path / "outside.mr")
    # The folder walk itself loads link.mr (it is a rule file in the folder), but the
    # include resolves outside the root and is refused.
    diags = [d for d in load([root / "a.mr"]).diagnostics]
    assert [d.code for d in diags] == ["MR021"]


def test_include_cycle_loads_each_file_once(tmp_path) -> None:
    _write(tmp_path, "a.mr", 'include "b"\nlist "A"')
    _write(tmp_path, "b.mr", 'include "a"\nlist "B"')
    result = load([tmp_path / "a.mr"])
    assert result.diagnostics == []
    assert sorted(f.path.rsplit("/", 1)[-1] for f in result.program.files) == ["a.mr", "b.mr"]


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (lambda p: None, "no such file or folder"),
        (lambda p: p.mkdir(), "no rule files"),
        (lambda p: p.write_bytes(b'list "caf\xe9"'), "not UTF-8"),
    ],
)
def test_unreadable_rule_sets_exit_2_with_a_message(tmp_path, setup, message: str) -> None:
    target = tmp_path / "x.mr" if "UTF" in message else tmp_path / "x"
    setup(target)
    with pytest.raises(LoadError, match=message):
        load([target])
    result = CliRunner().invoke(main, ["lint", str(target)])
    assert result.exit_code == 2
    assert message in result.output and "Traceback" not in result.output


# ---------------------------------------------------------------- refused files

SECRET = "s3cr3t-value-4242"
EVENT = (
    '{"ts":"2026-11-02T09:00:00Z","type":"page_view","prospect":"a@example.com","url":"x.com"}\n'
)


def _mrules(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """The installed command, as a user runs it (a real process, its own environment)."""
    cmd = [sys.executable, "-m", "mrules", *args]
    return subprocess.run(
        cmd, cwd=cwd, capture_output=True, text=True, timeout=120, env={**os.environ, **(env or {})}
    )


def _rules_with(tmp_path: Path, name: str, make) -> Path:  # type: ignore[no-untyped-def]
    root = tmp_path / "rules"
    _write(root, "a.mr", 'list "A"\n')
    make(root / name)
    (tmp_path / "events.jsonl").write_text(EVENT)
    return root


def _every_command(tmp_path: Path, env: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        " ".join(args): _mrules(*args, cwd=tmp_path, env=env)
        for args in (
            ("lint", "rules"),
            ("lint", "rules", "--format", "json"),
            ("lint", "rules", "--format", "sarif"),
            ("lint", "rules", "--format", "github"),
            ("parse", "rules"),
            ("run", "rules", "events.jsonl", "--store", "s.db"),
            ("lint", "rules/env.mr"),
        )
    }


def test_a_link_to_the_process_environment_is_refused_and_never_printed(tmp_path) -> None:
    _rules_with(tmp_path, "env.mr", lambda p: p.symlink_to("/proc/self/environ"))
    results = _every_command(tmp_path, env={"MRULES_TEST_SECRET": SECRET})
    for what, res in results.items():
        out = res.stdout + res.stderr
        assert SECRET not in out, what
        assert "Traceback" not in out, what
        assert res.returncode == 1, (what, out)
        assert "MR024" in out, (what, out)
    text = results["lint rules"].stdout
    assert "rules/env.mr:1:1: error[MR024]: rules/env.mr leads to /proc/" in text
    assert "outside the rule root rules" in text
    assert "= hint: rule files and their links stay inside the rule folder" in text


def test_a_link_to_a_secret_file_is_refused_by_every_command(tmp_path) -> None:
    secret = tmp_path / "outside" / "secret.txt"
    secret.parent.mkdir()
    secret.write_text(f"token = {SECRET}\n")  # not a rule file: a parse error would quote it
    _rules_with(tmp_path, "env.mr", lambda p: p.symlink_to(secret))
    for what, res in _every_command(tmp_path).items():
        out = res.stdout + res.stderr
        assert SECRET not in out and "token" not in out, what
        assert res.returncode == 1 and "MR024" in out, (what, out)
    fmt = _mrules("fmt", "rules", cwd=tmp_path)
    assert SECRET not in fmt.stdout + fmt.stderr
    assert fmt.returncode == 1, fmt.stderr  # MR024, as lint reports it; the rest is formatted
    assert "rules/env.mr:1:1: error[MR024]: rules/env.mr leads to" in fmt.stderr
    assert "outside the rule root" in fmt.stderr
    assert secret.read_text() == f"token = {SECRET}\n"  # fmt never rewrites through the link


def test_an_include_of_a_link_out_of_the_root_points_at_the_include(tmp_path) -> None:
    root = tmp_path / "rules"
    _write(root, "a.mr", 'list "A"\ninclude "sub/env"\n')
    (root / "sub").mkdir()
    (tmp_path / "secret.mr").write_text(f"{SECRET}\n")
    (root / "sub" / "env.mr").symlink_to(tmp_path / "secret.mr")
    result = load([root / "a.mr"])
    [d] = result.diagnostics
    assert (d.code, d.path, d.start) == ("MR021", display_path(root / "a.mr"), 17)
    assert "outside the rule root" in d.message
    assert not any(SECRET in s.text for s in result.sources.values())


def test_links_inside_the_root_are_followed_once(tmp_path) -> None:
    root = tmp_path / "rules"
    _write(root, "shared/lists.mr", 'list "Shared"\n')
    _write(root, "a.mr", 'include "alias"\nlist "A"\n')
    (root / "alias.mr").symlink_to(root / "shared" / "lists.mr")
    result = load([root])
    assert result.diagnostics == []
    names = [f.path.rsplit("/", 1)[-1] for f in result.program.files]
    assert names == ["lists.mr", "a.mr"]


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p.symlink_to("/dev/zero"), "leads to /dev/zero, outside the rule root"),
        (lambda p: os.mkfifo(p), "is not a regular file"),
        (lambda p: p.symlink_to(p.parent / "nowhere.mr"), "is a link to nothing"),
        (lambda p: p.symlink_to(p), "is a loop of symbolic links"),
    ],
    ids=["dev-zero", "fifo", "dangling", "loop"],
)
def test_special_files_are_refused_without_being_read(tmp_path, make, message: str) -> None:
    _rules_with(tmp_path, "x.mr", make)
    res = _mrules("lint", "rules", cwd=tmp_path)  # a FIFO read would block: the timeout fails
    assert res.returncode == 1, res.stderr
    assert f"rules/x.mr:1:1: error[MR024]: rules/x.mr {message}" in res.stdout
    assert "Traceback" not in res.stdout + res.stderr


def test_lint_counts_a_refused_rule_file_among_the_files_as_fmt_does(tmp_path) -> None:
    """A rule file refused unread is a file of the project with an error: the summary
    said `2 errors in 1 file` here, counting only the file it read."""
    root = _rules_with(tmp_path, "env.mr", lambda p: p.symlink_to("/dev/zero"))
    os.mkfifo(root / "pipe.mr")
    lint = _mrules("lint", "rules", cwd=tmp_path)
    assert lint.returncode == 1, lint.stderr
    assert lint.stdout.count("error[MR024]") == 2
    assert lint.stderr == "2 errors in 3 files\n"
    fmt = _mrules("fmt", "--check", "rules", cwd=tmp_path)
    assert fmt.stderr.endswith("1 file already formatted, 2 files refused (not read, see MR024)\n")
    alone = _mrules("lint", "rules/env.mr", cwd=tmp_path)
    assert alone.stderr == "1 error in 1 file\n"


def test_an_include_of_a_fifo_or_a_link_loop_is_a_diagnostic(tmp_path) -> None:
    root = tmp_path / "rules"
    _write(root, "a.mr", 'include "pipe"\ninclude "loop"\n')
    os.mkfifo(root / "pipe.mr")
    (root / "loop.mr").symlink_to(root / "loop.mr")
    diags = load([root / "a.mr"]).diagnostics
    assert [(d.code, d.start) for d in diags] == [("MR024", 8), ("MR024", 23)]
    assert "not a regular file" in diags[0].message and "loop" in diags[1].message


def test_include_chains_stop_at_32_files(tmp_path) -> None:
    for i in range(400):
        _write(tmp_path, f"f{i:03}.mr", f'include "f{i + 1:03}"\n' if i < 399 else 'list "x"\n')
    diags = load([tmp_path / "f000.mr"]).diagnostics
    [d] = diags
    assert d.code == "MR022" and d.path.endswith("f032.mr")
    assert d.message == "includes nested more than 32 deep"
    _write(tmp_path / "ok", "f00.mr", "".join(f'include "f{i:02}"\n' for i in range(1, 40)))
    for i in range(1, 40):  # many includes side by side are no chain
        _write(tmp_path / "ok", f"f{i:02}.mr", f'list "L{i}"\n')
    assert load([tmp_path / "ok" / "f00.mr"]).diagnostics == []


@pytest.mark.parametrize(
    ("target", "code", "message"),
    [
        ("a" * 5000, "MR023", "include path of 5,000 characters"),
        ("a" * 256, "MR023", "include path of 256 characters"),
        ("a\\u0000b", "MR015", "NUL"),
        ("library/a\\u0000b", "MR015", "NUL"),
        ("x\\ud800", "MR015", "lone surrogate"),
        ("a" * 255, "MR020", "no rule file"),
        ("sub/" * 60 + "x", "MR020", "no rule file"),
    ],
    ids=["5000", "256", "nul", "library-nul", "surrogate", "255", "deep-dirs"],
)
def test_include_names_no_file_system_takes_are_diagnostics(tmp_path, target, code, message):
    _write(tmp_path, "a.mr", f'include "{target}"\n')
    diags = load([tmp_path / "a.mr"]).diagnostics
    assert [d.code for d in diags] == [code]
    assert message in diags[0].message


def test_a_file_name_that_is_not_utf8_is_shown_escaped(tmp_path) -> None:
    root = tmp_path / "rules"
    root.mkdir()
    (root / os.fsdecode(b"caf\xe9.mr")).write_text('list "A" @\n')
    res = _mrules("lint", "rules", "--format", "json", cwd=tmp_path)
    assert res.returncode == 1 and "Traceback" not in res.stderr
    assert json.loads(res.stdout)[0]["path"] == "rules/caf\\xe9.mr"
