"""What a path that is not a regular file is, in words, for the messages that refuse it.

A named pipe or a device given where a file is expected reads as 0 bytes or
blocks; the store, the CRM and sync files, the test runner and the CRM loader
refuse it by name.

>>> import stat
>>> special_file_kind(stat.S_IFIFO), special_file_kind(stat.S_IFCHR)
('a named pipe', 'a character device')
"""

from __future__ import annotations

import stat

__all__ = ["special_file_kind"]

_KINDS = (
    (stat.S_ISFIFO, "a named pipe"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def special_file_kind(mode: int) -> str:
    """`st_mode` of a path that is neither a regular file nor a folder, in words."""
    for test, kind in _KINDS:
        if test(mode):
            return kind
    return "a special file"
