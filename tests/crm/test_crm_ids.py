"""Salesforce ids: the 18-character form and its case-safe checksum."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mrules.crm.ids import BASE62, InvalidId, checksum, make_id, to18


def test_documented_example() -> None:
    # The 15 -> 18 example of Salesforce's documentation.
    assert to18("001D000000IqhSL") == "001D000000IqhSLIAZ"


def test_all_upper_and_all_lower_blocks() -> None:
    assert checksum("ABCDEABCDEABCDE") == "555"  # 31 in each block
    assert checksum("abcdeabcdeabcde") == "AAA"


def test_the_suffix_repairs_the_case() -> None:
    assert to18("001d000000iqhslIAZ") == "001D000000IqhSLIAZ"
    assert to18("001D000000IQHSLiaz") == "001D000000IqhSLIAZ"


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "001",
        "001D000000IqhS",
        "001D000000IqhSLIA",
        "001D000000IqhS!",
        "0012300000000006AA",
        None,
    ],
)
def test_invalid_ids(bad) -> None:
    with pytest.raises(InvalidId):
        to18(bad)


def test_make_id_uses_the_prefix_and_a_counter() -> None:
    assert make_id("00Q", 1) == "00Q5e0000000001EAA"
    assert make_id("003", 62) == "0035e0000000010AAA"
    assert make_id("701", 61)[:15] == "7015e000000000z"


@given(st.text(alphabet=BASE62, min_size=15, max_size=15))
def test_case_insensitive_round_trip(id15: str) -> None:
    id18 = to18(id15)
    assert id18[:15] == id15
    assert to18(id18.lower()) == id18
    assert to18(id18.upper()) == id18
