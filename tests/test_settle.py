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
