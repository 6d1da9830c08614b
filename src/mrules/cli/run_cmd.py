"""`mrules run`: run a rule set over an event stream into a state store."""

from __future__ import annotations

import errno
import os
import stat
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import IO

import click
from click.core import ParameterSource
from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    SpinnerColumn,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from mrules import api
from mrules.allocator import pin_mmap_threshold
from mrules.atomic import OutputError
from mrules.batch import Batch
from mrules.checker import check
from mrules.cli.common import (
    EVENTS_PATH,
    EXIT_DIAGNOSTICS,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_REJECTS,
    EXIT_STORE,
    PATH,
    QUIET_HELP,
    STORE_PATH,
    NonEmptyPath,
    Seconds,
    WaitSeconds,
    fail,
    interrupt_says,
    load_or_exit,
    output_folder_or_exit,
    sqlite_database_kind,
    store_there_or_exit,
    warn_unsettled,
)
from mrules.compiler import compile_program
from mrules.diagnostics import plural, render_text, sort_diagnostics
from mrules.engine import DEFAULT_CACHE_PROSPECTS
from mrules.events import (
    EventSourceError,
    SourceNotOpenedError,
    StreamReplacedError,
    parse_timestamp,
)
from mrules.loader import display_path, printable_path
from mrules.outputs import (
    ActionLog,
    DiagnosticsFile,
    render_summary,
    stream_rejects,
    write_rejects,
)
from mrules.pathkind import special_file_kind
from mrules.records import RejectedLine
from mrules.store import StoreError
from mrules.storeapi import MEMORY, StateStore
from mrules.timetext import LAST_TIME

__all__ = ["COMMANDS", "DEFAULT_WAIT_TIMEOUT", "open_store", "rules_or_exit", "wait_options"]

DEFAULT_WAIT_TIMEOUT = 600.0
"""Seconds `--wait` waits for the store at most, unless `--wait-timeout` says otherwise."""


def rules_or_exit(paths: tuple[str, ...]):  # type: ignore[no-untyped-def]
    """Load, check and compile a rule set; exit 1 with diagnostics if it has errors."""
    result = load_or_exit(paths, store_option=True)
    diags = list(result.diagnostics)
    if not any(d.is_error for d in diags):
        diags += check(result.program)
    errors = [d for d in diags if d.is_error]
    if errors:
        click.echo(render_text(sort_diagnostics(errors), result.sources), err=True)
        fail(
            f"the rule set has {plural(len(errors), 'error')}; `mrules lint` shows them all",
            EXIT_DIAGNOSTICS,
        )
    return compile_program(result.program, result.sources)


def open_store(
    path: str, *, wait: bool = False, timeout: float | None = None, readonly: bool = False
) -> StateStore:
    """Open a store; its errors (StoreError, StoreLocked) reach `common.failures()`.

    `:memory:` is a new in-memory store (nothing to read back: readers refuse it).
    `timeout` (seconds) implies `wait`; `wait` alone waits DEFAULT_WAIT_TIMEOUT.
    """
    if path == MEMORY and readonly:
        fail("--store :memory: holds nothing to read: an in-memory store lives inside one run")
    if readonly:
        store_there_or_exit(path)
    if timeout is not None:
        wait = True
    elif wait:
        timeout = DEFAULT_WAIT_TIMEOUT
    return api.open_store(path, wait=wait, timeout=timeout, readonly=readonly)


def wait_options(f):  # type: ignore[no-untyped-def]
    """`--wait` and `--wait-timeout`, shared by the commands that write a store."""
    f = click.option(
        "--wait-timeout",
        "wait_timeout",
        type=WaitSeconds(DEFAULT_WAIT_TIMEOUT),  # a finite number above 0: nan waited forever
        metavar="SECONDS",
        help=f"Wait at most this long for the store (implies --wait) [default with --wait:"
        f" {DEFAULT_WAIT_TIMEOUT:g}]; exit 5 when it passes.",
    )(f)
    return click.option(
        "--wait", is_flag=True, help="Wait for a store another run holds, not refuse (exit 5)."
    )(f)


def _file_keys(path: str) -> set[object]:
    """What tells two paths apart: the resolved path, and the file's identity if it
    exists (a hard link or another spelling of the same file has the same one)."""
    keys: set[object] = {os.path.realpath(path)}
    with suppress(OSError):
        st = os.stat(path)
        keys.add((st.st_dev, st.st_ino))
    return keys


