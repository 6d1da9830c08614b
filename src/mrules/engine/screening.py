"""Screening events against what the rules declare: unknown assets, ill-fitting field values.

The settings `unknown_assets` and `bad_field_values` (docs/events.md) decide
whether such an event is applied, applied with a warning, or rejected; the
summary counts the causes. `fit_field` is the pure check of one value.
"""

from __future__ import annotations

import datetime as dt
import math
from collections import Counter
from typing import Any, Final

from mypy_extensions import trait

from mrules.checker.report import did_you_mean
from mrules.compiler import ASSET_EVENTS, RuleRef
from mrules.engine.parts import EngineParts
from mrules.events import ASSET_KINDS, Event, Reject
from mrules.history import json_text as _json
from mrules.state import Prospect
from mrules.symbols import FieldInfo, Symbols
from mrules.vocab import Action

__all__ = ["Screening", "fit_field"]


@trait
class Screening(EngineParts):
    """The screening part of `Engine` (policies `unknown_assets`, `bad_field_values`)."""

    def reject(self, item: Reject) -> None:
        """A line that is not applied: to the rejects file, with its number and reason."""
        self.summary.rejected += 1
        self.batch.rejects.append((self.reject_source, item.line, item.reason, item.text))

    def _refusal(self, e: Event) -> str | None:
        """Why the policies refuse a valid event (`reject` settings), or None."""
        if (
            self._asset_policy == "reject"
            and e.asset is not None
            and e.type in ASSET_EVENTS  # never an unsubscribe: an opt-out is never lost
            and (ASSET_KINDS[e.type], e.asset) not in self._assets
        ):
            return self._unknown_asset(ASSET_KINDS[e.type], e.asset)
        if self._field_policy == "reject" and e.fields:
            for crm_field, name, value in self._applied_fields(e):
                info = self._field_info.get(name)
                if info is not None:
                    problem = fit_field(info, value)[1]
                    if problem is not None:
                        return "bad field value: " + _from_crm(problem, crm_field)
        return None

    def _applied_fields(self, e: Event) -> list[tuple[str | None, str, Any]]:
        """The (CRM field, field, value) the event would write, before any policy."""
        if e.type in ASSET_EVENTS or e.type == "prospect_update":
            return [(None, name, value) for name, value in e.fields.items()]
        if e.type == "crm_update" and e.object in ("lead", "contact"):
            if not self.cs.auto_create and e.prospect is not None and self._get(e.prospect) is None:
                return []  # ignored anyway (§7.4)
            out: list[tuple[str | None, str, Any]] = []
            for crm_field, value in e.fields.items():
                mapped = self.cs.crm_fields.get(crm_field.casefold())
                if mapped is not None:
                    out.append((crm_field, mapped[0], value))
            return out
        return []

    def _unknown_asset(self, kind: str, asset: str) -> str:
        """`unknown form 'Book a demo' (did you mean 'Book a Demo'?)`, computed once."""
        text = self._unknown_text.get((kind, asset))
        if text is None:
            names = [name for k, name in self._assets if k == kind]
            folded = [name for name in names if name.casefold() == asset.casefold()]
            hint = f"did you mean {_quoted(folded[0])}?" if folded else did_you_mean(asset, names)
            text = f"unknown {kind} {_quoted(asset)}" + (f" ({hint})" if hint else "")
            if len(self._unknown_text) < _MAX_DISTINCT:
                self._unknown_text[(kind, asset)] = text
        return text

    def _warn_asset(self, kind: str, asset: str) -> None:
        if self._asset_policy != "ignore" and (kind, asset) not in self._assets:
            _count(self.summary.unknown_assets, self._unknown_asset(kind, asset))

    def _misfit(
        self, p: Prospect, ref: RuleRef, name: str, value: Any, problem: str, crm: str | None
    ) -> bool:
        """A value that does not fit its field: count it; True if it is kept anyway."""
        problem = _from_crm(problem, crm)
        _count(self.summary.bad_fields, problem)
        if self._field_policy == "keep":
            return True
        args = {"field": name, "value": value, "reason": problem}
        self.log(p, ref, Action.SKIP_FIELD, args, None, None)
        return False


