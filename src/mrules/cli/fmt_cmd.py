"""`mrules fmt`: rewrite rule files in the canonical layout, or check that they are."""

from __future__ import annotations

import difflib
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import click

from mrules.atomic import atomic_write
from mrules.checker import suppression_anchors, suppressions_kept
from mrules.cli.common import (
    EXIT_DIAGNOSTICS,
    EXIT_OK,
    EXIT_STORE,
    PATH,
    fail,
    reads_only,
    rule_file_or_exit,
    stdin_alone_or_exit,
    stdout_or_exit,
)
from mrules.diagnostics import Diagnostic, plural, render_text, sort_diagnostics
from mrules.loader import (
    LoadError,
    RefusedFile,
    decode,
    read_rule_file,
    rule_files,
    shown_path,
)
from mrules.parser import collector_paused
from mrules.printer import FormatError, FormatterBug, format_text
from mrules.source import Source

__all__ = ["COMMANDS", "fmt", "unified_diff"]

STDIN = "-"
STDIN_NAME = "<stdin>"


@dataclass
class _Input:
    shown: str
    path: Path | None  # None for standard input
    data: bytes
    text: str
    refused: Diagnostic | None = None  # MR024: a file never read (a link out of the root...)

    @property
    def raw(self) -> str:
        """The text as it is in the file, with its BOM and `\r\n` or `\r` line ends (what
        --diff compares: `text` has neither, so a file that only needs them gone had an
        empty diff)."""
        return self.data.decode("utf-8")


_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+\Z")
"""A line with its end, as the loader splits them; the last may have none."""


def unified_diff(before: str, after: str, shown: str) -> str:
    """A unified diff of one file, marking a missing final newline as git does."""

    def lines(text: str) -> list[str]:
        # Lines end where the loader ends them (`\n`, `\r\n`, a lone `\r`), each with
        # its own end, so an end fmt changes shows as a change; a lone `\r` gets a `\n`
        # to end the diff's line.
        out = [line + "\n" if line.endswith("\r") else line for line in _LINE.findall(text)]
        if out and not out[-1].endswith("\n"):
            out[-1] += "\n\\ No newline at end of file\n"
        return out

    return "".join(difflib.unified_diff(lines(before), lines(after), shown, f"{shown} (formatted)"))


def _format_one(item: _Input) -> str:
    """The canonical text of one file, checked to keep its meaning and suppressions."""
    anchors = suppression_anchors(item.text, item.shown)
    formatted = format_text(item.text, item.shown, verify=True, anchors=anchors)
    if anchors and not suppressions_kept(item.text, formatted, item.shown):
        raise FormatterBug(
            "a `# mrules: ignore` comment silences diagnostics that formatting puts on"
            " different lines, and a comment covers one line; spread that block over"
            " lines by hand with a comment on each, or use `# mrules: ignore-file[CODE]`"
        )
    return formatted


def _read_inputs(paths: tuple[str, ...], stdin_name: str = STDIN_NAME) -> Iterator[_Input]:
    """Every file to format, read up front so that nothing is written if one is unreadable.

    A file refused unread (MR024: a link out of the rule root, a loop, a link to
    nothing, a FIFO) is no reason to stop: it is yielded with its diagnostic, which
    `fmt` reports as `lint` does (exit 1), and the other files are formatted.
    """
    if paths == (STDIN,):
        data = sys.stdin.buffer.read()
        yield _Input(stdin_name, None, data, decode(data, stdin_name))
        return
    stdin_alone_or_exit(paths)
    for given in paths:  # a store or a binary file given by mistake: named as `lint` names it
        rule_file_or_exit(given, argument="PATHS")
    seen: set[Path] = set()
    for path, root in rule_files(paths):
        try:
            key, data = read_rule_file(path, root)
        except RefusedFile as e:
            yield _Input(shown_path(path.as_posix()), path, b"", "", e.diagnostic)
            continue
        if key in seen:
            continue
        seen.add(key)
        shown = shown_path(path.as_posix())
        yield _Input(shown, path, data, decode(data, shown))