def _refuse_clashing_outputs(
    rules: str, events: str, store_path: str, outputs: list[tuple[str, str | None, str]]
) -> None:
    """Refuse an output file that is an input or another output: writing it (or removing
    a stale one, as a run with nothing to report does) would destroy it.

    `outputs` are (what, path or None, the advice); a rule file (`.mr`) under RULES
    counts as an input, and so does every file of a partition folder EVENTS (its
    manifest and buckets: `--diagnostics DIR/manifest.json` removed it).
    """
    folder = os.path.realpath(events) if events != "-" and os.path.isdir(events) else None
    taken: list[tuple[set[object], str]] = []
    if events != "-":
        taken.append((_file_keys(events), f"the events file {events}"))
    if store_path != MEMORY and "://" not in store_path:
        for suffix in ("", "-wal", "-shm", ".lock"):
            taken.append((_file_keys(store_path + suffix), f"the store {store_path}"))
        if Path(store_path).name not in ("", ".", ".."):
            # the sync's state and the local CRM beside the store: a run with nothing
            # to report removed them (`--diagnostics NAME.sync.db`)
            from mrules.crm.emulator import default_crm_path
            from mrules.sync.db import default_sync_path

            for what, beside in (
                ("the sync file", default_sync_path(store_path)),
                ("the local CRM file", default_crm_path(store_path)),
            ):
                for suffix in ("", "-wal", "-shm", "-journal"):
                    taken.append(
                        (_file_keys(f"{beside}{suffix}"), f"{what} {beside} beside the store")
                    )
    rules_root = os.path.realpath(rules)
    for what, path, advice in outputs:
        if path is None:
            continue
        keys = _file_keys(path)
        clash = next((held_by for held, held_by in taken if held & keys), None)
        real = os.path.realpath(path)
        if clash is None and (
            real == rules_root or (real.endswith(".mr") and real.startswith(rules_root + os.sep))
        ):
            clash = f"a rule file of {rules}"
        if clash is None and folder is not None and real.startswith(folder + os.sep):
            clash = f"in the partition folder {events}"
        if clash is None:
            clash = sqlite_database_kind(path)  # another store: appended to, it was damaged
        if clash is not None:
            fail(f"{what} {path} is {clash}: writing it would destroy it; {advice}")
        taken.append((keys, f"also the output of {what}"))


@click.command()
@click.argument("rules", nargs=1, type=PATH)
@click.argument("events", nargs=1, type=EVENTS_PATH)
@click.option(
    "--store",
    "store_path",
    type=STORE_PATH,
    default="mrules.db",
    show_default=True,
    help="The state store, an SQLite file or a postgresql:// URL (docs/scale-out.md);"
    " created if missing, resumed if it exists; :memory: for a trial run that keeps"
    " nothing.",
)
@click.option(
    "--actions",
    "actions_path",
    type=NonEmptyPath(dir_okay=False),
    help="Append every action taken to this JSONL file.",
)
@click.option(
    "--rejects",
    "rejects_path",
    type=NonEmptyPath(dir_okay=False),
    help="Where rejected lines go [default: beside the store, NAME.rejects.jsonl].",
)
@click.option(
    "--diagnostics",
    "diagnostics_path",
    type=NonEmptyPath(dir_okay=False),
    help="Where prospects whose rules did not settle are reported"
    " [default: beside the store, NAME.diagnostics.jsonl, only when there are some].",
)
@click.option(
    "--now",
    "now",
    metavar="TIME",
    help="Advance the clock to this RFC 3339 time after the stream (like a tick).",
)
@wait_options
@click.option(
    "--commit-every",
    "--batch-size",
    "commit_every",
    default=20_000,
    show_default=True,
    type=click.IntRange(1),
    help="Events per store transaction (--batch-size is the old name).",
)
@click.option(
    "--commit-seconds",
    type=Seconds(0.001),
    help="Also commit when this many seconds have passed since the last commit; on"
    " standard input or a pipe, even while no line comes (not for a partition folder).",
)
@click.option(
    "--cache-prospects",
    default=DEFAULT_CACHE_PROSPECTS,
    show_default=True,
    type=click.IntRange(0),
    metavar="N",
    help="Prospects kept decoded in memory between commits (the store holds them all).",
)
@click.option(
    "--engine",
    type=click.Choice(["local", "dask"]),
    help="Run a partition folder (mrules partition) bucket by bucket: local processes or Dask.",
)
@click.option("--workers", default=2, show_default=True, type=click.IntRange(1),
              help="Worker processes for --engine local (and for --engine dask's local"
                   " cluster when neither --scheduler nor --dask-local is given).")  # fmt: skip
