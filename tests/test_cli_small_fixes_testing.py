"""`mrules test`: a tested rule whose name begins with "given" is reported as that rule,
not as the starting state. The starting state is told apart by where its actions sit in
the ledger (the setup run's), not by its rule's name (`given EMAIL (FILE:LINE)`)."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from conftest import mrules

RULES = """\
list "VIP"
tag "bonus"
form "Contact"
on submit of form "Contact" {
  add to list "VIP"
}
automation rule "given VIP a bonus" priority 5 {
  when all {
    in list "VIP"
  }
  then {
    score +50
    add tag "bonus"
  }
}
"""

TEST = """\
tests:
  - name: the bonus
    given:
      prospects:
        ann@x.example: {score: 10}
    events:
      - {ts: 2026-11-02T09:00:00Z, type: form_submit, prospect: ann@x.example, asset: Contact}
    expect:
      prospects:
        ann@x.example: {score: 999, tags: []}
"""


@pytest.mark.parametrize("inline", [False, True], ids=["rule-file", "rule-text"])
def test_a_rule_named_given_is_reported_as_a_rule(here: Path, inline: bool) -> None:
    if inline:  # rule text in the test file: its rules sit at the test file's lines
        text = "rules: |\n" + "".join(f"  {line}\n" for line in RULES.splitlines()) + TEST
        where = "bonus.test.yaml:8"
    else:
        Path("rules.mr").write_text(RULES, "utf-8")
        text = "rules: rules.mr\n" + TEST
        where = "rules.mr:7"
    Path("bonus.test.yaml").write_text(text, "utf-8")
    r = mrules("test", "bonus.test.yaml")
    assert r.exit_code == 1, r.output
    rule = f"automation rule 'given VIP a bonus' ({where}), event 1"
    start = len(text.splitlines()) - len(TEST.splitlines())  # the line before `tests:`
    assert f" = 10  starting score: the starting state (bonus.test.yaml:{start + 5})" in r.stdout
    # was "+50  starting score: the starting state" (rule text) or "+50  starting score:
    # automation rule 'given VIP a bonus' (rules.mr:7)..." (a rule file)
    assert f"  +50  given VIP a bonus: {rule}" in r.stdout, r.stdout
    assert f"bonus: added by {rule}" in r.stdout, r.stdout
    assert r.stdout.count("starting") == 2  # only the starting score's line names it
    r = mrules("test", "--format", "json", "bonus.test.yaml")
    reasons = [x for f in orjson.loads(r.stdout)["tests"][0]["failures"] for x in f["reasons"]]
    assert [x for x in reasons if "given VIP a bonus" in x and "starting" in x] == []
