"""Rule sets on disk: find the rule files, read them, follow `include`, parse them all.

A rule set is one or more paths. A directory contributes every `*.mr` file
below it, in sorted path order, and is the *rule root* for its files; a single
file's root is its own folder. `include "x/y"` loads `x/y.mr` relative to the
including file's root and may never leave it; `include "library/NAME"` loads a
file of the library bundled with mrules (the repository's `rules/` folder).
Each file is loaded once, and an included file comes before the file that
includes it, so declarations read naturally from the top down.

Problems that stop a rule set from being read at all (a missing path, a folder
with no rule files, bytes that are not UTF-8) raise `LoadError`, which the CLI
turns into exit status 2; problems inside files are diagnostics.
"""

from __future__ import annotations

import difflib
import errno
import importlib.resources
import itertools
import os
import re
import stat
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from mrules import ast
from mrules.diagnostics import Diagnostic, RuleSetError, Severity, printable
from mrules.parser import Parsed, parse_recovering
from mrules.source import Source

__all__ = [
    "EMPTY_PATH",
    "NOT_A_FOLDER",
    "RULE_SUFFIX",
    "UNSEARCHED_FOLDERS",
    "LoadError",
    "LoadResult",
    "RefusedFile",
    "decode",
    "display_path",
    "library_files",
    "load",
    "load_text",
    "not_utf8",
    "printable_path",
    "read_rule_file",
    "rule_files",
    "shown_path",
    "unsearched",
    "walk_below",
]

RULE_SUFFIX = ".mr"
LIBRARY_PREFIX = "library/"
EMPTY_PATH = "an empty path is not the current folder (give '.' for it)"
"""Why an empty path is refused: `Path("")` is the folder `.`, so `mrules fmt ""` reformatted
every rule file below the current folder, and `mrules.run("", ...)` ran them all."""
UNSEARCHED_FOLDERS = frozenset({".venv", "venv", "node_modules", "__pycache__"})
"""Folders a folder's rule files are not looked for in, with every hidden one (`.git`):
a virtual environment holding mrules has the bundled library's `*.mr` files, which
`mrules lint .` took for the project's own. A file in one is read when given or included."""
MAX_INCLUDE_DEPTH = 32
"""How long a chain of includes may be (a file including a file including...)."""
MAX_INCLUDE_LENGTH = 255
"""The longest include path, in characters."""


class LoadError(RuleSetError):
    """A rule set that cannot be read at all (exit status 2): no such path, not UTF-8.

    A `mrules.api.RuleSetError` with no diagnostics, so that code catching that around
    `mrules.run` catches it around `mrules.load` too (both raise this for one path)."""


@dataclass
class LoadResult:
    """The parsed files of a rule set, their sources, and every parse diagnostic."""

    program: ast.Program
    sources: dict[str, Source] = field(default_factory=dict)
    diagnostics: list[Diagnostic] = field(default_factory=list)
    unparsed: dict[str, tuple[ast.Span, ...]] = field(default_factory=dict)
    """Per file, the spans of the items skipped after syntax errors."""
    real_paths: dict[str, str] = field(default_factory=dict)
    """Per file read from disk, its real path: the shown one is not always it (a name
    that is not UTF-8 is shown with `\\xNN` escapes)."""
    library: set[str] = field(default_factory=set)
    """The shown paths of the files of the bundled library (`library/NAME.mr`): a
    project's own folder may be named `library` too."""
    refused: set[str] = field(default_factory=set)
    """The shown paths of the rule files refused unread (MR024: a link out of the rule
    root, a pipe...): not in `sources`, yet files of the project that `lint` counts."""

    @property
    def has_errors(self) -> bool:
        return any(d.is_error for d in self.diagnostics)


def display_path(path: str | Path) -> str:
    """A path as messages show it: relative to the working folder when inside it."""
    if str(path) == "-":
        return "-"
    real = Path(os.path.realpath(path))  # not `resolve()`: a loop of links is no RuntimeError
    try:
        return real.relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return real.as_posix()


