"""One pass over the packed history rows: who each rule touched, and the score at MQL.

The history keeps a row's ledger steps packed in one JSON array
(docs/store.md, `mrules.history`): which rule did what is only known by
walking the steps. The pass reads the rows that have steps (`seq IS NOT
NULL`), in insertion order, and keeps only integers: no record objects, no
JSON text for arguments (the arguments of a score step are looked up once
per distinct `names` id).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from itertools import chain
from typing import Any

import orjson

from mrules.history import load_data
from mrules.reports._db import ROW_TS, Source
from mrules.store import HISTORY_DAMAGE, damaged_history

__all__ = ["RULE_KINDS", "Hits", "kind_key", "kind_label", "walk"]

_BATCH = 2048  # rows of the temporary table a statement inserts (4 values each)

RULE_KINDS = ("automation rule", "page action", "completion action")
_KIND_KEY = {
    "automation rule": "automation",
    "page action": "page_action",
    "completion action": "completion_action",
}


class Hits:
    """Per rule (kind, name): matches, and (`touches`) the first hit of each prospect it
    touched: its time and its row (the rows' order tells two events of one second apart).

    The first hits are kept in temporary tables of the report's connection, not in
    memory: at 2 million events a rule report touched 1.2 million (rule, prospect) pairs,
    329 MB when they were dicts. SQLite keeps a temporary table in a file beyond a few
    megabytes of cache.
    """

    def __init__(self) -> None:
        self.matches: dict[tuple[str, str], int] = {}
        self.where: dict[tuple[str, str], str] = {}
        self.score_at_mql: dict[int, int] = {}
        self._source: Source | None = None
        self._keys: dict[int, tuple[str, str]] = {}  # ref -> (kind, name)

    def touches(self) -> Iterator[tuple[tuple[str, str], float, int, Any, Any, int | None]]:
        """Each (rule, prospect it touched), the rules (kind, name) one after the other:
        (the rule, the time and row of its first hit, the prospect's MQL time, its won
        time, its first row that assigns). A rule with several references (it moved
        between runs) takes each prospect's earliest hit among them. One row at a time."""
        if self._source is None or not self._keys:
            return
        c = self._source.conn
        c.execute("DROP TABLE IF EXISTS temp.rule_key")
        c.execute("CREATE TEMP TABLE rule_key (ref INTEGER PRIMARY KEY, key INTEGER)")
        numbers: dict[tuple[str, str], int] = {}
        for key in self._keys.values():
            numbers.setdefault(key, len(numbers))
        c.executemany(
            "INSERT INTO rule_key VALUES (?, ?)",
            [(ref, numbers[key]) for ref, key in self._keys.items()],
        )
        names = {n: key for key, n in numbers.items()}
        # Every hit, in order of rule, prospect, reference and row: a reference's first hit of
        # a prospect is the first of its rows; of several references, the earliest counts.
        rows = c.execute(
            "SELECT k.key, f.prospect, f.ref, f.clock, f.row_no, ps.mql, ps.won, a.row_no"
            " FROM temp.rule_hit f JOIN temp.rule_key k ON k.ref = f.ref"
            " LEFT JOIN temp.ps ON ps.id = f.prospect"
            " LEFT JOIN temp.rule_assigned a ON a.prospect = f.prospect"
            " ORDER BY k.key, f.prospect, f.ref, f.row_no"
        )
        last: Any = None  # (rule number, prospect) of `best`
        last_ref = None
        best: Any = None
        for number, prospect, ref, clock, row_no, mql, won, assigned in rows:
            if (number, prospect) == last:
                if ref != last_ref:  # another reference of the same rule: the earliest hit
                    last_ref = ref
                    if (clock, row_no) < best[1:3]:
                        best = (best[0], clock, row_no, mql, won, assigned)
                continue
            if best is not None:
                yield best
            last, last_ref = (number, prospect), ref
            best = (names[number], clock, row_no, mql, won, assigned)
        if best is not None:
            yield best


def _ids(source: Source) -> tuple[dict[int, tuple[str, str, str]], dict[str, int]]:
    """The rule references (names id -> kind, name, loc) of the kinds reported; action ids."""
    refs: dict[int, tuple[str, str, str]] = {}
    actions: dict[str, int] = {}
    wanted = {"rule matched", "score", "set score", "assign"}
    for i, text in source.names().items():
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
    """Walk the history rows with ledger steps once.

    With `rules`, every row: the hits of each rule whose time lies in [since,
    until). `mql`: prospect id -> MQL time; the score after the last score
    step at or before that time is the score at MQL (0 when none).
    """
    refs, actions = _ids(source)
    hits = Hits()
    try:
        if rules:
            _rule_hits(source, refs, actions, hits, since, until)
        if mql:
            _score_at_mql(source, actions, mql, hits)
    except HISTORY_DAMAGE as e:
        raise damaged_history(source.store.path, e) from None
    return hits


def _rule_hits(
    source: Source,
    refs: dict[int, tuple[str, str, str]],
    actions: dict[str, int],
    hits: Hits,
    since: float,
    until: float,
) -> None:
    neg_score = -actions.get("score", 0)
    m_pos = actions.get("rule matched", 0)
    m_neg = -m_pos
    auto = {i for i, (kind, _n, _l) in refs.items() if kind == "automation rule"}
    wanted = set(refs)
    assigns = {actions.get("assign", 0), -actions.get("assign", 0)} - {0}
    c = source.conn
    # Every hit of a rule reference, in temporary tables, not dicts: memory does not follow
    # the hits. Appended in the rows' order (sorted once, when they are read back).
    c.execute("DROP TABLE IF EXISTS temp.rule_hit")
    c.execute("DROP TABLE IF EXISTS temp.rule_assigned")
    c.execute("CREATE TEMP TABLE rule_hit (ref INTEGER, prospect INTEGER, clock, row_no INTEGER)")
    c.execute("CREATE TEMP TABLE rule_assigned (prospect INTEGER PRIMARY KEY, row_no INTEGER)")
    add_first = "INSERT INTO temp.rule_hit VALUES (?, ?, ?, ?)"
    add_firsts = "INSERT INTO temp.rule_hit VALUES " + ", ".join(["(?, ?, ?, ?)"] * _BATCH)
    add_assigned = "INSERT OR IGNORE INTO temp.rule_assigned VALUES (?, ?)"
    firsts: list[tuple[int, int, Any, int]] = []
    assigned: list[tuple[int, int]] = []
    count = dict.fromkeys(refs, 0)
    last_row = dict.fromkeys(refs, -1)
    rows: Iterable[tuple[Any, ...]] = c.execute(
        f"SELECT h.prospect, {ROW_TS}, h.data FROM main.history h"
        " WHERE h.seq IS NOT NULL AND h.prospect IS NOT NULL ORDER BY h.id"
    )
    for row_no, (prospect, ts, data) in enumerate(rows):
        v = load_data(data)
        i, clock = 5, ts
        if v[2] < 0:
            i, clock = 7, v[6]
        if not since <= clock < until:
            continue
        n = len(v)
        while True:
            ref, action = v[i], v[i + 1]
            if action in assigns:
                assigned.append((prospect, row_no))
            if ref in wanted:
                if ref in auto:
                    if action in (m_neg, m_pos):
                        count[ref] += 1
                        firsts.append((ref, prospect, clock, row_no))
                elif last_row[ref] != row_no:  # one event of one prospect counts once
                    last_row[ref] = row_no
                    count[ref] += 1
                    firsts.append((ref, prospect, clock, row_no))
            if action < 0:
                i += 4 if action == neg_score else 3
            else:
                i += 5
            if i >= n:
                break
            i += 1  # the next step's seq delta
        if len(firsts) >= _BATCH:  # one statement of many rows: a third of executemany's time
            c.execute(add_firsts, list(chain.from_iterable(firsts[:_BATCH])))
            del firsts[:_BATCH]
            c.executemany(add_assigned, assigned)
            assigned.clear()
    c.executemany(add_first, firsts)
    c.executemany(add_assigned, assigned)
    # One (kind, name) may have several references (the rule moved between runs).
    for ref, (kind, name, loc) in refs.items():
        if not count[ref]:
            continue
        key = (kind, name)
        hits.where.setdefault(key, loc)
        hits.matches[key] = hits.matches.get(key, 0) + count[ref]
        hits._keys[ref] = key
    hits._source = source


def _score_at_mql(
    source: Source, actions: dict[str, int], mql: dict[int, float], hits: Hits
) -> None:
    """Each MQL's score just after the event that assigned it: after the last score step
    of that event's row or of an older one.

    Rows are read newest first, a prospect at a time; once its last score step is
    found, its older rows are not decoded. Rows at the MQL time itself are held until
    the one that assigned is known (the oldest of them with an assign step): another
    event of the same second after it (a page view as the form is sent) is not part
    of the score at MQL.
    """
    score_id = actions.get("score", 0)
    set_id = actions.get("set score", 0)
    assign_id = actions.get("assign", 0)
    assigns = {assign_id, -assign_id} - {0}
    neg_score = -score_id
    at_mql = hits.score_at_mql
    for prospect in mql:
        at_mql[prospect] = 0
    if not score_id and not set_id:
        return
    names_text = source.names()
    points_of: dict[int, int] = {}
    loads = orjson.loads

    def scan(v: list[Any], i: int) -> tuple[int | None, bool]:
        """The score after the row's last score step (None: none), and whether it assigns."""
        n = len(v)
        found = None
        assigned = False
        while True:
            action = v[i + 1]
            if action == neg_score:
                args = v[i + 2]
                if type(args) is int:
                    pts = points_of.get(args)
                    if pts is None:
                        pts = points_of[args] = int(loads(names_text[args])["points"])
                else:
                    pts = int(args[0]["points"])
                found = v[i + 3] + pts
            elif action in (score_id, set_id):
                found = v[i + 4]
            elif action in assigns:
                assigned = True
            if action < 0:
                i += 4 if action == neg_score else 3
            else:
                i += 5
            if i >= n:
                return found, assigned
            i += 1

    def settle(prospect: int, same: list[tuple[int | None, bool]]) -> bool:
        """The score from the rows at the MQL time (newest first), if one of them has it."""
        start = max((k for k, (_f, assigned) in enumerate(same) if assigned), default=0)
        for found, _a in same[start:]:
            if found is not None:
                at_mql[prospect] = found
                return True
        return False

    # ts <= clock always (a row's clock differs from its ts only for an event older than
    # the clock), so `ts <= mql` keeps every row whose clock can be at or before it.
    rows: Iterable[tuple[Any, ...]] = source.conn.execute(
        f"SELECT h.prospect, {ROW_TS} AS t, h.data FROM main.history h"
        " JOIN ps ON ps.id = h.prospect"
        f" WHERE h.seq IS NOT NULL AND ps.mql IS NOT NULL AND {ROW_TS} <= ps.mql"
        " ORDER BY h.prospect, h.id DESC"
    )
    done = current = -1
    same: list[tuple[int | None, bool]] = []  # the current prospect's rows at its MQL time
    for prospect, ts, data in rows:
        if prospect != current:
            if same and current != done:
                settle(current, same)
            current, same = prospect, []
        if prospect == done:
            continue
        limit = mql.get(prospect)
        if limit is None:
            continue
        v = load_data(data)
        i, clock = 5, ts
        if v[2] < 0:
            i, clock = 7, v[6]
        if clock > limit:
            continue
        step = scan(v, i)
        if clock == limit:
            same.append(step)
            continue
        if same:  # an older row: the rows at the MQL time come first
            found_there = settle(prospect, same)
            same = []
            if found_there:
                done = prospect
                continue
        if step[0] is not None:  # the row's last score step: the newest before MQL
            at_mql[prospect] = step[0]
            done = prospect
    if same and current != done:
        settle(current, same)


def kind_key(kind: str) -> str:
    return _KIND_KEY[kind]


_KIND_LABEL = {v: k for k, v in _KIND_KEY.items()}


def kind_label(key: str) -> str:
    """A rule kind as people read it (`automation rule`) from its JSON key (`automation`)."""
    return _KIND_LABEL.get(key, key.replace("_", " "))
