"""Nothing lost: a sync killed (SIGKILL) at several points, then run again, ends where a sync
that was never killed ends: no duplicate record, no field value lost (docs/sync.md#nothing-lost).
"""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from tests.sync.world import T0, World, ev

KILLER = r"""
import os, signal, sys
point, args = sys.argv[1], sys.argv[2:]
import mrules, mrules.sync.apply as ap, mrules.sync.cycle as cy

def die():
    os.kill(os.getpid(), signal.SIGKILL)

if point == "crm-write":  # after the first CRM write call: the sync file knows nothing of it
    orig_write = ap._write
    def _write(*a, **k):
        orig_write(*a, **k)
        die()
    ap._write = _write
elif point == "sync-commit":  # after the sync file's commit, before the engine got the facts
    orig_deliver, calls = cy.deliver, []
    def deliver(*a, **k):
        calls.append(1)
        if len(calls) == 2:
            die()
        return orig_deliver(*a, **k)
    cy.deliver = deliver
elif point == "engine-commit":  # the engine committed the facts, not yet marked delivered
    import mrules.streamrun as sr
    orig_run = sr.run_opened
    def run(*a, **k):
        orig_run(*a, **k)
        die()
    sr.run_opened = run
from mrules.cli import main
main(args)
"""

CONTACTS = [
    {
        "Id": f"c{i}",
        "LastName": f"C{i}",
        "Email": f"p{i:02d}@x.com",
        "Phone": f"+1 555 {i:04d}",
        "OwnerId": "sam",
    }
    for i in range(0, 30, 3)
]


def _world(tmp: Path) -> World:
    w = World(tmp, batch=800)
    w.seed({"Contact": [dict(c) for c in CONTACTS]})
    w.run(
        *(
            ev(
                T0,
                f"p{i:02d}@x.com",
                "prospect_update",
                fields={"title": f"T{i}", "lead_source": "Web"},
            )
            for i in range(30)
        ),
        *(ev(T0, f"p{i:02d}@x.com", asset="Demo") for i in range(30)),
    )
    return w


def _second_half(w: World) -> None:
    w.changes(
        *(
            {
                "at": "2026-11-02T09:05:00Z",
                "op": "update",
                "email": f"p{i:02d}@x.com",
                "fields": {"LeadSource": "Phone", "Phone": "+1 555 9999"},
            }
            for i in range(0, 30, 5)
        ),
        until="2026-11-02T09:05:00Z",
    )
    w.run(
        *(
            ev(
                "2026-11-02T09:06:00Z",
                f"p{i:02d}@x.com",
                "prospect_update",
                fields={"title": f"New {i}"},
            )
            for i in range(0, 30, 2)
        )
    )


def _sync_cmd(w: World, until: str) -> list[str]:
    return ["sync", "run", "--until", until, "--rules", str(w.rules), "--store", str(w.store)]


def _outcome(w: World) -> dict[str, Any]:
    people = {}
    for sobject in ("Lead", "Contact"):
        for r in w.crm_rows(sobject):
            if not r.get("Email", "").startswith("p"):
                continue
            key = (sobject, r["Email"])
            assert key not in people, f"duplicate {key}"
            people[key] = {k: r.get(k) for k in ("Phone", "LeadSource", "Title", "OwnerId")}
    prospects = {
        e: {k: p[k] for k in ("crm_status", "crm_id", "fields", "assigned")}
        for e, p in w.prospects().items()
    }
    return {
        "crm": {f"{k[0]}:{k[1]}": v for k, v in sorted(people.items())},
        "prospects": prospects,
        "links": w.syncdb("SELECT prospect, object, crm_id, base FROM link ORDER BY 1"),
        "queue": w.syncdb("SELECT count(*) FROM queue"),
        "errors": w.syncdb("SELECT count(*) FROM error"),
    }


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    w = _world(tmp_path_factory.mktemp("ref"))
    w.sync("run", "--until", T0)
    _second_half(w)
    w.sync("run", "--until", "2026-11-02T09:20:00Z")
    return _outcome(w)


