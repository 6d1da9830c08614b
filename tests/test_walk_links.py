"""One policy for links to folders, in every command that walks a folder (`mrules test`,
`lint`, `fmt`, `run`): a link to a folder found while walking is not entered, as git
treats it; a folder, or a link to one, named on the command line is walked. Links to
files are read."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from tests.conftest import CONTACT_RULES, contact_test, mrules_process

from mrules.loader import rule_files
from mrules.testing import find_test_files


def _tree(tmp_path: Path) -> tuple[Path, Path]:
    """`tree/` with a rule file and a test of its own, a link to `outside/` (a rule file and
    a test of its own) and a link to `/`; and `outside/`."""
    tree, outside = tmp_path / "tree", tmp_path / "outside"
    for folder, name in ((tree, "inside"), (outside, "outside")):
        folder.mkdir()
        (folder / f"{name}.mr").write_text(CONTACT_RULES, encoding="utf-8")
        (folder / f"{name}.test.yaml").write_text(
            contact_test(f"{name}.mr", (f"the {name} test", "a@x.example")), encoding="utf-8"
        )
    (tree / "elsewhere").symlink_to(outside, target_is_directory=True)
    (tree / "root").symlink_to("/", target_is_directory=True)
    return tree, outside


def _mrules(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """The CLI in a process of its own, stopped after a minute: walking the whole file
    system through the link to `/` would take far longer."""
    return mrules_process(*args, cwd=cwd, timeout=60)


def test_test_does_not_enter_links_to_folders_in_a_tree(tmp_path: Path) -> None:
    tree, _ = _tree(tmp_path)
    res = _mrules("test", "-v", "-q", ".", cwd=tree)
    assert res.returncode == 0, res.stdout + res.stderr
    out = res.stdout + res.stderr
    assert "the inside test" in out
    assert "1 passed" in out
    # nothing about the files behind the links: not run, not refused, not named
    assert "outside" not in out and "elsewhere" not in out and "root/" not in out


def test_test_and_lint_agree_on_what_a_tree_holds(tmp_path: Path) -> None:
    tree, _ = _tree(tmp_path)
    assert find_test_files([str(tree)]) == [str(tree / "inside.test.yaml")]
    assert [f for f, _ in rule_files([str(tree)])] == [tree / "inside.mr"]


def test_a_link_to_a_folder_named_on_the_command_line_is_walked(tmp_path: Path) -> None:
    tree, _ = _tree(tmp_path)
    res = _mrules("test", "-v", "-q", "elsewhere", cwd=tree)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "the outside test" in res.stdout and "1 passed" in res.stdout
    res = _mrules("lint", "elsewhere", cwd=tree)
    assert res.returncode == 0, res.stdout + res.stderr
    res = _mrules("fmt", "--check", "elsewhere", cwd=tree)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "1 file already formatted" in res.stdout + res.stderr


def test_links_to_test_files_in_a_tree_are_read(tmp_path: Path) -> None:
    tree, outside = _tree(tmp_path)
    # its rules are found beside the link: the tree's own
    (outside / "extra.test.yaml").write_text(
        contact_test("inside.mr", ("the linked test", "a@x.example")), encoding="utf-8"
    )
    (tree / "linked.test.yaml").symlink_to(outside / "extra.test.yaml")
    res = _mrules("test", "-v", "-q", ".", cwd=tree)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "the linked test" in res.stdout and "2 passed" in res.stdout


@pytest.mark.parametrize("args", [("lint", "."), ("fmt", "--check", ".")])
def test_lint_and_fmt_do_not_enter_links_to_folders_in_a_tree(
    tmp_path: Path, args: tuple[str, ...]
) -> None:
    tree, _ = _tree(tmp_path)
    res = _mrules(*args, cwd=tree)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "outside" not in res.stdout + res.stderr
