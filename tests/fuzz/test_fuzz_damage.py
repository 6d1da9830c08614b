"""Fuzz harness (c): one value of the store, the sync file or the local CRM file replaced
by junk (text, a blob, an infinite or huge number, NULL, JSON of the wrong shape), then
the commands that read those files. Whatever the value, each command ends with one of
its documented exit codes (0 to 4) and never an internal error or a traceback: damage
is exit 4 with a message naming it, or a value the command does not read.

The files are the Get Cloudy example after `crm load`, `mrules run` and one sync
cycle. The same commands then run on files damaged below their values: bytes
overwritten (in the header, the schema, a page), a page zeroed or made random, the
file cut short. The default run tries a few seeded damages of each kind (seconds); the
long ones are opt-in (each damage is logged to MRULES_FUZZ_LOG when it is set):

    MRULES_FUZZ_DAMAGES=2000 MRULES_FUZZ_SEED=1 .venv/bin/python -m pytest -m slow \
        tests/fuzz/test_fuzz_damage.py
"""

from __future__ import annotations

import json
import os
import random
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from fuzzing import cli

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "getcloudy"
RULES = str(EXAMPLE / "rules")
FILES = {"store": "g.db", "sync": "g.sync.db", "crm": "g.crm.db"}
JUNK: list[object] = [
    "x",
    "",
    "{}",
    "[]",
    "[1]",
    '{"a": 1}',
    "null",
    "1e999",
    "-1",
    "2026-13-45T99:00:00Z",
    b"\x00\xff",
    b"",
    0,
    -1,
    2**62,
    2**63 - 1,
    -(2**63),
    1e308,
    float("inf"),
    float("-inf"),
    None,
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
    # An action log the store noted the start of and nothing was written to yet (the
    # store's `actions_log:` note is read), and the diagnostics file the store keeps.
    ("run", RULES, "more.jsonl", "--store", "g.db", "-q", "--actions", "actions.jsonl",
     "--diagnostics", "diagnostics.jsonl"),
]  # fmt: skip
# Events after the example's, for prospects and a visitor the store knows: a run that
# resumes reads their stored states, visitors and history.
MORE = [
    {
        "ts": "2026-12-21T09:00:00Z",
        "id": "m01",
        "type": "page_view",
        "visitor": "v-81",
        "url": "https://www.getcloudy.com/pricing",
    },
    {
        "ts": "2026-12-21T09:01:00Z",
        "id": "m02",
        "type": "page_view",
        "prospect": "leung@example.com",
        "url": "https://www.getcloudy.com/consult",
    },
    {
        "ts": "2026-12-21T09:02:00Z",
        "id": "m03",
        "type": "email_open",
        "prospect": "ivy@bigcorp.example",
        "asset": "Newsletter",
    },
    {
        "ts": "2026-12-21T09:03:00Z",
        "id": "m04",
        "type": "prospect_update",
        "prospect": "bob@bigcorp.example",
        "fields": {"company": "Big"},
    },
    {
        "ts": "2026-12-21T09:04:00Z",
        "id": "m05",
        "type": "crm_update",
        "prospect": "bob@bigcorp.example",
        "object": "opportunity",
        "status": "won",
    },
    {"ts": "2026-12-22T00:00:00Z", "id": "m06", "type": "tick"},
]


