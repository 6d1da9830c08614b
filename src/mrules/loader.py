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
import importlib.resources
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from mrules import ast
from mrules.diagnostics import Diagnostic, Severity
from mrules.parser import parse_text
from mrules.source import Source

__all__ = [
    "RULE_SUFFIX",
    "LoadError",
    "LoadResult",
    "decode",
    "display_path",
    "library_files",
    "load",
    "load_text",
    "rule_files",
]

RULE_SUFFIX = ".mr"
LIBRARY_PREFIX = "library/"


class LoadError(Exception):
    """A rule set that cannot be read at all (exit status 2)."""


@dataclass
class LoadResult:
    """The parsed files of a rule set, their sources, and every parse diagnostic."""

    program: ast.Program
    sources: dict[str, Source] = field(default_factory=dict)
    diagnostics: list[Diagnostic] = field(default_factory=list)

    @property
    def has_errors(self) -> bool:
        return any(d.is_error for d in self.diagnostics)


def display_path(path: str | Path) -> str:
    """A path as messages show it: relative to the working folder when inside it."""
    if str(path) == "-":
        return "-"
    path = Path(path)
    try:
        return path.resolve().relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return path.resolve().as_posix()


def decode(data: bytes, shown: str) -> str:
    """Rule files are UTF-8 (a BOM is allowed); anything else is a LoadError."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise LoadError(
            f"{shown}:{line}: not UTF-8 text (byte 0x{data[e.start]:02x} at offset {e.start}); "
            "save the file as UTF-8"
        ) from None
    return text.replace("\r\n", "\n")


def library_files() -> list[str]:
    """Names of the bundled library files, as `include "library/NAME"` takes them."""
    root = importlib.resources.files("mrules").joinpath("library")
    return sorted(
        p.name[: -len(RULE_SUFFIX)] for p in root.iterdir() if p.name.endswith(RULE_SUFFIX)
    )


class _Loader:
    def __init__(self) -> None:
        self.files: list[ast.File] = []
        self.sources: dict[str, Source] = {}
        self.diagnostics: list[Diagnostic] = []
        self.seen: set[str] = set()

    def add_disk_file(self, path: Path, root: Path) -> None:
        key = str(path.resolve())
        if key in self.seen:
            return
        self.seen.add(key)
        shown = display_path(path)
        try:
            data = path.read_bytes()
        except OSError as e:
            raise LoadError(f"{shown}: cannot read: {e.strerror or e}") from None
        self.add_text(decode(data, shown), shown, root)

    def add_library_file(self, name: str) -> bool:
        shown = f"{LIBRARY_PREFIX}{name}{RULE_SUFFIX}"
        if shown in self.seen:
            return True
        resource = importlib.resources.files("mrules").joinpath("library", f"{name}{RULE_SUFFIX}")
        if "/" in name or not resource.is_file():
            return False
        self.seen.add(shown)
        self.add_text(decode(resource.read_bytes(), shown), shown, None)
        return True

    def add_text(self, text: str, shown: str, root: Path | None) -> None:
        self.sources[shown] = Source(text, shown)
        file, diags = parse_text(text, shown)
        self.diagnostics.extend(diags)
        if file is None:
            return
        for item in file.items:
            if isinstance(item, ast.Include):
                self.include(item, shown, root)
        self.files.append(file)

    def include(self, item: ast.Include, shown: str, root: Path | None) -> None:
        target = item.path.text
        span = item.path.span

        def error(code: str, message: str, hint: str | None = None) -> None:
            self.diagnostics.append(
                Diagnostic(code=code, severity=Severity.ERROR, message=message, path=shown,
                           start=span.start, end=span.end, hint=hint)
            )

        if target.startswith(LIBRARY_PREFIX):
            name = target[len(LIBRARY_PREFIX):].removesuffix(RULE_SUFFIX)
            if not self.add_library_file(name):
                close = difflib.get_close_matches(name, library_files(), n=1)
                error("MR020", f"no library file '{name}'",
                      f"did you mean 'library/{close[0]}'?" if close
                      else "available: " + ", ".join(library_files()))
            return
        if root is None:
            error("MR021", f"cannot include '{target}' here",
                  "only library files can be included from a library file or a string")
            return
        rel = PurePosixPath(target)
        if rel.is_absolute() or ".." in rel.parts:
            error("MR021", f"include '{target}' leaves the rule root",
                  "includes are relative to the rule folder and stay inside it")
            return
        path = root / (target if rel.suffix == RULE_SUFFIX else target + RULE_SUFFIX)
        try:
            inside = path.resolve().is_relative_to(root.resolve())
        except OSError:
            inside = False
        if not inside:
            error("MR021", f"include '{target}' leaves the rule root",
                  "includes are relative to the rule folder and stay inside it")
            return
        if not path.is_file():
            error("MR020", f"no rule file '{target}' under {display_path(root)}")
            return
        self.add_disk_file(path, root)


def rule_files(paths: Iterable[str | Path]) -> list[tuple[Path, Path]]:
    """(file, root) pairs for the given paths, in load order; LoadError if none."""
    found: list[tuple[Path, Path]] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            files = sorted(p for p in path.rglob(f"*{RULE_SUFFIX}") if p.is_file())
            if not files:
                raise LoadError(f"{raw}: no rule files (*{RULE_SUFFIX}) in this folder")
            found.extend((f, path) for f in files)
        elif path.is_file():
            found.append((path, path.parent))
        elif path.exists():
            raise LoadError(f"{raw}: not a file or folder")
        else:
            raise LoadError(f"{raw}: no such file or folder")
    return found


def load(paths: Sequence[str | Path]) -> LoadResult:
    """Load and parse a rule set from files and folders.

    Raises:
        LoadError: a path is missing or unreadable, a folder has no rule files,
            or a file is not UTF-8.
    """
    loader = _Loader()
    for path, root in rule_files(paths):
        loader.add_disk_file(path, root)
    return LoadResult(ast.Program(files=tuple(loader.files)), loader.sources, loader.diagnostics)


def load_text(text: str, path: str = "<string>") -> LoadResult:
    """Load a rule set from one string (library includes work; file includes do not)."""
    loader = _Loader()
    loader.add_text(text, path, None)
    return LoadResult(ast.Program(files=tuple(loader.files)), loader.sources, loader.diagnostics)
