"""`mrules sync` when the sync file cannot be made whole: a full disk while the first
sync creates it. The command fails with exit 4 (docs/exit-codes.md) and leaves no
half-made sync file behind (which `sync status` and every report then refused); the
same command runs once there is room."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.conftest import EXAMPLE, example_store, mrules

import mrules.sync.db as sync_db

RULES = EXAMPLE / "rules"


@pytest.fixture
def store(here: Path) -> Path:
    """The example's store after `crm load` and `run`: its CRM is g.crm.db beside it."""
    return example_store(here)


def _fail_midway(monkeypatch: pytest.MonkeyPatch) -> None:
    """The sync file's schema failing after its first tables (as a full disk makes it)."""
    head, tail = sync_db._SCHEMA.split("CREATE TABLE IF NOT EXISTS queue", 1)
    failing = "INSERT INTO no_such_table VALUES (1);\nCREATE TABLE IF NOT EXISTS queue"
    monkeypatch.setattr(sync_db, "_SCHEMA", head + failing + tail)


def test_a_first_sync_that_cannot_make_its_file_leaves_none(
    store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fail_midway(monkeypatch)
    r = mrules("sync", "apply", "--rules", RULES, "--store", store)
    assert r.exit_code == 4, r.output
    assert "cannot use the sync file" in r.output
    monkeypatch.undo()
    # was: a g.sync.db with the first tables only; `sync status` then failed with
    # "no such table: queue" (exit 4) and every report with "not an mrules sync file"
    assert not store.with_name("g.sync.db").exists()
    r = mrules("sync", "status", "--store", store)
    assert r.exit_code == 2, r.output
    assert "no sync yet" in r.output
    r = mrules("report", "funnel", "--store", store)
    assert r.exit_code == 0, r.output
    r = mrules("sync", "apply", "--rules", RULES, "--store", store)
    assert r.exit_code == 0, r.output
    assert "1 created, 4 linked" in r.output
    assert mrules("sync", "status", "--store", store).exit_code == 0


def test_a_sync_file_that_fails_to_open_later_is_kept_whole(
    store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only a file the failing command created is removed: an existing one is kept."""
    assert mrules("sync", "apply", "--rules", RULES, "--store", store).exit_code == 0
    _fail_midway(monkeypatch)
    assert mrules("sync", "apply", "--rules", RULES, "--store", store).exit_code == 4
    monkeypatch.undo()
    r = mrules("sync", "status", "--store", store, "--format", "json")
    assert r.exit_code == 0, r.output
    status = json.loads(r.output)
    assert status["links"] == 5 and status["last_cycle"] == "2026-12-20T00:00:00Z"


# -- sync run --until: before the store's clock, and far away ------------------------------------
def test_sync_run_until_before_the_run_clock_runs_no_cycle(store: Path) -> None:
    """The first cycle is at the store's clock (2026-12-20 for the example): an --until
    before it has none due. It ran one at the --until time, which set the local CRM's clock
    back 11 months and stamped Leung's lead before her assignment asked for it."""
    r = mrules("sync", "run", "--rules", RULES, "--store", store, "--until", "2026-01-01T00:00:00Z")
    assert r.exit_code == 0, r.output
    assert "no cycle due (the first runs at the store's clock, 2026-12-20T00:00:00Z)" in r.output
    assert "created" not in r.output
    export = mrules("crm", "export", "--store", store)
    assert "leung@example.com" not in export.output
    r = mrules("sync", "run", "--rules", RULES, "--store", store, "--until", "2026-12-20T00:00:00Z")
    assert r.exit_code == 0, r.output
    assert r.output.startswith("2026-12-20T00:00:00Z  created     1  linked    4")


def test_sync_run_to_a_far_until_starts_at_once(
    store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`--until` 20 years on is a million 10-minute cycles: they are taken one at a time.
    The whole list was made before the first cycle ran (9999-12-31 never started)."""
    import tracemalloc

    import mrules.sync.cycle as cycle

    seen: list[float] = []

    def first_cycle(*args: object, **kwargs: object) -> None:
        seen.append(float(args[5]))  # type: ignore[arg-type]
        raise KeyboardInterrupt

    monkeypatch.setattr(cycle, "run_cycle", first_cycle)
    tracemalloc.start()
    try:
        r = mrules(
            "sync", "run", "--rules", RULES, "--store", store, "--until", "2046-12-20T00:00:00Z"
        )
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert r.exit_code == 130, r.output
    assert seen == [1797724800.0]  # 2026-12-20T00:00:00Z
    assert peak < 8_000_000, peak  # was over 30 MB: a list of every cycle's time


# -- sync plan --out over SQLite's files beside the store, the sync file, the CRM -------------
@pytest.mark.parametrize(
    ("name", "what"),
    [
        ("g.db-wal", "the store"),
        ("g.db-shm", "the store"),
        ("g.db.lock", "the store"),
        ("g.sync.db-wal", "the sync file"),
        ("g.crm.db-wal", "the CRM file"),
        ("g.crm.db-shm", "the CRM file"),
    ],
)
def test_plan_out_over_an_sqlite_file_beside_an_input_is_refused(
    store: Path, name: str, what: str
) -> None:
    """`--out g.db-wal` wrote the plan as the store's write-ahead log: SQLite dropped it
    (the saved plan lost) at the store's next opening, and under an open store it is the
    log of commits not yet in the database."""
    out = store.with_name(name)
    existed = out.exists()
    r = mrules("sync", "plan", "--rules", RULES, "--store", store, "--out", out)
    assert r.exit_code == 2, r.output
    assert f"is {what}: writing it would destroy it" in r.output
    assert "sync plan" not in r.output  # before any work
    assert out.exists() == existed


# -- a campaign the CRM does not have ------------------------------------------------------------
def test_a_member_of_a_campaign_the_crm_lacks_is_not_called_deleted(here: Path) -> None:
    """A rule's `add to crm campaign "Get Cloudy Consult 2026"` on a CRM that never had it
    was held as ENTITY_IS_DELETED (a record in the recycle bin): it is a reference to no
    record, INVALID_CROSS_REFERENCE_KEY, as docs/crm.md lists the codes."""
    store = here / "g.db"
    (here / "empty").mkdir()
    assert mrules("crm", "load", here / "empty", "--store", store).exit_code == 0
    assert mrules("run", RULES, EXAMPLE / "events.jsonl", "--store", store).exit_code == 0
    r = mrules("sync", "apply", "--rules", RULES, "--store", store)
    assert r.exit_code == 0, r.output
    status = json.loads(mrules("sync", "status", "--store", store, "--format", "json").output)
    assert status["errors_by_code"] == {"INVALID_CROSS_REFERENCE_KEY": 3}
    assert {e["message"] for e in status["error_queue"]} == {
        "no CRM campaign named 'Get Cloudy Consult 2026'"
    }


# -- a task due past the year 9999 ----------------------------------------------------------------
def test_a_task_due_after_the_last_day_is_due_on_the_last_day(here: Path) -> None:
    """The example's "Call enterprise lead" task is due in 2 days: asked by a submission on
    9999-12-31, its due date overflowed and `sync run` ended in an internal error (exit 70)
    after creating the lead. It is due on 9999-12-31, the last day there is."""
    store = here / "g.db"
    events = here / "late.jsonl"
    events.write_text(
        '{"ts": "9999-12-31T23:50:00Z", "id": "late", "type": "form_submit", "prospect":'
        ' "late@x.example", "asset": "Demande Get Cloudy", "fields": {"company_size": "200+"}}\n',
        "utf-8",
    )
    assert mrules("crm", "load", EXAMPLE / "crm", "--store", store).exit_code == 0
    assert mrules("run", RULES, events, "--store", store).exit_code == 0
    r = mrules("sync", "run", "--rules", RULES, "--store", store, "--until", "9999-12-31T23:59:59Z")
    assert r.exit_code == 0, r.output
    assert "created     1" in r.output and "tasks    1" in r.output
    tasks = mrules("crm", "export", "--store", store, "--object", "Task").output.splitlines()
    late = [json.loads(t) for t in tasks if "Call enterprise lead" in t]
    assert [t["ActivityDate"] for t in late] == ["9999-12-31"]