@click.option("--scheduler", metavar="ADDRESS", help="--engine dask: a running Dask scheduler.")
@click.option("--dask-local", type=click.IntRange(1), metavar="N",
              help="--engine dask: start a local Dask cluster of N workers.")  # fmt: skip
@click.option("-q", "--quiet", is_flag=True, help=QUIET_HELP)
def run(
    rules: str,
    events: str,
    store_path: str,
    actions_path: str | None,
    rejects_path: str | None,
    diagnostics_path: str | None,
    now: str | None,
    wait: bool,
    wait_timeout: float | None,
    commit_every: int,
    commit_seconds: float | None,
    cache_prospects: int,
    engine: str | None,
    workers: int,
    scheduler: str | None,
    dask_local: int | None,
    quiet: bool,
) -> None:
    """Run the rules in RULES over the JSONL events in EVENTS.

    RULES is a rule folder or file; EVENTS a .jsonl or .jsonl.gz file, - for
    standard input or a pipe such as <(zcat a.gz) (format: docs/events.md), or
    a partition folder
    (`mrules partition`) to run bucket by bucket with --engine local|dask
    (docs/scale-out.md). Prospect state, the ledger
    and the outbox go to the store (--store :memory: keeps them in memory
    only, for a trial run). Running again on the same store resumes
    after the last committed line of the same file (not of a pipe or
    standard input); events whose id was already applied are skipped.

    Exit status (docs/exit-codes.md): 0 every line applied; 1 the rule set
    has errors; 2 usage or unreadable input; 3 some lines were rejected (they
    are in the rejects file, with line numbers and reasons); 4 the store or an
    output file failed (disk full, read-only, damaged); 5 another run holds
    the store; 130 interrupted. After 4 or 130, what was committed is kept:
    fix the cause and run the same command again to resume (--store :memory:
    keeps nothing: the same command starts from the first line).

    \b
    Example:
      mrules run examples/getcloudy/rules examples/getcloudy/events.jsonl \\
          --store getcloudy.db --actions actions.jsonl
    """
    if store_path == MEMORY:  # while the rules load, or once the run is over: nothing kept
        interrupt_says(f"interrupted; {NOTHING_KEPT}")
    # Big blocks keep their own mappings, freed when done: lower peak memory on long runs.
    pin_mmap_threshold()
    compiled = rules_or_exit((rules,))
    now_ts = None
    if now is not None:
        try:
            # kept as an event's time is: the last microseconds of 9999 round to 10000
            now_ts = min(parse_timestamp(now).timestamp(), LAST_TIME)
        except ValueError as e:
            fail(f"--now: {e}")
    beside = (  # a store file, whose default outputs go beside it; a folder is refused below
        store_path != MEMORY and "://" not in store_path and not os.path.isdir(store_path)
        and Path(store_path).name not in ("", ".", "..")
    )  # fmt: skip
    default = f"the default beside --store {store_path}"
    _refuse_clashing_outputs(rules, events, store_path, [
        ("--actions", actions_path, "give another --actions path"),
        ("--rejects", rejects_path, "give another --rejects path"),
        ("--diagnostics", diagnostics_path, "give another --diagnostics path"),
        (f"the rejects file ({default})",
         str(_beside(Path(store_path), ".rejects.jsonl")) if beside and not rejects_path else None,
         "give --rejects PATH or another --store"),
        (f"the diagnostics file ({default})",
         str(_beside(Path(store_path), ".diagnostics.jsonl"))
         if beside and not diagnostics_path else None,
         "give --diagnostics PATH or another --store"),
    ])  # fmt: skip
    found = None if events == "-" else _look_up(events)
    if engine is not None or (found is not None and stat.S_ISDIR(found.st_mode)):
        # a partition folder: docs/scale-out.md
        from mrules.cli.partition_cmd import run_partitioned_cli

        run_partitioned_cli(
            compiled, events, store_path=store_path, engine=engine, workers=workers,
            scheduler=scheduler, dask_local=dask_local, actions_path=actions_path,
            rejects_path=rejects_path, diagnostics_path=diagnostics_path, now_ts=now_ts,
            commit_every=commit_every, quiet=quiet,
            wait_timeout=wait_timeout or (DEFAULT_WAIT_TIMEOUT if wait else None),
            commit_seconds=commit_seconds, cache_prospects=cache_prospects,
        )  # fmt: skip
    if events != "-" and found is None:
        fail(f"{events}: no such file")
    if events == "-" and sys.stdin is None:  # `<&-`: Python has no standard input at all
        fail("- reads the events from standard input, which is closed: give the events file")
    # The options of a partitioned run, which a single stream would silently run without.
    given = click.get_current_context().get_parameter_source
    for option, name in (("--workers", "workers"), ("--scheduler", "scheduler"),
                         ("--dask-local", "dask_local")):  # fmt: skip
        if given(name) is ParameterSource.COMMANDLINE:
            shown = "standard input" if events == "-" else events
            fail(
                f"{option} is for a partition folder run with --engine, and {shown} is a single"
                " stream: leave it out, or partition the events first (mrules partition FILE"
                " --buckets N --out DIR)"
            )
    # The stream's name in the store is text: a file name that is not UTF-8 keeps its
    # bytes as `\xff` escapes (as messages show it, and as `mrules partition` names it).
    source = printable_path(api.stream_source(events))
    output_folder_or_exit("--actions", actions_path)
    output_folder_or_exit("--rejects", rejects_path)
    output_folder_or_exit("--diagnostics", diagnostics_path)
    _refuse_folders_beside_the_store(store_path, rejects_path, diagnostics_path)
    try:
        store = open_store(store_path, wait=wait, timeout=wait_timeout)
        # where an earlier run on standard input or a pipe left `-`: not this run's lines
        before = store.stream_position(source) if source == "-" else 0
    except KeyboardInterrupt:  # the run had not begun: nothing of this stream applied
        fail(_not_begun(source, store_path), EXIT_INTERRUPTED)
    log: ActionLog | None = None
    diagnostics: DiagnosticsFile | None = None
    try:
        in_memory = store_path == MEMORY
        if rejects_path:
            rejects_file: Path | None = Path(rejects_path)
        else:
            rejects_file = None if in_memory else _beside(store.path, ".rejects.jsonl")
        if diagnostics_path:
            diagnostics_file: Path | None = Path(diagnostics_path)
        else:
            diagnostics_file = None if in_memory else _beside(store.path, ".diagnostics.jsonl")
        rejected = 0
        unfiled: list[RejectedLine] = []  # rejected lines with no rejects file to go to
        console = _Console(stderr=True)
        if not console.is_terminal:
            # In CI logs and pipes, print whole paths rather than cut them at 80 columns.
            console = _Console(stderr=True, width=200)

        def open_log() -> None:  # once the store is read: a damaged one is refused untouched
            nonlocal log, diagnostics
            try:
                if diagnostics_file is not None:
                    diagnostics = DiagnosticsFile(diagnostics_file, store)
                if actions_path:
                    log = ActionLog(Path(actions_path), store)
            except OutputError as e:
                fail(str(e), EXIT_STORE)

        def write_log(batch: Batch) -> None:
            if log is not None:
                log.write(batch.ledger_entries())
            if diagnostics is not None:
                diagnostics.commit(batch)

        options = {
            "now": now_ts,
            "commit_every": commit_every,
            "commit_seconds": commit_seconds,
            "cache_prospects": cache_prospects,
            "on_start": open_log,
            "on_commit": write_log,
            "source": source,
            "label": printable_path(display_path(events)),
        }
        stream_in: IO[bytes] | str = sys.stdin.buffer if events == "-" else events
        if console.is_terminal and not quiet:
            try:  # as the reader says it without the bar (a socket, no permission)
                raw = None if events == "-" else open(events, "rb")  # noqa: SIM115 (closed below)
            except OSError as e:
                fail(f"{printable_path(events)}: cannot read: {e.strerror or e}")
            try:
                with _progress_bar(console, raw, store, source) as report:
                    result = api.run(
                        compiled,
                        raw if raw is not None else stream_in,
                        store,
                        progress=report,
                        **options,  # type: ignore[arg-type]
                    )
            finally:
                if raw is not None:
                    raw.close()
        else:
            result = api.run(compiled, stream_in, store, **options)  # type: ignore[arg-type]
        summary = result.summary
        if rejects_file is not None:
            # the file lists every stream's rejects; the summary and exit 3 are this stream's
            write_rejects(rejects_file, store)
            rejected = len(stream_rejects(store, source))
        else:  # --store :memory: without --rejects: shown below, or no line number is kept
            unfiled = stream_rejects(store, source)
    except StreamReplacedError as e:  # nothing of it was read
        fail(str(e))
    except SourceNotOpenedError as e:  # nothing read: no lines kept, nothing to resume
        fail(str(e))
    except EventSourceError as e:  # the lines before the break were applied and committed
        fail(f"{e}; {_stopped('', store, source, events, _REPAIR, before)}")
    except KeyboardInterrupt:
        fail(_stopped("interrupted", store, source, events, before=before), EXIT_INTERRUPTED)
    except OutputError as e:
        fail(f"{e}; {_stopped('', store, source, events, before=before)}", EXIT_STORE)
    finally:
        if log is not None:
            log.close()
        store.close()
    if summary.unfinished_line is not None:
        click.echo(
            f"mrules: warning: line {summary.unfinished_line:,} of {display_path(events)} has"
            " no newline and is not whole JSON (still being written?): it was not applied;"
            " running the same command again reads it once it is complete",
            err=True,
        )
    for r in unfiled[:5]:
        click.echo(
            f"mrules: warning: line {r.line:,} of {display_path(events)} rejected: {r.reason}",
            err=True,
        )
    if unfiled:
        more = f"... and {len(unfiled) - 5:,} more; " if len(unfiled) > 5 else ""
        click.echo(
            f"mrules: warning: {more}--store :memory: keeps no rejects file: give --rejects FILE"
            " to keep every rejected line with its reason",
            err=True,
        )
    warn_unsettled(summary.unsettled)
    if not quiet:
        render_summary(summary, console, store.path, rejects_file, diagnostics_file, rejected)
    # 3 when the stream has rejected lines, this run's or a resumed run's: a run that
    # failed (exit 4) or was interrupted (130) before reporting them still reports them.
    sys.exit(EXIT_REJECTS if summary.rejected or rejected else EXIT_OK)


