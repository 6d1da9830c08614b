"""`mrules test`: run the test files of a rule set (docs/testing.md)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

__all__ = ["COMMANDS"]


@click.command("test")
@click.argument("paths", nargs=-1, type=click.Path())
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
    help="Run only the tests whose 'FILE::NAME' contains TEXT (case-insensitive; repeatable: any).",
)
@click.option(
    "--update",
    is_flag=True,
    help="Write the actual state into the snapshots of tests that ask for one (snapshot: true).",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, writable=True),
    help="Write the report to this file instead of standard output.",
)
@click.option("-v", "--verbose", is_flag=True, help="List passing tests too (text format).")
def run_tests(
    paths: tuple[str, ...],
    fmt: str,
    keywords: tuple[str, ...],
    update: bool,
    output: str | None,
    verbose: bool,
) -> None:
    """Run the rule tests in PATHS (default: the current folder).

    A folder contributes every *.test.yaml (or *.test.yml) below it; a file is
    taken whatever its name. Each test gives a starting state, events and
    clock ticks, and what to expect; it runs in memory with a simulated clock,
    never touching a store. A failure shows the expected and the actual value
    and the rules (file:line) and events behind the actual value.

    Exit status: 0 all passed, 1 a test failed (or its rules have errors),
    2 a test file is broken (the message says file:line), a path does not
    exist or the folder of -o does not, 4 the -o file cannot be written.

    \b
    Examples:
      mrules test examples/getcloudy/tests
      mrules test -k mql --format junit -o junit.xml
    """
    from mrules.atomic import atomic_write
    from mrules.cli.common import EXIT_STORE, fail, output_folder_or_exit
    from mrules.testing import render_json, render_junit, render_text, run_paths

    if output:  # refused before any test runs (mrules creates no folders)
        output_folder_or_exit("-o", output)
    report = run_paths(list(paths), keywords, update=update)
    if fmt == "json":
        data = render_json(report)
    elif fmt == "junit":
        data = render_junit(report)
    else:
        data = (render_text(report, verbose=verbose) + "\n").encode()
    if output:
        try:  # whole or not at all: a kill or a full disk never leaves half a report
            atomic_write(Path(output), data)
        except OSError as e:
            from mrules.loader import printable_path

            fail(f"cannot write {printable_path(output)}: {e.strerror or e}", EXIT_STORE)
        if fmt != "text":
            click.echo(render_text(report, verbose=verbose), err=True)
    else:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
    sys.exit(report.exit_code)


COMMANDS = (run_tests,)
