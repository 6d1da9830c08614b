"""Values against types: field tests and field writes fit the field's declared type.

Rules (codes MR210-MR215):

* a value of the wrong type: `employees is "many"`, `set employees = "5"`,
  `company is 5` (MR210);
* a picklist or multiselect value the field does not have:
  `company_size is "huge"` (MR211);
* an operator the type has no meaning for: `employees contains 5`,
  `company > "A"` (MR212);
* `increment` of a field that is not a number (MR213);
* `between` with the bounds reversed: `score between 50 and 10` (MR214);
* a grade comparison that can never hold: `grade > A+`, `grade < F` (MR215).

Fields of unknown type or unknown name are left to MR201 and MR102.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

from mrules import ast
from mrules.checker import report
from mrules.checker.fields import CHOICE_TYPES
from mrules.checker.visit import nodes_of
from mrules.diagnostics import Diagnostic
from mrules.symbols import FIELD_TYPES, FieldInfo, Symbols

__all__ = ["GRADES", "check_values", "describe_value"]

GRADES = ("F", "D-", "D", "D+", "C-", "C", "C+", "B-", "B", "B+", "A-", "A", "A+")

_TEXT_OPS = {
    "is",
    "is not",
    "is empty",
    "is not empty",
    "contains",
    "does not contain",
    "starts with",
    "ends with",
}
_ORDER_OPS = {"<", "<=", ">", ">=", "is", "is not", "is empty", "is not empty", "between"}
OPS: dict[str, set[str]] = {
    "text": _TEXT_OPS,
    "picklist": _TEXT_OPS,
    "multiselect": {"is", "is not", "is empty", "is not empty", "contains", "does not contain"},
    "number": _ORDER_OPS,
    "date": _ORDER_OPS,
    "boolean": {"is", "is not", "is empty", "is not empty"},
}
# The value kinds each field type accepts (a string list OR-s several values).
_ACCEPTS: dict[str, tuple[type, ...]] = {
    "text": (ast.StringValue, ast.StringList),
    "picklist": (ast.StringValue, ast.StringList),
    "multiselect": (ast.StringValue, ast.StringList),
    "number": (ast.NumberValue,),
    "date": (ast.TimestampValue,),
    "boolean": (ast.BoolValue,),
}
_HINTS = {
    "text": "quote the value",
    "picklist": "quote the value",
    "multiselect": "quote the value",
    "number": "write a number without quotes",
    "date": "write a date like 2026-01-31",
    "boolean": "use true or false",
}


def describe_value(value: ast.Node) -> str:
    """A value as the author wrote it, for messages."""
    match value:
        case ast.StringValue(value=v):
            return f'"{v}"'
        case ast.NumberValue(value=v) | ast.TimestampValue(value=v):
            return str(v)
        case ast.BoolValue(value=v):
            return "true" if v else "false"
        case ast.StringList(values=vs):
            return "[" + ", ".join(f'"{n.text}"' for n in vs) + "]"
    return value.kind


def _what(value: ast.Node) -> str:
    return {
        "string": "text",
        "number": "a number",
        "timestamp": "a date",
        "bool": "true/false",
        "string_list": "a list of values",
    }.get(value.kind, value.kind)


def _typed(sym: Symbols, name: ast.Name) -> FieldInfo | None:
    info = sym.fields.get(name.text)
    return info if info is not None and info.type in FIELD_TYPES else None


def _fits(info: FieldInfo, value: ast.Node, path: str, verb: str) -> Iterator[Diagnostic]:
    """MR210 for the wrong kind of value, else MR211 for unknown choices.

    A test (`is`, `is not`, a multiselect's `contains`) compares as the engine does,
    ignoring case: `stage is "mql"` holds for the value `MQL`. A write keeps the value
    as written, so `set stage = "mql"` is not the field's value `MQL` (events are
    screened the same way).
    """
    if isinstance(value, ast.StringList) and info.type in ("text", "picklist") and verb == "set to":
        accepted: tuple[type, ...] = (ast.StringValue,)
    else:
        accepted = _ACCEPTS[info.type]
    if not isinstance(value, accepted):
        hint = _HINTS[info.type]
        if info.type == "number" and isinstance(value, ast.StringValue):
            try:
                float(value.value)
                hint = f"drop the quotes: {value.value}"
            except ValueError:
                pass
        yield report.error(
            "MR210",
            f"'{info.name}' is {report.a_or_an(info.type)} field, {verb} {_what(value)}",
            path,
            value,
            hint=hint,
        )
        return
    if info.type in CHOICE_TYPES and info.choices is not None:
        names = value.values if isinstance(value, ast.StringList) else (value,)
        testing = verb != "set to"
        folded = {c.casefold() for c in info.choices} if testing else set()
        for n in names:
            text = n.text if isinstance(n, ast.Name) else getattr(n, "value", "")
            if text not in info.choices and not (testing and text.casefold() in folded):
                yield report.error(
                    "MR211",
                    f"'{text}' is not a value of {info.type} '{info.name}'",
                    path,
                    n,
                    hint=report.did_you_mean(text, info.choices)
                    or "values: " + ", ".join(info.choices),
                )


def _field_test(test: ast.FieldTest, path: str, sym: Symbols) -> Iterator[Diagnostic]:
    info = _typed(sym, test.field)
    if info is None:
        return
    if test.op not in OPS[info.type]:
        yield report.error(
            "MR212",
            f"'{test.op}' does not apply to {info.type} field '{info.name}'",
            path,
            test,
            hint="operators for " + info.type + ": " + ", ".join(sorted(OPS[info.type])),
        )
        return
    # A picklist's `contains "a"` tests text, not a choice; a multiselect's tests a choice.
    check_choices = info.type == "multiselect" or test.op in ("is", "is not")
    for value in (test.value, test.value2):
        if value is None:
            continue
        found = list(_fits(info, value, path, "compared with"))
        yield from (d for d in found if d.code == "MR210" or check_choices)
    low, high = test.value, test.value2
    if (
        test.op == "between"
        and isinstance(low, ast.NumberValue | ast.TimestampValue)
        and type(low) is type(high)
        and _bound(low) > _bound(high)
    ):
        yield report.error(
            "MR214",
            f"'{info.name} between' has its low bound above its high bound",
            path,
            test,
            hint=f"write `between {describe_value(high)} and {describe_value(low)}`",
        )


def _bound(value: ast.Node) -> Any:
    """The comparable value of a between bound (both bounds have one type: checked above).

    A date or time is the moment it stands for, as the compiler reads it: a date is
    its midnight UTC, a time counts its offset (`10:00:00+05:00` is before `06:00:00Z`).
    """
    assert isinstance(value, ast.NumberValue | ast.TimestampValue)
    if isinstance(value, ast.TimestampValue):
        return _moment(value.value)
    return value.value


def _moment(text: str) -> float:
    """Seconds since the epoch of a date or RFC 3339 time the parser accepted."""
    if "T" not in text and "t" not in text:
        return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC).timestamp()
    moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.timestamp()


_TYPED = frozenset({"field_test", "set_field", "increment_field", "score_between", "grade_compare"})
_TYPED_ORDER = tuple(sorted(_TYPED))


def _node(node: ast.Node, path: str, sym: Symbols) -> Iterator[Diagnostic]:
    if node.kind not in _TYPED:
        return
    match node:
        case ast.FieldTest():
            yield from _field_test(node, path, sym)
        case ast.SetField(field=name, value=value):
            info = _typed(sym, name)
            if info is not None:
                yield from _fits(info, value, path, "set to")
        case ast.IncrementField(field=name):
            info = _typed(sym, name)
            if info is not None and info.type != "number":
                yield report.error(
                    "MR213",
                    f"'{info.name}' is {report.a_or_an(info.type)} field; "
                    "increment needs a number field",
                    path,
                    name,
                    hint=f"declare it as a number: field {info.name}: number",
                )
        case ast.ScoreBetween(low=low, high=high) if low > high:
            yield report.error(
                "MR214",
                "'score between' has its low bound above its high bound",
                path,
                node,
                hint=f"write `score between {high} and {low}`",
            )
        case ast.GradeCompare(op=op, grade=grade) if (op, grade) in (("<", "F"), (">", "A+")):
            yield report.error(
                "MR215",
                f"'grade {op} {grade}' can never hold",
                path,
                node,
                hint="grades run from F (lowest) to A+ (highest)",
            )
        case _:
            pass


def check_values(program: ast.Program, sym: Symbols) -> Iterator[Diagnostic]:
    """MR210-MR215 over every field test, field write and score or grade comparison."""
    for path, node in nodes_of(program, _TYPED_ORDER):
        yield from _node(node, path, sym)
