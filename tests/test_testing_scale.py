"""`mrules test` over many cases: what a case needs is let go once it has run."""

from __future__ import annotations

import gc
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import mrules.api
from mrules.cli import main

EXAMPLE = Path(__file__).parent.parent / "examples" / "getcloudy"

CASE = """\
  - name: case {i}
    given:
      at: 2026-11-01T00:00:00Z
      prospects:
        p{i}@example.com: {{score: {i}, fields: {{company_size: "1-10"}}}}
    events:
      - {{ts: 2026-11-02T09:00:00Z, type: page_view, prospect: p{i}@example.com,
         url: "https://getcloudy.com/blog"}}
    expect:
      prospects:
        p{i}@example.com: {{score: {score}}}
"""


def test_each_cases_starting_state_is_not_kept_for_the_whole_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A case's starting state is made by a setup rule set (the rule set's declarations and
    # one rule a prospect), compiled for that case alone. Each was kept until the run
    # ended: 2,000 cases against the bundled example's rules peaked at 317 MB, 100 MB of
    # them setups nothing would read again.
    cases = 12
    rules = tmp_path / "rules"
    rules.symlink_to(EXAMPLE / "rules")
    test_file = tmp_path / "many.test.yaml"
    test_file.write_text(
        "rules: rules\ntests:\n"
        + "".join(CASE.format(i=i, score=i + 1) for i in range(cases)),  # a page view: +1
        encoding="utf-8",
    )
    alive: list[int] = []  # compiled rule sets alive as each setup is compiled
    real = mrules.api.compile_rules

    def compile_rules(rules: Any, *args: Any, **kwargs: Any) -> Any:
        compiled = real(rules, *args, **kwargs)
        if isinstance(rules, str) and 'automation rule "given ' in rules:
            # Counted among the collector's objects, not by weak reference: the compiled
            # build's CompiledRuleSet is a native class, which takes none.
            gc.collect()
            alive.append(sum(1 for o in gc.get_objects() if type(o) is type(compiled)))
        return compiled

    monkeypatch.setattr(mrules.api, "compile_rules", compile_rules)
    res = CliRunner().invoke(main, ["test", str(test_file)], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    assert f"{cases} passed" in res.output
    assert len(alive) == cases  # one setup a case
    assert min(alive) >= 1  # the one just compiled is counted: the count sees them
    # When a case's setup is compiled, those of the cases before are gone (the one before
    # may still be on its way out): the count does not grow with the cases.
    assert max(alive) - min(alive) <= 1, alive
