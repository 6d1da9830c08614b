"""What every command shares: loading a rule set, printing errors, exit codes.

The exit codes are `mrules.exitcodes.ExitCode` (docs/exit-codes.md); the
`EXIT_*` names below are aliases of its members. `failures()` turns the
errors a command cannot fix itself (a store that cannot be used, an output
file that cannot be written, Ctrl-C) into one `mrules: error: ...` line and
the code of the table, so that no command prints a traceback for them.
"""

from __future__ import annotations

import contextlib
import copy
import errno
import io
import math
import os
import stat
import sys
import tempfile
import traceback
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, BinaryIO, NoReturn

import click

from mrules.atomic import OutputError
from mrules.exitcodes import ExitCode
from mrules.loader import EMPTY_PATH, LoadError, LoadResult, load, printable_path, shown_path
from mrules.pathkind import special_file_kind
from mrules.state import DamagedState
from mrules.storeapi import StoreError, StoreLocked, StorePathError, is_postgres_url

if TYPE_CHECKING:
    from click.shell_completion import CompletionItem

__all__ = [
    "CRM_PATH",
    "ECHO_LIMIT",
    "EVENTS_PATH",
    "EXIT_BUSY",
    "EXIT_DIAGNOSTICS",
    "EXIT_INTERNAL",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_REJECTS",
    "EXIT_STORE",
    "EXIT_USAGE",
    "MAX_WAIT_SECONDS",
    "PATH",
    "SYNC_PATH",
    "Choice",
    "EmptyPathError",
    "NonEmptyPath",
    "WaitSeconds",
    "email_or_exit",
    "empty_path",
    "fail",
    "failures",
    "file_keys",
    "file_name_or_exit",
    "internal_error",
    "load_or_exit",
    "reads_only",
    "refuse_output_over_inputs",
    "refuse_too_long",
    "rule_file_or_exit",
    "shown_arg",
    "sqlite_database_kind",
    "stdin_alone_or_exit",
    "stdout_or_exit",
    "store_there_or_exit",
    "too_long_path",
    "warn_unsettled",
]

EXIT_OK = ExitCode.OK
EXIT_DIAGNOSTICS = ExitCode.DIAGNOSTICS  # the rule set has errors (or warnings with --strict)
EXIT_USAGE = ExitCode.USAGE  # bad arguments, unreadable paths, not UTF-8
EXIT_REJECTS = ExitCode.REJECTS  # `mrules run`: some event lines were rejected
EXIT_STORE = ExitCode.STORE  # the store or an output file failed (full, read-only, damaged)
EXIT_BUSY = ExitCode.BUSY  # another run holds the store (or --wait-timeout passed)
EXIT_INTERRUPTED = ExitCode.INTERRUPTED  # Ctrl-C: what was committed is kept
EXIT_INTERNAL = 70
"""A bug in mrules (an exception nothing expected); not in the table: it should never happen."""

INTERRUPTED_MESSAGE = (
    "interrupted; what was committed is kept, and running the same command again resumes"
)
REPORT_INTERRUPTED = "interrupted; a report changes no store: run the same command again"
"""A read that was stopped: nothing was committed, and there is nothing to resume."""
_INTERRUPTED_KEY = "mrules.interrupted"
"""`click.Context.meta` (shared by a command and its groups): what an interrupt says."""


def reads_only() -> None:
    """Called first by a command that writes no store (explain, state export, sync plan,
    lint, fmt --check ...): an interrupt then says there is nothing to resume, not the
    writing commands' "what was committed is kept ... resumes". A file such a command
    writes (`--out`, `--sarif-file`, an export) is replaced whole or not at all."""
    ctx = click.get_current_context(silent=True)
    if ctx is None:
        return
    name = " ".join(["mrules", *ctx.command_path.split()[1:]])
    ctx.meta[_INTERRUPTED_KEY] = (
        f"interrupted; `{name}` changes nothing and leaves no file half-written:"
        " run the same command again"
    )


def interrupt_says(message: str) -> None:
    """What an interrupt of the running command says (exit 130), in place of
    INTERRUPTED_MESSAGE: for a command whose same run again does not resume."""
    ctx = click.get_current_context(silent=True)
    if ctx is not None:
        ctx.meta[_INTERRUPTED_KEY] = message


class EmptyPathError(click.UsageError):
    """An empty path on the command line: one `mrules: error:` line, exit 2. `Path("")` is
    the folder `.`, so `mrules fmt ""` (a variable left unset in a script) reformatted
    every rule file below the current folder, and `lint ""` linted them."""

    def show(self, file: IO[Any] | None = None) -> None:
        click.echo(f"mrules: error: {self.format_message()}", err=True)


