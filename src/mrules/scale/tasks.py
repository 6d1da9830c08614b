"""One task: the unchanged engine over one bucket, into a store shard written atomically.

A task reads its bucket's lines in archive order and, for every file of the
archive in turn (even one with no line in this bucket), runs an `Engine` on
the same shard store, with the file's own source and line numbers: exactly
the runs one process would make over the files, restricted to the bucket's
prospects. The shard is written as a hidden temporary file and renamed into
place when the bucket is done, so a task killed half-way leaves no shard and
a task run twice (a retried Dask task, a rerun after a kill) finds the shard
done and returns at once.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import shutil
import time
from pathlib import Path
from typing import Any

from mrules.events import parse_line
from mrules.partition import PartitionError, read_bucket_lines

__all__ = ["counts_of", "log_of", "preload", "run_bucket", "shard_name"]

# Compiled rule sets by key (driver._rules_key): one unpickling a worker process.
_RULES: dict[str, Any] = {}


def shard_name(bucket: int) -> str:
    return f"b{bucket:05d}.db"


def log_of(shard: Path) -> Path:
    """The shard's action log (its own seqs), written beside it when the run wants one."""
    return shard.with_name(shard.name + ".actions.jsonl")


def counts_of(shard: Path) -> Path:
    """What the bucket's run counted (lines, applied, rejected...), put beside its shard
    before the shard: a run that finds the shard done reports them as that run did."""
    return shard.with_name(shard.name + ".counts.json")


_COUNTED = ("events", "applied", "rejected", "duplicates", "ignored", "unsettled")


def _counted(shard: Path) -> dict[str, Any] | None:
    """The counts a finished bucket's run left beside its shard; None: none to read (a
    shard an older mrules made): the bucket is run again."""
    import orjson

    try:
        saved = orjson.loads(counts_of(shard).read_bytes())
    except (OSError, ValueError):
        return None
    if not isinstance(saved, dict) or any(k not in saved for k in _COUNTED):
        return None
    return {k: saved[k] for k in _COUNTED}


def preload(key: str, compiled: Any) -> None:
    """Give this process (and the worker processes it forks) the compiled rule set `key`."""
    _RULES[key] = compiled


def _rules(key: str, blob: bytes | None) -> Any:
    found = _RULES.get(key)
    if found is None:
        if blob is None:
            raise ValueError(f"the compiled rule set {key} was neither sent nor preloaded")
        found = _RULES[key] = pickle.loads(blob)
    return found


def _remove(path: Path) -> None:
    for p in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm"),
              path.with_name(path.name + ".lock")):  # fmt: skip
        with contextlib.suppress(FileNotFoundError):
            p.unlink()


