"""The local engine: bucket tasks in a pool of worker processes (or in this process).

`workers=1` runs the tasks here, one after the other (no pool to start). The
pool forks its workers; each unpickles the compiled rule set once (`tasks`).
A worker that dies (killed, out of memory) stops the run with `WorkerLost`:
the buckets finished so far keep their shards, and running the same command
again runs only the others.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from mrules.scale.tasks import run_bucket

__all__ = ["WorkerLost", "run_local"]


class WorkerLost(Exception):
    """A worker process died during a bucket."""


def run_local(
    tasks: list[dict[str, Any]], finished: Callable[[dict[str, Any]], None], *, workers: int
) -> None:
    if workers <= 1 or len(tasks) <= 1:
        for task in tasks:
            finished(run_bucket(task))
        return
    ctx = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(min(workers, len(tasks)), mp_context=ctx) as pool:
        try:
            pending = {pool.submit(run_bucket, task) for task in tasks}
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    finished(future.result())
        except BrokenProcessPool:
            raise WorkerLost(
                "a worker process died during a bucket (killed, or out of memory); the"
                " buckets finished so far are kept: run the same command again to run the"
                " others"
            ) from None