@pytest.fixture(scope="module")
def synced(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("damage")
    old = Path.cwd()
    os.chdir(d)
    try:
        assert cli("crm", "load", str(EXAMPLE / "crm"), "--store", "g.db")[0] == 0
        assert cli("run", RULES, str(EXAMPLE / "events.jsonl"), "--store", "g.db", "-q")[0] == 0
        # The store notes where a new action log starts (meta `actions_log:PATH`).
        (d / "empty.jsonl").write_bytes(b"")
        code, out = cli("run", RULES, "empty.jsonl", "--store", "g.db", "-q", "--actions", "a")
        assert code == 0, out
        code, out = cli(
            "sync", "run", "--rules", RULES, "--store", "g.db", "--until", "2026-12-20T00:00:00Z"
        )
        assert code == 0, out
    finally:
        os.chdir(old)
    return d


Cell = tuple[str, str, str, tuple[Any, ...]]
"""(table, column, the row's WHERE clause, its parameters)."""


def _cells(path: Path) -> list[Cell]:
    """Every cell of a file's tables (their first 200 rows): by rowid, or by primary key in
    a table WITHOUT ROWID (the store's meta table is one: the start of an action log, the
    last event of a stream, the clock...)."""
    out: list[Cell] = []
    with sqlite3.connect(path) as conn:
        tables = [
            (r[0], "WITHOUT ROWID" in r[1].upper())
            for r in conn.execute(
                "SELECT name, sql FROM sqlite_master WHERE type = 'table'"
                " AND name NOT LIKE 'sqlite_%'"
            )
        ]
        for table, without_rowid in tables:
            info = list(conn.execute(f"PRAGMA table_info({table})"))
            columns = [r[1] for r in info]
            if without_rowid:
                keys = [r[1] for r in sorted(info, key=lambda r: r[5]) if r[5] > 0]
                where = " AND ".join(f'"{k}" = ?' for k in keys)
                sql = f"SELECT {', '.join(keys)} FROM {table} LIMIT 200"
                rows = [(where, tuple(r)) for r in conn.execute(sql)]
            else:
                sql = f"SELECT rowid FROM {table} LIMIT 200"
                rows = [("rowid = ?", (r[0],)) for r in conn.execute(sql)]
            out += [(table, c, w, params) for c in columns for w, params in rows]
    conn.close()
    return out


def _fresh_copies(synced: Path, work: Path) -> None:
    """The undamaged files in `work`, and nothing the last damage's commands left."""
    for left in work.iterdir():
        left.unlink()
    for name in FILES.values():
        shutil.copy(synced / name, work / name)
    with sqlite3.connect(work / FILES["store"]) as conn:  # the log noted is the one here
        conn.execute(
            "UPDATE meta SET key = ? WHERE key LIKE 'actions_log:%'",
            ("actions_log:" + str((work / "actions.jsonl").resolve()),),
        )
    conn.close()
    (work / "actions.jsonl").write_bytes(b"")  # nothing written yet: the noted start is read
    (work / "more.jsonl").write_text("".join(json.dumps(e) + "\n" for e in MORE), "utf-8")


def _every_command(where: str) -> None:
    """Each command on the damaged files: a documented exit code, no internal error."""
    if os.environ.get("MRULES_FUZZ_LOG"):  # which damage a killed run was trying
        with open(os.environ["MRULES_FUZZ_LOG"], "a", encoding="utf-8") as log:
            log.write(where + "\n")
    for command in COMMANDS:
        try:
            code, out = cli(*command)
        except AssertionError as e:
            raise AssertionError(f"{where}: {e}") from None
        assert code in (0, 1, 2, 3, 4), f"{where}: {command[:2]} exit {code}\n{out}"
        assert "internal error" not in out and "Traceback" not in out, f"{where}\n{out}"


def _damage_and_run(synced: Path, work: Path, rng: random.Random) -> None:
    _fresh_copies(synced, work)
    which = rng.choice(sorted(FILES))
    cells = _cells(work / FILES[which])
    table, column, where, params = rng.choice(cells)
    value = rng.choice(JUNK)
    with sqlite3.connect(work / FILES[which]) as conn:
        try:
            conn.execute(f'UPDATE {table} SET "{column}" = ? WHERE {where}', (value, *params))
        except sqlite3.IntegrityError:
            return  # NOT NULL, UNIQUE: SQLite itself refuses that damage
    conn.close()
    _every_command(f"{FILES[which]} {table}.{column} where {where} {params} = {value!r}")


def test_every_command_succeeds_on_the_undamaged_files(
    synced: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Otherwise a command would fail on every damage for a reason of its own, and the
    # harness would test nothing of it.
    monkeypatch.chdir(tmp_path)
    _fresh_copies(synced, tmp_path)
    for command in COMMANDS:
        code, out = cli(*command)
        ok = (0, 2) if command[:2] == ("sync", "plan") else (0,)  # plan: 2, work to do
        assert code in ok, f"{command[:2]} exit {code}\n{out}"


def _run(synced: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, n: int, seed: int) -> None:
    monkeypatch.chdir(tmp_path)
    rng = random.Random(seed)
    for _ in range(n):
        _damage_and_run(synced, tmp_path, rng)


def test_damage_short(synced: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _run(synced, tmp_path, monkeypatch, 12, seed=7)


@pytest.mark.slow
def test_damage_long(synced: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _run(
        synced,
        tmp_path,
        monkeypatch,
        int(os.environ.get("MRULES_FUZZ_DAMAGES", "2000")),
        seed=int(os.environ.get("MRULES_FUZZ_SEED", "1")),
    )


# -- damage below the values: bytes of the files themselves --------------------------------


def _overwrite(path: Path, old: bytes, new: bytes) -> None:
    data = path.read_bytes()
    assert data.count(old) == 1, (path, old)
    i = data.index(old)
    path.write_bytes(data[:i] + new + data[i + len(old) :])


@pytest.mark.parametrize(
    ("name", "table", "command", "said"),
    [
        (
            "store",
            "streams",
            ("explain", "leung@example.com", "--store", "g.db"),
            "store g.db is"
            " damaged (SQLite's error quotes bytes that are not UTF-8: part of the file is"
            " overwritten): restore g.db from a backup",
        ),
        (
            "store",
            "streams",
            ("run", RULES, "more.jsonl", "--store", "g.db", "-q"),
            "store g.db is damaged (SQLite's error quotes bytes",
        ),
        (
            "sync",
            "cursor",
            ("sync", "status", "--store", "g.db"),
            "g.sync.db: cannot use the sync file: SQLite's error quotes bytes that are not UTF-8",
        ),
        (
            "crm",
            "label",
            ("crm", "export", "--store", "g.db"),
            "g.crm.db: not an mrules CRM file (SQLite's error quotes bytes that are not UTF-8",
        ),
    ],
)
def test_a_schema_overwritten_with_bytes_that_are_not_utf8_is_exit_4(
    synced: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    name: str,
    table: str,
    command: tuple[str, ...],
    said: str,
) -> None:
    # SQLite's "malformed database schema ... near "\xff"" quotes the bytes, and Python,
    # unable to make that message text, raised UnicodeDecodeError: an internal error.
    monkeypatch.chdir(tmp_path)
    _fresh_copies(synced, tmp_path)
    _overwrite(
        tmp_path / FILES[name],
        f"CREATE TABLE {table} (".encode(),
        f"CREATE TABLE {table} \xff".encode("latin-1"),
    )
    code, out = cli(*command)
    assert code == 4, out
    assert said in " ".join(out.split()), out


@pytest.mark.parametrize(
    "command",
    [
        ("crm", "export", "--store", "g.db"),
        ("sync", "plan", "--rules", RULES, "--store", "g.db"),
    ],
    ids=lambda c: " ".join(c[:2]),
)
def test_a_column_renamed_by_a_byte_of_the_schema_is_a_damaged_crm_file(
    synced: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: tuple[str, ...]
) -> None:
    # One byte of the schema's text overwritten renamed a column; the first read of a
    # record asked for it by name: an IndexError, exit 70 (seed 12 of the long fuzz).
    monkeypatch.chdir(tmp_path)
    _fresh_copies(synced, tmp_path)
    _overwrite(tmp_path / "g.crm.db", b"last_modified_by TEXT", b"last_mouified_by TEXT")
    code, out = cli(*command)
    assert code == 4, out
    assert (
        "g.crm.db: the CRM file is damaged (its table record has no column last_modified_by);"
        " restore it from a backup"
    ) in " ".join(out.split()), out


@pytest.mark.parametrize("report", ["funnel", "rules", "scores"])  # read the history
def test_a_report_that_meets_a_zeroed_page_is_exit_4(
    synced: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, report: str
) -> None:
    # The reports' own queries met "database disk image is malformed" uncaught.
    monkeypatch.chdir(tmp_path)
    _fresh_copies(synced, tmp_path)
    with sqlite3.connect(tmp_path / "g.db") as conn:
        size = conn.execute("PRAGMA page_size").fetchone()[0]
        pages = [r[0] for r in conn.execute("SELECT pageno FROM dbstat WHERE name = 'history'")]
    conn.close()
    data = bytearray((tmp_path / "g.db").read_bytes())
    for page in pages:
        data[(page - 1) * size : page * size] = bytes(size)
    (tmp_path / "g.db").write_bytes(bytes(data))
    code, out = cli("report", report, "--store", "g.db")
    assert code == 4, out
    assert "cannot read store g.db or sync file g.sync.db: database disk image is malformed" in (
        " ".join(out.split())
    ), out


def _bytes_damaged_and_run(synced: Path, work: Path, rng: random.Random) -> None:
    """One of the three files damaged below its values, then every command."""
    _fresh_copies(synced, work)
    name = rng.choice(sorted(FILES.values()))
    data = bytearray((work / name).read_bytes())
    how = rng.choice(["bytes", "page", "cut"])
    if how == "bytes":  # a few bytes anywhere: the header, the schema, a page's cells
        for _ in range(rng.choice([1, 4, 32])):
            data[rng.randrange(len(data))] = rng.randrange(256)
    elif how == "page":  # one page zeroed or made random
        page, noise = rng.randrange(len(data) // 4096), rng.random() < 0.5
        data[page * 4096 : (page + 1) * 4096] = bytes(
            rng.randrange(256) if noise else 0 for _ in range(4096)
        )
    else:  # cut short
        del data[rng.randrange(len(data)) :]
    (work / name).write_bytes(bytes(data))
    _every_command(f"{name}: {how} (seeded)")


def test_byte_damage_short(synced: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    rng = random.Random(11)
    for _ in range(6):
        _bytes_damaged_and_run(synced, tmp_path, rng)


@pytest.mark.slow
def test_byte_damage_long(synced: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    rng = random.Random(int(os.environ.get("MRULES_FUZZ_SEED", "1")))
    for _ in range(int(os.environ.get("MRULES_FUZZ_DAMAGES", "2000"))):
        _bytes_damaged_and_run(synced, tmp_path, rng)
