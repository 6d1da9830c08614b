"""The options the documentation names are the options the commands take.

* every `--option` in README.md and docs/*.md is an option of some `mrules`
  command, of a bench script the page runs, or of another tool it shows;
* on a line that runs `mrules COMMAND ...`, each option after the command is one
  of that command's own;
* the option tables of a command's page list exactly the command's options;
* the defaults the pages state are the commands' defaults.
"""

from __future__ import annotations

import re
from pathlib import Path

import click
import pytest

from conftest import ROOT
from mrules.cli import main

PAGES = sorted([ROOT / "README.md", *(ROOT / "docs").glob("*.md")])

# Options of other tools the pages show: pre-commit, VS Code's `code`, `dask worker`.
OTHER_TOOLS = {"--all-files", "--install-extension", "--nthreads"}

_OPTION = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")
# `mrules COMMAND [SUBCOMMAND] ARGS` up to the end of a code span or a shell comment.
_INVOCATION = re.compile(r"(?:^|[\s`$(/])mrules ([a-z][\w-]*(?: [^`|;&#)]*)?)")


def _commands() -> dict[str, click.Command]:
    out: dict[str, click.Command] = {}

    def walk(cmd: click.Command, path: str) -> None:
        out[path] = cmd
        if isinstance(cmd, click.Group):
            ctx = click.Context(cmd)
            for name in cmd.list_commands(ctx):
                sub = cmd.get_command(ctx, name)
                assert sub is not None
                walk(sub, f"{path} {name}".strip())

    walk(main, "")
    return out


COMMANDS = _commands()


def _options(cmd: click.Command) -> set[str]:
    return {o for p in cmd.params for o in (*p.opts, *p.secondary_opts)} | {"--help", "-h"}


def _bench_options() -> set[str]:
    found: set[str] = set()
    for script in (ROOT / "bench").glob("*.py"):
        found |= set(re.findall(r"add_argument\(\s*\"(--[a-z][a-z0-9-]*)\"", script.read_text()))
    return found


def _resolve(words: list[str]) -> tuple[str, list[str]]:
    """The longest command path the words start with, and the words after it."""
    path = ""
    for i, word in enumerate(words):
        if f"{path} {word}".strip() not in COMMANDS:
            return path, words[i:]
        path = f"{path} {word}".strip()
    return path, []


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_option_named_exists(page: Path) -> None:
    known = set().union(*map(_options, COMMANDS.values())) | _bench_options() | OTHER_TOOLS
    unknown = sorted(set(_OPTION.findall(page.read_text("utf-8"))) - known)
    assert not unknown, f"{page.name} names options no command takes: {unknown}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_a_commands_options_are_its_own(page: Path) -> None:
    wrong = []
    for number, line in enumerate(page.read_text("utf-8").splitlines(), 1):
        for m in _INVOCATION.finditer(line):
            path, rest = _resolve(m.group(1).split())
            if not path:
                continue
            own = _options(COMMANDS[path])
            for word in rest:
                option = word.split("=")[0].rstrip(",.:")
                if re.fullmatch(r"--?[a-zA-Z][\w-]*", option) and option not in own:
                    wrong.append(f"{page.name}:{number}: `mrules {path}` has no {option}")
    assert not wrong, "\n".join(wrong)


# A page's table of one command's options: (page, the heading row's first cell, command,
# options the page gives outside the table).
TABLES = [
    ("replay.md", "option", "replay", {"--diff"}),  # the mode, in every command line shown
    ("reports-html.md", "option", "report html", set()),
    ("testing.md", "option", "test", set()),
]


def _table(text: str, head: str) -> list[str]:
    rows = text.split(f"\n| {head} |", 1)[1].split("\n\n", 1)[0].splitlines()[2:]
    return [row.split("|")[1] for row in rows]


