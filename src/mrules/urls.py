"""URL normalisation and the page-action index: exact URLs in a dict, wildcards by longest prefix.

Pardot does not document how it compares URLs (docs/pardot.md §3), so mrules
normalises both the page-action URL and the URL seen, each step a setting
(docs/semantics.md): the fragment always goes; by default the scheme, a
leading `www.`, the query string and a trailing slash go too; the host is
always lowercased (hosts are case-insensitive), and loses the scheme's default
port (`:443` for https, `:80` for http); the path's percent-escapes are decoded
(`caf%C3%A9` is `café`), and the path is lowercased only if asked.

A wildcard is a URL ending in `*`. `P*` matches every URL that starts with P;
`P/*` matches P itself and every page under `P/` (Pardot's "every page of the
domain" for `www.getcloudy.com/*` includes the home page). An exact URL beats
any wildcard, and among wildcards the longest prefix wins, so at most one page
action matches a view. Lookups cost one dict probe plus one probe per distinct
wildcard-prefix length, whatever the number of page actions.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable
from typing import Generic, TypeVar

from mrules.settings import EngineSettings

__all__ = [
    "SCHEME",
    "NormalizedUrls",
    "PageIndex",
    "is_wildcard",
    "normalize_url",
    "wildcard_prefix",
    "with_slash",
]

T = TypeVar("T")

SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")


def is_wildcard(pattern: str) -> bool:
    """A page-action URL ending in `*` covers many pages."""
    return pattern.rstrip().endswith("*")


def _split(url: str, settings: EngineSettings, *, keep_query: bool) -> tuple[str, str]:
    url = url.strip()
    url = url.split("#", 1)[0]
    if not keep_query and settings.url_ignore_query:
        url = url.split("?", 1)[0]
    scheme = ""
    m = SCHEME.match(url)
    if m:
        scheme = m.group(0).lower()
        url = url[m.end() :]
    # The host ends at the path or at the query: `x.example?a=1` is the page `x.example/?a=1`.
    end = len(url)
    for mark in "/?":
        at = url.find(mark)
        if 0 <= at < end:
            end = at
    host, path = url[:end].lower(), url[end:]
    # The scheme's default port names the same page (`https://x.example:443/a`).
    if host.endswith(":443") and scheme in ("https://", ""):
        host = host[:-4]
    elif host.endswith(":80") and scheme in ("http://", ""):
        host = host[:-3]
    if settings.url_ignore_scheme:
        scheme = ""
    if settings.url_ignore_www and host.startswith("www."):
        host = host[4:]
    if not path.isascii() or "%" in path:
        path = _readable(path)
    if settings.url_ignore_path_case:
        path = path.lower()
    return scheme + host, path


# Possessive: a backtracking record an escape of the run (45 bytes a character of a long
# URL) for a run that is never given back, since nothing follows it in the pattern.
_ESCAPES = re.compile(r"(?:%[0-9A-Fa-f]{2})++")
_KEPT = frozenset("/?#%") | {chr(c) for c in range(0x20)} | {"\x7f"}
"""What stays escaped: what would change where the path or its query begins and ends, an
escape's own `%`, and control characters."""


def _readable(path: str) -> str:
    """The path before any query as the browser shows it: percent-escapes decoded
    (tracking code sends `caf%C3%A9` for the page a rule names `café`) and in Unicode NFC
    (`é` typed as `e` and a combining accent is `é`). What stays escaped (`%2F`, bytes
    that are not UTF-8) is written with capital hex digits, as RFC 3986 asks.

    >>> _readable("/caf%C3%A9/a%2fb%20c/cafe%CC%81?q=%C3%A9")
    '/café/a%2Fb c/café?q=%C3%A9'
    """
    head, mark, query = path.partition("?")
    if "%" in head:
        head = _ESCAPES.sub(_decoded, head)
    if not head.isascii():
        head = unicodedata.normalize("NFC", head)
    return head + mark + query


def _decoded(m: re.Match[str]) -> str:
    text = bytes.fromhex(m.group(0).replace("%", "")).decode("utf-8", "surrogateescape")
    return _ESCAPED_AGAIN.sub(_escape_again, text)


# What `_decoded` writes escaped again, and as what: a byte of no UTF-8 character (a
# surrogate as `surrogateescape` decodes it; made with chr, as mypyc takes no surrogate
# in a string literal) and what is kept. Found by one regex, each written by a string
# made once: a loop over the characters made a string each, 20 bytes a character of a
# long run of `%2F`.
_AGAIN = {ch: f"%{ord(ch):02X}" for ch in _KEPT} | {
    chr(0xDC00 + byte): f"%{byte:02X}" for byte in range(0x80, 0x100)
}
_ESCAPED_AGAIN = re.compile(
    "[" + "".join(re.escape(ch) for ch in sorted(_KEPT)) + chr(0xDC80) + "-" + chr(0xDCFF) + "]"
)


