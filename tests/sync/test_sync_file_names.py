"""A sync file is opened by its real name, whatever characters it holds."""

from __future__ import annotations

from pathlib import Path

import pytest

from mrules.sync.db import SyncDb


@pytest.mark.parametrize("name", ["a#b.sync.db", "a?b.sync.db", "a%23b.sync.db"])
def test_a_sync_file_with_uri_characters_in_its_name_is_read_as_itself(
    tmp_path: Path, name: str
) -> None:
    path = tmp_path / name
    db = SyncDb.open(path)
    db.set_meta("work_seq", 7)
    db.conn.close()
    ro = SyncDb.open(path, readonly=True)
    assert ro.meta("work_seq") == "7"
    ro.conn.close()
    # No stray file `a` (the name cut at `#` or `?`): only the sync file and its WAL files.
    assert all(p.name.startswith(name) for p in tmp_path.iterdir())


def test_a_sync_file_read_read_only_leaves_no_wal_files_and_takes_no_write(
    tmp_path: Path,
) -> None:
    """`sync status` and the reports read the sync file: SQLite removes its `-wal` and
    `-shm` at close (a `mode=ro` connection cannot), and nothing can be written."""
    import sqlite3

    path = tmp_path / "s.sync.db"
    db = SyncDb.open(path)
    db.set_meta("work_seq", 3)
    db.conn.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.sync.db"]
    before = path.read_bytes()
    ro = SyncDb.open(path, readonly=True)
    assert ro.meta("work_seq") == "3"
    with pytest.raises(sqlite3.DatabaseError):
        ro.conn.execute("DELETE FROM meta")
    ro.conn.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.sync.db"]
    assert path.read_bytes() == before
