"""`mrules partition`: bucket an event archive by prospect, once; and the partitioned `run`.

`partition` is the command. `run_partitioned_cli` is what `mrules run RULES
DIR` calls when DIR is a partition folder or `--engine` is given
(docs/scale-out.md).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from mrules.cli.common import (
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_REJECTS,
    EXIT_STORE,
    NonEmptyPath,
    fail,
)
from mrules.diagnostics import plural
from mrules.engine.run import DEFAULT_CACHE_PROSPECTS
from mrules.storeapi import is_postgres_url

__all__ = ["COMMANDS", "partition", "run_partitioned_cli"]


@click.command()
@click.argument(
    "events",
    nargs=-1,
    required=True,
    type=NonEmptyPath(
        said="needs an events file: an empty path is not the current folder (give the file)"
    ).refusing_long(),
)
@click.option(
    "--buckets",
    type=click.IntRange(1, 65536),
    help="How many buckets (fixed for the folder's life; needed for a new folder).",
)
@click.option(
    "--out",
    "out",
    required=True,
    type=NonEmptyPath(file_okay=False).refusing_long(),
    help="The partition folder: new, or one to append these files to.",
)
@click.option("-q", "--quiet", is_flag=True, help="No summary.")
def partition(events: tuple[str, ...], buckets: int | None, out: str, quiet: bool) -> None:
    """Rewrite the JSONL event files EVENTS (.gz too) into buckets by prospect.

    Every event of a prospect (and of every visitor tied to it) lands in one
    bucket, chosen by a stable, versioned hash of the normalised email;
    ticks go to every bucket. Each line keeps its file and line number, so a
    partitioned run numbers events as the original files do. Run the rules
    over the folder with `mrules run RULES DIR --engine local --workers N`
    (or --engine dask). Partitioning more files into the same folder appends
    a new part to each bucket; nothing already written moves.

    \b
    Example:
      mrules partition events-2026-*.jsonl.gz --buckets 64 --out /data/part
      mrules run rules/ /data/part --engine local --workers 8 --store replay.db

    Exit status (docs/exit-codes.md): 0 done (lines that are not events go to
    bucket 0, for the run to reject with their line numbers); 2 bad options, a
    missing or unreadable file, a file already in the folder or one of the
    folder's own files, or a folder that is not a partition; 4 the folder or a
    bucket could not be written (a full or read-only disk).
    """
    from mrules.cli.common import _INTERRUPTED_KEY
    from mrules.partition import PartitionError
    from mrules.partition import partition as do_partition

    # Not the writing commands' "what was committed is kept ... resumes": a pass keeps
    # nothing until its manifest is written, and the same command starts it over.
    click.get_current_context().meta[_INTERRUPTED_KEY] = (
        f"interrupted; {out} is as it was before this command (a part is kept only once"
        " the manifest names it): run the same command again"
    )
    if "-" in events:
        fail("partition reads files, not standard input")
    try:
        stats = do_partition(list(events), out, buckets)
    except PartitionError as e:
        fail(str(e))
    for label, line in stats["unfinished"]:  # as `mrules run` warns of it
        click.echo(
            f"mrules: warning: line {line:,} of {label} has no newline and is not whole JSON"
            " (still being written?): it was not partitioned; once it is complete, `mrules"
            f" run RULES {label} --store STORE` continues the partitioned run's store with it",
            err=True,
        )
    if not quiet:
        rate = stats["events"] / stats["seconds"] if stats["seconds"] else 0.0
        click.echo(
            f"partitioned {plural(stats['events'], 'line')} of {plural(stats['files'], 'file')}"
            f" into {plural(stats['buckets'], 'bucket')} ({stats['part']} of {out}) in"
            f" {stats['seconds']:.2f} s ({rate:,.0f} lines/s);"
            f" {plural(stats['ticks'], 'tick')} copied to every bucket;"
            f" {plural(stats['unrouted'], 'line')} to reject (in bucket 0); "
            # `until`: the latest event time of the folder; none before a line with a time
            + (f"until {stats['until']}" if stats["until"] else "no event time yet"),
            err=True,
        )
    sys.exit(EXIT_OK)


def run_partitioned_cli(
    compiled: Any,
    events: str,
    *,
    store_path: str,
    engine: str | None,
    workers: int,
    scheduler: str | None,
    dask_local: int | None,
    actions_path: str | None,
    rejects_path: str | None,
    diagnostics_path: str | None,
    now_ts: float | None,
    commit_every: int,
    quiet: bool,
    wait_timeout: float | None = None,
    commit_seconds: float | None = None,
    cache_prospects: int | None = DEFAULT_CACHE_PROSPECTS,
) -> None:
    """`mrules run RULES DIR` on a partition folder: tasks, merge, outputs; exits
    (`wait_timeout`: how long to wait for a store another run holds; None: not at all)."""
    from mrules.partition import PartitionError, folder_holding, is_partition_folder
    from mrules.scale.dask_engine import DaskMissing
    from mrules.scale.driver import MergeError, ScaleError, run_partitioned
    from mrules.scale.local import WorkerLost

    engine = engine or "local"
    if not is_partition_folder(events):
        if events == "-":  # not "partition it first (mrules partition - ...)", which refuses
            fail(
                f"--engine {engine} runs a partition folder, not standard input: write the"
                " events to a file and partition it first (mrules partition FILE --buckets N"
                " --out DIR)"
            )
        holder = folder_holding(events) if Path(events).is_file() else None
        if holder is not None:  # not "partition it first": partition refuses its own files
            fail(
                f"--engine {engine} runs a partition folder, and {events} is a file of the"
                f" partition folder {holder}: give the folder (mrules run RULES {holder} ...)"
            )
        if Path(events).is_file():
            if _is_sqlite(Path(events)):  # a store (the one a run wrote): no events to partition
                fail(
                    f"--engine {engine} runs a partition folder, and {events} is an SQLite"
                    " file (a store?), not events: give the partition folder (mrules partition"
                    " EVENTS --buckets N --out DIR makes one)"
                )
            fail(
                f"--engine {engine} runs a partition folder, and {events} is a file: partition"
                f" it first (mrules partition {events} --buckets N --out DIR)"
            )
        up = Path(events).resolve().parent
        if (
            Path(events).is_dir()
            and Path(events).name.startswith("part-")
            and (is_partition_folder(up))
        ):  # not "(no manifest.json)": the manifest is the folder's, one level up
            fail(
                f"--engine {engine} runs a partition folder, and {events} is a part of the"
                f" partition folder {Path(events).parent}: give the folder (mrules run RULES"
                f" {Path(events).parent} ...)"
            )
        if not Path(events).exists():  # "(no manifest.json)" told of a folder that is not there
            fail(
                f"{events}: not a partition folder: no such file or folder (mrules partition"
                " EVENTS --buckets N --out DIR makes one)"
            )
        fail(f"{events}: not a partition folder (no manifest.json); see mrules partition")
    pg = is_postgres_url(store_path)
    if store_path == ":memory:":
        fail("a partitioned run merges into a new store: give --store PATH or a PostgreSQL URL")
    if scheduler is not None and engine != "dask":
        fail("--scheduler is for --engine dask")
    if dask_local is not None and engine != "dask":
        fail("--dask-local is for --engine dask")
    if scheduler is not None and dask_local is not None:
        fail("give --scheduler or --dask-local, not both")
    if commit_seconds is not None:  # a bucket is all or nothing: no time-based commit helps
        fail(
            "--commit-seconds is for a stream read as it comes; a partitioned run keeps a"
            " bucket whole or runs it again (a killed bucket starts over), so it has no use"
            " here: leave it out (--commit-every and --cache-prospects apply to each bucket)"
        )
    for option, path in (("--actions", actions_path), ("--rejects", rejects_path),
                         ("--diagnostics", diagnostics_path)):  # fmt: skip
        if path is not None and not Path(path).parent.is_dir():
            fail(f"{option} {path}: {Path(path).parent} is not a folder; create it first")
    if pg:
        from mrules.scale.driver import _pg_dbname
        from mrules.store_pg import _shown

        store = Path(_pg_dbname(store_path))  # default outputs: DBNAME.rejects.jsonl here
        shown = _shown(store_path)
    else:
        store = Path(store_path)
        shown = store_path
        if not store.parent.is_dir():
            if store.parent.exists():  # a file: no folder can be made there
                fail(f"--store {store_path}: {store.parent} is a file, not a folder; give"
                     " another --store path")  # fmt: skip
            fail(f"--store {store_path}: {store.parent} is not a folder; create it first")
    interactive = sys.stderr.isatty() and not quiet

    def progress(done: int, total: int, lines: int, seconds: float) -> None:
        if quiet:
            return
        rate = lines / seconds if seconds > 0 else 0.0
        text = f"buckets {done}/{total}  {plural(lines, 'line')}  {rate:,.0f} lines/s"
        if interactive:
            click.echo(f"\r{text}", nl=done == total, err=True)
        elif done == total or done % max(1, total // 10) == 0:
            click.echo(text, err=True)

    rejects_file = (
        Path(rejects_path) if rejects_path else store.with_name(store.stem + ".rejects.jsonl")
    )
    diagnostics_file = (
        Path(diagnostics_path)
        if diagnostics_path
        else store.with_name(store.stem + ".diagnostics.jsonl")
    )
    try:
        report = run_partitioned(
            compiled,
            events,
            store_path if pg else store,
            engine=engine,
            workers=workers,
            scheduler=scheduler,
            dask_local=dask_local,
            actions=actions_path,
            rejects=rejects_file,
            diagnostics=diagnostics_file,
            now=now_ts,
            commit_every=commit_every,
            progress=progress,
            wait_timeout=wait_timeout,
            cache_prospects=cache_prospects,
        )
    except (PartitionError, ScaleError, DaskMissing) as e:
        fail(str(e))
    except WorkerLost as e:
        fail(str(e), EXIT_INTERRUPTED)
    except MergeError as e:
        fail(f"the shards do not merge: {e}", EXIT_STORE)
    rejected = report.rejected  # each rejected line once, the buckets done before too
    from mrules.cli.common import warn_unsettled

    # As a run on the archive in one process says them: in the archive's order (its files,
    # then their lines), whichever bucket finished first; the diagnostics file has them all.
    warn_unsettled(sorted(report.unsettled, key=lambda d: (d.get("ordinal", 0), d["line"] or 0)))
    if not quiet:
        click.echo(
            f"mrules run ({engine}): {plural(report.archive_events, 'line')}"
            f" ({plural(report.events, 'bucket line')}: ticks go to every bucket),"
            f" {rejected:,} rejected, {plural(report.prospects, 'prospect')};"
            f" {plural(report.buckets, 'bucket')} ({report.skipped:,} done before) in"
            f" {report.task_seconds:.2f} s, merge {report.merge_seconds:.2f} s (serial"
            f" {report.merge.get('serial_seconds', report.merge_seconds):.2f} s), total"
            f" {report.seconds:.2f} s ({report.events_per_second:,.0f} lines/s); store {shown}"
            + (f"; rejects {rejects_file}" if rejected else ""),
            err=True,
        )
    sys.exit(EXIT_REJECTS if rejected else EXIT_OK)


def _is_sqlite(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(16) == b"SQLite format 3\x00"
    except OSError:
        return False


COMMANDS = (partition,)
