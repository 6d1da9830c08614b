"""Fuzz harness (c): one value of the store, the sync file or the local CRM file replaced
by junk (text, a blob, an infinite or huge number, NULL, JSON of the wrong shape), then
the commands that read those files. Whatever the value, each command ends with one of
its documented exit codes (0 to 4) and never an internal error or a traceback: damage
is exit 4 with a message naming it, or a value the command does not read.

The files are the Get Cloudy example after `crm load`, `mrules run` and one sync
cycle. The default run tries a few seeded damages (seconds); the long one is opt-in:

    MRULES_FUZZ_DAMAGES=2000 .venv/bin/python -m pytest -m slow tests/fuzz/test_fuzz_damage.py
"""

from __future__ import annotations

import json
import os
import random
import shutil
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner

from mrules.cli import main

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "getcloudy"
RULES = str(EXAMPLE / "rules")
FILES = {"store": "g.db", "sync": "g.sync.db", "crm": "g.crm.db"}
JUNK: list[object] = [
    "x", "", "{}", "[]", "[1]", '{"a": 1}', "null", "1e999", "-1", "2026-13-45T99:00:00Z",
    b"\x00\xff", b"", 0, -1, 2**62, 1e308, float("inf"), float("-inf"), None,
]
COMMANDS = [
    ("sync", "status", "--store", "g.db"),
    ("sync", "plan", "--rules", RULES, "--store", "g.db"),
    ("sync", "run", "--rules", RULES, "--store", "g.db", "--until", "2026-12-20T01:00:00Z"),
    ("crm", "export", "--store", "g.db"),
    ("state", "export", "--store", "g.db"),
    ("explain", "ivy@bigcorp.example", "--store", "g.db"),
    ("report", "funnel", "--store", "g.db"),
    ("report", "rules", "--store", "g.db"),
    ("report", "campaigns", "--store", "g.db"),
    ("report", "scores", "--store", "g.db"),
    ("report", "html", "out.html", "--store", "g.db"),
    ("state", "outbox", "--store", "g.db"),
    ("sync", "retry", "--store", "g.db"),
    # The commands that write go last: each reads what the damage left, then changes it.
    ("segment", RULES, "--store", "g.db"),
    ("run", RULES, "more.jsonl", "--store", "g.db", "-q"),
]
# Events after the example's, for prospects and a visitor the store knows: a run that
# resumes reads their stored states, visitors and history.
MORE = [
    {"ts": "2026-12-21T09:00:00Z", "id": "m01", "type": "page_view", "visitor": "v-81",
     "url": "https://www.getcloudy.com/pricing"},
    {"ts": "2026-12-21T09:01:00Z", "id": "m02", "type": "page_view",
     "prospect": "leung@example.com", "url": "https://www.getcloudy.com/consult"},
    {"ts": "2026-12-21T09:02:00Z", "id": "m03", "type": "email_open",
     "prospect": "ivy@bigcorp.example", "asset": "Newsletter"},
    {"ts": "2026-12-21T09:03:00Z", "id": "m04", "type": "prospect_update",
     "prospect": "bob@bigcorp.example", "fields": {"company": "Big"}},
    {"ts": "2026-12-21T09:04:00Z", "id": "m05", "type": "crm_update",
     "prospect": "bob@bigcorp.example", "object": "opportunity", "status": "won"},
    {"ts": "2026-12-22T00:00:00Z", "id": "m06", "type": "tick"},
]


def _cli(*args: str) -> tuple[int, str]:
    r = CliRunner().invoke(main, list(args))
    if r.exception is not None and not isinstance(r.exception, SystemExit):
        raise AssertionError(f"{args}: {r.exception!r}\n{r.output}") from r.exception
    return r.exit_code, r.output


