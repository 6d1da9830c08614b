"""The library API and the store interface: `mrules.run`, `--store :memory:`, `MemoryStore`."""

from __future__ import annotations

import subprocess
import sys
import zlib
from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner
from tests.test_store import dump, full_batch

import mrules
from mrules.api import RuleSetError, open_store
from mrules.batch import Batch
from mrules.cli import main
from mrules.memstore import MemoryStore
from mrules.store import Store, StoreError
from mrules.storeapi import StateStore

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "getcloudy"


def cli(*args: str) -> Any:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_both_stores_implement_the_interface(tmp_path: Path) -> None:
    assert isinstance(open_store(":memory:"), StateStore)
    with Store.open(tmp_path / "s.db") as s:
        assert isinstance(s, StateStore)


def test_memory_store_reads_back_what_the_sqlite_store_reads(tmp_path: Path) -> None:
    mem = MemoryStore()
    with Store.open(tmp_path / "s.db") as disk:
        for store in (mem, disk):
            store.commit(full_batch(line=3))
            store.commit(
                Batch(
                    "/data/events.jsonl",
                    5,
                    None,
                    prospects={"a@x.com": b"new"},
                    attach_visitor=[("v-2", "b@x.com")],
                    rejects=[("/data/events.jsonl", 3, "again", "{")],
                )
            )
        assert dump(mem) == dump(disk)
        for email in ("a@x.com", "b@x.com"):
            assert list(mem.ledger(email)) == list(disk.ledger(email))
            assert list(mem.activities(email)) == list(disk.activities(email))
        assert mem.anonymous_views("v-2") == disk.anonymous_views("v-2")


def test_run_into_memory_exports_what_the_cli_exports(tmp_path: Path) -> None:
    db = tmp_path / "g.db"
    cli("run", str(EXAMPLE / "rules"), str(EXAMPLE / "events.jsonl"), "--store", str(db), "-q")
    exported = cli("state", "export", "--store", str(db)).output
    result = mrules.run(EXAMPLE / "rules", EXAMPLE / "events.jsonl")
    assert isinstance(result.store, MemoryStore)
    assert result.export_jsonl() == exported
    assert result.summary.applied == 27 and result.summary.duplicates == 1


def test_the_readme_s_python_c_prints_what_the_cli_prints(tmp_path: Path) -> None:
    """The README's promise, as a user meets it: its `python -c` line, taken from the
    README as written, prints byte for byte what `mrules run` then `mrules state export`
    print, each command its own process (the test had its own copy of the line, and ran
    the CLI inside the test's process)."""
    import re
    import shlex

    readme = (REPO / "README.md").read_text("utf-8")
    found = re.findall(r"^\.venv/bin/python -c (.*import mrules.*)$", readme, re.M)
    assert len(found) == 1, found
    [code] = shlex.split(found[0])
    db = tmp_path / "g.db"
    mrules_cli = [sys.executable, "-m", "mrules"]
    rules, events = "examples/getcloudy/rules", "examples/getcloudy/events.jsonl"
    subprocess.run(
        [*mrules_cli, "run", rules, events, "--store", str(db), "-q"],
        cwd=REPO, check=True, capture_output=True,
    )  # fmt: skip
    exported = subprocess.run(
        [*mrules_cli, "state", "export", "--store", str(db)], cwd=REPO, check=True,
        capture_output=True,
    ).stdout  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, check=True)
    assert out.stderr == b""
    assert out.stdout == exported and exported.count(b"\n") == 6


def test_export_leaves_out_the_crm_work_a_sync_did_as_the_cli_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`RunResult.export` is `state export`'s output: after `sync apply`, the work the sync
    beside the store did is no longer pending (it was all listed again)."""
    monkeypatch.chdir(tmp_path)
    rules, events = str(EXAMPLE / "rules"), str(EXAMPLE / "events.jsonl")
    assert cli("crm", "load", str(EXAMPLE / "crm"), "--store", "g.db").exit_code == 0
    assert cli("run", rules, events, "--store", "g.db", "-q").exit_code == 0
    assert cli("sync", "apply", "--rules", rules, "--store", "g.db").exit_code == 0
    exported = cli("state", "export", "--store", "g.db").output
    with mrules.run(rules, events, store="g.db") as result:
        assert result.summary.applied == 0
        assert result.export_jsonl() == exported
        leung = result.export("leung@example.com")[0]
    assert leung["crm_id"] is not None and leung["pending_crm"] == []


def test_events_as_dicts_lines_and_a_store_path(tmp_path: Path) -> None:
    lines = (EXAMPLE / "events.jsonl").read_text().splitlines()
    as_text = mrules.run(EXAMPLE / "rules", lines)
    import orjson

    as_dicts = mrules.run(EXAMPLE / "rules", [orjson.loads(x) for x in lines if x.strip()])
    on_disk = mrules.run(EXAMPLE / "rules", EXAMPLE / "events.jsonl", store=tmp_path / "s.db")
    try:
        assert as_text.export() == as_dicts.export() == on_disk.export()
    finally:
        on_disk.close()
    again = mrules.run(EXAMPLE / "rules", EXAMPLE / "events.jsonl", store=tmp_path / "s.db")
    again.close()
    assert again.summary.applied == 0 and again.summary.resumed_from == 28


class _EarlierStore:
    """A store of one's own, written before `anonymous_views_among` (docs/store.md)."""

    def __init__(self) -> None:
        self._inner = MemoryStore()
        self.path, self.readonly = self._inner.path, False

    def __getattr__(self, name: str) -> Any:
        if name == "anonymous_views_among":
            raise AttributeError(name)
        return getattr(self._inner, name)


