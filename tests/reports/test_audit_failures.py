"""`mrules report html OUT` refusing an OUT that is one of SQLite's files beside the sync
file or the CRM file (`NAME.sync.db-wal`, `NAME.crm.db-shm`): the page written as the
sync file's write-ahead log is dropped by SQLite, or replaces commits a running sync has
not yet moved into the file. The store's were refused already."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from conftest import mrules


@pytest.mark.parametrize(
    ("name", "what"),
    [
        ("fx.sync.db-wal", "the sync file fx.sync.db"),
        ("fx.sync.db-shm", "the sync file fx.sync.db"),
        ("fx.crm.db-wal", "the CRM file fx.crm.db"),
        ("fx.crm.db-shm", "the CRM file fx.crm.db"),
    ],
)
def test_html_over_an_sqlite_file_beside_the_sync_or_crm_file_is_refused(
    copy: Path, name: str, what: str
) -> None:
    r = mrules("report", "html", name, "--store", "fx.db")
    assert r.exit_code == 2, r.output
    assert f"OUT {name} is {what}: writing it would destroy it" in r.output
    assert not Path(name).exists()


def test_html_over_the_wal_of_a_sync_db_given_by_path_is_refused(copy: Path) -> None:
    shutil.move("fx.sync.db", "other.sync.db")
    r = mrules(
        "report", "html", "other.sync.db-wal", "--store", "fx.db", "--sync-db", "other.sync.db"
    )
    assert r.exit_code == 2, r.output
    assert "is the sync file other.sync.db: writing it would destroy it" in r.output
    assert not Path("other.sync.db-wal").exists()
