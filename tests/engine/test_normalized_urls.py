"""The engine's remembered URL normalisation gives what `normalize_url` gives, bounded."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from mrules.settings import EngineSettings
from mrules.urls import NormalizedUrls, normalize_url

_PARTS = st.sampled_from(["https://", "http://", "", "www.", "WWW.", "Get", "cloudy.com", "/a",
                          "/A/", "?utm=x", "#top", "/", "é", " ", ":443", ":80"])  # fmt: skip
URLS = st.lists(st.lists(_PARTS, max_size=6).map("".join), max_size=40)


@given(urls=URLS, cap=st.integers(1, 8), ignore_case=st.booleans(), slash=st.booleans())
def test_remembered_urls_normalise_as_normalize_url(
    urls: list[str], cap: int, ignore_case: bool, slash: bool
) -> None:
    settings = EngineSettings(url_ignore_path_case=ignore_case, url_ignore_trailing_slash=slash)
    remembered = NormalizedUrls(settings, cap=cap)
    for url in urls + urls:  # each seen twice: the second time from memory, if still there
        assert remembered.get(url) == normalize_url(url, settings)
        assert len(remembered._seen) <= cap