def _named(param: click.Parameter | None) -> str:
    """A parameter as the messages name it: `--store`, `PATHS`, `OUT`."""
    if isinstance(param, click.Option):
        return max(param.opts, key=len)
    if param is not None:
        return param.human_readable_name.strip("[].")  # `[PLAN]`, `[PATHS]...`: the name
    return "a path"


ECHO_LIMIT = 60
"""The most characters of a user's argument a message echoes whole (`shown_arg`)."""


def shown_arg(text: str, limit: int = ECHO_LIMIT) -> str:
    """A user's argument as a message echoes it (`shown_path`: printable, one line): whole
    when short, else its start and its length, so that a 100,000-character value neither
    floods the terminal nor buries the message, and is still recognised."""
    shown = shown_path(text)
    if len(shown) <= limit:
        return shown
    return f"{shown[: limit - 20]}… ({len(text):,} characters)"


class Choice(click.Choice):  # type: ignore[type-arg]
    """`click.Choice`, whose refusal echoes a long value as `shown_arg` does (click's own
    message repeated a 100,000-character value whole)."""

    def convert(
        self, value: object, param: click.Parameter | None, ctx: click.Context | None
    ) -> Any:
        try:
            return super().convert(value, param, ctx)
        except click.BadParameter:
            if not isinstance(value, str) or len(value) <= ECHO_LIMIT:
                raise
            choices = ", ".join(repr(str(c)) for c in self.choices)
            self.fail(f"'{shown_arg(value)}' is not one of {choices}.", param, ctx)


def too_long_path(text: str) -> bool:
    """Whether the system refuses `text` as a path for its length (ENAMETOOLONG: a name
    or the whole path past the system's limit): no file can have it, and a command that
    went on met the error in some later call, reported as an internal error."""
    try:
        os.stat(text)
    except OSError as e:
        return e.errno == errno.ENAMETOOLONG
    except ValueError:  # a NUL inside: for the usual checks to say
        return False
    return False


def refuse_too_long(param: click.Parameter | None, ctx: click.Context | None, text: str) -> None:
    """`EmptyPathError` (one line, exit 2) for a path too long for the system."""
    if too_long_path(text):
        raise EmptyPathError(
            f"{_named(param)} {shown_arg(text)}: too long for a path on this system"
            " (a name or the whole path past its limit): give a shorter one",
            ctx,
        )


def empty_path(param: click.Parameter | None, ctx: click.Context | None, said: str) -> NoReturn:
    """Raise `EmptyPathError`: `NAME said` (`said` tells what goes there, and that an empty
    path is not the current folder)."""
    raise EmptyPathError(f"{_named(param)} {said}", ctx)


class NonEmptyPath(click.Path):
    """`click.Path`, and an empty path is a usage error (`EmptyPathError`), not the folder
    `.`. The type of every path argument and option (`PATH` when nothing is checked);
    `said` is what the message says after the parameter's name instead of the usual
    words."""

    def __init__(self, *, said: str | None = None, **options: Any) -> None:
        super().__init__(**options)
        self.said = said
        self.long_refused = False
        """Whether a path too long for the system is refused here (`refuse_too_long`)."""

    def refusing_long(self) -> NonEmptyPath:
        """This type, refusing a path too long for the system before any use, its echo
        shortened (`shown_arg`): the sync commands' paths."""
        refusing = copy.copy(self)
        refusing.long_refused = True
        return refusing

    def convert(
        self, value: object, param: click.Parameter | None, ctx: click.Context | None
    ) -> Any:
        if isinstance(value, str | bytes) and not value:
            if self.said is not None:
                said = self.said
            elif not self.dir_okay:
                said = "needs a file name: an empty path is not the current folder"
            elif not self.file_okay:
                said = "needs a folder: an empty path is not the current folder (give '.' for it)"
            else:
                said = f"needs a file or folder: {EMPTY_PATH}"
            empty_path(param, ctx, said)
        if self.long_refused and isinstance(value, str | bytes):
            refuse_too_long(param, ctx, os.fsdecode(value))
        try:
            converted = super().convert(value, param, ctx)  # type: ignore[arg-type]
        except click.BadParameter:
            if not isinstance(value, str | bytes):
                raise
            raise EmptyPathError(
                f"{_named(param)}: {shown_path(os.fsdecode(value))} {self._why(value)}", ctx
            ) from None
        if not self.file_okay and isinstance(value, str | bytes) and value != "-":
            kind = _special_kind(os.fsdecode(value))
            if kind is not None:  # click takes a device for a folder: `--out /dev/full`
                shown = shown_path(os.fsdecode(value))
                raise EmptyPathError(f"{_named(param)}: {shown} is {kind}, not a folder", ctx)
        return converted

    def _why(self, value: str | bytes) -> str:
        """What is wrong with a path click refused, in the words of the other messages
        (click's own `Error: Invalid value for ...` block was a usage screen of its own)."""
        if not self.dir_okay and os.path.isdir(value):
            return "is a folder, not a file"
        if not self.file_okay and os.path.exists(value):
            return "is a file, not a folder"
        if not os.path.exists(value):
            return "does not exist"
        if self.writable and not os.access(value, os.W_OK):
            return "cannot be written (permission denied)"
        return "cannot be read (permission denied)"


