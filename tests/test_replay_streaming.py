"""`mrules replay` compares two runs into store files a prospect at a time (docs/replay.md).

The comparison read both runs whole: every prospect's stored state, CRM work and
message, in dicts and lists held from the end of each run to the report (1.27 GB at
2 million events). It now reads the two stores in email order, a prospect at a time,
and keeps what the report gives. Checked here: what the comparison holds does not
follow the prospects, and its report is byte for byte the one the whole-store
comparison (kept below as the reference, as it was) makes of the same two stores.
"""

from __future__ import annotations

import json
import tracemalloc
from collections import Counter
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.test_replay_differential import BASE, _edited, _history, _write
from tests.test_replay_readers import _workload

import mrules.replay
from mrules.engine import iso
from mrules.replay import (
    _DYNAMIC,
    _GRADE_ACTIONS,
    _crm_reason,
    _crm_work,
    _data_changes,
    _data_reason,
    _distribution,
    _Explainer,
    _Facts,
    _message_key,
    _read_reference,
    diff_runs,
    render_text,
)
from mrules.store import Store

RULES = """list "MQL"
user "a@x.example"
page action "P" on "x.example/p" { score +1 notify user "a@x.example" }
automation rule "Hot" priority 10 {
  when all { score >= 3 }
  then { add to list "MQL" }
}
"""


def _views(path: Path, prospects: int, anonymous: int = 0) -> Path:
    """Six page views of each of PROSPECTS prospects (the first one notifies), and one of
    each of ANONYMOUS visitors who never become known (a name each in the store)."""
    with path.open("w") as f:
        for j in range(anonymous):
            view = {"ts": "2026-11-01T08:00:00Z", "type": "page_view", "visitor": f"v{j:05d}"}
            f.write(json.dumps({**view, "url": "https://x.example/p"}) + "\n")
        for j in range(6 * prospects):
            f.write(
                json.dumps(
                    {
                        "ts": f"2026-11-01T09:{j // prospects:02d}:00Z",
                        "type": "page_view",
                        "prospect": f"p{j % prospects:05d}@replay.example",
                        "url": "https://x.example/p",
                    }
                )
                + "\n"
            )
    return path


def _compare_peak(
    tmp: Path, rules: Path, prospects: int, monkeypatch: Any, anonymous: int = 0
) -> int:
    """The most memory (Python's) the comparison of a replay into store files held: what
    it had when it began and what it took while it ran."""
    seen = []
    compare = mrules.replay._compare

    def measured(*args: Any) -> Any:
        tracemalloc.reset_peak()
        out = compare(*args)
        seen.append(tracemalloc.get_traced_memory()[1])
        return out

    monkeypatch.setattr(mrules.replay, "_compare", measured)
    events = _views(tmp / f"views-{prospects}-{anonymous}.jsonl", prospects, anonymous)
    stores = tmp / f"stores-{prospects}-{anonymous}"
    tracemalloc.start()
    try:
        d = diff_runs(str(rules), str(rules), str(events), store_dir=stores)
    finally:
        tracemalloc.stop()
    assert d["prospects"]["old"] == prospects and d["outbox"]["old"] == prospects
    [peak] = seen
    return peak


def _compare_bytes_a_prospect(tmp_path: Path, monkeypatch: Any) -> float:
    """The comparison's peak, in bytes a prospect, from 500 to 2,000 prospects."""
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "rules.mr").write_text(RULES)
    _compare_peak(tmp_path, rules, 10, monkeypatch)  # what is imported once, not measured
    small, large = 500, 2000
    peak_small = _compare_peak(tmp_path, rules, small, monkeypatch)
    return (_compare_peak(tmp_path, rules, large, monkeypatch) - peak_small) / (large - small)


def test_the_comparison_does_not_hold_every_prospect(tmp_path: Path, monkeypatch: Any) -> None:
    """Each prospect's state, CRM work and messages were held whole by the comparison
    (2.5 KB a prospect of this history); it now keeps about 0.4 KB: its score on each side,
    and its email among the names the store's history reader loads."""
    per_prospect = _compare_bytes_a_prospect(tmp_path, monkeypatch)
    assert per_prospect < 1000, per_prospect


def test_the_comparison_loads_no_email_of_every_prospect(tmp_path: Path, monkeypatch: Any) -> None:
    """The store's reader of the messages by email loaded a dict of every prospect's email
    (and every name) for each kind of message on each side: 0.37 KB a prospect of this
    history. The query that sorts the messages by email joins the email already; the rest
    (each prospect's score on each side) is 0.13 KB."""
    per_prospect = _compare_bytes_a_prospect(tmp_path, monkeypatch)
    assert per_prospect < 250, per_prospect


