"""`mrules parse`: print the AST of a rule set."""

from __future__ import annotations

import json
import sys

import click

from mrules.ast import dump
from mrules.cli.common import (
    EXIT_DIAGNOSTICS,
    PATH,
    fail,
    load_or_exit,
    reads_only,
    stdin_alone_or_exit,
    stdout_or_exit,
)
from mrules.diagnostics import render_text, sort_diagnostics
from mrules.loader import LoadError, decode, load_text

__all__ = ["parse"]

STDIN = "-"
STDIN_NAME = "<stdin>"


@click.command()
@click.argument("paths", nargs=-1, type=PATH)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["json", "summary"]),
    default="json",
    show_default=True,
    help="json: the whole AST; summary: one line a top-level item.",
)
@click.option("--no-spans", is_flag=True, help="Leave source offsets out of the JSON.")
def parse(paths: tuple[str, ...], fmt: str, no_spans: bool) -> None:
    """Parse rule files and print their AST.

    PATHS are rule files (*.mr) or folders of them; includes are followed.
    `-` reads one rule file from standard input, as `mrules lint -` does.
    Syntax errors are printed like `mrules lint` prints them, with exit status 1.

    \b
    Example:
      mrules parse examples/getcloudy/rules --format json --no-spans
      mrules parse - --format summary < draft.mr

    Exit status (docs/exit-codes.md): 0 done; 1 a file has syntax errors; 2 a
    missing or unreadable path; 4 standard output is closed.
    """
    reads_only()
    stdin = STDIN in paths
    stdin_alone_or_exit(paths)
    if stdin and sys.stdin is None:  # `<&-`: Python has no standard input at all
        fail("- reads a rule file from standard input, which is closed: give the file")
    stdout_or_exit()  # closed (`>&-`): exit 4, not an AST printed nowhere
    if stdin:
        try:
            text = decode(sys.stdin.buffer.read(), STDIN_NAME)
        except LoadError as e:
            fail(str(e))
        result = load_text(text, STDIN_NAME)
    else:
        result = load_or_exit(paths, argument="PATHS")
    errors = [d for d in result.diagnostics if d.is_error]
    if errors:
        click.echo(render_text(sort_diagnostics(errors), result.sources), err=True)
        raise SystemExit(EXIT_DIAGNOSTICS)
    if fmt == "json":
        click.echo(
            json.dumps(dump(result.program, spans=not no_spans), indent=2, ensure_ascii=False)
        )
    else:
        for file in result.program.files:
            for item in file.items:
                src = result.sources[file.path]
                line, col = src.position(item.span.start)
                name = getattr(item, "name", None)
                label = f" {name.text!r}" if name is not None else ""
                click.echo(f"{file.path}:{line}:{col}: {item.kind}{label}")


COMMANDS = (parse,)
