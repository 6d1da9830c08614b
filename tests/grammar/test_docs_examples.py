"""Every ```mrules block in docs/language.md parses cleanly; every ```mrules-error block fails.

The language reference is executable documentation (STYLE R7/R15): an example that
stops parsing when the grammar changes fails here, next to the line that shows it.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from mrules.parser import parse_text

DOC = Path(__file__).resolve().parent.parent.parent / "docs" / "language.md"
_FENCE = re.compile(r"^```(mrules(?:-error)?)[ \t]*\n(.*?)^```[ \t]*$", re.M | re.S)


def _blocks(kind: str) -> list[tuple[int, str]]:
    text = DOC.read_text(encoding="utf-8")
    return [
        (text.count("\n", 0, m.start()) + 1, m.group(2))
        for m in _FENCE.finditer(text)
        if m.group(1) == kind
    ]


VALID = _blocks("mrules")
ERRORS = _blocks("mrules-error")


@pytest.mark.parametrize(("line", "code"), VALID, ids=[f"line{n}" for n, _ in VALID])
def test_example_parses_without_diagnostics(line: int, code: str) -> None:
    file, diags = parse_text(code, f"docs/language.md:{line}")
    assert diags == [], [d.message for d in diags]
    assert file is not None


@pytest.mark.parametrize(("line", "code"), ERRORS, ids=[f"line{n}" for n, _ in ERRORS])
def test_error_example_gives_a_diagnostic(line: int, code: str) -> None:
    _, diags = parse_text(code, f"docs/language.md:{line}")
    assert diags


def test_the_doc_has_examples_of_both_kinds() -> None:
    assert len(VALID) >= 20
    assert len(ERRORS) >= 5


# What a fragment may leave to the rest of a rule set: the declarations and included files
# it names, and the `when` or `then` of a rule shown for its criteria or its actions only.
LEFT_TO_OTHER_FILES = {
    "MR020", "MR102", "MR103", "MR104", "MR105", "MR107", "MR108",
    "MR110", "MR111", "MR112", "MR113", "MR114", "MR115", "MR304",
}  # fmt: skip


@pytest.mark.parametrize(("line", "code"), VALID, ids=[f"line{n}" for n, _ in VALID])
def test_example_has_no_error_but_names_declared_elsewhere(
    line: int, code: str, tmp_path: Path
) -> None:
    """`mrules lint` finds no mistake in an example, beyond what it leaves undeclared (a
    `sync hubspot { ... }` example parsed, and was MR501 for whoever copied it)."""
    import orjson
    from click.testing import CliRunner

    from mrules.cli import main

    (tmp_path / "example.mr").write_text(code, encoding="utf-8")
    res = CliRunner().invoke(main, ["lint", "--format", "json", str(tmp_path / "example.mr")])
    errors = [
        f"{d['code']} {d['message']}"
        for d in orjson.loads(res.stdout)
        if d["severity"] == "error" and d["code"] not in LEFT_TO_OTHER_FILES
    ]
    assert errors == [], f"docs/language.md:{line}"
