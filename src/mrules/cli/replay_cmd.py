"""`mrules replay --diff`: what a rule change would have done (docs/replay.md)."""

from __future__ import annotations

import contextlib
import sys
from typing import Any

import click
import orjson

from mrules.cli.common import PATH, NonEmptyPath
from mrules.exitcodes import ExitCode
from mrules.scratch import Abandoned, held_folder, remove_abandoned_folders

__all__ = ["COMMANDS"]


def _fail(message: str, code: int = ExitCode.USAGE) -> None:
    click.echo(f"mrules: error: {message}", err=True)
    sys.exit(int(code))


class _Progress:
    """A counter on stderr while the two runs read the events (only on a terminal)."""

    def __init__(self, enabled: bool, total: int | None) -> None:
        self.enabled, self.total = enabled, total
        self.console: Any = None
        self.progress: Any = None
        self.tasks: dict[str, Any] = {}

    def __enter__(self) -> _Progress:
        if self.enabled:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TaskProgressColumn,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self.console = Console(stderr=True)
            columns: list[Any] = [TextColumn("{task.description}")]
            if self.total:
                columns += [BarColumn(), TaskProgressColumn(), MofNCompleteColumn()]
                columns += [TimeRemainingColumn()]
            else:
                columns += [TextColumn("{task.completed:,} lines")]
            columns += [TextColumn("{task.fields[rate]}"), TimeElapsedColumn()]
            self.progress = Progress(*columns, console=self.console, transient=True)
            self.progress.__enter__()
            for which in ("old", "new"):
                self.tasks[which] = self.progress.add_task(
                    f"{which} rules", total=self.total, rate=""
                )
        return self

    def __call__(self, which: str, lines: int) -> None:
        if self.progress is None:
            return
        task = self.tasks[which]
        self.progress.update(task, completed=lines)
        speed = self.progress.tasks[task].speed
        if speed:
            self.progress.update(task, rate=f"{speed:,.0f} lines/s")

    def __exit__(self, *exc: object) -> None:
        if self.progress is not None:
            self.progress.__exit__(None, None, None)


def _count_lines(path: str) -> int | None:
    """The number of lines of a plain events file, counted quickly (None for stdin or a pipe,
    which can be read only once)."""
    from pathlib import Path

    if path == "-" or not Path(path).is_file():
        return None
    try:
        with open(path, "rb") as f:
            if f.read(2) == b"\x1f\x8b":
                import gzip

                f.seek(0)
                with gzip.open(f) as g:
                    return sum(chunk.count(b"\n") for chunk in iter(lambda: g.read(1 << 20), b""))
            f.seek(0)
            return sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))
    except OSError:
        return None
    except EOFError:
        return None


