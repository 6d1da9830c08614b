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

__all__ = ["LOCK_SUFFIX", "Abandoned", "held_folder", "remove_abandoned_folders", "take_abandoned"]

LOCK_SUFFIX = ".lock"
"""A held folder's lock file is beside it, named as it is with this suffix, and holds its
owner's pid. Beside it, not in it: it is made and locked before the folder is made, so a
folder never exists without a lock held on it (a process killed between making a folder
and locking it left one that nothing would remove)."""


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

    Its lock file (the folder's name + `LOCK_SUFFIX`, beside it) is made and locked
    first, and the folder made only then: a process killed at any point leaves a folder
    whose lock nobody holds, or only such a lock file, and `remove_abandoned_folders`
    removes either. On a file system without locks the folder has no lock file, and is
    never taken for abandoned: a process killed there leaves it.

    Raises:
        OSError: the folder cannot be made (no temporary folder, a full disk).
    """
    fd, folder = _made(prefix)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        if fd is not None:  # the lock goes after the folder, never before
            if not os.path.lexists(folder):
                with contextlib.suppress(OSError):
                    os.unlink(f"{folder}{LOCK_SUFFIX}")
            os.close(fd)


def _made(prefix: str) -> tuple[int | None, Path]:
    """A new folder and the descriptor of its lock, held (None: no locks here).

    As `atomic.py` makes its temporary files: a lock file that a cleaner took for a
    killed maker's before this process locked it (made, not yet locked, as a killed
    maker leaves it) is gone, or another file, once the lock is had: then another name.
    """
    while True:
        fd, lock = tempfile.mkstemp(prefix=prefix, suffix=LOCK_SUFFIX)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # blocks only while a cleaner looks at it
            if os.stat(lock).st_ino != os.fstat(fd).st_ino:
                raise FileNotFoundError(lock)
        except FileNotFoundError:  # a cleaner removed it: another one
            os.close(fd)
            continue
        except OSError:  # no locks here: no lock file, so never taken for abandoned
            os.close(fd)
            os.unlink(lock)
            return None, Path(tempfile.mkdtemp(prefix=prefix))
        except BaseException:
            os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(lock)
            raise
        folder = lock.removesuffix(LOCK_SUFFIX)
        try:
            os.write(fd, f"{os.getpid()}\n".encode())
            os.mkdir(folder, 0o700)
        except FileExistsError:  # a folder of that name without a lock: another name
            os.unlink(lock)
            os.close(fd)
            continue
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(lock)
            os.close(fd)
            raise
        return fd, Path(folder)


@dataclass(frozen=True)
class Abandoned:
    """A folder `remove_abandoned_folders` removed: where, whose, and the room it took."""

    path: Path
    pid: int | None
    size: int
    """Bytes on disk."""


def remove_abandoned_folders(prefix: str) -> list[Abandoned]:
    """Remove the folders `held_folder(prefix)` made in the system's temporary folder whose
    owner is gone. Only where a lock file is (`prefix` + the 8 characters `mkstemp` gives +
    `LOCK_SUFFIX`), owned by this user, not a link, and no process holds it: its folder
    (beside it, a folder of this user, not a link) is removed, then the lock file, also
    when there is no folder (its maker was killed before making it). A folder of a process
    still running, of another user, of an mrules from before these locks (no lock file),
    or anything else of those names is left alone."""
    where = tempfile.gettempdir()
    pattern = re.compile(re.escape(prefix) + r"[a-z0-9_]{8}" + re.escape(LOCK_SUFFIX))
    removed = []
    try:
        with os.scandir(where) as entries:
            found = [e for e in entries if pattern.fullmatch(e.name)]
    except OSError:  # no temporary folder to look in: nothing was left there
        return []
    for entry in found:
        try:
            if entry.stat(follow_symlinks=False).st_uid != os.getuid():
                continue
        except OSError:
            continue
        fd = take_abandoned(entry.path)
        if fd is None:
            continue
        try:
            folder = entry.path.removesuffix(LOCK_SUFFIX)
            try:
                st = os.lstat(folder)
            except FileNotFoundError:  # killed before it made its folder
                pass
            except OSError:
                continue
            else:
                if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid():
                    continue  # not a folder it made: left alone, and its lock with it
                pid, size = _pid(fd), _size(folder)
                shutil.rmtree(folder, ignore_errors=True)
                if os.path.lexists(folder):
                    continue  # its lock stays, for the next one to try again
                removed.append(Abandoned(Path(folder), pid, size))
            with contextlib.suppress(OSError):
                os.unlink(entry.path)
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