def decode(data: bytes, shown: str) -> str:
    """Rule files are UTF-8 (a BOM is allowed); anything else is a LoadError.

    Lines end with `\n`, `\r\n` or a lone `\r` (as every editor shows them); all
    three become `\n`, so a comment ends where the editor shows its line end."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line, what = not_utf8(data, e)
        raise LoadError(f"{shown}:{line}: {what}") from None
    return text.replace("\r\n", "\n").replace("\r", "\n")


def not_utf8(data: bytes, e: UnicodeDecodeError) -> tuple[int, str]:
    """Where `data`, decoded with `utf-8-sig`, stops being UTF-8: the line, and what to say
    (`not UTF-8 text (byte 0xNN at offset N); save the file as UTF-8`). The codec counts
    its offsets after a BOM, which named the wrong byte, offset and line."""
    at = e.start + (3 if data.startswith(b"\xef\xbb\xbf") else 0)
    line = data[:at].count(b"\n") + 1
    return line, f"not UTF-8 text (byte 0x{data[at]:02x} at offset {at}); save the file as UTF-8"


def library_files() -> list[str]:
    """Names of the bundled library files, as `include "library/NAME"` takes them."""
    root = importlib.resources.files("mrules").joinpath("library")
    return sorted(
        p.name[: -len(RULE_SUFFIX)] for p in root.iterdir() if p.name.endswith(RULE_SUFFIX)
    )


class _Refused(Exception):
    """A rule file that is never read: why, and the hint that goes with it."""

    def __init__(self, code: str, message: str, hint: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.hint = hint

    def diagnostic(self, path: str, span: ast.Span = ast.NO_SPAN) -> Diagnostic:
        """The error that reports the refusal at `path` (the include that named the file)."""
        return Diagnostic(
            code=self.code,
            severity=Severity.ERROR,
            message=self.message,
            path=path,
            start=span.start,
            end=span.end,
            hint=self.hint,
        )


class RefusedFile(LoadError):
    """A rule file refused unread (MR024: a link out of the rule root, a loop, a link to
    nothing, not a regular file, cannot be opened); `diagnostic` reports it as `load`
    does, so that a command can go on with the other files."""

    def __init__(self, message: str, diagnostic: Diagnostic) -> None:
        super().__init__(message)
        self.diagnostic = diagnostic


def _link_path(path: Path) -> str:
    """How messages name a path without following its links (a refused link, say)."""
    text = os.path.abspath(path)
    cwd = os.getcwd()
    if text.startswith(cwd + os.sep):
        text = text[len(cwd) + 1 :]
    return printable_path(text)


def printable_path(text: str) -> str:
    """A path as text that can always be printed: bytes that are not UTF-8 as `\\xNN`."""
    if not _UNDECODED_RE.search(text):
        return text
    return os.fsencode(text).decode("utf-8", "backslashreplace")


_UNDECODED_RE = re.compile("[\udc80-\udcff]")


def shown_path(text: str) -> str:
    """A path as a message shows it: bytes that are not UTF-8 as `\\xNN` (`printable_path`),
    and a control character (a newline, an escape) as an escape, so that a name can neither
    steer the terminal nor split a message's line in two."""
    return printable(printable_path(text))


def _real_path(path: Path) -> Path:
    """The path with every link resolved; `_Refused` when it cannot be."""
    try:
        return Path(os.path.realpath(path, strict=True))
    except FileNotFoundError:
        raise _Refused(
            "MR024",
            f"{_link_path(path)} is a link to nothing",
            "remove the link or make it point to a rule file",
        ) from None
    except (OSError, RuntimeError, ValueError) as e:
        if getattr(e, "errno", None) == errno.ELOOP or isinstance(e, RuntimeError):
            raise _Refused(
                "MR024",
                f"{_link_path(path)} is a loop of symbolic links",
                "make the link point to a rule file",
            ) from None
        reason = getattr(e, "strerror", None) or str(e)
        raise _Refused(
            "MR024",
            f"cannot read {_link_path(path)}: {reason}",
            "check the path and its permissions",
        ) from None


