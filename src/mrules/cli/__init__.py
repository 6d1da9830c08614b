"""The `mrules` command line: a click group whose commands live one a module."""

from __future__ import annotations

import contextlib
import errno
import gc
import io
import os
import signal
import sys
from typing import NoReturn

import click

from mrules.buildinfo import __version__, engine_build

__all__ = ["main"]


class _Main(click.Group):
    """The `mrules` group: every command runs inside `failures()`.

    Store, output and interrupt failures end in one `mrules: error:` line and
    their exit code (docs/exit-codes.md) whoever calls the group. Only the
    `mrules` program itself (`__call__`: the console script, `python -m
    mrules`) turns an unexpected exception into the one-line internal-error
    report; tests that call `main.main()` (click's CliRunner) see the
    exception itself, so a bug is never hidden from them.

    Commands are loaded by name (`COMMAND_NAMES`) when first asked for.
    """

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*COMMAND_NAMES, *self.commands})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = self.commands.get(cmd_name)
        if command is None:
            command = _load(cmd_name)
            if command is not None:
                self.commands[cmd_name] = command
        return command

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        name = args[0]
        if (
            not name.startswith("-")
            and not ctx.resilient_parsing
            and self.get_command(ctx, name) is None
        ):
            # click suggests from the commands loaded so far; suggest from them all
            raise click.exceptions.NoSuchCommand(name, possibilities=COMMAND_NAMES, ctx=ctx)
        return super().resolve_command(ctx, args)

    def invoke(self, ctx: click.Context) -> object:
        from mrules.cli.common import failures

        with failures():
            return super().invoke(ctx)

    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: click.Context | None = None,
        **extra: object,
    ) -> click.Context:
        """`mrules --help` and `--version` print while the arguments are parsed, before
        `invoke`: an output that cannot take them (a full disk, a closed pipe) is exit 4,
        as it is for every command, not click's exit 1 or an internal error."""
        from mrules.cli.common import failures

        with failures():
            return super().make_context(info_name, args, parent, **extra)  # type: ignore[arg-type]

    def __call__(self, *args: object, **kwargs: object) -> object:
        _interrupts.clear()  # this run's, not an earlier one's in the same process
        _stop_on_sigterm_as_on_ctrl_c()
        _note_ctrl_c()
        _whole_writes_when_unbuffered()
        _closed_stdout_refuses_writes()
        _unencodable_characters_escaped()
        try:
            # What every command loads first (a tenth of a second), loaded where Ctrl-C and
            # SIGTERM are ours: within click, they said `Aborted!` and exited 1, the code
            # of a rule set with errors.
            import mrules.cli.common  # noqa: F401
        except Exception:
            if not interrupt_received():  # an import that fails: a bug
                raise
            _interrupted_as_it_starts()
        except KeyboardInterrupt:
            _interrupted_as_it_starts()
        try:
            return self.main(*args, **kwargs)  # type: ignore[arg-type,call-overload]
        except OSError as e:
            from mrules.cli.common import EXIT_STORE, fail, internal_error, unwritable_message

            if isinstance(e, FileNotFoundError) and _working_folder_gone():
                # Paths are shown from the working folder: a bad start, not a bug (exit 70)
                fail(
                    "the working folder no longer exists (deleted or moved since the shell"
                    " went into it): cd to a folder that does and run the command again"
                )
            if not unwritable_message(e):
                internal_error(e)
            # Commands run inside `failures()`: this is click's own message (a usage error)
            # on a standard error that takes nothing. The message is lost, not its code.
            shown = _click_exception_of(e)
            sys.exit(shown.exit_code if shown is not None else EXIT_STORE)
        except Exception as e:
            from mrules.cli.common import internal_error

            internal_error(e)
        finally:
            # The process ends here (click exits). Frozen objects are left out of the
            # collection the interpreter makes on its way out, which otherwise traces
            # every object a run leaves (its prospects, caches): 2-5% of a 200k-event
            # run (bench/README.md). Files and the store are closed by then; nothing
            # mrules writes waits for a finalizer.
            gc.freeze()


def _working_folder_gone() -> bool:
    """Whether the process's working folder was deleted (or moved) under it."""
    try:
        os.getcwd()
    except FileNotFoundError:
        return True
    return False


def _click_exception_of(e: BaseException) -> click.ClickException | None:
    """The click exception whose message `e` interrupted (`ClickException.show`), if any."""
    tb = e.__traceback__
    while tb is not None:
        shown = tb.tb_frame.f_locals.get("self")
        if isinstance(shown, click.ClickException):
            return shown
        tb = tb.tb_next
    context = e.__context__
    return context if isinstance(context, click.ClickException) else None


def _whole_writes_when_unbuffered() -> None:
    """Standard output and error write whole or fail, also under `PYTHONUNBUFFERED` (`-u`).

    There Python gives each no buffer: a raw file whose `write()` may take part of the
    bytes and say so only by its result (a pipe that `head` closed mid-write, a signal),
    which text writes and mrules' own never read. `mrules lint --format json | head -1`
    lost the rest of its output without a word and exited 0 or 1, where a closed pipe
    is exit 4. Each gets a buffered writer over its own descriptor, which writes all or
    raises, and is flushed at every line and through every text write, as `-u` asks.
    """
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        if not isinstance(getattr(stream, "buffer", None), io.RawIOBase):
            continue  # buffered as usual, or replaced (a test's runner): left as it is
        try:
            raw = io.FileIO(stream.fileno(), "w", closefd=False)
        except (OSError, ValueError):  # closed, or no descriptor: nothing to wrap
            continue
        setattr(
            sys,
            name,
            io.TextIOWrapper(
                io.BufferedWriter(raw),
                encoding=stream.encoding,
                errors=stream.errors,
                line_buffering=True,
                write_through=True,
            ),
        )


