"""`mrules sync run --changes FILE` with lines that are not changes, and changes the CRM
refuses. A bad line was printed without `mrules: error:` and the cycles ran without the
file's changes (exit 0); a refused change was dropped without a word (and, recorded as
failed, is never tried again)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.sync.world import BOB, T0, World, ev

UNTIL = "2026-11-02T10:00:00Z"


def _world(tmp_path: Path) -> World:
    w = World(tmp_path)
    w.seed({"Contact": [BOB]})
    w.run(ev(T0, "bob@x.com", asset="Demo"))
    return w


def test_a_changes_file_with_a_bad_line_runs_no_cycle(tmp_path: Path) -> None:
    w = _world(tmp_path)
    changes = tmp_path / "changes.jsonl"
    good = {"at": "2026-11-02T09:05:00Z", "op": "update", "email": "bob@x.com",
            "fields": {"Title": "CTO"}}  # fmt: skip
    changes.write_text(json.dumps(good) + "\nnot json\n", "utf-8")
    r = w.sync("run", "--until", UNTIL, "--changes", str(changes), code=2)
    assert r.output.startswith(f"mrules: error: {changes}:2: not JSON"), r.output
    assert "nothing was run" in r.output
    assert w.cli("sync", "status", "--store", str(w.store)).exit_code == 2  # no sync yet
    changes.write_bytes(b"\xff\xfe\n")
    r = w.sync("run", "--until", UNTIL, "--changes", str(changes), code=2)
    assert f"mrules: error: {changes}:1: not UTF-8" in r.output


def test_a_change_the_crm_refuses_is_said(tmp_path: Path) -> None:
    w = _world(tmp_path)
    changes = tmp_path / "changes.jsonl"
    rows = [
        {"at": "2026-11-02T09:05:00Z", "op": "update", "email": "nobody@x.com",
         "fields": {"Title": "CTO"}},
        {"at": "2026-11-02T09:06:00Z", "op": "update", "email": "bob@x.com",
         "fields": {"Title": "CTO"}},
    ]  # fmt: skip
    changes.write_text("".join(json.dumps(r) + "\n" for r in rows), "utf-8")
    r = w.sync("run", "--until", UNTIL, "--changes", str(changes))
    assert f"{changes}:1: refused: " in r.output and "nobody@x.com" in r.output
    assert f"{changes}:2:" not in r.output
    assert [c["Title"] for c in w.crm_rows("Contact")] == ["CTO"]


def test_status_after_a_command_that_ran_no_cycle_says_no_sync_yet(tmp_path: Path) -> None:
    """A refused `sync send` left an empty sync file, and `sync status` then printed
    `last cycle: never` with exit 0 instead of "no sync yet" (exit 2)."""
    w = _world(tmp_path)
    r = w.sync("send", "nobody@x.com", code=2)
    assert "no live lead or contact" in r.output
    for fmt in ("text", "json"):
        r = w.cli("sync", "status", "--store", str(w.store), "--format", fmt)
        assert r.exit_code == 2 and "no sync yet" in r.output, r.output
    w.sync("apply")
    assert w.status()["links"] == 1
