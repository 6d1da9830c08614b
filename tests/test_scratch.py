"""`mrules.scratch`: only a folder whose owner is gone is removed, never one in use.

`mrules replay` removes, before it starts, the folders of temporary stores that
replays killed outright left (tests/test_replay_temporary_stores.py runs that
through the CLI); here, everything of the same name that must be left alone.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from mrules.scratch import LOCK_SUFFIX, Abandoned, held_folder, remove_abandoned_folders

PREFIX = "mrules-replay-"

HOLDER = """
import os, sys, time
from mrules.scratch import held_folder
with held_folder("mrules-replay-") as folder:
    (folder / "old.db").write_bytes(b"x" * 100_000)
    child = os.fork() if sys.argv[1] == "fork" else None
    if child == 0:  # the replay's second process: it holds the folder's lock too
        time.sleep(600)
        os._exit(0)
    print(folder, child, flush=True)
    sys.stdin.read()
"""


def _holder(scratch: Path, how: str) -> tuple[subprocess.Popen[str], Path, int | None]:
    """A process holding a new folder in `scratch` (`fork`: with a child that holds it
    too), its folder, and its child's pid."""
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, how],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        env={**os.environ, "TMPDIR": str(scratch)},
    )  # fmt: skip
    assert proc.stdout is not None
    folder, child = proc.stdout.readline().split()
    return proc, Path(folder), None if child == "None" else int(child)


def _lock(folder: Path) -> Path:
    """A folder's lock file, beside it."""
    return folder.with_name(folder.name + LOCK_SUFFIX)


def _unheld(folder: Path) -> Path:
    """A folder with a lock file nobody holds, as a killed owner leaves it."""
    folder.mkdir()
    _lock(folder).write_text("1\n")
    return folder


@pytest.fixture
def scratch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The system's temporary folder, as Python reads TMPDIR."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    return tmp_path


def test_only_the_folder_of_a_killed_owner_is_removed(scratch: Path) -> None:
    killed, gone, _ = _holder(scratch, "alone")
    alive, running, _ = _holder(scratch, "alone")
    forked, shared, child = _holder(scratch, "fork")
    assert child is not None
    try:
        killed.kill()
        forked.kill()  # its child still holds the folder, and may still write there
        killed.wait(timeout=30)
        forked.wait(timeout=30)
        kept = [
            _unheld(scratch / f"{PREFIX}abc"),  # not a name mkdtemp gives
            _unheld(scratch / f"{PREFIX}abcd1234.keep"),
            _unheld(scratch / "other-abcd1234"),
            _unheld(scratch / "target"),
        ]
        (scratch / f"{PREFIX}link1234").symlink_to(scratch / "target")  # not followed
        (scratch / f"{PREFIX}file1234").write_text("a file")
        lock_link = scratch / f"{PREFIX}lnk51234"  # nor is a lock file that is a link
        lock_link.mkdir()
        _lock(lock_link).symlink_to(_lock(scratch / "target"))
        old = scratch / f"{PREFIX}old12345"  # an mrules from before the locks: no lock file
        old.mkdir()
        (old / "new.db").write_bytes(b"kept")
        if os.getuid() == 0:  # another user's folder: theirs to remove
            kept.append(_unheld(scratch / f"{PREFIX}user1234"))
            os.chown(kept[-1], 12345, 12345)
            os.chown(_lock(kept[-1]), 12345, 12345)
        with held_folder(PREFIX) as mine:  # this process's own, in use
            removed = remove_abandoned_folders(PREFIX)
            assert mine.is_dir()
        [one] = removed
        assert (one.path, one.pid) == (gone, killed.pid)
        assert 100_000 <= one.size < 200_000  # the store written there, on disk
        assert not gone.exists() and not _lock(gone).exists()
        for folder in [*kept, running, shared]:
            assert folder.is_dir() and _lock(folder).is_file(), folder
        assert _lock(lock_link).is_symlink() and (old / "new.db").exists()
        assert (scratch / f"{PREFIX}link1234").is_symlink()
        assert (scratch / f"{PREFIX}file1234").is_file()

        # Once the forked child is gone too, its folder goes, under its parent's pid.
        os.kill(child, signal.SIGKILL)
        _wait_gone(child)
        assert remove_abandoned_folders(PREFIX) == [Abandoned(shared, forked.pid, one.size)]
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(child, signal.SIGKILL)
        alive.communicate("")
    assert alive.returncode == 0 and not running.exists()  # removed by its own process


def _wait_gone(pid: int) -> None:
    """Wait until `pid`, a process this one did not start, has ended (a zombie that its
    new parent has not reaped yet holds no lock)."""
    deadline = time.monotonic() + 30
    while True:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            return
        if state == "Z":
            return
        assert time.monotonic() < deadline
        time.sleep(0.02)


def test_a_folder_being_made_is_never_taken_for_abandoned(scratch: Path) -> None:
    """Its lock file appears already locked: threads that make folders and clean up at
    the same time never remove one another's."""
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(25):
                with held_folder(PREFIX) as folder:
                    assert remove_abandoned_folders(PREFIX) == []
                    assert folder.is_dir() and _lock(folder).is_file()
        except BaseException as e:  # pragma: no cover - the failure being tested
            errors.append(e)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert list(scratch.iterdir()) == []
