"""Page actions: each URL is a URL, and each page view picks one page action.

URLs are compared as the engine compares them (`mrules.urls`, with the rule
set's own `url_*` settings): an exact URL beats any wildcard, and among
wildcards the longest prefix wins.

Rules (codes MR401-MR407):

* a page-action or `visited` URL that is not a URL (MR401): empty, with
  spaces, or with `*` anywhere but at the end;
* two page actions on the same URL once normalised (MR402):
  `"getcloudy.com/a"` and `"https://www.getcloudy.com/a/"`; the later never fires;
* two wildcards with the same prefix (MR403): the later never fires;
* a wildcard inside another (MR404, a warning): `x.com/products*` and
  `x.com/products/shoes*`; pages under the longer prefix go to its page action
  only, which Pardot does not document (§3), so the overlap is named;
* with `url_ignore_scheme = false`, a page-action or `visited` URL without
  `http://` or `https://` (MR405, a warning): the scheme is part of the page,
  so it matches only views sent without one, and tracked views have one;
* with `url_ignore_query = true` (the default), a wildcard page-action or
  `visited` URL with a query string (MR406, a warning): every view loses its
  query before it is compared, the wildcard's prefix keeps its own, so it
  matches no view. Two exact URLs that differ only by their query are one
  page then: MR402, whose hint says why;
* with `url_ignore_query = true`, an exact page-action or `visited` URL with a
  query string (MR407, a warning): the query is dropped from it as from the
  views, so it matches every view of its page, whatever the query.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

from mrules import ast
from mrules.checker import report
from mrules.checker.visit import items, of_type
from mrules.diagnostics import Diagnostic
from mrules.settings import SETTINGS, EngineSettings
from mrules.symbols import Symbols
from mrules.urls import SCHEME, is_wildcard, normalize_url, wildcard_prefix

__all__ = ["check_pages", "program_settings", "url_problem"]


def program_settings(program: ast.Program) -> EngineSettings:
    """The engine settings a rule set chooses (values of the wrong type are ignored)."""
    values: dict[str, object] = {}
    for _path, item in of_type(program, ast.Settings):
        for s in item.items:
            spec = SETTINGS.get(s.name.text)
            raw = getattr(s.value, "value", None)
            if spec is not None and type(raw) is spec.type:
                values[s.name.text] = raw
    return EngineSettings.from_values(values)


def url_problem(url: str) -> str | None:
    """Why a string cannot be a page URL, or None.

    >>> url_problem("getcloudy.com/a b")
    'a URL has no spaces'
    """
    if not url.strip():
        return "a page URL cannot be empty"
    if any(ch.isspace() for ch in url):
        return "a URL has no spaces"
    if "*" in url[:-1]:
        return "`*` only works at the end of a URL"
    return None


def _bad_url(path: str, name: ast.Name) -> Diagnostic | None:
    problem = url_problem(name.text)
    if problem is None:
        return None
    return report.error(
        "MR401",
        f"'{name.text}' is not a URL",
        path,
        name,
        hint=problem + '; write it like "getcloudy.com/pricing"',
    )


def _no_scheme(path: str, name: ast.Name, settings: EngineSettings) -> Iterator[Diagnostic]:
    if settings.url_ignore_scheme or SCHEME.match(name.text.strip()):
        return
    yield report.warning(
        "MR405",
        f"'{name.text}' has no scheme, and url_ignore_scheme = false makes the scheme "
        "part of the page: it matches no view of http:// or https:// pages",
        path,
        name,
        hint=f'write "https://{name.text.strip()}" (and "http://…" if both count)',
    )


def _query_dropped_from_views(prefix: str, settings: EngineSettings) -> bool:
    """Whether a wildcard's normalised prefix keeps a query that every view loses first."""
    return settings.url_ignore_query and "?" in prefix  # `%3F` stays escaped: `?` is a query


def _dropped_query(path: str, name: ast.Name, settings: EngineSettings) -> Iterator[Diagnostic]:
    """MR406: a wildcard that matches no view, its query kept where the views' is dropped."""
    text = name.text.strip()
    if not is_wildcard(text) or not _query_dropped_from_views(
        wildcard_prefix(text, settings), settings
    ):
        return
    yield report.warning(
        "MR406",
        f"'{name.text}' has a query string, and url_ignore_query = true drops the query of "
        "every page view before it is compared: this wildcard matches no view",
        path,
        name,
        hint=f'set url_ignore_query = false in the settings, or drop the query: "'
        f'{text.split("?", 1)[0]}" is that page whatever its query',
    )


