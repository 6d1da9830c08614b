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

from collections.abc import Callable
from typing import Any

from mrules.scale.tasks import run_bucket

__all__ = ["DaskMissing", "run_on_dask"]


class DaskMissing(Exception):
    """Dask's `distributed` is not installed, or the scheduler cannot be reached."""


def run_on_dask(
    tasks: list[dict[str, Any]],
    finished: Callable[[dict[str, Any]], None],
    *,
    scheduler: str | None,
    workers: int,
    cluster_options: dict[str, Any] | None = None,
) -> None:
    try:
        from distributed import Client, LocalCluster, as_completed
    except ImportError:
        raise DaskMissing(
            "--engine dask needs Dask's distributed: pip install 'mrules[dask]'"
        ) from None
    cluster = None
    if scheduler is None:
        options: dict[str, Any] = {
            "n_workers": workers,
            "threads_per_worker": 1,
            "processes": True,
            "dashboard_address": None,
        }
        options.update(cluster_options or {})
        cluster = LocalCluster(**options)
        client = Client(cluster)
    else:
        try:
            client = Client(scheduler, timeout=30)
        except (OSError, TimeoutError, ValueError) as e:
            raise DaskMissing(f"cannot reach the Dask scheduler at {scheduler}: {e}") from None
    try:
        # pure=False: the same task twice is two runs (a retry), not a cached result.
        futures = [
            client.submit(
                run_bucket,
                task,
                key=f"mrules-bucket-{task['bucket']}-{task['shard']}",
                pure=False,
                retries=2,
            )
            for task in tasks
        ]
        for future in as_completed(futures):
            finished(future.result())
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
