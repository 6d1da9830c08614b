"""Diagnostics as data, and their rendering as text, JSON, GitHub annotations and SARIF.

Every problem mrules finds in a rule file, from the parser or the checker, is a
`Diagnostic`: a stable code, a severity, a terse lowercase message, the span it
is about, related spans and an optional hint. Renderers live here so that the
CLI, the tests and the snapshots all see the same text.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from enum import StrEnum

from pydantic import BaseModel, ConfigDict

from mrules.source import Source

__all__ = [
    "Diagnostic",
    "Related",
    "Severity",
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


_UNPRINTABLE_RE = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\ud800-\udfff]")
_LONG_LINE = 160


def _escape(m: re.Match[str]) -> str:
    code = ord(m.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: str) -> str:
    """Text that can always be printed, and cannot steer a terminal.

    Control characters (a tab aside) and lone surrogates become escapes:

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
        if end_line == line:
            run = max(1, len(raw[col - 1 : end_col - 1].expandtabs(4)))
        else:
            run = max(1, len(text) - len(prefix))
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
        run = max(1, len(marked))
    lines.append(f"{line:>{width}} | {text}".rstrip())
    marker = " " * len(prefix) + "^" * run
    lines.append(f"{gutter} | {marker}" + (f" {printable(label)}" if label else ""))
    if line < source.line_count:
        after_line = source.line_text(line + 1)
        if after_line.strip():
            shown = after_line.expandtabs(4) if _plain(after_line) else _clip(after_line)
            lines.append(f"{line + 1:>{width}} | {shown}".rstrip())
    return lines


def render_text(
    diags: Iterable[Diagnostic], sources: Mapping[str, Source], limit: int = 50
) -> str:
    """Render diagnostics as `path:line:col: severity[CODE]: message` with a caret excerpt."""
    out: list[str] = []
    diags = list(diags)
    for d in diags[:limit]:
        src = sources.get(d.path)
        line, col = src.position(d.start) if src else (1, 1)
        out.append(f"{printable(d.path)}:{line}:{col}: {d.severity.value}[{d.code}]: "
                   f"{printable(d.message)}")
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
    if len(diags) > limit:
        out.append(f"... and {len(diags) - limit} more")
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


def render_github(diags: Iterable[Diagnostic], sources: Mapping[str, Source]) -> str:
    """GitHub Actions workflow commands, one annotation a diagnostic."""

    def esc(s: str) -> str:
        return s.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")

    lines = []
    for d in diags:
        loc = _located(d, sources)
        msg = printable(d.message + (f" ({d.hint})" if d.hint else ""))
        lines.append(
            f"::{d.severity.value} file={esc(printable(d.path))},"
            f"line={loc['line']},col={loc['column']},"
            f"endLine={loc['end_line']},endColumn={loc['end_column']},"
            f"title={d.code}::{esc(msg)}"
        )
    return "\n".join(lines)


def render_sarif(
    diags: Iterable[Diagnostic], sources: Mapping[str, Source], rules: Mapping[str, str]
) -> str:
    """SARIF 2.1.0, for code-scanning dashboards; `rules` maps code to a short description."""
    diags = list(diags)
    used = sorted({d.code for d in diags})
    results = []
    for d in diags:
        loc = _located(d, sources)
        results.append(
            {
                "ruleId": d.code,
                "level": d.severity.value,
                "message": {"text": loc["message"] + (f" ({loc['hint']})" if d.hint else "")},
                "locations": [
                    {
                        "physicalLocation": {
                            "artifactLocation": {"uri": loc["path"]},
                            "region": {
                                "startLine": loc["line"],
                                "startColumn": loc["column"],
                                "endLine": loc["end_line"],
                                "endColumn": loc["end_column"],
                            },
                        }
                    }
                ],
            }
        )
    doc = {
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "mrules",
                        "informationUri": "https://example.invalid/mrules/docs/diagnostics.md",
                        "rules": [
                            {"id": c, "shortDescription": {"text": rules.get(c, c)}} for c in used
                        ],
                    }
                },
                "results": results,
            }
        ],
    }
    return json.dumps(doc, indent=2, ensure_ascii=False)