def _unencodable_characters_escaped() -> None:
    """What the output's encoding cannot hold is written as a `\\u65e5` escape.

    Under a Latin-1 locale or `PYTHONIOENCODING=latin-1`, `mrules lint` of a list named
    "日本" was an internal error (exit 70) at its first message: Python's standard output
    refuses such characters. Its standard error already escapes them; now standard
    output does too (docs/configuration.md). JSON is written as UTF-8 bytes whatever the
    encoding."""
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, io.TextIOWrapper) and stream.errors == "strict":
            with contextlib.suppress(OSError, ValueError):  # closed: as it is
                stream.reconfigure(errors="backslashreplace")


class ClosedOutput(io.TextIOBase):
    """Standard output when the process started with it closed (`>&-`): Python then has
    none (`sys.stdout is None`), and `click.echo` and `print` drop what they are given
    without a word. `mrules sync plan >&-` printed its plan nowhere and exited 0, as did
    `--help`, `--version`, `lint --explain`, `crm describe` and `sync status`; `crm
    export` was an internal error (exit 70). Every write raises instead, and `failures()`
    makes it exit 4, as `stdout_or_exit()` does for the commands that check first."""

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return False

    def write(self, s: str) -> int:
        raise OSError(errno.EBADF, "standard output is closed")

    @property
    def buffer(self) -> object:
        raise OSError(errno.EBADF, "standard output is closed")


def _closed_stdout_refuses_writes() -> None:
    """`sys.stdout` is a `ClosedOutput` when the process has no standard output."""
    if sys.stdout is None:
        sys.stdout = ClosedOutput()


def _interrupted_as_it_starts() -> NoReturn:
    from mrules.exitcodes import ExitCode

    with contextlib.suppress(OSError, ValueError):
        sys.stderr.write("mrules: error: interrupted; nothing was done\n")
    sys.exit(ExitCode.INTERRUPTED)


class Terminated(KeyboardInterrupt):
    """SIGTERM (`kill`, a CI job's timeout, a container stopping), met as Ctrl-C is."""


_interrupts: list[int] = []  # the signals `_note_ctrl_c` and SIGTERM's handler met


def interrupt_received() -> bool:
    """Whether Ctrl-C or SIGTERM reached the `mrules` program (its handlers raise
    KeyboardInterrupt, as Python's own does).

    Code that runs Python inside its own may turn that KeyboardInterrupt into an error
    of its own: pydantic-core makes it a `SchemaError` when it comes while a validator
    is built (the first AST node of a class, a tenth of a second of every command that
    loads rules). An error raised once an interrupt came is the interrupt's doing: the
    command ends as interrupted (130), not as a bug (70) or with a traceback.
    """
    return bool(_interrupts)


def _note_ctrl_c() -> None:
    """Ctrl-C raises KeyboardInterrupt as Python's handler does, and is noted
    (`interrupt_received`). A SIGINT ignored from the start (`nohup`, a background job of
    a script) stays ignored."""

    def on_sigint(signum: int, frame: object) -> None:
        _interrupts.append(signum)
        raise KeyboardInterrupt

    with contextlib.suppress(ValueError, OSError):  # not the main thread: left as it is
        if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
            signal.signal(signal.SIGINT, on_sigint)


def _stop_on_sigterm_as_on_ctrl_c() -> None:
    """SIGTERM stops a command the way Ctrl-C does: what was committed is kept, the
    `interrupted` line says where to resume, exit 130 (docs/exit-codes.md). By default
    it killed the process silently (exit 143). A process forked from this one (a
    partitioned run's worker, a replay's second side) gets the default back: its
    parent stops it with SIGTERM and must not see it carry on.
    """
    main_pid = os.getpid()

    def on_sigterm(signum: int, frame: object) -> None:
        if os.getpid() != main_pid:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGTERM)
            return
        _interrupts.append(signum)
        raise Terminated

    with contextlib.suppress(ValueError, OSError):  # not the main thread: left as it is
        signal.signal(signal.SIGTERM, on_sigterm)


@click.group(
    cls=_Main,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.version_option(
    __version__, prog_name="mrules", message=f"%(prog)s, version %(version)s ({engine_build()})"
)
def main() -> None:
    """mrules: marketing automation as code.

    Completion actions, page actions, automation rules, scoring, grading and
    the CRM sync, written as text, linted in CI and run over event streams.

    \b
    Start with (in a clone of the repository, on its bundled example):
      mrules lint examples/getcloudy/rules
      mrules run examples/getcloudy/rules examples/getcloudy/events.jsonl --store getcloudy.db
      mrules explain leung@example.com --store getcloudy.db
      mrules state export --store getcloudy.db
    """


# Each command lives in `mrules.cli.<name>_cmd`, imported when the command runs (or
# when `--help` lists them all): `mrules lint` no longer imports the engine, the
# store, the sync and the reports before it starts, a third of its start-up.
COMMAND_NAMES = (
    "completion",
    "crm",
    "explain",
    "fmt",
    "lint",
    "lsp",
    "parse",
    "partition",
    "replay",
    "report",
    "run",
    "segment",
    "state",
    "sync",
    "test",
)


def _load(name: str) -> click.Command | None:
    """The command `name`, from its module; None for a name mrules has no command for."""
    import importlib

    if name not in COMMAND_NAMES:
        return None
    module = importlib.import_module(f"mrules.cli.{name}_cmd")
    for command in getattr(module, "COMMANDS", ()):
        if command.name == name:
            return command  # type: ignore[no-any-return]
    raise LookupError(f"mrules.cli.{name}_cmd has no command {name!r}")