class _Console(Console):
    def on_broken_pipe(self) -> None:
        """Rich's own answer to a standard error whose reader is gone (`2>&1 | head -1`)
        is exit 1, the code of a rule set with errors (120 once Python's last flush fails
        too): raise the error instead, for `failures()` to make it exit 4, the work kept."""
        raise BrokenPipeError(errno.EPIPE, os.strerror(errno.EPIPE))


_RESUME = "running the same command again resumes after them"
NOTHING_KEPT = (
    "--store :memory: keeps nothing once the run ends: running the same command again starts"
    " from the first line (give --store FILE to keep the work and resume)"
)
_REPAIR = "repair or complete the file, then run the same command again: it resumes after them"


def _not_begun(source: str, store_path: str) -> str:
    """`interrupted` while the store was being opened: nothing of this run was applied.
    An in-memory store keeps nothing, not even what was committed (it said it did)."""
    if store_path == MEMORY:
        return f"interrupted before the run began; {NOTHING_KEPT}"
    then = (
        "standard input or a pipe is not resumed by position: give the same lines again"
        if source == "-"
        else "running the same command again starts it"
    )
    return f"interrupted before the run began; the store keeps what was committed; {then}"


def _stopped(
    what: str, store: StateStore, source: str, events: str, then: str = _RESUME, before: int = 0
) -> str:
    """`interrupted; the store keeps lines 1-N of EVENTS; running the same command resumes`.

    N is read back from the store: a batch in flight when the run stopped was rolled back.
    `then` says how to go on. Standard input and pipes (source `-`) are not resumed by
    position: the message says so, and counts the lines only when this run committed
    some (`before`: the position an earlier run on `-` left).
    """
    head = f"{what}; " if what else ""
    if str(store.path) == MEMORY:  # it said "the store keeps lines 1-N ... resumes after them"
        return f"{head}{NOTHING_KEPT}"
    try:
        done = store.stream_position(source)
    except StoreError:
        done = 0
    if source == "-":
        name = "standard input" if events == "-" else events
        kept = (
            f"the store keeps lines 1-{done:,} of {name}"
            if done and done != before
            else "the store keeps what was committed"
        )
        return (
            f"{head}{kept}; standard input or a pipe is not resumed by position: running the"
            " same command again applies every line it gives, skipping only events whose id"
            " was applied, so give it only the lines after those"
        )
    kept = (
        f"the store keeps lines 1-{done:,} of {display_path(events)}"
        if done
        else "the store keeps what earlier runs committed"
    )
    return f"{head}{kept}; {then}"