def run_bucket(task: dict[str, Any]) -> dict[str, Any]:
    """Run one bucket into its shard; returns what it did (events, seconds, CPU seconds)."""
    from mrules.engine import DEFAULT_CACHE_PROSPECTS, Engine
    from mrules.store import Store

    started, cpu = time.perf_counter(), time.process_time()
    shard = Path(task["shard"])
    bucket = task["bucket"]
    out: dict[str, Any] = {"bucket": bucket, "pid": os.getpid(), "events": 0, "applied": 0,
                           "rejected": 0, "duplicates": 0, "ignored": 0, "unsettled": [],
                           "skipped": False}  # fmt: skip
    want_log = bool(task.get("actions"))
    saved = _counted(shard) if shard.exists() else None
    if saved is not None and (not want_log or log_of(shard).exists()):
        # Counted as the run that finished it counted: a resumed run, from the command or
        # from Python, reports the buckets done before (their lines, applied, rejected and
        # unsettled) as a run that did them all. Not a read of the bucket.
        out.update(saved, skipped=True)
        out["seconds"] = time.perf_counter() - started
        out["cpu"] = time.process_time() - cpu
        return out
    rules = _rules(task["rules_key"], task["rules"])
    tmp = shard.with_name(f".{shard.name}.{os.getpid()}.{time.monotonic_ns()}.tmp")
    files = task["files"]  # [(absolute path, label)] in archive order
    # Each file checked against its checksum as it is read, before the shard is put in place.
    lines = read_bucket_lines([(Path(p), Path(k)) for p, k in task["parts"]], task.get("checksums"))
    pending = next(lines, None)
    template = task.get("template")
    if template and Path(template).exists():
        # A copy of an empty store made once a run: creating one costs ~50 ms of fsyncs
        # and schema, a copy ~1 ms; with 1,024 buckets that is most of a bucket's cost.
        shutil.copyfile(template, tmp)
    st = Store.open(tmp)
    log = None
    tmp_log = log_of(tmp)
    try:
        if want_log:
            # The bucket's action log, written here in parallel: the merge only renumbers
            # the seq at the start of each line (docs/scale-out.md).
            from mrules.outputs import ActionLog

            tmp_log.unlink(missing_ok=True)
            log = ActionLog(tmp_log, st)
        write = (lambda b: log.write(b.ledger_entries())) if log is not None else None
        for ordinal, (source, label) in enumerate(files):
            engine = Engine(
                rules,
                st,
                source=source,
                source_label=label,
                batch_size=task["commit_every"],
                on_commit=write,
                cache_prospects=task.get("cache_prospects", DEFAULT_CACHE_PROSPECTS),
            )
            engine.start()

            def items(ordinal: int = ordinal) -> Any:
                nonlocal pending
                while pending is not None and pending[0] == ordinal:
                    parsed = parse_line(pending[2], pending[1])
                    if parsed is not None:
                        yield parsed
                    pending = next(lines, None)

            last = ordinal == len(files) - 1
            summary = engine.run(items(), now=task["now"] if last else None)
            if pending is not None and pending[0] < ordinal:
                raise PartitionError(
                    f"bucket {bucket}: lines out of archive order: the partition folder is"
                    " damaged; partition the archive again into a new folder"
                )
            out["events"] += summary.lines
            out["applied"] += summary.applied
            out["rejected"] += summary.rejected
            out["duplicates"] += summary.duplicates
            out["ignored"] += summary.ignored
            out["unsettled"] += [{**d, "ordinal": ordinal} for d in summary.unsettled]
        if pending is not None:
            raise PartitionError(
                f"bucket {bucket}: a line names file {pending[0]}, not in the manifest: the"
                " partition folder is damaged; partition the archive again into a new folder"
            )
    except BaseException:
        if log is not None:
            log.close()
        st.close()
        _remove(tmp)
        tmp_log.unlink(missing_ok=True)
        raise
    try:
        if log is not None:
            log.close()
        # Into one file before the rename: the shard's -wal would not follow it.
        st.close_whole()
    except BaseException:
        _remove(tmp)
        tmp_log.unlink(missing_ok=True)
        raise
    import orjson

    counts = counts_of(shard)
    tmp_counts = counts.with_name(f".{counts.name}.{os.getpid()}.tmp")
    try:
        # Before the shard: a shard in place has its counts (and its log). No fsync: counts
        # lost with the machine are a bucket run again, not a wrong count.
        tmp_counts.write_bytes(orjson.dumps({k: out[k] for k in _COUNTED}))
        os.replace(tmp_counts, counts)
    except BaseException:
        _remove(tmp)
        tmp_log.unlink(missing_ok=True)
        tmp_counts.unlink(missing_ok=True)
        raise
    if log is not None:
        os.replace(tmp_log, log_of(shard))  # the log first: a shard in place has its log
    with contextlib.suppress(FileNotFoundError):
        tmp.with_name(tmp.name + ".lock").unlink()
    os.replace(tmp, shard)
    out["seconds"] = time.perf_counter() - started
    out["cpu"] = time.process_time() - cpu
    return out
