"""What the fuzz harnesses share: running the CLI in process, and mutating a document
(a test file, a saved plan) value by value."""

from __future__ import annotations

import copy
import random
from typing import Any

from click.testing import CliRunner

from mrules.cli import main


def cli(*args: str) -> tuple[int, str]:
    """Exit status and output of `mrules ARGS`; an exception that is no exit fails."""
    r = CliRunner().invoke(main, list(args))
    if r.exception is not None and not isinstance(r.exception, SystemExit):
        raise AssertionError(f"{args}: {r.exception!r}\n{r.output}") from r.exception
    return r.exit_code, r.output


def places(x: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every place of a JSON-like document, as the keys and indexes that lead there."""
    out = [path]
    if isinstance(x, dict):
        for k, v in x.items():
            out += places(v, (*path, k))
    elif isinstance(x, list):
        for i, v in enumerate(x):
            out += places(v, (*path, i))
    return out


def mutated(
    doc: Any,
    rng: random.Random,
    junk: list[Any],
    *,
    renames: tuple[str, ...] = (),
    change: float = 0.15,
    keep: tuple[str, ...] = (),
) -> tuple[Any, tuple[Any, ...]]:
    """A copy of `doc` with one to three places changed: a value replaced by junk, or
    (with probability `change`) a key renamed to one of `renames`, or dropped when
    there are none. Top-level keys in `keep` are left alone. Returns the copy and the
    last place changed."""
    doc = copy.deepcopy(doc)
    place: tuple[Any, ...] = ()
    for _ in range(rng.choice([1, 1, 2, 3])):
        place = rng.choice([p for p in places(doc) if p and p[0] not in keep])
        parent: Any = doc
        for step in place[:-1]:
            parent = parent[step]
        if isinstance(place[-1], str) and rng.random() < change:
            value = parent.pop(place[-1])
            if renames:
                parent[rng.choice(renames)] = value
        else:
            # A copy: the junk list's own [None] put in place, then changed by the next
            # step, became part of itself (a cycle) and changed every later draw.
            parent[place[-1]] = copy.deepcopy(rng.choice(junk))
    return doc, place
