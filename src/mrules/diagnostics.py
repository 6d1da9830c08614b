"""Diagnostics as data, and their rendering as text, JSON, GitHub annotations and SARIF.

Every problem mrules finds in a rule file, from the parser or the checker, is a
`Diagnostic`: a stable code, a severity, a terse lowercase message, the span it
is about, related spans and an optional hint. Renderers live here so that the
CLI, the tests and the snapshots all see the same text.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Container, Iterable, Mapping
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict

from mrules.source import Source

__all__ = [
    "DOCS_URL",
    "PROJECT_URL",
    "Diagnostic",
    "Related",
    "RuleSetError",
    "Severity",
    "excerpt",
    "help_uri",
    "plural",
    "printable",
    "render_github",
    "render_json",
    "render_sarif",
    "render_text",
    "sort_diagnostics",
]


class Severity(StrEnum):
    ERROR = "error"
    WARNING = "warning"


class Related(BaseModel):
    """A second place a diagnostic is about ("first defined here")."""

    model_config = ConfigDict(frozen=True)
    path: str
    start: int
    end: int
    message: str


class Diagnostic(BaseModel):
    """One problem in a rule file: where, what, and what to do about it."""

    model_config = ConfigDict(frozen=True)
    code: str
    severity: Severity
    message: str
    path: str
    start: int
    end: int
    related: tuple[Related, ...] = ()
    hint: str | None = None

    @property
    def is_error(self) -> bool:
        return self.severity is Severity.ERROR


def sort_diagnostics(diags: Iterable[Diagnostic]) -> list[Diagnostic]:
    """Sort by file and position, dropping exact repeats."""
    unique = {(d.path, d.start, d.end, d.code, d.message): d for d in diags}
    return sorted(unique.values(), key=lambda d: (d.path, d.start, d.end, d.code))


_UNPRINTABLE_RE = re.compile(
    "[\x00-\x08\x0a-\x1f\x7f-\x9f\ud800-\udfff"
    # and what reorders or breaks a line as a terminal shows it: the bidirectional
    # controls (a right-to-left override turns the rest of the line around) and the
    # Unicode line and paragraph separators
    "\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029]"
)
_LONG_LINE = 160


def _escape(m: re.Match[str]) -> str:
    code = ord(m.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def plural(n: int, word: str, words: str | None = None) -> str:
    """`n` and the noun that goes with it: one `word`, else `words` (`word` + s).

    >>> plural(1, "event line"), plural(2, "event line"), plural(1_000, "prospect")
    ('1 event line', '2 event lines', '1,000 prospects')
    >>> plural(0, "path"), plural(1, "match", "matches"), plural(2, "match", "matches")
    ('0 paths', '1 match', '2 matches')
    """
    return f"{n:,} {word if n == 1 else words or word + 's'}"


def printable(text: str) -> str:
    """Text that can always be printed, and cannot steer a terminal.

    Control characters (a tab aside), bidirectional controls, line separators and lone
    surrogates become escapes:

    >>> printable("a\\x1b[31mb\\ud800")
    'a\\\\x1b[31mb\\\\ud800'
    """
    if _UNPRINTABLE_RE.search(text) is None:
        return text
    return _UNPRINTABLE_RE.sub(_escape, text)


def _no_surrogates(text: str) -> str:
    """Text a UTF-8 encoder accepts: lone surrogates as escapes (JSON escapes the rest)."""
    if _SURROGATE_RE.search(text) is None:
        return text
    return _SURROGATE_RE.sub(_escape, text)


_SURROGATE_RE = re.compile("[\ud800-\udfff]")


def _clip(text: str, width: int = _LONG_LINE) -> str:
    text = printable(text).replace("\t", "    ")
    return text if len(text) <= width else text[: width - 1] + "…"


def _plain(text: str) -> bool:
    return len(text) <= _LONG_LINE and _UNPRINTABLE_RE.search(text) is None


def _width(text: str) -> int:
    """The columns `text` takes in a terminal: East Asian wide and fullwidth characters
    (CJK, most emoji) take two, combining marks and format characters (a variation
    selector, a zero-width joiner) none, the rest one. Only the caret line uses it:
    columns in `line:col`, JSON, SARIF and the LSP count code points.

    >>> _width("ab"), _width("日本"), _width("e\u0301")
    (2, 4, 1)
    """
    if text.isascii():
        return len(text)
    return sum(_char_width(ch) for ch in text)


def _char_width(ch: str) -> int:
    if unicodedata.east_asian_width(ch) in ("W", "F"):
        return 2
    if unicodedata.category(ch) in ("Mn", "Me", "Cf"):
        return 0
    return 1


def _excerpt(source: Source, start: int, end: int, label: str | None) -> list[str]:
    line, col = source.position(start)
    end_line, end_col = source.position(max(start, end))
    raw = source.line_text(line)
    width = len(str(line + 1))
    gutter = " " * width
    lines = [f"{gutter} |"]
    if line > 1:
        before_line = source.line_text(line - 1)
        shown = before_line.expandtabs(4) if _plain(before_line) else _clip(before_line)
        lines.append(f"{line - 1:>{width}} | {shown}".rstrip())
    if _plain(raw):
        text = raw.expandtabs(4)
        prefix = raw[: col - 1].expandtabs(4)
        if end_line == line:  # a tab in the span stops where it does in the whole line
            run = max(1, _width(raw[: end_col - 1].expandtabs(4)) - _width(prefix))
        else:
            run = max(1, _width(text) - _width(prefix))
    else:  # a long line, or one with control characters: escaped, and cut around the caret
        stop = end_col - 1 if end_line == line else len(raw)
        prefix = printable(raw[: col - 1]).replace("\t", "    ")
        marked = printable(raw[col - 1 : stop]).replace("\t", "    ")
        rest = printable(raw[stop:]).replace("\t", "    ")
        if len(prefix) > 60:
            prefix = "…" + prefix[-59:]
        if len(marked) > 80:
            marked = marked[:79] + "…"
        if len(rest) > 40:
            rest = rest[:39] + "…"
        text = prefix + marked + rest
        run = max(1, _width(marked))
    lines.append(f"{line:>{width}} | {text}".rstrip())
    marker = " " * _width(prefix) + "^" * run  # under the text as a terminal shows it
    lines.append(f"{gutter} | {marker}" + (f" {printable(label)}" if label else ""))
    if line < source.line_count:
        after_line = source.line_text(line + 1)
        if after_line.strip():
            shown = after_line.expandtabs(4) if _plain(after_line) else _clip(after_line)
            lines.append(f"{line + 1:>{width}} | {shown}".rstrip())
    return lines


def excerpt(source: Source, start: int, end: int, label: str | None = None) -> list[str]:
    """The lines around a span with a caret under it, as `render_text` shows a diagnostic
    (for other files' messages: a test file's YAML error)."""
    return _excerpt(source, start, end, label)


def render_text(diags: Iterable[Diagnostic], sources: Mapping[str, Source], limit: int = 50) -> str:
    """Render diagnostics as `path:line:col: severity[CODE]: message` with a caret excerpt.

    Past `limit`, errors are shown before warnings: a run of warnings early in the
    files never hides, behind `... and N more`, an error that fails the check."""
    out: list[str] = []
    diags = list(diags)
    errors = [i for i, d in enumerate(diags) if d.is_error][:limit]
    warnings = [i for i, d in enumerate(diags) if not d.is_error][: limit - len(errors)]
    shown = [diags[i] for i in sorted(errors + warnings)]  # in their order
    for d in shown:
        src = sources.get(d.path)
        line, col = src.position(d.start) if src else (1, 1)
        out.append(
            f"{printable(d.path)}:{line}:{col}: {d.severity.value}[{d.code}]: "
            f"{printable(d.message)}"
        )
        if src is not None:
            out.extend(_excerpt(src, d.start, d.end, d.hint))
        elif d.hint:
            out.append(f"  = hint: {printable(d.hint)}")
        for rel in d.related:
            rsrc = sources.get(rel.path)
            rline, rcol = rsrc.position(rel.start) if rsrc else (1, 1)
            out.append(f"  note: {printable(rel.path)}:{rline}:{rcol}: {printable(rel.message)}")
            if rsrc is not None:
                out.extend("  " + x for x in _excerpt(rsrc, rel.start, rel.end, None))
        out.append("")
    if len(diags) > len(shown):
        out.append(f"... and {len(diags) - len(shown)} more")
    return "\n".join(out)


def _located(d: Diagnostic, sources: Mapping[str, Source]) -> dict[str, object]:
    src = sources.get(d.path)
    line, col = src.position(d.start) if src else (1, 1)
    end_line, end_col = src.position(d.end) if src else (line, col)
    return {
        "code": d.code,
        "severity": d.severity.value,
        "message": _no_surrogates(d.message),
        "path": _no_surrogates(d.path),
        "line": line,
        "column": col,
        "end_line": end_line,
        "end_column": end_col,
        "hint": _no_surrogates(d.hint) if d.hint else d.hint,
        "related": [
            {
                "path": _no_surrogates(r.path),
                "line": sources[r.path].position(r.start)[0] if r.path in sources else 1,
                "column": sources[r.path].position(r.start)[1] if r.path in sources else 1,
                "message": _no_surrogates(r.message),
            }
            for r in d.related
        ],
    }


def render_json(diags: Iterable[Diagnostic], sources: Mapping[str, Source]) -> str:
    """One JSON array of diagnostics with 1-based lines and columns."""
    return json.dumps([_located(d, sources) for d in diags], indent=2, ensure_ascii=False)


def _escape_data(text: str) -> str:
    """A workflow command's message, escaped as GitHub's runner unescapes it."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    """A workflow command's property value (file=, title=): `:` and `,` separate them."""
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def _from_base(path: str, base: str | None, library: Container[str]) -> str:
    """`path` (as shown: from the working folder, or absolute) from the folder `base`,
    when it is inside it; otherwise, or without `base`, as it is."""
    import os

    if base is None or path in library or path.startswith("<"):
        return path
    full = os.path.join(os.path.realpath(os.getcwd()), path)  # an absolute path stays one
    rel = os.path.relpath(full, os.path.realpath(base))
    if rel == os.pardir or rel.startswith(os.pardir + os.sep):
        return path
    return rel.replace(os.sep, "/")