def test_the_comparison_loads_no_name_of_every_visitor(tmp_path: Path, monkeypatch: Any) -> None:
    """The same reader loaded every name of the store (visitor ids, URLs...: up to 200,000,
    29 MiB) for each kind of message on each side, names the messages do not use: 0.44 KB
    an anonymous visitor here. It asks the store for the names its rows use."""
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "rules.mr").write_text(RULES)
    _compare_peak(tmp_path, rules, 10, monkeypatch)  # what is imported once, not measured
    few, many = 500, 4000
    peak_few = _compare_peak(tmp_path, rules, 10, monkeypatch, anonymous=few)
    per_visitor = (_compare_peak(tmp_path, rules, 10, monkeypatch, anonymous=many) - peak_few) / (
        many - few
    )
    assert per_visitor < 50, per_visitor


# ------------------------------------------------------- the whole-store comparison, as it was


def _reference(old_db: Path, new_db: Path, mql: str, limit: int) -> dict[str, Any]:
    """The report the whole-store comparison makes of two stores a replay kept."""
    sides = []
    for path in (old_db, new_db):
        st = Store.open(path, readonly=True)
        states, crm, outbox, (counts, at) = _read_reference(st, fast_counts=None)
        sides.append(SimpleNamespace(states=states, crm=crm, outbox=outbox, rule_counts=counts,
                                     rule_at=at, store=st))  # fmt: skip
    try:
        return _whole_compare(sides[0], sides[1], mql, limit)
    finally:
        for side in sides:
            side.store.close()


def _with_examples(items: list[dict[str, Any]], limit: int) -> dict[str, Any]:
    return {
        "count": len(items),
        "prospects": [i["prospect"] for i in items],
        "examples": items[:limit],
    }


