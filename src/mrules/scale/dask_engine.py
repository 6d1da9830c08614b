"""The Dask engine: bucket tasks on a Dask cluster (`pip install 'mrules[dask]'`).

`scheduler` is the address of a running scheduler (`tcp://host:8786`); every
worker needs mrules installed and must see the partition folder and the
shard folder at the same paths (a shared file system). Without a scheduler, a
`LocalCluster` of `workers` single-threaded worker processes is started for
the run and stopped after it. A task Dask retries (a worker lost) finds its
shard done or starts the bucket again from nothing: shards are renamed into
place only when complete.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
from collections.abc import Callable, Iterator
from typing import Any

from mrules.scale.tasks import run_bucket

__all__ = ["DaskMissing", "DaskPool", "run_on_dask"]


class DaskMissing(Exception):
    """Dask's `distributed` is not installed, or the scheduler cannot be reached."""


def _with_rules(task: dict[str, Any], rules: bytes) -> dict[str, Any]:
    return run_bucket({**task, "rules": rules})


@contextlib.contextmanager
def _cluster_starting() -> Iterator[list[int]]:
    """While the local cluster starts: SIGINT ignored, SIGTERM noted (the list it yields).

    Ctrl-C is SIGINT to the terminal's whole process group: each worker process took
    it as its own and printed a traceback of Dask's internals above mrules' one line. A
    process started while SIGINT is ignored keeps ignoring it (Dask installs no handler),
    so the run alone stops, and it closes the cluster. The same as `--engine local`.

    SIGTERM (`kill`, a CI job's timeout) is met as Ctrl-C by raising in the main thread;
    raised while the cluster started, it left a cluster half made, which Dask's own exit
    hook then failed to close, with a traceback of its internals under mrules' one line.
    It is noted instead, and the caller stops once the cluster is whole.
    """
    noted: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield noted
        return
    before = signal.signal(signal.SIGINT, signal.SIG_IGN)
    before_term = signal.signal(signal.SIGTERM, lambda signum, _frame: noted.append(signum))
    try:
        yield noted
    finally:
        signal.signal(signal.SIGTERM, before_term)
        signal.signal(signal.SIGINT, before)


class DaskPool:
    """A Dask client (and its local cluster) kept for every `map` of a run."""

    def __init__(
        self,
        *,
        scheduler: str | None,
        workers: int,
        cluster_options: dict[str, Any] | None = None,
    ) -> None:
        self.scheduler, self.workers = scheduler, workers
        self.cluster_options = cluster_options
        self.client: Any = None
        self.cluster: Any = None
        self._scattered: dict[str, Any] = {}

    def __enter__(self) -> DaskPool:
        try:
            from distributed import Client, LocalCluster
        except ImportError:
            raise DaskMissing(
                "--engine dask needs Dask's distributed: pip install 'mrules[dask]'"
            ) from None
        if self.scheduler is None:
            options: dict[str, Any] = {
                "n_workers": self.workers,
                "threads_per_worker": 1,
                "processes": True,
                "dashboard_address": None,
                # The scheduler serves HTTP (health, metrics) all the same, on port 8787 by
                # default: with it taken (another cluster, another run), Dask printed a
                # `Port 8787 is already in use` warning of four lines. A free port instead.
                "scheduler_kwargs": {"dashboard": False, "dashboard_address": "127.0.0.1:0"},
                # Closing the cluster under running tasks (Ctrl-C) logged a warning per
                # task cancelled, above mrules' own message, and on a loaded machine a
                # worker whose heartbeat met the closed scheduler logged an ERROR with a
                # traceback. What fails a run reaches mrules as the task's exception (a
                # worker killed: KilledWorker) and is told in one line.
                "silence_logs": logging.CRITICAL,
            }
            options.update(self.cluster_options or {})
            with _cluster_starting() as terminated:
                self.cluster = LocalCluster(**options)
            try:
                if terminated:
                    raise KeyboardInterrupt
                self.client = Client(self.cluster)
            except BaseException:
                self.__exit__()  # `with` closes nothing that __enter__ did not return
                raise
        else:
            try:
                self.client = Client(self.scheduler, timeout=30)
            except (OSError, TimeoutError, ValueError) as e:
                raise DaskMissing(
                    f"cannot reach the Dask scheduler at {self.scheduler}: {e}"
                ) from None
        return self

    def __exit__(self, *exc: object) -> None:
        if self.client is not None:
            self.client.close()
        if self.cluster is not None:
            self.cluster.close()
        self.client = self.cluster = None

    def map(
        self,
        fn: Callable[[dict[str, Any]], dict[str, Any]],
        tasks: list[dict[str, Any]],
        finished: Callable[[dict[str, Any]], None],
    ) -> None:
        from distributed import as_completed

        client = self.client
        futures = []
        for task in tasks:
            # Unique on a shared scheduler: the shard's path holds the run's fingerprint.
            if fn is run_bucket:
                name = f"bucket-{task['bucket']}-{task['shard']}"
            else:
                name = f"{fn.__name__}-{task['shard']}"
            rules = task.get("rules")
            if fn is run_bucket and isinstance(rules, bytes):
                # The compiled rule set goes to every worker once, not with every task.
                blob = self._scattered.get(task["rules_key"])
                if blob is None:
                    blob = self._scattered[task["rules_key"]] = client.scatter(
                        rules, broadcast=True, hash=False
                    )
                light = {k: v for k, v in task.items() if k != "rules"}
                # pure=False: the same task twice is two runs (a retry), not a cached result.
                futures.append(client.submit(_with_rules, light, blob, key=f"mrules-{name}",
                                             pure=False, retries=2))  # fmt: skip
            else:
                futures.append(client.submit(fn, task, key=f"mrules-{name}", pure=False,
                                             retries=2))  # fmt: skip
        for future in as_completed(futures):
            finished(future.result())


def run_on_dask(
    tasks: list[dict[str, Any]],
    finished: Callable[[dict[str, Any]], None],
    *,
    scheduler: str | None,
    workers: int,
    cluster_options: dict[str, Any] | None = None,
) -> None:
    with DaskPool(scheduler=scheduler, workers=workers, cluster_options=cluster_options) as pool:
        pool.map(run_bucket, tasks, finished)