def test_a_store_of_one_s_own_lacking_a_method_is_told_which() -> None:
    """It was "store must be ':memory:', a path, a PostgreSQL URL or a store, not
    _EarlierStore": a store, told it is none. The message names what it lacks, and the
    method docs/store.md gives makes it run."""
    events = EXAMPLE / "events.jsonl"
    with pytest.raises(TypeError) as e:
        mrules.run(EXAMPLE / "rules", events, store=_EarlierStore())
    assert str(e.value) == (
        "store _EarlierStore lacks what mrules.storeapi.StateStore asks of a store:"
        " anonymous_views_among"
    )

    class Mended(_EarlierStore):
        def anonymous_views_among(self, visitors: Any) -> Any:
            return {v: views for v in visitors if (views := self.anonymous_views(v))}

    result = mrules.run(EXAMPLE / "rules", events, store=Mended())
    assert result.export() == mrules.run(EXAMPLE / "rules", events).export()
    with pytest.raises(TypeError, match=r"a store, not int$"):  # what is no store at all
        mrules.run(EXAMPLE / "rules", events, store=3)


def test_a_file_gzip_open_gives_is_read_as_its_lines(tmp_path: Path) -> None:
    """`mrules.run(rules, gzip.open("events.jsonl.gz"))`, a binary file object, was
    unzipped a second time for its name and refused: "broken gzip data: Not a gzipped
    file". It reads as the .gz path, or the file of its path, does; the .gz file itself
    opened with open(..., "rb") is still unzipped."""
    import gzip

    data = (EXAMPLE / "events.jsonl").read_bytes()
    zipped = tmp_path / "events.jsonl.gz"
    zipped.write_bytes(gzip.compress(data))
    whole = mrules.run(EXAMPLE / "rules", EXAMPLE / "events.jsonl").export()
    with gzip.open(zipped, "rb") as unzipped:
        result = mrules.run(EXAMPLE / "rules", unzipped)
    assert result.summary.lines == 28 and result.export() == whole
    with open(zipped, "rb") as raw:
        assert mrules.run(EXAMPLE / "rules", raw).export() == whole
    twice = tmp_path / "twice.jsonl.gz"  # gzip inside gzip: the inner one by its bytes
    twice.write_bytes(gzip.compress(gzip.compress(data)))
    with gzip.open(twice, "rb") as once_unzipped:
        assert mrules.run(EXAMPLE / "rules", once_unzipped).export() == whole


@pytest.mark.parametrize("name", ["events.jsonl", "events.jsonl.gz"])
def test_a_file_object_given_is_left_open_for_its_owner(tmp_path: Path, name: str) -> None:
    """The caller opened it, so the caller closes it: after the run it can still be
    rewound and read again (a path, which the run opens itself, is closed by it)."""
    import gzip

    data = (EXAMPLE / "events.jsonl").read_bytes()
    path = tmp_path / name
    path.write_bytes(gzip.compress(data) if name.endswith(".gz") else data)
    with open(path, "rb") as given:
        assert mrules.run(EXAMPLE / "rules", given).summary.lines == 28
        assert not given.closed
        given.seek(0)
        assert given.read() == path.read_bytes()


def test_a_compiled_rule_set_and_a_store_object_are_used_as_given() -> None:
    loaded = mrules.load([str(EXAMPLE / "rules")])
    compiled = mrules.compile(loaded.program, loaded.sources)
    store = MemoryStore()
    first = mrules.run(compiled, EXAMPLE / "events.jsonl", store=store)
    assert first.store is store and first.rules is compiled
    second = mrules.run(compiled, EXAMPLE / "events.jsonl", store=store)
    assert second.summary.applied == 0  # resumed: the same stream, nothing applied twice


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_every_store_keeps_the_check_that_refuses_a_replaced_file(
    tmp_path: Path, kind: str
) -> None:
    """The anchor (last event applied from a file) is kept by each store with its position,
    and a run on a file replaced at that path, or on lines under that source, is refused."""
    from mrules.events import StreamReplacedError

    lines = (EXAMPLE / "events.jsonl").read_text().splitlines(keepends=True)
    events = tmp_path / "e.jsonl"
    events.write_text("".join(lines[:10]))
    store: Any = MemoryStore() if kind == "memory" else Store.open(tmp_path / "s.db")
    try:
        mrules.run(EXAMPLE / "rules", events, store=store)
        assert store.stream_anchor(str(events)) == (10, zlib.crc32(lines[9].rstrip().encode()))
        events.write_text("".join(lines[1:]))  # one line longer, and not the same lines
        with pytest.raises(StreamReplacedError, match="its line 10 is not the event"):
            mrules.run(EXAMPLE / "rules", events, store=store)
        with pytest.raises(StreamReplacedError, match="its line 10 is not the event"):
            mrules.run(EXAMPLE / "rules", lines[1:], store=store, source=str(events))
        assert store.stream_position(str(events)) == 10
        grown = mrules.run(EXAMPLE / "rules", lines, store=store, source=str(events))
        assert grown.summary.resumed_from == 10 and grown.summary.lines == len(lines) - 10
    finally:
        store.close()


