"""The checker: every static check over a parsed rule set, all run, results sorted.

`check(program)` gathers the declarations once (`symbols.collect`) and runs each
function of `CHECKS` over the program; a check yields `Diagnostic`s and never
stops the others. One module holds one family of checks and states its rules
in its docstring; `codes.CODES` lists every code with its title.

`check_loaded(result)` is what `mrules lint` reports: the parse diagnostics,
plus the checker's. When some file did not parse or an include failed, the
declarations it held are missing, so the checks that need the whole program
(unresolved names, unused folders) are left out rather than report cascades.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from mrules import ast, symbols
from mrules.checker import actions, criteria, fields, names, pages, scoring, settings_check, values
from mrules.checker import sync as sync_checks
from mrules.checker.codes import CODES
from mrules.diagnostics import Diagnostic, sort_diagnostics
from mrules.loader import LoadResult
from mrules.parser import collector_paused

__all__ = ["CHECKS", "CODES", "WHOLE_PROGRAM_CODES", "Check", "check", "check_loaded"]

Check = Callable[[ast.Program, symbols.Symbols], Iterable[Diagnostic]]

CHECKS: tuple[Check, ...] = (
    names.check_duplicates,
    names.check_references,
    fields.check_field_decls,
    values.check_values,
    criteria.check_satisfiable,
    criteria.check_activities,
    criteria.check_conditions,
    actions.check_actions,
    actions.check_rule_parts,
    actions.check_asset_limits,
    pages.check_pages,
    sync_checks.check_sync,
    scoring.check_scoring,
    scoring.check_grading,
    settings_check.check_settings,
)

# Codes that assume every declaration was read; dropped when a file is missing.
WHOLE_PROGRAM_CODES = frozenset(
    {f"MR{n}" for n in range(102, 116)} | {"MR303", "MR603"}
)
# Parse codes after which a file (or an included file) is missing from the program.
_INCOMPLETE = frozenset({"MR001", "MR002", "MR003", "MR004", "MR020", "MR021"})


def check(program: ast.Program) -> list[Diagnostic]:
    """Run every check over a parsed program.

    >>> from mrules.loader import load_text
    >>> [d.message for d in check(load_text('on submit of form "X" { score +5 }').program)]
    ["unknown form 'X'"]
    """
    with collector_paused():  # the checks walk a big acyclic tree: no cycles to collect
        sym = symbols.collect(program)
        found: list[Diagnostic] = []
        for run in CHECKS:
            found.extend(run(program, sym))
        return sort_diagnostics(found)


def check_loaded(result: LoadResult) -> list[Diagnostic]:
    """Parse diagnostics plus checker diagnostics for a loaded rule set, sorted."""
    found = list(result.diagnostics)
    checked = check(result.program)
    if any(d.code in _INCOMPLETE for d in result.diagnostics):
        checked = [d for d in checked if d.code not in WHOLE_PROGRAM_CODES]
    return sort_diagnostics(found + checked)