@click.command()
@click.argument("paths", nargs=-1, type=PATH)
@click.option(
    "--check",
    is_flag=True,
    help="Write nothing; exit 1 if any file is not in the canonical layout.",
)
@click.option(
    "--diff",
    "show_diff",
    is_flag=True,
    help="Write nothing; print what would change as a unified diff.",
)
@click.option(
    "--stdin-filename",
    metavar="PATH",
    help="With `-`: the name to report standard input as (in errors and diffs) [default: <stdin>].",
)
def fmt(paths: tuple[str, ...], check: bool, show_diff: bool, stdin_filename: str | None) -> None:
    """Rewrite rule files in the one canonical layout.

    PATHS are rule files (*.mr) or folders (every *.mr below them, sorted);
    includes are not followed, so only the files named are formatted. Files
    are rewritten in place when they change, each reported on stderr. `-`
    reads standard input and writes the result to standard output.

    Formatting keeps the meaning and every comment: two spaces a level, one
    statement a line, no `;`, short criteria groups on one line. A file with
    syntax errors is left untouched and its errors are printed.

    A file is rewritten atomically (a temporary file in its folder, synced,
    then renamed over it, keeping its permissions): a kill or a full disk
    leaves the old file or the new one, never a damaged one.

    Exit status (docs/exit-codes.md): 0 done (or nothing to do), 1 syntax
    errors, a rule file refused unread (MR024: a link out of the folder, a
    FIFO; the other files are still formatted), a file whose `# mrules:
    ignore` comment could not keep silencing what it silences, or, with
    --check, files that would change; 2 unreadable input, 4 a file could not
    be written (it is left as it was) or standard output is closed (`-`,
    --diff); 130 interrupted (each file is rewritten whole or not at all).

    \b
    Example:
      mrules fmt examples/getcloudy/rules
      mrules fmt --check --diff rules/
      cat draft.mr | mrules fmt - > tidy.mr
      mrules fmt - --stdin-filename rules/draft.mr < draft.mr   # from an editor
    """
    if check or show_diff:
        reads_only()
    if not paths:
        fail("give at least one rule file or folder, or - for standard input")
    if stdin_filename is not None and paths != (STDIN,):
        fail("--stdin-filename goes with '-' (standard input)")
    if STDIN in paths and sys.stdin is None:  # `<&-`: Python has no standard input at all
        fail("- reads a rule file from standard input, which is closed: give the file")
    if STDIN in paths or show_diff:  # what it prints is the result: `>&-` is exit 4 first
        stdout_or_exit()
    stdin_name = shown_path(stdin_filename) if stdin_filename else STDIN_NAME
    try:
        inputs = list(_read_inputs(paths, stdin_name))
    except LoadError as e:
        fail(str(e))
        return
    write = not check and not show_diff
    changed: list[_Input] = []
    unchanged = 0
    broken = 0
    refused = 0
    for item in inputs:
        if item.refused is not None:
            click.echo(render_text([item.refused], {}), err=True)
            refused += 1
            continue
        try:
            # The trees, tokens and lines of a file are acyclic: a collection finds nothing
            # in them, yet each one rescanned all of them, which made a large file's
            # formatting grow faster than its size (as `mrules lint` found).
            with collector_paused():
                formatted = _format_one(item)
        except FormatError as e:
            sources = {item.shown: Source(item.text, item.shown)}
            click.echo(render_text(sort_diagnostics(e.diagnostics), sources), err=True)
            broken += 1
            continue
        except (FormatterBug, ValueError) as e:
            click.echo(
                f"mrules: error: {item.shown}: cannot format: {e}; file left unchanged", err=True
            )
            broken += 1
            continue
        if item.path is None:
            if show_diff:
                click.echo(unified_diff(item.raw, formatted, item.shown), nl=False)
            elif not check:
                sys.stdout.buffer.write(formatted.encode("utf-8"))
                sys.stdout.flush()
            if formatted.encode("utf-8") != item.data:
                changed.append(item)
            continue
        if formatted.encode("utf-8") == item.data:
            unchanged += 1
            continue
        changed.append(item)
        if show_diff:
            click.echo(unified_diff(item.raw, formatted, item.shown), nl=False)
        if write:
            try:
                atomic_write(item.path, formatted.encode("utf-8"))
            except OSError as e:
                fail(
                    f"{item.shown}: cannot write: {e.strerror or e}; the file was left as it was",
                    EXIT_STORE,
                )
            click.echo(f"reformatted {item.shown}", err=True)
        elif check:
            click.echo(f"would reformat {item.shown}", err=True)
    if inputs[0].path is not None:
        click.echo(_summary(len(changed), unchanged, broken, write, refused), err=True)
    failed = broken > 0 or refused > 0 or (check and bool(changed))
    sys.exit(EXIT_DIAGNOSTICS if failed else EXIT_OK)


def _summary(changed: int, unchanged: int, broken: int, write: bool, refused: int = 0) -> str:
    """`1 file reformatted, 4 files left unchanged, 1 file with errors, 1 file refused`.

    >>> _summary(1, 1_200, 0, write=True)
    '1 file reformatted, 1,200 files left unchanged'
    """
    verb = "reformatted" if write else "would be reformatted"
    parts = [f"{plural(changed, 'file')} {verb}"] if changed else []
    if unchanged:
        rest = "left unchanged" if write else "already formatted"
        parts.append(f"{plural(unchanged, 'file')} {rest}")
    if broken:
        parts.append(f"{plural(broken, 'file')} with errors (left unchanged)")
    if refused:
        parts.append(f"{plural(refused, 'file')} refused (not read, see MR024)")
    return ", ".join(parts) if parts else "no files"


COMMANDS = (fmt,)
