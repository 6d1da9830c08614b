"""`mrules lint`: parse and check a rule set, print every problem, exit non-zero on errors."""

from __future__ import annotations

import difflib
import os
import sys
from pathlib import Path

import click

from mrules.checker import CODES, check_loaded
from mrules.cli.common import (
    EXIT_DIAGNOSTICS,
    EXIT_OK,
    PATH,
    NonEmptyPath,
    fail,
    load_or_exit,
    output_folder_or_exit,
    reads_only,
    refuse_output_over_inputs,
    stdin_alone_or_exit,
    stdout_or_exit,
)
from mrules.config import FORMATS, Config, ConfigError, find_config, load_config
from mrules.diagnostics import (
    Diagnostic,
    plural,
    render_github,
    render_json,
    render_sarif,
    render_text,
)
from mrules.loader import LoadError, decode, display_path, load_text, printable_path, shown_path
from mrules.parser import collector_paused

__all__ = ["COMMANDS", "lint", "summary"]

STDIN = "-"
STDOUT = "-"
STDIN_NAME = "<stdin>"


def summary(diags: list[Diagnostic], files: int, library: int = 0) -> str:
    """`2 errors, 1 warning in 7 files`, or `ok: 7 files, no problems`.

    `files` counts the rule files of the project (given, found in a folder given, or
    included, and those refused unread: MR024), as `mrules fmt` does; the bundled
    library files they include (`library`) are named apart:
    `ok: 6 files (and 2 library files they include), no problems`.

    >>> summary([], 1), summary([], 1_000)
    ('ok: 1 file, no problems', 'ok: 1,000 files, no problems')
    >>> summary([], 6, 2)
    'ok: 6 files (and 2 library files they include), no problems'
    >>> summary([], 1, 1)
    'ok: 1 file (and 1 library file it includes), no problems'
    """
    counted = plural(files, "file")
    if library:
        verb = "it includes" if files == 1 else "they include"
        counted += f" (and {plural(library, 'library file')} {verb})"
    errors = sum(d.is_error for d in diags)
    warnings = len(diags) - errors
    if not diags:
        return f"ok: {counted}, no problems"
    parts = [plural(n, w) for n, w in ((errors, "error"), (warnings, "warning")) if n]
    return f"{', '.join(parts)} in {counted}"


def _codes(text: str | None) -> list[str]:
    return [c.strip().upper() for c in (text or "").split(",") if c.strip()]


def _config(explicit: str | None, start: Path) -> Config:
    try:
        if explicit is not None:
            return load_config(Path(explicit))
        found = find_config(start)
        return load_config(found) if found is not None else Config()
    except ConfigError as e:
        fail(str(e))


def _explain(code: str) -> None:
    from mrules.explain_codes import code_doc

    text = code_doc(code)
    if text is None:
        # A code cut short (`MR1`) has its family as the answer: difflib's closest
        # spelling of it was an unrelated code (MR614).
        family = sorted(c for c in CODES if c.startswith(code.upper())) if code.strip() else []
        close = difflib.get_close_matches(code.upper(), list(CODES), n=1)
        if family:
            shown = ", ".join(family[:8]) + (", …" if len(family) > 8 else "")
            fail(f"no diagnostic code '{code}'; the codes that start so: {shown}")
        fail(
            f"no diagnostic code '{code}'"
            + (f"; did you mean {close[0]}?" if close else "; codes look like MR312")
        )
    click.echo(text, nl=False)
    raise SystemExit(EXIT_OK)