@click.command("replay")
@click.argument("paths", nargs=-1, required=True, type=PATH)
@click.option(
    "--diff",
    "diff",
    is_flag=True,
    help="Compare two rule sets over the same events (the only mode, and required).",
)
@click.option(
    "--old-rev",
    metavar="REV",
    help="Take OLD_RULES from this git revision of NEW_RULES (then give NEW_RULES EVENTS only).",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="text: the report for people; json: the same as one JSON object (what"
    " `mrules report html --replay-diff` reads).",
)
@click.option(
    "--mql-list",
    default="MQL",
    show_default=True,
    help="The list whose members are MQLs (static or dynamic).",
)
@click.option(
    "--examples",
    type=click.IntRange(min=0),
    default=5,
    show_default=True,
    help="Example prospects shown a category.",
)
@click.option(
    "--jobs",
    type=click.Choice(["auto", "1", "2"]),
    default="auto",
    show_default=True,
    help="1: run the two rule sets one after the other, in this process; 2: run the old "
    "rules in a second process at the same time; auto: 2 when a core is "
    "free (at least 2 usable CPUs and a 1-minute load average below CPUs - 1), else 1.",
)
@click.option(
    "--store-dir",
    metavar="DIR",
    type=NonEmptyPath(file_okay=False),
    help="Run each side into a new SQLite store in DIR (old.db, new.db), not in memory: for "
    "histories too large for memory (slower). The stores are kept for `mrules explain`.",
)
@click.option(
    "--in-memory",
    is_flag=True,
    help="Run both sides in memory whatever the size of the events (fastest; memory grows"
    " with the events: about 3.8 GB for 2 million).",
)
@click.option(
    "--progress/--no-progress",
    default=None,
    help="Show a progress bar on stderr [default: when stderr is a terminal].",
)
@click.option(
    "-q", "--quiet", is_flag=True, help="No progress bar (`--no-progress`, as other commands' -q)."
)
def replay(
    paths: tuple[str, ...],
    diff: bool,
    old_rev: str | None,
    fmt: str,
    mql_list: str,
    examples: int,
    jobs: str,
    store_dir: str | None,
    in_memory: bool,
    progress: bool | None,
    quiet: bool,
) -> None:
    """Replay EVENTS under OLD_RULES and NEW_RULES and report what the change does.

    \b
    mrules replay --diff OLD_RULES NEW_RULES EVENTS
    mrules replay --diff --old-rev REV RULES EVENTS

    Both runs happen in memory when the events are at most 20 MB of text (about
    125,000 events); beyond, or from standard input or a pipe, each side runs
    into a store in a temporary folder (in TMPDIR), removed at the end (a
    killed replay's by the next replay), so memory does not grow with the
    history. --in-memory and --store-dir choose; no existing store is read or
    written. The report lists
    the prospects whose MQL status (membership of the list "MQL"), assignment,
    grade, lists, fields and tags or CRM work change, the emails and notifications gained or
    lost, the shift of the score distribution and, per rule, how many times it
    acted before and after, with example prospects and the rules and events
    behind each change.

    Exit status (docs/exit-codes.md): 0 done (whatever the differences), 1 a
    rule set has errors, 2 bad arguments or unreadable input, 4 a store in
    --store-dir could not be written (disk full, read-only) or standard output
    is closed or no temporary folder can be made, 130 interrupted (the stores it
    began are removed).

    \b
    Examples:
      mrules replay --diff old-rules/ rules/ events.jsonl.gz
      mrules replay --diff --old-rev HEAD~1 rules/ events.jsonl --format json
      mrules replay --diff old-rules/ rules/ year.jsonl.gz --store-dir /data/replay
    """
    from mrules.replay import runs_on_disk

    if not diff:
        _fail("mrules replay needs --diff: mrules replay --diff OLD_RULES NEW_RULES EVENTS")
    if old_rev is not None and not old_rev.strip():  # "" was taken as no --old-rev at all
        _fail(
            "--old-rev needs a revision (HEAD~1, a tag, a commit); without --old-rev, give"
            " OLD_RULES NEW_RULES EVENTS"
        )
    want = 2 if old_rev is not None else 3
    if len(paths) != want:
        usage = "OLD_RULES NEW_RULES EVENTS" if old_rev is None else "--old-rev REV RULES EVENTS"
        _fail(f"mrules replay --diff {usage}: expected {want} paths, got {len(paths)}")
    events = paths[-1]
    if events == "-" and sys.stdin is None:  # `<&-`: Python has no standard input at all
        _fail("- reads the events from standard input, which is closed: give the events file")
    if events != "-":
        from pathlib import Path

        if Path(events).is_dir():
            _fail(f"{events} is a folder, not an events file (JSON Lines, or .jsonl.gz)")
        if not Path(events).exists():
            _fail(f"no such events file: {events}")
    from mrules.cli.common import rule_file_or_exit, stdout_or_exit

    names = ("RULES",) if old_rev is not None else ("OLD_RULES", "NEW_RULES")
    for p, name in zip(paths[:-1], names, strict=True):
        from pathlib import Path

        if not Path(p).exists():
            from mrules.loader import NOT_STDIN

            _fail(f"-: {NOT_STDIN}" if p == "-" else f"no such rule file or folder: {p}")
        # An empty file, a store or binary data where rules go (the paths swapped): exit
        # 2, as every command that loads rules says; it was replayed as no rules at all.
        rule_file_or_exit(p, argument=name)

    if in_memory and store_dir is not None:
        _fail("--in-memory and --store-dir: give one (where both sides run)")
    # A closed standard output (`>&-`) is exit 4 before both runs: the text report was lost
    # with exit 0, the JSON an internal error (exit 70).
    stdout_or_exit()
    if quiet and progress:
        _fail("-q and --progress: give one (-q shows no bar)")
    show = False if quiet else progress if progress is not None else sys.stderr.isatty()
    from mrules.replay import OLD_RULES_PREFIX

    for prefix, what in ((TEMPORARY_PREFIX, "stores"), (OLD_RULES_PREFIX, "old rules")):
        removed = remove_abandoned_folders(prefix)
        if removed:
            click.echo(f"mrules: {abandoned_text(removed, what)}", err=True)
    with contextlib.ExitStack() as stack:
        temporary = None
        if store_dir is None and not in_memory and runs_on_disk(events):
            # Both sides on disk, in a folder of their own removed at the end (and on an
            # error or an interrupt; a killed replay's by the next): in memory, 2 million
            # events took 3.8 GB.
            try:
                temporary = str(stack.enter_context(held_folder(TEMPORARY_PREFIX)))
            except OSError as e:
                import tempfile

                _fail(
                    f"cannot make a folder for the replay's stores in {tempfile.gettempdir()}:"
                    f" {e.strerror or e}; set TMPDIR to a folder with room, or give --store-dir"
                    " DIR (or --in-memory for a small history)",
                    ExitCode.STORE,
                )
        _replay(paths, old_rev, events, fmt, mql_list, examples, jobs, store_dir or temporary,
                temporary, show)  # fmt: skip


TEMPORARY_PREFIX = "mrules-replay-"
"""The name of a replay's folder of temporary stores, before `mkdtemp`'s 8 characters."""


