"""`mrules parse`: print the AST of a rule set."""

from __future__ import annotations

import json

import click

from mrules.ast import dump
from mrules.cli.common import EXIT_DIAGNOSTICS, PATH, load_or_exit, stdout_or_exit
from mrules.diagnostics import render_text, sort_diagnostics

__all__ = ["parse"]


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
    Syntax errors are printed like `mrules lint` prints them, with exit status 1.

    \b
    Example:
      mrules parse examples/getcloudy/rules --format json --no-spans
    """
    stdout_or_exit()  # closed (`>&-`): exit 4, not an AST printed nowhere
    result = load_or_exit(paths)
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