def test_lines_whose_anchor_line_is_now_blank_are_refused_as_the_file_would_be(
    tmp_path: Path,
) -> None:
    """The last event applied from a stream, now a blank line: the file at that path is
    refused (a blank line is not that event); the same lines given as an iterable under
    that source were resumed after it, as if they were the lines the store read."""
    from mrules.events import StreamReplacedError

    lines = (EXAMPLE / "events.jsonl").read_text().splitlines(keepends=True)
    blanked = [*lines[:9], "\n", *lines[10:]]
    events = tmp_path / "e.jsonl"
    events.write_text("".join(lines[:10]))
    store = MemoryStore()
    mrules.run(EXAMPLE / "rules", events, store=store)
    events.write_text("".join(blanked))
    with pytest.raises(StreamReplacedError, match="its line 10 is not the event applied"):
        mrules.run(EXAMPLE / "rules", events, store=store)
    with pytest.raises(StreamReplacedError, match="its line 10 is not the event applied"):
        mrules.run(EXAMPLE / "rules", blanked, store=store, source=str(events))
    assert store.stream_position(str(events)) == 10


def test_one_path_and_one_email_are_taken_whole() -> None:
    """A lone string was iterated: `load("dir")` read the paths "d", "i", "r", and
    `export("a@b")` looked up one-character emails (and found nothing)."""
    assert len(mrules.load(str(EXAMPLE / "rules")).sources) == len(
        mrules.load([EXAMPLE / "rules"]).sources
    )
    result = mrules.run(EXAMPLE / "rules", EXAMPLE / "events.jsonl")
    (one,) = result.export("leung@example.com")
    assert one == result.export(["leung@example.com"])[0] and one["email"] == "leung@example.com"


@pytest.mark.parametrize(
    ("paths", "words"),
    [(None, "not NoneType"), (5, "not int"), (b"rules", "not bytes"),
     ([EXAMPLE / "rules", None], "not list of NoneType")],
)  # fmt: skip
def test_load_names_paths_of_the_wrong_type(paths: Any, words: str) -> None:
    """`mrules.load(None)` raised "'NoneType' object is not iterable", and `load(b"x")`
    "expected str, bytes or os.PathLike object, not int" (each byte read as a path), where
    `mrules.run` names the argument; both now say what `paths` takes."""
    with pytest.raises(TypeError, match=f"paths must be a rule folder or file.*{words}"):
        mrules.load(paths)


_LOADED = mrules.parse('list "MQL"')


@pytest.mark.parametrize(
    ("call", "words"),
    [(lambda: mrules.parse(b'list "MQL"'), "text must be a str, not bytes"),
     (lambda: mrules.parse('list "MQL"', 3), "path must be a str, not int"),
     (lambda: mrules.check(_LOADED), "program must be a parsed Program, not LoadResult"
                                     r" \(give its .program\)"),
     (lambda: mrules.compile(_LOADED), "program must be a parsed Program, not LoadResult"),
     (lambda: mrules.compile('list "MQL"'), "program must be a parsed Program, not str"
                                            r" \(parse it first"),
     (lambda: mrules.check(None), "program must be a parsed Program, not NoneType$"),
     (lambda: mrules.compile(_LOADED.program, "x"), "sources must be a dict .* not str")],
)  # fmt: skip
def test_parse_check_and_compile_name_an_argument_of_the_wrong_type(call: Any, words: str) -> None:
    """`mrules.check(loaded)` (the parse result given whole, not its `.program`) raised
    AttributeError "'LoadResult' object has no attribute 'files'", `compile("rule text")`
    the same for 'str', and `parse(b"...")` "cannot use a string pattern on a bytes-like
    object"; each now names the argument, as `load` and `run` do."""
    with pytest.raises(TypeError, match=words):
        call()
    loaded = mrules.parse('list "MQL"')  # the right arguments still work
    assert mrules.check(loaded.program) == []
    assert mrules.compile(loaded.program, loaded.sources).version


@pytest.mark.parametrize(
    ("emails", "words"), [(5, "not int"), ([None], "not NoneType"), (b"a@b.c", "not bytes")]
)
def test_export_names_emails_of_the_wrong_type(emails: Any, words: str) -> None:
    """`result.export(5)` raised "'int' object is not iterable"; `export([None])` and
    `export(b"a@b.c")` (each byte an int) raised AttributeError ('strip')."""
    result = mrules.run(EXAMPLE / "rules", EXAMPLE / "events.jsonl")
    with pytest.raises(TypeError, match=f"emails must be an email or a list of them, {words}"):
        result.export(emails)


def test_dict_events_are_read_as_the_lines_they_stand_for() -> None:
    """NaN became null silently (a line with NaN is rejected), an integer beyond 64 bits
    raised a TypeError mid-run (a line with one is read), other values a traceback."""
    submit = {"ts": "2026-11-02T09:00:00Z", "type": "form_submit", "asset": "Demande Get Cloudy"}
    events = [
        {**submit, "prospect": "nan@x.com", "fields": {"lead_source": float("nan")}},
        {**submit, "prospect": "big@x.com", "fields": {"company_size": "11-50",
                                                       "consult_requests": 10**30}},
        42,
        {**submit, "prospect": "obj@x.com", "fields": {"lead_source": object()}},
        {**submit, "prospect": "ok@x.com"},
    ]  # fmt: skip
    result = mrules.run(EXAMPLE / "rules", events)
    rejects = {r.line: r.reason for r in result.store.rejects()}
    assert sorted(rejects) == [1, 3, 4]
    assert rejects[1].startswith("not JSON") and "line of text or a dict" in rejects[3]
    line = (
        '{"ts":"2026-11-02T09:00:00Z","type":"form_submit","asset":"Demande Get Cloudy",'
        f'"prospect":"big@x.com","fields":{{"company_size":"11-50","consult_requests":{10**30}}}}}'
    )
    as_file = mrules.run(EXAMPLE / "rules", [line])
    assert result.export("big@x.com") == as_file.export("big@x.com")
    assert [p["email"] for p in result.export()] == ["big@x.com", "ok@x.com"]


