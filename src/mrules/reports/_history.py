"""One pass over the packed history rows: who each rule touched, and the score at MQL.

The history keeps a row's ledger steps packed in one JSON array
(docs/store.md, `mrules.history`): which rule did what is only known by
walking the steps. The pass reads the rows that have steps (`seq IS NOT
NULL`), in insertion order, and keeps only integers: no record objects, no
JSON text for arguments (the arguments of a score step are looked up once
per distinct `names` id).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import orjson

from mrules.reports._db import ROW_TS, Source

__all__ = ["RULE_KINDS", "Hits", "walk"]

RULE_KINDS = ("automation rule", "page action", "completion action")
_KIND_KEY = {
    "automation rule": "automation",
    "page action": "page_action",
    "completion action": "completion_action",
}


class Hits:
    """Per rule (kind, name): matches, and the first hit time of each prospect it touched."""

    def __init__(self) -> None:
        self.matches: dict[tuple[str, str], int] = {}
        self.first: dict[tuple[str, str], dict[int, float]] = {}
        self.where: dict[tuple[str, str], str] = {}
        self.score_at_mql: dict[int, int] = {}


def _ids(source: Source) -> tuple[dict[int, tuple[str, str, str]], dict[str, int]]:
    """The rule references (names id -> kind, name, loc) of the kinds reported; action ids."""
    refs: dict[int, tuple[str, str, str]] = {}
    actions: dict[str, int] = {}
    wanted = {"rule matched", "score", "set score"}
    for i, text in source.query("SELECT id, text FROM main.names"):
        if text in wanted:
            actions[text] = i
        elif text.startswith('["'):
            try:
                value = orjson.loads(text)
            except orjson.JSONDecodeError:
                continue
            if (
                isinstance(value, list)
                and len(value) == 3
                and value[0] in RULE_KINDS
                and isinstance(value[1], str)
            ):
                refs[i] = (value[0], value[1], value[2] or "")
    return refs, actions


def walk(
    source: Source,
    mql: dict[int, float],
    *,
    rules: bool = True,
    since: float = -1e18,
    until: float = 1e18,
) -> Hits:
    """Walk every history row with ledger steps once.

    `mql`: prospect id -> MQL time; the score after the last score step at or
    before that time is the score at MQL (0 when none). Rule hits count
    when their time lies in [since, until).
    """
    refs, actions = _ids(source)
    hits = Hits()
    score_id = actions.get("score", 0)
    set_id = actions.get("set score", 0)
    matched_id = actions.get("rule matched", 0)
    names_text = dict(source.query("SELECT id, text FROM main.names")) if score_id else {}
    points_of: dict[int, int] = {}
    loads = orjson.loads
    matches = hits.matches
    first = hits.first
    at_mql = hits.score_at_mql
    for prospect in mql:
        at_mql[prospect] = 0
    rows: Iterable[tuple[Any, ...]] = source.conn.execute(
        f"SELECT h.prospect, {ROW_TS}, h.data FROM main.history h"
        " WHERE h.seq IS NOT NULL AND h.prospect IS NOT NULL ORDER BY h.id"
    )
    keys: dict[int, tuple[str, str]] = {}
    for i, (kind, name, loc) in refs.items():
        keys[i] = (kind, name)
        hits.where.setdefault((kind, name), loc)
    for prospect, ts, data in rows:
        limit = mql.get(prospect)
        if limit is None and not rules:
            continue
        v = loads(data)
        n = len(v)
        i = 5
        clock = ts
        if v[2] < 0:
            clock = v[6]
            i = 7
        score_wanted = limit is not None and clock <= limit
        first_step = True
        seen: set[tuple[str, str]] | None = None
        while i < n:
            if not first_step:
                i += 1
            first_step = False
            ref, action = v[i], v[i + 1]
            size = (4 if -action == score_id else 3) if action < 0 else 5
            if score_wanted:
                if action == -score_id:
                    args = v[i + 2]
                    if type(args) is int:
                        pts = points_of.get(args)
                        if pts is None:
                            pts = points_of[args] = int(loads(names_text[args])["points"])
                    else:
                        pts = int(args[0]["points"])
                    at_mql[prospect] = v[i + 3] + pts
                elif action in (score_id, set_id):
                    at_mql[prospect] = v[i + 4]
            if rules and since <= clock < until:
                key = keys.get(ref)
                if key is not None:
                    if key[0] == "automation rule":
                        if action in (matched_id, -matched_id):
                            matches[key] = matches.get(key, 0) + 1
                            touched = first.setdefault(key, {})
                            if prospect not in touched:
                                touched[prospect] = clock
                    else:
                        if seen is None:
                            seen = set()
                        if key not in seen:  # one event of one prospect counts once
                            seen.add(key)
                            matches[key] = matches.get(key, 0) + 1
                            touched = first.setdefault(key, {})
                            if prospect not in touched:
                                touched[prospect] = clock
            i += size
    return hits


def kind_key(kind: str) -> str:
    return _KIND_KEY[kind]