def _whole_compare(old: Any, new: Any, mql: str, limit: int) -> dict[str, Any]:
    from mrules.state import Codecs

    ex_old, ex_new = _Explainer(old), _Explainer(new)
    emails = sorted(old.states.keys() | new.states.keys())
    cats: dict[str, list[dict[str, Any]]] = {
        k: []
        for k in (
            "mql_gained",
            "mql_lost",
            "assignment",
            "grade",
            "lists",
            "data",
            "crm",
            "only_old",
            "only_new",
        )
    }
    codecs_old, codecs_new = Codecs(), Codecs()
    # Scores and MQL status of every prospect, by side; a prospect whose stored state is
    # the same bytes under both rule sets is decoded once.
    score_old: dict[str, int] = {}
    score_new: dict[str, int] = {}
    mql_old = mql_new = 0
    score_moves = []
    rescored: list[str] = []  # the prospects whose score differs
    for email in emails:
        sa, sb = old.states.get(email), new.states.get(email)
        if sa is None or sb is None:
            cats["only_new" if sa is None else "only_old"].append({"prospect": email})
            # An MQL that exists under one rule set only is gained (or lost) too, so the
            # counts add up: 2 -> 3 is "+1 become MQLs".
            if sa is not None:
                one = _Facts(sa, codecs_old, email, mql)
                mql_old += one.mql
                if one.mql:
                    cats["mql_lost"].append({"prospect": email, "score": [one.score, None]})
            if sb is not None:
                one = _Facts(sb, codecs_new, email, mql)
                mql_new += one.mql
                if one.mql:
                    cats["mql_gained"].append({"prospect": email, "score": [None, one.score]})
            continue
        if sa == sb:
            a = b = _Facts(sa, codecs_new, email, mql)
        else:
            a, b = _Facts(sa, codecs_old, email, mql), _Facts(sb, codecs_new, email, mql)
        score_old[email], score_new[email] = a.score, b.score
        mql_old += a.mql
        mql_new += b.mql
        if a is not b:
            if a.score != b.score:
                score_moves.append(b.score - a.score)
                rescored.append(email)
            if a.mql != b.mql:
                cats["mql_gained" if b.mql else "mql_lost"].append(
                    {"prospect": email, "score": [a.score, b.score]}
                )
            if (
                a.assignee != b.assignee
                or a.assigned_at != b.assigned_at
                or a.reassigned_at != b.reassigned_at
            ):
                cats["assignment"].append(
                    {
                        "prospect": email,
                        "old": a.assignee,
                        "new": b.assignee,
                        "at": [a.assigned_at, b.assigned_at],
                        "reassigned_at": [a.reassigned_at, b.reassigned_at],
                    }
                )
            if a.grade != b.grade:
                cats["grade"].append({"prospect": email, "old": a.grade, "new": b.grade})
            if a.lists != b.lists:
                cats["lists"].append(
                    {
                        "prospect": email,
                        "added": sorted(b.lists - a.lists),
                        "removed": sorted(a.lists - b.lists),
                    }
                )
            data = _data_changes(a, b)
            if data:
                cats["data"].append({"prospect": email, "changes": data})
        ca, cb = old.crm.get(email), new.crm.get(email)
        if ca or cb or a.crm_status != b.crm_status:
            wa, wb = _crm_work(ca), _crm_work(cb)
            if wa != wb or a.crm_status != b.crm_status:
                cats["crm"].append(
                    {
                        "prospect": email,
                        "added": [orjson.loads(k) for k in (wb - wa).elements()],
                        "removed": [orjson.loads(k) for k in (wa - wb).elements()],
                        "crm_status": [a.crm_status, b.crm_status],
                    }
                )
    # Reasons for the examples only: the ledger of a few prospects.
    for item in cats["mql_gained"][:limit]:
        e = item["prospect"]
        item["reason"] = ex_new.last(e, "add to list", list=mql) or "in the dynamic list"
    for item in cats["mql_lost"][:limit]:
        e = item["prospect"]
        item["reason"] = "old rules: " + (ex_old.last(e, "add to list", list=mql) or "dynamic list")
        removed = ex_new.last(e, "remove from list", list=mql)
        if removed:
            item["reason"] += f"; new rules removed it: {removed}"
    for item in cats["assignment"][:limit]:
        e = item["prospect"]
        side = ex_new if item["new"] else ex_old
        item["reason"] = ("new rules: " if item["new"] else "old rules: ") + (
            side.last(e, "assign") or "?"
        )
    for item in cats["grade"][:limit]:
        e = item["prospect"]
        # What graded it under the new rules, else (a grading the new rules dropped) what
        # had graded it under the old ones.
        for side, label in ((ex_new, "new rules"), (ex_old, "old rules")):
            why = side.last_change(e, _GRADE_ACTIONS)
            if why:
                item["reason"] = f"{label}: {why}"
                break
    for item in cats["lists"][:limit]:
        e = item["prospect"]
        reasons = []
        # A dynamic list is shown "NAME (dynamic)"; the ledger names it NAME.
        for name in item["added"][:2]:
            why = ex_new.last(e, "add to list", list=name.removesuffix(_DYNAMIC))
            if why:
                reasons.append(f"{name}: {why}")
        for name in item["removed"][:2]:
            why = ex_old.last(e, "add to list", list=name.removesuffix(_DYNAMIC))
            if why:
                reasons.append(f"{name} (old rules): {why}")
        item["reason"] = "; ".join(reasons) or None
    for item in cats["data"][:limit]:
        item["reason"] = _data_reason(item["prospect"], item["changes"][0], ex_new, ex_old)
    for item in cats["crm"][:limit]:
        item["reason"] = _crm_reason(item, ex_new, ex_old)
    for key, side in (("only_new", ex_new), ("only_old", ex_old)):
        for item in cats[key][:limit]:
            item["reason"] = side.last(item["prospect"], "create prospect")

    # Outbox: messages as (prospect, kind, what is sent), counted.
    keys_old = [_message_key(m) for m in old.outbox]
    keys_new = [_message_key(m) for m in new.outbox]
    ka, kb = Counter(keys_old), Counter(keys_new)
    gained_keys, lost_keys = kb - ka, ka - kb
    # Each key's first message (the lowest seq): the outbox is in seq order.
    first_new = dict(zip(reversed(keys_new), reversed(new.outbox), strict=True))
    first_old = dict(zip(reversed(keys_old), reversed(old.outbox), strict=True))

    def messages(keys: Counter[bytes], first: dict[bytes, dict[str, Any]]) -> dict[str, Any]:
        by_kind: Counter[str] = Counter()
        items = []
        for k, n in sorted(keys.items(), key=lambda kv: first[kv[0]]["seq"]):
            m = first[k]
            by_kind[m["kind"]] += n
            body = {x: y for x, y in m.items() if x not in ("seq", "ts", "rule", "at")}
            items.append(
                {
                    **body,
                    "count": n,
                    "time": iso(m["ts"]),
                    "reason": f"{m.get('rule', '?')} ({m.get('at', '?')})",
                }
            )
        return {
            "total": sum(keys.values()),
            "by_kind": dict(sorted(by_kind.items())),
            "messages": items,
        }

    gained = messages(gained_keys, first_new)
    lost = messages(lost_keys, first_old)

    # Per rule.
    rules: list[dict[str, Any]] = []
    for rule_key in sorted(set(old.rule_counts) | set(new.rule_counts)):
        before, after = old.rule_counts.get(rule_key, 0), new.rule_counts.get(rule_key, 0)
        rules.append(
            {
                "kind": rule_key[0],
                "name": rule_key[1],
                "at": new.rule_at.get(rule_key) or old.rule_at.get(rule_key),
                "before": before,
                "after": after,
            }
        )
    rules.sort(key=lambda r: (-abs(r["after"] - r["before"]), r["kind"], r["name"]))

    moves = sorted(score_moves)
    dist_old = _distribution(list(score_old.values()))
    dist_new = _distribution(list(score_new.values()))
    # The same buckets on both sides: `<0` is there only when a score is below 0, and a side
    # without it shifted the text's before/after columns by one row.
    for fewer, more in ((dist_old, dist_new), (dist_new, dist_old)):
        if more["buckets"][0]["range"] == "<0" and fewer["buckets"][0]["range"] != "<0":
            fewer["buckets"].insert(0, {"range": "<0", "prospects": 0})
    # A prospect changed when anything compared differs: a score alone counts too.
    changed = {e for k, v in cats.items() for e in (i["prospect"] for i in v)}
    changed.update(rescored)
    return {
        "mql_list": mql,
        "prospects": {
            "old": len(old.states),
            "new": len(new.states),
            "changed": len(changed),
        },
        "mql": {
            "old": mql_old,
            "new": mql_new,
            "gained": _with_examples(cats["mql_gained"], limit),
            "lost": _with_examples(cats["mql_lost"], limit),
        },
        "assignment": _with_examples(cats["assignment"], limit),
        "grade": _with_examples(cats["grade"], limit),
        "lists": _with_examples(cats["lists"], limit),
        "data": _with_examples(cats["data"], limit),
        "crm": _with_examples(cats["crm"], limit),
        "only_old": _with_examples(cats["only_old"], limit),
        "only_new": _with_examples(cats["only_new"], limit),
        "outbox": {
            "old": len(old.outbox),
            "new": len(new.outbox),
            "gained": gained,
            "lost": lost,
        },
        "score": {
            "old": dist_old,
            "new": dist_new,
            "changed": len(moves),
            "mean_change": round(sum(moves) / len(moves), 2) if moves else 0.0,
            "up": sum(1 for m in moves if m > 0),
            "down": sum(1 for m in moves if m < 0),
        },
        "rules": rules,
    }