def render_github(
    diags: Iterable[Diagnostic],
    sources: Mapping[str, Source],
    *,
    base: str | None = None,
    library: Container[str] = (),
) -> str:
    """GitHub Actions workflow commands, one annotation a diagnostic.

    GitHub places an annotation by its file's path from the repository root: with
    `base` (the workspace, `GITHUB_WORKSPACE`), a file inside it is named from there,
    though lint ran in a sub-folder of it (the bundled `library` files aside).
    A span over several lines has no columns (GitHub takes them on one line only).
    Messages escape `%`, CR and LF; property values (the file name) `:` and `,` too:

    >>> d = Diagnostic(code="MR001", severity="error", message="50% off\\nnow",
    ...                path="a,b:c.mr", start=0, end=0)
    >>> print(render_github([d], {}))
    ::error file=a%2Cb%3Ac.mr,line=1,col=1,endLine=1,endColumn=1,title=MR001::50%25 off%0Anow
    """
    lines = []
    for d in diags:
        loc = _located(d, sources)
        text = d.message + (f" ({d.hint})" if d.hint else "")
        msg = "\n".join(printable(part) for part in text.replace("\r\n", "\n").split("\n"))
        file = _escape_property(printable(_from_base(d.path, base, library)))
        where = f"line={loc['line']},col={loc['column']},endLine={loc['end_line']}"
        where += f",endColumn={loc['end_column']}"
        if loc["line"] != loc["end_line"]:  # columns go with one line only: the runner drops
            where = f"line={loc['line']},endLine={loc['end_line']}"  # them, the API refuses
        lines.append(
            f"::{d.severity.value} file={file},{where},"
            f"title={_escape_property(d.code)}::{_escape_data(msg)}"
        )
    return "\n".join(lines)


