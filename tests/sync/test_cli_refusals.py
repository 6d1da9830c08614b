"""`mrules sync` refusing what it cannot do right: an empty `--out`, an unknown
`--prospect`, a folder as the CRM, a plan before the last cycle or the run's clock; and
`sync retry` asked for while a cycle runs (or after a saved plan was made) not being lost."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from tests.sync.world import BOB, T0, World, ev

import mrules.sync.cycle
from mrules.sync.plan import plan_id


def _world(tmp_path: Path) -> World:
    w = World(tmp_path)
    w.seed({"Contact": [BOB]})
    return w


def _held(tmp_path: Path) -> World:
    """A world whose first cycle left a write of ann@x.com held in the error queue."""
    w = _world(tmp_path)
    w.run(
        ev(T0, "ann@x.com", "prospect_update", fields={"company_size": "huge"}),
        ev(T0, "ann@x.com", asset="Demo"),
    )
    w.sync("apply")
    assert w.status()["errors"] == 1
    assert _ops(w) == ["hold"]
    return w


def _ops(w: World) -> list[str]:
    r = w.sync("plan", "--format", "json", code=None)
    return [o["op"] for o in json.loads(r.output)["ops"]]


# -- sync plan --out ------------------------------------------------------------------------------
def test_plan_with_an_empty_out_is_a_usage_error(tmp_path: Path) -> None:
    w = _world(tmp_path)
    w.run(ev(T0, "ann@x.com", asset="Demo"))
    r = w.sync("plan", "--out", "", code=2)
    assert "--out needs a file name" in r.output  # was: the plan printed, nothing saved
    assert "sync plan" not in r.output


def test_plan_out_over_the_store_is_refused(tmp_path: Path) -> None:
    w = _world(tmp_path)
    w.run(ev(T0, "ann@x.com", asset="Demo"))
    before = w.store.read_bytes()
    r = w.sync("plan", "--out", str(w.store), code=2)
    assert "is the store: writing it would destroy it" in r.output
    assert w.store.read_bytes() == before


# -- sync retry --prospect ------------------------------------------------------------------------
def test_retry_of_an_unknown_prospect_is_a_usage_error(tmp_path: Path) -> None:
    w = _held(tmp_path)
    r = w.cli("sync", "retry", "--store", str(w.store), "--prospect", "nobody@x.com")
    assert r.exit_code == 2, r.output  # was: "0 held error(s) will be retried", exit 0
    assert "'nobody@x.com'" in r.output
    assert _ops(w) == ["hold"]  # nothing marked
    # A prospect the store has, without a held error: fine, nothing to retry.
    w.run(ev("2026-11-02T09:01:00Z", "cleo@x.com", asset="Quiet"))
    r = w.cli("sync", "retry", "--store", str(w.store), "--prospect", "cleo@x.com")
    assert r.exit_code == 0 and "0 held errors" in r.output
    r = w.cli("sync", "retry", "--store", str(w.store), "--prospect", "ANN@x.com")
    assert r.exit_code == 0 and "1 held error" in r.output


@pytest.mark.parametrize("damage", ["folder", "junk"])
def test_retry_names_a_sync_file_it_cannot_use_once(tmp_path: Path, damage: str) -> None:
    """`sync retry` on a sync file that is a folder or not a database printed its name
    twice: `w.sync.db: w.sync.db: is a folder, not a sync file`. A folder is exit 2, as a
    folder given where any file goes is (docs/exit-codes.md); a file that is no database, 4."""
    w = _world(tmp_path)
    sync = tmp_path / "w.sync.db"
    if damage == "folder":
        sync.mkdir()
    else:
        sync.write_bytes(b"not a database at all" * 100)
    r = w.cli("sync", "retry", "--store", str(w.store))
    assert r.exit_code == (2 if damage == "folder" else 4), r.output
    assert r.output.count("\n") == 1 and r.output.startswith("mrules: error: ")
    assert r.output.count(str(sync)) == 1, r.output


def test_a_sync_file_of_a_newer_mrules_is_refused_untouched(tmp_path: Path) -> None:
    """A sync file of a newer schema was refused (`sync file schema 3 is not 2`) only after
    this mrules had written its own tables into it: one the newer schema dropped was made
    again. It is now refused before any write, saying a newer mrules wrote it."""
    import sqlite3

    w = _held(tmp_path)
    sync = tmp_path / "w.sync.db"
    conn = sqlite3.connect(sync)
    conn.execute("UPDATE meta SET value = '4' WHERE key = 'schema'")
    conn.execute("DROP TABLE send")  # what a schema 4 may have done
    conn.commit()
    conn.close()
    before = sync.read_bytes()
    r = w.cli("sync", "retry", "--store", str(w.store))
    assert w.syncdb("SELECT name FROM sqlite_master WHERE name = 'send'") == []
    assert sync.read_bytes() == before
    assert r.exit_code == 4, r.output
    assert r.output.count("\n") == 1 and "newer mrules" in r.output, r.output
    for args in (("apply",), ("run", "--until", "2026-11-02T10:00:00Z")):
        r = w.sync(*args, code=4)
        assert "newer mrules" in r.output, r.output
    assert sync.read_bytes() == before
    assert w.syncdb("SELECT name FROM sqlite_master WHERE name = 'send'") == []


# -- sync retry during a cycle, or after a saved plan --------------------------------------------
def test_retry_asked_for_while_a_cycle_runs_is_kept_for_the_next(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    w = _held(tmp_path)
    real = mrules.sync.cycle.apply_plan

    def retry_then_apply(plan: Any, *args: Any, **kw: Any) -> Any:
        # The cycle's plan was made (it holds ann's write); `sync retry` lands now.
        assert [o["op"] for o in plan["ops"]] == ["hold"]
        r = w.cli("sync", "retry", "--store", str(w.store))
        assert r.exit_code == 0 and "1 held error" in r.output, r.output
        return real(plan, *args, **kw)

    monkeypatch.setattr(mrules.sync.cycle, "apply_plan", retry_then_apply)
    w.sync("apply")
    monkeypatch.setattr(mrules.sync.cycle, "apply_plan", real)
    # The cycle that ran did not try it: the next one does (was: the mark cleared, held).
    assert _ops(w) == ["update"]
    w.sync("apply")
    st = w.status()
    assert st["errors"] == 1 and st["error_queue"][0]["attempts"] == 2
    assert _ops(w) == ["hold"]  # tried and refused again: held again


def test_retry_after_a_saved_plan_was_made_is_kept_for_the_next_cycle(tmp_path: Path) -> None:
    w = _held(tmp_path)
    plan = tmp_path / "p.json"
    w.sync("plan", "--out", str(plan), code=None)
    assert w.ok("sync", "retry", "--store", str(w.store)).output.startswith("1 held error")
    w.sync("apply", str(plan))  # made before the retry: it holds the write
    assert _ops(w) == ["update"]  # was: "hold", the retry cleared untried


# -- --crm FOLDER ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "command",
    [["plan"], ["apply"], ["run", "--until", "2026-11-02T10:00:00Z"], ["send", "bob@x.com"]],
)
def test_a_folder_as_the_crm_is_a_usage_error(tmp_path: Path, command: list[str]) -> None:
    w = _world(tmp_path)
    w.run(ev(T0, "ann@x.com", asset="Demo"))
    folder = tmp_path / "crmdir"
    folder.mkdir()
    r = w.sync(*command, "--crm", str(folder), code=2)  # was exit 4, as for a damaged file
    assert f"{folder}: is a folder, not a CRM file" in r.output


def test_a_folder_as_the_crm_from_the_environment_is_a_usage_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    w = _world(tmp_path)
    w.run(ev(T0, "ann@x.com", asset="Demo"))
    monkeypatch.setenv("MRULES_CRM", str(tmp_path))
    r = w.sync("plan", code=2)
    assert "is a folder, not a CRM file" in r.output


# -- a plan before the last cycle -----------------------------------------------------------------
def test_a_plan_before_the_last_cycle_is_refused(tmp_path: Path) -> None:
    w = _world(tmp_path)
    w.run(ev(T0, "ann@x.com", asset="Demo"))
    w.sync("apply")
    last = w.status()["last_cycle"]
    assert last == T0
    out = tmp_path / "old.json"
    r = w.sync("plan", "--at", "1900-01-01T00:00:00Z", "--out", str(out), code=2)
    assert "is before the last cycle, at 2026-11-02T09:00:00Z" in r.output
    assert not out.exists()
    # A plan file at such a time (made by hand, or by an older mrules) is refused too.
    w.sync("plan", "--at", "2026-11-02T09:10:00Z", "--out", str(out), code=None)
    plan = json.loads(out.read_text("utf-8"))
    plan["at"] = "1900-01-01T00:00:00Z"
    plan["id"] = plan_id({k: v for k, v in plan.items() if k != "id"})
    out.write_text(json.dumps(plan), "utf-8")
    r = w.sync("apply", str(out), code=2)  # was: applied, the last cycle moved to 1900
    assert "before the last cycle" in r.output
    assert w.status()["last_cycle"] == last
    # A later time is fine.
    r = w.sync("plan", "--at", "2026-11-02T09:10:00Z", code=None)
    assert r.exit_code in (0, 2) and "error" not in r.output


# -- a plan before the run's clock ----------------------------------------------------------------
def test_a_plan_before_the_runs_clock_is_refused(tmp_path: Path) -> None:
    w = _world(tmp_path)
    w.run(ev(T0, "ann@x.com", asset="Demo"))  # the run's clock: T0, 2026-11-02T09:00:00Z
    out = tmp_path / "early.json"
    r = w.sync("plan", "--at", "2026-11-02T08:59:59Z", "--out", str(out), code=2)
    assert "--at 2026-11-02T08:59:59Z is before the run's clock, 2026-11-02T09:00:00Z" in (r.output)
    assert not out.exists()
    # A plan file at such a time (made by hand) is refused too, and nothing is applied.
    w.sync("plan", "--at", "2026-11-02T09:00:00Z", "--out", str(out), code=2)
    plan = json.loads(out.read_text("utf-8"))
    plan["at"] = "2026-11-01T00:00:00Z"
    plan["id"] = plan_id({k: v for k, v in plan.items() if k != "id"})
    out.write_text(json.dumps(plan), "utf-8")
    r = w.sync("apply", str(out), code=2)
    assert "(at 2026-11-01T00:00:00Z) is before the run's clock" in r.output
    assert "no sync yet" in w.cli("sync", "status", "--store", str(w.store)).output
    # At the clock itself, or later, is fine; so is the plan of the next cycle due.
    at_clock = w.sync("plan", "--at", "2026-11-02T09:00:00Z", "--format", "json", code=2)
    assert [o["op"] for o in json.loads(at_clock.output)["ops"]] == _ops(w) != []
    w.sync("plan", "--at", "2026-11-02T10:00:00Z", code=2)


# -- the year 9999 ------------------------------------------------------------------------------
def test_a_cycle_too_late_for_the_next_one_to_have_a_date_is_refused(tmp_path: Path) -> None:
    """A cycle at 9999-12-31T23:55Z was applied, then every plan was an internal error (the
    next cycle, 10 minutes later, had no date), and so was a saved plan's stale check."""
    w = _world(tmp_path)
    w.run()
    r = w.sync("plan", "--at", "9999-12-31T23:59:59-00:01", code=2)  # 00:00:59 in UTC
    assert "not a time with a zone" in r.output
    out = tmp_path / "late.json"
    w.sync("plan", "--at", "9999-12-31T23:55:00Z", "--out", str(out), code=None)
    w.sync("apply", str(out))
    assert w.status()["last_cycle"] == "9999-12-31T23:55:00Z"
    r = w.sync("plan", code=2)
    assert "the next sync cycle would be after 9999-12-31T23:59:59Z" in r.output
    r = w.sync("run", "--until", "9999-12-31T23:59:59Z")
    assert "no cycle due" in r.output


@pytest.mark.parametrize(
    "args",
    [
        ("run", "--rules", "rules"),
        ("plan", "--rules", "rules"),
        ("apply", "--rules", "rules"),
        ("send", "ann@x.com", "--rules", "rules"),
        ("status",),
        ("retry",),
    ],
)
def test_a_postgresql_store_is_refused_without_its_password(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: tuple[str, ...]
) -> None:
    """The sync keeps its files beside the store's file: a PostgreSQL URL was taken as a
    path (`postgresql:/u:secret@h/db.sync.db: no sync yet`), the password shown."""
    from click.testing import CliRunner

    from mrules.cli import main

    monkeypatch.chdir(tmp_path)
    Path("rules").mkdir()
    r = CliRunner().invoke(main, ["sync", *args, "--store", "postgresql://u:secret@h/db"])
    assert r.exit_code == 2, r.output
    assert "does not take a PostgreSQL store" in r.output and "secret" not in r.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rules"]