PATH = NonEmptyPath()
"""A file or folder's path, never empty (the paths of lint, fmt, parse, test...)."""

CRM_PATH = NonEmptyPath(
    said="needs a CRM: an empty path is not the current folder (give the CRM file, such as"
    " NAME.crm.db)"
)
"""`--crm`: a CRM file (or a name such as `local`, `salesforce`), never empty."""

EVENTS_PATH = NonEmptyPath(
    allow_dash=True,
    said="needs an events file: an empty path is not the current folder (give the file, or -"
    " for standard input)",
)
"""EVENTS of `run`: a JSONL file (`.gz` too) or `-`, never empty."""


def _complete_files(incomplete: str) -> list[CompletionItem]:
    """Tab after a store or sync file option completes file names, as after a
    `click.Path`: a plain `ParamType` offers nothing, and the shell then completed none."""
    from click.shell_completion import CompletionItem  # only when completing

    return [CompletionItem(incomplete, type="file")]


class _StorePath(click.ParamType):
    """`--store`: a path, a URL or `:memory:`, never empty (Path("") is the folder ".").

    `memory=False` for the commands that read a store a run wrote (they refuse
    `:memory:`): their messages do not offer it. `postgres`, for the commands that
    keep files beside the store's file: why they refuse a PostgreSQL URL (exit 2; the
    URL, and so its password, is not repeated)."""

    name = "path"

    def __init__(
        self, memory: bool = True, postgres: str | None = None, long_refused: bool = False
    ) -> None:
        self.memory = memory
        self.postgres = postgres
        self.long_refused = long_refused
        """Whether a path too long for the system is refused here (`refuse_too_long`)."""

    def shell_complete(
        self, ctx: click.Context, param: click.Parameter, incomplete: str
    ) -> list[CompletionItem]:
        return _complete_files(incomplete)

    def convert(
        self, value: object, param: click.Parameter | None, ctx: click.Context | None
    ) -> str:
        text = str(value)
        if not text:
            empty_path(
                param,
                ctx,
                "needs a path: an empty path is not the current folder (give the store's file,"
                " or :memory: for a run that keeps nothing)"
                if self.memory
                else "needs a path: an empty path is not the current folder (give the store's"
                " file a run wrote)",
            )
        if not text.strip():
            self.fail(
                "needs a path (or :memory: for a run that keeps nothing)"
                if self.memory
                else "needs a path: give the store's file a run wrote",
                param,
                ctx,
            )
        if is_postgres_url(text):  # `postgresql://` alone: libpq's defaults (local server)
            if self.postgres is not None:
                self.fail(self.postgres, param, ctx)
            return text
        if self.long_refused:
            refuse_too_long(param, ctx, text)
        if text.endswith(("/", os.sep)) and not Path(text).is_dir():  # pathlib drops the /
            self.fail(
                f"{text} names a folder, and there is none: give the store's file, such as"
                f" {text.rstrip('/' + os.sep) or '.'}/mrules.db",
                param,
                ctx,
            )
        return text


STORE_PATH = _StorePath()
READ_STORE_PATH = _StorePath(memory=False)
"""`--store` of the commands that read what a run wrote: explain, state, report, segment."""
SYNC_STORE_PATH = _StorePath(
    postgres="the sync keeps its files beside an SQLite store's file (NAME.sync.db, and"
    " NAME.crm.db for --crm local): it does not take a PostgreSQL store",
    long_refused=True,
)
"""`--store` of `mrules sync`: a store's file, never a PostgreSQL URL (docs/sync.md)."""