def _query_ignored(path: str, name: ast.Name, settings: EngineSettings) -> Iterator[Diagnostic]:
    """MR407: an exact URL whose query is dropped as the views' are: it names every query."""
    text = name.text.strip()
    if not settings.url_ignore_query or is_wildcard(text):
        return
    query = text.partition("#")[0].partition("?")[2]
    kept = replace(settings, url_ignore_query=False)
    if not query or normalize_url(text, settings) == normalize_url(text, kept):
        return
    page = text.split("?", 1)[0]
    yield report.warning(
        "MR407",
        f"'{name.text}' has a query string, and url_ignore_query = true drops it, from page "
        f"views and from this URL alike: it matches every view of '{page}', whatever its query",
        path,
        name,
        hint=f'write "{page}" to say so, or set url_ignore_query = false in the settings to '
        "match this query only",
    )


def _matches_nothing(path: str, name: ast.Name, settings: EngineSettings) -> Iterator[Diagnostic]:
    """MR405 and MR406: a URL that the rule set's settings keep from matching any view;
    MR407: one that its query does not narrow."""
    yield from _no_scheme(path, name, settings)
    yield from _dropped_query(path, name, settings)
    yield from _query_ignored(path, name, settings)


def _same_page_hint(first: str, second: str, settings: EngineSettings) -> str:
    """MR402's hint: merge them, or, when only url_ignore_query makes them one page, say so."""
    if settings.url_ignore_query:
        kept = replace(settings, url_ignore_query=False)
        if normalize_url(first, kept) != normalize_url(second, kept):
            return (
                "url_ignore_query = true drops the query string, so they are one page: set "
                "url_ignore_query = false in the settings to tell them apart, or merge them "
                "into one page action"
            )
    return "merge them into one page action"


def check_pages(program: ast.Program, sym: Symbols) -> Iterator[Diagnostic]:
    """MR401-MR407."""
    settings = program_settings(program)
    exact: dict[str, tuple[str, ast.PageAction]] = {}
    wild: dict[str, tuple[str, ast.PageAction]] = {}
    for path, node in of_type(program, ast.Activity):
        if node.asset_kind is None and node.name:
            bad = _bad_url(path, node.name)
            if bad is not None:
                yield bad
            else:
                yield from _matches_nothing(path, node.name, settings)
    for path, item in items(program):
        if not isinstance(item, ast.PageAction):
            continue
        bad = _bad_url(path, item.url)
        if bad is not None:
            yield bad
            continue
        url = item.url.text
        if is_wildcard(url):
            key, table, code, what = wildcard_prefix(url, settings), wild, "MR403", "wildcard"
        else:
            key, table, code, what = normalize_url(url, settings), exact, "MR402", "URL"
        prev = table.setdefault(key, (path, item))
        yield from _no_scheme(path, item.url, settings)
        yield from _dropped_query(path, item.url, settings)
        if prev[1] is item:  # else MR402's hint says what a query dropped does: not twice
            yield from _query_ignored(path, item.url, settings)
        else:
            hint = "merge them into one page action"
            if table is exact:
                hint = _same_page_hint(prev[1].url.text, url, settings)
            yield report.error(
                code,
                f"page actions '{prev[1].name.text}' and '{item.name.text}' have the same "
                f"{what}; '{item.name.text}' never fires",
                path,
                item.url,
                hint=hint,
                related=[report.note(prev[0], prev[1].url, f"'{prev[1].name.text}' is here")],
            )
    # A wildcard that matches no view (MR406) takes no pages from another.
    yield from _overlaps(
        {p: v for p, v in wild.items() if not _query_dropped_from_views(p, settings)}
    )


def _overlaps(wild: dict[str, tuple[str, ast.PageAction]]) -> Iterator[Diagnostic]:
    """MR404: each wildcard against the longest other wildcard prefix that contains it."""
    lengths = sorted({len(p) for p in wild}, reverse=True)
    for prefix, (path, item) in wild.items():
        for length in lengths:
            if length >= len(prefix) or prefix[:length] not in wild:
                continue
            outer_path, outer = wild[prefix[:length]]
            yield report.warning(
                "MR404",
                f"wildcard page actions overlap: '{item.name.text}' takes pages under "
                f"'{prefix}', '{outer.name.text}' the rest of '{prefix[:length]}'",
                path,
                item.url,
                hint="the longest prefix wins; Pardot does not document this tie-break",
                related=[report.note(outer_path, outer.url, f"'{outer.name.text}' is here")],
            )
            break