def _stable(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if k not in ("events", "old", "new", "seconds")}


def _check(old: Path, new: Path, events: Path, stores: Path, mql: str, limit: int) -> None:
    d = diff_runs(str(old), str(new), str(events), mql_list=mql, examples=limit, store_dir=stores)
    want = _reference(stores / "old.db", stores / "new.db", mql, limit)
    assert orjson.dumps(_stable(d)) == orjson.dumps(want)
    labels = {"old": d["old"], "new": d["new"], "events": d["events"], "seconds": d["seconds"]}
    assert render_text(d) == render_text({**want, **labels})


@pytest.mark.parametrize("seed", [1, 7])
def test_the_report_is_the_whole_store_comparisons(tmp_path: Path, seed: int) -> None:
    """On the benchmark's workload (MQLs, assignments, lists, CRM work and messages move),
    both ways, with a few examples and with every one."""
    old, new, events = _workload(tmp_path, seed)
    for i, (a, b, limit) in enumerate(((old, new, 3), (new, old, 1000))):
        _check(a, b, events, tmp_path / f"stores-{i}", "MQL", limit)


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(data=st.data())
def test_the_report_is_the_whole_store_comparisons_on_edited_rules(
    tmp_path_factory: Any, data: st.DataObject
) -> None:
    """On the rule edits of the replay's differential test: lines one side rejects
    (prospects of one run only), dynamic lists, grades, CRM status."""
    tmp = tmp_path_factory.mktemp("stream")
    old_p = data.draw(st.one_of(st.just(BASE), _edited(BASE)), label="old rules")
    new_p = data.draw(_edited(old_p), label="new rules")
    mql = data.draw(st.sampled_from(["MQL", "Dyn"]), label="--mql-list")
    limit = data.draw(st.sampled_from([0, 1, 5]), label="--examples")
    events = tmp / "events.jsonl"
    events.write_text("\n".join(data.draw(_history(), label="history")) + "\n")
    old, new = _write(tmp / "old", old_p), _write(tmp / "new", new_p)
    _check(old, new, events, tmp / "stores", mql, limit)