def _read_regular(real: Path) -> bytes:
    """The bytes of a regular file; FIFOs, devices and sockets are refused unread."""
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(real, flags | getattr(os, "O_CLOEXEC", 0))
    except OSError as e:
        raise _Refused(
            "MR024",
            f"cannot read {printable_path(str(real))}: {e.strerror or e}",
            "check the file's permissions",
        ) from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise _Refused(
                "MR024",
                f"{printable_path(display_path(real))} is not a regular file",
                "rule files are plain files; devices, pipes and sockets are never read",
            )
        chunks = []
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
        return b"".join(chunks)
    except OSError as e:
        raise _Refused(
            "MR024",
            f"cannot read {printable_path(display_path(real))}: {e.strerror or e}",
            "check the file",
        ) from None
    finally:
        os.close(fd)


def _inside(path: Path, root: Path, real_root: Path, code: str) -> Path:
    """The real path of a rule file, if it lies inside the real rule root; else `_Refused`."""
    real = _real_path(path)
    if not real.is_relative_to(real_root):
        raise _Refused(
            code,
            f"{_link_path(path)} leads to {printable_path(str(real))}, "
            f"outside the rule root {_link_path(root)}",
            "rule files and their links stay inside the rule folder; "
            "copy the file in if it belongs to the rule set",
        )
    return real


def read_rule_file(path: Path, root: Path) -> tuple[Path, bytes]:
    """The real path and the bytes of one rule file of `rule_files`, read as `load` reads it.

    Raises:
        RefusedFile: the file is refused (a link out of the root, a loop, not a regular
            file, cannot be opened); it was not read, and the message quotes none of it.
        LoadError: the rule root cannot be read.
    """
    try:
        real_root = Path(os.path.realpath(root, strict=True))
        real = _inside(path, root, real_root, "MR024")
        return real, _read_regular(real)
    except _Refused as r:
        raise RefusedFile(f"{r.message}; {r.hint}", r.diagnostic(_link_path(path))) from None
    except (OSError, RuntimeError, ValueError) as e:
        raise LoadError(
            f"{_link_path(root)}: cannot read: {getattr(e, 'strerror', None) or e}"
        ) from None


