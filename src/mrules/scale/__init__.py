"""Scale-out: a partitioned archive run bucket by bucket, in processes or on Dask.

`mrules.partition` writes the buckets once; `run_partitioned` runs the
unchanged engine on every bucket into a store shard of its own (`tasks`), in
a local process pool (`local`) or on a Dask cluster (`dask_engine`), then
merges the shards into the target store (`merge`) so that its `state export`,
`explain`, action log and rejects are those of one process run over the
original files. docs/scale-out.md says how and why.
"""

from mrules.scale.driver import ScaleError, run_partitioned

__all__ = ["ScaleError", "run_partitioned"]
