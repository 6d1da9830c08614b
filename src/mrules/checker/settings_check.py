"""The settings block: known engine settings with values of the right type.

Rules (codes MR610-MR614):

* an unknown setting name (MR610): `throtle_minutes = 5` -> did you mean
  'throttle_minutes'?;
* a value of the wrong type for the setting (MR611): `url_ignore_www = "yes"`,
  or a word the setting does not take: `unknown_assets = "rejct"`;
* a negative duration (MR612): `throttle_minutes = -1`;
* `grade_start` that is not one of the 13 grades (MR613);
* a setting set twice (MR614, a warning): the later value wins.
"""

from __future__ import annotations

from collections.abc import Iterator

from mrules import ast
from mrules.checker import report
from mrules.checker.values import GRADES, describe_value
from mrules.checker.visit import of_type
from mrules.diagnostics import Diagnostic
from mrules.settings import SETTINGS
from mrules.symbols import Symbols

__all__ = ["check_settings"]

_KINDS = {bool: (ast.BoolValue,), int: (ast.NumberValue,), str: (ast.StringValue,)}
_WORDS = {bool: "true or false", int: "a whole number", str: "a quoted string"}


def check_settings(program: ast.Program, sym: Symbols) -> Iterator[Diagnostic]:
    """MR610-MR614 over every `settings` block."""
    seen: dict[str, tuple[str, ast.Setting]] = {}
    for path, item in of_type(program, ast.Settings):
        for setting in item.items:
            name = setting.name.text
            spec = SETTINGS.get(name)
            if spec is None:
                yield report.error(
                    "MR610",
                    f"unknown setting '{name}'",
                    path,
                    setting.name,
                    hint=report.did_you_mean(name, SETTINGS) or "settings: " + ", ".join(SETTINGS),
                )
                continue
            prev = seen.setdefault(name, (path, setting))
            if prev[1] is not setting:
                yield report.warning(
                    "MR614",
                    f"setting '{name}' is set twice; the later value wins",
                    path,
                    setting.name,
                    hint="keep one",
                    related=[report.note(prev[0], prev[1].name, "first set here")],
                )
            yield from _value(path, name, spec.type, setting.value, spec.choices)


def _value(
    path: str, name: str, kind: type, value: ast.Node, choices: tuple[str, ...] | None = None
) -> Iterator[Diagnostic]:
    fits = isinstance(value, _KINDS.get(kind, ()))
    if fits and isinstance(value, ast.NumberValue) and not isinstance(value.value, int):
        fits = False
    if not fits:
        yield report.error(
            "MR611",
            f"setting '{name}' takes {_WORDS.get(kind, kind.__name__)}, "
            f"not {describe_value(value)}",
            path,
            value,
        )
        return
    if choices and isinstance(value, ast.StringValue) and value.value not in choices:
        yield report.error(
            "MR611",
            f"setting '{name}' takes one of "
            + ", ".join(f'"{c}"' for c in choices)
            + f", not {describe_value(value)}",
            path,
            value,
            hint=report.did_you_mean(value.value, choices),
        )
    if isinstance(value, ast.NumberValue) and name.endswith("_minutes") and value.value < 0:
        yield report.error(
            "MR612",
            f"setting '{name}' cannot be negative",
            path,
            value,
            hint="0 turns the window off",
        )
    if name == "grade_start" and isinstance(value, ast.StringValue) and value.value not in GRADES:
        yield report.error(
            "MR613",
            f"'{value.value}' is not a grade",
            path,
            value,
            hint="grades: " + ", ".join(GRADES),
        )