def abandoned_text(removed: list[Abandoned], what: str = "stores") -> str:
    """The one line saying which folders of killed replays were removed, and the room freed:
    their temporary `what` (its stores, or the rules `--old-rev` took from git).

    >>> from pathlib import Path
    >>> print(abandoned_text([Abandoned(Path("/t/x"), 42, 1_234_567_890)]))
    removed /t/x (1.2 GB), the temporary stores of a replay that was killed (process 42)
    >>> two = [Abandoned(Path("/t/a"), 1, 2_000_000), Abandoned(Path("/t/b"), None, 0)]
    >>> print(abandoned_text(two))
    removed the temporary stores of 2 replays that were killed (2.0 MB): /t/a, /t/b
    >>> print(abandoned_text([Abandoned(Path("/t/c"), None, 8192)]))
    removed /t/c (8 kB), the temporary stores of a replay that was killed
    """
    from mrules.loader import shown_path

    size = sum(r.size for r in removed)
    if size >= 1e9:
        room = f"{size / 1e9:.1f} GB"
    else:
        room = f"{size / 1e6:.1f} MB" if size >= 1e6 else f"{size // 1000} kB"
    if len(removed) > 1:
        paths = ", ".join(shown_path(str(r.path)) for r in removed)
        return (
            f"removed the temporary {what} of {len(removed)} replays that were killed"
            f" ({room}): {paths}"
        )
    [one] = removed
    whose = f" (process {one.pid})" if one.pid is not None else ""
    return (
        f"removed {shown_path(str(one.path))} ({room}), the temporary {what} of a replay"
        f" that was killed{whose}"
    )


def _replay(
    paths: tuple[str, ...],
    old_rev: str | None,
    events: str,
    fmt: str,
    mql_list: str,
    examples: int,
    jobs: str,
    store_dir: str | None,
    temporary: str | None,
    show: bool,
) -> None:
    """The replay once its arguments are checked: the runs, the comparison, the report."""
    from mrules.api import RuleSetError
    from mrules.events import EventSourceError
    from mrules.replay import (
        ReplayError,
        StoreDirError,
        auto_jobs,
        diff_runs,
        render_text,
        unfinished_text,
    )
    from mrules.storeapi import StoreError, StoreLocked

    try:
        with contextlib.ExitStack() as stack:
            old: Any
            if old_rev is not None:
                from mrules.replay import compile_at_revision

                # Compiled now, its files named as in the work tree: the temporary
                # folder git's copy is read from is gone when the report is printed.
                old = compile_at_revision(old_rev, paths[0])
                old_label = f"{paths[0]} at {old_rev}"
                new, new_label = paths[0], paths[0]
            else:
                old, new = paths[0], paths[1]
                old_label, new_label = old, new
            bar = stack.enter_context(_Progress(show, _count_lines(events) if show else None))
            result = diff_runs(
                old,
                new,
                events,
                mql_list=mql_list,
                examples=examples,
                old_label=old_label,
                new_label=new_label,
                progress=bar if show else None,
                jobs=auto_jobs() if jobs == "auto" else int(jobs),
                store_dir=store_dir,
            )
    except StoreDirError as e:  # a --store-dir that cannot be made: as a store that fails
        _fail(str(e), ExitCode.STORE)
        return
    except ReplayError as e:  # GitError too
        _fail(str(e))
        return
    except KeyboardInterrupt:  # not the stores' "resumes": a replay starts over (even
        # with --store-dir: `diff_runs` removed the stores it had begun)
        click.echo("mrules: error: interrupted; a replay keeps nothing: run it again", err=True)
        sys.exit(int(ExitCode.INTERRUPTED))
    except RuleSetError as e:
        which = getattr(e, "which", "")
        if which == "old" and old_rev is not None:  # its files are named as in the work tree
            which = f"old rules ({paths[0]} at {old_rev})"
        else:
            which = f"{which} rules".strip()
        if not e.diagnostics:  # not read at all (not UTF-8, no rule file): unreadable input
            _fail(f"the {which} cannot be read: {e}")
            return
        click.echo(f"mrules: error: the {which} have errors:", err=True)
        click.echo(str(e), err=True)
        sys.exit(int(ExitCode.DIAGNOSTICS))
    except EventSourceError as e:
        _fail(str(e))
        return
    except StoreLocked as e:  # --store-dir: another process opened a store there meanwhile
        _fail(str(e), ExitCode.BUSY)
        return
    except StoreError as e:  # --store-dir (or the temporary folder): disk full, read-only, ...
        if temporary is not None:
            _fail(
                f"{e}; the replay's temporary stores were removed: set TMPDIR to a folder"
                " with more room, or give --store-dir DIR",
                ExitCode.STORE,
            )
        _fail(f"{e}; the replay's unfinished stores were removed", ExitCode.STORE)
        return
    if fmt == "json":
        sys.stdout.buffer.write(orjson.dumps(result, option=orjson.OPT_INDENT_2) + b"\n")
        # Now, inside the command: a full disk met by Python's flush at exit was
        # "Exception ignored ... OSError", exit 120, not exit 4.
        sys.stdout.flush()
        if result["events"].get("unfinished_line"):  # the text says it in its header
            click.echo(f"mrules: warning: {unfinished_text(result['events'])}", err=True)
    else:
        click.echo(render_text(result))


COMMANDS = (replay,)