@pytest.mark.parametrize("cycle", [0, 1])
@pytest.mark.parametrize("point", ["crm-write", "sync-commit", "engine-commit"])
def test_killed_sync_then_rerun_ends_like_an_unkilled_one(
    tmp_path: Path, reference: dict[str, Any], point: str, cycle: int
) -> None:
    w = _world(tmp_path)
    script = tmp_path / "killer.py"
    script.write_text(KILLER, "utf-8")

    def killed(until: str) -> None:
        proc = subprocess.run(
            [sys.executable, str(script), point, *_sync_cmd(w, until)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode == -signal.SIGKILL, proc.stderr

    if cycle == 0:
        killed(T0)
    w.sync("run", "--until", T0)
    _second_half(w)
    if cycle == 1:
        killed("2026-11-02T09:10:00Z")
    w.sync("run", "--until", "2026-11-02T09:20:00Z")
    got = _outcome(w)
    assert got == reference
    assert got["queue"] == [(0,)] and got["errors"] == [(0,)]
    # No fact lost on the way: the pushed titles and the pulled lead sources are on both sides.
    assert got["crm"]["Lead:p02@x.com"]["Title"] == "New 2"
    assert got["prospects"]["p05@x.com"]["fields"]["lead_source"] == "Phone"
    assert json.dumps(got["prospects"]["p00@x.com"]["fields"], sort_keys=True)


def _full_sync_file(monkeypatch: pytest.MonkeyPatch) -> None:
    """SQLite's own "database or disk is full" (SQLITE_FULL) as a full disk gives it: the
    sync file may not grow past the pages it has when the command opens it."""
    from mrules.sync import SyncDb

    real = SyncDb.open.__func__  # type: ignore[attr-defined]

    def open_full(cls: Any, *args: Any, **kwargs: Any) -> Any:
        opened = real(cls, *args, **kwargs)
        pages = opened.conn.execute("PRAGMA page_count").fetchone()[0]
        opened.conn.execute(f"PRAGMA max_page_count = {pages}")
        return opened

    monkeypatch.setattr(SyncDb, "open", classmethod(open_full))


def test_a_full_disk_stops_the_sync_then_it_resumes(
    tmp_path: Path, reference: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full disk under the sync file: SQLite rolls the transaction back
    by itself, and the sync's own ROLLBACK then failed, its error ("cannot rollback - no
    transaction is active") in the message in place of the cause. The cause is said, and
    the same command, once there is space, ends where a sync that never failed ends."""
    w = _world(tmp_path)
    w.sync("run", "--until", T0)
    _second_half(w)
    with monkeypatch.context() as m:
        _full_sync_file(m)
        res = w.sync("run", "--until", "2026-11-02T09:20:00Z", code=4)
    assert "database or disk is full" in res.output, res.output
    assert "rollback" not in res.output
    # ... and what to do: the message of a full store says it, this one did not
    assert res.output.rstrip().endswith(
        "database or disk is full; the disk is full: free some space, then run the same"
        " command again"
    ), res.output
    w.sync("run", "--until", "2026-11-02T09:20:00Z")
    assert _outcome(w) == reference


# SIGINT (Ctrl-C) as the first sync has just made its file (`sqlite3.connect` of it
# returned), before the file has a table.
_CTRL_C_AS_THE_SYNC_FILE_IS_MADE = """
import os, signal, sys
opened = []
def hook(event, args):
    if event == "sqlite3.connect":
        opened[:] = [str(args[0])]
    elif event == "sqlite3.connect/handle" and opened[0].endswith(".sync.db"):
        if not getattr(hook, "sent", False):
            hook.sent = True
            os.kill(os.getpid(), signal.SIGINT)
sys.addaudithook(hook)
from mrules.cli import main
main(sys.argv[1:], prog_name="mrules")
"""


def _no_sync_yet_then_it_resumes(w: World, reference: dict[str, Any]) -> None:
    """What a sync file with no table must read as: no sync yet, for every reader."""
    r = w.cli("sync", "status", "--store", str(w.store))
    assert r.exit_code == 2, r.output
    assert (
        r.output == f"mrules: error: {w.tmp / 'w.sync.db'}: no sync yet (run `mrules sync run`"
        " or `sync apply`)\n"
    )
    # `report html` and `explain --timeline` took such a file for one that is no sync
    # file (exit 4, "no link or opportunity table"), where the other reports read it.
    page = w.tmp / "page.html"
    readers = (
        ["report", "funnel"],
        ["state", "outbox"],
        ["report", "html", str(page)],
        ["explain", "p00@x.com", "--timeline"],
    )
    for reader in readers:
        r = w.cli(*reader, "--store", str(w.store))
        assert r.exit_code == 0, (reader, r.output)
    assert page.stat().st_size > 0
    w.sync("run", "--until", T0)
    _second_half(w)
    w.sync("run", "--until", "2026-11-02T09:20:00Z")
    assert _outcome(w) == reference


def test_ctrl_c_as_the_first_sync_makes_its_file_leaves_none(
    tmp_path: Path, reference: dict[str, Any]
) -> None:
    """The sync file was left made but empty: `sync status` said "the sync file failed:
    no such table: queue" and every report "not an mrules sync file", both exit 4."""
    w = _world(tmp_path)
    proc = subprocess.run(
        [sys.executable, "-c", _CTRL_C_AS_THE_SYNC_FILE_IS_MADE, *_sync_cmd(w, T0)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 130, proc.stderr
    assert not list(tmp_path.glob("w.sync.db*"))
    _no_sync_yet_then_it_resumes(w, reference)


def test_a_sync_file_with_no_table_reads_as_no_sync_yet(
    tmp_path: Path, reference: dict[str, Any]
) -> None:
    """What a first sync killed (SIGKILL, a power cut) while it made its file leaves: an
    SQLite file in WAL mode with no table. Nothing can remove it; the readers take it for
    what it is, no sync yet, and the next sync makes it whole."""
    w = _world(tmp_path)
    conn = sqlite3.connect(tmp_path / "w.sync.db")
    conn.execute("PRAGMA journal_mode=WAL")
    conn.close()
    _no_sync_yet_then_it_resumes(w, reference)
