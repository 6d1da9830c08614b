"""Did-you-mean among many names: up to 200 names of a namespace the hint comes from
difflib's ratio; past 200, from an index of one-character deletions (a name one edit
or one swap away), the closest in length first, then the first by name."""

from __future__ import annotations

from mrules.checker import check_loaded
from mrules.loader import load_text

FILLER = [f"Segment {i:03}" for i in range(300)]


def hint_for(names: list[str], word: str) -> str | None:
    """The hint of the unknown list `word` in a rule set declaring the lists `names`."""
    text = "".join(f'list "{n}"\n' for n in names)
    text += f'form "F"\non submit of form "F" {{ add to list "{word}" }}\n'
    [diag] = check_loaded(load_text(text, "a.mr"))
    assert (diag.code, diag.message) == ("MR103", f"unknown list '{word}'")
    return diag.hint


def test_a_name_one_edit_or_one_swap_away_is_found_among_many() -> None:
    names = [*FILLER, "Customers"]
    assert hint_for(names, "Custmers") == "did you mean 'Customers'?"
    assert hint_for(names, "Cusotmers") == "did you mean 'Customers'?"
    assert hint_for(names, "Customerss") == "did you mean 'Customers'?"
    assert hint_for(names, "Cuxtomers") == "did you mean 'Customers'?"


def test_among_many_the_closest_in_length_wins_then_the_first_by_name() -> None:
    names = [*FILLER, "Customers", "Customer", "Lead B", "Lead A"]
    assert hint_for(names, "Customrs") == "did you mean 'Customer'?"
    assert hint_for(names, "Customerz") == "did you mean 'Customers'?"
    assert hint_for(names, "Lead C") == "did you mean 'Lead A'?"


def test_two_edits_away_is_found_up_to_200_names_only() -> None:
    assert hint_for([*FILLER[:199], "Customers"], "Cstomrs") == "did you mean 'Customers'?"
    assert hint_for([*FILLER[:200], "Customers"], "Cstomrs") == 'declare it: list "Cstomrs"'
