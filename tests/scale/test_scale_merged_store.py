"""The store a partitioned run merges is one process's store: read, and continued.

`mrules run RULES DIR --engine local` merges its buckets' shards into one store;
`state export`, `explain`, the action log and the rejects file are compared with one
process's (test_scale_cli.py). Here the merged store is also *continued*: `mrules run`
on a later file (a visitor's anonymous views tied to a prospect at last, an event id
seen before, a tick), with rules that read activities no rule read before (learnt from
the stored history: its assets and URLs), must do to it what it does to one process's
store, since the merge wrote the history, the ledger's last seq, the clock, the streams,
the visitors and the names as one process writes them.
"""

from __future__ import annotations

import json
import re
import shutil
import sqlite3
from pathlib import Path

import pytest
from scale_helpers import getcloudy_rules
from scale_helpers import invoke as _invoke

from mrules.history import Interner, unpack
from mrules.store import SCHEMA_VERSION

EXAMPLE = Path(__file__).resolve().parents[2] / "examples/getcloudy/events.jsonl"
LATE = (
    b'{"ts":"2026-11-03T09:00:00Z","type":"page_view","visitor":"v-late",'
    b'"url":"https://www.getcloudy.com/pricing"}\n'
)
TICK = b'{"ts":"2026-11-03T08:30:00Z","id":"t0","type":"tick"}\n'  # changes nobody
LATER = [
    # v-late's anonymous view (a.jsonl) now tied to a new prospect: its history is scored
    {"ts": "2026-12-21T09:00:00Z", "id": "c1", "type": "form_submit", "visitor": "v-late",
     "prospect": "zed@late.example", "asset": "Demande Get Cloudy",
     "fields": {"first_name": "Zed", "company_size": "200+"}},
    {"ts": "2026-12-21T09:05:00Z", "id": "c2", "type": "page_view", "visitor": "v-81",
     "url": "https://getcloudy.com/pricing"},
    # an id one process applied already (b.jsonl's e10): skipped by both
    {"ts": "2026-12-21T09:06:00Z", "id": "e10", "type": "email_click",
     "prospect": "bob@bigcorp.example", "asset": "Newsletter",
     "url": "https://getcloudy.com/blog/migrate"},
    {"ts": "2027-02-20T00:00:00Z", "id": "c3", "type": "tick"},
]  # fmt: skip
NEW_RULES = """\
automation rule "Guide readers" priority 50 {
  when all { downloaded file "Cloud Buyer Guide.pdf" }
  then { add tag "guide-reader" }
}

automation rule "Newsletter clickers" priority 51 {
  when all { clicked email "Newsletter" within 90 days }
  then { add tag "clicker" }
}

automation rule "Careers visitors" priority 52 {
  when all { visited "getcloudy.com/careers*" within 90 days }
  then { add tag "careers" }
}
"""