@click.command()
@click.argument("paths", nargs=-1, type=PATH)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    default=None,
    help="text: excerpts with carets; json: one array; github: workflow annotations; "
    "sarif: SARIF 2.1.0 for code scanning [default: the configuration's `format`, else text].",
)
@click.option(
    "--strict/--no-strict",
    default=None,
    help="Exit 1 on warnings too [default: the configuration's `strict`, else --no-strict].",
)
@click.option(
    "--select",
    metavar="CODES",
    help="Report only these codes or prefixes, comma-separated (MR1,MR312); "
    "errors are always reported [default: the configuration's `select`, else every code].",
)
@click.option(
    "--ignore",
    metavar="CODES",
    help="Never report these warning codes or prefixes, comma-separated (errors always are), "
    "besides the configuration's `ignore` [default: none].",
)
@click.option(
    "--config",
    "config_path",
    type=NonEmptyPath(dir_okay=False),
    help="Read this configuration file instead of looking for one [default: the first "
    "mrules.toml, or pyproject.toml with [tool.mrules], in the first path's folder or above].",
)
@click.option(
    "--stdin-filename",
    metavar="PATH",
    help="With `-`: the name to report standard input as; its folder is the "
    "rule root (for includes) and where the configuration is looked for "
    "[default: <stdin>, the configuration looked for from the current folder].",
)
@click.option(
    "--sarif-file",
    type=NonEmptyPath(dir_okay=False),
    help="Also write SARIF 2.1.0 to this file (whatever --format prints; `-` with"
    " --format sarif: standard output) [default: no file].",
)
@click.option(
    "--explain",
    metavar="CODE",
    help="Print what a code means, with an example and the fix, and exit.",
)
def lint(
    paths: tuple[str, ...],
    fmt: str | None,
    strict: bool | None,
    select: str | None,
    ignore: str | None,
    config_path: str | None,
    stdin_filename: str | None,
    sarif_file: str | None,
    explain: str | None,
) -> None:
    """Check rule files for mistakes before they run.

    PATHS are rule files (*.mr) or folders of them; includes are followed; `-`
    reads one file from standard input. With no PATHS, the `rules` of the
    configuration file are checked. Reports syntax errors (every broken item,
    not just the first), unknown names (with a did-you-mean), type errors,
    criteria that can never hold, actions in the wrong place, Pardot limits,
    page-action URL clashes and CRM sync mapping errors. `--explain MR312`
    prints what a code means; docs/diagnostics.md lists them all. A summary
    goes to stderr.

    Settings come from the nearest mrules.toml or [tool.mrules] in
    pyproject.toml (docs/configuration.md); options override them. A
    `# mrules: ignore[MR312]` comment silences a code on its line.

    Exit status (docs/exit-codes.md): 0 clean, 1 errors (or warnings with
    --strict), 2 unreadable input or configuration (or --sarif-file in a folder
    that does not exist), 4 the --sarif-file or standard output cannot be
    written (a full disk, a closed pipe), 130 interrupted.

    \b
    Example:
      mrules lint examples/getcloudy/rules
      mrules lint rules/ --format sarif > mrules.sarif
      mrules lint - --stdin-filename rules/draft.mr < draft.mr
    """
    reads_only()
    if explain is not None:
        _explain(explain)
    output_folder_or_exit("--sarif-file", sarif_file)
    stdin = STDIN in paths
    stdin_alone_or_exit(paths)
    if stdin_filename is not None and not stdin:
        fail("--stdin-filename goes with '-' (standard input)")
    if stdin and sys.stdin is None:  # `<&-`: Python has no standard input at all
        fail("- reads a rule file from standard input, which is closed: give the file")
    start = (
        Path(stdin_filename)
        if stdin_filename
        else Path(paths[0])
        if paths and not stdin
        else Path.cwd()
    )
    config = _config(config_path, start)
    try:
        config = config.with_codes(_codes(select), _codes(ignore))
    except ConfigError as e:
        fail(str(e))
    if not paths:
        if not config.rules:
            fail("give at least one rule file or folder (or set `rules` in mrules.toml)")
        paths = tuple(str(p) for p in config.rules)
    fmt = fmt or config.format
    if sarif_file == STDOUT:  # standard output, as every command's `-` (it wrote a file named -)
        if fmt != "sarif":
            fail(
                f"--sarif-file -: standard output takes the {fmt} report; give a file, or"
                " --format sarif for SARIF on standard output"
            )
        sarif_file = None  # --format sarif prints it there
    strict = config.strict if strict is None else strict
    with collector_paused():  # an acyclic tree: rescanning it made lint superlinear
        if stdin:
            shown = printable_path(display_path(stdin_filename)) if stdin_filename else STDIN_NAME
            root = Path(stdin_filename).parent if stdin_filename else None
            try:
                text = decode(sys.stdin.buffer.read(), shown)
            except LoadError as e:
                fail(str(e))
            result = load_text(text, shown, root=root)
        else:
            result = load_or_exit(paths, argument="PATHS")
        diags = [d for d in check_loaded(result) if config.reports(d)]
    if sarif_file is not None:  # `--sarif-file rules/x.mr` replaced a rule file with the report
        inputs: list[tuple[str, str | Path]] = [("a rule file it lints", n) for n in result.sources]
        if not stdin:  # a new *.mr file in a folder it lints would be a rule file next time
            inputs += [("in a rule folder it lints", p) for p in paths if Path(p).is_dir()]
        if config.path is not None:
            inputs.append(("the configuration file", config.path))
        refuse_output_over_inputs("--sarif-file", sarif_file, inputs)
    if diags or fmt in ("json", "sarif"):  # a report to print, on a closed output: exit 4
        stdout_or_exit()
    # In a workflow, files are named from the repository root (the workspace), where GitHub
    # reads annotations and code scanning's SARIF paths from, though lint ran in a sub-folder.
    workspace = os.environ.get("GITHUB_WORKSPACE") or None
    srcroot = workspace or "."  # SARIF's SRCROOT: the working folder, if not inside it
    if fmt == "text":
        if diags:
            click.echo(render_text(diags, result.sources))
    elif fmt == "json":
        click.echo(render_json(diags, result.sources))
    elif fmt == "github":
        if diags:
            click.echo(render_github(diags, result.sources, base=workspace, library=result.library))
    else:
        click.echo(render_sarif(diags, result.sources, CODES, library=result.library, base=srcroot))
    if sarif_file is not None:
        from mrules.atomic import atomic_write

        try:
            atomic_write(
                Path(sarif_file),
                (
                    render_sarif(diags, result.sources, CODES, library=result.library, base=srcroot)
                    + "\n"
                ).encode("utf-8"),
            )
        except OSError as e:
            fail(f"{shown_path(sarif_file)}: cannot write: {e.strerror or e}", 4)
    library = sum(path in result.library for path in result.sources)
    files = len(result.sources) - library + len(result.refused)  # a refused file is one too
    click.echo(summary(diags, files, library), err=True)
    failed = any(d.is_error for d in diags) or (strict and bool(diags))
    raise SystemExit(EXIT_DIAGNOSTICS if failed else EXIT_OK)


COMMANDS = (lint,)
