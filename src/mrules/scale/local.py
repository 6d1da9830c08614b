"""The local engine: bucket tasks in a pool of worker processes (or in this process).

`workers=1` runs the tasks here, one after the other (no pool to start). The
pool forks its workers, once for the whole run: the bucket tasks, then the
merge's preparation of each shard (`merge.prepare_shard`) run on the same
processes. The compiled rule set is handed to the workers by the fork
(`tasks.preload`), not sent with every task. A worker that dies (killed, out
of memory) stops the run with `WorkerLost`: the buckets finished so far keep
their shards, and running the same command again runs only the others.

Ctrl-C reaches every process of the terminal's process group: the workers ignore
SIGINT (a worker interrupted between tasks printed a traceback of the pool's
internals), and the run's process, which gets the KeyboardInterrupt, stops them.
The workers are forked with SIGINT held back (`_sigint_held`), so a Ctrl-C before a
worker has set that up (a loaded machine) waits for it, and is then ignored.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import signal
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from mrules.diagnostics import plural
from mrules.scale.tasks import run_bucket

__all__ = ["LocalPool", "WorkerLost", "run_local"]


class WorkerLost(Exception):
    """A worker process died during a bucket."""


def _worker_init() -> None:
    """In each worker: SIGINT is the run's to handle (it stops the workers)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if hasattr(signal, "pthread_sigmask"):  # held since the fork (`_sigint_held`): dropped
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


@contextlib.contextmanager
def _sigint_held() -> Iterator[None]:
    """SIGINT held back from this thread while it forks the workers (the pool's first
    submit): a worker is forked with it held until `_worker_init` ignores it, so a Ctrl-C
    between the fork and that is not the worker's KeyboardInterrupt (a traceback of the
    pool's internals, and a worker lost). This process gets it once released."""
    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    before = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, before)


class LocalPool:
    """Worker processes kept for every `map` of a run (started by the first one)."""

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self.started = 0  # the workers the pool was made with
        self.pool: ProcessPoolExecutor | None = None

    def __enter__(self) -> LocalPool:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        if self.pool is not None:
            if exc_type is not None:
                # Interrupted or failed: a running bucket is not waited for (its shard is
                # written under a temporary name; the next run starts that bucket again).
                for process in list((getattr(self.pool, "_processes", None) or {}).values()):
                    with contextlib.suppress(OSError):
                        process.terminate()
            self.pool.shutdown(wait=True, cancel_futures=True)
            self.pool = None

    def map(
        self,
        fn: Callable[[dict[str, Any]], dict[str, Any]],
        tasks: list[dict[str, Any]],
        finished: Callable[[dict[str, Any]], None],
    ) -> None:
        if self.workers <= 1 or len(tasks) <= 1:
            for task in tasks:
                finished(fn(task))
            return
        try:
            with _sigint_held():  # the first submit forks the workers
                try:
                    if self.pool is None:
                        self.started = min(self.workers, len(tasks))
                        self.pool = ProcessPoolExecutor(
                            self.started,
                            mp_context=multiprocessing.get_context("fork"),
                            initializer=_worker_init,
                        )
                    pending = {self.pool.submit(fn, task) for task in tasks}
                except OSError as e:  # a fork or a pipe refused: no process, memory or file left
                    count = plural(self.started, "worker process", "worker processes")
                    raise WorkerLost(
                        f"cannot start {count} ({e.strerror or e}): give fewer --workers, or"
                        " free memory; the buckets finished so far are kept: run the command"
                        " again to run the others"
                    ) from None
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


def run_local(
    tasks: list[dict[str, Any]], finished: Callable[[dict[str, Any]], None], *, workers: int
) -> None:
    with LocalPool(workers) as pool:
        pool.map(run_bucket, tasks, finished)
