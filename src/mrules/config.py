"""Project configuration: `[tool.mrules]` in `pyproject.toml`, or an `mrules.toml`.

The configuration file is found from the rule path upward: the first folder
holding an `mrules.toml`, or a `pyproject.toml` with a `[tool.mrules]` table,
wins (`mrules.toml` first when a folder has both). Paths in it are relative to
its folder. Keys (docs/configuration.md):

    rules = ["rules"]            # what `mrules lint` checks when given no path
    select = ["MR1", "MR312"]    # report only these codes (or code prefixes), and errors
    ignore = ["MR109"]           # never report these codes (or code prefixes), unless errors
    strict = true                # warnings fail the run, as with --strict
    format = "text"              # text, json, github or sarif

A file that cannot be read, is not TOML, or has an unknown key or a value of
the wrong type raises `ConfigError` (exit status 2): a typo in the
configuration should never silently turn a check off.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path

from mrules.diagnostics import Diagnostic, Severity

__all__ = ["FORMATS", "Config", "ConfigError", "find_config", "load_config"]

FORMATS = ("text", "json", "github", "sarif")
CONFIG_NAMES = ("mrules.toml", "pyproject.toml")
_CODE_RE = re.compile(r"MR[0-9]{0,3}")


class ConfigError(Exception):
    """A configuration file that cannot be used (exit status 2)."""


@dataclass(frozen=True)
class Config:
    """The settings `mrules lint` starts from; command-line options override them."""

    path: Path | None = None  # the file they came from, None for the defaults
    rules: tuple[Path, ...] = ()
    select: tuple[str, ...] = ()  # empty: every code
    ignore: tuple[str, ...] = ()
    strict: bool = False
    format: str = "text"

    def wants(self, code: str) -> bool:
        """Whether a diagnostic with this code is reported.

        >>> Config(select=("MR1",), ignore=("MR109",)).wants("MR103")
        True
        >>> Config(select=("MR1",), ignore=("MR109",)).wants("MR109")
        False
        """
        if self.select and not code.startswith(self.select):
            return False
        return not (self.ignore and code.startswith(self.ignore))

    def reports(self, diag: Diagnostic) -> bool:
        """Whether `lint` shows this diagnostic: every error, and the codes it `wants`.

        An error is never filtered out: `mrules run` refuses a rule set with one, so a
        lint that hid it would pass rules that cannot run.
        """
        return diag.severity is Severity.ERROR or self.wants(diag.code)

    def with_codes(self, select: Iterable[str] = (), ignore: Iterable[str] = ()) -> Config:
        """These settings with more codes selected or ignored (from the command line)."""
        sel, ign = tuple(select), tuple(ignore)
        for code in (*sel, *ign):
            _check_code(code, "the command line")
        return replace(self, select=sel or self.select, ignore=(*self.ignore, *ign))


def _check_code(code: str, where: str) -> None:
    if not _CODE_RE.fullmatch(code):
        raise ConfigError(f"{where}: '{code}' is not a code or a code prefix like MR3 or MR312")


def find_config(start: Path) -> Path | None:
    """The configuration file that applies to `start` (a file or folder), or None."""
    try:
        here = start.resolve()
        if not here.is_dir():  # (a name too long for the system is an OSError here)
            here = here.parent
    except (OSError, RuntimeError):
        return None
    for folder in (here, *here.parents):
        for name in CONFIG_NAMES:
            candidate = folder / name
            try:
                if not candidate.is_file():
                    continue
                if name == "pyproject.toml" and not _has_table(
                    candidate.read_text("utf-8-sig", errors="replace")
                ):
                    continue
            except OSError:
                continue
            return candidate
    return None


def _has_table(text: str) -> bool:
    """Whether a pyproject.toml's text has a `[tool.mrules]` table, however written.

    TOML also writes it with dotted keys (`tool.mrules.strict = true`, or
    `mrules.strict = true` under `[tool]`) or an inline table; a file that holds
    the header is kept even when it is not valid TOML, for `load_config` to say so.
    A header in a comment (a table commented out) is no table.

    >>> _has_table('tool.mrules.strict = true')
    True
    >>> _has_table('dependencies = ["mrules"]')
    False
    >>> _has_table('# [tool.mrules]\\n# strict = true')
    False
    """
    if "mrules" not in text:
        return False
    try:
        tool = tomllib.loads(text).get("tool")
    except tomllib.TOMLDecodeError:
        return "[tool.mrules" in text
    if isinstance(tool, dict):
        return "mrules" in tool
    return tool is not None and "[tool.mrules" in text  # `tool = 1`: load_config says so


def _empty_path_line(text: str, pyproject: bool) -> int | None:
    """The line of the empty string in `rules` (TOML readers give no positions): each
    `""` or `''` of the text in turn is written as a marker, and the one that puts the
    marker in `rules` is it. None when none does (a path the text escapes into being)."""
    marker = "mrules-empty-path"
    for m in re.finditer(r"(?<![\"'\\])(\"\"|'')(?![\"'])", text):
        quote = m.group(1)[0]
        try:
            data = tomllib.loads(text[: m.start()] + quote + marker + quote + text[m.end() :])
        except tomllib.TOMLDecodeError:
            continue
        table = data.get("tool", {}) if pyproject else {"mrules": data}
        table = table.get("mrules", {}) if isinstance(table, dict) else {}
        rules = table.get("rules") if isinstance(table, dict) else None
        if rules == marker or (isinstance(rules, list) and marker in rules):
            return text.count("\n", 0, m.start()) + 1
    return None


def load_config(path: Path) -> Config:
    """The settings of one configuration file; ConfigError if it cannot be used."""
    from mrules.loader import not_utf8, shown_path

    shown = shown_path(str(path))  # a byte that is not UTF-8 as \xNN, a newline escaped
    raw = b""
    try:
        raw = path.read_bytes()
        # a byte order mark (Notepad, PowerShell's utf8) is no TOML, but says UTF-8 too
        data = tomllib.loads(raw.decode("utf-8-sig"))
    except OSError as e:
        raise ConfigError(f"{shown}: cannot read: {e.strerror or e}") from None
    except UnicodeDecodeError as e:
        if raw.startswith(b"SQLite format 3\x00"):  # a store given as --config
            raise ConfigError(
                f"{shown}: an SQLite database (a store?), not a configuration file"
            ) from None
        line, what = not_utf8(raw, e)
        raise ConfigError(f"{shown}:{line}: {what}") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{shown}: not valid TOML: {e}") from None
    if path.name == "pyproject.toml":
        tool = data.get("tool", {})
        if isinstance(tool, dict) and "mrules" not in tool:  # `--config` names it, or a typo
            raise ConfigError(f"{shown} has no [tool.mrules] table")
        table = tool.get("mrules", {}) if isinstance(tool, dict) else tool
        where = f"{shown} [tool.mrules]"
    else:
        table = data
        where = shown
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: must be a table")
    known = {"rules", "select", "ignore", "strict", "format"}
    unknown = sorted(set(table) - known)
    if unknown:
        raise ConfigError(
            f"{where}: unknown key '{unknown[0]}'; the keys are " + ", ".join(sorted(known))
        )

    def strings(key: str) -> tuple[str, ...]:
        value = table.get(key, [])
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{where}: '{key}' must be a list of strings")
        return tuple(value)

    # `mr109` as the command line takes it: codes are upper case
    select, ignore = (tuple(c.upper() for c in strings(k)) for k in ("select", "ignore"))
    for code in (*select, *ignore):
        _check_code(code, where)
    strict = table.get("strict", False)
    if not isinstance(strict, bool):
        raise ConfigError(f"{where}: 'strict' must be true or false")
    fmt = table.get("format", "text")
    if fmt not in FORMATS:
        raise ConfigError(f"{where}: 'format' must be one of " + ", ".join(FORMATS))
    if "" in strings("rules"):  # `path.parent / ""` is the file's folder, as `lint ""` is not
        found = _empty_path_line(raw.decode("utf-8-sig"), path.name == "pyproject.toml")
        at = f"{shown}:{found}" if found else where
        raise ConfigError(
            f"{at}: 'rules' needs a file or folder: an empty path is not this file's folder"
            ' (write "." for it)'
        )
    rules = tuple(path.parent / r for r in strings("rules"))
    return Config(path=path, rules=rules, select=select, ignore=ignore, strict=strict, format=fmt)