def test_rules_with_errors_raise_with_the_diagnostics() -> None:
    with pytest.raises(RuleSetError, match="MR1") as info:
        mrules.run('on submit of form "Nope" { add to list "Missing" }', [])
    assert info.value.diagnostics
    with pytest.raises(RuleSetError, match="no such"):
        mrules.run("/no/such/rules", [])


def test_cli_memory_store_runs_and_leaves_no_file(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.chdir(tmp_path)
    res = CliRunner().invoke(
        main, ["run", str(EXAMPLE / "rules"), str(EXAMPLE / "events.jsonl"), "--store", ":memory:"]
    )
    assert res.exit_code == 0, res.output
    assert "store" in res.output and ":memory:" in res.output
    assert list(tmp_path.iterdir()) == []


def test_reading_a_memory_store_from_the_cli_is_a_clear_error() -> None:
    res = CliRunner().invoke(main, ["state", "export", "--store", ":memory:"])
    assert res.exit_code == 2 and "in-memory store lives inside one run" in res.output


def test_a_malformed_batch_leaves_the_memory_store_unchanged() -> None:
    mem = MemoryStore()
    mem.commit(full_batch(line=3))
    before = dump(mem)
    bad = full_batch(line=9, seq=10)
    bad.activities = [("too", "short")]
    with pytest.raises(StoreError):
        mem.commit(bad)
    assert dump(mem) == before


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"now": float("inf")}, ValueError, "now must be a finite number"),
        ({"now": float("nan")}, ValueError, "now must be a finite number"),
        ({"now": 1e20}, ValueError, "between the years 1 and 9999"),
        ({"now": True}, TypeError, "now must be a number of seconds"),
        ({"commit_every": 0}, ValueError, "commit_every must be at least 1"),
        ({"commit_seconds": -1.0}, ValueError, "commit_seconds must be more than 0"),
        ({"cache_prospects": -1}, ValueError, "cache_prospects must be at least 0"),
        ({"store": 5}, TypeError, "store must be ':memory:', a path, a PostgreSQL URL or a store"),
    ],
)
def test_bad_arguments_are_refused_before_the_store_is_touched(
    tmp_path: Path, options: dict[str, Any], error: type[Exception], message: str
) -> None:
    """`now=inf` was stored as a null clock that every later command failed on (exit 70);
    `cache_prospects=-1` raised KeyError mid-run."""
    store = tmp_path / "s.db"
    kwargs = {"store": str(store), **options}
    with pytest.raises(error, match=message):
        mrules.run(EXAMPLE / "rules", EXAMPLE / "events.jsonl", **kwargs)
    assert not store.exists()


def test_rule_text_on_one_line_is_rule_text() -> None:
    """A string with a quote, a brace or a newline that names no file is rule text."""
    result = mrules.run('list "MQL"', [])
    assert result.summary.lines == 0
    with pytest.raises(RuleSetError, match="no such file"):
        mrules.run("no-such-rules-folder", [])


def _ledger_batch(line: int, entries: list[tuple[int, str]]) -> Batch:
    """A batch of ledger entries only: (seq, args JSON) each, one event a line."""
    src = "/data/events.jsonl"
    return Batch(
        source=src,
        line=line,
        clock=1_790_000_000.0,
        ledger=[
            (seq, 10.0 + seq, "a@x.com", "completion", "Demande", "r.mr:3:1", src, seq,
             f"ev-{seq}", "adjust_score", args, '{"score":0}', '{"score":5}')
            for seq, args in entries
        ],
    )  # fmt: skip


def test_equal_ledger_arguments_share_one_dict_and_read_back_the_same(tmp_path: Path) -> None:
    mem = MemoryStore()
    with Store.open(tmp_path / "s.db") as disk:
        for store in (mem, disk):
            store.commit(_ledger_batch(2, [(1, '{"by":5,"category":"web"}'), (2, '{"by":5}')]))
            web, web_reordered = '{"by":5,"category":"web"}', '{"category":"web","by":5}'
            store.commit(_ledger_batch(4, [(3, web), (4, web_reordered)]))
        assert list(mem.ledger()) == list(disk.ledger())
        assert [e.args for e in mem.ledger()] == [
            '{"by":5,"category":"web"}', '{"by":5}',
            '{"by":5,"category":"web"}', '{"category":"web","by":5}',
        ]  # fmt: skip
    args = {row.steps[0]: row.steps[3] for row in mem._rows if row.steps}
    assert args[1] is args[3]  # the same JSON: one dict
    assert args[4] is not args[1] and args[4] == args[1]  # another key order: its own
    assert args[2] is not args[1]