# ------------------------------------------------------------ field values

_MAX_DISTINCT: Final = 100  # distinct warnings a summary keeps; the rest are counted under ""
_BOOLEANS: Final = {"true": True, "false": False}


def _count(counter: Counter[str], key: str) -> None:
    if key in counter or len(counter) < _MAX_DISTINCT:
        counter[key] += 1
    else:
        counter[""] += 1


def _quoted(text: str, limit: int = 60) -> str:
    """A name for a message: quoted, control characters escaped, cut if long."""
    return repr(text if len(text) <= limit else text[:limit] + "...")


def _shown(value: Any) -> str:
    if isinstance(value, str):
        return _quoted(value)
    return _json(value)


def _from_crm(problem: str, crm_field: str | None) -> str:
    return problem if crm_field is None else f"{problem} (CRM field {_quoted(crm_field)})"


def _typed_fields(symbols: Symbols) -> dict[str, FieldInfo]:
    """The fields whose event values are checked: all but free text."""
    return {name: info for name, info in symbols.fields.items() if info.type != "text"}


def _choice_problem(info: FieldInfo, text: str) -> str:
    choices = info.choices or ()
    folded = [c for c in choices if c.casefold() == text.strip().casefold()]
    hint = f"did you mean {_quoted(folded[0])}?" if folded else did_you_mean(text, choices)
    if hint is None:
        shown = ", ".join(choices[:10]) + (", ..." if len(choices) > 10 else "")
        hint = "values: " + shown
    return f"{_quoted(text)} is not a value of {info.type} '{info.name}' ({hint})"


def fit_field(info: FieldInfo, value: Any) -> tuple[Any, str | None]:
    """An event's value for a declared field: (the value to store, None) or (value, problem).

    A blank (null or "") always fits. Text takes any scalar; a number field a
    number or a text holding a finite one; a date field a text the criteria read
    as a date (2026-01-31, or an RFC 3339 time); a boolean true/false, or the
    text "true"/"false" (stored as a boolean); a picklist one of its values; a
    multiselect one of its values or several joined by ";" (stored as a list).

    >>> fit_field(FieldInfo("employees", "number"), "many")[1]
    "'many' is not a number (number field 'employees')"
    >>> fit_field(FieldInfo("interests", "multiselect", ("cloud", "data")), "data; cloud")
    (['data', 'cloud'], None)
    """
    if value is None or value == "":
        return value, None
    kind, ftype = type(value), info.type
    if ftype == "number":
        if kind is int or kind is float:
            return value, None
        if kind is str:
            try:
                if math.isfinite(float(value)):
                    return value, None
            except ValueError:
                pass
        return value, f"{_shown(value)} is not a number (number field '{info.name}')"
    if ftype == "boolean":
        if kind is bool:
            return value, None
        if kind is str and value.strip().casefold() in _BOOLEANS:
            return _BOOLEANS[value.strip().casefold()], None
        return value, f"{_shown(value)} is not true or false (boolean field '{info.name}')"
    if ftype == "date":
        if kind is str and _is_date(value):
            return value, None
        return value, (f"{_shown(value)} is not a date (date field '{info.name}'; e.g. 2026-01-31)")
    if ftype in ("picklist", "multiselect"):
        if kind is not str:
            return value, f"{_shown(value)} is not a value of {ftype} '{info.name}'"
        if info.choices is None:
            return value, None
        if ftype == "picklist":
            if value in info.choices:
                return value, None
            return value, _choice_problem(info, value)
        parts = [part.strip() for part in value.split(";")]
        for part in parts:
            if part not in info.choices:
                return value, _choice_problem(info, part)
        return (parts[0] if len(parts) == 1 else parts), None
    return value, None  # text, or a type the checker reports


def _is_date(text: str) -> bool:
    """Whether criteria read the text as a date (the compiler's conversion)."""
    text = text.strip()
    try:
        if "T" not in text and "t" not in text and " " not in text:
            dt.date.fromisoformat(text)
            return True
        moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=dt.UTC)
        moment.timestamp()
    except (ValueError, OverflowError):
        return False
    return True