@pytest.mark.parametrize(("page", "head", "command", "elsewhere"), TABLES)
def test_an_option_table_lists_the_commands_options(
    page: str, head: str, command: str, elsewhere: set[str]
) -> None:
    cells = _table((ROOT / "docs" / page).read_text("utf-8"), head)
    listed = {o for cell in cells for o in re.findall(r"(?<![\w-])--?[a-z][a-z-]*", cell)}
    # A flag pair is one row (`--progress / --no-progress`); -o and --output are one option.
    cmd = COMMANDS[command]
    expected = {p.opts[0] for p in cmd.params if isinstance(p, click.Option)}
    expected -= {"--help", *elsewhere}
    missing = {o for o in expected if not ({o} | _aliases(cmd, o)) & listed}
    assert not missing, f"docs/{page} does not list {sorted(missing)}"
    assert listed <= _options(cmd), f"docs/{page} lists {sorted(listed - _options(cmd))}"


def _aliases(cmd: click.Command, option: str) -> set[str]:
    for p in cmd.params:
        if option in p.opts:
            return {*p.opts, *p.secondary_opts}
    return set()


# (page, the text stating the default, with the value as its group, command, option)
DEFAULTS = [
    ("README.md", r"into `--store` \(default `([^`]+)`", "run", "--store"),
    ("docs/semantics.md", r"`--commit-every` lines \(([\d,]+) by default", "run", "--commit-every"),
    ("docs/store.md", r"`--cache-prospects N` \(default\s+([\d,]+)", "run", "--cache-prospects"),
    ("docs/scale-out.md", r"in N worker processes \(default (\d+)\)", "run", "--workers"),
    ("docs/replay.md", r"`--examples N` \| [^|]*\(default (\d+)", "replay", "--examples"),
    ("docs/replay.md", r"`--mql-list NAME` \| [^|]*\(default `([^`]+)`", "replay", "--mql-list"),
    ("docs/reports-html.md", r"`--by week[^\n]*?\(default `(\w+)`", "report html", "--by"),
    ("docs/reports.md", r"the default is `(\w+)`", "report campaigns", "--model"),
    ("docs/reports.md", r"`--reading (\w+)` \(the default\)", "report funnel", "--reading"),
    (
        "docs/exit-codes.md",
        r"`--wait` \(which waits up to (\d+)\s+seconds",
        "run",
        "--wait-timeout",
    ),
    ("docs/sync.md", r"`--store` \(default `([^`]+)`\)", "sync plan", "--store"),
]


@pytest.mark.parametrize(("page", "pattern", "command", "option"), DEFAULTS)
def test_a_stated_default_is_the_default(
    page: str, pattern: str, command: str, option: str
) -> None:
    m = re.search(pattern, (ROOT / page).read_text("utf-8"))
    assert m, f"{page} no longer says /{pattern}/"
    (param,) = [p for p in COMMANDS[command].params if option in p.opts]
    default = param.default
    if option == "--wait-timeout":  # given with --wait alone: WaitSeconds knows it
        default = param.type.default  # type: ignore[attr-defined]
    stated = m.group(1).replace(",", "")
    assert stated == (f"{default:g}" if isinstance(default, float) else str(default))


def test_the_settings_table_is_the_engines() -> None:
    """docs/language.md's table of `settings { ... }`: every setting, with its default
    as a rule file writes it, and for a setting with choices, each choice named."""
    import json

    from mrules.settings import SETTINGS

    text = (ROOT / "docs" / "language.md").read_text("utf-8")
    table = text.split("\n| Setting | Default | Meaning |", 1)[1].split("\n\n", 1)[0]
    rows = re.findall(r"^\| `(\w+)` \| `([^`]+)` \| (.+) \|$", table, re.M)
    assert {name for name, *_ in rows} == set(SETTINGS)
    for name, default, meaning in rows:
        spec = SETTINGS[name]
        assert json.loads(default) == spec.default, name
        for choice in spec.choices or ():
            assert f'"{choice}"' in meaning, (name, choice)
