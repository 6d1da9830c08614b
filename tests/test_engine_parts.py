"""Every cross-part method `EngineParts` declares is defined by a part of `Engine`.

The declarations raise NotImplementedError; one left without a definition
would raise in the middle of a run instead of failing here.
"""

from __future__ import annotations

import inspect

from mrules.engine.parts import EngineParts
from mrules.engine.run import Engine


def test_every_declared_method_is_defined_by_a_part() -> None:
    declared = [  # functions in Python, method descriptors when compiled
        name
        for name, value in vars(EngineParts).items()
        if inspect.isroutine(value) and not name.startswith("__")
    ]
    assert "log" in declared and "_settle" in declared and len(declared) >= 15
    for name in declared:
        owner = next(c for c in Engine.__mro__ if name in vars(c))
        assert owner is not EngineParts, f"{name} is declared but no part defines it"


def test_the_parts_come_before_the_declarations() -> None:
    mro = Engine.__mro__
    assert mro.index(EngineParts) > max(
        mro.index(part) for part in Engine.__bases__ if part is not EngineParts
    )
