"""One exception for "the rules cannot be loaded", whichever function read them.

`mrules.load` raised `mrules.loader.LoadError` where `mrules.run` raised
`mrules.api.RuleSetError` for the same missing path: code catching the one around
`run` missed the other around `load`. `LoadError` is now a `RuleSetError` (the rules
cannot be read at all, so they have no diagnostics), and both functions raise it.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import pytest

import mrules
from mrules.api import RuleSetError, compile_rules
from mrules.loader import LoadError


def _unreadable(tmp_path: Path, kind: str) -> tuple[Path, str]:
    if kind == "missing":
        return tmp_path / "no-such-rules", "no such file or folder"
    bad = tmp_path / "rules"
    bad.mkdir()
    (bad / "a.mr").write_bytes(b'list "\xff"\n')
    return bad, "UTF-8"


@pytest.mark.parametrize("kind", ["missing", "not-utf-8"])
@pytest.mark.parametrize(
    "call",
    [
        lambda p: mrules.load(p),
        lambda p: mrules.load([p]),
        lambda p: mrules.run(p, []),
        lambda p: mrules.run([p], []),
        lambda p: compile_rules(p),
    ],
    ids=["load", "load-list", "run", "run-list", "compile_rules"],
)
def test_rules_that_cannot_be_read_raise_one_exception_everywhere(
    tmp_path: Path, kind: str, call: Any
) -> None:
    path, words = _unreadable(tmp_path, kind)
    with pytest.raises(RuleSetError) as raised:  # what code around `run` catches
        call(path)
    assert type(raised.value) is LoadError  # and what code around `load` caught
    assert words in str(raised.value)
    assert raised.value.diagnostics == [] and raised.value.as_json() == []


def test_load_and_run_say_the_same_for_the_same_path(tmp_path: Path) -> None:
    path = tmp_path / "no-such-rules"
    with pytest.raises(LoadError) as loading:
        mrules.load(path)
    with pytest.raises(LoadError) as running:
        mrules.run(path, [])
    assert str(loading.value) == str(running.value)


def test_rules_with_errors_are_still_a_rule_set_error_and_no_load_error() -> None:
    with pytest.raises(RuleSetError) as raised:
        mrules.run('form "F"\non submit of form "F" { add to list "MQL" }', [])
    assert not isinstance(raised.value, LoadError)
    assert [d.code for d in raised.value.diagnostics] == ["MR103"]


def test_the_errors_keep_their_public_names_and_pickle(tmp_path: Path) -> None:
    """A traceback names `mrules.api.RuleSetError`, as the docs do; both errors survive a
    trip through pickle (a worker process handing one back)."""
    assert f"{RuleSetError.__module__}.{RuleSetError.__qualname__}" == "mrules.api.RuleSetError"
    assert issubclass(LoadError, RuleSetError) and issubclass(RuleSetError, Exception)
    for error in (LoadError("x: no such file or folder"), RuleSetError("broken")):
        again = pickle.loads(pickle.dumps(error))
        assert type(again) is type(error) and str(again) == str(error)
