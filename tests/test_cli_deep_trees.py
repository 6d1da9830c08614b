"""`mrules test`, `lint` and `fmt` on folder trees nested deeper than Python recurses
(1000 levels) or whose paths are longer than the system allows (PATH_MAX, 4096):
the folder walks keep a stack, and a folder that cannot be read is named, not skipped.

The trees are built and removed by going into them one relative folder at a time,
since their absolute paths are too long to name (and `shutil.rmtree` recurses)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from tests.conftest import CONTACT_RULES, contact_test

from mrules.cli import main

HERE = Path(__file__).parent / "testing"
RULES = CONTACT_RULES
TEST = contact_test("rules.mr", ("one", "a@x.example"))
FILES = {"rules.mr": RULES, "t.test.yaml": TEST}
LONG = "d" * 20  # 250 of them: a path of 5250 characters, beyond PATH_MAX


def _mrules(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def _build(top: Path, depth: int, name: str, every_level: bool) -> None:
    """`depth` folders `name` one in another under `top`, FILES at the bottom (and at
    every level with `every_level`)."""
    here = os.getcwd()
    os.chdir(top)
    try:
        for _ in range(depth):
            os.mkdir(name)
            os.chdir(name)
            if every_level:
                for f, text in FILES.items():
                    Path(f).write_text(text, encoding="utf-8")
        for f, text in FILES.items():
            Path(f).write_text(text, encoding="utf-8")
    finally:
        os.chdir(here)


def _remove(top: Path, name: str) -> None:
    """Remove the chain of `name` folders under `top`, from the bottom up."""
    here = os.getcwd()
    os.chdir(top)
    levels = 0
    try:
        while os.path.isdir(name):
            os.chdir(name)
            levels += 1
        for _ in range(levels):
            os.chdir("..")
            shutil.rmtree(name)  # holds files only by now
    finally:
        os.chdir(here)


@pytest.fixture
def deep(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """1100 folders `d` one in another, FILES at the top and at the bottom."""
    for f, text in FILES.items():
        (tmp_path / f).write_text(text, encoding="utf-8")
    _build(tmp_path, 1100, "d", every_level=False)
    monkeypatch.chdir(tmp_path)
    yield tmp_path
    monkeypatch.undo()
    _remove(tmp_path, "d")


@pytest.fixture
def too_long(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """250 folders of 20 characters one in another, FILES at the top and at every level:
    the deepest paths are longer than PATH_MAX."""
    for f, text in FILES.items():
        (tmp_path / f).write_text(text, encoding="utf-8")
    _build(tmp_path, 250, LONG, every_level=True)
    monkeypatch.chdir(tmp_path)
    yield tmp_path
    monkeypatch.undo()
    _remove(tmp_path, LONG)


def test_test_walks_a_tree_1100_folders_deep(deep: Path) -> None:
    res = _mrules("test", ".")
    assert res.exit_code == 0, res.output
    assert "2 passed" in res.output  # the top one and the bottom one


def test_lint_and_fmt_walk_a_tree_1100_folders_deep(deep: Path) -> None:
    res = _mrules("lint", ".")  # one rule set: the bottom file declares the form again
    assert res.exit_code == 1, res.output
    assert "error[MR101]: form 'Contact' is declared twice" in res.output
    assert "1 error in 2 files" in res.output
    res = _mrules("fmt", "--check", ".")
    assert res.exit_code == 0, res.output
    assert "2 files already formatted" in res.output


def test_test_names_a_folder_whose_path_is_too_long_and_runs_the_others(
    too_long: Path,
) -> None:
    res = _mrules("test", ".")
    assert res.exit_code == 2, res.output  # a broken test file (docs/testing.md)
    assert "internal error" not in res.output
    assert "cannot read the folder: File name too long" in res.output
    assert "(the path is longer than the system allows)" in res.output
    passed = int(res.output.split(" passed")[0].split()[-1])
    assert passed > 100  # the tests above that folder ran


def test_lint_and_fmt_refuse_a_folder_whose_path_is_too_long(too_long: Path) -> None:
    for args in (("lint", "."), ("fmt", "--check", ".")):
        res = _mrules(*args)
        assert res.exit_code == 1, res.output
        assert "internal error" not in res.output
        # the folder that cannot be read is named, not left out unsaid
        assert f"error[MR024]: cannot read {LONG}/" in res.output
        assert f"/{LONG}: File name too long" in res.output


def test_test_ends_on_loops_of_links_and_runs_each_file_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for f, text in FILES.items():
        (tmp_path / f).write_text(text, encoding="utf-8")
    sub = tmp_path / "sub"
    sub.mkdir()
    (sub / "up").symlink_to("..")  # two loops: 2**40 paths to follow once each
    (sub / "self").symlink_to("../sub")
    monkeypatch.chdir(tmp_path)
    res = _mrules("test", ".")
    assert res.exit_code == 0, res.output
    assert "1 passed" in res.output


def test_lint_hints_an_include_not_found_in_a_tree_1100_folders_deep(deep: Path) -> None:
    (deep / "inc.mr").write_text('include "rule"\n', encoding="utf-8")
    res = _mrules("lint", ".")
    assert res.exit_code == 1, res.output
    assert "internal error" not in res.output
    assert "error[MR020]: no rule file 'rule' under ." in res.output
    assert "did you mean 'rules'?" in res.output
