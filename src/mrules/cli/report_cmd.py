"""`mrules report`: the funnel, campaigns, rules and scores of a store (docs/reports.md)."""

from __future__ import annotations

import errno
import os
import sys
from collections.abc import Callable
from typing import Any

import click
import orjson

from mrules.cli.common import (
    EXIT_DIAGNOSTICS,
    EXIT_USAGE,
    REPORT_INTERRUPTED,
    fail,
    failures,
    quiet_option,
    rule_file_or_exit,
    stdout_or_exit,
    store_there_or_exit,
    work_bar,
)
from mrules.cli.report_html_cmd import html as html_page
from mrules.cli.report_options import rules_option, sync_option, table_options
from mrules.storeapi import is_postgres_url

__all__ = ["COMMANDS", "report"]

NO_OPPORTUNITY_NOTE = (
    "note: the sync file holds no opportunity, so no SQL, won or opportunity figures: is"
    " `opportunity` in the sync block's `objects` (their default is `lead, contact`)?"
)


@click.group()
def report() -> None:
    """Reports over a store and its sync file: funnel, campaigns, rules, scores, html.

    Each prints a table by default, or `--format json` / `--format csv`; `html`
    writes them all as charts on one page (docs/reports-html.md). The
    SQL and won stages, opportunities and campaign influence come from the
    sync file (`mrules sync run` writes it beside the store).

    \b
    Example:
      mrules report funnel --store getcloudy.db
    """


def _emit(data: dict[str, Any], fmt: str, store_path: str) -> None:
    _write(data, fmt, store_path)
    # What the report left out or could not use (a campaign's negative cost), in every
    # format: on standard error, so a JSON or CSV output stays as it is.
    for note in data.get("notes") or ():
        click.echo(f"note: {note}", err=True)


def _write(data: dict[str, Any], fmt: str, store_path: str) -> None:
    from mrules.reports.render import csv_text, fit, tables

    if fmt == "json":
        out = stdout_or_exit()
        out.write(orjson.dumps(data, option=orjson.OPT_INDENT_2) + b"\n")
        out.flush()
        return
    if fmt == "csv":
        sys.stdout.write(csv_text(data))
        sys.stdout.flush()
        return
    from rich.console import Console

    class _Console(Console):
        def on_broken_pipe(self) -> None:
            """Rich's own answer to a reader gone (`| head -1`) is a silent exit 1: raise
            the error instead, for `failures()` to make it exit 4 with its message."""
            raise BrokenPipeError(errno.EPIPE, os.strerror(errno.EPIPE))

    from rich.cells import cell_len
    from rich.text import Text

    # A pipe or a file gets the whole width a table needs (rich would wrap at 80).
    terminal = sys.stdout.isatty()
    console = _Console(soft_wrap=False, width=None if terminal else 100_000)
    for t in tables(data):
        # On a narrow terminal, names wrap and figures stay whole (`fit`); a table whose
        # figures need more than the terminal's width is printed at the width it needs.
        need, width = fit(t, console.width), console.width
        # A title longer than its table stays on one line where the terminal (a file, a
        # pipe: any) has room: rich wrapped it at the table's width ("funnel (cohort
        # reading, 2026-10-01T00:00:00Z to" and "2026-12-01T00:00:00Z)" in a file).
        if isinstance(t.title, str) and need < cell_len(t.title) <= width:
            t.title = Text(t.title, no_wrap=True, overflow="ignore")
        console.width = max(need, width)
        try:
            console.print(t)
        finally:
            console.width = width
    _nothing_to_report(data, store_path)  # under empty tables: why they are empty
    if data["report"] not in ("funnel", "campaigns", "rules"):
        return
    if data.get("sync") is False:
        click.echo(
            "note: no sync file, so no SQL, won or opportunity figures: run `mrules sync run`"
            " (or give --sync-db)",
            err=True,
        )
        return
    if data.get("crm_opportunities") == 0:
        click.echo(NO_OPPORTUNITY_NOTE, err=True)
    if data["report"] == "campaigns" and data.get("crm_campaigns") == 0:
        click.echo(
            "note: the sync file holds no CRM campaign, so no CRM costs or members, nothing"
            " credited under first_touch, last_touch and even, and primary campaigns named by"
            " id: is `campaign` in the sync block's `objects`?",
            err=True,
        )


def _nothing_to_report(data: dict[str, Any], store_path: str) -> None:
    """Under empty tables, the one line that says why: no prospect in the store yet, or none
    in the range (JSON and CSV stay as they are: an empty list is a program's answer)."""
    from mrules.reports.render import is_empty, nothing_to_report
    from mrules.store import Store

    if not is_empty(data):
        return
    store = Store.open(store_path, readonly=True)
    try:
        stored = store.has_prospects()
    finally:
        store.close()
    line = nothing_to_report(data, stored=stored)
    if line is not None:
        click.echo(line)


