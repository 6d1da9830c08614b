"""MR116's companion: an unknown name that only looks like a declared one says which."""

from __future__ import annotations

from mrules.checker import check_loaded
from mrules.loader import load_text


def test_an_unknown_look_alike_of_a_declared_name_gets_it_as_did_you_mean() -> None:
    text = 'list "MQL Leads"\nform "F"\non submit of form "F" { add to list "mql  leads " }\n'
    [diag] = check_loaded(load_text(text, "a.mr"))
    assert (diag.code, diag.message) == ("MR103", "unknown list 'mql  leads '")
    assert diag.hint == (
        "did you mean 'MQL Leads'? names match exactly: they differ in spacing or Unicode form"
    )


def test_a_case_only_look_alike_keeps_the_plain_did_you_mean() -> None:
    text = 'list "MQL"\nform "F"\non submit of form "F" { add to list "mql" }\n'
    [diag] = check_loaded(load_text(text, "a.mr"))
    assert (diag.code, diag.hint) == ("MR103", "did you mean 'MQL'?")