@contextmanager
def _progress_bar(
    console: Console, raw: IO[bytes] | None, store: StateStore, source: str
) -> Iterator[Callable[[int], None]]:
    """A progress bar on the terminal: percentage, rate and time left when the size is known.

    The size is the file's bytes on disk (compressed bytes for a .gz file) and the
    position is how far the reader has got in them, so the bar is right for gzip
    too; on standard input only a counter shows. A resumed run counts from the
    line it resumed after.
    """
    size = None
    if raw is not None:
        try:
            size = os.fstat(raw.fileno()).st_size or None
        except OSError:
            size = None
    resumed = store.stream_position(source) if source != "-" else 0
    columns = [SpinnerColumn(), TextColumn("{task.description}")]
    if size is not None:
        columns += [BarColumn(), TaskProgressColumn(), TimeRemainingColumn()]
    columns.append(TimeElapsedColumn())
    started = time.monotonic()
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task("reading", total=size)

        def report(lines: int) -> None:
            seconds = time.monotonic() - started
            rate = f", {lines / seconds:,.0f} lines/s" if seconds > 0.5 else ""
            where = f"line {resumed + lines:,}"
            if resumed:
                where += f" (resumed after {resumed:,})"
            done = None
            if size is not None and raw is not None:
                with suppress(OSError, ValueError):
                    done = raw.tell()
            bar.update(task, description=where + rate, completed=done)

        yield report