class _SyncPath(click.ParamType):
    """`--sync-db`: a file's path, never empty and never a folder (Path("") is the folder
    ".": both read as "no sync file at ."). A missing file is for the command to say."""

    name = "path"

    def shell_complete(
        self, ctx: click.Context, param: click.Parameter, incomplete: str
    ) -> list[CompletionItem]:
        return _complete_files(incomplete)

    def convert(
        self, value: object, param: click.Parameter | None, ctx: click.Context | None
    ) -> str:
        text = str(value)
        if not text:
            empty_path(
                param,
                ctx,
                "needs a sync file, and the name is empty: an empty path is not the current"
                " folder (give the sync file, such as NAME.sync.db)",
            )
        if not text.strip():
            self.fail("the name is empty: give the sync file, such as NAME.sync.db", param, ctx)
        if os.path.isdir(text):
            folder = printable_path(text.rstrip("/" + os.sep))
            self.fail(
                f"{printable_path(text)} is a folder, not a sync file: give the file, such as"
                f" {folder}/NAME.sync.db",
                param,
                ctx,
            )
        kind = _special_kind(text)
        if kind is not None:  # was "no sync file at ...", or "no such file", for a pipe
            self.fail(
                f"{printable_path(text)} is {kind}, not a sync file: give the file, such as"
                " NAME.sync.db",
                param,
                ctx,
            )
        return text


def _special_kind(path: str) -> str | None:
    """What `path` is in words when it is neither a file nor a folder (a named pipe, a
    device); None when it is one of those, or is not there."""
    try:
        mode = os.stat(path).st_mode
    except (OSError, ValueError):
        return None
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
        return None
    return special_file_kind(mode)


SYNC_PATH = _SyncPath()
"""The type of every `--sync-db` (the reports, `explain --timeline`)."""


MAX_WAIT_SECONDS = 7 * 24 * 3600
"""The longest `--wait-timeout` (7 days): `1e300` was taken, and waited forever as `inf` did."""


