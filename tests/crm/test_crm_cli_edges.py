"""`mrules crm` at the edges a new user reaches: the years 1 and 9999, a full disk."""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import mrules
from mrules import atomic

ROOT = Path(__file__).resolve().parents[2]
SEED = ROOT / "examples" / "getcloudy" / "crm"
CHANGES = ROOT / "examples" / "getcloudy" / "crm-changes.jsonl"


@pytest.mark.parametrize("at", ["0001-01-01T00:00:00Z", "0999-06-01T12:00:00Z"])
def test_a_clock_before_the_year_1000_is_kept_and_read_back(tmp_path: Path, at: str) -> None:
    seed = tmp_path / "seed"
    shutil.copytree(SEED, seed)
    org = json.loads((seed / "org.json").read_text())
    del org["clock"]  # the clock --at sets (a clock never goes back)
    (seed / "org.json").write_text(json.dumps(org))
    store = tmp_path / "s.db"
    r = mrules("crm", "load", seed, "--store", store, "--at", at)
    assert r.exit_code == 0, r.output  # was an internal error (exit 70), the CRM file unusable
    r = mrules("crm", "apply-changes", CHANGES, "--store", store, "--until", at)
    assert r.exit_code == 0, r.output
    assert "0 applied, 0 refused, 0 applied before, 9 still to come" in r.stderr
    out = tmp_path / "out"
    out.mkdir()
    assert mrules("crm", "export", "--store", store, "--out", out).exit_code == 0
    assert f'"clock": "{at[:-1]}.000+0000"' in (out / "org.json").read_text()
    r = mrules("crm", "apply-changes", CHANGES, "--store", store, "--until", "9999-12-31T23:59:59Z")
    assert r.exit_code == 0, r.output
    assert "9 applied" in r.stderr


@pytest.mark.parametrize(
    ("command", "option"),
    [("load", "--at"), ("apply-changes", "--until")],
)
@pytest.mark.parametrize("when", ["9999-12-31T23:59:59-01:00", "0001-01-01T00:00:00+01:00"])
def test_a_time_outside_the_years_1_to_9999_in_utc_is_a_usage_error(
    tmp_path: Path, command: str, option: str, when: str
) -> None:
    store = tmp_path / "s.db"
    assert mrules("crm", "load", SEED, "--store", store).exit_code == 0
    source = SEED if command == "load" else CHANGES
    r = mrules("crm", command, source, "--store", store, option, when)
    assert r.exit_code == 2, r.output  # was OverflowError, exit 70
    assert f"{option} '{when}': not a time with a zone in the years 1 to 9999" in r.stderr


