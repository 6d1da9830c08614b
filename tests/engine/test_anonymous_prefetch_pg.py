"""The anonymous views prefetch against the PostgreSQL store (a throwaway server, as
tests/scale/test_store_pg.py starts one: the tests skip where it cannot)."""

from __future__ import annotations

from pathlib import Path

from tests.engine.test_anonymous_prefetch import (
    FIRST_TIES,
    _one_by_one,
    _two_runs,
    _views_store,
    rules,  # noqa: F401 (a fixture)
)
from tests.scale.test_store_pg import db, pg_url  # noqa: F401 (fixtures; skips without psycopg)

from mrules.compiler import CompiledRuleSet


def test_first_ties_read_their_views_with_the_chunk(
    rules: CompiledRuleSet,  # noqa: F811
    db: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    """The same reads as with the SQLite store, and the same end (commits of 3 events:
    one inside the chunk)."""
    from mrules.store_pg import PgStore

    got, counting = _two_runs(rules, PgStore.open(db), batched=True, every=3)
    want, asked = _two_runs(rules, str(tmp_path / "one.db"), batched=False, every=3)
    assert sorted(asked.single) == sorted(FIRST_TIES)
    assert counting.single == []
    assert counting.among == [sorted(FIRST_TIES)]
    assert got == want


def test_anonymous_views_among_is_anonymous_views_of_each(db: str) -> None:  # noqa: F811
    from mrules.store_pg import PgStore

    visitors = [f"v{i:04d}" for i in range(30)] + ["v-" + "x" * 300]
    store = _views_store(PgStore.open(db), visitors, every=7)
    try:
        asked = [*visitors, "never-seen", visitors[20]]
        found = store.anonymous_views_among(asked)
        assert found == _one_by_one(store, asked)
        assert set(found) == set(visitors[10:])  # the ten tied have none left
        assert all(len(views) == 2 for views in found.values())
        assert store.anonymous_views_among([]) == {}
    finally:
        store.close()
