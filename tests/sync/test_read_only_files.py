"""A sync file or a local CRM file that cannot be written (a read-only file, folder or
mount): exit 4 naming the file and saying what to do. It said `the sync or CRM file
failed: attempt to write a readonly database`, naming neither, and `sync retry` said
`cannot use the sync file: unable to open database file`."""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.sync.world import BOB, T0, World, ev

ADVICE = "read-only; make them writable, then run the same command again"


@contextlib.contextmanager
def read_only(path: Path) -> Iterator[None]:
    """`path` (a file or a folder) read-only: its mode, or for root (whom modes do not
    stop) a read-only bind mount of it."""
    if os.geteuid() != 0:
        mode = path.stat().st_mode
        path.chmod(0o555 if path.is_dir() else 0o444)
        try:
            yield
        finally:
            path.chmod(mode)
        return
    if subprocess.run(["mount", "--bind", str(path), str(path)], capture_output=True).returncode:
        pytest.skip("needs a read-only bind mount (mount --bind failed)")
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(path)], check=True)
        yield
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def _synced_once(tmp: Path) -> World:
    """A world whose first sync ran, with more to write since: ann assigned."""
    w = World(tmp)
    w.seed({"Contact": [BOB]})
    w.run(ev(T0, "bob@x.com", asset="Demo"))
    w.sync("apply")
    w.run(ev("2026-11-02T09:05:00Z", "ann@x.com", asset="Demo"))
    return w


def test_a_read_only_crm_file_is_named(tmp_path: Path) -> None:
    w = _synced_once(tmp_path)
    with read_only(w.crm_path):
        for args in (("apply",), ("run", "--until", "2026-11-02T10:00:00Z")):
            r = w.sync(*args, code=4)
            assert r.stderr == f"mrules: error: {w.crm_path}: cannot write the CRM file: it or" \
                f" its folder is {ADVICE}\n", r.output  # fmt: skip
    w.sync("apply")  # writable again: the same command does the work
    assert "ann@x.com" in {r.get("Email") for r in w.crm_rows("Lead")}


def test_a_read_only_sync_file_is_named(tmp_path: Path) -> None:
    w = _synced_once(tmp_path)
    sync_file = tmp_path / "w.sync.db"
    with read_only(sync_file):
        r = w.sync("apply", code=4)
        assert r.stderr == (
            f"mrules: error: {sync_file}: cannot write the sync file: it or its folder is"
            f" {ADVICE}\n"
        ), r.output
    w.sync("apply")
    # What the refused cycle wrote to the CRM is found again: one lead for ann.
    assert [r.get("Email") for r in w.crm_rows("Lead")].count("ann@x.com") == 1
    assert w.status()["links"] == 2


def test_sync_retry_in_a_read_only_folder_says_so(tmp_path: Path) -> None:
    w = _synced_once(tmp_path)
    with read_only(tmp_path):
        r = w.cli("sync", "retry", "--store", str(w.store))
        assert r.exit_code == 4, r.output
        assert r.stderr.startswith(f"mrules: error: {tmp_path / 'w.sync.db'}: cannot use the")
        assert r.stderr.endswith(
            "it or its folder is read-only: make them writable, then run the same command again\n"
        ), r.stderr


def test_before_the_first_sync_a_read_only_crm_file_is_the_one_named(tmp_path: Path) -> None:
    """No sync file yet (a plan makes none): the CRM file is the one that cannot be
    written (the plan counts its API calls there); the sync file that is not there is
    not read-only. It was named instead."""
    w = World(tmp_path)
    w.seed({"Contact": [BOB]})
    w.run(ev(T0, "ann@x.com", asset="Demo"))
    with read_only(w.crm_path):
        r = w.sync("plan", code=4)
        assert r.stderr == (
            f"mrules: error: {w.crm_path}: cannot write the CRM file: it or its folder is"
            f" {ADVICE}\n"
        ), r.output