def _escape_again(m: re.Match[str]) -> str:
    return _AGAIN[m.group()]


def normalize_url(url: str, settings: EngineSettings) -> str:
    """The form in which two URLs are the same page.

    >>> normalize_url("https://WWW.GetCloudy.com/consult/?utm=ads#top", EngineSettings())
    'getcloudy.com/consult'
    >>> normalize_url("https://getcloudy.com:443/consult", EngineSettings())
    'getcloudy.com/consult'
    >>> normalize_url("http://getcloudy.com:443/consult", EngineSettings())
    'getcloudy.com:443/consult'
    """
    host, path = _split(url, settings, keep_query=False)
    if settings.url_ignore_trailing_slash:  # of the path, not of a query kept after it
        head, mark, query = path.partition("?")
        path = head.rstrip("/") + mark + query
    return host + path


class NormalizedUrls:
    """`normalize_url` with the URLs seen lately remembered: a stream views the same pages
    again and again (88% of the benchmark's views), and a dict probe is a fraction of the
    normalisation. At most `cap` URLs are kept; when full, the memory starts again.
    """

    def __init__(self, settings: EngineSettings, cap: int = 1 << 15) -> None:
        self.settings = settings
        self.cap = cap
        self._seen: dict[str, str] = {}

    def get(self, url: str) -> str:
        found = self._seen.get(url)
        if found is None:
            found = normalize_url(url, self.settings)
            if len(self._seen) >= self.cap:
                self._seen = {}
            self._seen[url] = found
        return found


def with_slash(url: str) -> str:
    """A normalised URL with a slash after its path, before any query it keeps: what
    `P/*` finds P itself by (`x.example/p?a=1` is the page P with a query).

    >>> with_slash("x.example/p"), with_slash("x.example/p?a=1")
    ('x.example/p/', 'x.example/p/?a=1')
    """
    head, mark, query = url.partition("?")
    return head + "/" + mark + query


def wildcard_prefix(pattern: str, settings: EngineSettings) -> str:
    """The normalised prefix of a wildcard page-action URL, without its `*`.

    >>> wildcard_prefix("www.getcloudy.com/careers/*", EngineSettings())
    'getcloudy.com/careers/'
    """
    host, path = _split(pattern.rstrip().removesuffix("*"), settings, keep_query=True)
    return host + path


class PageIndex(Generic[T]):
    """Finds the one page action for a URL: exact match first, then the longest wildcard prefix.

    >>> idx = PageIndex([("x.com/a", "exact"), ("x.com/*", "site"), ("x.com/a/*", "a")],
    ...                 EngineSettings())
    >>> idx.lookup("https://x.com/a/"), idx.lookup("x.com/a/b"), idx.lookup("x.com/zz")
    ('exact', 'a', 'site')
    >>> len(idx)  # one exact URL and two wildcards
    3
    """

    def __init__(self, entries: Iterable[tuple[str, T]], settings: EngineSettings) -> None:
        self.settings = settings
        self.exact: dict[str, T] = {}
        lengths: dict[int, dict[str, T]] = {}
        for pattern, value in entries:
            if is_wildcard(pattern):
                prefix = wildcard_prefix(pattern, settings)
                lengths.setdefault(len(prefix), {}).setdefault(prefix, value)
            else:
                self.exact.setdefault(normalize_url(pattern, settings), value)
        # (prefix length, prefixes of that length), longest prefixes first
        self._by_length = tuple(sorted(lengths.items(), reverse=True))

    def __len__(self) -> int:
        return len(self.exact) + sum(len(d) for _, d in self._by_length)

    def lookup(self, url: str) -> T | None:
        """The page action for a URL as seen, or None."""
        return self.lookup_normalized(normalize_url(url, self.settings))

    def lookup_normalized(self, url: str, usable: Callable[[T], bool] | None = None) -> T | None:
        """The page action for a normalised URL, or None.

        With `usable`, a page action it refuses is passed over as if it were not
        there: the next most specific one that it accepts is the answer (a page
        action before its `since` did not exist yet, so the wildcard covering
        its URL was the most specific then).
        """
        hit = self.exact.get(url)
        if hit is not None and (usable is None or usable(hit)):
            return hit
        if not self._by_length:
            return None
        query = url.find("?")  # kept (url_ignore_query = false): `P/*` covers `P?q` too
        slashed = url + "/" if query < 0 else with_slash(url)
        for length, prefixes in self._by_length:
            if length <= len(url):
                hit = prefixes.get(url[:length])
                if hit is None and 0 <= query < length:
                    hit = prefixes.get(slashed[:length])
            elif length == len(slashed):
                hit = prefixes.get(slashed)
            else:
                continue
            if hit is not None and (usable is None or usable(hit)):
                return hit
        return None