class Seconds(click.ParamType):
    """A finite number of seconds, at least `least`, or exit 2. click's FloatRange let
    `nan` (false against every bound) and `inf` (`1e309`) through to an internal error."""

    name = "seconds"

    def __init__(self, least: float) -> None:
        self.least = least

    def number(
        self, value: object, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        """The value as a float, or exit 2 if it is no number at all (nan included)."""
        try:
            seconds = value if isinstance(value, float) else float(str(value))
        except ValueError:
            self.fail(f"{value!r} is not a number of seconds", param, ctx)
        if math.isnan(seconds):
            self.fail(f"{value} is not a number of seconds", param, ctx)
        return seconds

    def convert(
        self, value: object, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        seconds = self.number(value, param, ctx)
        if math.isinf(seconds):
            self.fail(f"{value}: give a finite number of seconds", param, ctx)
        if seconds < self.least:
            self.fail(f"{value}: give {self.least:g} seconds or more", param, ctx)
        return seconds


class WaitSeconds(Seconds):
    """`--wait-timeout`: a finite number of seconds above 0 and at most MAX_WAIT_SECONDS,
    or exit 2. `nan` compares false with every bound, so a range let it through, and it
    waited forever, as `inf` (or `1e300`) did; `default` is what `--wait` alone waits,
    for the message."""

    def __init__(self, default: float) -> None:
        super().__init__(0.0)
        self.default = default

    def convert(
        self, value: object, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        seconds = self.number(value, param, ctx)
        if math.isinf(seconds):
            self.fail(
                f"{value}: give a number of seconds (there is no waiting forever; --wait"
                f" alone waits {self.default:g} seconds at most)",
                param,
                ctx,
            )
        if seconds <= 0:
            self.fail(f"{value}: give a number of seconds above 0", param, ctx)
        if seconds > MAX_WAIT_SECONDS:
            self.fail(
                f"{value}: at most {MAX_WAIT_SECONDS} seconds (7 days) can be waited; --wait"
                f" alone waits {self.default:g} seconds",
                param,
                ctx,
            )
        return seconds


READ_STORE = click.option(
    "--store",
    "store_path",
    type=READ_STORE_PATH,
    default="mrules.db",
    show_default=True,
    help="The state store to read (works while a run holds it).",
)
"""`--store` of the commands that only read a store (explain, state export, state outbox)."""


def fail(message: str, code: int = EXIT_USAGE) -> NoReturn:
    """Print `mrules: error: message` on stderr and exit. Should stderr itself refuse the
    message (a full disk, a closed pipe), the exit code still tells what happened."""
    try:
        click.echo(f"mrules: error: {message}", err=True)
    except OSError:
        _quiet(sys.stderr)
    sys.exit(int(code))


def store_there_or_exit(store_path: str) -> None:
    """Exit 2 when there is no store to read at `store_path`, saying what makes one: every
    command that reads a store calls it (the reports, `explain`, `state`, `segment`, `sync
    status`), so all give the same hint. A path no store can be at for another reason (a
    file where its folder should be, a folder, a device) is left to the store's message."""
    if store_path == ":memory:" or is_postgres_url(store_path):
        return
    try:
        os.stat(store_path)
    except FileNotFoundError:  # nothing there (a dangling link, a missing folder above)
        shown = shown_path(store_path)
        fail(f"no store at {shown} (run `mrules run ... --store {shown}` first)")
    except (OSError, ValueError):  # a file in the way, a name too long, a NUL byte
        return


def stdin_alone_or_exit(paths: Sequence[str]) -> None:
    """Exit 2 unless `-` (standard input: one rule file) is the only path, if given at all
    (`lint`, `fmt`, `parse`). `- -` said "cannot be mixed with file or folder paths",
    though no file or folder was given."""
    if paths.count("-") > 1:
        fail("'-' (standard input) can be given once: it is read as one rule file")
    if "-" in paths and len(paths) > 1:
        fail("'-' (standard input) cannot be mixed with file or folder paths")


def stdout_or_exit() -> BinaryIO:
    """Standard output, for bytes; exit 4 when it is closed (`>&-`: Python has none), as
    for a closed pipe, before any work."""
    if stdout_closed():
        fail(STDOUT_CLOSED, EXIT_STORE)
    return sys.stdout.buffer  # type: ignore[return-value]


STDOUT_CLOSED = "standard output is closed: nothing can be written; give it a file (> FILE)"


def stdout_closed() -> bool:
    """Whether the process has no standard output (`>&-`)."""
    from mrules.cli import ClosedOutput

    return sys.stdout is None or isinstance(sys.stdout, ClosedOutput)


def file_name_or_exit(option: str, path: str) -> None:
    """Exit 2 when an output file's name ends with `/`, which names a folder: `Path` drops
    the `/`, so `-o out.xml/` wrote `out.xml`, where the system refuses to open it."""
    if path.endswith("/"):
        fail(f"{option} {shown_path(path)}: a file name cannot end with / (that names a folder)")


def output_folder_or_exit(option: str, path: str | None) -> None:
    """Refuse an output file in a folder that does not exist (mrules creates no folders):
    exit 2, before any work."""
    if path is None:
        return
    if not path.strip():  # Path("") is the folder ".": "cannot write : Is a directory", exit 4
        fail(f"{option} needs a file name")
    file_name_or_exit(option, path)
    folder = Path(path).parent
    try:
        is_folder = folder.is_dir()
    except OSError as e:  # a name too long, a loop of symbolic links
        fail(f"{option} {shown_path(path)}: {e.strerror}")
    if not is_folder:
        what = "is not a folder" if folder.exists() else "does not exist"
        fail(
            f"{option} {shown_path(path)}: {shown_path(str(folder))} {what}; create it"
            " first (mrules creates no folders)"
        )


def file_keys(path: str | os.PathLike[str]) -> set[object]:
    """What tells two paths apart: the resolved path, and the file's identity if it
    exists (a hard link or another spelling of the same file has the same one)."""
    keys: set[object] = {os.path.realpath(path)}
    with contextlib.suppress(OSError):
        st = os.stat(path)
        keys.add((st.st_dev, st.st_ino))
    return keys


def refuse_output_over_inputs(
    what: str, out: str, inputs: Sequence[tuple[str, str | os.PathLike[str]]]
) -> None:
    """Exit 2, before any work, when the output `out` is one of `inputs` ((what it is,
    path) pairs): writing it would destroy it (`report html mrules.db` replaced the
    store with the page). A folder among `inputs` holds its `*.mr` rule files."""
    if out == "-":
        return
    keys = file_keys(out)
    real = os.path.realpath(out)
    for held_by, path in inputs:
        folder = os.path.realpath(path)
        if keys & file_keys(path) or (
            os.path.isdir(folder) and real.endswith(".mr") and real.startswith(folder + os.sep)
        ):
            fail(
                f"{what} {shown_path(out)} is {shown_path(held_by)}: writing it would"
                " destroy it; give another path"
            )
    database = sqlite_database_kind(out)  # not one of these, but another store, say
    if database is not None:
        shown = shown_path(out)
        fail(f"{what} {shown} is {database}: writing it would destroy it; give another path")


def email_or_exit(what: str, email: str) -> str:
    """An email given on the command line as text, or exit 2 when its bytes are not UTF-8.

    Python decodes the command line with the locale's encoding, and a byte it cannot
    decode becomes a lone surrogate, which no store query can take (exit 70). Under a
    locale that is not UTF-8 (`LC_ALL=C` with `PYTHONUTF8=0`, `LANG=fr_FR.ISO-8859-1`)
    that is every byte of `josé@example.com` past ASCII: the email is read from the
    bytes the shell passed, as UTF-8, as the store and the events hold it, whatever the
    locale (`explain` said it was "not UTF-8 text, so no prospect has it"). An empty one (a
    variable left unset in a script) is exit 2 too, saying so: `no prospect '' in g.db`
    looked like a search that found nothing."""
    if not email.strip():
        fail(f"{what} is empty: give a prospect's email")
    if not any("\udc80" <= c <= "\udcff" for c in email):
        return email  # decoded whole
    try:
        return os.fsencode(email).decode("utf-8")
    except UnicodeError:
        fail(f"{what} '{printable_path(email)}' is not UTF-8 text, so no prospect has it")


SQLITE_HEADER = b"SQLite format 3\x00"


def sqlite_database_kind(path: str | os.PathLike[str]) -> str | None:
    """`an SQLite database (a store, ...?)` when `path` is an existing file that is one; None
    otherwise. No output of mrules is an SQLite file: one given as an output (`lint
    --sarif-file mrules.db`, `test -o mrules.db`, another store as `--actions`) was
    replaced or appended to, a store destroyed without a word."""
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            return None
        with open(path, "rb") as f:
            head = f.read(len(SQLITE_HEADER))
    except (OSError, ValueError):
        return None
    if head != SQLITE_HEADER:
        return None
    return "an SQLite database (a store, a CRM file or a sync file?)"


def rule_file_or_exit(path: str, store_option: bool = False, argument: str = "RULES") -> None:
    """Exit 2 when RULES is a file not named `*.mr` that is plainly no rule text: empty, an
    SQLite database (a store given where the rules go) or binary (a NUL byte). Loaded, it
    was an empty rule set (`segment mrules.db`: "no segmentation rules", exit 0; `run`
    ran no rules; `lint` said ok) or a "not UTF-8 text" error; a folder, a `*.mr` file
    or another file is loaded as usual. Every command that loads rules checks this; the
    message names the `argument` as the command's usage line does (RULES, or PATHS)."""
    if path.endswith(".mr") or not os.path.isfile(path):
        return
    try:
        with open(path, "rb") as f:
            head = f.read(1 << 16)
    except OSError:
        return  # the loader says why it cannot be read
    shown = printable_path(path)
    if head.startswith(SQLITE_HEADER):
        what = "an SQLite database (a store?)"
    elif not head:
        what = "an empty file (0 bytes)"
    elif b"\x00" in head and not head.startswith((b"\xff\xfe", b"\xfe\xff")):
        # (UTF-16 text has NUL bytes too: the loader's "save the file as UTF-8" says more)
        what = "binary data (it holds a NUL byte)"
    else:
        return
    if store_option:  # run, segment, sync: the store may have come first by mistake
        fail(
            f"{argument} {shown} is {what}, not a rule file: give the rule folder or a rule file"
            " (*.mr) first, and the store with --store"
        )
    fail(f"{argument} {shown} is {what}, not a rule file: give a rule folder or a rule file (*.mr)")


def load_or_exit(
    paths: Sequence[str], store_option: bool = False, argument: str = "RULES"
) -> LoadResult:
    """Load a rule set, or exit 2 with a clear message if it cannot be read
    (`store_option`: the command also takes --store, which the message then names;
    `argument`: the paths' name in the command's usage line)."""
    if not paths:
        fail("give at least one rule file or folder")
    for path in paths:
        rule_file_or_exit(path, store_option, argument)
    try:
        return load(paths)
    except LoadError as e:
        fail(str(e))


@contextlib.contextmanager
def count_bar(total: int, label: str) -> Iterator[Callable[[str], None]]:
    """On a terminal (standard error), a bar of `total` steps: `label` (its
    `{task.description}` is what the last step said), the bar, done of the total, the
    time left; gone at the end. Elsewhere, or for fewer than two steps, nothing. Yields
    `advance(description)`, called once a step. `mrules sync run` counts its cycles with
    it, `mrules test` its tests.
    """
    from rich.console import Console

    console = Console(stderr=True)
    if not console.is_terminal or total < 2:
        yield lambda what: None
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    columns = (
        TextColumn(label, markup=False),  # a test's name is no rich markup
        BarColumn(bar_width=16),  # all fits 80 columns, with a total in the billions
        MofNCompleteColumn(),
        TimeRemainingColumn(),
    )
    # What the command prints goes above the bar when it goes to the terminal too; into
    # a file, straight there (rich would send it through the bar's console: stderr).
    to_terminal = sys.stdout is not None and sys.stdout.isatty()
    with Progress(*columns, console=console, transient=True, redirect_stdout=to_terminal) as bar:
        task = bar.add_task("", total=total)
        yield lambda what: bar.update(task, advance=1, description=what)


_quiet_bars = False
"""`-q` given to the command being run: `work_bar` shows nothing (`quiet_option`)."""

QUIET_HELP = "No progress line, no summary table."
"""`-q`'s help, `mrules run`'s and every command's that shows a `work_bar`."""


def _set_quiet(ctx: click.Context, param: click.Parameter, value: bool) -> bool:
    global _quiet_bars
    _quiet_bars = bool(value)  # every invocation sets it (in-process runners too)
    return bool(value)


def quiet_option(f: Callable[..., Any]) -> Callable[..., Any]:
    """`-q`/`--quiet` as `mrules run` has it, for a command that shows a `work_bar` on a
    terminal: no progress line (nor a summary on standard error); the command's output
    itself is the same. Not passed to the command: `work_bar` reads it."""
    return click.option(
        "-q",
        "--quiet",
        is_flag=True,
        expose_value=False,
        is_eager=True,
        callback=_set_quiet,
        help=QUIET_HELP,
    )(f)


def quiet() -> bool:
    """Whether the command being run was given `-q`."""
    return _quiet_bars


@contextlib.contextmanager
def work_bar(
    label: str, total: int | None = None, streams: bool = False
) -> Iterator[Callable[[int | None, str | None], None]]:
    """On a terminal (standard error), what a long command that reads the store is doing, as
    `mrules run`'s bar: a spinner, `label` (its `{task.description}` is the last step's),
    the time it has taken, and with a `total` a bar, done of the total and the time left;
    gone at the end. Elsewhere, or with `-q` (`quiet_option`), nothing. `streams`: the
    command prints its records on standard output as it goes, so no bar when that is the
    terminal too (the records scrolling by are the progress; a bar between them would
    garble them). Yields
    `update(done, description)`: `done` steps of the total so far (None: unchanged), and
    what the step is (None: unchanged).
    """
    from rich.console import Console

    console = Console(stderr=True)
    on_screen = streams and sys.stdout is not None and sys.stdout.isatty()
    if _quiet_bars or not console.is_terminal or on_screen:
        yield lambda done, what: None
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns: list[Any] = [SpinnerColumn(), TextColumn(label, markup=False)]
    if total is not None:
        columns += [BarColumn(bar_width=16), MofNCompleteColumn(), TimeRemainingColumn()]
    columns.append(TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task("", total=total)

        def update(done: int | None, what: str | None) -> None:
            bar.update(task, completed=done, description=what)

        yield update


_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO, errno.EFBIG)
"""An output that cannot be written: the disk (or quota) is full, read-only or failing."""


@contextlib.contextmanager
def failures(interrupted: str | None = None) -> Iterator[None]:
    """Turn store, output and interrupt failures into a one-line message and their code;
    `interrupted` is what an interrupt says (a command that commits nothing says so: by
    default, what `reads_only()` set, else the writing commands' message). An error
    raised once Ctrl-C or SIGTERM came is met as the interrupt (`interrupt_received`)."""
    from mrules.cli import interrupt_received

    try:
        try:
            yield
        except Exception as e:
            if interrupt_received():
                raise KeyboardInterrupt from e
            raise
    except StoreLocked as e:
        waited = "after waiting" in str(e)  # --wait or --wait-timeout was given
        advice = "give --wait-timeout more seconds" if waited else "add --wait to wait for it"
        fail(f"{e}; {advice}, or stop the other run", EXIT_BUSY)
    except StorePathError as e:
        fail(str(e), EXIT_USAGE)
    except StoreError as e:
        fail(str(e), EXIT_STORE)
    except DamagedState as e:
        fail(f"the store is damaged: {e}; restore it from a backup or start a new one", EXIT_STORE)
    except OutputError as e:
        fail(str(e), EXIT_STORE)
    except KeyboardInterrupt:
        if interrupted is None:
            ctx = click.get_current_context(silent=True)
            said = ctx.meta.get(_INTERRUPTED_KEY) if ctx is not None else None
            interrupted = said if isinstance(said, str) else INTERRUPTED_MESSAGE
        fail(interrupted, EXIT_INTERRUPTED)
    except OSError as e:
        if e.errno == errno.EBADF and e.filename is None and stdout_closed():
            fail(STDOUT_CLOSED, EXIT_STORE)
        if e.errno == errno.EPIPE:
            _quiet(sys.stdout)
            fail("the output was closed before everything was written (broken pipe)", EXIT_STORE)
        if e.errno in _FULL:
            # A file the error names (the copy's destination when there are two): a
            # partitioned run's shard folder, say, where "the output" named nothing.
            named = e.filename2 if e.filename2 is not None else e.filename
            if named is None:  # standard output: what it still holds would fail at exit
                _quiet(sys.stdout)
                fail(f"cannot write the output: {e.strerror or e}", EXIT_STORE)
            advice = (
                "free some space" if e.errno in (errno.ENOSPC, errno.EDQUOT)
                else "make it and its folder writable" if e.errno == errno.EROFS
                else "check the disk"
            )  # fmt: skip
            fail(
                f"cannot write {_shown(named)}: {e.strerror or e}; {advice}, then run the"
                " same command again",
                EXIT_STORE,
            )
        if e.errno in (errno.EACCES, errno.EPERM) and e.filename is not None:
            fail(
                f"cannot write {_shown(e.filename)}: {e.strerror}; make it (and its folder)"
                " writable, or give another path",
                EXIT_STORE,
            )
        raise


def unwritable_message(e: OSError) -> bool:
    """Whether `e` is an output that takes nothing more (a full disk, a closed pipe...);
    its stream is pointed at /dev/null so that Python's last flush stays quiet."""
    if e.errno not in (errno.EPIPE, *_FULL):
        return False
    _quiet(sys.stderr)
    _quiet(sys.stdout)
    return True


def _shown(filename: object) -> str:
    """An OSError's file name as messages show it (`shown_path`: bytes that are not UTF-8
    as `\\xNN`, a control character as an escape)."""
    if isinstance(filename, bytes):
        filename = os.fsdecode(filename)
    return shown_path(str(filename))


def _quiet(stream: object) -> None:
    """Point a standard stream that cannot be written (a broken pipe, a full disk) at
    /dev/null, so that Python's final flush of what it still holds stays silent and leaves
    the exit code alone."""
    with contextlib.suppress(OSError, ValueError, AttributeError, io.UnsupportedOperation):
        fd = os.open(os.devnull, os.O_WRONLY)
        os.dup2(fd, stream.fileno())  # type: ignore[attr-defined]
        os.close(fd)


def internal_error(exc: BaseException) -> NoReturn:
    """Last resort for a bug: one line, the traceback saved to a file, exit EXIT_INTERNAL."""
    text = "".join(traceback.format_exception(exc))
    where = None
    with contextlib.suppress(OSError):
        fd, where = tempfile.mkstemp(prefix="mrules-crash-", suffix=".txt")
        with os.fdopen(fd, "w", encoding="utf-8", errors="backslashreplace") as f:
            f.write(text)
    summary = f"{type(exc).__name__}: {exc}".splitlines()[0] if str(exc) else type(exc).__name__
    summary = summary.encode("utf-8", "backslashreplace").decode("utf-8")
    click.echo(f"mrules: internal error: {summary} (this is a bug; please report it)", err=True)
    if where is not None:
        click.echo(f"Traceback saved to {where}", err=True)
    else:
        click.echo(text.encode("utf-8", "backslashreplace").decode("utf-8"), err=True, nl=False)
    sys.exit(EXIT_INTERNAL)


def warn_unsettled(unsettled: list[dict[str, Any]]) -> None:
    """The first five prospects whose rules did not settle, in the order given, one warning
    each, then how many more (the diagnostics file has them all): a run on one stream and a
    partitioned run (docs/scale-out.md) say them alike."""
    for d in unsettled[:5]:
        click.echo(
            f"mrules: warning: prospect {d['prospect']} (line {d['line']}): {d['reason']};"
            f" rules acting: {', '.join(d['rules'])}",
            err=True,
        )
    if len(unsettled) > 5:
        click.echo(f"mrules: warning: ... and {len(unsettled) - 5} more", err=True)