PROJECT_URL = "https://github.com/mrules-dev/mrules"
"""Where mrules lives: the SARIF `informationUri`, and the base of every help link."""
DOCS_URL = f"{PROJECT_URL}/blob/main/docs"
_LIBRARY_PREFIX = "library/"


def help_uri(code: str, title: str) -> str:
    """The link to a code's section of docs/diagnostics.md.

    >>> help_uri("MR101", "duplicate declaration")
    'https://github.com/mrules-dev/mrules/blob/main/docs/diagnostics.md#mr101-duplicate-declaration'
    """
    anchor = re.sub(r"[^\w\- ]", "", f"{code}: {title}".lower()).replace(" ", "-")
    return f"{DOCS_URL}/diagnostics.md#{anchor}"


def _path_bytes(path: str) -> bytes:
    """The bytes of the file name `path` shows.

    Messages show a byte of a name that is not UTF-8 as `\\xNN`
    (`loader.printable_path`), but a URI must name the real file: such escapes
    become their bytes again, unless the name as shown is on disk and the name
    the bytes make is not (a name with a real backslash in it).
    """
    import os

    try:
        shown = path.encode("utf-8", "surrogateescape")  # a lone surrogate: a byte, unshown
    except UnicodeEncodeError:
        return _no_surrogates(path).encode("utf-8")
    if b"\\x" not in shown:
        return shown
    real = _BYTE_ESCAPE_RE.sub(lambda m: bytes([int(m.group(1), 16)]), shown)
    if real != shown and os.path.lexists(shown) and not os.path.lexists(real):
        return shown
    return real


