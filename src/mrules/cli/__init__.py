"""The `mrules` command line: a click group whose commands live one a module."""

from __future__ import annotations

import click

from mrules import __version__

__all__ = ["main"]


class _Main(click.Group):
    """The `mrules` group: every command runs inside `failures()`.

    Store, output and interrupt failures end in one `mrules: error:` line and
    their exit code (docs/exit-codes.md) whoever calls the group. Only the
    `mrules` program itself (`__call__`: the console script, `python -m
    mrules`) turns an unexpected exception into the one-line internal-error
    report; tests that call `main.main()` (click's CliRunner) see the
    exception itself, so a bug is never hidden from them.
    """

    def invoke(self, ctx: click.Context) -> object:
        from mrules.cli.common import failures

        with failures():
            return super().invoke(ctx)

    def __call__(self, *args: object, **kwargs: object) -> object:
        try:
            return self.main(*args, **kwargs)  # type: ignore[arg-type,call-overload]
        except Exception as e:
            from mrules.cli.common import internal_error

            internal_error(e)


@click.group(
    cls=_Main,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.version_option(__version__, prog_name="mrules")
def main() -> None:
    """mrules: marketing automation as code.

    Completion actions, page actions, automation rules, scoring, grading and
    the CRM sync, written as text, linted in CI and run over event streams.

    \b
    Start with:
      mrules lint examples/getcloudy/rules
      mrules parse examples/getcloudy/rules --format json
    """


def _register() -> None:
    from mrules.cli import parse_cmd

    main.add_command(parse_cmd.parse)
    # Commands added by later modules register here, one import a command module.
    import importlib

    for module in (
        "lint_cmd",
        "fmt_cmd",
        "run_cmd",
        "state_cmd",
        "explain_cmd",
        "segment_cmd",
        "crm_cmd",
        "sync_cmd",
        "completion_cmd",
        "lsp_cmd",
        "test_cmd",
        "replay_cmd",
        "partition_cmd",
        "report_cmd",
    ):
        try:
            mod = importlib.import_module(f"mrules.cli.{module}")
        except ModuleNotFoundError as e:
            if e.name != f"mrules.cli.{module}":
                raise
            continue
        for command in getattr(mod, "COMMANDS", ()):
            main.add_command(command)


_register()
