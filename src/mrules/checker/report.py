"""What every check shares: building diagnostics, related notes and did-you-mean hints."""

from __future__ import annotations

import difflib
from collections import defaultdict
from collections.abc import Iterable

from mrules import ast
from mrules.diagnostics import Diagnostic, Related, Severity

__all__ = ["Speller", "a_or_an", "did_you_mean", "error", "note", "warning"]


def _span(where: ast.Node | ast.Span) -> ast.Span:
    return where if isinstance(where, ast.Span) else where.span


def _make(
    severity: Severity,
    code: str,
    message: str,
    path: str,
    where: ast.Node | ast.Span,
    hint: str | None,
    related: Iterable[Related],
) -> Diagnostic:
    span = _span(where)
    return Diagnostic(
        code=code,
        severity=severity,
        message=message,
        path=path,
        start=span.start,
        end=span.end,
        related=tuple(related),
        hint=hint,
    )


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
    return _make(Severity.ERROR, code, message, path, where, hint, related)


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
    return _make(Severity.WARNING, code, message, path, where, hint, related)


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


def _variants(word: str) -> set[str]:
    """The word, case-folded, and every way of deleting one character from it."""
    key = word.casefold()
    return {key} | {key[:i] + key[i + 1 :] for i in range(len(key))}


class Speller:
    """Did-you-mean over one namespace, built once per check run.

    `difflib` compares the word with every name, which is quadratic when a
    big rule set has many unknown names. Past `SMALL` names, candidates come
    from an index of one-character deletions (SymSpell's idea): two names
    within one edit (or a swap) of each other share a deletion, so a lookup
    costs one probe per character; the closest in length wins. Answers are
    cached, since one misspelling tends to be repeated.
    """

    SMALL = 200

    def __init__(self, names: Iterable[str]) -> None:
        self.names = tuple(names)
        self._index: dict[str, list[str]] | None = None
        self._cache: dict[str, str | None] = {}

    def suggest(self, word: str) -> str | None:
        """`did you mean 'x'?` or None."""
        if word not in self._cache:
            self._cache[word] = self._suggest(word)
        return self._cache[word]

    def _suggest(self, word: str) -> str | None:
        if len(self.names) <= self.SMALL:
            return did_you_mean(word, self.names)
        if self._index is None:
            self._index = defaultdict(list)
            for name in self.names:
                for v in _variants(name):
                    self._index[v].append(name)
        found = {n for v in _variants(word) for n in self._index.get(v, ())}
        if not found:
            return None
        best = min(
            found, key=lambda n: (n.casefold() != word.casefold(), abs(len(n) - len(word)), n)
        )
        return f"did you mean '{best}'?"
