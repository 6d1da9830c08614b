"""mrules: marketing automation as code.

The library's verbs, for scripts and tests (the CLI is a thin shell over them):

>>> import mrules
>>> loaded = mrules.parse('list "MQL"\\non submit of form "F" { add to list "MQL" }\\nform "F"')
>>> [d.code for d in mrules.check(loaded.program)]
[]
>>> rules = mrules.compile(loaded.program, loaded.sources)
>>> sorted(rules.blocks) == [("form_submit", "F")]  # event types are `mrules.vocab` StrEnums
True

`mrules.load(paths)` reads rule folders and files like the CLI does.
`mrules.run(rules, events, store=":memory:")` runs them (see `mrules.api`):

>>> from pathlib import Path
>>> example = Path(mrules.__file__).parents[2] / "examples" / "getcloudy"
>>> result = mrules.run(example / "rules", example / "events.jsonl")
>>> result.summary.applied, result.export(["leung@example.com"])[0]["score"]
(27, 131)

`mrules.export("path.db")` reads the prospects of a store a run wrote (opened
read-only) as `mrules state export` prints them. The engine is
`mrules.engine.Engine`; its stores implement `mrules.storeapi.StateStore`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mrules.buildinfo import __version__

__all__ = ["__version__", "check", "compile", "export", "load", "parse", "run"]

if TYPE_CHECKING:
    from collections.abc import Iterable
    from pathlib import Path

    from mrules.ast import Program
    from mrules.compiler import CompiledRuleSet
    from mrules.diagnostics import Diagnostic
    from mrules.loader import LoadResult
    from mrules.source import Source
    from mrules.storeapi import StateStore


def load(paths: Any) -> LoadResult:
    """Read and parse rule files and folders (includes followed); see `mrules.loader.load`.

    `paths` is one path (str or Path) or a list of them: a lone string was read one
    character at a time, as paths. Anything else is a TypeError naming it; an empty
    path is a ValueError: it is not the current folder. A path that cannot be read (no
    such file, not UTF-8) raises `mrules.loader.LoadError`, a `mrules.api.RuleSetError`,
    as `mrules.run` does for it.
    """
    from mrules.api import rule_paths
    from mrules.loader import load as _load

    return _load(rule_paths(paths))


def parse(text: str, path: str = "<string>") -> LoadResult:
    """Parse one rule text; library includes work. Diagnostics are in the result.

    `text` and `path` are str, or a TypeError names the one that is not.
    """
    from mrules.loader import load_text

    for name, value in (("text", text), ("path", path)):
        if not isinstance(value, str):  # not a regex's or pydantic's words from inside
            raise TypeError(f"{name} must be a str, not {type(value).__name__}")
    return load_text(text, path)


def check(program: Program) -> list[Diagnostic]:
    """Every diagnostic of a parsed program, sorted by place.

    `program` is a parsed `Program` (`mrules.parse(text).program`), or a TypeError.
    """
    from mrules.checker import check as _check

    _program_only(program)
    return _check(program)


def compile(program: Program, sources: dict[str, Source] | None = None) -> CompiledRuleSet:
    """A program checked, then compiled for the engine; `sources` give the ledger file:line.

    `program` is a parsed `Program` and `sources` a dict or None, or a TypeError.
    The checker runs first, as `mrules run` does: a program with an error raises
    `mrules.api.RuleSetError`, its message every error as `path:line:col:
    error[CODE]: message` with a caret excerpt and the hint (without `sources`,
    `path: error[CODE]: message`, as lines are not known), its `diagnostics` the
    errors as data. Warnings do not stop it.

    >>> import mrules
    >>> bad = mrules.parse('on submit of form "F" { score +5 }', "a.mr")
    >>> mrules.compile(bad.program, bad.sources)
    Traceback (most recent call last):
    ...
    mrules.api.RuleSetError: a.mr:1:19: error[MR105]: unknown form 'F'
    ...
    """
    from mrules.api import RuleSetError
    from mrules.checker import check as _check
    from mrules.compiler import compile_program
    from mrules.diagnostics import render_text

    _program_only(program)
    if sources is not None and not isinstance(sources, dict):
        raise TypeError(
            f"sources must be a dict (the `sources` of mrules.parse's or mrules.load's result)"
            f" or None, not {type(sources).__name__}"
        )
    errors = [d for d in _check(program) if d.is_error]
    if errors:
        if sources is None:
            text = "".join(f"{d.path}: error[{d.code}]: {d.message}\n" for d in errors)
        else:
            text = render_text(errors, sources)
        raise RuleSetError(text, errors, sources)
    return compile_program(program, sources)


def _program_only(program: object) -> None:
    """Refuse what is not a parsed program: an AttributeError ('files') from inside said
    nothing of the argument (a `LoadResult` given whole, or rule text)."""
    from mrules.ast import Program
    from mrules.loader import LoadResult

    if isinstance(program, Program):
        return
    hint = (
        " (give its .program)" if isinstance(program, LoadResult)
        else " (parse it first: mrules.parse(text).program)" if isinstance(program, str)
        else ""
    )  # fmt: skip
    raise TypeError(f"program must be a parsed Program, not {type(program).__name__}{hint}")


if TYPE_CHECKING:  # a type checker sees `mrules.api.run` itself: every option, typed
    from mrules.api import run as run
else:

    def run(rules, events, store=":memory:", **options):
        """Run rules over events into a store (`":memory:"` by default); see
        `mrules.api.run` (imported when first called: `import mrules` stays light)."""
        from mrules.api import run as _run

        return _run(rules, events, store, **options)


def export(
    store: str | Path | StateStore, emails: str | Iterable[str] = ()
) -> list[dict[str, Any]]:
    """Every prospect of a store (a path, opened read-only) as `mrules state export` prints
    it; see `mrules.api.export_state`."""
    from mrules.api import export_state

    return export_state(store, emails)
