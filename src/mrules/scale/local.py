"""The local engine: bucket tasks in a pool of worker processes (or in this process).

`workers=1` runs the tasks here, one after the other (no pool to start). A
pool forks its workers; each unpickles the compiled rule set once (`tasks`).
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable
from typing import Any

from mrules.scale.tasks import run_bucket

__all__ = ["run_local"]


def run_local(
    tasks: list[dict[str, Any]], finished: Callable[[dict[str, Any]], None], *, workers: int
) -> None:
    if workers <= 1 or len(tasks) <= 1:
        for task in tasks:
            finished(run_bucket(task))
        return
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(min(workers, len(tasks)), maxtasksperchild=None) as pool:
        for out in pool.imap_unordered(run_bucket, tasks, chunksize=1):
            finished(out)
