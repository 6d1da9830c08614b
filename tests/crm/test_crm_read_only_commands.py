"""`crm export` and `crm describe` only read the local CRM: they open it to read, so a
CRM another process is writing does not make them wait, and a folder they cannot write
to does not stop them. They were opened for writing (a writer's lock taken at open)."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.crm.test_crm_cli import SEED, export, mrules


@pytest.fixture
def crm(tmp_path: Path) -> tuple[Path, Path]:
    store = tmp_path / "data" / "getcloudy.db"
    store.parent.mkdir()
    assert mrules("crm", "load", SEED, "--store", store).exit_code == 0
    return store, store.with_name("getcloudy.crm.db")


def test_a_crm_another_process_writes_is_read_without_waiting(crm: tuple[Path, Path]) -> None:
    store, path = crm
    expected = export(store, "Lead")
    writer = sqlite3.connect(path, isolation_level=None)
    try:
        writer.execute("BEGIN IMMEDIATE")  # the writer's lock, held as a sync or a load holds it
        writer.execute("UPDATE meta SET value = value WHERE key = 'org'")
        start = time.monotonic()
        assert export(store, "Lead") == expected
        r = mrules("crm", "describe", "Lead", "--store", store)
        assert r.exit_code == 0, r.output
        assert '"name": "Lead"' in r.output
        # Without a wait for the lock (30 seconds, then exit 4 "database is locked").
        assert time.monotonic() - start < 10
    finally:
        writer.execute("ROLLBACK")
        writer.close()


def test_the_read_only_commands_write_nothing(crm: tuple[Path, Path]) -> None:
    store, path = crm
    before = path.read_bytes()
    export(store)
    assert mrules("crm", "describe", "Lead", "--store", store).exit_code == 0
    assert path.read_bytes() == before
    assert sorted(p.name for p in path.parent.iterdir()) == ["getcloudy.crm.db"]


@pytest.fixture
def read_only_copy(crm: tuple[Path, Path], tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """The store's folder, read-only: mode 555 (the file 444), or for root (whom modes
    do not stop, and as whom CI runs) a read-only bind mount of it; skipped only where
    root cannot mount (the in-process variant below runs there)."""
    store, path = crm
    folder = path.parent
    if os.geteuid() != 0:
        folder.chmod(0o555)
        path.chmod(0o444)
        try:
            yield store, path
        finally:
            path.chmod(0o644)
            folder.chmod(0o755)
        return
    ro = tmp_path / "ro"
    ro.mkdir()
    if subprocess.run(["mount", "--bind", str(folder), str(ro)], capture_output=True).returncode:
        pytest.skip("needs a read-only bind mount (mount --bind failed)")
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(ro)], check=True)
        yield ro / store.name, ro / path.name
    finally:
        subprocess.run(["umount", "-l", str(ro)], check=False)


def test_a_crm_in_a_read_only_folder_is_read(
    crm: tuple[Path, Path], read_only_copy: tuple[Path, Path]
) -> None:
    store, path = read_only_copy
    expected, before = export(crm[0], "Lead"), crm[1].read_bytes()
    assert export(store, "Lead") == expected
    assert mrules("crm", "describe", "Lead", "--store", store).exit_code == 0
    assert path.read_bytes() == before


def test_a_crm_sqlite_can_only_read_is_read(
    crm: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """In process, for every user (root included): the folder reported unwritable, and
    every connection SQLite makes to the file read-only, as a read-only folder or mount
    makes them; a write or a writer's open would fail."""
    import mrules.crm.emulator as emulator

    store, path = crm
    expected = export(store, "Lead")
    real_access, real_connect = os.access, sqlite3.connect

    def access(p: object, mode: int, *a: object, **k: object) -> bool:
        if mode & os.W_OK and Path(str(p)).resolve().is_relative_to(path.parent.resolve()):
            return False
        return real_access(p, mode, *a, **k)  # type: ignore[arg-type]

    def connect(database: object, *a: object, **k: object) -> sqlite3.Connection:
        k["uri"] = True
        uri = str(database) if str(database).startswith("file:") else path.resolve().as_uri()
        uri = uri.split("?", 1)[0] + "?mode=ro"
        return real_connect(uri, *a, **k)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "access", access)
    monkeypatch.setattr(emulator.sqlite3, "connect", connect)
    before = path.read_bytes()
    assert export(store, "Lead") == expected
    assert mrules("crm", "describe", "Lead", "--store", store).exit_code == 0
    assert path.read_bytes() == before


@pytest.mark.parametrize("table", ["deleted_log", "label", "member_status", "applied_change"])
def test_a_crm_of_an_older_mrules_is_read_without_the_newer_tables(
    crm: tuple[Path, Path], table: str
) -> None:
    """A CRM file written before a table was added: a read-only open reads it as
    empty, says nothing and neither writes nor migrates the file (it was exit 4 "the
    CRM file failed: no such table: member_status" for `crm export`)."""
    store, path = crm
    expected = [r for r in export(store) if not (table == "member_status" and is_status(r))]
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute(f"DROP TABLE {table}")
    conn.close()
    before = path.read_bytes()
    r = mrules("crm", "export", "--store", store)
    assert r.exit_code == 0, r.output
    assert r.stderr == ""
    assert export(store) == expected
    for sobject in ("Lead", "Campaign", "CampaignMember"):
        r = mrules("crm", "describe", sobject, "--store", store)
        assert (r.exit_code, r.stderr) == (0, ""), r.output
    assert path.read_bytes() == before
    assert sorted(p.name for p in path.parent.iterdir()) == ["getcloudy.crm.db"]


def is_status(record: dict) -> bool:
    return record.get("attributes", {}).get("type") == "CampaignMemberStatus"
