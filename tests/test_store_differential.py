"""The in-memory store against the SQLite store: every read, after the same runs.

`--store :memory:` promises to keep exactly what the SQLite store keeps and to
answer the same reads in the same order (docs/store.md). Each case runs the same
stream into a `MemoryStore` and into an SQLite file, in commits of a given size
and in three runs (the file grows between them, so the second and third resume
from the stored position and anchor), then asks both stores every question of
the `StateStore` interface, with the arguments the engine and the commands pass
(each prospect, each visitor, seqs in the middle of the ledger), and compares
the answers.

The stream is bench/generate.py's (page views, anonymous and tied visitors,
forms, emails, CRM updates, ticks; automation rules, scoring, grading), with
lines the reader rejects, a replayed event id, and two dynamic lists that undo
each other for prospects in Spain (their reports are the stores' diagnostics).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

import mrules
import mrules.api
import mrules.compiler
from mrules.batch import Batch
from mrules.memstore import MemoryStore
from mrules.store import Store
from mrules.storeapi import StateStore, StoreError

BENCH = Path(__file__).resolve().parents[1] / "bench"
sys.path.insert(0, str(BENCH))
import generate as gen  # noqa: E402

UNSETTLED_IN_SPAIN = """
dynamic list "Flip" {
  when all {
    country is "Spain"
    score >= 0
    not in list "Flop"
  }
}
dynamic list "Flop" {
  when all {
    in list "Flip"
  }
}
"""
"""Two lists that undo each other for a prospect in Spain: it never settles, and every
event that changes its score (most do) reports it again."""

BAD_LINES = [b"{not json", b'{"type": "page_view"}', b'{"ts": "2026-01-01T00:00:00Z"}']


def _rules(seed: int) -> mrules.compiler.CompiledRuleSet:
    text = gen.generate_rules(seed, gen.build_catalog()) + UNSETTLED_IN_SPAIN
    loaded = mrules.parse(text)  # past the checker: it refuses the two lists (MR313)
    return mrules.compiler.compile_program(loaded.program, loaded.sources)


def _lines(seed: int, prospects: int, events: int) -> list[bytes]:
    made = [
        orjson.dumps(e) for e in gen.generate_events(seed, prospects, events, gen.build_catalog())
    ]
    for n in range(7, len(made) - 1, 53):  # out of time order, as streams come
        made[n], made[n + 1] = made[n + 1], made[n]
    out: list[bytes] = [BAD_LINES[1]]  # line 1 rejected, as line 1 of the second stream
    for n, line in enumerate(made):
        out.append(line)
        if n % 97 == 13:
            out.append(BAD_LINES[n % len(BAD_LINES)])
        if n % 211 == 50:
            out.append(made[n // 2])  # an id applied already: skipped as a duplicate
    return out


def _reads(store: StateStore, source: str) -> dict[str, Any]:
    """Every answer of the store's interface, with the arguments a run and the commands pass."""
    prospects = dict(store.prospects())
    visitors = list(store.visitors())
    ledger = list(store.ledger())
    outbox, crm = list(store.outbox()), list(store.crm_pending())
    seqs = sorted({e.seq for e in ledger} | {m.seq for m in outbox} | {m.seq for m in crm})
    middle = [0, *seqs[:: max(1, len(seqs) // 5)], store.max_seq() + 1]
    middle += [m.seq for found in (outbox, crm) for m in (found[0], found[len(found) // 2])]
    ids = sorted(store.applied_ids())
    asked_ids = [*ids[::7], "no such id", *ids[-3:]]
    names = [*sorted(prospects), "nobody@x.example"]
    tied = [v for v, _, _ in visitors]
    anonymous = [f"a{n:05d}" for n in range(40)] + [f"v{n:05d}" for n in range(60)]
    return {
        "streams": list(store.streams().items()),  # type: ignore[attr-defined]
        "position": store.stream_position(source),
        "anchor": store.stream_anchor(source),
        "other position": store.stream_position("elsewhere"),
        "clock": store.clock(),
        "ruleset_version": store.ruleset_version(),  # type: ignore[attr-defined]
        "rules_first_seen": store.rules_first_seen(),
        "rules": list(store.rules()),  # type: ignore[attr-defined]
        "prospects": list(prospects.items()),
        "count": store.prospect_count(),
        "has": store.has_prospects(),
        "each prospect": {e: store.prospect(e) for e in names},
        "prospects_among": store.prospects_among(names[::3]),
        "visitors": visitors,
        "each visitor": {v: store.visitor(v) for v in [*tied, "no such visitor"]},
        "visitors_among": store.visitors_among([*tied[::2], "no such visitor"]),
        "anonymous": {v: store.anonymous_views(v) for v in anonymous},
        "anonymous_among": store.anonymous_views_among(anonymous),
        "applied": ids,
        "has_applied_ids": store.has_applied_ids(),
        "hashes": sorted(set(store.applied_hashes())),  # the SQLite store: one a row
        "applied_among": sorted(store.applied_among(asked_ids)),
        "has_applied": [store.has_applied(i) for i in asked_ids],
        "ledger": ledger,
        "ledger after": {s: list(store.ledger(None, s)) for s in middle},
        "ledger of": {e: list(store.ledger(e)) for e in names},
        "ledger of, after": {(e, s): list(store.ledger(e, s)) for e in names[::5] for s in middle},
        "activities": list(store.activities()),
        "activities unsorted": list(store.activities(by_time=False)),
        "activities of": {e: list(store.activities(e)) for e in names},
        "activities of, unsorted": {e: list(store.activities(e, by_time=False)) for e in names},
        "max_seq": store.max_seq(),
        "outbox": outbox,
        "crm": crm,
        "outbox by email": _by_email(store, "outbox_by_email", outbox),
        "crm by email": _by_email(store, "crm_pending_by_email", crm),
        "export": mrules.api.export_state(store),
        "crm after": {s: list(store.crm_pending(None, s)) for s in middle},
        "crm of": {e: list(store.crm_pending(e)) for e in names},
        "crm of, after": {
            (e, s): list(store.crm_pending(e, s)) for e in names[::4] for s in middle
        },
        "rejects": list(store.rejects()),
        "rejects of": list(store.rejects(source)),
        "rejects elsewhere": list(store.rejects("elsewhere")),
        "diagnostics": store.diagnostics(),
        "shared": dict(store.shared()),
        "log start": store.log_start("actions.jsonl"),
    }


def _by_email(store: StateStore, read: str, messages: list[Any]) -> list[Any]:
    """The messages a prospect at a time in email order, each one's by seq: as the SQLite
    store's `read` gives them (`mrules replay`, `state export`), else grouped here."""
    by_email = getattr(store, read, None)
    if by_email is not None:
        return [(email, list(group)) for email, group in by_email()]
    groups: dict[str, list[Any]] = {}
    for m in sorted(messages, key=lambda m: (m.prospect, m.seq)):
        groups.setdefault(m.prospect, []).append(m)
    return list(groups.items())


def _more(store: StateStore, other: Path, prospects: list[str]) -> None:
    """A second stream with rejected lines, then a batch of notifications and CRM work given
    as rows of their own, not as ledger steps (a batch may hold either)."""
    other.write_bytes(b"\n".join([BAD_LINES[0], b"{}", BAD_LINES[1], b""]))
    mrules.run(_rules(3), other, store=store, source=str(other))
    top, ts = store.max_seq(), 1_790_000_000.0
    outbox, crm = [], []
    for n, email in enumerate(prospects[:6]):
        outbox.append((top + 1 + 2 * n, ts + n, email, "notify", '{"user":"sales"}'))
        crm.append((top + 2 + 2 * n, ts + n, email, "campaign_member", '{"campaign":"Q4"}'))
    crm.reverse()  # the store orders them by seq
    store.commit(Batch(str(other), 4, ts + 9, outbox=outbox, crm_pending=crm))
    # a notification's seq already used, or used twice in the batch: refused, and nothing
    # of the batch is kept
    prospect = {"nobody@x.example": b"{}"}
    note = (ts, prospects[0], "notify", "{}")
    for notes in ([outbox[0]], [(store.max_seq() + 1, *note)] * 2):
        with pytest.raises(StoreError):
            store.commit(Batch(str(other), 9, ts, prospects=prospect, outbox=notes))


def _run_in_parts(
    rules: mrules.compiler.CompiledRuleSet,
    lines: list[bytes],
    store: StateStore,
    events: Path,
    cuts: list[int],
    every: int,
) -> None:
    """The stream as a file that grows: written up to each cut, then run (a resume)."""
    for upto in cuts:
        events.write_bytes(b"".join(line + b"\n" for line in lines[:upto]))
        mrules.run(rules, events, store=store, commit_every=every, source=str(events))


@pytest.mark.parametrize(
    ("seed", "every", "cut"),
    [(3, 1, 0.4), (5, 37, 0.5), (11, 20_000, 0.7), (17, 250, 0.15)],
)
def test_the_memory_store_answers_every_read_as_the_sqlite_store(
    tmp_path: Path, seed: int, every: int, cut: float
) -> None:
    rules = _rules(seed)
    lines = _lines(seed, prospects=60, events=900 if every > 1 else 300)
    cuts = [int(len(lines) * cut), int(len(lines) * (cut + 1) / 2), len(lines)]
    source = tmp_path / "events.jsonl"
    memory = MemoryStore()
    _run_in_parts(rules, lines, memory, source, cuts, every)
    memory.set_log_start("actions.jsonl", 7)
    other = tmp_path / "a-more.jsonl"  # before events.jsonl: the rejects are sorted by file
    emails = sorted(dict(memory.prospects()))[::-7]
    _more(memory, other, emails)
    with Store.open(tmp_path / "s.db") as disk:
        _run_in_parts(rules, lines, disk, source, cuts, every)
        disk.set_log_start("actions.jsonl", 7)
        _more(disk, other, emails)
        on_disk = _reads(disk, str(source))
    in_memory = _reads(memory, str(source))
    # enough of everything that a store answering differently is seen
    assert len(in_memory["prospects"]) >= 30 and len(in_memory["visitors"]) >= 10
    assert any(in_memory["anonymous"].values()) and in_memory["rejects"]
    assert in_memory["diagnostics"] and in_memory["outbox"] and in_memory["crm"]
    assert in_memory["position"] == len(lines) and in_memory["anchor"] is not None
    for key, value in in_memory.items():
        assert value == on_disk[key], key
    assert list(memory.meta().items()) == list(disk_meta(tmp_path / "s.db").items())
    assert len(in_memory["streams"]) == 2 and {r.source for r in in_memory["rejects"]} == {
        str(source),
        str(other),
    }
    assert in_memory["activities"] != in_memory["activities unsorted"]
    # the refused batches left nothing: no prospect, the second stream's position as it was
    assert in_memory["each prospect"]["nobody@x.example"] is None
    assert (str(other), 4) in in_memory["streams"]


FILE_ONLY_META = {"created_at", "mrules_version", "schema_version", "seq", "store_id"}
"""What only a store file notes of itself: when and by which mrules it was made, its
identity, its schema, its last seq as a file keeps it (both stores answer `max_seq()` the same)."""


def disk_meta(path: Path) -> dict[str, str]:
    """The SQLite store's meta, but the keys only a file has."""
    with Store.open(path, readonly=True) as disk:
        return {k: v for k, v in disk.meta().items() if k not in FILE_ONLY_META}


STATE_BYTES = {"prospects", "each prospect", "prospects_among"}
"""The reads that give a prospect's stored state as bytes. A notification's last time is
forgotten once its throttle window has passed, when the prospect is written: how many
such times a state still holds depends on when it was last written, never what any
command shows of it (`state export`, compared instead)."""


@pytest.mark.parametrize("seed", [5, 11])
def test_what_a_run_stores_does_not_depend_on_its_commit_size_nor_its_resumes(
    tmp_path: Path, seed: int
) -> None:
    """A commit is where a killed run resumes (docs/store.md), not a change of result: the
    same stream in commits of 1, 37 and 20,000 events, whole or in runs of a growing file,
    leaves the same ledger, history, outbox, CRM work, rejects, diagnostics and export."""
    rules, lines = _rules(seed), _lines(seed, prospects=60, events=900)
    end = len(lines)
    found = []
    for every, cuts in ((20_000, [end]), (1, [end]), (37, [end // 3, end * 2 // 3, end]),
                        (20_000, [end // 4, end])):  # fmt: skip
        store, source = MemoryStore(), tmp_path / "events.jsonl"  # the same file each time
        _run_in_parts(rules, lines, store, source, cuts, every)
        reads = _reads(store, str(source))
        for key in STATE_BYTES:
            del reads[key]
        found.append(reads)
    assert found[0]["diagnostics"] and found[0]["export"] and found[0]["rejects"]
    for other in found[1:]:
        assert other == found[0]
