"""Settlement that cannot silently stop: a prospect whose rules never converge is reported.

The lint refuses the known cause (MR313: dynamic lists that read each other
through `not`); the run's report is the safety net for whatever it misses, so
these tests compile the rule set without the checker.
"""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

import mrules
import mrules.compiler
from mrules.cli import main
from unsettled import OSCILLATING, unchecked_rules

EVENT = {"ts": "2026-11-02T09:00:00Z", "type": "prospect_update", "prospect": "a@x.com", "id": "e1"}


def _unchecked(text: str) -> mrules.compiler.CompiledRuleSet:
    loaded = mrules.parse(text)  # past the checker, which `mrules.compile` runs
    return mrules.compiler.compile_program(loaded.program, loaded.sources)


def test_the_lint_refuses_this_rule_set() -> None:
    assert "MR313" in {d.code for d in mrules.check(mrules.parse(OSCILLATING).program)}


def test_two_lists_that_undo_each_other_are_reported_with_their_rules() -> None:
    result = mrules.run(_unchecked(OSCILLATING), [EVENT])
    [report] = result.summary.unsettled
    assert report["prospect"] == "a@x.com" and report["line"] == 1 and report["id"] == "e1"
    assert [r.split(" (")[0] for r in report["rules"]] == ["dynamic list 'A'", "dynamic list 'B'"]


def test_rules_that_settle_report_nothing() -> None:
    settles = OSCILLATING.replace('not in list "B"', 'not in list "C"').replace(
        'dynamic list "A"', 'list "C"\ndynamic list "A"'
    )
    result = mrules.run(_unchecked(settles), [EVENT])
    assert result.summary.unsettled == []
    assert result.export()[0]["dynamic_lists"] == ["A", "B"]


def test_the_cli_warns_and_writes_the_diagnostics_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rules = unchecked_rules(monkeypatch, tmp_path)
    events = tmp_path / "e.jsonl"
    events.write_bytes(orjson.dumps(EVENT) + b"\n")
    res = CliRunner().invoke(
        main, ["run", str(rules), str(events), "--store", str(tmp_path / "s.db")]
    )
    assert res.exit_code == 0, res.output
    assert "do not settle" in res.output and "rules did not settle" in res.output
    lines = (tmp_path / "s.diagnostics.jsonl").read_bytes().splitlines()
    assert [orjson.loads(x)["prospect"] for x in lines] == ["a@x.com"]


def test_a_report_names_the_stream_as_the_rejects_do_and_no_line_outside_one(
    tmp_path: Path,
) -> None:
    """An iterable (as standard input) is `- (run N)` in the report, as in the rejects
    and the ledger; lists that do not settle when a later run brings them to the stored
    prospects (before any line) report no line, not line 0 (found by mutation testing)."""
    store = tmp_path / "s.db"
    with mrules.run(_unchecked(OSCILLATING), [EVENT], store=store) as first:
        [report] = first.summary.unsettled
    assert report["source"] == "- (run 1)" and report["line"] == 1
    with mrules.run(_unchecked('list "C"'), [{**EVENT, "id": "e2", "prospect": "b@x.com"}],
                    store=tmp_path / "t.db"):  # fmt: skip
        pass
    with mrules.run(_unchecked(OSCILLATING), [], store=tmp_path / "t.db") as later:
        [report] = later.summary.unsettled
    assert report["prospect"] == "b@x.com"
    assert report["line"] is None and report["id"] is None


def test_the_summary_counts_each_automation_rule_s_matches() -> None:
    """`summary.matches` (the run summary's "top rules by matches") counts an automation
    rule's matches up, one a prospect (found by mutation testing: counted down, it
    passed the suite)."""
    rules = (
        'form "F"\ntag "t"\nautomation rule "R" priority 1 {\n'
        '  when all { submitted form "F" }\n  then { add tag "t" }\n}\n'
    )
    events = [
        {"ts": "2026-11-02T09:00:00Z", "type": "form_submit", "prospect": f"{n}@x.com",
         "asset": "F"}
        for n in "abc"
    ]  # fmt: skip
    summary = mrules.run(rules, events).summary
    assert {ref.name: n for ref, n in summary.matches.items()} == {"R": 3}


