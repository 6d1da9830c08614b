"""The options the `mrules report` commands share (the tables and the HTML page)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from mrules.cli.common import PATH, READ_STORE_PATH, SYNC_PATH

__all__ = ["rules_option", "store_and_range", "sync_option", "table_options"]


def store_and_range(f: Callable[..., Any]) -> Callable[..., Any]:
    """`--store`, `--since`, `--until`."""
    f = click.option(
        "--until",
        metavar="DATE",
        help="Up to (not including) this ISO 8601 date or time (UTC) [default: no end].",
    )(f)
    f = click.option(
        "--since",
        metavar="DATE",
        help="From this ISO 8601 date or time (UTC), included [default: no start].",
    )(f)
    return click.option(
        "--store",
        "store_path",
        type=READ_STORE_PATH,
        default="mrules.db",
        show_default=True,
        help="The state store to read (works while a run holds it).",
    )(f)


def table_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """`--format` for the table reports, then the store and the date range."""
    f = click.option(
        "--format",
        "fmt",
        type=click.Choice(["table", "json", "csv"]),
        default="table",
        show_default=True,
        help="A readable table, the report as JSON, or its main table as CSV.",
    )(f)
    return store_and_range(f)


def sync_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--sync-db",
        "sync_db",
        type=SYNC_PATH,
        metavar="PATH",
        help="The sync file [default: NAME.sync.db beside the store NAME.db, if it exists].",
    )(f)


def rules_option(
    what: str = "names the rules that never matched, and campaign costs declared in the rules",
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """`--rules`, its help saying what the report takes from the rules."""
    return click.option(
        "--rules",
        "rules",
        multiple=True,
        type=PATH,
        metavar="PATH",
        help=f"The rule set (files or folders; repeat): {what} [default: none].",
    )
