"""What a rule set compiles to beyond its criteria: the sync block's defaults."""

from __future__ import annotations

import mrules


def test_with_no_sync_block_a_crm_record_of_an_unknown_email_makes_no_prospect() -> None:
    # `auto create prospects` is off unless a sync block turns it on (docs/semantics.md).
    event = {"ts": "2026-09-01T00:00:00Z", "type": "crm_update", "object": "lead"}
    event |= {"prospect": "new@x.example", "fields": {"Phone": "1"}}
    with mrules.run('form "F"\n', [event]) as result:
        assert result.export() == []
        assert result.summary.ignored == 1


def test_the_keys_a_store_keeps_for_each_piece() -> None:
    # A store remembers pieces by these keys (when each first appeared, for `since`;
    # what each rule matched): a key that changed would make every stored piece new.
    text = """
    form "F"
    tag "T"
    on submit of form "F" { add tag "T" }
    on submit of form "F" { score +1 }
    page action "P" on "x.example/p" { score +1 }
    automation rule "R" priority 1 { when all { tagged "T" } then { score +1 } }
    dynamic list "D" { when all { tagged "T" } }
    """
    parsed = mrules.parse(text, "a.mr")
    rules = mrules.compile(parsed.program, parsed.sources)
    assert rules.rule_keys == {
        "on:form_submit:F#1": "completion action",
        "on:form_submit:F#2": "completion action",
        "page:P": "page action",
        "rule:R": "automation rule",
        "dynamic:D": "dynamic list",
    }
    blocks = rules.blocks[("form_submit", "F")]
    assert [(b.key, b.link_mark) for b in blocks] == [
        ("on:form_submit:F#1", ""),
        ("on:form_submit:F#2", "\x1f2"),
    ]


def test_a_visited_criterion_s_key_names_the_url_settings_that_differ_from_the_default() -> None:
    # A prospect keeps its visits under this key: the default settings add nothing, so
    # the keys a store holds stay valid; a changed one makes them learned again (§3).
    def keys(settings: str) -> list[str]:
        text = settings + 'dynamic list "D" { when all { visited "x.example/p*" } }\n'
        parsed = mrules.parse(text, "a.mr")
        return [key for key, _ in mrules.compile(parsed.program, parsed.sources).visited]

    assert keys("") == keys("settings { url_ignore_query = true }\n") == ["visited|x.example/p*"]
    changed = keys("settings { url_ignore_query = false }\n")
    assert changed == ["visited|x.example/p*|url_ignore_query=False"]