class _Loader:
    def result(self) -> LoadResult:
        return LoadResult(
            ast.Program(files=tuple(self.files)),
            self.sources,
            self.diagnostics,
            self.unparsed,
            self.real_paths,
            self.library,
            self.refused,
        )

    def __init__(
        self,
        overlays: Mapping[str, str] | None = None,
        cache: dict[tuple[str, str], tuple[Source, Parsed]] | None = None,
    ) -> None:
        self.overlays = overlays or {}
        self.cache = cache
        self.files: list[ast.File] = []
        self.sources: dict[str, Source] = {}
        self.diagnostics: list[Diagnostic] = []
        self.seen: set[str] = set()
        self.unparsed: dict[str, tuple[ast.Span, ...]] = {}
        self.real_paths: dict[str, str] = {}
        self.library: set[str] = set()
        self.refused: set[str] = set()
        self._roots: dict[Path, Path] = {}

    def _real_root(self, root: Path) -> Path:
        real = self._roots.get(root)
        if real is None:
            try:
                real = Path(os.path.realpath(root, strict=True))
            except (OSError, RuntimeError, ValueError) as e:
                raise LoadError(
                    f"{_link_path(root)}: cannot read the rule folder: "
                    f"{getattr(e, 'strerror', None) or e}"
                ) from None
            real = self._roots[root] = real
        return real

    def add_disk_file(
        self, path: Path, root: Path, depth: int = 0, at: tuple[str, ast.Span] | None = None
    ) -> None:
        """Read, parse and follow one rule file, unless it must be refused.

        A file is read by its real path, and only if that path is inside the real
        rule root and names a regular file; a refused file is reported (at the
        include that named it, if any) and never opened, so no excerpt of it exists.
        """
        try:
            if str(path) in self.overlays and not os.path.lexists(path):
                real = path  # an unsaved buffer of a file not on disk yet: its own key
            else:
                real = _inside(path, root, self._real_root(root), "MR021" if at else "MR024")
            key = str(real)
            if key in self.seen:
                return
            overlay = self.overlays.get(key)
            data = _read_regular(real) if overlay is None else b""
        except _Refused as r:
            where, span = at if at else (_link_path(path), ast.NO_SPAN)
            if at is None:  # a rule file itself; a refused include is its includer's error
                self.refused.add(where)
            self.diagnostics.append(r.diagnostic(where, span))
            return
        self.seen.add(key)
        shown = printable_path(display_path(real))
        self.real_paths[shown] = key
        self.add_text(decode(data, shown) if overlay is None else overlay, shown, root, depth)

    def add_library_file(self, name: str, depth: int) -> bool:
        shown = f"{LIBRARY_PREFIX}{name}{RULE_SUFFIX}"
        if shown in self.seen:
            return True
        if "/" in name or "\\" in name or name in ("", ".", ".."):
            return False
        resource = importlib.resources.files("mrules").joinpath("library", f"{name}{RULE_SUFFIX}")
        try:
            if not resource.is_file():
                return False
            data = resource.read_bytes()
        except (OSError, ValueError):
            return False
        self.seen.add(shown)
        self.library.add(shown)
        self.add_text(decode(data, shown), shown, None, depth)
        return True

    def add_text(self, text: str, shown: str, root: Path | None, depth: int = 0) -> None:
        if self.cache is None:
            self.sources[shown] = Source(text, shown)
            file, diags, unparsed = parse_recovering(text, shown)
        else:
            entry = self.cache.get((shown, text))
            if entry is None:
                entry = self.cache[shown, text] = (
                    Source(text, shown),
                    parse_recovering(text, shown),
                )
            self.sources[shown] = entry[0]
            file, diags, unparsed = entry[1]
            diags = list(diags)
        self.diagnostics.extend(diags)
        if unparsed:
            self.unparsed[shown] = unparsed
        broken = {d.start for d in diags if d.code == "MR015"}
        for item in file.items:
            if isinstance(item, ast.Include) and item.path.span.start not in broken:
                self.include(item, shown, root, depth)
        self.files.append(file)

    def include(self, item: ast.Include, shown: str, root: Path | None, depth: int) -> None:
        target = item.path.text
        span = item.path.span

        def error(code: str, message: str, hint: str | None = None) -> None:
            self.diagnostics.append(
                Diagnostic(
                    code=code,
                    severity=Severity.ERROR,
                    message=message,
                    path=shown,
                    start=span.start,
                    end=span.end,
                    hint=hint,
                )
            )

        if len(target) > MAX_INCLUDE_LENGTH:
            error(
                "MR023",
                f"include path of {len(target):,} characters",
                f"an include path has at most {MAX_INCLUDE_LENGTH} characters",
            )
            return
        if "\x00" in target:
            error("MR021", "include path holds a NUL character", "remove it")
            return
        if depth >= MAX_INCLUDE_DEPTH:
            error(
                "MR022",
                f"includes nested more than {MAX_INCLUDE_DEPTH} deep",
                "include shared files from the top-level file rather than in a chain",
            )
            return
        if target.startswith(LIBRARY_PREFIX):
            name = target[len(LIBRARY_PREFIX) :].removesuffix(RULE_SUFFIX)
            if not self.add_library_file(name, depth + 1):
                close = difflib.get_close_matches(name, library_files(), n=1)
                error(
                    "MR020",
                    f"no library file '{name}'",
                    f"did you mean 'library/{close[0]}'?"
                    if close
                    else "available: " + ", ".join(library_files()),
                )
            return
        if root is None:
            error(
                "MR021",
                f"cannot include '{target}' here",
                "only library files can be included from a library file or a string",
            )
            return
        rel = PurePosixPath(target)
        if rel.is_absolute() or ".." in rel.parts:
            error(
                "MR021",
                f"include '{target}' leaves the rule root",
                "includes are relative to the rule folder and stay inside it",
            )
            return
        name = target if rel.suffix == RULE_SUFFIX else target + RULE_SUFFIX
        # Rule text is UTF-8, and so are the file names it gives: named as the OS names
        # them, also under a locale that is not UTF-8 (`LC_ALL=C`, `PYTHONUTF8=0`), where
        # `include "partagé/listes"` found no file `partagé/listes.mr`.
        path = root / os.fsdecode(name.encode("utf-8"))
        try:
            exists = os.path.lexists(path)
        except (OSError, ValueError):
            exists = False
        if not exists:
            error(
                "MR020",
                f"no rule file '{target}' under {printable_path(display_path(root))}",
                _include_hint(root, target),
            )
            return
        if os.path.isdir(path):
            error(
                "MR020",
                f"'{target}' is a folder, not a rule file under"
                f" {printable_path(display_path(root))}",
                "an include names one file; the files of a folder given to a command are"
                " all loaded already",
            )
            return
        self.add_disk_file(path, root, depth + 1, at=(shown, span))


