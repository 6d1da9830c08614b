"""Field declarations: a known type, choices exactly on choice types, built-ins kept.

Rules (codes MR201-MR205):

* the type is one of `symbols.FIELD_TYPES`: `field size: picklst` -> did you
  mean 'picklist'? (MR201);
* a picklist or multiselect lists its values: `field size: picklist` (MR202);
* only choice types take values: `field size: number ["1", "2"]` (MR203);
* a Pardot default field keeps its type: `field employees: text` (MR204, a
  warning). Making a text default field a picklist (`field country: picklist
  [...]`) is how Pardot's dropdowns work and is allowed;
* a field named like a keyword that can start a criterion (`field days:
  number`) can be declared and set but never tested, because `days ...` in a
  criterion reads as `days since ...` (MR205, a warning). The words come from
  the grammar itself, so the list cannot drift from it.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator

from mrules import ast
from mrules.checker import report
from mrules.checker.visit import of_type
from mrules.diagnostics import Diagnostic
from mrules.parser import lark_parser
from mrules.symbols import BUILTIN_FIELDS, FIELD_TYPES, Symbols

__all__ = ["CHOICE_TYPES", "check_field_decls", "criterion_keywords"]

CHOICE_TYPES = ("picklist", "multiselect")


@functools.cache
def criterion_keywords() -> frozenset[str]:
    """The words the grammar reads as keywords where a criterion starts."""
    parser = lark_parser()
    state = parser.parse_interactive('automation rule "r" priority 1 { when all { ')
    state.exhaust_lexer()
    words = {t.name: t.pattern.value for t in parser.terminals if t.pattern.type == "str"}
    return frozenset(
        words[name] for name in state.accepts() if name in words and words[name].isalpha()
    )


def check_field_decls(program: ast.Program, sym: Symbols) -> Iterator[Diagnostic]:
    """MR201-MR205 over every `field` declaration."""
    for path, item in of_type(program, ast.FieldDecl):
        if item.name.text in criterion_keywords():
            yield report.warning(
                "MR205",
                f"field '{item.name.text}' cannot be tested in criteria: "
                f"'{item.name.text}' starts a criterion there",
                path,
                item.name,
                hint="choose another name, e.g. '" + item.name.text + "_value'",
            )
        ftype = item.type.text
        if ftype not in FIELD_TYPES:
            yield report.error(
                "MR201",
                f"unknown field type '{ftype}'",
                path,
                item.type,
                hint=report.did_you_mean(ftype, FIELD_TYPES) or "types: " + ", ".join(FIELD_TYPES),
            )
            continue
        if ftype in CHOICE_TYPES and (item.choices is None or not item.choices.values):
            yield report.error(
                "MR202",
                f"{ftype} '{item.name.text}' has no values",
                path,
                item.type,
                hint=f'list them: field {item.name.text}: {ftype} ["a", "b"]',
            )
        elif ftype not in CHOICE_TYPES and item.choices is not None:
            yield report.error(
                "MR203",
                f"a {ftype} field takes no list of values",
                path,
                item.choices,
                hint="only picklist and multiselect fields have values",
            )
        builtin = BUILTIN_FIELDS.get(item.name.text)
        if (
            builtin is not None
            and builtin != ftype
            and not (builtin == "text" and ftype in CHOICE_TYPES)
        ):
            yield report.warning(
                "MR204",
                f"'{item.name.text}' is a Pardot default {builtin} field, declared as {ftype}",
                path,
                item.type,
                hint=f"default fields need no declaration; use {builtin} or another name",
            )
