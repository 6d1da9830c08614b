"""A stream split into 4 partitions by prospect ends as the whole stream does.

The rules of docs/semantics.md, *Partitioned runs*: every event of a prospect
(and of a visitor tied to it) goes to that prospect's partition, ticks go to
every partition, `round_robin = "by prospect"`. Then each prospect's state,
ledger and messages are those of the run over the whole stream (seq and line
numbers aside: each partition numbers its own).
"""

from __future__ import annotations

import sys
import zlib
from pathlib import Path
from typing import Any

import orjson
import pytest

import mrules
from mrules.api import compile_rules

BENCH = Path(__file__).resolve().parents[1] / "bench"
sys.path.insert(0, str(BENCH))
import generate as gen  # noqa: E402

PARTS = 4


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("partitions")
    gen.main([str(tmp), "--prospects", "300", "--events", "4000", "--seed", "3"])
    rules = tmp / "rules"
    (rules / "zz-partitions.mr").write_text('settings {\n  round_robin = "by prospect"\n}\n')
    lines = (tmp / "events.jsonl").read_bytes().splitlines()
    return {"rules": compile_rules(rules), "lines": lines}


def _partitions(lines: list[bytes]) -> list[list[bytes]]:
    """Route by prospect; a visitor's events follow the prospect it is tied to; ticks to all."""
    tied: dict[str, str] = {}
    events = [orjson.loads(x) for x in lines]
    for ev in events:  # the identity graph, known before routing
        if ev.get("prospect") and ev.get("visitor"):
            tied.setdefault(ev["visitor"], ev["prospect"].strip().lower())
    parts: list[list[bytes]] = [[] for _ in range(PARTS)]
    for line, ev in zip(lines, events, strict=True):
        if ev["type"] == "tick":
            for part in parts:
                part.append(line)
            continue
        key = (ev.get("prospect") or "").strip().lower() or tied.get(ev.get("visitor"), "")
        key = key or ev.get("visitor") or ""
        parts[zlib.crc32(key.encode()) % PARTS].append(line)
    return parts


def _by_prospect(result: mrules.api.RunResult) -> dict[str, Any]:
    store = result.store
    out: dict[str, Any] = {}
    for record in result.export():
        email = record["email"]
        pending = [{k: v for k, v in w.items() if k != "seq"} for w in record["pending_crm"]]
        out[email] = {
            "state": {**record, "pending_crm": pending},
            # seq and line are the partition's own; the event id says which event it was
            "ledger": [e._replace(seq=0, line=0) for e in store.ledger(email)],
        }
    for m in store.outbox():
        out[m.prospect].setdefault("outbox", []).append(m[1:])
    return out


def test_whole_and_four_partitions_agree(inputs: dict[str, Any]) -> None:
    rules, lines = inputs["rules"], inputs["lines"]
    whole = _by_prospect(mrules.run(rules, lines, source="-"))
    parts = _partitions(lines)
    assert all(len(p) > len(lines) // (2 * PARTS) for p in parts)
    split: dict[str, Any] = {}
    for part in parts:
        found = _by_prospect(mrules.run(rules, part, source="-"))
        assert not split.keys() & found.keys()  # a prospect lives in one partition
        split.update(found)
    assert split.keys() == whole.keys()
    differ = [e for e in whole if whole[e] != split[e]]
    assert differ == [], (
        differ[:3],
        [whole[e] for e in differ[:1]],
        [split[e] for e in differ[:1]],
    )
    # Not vacuous: groups assigned, rules matched, messages sent.
    assert any(e.action == "rule matched" for p in whole.values() for e in p["ledger"])
    assert any(e.args and '"to":"user"' in e.args for p in whole.values() for e in p["ledger"])
    assert any(p.get("outbox") for p in whole.values())
    # and CRM owner changes after a first assignment: their `reassigned_at` agrees too
    assert any("reassigned_at" in (p["state"]["assigned"] or {}) for p in whole.values())
