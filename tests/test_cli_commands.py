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
import pytest
from click.testing import CliRunner

from conftest import leaf_commands
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


def test_every_option_of_every_command_is_described_and_every_command_has_an_example() -> None:
    """`--help` is where a user looks first: an option shown with no words (`--format
    [text|json]` alone) leaves them to guess what it changes."""
    bare = [
        f"{path} {'/'.join(param.opts)}"
        for path, command in leaf_commands()
        for param in command.params
        if isinstance(param, click.Option) and not param.hidden and not param.help
    ]
    assert bare == []
    no_example = [p for p, command in leaf_commands() if "Example" not in (command.help or "")]
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
    no_exit = [p for p, c in leaf_commands() if "Exit status" not in (c.help or "")]
    assert no_exit == []
    shown = CliRunner().invoke(main, ["report", "--help"])
    assert "html" in shown.output.split("Commands:")[0]
    shown = CliRunner().invoke(main, ["crm", "apply-changes", "--help"])
    assert "undelete, merge" in " ".join(shown.output.split())  # every op the file takes


# The order a user meets the bundled example in: the CRM seeded, the rules run, then
# what reads the store, the sync, the reports. Every command whose `--help` example
# works on the example is here (the test says which one is missing).
_EXAMPLE_ORDER = [
    "mrules",
    "mrules lint",
    "mrules parse",
    "mrules fmt",
    "mrules test",
    "mrules crm",
    "mrules crm load",
    "mrules run",
    "mrules crm export",
    "mrules crm describe",
    "mrules crm apply-changes",
    "mrules segment",
    "mrules state",
    "mrules state export",
    "mrules state outbox",
    "mrules explain",
    "mrules sync plan",
    "mrules sync apply",
    "mrules sync run",
    "mrules sync status",
    "mrules sync retry",
    "mrules sync send",
    "mrules sync",
    "mrules report",
    "mrules report funnel",
    "mrules report campaigns",
    "mrules report rules",
    "mrules report scores",
    "mrules report html",
]


def _help_examples(command: click.Command) -> list[str]:
    """The example lines of a command's help that use the bundled example, joined
    where a line ends in `\\`, without their comments; `/tmp/` left out, so that the
    store is the working folder's."""
    help_text = command.help or ""
    marker = next((m for m in ("Example", "Start with") if m in help_text), None)
    if marker is None:
        return []
    text = help_text.split(marker, 1)[1].split("\n\n", 1)[0]
    lines = text.replace("\\\n", " ").splitlines()[1:]
    shown = [line.split("  #", 1)[0].strip() for line in lines]
    return [
        line.replace("/tmp/", "")
        for line in shown
        if "getcloudy" in line or line.startswith("mkdir ")
    ]


def test_help_examples_on_the_bundled_example_run_as_shown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What `--help` shows on the bundled example works when typed in: a folder the
    example asks for is made by a line of its own, not left for the user to find."""
    import shlex
    import shutil

    shutil.copytree(
        ROOT / "examples" / "getcloudy",
        tmp_path / "examples" / "getcloudy",
        ignore=shutil.ignore_patterns("history"),
    )
    monkeypatch.chdir(tmp_path)
    ctx = click.Context(main)
    commands: dict[str, click.Command] = {"mrules": main}
    for path, command in leaf_commands():
        commands[path] = command
    for name in main.list_commands(ctx):
        group = main.get_command(ctx, name)
        if isinstance(group, click.Group):
            commands[f"mrules {name}"] = group
    with_examples = {p for p, c in commands.items() if _help_examples(c)}
    assert with_examples <= set(_EXAMPLE_ORDER), sorted(with_examples - set(_EXAMPLE_ORDER))
    failed = []
    for path in _EXAMPLE_ORDER:
        for line in _help_examples(commands[path]):
            words = shlex.split(line)
            assert not {"|", "<", ">"} & set(words), line
            if words[0] == "mkdir":
                for folder in words[1:]:
                    Path(folder).mkdir()
                continue
            assert words[0] == "mrules", line
            result = CliRunner().invoke(main, words[1:])
            # `sync plan` exits 2 when changes are pending, on purpose
            allowed = {0, 2} if words[1:3] == ["sync", "plan"] else {0}
            if result.exit_code not in allowed:
                failed.append(f"{path} --help: {line}: exit {result.exit_code}: {result.output}")
    assert not failed, "\n".join(failed)
