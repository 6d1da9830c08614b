"""`run_partitioned`: every bucket of a partition folder as a task, then the merge.

The tasks run in a local process pool (`engine="local"`), on Dask
(`engine="dask"`: a scheduler address, or a local cluster of N workers), or
in this process (`workers=1`). Shards go to `STORE.shards/FINGERPRINT/`
beside the target store (the fingerprint is the rule set's version and
files, the manifest and `now`), so a rerun after a kill reuses every
finished shard and only runs the buckets that were not done; a shard of another rule set
or archive is never reused. The target store must be new: it is built as a
hidden file beside its path and renamed into place when the merge is done,
and the shards are removed then (unless `keep_shards`).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import pickle
import shutil
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mrules.atomic import atomic_write
from mrules.engine.run import DEFAULT_CACHE_PROSPECTS
from mrules.partition import Manifest, PartitionError
from mrules.scale.merge import MergeError, merge_shards
from mrules.scale.tasks import shard_name
from mrules.storeapi import is_postgres_url

__all__ = ["RunReport", "ScaleError", "run_partitioned"]


class ScaleError(Exception):
    """A partitioned run cannot start or finish; the message says why and what to do."""


@dataclass
class RunReport:
    """What a partitioned run did."""

    buckets: int = 0
    events: int = 0  # bucket lines (a tick counts once a bucket), buckets found done too
    archive_events: int = 0  # lines of the archive
    # As the buckets' runs counted them (a tick once a bucket, as `events`), buckets found
    # done too, as the run that finished them counted; `rejected`: the merged store's
    # rejected lines, each once (a tick that is not valid is rejected in every bucket), as
    # one process counts them and `mrules run` says them.
    applied: int = 0
    rejected: int = 0
    duplicates: int = 0
    prospects: int = 0
    seconds: float = 0.0  # wall, tasks and merge
    task_seconds: float = 0.0  # wall, tasks only
    task_cpu: float = 0.0  # CPU seconds of every task
    merge_seconds: float = 0.0
    merge_cpu: float = 0.0  # this process's CPU seconds in the merge
    prepare_cpu: float = 0.0  # CPU seconds of the workers' share of the merge
    skipped: int = 0  # buckets whose shard a previous run finished
    rejects_written: int = 0  # lines of the rejects file (`rejects`), each rejected line once
    per_bucket: list[dict[str, Any]] = field(default_factory=list)
    unsettled: list[dict[str, Any]] = field(default_factory=list)
    merge: dict[str, Any] = field(default_factory=dict)

    @property
    def events_per_second(self) -> float:
        return self.archive_events / self.seconds if self.seconds > 0 else 0.0


def _rules_key(compiled: Any) -> str:
    """The compiled rule set as a shard and a worker's cache know it: its version (the
    structure, positions aside) and the files it was compiled from, path and text. The
    ledger names each rule by file and line (`at`): a comment added above a rule, or the
    rules compiled from another working folder, is the same version but another ledger."""
    h = hashlib.blake2b(digest_size=8)
    for name, source in sorted((compiled.sources or {}).items()):
        for text in (name, source.path, source.text):
            h.update(text.encode("utf-8", "surrogatepass") + b"\0")
    return f"{compiled.version}-{h.hexdigest()}"


def _fingerprint(rules_key: str, manifest: Manifest, now: float | None) -> str:
    h = hashlib.blake2b(digest_size=8)
    h.update(rules_key.encode())
    h.update(manifest.to_json())
    h.update(repr(now).encode())
    return h.hexdigest()


def _shown(path: Path) -> str:
    """A path as messages show it: bytes of its name that are not UTF-8 as `\\xNN`."""
    from mrules.loader import printable_path

    return printable_path(str(path))


def _check_rules(rules: Any) -> None:
    if rules.settings.round_robin == "shared" and rules.symbols.groups:
        raise ScaleError(
            'the rules assign to groups with round_robin = "shared": one turn counter for'
            " every prospect cannot be split into buckets; add `settings { round_robin ="
            ' "by prospect" }` for a partitioned run (docs/semantics.md, Partitioned runs)'
        )


def _check_arguments(store: object, engine: object, workers: object, dask_local: object) -> None:
    """Refuse, before any folder is made or any bucket runs, what `mrules run`'s options
    never let through: ScaleError for the store and the engine, TypeError or ValueError
    for a count, naming the argument."""
    if not isinstance(store, str | Path):
        raise TypeError(f"store must be a path or a PostgreSQL URL, not {type(store).__name__}")
    if str(store) in ("", ":memory:"):  # not ". exists", nor ":memory: exists"
        raise ScaleError(
            "a partitioned run merges into a new store: give a path or a PostgreSQL URL,"
            f" not {str(store)!r}"
        )
    if engine not in ("local", "dask"):
        raise ScaleError(f"unknown engine {engine!r} (local or dask)")
    for name, value in (("workers", workers), ("dask_local", dask_local)):
        if value is None and name == "dask_local":
            continue
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{name} must be a whole number, not {type(value).__name__}")
        if value < 1:
            raise ValueError(f"{name} must be at least 1, not {value}")


def _remove_store_files(path: Path) -> None:
    for p in (path, *(path.with_name(path.name + s) for s in ("-wal", "-shm", ".lock"))):
        with contextlib.suppress(FileNotFoundError):
            p.unlink()


def _make_shard_folder(shard_dir: Path, template: Path) -> None:
    """The run's shard folder (a previous run's, with its finished shards, is kept), without
    a killed task's temporary shard, with the empty store each task copies (`template`)."""
    from mrules.store import Store

    shard_dir.mkdir(parents=True, exist_ok=True)
    for stale in shard_dir.glob(".b*.tmp*"):  # a killed task's temporary shard
        stale.unlink(missing_ok=True)
    if not template.exists():
        made = shard_dir / ".template.db.new"
        _remove_store_files(made)
        Store.open(made).close_whole()
        made.with_name(made.name + ".lock").unlink(missing_ok=True)
        os.replace(made, template)


