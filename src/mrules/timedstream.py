"""A slow stream with time marks, so that `--commit-seconds` can fire while it is quiet.

The engine reads events a chunk at a time and looks at the clock between them.
A file never keeps it waiting, but standard input or a pipe can go quiet for
minutes between lines: the engine sat in a read with events applied and not
committed, so `--commit-seconds` did nothing, and a SIGTERM (or a crash) lost
events that a pipe cannot give again. `with_time_marks` reads the stream in a
thread and yields `None` each time `seconds` have passed since its last mark,
whether lines are arriving or not; the engine ends its chunk there and commits
if the time is up. Used only for such sources, and only with `--commit-seconds`:
the thread and its queue cost a few microseconds a line.
"""

from __future__ import annotations

import os
import queue
import stat
import threading
import time
from collections.abc import Iterable, Iterator
from typing import Generic, TypeVar

__all__ = ["can_go_quiet", "with_time_marks"]

T = TypeVar("T")


class _Failed:
    """What the reading thread raised, handed to the consumer to raise again."""

    def __init__(self, error: BaseException) -> None:
        self.error = error


class _Done:
    """The end of the stream."""


class _Reader(Generic[T]):
    """The thread that pulls the items and queues them (daemon: it may sit in a read)."""

    def __init__(self, items: Iterable[T]) -> None:
        self.queue: queue.SimpleQueue[T | _Failed | _Done] = queue.SimpleQueue()
        self._items = items
        self.thread = threading.Thread(target=self._pump, name="mrules-reader", daemon=True)
        self.thread.start()

    def _pump(self) -> None:
        put = self.queue.put
        try:
            for item in self._items:
                put(item)
        except BaseException as e:  # handed over: the consumer raises it
            put(_Failed(e))
        else:
            put(_Done())


def with_time_marks(items: Iterable[T], seconds: float) -> Iterator[T | None]:
    """The items, in order, with `None` each time `seconds` have passed since the last mark.

    An error the stream raises is raised here, after the items before it.

    >>> list(with_time_marks(iter([1, 2, 3]), 60.0))
    [1, 2, 3]
    """
    reader = _Reader(items)
    get = reader.queue.get
    clock = time.monotonic
    next_mark = clock() + seconds
    while True:
        wait = next_mark - clock()
        if wait <= 0:
            yield None
            next_mark = clock() + seconds
            continue
        try:
            item = get(timeout=wait)
        except queue.Empty:
            continue
        if isinstance(item, _Done):
            return
        if isinstance(item, _Failed):
            raise item.error
        yield item


def can_go_quiet(source: object) -> bool:
    """Whether reading `source` can wait on a writer: standard input, a pipe, a FIFO, a
    socket, a terminal; not a regular file (path or open file), which is read to its end."""
    try:
        if isinstance(source, str | os.PathLike):
            return not stat.S_ISREG(os.stat(source).st_mode)
        fileno = getattr(source, "fileno", None)
        if fileno is None:
            return False  # an iterable of lines
        return not stat.S_ISREG(os.fstat(fileno()).st_mode)
    except (OSError, ValueError, TypeError):
        return False  # an in-memory stream (io.UnsupportedOperation), or no such path