@pytest.mark.parametrize("every", [1, 2, 1000])
def test_a_report_a_later_event_made_stale_is_dropped_whatever_the_commit_size(
    tmp_path: Path, every: int
) -> None:
    """A report stands as long as its prospect is as it was made about (docs/outputs.md).
    A later page view changes the prospect and its lists settle (they do not read page
    views): the report goes, and another prospect's report stays. With the two events in
    one commit (the default, 20,000 events) the report was kept: what the diagnostics file
    said depended on `--commit-every`."""
    view = {"ts": "2026-11-02T10:00:00Z", "type": "page_view", "prospect": "a@x.com",
            "visitor": "v1", "url": "https://x.example/", "id": "e2"}  # fmt: skip
    other = {**EVENT, "prospect": "b@x.com", "id": "e3"}
    for events, left in (([EVENT, view], []), ([EVENT, view, other], ["b@x.com"])):
        store = tmp_path / f"{len(events)}.db"
        with mrules.run(_unchecked(OSCILLATING), events, store=store, commit_every=every) as run:
            assert [r["prospect"] for r in run.summary.unsettled] == ["a@x.com", *left]
            assert [orjson.loads(r)["prospect"] for r in run.store.diagnostics()] == left
    # the same in one commit, then changed by the next run: dropped there too
    store = tmp_path / "later.db"
    with mrules.run(_unchecked(OSCILLATING), [EVENT, other], store=store, commit_every=every):
        pass
    with mrules.run(_unchecked(OSCILLATING), [view], store=store) as later:
        assert [orjson.loads(r)["prospect"] for r in later.store.diagnostics()] == ["b@x.com"]


def test_the_diagnostics_file_drops_a_report_a_later_commit_made_stale(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The file follows the store after each commit: a report written by the first commit
    goes from the file once the second commits a page view that changes its prospect."""
    rules = unchecked_rules(monkeypatch, tmp_path)
    view = {"ts": "2026-11-02T10:00:00Z", "type": "page_view", "prospect": "a@x.com",
            "visitor": "v1", "url": "https://x.example/", "id": "e2"}  # fmt: skip
    events, store = tmp_path / "e.jsonl", tmp_path / "s.db"
    events.write_bytes(orjson.dumps(EVENT) + b"\n" + orjson.dumps(view) + b"\n")
    res = CliRunner().invoke(
        main, ["run", str(rules), str(events), "--store", str(store), "--commit-every", "1"]
    )
    assert res.exit_code == 0, res.output
    assert "do not settle" in res.output  # the first event's report was made
    assert not (tmp_path / "s.diagnostics.jsonl").exists()


def test_the_diagnostics_file_is_rewritten_after_a_commit_that_changes_a_reported_prospect(
    tmp_path: Path,
) -> None:
    """`DiagnosticsFile.commit`, commit by commit (a run killed after any of them keeps
    the file as it was then): a batch that changes one reported prospect rewrites the
    file without its report; one that changes no reported prospect leaves it."""
    from mrules.batch import Batch
    from mrules.memstore import MemoryStore
    from mrules.outputs import DiagnosticsFile

    def report(who: str) -> dict[str, object]:
        return {"prospect": who, "line": 1, "reason": "its rules do not settle"}

    def reported() -> list[str]:
        return [orjson.loads(x)["prospect"] for x in path.read_bytes().splitlines()]

    for first in (["a@x.com"], ["a@x.com", "b@x.com"]):
        store, path = MemoryStore(), tmp_path / f"{len(first)}.diagnostics.jsonl"
        seen = DiagnosticsFile(path, store)
        for batch in (
            Batch("-", 1, 1.0, prospects=dict.fromkeys(first, b"{}"),
                  unsettled=[report(w) for w in first]),
            Batch("-", 2, 2.0, prospects={"c@x.com": b"{}"}),  # no reported prospect
            Batch("-", 3, 3.0, prospects={"a@x.com": b"{}"}),  # a's report made stale
        ):  # fmt: skip
            store.commit(batch)
            seen.commit(batch)
            if batch.line < 3:
                assert reported() == first
        assert not path.exists() if first == ["a@x.com"] else reported() == ["b@x.com"]
    # opened over a store whose reports the file lacks (a kill between a commit and the
    # file's write): written at once, before any commit
    path.unlink()
    DiagnosticsFile(path, store)
    assert reported() == ["b@x.com"]