def _pg_dbname(url: str) -> str:
    try:
        from psycopg.conninfo import conninfo_to_dict

        name = conninfo_to_dict(url).get("dbname")
    except Exception:  # psycopg absent or a URL it cannot read: PgStore.open says why
        name = None
    return str(name or "mrules")


def _check_empty_pg(url: str) -> None:
    """Refuse, before any task runs, a PostgreSQL store that cannot take the run."""
    from mrules.store_pg import PgStore, _shown

    with PgStore.open(url) as st:
        if st.has_prospects() or st.streams() or st.max_seq():
            raise ScaleError(
                f"store {_shown(url)} is not empty: a partitioned run writes a new store"
                " (replays are cheap); give an empty database"
            )


_LOG_PUT = ".actions-put.json"
"""In the shard folder: the action log this run put into place, until its store is too."""


def _log_identity(info: os.stat_result) -> list[int]:
    """What a rename keeps of a file and another file would not have all of."""
    return [info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns]


def _log_put_by_this_run(marker: Path, final: Path, info: os.stat_result) -> bool:
    """Whether `final` is the log this very run (same shard folder) put into place before
    it was stopped, a kill between the log's rename and the store's: then it is redone."""
    import orjson

    try:
        noted = orjson.loads(marker.read_bytes())
        return bool(noted["path"] == str(final) and noted["file"] == _log_identity(info))
    except (OSError, ValueError, KeyError, TypeError):
        return False


def _note_log_put(marker: Path, tmp: Path, final: Path) -> None:
    """Note, before the rename, the log about to be put at `final` (`_log_put_by_this_run`)."""
    import orjson

    atomic_write(marker, orjson.dumps({"path": str(final), "file": _log_identity(tmp.stat())}))


def _action_log_target(
    actions: Path, store: Path, marker: Path | None = None
) -> tuple[Path, Path, bool]:
    """Where the merged action log is written, then put: (temporary, final, direct).

    As `mrules run --actions` (docs/outputs.md): a symbolic link is followed (the file it
    points to gets the log, the link stays); a pipe or a device is written to, not
    replaced (`direct`: the log is made beside the store, then copied into it); a file
    with content is refused, since the new store's log starts empty (one process refuses
    it too: written from another store), unless `marker` says this run put it there and
    was killed before its store (then it is made again, and replaced).

    Raises:
        OutputError: the file has content.
    """
    from mrules.atomic import OutputError

    try:
        info = os.stat(actions)
    except FileNotFoundError:
        info = None
    except OSError as e:
        raise OutputError(f"cannot open action log {_shown(actions)}: {e.strerror or e}") from e
    if info is not None and not stat.S_ISREG(info.st_mode):
        return store.with_name(f".{store.name}.actions.merging"), actions, True
    final = Path(os.path.realpath(actions))
    ours = marker is not None and info is not None and _log_put_by_this_run(marker, final, info)
    if info is not None and info.st_size > 0 and not ours:
        raise OutputError(
            f"action log {_shown(actions)} is not empty: a partitioned run writes a new store,"
            " whose log starts empty (it was written from another store); give a new"
            " --actions path or move the file away"
        )
    return final.with_name(f".{final.name}.merging"), final, False


