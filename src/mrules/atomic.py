"""Writing the files mrules writes for users without ever leaving half a file.

`atomic_write` writes a whole file to a temporary file in the same folder,
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
from pathlib import Path

__all__ = ["OutputError", "atomic_write", "fsync_folder"]


class OutputError(Exception):
    """A file mrules writes for the user cannot be written; the message says what to do."""


def atomic_write(path: Path, data: bytes) -> None:
    """Replace `path` with `data` atomically, keeping its permission bits.

    A symbolic link is followed: the file it points to is replaced, the link
    stays. Raises OSError (the target is left as it was).
    """
    target = Path(os.path.realpath(path))
    folder = target.parent
    try:
        old = target.stat()
    except FileNotFoundError:
        old = None
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
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
