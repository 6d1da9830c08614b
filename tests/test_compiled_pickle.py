"""A compiled rule set pickles, so a worker process can receive it; actions are data."""

from __future__ import annotations

import pickle
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import mrules
from mrules.api import compile_rules
from mrules.compiler import CompiledAction
from mrules.engine.effects import EFFECTS

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "getcloudy"


def _export_in_worker(data: bytes) -> list[dict[str, Any]]:
    rules = pickle.loads(data)
    return mrules.run(rules, EXAMPLE / "events.jsonl").export()


def test_a_pickled_rule_set_runs_the_same_in_a_worker() -> None:
    rules = compile_rules(EXAMPLE / "rules")
    data = pickle.dumps(rules)
    again = pickle.loads(data)
    assert again.version == rules.version and again.rule_keys == rules.rule_keys
    with ProcessPoolExecutor(max_workers=1) as pool:
        theirs = pool.submit(_export_in_worker, data).result(timeout=60)
    assert theirs == mrules.run(rules, EXAMPLE / "events.jsonl").export()


def test_compiled_actions_are_data_dispatched_by_the_effect_table() -> None:
    rules = compile_rules(EXAMPLE / "rules")
    actions = [a for blocks in rules.blocks.values() for b in blocks for a in b.actions]
    actions += [a for r in rules.rules for a in r.actions]
    assert actions and all(type(a) is CompiledAction for a in actions)
    assert {a.op for a in actions} <= EFFECTS.keys()
    assert all(a.loc.startswith(("examples/", "/")) or ".mr:" in a.loc for a in actions)
    assert pickle.loads(pickle.dumps(actions)) == actions


def test_the_rule_references_pickle_as_the_actions_do() -> None:
    # The ledger's "which rule did it", kept with each step: in the compiled build a
    # frozen dataclass does not unpickle field by field, so it says how to rebuild it.
    rules = compile_rules(EXAMPLE / "rules")
    refs = [r.ref for r in (*rules.rules, *rules.dynamic_lists)] + list(rules.profile_refs.values())
    assert refs and pickle.loads(pickle.dumps(refs)) == refs


def test_a_rule_set_compiled_without_its_sources_runs_and_pickles() -> None:
    # `mrules.compile(program)` takes no sources: the ledger then names the file at
    # line 0, no line of it, and the rule set still pickles (as its program) and runs.
    parsed = mrules.parse('form "F"\non submit of form "F" { score +5 }\n', "a.mr")
    rules = mrules.compile(parsed.program)
    event = {"ts": "2026-09-01T00:00:00Z", "type": "form_submit", "prospect": "a@x.example"}
    for compiled in (rules, pickle.loads(pickle.dumps(rules))):
        with mrules.run(compiled, [{**event, "asset": "F"}]) as result:
            assert result.export()[0]["score"] == 5
            [step] = [e for e in result.store.ledger() if e.action == "score"]
            assert (step.rule_kind, step.rule_name) == ("completion action", "submit of form F")
            assert step.rule_loc == "a.mr:0"  # no line is known: not line 1


def test_each_compiled_action_says_the_line_it_is_written_on() -> None:
    text = 'form "F"\ntag "T"\non submit of form "F" {\n  score +5\n  add tag "T"\n}\n'
    parsed = mrules.parse(text, "a.mr")
    [block] = mrules.compile(parsed.program, parsed.sources).blocks[("form_submit", "F")]
    assert [a.loc for a in block.actions] == ["a.mr:4", "a.mr:5"]