def test_a_full_disk_leaves_the_old_export_files_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = tmp_path / "s.db"
    assert mrules("crm", "load", SEED, "--store", store).exit_code == 0
    out = tmp_path / "out"
    out.mkdir()
    assert mrules("crm", "export", "--store", store, "--out", out).exit_code == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def half_then_full(self: Path, data: str, *args: object, **kwargs: object) -> int:
        with open(self, "w", encoding="utf-8") as f:  # what a full disk leaves
            f.write(data[: len(data) // 2])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(Path, "write_text", half_then_full)
    monkeypatch.setattr(atomic.os, "fsync", full)
    r = mrules("crm", "export", "--store", store, "--out", out)
    assert r.exit_code == 4, r.output
    assert "No space left on device" in r.stderr
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # no half files, no temps


def test_a_crm_file_that_cannot_grow_says_so_and_a_second_load_completes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite's "database or disk is full" (SQLITE_FULL: the CRM file may not grow past
    the pages it has when opened) rolls the load's transaction back by itself; the CRM's
    own ROLLBACK then failed, and the message said "cannot rollback - no transaction is
    active" in place of the cause. Loaded again (rows with labels update), all are there."""
    from mrules.crm.emulator import EmulatedCrm

    store = tmp_path / "s.db"
    assert mrules("crm", "load", SEED, "--store", store).exit_code == 0
    more = tmp_path / "more"
    more.mkdir()
    (more / "Lead.jsonl").write_text(
        "".join(
            json.dumps({"Id": f"lead-{i}", "LastName": f"L{i}", "Company": "C"}) + "\n"
            for i in range(3000)
        )
    )
    real = EmulatedCrm.open.__func__  # type: ignore[attr-defined]

    def open_full(cls: type, *args: object, **kwargs: object) -> EmulatedCrm:
        crm: EmulatedCrm = real(cls, *args, **kwargs)
        pages = crm._conn.execute("PRAGMA page_count").fetchone()[0]
        crm._conn.execute(f"PRAGMA max_page_count = {pages}")
        return crm

    with monkeypatch.context() as m:
        m.setattr(EmulatedCrm, "open", classmethod(open_full))
        r = mrules("crm", "load", more, "--store", store)
    assert r.exit_code == 4, r.output
    assert "the CRM file failed: database or disk is full; the disk is full: free some" in r.stderr
    assert "rollback" not in r.stderr
    assert mrules("crm", "load", more, "--store", store).exit_code == 0
    out = mrules("crm", "export", "--store", store, "--object", "Lead")
    assert sum('"LastName": "L' in line for line in out.stdout.splitlines()) == 3000


# SIGINT (Ctrl-C) as `crm load` has just made the CRM file (`sqlite3.connect` of it
# returned), before the file has a table.
_CTRL_C_AS_THE_CRM_FILE_IS_MADE = """
import os, signal, sys
opened = []
def hook(event, args):
    if event == "sqlite3.connect":
        opened[:] = [str(args[0])]
    elif event == "sqlite3.connect/handle" and opened[0].endswith(".crm.db"):
        if not getattr(hook, "sent", False):
            hook.sent = True
            os.kill(os.getpid(), signal.SIGINT)
sys.addaudithook(hook)
from mrules.cli import main
main(sys.argv[1:], prog_name="mrules")
"""


def test_ctrl_c_as_crm_load_makes_the_file_leaves_none(tmp_path: Path) -> None:
    """It left an empty file, which the same command (as the `interrupted` line says to
    run) then refused: `an empty file (0 bytes), not an mrules CRM file`, exit 4."""
    store = tmp_path / "s.db"
    proc = subprocess.run(
        [sys.executable, "-c", _CTRL_C_AS_THE_CRM_FILE_IS_MADE, "crm", "load", str(SEED),
         "--store", str(store)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 130, proc.stderr
    assert not list(tmp_path.glob("s.crm.db*"))
    r = mrules("crm", "load", SEED, "--store", store)
    assert r.exit_code == 0, r.output


def test_a_full_disk_as_crm_load_makes_the_file_leaves_none(tmp_path: Path) -> None:
    """A real full disk (a tmpfs, root only) as the file is made: exit 4 saying to run the
    same command again, which then works once there is space; it met an empty file."""
    from tests.test_faults import tmpfs

    with tmpfs(tmp_path / "small", "2m") as small:
        filler = small / "filler"
        free = os.statvfs(small).f_bavail * os.statvfs(small).f_frsize
        filler.write_bytes(b"\0" * free)
        r = mrules("crm", "load", SEED, "--store", small / "s.db")
        assert r.exit_code == 4, r.output
        assert "s.crm.db: cannot create the CRM file: database or disk is full" in r.stderr
        assert "the disk is full: free some space, then run the same command again" in r.stderr
        assert "folder" not in r.stderr  # it said to check that the folder can be written
        assert [p.name for p in small.iterdir()] == ["filler"]
        filler.unlink()
        r = mrules("crm", "load", SEED, "--store", small / "s.db")
        assert r.exit_code == 0, r.output


def test_the_exit_code_table_names_the_crm_commands_that_exit_3(tmp_path: Path) -> None:
    store = tmp_path / "s.db"
    bad = tmp_path / "in"
    bad.mkdir()
    (bad / "Lead.jsonl").write_text('"not an object"\n')
    assert mrules("crm", "load", bad, "--store", store).exit_code == 3
    (tmp_path / "changes.jsonl").write_text("not JSON\n")
    assert (
        mrules("crm", "apply-changes", tmp_path / "changes.jsonl", "--store", store).exit_code == 3
    )
    row = next(
        line
        for line in (ROOT / "docs" / "exit-codes.md").read_text().splitlines()
        if line.startswith("| 3 |")
    )
    assert "`crm load`" in row.split("|")[-2] and "`crm apply-changes`" in row.split("|")[-2]


@pytest.mark.parametrize(
    "command",
    [["load", str(SEED)], ["export"], ["describe", "Lead"],
     ["apply-changes", str(CHANGES), "--until", "2026-12-01T00:00:00Z"]],
)  # fmt: skip
def test_a_postgresql_store_without_crm_is_refused_without_its_password(
    tmp_path: Path, command: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The CRM file sits beside a store's file, NAME.crm.db: beside a PostgreSQL URL it
    was a path made of the URL, named with its password (`postgresql:/u:s3cret@h/db.crm.db:
    no such CRM file`). It is exit 2 asking for --crm, and creates nothing."""
    monkeypatch.chdir(tmp_path)
    r = mrules("crm", *command, "--store", "postgresql://u:s3cret@localhost/db")
    assert r.exit_code == 2, r.output
    assert r.stderr == (
        "mrules: error: a PostgreSQL store has no file for the CRM to sit beside: give the"
        " CRM file with --crm PATH\n"
    )
    assert "s3cret" not in r.output
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "command",
    [["crm", "load", str(SEED)], ["crm", "export"], ["crm", "describe", "Lead"],
     ["crm", "apply-changes", str(CHANGES), "--until", "2026-12-01T00:00:00Z"],
     ["sync", "status"], ["sync", "retry"]],
)  # fmt: skip
def test_a_store_in_memory_has_no_crm_or_sync_file_beside_it(
    tmp_path: Path, command: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`--store :memory:` is no file: `crm load` made `:memory:.crm.db` in the working
    folder (exit 0), which no run or sync in memory reads, and `sync status` and `sync
    retry` named `:memory:.sync.db`. Each is exit 2 saying why, and creates nothing."""
    monkeypatch.chdir(tmp_path)
    r = mrules(*command, "--store", ":memory:")
    assert r.exit_code == 2, r.output
    assert r.stderr.startswith("mrules: error: ") and r.stderr.count("\n") == 1
    assert ":memory:." not in r.stderr and "--store :memory:" in r.stderr
    assert list(tmp_path.iterdir()) == []
    if command[:2] == ["crm", "load"]:  # the CRM file, given, is taken as before
        r = mrules(*command, "--store", ":memory:", "--crm", "mine.crm.db")
        assert r.exit_code == 0, r.output
        assert [p.name for p in tmp_path.iterdir()] == ["mine.crm.db"]


def test_ctrl_c_during_crm_load_says_what_the_same_command_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """It said "running the same command again resumes": a load does not resume, it loads
    every file again, and a row without an Id is then created a second time."""
    from mrules.crm.emulator import EmulatedCrm

    seed = tmp_path / "seed"
    seed.mkdir()
    (seed / "Lead.jsonl").write_text(
        "".join(
            json.dumps({**({"Id": f"lead-{n}"} if n % 2 else {}), "LastName": f"L{n}",
                        "Company": "X", "Email": f"l{n}@x.example"}) + "\n"
            for n in range(1, 5)
        )
    )  # fmt: skip
    store = tmp_path / "s.db"
    real = EmulatedCrm._load_row
    rows = []

    def load_row(self: EmulatedCrm, info: object, row: dict[str, object]) -> None:
        rows.append(row)
        if len(rows) == 3:  # two rows committed, one with an Id, one without
            raise KeyboardInterrupt
        real(self, info, row)  # type: ignore[arg-type]

    monkeypatch.setattr(EmulatedCrm, "_load_row", load_row)
    r = mrules("crm", "load", seed, "--store", store)
    assert r.exit_code == 130, r.output
    assert "resumes" not in r.output
    assert (
        "mrules: error: interrupted; the rows loaded so far are kept (each row is committed as"
        " it loads). The same command loads every file again from its first row: a row with"
        " an Id updates its record, a campaign member status is set again, and any other row"
        " without an Id makes a new record (a second copy, unless the CRM refuses it as a"
        " duplicate); to load the rest without copies, give only the rows not loaded yet"
    ) in r.output
    monkeypatch.setattr(EmulatedCrm, "_load_row", real)
    assert mrules("crm", "load", seed, "--store", store).exit_code == 0
    with EmulatedCrm.open(tmp_path / "s.crm.db", create=False) as crm:
        names = sorted(str(lead.fields["LastName"]) for lead in crm.records("Lead"))
    assert names == ["L1", "L2", "L2", "L3", "L4"]  # as the message says: L2 twice