def _look_up(path: str) -> os.stat_result | None:
    """The events path's status, None when nothing is there; exit 2 for a path the system
    cannot look up (a name too long, a loop of symbolic links), which pathlib raises on."""
    try:
        return os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as e:
        fail(f"{printable_path(path)}: {e.strerror}")


def _beside(store: Path, suffix: str) -> Path:
    return store.with_name(store.stem + suffix)


def _refuse_folders_beside_the_store(
    store_path: str, rejects_path: str | None, diagnostics_path: str | None
) -> None:
    """Exit 2, before the store is opened, when the rejects or diagnostics file a run
    writes beside an SQLite store (no --rejects, --diagnostics given) is a folder: it
    failed once the lines were applied (exit 4), and so did every run after, saying
    "the next run writes the file again"; or a named pipe or a device (`_not_a_file`)."""
    if store_path == MEMORY or "://" in store_path:
        return
    for option, chosen, suffix in (
        ("--rejects", rejects_path, ".rejects.jsonl"),
        ("--diagnostics", diagnostics_path, ".diagnostics.jsonl"),
    ):
        try:
            beside = _beside(Path(store_path), suffix)
        except ValueError:  # `--store /`: no name (what opening the store says)
            return
        if chosen is None:
            kind = _not_a_file(beside)
            if kind is not None:
                fail(
                    f"{beside} is {kind}, where the run writes its {option[2:]} file beside"
                    f" the store: move it away, or give {option} FILE"
                )


def _not_a_file(path: Path) -> str | None:
    """What `path` is in words when it is there and is no regular file (a folder, a named
    pipe, a device), else None. A named pipe there made the run wait for a reader for
    ever once its lines were applied. (os.stat, not Path.is_dir: a name too long is for
    the store's open to say.)"""
    try:
        mode = os.stat(path).st_mode
    except (OSError, ValueError):
        return None
    if stat.S_ISREG(mode):
        return None
    return "a folder" if stat.S_ISDIR(mode) else special_file_kind(mode)


COMMANDS = (run,)