_BYTE_ESCAPE_RE = re.compile(rb"\\x([89a-f][0-9a-f])")  # printable_path's, bytes 0x80-0xff


def _in_library(path: str, library: Container[str] | None) -> bool:
    """Whether `path` is a file of the bundled library: one of `library` (the loader's
    `LoadResult.library`) when given, else any path under `library/`."""
    return path.startswith(_LIBRARY_PREFIX) if library is None else path in library


def _artifact(
    path: str, library: Container[str] | None = None, prefix: bytes = b"", root: bytes = b""
) -> dict[str, str]:
    """A SARIF artifactLocation: relative to SRCROOT (the working folder, or the folder
    it is `prefix` (`marketing/`) in, whose real path is `root`, which an absolute path
    may be inside of), the bundled library (MRULES_LIBRARY; `library`: its files, see
    `_in_library`), or an absolute file URI; the real bytes of the file's name,
    percent-encoded (`dir%FF/a.mr`, not the `dir\\xff/a.mr` messages show). A project's
    own `library/x.mr` is at SRCROOT."""
    from urllib.parse import quote

    raw = _path_bytes(path)
    if _in_library(path, library) and raw.startswith(_LIBRARY_PREFIX.encode()):
        return {"uri": quote(raw[len(_LIBRARY_PREFIX) :]), "uriBaseId": "MRULES_LIBRARY"}
    if root and raw.startswith(root):  # outside the working folder, inside SRCROOT
        return {"uri": quote(raw[len(root) :]), "uriBaseId": "SRCROOT"}
    if raw.startswith(b"/"):
        return {"uri": "file://" + quote(raw)}
    if raw.startswith(b"<"):  # standard input, or a string
        return {"uri": quote(raw, safe="")}
    return {"uri": quote(prefix + raw), "uriBaseId": "SRCROOT"}


def _srcroot(base: str) -> tuple[str, bytes, bytes]:
    """SRCROOT, the working folder's path from it (`marketing/`, or nothing) and its real
    path (ending in `/`): `base` when the working folder is inside it, else the working
    folder itself."""
    import os

    here = os.path.realpath(os.getcwd())
    real = os.path.realpath(base)
    rel = os.path.relpath(here, real)
    if rel == os.pardir or rel.startswith(os.pardir + os.sep):
        base, real, rel = ".", here, os.curdir
    root = os.fsencode(real).rstrip(b"/") + b"/"
    if rel == os.curdir:
        return base, b"", root
    return base, os.fsencode(rel).replace(os.fsencode(os.sep), b"/") + b"/", root


def _base_uri(path: str) -> str:
    from pathlib import Path

    uri = Path(path).resolve().as_uri()
    return uri if uri.endswith("/") else uri + "/"


def _region(sources: Mapping[str, Source], path: str, start: int, end: int) -> dict[str, int]:
    src = sources.get(path)
    line, col = src.position(start) if src else (1, 1)
    end_line, end_col = src.position(max(start, end)) if src else (line, col)
    return {"startLine": line, "startColumn": col, "endLine": end_line, "endColumn": end_col}


