"""The local CRM file failing under `mrules crm` and `mrules sync`: held by another process
past the wait, or unreadable (a full disk, an I/O error). A clear message and exit 4
(docs/exit-codes.md), never an internal error, and the same command works once the cause
is gone."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import EXAMPLE, example_store, mrules

RULES = EXAMPLE / "rules"


@pytest.fixture
def store(here: Path) -> Path:
    """The example's store after `crm load` and `run`: its CRM is g.crm.db beside it."""
    return example_store(here)


@pytest.fixture
def short_waits(monkeypatch: pytest.MonkeyPatch) -> None:
    """SQLite's busy wait cut from 30 s to a fraction of a second."""
    real = sqlite3.connect

    def connect(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        if "timeout" in kwargs:
            kwargs["timeout"] = min(kwargs["timeout"], 0.2)
        return real(*args, **kwargs)

    monkeypatch.setattr(sqlite3, "connect", connect)


@pytest.fixture
def held_crm(store: Path) -> Iterator[sqlite3.Connection]:
    """Another process's write transaction on the CRM file, held for the whole test."""
    conn = sqlite3.connect(store.with_name("g.crm.db"), isolation_level=None)
    conn.execute("BEGIN EXCLUSIVE")
    yield conn
    conn.execute("ROLLBACK")
    conn.close()


@pytest.mark.usefixtures("short_waits")
@pytest.mark.parametrize(
    "args",
    [
        ("sync", "apply", "--rules", RULES),
        ("sync", "run", "--rules", RULES, "--until", "2026-12-20T00:30:00Z"),
        ("crm", "load", EXAMPLE / "crm"),
    ],
    ids=["sync-apply", "sync-run", "crm-load"],
)
def test_a_crm_file_held_by_another_process_is_exit_4(
    store: Path, held_crm: sqlite3.Connection, args: tuple[Any, ...]
) -> None:
    r = mrules(*args, "--store", store)
    assert r.exit_code == 4, r.output  # was 70: internal error, OperationalError
    assert "internal error" not in r.output
    assert "g.crm.db" in r.output and "database is locked" in r.output
    assert "not an mrules CRM file" not in r.output


@pytest.mark.usefixtures("short_waits")
def test_a_sync_refused_by_a_held_crm_file_runs_once_it_is_free(store: Path) -> None:
    conn = sqlite3.connect(store.with_name("g.crm.db"), isolation_level=None)
    conn.execute("BEGIN EXCLUSIVE")
    try:
        assert mrules("sync", "apply", "--rules", RULES, "--store", store).exit_code == 4
    finally:
        conn.execute("ROLLBACK")
        conn.close()
    r = mrules("sync", "apply", "--rules", RULES, "--store", store)
    assert r.exit_code == 0, r.output
    assert "1 created, 4 linked" in r.output


def test_a_crm_file_that_cannot_be_read_is_not_called_not_a_crm(
    store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A read of the CRM file failing (a full disk or an I/O error while SQLite opens its
    WAL) says so, not that the file is not a CRM (which sends the user to replace it)."""
    import mrules.crm.emulator as emulator

    class Failing(sqlite3.Connection):
        def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:
            if sql.startswith("PRAGMA application_id"):
                raise sqlite3.OperationalError("disk I/O error")
            return super().execute(sql, *args)

    real = sqlite3.connect

    class Sqlite:  # the module as the emulator sees it, its connections failing to read
        def __getattr__(self, name: str) -> Any:
            return getattr(sqlite3, name)

        @staticmethod
        def connect(*args: Any, **kwargs: Any) -> sqlite3.Connection:
            return real(*args, factory=Failing, **kwargs)

    monkeypatch.setattr(emulator, "sqlite3", Sqlite())
    for args in (("sync", "apply", "--rules", RULES), ("crm", "export")):
        r = mrules(*args, "--store", store)
        assert r.exit_code == 4, r.output
        assert "cannot read the CRM file: disk I/O error" in r.output
        assert "not an mrules CRM file" not in r.output


# -- the Salesforce adapter answered in a shape it does not expect --------------------------------
SF_RULES = """
user "alan@x.com"
field phone: text
form "Demo"
on submit of form "Demo" { assign to user "alan@x.com" }
sync salesforce {
  objects lead, contact
  every 10 minutes batch 800
  map phone <-> "Phone" prefer most recent
}
"""
INSTANCE = "https://getcloudy.my.salesforce.com"
SF_ENV = {"MRULES_SF_SESSION_ID": "00DDn0000000001!x", "MRULES_SF_INSTANCE_URL": INSTANCE}


@pytest.mark.parametrize(("command", "code"), [("plan", 4), ("apply", 0)])
def test_a_salesforce_answer_of_the_wrong_shape_is_a_refused_call(
    here: Path, monkeypatch: pytest.MonkeyPatch, command: str, code: int
) -> None:
    """A 200 whose JSON is a list where a query answers an object (a proxy, an outage
    page): `sync plan` ended in an internal error (AttributeError), `sync apply` too. It
    is now a call the CRM failed: plan exit 4, apply "the CRM failed for now", exit 0."""
    import re

    responses = pytest.importorskip("responses")
    pytest.importorskip("simple_salesforce")
    for name, value in SF_ENV.items():
        monkeypatch.setenv(name, value)
    (here / "r.mr").write_text(SF_RULES, "utf-8")
    (here / "e.jsonl").write_text(
        '{"ts": "2026-11-02T09:00:00Z", "type": "form_submit", "prospect": "ann@x.com",'
        ' "asset": "Demo"}\n',
        "utf-8",
    )
    assert mrules("run", "r.mr", "e.jsonl", "--store", "s.db").exit_code == 0
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        for method in ("GET", "POST", "PATCH", "DELETE"):
            mock.add(method, re.compile(re.escape(INSTANCE) + ".*"), status=200, json=[])
        r = mrules("sync", command, "--crm", "salesforce", "--rules", "r.mr", "--store", "s.db")
    assert r.exit_code == code, r.output
    assert "internal error" not in r.output
    assert "the org answered a JSON list where a JSON object was expected" in r.output


@pytest.mark.usefixtures("short_waits")
def test_a_crm_file_held_by_another_process_is_still_exported(
    store: Path, held_crm: sqlite3.Connection
) -> None:
    """`crm export` only reads: it opens the file read-only and does not wait for the
    writer's lock (it was exit 4 "database is locked", as the writing commands are)."""
    r = mrules("crm", "export", "--store", store)
    assert r.exit_code == 0, r.output
    assert '"attributes": {"type": "Lead"}' in r.output
