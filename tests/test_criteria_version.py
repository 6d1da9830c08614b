"""Which settings count in a rule's criteria hash (`rule_criteria` in the store).

A changed hash makes a run evaluate the rule or dynamic list again over every
stored prospect: settings count only for the criteria they change the meaning
of, and defaults count as nothing, so a store written before settings counted
keeps its hashes.
"""

from __future__ import annotations

from collections.abc import Iterator

from mrules import ast
from mrules.checker import check
from mrules.compiler import compile_program, criteria_version
from mrules.loader import load_text

RULES = """
field employees: number
dynamic list "Pricing" { when all { visited "x.example/pricing" } }
dynamic list "Mid" { when all { employees between 10 and 100 } }
dynamic list "Big" { when all { company is "Big" } }
automation rule "Seen" priority 1 {
  when all { not visited "x.example/*" }
  then { score +1 }
}
"""


def _hashes(settings: str = "") -> dict[str, str]:
    result = load_text(settings + RULES)
    assert not [d for d in check(result.program) if d.is_error]
    cs = compile_program(result.program, result.sources)
    return {r.key: r.criteria for r in (*cs.rules, *cs.dynamic_lists)}


def test_default_settings_keep_the_hash_of_the_criteria_alone() -> None:
    default = _hashes()
    stated = _hashes("settings { url_ignore_query = true\n between_matches_empty = false }\n")
    assert stated == default
    result = load_text(RULES)
    cs = compile_program(result.program, result.sources)
    for r in (*cs.rules, *cs.dynamic_lists):
        assert r.criteria == criteria_version(next(_whens(result.program, r.name)))


def _whens(program: ast.Program, name: str) -> Iterator[ast.Node]:
    for file in program.files:
        for item in file.items:
            if isinstance(item, ast.AutomationRule | ast.DynamicList) and item.name.text == name:
                assert item.when is not None
                yield item.when


def test_url_settings_change_only_the_criteria_that_visit() -> None:
    default = _hashes()
    for setting in ("url_ignore_query = false", "url_ignore_path_case = true"):
        changed = _hashes(f"settings {{ {setting} }}\n")
        assert changed["dynamic:Pricing"] != default["dynamic:Pricing"], setting
        assert changed["rule:Seen"] != default["rule:Seen"], setting
        assert changed["dynamic:Mid"] == default["dynamic:Mid"], setting
        assert changed["dynamic:Big"] == default["dynamic:Big"], setting


def test_between_matches_empty_changes_only_the_criteria_with_between() -> None:
    default = _hashes()
    changed = _hashes("settings { between_matches_empty = true }\n")
    assert changed["dynamic:Mid"] != default["dynamic:Mid"]
    assert {k: v for k, v in changed.items() if k != "dynamic:Mid"} == {
        k: v for k, v in default.items() if k != "dynamic:Mid"
    }


def test_settings_no_criterion_reads_change_no_hash() -> None:
    default = _hashes()
    changed = _hashes(
        "settings { throttle_minutes = 30\n email_open_first_only = false\n"
        ' round_robin = "by prospect" }\n'
    )
    assert changed == default


DECLARED = """
user "u1@x.example"
user "u2@x.example"
group "Sales" [{members}]
dynamic list "Owned" {{ when all {{ assigned to group "Sales" }} }}
dynamic list "Mine" {{ when all {{ assigned to user "u2@x.example" }} }}
"""


def _declared(members: str) -> dict[str, str]:
    result = load_text(DECLARED.format(members=members))
    assert not [d for d in check(result.program) if d.is_error]
    cs = compile_program(result.program, result.sources)
    return {r.key: r.declared for r in cs.dynamic_lists}


def test_group_members_count_for_the_criteria_that_name_the_group() -> None:
    one = _declared('"u1@x.example"')
    two = _declared('"u1@x.example", "u2@x.example"')
    assert one["dynamic:Owned"] != two["dynamic:Owned"]
    assert one["dynamic:Mine"] == two["dynamic:Mine"] == ""  # reads no group
    assert _declared('"u2@x.example", "u1@x.example"') == two  # the order of members aside


def test_a_list_turned_dynamic_counts_for_the_criteria_that_read_it() -> None:
    def declared(x: str) -> dict[str, str]:
        result = load_text(x + '\ndynamic list "B" { when all { in list "X" } }\n')
        assert not [d for d in check(result.program) if d.is_error]
        cs = compile_program(result.program, result.sources)
        return {r.key: r.declared for r in cs.dynamic_lists}

    static = declared('list "X"')
    dynamic = declared('dynamic list "X" { when all { company is "Z" } }')
    assert static["dynamic:B"] == ""
    assert dynamic["dynamic:B"] != ""