def _include_hint(root: Path, target: str) -> str:
    """A near file name under the rule root, or how an include path is written."""
    try:  # the first 10,000 rule files found: an error path, on a folder of any size
        names = [
            p.relative_to(root).as_posix().removesuffix(RULE_SUFFIX)
            for p in itertools.islice(_below(root, unreadable=False), 10_000)
        ]
    except (OSError, ValueError):
        names = []
    close = difflib.get_close_matches(target.removesuffix(RULE_SUFFIX), names, n=1)
    if close:
        return f"did you mean '{printable_path(close[0])}'?"
    return (
        'an include is a path under the rule folder, `.mr` optional (`include "shared/scoring"`),'
        ' or a bundled file: `include "library/pardot-default-scoring"`'
    )


NOT_A_FOLDER = "not a folder (a file: give it without the trailing /)"
"""What a file given with a trailing `/` is (`rules.mr/`), which the system refuses (ENOTDIR)
and `Path` would read as the file."""


def rule_files(paths: Iterable[str | Path]) -> list[tuple[Path, Path]]:
    """(file, root) pairs for the given paths, in load order; LoadError if none, for
    an empty path (`EMPTY_PATH`), or for a file named with a trailing `/` (`rules.mr/`: not a
    folder, as the system says).

    A folder contributes every `*.mr` entry below it that is not a folder: links,
    pipes and devices included, so that the loader refuses them out loud; hidden
    folders and virtual environments below it (`unsearched`) are not searched.
    """
    found: list[tuple[Path, Path]] = []
    for raw in paths:
        if isinstance(raw, str) and not raw:
            raise LoadError(EMPTY_PATH)
        path = Path(raw)
        shown = shown_path(str(raw))  # a name may hold any byte but `/` and NUL
        try:
            if path.is_dir():
                files = _rule_files_below(path)
                if not files:
                    raise LoadError(f"{shown}: no rule files (*{RULE_SUFFIX}) in this folder")
                found.extend((f, path) for f in files)
            elif (
                isinstance(raw, str) and raw.endswith("/") and (path.exists() or path.is_symlink())
            ):
                # `Path` drops the slash, but the system refuses `rules.mr/` (ENOTDIR)
                raise LoadError(f"{shown}: {NOT_A_FOLDER}")
            elif path.exists() or path.is_symlink():
                found.append((path, path.parent))
            elif raw == "-":  # lint, fmt and parse read standard input before they load
                raise LoadError(f"-: {NOT_STDIN}")
            else:
                raise LoadError(f"{shown}: no such file or folder")
        except OSError as e:
            raise LoadError(f"{shown}: cannot read: {e.strerror or e}") from None
    return found


NOT_STDIN = (
    "this command reads rules from files and folders, not standard input (`mrules lint -`"
    " checks rules given there; a file named - is ./-)"
)
"""Why `-` is no rule set outside lint, fmt and parse: it said `-: no such file or folder`."""


def unsearched(folder_name: str) -> bool:
    """Whether a folder below a rule folder is left out: hidden, or `UNSEARCHED_FOLDERS`."""
    return folder_name.startswith(".") or folder_name in UNSEARCHED_FOLDERS


def _rule_files_below(folder: Path) -> list[Path]:
    """Every `*.mr` entry below `folder` that is not a folder, in sorted order; links to
    folders are not followed, and the folders `unsearched` leaves out are not entered.

    A folder below that cannot be read (a path longer than the system allows, no
    permission) is listed too, so that the loader refuses it out loud (MR024) rather
    than leave its rule files out unsaid.
    """
    return sorted(_below(folder, unreadable=True))


