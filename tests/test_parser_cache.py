"""The parser's tables are cached where only this user can write (`parser._tables_cache`).

Lark's own `cache=True` unpickled a file of a name anyone could guess in the shared temp
folder: another local user could create it first and have mrules run their code."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

RULE = 'list "MQL"\n'


def _lint(tmp_path: Path, cache_home: Path) -> subprocess.CompletedProcess[str]:
    temp = tmp_path / "temp"
    temp.mkdir(exist_ok=True)
    env = {**os.environ, "XDG_CACHE_HOME": str(cache_home), "TMPDIR": str(temp)}
    done = subprocess.run(
        [sys.executable, "-m", "mrules", "lint", "-"],
        input=RULE, capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "ok: 1 file, no problems" in done.stderr
    assert sorted(p.name for p in temp.iterdir()) == []  # nothing in the shared temp folder
    return done


def test_the_tables_go_to_the_users_own_cache_folder_and_are_read_back(tmp_path: Path) -> None:
    home = tmp_path / "cache"
    _lint(tmp_path, home)
    folder = home / "mrules"
    [cached] = list(folder.iterdir())
    assert cached.name.startswith("parser-") and cached.name.endswith(".lark")
    assert folder.stat().st_mode & 0o777 == 0o700
    written = cached.stat().st_mtime_ns
    _lint(tmp_path, home)  # the second run reads the tables: the file is left as it was
    assert cached.stat().st_mtime_ns == written


@pytest.mark.skipif(not hasattr(os, "getuid"), reason="POSIX modes")
def test_a_cache_folder_others_may_write_is_not_used(tmp_path: Path) -> None:
    home = tmp_path / "cache"
    (home / "mrules").mkdir(parents=True)
    (home / "mrules").chmod(0o777)
    _lint(tmp_path, home)
    assert list((home / "mrules").iterdir()) == []
    elsewhere = tmp_path / "theirs"
    elsewhere.mkdir()
    linked = tmp_path / "linked"
    linked.mkdir()
    (linked / "mrules").symlink_to(elsewhere, target_is_directory=True)
    _lint(tmp_path, linked)  # a symbolic link may point at anyone's folder
    assert list(elsewhere.iterdir()) == []


def test_a_home_folder_that_is_not_there_is_not_made(tmp_path: Path) -> None:
    """`HOME=/nonexistent mrules lint` (a service account, a CI step) made the whole
    chain `/nonexistent/.cache/mrules` for its cache; it runs without one instead."""
    home = tmp_path / "gone"
    env = {k: v for k, v in os.environ.items() if k != "XDG_CACHE_HOME"}
    done = subprocess.run(
        [sys.executable, "-m", "mrules", "lint", "-"],
        input=RULE, capture_output=True, text=True, env={**env, "HOME": str(home)}, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "ok: 1 file, no problems" in done.stderr
    assert not home.exists()
    nested = tmp_path / "no" / "cache"  # XDG_CACHE_HOME in a folder that is not there
    _lint(tmp_path, nested)
    assert not (tmp_path / "no").exists()
