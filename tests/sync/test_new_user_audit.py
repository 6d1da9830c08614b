"""What a new user meets following docs/sync.md and docs/crm.md with wrong inputs: each
mistake gets a message that says what was given and what to give."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from tests.sync.world import BOB, T0, World, ev


def _world(tmp_path: Path) -> World:
    w = World(tmp_path)
    w.seed({"Contact": [dict(BOB)]})
    w.run(ev(T0, "ann@x.com", asset="Demo"))
    w.sync("apply")
    return w


@pytest.mark.parametrize(
    ("name", "what"),
    [
        ("w.db", "a SQLite database (a store? give it as --store)"),
        ("w.crm.db", "a CRM file (give it as --crm)"),
        ("w.sync.db", "a sync file (the sync keeps it beside the store)"),
    ],
)
def test_a_database_given_as_the_plan_is_named_for_what_it_is(
    tmp_path: Path, name: str, what: str
) -> None:
    """`sync apply w.db` (the store given where the plan goes) said `not JSON: lexical
    error: invalid char in json text.`"""
    w = _world(tmp_path)
    r = w.sync("apply", str(tmp_path / name), code=2)
    assert r.output == (
        f"mrules: error: {tmp_path / name}: not a sync plan but {what}; a plan is the JSON"
        " file `mrules sync plan --out FILE` saves\n"
    )


@pytest.mark.parametrize("command", ["status", "retry"])
def test_status_and_retry_of_a_store_that_is_not_there_say_so(tmp_path: Path, command: str) -> None:
    """`sync status --store typo.db` said `typo.sync.db: no sync yet`, as if the store
    were there and never synced."""
    w = _world(tmp_path)
    typo = str(tmp_path / "typo.db")
    r = w.cli("sync", command, "--store", typo)
    assert r.exit_code == 2, r.output
    assert r.output == (
        f"mrules: error: {typo}: no such store (nor a sync file {tmp_path / 'typo.sync.db'}"
        " beside it): give the store the sync ran on\n"
    )
    # A store that is there and never synced: no sync yet, as before.
    (tmp_path / "w.sync.db").unlink()
    r = w.cli("sync", command, "--store", str(w.store))
    assert r.exit_code == 2 and "no sync yet" in r.output


@pytest.mark.parametrize(("name", "what"), [("w.crm.db", "CRM"), ("w.sync.db", "sync")])
def test_a_crm_or_sync_file_given_as_the_store_is_named_for_what_it_is(
    tmp_path: Path, name: str, what: str
) -> None:
    """`--store w.crm.db` said `w.crm.db is not an mrules store (no schema version)`."""
    w = _world(tmp_path)
    given = tmp_path / name
    before = given.read_bytes()
    expected = (
        f"mrules: error: {given} is an mrules {what} file, not a store: give the store"
        " (w.db) as --store\n"
    )
    r = w.cli("sync", "plan", "--rules", str(w.rules), "--store", str(given))
    assert (r.exit_code, r.output) == (4, expected)
    r = w.cli("state", "export", "--store", str(given))
    assert (r.exit_code, r.output) == (4, expected)
    assert given.read_bytes() == before


def test_plan_out_over_the_events_the_store_read_is_refused(tmp_path: Path) -> None:
    """`sync plan --out events.jsonl` replaced the stream the store was run on with the
    plan: the events, and the store's resume position in them, were gone."""
    w = _world(tmp_path)
    w.run(ev("2026-11-02T09:05:00Z", "dora@x.com", asset="Demo"))
    before = w.events.read_bytes()
    r = w.sync("plan", "--out", str(w.events), code=2)
    assert r.output == (
        f"mrules: error: --out {w.events} is an events file the store has read: writing it"
        " would destroy it; give another path\n"
    )
    assert w.events.read_bytes() == before
    assert "dora@x.com" in w.sync("plan", "--out", str(tmp_path / "p.json"), code=2).output


def test_an_interrupted_apply_of_a_saved_plan_says_how_to_resume(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C during `sync apply PLAN` said `running the same command again resumes`;
    once the apply had written to the CRM, the same command is refused as stale."""
    import mrules.sync.apply

    w = World(tmp_path)
    w.seed({"Contact": [dict(BOB)]})
    w.run(ev(T0, "ann@x.com", asset="Demo"))
    plan = tmp_path / "plan.json"
    w.sync("plan", "--out", str(plan), code=2)
    real = mrules.sync.apply.apply_plan

    def interrupted(*args: object, **kwargs: object) -> None:
        monkeypatch.setattr(mrules.sync.apply, "apply_plan", real)
        raise KeyboardInterrupt

    monkeypatch.setattr(mrules.sync.apply, "apply_plan", interrupted)
    r = w.sync("apply", str(plan), code=130)
    assert r.output == (
        "mrules: error: interrupted; what was committed is kept; if the apply had written"
        " to the CRM, the plan is stale now: make a new one (`mrules sync plan --out FILE`),"
        " or run `mrules sync apply` without it: the next cycle finds those writes again\n"
    )
    assert "1 created" in w.sync("apply", str(plan)).output  # nothing written: it applies


def test_status_json_gives_the_error_queue_times_as_its_other_times(tmp_path: Path) -> None:
    """`error_queue[].at` was seconds since the epoch (`1793610000.0`) beside the status's
    ISO times (`last_cycle`)."""
    w = World(tmp_path)
    w.seed({"Contact": [dict(BOB)]})
    w.run(
        ev(T0, "ann@x.com", "prospect_update", fields={"company_size": "huge"}),
        ev(T0, "ann@x.com", asset="Demo"),
    )
    w.sync("apply")
    status = w.status()
    (held,) = status["error_queue"]
    assert held["at"] == status["last_cycle"] == T0


@pytest.mark.parametrize(
    ("cut", "why"),
    [
        (lambda text: text[: len(text) // 2], "parse error: premature EOF"),
        (
            lambda text: text.replace(b'"ops": [', b'"ops": [x', 1),
            "lexical error: invalid char in json text.",
        ),
    ],
)
def test_a_plan_file_cut_or_changed_by_hand_says_why_in_one_line(
    tmp_path: Path, cut: Any, why: str
) -> None:
    """The JSON reader's reason, its first line (the next ones quote the text)."""
    w = _world(tmp_path)
    w.run(ev("2026-11-02T09:05:00Z", "cleo@x.com", asset="Demo"))
    plan = tmp_path / "plan.json"
    w.sync("plan", "--out", str(plan), code=None)
    assert b'"ops": [' in plan.read_bytes()
    plan.write_bytes(cut(plan.read_bytes()))
    r = w.sync("apply", str(plan), code=2)
    assert r.output == f"mrules: error: {plan}: not a sync plan (not JSON: {why})\n"
