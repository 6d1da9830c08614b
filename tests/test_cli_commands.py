"""The `mrules` group loads each command from its own module when it runs.

Every `cli/<name>_cmd.py` module's command is listed and reachable, and a
command imports only what it needs: `mrules lint` starts without the engine,
the store, the sync or the reports.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import click
from click.testing import CliRunner

from mrules.cli import COMMAND_NAMES, main

ROOT = Path(__file__).resolve().parent.parent
CLI = ROOT / "src" / "mrules" / "cli"


def test_every_command_module_is_listed_and_loads() -> None:
    modules = sorted(
        p.name[: -len("_cmd.py")]
        for p in CLI.glob("*_cmd.py")
        if "\nCOMMANDS = " in p.read_text("utf-8")  # report_html_cmd is a `report` subcommand
    )
    assert sorted(COMMAND_NAMES) == modules
    ctx = main.make_context("mrules", ["--help"], resilient_parsing=True)
    assert main.list_commands(ctx) == modules
    for name in modules:
        command = main.get_command(ctx, name)
        assert command is not None and command.name == name


def test_help_lists_every_command_and_an_unknown_one_is_refused() -> None:
    runner = CliRunner()
    shown = runner.invoke(main, ["--help"])
    assert shown.exit_code == 0
    listed = shown.output.split("Commands:", 1)[1]
    for name in COMMAND_NAMES:
        assert f"\n  {name} " in listed
    refused = runner.invoke(main, ["lnt"])
    assert refused.exit_code == 2
    assert "No such command 'lnt'. Did you mean 'lint'?" in refused.output


def test_lint_starts_without_the_engine_store_sync_or_reports() -> None:
    probe = (
        "import sys\n"
        "from mrules.cli import main\n"
        "try:\n"
        f"    main.main(['lint', {str(ROOT / 'examples' / 'getcloudy' / 'rules')!r}],"
        " prog_name='mrules')\n"
        "except SystemExit as e:\n"
        "    assert e.code == 0, e.code\n"
        "heavy = ('mrules.engine', 'mrules.store', 'mrules.store_pg', 'mrules.sync',"
        " 'mrules.reports', 'mrules.crm', 'mrules.compiler')\n"
        "print(sorted(m for m in sys.modules if m in heavy or m.startswith(tuple(h + '.' for h"
        " in heavy))))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=False, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"


def test_the_program_freezes_what_is_left_before_the_interpreter_exits() -> None:
    """`mrules` (the program, not click's test runner) freezes the heap as it ends, so
    interpreter shutdown does not trace every object a run left (bench/README.md)."""
    import subprocess
    import sys

    code = (
        "import atexit, gc, sys\n"
        "from mrules.cli import main\n"
        "atexit.register(lambda: print('frozen', gc.get_freeze_count() > 0, file=sys.stderr))\n"
        "main(['--version'])\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert "mrules, version" in proc.stdout
    assert "frozen True" in proc.stderr


def _leaf_commands() -> list[tuple[str, click.Command]]:
    ctx = click.Context(main)
    found: list[tuple[str, click.Command]] = []

    def walk(command: click.Command, path: str) -> None:
        if isinstance(command, click.Group):
            for name in command.list_commands(ctx):
                sub = command.get_command(ctx, name)
                assert sub is not None
                walk(sub, f"{path} {name}")
        else:
            found.append((path, command))

    walk(main, "mrules")
    return found


def test_every_option_of_every_command_is_described_and_every_command_has_an_example() -> None:
    """`--help` is where a user looks first: an option shown with no words (`--format
    [text|json]` alone) leaves them to guess what it changes."""
    bare = [
        f"{path} {'/'.join(param.opts)}"
        for path, command in _leaf_commands()
        for param in command.params
        if isinstance(param, click.Option) and not param.hidden and not param.help
    ]
    assert bare == []
    no_example = [p for p, command in _leaf_commands() if "Example" not in (command.help or "")]
    assert no_example == []
    ctx = click.Context(main)
    groups = [
        n for n in main.list_commands(ctx) if isinstance(main.get_command(ctx, n), click.Group)
    ]
    assert groups, "no command group found"
    no_example = [n for n in groups if "Example" not in (main.get_command(ctx, n).help or "")]  # type: ignore[union-attr]
    assert no_example == []  # `mrules sync --help` is where a user starts the sync
    # The sync's commands exit 2 on purpose when work is pending (plan), 1 on a stale plan,
    # `crm load` 3 when it refused some rows: every command's help says which code means what.
    no_exit = [p for p, c in _leaf_commands() if "Exit status" not in (c.help or "")]
    assert no_exit == []
    shown = CliRunner().invoke(main, ["report", "--help"])
    assert "html" in shown.output.split("Commands:")[0]
    shown = CliRunner().invoke(main, ["crm", "apply-changes", "--help"])
    assert "undelete, merge" in " ".join(shown.output.split())  # every op the file takes