def render_sarif(
    diags: Iterable[Diagnostic],
    sources: Mapping[str, Source],
    rules: Mapping[str, str],
    *,
    base: str = ".",
    library: Container[str] | None = None,
) -> str:
    """SARIF 2.1.0, for code-scanning dashboards; `rules` maps code to a short description.

    Paths are relative to `base` (SRCROOT: the working folder by default; in a workflow
    the repository root, where code scanning reads every relative path from, as it does
    not resolve `originalUriBaseIds`), when the working folder is inside it (else to the
    working folder); library files (`library`: the shown paths of the bundled library's
    files, `LoadResult.library`; by default, every path under `library/`) to the
    bundled library (MRULES_LIBRARY); every rule
    links to its section of docs/diagnostics.md, and related places (the first
    declaration of a duplicate...) are relatedLocations.
    """
    import importlib.resources

    from mrules.buildinfo import __version__

    diags = list(diags)
    base, prefix, root = _srcroot(base)
    used = sorted({d.code for d in diags})
    index = {code: i for i, code in enumerate(used)}
    levels: dict[str, str] = {}
    results = []
    for d in diags:
        loc = _located(d, sources)
        levels.setdefault(d.code, d.severity.value)
        result: dict[str, object] = {
            "ruleId": d.code,
            "ruleIndex": index[d.code],
            "level": d.severity.value,
            "message": {"text": f"{loc['message']}" + (f" ({loc['hint']})" if d.hint else "")},
            "locations": [
                {
                    "physicalLocation": {
                        "artifactLocation": _artifact(d.path, library, prefix, root),
                        "region": _region(sources, d.path, d.start, d.end),
                    }
                }
            ],
        }
        if d.related:
            result["relatedLocations"] = [
                {
                    "id": i,
                    "message": {"text": _no_surrogates(r.message)},
                    "physicalLocation": {
                        "artifactLocation": _artifact(r.path, library, prefix, root),
                        "region": _region(sources, r.path, r.start, r.end),
                    },
                }
                for i, r in enumerate(d.related, 1)
            ]
        results.append(result)
    bundled = importlib.resources.files("mrules").joinpath("library")
    bases: dict[str, dict[str, object]] = {
        "SRCROOT": {
            "uri": _base_uri(base),
            "description": {
                "text": "The folder mrules lint ran in, or in a workflow the repository root"
            },
        },
    }
    if any(
        _in_library(d.path, library) or any(_in_library(r.path, library) for r in d.related)
        for d in diags
    ):
        bases["MRULES_LIBRARY"] = {
            "uri": _base_uri(str(bundled)),
            "description": {"text": "The rule library bundled with mrules"},
        }
    doc = {
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "mrules",
                        "version": __version__,
                        "semanticVersion": __version__,
                        "informationUri": PROJECT_URL,
                        "rules": [
                            {
                                "id": c,
                                "shortDescription": {"text": rules.get(c, c)},
                                "helpUri": help_uri(c, rules.get(c, c)),
                                "help": {
                                    "text": f"{c}: {rules.get(c, c)}; see "
                                    f"{help_uri(c, rules.get(c, c))}"
                                },
                                "defaultConfiguration": {"level": levels[c]},
                            }
                            for c in used
                        ],
                    }
                },
                "originalUriBaseIds": bases,
                "columnKind": "unicodeCodePoints",
                "results": results,
            }
        ],
    }
    return json.dumps(doc, indent=2, ensure_ascii=False)


class RuleSetError(Exception):
    """The rule set cannot be run: it has errors (the message renders them) or cannot be read.

    Public as `mrules.api.RuleSetError` (its name in tracebacks); defined here, where the
    loader can raise its subclass `mrules.loader.LoadError` (the rules cannot be read at
    all: no such path, not UTF-8), so that `mrules.load` and `mrules.run` raise one
    exception for one cause.

    Attributes:
        diagnostics: the errors as `mrules.diagnostics.Diagnostic`s (code, severity,
            message, path, `start` and `end` as character offsets, hint); empty when the
            rules could not be read at all (a missing path: the message says it).
        sources: the rule files read (path -> `mrules.source.Source`), for the errors'
            lines; empty when not known.
    """

    def __init__(
        self,
        message: str,
        diagnostics: list[Diagnostic] | None = None,
        sources: Mapping[str, Source] | None = None,
    ) -> None:
        super().__init__(message)
        self.diagnostics = diagnostics or []
        self.sources = dict(sources or {})

    def as_json(self) -> list[dict[str, Any]]:
        """The errors as `mrules lint --format json` gives them: code, severity, message,
        path, 1-based line and column (and their end), hint, related places. Without the
        sources (`mrules.compile` given none), the lines are 1."""
        found: list[dict[str, Any]] = json.loads(render_json(self.diagnostics, self.sources))
        return found


RuleSetError.__module__ = "mrules.api"  # where users import it from, and pickle finds it
