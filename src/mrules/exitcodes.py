"""The exit codes every `mrules` command shares, in one table.

Scripts and CI branch on these numbers, so they never change meaning. The
table is printed in the README and in docs/exit-codes.md; a test keeps the
three in step.
"""

from __future__ import annotations

from enum import IntEnum

__all__ = ["ExitCode"]


class ExitCode(IntEnum):
    """What a command's exit status means."""

    OK = 0
    """Success: nothing to report, or findings below the failure level."""
    DIAGNOSTICS = 1
    """The rule set has errors (or warnings, with `--strict`), or `fmt --check` found work."""
    USAGE = 2
    """Bad arguments or unreadable input: a missing path or folder, a file that is not UTF-8."""
    REJECTS = 3
    """`mrules run` finished, but some event lines were rejected (see the rejects file);
    `crm load` / `crm apply-changes` refused some rows or changes and did the others."""
    STORE = 4
    """The store, the CRM or sync file, or an output file failed: disk full, read-only,
    damaged or not an mrules store."""
    BUSY = 5
    """Another run holds the store (and `--wait` was not given, or its timeout passed)."""
    INTERRUPTED = 130
    """Interrupted (Ctrl-C, or SIGTERM); what was committed is kept and the command resumes."""
