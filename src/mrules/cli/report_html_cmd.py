"""`mrules report html OUT`: the reports as one self-contained HTML page (docs/reports-html.md)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click
import orjson

from mrules.cli.common import (
    EXIT_DIAGNOSTICS,
    EXIT_USAGE,
    REPORT_INTERRUPTED,
    SQLITE_HEADER,
    NonEmptyPath,
    email_or_exit,
    fail,
    failures,
    file_name_or_exit,
    quiet,
    quiet_option,
    refuse_output_over_inputs,
    rule_file_or_exit,
    stdout_or_exit,
    store_there_or_exit,
    work_bar,
)
from mrules.cli.report_options import rules_option, store_and_range, sync_option
from mrules.diagnostics import printable
from mrules.events import prospect_key
from mrules.loader import shown_path
from mrules.storeapi import is_postgres_url

__all__ = ["html"]


def _read_diff(path: str) -> dict[str, Any]:
    """A `mrules replay --diff --format json` file (`-`: standard input, as a pipe from
    `replay` gives it), or exit 2 saying what is wrong with it."""
    shown = "<stdin>" if path == "-" else shown_path(path)
    try:
        if path == "-":
            if sys.stdin is None:  # `<&-`: Python has none
                fail("--replay-diff -: standard input is closed; give the file", EXIT_USAGE)
            raw = sys.stdin.buffer.read()
        else:
            raw = Path(path).read_bytes()
        data = orjson.loads(raw)
    except OSError as e:
        fail(f"cannot read {shown}: {e.strerror or e}", EXIT_USAGE)
    except orjson.JSONDecodeError as e:
        if raw.startswith(SQLITE_HEADER):  # a store given where the diff goes
            fail(
                f"--replay-diff {shown} is an SQLite database (a store?), not the JSON of"
                " `mrules replay --diff ... --format json`"
            )
        fail(f"{shown}: not JSON ({e}); write it with `mrules replay --diff ... --format json`")
    from mrules.reports.html import replay_diff_problem

    # The whole shape the page reads, not only the top keys: a wrong one below crashed it.
    problem = replay_diff_problem(data)
    if problem is not None:
        fail(
            f"{shown}: not the JSON of `mrules replay --diff ... --format json` ({problem})",
            EXIT_USAGE,
        )
    return data


@click.command("html")
@quiet_option
@click.argument("out", type=NonEmptyPath(dir_okay=False, allow_dash=True))
@store_and_range
@sync_option
@rules_option()
@click.option(
    "--by",
    type=click.Choice(["week", "month", "quarter"]),
    default="month",
    show_default=True,
    help="The periods of the conversion-over-time chart.",
)
@click.option(
    "--reading",
    type=click.Choice(["cohort", "stage"]),
    default="cohort",
    show_default=True,
    help="Funnel by prospect creation date (cohort) or by the date each stage was entered.",
)
@click.option(
    "--timeline",
    "timeline_email",
    metavar="EMAIL",
    help="The prospect whose score over time the page draws [default: one that won, else the"
    " first one].",
)
@click.option(
    "--replay-diff",
    "replay_diff",
    type=NonEmptyPath(dir_okay=False, allow_dash=True),
    metavar="DIFF.json",
    help="Add a section for a rule change: the output of `mrules replay --diff ... --format json`"
    " (- for standard input) [default: no such section].",
)
@click.option("--title", default="mrules report", show_default=True, help="The page's title.")
def html(
    out: str,
    store_path: str,
    sync_db: str | None,
    rules: tuple[str, ...],
    since: str | None,
    until: str | None,
    by: str,
    reading: str,
    timeline_email: str | None,
    replay_diff: str | None,
    title: str,
) -> None:
    """Write OUT (`-`: standard output): one HTML page with the reports as charts, that
    opens with no network.

    The funnel and the three numbers of the MQL handoff (MQLs, accepted
    by sales, customers), velocity, conversion over time, campaign ROI and influence,
    rule effectiveness, score and grade distributions, score at MQL, one
    prospect's score over time and, with --replay-diff, what a rule change
    does. Everything (data, charts, the chart library) is inside the file.

    Exit status (docs/exit-codes.md): 0 written; 1 the --rules files have
    errors; 2 bad options, no such store or prospect, a bad --replay-diff
    file; 4 the store or sync file cannot be read, OUT cannot be written, or
    standard output (OUT -) is closed; 130 interrupted (OUT is left as it
    was).

    \b
    Example:
      mrules report html report.html --store getcloudy.db --rules examples/getcloudy/rules
    """
    if sys.flags.optimize >= 2:  # altair builds its chart classes from their docstrings
        fail(
            "report html needs Python's docstrings, which `python -OO` (PYTHONOPTIMIZE=2)"
            " removes: run it without"
        )
    # Ctrl-C: a report commits nothing, and a file OUT is replaced whole or not at all.
    interrupted = REPORT_INTERRUPTED
    if out.strip() and out != "-":
        interrupted = (
            f"interrupted; a report changes no store, and {shown_path(out)} is never left"
            " half-written: run the same command again"
        )
    with failures(interrupted=interrupted):
        from mrules.atomic import OutputError
        from mrules.cli.run_cmd import open_store
        from mrules.crm.emulator import default_crm_path
        from mrules.reports import (
            ReportError,
            ReportRulesError,
            campaigns,
            funnel,
            rules_report,
            scores,
        )
        from mrules.reports import html as page
        from mrules.sync.db import default_sync_path

        if is_postgres_url(store_path):
            fail("reports read a SQLite store; export the PostgreSQL store's prospects first")
        if store_path == ":memory:":
            fail("--store :memory: holds nothing to read: an in-memory store lives inside one run")
        store_there_or_exit(store_path)  # a folder or a device: the store says what it is
        if timeline_email is not None:
            timeline_email = email_or_exit("--timeline", timeline_email)
        if not out.strip():  # Path("") is the folder "."
            fail("OUT needs a file name (or - for standard output)", EXIT_USAGE)
        target = Path(out)
        file_name_or_exit("OUT", out)
        if out != "-" and not target.parent.is_dir():
            fail(
                f"cannot write {shown_path(out)}: no folder {shown_path(str(target.parent))}",
                EXIT_USAGE,
            )
        sync_path: str | Path | None = sync_db
        if sync_path is None and default_sync_path(store_path).is_file():
            sync_path = default_sync_path(store_path)
        inputs: list[tuple[str, str | Path]] = [
            (f"the store {store_path}", store_path + suffix)
            for suffix in ("", "-wal", "-shm", ".lock")
        ]
        sync_file = sync_path or default_sync_path(store_path)
        crm_file = default_crm_path(store_path)
        for suffix in ("", "-wal", "-shm"):  # SQLite's files beside them too
            inputs.append((f"the sync file {sync_file}", f"{sync_file}{suffix}"))
            inputs.append((f"the CRM file {crm_file}", f"{crm_file}{suffix}"))
        if replay_diff is not None and replay_diff != "-":
            inputs.append((f"the --replay-diff file {replay_diff}", replay_diff))
        inputs += [(f"a rule file of --rules {r}", r) for r in rules]
        refuse_output_over_inputs("OUT", out, inputs)
        if out == "-":  # a closed standard output (`>&-`): exit 4 before any work, not exit 70
            stdout_or_exit()
        # After the check above: a diff file given as OUT is named as such, not as bad JSON.
        diff = _read_diff(replay_diff) if replay_diff is not None else None
        for path in rules:  # a store or an empty file given as --rules: named as `lint` does
            rule_file_or_exit(path, argument="--rules")
        rule_paths: Any = list(rules) or None
        # On a terminal, the part being read or made (each can take seconds on a large store).
        with work_bar("report html: {task.description}", total=6) as step:
            step(0, "funnel")
            try:
                # sync_db, not sync_path: the file beside the store is found by the reports
                # themselves, which read one a first sync killed at once left (no table
                # yet) as no sync, as `mrules report funnel` does; given, it is refused.
                data: dict[str, Any] = {
                    "funnel": funnel(
                        store_path,
                        sync_db=sync_db,
                        since=since,
                        until=until,
                        by=by,
                        reading=reading,
                    )
                }
                step(1, "campaigns")
                data["campaigns"] = campaigns(
                    store_path, sync_db=sync_db, rules=rule_paths, since=since, until=until
                )
                step(2, "rules")
                data["rules"] = rules_report(
                    store_path, rules=rule_paths, sync_db=sync_db, since=since, until=until
                )
                step(3, "scores")
                data["scores"] = scores(store_path, since=since, until=until)
            except ReportError as e:
                fail(str(e), EXIT_DIAGNOSTICS if isinstance(e, ReportRulesError) else EXIT_USAGE)
            step(4, "timeline")
            store = open_store(store_path, readonly=True)
            try:
                with store.snapshot():
                    data["stored"] = store.has_prospects()  # an empty page says why
                    email = prospect_key(timeline_email) if timeline_email else None
                    if email is None:
                        email = page.default_prospect(store, sync_path)
                    t = (
                        page.prospect_timeline(store, email, sync_path, given=sync_db is not None)
                        if email
                        else None
                    )
                    if timeline_email and t is None:
                        shown = printable(timeline_email)
                        fail(f"no prospect '{shown}' in {shown_path(store_path)}", EXIT_USAGE)
            finally:
                store.close()
            data.update(timeline=t, replay_diff=diff, title=title)
            step(5, "page")
            text = page.page(data)
        size = len(text.encode()) / 1e6
        if out == "-":  # standard output, as every command's `-` (it wrote a file named -)
            stdout = stdout_or_exit()
            stdout.write(text.encode())
            stdout.flush()
            if not quiet():
                click.echo(f"wrote the page to standard output ({size:.1f} MB)", err=True)
            return
        try:
            page.write(target, text)
        except OSError as e:
            raise OutputError(f"cannot write {shown_path(out)}: {e.strerror or e}") from e
        if not quiet():
            click.echo(f"wrote {shown_path(out)} ({size:.1f} MB): open it in a browser", err=True)
        if sys.stdout is not None:  # closed (`>&-`): the page is written, nothing else is due
            sys.stdout.flush()
