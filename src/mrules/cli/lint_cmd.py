"""`mrules lint`: parse and check a rule set, print every problem, exit non-zero on errors."""

from __future__ import annotations

import click

from mrules.checker import CODES, check_loaded
from mrules.cli.common import EXIT_DIAGNOSTICS, EXIT_OK, load_or_exit
from mrules.diagnostics import (
    Diagnostic,
    render_github,
    render_json,
    render_sarif,
    render_text,
)
from mrules.parser import collector_paused

__all__ = ["COMMANDS", "lint", "summary"]


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def summary(diags: list[Diagnostic], files: int) -> str:
    """`2 errors, 1 warning in 7 files`, or `ok: 7 files, no problems`.

    >>> summary([], 1)
    'ok: 1 file, no problems'
    """
    errors = sum(d.is_error for d in diags)
    warnings = len(diags) - errors
    if not diags:
        return f"ok: {_plural(files, 'file')}, no problems"
    parts = [_plural(n, w) for n, w in ((errors, "error"), (warnings, "warning")) if n]
    return f"{', '.join(parts)} in {_plural(files, 'file')}"


@click.command()
@click.argument("paths", nargs=-1, type=click.Path())
@click.option("--format", "fmt", type=click.Choice(["text", "json", "github", "sarif"]),
              default="text", show_default=True,
              help="text: excerpts with carets; json: one array; github: workflow annotations; "
              "sarif: SARIF 2.1.0 for code scanning.")
@click.option("--strict", is_flag=True, help="Exit 1 on warnings too.")
def lint(paths: tuple[str, ...], fmt: str, strict: bool) -> None:
    """Check rule files for mistakes before they run.

    PATHS are rule files (*.mr) or folders of them; includes are followed.
    Reports syntax errors, unknown names (with a did-you-mean), type errors,
    criteria that can never hold, actions in the wrong place, Pardot limits,
    page-action URL clashes and CRM sync mapping errors. Every code is
    explained in docs/diagnostics.md. A summary goes to stderr.

    Exit status: 0 clean, 1 errors (or warnings with --strict), 2 unreadable
    input.

    \b
    Example:
      mrules lint examples/getcloudy/rules
      mrules lint rules/ --format sarif > mrules.sarif
    """
    with collector_paused():  # an acyclic tree: rescanning it made lint superlinear
        result = load_or_exit(paths)
        diags = check_loaded(result)
    if fmt == "text":
        if diags:
            click.echo(render_text(diags, result.sources))
    elif fmt == "json":
        click.echo(render_json(diags, result.sources))
    elif fmt == "github":
        if diags:
            click.echo(render_github(diags, result.sources))
    else:
        click.echo(render_sarif(diags, result.sources, CODES))
    click.echo(summary(diags, len(result.sources)), err=True)
    failed = any(d.is_error for d in diags) or (strict and bool(diags))
    raise SystemExit(EXIT_DIAGNOSTICS if failed else EXIT_OK)


COMMANDS = (lint,)
