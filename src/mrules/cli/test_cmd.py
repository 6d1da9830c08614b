"""`mrules test`: run the test files of a rule set (docs/testing.md)."""

from __future__ import annotations

import contextlib
import os
import signal
import stat
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from mrules.cli.common import PATH, NonEmptyPath

if TYPE_CHECKING:
    from mrules.testing import Loaded, Report

__all__ = ["COMMANDS"]


@click.command("test")
@click.argument("paths", nargs=-1, type=PATH)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json", "junit"]),
    default="text",
    show_default=True,
    help="text for people, json for scripts, junit (JUnit XML) for CI.",
)
@click.option(
    "-k",
    "keywords",
    multiple=True,
    metavar="TEXT",
    help="Run only the tests whose 'FILE::NAME' contains TEXT (case-insensitive; repeatable: any)"
    " [default: every test].",
)
@click.option(
    "--update",
    is_flag=True,
    help="Write the actual state into the snapshots of tests that ask for one (snapshot: true).",
)
@click.option(
    "-o",
    "--output",
    type=NonEmptyPath(dir_okay=False, writable=True),
    help="Write the report to this file (`-`: standard output) [default: standard output].",
)
@click.option("-v", "--verbose", is_flag=True, help="List passing tests too (text format).")
@click.option(
    "-q",
    "--quiet",
    is_flag=True,
    help="No progress bar (shown on a terminal with the text format otherwise).",
)
def run_tests(
    paths: tuple[str, ...],
    fmt: str,
    keywords: tuple[str, ...],
    update: bool,
    output: str | None,
    verbose: bool,
    quiet: bool,
) -> None:
    """Run the rule tests in PATHS (default: the current folder).

    A folder contributes every *.test.yaml (or *.test.yml) below it; a file is
    taken whatever its name. Each test gives a starting state, events and
    clock ticks, and what to expect; it runs in memory with a simulated clock,
    never touching a store. A failure shows the expected and the actual value
    and the rules (file:line) and events behind the actual value.

    Exit status (docs/exit-codes.md): 0 all passed, 1 a test failed (or its
    rules have errors),
    2 a test file is broken (the message says file:line), a path does not
    exist, PATHS hold no test, -k selects no test, or -o is missing its
    folder or is one of the files the tests read, 4 the -o file or a
    snapshot (--update) cannot be written, or standard output is closed,
    130 interrupted (no report is written).

    \b
    Examples:
      mrules test examples/getcloudy/tests
      mrules test -k mql --format junit -o junit.xml
    """
    from mrules.cli.common import EXIT_INTERRUPTED, fail, output_folder_or_exit, stdout_or_exit
    from mrules.testing import run_paths

    if output == "-":  # standard output, as every command's `-` (it wrote a file named -)
        output = None
    if output is None:
        stdout_or_exit()  # closed (`>&-`): exit 4 before any test runs
    done: list[str] = []  # "ran", then "written": what an interrupt's message says
    try:
        loaded: Loaded = {}  # the test files read for the check of -o, not read again
        if output:  # refused before any test runs (mrules creates no folders)
            output_folder_or_exit("-o", output)
            _refuse_output_over_inputs(output, paths, loaded)
        bar = _bar if fmt == "text" and not quiet else None  # never in a CI format
        report = run_paths(list(paths), keywords, update=update, loaded=loaded, progress=bar)
        done.append("ran")
        _write_report(report, fmt, output, verbose, done)
        sys.exit(report.exit_code)
    except KeyboardInterrupt:  # not the stores' "resumes": a test writes nothing to resume
        fail(_interrupted(done, output), EXIT_INTERRUPTED)


@contextlib.contextmanager
def _bar(total: int) -> Iterator[Callable[[str], None]]:
    """The tests done of `total`, the last one's name, on a terminal (stderr) only."""
    from mrules.cli.common import count_bar

    with count_bar(total, "{task.description}") as advance:
        yield lambda name: advance(name if len(name) <= 32 else name[:31] + "…")


def _interrupted(done: list[str], output: str | None) -> str:
    if "written" in done:
        if output:
            return f"interrupted after the report was written to {_shown(output)}"
        return "interrupted; the report on standard output may be incomplete"
    kept = f" ({_shown(output)} is left as it was)" if output else ""
    if "ran" in done:
        return f"interrupted; no report was written{kept}"
    return f"interrupted before the tests ended; no report was written{kept}"


def _shown(path: str) -> str:
    from mrules.loader import shown_path

    return shown_path(path)


def _refuse_output_over_inputs(output: str, paths: tuple[str, ...], loaded: Loaded) -> None:
    """Exit 2 when -o is a file the tests read: `-o tests/x.test.yaml` replaced a
    test file with the report, `-o rules/10-lists.mr` a rule file."""
    from mrules.cli.common import refuse_output_over_inputs
    from mrules.testing import input_files

    refuse_output_over_inputs("-o", output, input_files(list(paths), loaded))


def _write_report(
    report: Report, fmt: str, output: str | None, verbose: bool, done: list[str]
) -> None:
    """Print the report, or write it to -o whole or not at all; `done` gets "written"
    once it is (on standard output: from its first byte, which stays on the terminal)."""
    from mrules.atomic import atomic_write
    from mrules.cli.common import EXIT_STORE, fail
    from mrules.testing import NO_TESTS, render_json, render_junit, render_text

    if fmt == "json":
        data = render_json(report)
    elif fmt == "junit":
        data = render_junit(report)
    else:
        data = (render_text(report, verbose=verbose) + "\n").encode()
    if output:
        # a named pipe is written to, not replaced: opening it waits for a reader, and an
        # interrupt must end that wait (held back, it waited for ever, SIGTERM included)
        held = contextlib.nullcontext() if _is_pipe(output) else _interrupts_held()
        try:  # whole or not at all: a kill or a full disk never leaves half a report
            with held:  # so that an interrupt's message knows which it was
                atomic_write(Path(output), data)
                done.append("written")
        except OSError as e:
            fail(f"cannot write {_shown(output)}: {e.strerror or e}", EXIT_STORE)
        if fmt != "text":
            click.echo(render_text(report, verbose=verbose), err=True)
    else:
        done.append("written")
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
    if fmt != "text" and not output:  # why no test ran: the text report says it, not these
        if report.unmatched:
            click.echo(f"mrules: error: {report.unmatched}", err=True)
        elif report.none_found:
            click.echo(f"mrules: error: {NO_TESTS}", err=True)


def _is_pipe(path: str) -> bool:
    try:
        return stat.S_ISFIFO(os.stat(path).st_mode)
    except (OSError, ValueError):
        return False


@contextlib.contextmanager
def _interrupts_held() -> Iterator[None]:
    """Hold Ctrl-C and SIGTERM back while the block runs; they take effect right after it.

    Handlers that only note the signal, not a signal mask: a mask covers one thread,
    and a signal sent to the process may reach another one, while Python runs its
    handlers in the main thread whichever thread the signal reached. Outside the
    main thread (no handlers can be set there) the block runs as it is.
    """
    noted: list[int] = []
    before: dict[signal.Signals, Any] = {}
    try:
        for sig in (signal.SIGINT, signal.SIGTERM):
            before[sig] = signal.signal(sig, lambda signum, _frame: noted.append(signum))
    except ValueError:  # not the main thread
        for sig, handler in before.items():
            signal.signal(sig, handler)
        before = {}
    try:
        yield
    finally:
        for sig, handler in before.items():
            signal.signal(sig, handler)
    if noted:
        raise KeyboardInterrupt


COMMANDS = (run_tests,)
