"""A named pipe, a device or a folder where the sync file or the CRM file goes is refused
by what it is, exit 2, as a store or a `--config` that is one is (docs/exit-codes.md:
a folder given where a file goes is 2).

A named pipe as the sync file was `disk I/O error` (exit 4, the damage of a file), as
`--sync-db` "no sync file at ..."; as the CRM file, `an empty file (0 bytes)` (exit 4),
and a sync file that is a folder was exit 4 from every sync command but `status`."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from tests.sync.world import BOB, T0, World, ev

ROOT = Path(__file__).resolve().parents[2]
SEED = ROOT / "examples" / "getcloudy" / "crm"
CHANGES = ROOT / "examples" / "getcloudy" / "crm-changes.jsonl"


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with a rule set, a store its events ran into and the store's CRM file
    (no sync yet); each test copies it."""
    w = World(tmp_path_factory.mktemp("world"))
    w.seed({"Contact": [BOB]})
    w.run(ev(T0, "ann@x.com", asset="Demo"))
    return w.tmp


@pytest.fixture
def world(made: Path, tmp_path: Path) -> World:
    for name in ("rules.mr", "w.db", "w.crm.db"):
        shutil.copy(made / name, tmp_path / name)
    return World(tmp_path)


def _special(path: Path, kind: str) -> str:
    """Make `path` a named pipe or a folder; what the refusal calls it."""
    if kind == "pipe":
        os.mkfifo(path)
        return "is a named pipe"
    path.mkdir()
    return "is a folder"


SYNC_COMMANDS = [
    ("status",),
    ("retry",),
    ("plan", "RULES"),
    ("apply", "RULES"),
    ("run", "RULES", "--until", "2026-11-03T00:00:00Z"),
    ("send", "RULES", "bob@x.com"),
]


@pytest.mark.parametrize("kind", ["pipe", "folder"])
@pytest.mark.parametrize("command", SYNC_COMMANDS, ids=lambda c: c[0])
def test_a_sync_file_that_is_no_file_is_a_usage_error(
    world: World, command: tuple[str, ...], kind: str
) -> None:
    said = _special(world.tmp / "w.sync.db", kind)
    args = [str(world.rules) if a == "RULES" else a for a in command]
    if "RULES" in command:
        args.insert(1, "--rules")
    r = world.cli("sync", *args, "--store", str(world.store))
    assert r.exit_code == 2, r.output
    assert r.output == f"mrules: error: {world.tmp / 'w.sync.db'}: {said}, not a sync file" + (
        ": move it away (the sync keeps its own file there, beside the store)\n"
        if kind == "pipe"
        else "\n"
    )


CRM_COMMANDS = [
    ("crm", "load", str(SEED)),
    ("crm", "export"),
    ("crm", "describe", "Lead"),
    ("crm", "apply-changes", str(CHANGES)),
    ("sync", "plan", "--rules", "RULES", "--store", "STORE"),
]


@pytest.mark.parametrize("command", CRM_COMMANDS, ids=lambda c: " ".join(c[:2]))
def test_a_crm_file_that_is_a_named_pipe_is_a_usage_error(
    world: World, command: tuple[str, ...]
) -> None:
    pipe = world.tmp / "pipe.crm.db"
    os.mkfifo(pipe)
    swap = {"RULES": str(world.rules), "STORE": str(world.store)}
    r = world.cli(*(swap.get(a, a) for a in command), "--crm", str(pipe))
    assert r.exit_code == 2, r.output
    assert r.output == (
        f"mrules: error: {pipe}: is a named pipe, not a CRM file: give the path of a CRM file"
        " (`mrules crm load` creates one at a path where no file is)\n"
    )


@pytest.mark.parametrize(
    "command",
    [("report", "funnel"), ("report", "campaigns"), ("explain", "ann@x.com", "--timeline")],
    ids=lambda c: " ".join(c[:2]),
)
def test_a_sync_db_option_that_is_a_named_pipe_is_a_usage_error(
    world: World, command: tuple[str, ...]
) -> None:
    pipe = world.tmp / "pipe.sync.db"
    os.mkfifo(pipe)
    r = world.cli(*command, "--store", str(world.store), "--sync-db", str(pipe))
    assert r.exit_code == 2, r.output
    assert f"{pipe} is a named pipe, not a sync file: give the file" in r.output


@pytest.mark.parametrize("kind", ["pipe", "folder"])
@pytest.mark.parametrize(
    "command",
    [("report", "funnel"), ("report", "scores"), ("explain", "ann@x.com", "--timeline")],
    ids=lambda c: " ".join(c[:2]),
)
def test_the_reports_refuse_what_is_no_sync_file_beside_the_store(
    world: World, command: tuple[str, ...], kind: str
) -> None:
    """The reports and `explain --timeline` took a folder or a named pipe at NAME.sync.db
    for no sync file at all (`no SQL, won or opportunity figures`), exit 0, where every
    `sync` command refuses it."""
    said = _special(world.tmp / "w.sync.db", kind)
    r = world.cli(*command, "--store", str(world.store))
    assert r.exit_code == 2, r.output
    assert r.output == (
        f"mrules: error: {world.tmp / 'w.sync.db'}, where the sync file goes beside the store,"
        f" {said}: move it away, or give --sync-db FILE\n"
    )