def _below(folder: Path, unreadable: bool) -> Iterator[Path]:
    """The `*.mr` entries below `folder` (`_rule_files_below`), as they are found, and with
    `unreadable` the folders below it that cannot be read (`walk_below`)."""
    for path, error in walk_below(folder, unsearched):
        if error is None:
            if path.name.endswith(RULE_SUFFIX):
                yield path
        elif path is folder:
            raise error  # the folder given: `rule_files` says it cannot be read
        elif unreadable:
            yield path


def walk_below(
    folder: Path, skipped: Callable[[str], bool]
) -> Iterator[tuple[Path, OSError | None]]:
    """The folder walk every command shares (`lint`, `fmt`, `run`, `test`, the language
    server): each entry below `folder` that is not a folder, as `(path, None)`, and each
    folder that cannot be read (no permission, a path longer than the system allows),
    `folder` itself included, as `(folder, the error)`; the walk goes on past it.

    A link to a folder found below `folder` is never entered nor yielded, as git treats
    it: a link to `/` in a tree is not a walk of the whole file system, and a loop of
    links ends. `folder` itself is walked even when it is a link (the command named it).
    Links to files, links to nothing, pipes and devices are yielded: the caller refuses
    what it cannot read. A folder whose name `skipped` takes is not entered. The walk
    keeps a stack, not a recursion: a tree 1000 folders deep is no RecursionError."""
    stack = [folder]
    while stack:
        top = stack.pop()
        try:
            with os.scandir(top) as it:
                entries = list(it)
        except OSError as error:
            yield top, error
            continue
        below = []
        for e in entries:
            try:
                is_dir, link = e.is_dir(), e.is_symlink()
            except OSError:  # a link whose target cannot be looked at: left to the caller
                is_dir = link = False
            if not is_dir:
                yield Path(e.path), None
            elif not link and not skipped(e.name):
                below.append(Path(e.path))
        stack.extend(reversed(below))


def load(
    paths: Sequence[str | Path],
    overlays: Mapping[str, str] | None = None,
    cache: dict[tuple[str, str], tuple[Source, Parsed]] | None = None,
) -> LoadResult:
    """Load and parse a rule set from files and folders.

    `overlays` maps the real path of a file to the text to use instead of what is
    on disk (an editor's unsaved buffer; such a file need not exist yet, if it is
    given or lies in a folder given). `cache` keeps each file's Source and parse by (path shown,
    text) between loads, so that loading again after one file changed parses only
    that file.

    Raises:
        LoadError: a path is missing or unreadable, a folder has no rule files,
            or a file is not UTF-8.
    """
    loader = _Loader(overlays, cache)
    found = rule_files(paths) if not overlays else _with_unsaved(paths, overlays)
    for path, root in found:
        loader.add_disk_file(path, root)
    return loader.result()


def _with_unsaved(
    paths: Sequence[str | Path], overlays: Mapping[str, str]
) -> list[tuple[Path, Path]]:
    """`rule_files`, plus the overlaid files not on disk yet: given, or under a folder
    given."""
    try:
        found = rule_files(paths)
    except LoadError:
        found = []
    known = {os.path.realpath(f) for f, _ in found}
    for path in paths:
        folder = Path(path)
        real = os.path.realpath(folder)
        if real in overlays and real not in known and not os.path.exists(real):
            found.append((Path(real), folder.parent))  # a file given, not on disk yet
            known.add(real)
        if not folder.is_dir():
            continue
        real_folder = os.path.realpath(folder)
        for key in sorted(overlays):
            if (
                key not in known
                and key.endswith(RULE_SUFFIX)
                and key.startswith(real_folder + os.sep)
                and not os.path.exists(key)
                and not any(  # in a hidden folder: not part of it, as on disk
                    unsearched(part) for part in Path(key[len(real_folder) + 1 :]).parent.parts
                )
            ):
                found.append((Path(key), folder))
                known.add(key)
    if not found:
        return rule_files(paths)  # the LoadError of no rule files
    return found


def load_text(text: str, path: str = "<string>", root: Path | None = None) -> LoadResult:
    """Load a rule set from one string (library includes work; file includes only
    when `root`, the folder they are relative to, is given)."""
    loader = _Loader()
    loader.add_text(text, path, root)
    return loader.result()
