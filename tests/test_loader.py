"""The loader: rule folders, include inside the rule root and into the library, bad files."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from mrules.cli import main
from mrules.loader import LoadError, load, load_text


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


def test_missing_include_is_mr020(tmp_path) -> None:
    _write(tmp_path, "a.mr", 'include "nowhere"')
    [d] = load([tmp_path]).diagnostics
    assert d.code == "MR020" and "nowhere" in d.message


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
