"""Diagnostics as data, and their rendering as text, JSON, GitHub annotations and SARIF.

Every problem mrules finds in a rule file, from the parser or the checker, is a
`Diagnostic`: a stable code, a severity, a terse lowercase message, the span it
is about, related spans and an optional hint. Renderers live here so that the
CLI, the tests and the snapshots all see the same text.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from enum import StrEnum

from pydantic import BaseModel, ConfigDict

from mrules.source import Source

__all__ = [
    "Diagnostic",
    "Related",
    "Severity",
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


def _excerpt(source: Source, start: int, end: int, label: str | None) -> list[str]:
    line, col = source.position(start)
    end_line, end_col = source.position(max(start, end))
    text = source.line_text(line).expandtabs(4)
    width = len(str(line + 1))
    gutter = " " * width
    lines = [f"{gutter} |"]
    if line > 1:
        lines.append(f"{line - 1:>{width}} | {source.line_text(line - 1).expandtabs(4)}".rstrip())
    lines.append(f"{line:>{width}} | {text}".rstrip())
    prefix = source.line_text(line)[: col - 1].expandtabs(4)
    if end_line == line:
        run = max(1, len(source.line_text(line)[col - 1 : end_col - 1].expandtabs(4)))
    else:
        run = max(1, len(text) - len(prefix))
    marker = " " * len(prefix) + "^" * run
    lines.append(f"{gutter} | {marker}" + (f" {label}" if label else ""))
    if line < source.line_count:
        after = source.line_text(line + 1).expandtabs(4)
        if after.strip():
            lines.append(f"{line + 1:>{width}} | {after}".rstrip())
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
        out.append(f"{d.path}:{line}:{col}: {d.severity.value}[{d.code}]: {d.message}")
        if src is not None:
            out.extend(_excerpt(src, d.start, d.end, d.hint))
        elif d.hint:
            out.append(f"  = hint: {d.hint}")
        for rel in d.related:
            rsrc = sources.get(rel.path)
            rline, rcol = rsrc.position(rel.start) if rsrc else (1, 1)
            out.append(f"  note: {rel.path}:{rline}:{rcol}: {rel.message}")
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
        "message": d.message,
        "path": d.path,
        "line": line,
        "column": col,
        "end_line": end_line,
        "end_column": end_col,
        "hint": d.hint,
        "related": [
            {
                "path": r.path,
                "line": sources[r.path].position(r.start)[0] if r.path in sources else 1,
                "column": sources[r.path].position(r.start)[1] if r.path in sources else 1,
                "message": r.message,
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
        msg = d.message + (f" ({d.hint})" if d.hint else "")
        lines.append(
            f"::{d.severity.value} file={d.path},line={loc['line']},col={loc['column']},"
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
                "message": {"text": d.message + (f" ({d.hint})" if d.hint else "")},
                "locations": [
                    {
                        "physicalLocation": {
                            "artifactLocation": {"uri": d.path},
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
