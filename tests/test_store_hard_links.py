"""Two names of one store file (hard links, a bind mount) exclude each other's writers.

`PATH.lock` is per name, and SQLite keeps a `-wal` and a `-shm` per name: two runs
through `a.db` and `b.db` (`ln a.db b.db`) both wrote, each with its own log, into one
file, which `PRAGMA integrity_check` then found damaged ("Rowid out of order"). The
writer also locks a byte of the file itself (`store._lock_file`).
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mrules.batch import Batch
from mrules.exitcodes import ExitCode
from mrules.store import Store, StoreLocked

SRC = Path(__file__).resolve().parent.parent / "src"
EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "getcloudy"

pytestmark = pytest.mark.skipif(
    not hasattr(__import__("fcntl"), "F_OFD_SETLK"), reason="no open-file-description locks"
)

HOLDER = """
import sys, time
from mrules.batch import Batch
from mrules.store import Store
path, release_after = sys.argv[1], float(sys.argv[2])
store = Store.open(path)
store.commit(Batch("-", 1, 1.0))
print("ready", flush=True)
if release_after >= 0:
    time.sleep(release_after)
    store.close()
sys.stdin.readline()
"""


@pytest.fixture
def linked(tmp_path: Path) -> tuple[Path, Path]:
    """A store `a.db` and a hard link `b.db` to it."""
    a, b = tmp_path / "a.db", tmp_path / "b.db"
    Store.open(a).close()
    os.link(a, b)
    return a, b


@pytest.fixture
def holder() -> Iterator[Any]:
    """Start a process that opens a store for writing; release_after < 0 keeps it."""
    procs: list[subprocess.Popen[str]] = []

    def start(path: Path, release_after: float = -1) -> subprocess.Popen[str]:
        p = subprocess.Popen(
            [sys.executable, "-c", HOLDER, str(path), str(release_after)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": str(SRC)},
        )
        procs.append(p)
        assert p.stdout is not None and p.stdout.readline().strip() == "ready"
        return p

    yield start
    for p in procs:
        p.kill()
        p.wait(timeout=10)


def run(store: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "mrules", "run", str(EXAMPLE / "rules"),
           str(EXAMPLE / "events.jsonl"), "--store", str(store), "-q", *extra]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env)


def test_a_run_through_a_hard_link_is_busy_naming_the_other_name(
    linked: tuple[Path, Path], holder: Any
) -> None:
    a, b = linked
    p = holder(a)
    res = run(b)
    assert res.returncode == ExitCode.BUSY, res.stderr
    assert f"store {b} is in use by another mrules process" in res.stderr
    assert f"another name of the same file, {a} (pid {p.pid})" in res.stderr
    assert "add --wait" in res.stderr
    p.stdin.write("\n")  # type: ignore[union-attr]
    p.stdin.flush()  # type: ignore[union-attr]
    p.wait(timeout=10)
    with sqlite3.connect(a) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        # the holder's commit only: the refused run wrote nothing
        assert [r[0] for r in conn.execute("SELECT source FROM streams")] == ["-"]


def test_wait_timeout_waits_on_the_other_name_then_gives_up(
    linked: tuple[Path, Path], holder: Any
) -> None:
    a, b = linked
    p = holder(a)
    t = time.monotonic()
    res = run(b, "--wait-timeout", "0.5")
    assert res.returncode == ExitCode.BUSY, res.stderr
    assert f"{a} (pid {p.pid}) after waiting 0.5 s" in res.stderr
    assert time.monotonic() - t >= 0.5


def test_wait_gets_the_store_when_the_other_name_is_released(
    linked: tuple[Path, Path], holder: Any
) -> None:
    a, b = linked
    holder(a, release_after=1.0)
    res = run(b, "--wait")
    assert res.returncode in (ExitCode.OK, ExitCode.REJECTS), res.stderr
    with Store.open(a, readonly=True) as s:  # both runs' commits, in one sound file
        assert s.stream_position("-") == 1
        assert s.prospect_count() > 0
    with sqlite3.connect(a) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)


def test_a_hard_link_in_another_folder_is_still_refused(tmp_path: Path, holder: Any) -> None:
    a = tmp_path / "a.db"
    Store.open(a).close()
    (tmp_path / "elsewhere").mkdir()
    b = tmp_path / "elsewhere" / "b.db"
    os.link(a, b)
    holder(a)
    with pytest.raises(StoreLocked, match=r"another name of the same file \(a hard link, or"):
        Store.open(b)


def test_this_process_cannot_open_two_names_of_one_file(linked: tuple[Path, Path]) -> None:
    a, b = linked
    with Store.open(a) as s:
        with pytest.raises(StoreLocked, match=rf"under another name of the same file, {a}"):
            Store.open(b, wait=True, timeout=5)
        s.commit(Batch("-", 1, 1.0, prospects={"p@x.com": b"1"}))  # its own locks intact
    with Store.open(b) as s:  # released on close
        assert s.prospect("p@x.com") == b"1"


def test_a_reader_reads_while_a_run_holds_the_file(linked: tuple[Path, Path], holder: Any) -> None:
    a, _ = linked
    holder(a)
    with Store.open(a, readonly=True) as s:  # a reader takes no lock
        assert s.stream_position("-") == 1
