"""Temporary files and folders that a killed process leaves behind, told apart and removed.

A process killed outright (SIGKILL, the out-of-memory killer, the machine going
down) removes nothing it made: `atomic.py`'s temporary files, `mrules replay`'s
folder of temporary stores (gigabytes at 2 million events). So each is locked
(`flock`) by its maker for as long as it is in use, and a later process removes
those whose lock nobody holds. The kernel drops a lock when its last holder
ends, however it ends; a forked child holding the descriptor (the replay's
second process) keeps it held while it lives. A lock rather than the owner's
pid and start time: there is no pid reuse to guard against, nothing to read in
`/proc` (macOS has none), and a folder on a file system that two machines share
is not taken for abandoned because its pid is unknown here. The owner's pid is
still written in the lock file, for the message that says what was removed.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shutil
import stat
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Abandoned", "held_folder", "remove_abandoned_folders", "take_abandoned"]

OWNER = "owner.lock"
"""The lock file of a held folder, holding its owner's pid."""


def take_abandoned(path: str) -> int | None:
    """A descriptor of the regular file `path`, locked, when no process holds its lock
    (its maker was killed), else None: held, gone, a link or not a regular file, or
    a file system without locks. The caller removes what it stands for, then closes it."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        mine = os.fstat(fd)
        if stat.S_ISREG(mine.st_mode):
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # OSError: its maker holds it
            now = os.stat(path, follow_symlinks=False)  # not removed and made again since
            if (now.st_dev, now.st_ino) == (mine.st_dev, mine.st_ino):
                return fd
    except OSError:
        pass
    os.close(fd)
    return None


@contextlib.contextmanager
def held_folder(prefix: str) -> Iterator[Path]:
    """A new folder in the system's temporary folder (`prefix` + 8 characters), held by
    this process while the block runs and removed at its end, whatever ends it.

    Its lock file appears under its name already locked (it is made and locked under
    another name, then renamed), so no other process can take a folder being made for
    abandoned. On a file system without locks the folder has no lock file, and is never
    taken for abandoned: a process killed there leaves it.

    Raises:
        OSError: the folder cannot be made (no temporary folder, a full disk).
    """
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    fd = None
    try:
        fd, name = tempfile.mkstemp(prefix=".owner-", dir=folder)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # a new file: nobody else has it
            os.write(fd, f"{os.getpid()}\n".encode())
            os.rename(name, folder / OWNER)
        except OSError:  # no locks here: no lock file, so never taken for abandoned
            os.close(fd)
            fd = None
            os.unlink(name)
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)  # the lock is dropped after, not before
        if fd is not None:
            os.close(fd)


@dataclass(frozen=True)
class Abandoned:
    """A folder `remove_abandoned_folders` removed: where, whose, and the room it took."""

    path: Path
    pid: int | None
    size: int
    """Bytes on disk."""


def remove_abandoned_folders(prefix: str) -> list[Abandoned]:
    """Remove the folders `held_folder(prefix)` made in the system's temporary folder whose
    owner is gone. Only folders named as `mkdtemp` names them (`prefix` + 8 characters),
    owned by this user, not links, with a lock file that no process holds: one of a
    process still running, of another user, of an mrules from before these locks (no lock
    file), or anything else of that name is left alone."""
    where = tempfile.gettempdir()
    pattern = re.compile(re.escape(prefix) + r"[a-z0-9_]{8}")
    removed = []
    try:
        with os.scandir(where) as entries:
            found = [e for e in entries if pattern.fullmatch(e.name)]
    except OSError:  # no temporary folder to look in: nothing was left there
        return []
    for entry in found:
        try:
            st = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid():
            continue
        fd = take_abandoned(os.path.join(entry.path, OWNER))
        if fd is None:
            continue
        try:
            pid = _pid(fd)
            size = _size(entry.path)
            shutil.rmtree(entry.path, ignore_errors=True)
            if not os.path.lexists(entry.path):
                removed.append(Abandoned(Path(entry.path), pid, size))
        finally:
            os.close(fd)
    return removed


def _pid(fd: int) -> int | None:
    """The pid a lock file holds, or None (an empty or damaged file)."""
    with contextlib.suppress(OSError, ValueError):
        return int(os.pread(fd, 32, 0).decode("ascii").strip())
    return None


def _size(folder: str) -> int:
    """The bytes a folder's files take on disk (links not followed)."""
    total = 0
    for root, _dirs, files in os.walk(folder):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(root, name)).st_blocks * 512
    return total
