"""What every command shares: loading a rule set, printing diagnostics, exit codes."""

from __future__ import annotations

import sys
from collections.abc import Sequence

import click

from mrules.loader import LoadError, LoadResult, load

__all__ = ["EXIT_DIAGNOSTICS", "EXIT_OK", "EXIT_REJECTS", "EXIT_USAGE", "fail", "load_or_exit"]

EXIT_OK = 0
EXIT_DIAGNOSTICS = 1  # the rule set has errors (or warnings with --strict)
EXIT_USAGE = 2  # bad arguments, unreadable paths, not UTF-8, locked store
EXIT_REJECTS = 3  # `mrules run`: some event lines were rejected


def fail(message: str, code: int = EXIT_USAGE) -> None:
    """Print `mrules: error: message` on stderr and exit."""
    click.echo(f"mrules: error: {message}", err=True)
    sys.exit(code)


def load_or_exit(paths: Sequence[str]) -> LoadResult:
    """Load a rule set, or exit 2 with a clear message if it cannot be read."""
    if not paths:
        fail("give at least one rule file or folder")
    try:
        return load(paths)
    except LoadError as e:
        fail(str(e))
        raise AssertionError("unreachable") from e