def _put_action_log(tmp: Path, final: Path, direct: bool) -> None:
    """The merged log into place: renamed over the file, or copied into a pipe or device."""
    from mrules.atomic import OutputError

    try:
        if direct:
            with open(tmp, "rb") as src, open(final, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
            tmp.unlink()
        else:
            os.replace(tmp, final)
    except OSError as e:
        raise OutputError(
            f"cannot write action log {_shown(final)}: {e.strerror or e}; the finished buckets are"
            " kept: once the cause is fixed, the same command runs only the merge again"
        ) from e


def _write_outputs(
    store: Any,
    report: RunReport,
    manifest: Manifest,
    rejects: str | Path | None,
    diagnostics: str | Path | None,
) -> None:
    """The rejects and diagnostics files, from the merged store before it is put into place.

    Raises:
        OutputError: a file cannot be written; the message says the same call resumes.
    """
    import orjson

    from mrules.atomic import OutputError
    from mrules.outputs import write_diagnostics

    try:
        if rejects is not None:
            paths = [f["path"] for f in manifest.files]
            report.rejects_written = write_all_rejects(Path(rejects), store, paths)
        if diagnostics is not None:
            # From the merged store, which has every bucket's reports in one process's order:
            # the buckets run this time alone lacked those a resumed run found done.
            write_diagnostics(Path(diagnostics), [orjson.loads(r) for r in store.diagnostics()])
    except OutputError as e:
        # not the store put into place, which the same command then refused ("exists")
        raise OutputError(
            f"{e}; the finished buckets are kept: once the cause is fixed, the same command"
            " runs only the merge again"
        ) from e


def run_partitioned(
    rules: Any,
    folder: str | Path,
    store: str | Path,
    *,
    engine: str = "local",
    workers: int = 2,
    scheduler: str | None = None,
    dask_local: int | None = None,
    actions: str | Path | None = None,
    rejects: str | Path | None = None,
    diagnostics: str | Path | None = None,
    now: float | None = None,
    commit_every: int = 20_000,
    keep_shards: bool = False,
    progress: Callable[[int, int, int, float], None] | None = None,
    dask_cluster_options: dict[str, Any] | None = None,
    wait_timeout: float | None = None,
    cache_prospects: int | None = DEFAULT_CACHE_PROSPECTS,
) -> RunReport:
    """Run `rules` over the partition `folder` into the new store `store`.

    `commit_every` and `cache_prospects` are each bucket's, as `mrules.run` takes them.
    There is no `commit_seconds`: a bucket's shard is kept whole or run again.

    `rejects` and `diagnostics` are written (`write_all_rejects`, `write_diagnostics`)
    before the store and the action log are put into place: when one cannot be written,
    the finished shards are kept and the same call runs only the merge again.

    An SQLite store's writers' lock (`NEW.db.lock`) is held once the arguments, the
    rules and the folder are checked, before any bucket runs: a second run into the
    same new store is refused (`StoreLocked`), or waits `wait_timeout` seconds for the
    first, then finds its store.

    Raises:
        ScaleError, PartitionError: the folder, the rules or the store path do not fit.
        TypeError, ValueError: an argument of the wrong type or value (naming it), as
            `mrules.run` refuses them: `now` NaN or infinite, `workers` 0.
        MergeError: the shards overlap (a bug, or a folder changed under a run).
        StoreError, OutputError: the store or the action log cannot be written.
        StoreLocked: another run writes into the same store.
    """
    with contextlib.ExitStack() as held:  # the store's lock, once the run takes it
        from mrules.api import _check_options, compile_rules
        from mrules.batch import Batch
        from mrules.store import Store, _lock, _unlock

        _check_arguments(store, engine, workers, dask_local)
        # as mrules.run checks them: a NaN `now` ran every bucket to another state, silently
        _check_options(None, now, commit_every, None, cache_prospects)
        started = time.perf_counter()
        compiled = compile_rules(rules)
        _check_rules(compiled)
        folder = Path(folder)
        manifest = Manifest.load(folder)
        if not manifest.files:
            raise PartitionError(f"{_shown(folder)}: the partition holds no file")
        # Every bucket file the size `partition` wrote, before any work: one removed or cut
        # short would be prospects left out of the store, silently.
        bucket_sizes = [manifest.bucket_size(folder, b) for b in range(manifest.buckets)]
        if now is not None and manifest.until_epoch is not None and now < manifest.until_epoch:
            # One process meets a `now` before its clock at its clock, the archive's latest
            # time; a bucket's own clock may be earlier (docs/scale-out.md, Time order).
            now = float(manifest.until_epoch)
        pg_url = str(store) if is_postgres_url(str(store)) else None
        if pg_url is not None:
            # Shards and the merged SQLite store are staged in the working folder, named after
            # the database (as its default rejects file is), then copied into PostgreSQL.
            _check_empty_pg(pg_url)
            target = Path.cwd() / f"{_pg_dbname(pg_url)}.partitioned.db"
            _remove_store_files(target)
        else:
            target = Path(store)
            if target.is_symlink():
                # As one process's store: written where the link points (the link stays, and
                # the lock is that file's), not a new file that replaced the link.
                target = Path(os.path.realpath(target))
            if target.parent.is_dir():
                # Two runs into one new store shared its shards and its hidden merged store,
                # which one removed under the other (`internal error: no such table: meta`).
                # PostgreSQL: its staging file in the working folder is not locked.
                held.callback(_unlock, _lock(target, wait_timeout is not None, wait_timeout))
        if target.exists():
            raise ScaleError(
                f"{_shown(target)} exists: a partitioned run writes a new store (replays are"
                " cheap); give another --store or move it away"
            )
        if not target.parent.is_dir():
            raise ScaleError(f"{_shown(target.parent)} does not exist; create it first")
        rules_key = _rules_key(compiled)
        fingerprint = _fingerprint(rules_key, manifest, now)
        shard_root = target.with_name(target.name + ".shards")
        shard_dir = shard_root / fingerprint
        log_put = shard_dir / _LOG_PUT
        log_target = None if actions is None else _action_log_target(Path(actions), target, log_put)
        template = shard_dir / ".template.db"  # made once the workers are there (`with pool`)
        blob = pickle.dumps(compiled)
        from mrules.loader import display_path

        # As `mrules run` names a file in the ledger: relative to the working folder when inside it.
        files = [(f["path"], display_path(f["path"])) for f in manifest.files]
        tasks: list[dict[str, Any]] = []
        for b in range(manifest.buckets):
            parts = manifest.bucket_parts(folder, b)
            size = bucket_sizes[b]
            tasks.append(
                {
                    "bucket": b,
                    "parts": [(str(p), str(k)) for p, k in parts],
                    "checksums": manifest.bucket_checksums(b),
                    "files": files,
                    "shard": str(shard_dir / shard_name(b)),
                    "rules_key": rules_key,
                    "rules": blob,
                    "commit_every": commit_every,
                    "cache_prospects": cache_prospects,
                    "now": now,
                    "size": size,
                    "template": str(template),
                    "actions": actions is not None,
                }
            )
        tasks.sort(key=lambda t: -t["size"])  # the largest first: the last task is a small one
        report = RunReport(buckets=manifest.buckets)
        report.archive_events = sum(f["events"] for f in manifest.files)
        done = 0

        def finished(out: dict[str, Any]) -> None:
            nonlocal done
            done += 1
            report.per_bucket.append(out)
            report.events += out["events"]
            report.applied += out["applied"]
            report.duplicates += out["duplicates"]
            report.task_cpu += out["cpu"]
            report.skipped += out["skipped"]
            report.unsettled += out["unsettled"]
            if progress is not None:
                progress(done, len(tasks), report.events, time.perf_counter() - started)

        pool: Any
        if engine == "dask":
            from mrules.scale.dask_engine import DaskPool

            # A local cluster of more workers than tasks starts them for nothing: with
            # `--dask-local 99999999999999999999` it never finished starting them.
            wanted = min(dask_local or workers, max(1, len(tasks)))
            pool = DaskPool(scheduler=scheduler, workers=wanted,
                            cluster_options=dask_cluster_options)  # fmt: skip
        else:  # "local": _check_arguments refused any other
            from mrules.scale.local import LocalPool
            from mrules.scale.tasks import preload

            # Forked workers inherit the compiled rule set: no copy of it a task.
            preload(rules_key, compiled)
            for task in tasks:
                task["rules"] = None
            pool = LocalPool(workers)
        from mrules.scale.tasks import run_bucket

        def prepared(out: dict[str, Any]) -> None:
            report.prepare_cpu += out["cpu"]

        with pool:
            # Only now, with the workers reached, the shard folder: a scheduler that cannot be
            # reached (exit 2, after its timeout) left an empty `NEW.db.shards/` behind.
            _make_shard_folder(shard_dir, template)
            pool.map(run_bucket, tasks, finished)
            report.task_seconds = time.perf_counter() - started

            # The merge: into a hidden store beside the target, renamed into place when
            # complete. Each shard's rows are made ready for it by the workers (prepare_shard).
            from mrules.scale.merge import prepare_shard

            merge_started, merge_cpu = time.perf_counter(), time.process_time()
            tmp = target.with_name(f".{target.name}.merging")
            _remove_store_files(tmp)
            actions_tmp = None
            try:
                shards = [shard_dir / shard_name(b) for b in range(manifest.buckets)]
                if log_target is not None:
                    actions_tmp = log_target[0]
                    actions_tmp.unlink(missing_ok=True)
                report.merge = merge_shards(
                    tmp,
                    shards,
                    [f for f, _ in files],
                    [f["lines"] for f in manifest.files],
                    actions=actions_tmp,
                    prepare=lambda ts: pool.map(prepare_shard, ts, prepared),
                )
                with Store.open(tmp) as st:
                    if actions is not None:  # as `mrules run --actions` notes where its log starts
                        st.set_log_start(str(Path(actions).resolve()), 0)
                    # Each file's last line, checked when `mrules run` continues the store on it.
                    for (source, _), entry in zip(files, manifest.files, strict=True):
                        if entry.get("anchor"):
                            line, check = entry["anchor"]
                            st.commit(Batch(source, entry["lines"], None, anchor=(line, check)))
                    _write_outputs(st, report, manifest, rejects, diagnostics)
                    st.close_whole()  # its -wal would not follow the rename into place
                report.merge_seconds = time.perf_counter() - merge_started
                report.merge_cpu = time.process_time() - merge_cpu
            except BaseException:
                _remove_store_files(tmp)
                if actions_tmp is not None:
                    actions_tmp.unlink(missing_ok=True)
                raise
        with contextlib.suppress(FileNotFoundError):
            tmp.with_name(tmp.name + ".lock").unlink()
        if actions_tmp is not None and log_target is not None:
            try:
                if not log_target[2]:  # a kill before the store is in place: the rerun redoes it
                    _note_log_put(log_put, actions_tmp, log_target[1])
                _put_action_log(actions_tmp, log_target[1], log_target[2])
            except BaseException:
                _remove_store_files(tmp)
                actions_tmp.unlink(missing_ok=True)
                raise
        if pg_url is not None:
            from mrules.store_pg import copy_from_sqlite

            copy_started = time.perf_counter()
            try:
                copy_from_sqlite(pg_url, tmp)
            except BaseException:
                # The database did not take the store (another writer, a lost connection): nor
                # may its log stay, or the same command would refuse it as another store's.
                # It was absent or empty (anything else was refused before the buckets ran).
                if log_target is not None and not log_target[2]:
                    log_target[1].unlink(missing_ok=True)
                    log_put.unlink(missing_ok=True)
                raise
            finally:
                _remove_store_files(tmp)
            report.merge_seconds += time.perf_counter() - copy_started
        else:
            os.replace(tmp, target)
        log_put.unlink(missing_ok=True)  # the store is in place: the log is its own now
        report.prospects = report.merge["prospects"]
        report.rejected = report.merge["rejects"]  # the count `mrules run` says, exits 3 for
        if not keep_shards:
            shutil.rmtree(shard_dir, ignore_errors=True)
            with contextlib.suppress(OSError):
                shard_root.rmdir()
        report.seconds = time.perf_counter() - started
        return report


def write_all_rejects(path: Path, store: Any, files: list[str]) -> int:
    """The rejects file of a partitioned run: every file's rejected lines, in archive order.

    For one file it is byte for byte what `mrules run` writes (`outputs.write_rejects`).
    """
    import orjson

    from mrules.atomic import OutputError
    from mrules.outputs import remove_stale_output

    rows = [r for src in files for r in store.rejects(src)]
    try:
        if not rows:
            remove_stale_output(path)
            return 0
        data = b"".join(
            orjson.dumps({"source": src, "line": line, "reason": reason, "text": text}) + b"\n"
            for src, line, reason, text in rows
        )
        atomic_write(path, data)
    except OSError as e:
        raise OutputError(f"cannot write rejects file {_shown(path)}: {e.strerror or e}") from e
    return len(rows)


__all__ += ["MergeError", "write_all_rejects"]
