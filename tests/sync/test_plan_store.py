"""A saved plan is for the store it was made from: `sync apply` of it against another
store (its `store_id` differs) is refused as made for another store, naming both, with
nothing written; a byte copy of the store is the same store, and applies it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from tests.sync.world import BOB, T0, World, ev

from mrules.sync.plan import plan_id


def _world(folder: Path, *events: dict[str, object]) -> World:
    folder.mkdir()
    w = World(folder)
    w.seed({"Contact": [dict(BOB)]})
    w.run(*events)
    return w


def _bytes(*paths: Path) -> dict[str, bytes | None]:
    return {p.name: p.read_bytes() if p.exists() else None for p in paths}


def test_a_plan_applied_to_another_store_is_refused_naming_both(tmp_path: Path) -> None:
    a = _world(tmp_path / "a", ev(T0, "ann@x.com", asset="Demo"))
    plan = tmp_path / "plan.json"
    a.sync("plan", "--out", str(plan), code=2)
    saved = json.loads(plan.read_text("utf-8"))
    assert saved["store"] == str(a.store.resolve()) and len(saved["store_id"]) == 32
    # Store B, from another stream: same names, another folder.
    b = _world(
        tmp_path / "b",
        ev(T0, "dora@x.com", asset="Demo"),
        ev("2026-11-02T09:01:00Z", "eve@x.com", asset="Demo"),
    )
    files = (b.store, b.crm_path, b.tmp / "w.sync.db")
    before = _bytes(*files)
    r = b.sync("apply", str(plan), code=1)
    assert "was made for another store" in r.output, r.output
    assert str(a.store.resolve()) in r.output and f"not {b.store}" in r.output
    assert "make a new plan against this store" in r.output
    assert f"mrules sync plan --store {b.store} --out FILE" in r.output
    assert "engine changed the store" not in r.output  # the misleading reason of before
    assert len(r.output.strip().splitlines()) == 1
    assert _bytes(*files) == before  # nothing written: no sync file made, CRM untouched
    assert not [x for x in b.crm_rows("Lead") if x["Email"] == "ann@x.com"]


def test_a_plan_applies_to_a_byte_copy_of_its_store(tmp_path: Path) -> None:
    a = _world(tmp_path / "a", ev(T0, "ann@x.com", asset="Demo"))
    plan = tmp_path / "plan.json"
    a.sync("plan", "--out", str(plan), code=2)
    copy = tmp_path / "copy"
    copy.mkdir()
    shutil.copyfile(a.store, copy / "w.db")
    shutil.copyfile(a.crm_path, copy / "w.crm.db")
    c = World(copy)  # the same rules, over the copied store and CRM
    r = c.sync("apply", str(plan), code=0)
    assert "1 created" in r.output, r.output
    assert [x for x in c.crm_rows("Lead") if x["Email"] == "ann@x.com"]


def test_a_plan_from_before_store_ids_is_checked_as_before(tmp_path: Path) -> None:
    a = _world(tmp_path / "a", ev(T0, "ann@x.com", asset="Demo"))
    plan = tmp_path / "plan.json"
    a.sync("plan", "--out", str(plan), code=2)
    old = json.loads(plan.read_text("utf-8"))
    del old["id"], old["store"], old["store_id"]
    plan.write_text(json.dumps({"id": plan_id(old), **old}), "utf-8")
    b = _world(
        tmp_path / "b",
        ev(T0, "dora@x.com", asset="Demo"),
        ev("2026-11-02T09:01:00Z", "eve@x.com", asset="Demo"),
    )
    r = b.sync("apply", str(plan), code=1)
    assert "stale" in r.output and "the engine changed the store" in r.output, r.output
    # And its own store still applies it.
    assert "1 created" in a.sync("apply", str(plan), code=0).output


def test_another_store_of_the_same_counts_is_refused_too(tmp_path: Path) -> None:
    """Two stores whose counts match (one event each): the plan's checks of staleness
    all passed, and the plan made for one wrote its lead into the other's CRM."""
    a = _world(tmp_path / "a", ev(T0, "ann@x.com", asset="Demo"))
    plan = tmp_path / "plan.json"
    a.sync("plan", "--out", str(plan), code=2)
    b = _world(tmp_path / "b", ev(T0, "dora@x.com", asset="Demo"))
    r = b.sync("apply", str(plan), code=1)
    assert "was made for another store" in r.output, r.output
    assert not [x for x in b.crm_rows("Lead") if x["Email"] == "ann@x.com"]


# -- the plan's own sync settings -----------------------------------------------------------------
def test_apply_says_when_the_rules_settings_differ_from_the_plans(tmp_path: Path) -> None:
    """A saved plan is performed with its own settings (as saved); rules whose sync block
    says otherwise get one warning line naming what differs."""
    a = _world(tmp_path / "a", ev(T0, "ann@x.com", asset="Demo"))
    plan = tmp_path / "plan.json"
    a.sync("plan", "--out", str(plan), code=2)
    text = a.rules.read_text("utf-8")
    a.rules.write_text(
        text.replace("batch 800", "batch 50").replace(
            'map phone <-> "Phone" prefer most recent', 'map phone <-> "Phone" prefer ours'
        ),
        "utf-8",
    )
    r = a.sync("apply", str(plan), code=0)
    assert "1 created" in r.stdout
    warning = r.stderr.strip().splitlines()
    assert warning == [
        "mrules: warning: the sync settings of --rules differ from the plan's (batch,"
        f" map phone): the plan's are used, as {plan} saved them; make a new plan with"
        " `mrules sync plan` to use the rules'"
    ]
    assert "batch 50" not in r.stdout


def test_apply_with_the_plans_own_settings_warns_nothing(tmp_path: Path) -> None:
    a = _world(tmp_path / "a", ev(T0, "ann@x.com", asset="Demo"))
    plan = tmp_path / "plan.json"
    a.sync("plan", "--out", str(plan), code=2)
    a.rules.write_text(a.rules.read_text("utf-8") + '\nform "Other"\n', "utf-8")
    r = a.sync("apply", str(plan), code=0)
    assert r.stderr == "" and "1 created" in r.stdout


def test_a_store_from_before_ids_gets_one_when_a_sync_opens_it(tmp_path: Path) -> None:
    """A store made by an mrules from before store ids has none: a command that only
    reads it leaves it so; the sync opens it to write, gives it one (a metadata row, no
    rebuild), and the plan notes it."""
    import sqlite3

    a = _world(tmp_path / "a", ev(T0, "ann@x.com", asset="Demo"))

    def store_id() -> str | None:
        conn = sqlite3.connect(a.store)
        try:
            row = conn.execute("SELECT value FROM meta WHERE key = 'store_id'").fetchone()
        finally:
            conn.close()
        return None if row is None else str(row[0])

    conn = sqlite3.connect(a.store)
    with conn:
        conn.execute("DELETE FROM meta WHERE key = 'store_id'")
    conn.close()
    a.ok("state", "export", "--store", str(a.store))
    assert store_id() is None  # read only: left as it is
    plan = tmp_path / "plan.json"
    a.sync("plan", "--out", str(plan), code=2)
    given = store_id()
    assert given is not None and len(given) == 32
    assert json.loads(plan.read_text("utf-8"))["store_id"] == given
    assert "1 created" in a.sync("apply", str(plan), code=0).output