@pytest.fixture(scope="module")
def synced(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("damage")
    old = Path.cwd()
    os.chdir(d)
    try:
        assert _cli("crm", "load", str(EXAMPLE / "crm"), "--store", "g.db")[0] == 0
        assert _cli("run", RULES, str(EXAMPLE / "events.jsonl"), "--store", "g.db", "-q")[0] == 0
        code, out = _cli("sync", "run", "--rules", RULES, "--store", "g.db",
                         "--until", "2026-12-20T00:00:00Z")
        assert code == 0, out
    finally:
        os.chdir(old)
    return d


def _cells(path: Path) -> list[tuple[str, str, int]]:
    """Every (table, column, rowid) of a file's tables that have rowids."""
    out = []
    with sqlite3.connect(path) as conn:
        tables = [r[0] for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            " AND sql NOT LIKE '%WITHOUT ROWID%'")]
        for table in tables:
            columns = [r[1] for r in conn.execute(f"PRAGMA table_info({table})")]
            rowids = [r[0] for r in conn.execute(f"SELECT rowid FROM {table} LIMIT 200")]
            out += [(table, c, i) for c in columns for i in rowids]
    conn.close()
    return out


def _damage_and_run(synced: Path, work: Path, rng: random.Random) -> None:
    for left in work.iterdir():  # a WAL or an output of the last damage's commands
        if left.name.endswith(("-wal", "-shm", "-journal", ".html")):
            left.unlink()
    for name in FILES.values():
        shutil.copy(synced / name, work / name)
    (work / "more.jsonl").write_text("".join(json.dumps(e) + "\n" for e in MORE), "utf-8")
    which = rng.choice(sorted(FILES))
    cells = _cells(work / FILES[which])
    table, column, rowid = rng.choice(cells)
    value = rng.choice(JUNK)
    with sqlite3.connect(work / FILES[which]) as conn:
        try:
            conn.execute(f'UPDATE {table} SET "{column}" = ? WHERE rowid = ?', (value, rowid))
        except sqlite3.IntegrityError:
            return  # NOT NULL, UNIQUE: SQLite itself refuses that damage
    conn.close()
    where = f"{FILES[which]} {table}.{column} rowid {rowid} = {value!r}"
    if os.environ.get("MRULES_FUZZ_LOG"):  # which damage a killed run was trying
        with open(os.environ["MRULES_FUZZ_LOG"], "a", encoding="utf-8") as log:
            log.write(where + "\n")
    for command in COMMANDS:
        try:
            code, out = _cli(*command)
        except AssertionError as e:
            raise AssertionError(f"{where}: {e}") from None
        assert code in (0, 1, 2, 3, 4), f"{where}: {command[:2]} exit {code}\n{out}"
        assert "internal error" not in out and "Traceback" not in out, f"{where}\n{out}"


def test_every_command_succeeds_on_the_undamaged_files(synced: Path, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch
                                                        ) -> None:
    # Otherwise a command would fail on every damage for a reason of its own, and the
    # harness would test nothing of it.
    monkeypatch.chdir(tmp_path)
    for name in FILES.values():
        shutil.copy(synced / name, tmp_path / name)
    (tmp_path / "more.jsonl").write_text("".join(json.dumps(e) + "\n" for e in MORE), "utf-8")
    for command in COMMANDS:
        code, out = _cli(*command)
        ok = (0, 2) if command[:2] == ("sync", "plan") else (0,)  # plan: 2, work to do
        assert code in ok, f"{command[:2]} exit {code}\n{out}"


def _run(synced: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, n: int,
         seed: int) -> None:
    monkeypatch.chdir(tmp_path)
    rng = random.Random(seed)
    for _ in range(n):
        _damage_and_run(synced, tmp_path, rng)


def test_damage_short(synced: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _run(synced, tmp_path, monkeypatch, 12, seed=7)


@pytest.mark.slow
def test_damage_long(synced: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _run(synced, tmp_path, monkeypatch, int(os.environ.get("MRULES_FUZZ_DAMAGES", "2000")),
         seed=int(os.environ.get("MRULES_FUZZ_SEED", "1")))
