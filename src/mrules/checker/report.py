"""What every check shares: building diagnostics, related notes and did-you-mean hints."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

from mrules import ast
from mrules.diagnostics import Diagnostic, Related, Severity

__all__ = ["a_or_an", "did_you_mean", "error", "note", "warning"]


def _span(where: ast.Node | ast.Span) -> ast.Span:
    return where if isinstance(where, ast.Span) else where.span


def error(
    code: str,
    message: str,
    path: str,
    where: ast.Node | ast.Span,
    *,
    hint: str | None = None,
    related: Iterable[Related] = (),
) -> Diagnostic:
    """An error: something that cannot work as written."""
    span = _span(where)
    return Diagnostic(code=code, severity=Severity.ERROR, message=message, path=path,
                      start=span.start, end=span.end, related=tuple(related), hint=hint)


def warning(
    code: str,
    message: str,
    path: str,
    where: ast.Node | ast.Span,
    *,
    hint: str | None = None,
    related: Iterable[Related] = (),
) -> Diagnostic:
    """A warning: something that works but is probably not what the author meant."""
    span = _span(where)
    return Diagnostic(code=code, severity=Severity.WARNING, message=message, path=path,
                      start=span.start, end=span.end, related=tuple(related), hint=hint)


def note(path: str, where: ast.Node | ast.Span, message: str) -> Related:
    """The other place a diagnostic is about ("first declared here")."""
    span = _span(where)
    return Related(path=path, start=span.start, end=span.end, message=message)


def did_you_mean(word: str, candidates: Iterable[str]) -> str | None:
    """`did you mean 'x'?` for the closest candidate, or None.

    >>> did_you_mean("picklst", ["text", "picklist"])
    "did you mean 'picklist'?"
    """
    pool = list(candidates)
    close = difflib.get_close_matches(word, pool, n=1, cutoff=0.6)
    if not close:
        folded = {c.casefold(): c for c in pool}
        close = [folded[c] for c in difflib.get_close_matches(word.casefold(), list(folded), n=1)]
    return f"did you mean '{close[0]}'?" if close else None


def a_or_an(word: str) -> str:
    """`an email`, `a form`: the article for an asset kind or a type name."""
    return ("an " if word[:1] in "aeiou" else "a ") + word