@pytest.fixture
def archive(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The example's events in two files (rejected lines, a tick that changes nobody and
    an anonymous visitor in the first; a tick that changes some in the second), its rules
    set up for partitioned runs, and a later file `c.jsonl` with the rules `later` (those
    and three more)."""
    monkeypatch.chdir(tmp_path)
    shutil.copytree(getcloudy_rules(tmp_path), "later")
    Path("later/zz-later.mr").write_text(NEW_RULES)
    lines = EXAMPLE.read_bytes().splitlines(keepends=True)
    bad = b"not json\n"  # twice: two rejected lines with one reason, each kept
    Path("a.jsonl").write_bytes(b"".join(lines[:13]) + bad + TICK + bad + LATE)
    # its tick changes some buckets only; its rejected line 1 is listed after a.jsonl's
    Path("b.jsonl").write_bytes(bad + b"".join(lines[13:]))
    Path("c.jsonl").write_text("".join(json.dumps(e) + "\n" for e in LATER))
    return tmp_path


def _explain_all(store: str) -> str:
    export = _invoke("state", "export", "--store", store)
    assert export.exit_code == 0, export.output
    emails = [json.loads(x)["email"] for x in export.output.splitlines()]
    assert len(emails) >= 6
    out = export.output
    for email in emails:
        r = _invoke("explain", email, "--store", store)
        assert r.exit_code == 0, r.output
        out += r.output
    return out


def _history(store: str) -> list[tuple[object, ...]]:
    """Every row of the store's `history` table (docs/store.md) in its order, read back:
    its prospect, visitor, time, event id, activity and ledger entries (names as text)."""
    conn = sqlite3.connect(store)
    try:
        names = Interner()
        names.load(iter(conn.execute("SELECT id, text FROM names")))
        found = []
        for email, visitor, ts, seq, event_id, messages, data in conn.execute(
            "SELECT p.email, h.visitor, h.ts, h.seq, h.event_id, h.messages, h.data"
            " FROM history h LEFT JOIN prospects p ON p.id = h.prospect ORDER BY h.id"
        ):
            if type(visitor) is int:
                visitor = names.text(visitor)
            row = unpack(data, names, email, visitor, ts, seq, event_id)
            found.append((email, visitor, ts, event_id, messages, row.activity(),
                          list(row.entries())))  # fmt: skip
        return found
    finally:
        conn.close()


def test_a_merged_store_continued_by_mrules_run_is_one_process_s_store_continued(
    archive: Path,
) -> None:
    for f in ("a.jsonl", "b.jsonl"):
        one = _invoke("run", "rules", f, "--store", "one.db", "--actions", "one.jsonl", "-q")
        assert one.exit_code in (0, 3), one.output
    r = _invoke("partition", "a.jsonl", "b.jsonl", "--buckets", "3", "--out", "part")
    assert r.exit_code == 0, r.output
    many = _invoke("run", "rules", "part", "--engine", "local", "--workers", "1",
                   "--store", "many.db", "--actions", "many.jsonl")  # fmt: skip
    assert many.exit_code == 3, many.output  # the lines that are not JSON
    summary = r"3 rejected, 6 prospects; 3 buckets .* merge ([\d.]+) s \(serial ([\d.]+) s\)"
    said = re.search(summary, many.output)
    assert said is not None, many.output
    assert float(said[2]) <= float(said[1])  # the serial part is a part of the merge
    assert Path("many.jsonl").read_bytes() == Path("one.jsonl").read_bytes()
    rejects = Path("one.rejects.jsonl").read_bytes()
    assert Path("many.rejects.jsonl").read_bytes() == rejects and rejects.count(b"\n") == 3
    assert _explain_all("many.db") == _explain_all("one.db")
    assert _history("many.db") == _history("one.db")
    before = Path("one.jsonl").read_bytes()
    for db, log in (("one.db", "one.jsonl"), ("many.db", "many.jsonl")):
        r = _invoke("run", "later", "c.jsonl", "--store", db, "--actions", log)
        assert r.exit_code == 0, r.output
    after = Path("one.jsonl").read_bytes()
    for seen in (b"zed@late.example", b'"guide-reader"', b'"clicker"', b'"careers"'):
        assert seen in after[len(before) :]  # the later file and rules did something
    assert Path("many.jsonl").read_bytes() == after
    assert _explain_all("many.db") == _explain_all("one.db")
    assert _history("many.db") == _history("one.db")
    # and once more on the same file: nothing new, in both (the stream's position)
    again = [_invoke("run", "later", "b.jsonl", "--store", db, "--actions", log)
             for db, log in (("one.db", "one.jsonl"), ("many.db", "many.jsonl"))]  # fmt: skip
    assert again[0].exit_code == again[1].exit_code == 3, again[1].output  # its line 1
    assert Path("many.jsonl").read_bytes() == Path("one.jsonl").read_bytes() == after


def _kept_shards(buckets: int) -> tuple[tuple[str, ...], list[Path]]:
    """A partitioned run of the archive that stopped before its merge (its rejects file
    could not be written: exit 4), its finished shards kept; the command to run again."""
    _invoke("partition", "a.jsonl", "b.jsonl", "--buckets", str(buckets), "--out", "part")
    Path("many.rejects.jsonl").mkdir()
    cmd = ("run", "rules", "part", "--engine", "local", "--workers", "1", "--store", "many.db",
           "-q")  # fmt: skip
    first = _invoke(*cmd)
    assert first.exit_code == 4, first.output
    Path("many.rejects.jsonl").rmdir()
    shards = sorted(Path("many.db.shards").glob("*/b*.db"))
    assert len(shards) == buckets
    return cmd, shards


def _change(shard: Path, sql: str, *args: object) -> None:
    conn = sqlite3.connect(shard)
    with conn:
        conn.execute(sql, args)
    conn.close()


def test_shards_of_another_store_schema_are_refused_with_their_schema(archive: Path) -> None:
    """Shards kept from a run of another mrules (its store schema) are not merged as if
    they were this one's: exit 4, naming the shard and its schema."""
    cmd, shards = _kept_shards(2)
    _change(shards[1], "UPDATE meta SET value = ? WHERE key = 'schema_version'",
            SCHEMA_VERSION + 1)  # fmt: skip
    again = _invoke(*cmd)
    assert again.exit_code == 4, again.output
    assert f"{shards[1].name} has schema {SCHEMA_VERSION + 1}" in again.output
    assert f"the merge knows {SCHEMA_VERSION}" in again.output
    assert not Path("many.db").exists()


def test_a_shard_whose_rows_are_out_of_order_is_refused_naming_the_row(archive: Path) -> None:
    cmd, shards = _kept_shards(1)
    conn = sqlite3.connect(shards[0])
    (a,), (b,) = conn.execute("SELECT data FROM history WHERE id IN (1, 2) ORDER BY id")
    conn.close()
    _change(shards[0], "UPDATE history SET data = ? WHERE id = 1", b)
    _change(shards[0], "UPDATE history SET data = ? WHERE id = 2", a)
    again = _invoke(*cmd)
    assert again.exit_code == 4, again.output
    assert f"shard {shards[0]}: rows out of order at row 2" in again.output
    assert not Path("many.db").exists()


def test_a_shard_that_names_a_file_the_manifest_lacks_is_refused_naming_it(
    archive: Path,
) -> None:
    cmd, shards = _kept_shards(1)
    _change(shards[0], "UPDATE names SET text = ? WHERE text = ?", "/elsewhere.jsonl",
            str(archive / "a.jsonl"))  # fmt: skip
    again = _invoke(*cmd)
    assert again.exit_code == 4, again.output
    assert "names a stream not in the manifest: /elsewhere.jsonl" in again.output