def _run(
    build: Callable[[], dict[str, Any]], store_path: str, fmt: str, rules: tuple[str, ...] = ()
) -> None:
    from mrules.reports import ReportError, ReportRulesError

    for path in rules:  # a store or an empty file given as --rules: named as `lint` names it
        rule_file_or_exit(path, argument="--rules")

    if is_postgres_url(store_path):
        fail("reports read a SQLite store; export the PostgreSQL store's prospects first")
    if store_path == ":memory:":
        fail("--store :memory: holds nothing to read: an in-memory store lives inside one run")
    store_there_or_exit(store_path)  # `report html`'s hint too: run `mrules run` first
    stdout_or_exit()  # a closed standard output (`>&-`) is exit 4 before any work, not exit 70
    # Ctrl-C: not the writing commands' "what was committed is kept ... resumes".
    with failures(interrupted=REPORT_INTERRUPTED):
        try:
            with work_bar("reading the store for the report"):
                data = build()
        except ReportError as e:
            fail(str(e), EXIT_DIAGNOSTICS if isinstance(e, ReportRulesError) else EXIT_USAGE)
        _emit(data, fmt, store_path)


@report.command("funnel")
@table_options
@quiet_option
@sync_option
@click.option(
    "--by",
    type=click.Choice(["week", "month", "quarter"]),
    help="Also count each period [default: the totals only].",
)
@click.option(
    "--reading",
    type=click.Choice(["cohort", "stage"]),
    default="cohort",
    show_default=True,
    help="cohort: the prospects created in the range and how far they went; stage: the"
    " entries into each stage that happened in the range.",
)
def funnel_cmd(
    store_path: str,
    since: str | None,
    until: str | None,
    fmt: str,
    sync_db: str | None,
    by: str | None,
    reading: str,
) -> None:
    """The lifecycle funnel: visitors, prospects, MQLs, SQLs, won; conversion and velocity.

    The second table answers marketing's question: of the MQLs, how many
    sales accepted (SQL) and how many became customers (won).

    \b
    Example:
      mrules report funnel --store getcloudy.db --by month

    Exit status (docs/exit-codes.md): 0 done; 2 bad options, no such store or
    sync file; 4 the store or sync file cannot be read, or standard output is
    closed; 130 interrupted.
    """
    from mrules.reports import funnel

    _run(
        lambda: funnel(
            store_path, sync_db=sync_db, since=since, until=until, by=by, reading=reading
        ),
        store_path,
        fmt,
    )


@report.command("campaigns")
@table_options
@quiet_option
@sync_option
@rules_option("campaign costs declared in the rules")
@click.option(
    "--model",
    type=click.Choice(["source", "primary", "first_touch", "last_touch", "even"]),
    default="even",
    show_default=True,
    help="The attribution model behind opportunities, won, won amount and ROI (the influence"
    " table shows all five).",
)
def campaigns_cmd(
    store_path: str,
    since: str | None,
    until: str | None,
    fmt: str,
    sync_db: str | None,
    rules: tuple[str, ...],
    model: str,
) -> None:
    """Campaign cost, prospects, MQLs, opportunities, won amount, ROI and influence.

    \b
    Example:
      mrules report campaigns --store getcloudy.db --model first_touch

    Exit status (docs/exit-codes.md): 0 done; 1 the --rules files have errors;
    2 bad options, no such store or sync file; 4 the store or sync file cannot
    be read, or standard output is closed; 130 interrupted.
    """
    from mrules.reports import campaigns

    _run(
        lambda: campaigns(
            store_path,
            sync_db=sync_db,
            rules=list(rules) or None,
            since=since,
            until=until,
            model=model,
        ),
        store_path,
        fmt,
        rules,
    )


@report.command("rules")
@table_options
@quiet_option
@sync_option
@rules_option("names the rules that never matched")
def rules_cmd(
    store_path: str,
    since: str | None,
    until: str | None,
    fmt: str,
    sync_db: str | None,
    rules: tuple[str, ...],
) -> None:
    """Per automation rule, page action and completion action: what it touched, what followed.

    \b
    Example:
      mrules report rules --store getcloudy.db --rules examples/getcloudy/rules

    Exit status (docs/exit-codes.md): 0 done; 1 the --rules files have errors;
    2 bad options, no such store or sync file; 4 the store or sync file cannot
    be read, or standard output is closed; 130 interrupted.
    """
    from mrules.reports import rules_report

    _run(
        lambda: rules_report(
            store_path, rules=list(rules) or None, sync_db=sync_db, since=since, until=until
        ),
        store_path,
        fmt,
        rules,
    )


@report.command("scores")
@table_options
@quiet_option
def scores_cmd(store_path: str, since: str | None, until: str | None, fmt: str) -> None:
    """Score histogram, grade distribution, and the score each MQL had when assigned.

    \b
    Example:
      mrules report scores --store getcloudy.db

    Exit status (docs/exit-codes.md): 0 done; 2 bad options, no such store; 4
    the store cannot be read, or standard output is closed; 130 interrupted.
    """
    from mrules.reports import scores

    _run(lambda: scores(store_path, since=since, until=until), store_path, fmt)


# The HTML page: `mrules report html OUT` (its own module, cli/report_html_cmd.py).
report.add_command(html_page)

COMMANDS = (report,)
