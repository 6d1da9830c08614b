"""Writing the files mrules writes for users without ever leaving half a file.

`atomic_write` (and `atomic_writer`, for a file written a piece at a time)
writes a whole file to a temporary file in the same folder,
fsyncs it and renames it over the target: a kill, a full disk or a crash at
any moment leaves either the old file or the new one, never an empty or a
truncated one. `OutputError` is the error of any file mrules writes for a
user (action log, rejects file, a reformatted rule file); the CLI prints its
message and exits 4 (docs/exit-codes.md).
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

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
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=folder)
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
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    fsync_folder(folder)


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