def test_a_run_into_memory_shares_arguments_and_keeps_the_sqlite_store_s_ledger(
    tmp_path: Path,
) -> None:
    rules, events = str(EXAMPLE / "rules"), str(EXAMPLE / "events.jsonl")
    mem = mrules.run(rules, events).store
    with mrules.run(rules, events, store=str(tmp_path / "s.db")).store as disk:
        assert list(mem.ledger()) == list(disk.ledger())
        assert list(mem.outbox()) == list(disk.outbox())
        assert list(mem.crm_pending()) == list(disk.crm_pending())
    assert isinstance(mem, MemoryStore)
    dicts = [row.steps[i] for row in mem._rows for i in range(3, len(row.steps), 6)
             if type(row.steps[i]) is dict]  # fmt: skip
    objects_by_json: dict[bytes, set[int]] = {}
    for d in dicts:
        objects_by_json.setdefault(orjson.dumps(d), set()).add(id(d))
    assert len(objects_by_json) < len(dicts)  # arguments repeat in the example
    assert all(len(ids) == 1 for ids in objects_by_json.values())  # and each is one dict


def test_a_run_into_memory_keeps_one_string_per_url_visitor_asset_and_type(
    tmp_path: Path,
) -> None:
    rules, events = str(EXAMPLE / "rules"), str(EXAMPLE / "events.jsonl")
    mem = mrules.run(rules, events).store
    with mrules.run(rules, events, store=str(tmp_path / "s.db")).store as disk:
        assert list(mem.activities()) == list(disk.activities())
    assert isinstance(mem, MemoryStore)
    for attr in ("url", "visitor", "asset", "etype"):
        values = [getattr(row, attr) for row in mem._rows if getattr(row, attr) is not None]
        objects_by_text: dict[str, set[int]] = {}
        for value in values:
            objects_by_text.setdefault(value, set()).add(id(value))
        assert len(objects_by_text) < len(values), attr  # each repeats in the example
        assert all(len(ids) == 1 for ids in objects_by_text.values()), attr


def test_a_finished_run_keeps_no_decoded_prospect_without_a_collection() -> None:
    """`mrules.run` releases its engine's caches: replay freezes the collector after a run,
    and the engine, cyclic garbage, would keep them frozen for the whole comparison."""
    import gc

    from mrules.state import Prospect

    rules, events = str(EXAMPLE / "rules"), str(EXAMPLE / "events.jsonl")
    gc.collect()
    gc.disable()
    try:
        result = mrules.run(rules, events)
        left = sum(1 for o in gc.get_objects() if type(o) is Prospect)
    finally:
        gc.enable()
    assert result.summary.prospects_created > 0
    assert left == 0


def test_a_store_this_process_holds_is_said_so_and_never_waited_for(tmp_path: Path) -> None:
    """A second `mrules.run` on a store this process holds said "in use by another mrules
    process (pid <its own pid>)"; with `wait=True` it waited for itself, for ever."""
    import threading

    from mrules.storeapi import StoreLocked

    path = tmp_path / "s.db"
    rules, events = EXAMPLE / "rules", EXAMPLE / "events.jsonl"
    held = Store.open(path)
    try:
        with pytest.raises(StoreLocked, match="open in this process already"):
            mrules.run(rules, events, store=path)
        raised: list[BaseException] = []

        def waiting() -> None:
            try:
                mrules.run(rules, events, store=path, wait=True)
            except BaseException as e:  # what the thread met, for the test
                raised.append(e)

        t = threading.Thread(target=waiting, daemon=True)
        t.start()
        t.join(60)
        assert not t.is_alive(), "mrules.run(wait=True) waited for its own process"
        assert len(raised) == 1 and isinstance(raised[0], StoreLocked), raised
    finally:
        held.close()
    assert mrules.run(rules, events, store=path).summary.applied > 0  # closed, it is free


def test_wait_timeout_gives_up_on_a_store_another_process_holds(tmp_path: Path) -> None:
    """`mrules.run(wait=True)` waited for a held store for as long as it took: a library
    caller had no `--wait-timeout`. `wait_timeout` waits that long, then raises StoreLocked
    (as the CLI exits 5), and bad values are refused before anything is opened."""
    import time

    from tests.test_exit_codes import _held_elsewhere

    from mrules.storeapi import StoreLocked

    path = tmp_path / "s.db"
    rules, events = EXAMPLE / "rules", EXAMPLE / "events.jsonl"
    mrules.run(rules, events, store=path).close()
    with _held_elsewhere(path):
        started = time.monotonic()
        with pytest.raises(StoreLocked, match="in use by another mrules process"):
            mrules.run(rules, events, store=path, wait_timeout=0.5)
        assert 0.5 <= time.monotonic() - started < 30  # it waited, then gave up
        bad_values = ((0, ValueError), (float("nan"), ValueError), (float("inf"), ValueError),
                      ("5", TypeError), (True, TypeError))  # fmt: skip
        for bad, error in bad_values:
            with pytest.raises(error, match="wait_timeout"):
                mrules.run(rules, events, store=path, wait_timeout=bad)  # type: ignore[arg-type]
    with mrules.run(rules, events, store=path, wait_timeout=5) as again:
        assert again.summary.applied == 0  # free again: it resumed and found nothing new


def test_compile_refuses_a_program_with_errors_as_run_does() -> None:
    """`mrules.compile` compiled whatever parsed, unchecked: an unknown form made a rule
    that never fires, where `mrules run` refuses the rule set. It now checks first and
    raises `RuleSetError` with each error's place, code and message; warnings pass."""
    text = 'form "F"\non submit of form "F" { add to list "MQL" }\n'
    loaded = mrules.parse(text, "rules/a.mr")
    with pytest.raises(RuleSetError) as raised:
        mrules.compile(loaded.program, loaded.sources)
    assert str(raised.value).startswith("rules/a.mr:2:37: error[MR103]: unknown list 'MQL'\n")
    assert 'declare it: list "MQL"' in str(raised.value)  # the hint, under a caret
    assert [(d.code, d.path) for d in raised.value.diagnostics] == [("MR103", "rules/a.mr")]
    with pytest.raises(RuleSetError, match=r"^rules/a\.mr: error\[MR103\]: unknown list 'MQL'$"):
        mrules.compile(loaded.program)  # no sources: no line to give, the place is the file
    warned = mrules.parse('form "F"\non submit of form "F" { add tag "vip" }\n')
    assert [d.code for d in mrules.check(warned.program)] == ["MR109"]  # a warning
    assert mrules.compile(warned.program, warned.sources).version


