"""Writing the files mrules writes for users without ever leaving half a file.

`atomic_write` (and `atomic_writer`, for a file written a piece at a time)
writes a whole file to a temporary file in the same folder,
fsyncs it and renames it over the target: a kill, a full disk or a crash at
any moment leaves either the old file or the new one, never an empty or a
truncated one. A temporary file a killed writer left (`.NAME.xxxxxxxx.tmp`)
is removed by the next write of the same file. `OutputError` is the error of
any file mrules writes for a user (action log, rejects file, a reformatted
rule file); the CLI prints its message and exits 4 (docs/exit-codes.md).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from mrules.scratch import take_abandoned

__all__ = ["OutputError", "atomic_write", "atomic_writer", "fsync_folder"]


class OutputError(Exception):
    """A file mrules writes for the user cannot be written; the message says what to do."""


def atomic_write(path: Path, data: bytes) -> None:
    """Replace `path` with `data` atomically (`atomic_writer`). Raises OSError."""
    with atomic_writer(path) as f:
        f.write(data)


@contextlib.contextmanager
def atomic_writer(path: Path) -> Iterator[BinaryIO]:
    """A binary file that replaces `path` atomically when the block ends, keeping its
    permission bits: for a file written a piece at a time, never held whole.

    A symbolic link is followed: the file it points to is replaced, the link
    stays. An exception in the block, or OSError, leaves the target as it was.
    A target that is not a regular file (a pipe, `/dev/stdout`, a device) cannot
    be replaced: it is written to directly.
    """
    try:
        kind = os.stat(path).st_mode
    except OSError:
        kind = None
    if kind is not None and not stat.S_ISREG(kind) and not stat.S_ISDIR(kind):
        with open(path, "wb") as stream:
            yield stream
        return
    target = Path(os.path.realpath(path))
    folder = target.parent
    try:
        old = target.stat()
    except FileNotFoundError:
        old = None
    fd, tmp = _temporary(target)
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
            if old is not None:
                os.fchmod(f.fileno(), stat.S_IMODE(old.st_mode))
                with contextlib.suppress(OSError):
                    os.fchown(f.fileno(), old.st_uid, old.st_gid)
            else:
                os.fchmod(f.fileno(), 0o666 & ~_umask())
            os.replace(tmp, target)  # still open, so still locked: never taken for stale
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    fsync_folder(folder)


def _temporary(target: Path) -> tuple[int, str]:
    """A new temporary file beside `target`, locked (`flock`) while this process writes it,
    after removing the ones of `target` that no writer holds: a killed writer's (the kernel
    drops its lock), which nothing else would ever remove."""
    while True:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # blocks only while a cleaner looks at it
            if os.stat(tmp).st_ino != os.fstat(fd).st_ino:
                raise FileNotFoundError(tmp)
        except FileNotFoundError:  # a cleaner took it for a killed writer's: another one
            os.close(fd)
            continue
        except OSError:  # no locks on this file system: nor can others' be told stale
            return fd, tmp
        except BaseException:
            os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        _remove_stale_temporaries(target, Path(tmp).name)
        return fd, tmp


def _remove_stale_temporaries(target: Path, mine: str) -> None:
    """Remove `target`'s temporary files that no writer holds. Only names `mkstemp` gives
    this target: `.NAME.` + 8 of its characters + `.tmp` (another file's, `.NAME.x.tmp`
    or `.OTHER...`, never matches), regular files only, each locked before it goes
    (`scratch.take_abandoned`)."""
    pattern = re.compile(rf"\.{re.escape(target.name)}\.[a-z0-9_]{{8}}\.tmp")
    with contextlib.suppress(OSError), os.scandir(target.parent) as entries:
        for entry in entries:
            if entry.name == mine or not pattern.fullmatch(entry.name):
                continue
            fd = take_abandoned(entry.path)  # None: a writer holds it, or not a file
            if fd is None:
                continue
            try:
                with contextlib.suppress(OSError):
                    os.unlink(entry.path)
            finally:
                os.close(fd)


def fsync_folder(folder: Path) -> None:
    """Make a rename or a new file in `folder` durable (best effort: some systems refuse)."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
