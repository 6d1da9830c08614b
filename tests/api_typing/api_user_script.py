"""A script as a user of the library writes it, from the README and docs/api.md only.

`tests/test_api.py` runs it, and type-checks it with `mypy --strict`: the package ships
`py.typed`, so the checker sees mrules' own types (without it, every name is `Any`).
`assert_type` does nothing at run time; under mypy it fails if a type is not the one
given.
"""

from __future__ import annotations

import sys
from contextlib import closing
from pathlib import Path
from typing import Any, assert_type

import mrules
from mrules.api import RuleSetError, RunResult, open_store
from mrules.diagnostics import Diagnostic
from mrules.records import RejectedLine
from mrules.storeapi import StateStore, StoreError


def main(example: Path, store: Path) -> None:
    try:
        mrules.run('on submit of form "Nope" { score +5 }', [])
    except RuleSetError as e:
        assert_type(e.diagnostics, list[Diagnostic])
        print([d.code for d in e.diagnostics])
    lines = ["not JSON", *(example / "events.jsonl").read_text("utf-8").splitlines()]
    with mrules.run(example / "rules", lines, store=store) as result:
        assert_type(result, RunResult)
        assert_type(result.summary.applied, int)
        assert_type(result.store, StateStore)
        rejects = result.rejects()
        assert_type(rejects, list[RejectedLine])
        assert rejects == list(result.store.rejects())
        print(result.summary.rejected, [(r.line, r.reason) for r in rejects])
        leung = result.export("leung@example.com")[0]
        assert_type(leung, dict[str, Any])
        print(leung["score"])
        assert_type(result.explain("leung@example.com"), dict[str, Any])
    try:
        result.export()
    except StoreError as e:
        print(e)
    with closing(open_store(store, readonly=True)) as reopened:
        assert_type(reopened, StateStore)
        print(reopened.prospect_count())
        assert_type(mrules.export(reopened, ["leung@example.com"]), list[dict[str, Any]])


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