def test_a_user_script_type_checks_with_mypy_strict_and_runs(tmp_path: Path) -> None:
    """The package shipped no `py.typed`: `mypy --strict` on a script importing mrules said
    "module is installed, but missing library stubs or py.typed marker", and every name of
    the API was `Any`. The script's `assert_type`s hold, and it runs as written."""
    script = REPO / "tests" / "api_typing" / "api_user_script.py"
    checked = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--cache-dir", str(tmp_path / "cache"),
         str(script)],
        cwd=tmp_path, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert checked.returncode == 0, checked.stdout + checked.stderr
    ran = subprocess.run(
        [sys.executable, str(script), str(EXAMPLE), str(tmp_path / "s.db")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.splitlines() == [
        "['MR105']",
        "1 [(1, \"not JSON: invalid literal, expected 'null' at column 1\")]",
        "131",
        f"this run's store ({tmp_path / 's.db'}) is closed: read the result before close(),"
        " or inside its `with` block",
        "6",
    ]


def test_a_result_s_repr_is_its_counts_and_its_store(tmp_path: Path) -> None:
    """The repr was the dataclass's, with the compiled rule set and every action counted:
    29,000 characters for the example, in a notebook cell or a log line."""
    rules, events = EXAMPLE / "rules", EXAMPLE / "events.jsonl"
    counts = "lines=28 applied=27 duplicates=1 rejected=0 ignored=1 prospects_created=6"
    assert repr(mrules.run(rules, events)) == (
        f"<RunResult {counts} store=MemoryStore(6 prospects)>"
    )
    db = tmp_path / "s.db"
    with mrules.run(rules, events, store=db) as first:
        assert repr(first) == f"<RunResult {counts} store=Store({str(db)!r}, writer)>"
    assert repr(first) == f"<RunResult {counts} store=Store({str(db)!r}, closed)>"
    with mrules.run(rules, events, store=db) as again:  # resumed: it says from where
        assert repr(again) == (
            "<RunResult lines=0 applied=0 duplicates=0 rejected=0 ignored=0"
            f" prospects_created=0 resumed_from=28 store=Store({str(db)!r}, writer)>"
        )


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_a_closed_result_says_so_whichever_the_store(tmp_path: Path, kind: str) -> None:
    """After `close()` (or its `with` block), a result in memory still exported, while the
    same code on a store path raised: a script that worked in memory broke once given a
    file. Both now raise StoreError saying the result is closed; the summary stays."""
    store = ":memory:" if kind == "memory" else tmp_path / "s.db"
    with mrules.run(EXAMPLE / "rules", EXAMPLE / "events.jsonl", store=store) as result:
        assert len(result.export()) == 6
    shown = ":memory:" if kind == "memory" else str(tmp_path / "s.db")
    for read in (result.export, result.export_jsonl, lambda: result.export("leung@example.com")):
        with pytest.raises(StoreError) as raised:
            read()
        assert str(raised.value) == (
            f"this run's store ({shown}) is closed: read the result before close(),"
            " or inside its `with` block"
        )
    result.close()  # twice: nothing more
    assert result.summary.applied == 27


def test_a_result_lists_its_stream_s_rejected_lines(tmp_path: Path) -> None:
    """The rejected lines were reachable only through `result.store.rejects()`, every
    stream's at once, where `summary.rejected` counts this run's: `result.rejects()` is
    the stream's, a file's across the runs that resumed it (as `mrules run` writes its
    rejects file), an iterable's this run's alone."""
    lines = (EXAMPLE / "events.jsonl").read_text("utf-8").splitlines(keepends=True)
    events = tmp_path / "e.jsonl"
    events.write_text("".join(lines[:5]) + "not JSON\n")
    db = tmp_path / "s.db"
    with mrules.run(EXAMPLE / "rules", events, store=db) as first:
        assert first.summary.rejected == 1
        assert [(r.source, r.line, r.text) for r in first.rejects()] == [
            (str(events), 6, "not JSON")
        ]
    events.write_text("".join(lines[:5]) + "not JSON\n" + "".join(lines[5:]) + "{}\n")
    with mrules.run(EXAMPLE / "rules", events, store=db) as again:
        assert again.summary.rejected == 1 and again.source == str(events)
        assert [r.line for r in again.rejects()] == [6, len(lines) + 2]
        assert again.rejects()[1].reason.startswith("missing")
    with mrules.run(EXAMPLE / "rules", ["[1]", lines[0]], store=db) as piped:
        assert piped.source == "- (run 1)"
        assert [(r.line, r.text) for r in piped.rejects()] == [(1, "[1]")]
    with mrules.run(EXAMPLE / "rules", [lines[1], "nope"], store=db) as piped:
        assert piped.source == "- (run 2)"
        assert [(r.line, r.text) for r in piped.rejects()] == [(2, "nope")]
        assert len(list(piped.store.rejects())) == 4  # every stream's


def test_export_reads_a_store_a_run_wrote_as_state_export_does(tmp_path: Path) -> None:
    """A store written by `mrules run` could be read from Python only through private
    functions (`mrules.outputs.export_records`, and the sync file's filter by hand):
    `mrules.export(path)` is `mrules state export`, opened read-only and closed."""
    db = tmp_path / "g.db"
    subprocess.run(
        [sys.executable, "-m", "mrules", "run", str(EXAMPLE / "rules"),
         str(EXAMPLE / "events.jsonl"), "--store", str(db), "-q"],
        check=True, capture_output=True,
    )  # fmt: skip
    exported = subprocess.run(
        [sys.executable, "-m", "mrules", "state", "export", "--store", str(db)],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    records = mrules.export(db)
    assert "".join(orjson.dumps(r).decode() + "\n" for r in records) == exported
    assert mrules.export(str(db), "leung@example.com") == [
        r for r in records if r["email"] == "leung@example.com"
    ]
    with mrules.run(EXAMPLE / "rules", EXAMPLE / "events.jsonl", store=db) as again:
        assert again.summary.applied == 0  # the export let go of the store: a run takes it
        assert mrules.export(again.store) == records  # a store object is read, left open
        assert again.export() == records
    with pytest.raises(StoreError, match="no store at"):
        mrules.export(tmp_path / "none.db")
    assert not (tmp_path / "none.db").exists()
    with pytest.raises(ValueError, match="a store in memory lives inside its run"):
        mrules.export(":memory:")
    with pytest.raises(TypeError, match="store must be ':memory:', a path"):
        mrules.export(5)  # type: ignore[arg-type]


def test_a_rule_set_error_gives_each_error_s_line_as_data(tmp_path: Path) -> None:
    """`RuleSetError.diagnostics` held character offsets (`start`, `end`): the line and
    column were only in the message's text. `as_json()` gives each error as
    `mrules lint --format json` does, lines and columns included."""
    bad = tmp_path / "rules"
    bad.mkdir()
    (bad / "a.mr").write_text('form "F"\non submit of form "F" { add to list "MQL" }\n')
    with pytest.raises(RuleSetError) as raised:
        mrules.run(bad, [])
    linted = subprocess.run(
        [sys.executable, "-m", "mrules", "lint", "--format", "json", str(bad)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert linted.returncode == 1
    assert raised.value.as_json() == orjson.loads(linted.stdout)
    assert [(e["line"], e["column"], e["code"]) for e in raised.value.as_json()] == [
        (2, 37, "MR103")
    ]
    loaded = mrules.parse('form "F"\non submit of form "F" { add to list "MQL" }\n', "b.mr")
    with pytest.raises(RuleSetError) as compiled:
        mrules.compile(loaded.program, loaded.sources)
    assert [(e["path"], e["line"], e["column"]) for e in compiled.value.as_json()] == [
        ("b.mr", 2, 37)
    ]


def test_the_api_page_s_examples_run_as_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """docs/api.md's examples, every `>>>` of its python blocks in one namespace, from the
    root of the repository as the page says, give the output the page shows."""
    import doctest
    import re
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # the page's stores go there

    page = (REPO / "docs" / "api.md").read_text("utf-8")
    blocks = re.findall(r"^```python\n(.*?)^```", page, re.M | re.S)
    assert len(blocks) >= 4 and all(">>> " in b for b in blocks)
    # the page's prose blanked, so that a failure gives the page's own line number
    code: list[str] = []
    inside = False
    for line in page.splitlines():
        if line.startswith("```"):
            inside = line == "```python"
            code.append("")
        else:
            code.append(line if inside else "")
    monkeypatch.chdir(REPO)
    parser, runner = doctest.DocTestParser(), doctest.DocTestRunner(optionflags=0)
    test = parser.get_doctest("\n".join(code), {}, "docs/api.md", "docs/api.md", 0)
    report: list[str] = []
    runner.run(test, out=report.append)
    assert runner.failures == 0, "".join(report)
    assert runner.tries > 10


@pytest.mark.parametrize(
    ("call", "words"),
    [(lambda: mrules.run(EXAMPLE / "rules", "events\0.jsonl"), "events: a path cannot"),
     (lambda: mrules.run(EXAMPLE / "rules", [], store="s\0.db"), "store: a path cannot"),
     (lambda: mrules.run(EXAMPLE / "rules", [], store=Path("s\0.db")), "store: a path cannot"),
     (lambda: mrules.export("s\0.db"), "store: a path cannot")],
)  # fmt: skip
def test_a_path_with_a_nul_character_is_named(call: Any, words: str) -> None:
    """A path holding NUL (a string cut from a C buffer, a bad join) raised the system's
    "embedded null byte", a ValueError that named neither the argument nor the cause."""
    with pytest.raises(ValueError, match=f"^{words} hold a NUL character"):
        call()


def test_explain_from_python_is_what_mrules_explain_prints(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Why a prospect has its score was `mrules explain` alone: from Python it took the
    CLI's private reading of the ledger. `RunResult.explain(email)` and
    `mrules.api.explain_state(store, email)` give what `explain --format json` prints,
    with the CRM work a sync did left out as there; a missing prospect is NoSuchProspect
    (a LookupError), not a KeyError."""
    from mrules.api import NoSuchProspect, explain_state

    monkeypatch.chdir(tmp_path)
    rules, events = str(EXAMPLE / "rules"), str(EXAMPLE / "events.jsonl")
    assert cli("crm", "load", str(EXAMPLE / "crm"), "--store", "g.db").exit_code == 0
    assert cli("run", rules, events, "--store", "g.db", "-q").exit_code == 0
    assert cli("sync", "apply", "--rules", rules, "--store", "g.db").exit_code == 0
    emails = [p["email"] for p in mrules.export("g.db")]
    assert len(emails) == 6
    for email in emails:
        printed = cli("explain", email, "--format", "json", "--store", "g.db").output
        assert explain_state("g.db", email) == orjson.loads(printed), email
    with mrules.run(rules, events, store="g.db") as result:
        assert result.explain(" Leung@Example.com") == explain_state("g.db", "leung@example.com")
        with pytest.raises(NoSuchProspect, match=r"^no prospect 'nobody@x\.com' in g\.db$"):
            result.explain("nobody@x.com")
    with pytest.raises(StoreError, match="is closed"):
        result.explain("leung@example.com")
    in_memory = mrules.run(rules, events)
    assert in_memory.explain("leung@example.com")["score_total"] == 131
    with pytest.raises(ValueError, match=r"explain\(email\)"):
        explain_state(":memory:", "leung@example.com")
    with pytest.raises(TypeError, match="email must be a str, not NoneType"):
        in_memory.explain(None)  # type: ignore[arg-type]


def test_mypy_sees_mrules_run_s_options(tmp_path: Path) -> None:
    """`mrules.run` was typed `(rules: Any, events: Any, store: Any, **options: Any)`: a
    misspelt option or a string for a number passed `mypy --strict` and failed at run
    time. A type checker now sees `mrules.api.run`'s own signature."""
    script = tmp_path / "wrong.py"
    script.write_text(
        "import mrules\n"
        'mrules.run("rules", [], commit_evry=10)\n'
        'mrules.run("rules", [], now="2026-11-02")\n'
        'mrules.run("rules", [], store=3)\n'
    )
    checked = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--cache-dir", str(tmp_path / "cache"),
         "--no-error-summary", "--hide-error-context", str(script)],
        cwd=tmp_path, capture_output=True, text=True, check=False,
    )  # fmt: skip
    errors = [line.split(": error: ")[1] for line in checked.stdout.splitlines()
              if ": error: " in line]  # fmt: skip
    assert [e.split("  [")[0] for e in errors] == [
        'Unexpected keyword argument "commit_evry" for "run"; did you mean "commit_every"?',
        'Argument "now" to "run" has incompatible type "str"; expected "float | None"',
        'Argument "store" to "run" has incompatible type "int";'
        ' expected "str | Path | StateStore | None"',
    ], checked.stdout


def test_a_damaged_store_is_a_store_error_from_python(tmp_path: Path) -> None:
    """A prospect's stored state that cannot be decoded raised `mrules.state.DamagedState`,
    a ValueError, out of `mrules.run`, `RunResult.export` and `mrules.export`: a script
    catching StoreError for a broken store missed it (the CLI says "the store is damaged",
    exit 4). It is `DamagedStore`, a StoreError, in the words the CLI prints."""
    import sqlite3

    db = tmp_path / "s.db"
    rules, events = EXAMPLE / "rules", EXAMPLE / "events.jsonl"
    mrules.run(rules, events, store=db).close()
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE prospects SET state = x'7b2261223a' WHERE email = 'leung@example.com'")
    conn.close()
    more = ['{"ts":"2026-11-03T09:00:00Z","type":"page_view","prospect":"leung@example.com",'
            '"url":"https://getcloudy.com/pricing"}']  # fmt: skip
    calls = {
        "run": lambda: mrules.run(rules, more, store=db),
        "state export": lambda: mrules.export(db),
        "explain": lambda: mrules.api.explain_state(db, "leung@example.com"),
    }
    for command, call in calls.items():
        with pytest.raises(StoreError) as raised:
            call()
        assert type(raised.value).__name__ == "DamagedStore"  # mrules.storeapi's
        assert str(raised.value).startswith(
            "the store is damaged: the stored state of prospect leung@example.com cannot be read"
        )
        args = {
            "run": ["run", str(rules), "-", "--store", str(db)],
            "state export": ["state", "export", "--store", str(db)],
            "explain": ["explain", "leung@example.com", "--store", str(db)],
        }[command]
        printed = subprocess.run(
            [sys.executable, "-m", "mrules", *args], input=more[0] + "\n",
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        assert printed.returncode == 4, printed.stderr
        assert printed.stderr == f"mrules: error: {raised.value}\n", command


def test_the_events_text_given_whole_is_refused_with_what_to_give(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`mrules.run(rules, open("events.jsonl").read())`, the text where its path or lines
    go, raised SourceNotOpenedError with the whole text as the file's name: every line of
    the file in one message, then "No such file or directory". It says what a string is
    and what to give instead; a file whose name looks like JSON is still a path."""
    text = (EXAMPLE / "events.jsonl").read_text("utf-8")
    for given in (text, text.splitlines()[0], "\n"):
        with pytest.raises(ValueError) as raised:
            mrules.run(EXAMPLE / "rules", given)
        message = str(raised.value)
        assert message.startswith("events: a string is a path, not the events' text (")
        assert message.endswith("give its lines (text.splitlines()), or the file's path")
        assert len(message) < 200
    assert mrules.run(EXAMPLE / "rules", text.splitlines()).summary.applied == 27
    monkeypatch.chdir(tmp_path)
    (tmp_path / "{odd}.jsonl").write_text(text)
    assert mrules.run(EXAMPLE / "rules", "{odd}.jsonl").summary.applied == 27
