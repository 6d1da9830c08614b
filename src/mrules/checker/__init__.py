"""The checker: every static check over a parsed rule set, all run, results sorted.

`check(program)` gathers the declarations once (`symbols.collect`) and runs each
function of `CHECKS` over the program; a check yields `Diagnostic`s and never
stops the others. One module holds one family of checks and states its rules
in its docstring; `codes.CODES` lists every code with its title.

`check_loaded(result)` is what `mrules lint` reports: the parse diagnostics,
plus the checker's. The parser skips a broken item and keeps the others, so the
checker runs on every item that parsed; what the broken items would have
declared is unknown, so a name error about a name written anywhere in a skipped
item is left out rather than reported as a cascade. When an include failed, a rule
file was refused unread (or a skipped item is an include), a whole file's
declarations are missing, and the checks that need the whole program (unresolved
names, unused folders) are left out altogether.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

from mrules import ast, symbols
from mrules.checker import (
    actions,
    criteria,
    cycles,
    fields,
    names,
    pages,
    scoring,
    settings_check,
    values,
)
from mrules.checker import sync as sync_checks
from mrules.checker.codes import CODES
from mrules.checker.suppress import apply_suppressions, suppression_targets
from mrules.diagnostics import Diagnostic, sort_diagnostics
from mrules.loader import LoadResult, load_text
from mrules.parser import collector_paused, unquote

__all__ = [
    "CHECKS",
    "CODES",
    "WHOLE_PROGRAM_CODES",
    "Check",
    "check",
    "check_loaded",
    "suppression_anchors",
    "suppressions_kept",
]

Check = Callable[[ast.Program, symbols.Symbols], Iterable[Diagnostic]]

CHECKS: tuple[Check, ...] = (
    names.check_duplicates,
    names.check_references,
    names.check_lookalikes,
    names.check_empty_groups,
    fields.check_field_decls,
    values.check_values,
    criteria.check_satisfiable,
    criteria.check_activities,
    criteria.check_conditions,
    actions.check_actions,
    actions.check_rule_parts,
    actions.check_asset_limits,
    cycles.check_list_cycles,
    pages.check_pages,
    sync_checks.check_sync,
    scoring.check_scoring,
    scoring.check_grading,
    settings_check.check_settings,
)

# Codes that assume every declaration was read; dropped when a file is missing.
WHOLE_PROGRAM_CODES = frozenset({f"MR{n}" for n in range(102, 116)} | {"MR303", "MR603"})
# Codes after which a whole file is missing from the program: an include not found,
# refused, nested too deep or too long, a rule file of the folder refused unread.
_INCOMPLETE = frozenset({"MR020", "MR021", "MR022", "MR023", "MR024"})
# Codes that stand for names the program is expected to declare (dropped for a name
# written in a skipped item); the rest of WHOLE_PROGRAM_CODES is dropped outright.
_NAME_CODES = WHOLE_PROGRAM_CODES - {"MR603"}
# Codes about an empty block, reported at its braces.
_AT_BRACES = frozenset({"MR224", "MR607"})
_INCLUDE_RE = re.compile(r"^include(?![A-Za-z0-9_])", re.MULTILINE)
# Possessive: a string's characters one a repetition kept 150 bytes of backtracking each.
_WORD_RE = re.compile(r'"((?:[^"\\\n]++|\\.)*+)"?|([A-Za-z_][A-Za-z0-9_]*)')


def check(program: ast.Program, sym: symbols.Symbols | None = None) -> list[Diagnostic]:
    """Run every check over a parsed program.

    >>> from mrules.loader import load_text
    >>> [d.message for d in check(load_text('on submit of form "X" { score +5 }').program)]
    ["unknown form 'X'"]
    """
    with collector_paused():  # the checks walk a big acyclic tree: no cycles to collect
        if sym is None:
            sym = symbols.collect(program)
        found: list[Diagnostic] = []
        for run in CHECKS:
            found.extend(run(program, sym))
        return sort_diagnostics(found)


def check_loaded(result: LoadResult, sym: symbols.Symbols | None = None) -> list[Diagnostic]:
    """Parse diagnostics plus checker diagnostics for a loaded rule set, sorted.

    `sym` is the program's declarations, when the caller has collected them already.
    """
    return sort_diagnostics(apply_suppressions(_found(result, sym), result.sources))


def suppression_anchors(text: str, path: str) -> dict[int, int]:
    """Where `mrules fmt` must keep each `# mrules: ignore` comment of one file's text.

    A suppression covers the diagnostics that start on its line, and formatting
    splits lines: the comment must stay on the printed line where what it silences
    starts. Maps a comment's offset to that offset (`mrules.comments.attach`). The
    file is checked alone (fmt formats files, not rule sets); a suppression that
    silences nothing there is anchored to the first code of its line.
    """
    if "mrules:" not in text:
        return {}
    with collector_paused():
        result = load_text(text, path)
        return suppression_targets(_found(result, None), result.sources, path)


def suppressions_kept(before: str, after: str, path: str) -> bool:
    """Whether two texts of one file (before and after `mrules fmt`) report the same codes.

    The check `mrules fmt` makes when a file has suppression comments: a comment
    that landed on another line than what it silences would show a warning, or
    hide one. Counts codes, not positions, which formatting moves.
    """

    def codes(text: str) -> list[str]:
        return sorted(d.code for d in check_loaded(load_text(text, path)))

    with collector_paused():
        return codes(before) == codes(after)


def _found(result: LoadResult, sym: symbols.Symbols | None) -> list[Diagnostic]:
    """Every diagnostic of a loaded rule set, before suppressions."""
    found = list(result.diagnostics)
    checked = check(result.program, sym)
    skipped = _skipped_words(result)
    if skipped is None or any(d.code in _INCOMPLETE for d in result.diagnostics):
        checked = [d for d in checked if d.code not in WHOLE_PROGRAM_CODES]
    elif skipped:
        checked = [
            d
            for d in checked
            if d.code not in WHOLE_PROGRAM_CODES
            or (d.code in _NAME_CODES and _name_of(d, result) not in skipped)
        ]
    deep = [d.start for d in result.diagnostics if d.code == "MR016"]
    if deep:  # the parser dropped criteria nested too deep: their `when` is not empty
        checked = [
            d for d in checked if d.code != "MR304" or not any(d.start <= at < d.end for at in deep)
        ]
    if any(d.code in _AT_BRACES for d in checked):
        checked = [_at_braces(d, result) if d.code in _AT_BRACES else d for d in checked]
    return found + checked


def _at_braces(d: Diagnostic, result: LoadResult) -> Diagnostic:
    """An empty block's diagnostic, from the end of what precedes its `{` to its `}`,
    narrowed to start at the `{` (the checker sees spans, not the text in between)."""
    src = result.sources.get(d.path)
    if src is None:
        return d
    text, at = src.text, d.start
    while at < d.end and text[at] != "{":
        if text[at] == "#":  # a comment between the head and the brace
            at = text.find("\n", at, d.end)
            if at < 0:
                return d
        at += 1
    return d if at >= d.end else d.model_copy(update={"start": at})


def _skipped_words(result: LoadResult) -> set[str] | None:
    """Every string and word written in the items the parser skipped; None when one of
    them is an include (a whole file may be missing then)."""
    words: set[str] = set()
    for path, spans in result.unparsed.items():
        text = result.sources[path].text
        for span in spans:
            chunk = text[span.start : span.end]
            if _INCLUDE_RE.search(chunk):
                return None
            for quoted, word in _WORD_RE.findall(chunk):
                words.add(_unquoted(f'"{quoted}"') if quoted else word)
    return words


def _name_of(d: Diagnostic, result: LoadResult) -> str | None:
    src = result.sources.get(d.path)
    if src is None:
        return None
    text = src.text[d.start : d.end]
    return _unquoted(text) if text.startswith('"') and text.endswith('"') else text


def _unquoted(text: str) -> str:
    """A string's value; a broken escape (a skipped item holds anything) stays as written."""
    try:
        return unquote(text)
    except ValueError:
        return text[1:-1]
