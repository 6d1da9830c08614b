"""`fit_field`, the check of one event value against its declared field, case by case
(docs/events.md, "A field value that does not fit its declared field").

Found by mutation testing of `engine/screening.py`: a null taken for a value that does
not fit, a float refused by a number field, and a picklist's list of values not cut
after ten all passed the suite."""

from __future__ import annotations

from typing import Any

import pytest

from mrules.engine.screening import fit_field
from mrules.symbols import FieldInfo

SIZES = ("1-10", "11-50", "51-200", "201-500", "501-1000", "1001-5000")


@pytest.mark.parametrize("ftype", ["number", "boolean", "date", "picklist", "multiselect", "text"])
@pytest.mark.parametrize("blank", [None, ""])
def test_a_blank_fits_every_field(ftype: str, blank: Any) -> None:
    choices = ("a", "b") if ftype in ("picklist", "multiselect") else None
    assert fit_field(FieldInfo("f", ftype, choices), blank) == (blank, None)


@pytest.mark.parametrize(
    ("value", "fits"),
    [(42, True), (2.5, True), (-0.0, True), ("3.25", True), ("1e3", True), ("many", False),
     ("inf", False), ("NaN", False), (True, False), ([1], False)],
)  # fmt: skip
def test_a_number_field_takes_numbers_and_texts_of_finite_ones(value: Any, fits: bool) -> None:
    stored, problem = fit_field(FieldInfo("employees", "number"), value)
    assert stored == value
    assert (problem is None) is fits, problem


def _picklist(n: int) -> FieldInfo:
    return FieldInfo("size", "picklist", tuple(f"v{i:02d}" for i in range(n)))


def test_a_picklist_lists_ten_of_its_values_then_says_there_are_more() -> None:
    ten, eleven = fit_field(_picklist(10), "zzz")[1], fit_field(_picklist(11), "zzz")[1]
    assert (
        ten
        == "'zzz' is not a value of picklist 'size' (values: "
        + ", ".join(f"v{i:02d}" for i in range(10))
        + ")"
    )
    assert eleven == ten.removesuffix(")") + ", ...)"


def test_a_picklist_value_off_by_case_or_blanks_gets_a_did_you_mean() -> None:
    info = FieldInfo("company_size", "picklist", SIZES)
    assert fit_field(info, "51-200") == ("51-200", None)
    assert fit_field(info, " 51-200 ")[1] == (
        "' 51-200 ' is not a value of picklist 'company_size' (did you mean '51-200'?)"
    )


DATE, NOT_A_DATE = FieldInfo("seen", "date"), "is not a date (date field 'seen'; e.g. 2026-01-31)"
SIZE = FieldInfo("size", "picklist", SIZES)


@pytest.mark.parametrize(
    ("info", "value", "problem"),
    [
        (DATE, 20260131, f"20260131 {NOT_A_DATE}"),
        (DATE, "2026-01-31", None),
        (DATE, "2026-02-30", f"'2026-02-30' {NOT_A_DATE}"),
        (DATE, "2026-01-31t10:00:00z", None),  # RFC 3339 allows a lower-case t and z
        (DATE, "2026-01-31 10:00:00Z", None),
        (SIZE, 5, "5 is not a value of picklist 'size'"),
        (FieldInfo("tags", "multiselect", SIZES), ["1-10"],
         "[\"1-10\"] is not a value of multiselect 'tags'"),
        (FieldInfo("tags", "multiselect", SIZES), "1-10; nope",
         "'nope' is not a value of multiselect 'tags' (values: " + ", ".join(SIZES) + ")"),
        (FieldInfo("size", "picklist", None), "anything", None),  # no values: the checker's
        (FieldInfo("notes", "text"), {"any": "value"}, None),
    ],
)  # fmt: skip
def test_values_of_the_wrong_kind_are_a_problem_not_a_crash(
    info: FieldInfo, value: Any, problem: str | None
) -> None:
    assert fit_field(info, value) == (value, problem)


@pytest.mark.parametrize(
    ("value", "stored"),
    [(True, True), (False, False), ("true", True), ("false", False), (" FALSE ", False),
     ("True", True)],
)  # fmt: skip
def test_a_boolean_field_stores_the_text_true_or_false_as_a_boolean(
    value: Any, stored: bool
) -> None:
    assert fit_field(FieldInfo("do_not_email", "boolean"), value) == (stored, None)


def test_a_boolean_field_refuses_other_texts() -> None:
    assert fit_field(FieldInfo("do_not_call", "boolean"), "yes") == (
        "yes",
        "'yes' is not true or false (boolean field 'do_not_call')",
    )
